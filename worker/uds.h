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
void uds_close_all(struct worker *w);
/* ring the doorbell of (slot, gen): "drain now"; our own slot wakes us directly */
int uds_wake(struct worker *w, uint32_t slot, uint32_t gen);
/* ask the owner of (slot, gen) to apply a status (one-shot; 0 = sent) */
int uds_request_status(struct worker *w, uint32_t slot, uint32_t gen, int status, int source);
/* tell the owner of (slot, gen) that our hello replaced its session */
int uds_request_replace(struct worker *w, uint32_t slot, uint32_t gen);
/* poll integration: fill fds, return count; then handle */
int uds_pollfds(struct worker *w, struct pollfd *fds, int max);
void uds_handle(struct worker *w, const struct pollfd *fds, int n);

#endif
