/* routes — one HTTP request to its route (docs/protocol.md §1): /health,
 * /metrics, /hook/set-status, the /ws upgrade, OPTIONS and 404. */
#ifndef WORKER_ROUTES_H
#define WORKER_ROUTES_H

#include "worker/http.h"
#include "worker/worker.h"

void route_request(struct worker *w, struct http_req *req);

#endif
