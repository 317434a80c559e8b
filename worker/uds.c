/* uds — worker-to-worker wake-ups over SOCK_SEQPACKET Unix sockets at
 * <runtime>/w/<slot>.<gen>.sock: a fixed envelope header, lazily connected
 * and cached outbound sockets, SO_PEERCRED checked on accept.  A wake is
 * idempotent ("drain now"), so a full socket just leaves it pending.  No
 * envelope is ever dropped while its destination lives: past UDS_OUT_MAX
 * busy destinations the next ones wait in a coalescing set (one entry per
 * destination) and take the first cached entry that frees; a destination
 * whose listen backlog is full is connected again on a timer (uds_tick).
 * The envelope is read back by uds_parse (envelope.c); what arrives goes to
 * w->hooks. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "worker/uds.h"

#define UDS_CONNECT_RETRY_MS 20      /* a full listen backlog: connect again this much later, */
#define UDS_CONNECT_RETRY_MAX_MS 1000 /* doubling up to this */
#define UDS_CLOSE_FLUSH_MS 200  /* at the end, what is still pending gets this long to go out */

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
		w->uds_out[i] = (struct uds_out){.fd = -1};
	w->uds_wait = NULL;
	w->nwait = w->wait_cap = 0;
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

void uds_listen_close(struct worker *w)
{
	if (w->uds_listen >= 0) {
		close(w->uds_listen);
		w->uds_listen = -1;
	}
}

static void out_flush_pending(struct worker *w, int timeout_ms);

void uds_close_all(struct worker *w)
{
	/* an HTTP worker's wakes (a REST post) and a leaving peer's last ones
	 * are not left behind because a socket was full for a moment */
	out_flush_pending(w, UDS_CLOSE_FLUSH_MS);
	free(w->uds_wait);
	w->uds_wait = NULL;
	w->nwait = w->wait_cap = 0;
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
	o->last_wake = 0;
}

static void out_forget(struct uds_out *o)
{
	out_drop(o);
	o->wake_pending = o->replace_pending = o->status_pending = o->close_pending = 0;
	o->retry_at = 0;
	o->retry_ms = 0;
}

/* 0 connected, 1 its listen backlog is full (try again later), -1 gone */
static int out_connect(struct worker *w, struct uds_out *o)
{
	struct sockaddr_un a;
	if (sock_addr(w, o->slot, o->gen, &a) != 0)
		return -1;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 1; /* out of descriptors for a moment: not the peer's fault */
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		int e = errno;
		close(fd);
		/* a peer too busy to accept is not a gone one: its backlog is full */
		return e == EAGAIN || e == EWOULDBLOCK ? 1 : -1;
	}
	o->fd = fd;
	return 0;
}

/* Send what is pending for one destination, in a fixed order (status,
 * replace, wake), each envelope a packet of its own: 0 all sent, 1 some
 * still pending (socket full: POLLOUT resumes; backlog full: uds_tick
 * connects again), -1 the peer worker is gone (what was pending is
 * forgotten). */
static int out_send(struct worker *w, struct uds_out *o)
{
	int reconnected = 0;
	if (o->fd < 0 && o->retry_at && mono_ms() < o->retry_at)
		return 1;
	o->retry_at = 0;
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
		if (o->fd < 0) {
			int c = out_connect(w, o);
			if (c > 0) {
				o->retry_ms = o->retry_ms ? o->retry_ms * 2 : UDS_CONNECT_RETRY_MS;
				if (o->retry_ms > UDS_CONNECT_RETRY_MAX_MS)
					o->retry_ms = UDS_CONNECT_RETRY_MAX_MS;
				o->retry_at = mono_ms() + o->retry_ms;
				return 1;
			}
			o->retry_ms = 0;
			if (c < 0) {
				out_forget(o);
				return -1;
			}
		}
		ssize_t n = send(o->fd, &pkt, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n == (ssize_t)len) {
			*flag = 0;
			o->last_wake = pkt.e.type == UDS_WAKE;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			/* a full socket whose newest envelope is a wake: that
			 * one is unread (FIFO), so the doorbell is ringing
			 * already and this wake adds nothing (coalesced) */
			if (flag == &o->wake_pending && o->last_wake) {
				o->wake_pending = 0;
				return 0;
			}
			return 1;
		}
		out_drop(o); /* stale cached socket (peer restarted): reconnect once */
		if (reconnected++) {
			out_forget(o);
			return -1;
		}
	}
	return 0;
}

