/* topicreq — request ids, replies and field checks of the topic requests. */
#include "worker/topicreq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "worker/skel.h"
#include "worker/ws.h"

struct topic_req *topicreq_new(struct worker *w, const cJSON *msg)
{
	struct topic_req *tr = calloc(1, sizeof *tr);
	if (!tr)
		log_fatal("out of memory");
	tr->w = w;
	if (msgcheck_topic_reqid(msg, tr->req_id, &tr->has_req_id) != 0) {
		ws_send_error(w, "malformed", "_reqId is longer than 128 characters", NULL);
		free(tr);
		return NULL;
	}
	return tr;
}

int topicreq_topic(struct topic_req *tr, const cJSON *msg)
{
	const char *topic, *bad = msgcheck_topic_ref(msg, &topic);
	if (bad) {
		topicreq_malformed(tr, bad);
		return -1;
	}
	snprintf(tr->topic, sizeof tr->topic, "%s", topic);
	return 0;
}

void topicreq_error(struct topic_req *tr, enum peer_error e)
{
	ws_send_peer_error(tr->w, e, tr->has_req_id ? tr->req_id : NULL);
}

void topicreq_malformed(struct topic_req *tr, const char *message)
{
	ws_send_error(tr->w, "malformed", message, tr->has_req_id ? tr->req_id : NULL);
}

cJSON *topicreq_reply(const char *type)
{
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddStringToObject(o, "type", type))
		log_fatal("out of memory");
	return o;
}

void topicreq_send(struct topic_req *tr, cJSON *o)
{
	if (tr->has_req_id)
		cJSON_AddStringToObject(o, "_reqId", tr->req_id);
	ws_send_json(tr->w, o);
	cJSON_Delete(o);
}

int topicreq_db(struct topic_req *tr)
{
	if (worker_db(tr->w) == 0)
		return 1;
	topicreq_error(tr, PEER_ERR_TOPIC_DB);
	return 0;
}

/* ---- the fields of the issue 22 requests ---- */

/* an optional non-empty string of at most max bytes: *out NULL when absent, *bad set when wrong */
static void opt_str(const cJSON *msg, const char *name, size_t max, const char **out, int *bad)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(msg, name);
	*out = NULL;
	if (!v || cJSON_IsNull(v))
		return;
	if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) > max)
		*bad = 1;
	else
		*out = v->valuestring;
}

const char *topicreq_list_args(const cJSON *msg, const char **cursor, int *limit)
{
	int bad = 0;
	opt_str(msg, "cursor", TOPIC_NAME_MAX, cursor, &bad);
	if (bad)
		return "cursor must be the nextCursor of the page before";
	const cJSON *lv = cJSON_GetObjectItemCaseSensitive(msg, "limit");
	*limit = TOPIC_LIST_DEFAULT;
	if (lv && !cJSON_IsNull(lv)) {
		if (!cJSON_IsNumber(lv) || !(lv->valuedouble >= 1 && lv->valuedouble <= TOPIC_LIST_MAX))
			return "limit must be a number from 1 to 500";
		*limit = (int)lv->valuedouble;
	}
	return NULL;
}

const char *topicreq_member_args(const cJSON *msg, int remove, const char **who, const char **role)
{
	static const char *const fields[] = {"memberId", "pubkey", "name"};
	int bad = 0;
	*who = NULL;
	*role = "member";
	for (size_t i = 0; i < (remove ? 1 : sizeof fields / sizeof fields[0]); i++) {
		const char *v;
		opt_str(msg, fields[i], TOPIC_REF_MAX, &v, &bad);
		if (bad || (v && *who))
			return remove ? "memberId must be a member id"
			              : "name the member by one of memberId, pubkey or name (a string)";
		if (v)
			*who = v;
	}
	if (!*who)
		return remove ? "memberId must be a member id" : "name the member by one of memberId, pubkey or name";
	if (remove)
		return NULL;
	const char *r;
	opt_str(msg, "role", 16, &r, &bad);
	if (bad || (r && strcmp(r, "lead") && strcmp(r, "member") && strcmp(r, "observer")))
		return "role must be lead, member or observer";
	if (r)
		*role = r;
	return NULL;
}

const char *topicreq_discard_args(const cJSON *msg, const char **member)
{
	int bad = 0;
	opt_str(msg, "memberId", TOPIC_MEMBER_ID_MAX, member, &bad);
	return bad ? "memberId must be a member id" : NULL;
}

/* the store's answers that are refusals, as error frames */
static const enum peer_error status_errors[TOPIC_STATUS_COUNT] = {
    [TOPIC_NOT_FOUND] = PEER_ERR_TOPIC_NOT_FOUND,         [TOPIC_NOT_MEMBER] = PEER_ERR_NOT_A_MEMBER,
    [TOPIC_UNENCRYPTED] = PEER_ERR_TOPIC_UNENCRYPTED,     [TOPIC_NOT_SEALED] = PEER_ERR_KEY_NOT_SEALED,
    [TOPIC_NO_RECIPIENT] = PEER_ERR_RECIPIENT_NOT_IN_TOPIC, [TOPIC_ALREADY_SEALED] = PEER_ERR_ALREADY_SEALED,
    [TOPIC_NOT_LEAD] = PEER_ERR_NOT_A_LEAD,               [TOPIC_NO_SUCH_MEMBER] = PEER_ERR_NO_SUCH_MEMBER,
    [TOPIC_NOT_KEY_HOLDER] = PEER_ERR_NOT_A_KEY_HOLDER,   [TOPIC_NAME_TAKEN] = PEER_ERR_TOPIC_NAME_TAKEN,
    [TOPIC_LIMIT] = PEER_ERR_TOPIC_LIMIT,
};

enum peer_error topic_status_error(enum store_topic_status st)
{
	return st > TOPIC_OK && st < TOPIC_STATUS_COUNT ? status_errors[st] : PEER_ERR_TOPIC_DB;
}
