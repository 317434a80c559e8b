/* uds — worker-to-worker wake-ups over SOCK_SEQPACKET Unix sockets at
 * <runtime>/w/<slot>.<gen>.sock: a fixed envelope header, lazily connected
 * and cached outbound sockets, SO_PEERCRED checked on accept.  A wake is
 * idempotent ("drain now"), so a full socket just leaves it pending.  The
 * envelope is read back by uds_parse (envelope.c); what arrives goes to
 * w->hooks. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "worker/uds.h"

static int sock_addr(struct worker *w, uint32_t slot, uint32_t gen, struct sockaddr_un *a)
{
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	presence_sock_path(w->shm, slot, gen, a->sun_path, sizeof a->sun_path);
	return a->sun_path[0] ? 0 : -1;
}

void uds_init(struct worker *w)
{
	w->uds_listen = -1;
	for (int i = 0; i < UDS_IN_MAX; i++)
		w->uds_in[i] = -1;
	for (int i = 0; i < UDS_OUT_MAX; i++)
		w->uds_out[i].fd = -1;
}

int uds_listen_open(struct worker *w)
{
	struct sockaddr_un a;
	if (sock_addr(w, w->slot, w->gen, &a) != 0)
		return -1;
	unlink(a.sun_path);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 128) != 0) {
		log_error("worker socket failed", "path", a.sun_path, "error", strerror(errno));
		close(fd);
		return -1;
	}
	w->uds_listen = fd;
	return 0;
}

void uds_close_all(struct worker *w)
{
	if (w->uds_listen >= 0) {
		close(w->uds_listen);
		w->uds_listen = -1;
	}
	for (int i = 0; i < UDS_IN_MAX; i++)
		if (w->uds_in[i] >= 0) {
			close(w->uds_in[i]);
			w->uds_in[i] = -1;
		}
	for (int i = 0; i < UDS_OUT_MAX; i++)
		if (w->uds_out[i].fd >= 0) {
			close(w->uds_out[i].fd);
			w->uds_out[i].fd = -1;
		}
}

static int out_pending(const struct uds_out *o)
{
	return o->wake_pending || o->replace_pending || o->status_pending || o->close_pending;
}

static void out_drop(struct uds_out *o)
{
	if (o->fd >= 0)
		close(o->fd);
	o->fd = -1;
}

static void out_forget(struct uds_out *o)
{
	out_drop(o);
	o->wake_pending = o->replace_pending = o->status_pending = o->close_pending = 0;
}

static int out_connect(struct worker *w, struct uds_out *o)
{
	struct sockaddr_un a;
	if (sock_addr(w, o->slot, o->gen, &a) != 0)
		return -1;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		close(fd);
		return -1; /* gone (the slot will be reclaimed) or its backlog is full */
	}
	o->fd = fd;
	return 0;
}

/* Send what is pending for one destination, in a fixed order (status,
 * replace, wake), each envelope a packet of its own: 0 all sent, 1 some
 * still pending (socket full; POLLOUT resumes), -1 the peer worker is gone
 * (what was pending is forgotten). */
