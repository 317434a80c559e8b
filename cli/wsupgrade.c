/* wsupgrade — how meshctl opens a WebSocket, never blocking: the connection
 * (TCP, TLS and its checks, proxies) by libcurl's multi interface with
 * CONNECT_ONLY, then the opening handshake (RFC 6455 §4.1): the upgrade
 * request with a fresh Sec-WebSocket-Key — the only HTTP meshctl writes
 * itself, as this libcurl has no WebSocket — and the response read by
 * http_parser (the library the worker parses HTTP with), its status,
 * Upgrade, Connection and Sec-WebSocket-Accept checked, no extension or
 * subprotocol accepted. */
#include "wsupgrade.h"

#include <nettle/sha1.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"

#define WSU_HANDSHAKE_MAX 16384   /* response head cap */
#define WSU_CONNECT_TICK_MS 20    /* how often a connection being opened by curl is looked at */
#define WSU_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* 1 when the comma-separated list holds token (case-insensitive) */
static int wsu_has_token(const char *list, const char *token)
{
	size_t tlen = strlen(token);
	for (const char *p = list; *p;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		size_t n = strcspn(p, ",");
		size_t m = n;
		while (m > 0 && (p[m - 1] == ' ' || p[m - 1] == '\t'))
			m--;
		if (m == tlen && !strncasecmp(p, token, tlen))
			return 1;
		p += n;
	}
	return 0;
}

static void wsu_expected_accept(const char *key, char out[29])
{
	struct sha1_ctx sha;
	uint8_t digest[SHA1_DIGEST_SIZE];
	sha1_init(&sha);
	sha1_update(&sha, strlen(key), (const uint8_t *)key);
	sha1_update(&sha, strlen(WSU_GUID), (const uint8_t *)WSU_GUID);
	sha1_digest(&sha, sizeof digest, digest);
	sodium_bin2base64(out, 29, digest, sizeof digest, sodium_base64_VARIANT_ORIGINAL);
}

/* the response head as http_parser (the worker's HTTP parser) reads it:
 * the headers the handshake checks, each cut to 255 bytes */
static const char *const wsu_hdr_names[WSH_N] = {"Upgrade", "Connection", "Sec-WebSocket-Accept",
						 "Sec-WebSocket-Extensions", "Sec-WebSocket-Protocol"};

static int wsu_on_field(http_parser *hp, const char *at, size_t len)
{
	struct wsupgrade_head *h = hp->data;
	if (h->in_value) {
		h->in_value = 0;
		h->field_len = 0;
	}
	size_t room = sizeof h->field - 1 - h->field_len;
	memcpy(h->field + h->field_len, at, len < room ? len : room);
	h->field_len += len < room ? len : room;
	h->field[h->field_len] = 0;
	return 0;
}

static int wsu_on_value(http_parser *hp, const char *at, size_t len)
{
	struct wsupgrade_head *h = hp->data;
	if (!h->in_value) {
		h->in_value = 1;
		h->cur = -1;
		for (int i = 0; i < WSH_N; i++)
			if (!strcasecmp(h->field, wsu_hdr_names[i]))
				h->cur = i;
		if (h->cur >= 0)
			h->seen[h->cur] = 1;
	}
	if (h->cur >= 0) {
		char *v = h->val[h->cur];
		size_t have = strlen(v), room = 255 - have;
		memcpy(v + have, at, len < room ? len : room);
		v[have + (len < room ? len : room)] = 0;
	}
	return 0;
}

static int wsu_on_headers_complete(http_parser *hp)
{
	((struct wsupgrade_head *)hp->data)->complete = 1;
	return 2; /* no body, and what follows is not HTTP: frames */
}

