/* topic — topic requests (see topic.h).  Each handler checks its fields,
 * queues one statement of db/store_topic.h and answers from its callback. */
#include "worker/topic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "db/store_topic.h"
#include "shm/shm.h"
#include "worker/audit.h"
#include "worker/msg.h"
#include "worker/topic_key.h"
#include "worker/topicreq.h"

static void db_failed(struct topic_req *tr, const char *what, const char *err)
{
	log_warn("topic request failed", "request", what, "error", err);
	topicreq_error(tr, PEER_ERR_TOPIC_DB);
}

/* the member's topic requests that write (create, join, leave, mark read,
 * add and remove members) share one token bucket, as sends do theirs */
static int rate_ok(struct topic_req *tr)
{
	struct worker *w = tr->w;
	char key[96];
	snprintf(key, sizeof key, "topic:%s", w->me.member_id);
	if (bucket_take(w->shm, key, w->cfg.topic_rate_burst, w->cfg.topic_rate_per_min, now_ms()))
		return 1;
	topicreq_error(tr, PEER_ERR_TOPIC_RATE_LIMIT);
	return 0;
}

/* ---- topic_create ---- */

struct create_ctx {
	struct topic_req *tr;
	enum topic_key_source source;
};

static void create_cb(void *arg, const struct topic_row *rows, int n, const char *err)
{
	struct create_ctx *cc = arg;
	struct topic_req *tr = cc->tr;
	struct worker *w = tr->w;
	if (err) {
		db_failed(tr, "topic_create", err);
	} else if (n == 0) {
		/* a concurrent create of the same name committed meanwhile */
		topicreq_error(tr, PEER_ERR_TOPIC_DB);
	} else if (rows[0].st != TOPIC_OK) {
		topicreq_error(tr, topic_status_error(rows[0].st));
	} else {
		cJSON *o = topicreq_reply("topic_created");
		cJSON *t = cJSON_AddObjectToObject(o, "topic");
		cJSON_AddStringToObject(t, "id", rows[0].id);
		cJSON_AddStringToObject(t, "name", rows[0].name);
		cJSON_AddStringToObject(t, "visibility", rows[0].visibility);
		cJSON_AddBoolToObject(o, "created", rows[0].created);
		topicreq_send(tr, o);
		if (rows[0].created) {
			static const char *const sources[] = {"none", "client", "broker"};
			cJSON *pl = cJSON_CreateObject();
			cJSON_AddStringToObject(pl, "topicId", rows[0].id);
			cJSON_AddStringToObject(pl, "name", rows[0].name);
			cJSON_AddStringToObject(pl, "visibility", rows[0].visibility);
			cJSON_AddStringToObject(pl, "keySealedBy", sources[cc->source]);
			audit_event(w, w->me.mesh_id, "topic_created", w->me.member_id, w->me.display_name, pl);
		}
	}
	free(tr);
	free(cc);
}

void topic_on_create(struct worker *w, const cJSON *msg)
{
	struct topic_req *tr = topicreq_new(w, msg);
	if (!tr)
		return;
	const char *name, *description, *visibility;
	const char *bad = msgcheck_topic_create(msg, &name, &description, &visibility);
	if (bad) {
		topicreq_malformed(tr, bad);
		free(tr);
		return;
	}
	snprintf(tr->topic, sizeof tr->topic, "%s", name);
	if (!rate_ok(tr)) {
		free(tr);
		return;
	}
	struct topic_copy copy;
	if (topic_key_creator_copy(tr, msg, w->me.pubkey, &copy) != 0) {
		free(tr);
		return;
	}
	struct create_ctx *cc = calloc(1, sizeof *cc);
	if (!cc)
		log_fatal("out of memory");
	cc->tr = tr;
	cc->source = copy.source;
	char topic_id[ID_LEN + 1], key_id[ID_LEN + 1];
	id_new(topic_id);
	id_new(key_id);
	struct topic_new t = {topic_id,
	                      w->me.mesh_id,
	                      name,
	                      description,
	                      visibility ? visibility : "public",
	                      w->me.member_id,
	                      copy.pubkey_hex,
	                      copy.encrypted_key ? key_id : NULL,
	                      copy.encrypted_key,
	                      copy.nonce,
	                      w->cfg.max_topics_per_mesh};
	int queued = 0;
	if (topicreq_db(tr)) {
		queued = store_topic_create(w->db, &t, create_cb, cc) == 0;
		if (!queued)
			topicreq_error(tr, PEER_ERR_TOPIC_DB);
	}
	if (!queued) {
		free(tr);
		free(cc);
	}
	topic_key_copy_free(&copy);
}