static int out_send(struct worker *w, struct uds_out *o)
{
	int reconnected = 0;
	while (out_pending(o)) {
		struct {
			struct uds_env e;
			struct uds_status st;
		} pkt = {.e = {.src_slot = w->slot, .src_gen = w->gen, .dst_slot = o->slot, .dst_gen = o->gen}};
		size_t len = sizeof pkt.e;
		int *flag;
		if (o->status_pending) {
			pkt.e.type = UDS_STATUS;
			pkt.e.len = sizeof pkt.st;
			pkt.st = (struct uds_status){.status = o->status, .source = o->status_source};
			len = sizeof pkt;
			flag = &o->status_pending;
		} else if (o->close_pending) {
			pkt.e.type = UDS_CLOSE;
			pkt.e.len = sizeof pkt.st;
			pkt.st = (struct uds_status){.status = o->close_code, .source = o->close_reason};
			len = sizeof pkt;
			flag = &o->close_pending;
		} else if (o->replace_pending) {
			pkt.e.type = UDS_REPLACE;
			flag = &o->replace_pending;
		} else {
			pkt.e.type = UDS_WAKE;
			flag = &o->wake_pending;
		}
		if (o->fd < 0 && out_connect(w, o) != 0) {
			out_forget(o);
			return -1;
		}
		ssize_t n = send(o->fd, &pkt, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n == (ssize_t)len) {
			*flag = 0;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 1;
		out_drop(o); /* stale cached socket (peer restarted): reconnect once */
		if (reconnected++) {
			out_forget(o);
			return -1;
		}
	}
	return 0;
}

/* the cached outbound entry for (slot, gen): the existing one, else a free
 * one, else the least recently used one with nothing pending, else the least
 * recently used one (what it had pending is lost: at most UDS_OUT_MAX
 * destinations are kept) */
static struct uds_out *out_get(struct worker *w, uint32_t slot, uint32_t gen)
{
	struct uds_out *free_e = NULL, *idle = NULL, *any = NULL;
	for (int i = 0; i < UDS_OUT_MAX; i++) {
		struct uds_out *c = &w->uds_out[i];
		int busy = out_pending(c);
		if ((c->fd >= 0 || busy) && c->slot == slot && c->gen == gen)
			return c;
		if (c->fd < 0 && !busy) {
			if (!free_e)
				free_e = c;
		} else if (!busy) {
			if (!idle || c->used_ms < idle->used_ms)
				idle = c;
		} else if (!any || c->used_ms < any->used_ms) {
			any = c;
		}
	}
	struct uds_out *o = free_e ? free_e : idle ? idle : any;
	out_forget(o);
	o->slot = slot;
	o->gen = gen;
	return o;
}

static struct uds_out *out_queue(struct worker *w, uint32_t slot, uint32_t gen)
{
	struct uds_out *o = out_get(w, slot, gen);
	o->used_ms = mono_ms();
	return o;
}

static int out_kick(struct uds_out *o, struct worker *w, const char *what)
{
	int r = out_send(w, o);
	if (r < 0)
		log_debug("envelope not delivered: peer worker gone", "type", what);
	return r < 0 ? -1 : 0;
}

int uds_wake(struct worker *w, uint32_t slot, uint32_t gen)
{
	if (w->have_slot && slot == w->slot && gen == w->gen) {
		w->hooks->on_wake(w);
		return 0;
	}
	struct uds_out *o = out_queue(w, slot, gen);
	o->wake_pending = 1;
	return out_kick(o, w, "wake");
}

int uds_queue_status(struct worker *w, uint32_t slot, uint32_t gen, int status, int source)
{
	struct uds_out *o = out_queue(w, slot, gen);
	o->status_pending = 1;
	o->status = status;
	o->status_source = source;
	return out_kick(o, w, "status");
}

int uds_queue_replace(struct worker *w, uint32_t slot, uint32_t gen)
{
	struct uds_out *o = out_queue(w, slot, gen);
	o->replace_pending = 1;
	return out_kick(o, w, "replace");
}

int uds_queue_close(struct worker *w, uint32_t slot, uint32_t gen, int code, int reason)
{
	struct uds_out *o = out_queue(w, slot, gen);
	o->close_pending = 1;
	o->close_code = code;
	o->close_reason = reason;
	return out_kick(o, w, "close");
}

int uds_pollfds(struct worker *w, struct pollfd *fds, int max)
{
	int n = 0;
	if (w->uds_listen >= 0 && n < max)
		fds[n++] = (struct pollfd){.fd = w->uds_listen, .events = POLLIN};
	for (int i = 0; i < UDS_IN_MAX && n < max; i++)
		if (w->uds_in[i] >= 0)
			fds[n++] = (struct pollfd){.fd = w->uds_in[i], .events = POLLIN};
	for (int i = 0; i < UDS_OUT_MAX && n < max; i++)
		if (w->uds_out[i].fd >= 0)
			fds[n++] = (struct pollfd){.fd = w->uds_out[i].fd,
						   .events = (short)(out_pending(&w->uds_out[i]) ? POLLOUT : 0)};
	return n;
}

static void in_accept(struct worker *w)
{
	for (;;) {
		int fd = accept4(w->uds_listen, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		struct ucred cr;
		socklen_t cl = sizeof cr;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0 || cr.uid != getuid()) {
			log_warn("worker socket: refused a peer with another uid");
			close(fd);
			continue;
		}
		int i;
		for (i = 0; i < UDS_IN_MAX && w->uds_in[i] >= 0; i++)
			;
		if (i == UDS_IN_MAX) {
			close(fd); /* the sender reconnects; its wake stays pending */
			continue;
		}
		w->uds_in[i] = fd;
	}
}

static void in_read(struct worker *w, int idx)
{
	unsigned char buf[sizeof(struct uds_env) + 256];
	for (;;) {
		ssize_t n = recv(w->uds_in[idx], buf, sizeof buf, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			close(w->uds_in[idx]);
			w->uds_in[idx] = -1;
			return;
		}
		int type;
		int32_t status, source;
		if (uds_parse(buf, (size_t)n, w->slot, w->gen, &type, &status, &source) != 0)
			continue; /* not an envelope for us */
		if (type == UDS_WAKE)
			w->hooks->on_wake(w);
		else if (type == UDS_REPLACE)
			w->hooks->on_replaced(w);
		else if (type == UDS_CLOSE && w->hooks->on_close)
			w->hooks->on_close(w, status, source);
		else if (type == UDS_CLOSE)
			continue;
		else
			w->hooks->on_status(w, status, source);
	}
}

void uds_handle(struct worker *w, const struct pollfd *fds, int n)
{
	for (int k = 0; k < n; k++) {
		if (!fds[k].revents)
			continue;
		int fd = fds[k].fd;
		if (fd == w->uds_listen) {
			in_accept(w);
			continue;
		}
		for (int i = 0; i < UDS_IN_MAX; i++)
			if (w->uds_in[i] == fd)
				in_read(w, i);
		for (int i = 0; i < UDS_OUT_MAX; i++) {
			struct uds_out *o = &w->uds_out[i];
			if (o->fd != fd)
				continue;
			if (fds[k].revents & (POLLHUP | POLLERR)) {
				out_drop(o);
				if (out_pending(o))
					out_send(w, o);
			} else if ((fds[k].revents & POLLOUT) && out_pending(o)) {
				out_send(w, o);
			}
		}
	}
}

/* one envelope on a fresh socket (a short blocking send): for an HTTP
 * worker, which answers and exits and has no loop to finish a queued send */
static int uds_oneshot(struct worker *w, uint32_t slot, uint32_t gen, const void *pkt, size_t len)
{
	struct sockaddr_un a;
	if (sock_addr(w, slot, gen, &a) != 0)
		return -1;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* one-shot sender (an HTTP worker): a short blocking send is fine */
	struct timeval tv = {.tv_sec = 1};
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
		 send(fd, pkt, len, MSG_NOSIGNAL) == (ssize_t)len;
	close(fd);
	return ok ? 0 : -1;
}

int uds_request_status(struct worker *w, uint32_t slot, uint32_t gen, int status, int source)
{
	struct {
		struct uds_env e;
		struct uds_status st;
	} pkt = {.e = {.type = UDS_STATUS, .len = sizeof(struct uds_status), .src_slot = UINT32_MAX,
		       .dst_slot = slot, .dst_gen = gen},
		 .st = {.status = status, .source = source}};
	return uds_oneshot(w, slot, gen, &pkt, sizeof pkt);
}