static int wsu_check_head(const http_parser *hp, const struct wsupgrade_head *h, const char *key, char *err,
			  size_t errlen)
{
	char accept[29];
	if (hp->status_code != 101) {
		snprintf(err, errlen, "handshake refused: HTTP %u %s", hp->status_code,
			 http_status_str((enum http_status)hp->status_code));
		return -1;
	}
	if (!h->seen[WSH_UPGRADE] || strcasecmp(h->val[WSH_UPGRADE], "websocket") != 0) {
		snprintf(err, errlen, "handshake: no \"Upgrade: websocket\" in the response");
		return -1;
	}
	if (!h->seen[WSH_CONNECTION] || !wsu_has_token(h->val[WSH_CONNECTION], "upgrade")) {
		snprintf(err, errlen, "handshake: no \"Connection: Upgrade\" in the response");
		return -1;
	}
	wsu_expected_accept(key, accept);
	if (!h->seen[WSH_ACCEPT] || strcmp(h->val[WSH_ACCEPT], accept) != 0) {
		snprintf(err, errlen, "handshake: wrong or missing Sec-WebSocket-Accept");
		return -1;
	}
	/* we asked for neither: a response naming one fails the connection */
	if (h->seen[WSH_EXTENSIONS] || h->seen[WSH_PROTOCOL]) {
		snprintf(err, errlen, "handshake: the broker chose an extension or subprotocol");
		return -1;
	}
	return 0;
}

