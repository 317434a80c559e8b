/* topic — the topic requests of docs/protocol.md §5.2 (rows of phase.c's
 * table, after hello): create, list, join, leave, mark read, members and
 * history.  Every reply echoes `_reqId`; every error carries it as `id`.
 * `topic` is an id or a name; history is for topic members only. */
#ifndef WORKER_TOPIC_H
#define WORKER_TOPIC_H

#include <cjson/cJSON.h>

#include "worker/msgcheck.h" /* topic_name_ok() and the limits */
#include "worker/worker.h"


void topic_on_create(struct worker *w, const cJSON *msg);
void topic_on_list(struct worker *w, const cJSON *msg);
void topic_on_join(struct worker *w, const cJSON *msg);
void topic_on_leave(struct worker *w, const cJSON *msg);
void topic_on_mark_read(struct worker *w, const cJSON *msg);
void topic_on_members(struct worker *w, const cJSON *msg);
void topic_on_history(struct worker *w, const cJSON *msg);
/* issue 22: a lead adds a member (or sets its role) and removes one (a new
 * key epoch) */
void topic_on_add_member(struct worker *w, const cJSON *msg);
void topic_on_remove_member(struct worker *w, const cJSON *msg);


#endif
