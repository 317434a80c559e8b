/* topic_rest — the topic routes of §5.3 and §12.6 (see topic_rest.h).  The
 * caller is the key's issuing member (the table let no mesh-wide key
 * through).  Status codes: 404
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
#include "worker/audit.h"
#include "worker/rest.h"
#include "worker/skel.h"
#include "worker/topic.h"
#include "worker/topic_key.h"

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
	} else if (st == TOPIC_NOT_MEMBER) {
		rest_set_error(&q->a, 403, "not_a_member");
	} else {
		cJSON *o = cJSON_CreateObject();
		topic_key_fill(o, k);
		rest_set(&q->a, 200, o);
	}
}

/* ---- GET /v1/topics/:name/pending-seals ---- */

static void pending_cb(void *arg, enum store_topic_status st, const char *topic_id, const char *name,
                       const char *sender_pubkey, int epoch, const struct topic_pending_row *rows, int n,
                       const char *err)
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
		topic_key_pending_fill(o, name, topic_id, sender_pubkey, epoch, rows, n);
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
	    [TOPIC_NOT_KEY_HOLDER] = {403, "not_a_key_holder"},
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

/* ---- the handlers (the table checked key, capability, member and scope) ---- */

/* run the statement queued by start (0) and answer; the audit row too */
static void key_finish(struct worker *w, struct key_q *q, int queued)
{
	if (queued != 0) {
		rest_error(w, 503, "db_unavailable");
		return;
	}
	rest_finish(w, &q->a);
	if (w->db)
		db_drain_sync(w->db, REST_DB_TIMEOUT_MS); /* the audit row */
}

void topic_rest_key(struct worker *w, struct http_req *req, struct route_ctx *c)
{
	(void)req;
	struct key_q q = {.w = w, .key = &c->key, .ref = c->topic};
	key_finish(w, &q,
		   worker_db(w) != 0 ? -1 : store_topic_key(w->db, c->key.mesh_id, c->topic, c->key.member_id, key_cb, &q));
}

void topic_rest_pending(struct worker *w, struct http_req *req, struct route_ctx *c)
{
	(void)req;
	struct key_q q = {.w = w, .key = &c->key, .ref = c->topic};
	key_finish(w, &q,
		   worker_db(w) != 0 ? -1
				     : store_topic_pending(w->db, c->key.mesh_id, c->topic, c->key.member_id,
							   TOPIC_PENDING_MAX, pending_cb, &q));
}

void topic_rest_seal(struct worker *w, struct http_req *req, struct route_ctx *c)
{
	(void)req;
	struct key_q q = {.w = w, .key = &c->key, .ref = c->topic};
	snprintf(q.member, sizeof q.member, "%s", c->args.member);
	char key_id[ID_LEN + 1];
	id_new(key_id);
	struct topic_seal ts = {c->key.mesh_id, c->topic,          c->key.member_id, q.member,
				key_id,         c->args.enc, c->args.key_nonce};
	key_finish(w, &q, worker_db(w) != 0 ? -1 : store_topic_seal(w->db, &ts, seal_cb, &q));
}

/* ---- GET /v1/topics/:name/messages (§12.6) ---- */

cJSON *topic_rest_entry(const struct topic_page_row *r)
{
	cJSON *x = cJSON_CreateObject();
	cJSON_AddStringToObject(x, "id", r->id);
	cJSON_AddStringToObject(x, "senderMemberId", r->sender_member_id);
	cJSON_AddStringToObject(x, "senderPubkey", r->sender_pubkey ? r->sender_pubkey : "");
	cJSON_AddStringToObject(x, "senderName", r->sender_name ? r->sender_name : "");
	cJSON_AddStringToObject(x, "nonce", r->nonce);
	cJSON_AddStringToObject(x, "ciphertext", r->ciphertext);
	cJSON_AddNumberToObject(x, "bodyVersion", r->body_version);
	if (r->key_epoch)
		cJSON_AddNumberToObject(x, "keyEpoch", r->key_epoch);
	else
		cJSON_AddNullToObject(x, "keyEpoch");
	if (r->reply_to)
		cJSON_AddStringToObject(x, "replyToId", r->reply_to);
	else
		cJSON_AddNullToObject(x, "replyToId");
	cJSON_AddStringToObject(x, "createdAt", r->created_at);
	return x;
}

static void page_cb(void *arg, enum store_topic_status st, const char *topic_id, const char *name, int cursor_found,
		    const struct topic_page_row *rows, int n, const char *err)
{
	struct rest_answer *a = arg;
	(void)cursor_found;
	if (err) {
		log_warn("GET messages failed", "error", err);
		rest_set_error(a, 503, "db_unavailable");
	} else if (st == TOPIC_NOT_FOUND) {
		rest_set_error(a, 404, "topic_not_found");
	} else if (st != TOPIC_OK) {
		rest_set_error(a, 403, "not_a_member");
	} else {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "topic", name);
		cJSON_AddStringToObject(o, "topicId", topic_id);
		cJSON *arr = cJSON_AddArrayToObject(o, "messages");
		for (int i = 0; i < n; i++)
			cJSON_AddItemToArray(arr, topic_rest_entry(&rows[i]));
		rest_set(a, 200, o);
	}
}