/* ---- topic_list: paged by name (cursor = the last name of a page) ---- */

struct list_ctx {
	struct topic_req *tr;
	int limit;
};

static void list_cb(void *arg, const struct topic_row *rows, int n, const char *err)
{
	struct list_ctx *lc = arg;
	struct topic_req *tr = lc->tr;
	if (err) {
		db_failed(tr, "topic_list", err);
	} else {
		cJSON *o = topicreq_reply("topic_list_response");
		cJSON *arr = cJSON_AddArrayToObject(o, "topics");
		int shown = n > lc->limit ? lc->limit : n;
		for (int i = 0; i < shown; i++) {
			cJSON *t = cJSON_CreateObject();
			cJSON_AddStringToObject(t, "id", rows[i].id);
			cJSON_AddStringToObject(t, "name", rows[i].name);
			if (rows[i].description)
				cJSON_AddStringToObject(t, "description", rows[i].description);
			else
				cJSON_AddNullToObject(t, "description");
			cJSON_AddStringToObject(t, "visibility", rows[i].visibility);
			cJSON_AddNumberToObject(t, "memberCount", (double)rows[i].member_count);
			cJSON_AddStringToObject(t, "createdAt", rows[i].created_at);
			cJSON_AddItemToArray(arr, t);
		}
		/* more after this page: the cursor to ask for it; else null */
		if (n > lc->limit)
			cJSON_AddStringToObject(o, "nextCursor", rows[shown - 1].name);
		else
			cJSON_AddNullToObject(o, "nextCursor");
		topicreq_send(tr, o);
	}
	free(tr);
	free(lc);
}

void topic_on_list(struct worker *w, const cJSON *msg)
{
	struct topic_req *tr = topicreq_new(w, msg);
	if (!tr)
		return;
	const char *cursor, *bad;
	int limit;
	if ((bad = topicreq_list_args(msg, &cursor, &limit)) != NULL) {
		topicreq_malformed(tr, bad);
		free(tr);
		return;
	}
	struct list_ctx *lc = calloc(1, sizeof *lc);
	if (!lc)
		log_fatal("out of memory");
	lc->tr = tr;
	lc->limit = limit;
	if (topicreq_db(tr)) {
		if (store_topic_list(w->db, w->me.mesh_id, w->me.member_id, cursor, limit, list_cb, lc) == 0)
			return;
		topicreq_error(tr, PEER_ERR_TOPIC_DB);
	}
	free(tr);
	free(lc);
}

/* ---- join, leave, mark read: no reply on success ---- */

static void quiet_cb(void *arg, const char *topic_id, const char *err)
{
	struct topic_req *tr = arg;
	if (err)
		db_failed(tr, "topic membership", err);
	else if (!topic_id)
		topicreq_error(tr, PEER_ERR_TOPIC_NOT_FOUND);
	free(tr);
}

enum quiet_op { Q_JOIN, Q_LEAVE, Q_READ };

