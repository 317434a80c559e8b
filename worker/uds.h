/* uds — the worker-to-worker transport: a SOCK_SEQPACKET listener per live
 * worker, cached outbound sockets, wakes and one-shot status requests.  What
 * arrives is reported through w->hooks (on_wake, on_status). */
#ifndef WORKER_UDS_H
#define WORKER_UDS_H

#include <poll.h>
#include <stdint.h>

#include "worker/envelope.h"
#include "worker/worker.h"

void uds_init(struct worker *w); /* no sockets yet */
int uds_listen_open(struct worker *w);
/* close the listening socket (its file goes with the slot: presence_release) */
void uds_listen_close(struct worker *w);
void uds_close_all(struct worker *w);
/* ring the doorbell of (slot, gen): "drain now"; our own slot wakes us directly */
int uds_wake(struct worker *w, uint32_t slot, uint32_t gen);
/* ask the owner of (slot, gen) to apply a status: one blocking send on a
 * fresh socket, for an HTTP worker that answers and exits (0 = sent) */
int uds_request_status(struct worker *w, uint32_t slot, uint32_t gen, int status, int source);
/* the same from a WebSocket worker, and the session-replace notice: queued on
 * the cached non-blocking socket, finished from the loop on POLLOUT (0 = sent
 * or pending, -1 = the owner is gone) */
int uds_queue_status(struct worker *w, uint32_t slot, uint32_t gen, int status, int source);
int uds_queue_replace(struct worker *w, uint32_t slot, uint32_t gen);
/* a direct message handed to the owner of (slot, gen) with its wake (issue
 * 23): one UDS_PUSH envelope, sent now on the cached socket or not at all (0
 * = sent; -1 = not, nothing queued: the caller wakes it instead, and its
 * claim takes the row) */
int uds_push(struct worker *w, uint32_t slot, uint32_t gen, const struct uds_push *push, const char *json,
	     size_t len);
/* a moderator's close (docs/protocol.md §12.4): the owner of (slot, gen)
 * closes its socket with code and the reason of index reason */
int uds_queue_close(struct worker *w, uint32_t slot, uint32_t gen, int code, int reason);
/* the next time uds_tick has work (a busy peer's backlog to try again), 0 none */
int64_t uds_deadline(const struct worker *w);
/* connect again to busy peers that are due, and move waiting destinations
 * into cached entries that freed: from the loop, every turn */
void uds_tick(struct worker *w, int64_t now);
/* poll integration: fill fds, return count; then handle */
int uds_pollfds(struct worker *w, struct pollfd *fds, int max);
void uds_handle(struct worker *w, const struct pollfd *fds, int n);

#endif
