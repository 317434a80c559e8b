/* delivery — docs/protocol.md §3.4 on the recipient's side: claim what is
 * deliverable (drain), hand pushes to the socket one at a time (pump), mark
 * what the recipient's TCP acknowledged delivered (marks), and client_ack for
 * clients that ask. */
#ifndef WORKER_DELIVERY_H
#define WORKER_DELIVERY_H

#include <cjson/cJSON.h>

#include "db/store.h"
#include "worker/worker.h"

void delivery_drain(struct worker *w); /* claim and push what is deliverable */
void delivery_pump(struct worker *w);  /* hand pushes to wslay, track what was written */
void delivery_flush(struct worker *w); /* mark what was acknowledged delivered */
/* a direct message handed by the sender's worker with its wake (issue 23,
 * migration 0019): pushed when nothing can come before it, else left to
 * the next claim, which returns it */
void delivery_on_push(struct worker *w, int64_t delivery_id, int64_t created_ms, const char *json, size_t len);
/* the push frame of a row (the claim's, or a handed one's) */
char *delivery_push_json(const struct delivery_row *r);
/* the connection is ending: give the peer a moment to acknowledge the last
 * pushes written; what it does not stays undelivered (given back) */
void delivery_settle(struct worker *w);
void delivery_on_client_ack(struct worker *w, const cJSON *msg);
/* the end of the connection: free what was claimed but not pushed (its rows
 * are given back by delivery_give_back) */
void delivery_free(struct worker *w);
void delivery_give_back(struct worker *w);

#endif
