/* peerstatus — this peer's status on its presence slot (docs/protocol.md
 * §4): set_status, requests from a hook's worker, the TTL and the optional
 * JSONL inference; a status that becomes idle drains held messages. */
#ifndef WORKER_PEERSTATUS_H
#define WORKER_PEERSTATUS_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "worker/worker.h"

void peerstatus_on_set_status(struct worker *w, const cJSON *msg);
void peerstatus_request(struct worker *w, int status, int source); /* from a hook's worker */
void peerstatus_tick(struct worker *w, int64_t now);             /* TTL and JSONL */

#endif
