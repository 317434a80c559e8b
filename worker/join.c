/* join — POST /join (see join.h).  The checks, first failure decides:
 * fields present (400), peer_pubkey 64 hex (400), display_name printable,
 * the token and the payload each carry a valid owner signature
 * (invite_bad_signature), the payload names the mesh's owner key
 * (invite_owner_mismatch), the token and the payload name one mesh
 * (invite_mesh_mismatch), the signed expiry (invite_expired); then one atomic
 * statement (mesh.invite_join) decides on the invite row: not found, another
 * mesh's, the same key again (alreadyMember), revoked, expired, exhausted,
 * else the member is inserted and the use counted. */
#include "worker/join.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/util.h"
#include "db/store.h"
#include "proto/invite.h"
#include "shm/negcache.h"
#include "worker/audit.h"
#include "worker/msgcheck.h"
#include "worker/skel.h"

#define JOIN_TIMEOUT_MS    5000
#define JOIN_DB_TIMEOUT_MS 5000
#define JOIN_NAME_MAX      127 /* display names fit the presence table */

#define JOIN_ERR_REQUIRED "invite_token, invite_payload, peer_pubkey, display_name required"
#define JOIN_ERR_PUBKEY   "peer_pubkey must be 64 hex chars (32 bytes)"

static void join_reply(struct worker *w, int status, cJSON *body /* consumed */)
{
	char *s = cJSON_PrintUnformatted(body);
	http_respond(w->fd, status, "application/json", NULL, s, strlen(s), JOIN_TIMEOUT_MS);
	free(s);
	cJSON_Delete(body);
}

static void join_fail(struct worker *w, int status, const char *error)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "ok", 0);
	cJSON_AddStringToObject(o, "error", error);
	join_reply(w, status, o);
	if (status != 503)
		log_info("join refused", "error", error, "remote", w->remote_addr);
}

static int name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > JOIN_NAME_MAX)
		return 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f || (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)) /* C0, DEL, C1 */
			return 0;
	return 1;
}

struct owner_q {
	int done, failed;
	char owner[80]; /* "" when there is no such mesh */
};

static void owner_cb(void *arg, const char *value, const char *err)
{
	struct owner_q *q = arg;
	q->done = 1;
	q->failed = err != NULL;
	if (err)
		log_warn("join: mesh lookup failed", "error", err);
	snprintf(q->owner, sizeof q->owner, "%s", value ? value : "");
}

struct join_q {
	int done, failed;
	char result[32], member_id[64], mesh_id[64], role[16], invite_id[64];
};

static void join_cb(void *arg, const struct join_row *r, const char *err)
{
	struct join_q *q = arg;
	q->done = 1;
	q->failed = err != NULL;
	if (err) {
		log_warn("join: invite statement failed", "error", err);
		return;
	}
	snprintf(q->result, sizeof q->result, "%s", r->result);
	snprintf(q->member_id, sizeof q->member_id, "%s", r->member_id ? r->member_id : "");
	snprintf(q->mesh_id, sizeof q->mesh_id, "%s", r->mesh_id ? r->mesh_id : "");
	snprintf(q->role, sizeof q->role, "%s", r->role ? r->role : "");
	snprintf(q->invite_id, sizeof q->invite_id, "%s", r->invite_id ? r->invite_id : "");
}

/* the invite_* error of a mesh.invite_join result other than ok/already */
static const char *result_error(const char *r)
{
	static const struct {
		const char *result, *error;
	} map[] = {
	    {"not_found", "invite_not_found"},  {"mesh_mismatch", "invite_mesh_mismatch"},
	    {"revoked", "invite_revoked"},      {"expired", "invite_expired"},
	    {"exhausted", "invite_exhausted"},  {"member_revoked", "member_revoked"},
	    {"mesh_archived", "mesh_archived"}, {"name_taken", "display_name_taken"},
	};
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
		if (strcmp(map[i].result, r) == 0)
			return map[i].error;
	return "internal";
}

/* the checks that need no database; NULL when they pass, else the error */
static const char *join_static_checks(const cJSON *body, struct invite *tok, struct invite *pay, cJSON **tok_obj,
                                      int *status)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(body, "invite_token");
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(body, "invite_payload");
	const cJSON *k = cJSON_GetObjectItemCaseSensitive(body, "peer_pubkey");
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(body, "display_name");
	*status = 400;
	if (!cJSON_IsString(t) || !*t->valuestring || !cJSON_IsObject(p) || !cJSON_IsString(k) || !cJSON_IsString(n) ||
	    !*n->valuestring)
		return JOIN_ERR_REQUIRED;
	if (!is_hex(k->valuestring, 64))
		return JOIN_ERR_PUBKEY;
	if (!name_ok(n->valuestring))
		return "display_name must be 1-127 bytes without control characters";
	*tok_obj = invite_token_decode(t->valuestring);
	if (!*tok_obj || invite_fields(*tok_obj, tok) != 0 || !invite_verify(tok))
		return "invite_bad_signature";
	if (invite_fields(p, pay) != 0 || !invite_verify(pay))
		return "invite_bad_signature";
	return NULL;
}

