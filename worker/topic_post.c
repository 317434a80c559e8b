/* topic_post — REST posting and notifications (see topic_post.h).  A post
 * is stored exactly like a WebSocket topic send (db/store_topic.h), acked
 * only after its commit, and the recipients' workers are woken. */
#include "worker/topic_post.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "db/store_topic.h"
#include "proto/box.h"
#include "worker/apikey.h"
#include "worker/audit.h"
#include "worker/mention.h"
#include "worker/msg.h"
#include "worker/rest.h"
#include "worker/skel.h"
#include "worker/topic.h"
#include "worker/uds.h"
#include "worker/wake.h"

struct post_q {
	struct rest_answer a;
	struct worker *w;
	const struct apikey_row *key;
	char message_id[ID_LEN + 1];
	const char *priority;
};

static void post_cb(void *arg, enum store_topic_status st, const char *topic_id, const char *const *recipients, int n,
                    const char *err)
{
	struct post_q *q = arg;
	if (err) {
		log_warn("POST /v1/messages: not stored", "error", err);
		rest_set_error(&q->a, 503, "db_unavailable");
	} else if (st == TOPIC_NOT_FOUND) {
		rest_set_error(&q->a, 404, "topic_not_found");
	} else if (st != TOPIC_OK) {
		rest_set_error(&q->a, 403, "not_a_member");
	} else {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddBoolToObject(o, "ok", 1);
		cJSON_AddBoolToObject(o, "queued", 1);
		cJSON_AddStringToObject(o, "messageId", q->message_id);
		cJSON_AddStringToObject(o, "topicId", topic_id);
		rest_set(&q->a, 200, o);
		char spec[80];
		snprintf(spec, sizeof spec, "#%s", topic_id);
		cJSON *pl = cJSON_CreateObject();
		cJSON_AddStringToObject(pl, "messageId", q->message_id);
		cJSON_AddStringToObject(pl, "priority", q->priority);
		cJSON_AddStringToObject(pl, "targetSpec", spec);
		audit_event(q->w, q->key->mesh_id, "message_sent", q->key->member_id, NULL, pl);
		if (worker_shm(q->w) == 0) {
			uds_init(q->w);
			wake_members(q->w, q->key->mesh_id, recipients, n);
			uds_close_all(q->w);
		}
	}
}

/* the body's fields, checked as a WebSocket send's; NULL or the 400 error */
static const char *post_fields(const cJSON *b, const char **topic, const char **nonce, const char **ct, int *prio,
                               int *version)
{
	const cJSON *tv = cJSON_GetObjectItemCaseSensitive(b, "topic"),
	            *bv = cJSON_GetObjectItemCaseSensitive(b, "bodyVersion");
	const cJSON *pv = cJSON_GetObjectItemCaseSensitive(b, "priority");
	if (!cJSON_IsObject(b))
		return "invalid_body";
	*topic = cJSON_IsString(tv) ? tv->valuestring : NULL;
	*nonce = msg_str(b, "nonce");
	*ct = msg_str(b, "ciphertext");
	if (!*topic || !topic_name_ok(*topic[0] == '#' ? *topic + 1 : *topic))
		return "invalid_topic";
	if (**topic == '#')
		(*topic)++;
	if (!*nonce || !*ct || !**ct)
		return "invalid_body";
	*prio = pv && !cJSON_IsNull(pv) ? msg_priority_parse(cJSON_IsString(pv) ? pv->valuestring : NULL) : 1;
	if (*prio < 0)
		return "invalid_priority";
	*version = 1;
	if (bv && !cJSON_IsNull(bv)) {
		if (!cJSON_IsNumber(bv) || (bv->valuedouble != 1 && bv->valuedouble != 2))
			return "invalid_body_version";
		*version = (int)bv->valuedouble;
	}
	return NULL;
}

