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
#include "worker/audit.h"
#include "worker/mention.h"
#include "worker/msg.h"
#include "worker/rest.h"
#include "worker/skel.h"
#include "worker/uds.h"
#include "worker/wake.h"

struct post_q {
	struct rest_answer a;
	struct worker *w;
	const struct apikey_row *key;
	const struct rest_args *args;
	char message_id[ID_LEN + 1];
	const char *priority;
	int notified;
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
		/* the fields the CLI prints (§12.6); ok and queued as before */
		cJSON *o = cJSON_CreateObject();
		cJSON_AddBoolToObject(o, "ok", 1);
		cJSON_AddBoolToObject(o, "queued", 1);
		cJSON_AddStringToObject(o, "messageId", q->message_id);
		cJSON_AddStringToObject(o, "historyId", q->message_id);
		cJSON_AddStringToObject(o, "queueId", q->message_id);
		cJSON_AddStringToObject(o, "topic", q->args->topic);
		cJSON_AddStringToObject(o, "topicId", topic_id);
		cJSON_AddNumberToObject(o, "notifications", q->notified);
		cJSON_AddNumberToObject(o, "bodyVersion", q->args->version);
		if (q->args->reply_to)
			cJSON_AddStringToObject(o, "replyToId", q->args->reply_to);
		rest_set(&q->a, 200, o);
		char spec[80];
		snprintf(spec, sizeof spec, "#%s", topic_id);
		cJSON *pl = cJSON_CreateObject();
		cJSON_AddStringToObject(pl, "messageId", q->message_id);
		cJSON_AddStringToObject(pl, "priority", q->priority);
		cJSON_AddStringToObject(pl, "targetSpec", spec);
		audit_event(q->w, q->key->mesh_id, "message_sent", q->key->member_id, NULL, pl);
		if (worker_shm(q->w) == 0) {
			/* the recipients, and the poster's own streams (sse.h) */
			const char **ids = malloc(((size_t)n + 1) * sizeof *ids);
			if (!ids)
				log_fatal("out of memory");
			for (int i = 0; i < n; i++)
				ids[i] = recipients[i];
			ids[n] = q->key->member_id;
			uds_init(q->w);
			wake_members(q->w, q->key->mesh_id, ids, n + 1);
			uds_close_all(q->w);
			free(ids);
		}
	}
}

void topic_post_message(struct worker *w, struct http_req *req, struct route_ctx *c)
{
	(void)req;
	const struct rest_args *a = &c->args;
	char bucket[96];
	snprintf(bucket, sizeof bucket, "send:%s", c->key.member_id);
	if (worker_shm(w) != 0 || worker_db(w) != 0) {
		rest_error(w, 503, "db_unavailable");
		return;
	}
	if (!bucket_take(w->shm, bucket, w->cfg.send_rate_burst, w->cfg.send_rate_per_min, now_ms())) {
		rest_error(w, 429, "rate_limit");
		return;
	}
	struct post_q q = {.w = w, .key = &c->key, .args = a, .priority = msg_priority_names[a->prio]};
	char ids[MENTION_MAX][ID_LEN + 1];
	const char *idp[MENTION_MAX];
	for (int i = 0; i < a->n_names; i++) {
		id_new(ids[i]);
		idp[i] = ids[i];
	}
	id_new(q.message_id);
	/* the store path of a socket topic send (worker/send.c) */
	struct topic_post p = {q.message_id,
	                       c->key.mesh_id,
	                       c->key.member_id,
	                       a->topic,
	                       q.priority,
	                       a->nonce,
	                       a->ct,
	                       a->version,
	                       (const char *const *)a->names,
	                       a->n_names,
	                       idp};
	if (store_topic_post_counted(w->db, &p, a->reply_to, &q.notified, post_cb, &q) != 0) {
		rest_error(w, 503, "db_unavailable");
		return;
	}
	rest_finish(w, &q.a);
	db_drain_sync(w->db, REST_DB_TIMEOUT_MS); /* the audit row */
}

/* ---- GET /v1/notifications, GET /v1/me/notifications (§12.6) ---- */

#define DAY_MS (24LL * 3600 * 1000)
#define SNIPPET_CHARS 240

struct notif_q {
	struct rest_answer a;
	int me; /* the /me/ shape */
	int64_t since_ms;
	const char *since_text;
};

/* the first 240 characters of a v1 body (b64 plaintext), or NULL */
static cJSON *snippet(const char *ct)
{
	unsigned char *body = NULL;
	size_t len = 0;
	if (!ct || box_b64_decode(ct, &body, &len) != 0)
		return cJSON_CreateNull();
	if (!utf8_valid(body, len)) {
		free(body);
		return cJSON_CreateNull();
	}
	size_t end = 0;
	for (int chars = 0; end < len && chars < SNIPPET_CHARS; chars++) {
		end++;
		while (end < len && (body[end] & 0xC0) == 0x80)
			end++;
	}
	char *s = strndup((const char *)body, end);
	free(body);
	if (!s)
		log_fatal("out of memory");
	cJSON *v = cJSON_CreateString(s);
	free(s);
	return v;
}

