/* wsclient — RFC 6455 client for meshctl (see wsclient.h): a hand-written
 * upgrade request with a fresh Sec-WebSocket-Key, a checked
 * Sec-WebSocket-Accept, then wslay in client mode on a non-blocking socket. */
#include "wsclient.h"

#include <errno.h>
#include <nettle/sha1.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wslay/wslay.h>

#include "dial.h"
#include "common/util.h"

#define WSC_HANDSHAKE_MAX 16384   /* response head cap */
#define WSC_PING_AFTER_MS 45000   /* silence before we ping the broker */
#define WSC_DEAD_AFTER_MS 90000   /* silence before we give up */
#define WSC_WRITE_STALL_MS 30000  /* queued data that cannot be written */
#define WSC_CLOSE_WAIT_MS 3000    /* for the broker's half of the closing handshake */
#define WSC_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

struct wsclient {
	int fd;
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
	char err[256];
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
	ssize_t r;
	do
		r = recv(w->fd, buf, len, 0);
	while (r < 0 && errno == EINTR);
	if (r > 0) {
		w->last_rx = mono_ms();
		w->pinged = 0;
		return r;
	}
	if (r == 0) {
		w->eof = 1;
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
	} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
	} else {
		snprintf(w->err, sizeof w->err, "read: %s", strerror(errno));
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
	}
	return -1;
}

