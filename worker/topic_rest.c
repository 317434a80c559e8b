/* topic_rest — the topic key routes of §5.3 and the dispatch of /v1/ (see
 * topic_rest.h).  The caller is the key's issuing member; a mesh-wide key
 * (no member) cannot hold or seal a topic key.  Status codes: 404
 * topic_not_found / key_not_sealed_for_member / recipient_not_in_topic /
 * not_a_member (sealing without being a topic member), 409
 * topic_unencrypted / already_sealed, 400 invalid_body. */
#include "worker/topic_rest.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "db/store_topic.h"
#include "proto/topickey.h"
#include "worker/apikey.h"
#include "worker/audit.h"
#include "worker/rest.h"
#include "worker/skel.h"
#include "worker/topic.h"
#include "worker/topic_key.h"
#include "worker/topic_post.h"

#define REF_MAX 128

struct key_q {
	struct rest_answer a;
	struct worker *w;
	const struct apikey_row *key;
	char member[64];
	const char *ref; /* the topic as the path named it */
};

/* ---- GET /v1/topics/:name/key ---- */

static void key_cb(void *arg, enum store_topic_status st, const struct topic_key_row *k, const char *err)
{
	struct key_q *q = arg;
	if (err) {
		log_warn("GET key failed", "error", err);
		rest_set_error(&q->a, 503, "db_unavailable");
	} else if (st == TOPIC_NOT_FOUND) {
		rest_set_error(&q->a, 404, "topic_not_found");
	} else if (st == TOPIC_UNENCRYPTED) {
		rest_set_error(&q->a, 409, "topic_unencrypted");
	} else if (st == TOPIC_NOT_SEALED) {
		rest_set_error(&q->a, 404, "key_not_sealed_for_member");
	} else {
		struct topickey_sealed s;
		char sender[65] = "";
		if (topickey_parse(k->encrypted_key, k->nonce, &s) == 0)
			sodium_bin2hex(sender, sizeof sender, s.sender_pk, sizeof s.sender_pk);
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "topic", k->name);
		cJSON_AddStringToObject(o, "topicId", k->topic_id);
		cJSON_AddStringToObject(o, "encryptedKey", k->encrypted_key);
		cJSON_AddStringToObject(o, "nonce", k->nonce);
		cJSON_AddStringToObject(o, "senderPubkey", sender);
		cJSON_AddStringToObject(o, "createdAt", k->created_at ? k->created_at : "");
		rest_set(&q->a, 200, o);
	}
}

/* ---- GET /v1/topics/:name/pending-seals ---- */

static void pending_cb(void *arg, enum store_topic_status st, const char *topic_id, const char *name,
                       const char *sender_pubkey, const struct topic_pending_row *rows, int n, const char *err)
{
	struct key_q *q = arg;
	if (err) {
		log_warn("GET pending-seals failed", "error", err);
		rest_set_error(&q->a, 503, "db_unavailable");
	} else if (st == TOPIC_NOT_FOUND) {
		rest_set_error(&q->a, 404, "topic_not_found");
	} else if (st == TOPIC_NOT_MEMBER) {
		rest_set_error(&q->a, 403, "not_a_member");
	} else {
		cJSON *o = cJSON_CreateObject();
		topic_key_pending_fill(o, name, topic_id, sender_pubkey, rows, n);
		rest_set(&q->a, 200, o);
	}
}

/* ---- POST /v1/topics/:name/seal ---- */

static void seal_cb(void *arg, enum store_topic_status st, const char *topic_id, const char *sealed_at, const char *err)
{
	struct key_q *q = arg;
	static const struct {
		int status;
		const char *error;
	} errors[] = {
	    [TOPIC_NOT_FOUND] = {404, "topic_not_found"},
	    [TOPIC_NOT_MEMBER] = {404, "not_a_member"},
	    [TOPIC_NO_RECIPIENT] = {404, "recipient_not_in_topic"},
	    [TOPIC_ALREADY_SEALED] = {409, "already_sealed"},
	    [TOPIC_UNENCRYPTED] = {409, "topic_unencrypted"},
	    [TOPIC_NOT_SEALED] = {404, "key_not_sealed_for_member"},
	};
	if (err) {
		log_warn("POST seal failed", "error", err);
		rest_set_error(&q->a, 503, "db_unavailable");
	} else if (st != TOPIC_OK) {
		rest_set_error(&q->a, errors[st].status, errors[st].error);
	} else {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "topic", q->ref);
		cJSON_AddStringToObject(o, "topicId", topic_id);
		cJSON_AddStringToObject(o, "memberId", q->member);
		cJSON_AddStringToObject(o, "sealedAt", sealed_at);
		rest_set(&q->a, 200, o);
		cJSON *pl = cJSON_CreateObject();
		cJSON_AddStringToObject(pl, "topicId", topic_id);
		cJSON_AddStringToObject(pl, "memberId", q->member);
		audit_event(q->w, q->key->mesh_id, "topic_key_sealed", q->key->member_id, NULL, pl);
	}
}

