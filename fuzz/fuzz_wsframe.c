/* fuzz_wsframe — libFuzzer target for the WebSocket transport of a worker
 * (worker/ws.c): the input is the client's byte stream after the upgrade,
 * read through the worker's own wslay setup — the same ws_start, recv/send
 * callbacks, frame gate, close handling and backpressure, driven like
 * skel.c's loop (ws_flush, ws_read until the connection is done) — with a
 * socketpair standing for the client.  Part of the stream comes as the
 * early bytes of the HTTP head (w->pre), the rest through the socket,
 * followed by the client's EOF.
 *
 * Checked: no crash, leak or hang; every text message handed to the
 * protocol is valid UTF-8 and within MAX_MESSAGE_BYTES and arrives while
 * the connection is open; reading ends in failure only at the client's
 * EOF (a refused frame gets a close frame); what the broker writes is a
 * well-formed server frame stream (unmasked, no RSV bit, known opcodes,
 * control frames whole and <= 125 bytes, shortest lengths), with nothing
 * after a close frame and only a close code a server may send. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/util.h"
#include "shm/presence.h"
#include "worker/ws.h"

#define OUT_MAX (8u << 20) /* what the broker may write for one input (answers are small) */

static unsigned char *out; /* what the broker wrote */
static size_t out_len;

static void need(int ok)
{
	if (!ok)
		abort();
}

/* ws.c records a pong's time in its presence slot (kick{stale}, issue 24)
 * only once the connection has one; this harness never gives it one */
void presence_touch(struct shm *s, uint32_t slot, const struct presence_info *info)
{
	(void)s, (void)slot, (void)info;
	abort();
}

/* UTF-8 as RFC 6455 §8.1 means it: utf8_valid() less its refusal of NUL */
static int text_utf8(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		const unsigned char *nul = memchr(s + i, 0, n - i);
		size_t run = nul ? (size_t)(nul - (s + i)) : n - i;
		if (!utf8_valid(s + i, run))
			return 0;
		i += run + (nul ? 1 : 0);
	}
	return 1;
}

/* the protocol's side, as phase_dispatch behaves towards the transport:
 * one answer per message; a message starting with '!' makes the broker
 * close (as a refused hello does), one starting with '?' gets an answer
 * with a 16-bit length */
static void on_text(struct worker *w, const char *text, size_t len)
{
	need(w->phase != PHASE_CLOSING);
	need(len <= (size_t)w->cfg.max_message_bytes);
	need(text_utf8((const unsigned char *)text, len));
	if (len && text[0] == '!') {
		ws_send_error(w, "malformed", "hello rejected: malformed", NULL);
		ws_close(w, WS_CLOSE_POLICY, "malformed");
	} else if (len && text[0] == '?') {
		static char big[300];
		memset(big, 'b', sizeof big);
		ws_send_text(w, big, sizeof big);
	} else {
		ws_send_error(w, "no_hello", "must send hello first", NULL);
	}
}

static const struct worker_hooks hooks = {.on_text = on_text};

static void drain(int fd)
{
	unsigned char buf[65536];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n <= 0)
			return;
		size_t take = (size_t)n;
		if (out_len + take > OUT_MAX)
			take = OUT_MAX - out_len;
		memcpy(out + out_len, buf, take);
		out_len += take;
	}
}

/* the broker's frames: well-formed, nothing after the close */
static void check_output(void)
{
	size_t i = 0;
	int closed = 0;
	while (i < out_len) {
		need(!closed);
		if (out_len - i < 2)
			return; /* cut off by OUT_MAX or a write the client never read */
		uint8_t b0 = out[i], b1 = out[i + 1], op = b0 & 0x0f;
		need(!(b1 & 0x80) && !(b0 & 0x70));
		need(op == 0x0 || op == 0x1 || op == 0x2 || op == 0x8 || op == 0x9 || op == 0xa);
		uint64_t n = b1 & 0x7f;
		size_t hl = 2;
		if (n == 126) {
			if (out_len - i < 4)
				return;
			n = (uint64_t)out[i + 2] << 8 | out[i + 3];
			need(n >= 126);
			hl = 4;
		} else if (n == 127) {
			if (out_len - i < 10)
				return;
			n = 0;
			for (int k = 2; k < 10; k++)
				n = n << 8 | out[i + k];
			need(n >= 65536 && !(n >> 63));
			hl = 10;
		}
		if (op & 0x8)
			need((b0 & 0x80) && n <= 125);
		if (out_len - i - hl < n)
			return;
		if (op == 0x8) {
			closed = 1;
			need(n != 1);
			if (n >= 2) {
				unsigned code = (unsigned)out[i + hl] << 8 | out[i + hl + 1];
				need(ws_close_code_valid(code));
			}
		}
		i += hl + (size_t)n;
	}
}

/* Input: byte 0 picks MAX_MESSAGE_BYTES (bit 0: 125 or 65536) and byte 1
 * how much of the stream comes with the HTTP head (a fraction of it); the
 * rest is the stream. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	if (!out && !(out = malloc(OUT_MAX)))
		abort();
	out_len = 0;
	const unsigned char *stream = data + 2;
	size_t n = size - 2, early = (size_t)data[1] * n / 255;

	static struct worker w;
	memset(&w, 0, sizeof w);
	w.cfg.max_message_bytes = (data[0] & 1) ? 125 : 65536;
	w.cfg.ping_interval_seconds = 30;
	w.cfg.pong_timeout_seconds = 75;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
		abort();
	int sz = 1 << 20;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
	/* the socket part, then the client's EOF */
	size_t off = early;
	while (off < n) {
		ssize_t k = write(sv[1], stream + off, n - off);
		if (k <= 0)
			abort(); /* 64 KiB inputs fit the socket buffer */
		off += (size_t)k;
	}
	shutdown(sv[1], SHUT_WR);

	struct http_req req;
	memset(&req, 0, sizeof req);
	if (early) {
		req.extra = malloc(early);
		if (!req.extra)
			abort();
		memcpy(req.extra, stream, early);
		req.extra_len = early;
	}
	w.fd = sv[0];
	w.hooks = &hooks;
	w.phase = PHASE_BEFORE_HELLO;
	ws_start(&w, &req, mono_ms());
	/* skel_loop without the poll: flush, stop when done both ways, read */
	for (int turn = 0; turn < 10000; turn++) {
		if (ws_flush(&w) != 0)
			break;
		drain(sv[1]);
		if (ws_done(&w))
			break;
		if (w.phase == PHASE_CLOSING && turn > 100)
			break; /* close_deadline: the client will send nothing more */
		if (ws_read(&w) != 0) {
			/* only the client's EOF ends reading by failure: a frame
			 * wslay refused on its own would end the loop without
			 * the close frame RFC 6455 wants (what the gate is for) */
			int unread = 0;
			need(ioctl(sv[0], FIONREAD, &unread) == 0 && unread == 0 && w.pre_off == w.pre_len);
			break;
		}
		need(turn < 9999); /* a stream of at most 64 KiB is read in far fewer turns */
	}
	drain(sv[1]);
	check_output();
	ws_stop(&w);
	close(sv[0]);
	close(sv[1]);
	free(req.extra);
	return 0;
}
