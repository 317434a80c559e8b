/* spare — a worker exec'd ahead of its connection: `meshbroker-worker
 * --spare`, started by meshbroker-accept when SPARE_WORKERS > 0, its end of
 * the acceptor's socketpair as fd 3 (common/handover.h).  It does before the
 * connection comes what every worker does before it reads one (signals,
 * libsodium, the child table, the sandbox, the presence table), then waits
 * for the hand-over and goes on as an ordinary worker.  Under systemd
 * (Accept=yes) there are no spares: its start-up path never comes here. */
#ifndef WORKER_SPARE_H
#define WORKER_SPARE_H

#include "worker/worker.h"

/* cfg_ok: w->cfg loaded (else the connection is only told 503, as by any
 * worker).  title: argv[1], rewritten from HANDOVER_ARG to HANDOVER_TAKEN
 * once the connection is ours, so ps and the tests tell the spares waiting
 * from the workers they became.  1: w->fd (fd 3) is the connection,
 * w->remote_addr and the child table entry are set, and worker_child_open
 * is already done; 0: nothing to serve (the acceptor closed our socket, or
 * SIGTERM came first): exit 0; -1: a malformed hand-over (logged): exit 111. */
int spare_start(struct worker *w, int cfg_ok, char *title);

#endif