static int seal_request(struct worker *w, struct http_req *req, const struct apikey_row *key, const char *ref,
                        struct key_q *q)
{
	cJSON *body = cJSON_ParseWithLength(req->body ? req->body : "", req->body_len);
	const cJSON *mv = cJSON_GetObjectItemCaseSensitive(body, "memberId"),
	            *ev = cJSON_GetObjectItemCaseSensitive(body, "encryptedKey"),
	            *nv = cJSON_GetObjectItemCaseSensitive(body, "nonce");
	struct topickey_sealed s;
	int rc = -1;
	if (!cJSON_IsObject(body) || !cJSON_IsString(mv) || !mv->valuestring[0] || strlen(mv->valuestring) >= 64 ||
	    !cJSON_IsString(ev) || !cJSON_IsString(nv) || topickey_parse(ev->valuestring, nv->valuestring, &s) != 0) {
		rest_error(w, 400, "invalid_body");
		log_info("seal refused", "error", "invalid_body: memberId, encryptedKey (80 bytes b64), nonce (24)");
		goto out;
	}
	snprintf(q->member, sizeof q->member, "%s", mv->valuestring);
	char key_id[ID_LEN + 1];
	id_new(key_id);
	struct topic_seal ts = {key->mesh_id, ref, key->member_id, q->member, key_id, ev->valuestring, nv->valuestring};
	if (store_topic_seal(w->db, &ts, seal_cb, q) != 0) {
		rest_error(w, 503, "db_unavailable");
		goto out;
	}
	rc = 0;
out:
	cJSON_Delete(body);
	return rc;
}

/* ---- dispatch ---- */

/* "/v1/topics/<ref>/<what>": ref (checked) and what, or -1 */
static int topic_path(const char *p, char ref[REF_MAX + 1], const char **what)
{
	static const char prefix[] = "/v1/topics/";
	if (strncmp(p, prefix, sizeof prefix - 1) != 0)
		return -1;
	const char *r = p + sizeof prefix - 1, *slash = strchr(r, '/');
	size_t n = slash ? (size_t)(slash - r) : 0;
	if (!slash || n == 0 || n > REF_MAX)
		return -1;
	memcpy(ref, r, n);
	ref[n] = 0;
	*what = slash + 1;
	return 0;
}

static void topic_key_route(struct worker *w, struct http_req *req, const char *ref, const char *what)
{
	int post = strcmp(req->method, "POST") == 0;
	struct apikey_row key;
	if (apikey_authorize(w, req, post ? "send" : "read", &key) != 0)
		return;
	if (!key.member_id[0]) {
		apikey_deny(w, 404, REST_NO_MEMBER_ROUTE);
		return;
	}
	if (!topic_name_ok(ref)) {
		rest_error(w, 404, "topic_not_found");
		return;
	}
	if (rest_topic_scope(w, &key, ref) != 0)
		return;
	struct key_q q = {.w = w, .key = &key, .ref = ref};
	int r = -1;
	if (worker_db(w) != 0) {
		rest_error(w, 503, "db_unavailable");
		return;
	}
	if (!strcmp(what, "key"))
		r = store_topic_key(w->db, key.mesh_id, ref, key.member_id, key_cb, &q);
	else if (!strcmp(what, "pending-seals"))
		r = store_topic_pending(w->db, key.mesh_id, ref, key.member_id, TOPIC_PENDING_MAX, pending_cb, &q);
	else if (seal_request(w, req, &key, ref, &q) != 0)
		return; /* answered */
	else
		r = 0;
	if (r != 0) {
		rest_error(w, 503, "db_unavailable");
		return;
	}
	rest_finish(w, &q.a);
	if (w->db)
		db_drain_sync(w->db, REST_DB_TIMEOUT_MS); /* the audit row */
}

void topic_rest_route(struct worker *w, struct http_req *req)
{
	const char *m = req->method, *p = req->path, *what = NULL;
	char ref[REF_MAX + 1];
	if (!strcmp(p, "/v1/messages") && !strcmp(m, "POST")) {
		topic_post_message(w, req);
	} else if (!strcmp(p, "/v1/notifications") && !strcmp(m, "GET")) {
		topic_post_notifications(w, req);
	} else if (topic_path(p, ref, &what) == 0 &&
	           ((!strcmp(m, "GET") && (!strcmp(what, "key") || !strcmp(what, "pending-seals"))) ||
	            (!strcmp(m, "POST") && !strcmp(what, "seal")))) {
		topic_key_route(w, req, ref, what);
	} else {
		/* the key is checked first: an unauthenticated caller learns
		 * nothing, not even which routes exist */
		struct apikey_row key;
		if (apikey_authorize(w, req, NULL, &key) == 0)
			apikey_deny(w, 404, "not_found");
	}
}