/* the wait-set entry of (slot, gen), appended when new; NULL only when the
 * set holds one entry for every slot of the table twice over, which live
 * destinations cannot fill (stale ones are dropped when their turn comes) */
static struct uds_wait *wait_get(struct worker *w, uint32_t slot, uint32_t gen)
{
	for (size_t i = 0; i < w->nwait; i++)
		if (w->uds_wait[i].slot == slot && w->uds_wait[i].gen == gen)
			return &w->uds_wait[i];
	if (w->nwait == w->wait_cap) {
		size_t limit = 2 * (size_t)(w->cfg.presence_slots > 0 ? w->cfg.presence_slots : 4096);
		if (w->wait_cap >= limit)
			return NULL;
		size_t cap = w->wait_cap ? w->wait_cap * 2 : 16;
		struct uds_wait *nw = realloc(w->uds_wait, cap * sizeof *nw);
		if (!nw)
			log_fatal("out of memory");
		w->uds_wait = nw;
		w->wait_cap = cap;
	}
	struct uds_wait *e = &w->uds_wait[w->nwait++];
	*e = (struct uds_wait){.slot = slot, .gen = gen};
	return e;
}

/* All entries busy: the least recently used one that holds no socket (its
 * peer's listen backlog was full) moves what it has pending into the wait
 * set and is taken; a socket waiting for POLLOUT keeps its entry.  NULL when
 * there is none. */
static struct uds_out *out_park(struct worker *w)
{
	struct uds_out *o = NULL;
	for (int i = 0; i < UDS_OUT_MAX; i++) {
		struct uds_out *c = &w->uds_out[i];
		if (c->fd < 0 && out_pending(c) && (!o || c->used_ms < o->used_ms))
			o = c;
	}
	if (!o)
		return NULL;
	struct uds_wait *e = wait_get(w, o->slot, o->gen);
	if (!e)
		return NULL;
	e->wake |= (uint8_t)o->wake_pending;
	e->replace |= (uint8_t)o->replace_pending;
	if (o->status_pending && !e->status_pending) {
		e->status_pending = 1;
		e->status = o->status;
		e->status_source = o->status_source;
	}
	if (o->close_pending) {
		e->close_pending = 1;
		e->close_code = o->close_code;
		e->close_reason = o->close_reason;
	}
	return o;
}

/* the cached outbound entry for (slot, gen): the existing one, else a free
 * one, else the least recently used one with nothing pending; NULL when all
 * UDS_OUT_MAX are busy with other destinations (the envelope then waits in
 * the wait set, nothing is dropped) */
static struct uds_out *out_get(struct worker *w, uint32_t slot, uint32_t gen)
{
	struct uds_out *free_e = NULL, *idle = NULL;
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
		}
	}
	struct uds_out *o = free_e ? free_e : idle;
	if (!o)
		o = out_park(w);
	if (!o)
		return NULL;
	out_forget(o);
	o->slot = slot;
	o->gen = gen;
	return o;
}

/* what an envelope asks of a destination, merged into what is pending for
 * it: a wake or a replace is a flag, the latest status wins */
struct env_req {
	int wake, replace, status_pending, close_pending;
	int32_t status, source;
	int32_t close_code, close_reason; /* a moderator's close (§12.4) */
};

static void out_merge(struct uds_out *o, const struct env_req *r)
{
	o->wake_pending |= r->wake;
	o->replace_pending |= r->replace;
	if (r->status_pending) {
		o->status_pending = 1;
		o->status = r->status;
		o->status_source = r->source;
	}
	if (r->close_pending) {
		o->close_pending = 1;
		o->close_code = r->close_code;
		o->close_reason = r->close_reason;
	}
}

