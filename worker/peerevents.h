/* peerevents — system pushes about other peers for clients whose hello
 * lists "peer_events" (docs/protocol.md §11): joined, left and status
 * changes, coalesced per recipient to at most one push a second. */
#ifndef WORKER_PEEREVENTS_H
#define WORKER_PEEREVENTS_H

#include <stdint.h>

#include "worker/worker.h"

void peerevents_start(struct worker *w);             /* after hello: remember who is there */
void peerevents_tick(struct worker *w, int64_t now); /* push what changed, when due */
void peerevents_free(struct worker *w);

#endif
