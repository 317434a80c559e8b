/* http — meshctl's HTTP and TLS, all on libcurl: broker URLs taken apart by
 * curl's URL API (ws://, wss://, http://, https://), the TLS settings every
 * connection shares (the system CA store, or --cacert FILE / MESHBROKER_CA
 * for a private CA; host name checked; never a fall-back to plain text), one
 * line naming the host and the reason when a connection fails, and one
 * bounded request/response exchange for join, hook and REST calls. */
#ifndef CLI_HTTP_H
#define CLI_HTTP_H

#include <stddef.h>

#include <curl/curl.h>

#define HTTP_RESPONSE_MAX (1u << 20) /* a longer answer fails the request */
#define HTTP_TIMEOUT_MS 5000         /* connect, TLS, request and response */

/* A broker URL as curl sees it. */
struct http_target {
	char url[2400];      /* http:// or https:// (ws/wss mapped), for curl */
	char host[256];      /* as written (IPv6 in brackets), for messages */
	char authority[300]; /* host[:port] as written: the Host header */
	char target[2100];   /* path and query: the request line */
	int tls;             /* wss:// or https:// */
};

/* Path handling of http_target_parse. */
enum http_path {
	HTTP_PATH_KEEP,   /* the URL's own path and query (WebSocket) */
	HTTP_PATH_ROOT,   /* path replaces the URL's path; query dropped (/join) */
	HTTP_PATH_APPEND, /* the URL's path is a prefix of path; query dropped (hook) */
};
/* Take url (ws, wss, http or https) apart.  0 ok, -1 with err filled. */
int http_target_parse(const char *url, enum http_path how, const char *path, struct http_target *t,
		      char *err, size_t errlen);

/* The private CA file for every TLS connection (--cacert FILE); NULL: the
 * MESHBROKER_CA environment variable, else the system store. */
void http_set_cafile(const char *file);

/* The shared settings on a fresh easy handle: URL, TLS verification (peer
 * and host, CA file), HTTP/HTTPS only, no redirects, connect timeout,
 * errbuf (CURL_ERROR_SIZE bytes).  0 ok, -1 out of memory. */
int http_easy_setup(CURL *c, const struct http_target *t, long connect_ms, char *errbuf);
/* One line for a failed transfer: "TLS to HOST: certificate expired (...)"
 * or "cannot connect to HOST: ...". */
void http_describe(CURLcode rc, const char *errbuf, const struct http_target *t, char *out, size_t cap);

struct http_resp {
	int status;
	char *body; /* NUL-terminated; free() it */
	size_t body_len;
};
/* method (GET/POST/DELETE...) t's URL with an optional JSON body and an
 * optional Bearer token, within HTTP_TIMEOUT_MS.  0 with *out filled (any
 * HTTP status), -1 with err filled (not reachable, TLS refused, too big). */
int http_request(const char *method, const struct http_target *t, const char *bearer, const char *body,
		 struct http_resp *out, char *err, size_t errlen);

#endif