void topic_post_message(struct worker *w, struct http_req *req)
{
	struct apikey_row key;
	if (apikey_authorize(w, req, "send", &key) != 0)
		return;
	if (!key.member_id[0]) {
		apikey_deny(w, 404, REST_NO_MEMBER_ROUTE);
		return;
	}
	cJSON *b = cJSON_ParseWithLength(req->body ? req->body : "", req->body_len);
	const char *topic = NULL, *nonce = NULL, *ct = NULL;
	int prio = 1, version = 1, n = -1;
	char *names[MENTION_MAX];
	const char *bad = post_fields(b, &topic, &nonce, &ct, &prio, &version);
	if (bad) {
		rest_error(w, 400, bad);
		goto out;
	}
	if (rest_topic_scope(w, &key, topic) != 0)
		goto out;
	if (strlen(nonce) + strlen(ct) > (size_t)w->cfg.max_message_bytes) {
		rest_error(w, 413, "payload_too_large");
		goto out;
	}
	unsigned char *body = NULL;
	size_t blen = 0;
	const cJSON *mv = cJSON_GetObjectItemCaseSensitive(b, "mentions");
	if ((!mv || cJSON_IsNull(mv)) && version == 1 && box_b64_decode(ct, &body, &blen) != 0)
		body = NULL;
	n = mention_collect(mv, body, blen, names);
	free(body);
	if (n < 0) {
		rest_error(w, 400, "invalid_mentions");
		goto out;
	}
	char bucket[96];
	snprintf(bucket, sizeof bucket, "send:%s", key.member_id);
	if (worker_shm(w) != 0 || worker_db(w) != 0) {
		rest_error(w, 503, "db_unavailable");
		goto out;
	}
	if (!bucket_take(w->shm, bucket, w->cfg.send_rate_burst, w->cfg.send_rate_per_min, now_ms())) {
		rest_error(w, 429, "rate_limit");
		goto out;
	}
	struct post_q q = {.w = w, .key = &key, .priority = msg_priority_names[prio]};
	char ids[MENTION_MAX][ID_LEN + 1];
	const char *idp[MENTION_MAX];
	for (int i = 0; i < n; i++) {
		id_new(ids[i]);
		idp[i] = ids[i];
	}
	id_new(q.message_id);
	struct topic_post p = {q.message_id,
	                       key.mesh_id,
	                       key.member_id,
	                       topic,
	                       q.priority,
	                       nonce,
	                       ct,
	                       version,
	                       (const char *const *)names,
	                       n,
	                       idp};
	if (store_topic_post(w->db, &p, post_cb, &q) != 0) {
		rest_error(w, 503, "db_unavailable");
		goto out;
	}
	rest_finish(w, &q.a);
	db_drain_sync(w->db, REST_DB_TIMEOUT_MS); /* the audit row */
out:
	if (n > 0)
		mention_free(names, n);
	cJSON_Delete(b);
}

/* ---- GET /v1/notifications ---- */

static void notif_cb(void *arg, const struct notification_row *rows, int n, const char *err)
{
	struct rest_answer *a = arg;
	if (err) {
		log_warn("GET /v1/notifications failed", "error", err);
		rest_set_error(a, 503, "db_unavailable");
		return;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON *arr = cJSON_AddArrayToObject(o, "notifications");
	for (int i = 0; i < n; i++) {
		const struct notification_row *r = &rows[i];
		cJSON *x = cJSON_CreateObject();
		cJSON_AddStringToObject(x, "id", r->id);
		cJSON_AddStringToObject(x, "kind", r->kind);
		if (r->topic_id)
			cJSON_AddStringToObject(x, "topicId", r->topic_id);
		if (r->topic_name)
			cJSON_AddStringToObject(x, "topic", r->topic_name);
		if (r->message_id)
			cJSON_AddStringToObject(x, "messageId", r->message_id);
		if (r->sender_pubkey)
			cJSON_AddStringToObject(x, "senderPubkey", r->sender_pubkey);
		if (r->sender_name)
			cJSON_AddStringToObject(x, "senderDisplayName", r->sender_name);
		cJSON_AddStringToObject(x, "createdAt", r->created_at);
		cJSON_AddItemToArray(arr, x);
	}
	rest_set(a, 200, o);
}

void topic_post_notifications(struct worker *w, struct http_req *req)
{
	struct apikey_row key;
	if (apikey_authorize(w, req, "read", &key) != 0)
		return;
	if (!key.member_id[0]) {
		apikey_deny(w, 404, REST_NO_MEMBER_ROUTE);
		return;
	}
	struct rest_answer a = {0};
	if (worker_db(w) != 0 || store_notifications(w->db, key.member_id, NOTIFICATIONS_MAX, notif_cb, &a) != 0) {
		rest_error(w, 503, "db_unavailable");
		return;
	}
	rest_finish(w, &a);
}
