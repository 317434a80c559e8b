/* join — POST /join (docs/protocol.md §6): enrol a new member with a signed
 * invite.  Every answer is JSON {ok, ...}. */
#ifndef WORKER_JOIN_H
#define WORKER_JOIN_H

#include "worker/http.h"
#include "worker/worker.h"

void join_request(struct worker *w, struct http_req *req);

#endif
