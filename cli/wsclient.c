/* wsclient — RFC 6455 client for meshctl (see wsclient.h): a connection
 * opened by libcurl's multi interface without blocking (TCP, TLS and its
 * checks, proxies), the upgrade (wsupgrade.c), then wslay in client mode
 * over curl_easy_send/curl_easy_recv.  Frames queued while the connection
 * is still opening (the hello) go out once it is open. */
#include "wsclient.h"

#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <wslay/wslay.h>

#include "http.h"
#include "wsupgrade.h"
#include "common/util.h"

#define WSC_PING_AFTER_MS 45000   /* silence before we ping the broker */
#define WSC_DEAD_AFTER_MS 90000   /* silence before we give up */
#define WSC_WRITE_STALL_MS 30000  /* queued data that cannot be written */
#define WSC_CLOSE_WAIT_MS 3000    /* for the broker's half of the closing handshake */

struct wsclient {
	struct wsupgrade o; /* the curl connection (o.curl, o.fd) and its opening */
	int open;           /* the upgrade is done: frames flow */
	wslay_event_context_ptr ctx;
	wsclient_text_cb on_text;
	void *arg;
	/* bytes that arrived with the handshake response */
	unsigned char *pre;
	size_t pre_len, pre_off;
	int64_t last_rx, write_since;
	int pinged;       /* a ping is out since last_rx */
	int closing;      /* close queued or sent: waiting for the broker's */
	int64_t close_deadline;
	int user_close;
	int eof, done;
	uint16_t peer_code;
	int peer_closed;
	char peer_reason[128];
	char err[800];
};

static void wsc_fail(struct wsclient *w, const char *msg)
{
	if (!w->err[0])
		snprintf(w->err, sizeof w->err, "%s", msg);
	w->done = 1;
}

static ssize_t wsc_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
			   void *user)
{
	struct wsclient *w = user;
	(void)flags;
	if (w->pre_off < w->pre_len)
		return (ssize_t)buf_take((const unsigned char *)w->pre, w->pre_len, &w->pre_off, buf, len);
	size_t got = 0;
	CURLcode rc = curl_easy_recv(w->o.curl, buf, len, &got);
	if (rc == CURLE_OK && got > 0) {
		w->last_rx = mono_ms();
		w->pinged = 0;
		return (ssize_t)got;
	}
	if (rc == CURLE_OK) {
		w->eof = 1;
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
	} else if (rc == CURLE_AGAIN) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
	} else {
		snprintf(w->err, sizeof w->err, "read: %s", curl_easy_strerror(rc));
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
	}
	return -1;
}

static ssize_t wsc_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
			   void *user)
{
	struct wsclient *w = user;
	(void)flags;
	size_t n = 0;
	CURLcode rc = curl_easy_send(w->o.curl, data, len, &n);
	if (rc == CURLE_OK) {
		w->write_since = mono_ms();
		return (ssize_t)n;
	}
	if (rc == CURLE_AGAIN) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
	} else {
		snprintf(w->err, sizeof w->err, "write: %s", curl_easy_strerror(rc));
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
	}
	return -1;
}

static int wsc_genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
	(void)ctx;
	(void)user;
	randombytes_buf(buf, len);
	return 0;
}

static void wsc_msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a,
		       void *user)
{
	struct wsclient *w = user;
	(void)ctx;
	if (a->opcode == WSLAY_TEXT_FRAME) {
		if (w->on_text && !w->done)
			w->on_text(w->arg, (const char *)a->msg, a->msg_length);
	} else if (a->opcode == WSLAY_CONNECTION_CLOSE) {
		w->peer_closed = 1;
		w->peer_code = a->status_code ? a->status_code : WSLAY_CODE_NO_STATUS_RCVD;
		size_t n = a->msg_length > 2 ? a->msg_length - 2 : 0, o = 0;
		for (size_t i = 0; i < n && o + 1 < sizeof w->peer_reason; i++) {
			unsigned char ch = a->msg[2 + i];
			w->peer_reason[o++] = (char)(ch < 0x20 || ch == 0x7f ? '?' : ch);
		}
		w->peer_reason[o] = 0;
	}
	/* binary frames mean nothing in this protocol; pings are answered by wslay */
}

struct wsclient *wsclient_open(const char *url, int timeout_ms, wsclient_text_cb on_text, void *arg,
			       char *err, size_t errlen)
{
	static const struct wslay_event_callbacks cbs = {
		.recv_callback = wsc_recv_cb,
		.send_callback = wsc_send_cb,
		.genmask_callback = wsc_genmask_cb,
		.on_msg_recv_callback = wsc_msg_cb,
	};
	struct wsclient *w = calloc(1, sizeof *w);
	if (!w) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	w->on_text = on_text;
	w->arg = arg;
	if (wsupgrade_start(&w->o, url, timeout_ms, err, errlen) != 0) {
		wsclient_free(w);
		return NULL;
	}
	if (wslay_event_context_client_init(&w->ctx, &cbs, w) != 0) {
		snprintf(err, errlen, "out of memory");
		wsclient_free(w);
		return NULL;
	}
	wslay_event_config_set_max_recv_msg_length(w->ctx, WSCLIENT_MAX_MSG);
	return w;
}

