/* reap — the presence rows of this host's workers that are gone without
 * leaving (SIGKILL, a crash, a leave while PostgreSQL was away) are closed,
 * each with its peer_left audit row, by whoever comes next: the acceptor's
 * `meshbroker-worker --reap` after it reaps a worker killed by a signal and
 * at its start, and every live worker's sweep after its hello and then every
 * 3-6 REAP_INTERVAL_SECONDS, at most one sweep per REAP_INTERVAL_SECONDS for
 * the whole runtime directory (under systemd, where no acceptor reaps).  A
 * row is gone when it predates the host's boot, or when no live slot of the
 * presence table holds it and no process has its worker's pid any more.
 * Each sweep ends with a chain step nobody waits for (issue 23, migration
 * 0020): the audit rows left pending by leaves (and closes) that found their
 * mesh's chain lock busy are chained where the lock is free now. */
#ifndef WORKER_REAP_H
#define WORKER_REAP_H

#include <stdint.h>

#include "worker/worker.h"

/* queue one sweep (asynchronous); 0 queued */
int reap_start(struct worker *w);
/* the live worker's trigger, from the protocol's tick: a sweep when this
 * worker's turn has come and no sweep of the runtime directory ran lately */
void reap_tick(struct worker *w, int64_t now);
/* the leave's own close of its row (and its peer_left), in its one
 * statement with the marks of the n_mark acknowledged pushes and the give
 * back of everything else the connection claimed (store_presence_leave),
 * waiting up to ms.  1: its peer_left row was left pending (the chain lock
 * was busy: the mesh's next chain step or a sweep chains it, nobody waits);
 * 0: done; -1: the database is away, and the next look of any worker sweeps
 * at once */
int reap_leave(struct worker *w, const int64_t *mark, size_t n_mark, int ms);
/* `meshbroker-worker --reap`: one sweep, synchronously; the exit status */
int reap_main(void);

#endif