void join_request(struct worker *w, struct http_req *req)
{
	if (strcmp(req->method, "POST") != 0) {
		join_fail(w, 405, "method not allowed: POST /join");
		return;
	}
	/* a \u0000 would cut a field (display_name) where cJSON stops: refused whole */
	if (!msgcheck_json_nul_free(req->body, req->body_len)) {
		join_fail(w, 400, "display_name must be 1-127 bytes without control characters");
		return;
	}
	cJSON *body = cJSON_ParseWithLength(req->body, req->body_len);
	if (!cJSON_IsObject(body)) {
		cJSON_Delete(body);
		join_fail(w, 400, "invalid JSON: expected an object");
		return;
	}
	struct invite tok, pay;
	cJSON *tok_obj = NULL;
	int status;
	const char *err = join_static_checks(body, &tok, &pay, &tok_obj, &status);
	struct owner_q oq = {0};
	struct join_q jq = {0};
	if (err)
		goto fail;
	status = 503;
	err = "database unavailable";
	if (worker_db(w) != 0 || store_mesh_owner(w->db, pay.mesh_id, owner_cb, &oq) != 0)
		goto fail;
	db_drain_sync(w->db, JOIN_DB_TIMEOUT_MS);
	if (!oq.done || oq.failed)
		goto fail;
	status = 400;
	if (!oq.owner[0]) {
		err = "invite_not_found"; /* no such mesh */
		goto fail;
	}
	if (strcasecmp(oq.owner, pay.owner_pubkey) != 0) {
		err = "invite_owner_mismatch";
		goto fail;
	}
	if (strcmp(tok.mesh_id, pay.mesh_id) != 0) {
		err = "invite_mesh_mismatch";
		goto fail;
	}
	if (strcasecmp(oq.owner, tok.owner_pubkey) != 0) {
		err = "invite_owner_mismatch";
		goto fail;
	}
	/* the payload is the token's own invite, not another one of the mesh
	 * that verifies (issue 22): one signature, so one signed string */
	if (strcmp(tok.signature, pay.signature) != 0) {
		err = "invite_payload_mismatch";
		goto fail;
	}
	if (pay.expires_at * 1000 <= now_ms() || tok.expires_at * 1000 <= now_ms()) {
		err = "invite_expired";
		goto fail;
	}
	const char *token = cJSON_GetObjectItemCaseSensitive(body, "invite_token")->valuestring;
	char pubkey[65], new_id[ID_LEN + 1];
	snprintf(pubkey, sizeof pubkey, "%s", cJSON_GetObjectItemCaseSensitive(body, "peer_pubkey")->valuestring);
	for (char *c = pubkey; *c; c++)
		if (*c >= 'A' && *c <= 'F')
			*c = (char)(*c - 'A' + 'a');
	const char *name = cJSON_GetObjectItemCaseSensitive(body, "display_name")->valuestring;
	id_new(new_id);
	status = 503;
	err = "database unavailable";
	if (store_invite_join(w->db, token, pay.mesh_id, pubkey, name, new_id, join_cb, &jq) != 0)
		goto fail;
	db_drain_sync(w->db, JOIN_DB_TIMEOUT_MS);
	if (!jq.done || jq.failed)
		goto fail;
	int ok = strcmp(jq.result, "ok") == 0, already = strcmp(jq.result, "already") == 0;
	if (!ok && !already) {
		err = result_error(jq.result);
		status = strcmp(jq.result, "member_revoked") == 0 ? 403 : 400;
		goto fail;
	}
	/* the key is a member now: a hello it sent a moment ago as a stranger
	 * must not keep it out (the member row is committed before this) */
	if (worker_negcache(w) == 0)
		negcache_drop(w->negcache, jq.mesh_id, pubkey);
	if (ok) {
		cJSON *a = cJSON_CreateObject();
		cJSON_AddStringToObject(a, "memberId", jq.member_id);
		cJSON_AddStringToObject(a, "pubkey", pubkey);
		cJSON_AddStringToObject(a, "role", jq.role);
		cJSON_AddStringToObject(a, "inviteId", jq.invite_id);
		audit_event(w, jq.mesh_id, "member_joined", jq.member_id, name, a);
		db_drain_sync(w->db, JOIN_DB_TIMEOUT_MS); /* the row is there when the client hears ok */
		log_info("member joined", "mesh", jq.mesh_id, "member", jq.member_id, "invite", jq.invite_id);
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "ok", 1);
	cJSON_AddStringToObject(o, "memberId", jq.member_id);
	cJSON_AddStringToObject(o, "meshId", jq.mesh_id);
	if (already)
		cJSON_AddBoolToObject(o, "alreadyMember", 1);
	join_reply(w, 200, o);
	cJSON_Delete(tok_obj);
	cJSON_Delete(body);
	return;
fail:
	join_fail(w, status, err);
	cJSON_Delete(tok_obj);
	cJSON_Delete(body);
}
