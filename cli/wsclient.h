/* wsclient — meshctl's WebSocket client (RFC 6455) on a libcurl connection
 * (ws:// or wss://: TCP, TLS and certificate checks are curl's; the upgrade
 * is wsupgrade.c's), then wslay in client mode (masked frames) driven by
 * poll().  Every wait is bounded: connect, handshake, stalled writes, the
 * closing handshake, and a silent broker (we ping it, then give up). */
#ifndef CLI_WSCLIENT_H
#define CLI_WSCLIENT_H

#include <stddef.h>
#include <poll.h>
#include <stdint.h>

#define WSCLIENT_MAX_MSG (16u << 20) /* larger frames from the broker: close 1009 */

struct wsclient;

/* A complete text message from the broker. */
typedef void (*wsclient_text_cb)(void *arg, const char *msg, size_t len);

/* Connect to a ws://, wss://, http:// or https:// URL and upgrade within
 * timeout_ms.  NULL with err
 * filled on failure. */
struct wsclient *wsclient_open(const char *url, int timeout_ms, wsclient_text_cb on_text, void *arg,
			       char *err, size_t errlen);
void wsclient_free(struct wsclient *w);

/* Queue a text frame (copied).  0 ok, -1 when the connection is closing or
 * out of memory. */
int wsclient_send_text(struct wsclient *w, const char *msg, size_t len);
/* Start the closing handshake (idempotent); the connection is over once the
 * broker answers or after a few seconds. */
void wsclient_close(struct wsclient *w, uint16_t code, const char *reason);
/* Bytes queued and not yet written. */
size_t wsclient_queued(const struct wsclient *w);

/* One round of I/O, waiting at most timeout_ms (also for extra_fd to become
 * readable when it is >= 0; *extra_ready tells).  Text callbacks run from
 * here.  Returns 1 while the connection lives, 0 once it is over. */
int wsclient_step(struct wsclient *w, int timeout_ms, int extra_fd, int *extra_ready);

/* For a caller that polls several connections itself: what to wait for on
 * the socket (events 0 once the connection is over), and the ms until the
 * next timer of this connection; then wsclient_step(w, 0, -1, &x). */
void wsclient_pollfd(const struct wsclient *w, struct pollfd *p);
int wsclient_timer_ms(const struct wsclient *w, int cap_ms);

/* After the end: 1 when the broker sent a close frame (*code 1005 when it had
 * no status; *reason printable, possibly ""), else 0. */
int wsclient_peer_close(const struct wsclient *w, uint16_t *code, const char **reason);
/* A transport or protocol failure ("connection lost", "frame over 16 MiB",
 * ...), or NULL. */
const char *wsclient_error(const struct wsclient *w);

#endif
