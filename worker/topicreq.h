/* topicreq — what every topic request of docs/protocol.md §5.2 shares: the
 * request context that outlives the handler (the connection and the
 * client's `_reqId`), replies that echo `_reqId`, errors that carry it as
 * `id`, and the checks of the fields every request has. */
#ifndef WORKER_TOPICREQ_H
#define WORKER_TOPICREQ_H

#include <cjson/cJSON.h>

#include "db/store_topic.h"
#include "proto/reasons.h"
#include "worker/msgcheck.h"
#include "worker/worker.h"


struct topic_req {
	struct worker *w;
	char req_id[TOPIC_REQID_MAX + 1]; /* "" when the request had none */
	int has_req_id;
	char topic[TOPIC_REF_MAX + 1];
	char extra[128]; /* per request: a member id, a topic name, ... */
};

/* A context for msg (its _reqId, or its id when it has no _reqId), or NULL
 * after answering malformed (an over-long _reqId).  Freed with free(). */
struct topic_req *topicreq_new(struct worker *w, const cJSON *msg);
/* msg's "topic" (an id or a name) into tr->topic; -1 after answering malformed */
int topicreq_topic(struct topic_req *tr, const cJSON *msg);
/* error frames with tr's id; free nothing */
void topicreq_error(struct topic_req *tr, enum peer_error e);
void topicreq_malformed(struct topic_req *tr, const char *message);
/* an object of type `type` to fill and send with topicreq_send (adds _reqId) */
cJSON *topicreq_reply(const char *type);
void topicreq_send(struct topic_req *tr, cJSON *o); /* o is consumed */
/* topic_list{cursor?, limit?}: cursor NULL or the last name of the page before,
 * limit 1..TOPIC_LIST_MAX (default TOPIC_LIST_DEFAULT); NULL or what is wrong */
#define TOPIC_LIST_DEFAULT 200
#define TOPIC_LIST_MAX     500
const char *topicreq_list_args(const cJSON *msg, const char **cursor, int *limit);
/* topic_add_member{topic, memberId|pubkey|name, role?} (role member (default),
 * observer or lead) and topic_remove_member{topic, memberId}: who and role */
const char *topicreq_member_args(const cJSON *msg, int remove, const char **who, const char **role);
/* topic_key_discard{topic, memberId?}: the member whose copy goes (NULL: the caller's) */
const char *topicreq_discard_args(const cJSON *msg, const char **member);
/* a store status (issue 22: every refusal of a topic statement) as the
 * error frame that says it */
enum peer_error topic_status_error(enum store_topic_status st);
/* 1 when the database handle could be had (else answered internal) */
int topicreq_db(struct topic_req *tr);

#endif
