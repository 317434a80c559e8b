/* spawn — how meshbroker-accept starts a worker or a spare worker: vfork+exec
 * (issue 23, docs/design.md "A worker's start and end, fourth round").
 * vfork shares the acceptor's address space with the child until its exec,
 * so no page table, VMA or anonymous page of the acceptor is copied for a
 * process that replaces its image at once, and nothing is torn down again
 * at that exec; the acceptor waits the few microseconds until the exec.
 * The child does only system calls between the two: the signals the
 * acceptor ignores back to their default, the signal mask set, the given fd
 * moved to fd 3, every fd past it closed, LISTEN_PID written, exec.  Each
 * worker still gets its own exec (its own address-space randomisation); the
 * environment is the acceptor's, without the variables that name a
 * connection, plus the ones given.  (posix_spawn does the same with
 * CLONE_VM|CLONE_VFORK, but cannot put the child's own pid in LISTEN_PID,
 * which sd_listen_fds(3) checks.) */
#ifndef ACCEPT_SPAWN_H
#define ACCEPT_SPAWN_H

#include <signal.h>
#include <sys/types.h>

#define SPAWN_EXTRA_MAX 6 /* variables a start may add */

struct spawn {
	const char *path;       /* the worker binary */
	char *const *argv;      /* its argv, NULL-terminated */
	int fd;                 /* becomes fd 3 (close-on-exec cleared); every fd above 3 is closed */
	const char *extra[SPAWN_EXTRA_MAX + 1]; /* NAME=value strings added to the environment, NULL-terminated */
	int listen_pid;         /* 1: add LISTEN_PID=<the child's own pid> */
	sigset_t mask;          /* the child's signal mask across the exec */
};

/* Once, after the acceptor's signal dispositions and environment are final:
 * the environment every child gets (without LISTEN_FDS, LISTEN_PID,
 * LISTEN_FDNAMES, MESHBROKER_CHILD_SLOT, REMOTE_ADDR, REMOTE_PORT) and which
 * signals to set back to SIG_DFL (those ignored here).  0, or -1 out of memory. */
int spawn_init(void);

/* Start s.  0: *pid started and exec'd; -errno with *pid 0: the vfork
 * failed; -errno with *pid set: the exec failed and that child has exited
 * 111 (reaped as any child). */
int spawn_start(const struct spawn *s, pid_t *pid);

#endif
