/* spare — a worker waiting for the acceptor to hand it a connection (see spare.h). */
#include "worker/spare.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/handover.h"
#include "common/log.h"
#include "worker/skel.h"

int spare_start(struct worker *w, int cfg_ok, char *title)
{
	worker_signals_init();
	if (cfg_ok) {
		if (sodium_init() < 0)
			log_fatal("libsodium failed to initialise");
		worker_spare_open(w); /* the child table and the sandbox */
		worker_shm(w);        /* every WebSocket needs it; a failure is told to that connection, as without a spare */
	}
	struct handover h;
	int fd = -1;
	for (;;) {
		/* a hand-over already sent wins over SIGTERM: that is an eviction
		 * (or a shutdown) of the connection, which the ordinary path
		 * answers; only a spare with nothing to serve just goes */
		int r = handover_recv(HANDOVER_FD, MSG_DONTWAIT, &h, &fd);
		if (r == 1)
			break;
		if (r == 0)
			return 0; /* the acceptor closed our socket: stopping, or gone */
		if (r != -EAGAIN) {
			log_error("spare worker: bad hand-over from the acceptor", "error", strerror(-r));
			return -1;
		}
		if (worker_terminating())
			return 0;
		struct pollfd p = {.fd = HANDOVER_FD, .events = POLLIN};
		if (ppoll(&p, 1, NULL, worker_wait_mask()) < 0 && errno != EINTR)
			log_fatal("poll failed", "error", strerror(errno));
	}
	if (title && strcmp(title, HANDOVER_ARG) == 0)
		memcpy(title, HANDOVER_TAKEN, sizeof HANDOVER_TAKEN);
	/* the acceptor drops its copy of the connection on this byte; if it is
	 * gone meanwhile the connection is still ours to serve */
	static const char ack = HANDOVER_ACK;
	if (send(HANDOVER_FD, &ack, 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1)
		log_debug("spare worker: the acceptor did not take the acknowledgement", "error", strerror(errno));
	/* the connection becomes fd 3, as under systemd; our end of the
	 * socketpair closes with it */
	if (dup3(fd, HANDOVER_FD, O_CLOEXEC) < 0)
		log_fatal("cannot move the connection to fd 3", "error", strerror(errno));
	close(fd);
	w->fd = HANDOVER_FD;
	snprintf(w->remote_addr, sizeof w->remote_addr, "%s", h.addr);
	worker_child_take(w, h.slot);
	return 1;
}
