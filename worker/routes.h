/* routes — the plain HTTP routes of docs/protocol.md §1: /health,
 * /metrics, the /ws upgrade, OPTIONS, /join's entry and the two 404s; rows
 * of worker/route_table.c. */
#ifndef WORKER_ROUTES_H
#define WORKER_ROUTES_H

#include "worker/route.h"

void route_options(struct worker *w, struct http_req *req, struct route_ctx *c);
void route_ws(struct worker *w, struct http_req *req, struct route_ctx *c);
void route_health(struct worker *w, struct http_req *req, struct route_ctx *c);
void route_metrics(struct worker *w, struct http_req *req, struct route_ctx *c);
void route_join(struct worker *w, struct http_req *req, struct route_ctx *c);
/* under /v1/ and /api/v1/, after the key check: 404 {"error":"not_found",…} */
void route_api_not_found(struct worker *w, struct http_req *req, struct route_ctx *c);
/* anything else: 404, text body "not found" (§1) */
void route_not_found(struct worker *w, struct http_req *req, struct route_ctx *c);

#endif
