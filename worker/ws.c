/* ws — the WebSocket side of a worker: RFC 6455 upgrade (Sec-WebSocket-Accept
 * via nettle SHA-1), then one poll() loop over the socket (wslay), the
 * database, the Unix sockets of other workers and the timers (hello timeout,
 * ping/pong, TTL), until the connection ends. */
#include <errno.h>
#include <nettle/sha1.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto/log.h"
#include "proto/util.h"
#include "worker/worker.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define CLOSE_GRACE_MS 2000
#define WS_OUT_CAP (1u << 20) /* queued outbound bytes before we stop reading */
#define RECV_BUDGET (256 << 10) /* bytes read per turn of the loop */

static ssize_t ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
	(void)flags;
	struct worker *w = user;
	/* fairness and backpressure: at most RECV_BUDGET bytes per turn of the
	 * loop, and nothing while the client leaves our replies unread */
	if (w->recv_budget <= 0 ||
	    wslay_event_get_queued_msg_length(ctx) >= WS_OUT_CAP + (size_t)w->cfg.max_message_bytes) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (len > (size_t)w->recv_budget)
		len = (size_t)w->recv_budget;
	if (w->pre_off < w->pre_len) /* frames that arrived with the HTTP head */
		return (ssize_t)buf_take(w->pre, w->pre_len, &w->pre_off, buf, len);
	ssize_t n;
	do
		n = recv(w->fd, buf, len, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		wslay_event_set_error(ctx, (errno == EAGAIN || errno == EWOULDBLOCK) ? WSLAY_ERR_WOULDBLOCK
										       : WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	if (n == 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	w->recv_budget -= n;
	return n;
}

static ssize_t ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user)
{
	(void)flags;
	struct worker *w = user;
	ssize_t n;
	do
		n = send(w->fd, data, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		wslay_event_set_error(ctx, (errno == EAGAIN || errno == EWOULDBLOCK) ? WSLAY_ERR_WOULDBLOCK
										       : WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return n;
}

static void ws_msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *user)
{
	(void)ctx;
	struct worker *w = user;
	switch (arg->opcode) {
	case WSLAY_TEXT_FRAME:
		if (!w->closing)
			peer_on_text(w, (const char *)arg->msg, arg->msg_length);
		break;
	case WSLAY_BINARY_FRAME:
		ws_close(w, WSLAY_CODE_UNSUPPORTED_DATA, "binary frames are not supported");
		break;
	case WSLAY_PONG:
		w->last_pong = mono_ms();
		break;
	default: /* ping is answered and close is handled by wslay itself */
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
	if (id)
		cJSON_AddStringToObject(o, "id", id);
	ws_send_json(w, o);
	cJSON_Delete(o);
}

void ws_close(struct worker *w, uint16_t code, const char *reason)
{
	if (w->closing)
		return;
	w->closing = 1;
	w->close_deadline = mono_ms() + CLOSE_GRACE_MS;
	w->close_code = code;
	snprintf(w->close_reason, sizeof w->close_reason, "%s", reason);
}

/* wslay sends control frames ahead of queued messages; queue our close only
 * once what we said before it (an error frame, say) has gone out. */
static void ws_close_flush(struct worker *w)
{
	if (!w->closing || w->close_queued || wslay_event_get_queued_msg_count(w->ws) > 0)
		return;
	w->close_queued = 1;
	wslay_event_queue_close(w->ws, w->close_code, (const uint8_t *)w->close_reason, strlen(w->close_reason));
}

/* RFC 6455 §4.2.1: validate the upgrade, answer 101.  0 = upgraded. */
static int ws_handshake(struct worker *w, struct http_req *req)
{
	if (!http_has_token(req->upgrade, "websocket")) {
		http_respond_error(w->fd, 426, "websocket upgrade required", 2000);
		return -1;
	}
	if (!http_has_token(req->connection, "upgrade")) {
		http_respond_error(w->fd, 400, "Connection header must contain upgrade", 2000);
		return -1;
	}
	if (strcmp(req->ws_version, "13") != 0) {
		http_respond(w->fd, 426, "application/json", "Sec-WebSocket-Version: 13\r\n",
			     "{\"error\":\"unsupported websocket version\"}", 41, 2000);
		return -1;
	}
	unsigned char nonce[32];
	size_t nlen = 0;
	if (strlen(req->ws_key) != 24 ||
	    sodium_base642bin(nonce, sizeof nonce, req->ws_key, 24, NULL, &nlen, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    nlen != 16) {
		http_respond_error(w->fd, 400, "missing or invalid Sec-WebSocket-Key", 2000);
		return -1;
	}
	char cat[64]; /* the key is exactly 24 chars here */
	memcpy(cat, req->ws_key, 24);
	memcpy(cat + 24, WS_GUID, sizeof WS_GUID);
	struct sha1_ctx sha;
	uint8_t digest[SHA1_DIGEST_SIZE];
	sha1_init(&sha);
	sha1_update(&sha, strlen(cat), (const uint8_t *)cat);
	sha1_digest(&sha, sizeof digest, digest);
	char accept[sodium_base64_ENCODED_LEN(SHA1_DIGEST_SIZE, sodium_base64_VARIANT_ORIGINAL)];
	sodium_bin2base64(accept, sizeof accept, digest, sizeof digest, sodium_base64_VARIANT_ORIGINAL);
	char resp[256];
	int n = snprintf(resp, sizeof resp,
			 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			 "Sec-WebSocket-Accept: %s\r\n\r\n",
			 accept);
	return http_write_all(w->fd, resp, (size_t)n, 5000);
}

static int64_t min_deadline(int64_t a, int64_t b)
{
	if (a <= 0)
		return b;
	if (b <= 0)
		return a;
	return a < b ? a : b;
}

static void ws_timers(struct worker *w, int64_t now)
{
	if (w->hello_deadline && !w->authed && !w->hello_inflight && now >= w->hello_deadline) {
		counter_add(w->shm, C_REJ_HELLO_TIMEOUT, 1);
		ws_close(w, WSLAY_CODE_POLICY_VIOLATION, "hello_timeout");
		w->hello_deadline = 0;
	}
	if (!w->closing && now - w->last_pong > (int64_t)w->cfg.pong_timeout_seconds * 1000)
		ws_close(w, WSLAY_CODE_GOING_AWAY, "ping_timeout");
	if (!w->closing && now >= w->next_ping) {
		struct wslay_event_msg m = {.opcode = WSLAY_PING, .msg = (const uint8_t *)"", .msg_length = 0};
		wslay_event_queue_msg(w->ws, &m);
		w->next_ping = now + (int64_t)w->cfg.ping_interval_seconds * 1000;
	}
	if (w->authed)
		peer_tick(w, now);
}

static void ws_loop(struct worker *w)
{
	struct pollfd fds[2 + UDS_IN_MAX + UDS_OUT_MAX + 1];
	for (;;) {
		int64_t now = mono_ms();
		if (worker_terminating() && !w->closing)
			ws_close(w, WSLAY_CODE_GOING_AWAY, "shutdown");
		ws_timers(w, now);
		if (w->authed)
			peer_pump(w);
		ws_close_flush(w);
		if (wslay_event_want_write(w->ws) && wslay_event_send(w->ws) != 0)
			break;
		if (w->authed)
			peer_pump(w); /* what the send just wrote may free room for the next push */
		ws_close_flush(w);
		if (wslay_event_want_write(w->ws) && wslay_event_send(w->ws) != 0)
			break;
		if (!wslay_event_want_read(w->ws) && !wslay_event_want_write(w->ws))
			break; /* closed both ways */
		if (w->closing && now >= w->close_deadline)
			break; /* the peer never read or never answered our close */
		int nf = 0;
		short ev = 0;
		/* backpressure: a client that does not read what we queue for it
		 * (acks, errors) is not read from until it does */
		if (wslay_event_want_read(w->ws) &&
		    wslay_event_get_queued_msg_length(w->ws) < WS_OUT_CAP + (size_t)w->cfg.max_message_bytes)
			ev |= POLLIN;
		if (wslay_event_want_write(w->ws))
			ev |= POLLOUT;
		fds[nf++] = (struct pollfd){.fd = w->fd, .events = ev};
		int dbi = -1;
		short dbev = 0;
		int dbfd = w->db ? db_pollfd(w->db, &dbev) : -1;
		if (dbfd >= 0) {
			dbi = nf;
			fds[nf++] = (struct pollfd){.fd = dbfd, .events = dbev};
		}
		int udsi = nf;
		nf += uds_pollfds(w, fds + nf, (int)(sizeof fds / sizeof fds[0]) - nf);
		int64_t deadline = w->next_ping;
		deadline = min_deadline(deadline, w->last_pong + (int64_t)w->cfg.pong_timeout_seconds * 1000);
		if (!w->authed)
			deadline = min_deadline(deadline, w->hello_deadline);
		if (w->closing)
			deadline = min_deadline(deadline, w->close_deadline);
		if (w->db)
			deadline = min_deadline(deadline, db_next_deadline(w->db));
		if (w->authed)
			deadline = min_deadline(deadline, w->next_ttl_check);
		int timeout = deadline > 0 ? (int)(deadline - now) : 1000;
		if (timeout < 0)
			timeout = 0;
		if (w->pre_off < w->pre_len &&
		    wslay_event_get_queued_msg_length(w->ws) < WS_OUT_CAP + (size_t)w->cfg.max_message_bytes)
			timeout = 0; /* early frames are waiting in memory */
		struct timespec ts = {.tv_sec = timeout / 1000, .tv_nsec = (long)(timeout % 1000) * 1000000};
		int n = ppoll(fds, (nfds_t)nf, &ts, worker_wait_mask());
		if (n < 0 && errno != EINTR)
			log_fatal("poll failed", "error", strerror(errno));
		if (n < 0)
			continue;
		now = mono_ms();
		if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) || w->pre_off < w->pre_len) {
			w->recv_budget = RECV_BUDGET;
			if (wslay_event_recv(w->ws) != 0)
				break;
		}
		if (w->db)
			db_service(w->db, dbi >= 0 ? fds[dbi].revents : 0, now);
		uds_handle(w, fds + udsi, nf - udsi);
	}
}

void ws_serve(struct worker *w, struct http_req *req)
{
	if (ws_handshake(w, req) != 0)
		return;
	if (worker_shm(w) != 0) {
		/* no presence table: nobody can find this peer; refuse politely */
		static const unsigned char close_frame[] = {0x88, 0x02, 0x03, 0xf3}; /* 1011 */
		http_write_all(w->fd, close_frame, sizeof close_frame, 1000);
		return;
	}
	counter_add(w->shm, C_CONNECTIONS_TOTAL, 1);
	static const struct wslay_event_callbacks cbs = {
		.recv_callback = ws_recv_cb,
		.send_callback = ws_send_cb,
		.on_msg_recv_callback = ws_msg_cb,
	};
	if (wslay_event_context_server_init(&w->ws, &cbs, w) != 0)
		log_fatal("out of memory");
	wslay_event_config_set_max_recv_msg_length(w->ws, (uint64_t)w->cfg.max_message_bytes);
	w->pre = req->extra;
	w->pre_len = req->extra_len;
	int64_t now = mono_ms();
	w->hello_deadline = now + (int64_t)w->cfg.hello_timeout_seconds * 1000;
	w->last_pong = now;
	w->next_ping = now + (int64_t)w->cfg.ping_interval_seconds * 1000;
	w->uds_listen = -1;
	for (int i = 0; i < UDS_IN_MAX; i++)
		w->uds_in[i] = -1;
	for (int i = 0; i < UDS_OUT_MAX; i++)
		w->uds_out[i].fd = -1;
	ws_loop(w);
	peer_leave(w);
	uds_close_all(w);
	wslay_event_context_free(w->ws);
	w->ws = NULL;
}