static void quiet_request(struct worker *w, const cJSON *msg, enum quiet_op op)
{
	struct topic_req *tr = topicreq_new(w, msg);
	if (!tr)
		return;
	const char *role = NULL, *bad;
	if (topicreq_topic(tr, msg) != 0)
		goto done;
	if (op == Q_JOIN && (bad = msgcheck_topic_join(msg, &role)) != NULL) {
		topicreq_malformed(tr, bad);
		goto done;
	}
	/* a role is granted by a lead (topic_add_member), never taken: a join
	 * is as a member or, when asked, an observer */
	if (op == Q_JOIN && role && strcmp(role, "lead") == 0) {
		topicreq_error(tr, PEER_ERR_ROLE_NOT_GRANTED);
		goto done;
	}
	if (!rate_ok(tr) || !topicreq_db(tr))
		goto done;
	int r = op == Q_JOIN    ? store_topic_join(w->db, w->me.mesh_id, tr->topic, w->me.member_id,
                                                role ? role : "member", quiet_cb, tr)
	        : op == Q_LEAVE ? store_topic_leave(w->db, w->me.mesh_id, tr->topic, w->me.member_id, quiet_cb, tr)
	                        : store_topic_mark_read(w->db, w->me.mesh_id, tr->topic, w->me.member_id, quiet_cb, tr);
	if (r == 0)
		return;
	topicreq_error(tr, PEER_ERR_TOPIC_DB);
done:
	free(tr);
}

void topic_on_join(struct worker *w, const cJSON *msg)
{
	quiet_request(w, msg, Q_JOIN);
}
void topic_on_leave(struct worker *w, const cJSON *msg)
{
	quiet_request(w, msg, Q_LEAVE);
}
void topic_on_mark_read(struct worker *w, const cJSON *msg)
{
	quiet_request(w, msg, Q_READ);
}

/* ---- topic_members ---- */

static void members_cb(void *arg, enum store_topic_status st, const char *topic_id,
                       const struct topic_member_row *rows, int n, const char *err)
{
	struct topic_req *tr = arg;
	if (err) {
		db_failed(tr, "topic_members", err);
	} else if (st != TOPIC_OK) {
		topicreq_error(tr, topic_status_error(st));
	} else {
		cJSON *o = topicreq_reply("topic_members_response");
		cJSON_AddStringToObject(o, "topic", topic_id);
		cJSON *arr = cJSON_AddArrayToObject(o, "members");
		for (int i = 0; i < n; i++) {
			cJSON *m = cJSON_CreateObject();
			cJSON_AddStringToObject(m, "memberId", rows[i].member_id);
			cJSON_AddStringToObject(m, "pubkey", rows[i].pubkey);
			cJSON_AddStringToObject(m, "displayName", rows[i].display_name);
			cJSON_AddStringToObject(m, "role", rows[i].role);
			cJSON_AddStringToObject(m, "joinedAt", rows[i].joined_at);
			if (rows[i].last_read_at)
				cJSON_AddStringToObject(m, "lastReadAt", rows[i].last_read_at);
			else
				cJSON_AddNullToObject(m, "lastReadAt");
			cJSON_AddItemToArray(arr, m);
		}
		topicreq_send(tr, o);
	}
	free(tr);
}

void topic_on_members(struct worker *w, const cJSON *msg)
{
	struct topic_req *tr = topicreq_new(w, msg);
	if (!tr)
		return;
	if (topicreq_topic(tr, msg) == 0 && topicreq_db(tr)) {
		if (store_topic_members(w->db, w->me.mesh_id, tr->topic, w->me.member_id, members_cb, tr) == 0)
			return;
		topicreq_error(tr, PEER_ERR_TOPIC_DB);
	}
	free(tr);
}

/* ---- topic_history ---- */

static void history_cb(void *arg, enum store_topic_status st, const char *topic_id,
                       const struct topic_message_row *rows, int n, const char *err)
{
	struct topic_req *tr = arg;
	if (err) {
		db_failed(tr, "topic_history", err);
	} else if (st == TOPIC_NOT_FOUND) {
		topicreq_error(tr, PEER_ERR_TOPIC_NOT_FOUND);
	} else if (st == TOPIC_NOT_MEMBER) {
		topicreq_error(tr, PEER_ERR_NOT_A_MEMBER);
	} else {
		cJSON *o = topicreq_reply("topic_history_response");
		cJSON_AddStringToObject(o, "topic", topic_id);
		cJSON *arr = cJSON_AddArrayToObject(o, "messages");
		for (int i = 0; i < n; i++) {
			cJSON *m = cJSON_CreateObject();
			cJSON_AddStringToObject(m, "id", rows[i].id);
			cJSON_AddStringToObject(m, "senderPubkey", rows[i].sender_pubkey);
			cJSON_AddStringToObject(m, "nonce", rows[i].nonce);
			cJSON_AddStringToObject(m, "ciphertext", rows[i].ciphertext);
			cJSON_AddStringToObject(m, "createdAt", rows[i].created_at);
			cJSON_AddNumberToObject(m, "bodyVersion", rows[i].body_version);
			if (rows[i].key_epoch)
				cJSON_AddNumberToObject(m, "keyEpoch", rows[i].key_epoch);
			else
				cJSON_AddNullToObject(m, "keyEpoch");
			cJSON_AddItemToArray(arr, m);
		}
		topicreq_send(tr, o);
	}
	free(tr);
}

