/* rest — what the REST routes of docs/protocol.md §5.3 share: JSON answers
 * with the CORS headers of §1, and running the route's statement to
 * completion (a REST worker serves only its one request). */
#ifndef WORKER_REST_H
#define WORKER_REST_H

#include <cjson/cJSON.h>

#include "worker/worker.h"

#define REST_DB_TIMEOUT_MS 5000

/* the answer a route's callback leaves for rest_finish */
struct rest_answer {
	int status; /* 0: no answer yet */
	cJSON *body;
};
void rest_set(struct rest_answer *a, int status, cJSON *body /* consumed */);
void rest_set_error(struct rest_answer *a, int status, const char *error);
/* wait for the queued statement, then write the answer (503 db_unavailable
 * when the database never answered) */
void rest_finish(struct worker *w, struct rest_answer *a);
void rest_reply(struct worker *w, int status, cJSON *body /* consumed */);
/* the same without the CORS headers (POST /hook/set-status) */
void rest_reply_private(struct worker *w, int status, cJSON *body /* consumed */);
/* The one error body of the REST routes and of the route table's refusals:
 * {"error":E,"code":"error.<E>","status":N}, led by "ok":false when ok
 * (the compat shape of /hook/set-status and /join). */
cJSON *rest_error_body(int status, const char *error, int ok);
/* The key's topic scopes against the topic ref names (an id or a name),
 * both its id and its name counting: 0 allowed (also when there is no such
 * topic: the route answers that), else the status of the refusal with
 * *error (403 api_key_topic_out_of_scope, 503 db_unavailable).  Nothing is
 * answered. */
struct apikey_row;
int rest_topic_scope(struct worker *w, const struct apikey_row *key, const char *ref, const char **error);
void rest_error(struct worker *w, int status, const char *error);

#endif
