/* topic_rest — the topic routes of the REST API (docs/protocol.md §5.3,
 * §12.6), rows of worker/route_table.c: GET /v1/topics/:name/key, GET
 * …/pending-seals, POST …/seal, GET …/messages, PATCH …/read, GET
 * /v1/topics and /v1/me/topics.  The table checked the key, its capability,
 * its issuing member and its topic scope; these look at state. */
#ifndef WORKER_TOPIC_REST_H
#define WORKER_TOPIC_REST_H

#include "worker/route.h"

void topic_rest_key(struct worker *w, struct http_req *req, struct route_ctx *c);
void topic_rest_pending(struct worker *w, struct http_req *req, struct route_ctx *c);
void topic_rest_seal(struct worker *w, struct http_req *req, struct route_ctx *c);
void topic_rest_messages(struct worker *w, struct http_req *req, struct route_ctx *c);
void topic_rest_read(struct worker *w, struct http_req *req, struct route_ctx *c);
void topic_rest_topics(struct worker *w, struct http_req *req, struct route_ctx *c);
void topic_rest_me_topics(struct worker *w, struct http_req *req, struct route_ctx *c);

/* one history entry of §12.6 (GET …/messages, the stream's message events) */
struct topic_page_row;
cJSON *topic_rest_entry(const struct topic_page_row *r);

#endif
