/* ws — the WebSocket transport of a worker (RFC 6455 via wslay): the
 * upgrade, frames in and out, the close handshake and keep-alive.  It
 * reports text frames through w->hooks and never calls the protocol. */
#ifndef WORKER_WS_H
#define WORKER_WS_H

#include <poll.h>
#include <stdint.h>

#include "proto/reasons.h"
#include "worker/http.h"
#include "worker/worker.h"

/* close codes (RFC 6455 §7.4.1) */
#define WS_CLOSE_NORMAL 1000       /* session_replaced */
#define WS_CLOSE_GOING_AWAY 1001   /* shutdown, ping_timeout */
#define WS_CLOSE_PROTOCOL 1002     /* a frame RFC 6455 forbids (sent by the gate or wslay) */
#define WS_CLOSE_UNSUPPORTED 1003  /* binary frames */
#define WS_CLOSE_BAD_DATA 1007     /* text or a close reason that is not UTF-8 */
#define WS_CLOSE_POLICY 1008       /* hello rejections, hello_timeout */
#define WS_CLOSE_TOO_BIG 1009      /* over MAX_MESSAGE_BYTES (sent by wslay itself) */
#define WS_CLOSE_INTERNAL 1011     /* database or socket failure */
#define WS_CLOSE_TRY_AGAIN 1013    /* presence table full */

/* the frame gate (struct ws_gate in worker.h) */
enum { WS_GATE_NONE, WS_GATE_VIOLATION, WS_GATE_CLOSE, WS_GATE_DONE };
void ws_gate_init(struct ws_gate *g);
/* Look at the next n bytes of the client's stream: how many leading ones
 * wslay may have (those before a close frame or a bad header); g->verdict
 * says when one of those was found (the rest of the stream is not read). */
size_t ws_gate_scan(struct ws_gate *g, const uint8_t *buf, size_t n);
/* 1 for a close code a peer may send (RFC 6455 §7.4, IANA 1012-1014) */
int ws_close_code_valid(unsigned code);

/* Validate the upgrade and answer 101; on failure the HTTP error is sent.  0 = upgraded. */
int ws_handshake(int fd, const struct http_req *req);
/* Set up wslay on w->fd with the early bytes of req; start the keep-alive clock. */
void ws_start(struct worker *w, const struct http_req *req, int64_t now);
void ws_stop(struct worker *w);

int ws_send_json(struct worker *w, cJSON *obj); /* queue a text frame (obj kept by caller) */
int ws_send_text(struct worker *w, const char *s, size_t len);
void ws_send_error(struct worker *w, const char *code, const char *message, const char *id);
/* one of the peer protocol's error frames (proto/reasons.h); id is echoed
 * when the table says so */
void ws_send_peer_error(struct worker *w, enum peer_error e, const char *id);
/* start closing: phase CLOSING, the close frame follows what is queued */
void ws_close(struct worker *w, uint16_t code, const char *reason);

/* the loop's side (skel.c) */
void ws_keepalive(struct worker *w, int64_t now); /* ping, and close on a missing pong */
int64_t ws_deadline(const struct worker *w);      /* next keep-alive time (mono ms) */
int ws_flush(struct worker *w);                   /* queue our close when due, write; -1 = connection gone */
int ws_done(const struct worker *w);              /* closed both ways */
int ws_pollfd(const struct worker *w, struct pollfd *p);
int ws_has_early_bytes(const struct worker *w);   /* frames wait in memory: do not sleep */
int ws_read(struct worker *w);                    /* read a turn's worth; -1 = connection gone */
int ws_busy(const struct worker *w);               /* wslay still has bytes or messages to send */
int ws_close_sent(const struct worker *w);
int ws_close_received(const struct worker *w);
int ws_write(struct worker *w);                   /* wslay_event_send; -1 = failed */

/* What the peer acknowledged (TCP only, w->ack_tracking): offsets count
 * every byte send() took since the upgrade, frame headers included. */
uint64_t ws_sent_bytes(const struct worker *w);
int ws_acked_bytes(const struct worker *w, uint64_t *acked); /* 0, or -1: SIOCOUTQ failed */
/* the connection is ending: wait up to ms until the peer acknowledged bytes
 * up to upto, or was reset or gone */
void ws_await_acked(const struct worker *w, uint64_t upto, int ms);

#endif
