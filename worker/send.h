/* send — a peer's send (docs/protocol.md §3.1): validated at the edge,
 * stored with one delivery row per recipient before it is acked, and the
 * recipients' workers woken. */
#ifndef WORKER_SEND_H
#define WORKER_SEND_H

#include <cjson/cJSON.h>

#include "worker/worker.h"

void send_on_msg(struct worker *w, const cJSON *msg);

#endif
