/* hook — POST /hook/set-status (docs/protocol.md §4.3): what Claude Code hook
 * scripts call to report working/idle.  The owner of the matched presence
 * slot applies the status; with no match it is stashed for 10 s. */
#ifndef WORKER_HOOK_H
#define WORKER_HOOK_H

#include "worker/http.h"
#include "worker/worker.h"

void hook_set_status(struct worker *w, struct http_req *req);
/* the 413 of this route, answered before the body is read */
void hook_too_large(struct worker *w);

#endif
