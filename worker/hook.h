/* hook — POST /hook/set-status (docs/protocol.md §4.3): what Claude Code hook
 * scripts call to report working/idle.  The owner of the matched presence
 * slot applies the status; with no match it is stashed for 10 s. */
#ifndef WORKER_HOOK_H
#define WORKER_HOOK_H

#include "worker/route.h"

/* a row of worker/route_table.c: the table checked the key (or the laptop
 * mode), its capability and the size */
void hook_set_status(struct worker *w, struct http_req *req, struct route_ctx *c);

#endif