static void add_str_or_null(cJSON *o, const char *k, const char *v)
{
	if (v)
		cJSON_AddStringToObject(o, k, v);
	else
		cJSON_AddNullToObject(o, k);
}

static void notif_cb(void *arg, const char *mentioned_as, const struct notification_row *rows, int n, const char *err)
{
	struct notif_q *q = arg;
	if (err) {
		log_warn("GET notifications failed", "error", err);
		rest_set_error(&q->a, 503, "db_unavailable");
		return;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON *arr = cJSON_AddArrayToObject(o, "notifications");
	int unread = 0;
	for (int i = 0; i < n; i++) {
		const struct notification_row *r = &rows[i];
		cJSON *x = cJSON_CreateObject();
		unread += r->read_at == NULL;
		if (q->me) {
			cJSON_AddStringToObject(x, "notificationId", r->id);
			add_str_or_null(x, "messageId", r->message_id);
			add_str_or_null(x, "topicId", r->topic_id);
			add_str_or_null(x, "topicName", r->topic_name);
			cJSON_AddStringToObject(x, "meshId", r->mesh_id);
			cJSON_AddStringToObject(x, "meshSlug", r->mesh_slug);
			cJSON_AddStringToObject(x, "meshName", r->mesh_name);
			add_str_or_null(x, "senderName", r->sender_name);
			cJSON_AddItemToObject(x, "snippet", r->body_version == 1 ? snippet(r->ciphertext) : cJSON_CreateNull());
			add_str_or_null(x, "ciphertext", r->body_version == 2 ? r->ciphertext : NULL);
			cJSON_AddNumberToObject(x, "bodyVersion", r->body_version);
			cJSON_AddBoolToObject(x, "read", r->read_at != NULL);
		} else {
			/* id is the message's (§12.6); messageId kept for older clients */
			add_str_or_null(x, "id", r->message_id);
			cJSON_AddStringToObject(x, "notificationId", r->id);
			add_str_or_null(x, "messageId", r->message_id);
			add_str_or_null(x, "topicId", r->topic_id);
			add_str_or_null(x, "topicName", r->topic_name);
			add_str_or_null(x, "senderName", r->sender_name);
			add_str_or_null(x, "senderPubkey", r->sender_pubkey);
			add_str_or_null(x, "ciphertext", r->ciphertext);
			cJSON_AddStringToObject(x, "kind", r->kind);
		}
		add_str_or_null(x, "readAt", r->read_at);
		cJSON_AddStringToObject(x, "createdAt", r->created_at);
		cJSON_AddItemToArray(arr, x);
	}
	if (q->me) {
		cJSON *t = cJSON_AddObjectToObject(o, "totals");
		cJSON_AddNumberToObject(t, "unread", unread);
		cJSON_AddNumberToObject(t, "total", n);
	} else {
		char since[32];
		iso8601_ms(q->since_ms, since);
		cJSON_AddStringToObject(o, "since", since);
		add_str_or_null(o, "mentionedAs", mentioned_as);
	}
	rest_set(&q->a, 200, o);
}

static void notifications(struct worker *w, struct route_ctx *c, int me)
{
	const struct rest_args *a = &c->args;
	struct notif_q q = {.me = me};
	q.since_ms = a->has_since ? a->since_ms : now_ms() - (me ? 7 : 1) * DAY_MS;
	/* the table's scope rule for a listing: the statement sees only the key's topics */
	const char *scopes[APIKEY_TOPICS_MAX];
	for (int i = 0; i < c->key.n_topics && i < APIKEY_TOPICS_MAX; i++)
		scopes[i] = c->key.topics[i];
	struct notification_query nq = {c->key.member_id, q.since_ms, me ? !a->include_all : a->unread_only,
					scopes,           c->key.n_topics, me ? NOTIFICATIONS_MAX : NOTIFICATIONS_V1_MAX};
	if (worker_db(w) != 0 || store_notifications(w->db, &nq, notif_cb, &q) != 0) {
		rest_error(w, 503, "db_unavailable");
		return;
	}
	rest_finish(w, &q.a);
}

void topic_post_notifications(struct worker *w, struct http_req *req, struct route_ctx *c)
{
	(void)req;
	notifications(w, c, 0);
}

void topic_post_me_notifications(struct worker *w, struct http_req *req, struct route_ctx *c)
{
	(void)req;
	notifications(w, c, 1);
}