/* move the opening on without waiting; once open, the frames may flow */
static void wsc_advance(struct wsclient *w)
{
	char why[sizeof w->err];
	if (w->done || w->open)
		return;
	int r = wsupgrade_step(&w->o, why, sizeof why);
	if (r < 0) {
		wsc_fail(w, why);
	} else if (r == 1) {
		w->pre = w->o.pre;
		w->pre_len = w->o.pre_len;
		w->o.pre = NULL;
		w->open = 1;
		w->last_rx = w->write_since = mono_ms();
	}
}

void wsclient_free(struct wsclient *w)
{
	if (!w)
		return;
	if (w->ctx)
		wslay_event_context_free(w->ctx);
	wsupgrade_free(&w->o); /* closes the socket */
	free(w->pre);
	free(w);
}

int wsclient_send_text(struct wsclient *w, const char *msg, size_t len)
{
	if (w->done || w->closing)
		return -1;
	struct wslay_event_msg m = {.opcode = WSLAY_TEXT_FRAME, .msg = (const uint8_t *)msg,
				    .msg_length = len};
	if (!wslay_event_want_write(w->ctx))
		w->write_since = mono_ms();
	return wslay_event_queue_msg(w->ctx, &m) == 0 ? 0 : -1;
}

void wsclient_close(struct wsclient *w, uint16_t code, const char *reason)
{
	if (w->done || w->closing)
		return;
	if (!w->open) { /* nothing to say goodbye on yet */
		w->user_close = 1;
		w->done = 1;
		return;
	}
	size_t rlen = reason ? strlen(reason) : 0;
	if (rlen > 123)
		rlen = 123;
	w->user_close = 1;
	w->closing = 1;
	w->close_deadline = mono_ms() + WSC_CLOSE_WAIT_MS;
	if (!wslay_event_want_write(w->ctx))
		w->write_since = mono_ms();
	/* fails only when a close is already queued: then that one ends it */
	(void)wslay_event_queue_close(w->ctx, code, (const uint8_t *)reason, rlen);
}

size_t wsclient_queued(const struct wsclient *w)
{
	return wslay_event_get_queued_msg_length(w->ctx);
}

static void wsc_do_recv(struct wsclient *w)
{
	if (w->done || !wslay_event_get_read_enabled(w->ctx))
		return;
	if (wslay_event_recv(w->ctx) != 0) {
		if (w->eof && !w->peer_closed)
			wsc_fail(w, "connection lost (no close frame)");
		else if (!w->eof)
			wsc_fail(w, w->err[0] ? w->err : "receive failed");
		w->done = 1;
	}
}

static void wsc_do_send(struct wsclient *w)
{
	if (w->done || !wslay_event_want_write(w->ctx))
		return;
	if (wslay_event_send(w->ctx) != 0)
		wsc_fail(w, w->err[0] ? w->err : "send failed");
}

/* wslay failed the connection itself (bad or oversized frame): say so */
static void wsc_protocol_error(struct wsclient *w)
{
	if (w->err[0])
		return;
	if (wslay_event_get_close_sent(w->ctx)) {
		uint16_t c = wslay_event_get_status_code_sent(w->ctx);
		snprintf(w->err, sizeof w->err, "protocol error from the broker (we closed %u%s)", c,
			 c == WSLAY_CODE_MESSAGE_TOO_BIG ? ": frame over 16 MiB" : "");
	} else {
		snprintf(w->err, sizeof w->err, "protocol error from the broker");
	}
}

/* timers and the end of the closing handshake */
static void wsc_check(struct wsclient *w, int64_t now)
{
	if (w->done)
		return;
	int got = wslay_event_get_close_received(w->ctx), sent = wslay_event_get_close_sent(w->ctx);
	/* reading stops only on the broker's close or on a failure of ours */
	int failed = !got && !wslay_event_get_read_enabled(w->ctx);
	if (got && (sent || !wslay_event_get_write_enabled(w->ctx))) {
		w->done = 1;
		return;
	}
	if (failed && (sent || !wslay_event_get_write_enabled(w->ctx))) {
		wsc_protocol_error(w);
		w->done = 1;
		return;
	}
	if (!w->closing && (got || failed)) {
		/* our half of the close is queued: give it a moment to go out */
		w->closing = 1;
		w->close_deadline = now + WSC_CLOSE_WAIT_MS;
	}
	if (w->closing && now >= w->close_deadline) {
		if (failed)
			wsc_protocol_error(w);
		w->done = 1;
		return;
	}
	if (wslay_event_want_write(w->ctx) && now - w->write_since > WSC_WRITE_STALL_MS) {
		wsc_fail(w, "write timed out (the broker is not reading)");
		return;
	}
	if (now - w->last_rx > WSC_DEAD_AFTER_MS) {
		wsc_fail(w, "no data from the broker for 90 s");
		return;
	}
	if (!w->closing && !w->pinged && now - w->last_rx > WSC_PING_AFTER_MS) {
		struct wslay_event_msg ping = {.opcode = WSLAY_PING, .msg = NULL, .msg_length = 0};
		if (!wslay_event_want_write(w->ctx))
			w->write_since = now;
		wslay_event_queue_msg(w->ctx, &ping);
		w->pinged = 1;
	}
}

