/* handover — a connection passed to a spare worker over its socketpair (see handover.h). */
#include "common/handover.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

_Static_assert(sizeof HANDOVER_ARG == sizeof HANDOVER_TAKEN, "the title is rewritten in place");

int handover_send(int sock, int fd, const struct handover *h)
{
	struct iovec iov = {.iov_base = (void *)h, .iov_len = sizeof *h};
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	memset(&ctl, 0, sizeof ctl);
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof fd);
	for (;;) {
		ssize_t n = sendmsg(sock, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n == (ssize_t)sizeof *h)
			return 0;
		if (n >= 0)
			return -EPROTO; /* a seqpacket message goes whole or not at all */
		if (errno != EINTR)
			return -errno;
	}
}

/* every fd a control message carried, closed (a malformed message's) */
static void close_passed(struct msghdr *m)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0))
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
			close(fd);
		}
	}
}

int handover_recv(int sock, int flags, struct handover *h, int *fd)
{
	*fd = -1;
	struct handover in;
	struct iovec iov = {.iov_base = &in, .iov_len = sizeof in};
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(4 * sizeof(int))]; /* room to see (and close) a few too many */
	} ctl;
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
	ssize_t n;
	do
		n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC | flags);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0 && m.msg_controllen == 0)
		return 0;
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	int ok = n == (ssize_t)sizeof in && !(m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) && c &&
		 c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int)) &&
		 !CMSG_NXTHDR(&m, c) && in.magic == HANDOVER_MAGIC && in.port >= 0 && in.port <= 65535 &&
		 memchr(in.addr, '\0', sizeof in.addr) != NULL;
	if (!ok) {
		close_passed(&m);
		return -EPROTO;
	}
	memcpy(fd, CMSG_DATA(c), sizeof *fd);
	*h = in;
	return 1;
}
