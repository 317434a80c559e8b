/* ws — the WebSocket transport of a worker: RFC 6455 upgrade
 * (Sec-WebSocket-Accept via common/sha1.c), frames through wslay with a read
 * budget and backpressure, the close handshake and ping/pong.  Text frames
 * go to w->hooks->on_text; the loop around it is skel.c's. */
#include <errno.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <poll.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/sha1.h"
#include "common/util.h"
#include "worker/ws.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define CLOSE_GRACE_MS 2000     /* our close waits this long for the peer's */
#define HANDSHAKE_WRITE_MS 5000 /* the 101 answer */
#define WS_OUT_CAP (1u << 20) /* queued outbound bytes before we stop reading */
#define RECV_BUDGET (256 << 10) /* bytes read per turn of the loop */
#define ACK_POLL_MS 5           /* ws_await_acked looks this often */

/* ---- the frame gate (worker.h struct ws_gate) ----
 * wslay 1.1 answers a malformed frame header (a control frame over 125
 * bytes or fragmented, a length not in its shortest form, a 64-bit length
 * with its top bit set) with an empty close and an error that ends the
 * loop before the close is written; it takes a close payload of one byte
 * for none, refuses the registered codes 1012-1014, and queues its close
 * echo ahead of the answers to what came before the close.  So every
 * header is checked here first, and close frames never reach wslay. */

void ws_gate_init(struct ws_gate *g) { memset(g, 0, sizeof *g); }

static int gate_header2(struct ws_gate *g)
{
	uint8_t b0 = g->hdr[0], b1 = g->hdr[1], op = b0 & 0x0f, len7 = b1 & 0x7f;
	if (b0 & 0x70) {
		g->why = "reserved bit set";
		return -1;
	}
	if ((op >= 0x3 && op <= 0x7) || op >= 0xb) {
		g->why = "reserved opcode";
		return -1;
	}
	if (!(b1 & 0x80)) {
		g->why = "unmasked client frame";
		return -1;
	}
	if ((op & 0x8) && (len7 > 125 || !(b0 & 0x80))) {
		g->why = len7 > 125 ? "control frame over 125 bytes" : "fragmented control frame";
		return -1;
	}
	g->hneed = (uint8_t)(2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4);
	return 0;
}

/* the payload length, once its last byte is in (before the mask key: wslay
 * checks it there too) */
static int gate_length(struct ws_gate *g)
{
	uint8_t len7 = g->hdr[1] & 0x7f;
	uint64_t n = len7;
	if (len7 == 126) {
		n = (uint64_t)g->hdr[2] << 8 | g->hdr[3];
		if (n < 126) {
			g->why = "16-bit length under 126";
			return -1;
		}
	} else if (len7 == 127) {
		n = 0;
		for (int i = 2; i < 10; i++)
			n = n << 8 | g->hdr[i];
		if (n < 65536 || (n >> 63)) {
			g->why = n >> 63 ? "64-bit length with its top bit set" : "64-bit length under 65536";
			return -1;
		}
	}
	g->left = n;
	return 0;
}

size_t ws_gate_scan(struct ws_gate *g, const uint8_t *buf, size_t n)
{
	size_t i = 0, start = 0; /* start: where the frame being read began in buf (0: before it) */
	while (i < n && !g->verdict) {
		if (g->hlen == 0 || g->hlen < g->hneed) { /* in a header */
			if (g->hlen == 0) {
				start = i;
				g->hneed = 2;
				g->in_close = (buf[i] & 0x0f) == 0x8;
				g->close_len = 0;
			}
			g->hdr[g->hlen++] = buf[i++];
			if ((g->hlen == 2 && gate_header2(g) != 0) ||
			    (g->hlen == g->hneed - 4 && gate_length(g) != 0)) {
				g->verdict = WS_GATE_VIOLATION;
				return start;
			}
			if (g->hlen < g->hneed)
				continue;
		} else {
			size_t take = n - i < g->left ? n - i : (size_t)g->left;
			if (g->in_close) {
				const uint8_t *key = g->hdr + g->hneed - 4;
				for (size_t k = 0; k < take; k++, g->close_len++)
					g->close[g->close_len] = buf[i + k] ^ key[g->close_len % 4];
			}
			i += take;
			g->left -= take;
		}
		if (g->hlen == g->hneed && g->left == 0) { /* the frame is complete */
			if (g->in_close) {
				g->verdict = WS_GATE_CLOSE;
				return start;
			}
			g->hlen = 0;
		}
	}
	if (g->verdict)
		return start;
	return g->in_close ? start : n;
}