/* Move waiting destinations into cached entries that have nothing pending,
 * oldest first, and start their sends. */
static void wait_promote(struct worker *w)
{
	size_t k = 0;
	while (k < w->nwait) {
		struct uds_wait *e = &w->uds_wait[k];
		struct uds_out *o = out_get(w, e->slot, e->gen);
		if (!o)
			break;
		o->used_ms = mono_ms();
		out_merge(o, &(struct env_req){.wake = e->wake, .replace = e->replace,
					       .status_pending = e->status_pending, .status = e->status,
					       .source = e->status_source, .close_pending = e->close_pending,
					       .close_code = e->close_code, .close_reason = e->close_reason});
		k++;
		if (out_send(w, o) < 0)
			log_debug("envelope not delivered: peer worker gone");
	}
	if (k) {
		memmove(w->uds_wait, w->uds_wait + k, (w->nwait - k) * sizeof *w->uds_wait);
		w->nwait -= k;
	}
}

static int out_request(struct worker *w, uint32_t slot, uint32_t gen, const struct env_req *r, const char *what)
{
	struct uds_out *o = out_get(w, slot, gen);
	if (!o) {
		struct uds_wait *e = wait_get(w, slot, gen);
		if (!e) {
			log_warn("worker envelope set full: envelope dropped", "type", what);
			return -1;
		}
		e->wake |= (uint8_t)r->wake;
		e->replace |= (uint8_t)r->replace;
		if (r->status_pending) {
			e->status_pending = 1;
			e->status = r->status;
			e->status_source = r->source;
		}
		if (r->close_pending) {
			e->close_pending = 1;
			e->close_code = r->close_code;
			e->close_reason = r->close_reason;
		}
		return 0; /* pending: sent when an entry frees (wait_promote) */
	}
	o->used_ms = mono_ms();
	out_merge(o, r);
	int rc = out_send(w, o);
	if (rc < 0)
		log_debug("envelope not delivered: peer worker gone", "type", what);
	if (rc <= 0 && w->nwait)
		wait_promote(w); /* this entry is free again */
	return rc < 0 ? -1 : 0;
}

int uds_wake(struct worker *w, uint32_t slot, uint32_t gen)
{
	if (w->have_slot && slot == w->slot && gen == w->gen) {
		w->hooks->on_wake(w);
		return 0;
	}
	return out_request(w, slot, gen, &(struct env_req){.wake = 1}, "wake");
}

int uds_queue_status(struct worker *w, uint32_t slot, uint32_t gen, int status, int source)
{
	return out_request(w, slot, gen, &(struct env_req){.status_pending = 1, .status = status, .source = source},
			   "status");
}

int uds_queue_replace(struct worker *w, uint32_t slot, uint32_t gen)
{
	return out_request(w, slot, gen, &(struct env_req){.replace = 1}, "replace");
}

int uds_push(struct worker *w, uint32_t slot, uint32_t gen, const struct uds_push *push, const char *json,
	     size_t len)
{
	if (len == 0 || len > UDS_PUSH_JSON_MAX || (w->have_slot && slot == w->slot && gen == w->gen))
		return -1;
	struct uds_out *o = out_get(w, slot, gen);
	/* something queued for it goes first (and is a wake or more): no
	 * overtaking, the caller's wake joins it */
	if (!o || out_pending(o) || (o->fd < 0 && o->retry_at))
		return -1;
	o->used_ms = mono_ms();
	if (o->fd < 0 && out_connect(w, o) != 0)
		return -1;
	struct uds_env e = {.type = UDS_PUSH, .len = (uint16_t)(sizeof *push + len), .src_slot = w->slot,
			    .src_gen = w->gen, .dst_slot = slot, .dst_gen = gen};
	struct iovec iov[3] = {{&e, sizeof e}, {(void *)push, sizeof *push}, {(void *)json, len}};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 3};
	ssize_t n = sendmsg(o->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n == (ssize_t)(sizeof e + sizeof *push + len)) {
		o->last_wake = 0;
		return 0;
	}
	if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
		out_drop(o); /* stale (peer restarted): the caller's wake connects again */
	return -1;
}

