/* skel — the worker skeleton (the Postfix single_server_main idea): it owns
 * the signal mask, the lazily opened shared-memory and database handles and,
 * for a WebSocket, the one ppoll() loop with its timers; the transports
 * (ws.c, uds.c) and the protocol are called through w->hooks. */
#ifndef WORKER_SKEL_H
#define WORKER_SKEL_H

#include <signal.h>

#include "shm/childtab.h"
#include "worker/http.h"
#include "worker/worker.h"

/* SIGPIPE ignored; SIGTERM/SIGINT noted, and blocked except inside ppoll() */
void worker_signals_init(void);
int worker_terminating(void); /* SIGTERM or SIGINT arrived */
const sigset_t *worker_wait_mask(void); /* the mask to wait with: SIGTERM/SIGINT let in */

/* The acceptor's child table (shm/childtab.h): open our entry when the
 * acceptor named one (MESHBROKER_CHILD_SLOT); none under systemd.  Then,
 * under both launchers, the worker sandboxes itself (worker/sandbox.h):
 * call it right before the first read from the client. */
void worker_child_open(struct worker *w);
/* A spare (worker/spare.h), before its connection: map the child table and
 * sandbox itself; once handed a connection, worker_child_take names our
 * entry (the acceptor wrote it already). */
void worker_spare_open(struct worker *w);
void worker_child_take(struct worker *w, uint32_t slot);
/* Move our entry from a state in from_mask (CHILD_BIT) to `to`.  -1 only when
 * the acceptor evicted this connection (it wants us gone); else 0, also when
 * there is no table or the entry is not ours. */
int worker_child_mark(struct worker *w, unsigned from_mask, enum child_state to);
/* 1 when the acceptor evicted this connection (SIGTERM is on its way) */
int worker_evicted(const struct worker *w);
int worker_negcache(struct worker *w); /* open the negative member cache on first use; 0 ok */
int worker_membercache(struct worker *w); /* open the member cache (shm/membercache.h) on first use; 0 ok */

int worker_shm(struct worker *w); /* open the presence table on first use; 0 ok */
int worker_db(struct worker *w);  /* create the db handle on first use; 0 ok */

/* Upgrade req to a WebSocket and serve the peer protocol of hooks until
 * the connection ends (hooks->leave has run when this returns). */
void skel_serve_ws(struct worker *w, struct http_req *req, const struct worker_hooks *hooks);

#endif
