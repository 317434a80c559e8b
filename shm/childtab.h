/* childtab — what meshbroker-accept knows about each worker it started
 * (docs/design.md "Processes"): one state word per child, in its own shared
 * file <runtime>/children.shm.  The acceptor hands each child an index
 * (MESHBROKER_CHILD_SLOT); the worker moves its word from PREAUTH to HELLO,
 * AUTHENTICATED or HTTP as the connection proves itself, and to CLOSED when
 * only the socket's close and the process's exit are left; the acceptor
 * moves a PREAUTH or HELLO word to EVICTED before it asks that child to go
 * (SIGTERM).  Every move is a compare-and-swap on {pid, state}, so a worker
 * and the acceptor never both win, and a word whose pid is not the caller's
 * (a table from an acceptor that restarted) is never touched.  Under systemd
 * with Accept=yes there is no acceptor and no table: the worker does nothing. */
#ifndef SHM_CHILDTAB_H
#define SHM_CHILDTAB_H

#include <stdint.h>
#include <sys/types.h>

#define CHILDTAB_ENV "MESHBROKER_CHILD_SLOT"
#define CHILDTAB_MAX (1u << 21)

enum child_state {
	CHILD_FREE = 0,
	CHILD_PREAUTH = 1,       /* started: no request yet, or a WebSocket with no hello yet */
	CHILD_HELLO = 2,         /* a hello passed its signature and replay checks; membership pending */
	CHILD_AUTHENTICATED = 3, /* the hello succeeded (stays so while the connection leaves) */
	CHILD_HTTP = 4,          /* serving a plain HTTP route (health, metrics, REST, join, hooks) */
	CHILD_EVICTED = 5,       /* the acceptor asked it to go to make room (SIGTERM follows) */
	CHILD_CLOSED = 6,        /* its answer is out and its socket is being closed: what is left is the
				  * linger (at most 1 s, a client that keeps its end open) and the exit;
				  * no longer a connection of its source, still a process (MAX_CONNECTIONS) */
};
#define CHILD_BIT(s) (1u << (s))

struct childtab;

/* Acceptor: a fresh table of n entries (all FREE) at <runtime_dir>/children.shm,
 * replacing any old one.  0 ok, -1 with err. */
int childtab_create(const char *runtime_dir, uint32_t n, struct childtab **out, char *err, size_t errlen);
/* Worker: map the acceptor's table.  0 ok, -1 with err. */
int childtab_open(const char *runtime_dir, struct childtab **out, char *err, size_t errlen);
void childtab_close(struct childtab *t);
uint32_t childtab_size(const struct childtab *t);

/* Acceptor, and the child itself between fork and exec: FREE -> {pid, PREAUTH}.
 * 1 when this call wrote it, 0 when it was already {pid, PREAUTH}, -1 when the
 * entry holds something else. */
int childtab_start(struct childtab *t, uint32_t i, pid_t pid);
/* Acceptor, after reaping the child: back to FREE. */
void childtab_free(struct childtab *t, uint32_t i);
/* The state of entry i if it belongs to pid, else CHILD_FREE. */
enum child_state childtab_get(const struct childtab *t, uint32_t i, pid_t pid);
/* {pid, s} -> {pid, to} for some s in from_mask (CHILD_BIT).  1 moved, 0 not
 * (another state, or not pid's entry). */
int childtab_move(struct childtab *t, uint32_t i, pid_t pid, unsigned from_mask, enum child_state to);

#endif
