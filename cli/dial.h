/* dial — meshctl's plain TCP: URL parsing for ws:// and http:// URLs,
 * connecting with a deadline and deadline-bounded reads and writes on the
 * resulting non-blocking socket.  No TLS. */
#ifndef CLI_DIAL_H
#define CLI_DIAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct dial_url {
	char scheme[8];    /* "ws" or "http" */
	char host[256];    /* without IPv6 brackets */
	char port[6];      /* decimal; 80 when the URL has none */
	char path[2048];   /* path and query, "/" when empty */
	char authority[300]; /* for the Host header: host[:port] as written */
};

/* Accepts ws:// and http:// URLs (want names the scheme family the caller
 * expects: "ws" or "http").  0 ok, -1 with err filled. */
int dial_parse_url(const char *url, const char *want, struct dial_url *u, char *err, size_t errlen);
/* Connect within timeout_ms; returns a non-blocking, close-on-exec socket
 * with TCP_NODELAY, or -1 with err filled. */
int dial_tcp(const char *host, const char *port, int timeout_ms, char *err, size_t errlen);
/* Write all of buf before deadline (mono_ms()).  0 ok, -1 with err filled. */
int dial_write_all(int fd, const void *buf, size_t len, int64_t deadline, char *err, size_t errlen);
/* Wait until readable (or deadline) and read once.  >0 bytes, 0 EOF, -1 error
 * or timeout with err filled. */
ssize_t dial_read(int fd, void *buf, size_t cap, int64_t deadline, char *err, size_t errlen);
/* ms left until deadline, never negative, capped at INT32_MAX */
int dial_ms_left(int64_t deadline);
/* The value of header name in an HTTP response head (the lines after the
 * status line, "\r\n"-separated), trimmed, cut to cap-1 bytes; or NULL. */
const char *dial_header(const char *head, const char *name, char *val, size_t cap);

#endif
