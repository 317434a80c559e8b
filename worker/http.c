/* http — bounded, deadline-driven HTTP/1.1 request reader (libhttp-parser;
 * the parse itself works on memory, see http_parse_feed) and response writer;
 * see http.h. */
#include "http.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct http_parse *st = p->data;
	size_t cur = strlen(st->req->url);
	if (cur + len >= HTTP_URL_MAX)
		return -1;
	memcpy(st->req->url + cur, at, len);
	st->req->url[cur + len] = 0;
	return 0;
}

static char *header_slot(struct http_req *r, const char *name)
{
	static const struct {
		const char *name;
		size_t off;
	} known[] = {
		{"upgrade", offsetof(struct http_req, upgrade)},
		{"connection", offsetof(struct http_req, connection)},
		{"sec-websocket-key", offsetof(struct http_req, ws_key)},
		{"sec-websocket-version", offsetof(struct http_req, ws_version)},
		{"authorization", offsetof(struct http_req, authorization)},
		{"content-type", offsetof(struct http_req, content_type)},
		{"origin", offsetof(struct http_req, origin)},
		{"last-event-id", offsetof(struct http_req, last_event_id)}, /* a resumed SSE stream */
		/* any of these: a proxy forwarded the request (its source is not ours) */
		{"forwarded", offsetof(struct http_req, forwarded)},
		{"x-forwarded-for", offsetof(struct http_req, forwarded)},
		{"x-real-ip", offsetof(struct http_req, forwarded)},
	};
	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
		if (strcasecmp(name, known[i].name) == 0)
			return (char *)r + known[i].off;
	return NULL;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct http_parse *st = p->data;
	/* a field name is a token: no whitespace in it, nor between it and
	 * its colon ("Host : x"), which RFC 9112 §5.1 says a server MUST
	 * refuse with 400 (libhttp-parser lets it through) */
	if (memchr(at, ' ', len) || memchr(at, '\t', len))
		return -1;
	if (st->in_value) {
		st->in_value = 0;
		st->hname_len = 0;
		st->hname_overflow = 0;
		st->hval = NULL;
	}
	if (st->hname_len + len >= sizeof st->hname) {
		st->hname_overflow = 1; /* a name we don't read anyway */
		return 0;
	}
	memcpy(st->hname + st->hname_len, at, len);
	st->hname_len += len;
	st->hname[st->hname_len] = 0;
	return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct http_parse *st = p->data;
	if (!st->in_value) {
		st->in_value = 1;
		st->hval = st->hname_overflow ? NULL : header_slot(st->req, st->hname);
		st->hval_len = 0;
		if (st->hval && st->hval[0]) {
			/* repeated header: join with a comma like RFC 9110 says */
			st->hval_len = strlen(st->hval);
			if (st->hval_len + 1 < HTTP_HVAL_MAX)
				st->hval[st->hval_len++] = ',';
		}
	}
	if (!st->hval)
		return 0;
	if (st->hval_len + len >= HTTP_HVAL_MAX)
		return -1; /* a header we read must fit: malformed */
	memcpy(st->hval + st->hval_len, at, len);
	st->hval_len += len;
	st->hval[st->hval_len] = 0;
	return 0;
}

static void set_path(struct http_req *r)
{
	memcpy(r->path, r->url, HTTP_URL_MAX);
	char *q = strpbrk(r->path, "?#");
	if (q)
		*q = 0;
}

static int on_headers_complete(http_parser *p)
{
	struct http_parse *st = p->data;
	st->head_done = 1;
	/* method and path are known even when the body is refused: the route
	 * table checks the key before it answers 413 */
	snprintf(st->req->method, sizeof st->req->method, "%s", http_method_str(p->method));
	set_path(st->req);
	if ((p->flags & F_CONTENTLENGTH) && p->content_length > st->max_body) {
		st->too_large = 1;
		return -1;
	}
	st->req->content_length = (p->flags & F_CONTENTLENGTH) ? p->content_length : 0;
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct http_parse *st = p->data;
	struct http_req *r = st->req;
	if (r->body_len + len > st->max_body) {
		st->too_large = 1;
		return -1;
	}
	if (r->body_len + len + 1 > st->body_cap) {
		size_t cap = st->body_cap ? st->body_cap : 1024;
		while (cap < r->body_len + len + 1)
			cap *= 2;
		char *nb = realloc(r->body, cap);
		if (!nb)
			return -1;
		r->body = nb;
		st->body_cap = cap;
	}
	memcpy(r->body + r->body_len, at, len);
	r->body_len += len;
	r->body[r->body_len] = 0;
	return 0;
}

