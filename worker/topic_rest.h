/* topic_rest — the REST API of docs/protocol.md §5.3 behind a Bearer API key
 * (worker/apikey.h): GET /v1/topics/:name/key, GET …/pending-seals, POST
 * …/seal, POST /v1/messages and GET /v1/notifications.  Anything else under
 * /v1/ is 404 not_found, after the key check. */
#ifndef WORKER_TOPIC_REST_H
#define WORKER_TOPIC_REST_H

#include "worker/http.h"
#include "worker/worker.h"

void topic_rest_route(struct worker *w, struct http_req *req);

#endif
