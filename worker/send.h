/* send — a peer's send (docs/protocol.md §3.1): validated at the edge,
 * stored with one delivery row per recipient before it is acked, and the
 * recipients' workers woken. */
#ifndef WORKER_SEND_H
#define WORKER_SEND_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "worker/worker.h"

void send_on_msg(struct worker *w, const cJSON *msg);
/* store the sends waiting for a batch: the next batch when no send statement
 * of ours is running (the loop's pump), everything when force (before a
 * topic post, at the leave) */
void send_flush(struct worker *w, int force);
/* audit rows of ours wait in mesh.audit_pending (a lone send's since 0021, or
 * the hello's peer_joined, auth.c): a chain step is owed, tried without
 * waiting for the lock every CHAIN_RETRY_MS until it ran or found nothing
 * pending */
void send_chain_owe(struct worker *w);
/* an owed audit chain step, when it is due and no batch of ours runs (or
 * the debt is CHAIN_FORCE_MS old) */
void send_tick(struct worker *w, int64_t now);
/* drop what still waits (after the leave's flush nothing does) */
void send_free(struct worker *w);

#endif