int ws_close_code_valid(unsigned code)
{
	/* RFC 6455 §7.4.1 and the IANA registry (1012-1014); 1004-1006 and
	 * 1015 are never sent, 1016-2999 unassigned, 3000-4999 registered or
	 * private */
	return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

/* UTF-8 (§8.1) of a close reason: utf8_valid() less its refusal of NUL */
static int reason_utf8(const uint8_t *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		const uint8_t *nul = memchr(s + i, 0, n - i);
		size_t run = nul ? (size_t)(nul - (s + i)) : n - i;
		if (!utf8_valid(s + i, run))
			return 0;
		i += run + (nul ? 1 : 0);
	}
	return 1;
}

/* What the gate found, once wslay has handled everything before it: reading
 * stops, and the close goes out after what is already queued (ws_close). */
static void gate_act(struct worker *w)
{
	struct ws_gate *g = &w->gate;
	int verdict = g->verdict;
	g->verdict = WS_GATE_DONE;
	wslay_event_shutdown_read(w->ws);
	w->pre_off = w->pre_len; /* nothing more is read */
	if (verdict == WS_GATE_VIOLATION) {
		ws_close(w, WS_CLOSE_PROTOCOL, g->why);
		return;
	}
	g->close_seen = 1;
	if (g->close_len == 0) {
		ws_close(w, 0, ""); /* no code: an empty close answers it */
		return;
	}
	unsigned code = g->close_len >= 2 ? (unsigned)g->close[0] << 8 | g->close[1] : 0;
	if (g->close_len == 1 || !ws_close_code_valid(code))
		ws_close(w, WS_CLOSE_PROTOCOL, g->close_len == 1 ? "close payload of one byte" : "invalid close code");
	else if (!reason_utf8(g->close + 2, g->close_len - 2u))
		ws_close(w, WS_CLOSE_BAD_DATA, "close reason is not UTF-8");
	else
		ws_close(w, (uint16_t)code, ""); /* echo the code (§5.5.1) */
}

static ssize_t ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
	(void)flags;
	struct worker *w = user;
	for (;;) {
		if (w->gate.verdict) {
			if (w->gate.verdict != WS_GATE_DONE)
				gate_act(w);
			wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
			return -1;
		}
		/* fairness and backpressure: at most RECV_BUDGET bytes per turn of the
		 * loop, and nothing while the client leaves our replies unread */
		if (w->recv_budget <= 0 ||
		    wslay_event_get_queued_msg_length(ctx) >= WS_OUT_CAP + (size_t)w->cfg.max_message_bytes) {
			wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
			return -1;
		}
		size_t want = len > (size_t)w->recv_budget ? (size_t)w->recv_budget : len;
		ssize_t n;
		if (w->pre_off < w->pre_len) { /* frames that arrived with the HTTP head */
			n = (ssize_t)buf_take(w->pre, w->pre_len, &w->pre_off, buf, want);
		} else {
			do
				n = recv(w->fd, buf, want, 0);
			while (n < 0 && errno == EINTR);
			if (n < 0) {
				wslay_event_set_error(ctx, (errno == EAGAIN || errno == EWOULDBLOCK)
								   ? WSLAY_ERR_WOULDBLOCK
								   : WSLAY_ERR_CALLBACK_FAILURE);
				return -1;
			}
			if (n == 0) {
				wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
				return -1;
			}
			w->recv_budget -= n;
		}
		/* wslay gets what precedes a close frame or a bad header; when
		 * that is nothing, the gate acts (or reads on) right away */
		size_t pass = ws_gate_scan(&w->gate, buf, (size_t)n);
		if (pass > 0)
			return (ssize_t)pass;
	}
}

