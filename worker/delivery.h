/* delivery — docs/protocol.md §3.4 on the recipient's side: claim what is
 * deliverable (drain), hand pushes to the socket one at a time (pump), mark
 * what the recipient's TCP acknowledged delivered (marks), and client_ack for
 * clients that ask. */
#ifndef WORKER_DELIVERY_H
#define WORKER_DELIVERY_H

#include <cjson/cJSON.h>

#include "worker/worker.h"

void delivery_drain(struct worker *w); /* claim and push what is deliverable */
void delivery_pump(struct worker *w);  /* hand pushes to wslay, track what was written */
void delivery_flush(struct worker *w); /* mark what was acknowledged delivered */
/* the connection is ending: give the peer a moment to acknowledge the last
 * pushes written; what it does not stays undelivered (given back) */
void delivery_settle(struct worker *w);
void delivery_on_client_ack(struct worker *w, const cJSON *msg);
/* the end of the connection: free what was claimed but not pushed (its rows
 * are given back by delivery_give_back) */
void delivery_free(struct worker *w);
void delivery_give_back(struct worker *w);

#endif