void topic_on_history(struct worker *w, const cJSON *msg)
{
	struct topic_req *tr = topicreq_new(w, msg);
	if (!tr)
		return;
	int limit;
	const char *before, *bad;
	if (topicreq_topic(tr, msg) != 0)
		goto done;
	if ((bad = msgcheck_topic_history(msg, &limit, &before)) != NULL) {
		topicreq_malformed(tr, bad);
		goto done;
	}
	if (!topicreq_db(tr))
		goto done;
	if (store_topic_history(w->db, w->me.mesh_id, tr->topic, w->me.member_id, limit, before, history_cb, tr) == 0)
		return;
	topicreq_error(tr, PEER_ERR_TOPIC_DB);
done:
	free(tr);
}

/* ---- topic_add_member / topic_remove_member: a lead's ---- */

static void member_change_cb(void *arg, enum store_topic_status st, const char *topic_id, const char *member_id,
                             const char *role, int epoch, const char *err)
{
	struct topic_req *tr = arg;
	struct worker *w = tr->w;
	int remove = tr->extra[0] == 'r';
	if (err) {
		db_failed(tr, remove ? "topic_remove_member" : "topic_add_member", err);
	} else if (st != TOPIC_OK) {
		topicreq_error(tr, topic_status_error(st));
	} else {
		cJSON *o = topicreq_reply(remove ? "topic_member_removed" : "topic_member_added");
		cJSON_AddStringToObject(o, "topic", tr->topic);
		cJSON_AddStringToObject(o, "topicId", topic_id);
		cJSON_AddStringToObject(o, "memberId", member_id);
		cJSON_AddStringToObject(o, "role", role);
		cJSON_AddNumberToObject(o, "keyEpoch", epoch);
		topicreq_send(tr, o);
		cJSON *pl = cJSON_CreateObject();
		cJSON_AddStringToObject(pl, "topicId", topic_id);
		cJSON_AddStringToObject(pl, "memberId", member_id);
		cJSON_AddStringToObject(pl, "role", role);
		cJSON_AddNumberToObject(pl, "keyEpoch", epoch);
		audit_event(w, w->me.mesh_id, remove ? "topic_member_removed" : "topic_member_added", w->me.member_id,
		            w->me.display_name, pl);
	}
	free(tr);
}

static void member_change(struct worker *w, const cJSON *msg, int remove)
{
	struct topic_req *tr = topicreq_new(w, msg);
	if (!tr)
		return;
	const char *who, *role, *bad;
	if (topicreq_topic(tr, msg) != 0)
		goto done;
	if ((bad = topicreq_member_args(msg, remove, &who, &role)) != NULL) {
		topicreq_malformed(tr, bad);
		goto done;
	}
	tr->extra[0] = remove ? 'r' : 'a';
	if (!rate_ok(tr) || !topicreq_db(tr))
		goto done;
	struct topic_member_change c = {w->me.mesh_id, tr->topic, w->me.member_id, who, role, remove};
	if (store_topic_member_change(w->db, &c, member_change_cb, tr) == 0)
		return;
	topicreq_error(tr, PEER_ERR_TOPIC_DB);
done:
	free(tr);
}

void topic_on_add_member(struct worker *w, const cJSON *msg)
{
	member_change(w, msg, 0);
}

void topic_on_remove_member(struct worker *w, const cJSON *msg)
{
	member_change(w, msg, 1);
}