static ssize_t ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user)
{
	struct worker *w = user;
	/* wslay writes a frame's header and its payload in two calls: the
	 * header goes with MSG_MORE, so with TCP_NODELAY the two still leave as
	 * one segment, one wake-up of the client per ack or push (issue 23) */
	int more = (flags & WSLAY_MSG_MORE) ? MSG_MORE : 0;
	ssize_t n;
	do
		n = send(w->fd, data, len, MSG_NOSIGNAL | more);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		wslay_event_set_error(ctx, (errno == EAGAIN || errno == EWOULDBLOCK) ? WSLAY_ERR_WOULDBLOCK
										       : WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	w->sent_bytes += (uint64_t)n; /* the outgoing byte stream that ws_acked_bytes measures */
	return n;
}

static void ws_msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *user)
{
	(void)ctx;
	struct worker *w = user;
	switch (arg->opcode) {
	case WSLAY_TEXT_FRAME:
		if (w->phase != PHASE_CLOSING) /* a closing connection reads nothing more */
			w->hooks->on_text(w, (const char *)arg->msg, arg->msg_length);
		break;
	case WSLAY_BINARY_FRAME:
		ws_close(w, WS_CLOSE_UNSUPPORTED, "binary frames are not supported");
		break;
	case WSLAY_PONG:
		w->last_pong = mono_ms();
		if (w->have_slot) { /* when it was last heard, for kick{stale} (moderation.c, the relay) */
			int64_t s = (now_ms() - w->me.connected_ms) / 1000;
			w->me.pong_s = (int32_t)(s < 0 ? 0 : s > INT32_MAX ? INT32_MAX : s);
			presence_touch(w->shm, w->slot, &w->me); /* no change for peer_events to look at */
		}
		break;
	default: /* ping is answered by wslay itself; close frames stay in the gate */
		break;
	}
}

int ws_send_text(struct worker *w, const char *s, size_t len)
{
	struct wslay_event_msg m = {.opcode = WSLAY_TEXT_FRAME, .msg = (const uint8_t *)s, .msg_length = len};
	return wslay_event_queue_msg(w->ws, &m) == 0 ? 0 : -1;
}

int ws_send_json(struct worker *w, cJSON *obj)
{
	/* a reply to a request with a _reqId carries it (§12.7, phase.c) */
	if (w->req_id[0] && !cJSON_GetObjectItemCaseSensitive(obj, "_reqId"))
		cJSON_AddStringToObject(obj, "_reqId", w->req_id);
	char *s = cJSON_PrintUnformatted(obj);
	if (!s)
		return -1;
	int r = ws_send_text(w, s, strlen(s));
	free(s);
	return r;
}

void ws_send_error(struct worker *w, const char *code, const char *message, const char *id)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "error");
	cJSON_AddStringToObject(o, "code", code);
	cJSON_AddStringToObject(o, "message", message);
	if (w->req_id[0]) /* §12.7: an error's id is the request's _reqId */
		id = w->req_id;
	if (id)
		cJSON_AddStringToObject(o, "id", id);
	ws_send_json(w, o);
	cJSON_Delete(o);
}

void ws_send_peer_error(struct worker *w, enum peer_error e, const char *id)
{
	static const struct {
		const char *code, *message;
		int echo_id;
	} errs[] = {
#define X(name, code, message, echo_id) [PEER_ERR_##name] = {code, message, echo_id},
		PEER_ERRORS(X)
#undef X
	};
	if (e <= PEER_ERR_NONE || e >= PEER_ERR_MAX)
		return;
	ws_send_error(w, errs[e].code, errs[e].message, errs[e].echo_id ? id : NULL);
}

void ws_close(struct worker *w, uint16_t code, const char *reason)
{
	if (w->phase == PHASE_CLOSING)
		return;
	w->phase = PHASE_CLOSING;
	w->close_deadline = mono_ms() + CLOSE_GRACE_MS;
	w->close_code = code;
	snprintf(w->close_reason, sizeof w->close_reason, "%s", reason);
}

/* wslay sends control frames ahead of queued messages; queue our close only
 * once what we said before it (an error frame, say) has gone out. */
static void ws_close_flush(struct worker *w)
{
	if (w->phase != PHASE_CLOSING || w->close_queued || wslay_event_get_queued_msg_count(w->ws) > 0)
		return;
	w->close_queued = 1;
	wslay_event_queue_close(w->ws, w->close_code, (const uint8_t *)w->close_reason, strlen(w->close_reason));
}

