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
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(msg, "_reqId");
	if (!r)
		r = cJSON_GetObjectItemCaseSensitive(msg, "id");
	if (cJSON_IsString(r)) {
		if (strlen(r->valuestring) > TOPIC_REQID_MAX) {
			ws_send_error(w, "malformed", "_reqId is longer than 128 characters", NULL);
			free(tr);
			return NULL;
		}
		snprintf(tr->req_id, sizeof tr->req_id, "%s", r->valuestring);
		tr->has_req_id = 1;
	} else if (cJSON_IsNumber(r)) {
		snprintf(tr->req_id, sizeof tr->req_id, "%.17g", r->valuedouble);
		tr->has_req_id = 1;
	}
	return tr;
}

int topicreq_topic(struct topic_req *tr, const cJSON *msg)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(msg, "topic");
	if (!cJSON_IsString(t) || !t->valuestring[0] || strlen(t->valuestring) > TOPIC_REF_MAX) {
		topicreq_malformed(tr, "topic must be a topic id or name (1-128 bytes)");
		return -1;
	}
	snprintf(tr->topic, sizeof tr->topic, "%s", t->valuestring);
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
