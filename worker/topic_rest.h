/* topic_rest — the topic routes of the REST API (docs/protocol.md §5.3,
 * §12.6), rows of worker/route_table.c: GET /v1/topics/:name/key, GET
 * …/pending-seals, POST …/seal.  The table checked the key, its capability,
 * its issuing member and its topic scope; these look at state. */
#ifndef WORKER_TOPIC_REST_H
#define WORKER_TOPIC_REST_H

#include "worker/route.h"

void topic_rest_key(struct worker *w, struct http_req *req, struct route_ctx *c);
void topic_rest_pending(struct worker *w, struct http_req *req, struct route_ctx *c);
void topic_rest_seal(struct worker *w, struct http_req *req, struct route_ctx *c);

#endif