static int on_message_complete(http_parser *p)
{
	struct http_parse *st = p->data;
	st->msg_done = 1;
	http_parser_pause(p, 1); /* one request per connection */
	return 0;
}

static int wait_fd_mask(int fd, short ev, int64_t deadline, const sigset_t *mask)
{
	int64_t left = deadline - mono_ms();
	if (left <= 0)
		return 0;
	struct pollfd pfd = {.fd = fd, .events = ev};
	struct timespec ts = {.tv_sec = left / 1000, .tv_nsec = (long)(left % 1000) * 1000000};
	int n = mask ? ppoll(&pfd, 1, &ts, mask) : poll(&pfd, 1, (int)left);
	if (n < 0 && errno == EINTR)
		return 1;
	return n;
}

static int wait_fd(int fd, short ev, int64_t deadline) { return wait_fd_mask(fd, ev, deadline, NULL); }

static const http_parser_settings settings = {
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

void http_parse_init(struct http_parse *hp, struct http_req *req, size_t max_body)
{
	memset(req, 0, sizeof *req);
	*hp = (struct http_parse){.req = req, .max_body = max_body};
	/* head_bytes misses the bytes of the read that completes the head: let
	 * the parser count them (HPE_HEADER_OVERFLOW, process-wide setting) */
	http_parser_set_max_header_size(HTTP_HEAD_MAX);
	http_parser_init(&hp->parser, HTTP_REQUEST);
	hp->parser.data = hp;
}

enum http_read_result http_parse_feed(struct http_parse *hp, const unsigned char *buf, size_t len, int *done)
{
	struct http_req *req = hp->req;
	*done = 0;
	if (len == 0)
		return HTTP_READ_OK; /* http_parser would take it for the end of input */
	size_t used = http_parser_execute(&hp->parser, &settings, (const char *)buf, len);
	/* the version is known once the request line has ended: only HTTP/1.x
	 * is spoken here (RFC 9110 §15.6.6: 505 for another major version),
	 * answered without waiting for the rest of the head */
	for (size_t i = 0; i < used && !hp->line_done; i++) {
		if (buf[i] == '\n' && hp->line_started) {
			hp->line_done = 1;
			if (hp->parser.http_major != 1)
				return HTTP_READ_BAD_VERSION;
		} else if (buf[i] != '\r' && buf[i] != '\n') {
			hp->line_started = 1; /* empty lines before a request are skipped */
		}
	}
	if (!hp->head_done) {
		hp->head_bytes += used;
		if (hp->head_bytes > HTTP_HEAD_MAX)
			return HTTP_READ_HEAD_TOO_LARGE;
	}
	if (hp->too_large)
		return HTTP_READ_TOO_LARGE;
	enum http_errno e = HTTP_PARSER_ERRNO(&hp->parser);
	if (e == HPE_HEADER_OVERFLOW)
		return HTTP_READ_HEAD_TOO_LARGE;
	if (e != HPE_OK && e != HPE_PAUSED)
		return HTTP_READ_MALFORMED;
	if (hp->parser.upgrade && hp->head_done) {
		/* the rest of buf belongs to the upgraded protocol */
		req->is_upgrade = 1;
		size_t rest = len - used;
		if (rest) {
			req->extra = malloc(rest);
			if (!req->extra)
				return HTTP_READ_IOERR;
			memcpy(req->extra, buf + used, rest);
			req->extra_len = rest;
		}
		*done = 1;
	} else if (hp->msg_done) {
		*done = 1;
	}
	return HTTP_READ_OK;
}

enum http_read_result http_parse_finish(struct http_parse *hp)
{
	struct http_req *req = hp->req;
	snprintf(req->method, sizeof req->method, "%s", http_method_str(hp->parser.method));
	set_path(req);
	if (!req->body) {
		req->body = calloc(1, 1);
		if (!req->body)
			return HTTP_READ_IOERR;
	}
	return HTTP_READ_OK;
}

enum http_read_result http_read_request(int fd, struct http_req *req, size_t max_body, int timeout_ms)
{
	return http_read_request_until(fd, req, max_body, timeout_ms, NULL, NULL);
}

enum http_read_result http_read_request_until(int fd, struct http_req *req, size_t max_body, int timeout_ms,
					      const sigset_t *wait_mask, int (*stop)(void))
{
	struct http_parse hp;
	http_parse_init(&hp, req, max_body);
	int64_t deadline = mono_ms() + timeout_ms;
	unsigned char buf[8192];
	int done = 0;
	while (!done) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return HTTP_READ_IOERR;
			if (stop && stop())
				return HTTP_READ_CANCELLED;
			int w = wait_fd_mask(fd, POLLIN, deadline, wait_mask);
			if (w < 0)
				return HTTP_READ_IOERR;
			if (w == 0)
				return HTTP_READ_TIMEOUT;
			continue;
		}
		if (n == 0)
			return (hp.head_bytes == 0) ? HTTP_READ_EOF : HTTP_READ_MALFORMED;
		enum http_read_result r = http_parse_feed(&hp, buf, (size_t)n, &done);
		if (r != HTTP_READ_OK)
			return r;
	}
	return http_parse_finish(&hp);
}

