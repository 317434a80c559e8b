/* topic — the topic requests of docs/protocol.md §5.2 (rows of phase.c's
 * table, after hello): create, list, join, leave, mark read, members and
 * history.  Every reply echoes `_reqId`; every error carries it as `id`.
 * `topic` is an id or a name; history is for topic members only. */
#ifndef WORKER_TOPIC_H
#define WORKER_TOPIC_H

#include <cjson/cJSON.h>

#include "worker/worker.h"

#define TOPIC_NAME_MAX        64
#define TOPIC_DESCRIPTION_MAX 1024
#define TOPIC_HISTORY_DEFAULT 50
#define TOPIC_HISTORY_MAX     200

void topic_on_create(struct worker *w, const cJSON *msg);
void topic_on_list(struct worker *w, const cJSON *msg);
void topic_on_join(struct worker *w, const cJSON *msg);
void topic_on_leave(struct worker *w, const cJSON *msg);
void topic_on_mark_read(struct worker *w, const cJSON *msg);
void topic_on_members(struct worker *w, const cJSON *msg);
void topic_on_history(struct worker *w, const cJSON *msg);

/* 1 when s is a valid topic name: 1-64 bytes of [A-Za-z0-9._-] */
int topic_name_ok(const char *s);

#endif