/* RFC 6455 §4.2.1 */
int ws_handshake(int fd, const struct http_req *req)
{
	if (!http_has_token(req->upgrade, "websocket")) {
		http_respond_error(fd, 426, "websocket upgrade required", HTTP_REFUSAL_MS);
		return -1;
	}
	if (!http_has_token(req->connection, "upgrade")) {
		http_respond_error(fd, 400, "Connection header must contain upgrade", HTTP_REFUSAL_MS);
		return -1;
	}
	if (strcmp(req->ws_version, "13") != 0) {
		http_respond(fd, 426, "application/json", "Sec-WebSocket-Version: 13\r\n",
			     "{\"error\":\"unsupported websocket version\"}", 41, HTTP_REFUSAL_MS);
		return -1;
	}
	unsigned char nonce[32];
	size_t nlen = 0;
	if (strlen(req->ws_key) != 24 ||
	    sodium_base642bin(nonce, sizeof nonce, req->ws_key, 24, NULL, &nlen, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    nlen != 16) {
		http_respond_error(fd, 400, "missing or invalid Sec-WebSocket-Key", HTTP_REFUSAL_MS);
		return -1;
	}
	char cat[64]; /* the key is exactly 24 chars here */
	memcpy(cat, req->ws_key, 24);
	memcpy(cat + 24, WS_GUID, sizeof WS_GUID);
	uint8_t digest[SHA1_BYTES];
	sha1_digest_of(cat, strlen(cat), digest); /* common/sha1.c: no libnettle in the worker */
	char accept[sodium_base64_ENCODED_LEN(SHA1_BYTES, sodium_base64_VARIANT_ORIGINAL)];
	sodium_bin2base64(accept, sizeof accept, digest, sizeof digest, sodium_base64_VARIANT_ORIGINAL);
	char resp[256];
	int n = snprintf(resp, sizeof resp,
			 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			 "Sec-WebSocket-Accept: %s\r\n\r\n",
			 accept);
	return http_write_all(fd, resp, (size_t)n, HANDSHAKE_WRITE_MS);
}

/* RFC 6455 §5.5.2-3: a ping every ping interval; no pong for the pong
 * timeout closes the connection (1001 ping_timeout). */
void ws_keepalive(struct worker *w, int64_t now)
{
	if (w->phase != PHASE_CLOSING && now - w->last_pong > (int64_t)w->cfg.pong_timeout_seconds * 1000)
		ws_close(w, WS_CLOSE_GOING_AWAY, "ping_timeout");
	if (w->phase != PHASE_CLOSING && now >= w->next_ping) {
		struct wslay_event_msg m = {.opcode = WSLAY_PING, .msg = (const uint8_t *)"", .msg_length = 0};
		wslay_event_queue_msg(w->ws, &m);
		w->next_ping = now + (int64_t)w->cfg.ping_interval_seconds * 1000;
	}
}

int64_t ws_deadline(const struct worker *w)
{
	int64_t pong = w->last_pong + (int64_t)w->cfg.pong_timeout_seconds * 1000;
	if (w->next_ping <= 0)
		return pong;
	return w->next_ping < pong ? w->next_ping : pong;
}

int ws_write(struct worker *w) { return wslay_event_send(w->ws) != 0 ? -1 : 0; }

int ws_flush(struct worker *w)
{
	ws_close_flush(w);
	if (wslay_event_want_write(w->ws) && wslay_event_send(w->ws) != 0)
		return -1;
	return 0;
}

int ws_done(const struct worker *w) { return !wslay_event_want_read(w->ws) && !wslay_event_want_write(w->ws); }

static int out_full(const struct worker *w)
{
	return wslay_event_get_queued_msg_length(w->ws) >= WS_OUT_CAP + (size_t)w->cfg.max_message_bytes;
}

int ws_pollfd(const struct worker *w, struct pollfd *p)
{
	short ev = 0;
	/* backpressure: a client that does not read what we queue for it
	 * (acks, errors) is not read from until it does */
	if (wslay_event_want_read(w->ws) && !out_full(w))
		ev |= POLLIN;
	if (wslay_event_want_write(w->ws))
		ev |= POLLOUT;
	*p = (struct pollfd){.fd = w->fd, .events = ev};
	return 1;
}

int ws_has_early_bytes(const struct worker *w)
{
	return w->pre_off < w->pre_len && wslay_event_want_read(w->ws) && !out_full(w);
}

int ws_read(struct worker *w)
{
	w->recv_budget = RECV_BUDGET;
	return wslay_event_recv(w->ws) != 0 ? -1 : 0;
}

int ws_busy(const struct worker *w)
{
	return wslay_event_want_write(w->ws) || wslay_event_get_queued_msg_count(w->ws) > 0;
}

int ws_close_sent(const struct worker *w) { return wslay_event_get_close_sent(w->ws); }

int ws_close_received(const struct worker *w) { return w->gate.close_seen; }

uint64_t ws_sent_bytes(const struct worker *w) { return w->sent_bytes; }

/* For TCP, SIOCOUTQ is write_seq - snd_una: the bytes the peer's stack has
 * not acknowledged yet, whether still unsent or in flight; it keeps its
 * value after a reset.  It may also count the 101 answer's last bytes, which
 * sent_bytes does not: that only makes the answer smaller, never larger. */
int ws_acked_bytes(const struct worker *w, uint64_t *acked)
{
	int outq = 0;
	if (!w->ack_tracking || ioctl(w->fd, SIOCOUTQ, &outq) != 0 || outq < 0)
		return -1;
	*acked = (uint64_t)outq >= w->sent_bytes ? 0 : w->sent_bytes - (uint64_t)outq;
	return 0;
}

void ws_await_acked(const struct worker *w, uint64_t upto, int ms)
{
	int64_t deadline = mono_ms() + ms;
	for (;;) {
		uint64_t acked;
		if (ws_acked_bytes(w, &acked) != 0 || acked >= upto)
			return;
		int64_t left = deadline - mono_ms();
		if (left <= 0)
			return;
		/* no event says "acknowledged": look again shortly, unless the
		 * connection was reset or is gone (then nothing more comes) */
		struct pollfd p = {.fd = w->fd, .events = 0};
		if (poll(&p, 1, left < ACK_POLL_MS ? (int)left : ACK_POLL_MS) > 0 &&
		    (p.revents & (POLLERR | POLLHUP | POLLNVAL)))
			return;
	}
}

/* A TCP connection gets a capped send buffer (SEND_BUFFER_BYTES; the kernel
 * doubles it and no longer autotunes it, up to 4 MB otherwise), so that what
 * is written but not yet acknowledged stays a small window, and its pushes
 * count as delivered once acknowledged.  Anything else (a Unix socket) keeps
 * the old rule: a push counts once written. */
static void ws_socket_setup(struct worker *w)
{
	int proto = 0;
	socklen_t len = sizeof proto;
	if (getsockopt(w->fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) != 0 || proto != IPPROTO_TCP)
		return;
	int size = w->cfg.send_buffer_bytes;
	if (setsockopt(w->fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size) != 0)
		log_warn("SO_SNDBUF refused", "error", strerror(errno));
	int outq;
	if (ioctl(w->fd, SIOCOUTQ, &outq) == 0)
		w->ack_tracking = 1;
	else
		log_warn("SIOCOUTQ unavailable: pushes count as delivered once written", "error", strerror(errno));
}

void ws_start(struct worker *w, const struct http_req *req, int64_t now)
{
	static const struct wslay_event_callbacks cbs = {
		.recv_callback = ws_recv_cb,
		.send_callback = ws_send_cb,
		.on_msg_recv_callback = ws_msg_cb,
	};
	if (wslay_event_context_server_init(&w->ws, &cbs, w) != 0)
		log_fatal("out of memory");
	wslay_event_config_set_max_recv_msg_length(w->ws, (uint64_t)w->cfg.max_message_bytes);
	ws_socket_setup(w);
	ws_gate_init(&w->gate);
	w->pre = req->extra;
	w->pre_len = req->extra_len;
	w->last_pong = now;
	w->next_ping = now + (int64_t)w->cfg.ping_interval_seconds * 1000;
}

void ws_stop(struct worker *w)
{
	wslay_event_context_free(w->ws);
	w->ws = NULL;
}