void http_req_free(struct http_req *req)
{
	explicit_bzero(req->authorization, sizeof req->authorization); /* an API key */
	free(req->body);
	free(req->extra);
	req->body = NULL;
	req->extra = NULL;
}

const char *http_reason(int status)
{
	switch (status) {
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 426: return "Upgrade Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 505: return "HTTP Version Not Supported";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Unknown";
	}
}

int http_write_all(int fd, const void *buf, size_t len, int timeout_ms)
{
	const char *p = buf;
	int64_t deadline = mono_ms() + timeout_ms;
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -1;
			if (wait_fd(fd, POLLOUT, deadline) <= 0)
				return -1;
			continue;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

#define HTTP_CORS                                                                                          \
	"Access-Control-Allow-Origin: *\r\n"                                                               \
	"Access-Control-Allow-Methods: POST, GET, OPTIONS, PATCH\r\n"                                             \
	"Access-Control-Allow-Headers: Content-Type, Authorization\r\n"

static int respond(int fd, int status, int cors, const char *content_type, const char *extra_headers,
		   const char *body, size_t body_len, int timeout_ms)
{
	char head[1024];
	int n = snprintf(head, sizeof head,
			 "HTTP/1.1 %d %s\r\n"
			 "%s"
			 "%s%s%s"
			 "Content-Length: %zu\r\n"
			 "Connection: close\r\n"
			 "%s\r\n",
			 status, http_reason(status), cors ? HTTP_CORS : "", content_type ? "Content-Type: " : "",
			 content_type ? content_type : "", content_type ? "\r\n" : "", body_len,
			 extra_headers ? extra_headers : "");
	if (n < 0 || (size_t)n >= sizeof head)
		return -1;
	if (http_write_all(fd, head, (size_t)n, timeout_ms) != 0)
		return -1;
	return body_len ? http_write_all(fd, body, body_len, timeout_ms) : 0;
}

int http_respond(int fd, int status, const char *content_type, const char *extra_headers,
		 const char *body, size_t body_len, int timeout_ms)
{
	return respond(fd, status, 1, content_type, extra_headers, body, body_len, timeout_ms);
}

int http_respond_head(int fd, int status, const char *content_type, const char *extra_headers, int timeout_ms)
{
	char head[1024];
	int n = snprintf(head, sizeof head,
			 "HTTP/1.1 %d %s\r\n" HTTP_CORS "Content-Type: %s\r\nConnection: close\r\n%s\r\n", status,
			 http_reason(status), content_type, extra_headers ? extra_headers : "");
	if (n < 0 || (size_t)n >= sizeof head)
		return -1;
	return http_write_all(fd, head, (size_t)n, timeout_ms);
}

int http_respond_private(int fd, int status, const char *content_type, const char *body, size_t body_len,
			 int timeout_ms)
{
	return respond(fd, status, 0, content_type, NULL, body, body_len, timeout_ms);
}

int http_respond_error(int fd, int status, const char *msg, int timeout_ms)
{
	char body[512];
	int n = snprintf(body, sizeof body, "{\"error\":\"%s\"}", msg);
	return http_respond(fd, status, "application/json", NULL, body, (size_t)n, timeout_ms);
}

int http_has_token(const char *value, const char *token)
{
	size_t tl = strlen(token);
	const char *p = value;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *start = p;
		while (*p && *p != ',')
			p++;
		const char *end = p;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if ((size_t)(end - start) == tl && strncasecmp(start, token, tl) == 0)
			return 1;
	}
	return 0;
}