void topic_rest_messages(struct worker *w, struct http_req *req, struct route_ctx *c)
{
	(void)req;
	struct rest_answer a = {0};
	struct topic_page_query q = {c->key.mesh_id, c->topic, c->key.member_id, c->args.limit, c->args.before, 0, 0};
	if (worker_db(w) != 0 || store_topic_page(w->db, &q, page_cb, &a) != 0) {
		rest_error(w, 503, "db_unavailable");
		return;
	}
	rest_finish(w, &a);
}

/* ---- PATCH /v1/topics/:name/read ---- */

static void read_cb(void *arg, enum store_topic_status st, const char *topic_id, const char *name, const char *read_at,
		    const char *err)
{
	struct rest_answer *a = arg;
	if (err) {
		log_warn("PATCH read failed", "error", err);
		rest_set_error(a, 503, "db_unavailable");
	} else if (st == TOPIC_NOT_FOUND) {
		rest_set_error(a, 404, "topic_not_found");
	} else if (st != TOPIC_OK) {
		rest_set_error(a, 403, "not_a_member");
	} else {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "topic", name);
		cJSON_AddStringToObject(o, "topicId", topic_id);
		cJSON_AddStringToObject(o, "readAt", read_at ? read_at : "");
		rest_set(a, 200, o);
	}
}

void topic_rest_read(struct worker *w, struct http_req *req, struct route_ctx *c)
{
	(void)req;
	struct rest_answer a = {0};
	/* the member's topic bucket, shared with its socket's topic_mark_read (issue 22) */
	char bucket[96];
	snprintf(bucket, sizeof bucket, "topic:%s", c->key.member_id);
	if (worker_shm(w) != 0) {
		rest_error(w, 503, "db_unavailable");
		return;
	}
	if (!bucket_take(w->shm, bucket, w->cfg.topic_rate_burst, w->cfg.topic_rate_per_min, now_ms())) {
		rest_error(w, 429, "rate_limit");
		return;
	}
	if (worker_db(w) != 0 || store_topic_read(w->db, c->key.mesh_id, c->topic, c->key.member_id, read_cb, &a) != 0) {
		rest_error(w, 503, "db_unavailable");
		return;
	}
	rest_finish(w, &a);
}

/* ---- GET /v1/topics, GET /v1/me/topics ---- */

struct listing_q {
	struct rest_answer a;
	int mine;
	const char *member_id;
};

static void listing_cb(void *arg, const struct topic_listing_row *rows, int n, const char *err)
{
	struct listing_q *q = arg;
	if (err) {
		log_warn("GET topics failed", "error", err);
		rest_set_error(&q->a, 503, "db_unavailable");
		return;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON *arr = cJSON_AddArrayToObject(o, "topics");
	long unread = 0;
	for (int i = 0; i < n; i++) {
		const struct topic_listing_row *r = &rows[i];
		cJSON *x = cJSON_CreateObject();
		cJSON_AddStringToObject(x, q->mine ? "topicId" : "id", r->id);
		cJSON_AddStringToObject(x, "name", r->name);
		if (r->description)
			cJSON_AddStringToObject(x, "description", r->description);
		else
			cJSON_AddNullToObject(x, "description");
		cJSON_AddStringToObject(x, "visibility", r->visibility);
		cJSON_AddStringToObject(x, "createdAt", r->created_at);
		if (q->mine) {
			cJSON_AddStringToObject(x, "meshId", r->mesh_id);
			cJSON_AddStringToObject(x, "meshSlug", r->mesh_slug);
			cJSON_AddStringToObject(x, "meshName", r->mesh_name);
			cJSON_AddStringToObject(x, "memberId", q->member_id);
		}
		cJSON_AddNumberToObject(x, "unread", (double)r->unread);
		if (q->mine) {
			if (r->last_message_at)
				cJSON_AddStringToObject(x, "lastMessageAt", r->last_message_at);
			else
				cJSON_AddNullToObject(x, "lastMessageAt");
		}
		unread += r->unread;
		cJSON_AddItemToArray(arr, x);
	}
	if (q->mine) {
		cJSON *t = cJSON_AddObjectToObject(o, "totals");
		cJSON_AddNumberToObject(t, "topics", n);
		cJSON_AddNumberToObject(t, "unread", (double)unread);
	}
	rest_set(&q->a, 200, o);
}

static void listing(struct worker *w, struct route_ctx *c, int mine)
{
	struct listing_q q = {.mine = mine, .member_id = c->key.member_id};
	/* the table's scope rule for a listing: the statement sees only the key's topics */
	const char *scopes[APIKEY_TOPICS_MAX];
	for (int i = 0; i < c->key.n_topics && i < APIKEY_TOPICS_MAX; i++)
		scopes[i] = c->key.topics[i];
	if (worker_db(w) != 0 || store_topic_listing(w->db, c->key.mesh_id, c->key.member_id, scopes, c->key.n_topics,
						     mine, listing_cb, &q) != 0) {
		rest_error(w, 503, "db_unavailable");
		return;
	}
	rest_finish(w, &q.a);
}

void topic_rest_topics(struct worker *w, struct http_req *req, struct route_ctx *c)
{
	(void)req;
	listing(w, c, 0);
}

void topic_rest_me_topics(struct worker *w, struct http_req *req, struct route_ctx *c)
{
	(void)req;
	listing(w, c, 1);
}
