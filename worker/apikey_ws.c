/* apikey_ws — see apikey_ws.h.  Each request reads the caller's standing
 * (member role, mesh owner) first, then runs its one statement
 * (db/store_groups.c).  The secret lives only in this request's memory
 * until its reply is queued, and is wiped then. */
#include "worker/apikey_ws.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "db/store_groups.h"
#include "proto/apikey.h"
#include "worker/groupcheck.h"
#include "worker/groups.h"
#include "worker/msg.h"
#include "worker/ws.h"

#define KEY_ID_MAX 64

enum op { OP_CREATE, OP_LIST, OP_REVOKE };

struct key_req {
	struct worker *w;
	enum op op;
	int has_req;
	char reqid[129];
	/* create */
	char label[APIKEY_LABEL_MAX + 1];
	unsigned caps;
	cJSON *scope_list; /* topicScopes as a JSON array, NULL for every topic */
	int64_t expires_ms;
	char id[ID_LEN + 1], secret[APIKEY_SECRET_MAX + 1], hash[APIKEY_HASH_HEX], prefix[APIKEY_PREFIX_LEN + 1];
	/* revoke */
	char which[KEY_ID_MAX + 1];
};

static const char *req_id(const struct key_req *r)
{
	return r->has_req ? r->reqid : NULL;
}

static void req_free(struct key_req *r)
{
	sodium_memzero(r->secret, sizeof r->secret);
	cJSON_Delete(r->scope_list);
	free(r);
}

static void req_fail(struct key_req *r, const char *code, const char *message)
{
	groups_error(r->w, code, message, req_id(r));
	req_free(r);
}

static void db_failed(struct key_req *r, const char *err)
{
	log_warn("apikey: statement failed", "error", err);
	req_fail(r, "internal", "database unavailable, try again");
}

/* the capability names of caps, as a JSON array and a text[] literal */
static cJSON *caps_json(unsigned caps)
{
	cJSON *a = cJSON_CreateArray();
	for (unsigned i = 0; apikey_cap_names[i]; i++)
		if (caps & (1u << i))
			cJSON_AddItemToArray(a, cJSON_CreateString(apikey_cap_names[i]));
	return a;
}

static char *caps_literal(unsigned caps)
{
	const char *names[8];
	int n = 0;
	for (unsigned i = 0; apikey_cap_names[i] && n < 8; i++)
		if (caps & (1u << i))
			names[n++] = apikey_cap_names[i];
	char *out = malloc(8 * 16 + 3), *o = out;
	if (!out)
		log_fatal("out of memory");
	*o++ = '{';
	for (int i = 0; i < n; i++)
		o += sprintf(o, "%s%s", i ? "," : "", names[i]);
	*o++ = '}';
	*o = 0;
	return out;
}

/* ---- create ---- */

static void created_cb(void *arg, const struct store_table *t, const char *err)
{
	struct key_req *r = arg;
	if (err) {
		db_failed(r, err);
		return;
	}
	cJSON *o = groups_reply("apikey_created", req_id(r));
	cJSON_AddStringToObject(o, "id", r->id);
	cJSON *secret = cJSON_AddStringToObject(o, "secret", r->secret);
	cJSON_AddStringToObject(o, "label", r->label);
	cJSON_AddStringToObject(o, "prefix", r->prefix);
	cJSON_AddItemToObject(o, "capabilities", caps_json(r->caps));
	if (r->scope_list) {
		cJSON_AddItemToObject(o, "topicScopes", r->scope_list);
		r->scope_list = NULL;
	} else {
		cJSON_AddNullToObject(o, "topicScopes");
	}
	const char *at = store_table_get(t, 0, AC_CREATED);
	cJSON_AddStringToObject(o, "createdAt", at ? at : "");
	ws_send_json(r->w, o);
	if (secret && secret->valuestring)
		sodium_memzero(secret->valuestring, strlen(secret->valuestring));
	cJSON_Delete(o);
	log_info("api key created", "mesh", r->w->me.mesh_id, "key", r->prefix, "by", r->w->me.member_id);
	req_free(r);
}

static void create_run(struct key_req *r)
{
	struct worker *w = r->w;
	id_new(r->id);
	apikey_generate(r->secret, sizeof r->secret);
	apikey_hash(r->secret, r->hash);
	memcpy(r->prefix, r->secret, APIKEY_PREFIX_LEN);
	r->prefix[APIKEY_PREFIX_LEN] = 0;
	char *caps = caps_literal(r->caps), exp[24];
	snprintf(exp, sizeof exp, "%lld", (long long)r->expires_ms);
	int ns = r->scope_list ? cJSON_GetArraySize(r->scope_list) : -1;
	const char *scopes[APIKEY_SCOPES_MAX];
	for (int i = 0; i < ns && i < APIKEY_SCOPES_MAX; i++)
		scopes[i] = cJSON_GetArrayItem(r->scope_list, i)->valuestring;
	struct apikey_new k = {r->id,     w->me.mesh_id, w->me.member_id, r->label, r->hash,
	                       r->prefix, caps,          scopes,          ns,       r->expires_ms ? exp : NULL};
	int q = store_apikey_ws_create(w->db, &k, created_cb, r);
	free(caps);
	if (q != 0)
		req_fail(r, "internal", "broker busy, try again");
}

/* ---- list ---- */

static void add_nullable(cJSON *o, const char *k, const char *v)
{
	if (v)
		cJSON_AddStringToObject(o, k, v);
	else
		cJSON_AddNullToObject(o, k);
}

