/* handover — how meshbroker-accept gives a connection to a spare worker
 * (SPARE_WORKERS; docs/design.md "Processes" and "Cost of a worker, second
 * round").  A spare is `meshbroker-worker --spare`, fork+exec'd ahead of any
 * connection with its end of a SOCK_SEQPACKET socketpair as fd 3.  For a
 * connection the acceptor sends it one message: the connection's fd
 * (SCM_RIGHTS) and what the environment says to a worker started for it
 * (REMOTE_ADDR, REMOTE_PORT, MESHBROKER_CHILD_SLOT).  The spare answers one
 * byte once it holds the fd; until then the acceptor keeps its own copy, so a
 * spare that dies before (or during) the hand-over loses no connection: the
 * acceptor gives it to another spare or to a fresh fork+exec.  Pure socket
 * calls; no state. */
#ifndef COMMON_HANDOVER_H
#define COMMON_HANDOVER_H

#include <stdint.h>

#define HANDOVER_ARG "--spare" /* argv[1] of a spare; rewritten in place to HANDOVER_TAKEN once it has its connection */
#define HANDOVER_TAKEN "--taken" /* same length as HANDOVER_ARG: what ps shows of a spare that became a worker */
#define HANDOVER_FD 3          /* the spare's end of its socketpair */
#define HANDOVER_ACK 'k'       /* the spare's one-byte answer: it holds the fd */
#define HANDOVER_MAGIC 0x4d424831u /* "MBH1": this layout */
#define HANDOVER_ADDR_MAX 46   /* INET6_ADDRSTRLEN */

struct handover {
	uint32_t magic;  /* HANDOVER_MAGIC */
	uint32_t slot;   /* the child table entry (MESHBROKER_CHILD_SLOT) */
	int32_t port;    /* REMOTE_PORT, 0-65535 */
	char addr[HANDOVER_ADDR_MAX]; /* REMOTE_ADDR, NUL-terminated */
};

/* Acceptor: send fd and h over sock without blocking.  0 sent, -errno
 * (-EPIPE, -ECONNRESET: the spare is gone; -EAGAIN: its queue is full). */
int handover_send(int sock, int fd, const struct handover *h);

/* Spare: receive one message.  flags: 0 or MSG_DONTWAIT.  1 with *fd (close-
 * on-exec) and h filled; 0 at end of file (the acceptor is gone); -errno on
 * a failed call (-EAGAIN: nothing there yet), -EPROTO for a message that is
 * not one hand-over with exactly one fd (any fds it carried are closed). */
int handover_recv(int sock, int flags, struct handover *h, int *fd);

#endif
