/* wsupgrade — the WebSocket opening handshake of meshctl (RFC 6455 §4.1) on
 * a connection libcurl opened (CONNECT_ONLY): the upgrade request with a
 * fresh Sec-WebSocket-Key — the only HTTP meshctl writes itself, as this
 * libcurl has no WebSocket — and the response read by http_parser (the
 * library the worker parses HTTP with), its status, Upgrade, Connection and
 * Sec-WebSocket-Accept checked, no extension or subprotocol accepted. */
#include "wsupgrade.h"

#include <http_parser.h>
#include <nettle/sha1.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"

#define WSU_HANDSHAKE_MAX 16384   /* response head cap */
#define WSU_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

static int wsu_ms_left(int64_t deadline)
{
	int64_t left = deadline - mono_ms();
	return left < 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

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
enum { WSH_UPGRADE, WSH_CONNECTION, WSH_ACCEPT, WSH_EXTENSIONS, WSH_PROTOCOL, WSH_N };
static const char *const wsu_hdr_names[WSH_N] = {"Upgrade", "Connection", "Sec-WebSocket-Accept",
						 "Sec-WebSocket-Extensions", "Sec-WebSocket-Protocol"};
struct wsu_head {
	char field[64];
	size_t field_len;
	int cur;      /* index of the header whose value is coming, or -1 */
	int in_value;
	char val[WSH_N][256];
	int seen[WSH_N];
	int complete;
};

static int wsu_on_field(http_parser *hp, const char *at, size_t len)
{
	struct wsu_head *h = hp->data;
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
	struct wsu_head *h = hp->data;
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
	((struct wsu_head *)hp->data)->complete = 1;
	return 2; /* no body, and what follows is not HTTP: frames */
}

/* send all of buf over the curl connection before deadline */
static int wsu_send_all(CURL *curl, int fd, const char *buf, size_t len, int64_t deadline, char *err, size_t errlen)
{
	while (len > 0) {
		size_t n = 0;
		CURLcode rc = curl_easy_send(curl, buf, len, &n);
		if (rc == CURLE_OK) {
			buf += n;
			len -= n;
			continue;
		}
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		if (rc != CURLE_AGAIN || poll(&p, 1, wsu_ms_left(deadline)) <= 0) {
			snprintf(err, errlen, "write: %s", rc == CURLE_AGAIN ? "timed out" : curl_easy_strerror(rc));
			return -1;
		}
	}
	return 0;
}

static int wsu_check_head(const http_parser *hp, const struct wsu_head *h, const char *key, char *err,
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

int wsupgrade_run(CURL *curl, int fd, const struct http_target *t, int64_t deadline, unsigned char **pre,
		  size_t *pre_len, char *err, size_t errlen)
{
	unsigned char nonce[16];
	char key[25], req[3072];
	randombytes_buf(nonce, sizeof nonce);
	sodium_bin2base64(key, sizeof key, nonce, sizeof nonce, sodium_base64_VARIANT_ORIGINAL);
	int n = snprintf(req, sizeof req,
			 "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nUser-Agent: meshctl\r\n\r\n",
			 t->target, t->authority, key);
	if (n < 0 || (size_t)n >= sizeof req) {
		snprintf(err, errlen, "URL too long");
		return -1;
	}
	if (wsu_send_all(curl, fd, req, (size_t)n, deadline, err, errlen) != 0)
		return -1;

	static const http_parser_settings settings = {.on_header_field = wsu_on_field,
						      .on_header_value = wsu_on_value,
						      .on_headers_complete = wsu_on_headers_complete};
	struct wsu_head h = {.cur = -1};
	http_parser hp;
	http_parser_init(&hp, HTTP_RESPONSE);
	hp.data = &h;
	char buf[4096];
	size_t total = 0;
	while (!h.complete) {
		size_t got = 0;
		CURLcode rc = curl_easy_recv(curl, buf, sizeof buf, &got);
		if (rc == CURLE_AGAIN) {
			struct pollfd p = {.fd = fd, .events = POLLIN};
			if (poll(&p, 1, wsu_ms_left(deadline)) <= 0) {
				snprintf(err, errlen, "handshake: no answer from the broker");
				return -1;
			}
			continue;
		}
		if (rc != CURLE_OK || got == 0) {
			snprintf(err, errlen, "handshake: %s",
				 rc != CURLE_OK ? curl_easy_strerror(rc) : "connection closed by the broker");
			return -1;
		}
		total += got;
		size_t used = http_parser_execute(&hp, &settings, buf, got);
		if (!h.complete && (used != got || HTTP_PARSER_ERRNO(&hp) != HPE_OK)) {
			snprintf(err, errlen, "handshake: not an HTTP response (%s)",
				 http_errno_description(HTTP_PARSER_ERRNO(&hp)));
			return -1;
		}
		if (!h.complete && total > WSU_HANDSHAKE_MAX) {
			snprintf(err, errlen, "handshake: response head over %d bytes", WSU_HANDSHAKE_MAX);
			return -1;
		}
		if (h.complete && used < got) {
			/* frames sent right behind the 101: wslay reads them first */
			if (!(*pre = malloc(got - used))) {
				snprintf(err, errlen, "out of memory");
				return -1;
			}
			memcpy(*pre, buf + used, got - used);
			*pre_len = got - used;
		}
	}
	return wsu_check_head(&hp, &h, key, err, errlen);
}

