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
