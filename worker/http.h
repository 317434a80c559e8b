/* http — read one HTTP/1.1 request from the connection with a bounded buffer
 * and a deadline (slow-loris), parsed by libhttp-parser (also from memory, for
 * the fuzzer); write responses with the CORS headers every route carries. */
#ifndef WORKER_HTTP_H
#define WORKER_HTTP_H

#include <http_parser.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_HEAD_MAX 16384 /* request line + headers */
#define HTTP_URL_MAX 2048
#define HTTP_HVAL_MAX 1024
#define HTTP_REFUSAL_MS 2000 /* how long an error answer may take to write */

struct http_req {
	char method[16];
	char url[HTTP_URL_MAX];
	char path[HTTP_URL_MAX]; /* url without its query string */
	/* the headers meshbroker reads (others are parsed and dropped) */
	char upgrade[HTTP_HVAL_MAX], connection[HTTP_HVAL_MAX], ws_key[HTTP_HVAL_MAX],
		ws_version[HTTP_HVAL_MAX], authorization[HTTP_HVAL_MAX], content_type[HTTP_HVAL_MAX],
		origin[HTTP_HVAL_MAX], forwarded[HTTP_HVAL_MAX], last_event_id[HTTP_HVAL_MAX];
	int is_upgrade;
	uint64_t content_length; /* 0 when absent */
	char *body;              /* malloc'd, NUL-terminated, body_len bytes */
	size_t body_len;
	/* bytes that arrived after the head of an upgrade request (WebSocket
	 * frames sent early): fed to wslay before the socket */
	unsigned char *extra;
	size_t extra_len;
};

enum http_read_result {
	HTTP_READ_OK = 0,
	HTTP_READ_EOF = -1,        /* peer closed before a full request */
	HTTP_READ_MALFORMED = 400, /* answer with these statuses */
	HTTP_READ_TIMEOUT = 408,
	HTTP_READ_TOO_LARGE = 413,
	HTTP_READ_HEAD_TOO_LARGE = 431,
	HTTP_READ_BAD_VERSION = 505, /* a request line of another HTTP than 1.x */
	HTTP_READ_IOERR = -2,
	HTTP_READ_CANCELLED = -3, /* stop() said so (a signal arrived) */
};

/* The parse of one request from bytes in memory; the fields are http.c's.
 * Not copyable (the parser points back at it). */
struct http_parse {
	http_parser parser;
	struct http_req *req;
	size_t max_body, head_bytes, body_cap;
	char hname[64];
	size_t hname_len, hval_len;
	char *hval; /* where the current header's value goes, or NULL */
	int hname_overflow, in_value, head_done, msg_done, too_large;
	int line_started, line_done; /* the request line: begun, ended (its version checked) */
};

/* Start parsing into req (zeroed; release it with http_req_free). */
void http_parse_init(struct http_parse *hp, struct http_req *req, size_t max_body);
/* Parse the next len > 0 bytes with the limits of http_read_request.  *done
 * becomes 1 once a whole request, or the head of an upgrade, was parsed (the
 * rest of buf then goes to req->extra); feed no more after that or an error. */
enum http_read_result http_parse_feed(struct http_parse *hp, const unsigned char *buf, size_t len, int *done);
/* After done: method, path, and an empty body when none came.  HTTP_READ_OK
 * or HTTP_READ_IOERR. */
enum http_read_result http_parse_finish(struct http_parse *hp);

/* Read and parse one request from fd (non-blocking) within timeout_ms; bodies
 * over max_body bytes are refused (413) before they are read. */
enum http_read_result http_read_request(int fd, struct http_req *req, size_t max_body, int timeout_ms);
/* The same, waiting with ppoll(wait_mask) and giving up (HTTP_READ_CANCELLED)
 * as soon as stop() returns nonzero: checked before each wait, so a signal
 * that wait_mask lets in and whose handler makes stop() true is never missed. */
enum http_read_result http_read_request_until(int fd, struct http_req *req, size_t max_body, int timeout_ms,
					      const sigset_t *wait_mask, int (*stop)(void));
void http_req_free(struct http_req *req);

/* Write a whole response (status line, CORS headers, Content-Length,
 * Connection: close, extra_headers verbatim — each ending in \r\n — and the
 * body) within timeout_ms.  0 ok, -1 on error. */
int http_respond(int fd, int status, const char *content_type, const char *extra_headers,
		 const char *body, size_t body_len, int timeout_ms);
/* Only the head of a response whose body runs until the connection closes
 * (no Content-Length: a Server-Sent Events stream), with the CORS headers. */
int http_respond_head(int fd, int status, const char *content_type, const char *extra_headers, int timeout_ms);
/* The same without the CORS headers: for routes no web page may read
 * (POST /hook/set-status). */
int http_respond_private(int fd, int status, const char *content_type, const char *body, size_t body_len,
			 int timeout_ms);
/* {"error": msg} as application/json */
int http_respond_error(int fd, int status, const char *msg, int timeout_ms);
/* write all of buf within timeout_ms (poll on POLLOUT) */
int http_write_all(int fd, const void *buf, size_t len, int timeout_ms);
const char *http_reason(int status);
/* 1 when the comma-separated header value contains token (case-insensitive) */
int http_has_token(const char *value, const char *token);

#endif