static ssize_t wsc_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
			   void *user)
{
	struct wsclient *w = user;
	ssize_t r;
	do
		r = send(w->fd, data, len, MSG_NOSIGNAL | ((flags & WSLAY_MSG_MORE) ? MSG_MORE : 0));
	while (r < 0 && errno == EINTR);
	if (r >= 0) {
		w->write_since = mono_ms();
		return r;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
	} else {
		snprintf(w->err, sizeof w->err, "write: %s", strerror(errno));
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

/* --- the opening handshake (RFC 6455 §4.1) --- */

/* 1 when the comma-separated list holds token (case-insensitive) */
static int wsc_has_token(const char *list, const char *token)
{
	size_t tlen = strlen(token);
	for (const char *p = list; *p;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		size_t n = strcspn(p, ",");
		size_t m = n;
		while (m > 0 && (p[m - 1] == ' ' || p[m - 1] == '\t'))
			m--;
		if (m == tlen && !strncasecmp(p, token, tlen))
			return 1;
		p += n;
	}
	return 0;
}

static void wsc_expected_accept(const char *key, char out[29])
{
	struct sha1_ctx sha;
	uint8_t digest[SHA1_DIGEST_SIZE];
	sha1_init(&sha);
	sha1_update(&sha, strlen(key), (const uint8_t *)key);
	sha1_update(&sha, strlen(WSC_GUID), (const uint8_t *)WSC_GUID);
	sha1_digest(&sha, sizeof digest, digest);
	sodium_bin2base64(out, 29, digest, sizeof digest, sodium_base64_VARIANT_ORIGINAL);
}

static int wsc_handshake(struct wsclient *w, const struct dial_url *u, int64_t deadline, char *err,
			 size_t errlen)
{
	unsigned char nonce[16];
	char key[25], accept[29], req[3072], val[256];
	randombytes_buf(nonce, sizeof nonce);
	sodium_bin2base64(key, sizeof key, nonce, sizeof nonce, sodium_base64_VARIANT_ORIGINAL);
	int n = snprintf(req, sizeof req,
			 "GET %s HTTP/1.1\r\n"
			 "Host: %s\r\n"
			 "Upgrade: websocket\r\n"
			 "Connection: Upgrade\r\n"
			 "Sec-WebSocket-Key: %s\r\n"
			 "Sec-WebSocket-Version: 13\r\n"
			 "User-Agent: meshctl\r\n"
			 "\r\n",
			 u->path, u->authority, key);
	if (n < 0 || (size_t)n >= sizeof req) {
		snprintf(err, errlen, "URL too long");
		return -1;
	}
	if (dial_write_all(w->fd, req, (size_t)n, deadline, err, errlen) != 0)
		return -1;

	char *head = malloc(WSC_HANDSHAKE_MAX + 1);
	size_t len = 0;
	char *end = NULL;
	if (!head) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	while (!end) {
		if (len == WSC_HANDSHAKE_MAX) {
			snprintf(err, errlen, "handshake: response head over %d bytes", WSC_HANDSHAKE_MAX);
			goto fail;
		}
		ssize_t r = dial_read(w->fd, head + len, WSC_HANDSHAKE_MAX - len, deadline, err, errlen);
		if (r < 0)
			goto fail;
		if (r == 0) {
			snprintf(err, errlen, "handshake: connection closed by the broker");
			goto fail;
		}
		len += (size_t)r;
		head[len] = 0;
		if (memchr(head, 0, len)) {
			snprintf(err, errlen, "handshake: NUL byte in the response head");
			goto fail;
		}
		end = strstr(head, "\r\n\r\n");
	}
	size_t head_len = (size_t)(end - head) + 4;
	if (len > head_len) {
		/* frames sent right behind the 101: wslay reads them first */
		if (!(w->pre = malloc(len - head_len))) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		memcpy(w->pre, head + head_len, len - head_len);
		w->pre_len = len - head_len;
	}
	end[2] = 0; /* keep the last header's CRLF for wsc_header */

	int code = 0;
	if (strncmp(head, "HTTP/1.1 ", 9) != 0 || sscanf(head + 9, "%3d", &code) != 1) {
		snprintf(err, errlen, "handshake: not an HTTP/1.1 response");
		goto fail;
	}
	if (code != 101) {
		size_t sl = strcspn(head, "\r");
		snprintf(err, errlen, "handshake refused: %.*s", (int)(sl > 120 ? 120 : sl), head);
		goto fail;
	}
	if (!dial_header(head, "Upgrade", val, sizeof val) || strcasecmp(val, "websocket") != 0) {
		snprintf(err, errlen, "handshake: no \"Upgrade: websocket\" in the response");
		goto fail;
	}
	if (!dial_header(head, "Connection", val, sizeof val) || !wsc_has_token(val, "upgrade")) {
		snprintf(err, errlen, "handshake: no \"Connection: Upgrade\" in the response");
		goto fail;
	}
	wsc_expected_accept(key, accept);
	if (!dial_header(head, "Sec-WebSocket-Accept", val, sizeof val) || strcmp(val, accept) != 0) {
		snprintf(err, errlen, "handshake: wrong or missing Sec-WebSocket-Accept");
		goto fail;
	}
	/* we asked for neither: a response naming one fails the connection */
	if (dial_header(head, "Sec-WebSocket-Extensions", val, sizeof val) ||
	    dial_header(head, "Sec-WebSocket-Protocol", val, sizeof val)) {
		snprintf(err, errlen, "handshake: the broker chose an extension or subprotocol");
		goto fail;
	}
	free(head);
	return 0;
fail:
	free(head);
	return -1;
}

struct wsclient *wsclient_open(const char *url, int timeout_ms, wsclient_text_cb on_text, void *arg,
			       char *err, size_t errlen)
{
	struct dial_url u;
	char why[256];
	int64_t deadline = mono_ms() + timeout_ms;
	if (dial_parse_url(url, "ws", &u, err, errlen) != 0)
		return NULL;
	struct wsclient *w = calloc(1, sizeof *w);
	if (!w) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	w->on_text = on_text;
	w->arg = arg;
	w->fd = dial_tcp(u.host, u.port, timeout_ms, why, sizeof why);
	if (w->fd < 0) {
		snprintf(err, errlen, "cannot connect to %s: %s", url, why);
		free(w);
		return NULL;
	}
	if (wsc_handshake(w, &u, deadline, why, sizeof why) != 0) {
		snprintf(err, errlen, "%s: %s", url, why);
		wsclient_free(w);
		return NULL;
	}
	static const struct wslay_event_callbacks cbs = {
		.recv_callback = wsc_recv_cb,
		.send_callback = wsc_send_cb,
		.genmask_callback = wsc_genmask_cb,
		.on_msg_recv_callback = wsc_msg_cb,
	};
	if (wslay_event_context_client_init(&w->ctx, &cbs, w) != 0) {
		snprintf(err, errlen, "out of memory");
		wsclient_free(w);
		return NULL;
	}
	wslay_event_config_set_max_recv_msg_length(w->ctx, WSCLIENT_MAX_MSG);
	w->last_rx = w->write_since = mono_ms();
	return w;
}

void wsclient_free(struct wsclient *w)
{
	if (!w)
		return;
	if (w->ctx)
		wslay_event_context_free(w->ctx);
	if (w->fd >= 0)
		close(w->fd);
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

int wsclient_step(struct wsclient *w, int timeout_ms, int extra_fd, int *extra_ready)
{
	*extra_ready = 0;
	if (timeout_ms < 0)
		timeout_ms = 0;
	if (w->pre_off < w->pre_len)
		wsc_do_recv(w);
	wsc_do_send(w);
	wsc_check(w, mono_ms());
	if (w->done)
		return 0;

	struct pollfd p[2] = {{.fd = w->fd}, {.fd = extra_fd, .events = POLLIN}};
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
	*p = (struct pollfd){.fd = w->done ? -1 : w->fd};
	if (w->done)
		return;
	if (wslay_event_want_read(w->ctx))
		p->events |= POLLIN;
	if (wslay_event_want_write(w->ctx))
		p->events |= POLLOUT;
}

int wsclient_timer_ms(const struct wsclient *w, int cap_ms)
{
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