static void listed_cb(void *arg, const struct store_table *t, const char *err)
{
	struct key_req *r = arg;
	if (err) {
		db_failed(r, err);
		return;
	}
	cJSON *o = groups_reply("apikey_list_response", req_id(r));
	cJSON *keys = cJSON_AddArrayToObject(o, "keys");
	for (int i = 0; i < store_table_rows(t); i++) {
		cJSON *k = cJSON_CreateObject();
		cJSON_AddStringToObject(k, "id", store_table_get(t, i, AL_ID));
		add_nullable(k, "label", store_table_get(t, i, AL_LABEL));
		cJSON_AddStringToObject(k, "prefix", store_table_get(t, i, AL_PREFIX));
		const char *caps = store_table_get(t, i, AL_CAPS), *scopes = store_table_get(t, i, AL_SCOPES);
		cJSON *cj = caps ? cJSON_Parse(caps) : NULL;
		cJSON_AddItemToObject(k, "capabilities", cj ? cj : cJSON_CreateArray());
		cJSON *sj = scopes ? cJSON_Parse(scopes) : NULL;
		cJSON_AddItemToObject(k, "topicScopes", sj ? sj : cJSON_CreateNull());
		add_nullable(k, "createdAt", store_table_get(t, i, AL_CREATED));
		add_nullable(k, "lastUsedAt", store_table_get(t, i, AL_USED));
		add_nullable(k, "revokedAt", store_table_get(t, i, AL_REVOKED));
		add_nullable(k, "expiresAt", store_table_get(t, i, AL_EXPIRES));
		cJSON_AddItemToArray(keys, k);
	}
	ws_send_json(r->w, o);
	cJSON_Delete(o);
	req_free(r);
}

/* ---- revoke ---- */

static void revoked_cb(void *arg, const struct store_table *t, const char *err)
{
	struct key_req *r = arg;
	if (err) {
		db_failed(r, err);
		return;
	}
	const char *m = store_table_get(t, 0, AR_MATCHES), *id = store_table_get(t, 0, AR_ID);
	long matches = m ? strtol(m, NULL, 10) : 0;
	cJSON *o = groups_reply("apikey_revoke_response", req_id(r));
	if (id) {
		cJSON_AddStringToObject(o, "status", "revoked");
		cJSON_AddStringToObject(o, "id", id);
		log_info("api key revoked", "mesh", r->w->me.mesh_id, "key", id, "by", r->w->me.member_id);
	} else if (matches > 1) {
		cJSON_AddStringToObject(o, "status", "not_unique");
		cJSON_AddNumberToObject(o, "matches", (double)matches);
	} else {
		cJSON_AddStringToObject(o, "status", "not_found");
	}
	ws_send_json(r->w, o);
	cJSON_Delete(o);
	req_free(r);
}

/* ---- the caller's standing, then the statement ---- */

static void authority_cb(void *arg, const struct store_table *t, const char *err)
{
	struct key_req *r = arg;
	struct worker *w = r->w;
	if (err) {
		db_failed(r, err);
		return;
	}
	const char *role = store_table_get(t, 0, MA_ROLE), *owner = store_table_get(t, 0, MA_OWNER);
	int admin = (role && strcmp(role, "admin") == 0) || (owner && strcmp(owner, "t") == 0);
	/* others see and revoke their own keys only */
	const char *issuer = admin ? NULL : w->me.member_id;
	int q = 0;
	switch (r->op) {
	case OP_CREATE:
		if ((r->caps & APIKEY_CAP_ADMIN) && !admin) {
			req_fail(r, "forbidden", "only owner or admin can grant the admin capability");
			return;
		}
		create_run(r);
		return;
	case OP_LIST:
		q = store_apikey_ws_list(w->db, w->me.mesh_id, issuer, listed_cb, r);
		break;
	case OP_REVOKE:
		q = store_apikey_ws_revoke(w->db, w->me.mesh_id, issuer, r->which, revoked_cb, r);
		break;
	}
	if (q != 0)
		req_fail(r, "internal", "broker busy, try again");
}

static struct key_req *req_new(struct worker *w, const cJSON *msg, enum op op)
{
	struct key_req *r = calloc(1, sizeof *r);
	if (!r)
		log_fatal("out of memory");
	r->w = w;
	r->op = op;
	const char *reqid = groups_req_id(msg);
	if (reqid) {
		r->has_req = 1;
		memcpy(r->reqid, reqid, strlen(reqid) + 1);
	}
	return r;
}

static void req_start(struct key_req *r)
{
	if (store_member_authority(r->w->db, r->w->me.member_id, authority_cb, r) != 0)
		req_fail(r, "internal", "broker busy, try again");
}

void apikey_ws_on_create(struct worker *w, const cJSON *msg)
{
	struct key_req *r = req_new(w, msg, OP_CREATE);
	struct apikey_args a;
	const char *why;
	if (groupcheck_apikey_create(msg, now_ms(), &a, &why) != 0) {
		req_fail(r, "invalid_args", why);
		return;
	}
	str_copy(r->label, sizeof r->label, a.label);
	r->caps = a.caps;
	r->expires_ms = a.expires_ms;
	if (a.n_scopes >= 0) {
		r->scope_list = cJSON_CreateArray();
		for (int i = 0; i < a.n_scopes; i++)
			cJSON_AddItemToArray(r->scope_list, cJSON_CreateString(a.scopes[i]));
	}
	req_start(r);
}

void apikey_ws_on_list(struct worker *w, const cJSON *msg)
{
	req_start(req_new(w, msg, OP_LIST));
}

void apikey_ws_on_revoke(struct worker *w, const cJSON *msg)
{
	struct key_req *r = req_new(w, msg, OP_REVOKE);
	const char *id = msg_str(msg, "id");
	if (!id || !id[0] || strlen(id) > KEY_ID_MAX) {
		req_fail(r, "invalid_args", "id required");
		return;
	}
	str_copy(r->which, sizeof r->which, id);
	req_start(r);
}
