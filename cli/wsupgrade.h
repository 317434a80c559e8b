/* wsupgrade — opening a WebSocket connection on libcurl, a step at a time:
 * it never waits (see wsupgrade.c). */
#ifndef CLI_WSUPGRADE_H
#define CLI_WSUPGRADE_H

#include <stddef.h>
#include <poll.h>
#include <stdint.h>

#include <curl/curl.h>
#include <http_parser.h>

#include "cli/http.h"

/* the response headers the handshake checks, each cut to 255 bytes */
enum { WSH_UPGRADE, WSH_CONNECTION, WSH_ACCEPT, WSH_EXTENSIONS, WSH_PROTOCOL, WSH_N };
struct wsupgrade_head {
	char field[64];
	size_t field_len;
	int cur;      /* index of the header whose value is coming, or -1 */
	int in_value;
	char val[WSH_N][256];
	int seen[WSH_N];
	int complete;
};


struct wsupgrade {
	CURL *curl;   /* CONNECT_ONLY: after the opening, curl_easy_send/recv on it */
	CURLM *multi; /* connects without blocking; the handle stays added (curl needs it) */
	int fd;       /* curl's socket once connected, else -1 */
	struct http_target t;
	char errbuf[CURL_ERROR_SIZE];
	char shown[200];  /* the URL as given, for messages */
	int64_t deadline; /* connect + TLS + upgrade (mono ms) */
	short events;     /* what the upgrade waits for on fd */
	char req[3072];
	size_t req_len, req_off;
	char key[25];
	http_parser hp;
	struct wsupgrade_head head;
	size_t total;        /* response bytes read */
	unsigned char *pre;  /* bytes that came right behind the 101 (malloc'd), for wslay */
	size_t pre_len;
};

/* Start opening url within timeout_ms (no I/O yet).  0, or -1 with err (a
 * bad URL, no memory); wsupgrade_free either way. */
int wsupgrade_start(struct wsupgrade *u, const char *url, int timeout_ms, char *err, size_t errlen);
/* Do what can be done now: 1 open (pre holds early frames), 0 not yet,
 * -1 failed with one line in err ("TLS to HOST refused: ...", "URL:
 * handshake refused: HTTP 404 Not Found", ...). */
int wsupgrade_step(struct wsupgrade *u, char *err, size_t errlen);
/* what to poll for (fd -1 while curl connects) and the longest wait */
void wsupgrade_pollfd(const struct wsupgrade *u, struct pollfd *p);
int wsupgrade_timer_ms(const struct wsupgrade *u, int cap_ms);
void wsupgrade_free(struct wsupgrade *u); /* the connection too */

#endif