static int wsc_next_timer(const struct wsclient *w, int64_t now, int timeout_ms)
{
	int64_t t = now + timeout_ms;
	if (w->closing && w->close_deadline < t)
		t = w->close_deadline;
	int64_t live = w->last_rx + (w->pinged ? WSC_DEAD_AFTER_MS : WSC_PING_AFTER_MS) + 1;
	if (live < t)
		t = live;
	if (wslay_event_want_write(w->ctx) && w->write_since + WSC_WRITE_STALL_MS + 1 < t)
		t = w->write_since + WSC_WRITE_STALL_MS + 1;
	return t <= now ? 0 : (int)(t - now);
}

/* still opening: wait for the socket (upgrade) or a tick (connect), then
 * move on; once open, what was queued (the hello) goes out and whatever
 * came with the 101 is read */
static int wsc_step_opening(struct wsclient *w, int timeout_ms, int extra_fd, int *extra_ready)
{
	struct pollfd p[2] = {{.fd = -1}, {.fd = extra_fd, .events = POLLIN}};
	wsupgrade_pollfd(&w->o, &p[0]);
	int n = poll(p, extra_fd >= 0 ? 2 : 1, wsclient_timer_ms(w, timeout_ms));
	if (n < 0 && errno != EINTR) {
		wsc_fail(w, "poll failed");
		return 0;
	}
	if (n > 0 && extra_fd >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)))
		*extra_ready = 1;
	wsc_advance(w);
	if (w->open) {
		wsc_do_recv(w);
		wsc_do_send(w);
	}
	return !w->done;
}

int wsclient_step(struct wsclient *w, int timeout_ms, int extra_fd, int *extra_ready)
{
	*extra_ready = 0;
	if (timeout_ms < 0)
		timeout_ms = 0;
	if (!w->open) {
		wsc_advance(w);
		if (w->done)
			return 0;
		if (!w->open)
			return wsc_step_opening(w, timeout_ms, extra_fd, extra_ready);
		wsc_do_recv(w); /* TLS may hold what came with the 101 */
	}
	if (w->pre_off < w->pre_len)
		wsc_do_recv(w);
	wsc_do_send(w);
	wsc_check(w, mono_ms());
	if (w->done)
		return 0;

	struct pollfd p[2] = {{.fd = w->o.fd}, {.fd = extra_fd, .events = POLLIN}};
	if (wslay_event_want_read(w->ctx))
		p[0].events |= POLLIN;
	if (wslay_event_want_write(w->ctx))
		p[0].events |= POLLOUT;
	int n = poll(p, extra_fd >= 0 ? 2 : 1, wsc_next_timer(w, mono_ms(), timeout_ms));
	if (n < 0 && errno != EINTR) {
		wsc_fail(w, "poll failed");
		return 0;
	}
	if (n > 0) {
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			if (wslay_event_want_read(w->ctx))
				wsc_do_recv(w);
			else if (p[0].revents & (POLLHUP | POLLERR)) {
				w->eof = 1; /* nothing more will come or go */
				w->done = 1;
			}
		}
		wsc_do_send(w);
		if (extra_fd >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)))
			*extra_ready = 1;
	}
	wsc_check(w, mono_ms());
	return !w->done;
}

void wsclient_pollfd(const struct wsclient *w, struct pollfd *p)
{
	*p = (struct pollfd){.fd = -1};
	if (w->done)
		return;
	if (!w->open) {
		wsupgrade_pollfd(&w->o, p);
		return;
	}
	p->fd = w->o.fd;
	if (wslay_event_want_read(w->ctx))
		p->events |= POLLIN;
	if (wslay_event_want_write(w->ctx))
		p->events |= POLLOUT;
}

int wsclient_timer_ms(const struct wsclient *w, int cap_ms)
{
	if (!w->open)
		return wsupgrade_timer_ms(&w->o, cap_ms);
	if (w->pre_off < w->pre_len)
		return 0;
	return wsc_next_timer(w, mono_ms(), cap_ms);
}

int wsclient_peer_close(const struct wsclient *w, uint16_t *code, const char **reason)
{
	if (!w->peer_closed)
		return 0;
	*code = w->peer_code;
	*reason = w->peer_reason;
	return 1;
}

const char *wsclient_error(const struct wsclient *w)
{
	return w->err[0] ? w->err : NULL;
}