int64_t uds_deadline(const struct worker *w)
{
	int64_t d = 0;
	for (int i = 0; i < UDS_OUT_MAX; i++) {
		const struct uds_out *o = &w->uds_out[i];
		if (o->fd < 0 && o->retry_at && out_pending(o) && (!d || o->retry_at < d))
			d = o->retry_at;
	}
	return d;
}

void uds_tick(struct worker *w, int64_t now)
{
	for (int i = 0; i < UDS_OUT_MAX; i++) {
		struct uds_out *o = &w->uds_out[i];
		if (o->fd < 0 && o->retry_at && now >= o->retry_at && out_pending(o) && out_send(w, o) < 0)
			log_debug("envelope not delivered: peer worker gone");
	}
	if (w->nwait)
		wait_promote(w);
}

/* Finish what is pending, for up to timeout_ms, when the loop is over (or
 * there never was one: an HTTP worker's wakes). */
static void out_flush_pending(struct worker *w, int timeout_ms)
{
	int64_t end = mono_ms() + timeout_ms;
	for (;;) {
		uds_tick(w, mono_ms());
		struct pollfd fds[UDS_OUT_MAX];
		int n = 0;
		int waiting = w->nwait > 0;
		for (int i = 0; i < UDS_OUT_MAX; i++) {
			struct uds_out *o = &w->uds_out[i];
			if (!out_pending(o))
				continue;
			waiting = 1;
			if (o->fd >= 0)
				fds[n++] = (struct pollfd){.fd = o->fd, .events = POLLOUT};
		}
		int64_t now = mono_ms();
		if (!waiting || now >= end)
			return;
		int t = (int)(end - now);
		if (t > UDS_CONNECT_RETRY_MS)
			t = UDS_CONNECT_RETRY_MS;
		if (poll(fds, (nfds_t)n, t) > 0)
			uds_handle(w, fds, n);
	}
}

int uds_queue_close(struct worker *w, uint32_t slot, uint32_t gen, int code, int reason)
{
	return out_request(w, slot, gen,
			   &(struct env_req){.close_pending = 1, .close_code = code, .close_reason = reason}, "close");
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

static int in_packets(struct worker *w, int fd);

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
			/* no room to keep it: what it already carries is handled,
			 * and a drain stands in for a wake that races the close
			 * (the sender's next envelope reconnects) */
			in_packets(w, fd);
			close(fd);
			w->hooks->on_wake(w);
			continue;
		}
		w->uds_in[i] = fd;
	}
}

/* Handle every envelope waiting on fd: 0 more may come, -1 the sender
 * closed it (or it failed). */
static int in_packets(struct worker *w, int fd)
{
	/* what every envelope but a handed push fits in, on the stack; a
	 * larger one (a handed push) runs on into big, whose pages are touched
	 * only then (an idle worker's memory, issue 23), and is read there
	 * whole.  One worker, one thread. */
	unsigned char small[sizeof(struct uds_env) + 256];
	static unsigned char big[sizeof(struct uds_env) + 65535];
	for (;;) {
		struct iovec iov[2] = {{small, sizeof small}, {big + sizeof small, sizeof big - sizeof small}};
		struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
		ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0)
			return -1;
		const unsigned char *buf = small;
		if ((size_t)n > sizeof small) {
			memcpy(big, small, sizeof small);
			buf = big;
		}
		struct uds_push push;
		const char *json;
		size_t json_len;
		if (uds_parse_push(buf, (size_t)n, w->slot, w->gen, &push, &json, &json_len) == 0) {
			if (w->hooks->on_push)
				w->hooks->on_push(w, push.delivery_id, push.created_ms, json, json_len);
			else
				w->hooks->on_wake(w); /* its claim takes the row */
			continue;
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

static void in_read(struct worker *w, int idx)
{
	if (in_packets(w, w->uds_in[idx]) != 0) {
		close(w->uds_in[idx]);
		w->uds_in[idx] = -1;
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
	if (w->nwait)
		wait_promote(w); /* entries that finished take the waiting destinations */
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