int wsupgrade_start(struct wsupgrade *u, const char *url, int timeout_ms, char *err, size_t errlen)
{
	unsigned char nonce[16];
	memset(u, 0, sizeof *u);
	u->fd = -1;
	u->head.cur = -1;
	u->deadline = mono_ms() + timeout_ms;
	snprintf(u->shown, sizeof u->shown, "%s", url);
	if (http_target_parse(url, HTTP_PATH_KEEP, NULL, &u->t, err, errlen) != 0)
		return -1;
	randombytes_buf(nonce, sizeof nonce);
	sodium_bin2base64(u->key, sizeof u->key, nonce, sizeof nonce, sodium_base64_VARIANT_ORIGINAL);
	int n = snprintf(u->req, sizeof u->req,
			 "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nUser-Agent: meshctl\r\n\r\n",
			 u->t.target, u->t.authority, u->key);
	if (n < 0 || (size_t)n >= sizeof u->req) {
		snprintf(err, errlen, "URL too long");
		return -1;
	}
	u->req_len = (size_t)n;
	http_parser_init(&u->hp, HTTP_RESPONSE);
	u->hp.data = &u->head;
	/* HTTP/1.1 only: the upgrade cannot ride on h2, which ALPN would pick */
	if (!(u->curl = curl_easy_init()) || !(u->multi = curl_multi_init()) ||
	    http_easy_setup(u->curl, &u->t, timeout_ms, u->errbuf) != 0 ||
	    curl_easy_setopt(u->curl, CURLOPT_CONNECT_ONLY, 1L) != CURLE_OK ||
	    curl_easy_setopt(u->curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1) != CURLE_OK ||
	    curl_multi_add_handle(u->multi, u->curl) != CURLM_OK) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/* connect and TLS by curl's multi interface: 1 connected, 0 not yet, -1 failed */
static int wsu_connect_step(struct wsupgrade *u, char *err, size_t errlen)
{
	int running = 0, left = 0;
	curl_multi_perform(u->multi, &running);
	CURLMsg *m;
	while ((m = curl_multi_info_read(u->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		CURLcode rc = m->data.result;
		curl_socket_t s = CURL_SOCKET_BAD;
		if (rc == CURLE_OK)
			rc = curl_easy_getinfo(u->curl, CURLINFO_ACTIVESOCKET, &s);
		if (rc != CURLE_OK || s == CURL_SOCKET_BAD) {
			http_describe(rc, u->errbuf, &u->t, err, errlen);
			return -1;
		}
		u->fd = (int)s;
		return 1;
	}
	return 0;
}

/* the upgrade request out and the response in, as far as they go now */
static int wsu_upgrade_step(struct wsupgrade *u, char *err, size_t errlen)
{
	static const http_parser_settings settings = {.on_header_field = wsu_on_field,
						      .on_header_value = wsu_on_value,
						      .on_headers_complete = wsu_on_headers_complete};
	while (u->req_off < u->req_len) {
		size_t n = 0;
		CURLcode rc = curl_easy_send(u->curl, u->req + u->req_off, u->req_len - u->req_off, &n);
		if (rc == CURLE_AGAIN) {
			u->events = POLLOUT;
			return 0;
		}
		if (rc != CURLE_OK) {
			snprintf(err, errlen, "write: %s", curl_easy_strerror(rc));
			return -1;
		}
		u->req_off += n;
	}
	char buf[4096];
	while (!u->head.complete) {
		size_t got = 0;
		CURLcode rc = curl_easy_recv(u->curl, buf, sizeof buf, &got);
		if (rc == CURLE_AGAIN) {
			u->events = POLLIN;
			return 0;
		}
		if (rc != CURLE_OK || got == 0) {
			snprintf(err, errlen, "handshake: %s",
				 rc != CURLE_OK ? curl_easy_strerror(rc) : "connection closed by the broker");
			return -1;
		}
		u->total += got;
		size_t used = http_parser_execute(&u->hp, &settings, buf, got);
		if (!u->head.complete && (used != got || HTTP_PARSER_ERRNO(&u->hp) != HPE_OK)) {
			snprintf(err, errlen, "handshake: not an HTTP response (%s)",
				 http_errno_description(HTTP_PARSER_ERRNO(&u->hp)));
			return -1;
		}
		if (!u->head.complete && u->total > WSU_HANDSHAKE_MAX) {
			snprintf(err, errlen, "handshake: response head over %d bytes", WSU_HANDSHAKE_MAX);
			return -1;
		}
		if (u->head.complete && used < got) {
			/* frames sent right behind the 101: wslay reads them first */
			if (!(u->pre = malloc(got - used))) {
				snprintf(err, errlen, "out of memory");
				return -1;
			}
			memcpy(u->pre, buf + used, got - used);
			u->pre_len = got - used;
		}
	}
	return wsu_check_head(&u->hp, &u->head, u->key, err, errlen) == 0 ? 1 : -1;
}

int wsupgrade_step(struct wsupgrade *u, char *err, size_t errlen)
{
	char why[CURL_ERROR_SIZE + 300];
	int r = u->fd < 0 ? wsu_connect_step(u, err, errlen) : 1;
	if (r < 0)
		return -1; /* err is http_describe's line: it names the host */
	if (r == 1) {
		r = wsu_upgrade_step(u, why, sizeof why);
		if (r < 0) {
			snprintf(err, errlen, "%.200s: %s", u->shown, why);
			return -1;
		}
		if (r == 1)
			return 1;
	}
	if (mono_ms() >= u->deadline) {
		snprintf(err, errlen, "%.200s: %s", u->shown,
			 u->fd < 0 ? "connection timed out" : "handshake: no answer from the broker");
		return -1;
	}
	return 0;
}

void wsupgrade_pollfd(const struct wsupgrade *u, struct pollfd *p)
{
	/* while curl connects its sockets are its own: a tick looks again */
	*p = (struct pollfd){.fd = u->fd, .events = u->fd >= 0 ? u->events : 0};
}

int wsupgrade_timer_ms(const struct wsupgrade *u, int cap_ms)
{
	int64_t left = u->deadline - mono_ms();
	int t = left < 0 ? 0 : left > cap_ms ? cap_ms : (int)left;
	return u->fd < 0 && t > WSU_CONNECT_TICK_MS ? WSU_CONNECT_TICK_MS : t;
}

void wsupgrade_free(struct wsupgrade *u)
{
	if (u->multi && u->curl)
		curl_multi_remove_handle(u->multi, u->curl);
	if (u->curl)
		curl_easy_cleanup(u->curl); /* closes the socket */
	if (u->multi)
		curl_multi_cleanup(u->multi);
	u->curl = NULL;
	u->multi = NULL;
	u->fd = -1;
	free(u->pre);
	u->pre = NULL;
	u->pre_len = 0;
}
