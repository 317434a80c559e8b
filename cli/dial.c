/* dial — plain TCP for meshctl (see dial.h): every connect, read and write
 * is bounded by a deadline. */
#include "dial.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/util.h"

int dial_ms_left(int64_t deadline)
{
	int64_t left = deadline - mono_ms();
	if (left < 0)
		return 0;
	return left > INT32_MAX ? INT32_MAX : (int)left;
}

int dial_parse_url(const char *url, const char *want, struct dial_url *u, char *err, size_t errlen)
{
	memset(u, 0, sizeof *u);
	for (const unsigned char *p = (const unsigned char *)url; *p; p++)
		if (*p <= 0x20 || *p == 0x7f) {
			snprintf(err, errlen, "bad URL \"%.80s\": spaces or control characters", url);
			return -1;
		}
	const char *rest;
	int tls = 0;
	if (!strncmp(url, "ws://", 5)) {
		strcpy(u->scheme, "ws");
		rest = url + 5;
	} else if (!strncmp(url, "http://", 7)) {
		strcpy(u->scheme, "http");
		rest = url + 7;
	} else if (!strncmp(url, "wss://", 6) || !strncmp(url, "https://", 8)) {
		tls = 1;
		rest = NULL;
	} else {
		snprintf(err, errlen, "bad URL \"%.80s\": want %s://HOST[:PORT]/PATH", url, want);
		return -1;
	}
	if (tls) {
		snprintf(err, errlen, "\"%.80s\": TLS is not supported by meshctl; use %s:// (e.g. "
			 "through a local TLS-terminating proxy)", url, want);
		return -1;
	}
	if (strcmp(u->scheme, want) != 0) {
		snprintf(err, errlen, "bad URL \"%.80s\": want %s://", url, want);
		return -1;
	}
	size_t alen = strcspn(rest, "/?#");
	if (alen == 0 || alen >= sizeof u->authority || memchr(rest, '@', alen)) {
		snprintf(err, errlen, "bad URL \"%.80s\": bad host", url);
		return -1;
	}
	memcpy(u->authority, rest, alen);
	const char *a = u->authority, *host = a, *port = NULL;
	size_t hlen;
	if (a[0] == '[') {
		const char *close = strchr(a, ']');
		if (!close || (close[1] && close[1] != ':')) {
			snprintf(err, errlen, "bad URL \"%.80s\": bad IPv6 host", url);
			return -1;
		}
		host = a + 1;
		hlen = (size_t)(close - host);
		port = close[1] ? close + 2 : NULL;
	} else {
		const char *colon = strchr(a, ':');
		hlen = colon ? (size_t)(colon - a) : strlen(a);
		port = colon ? colon + 1 : NULL;
	}
	if (hlen == 0 || hlen >= sizeof u->host) {
		snprintf(err, errlen, "bad URL \"%.80s\": bad host", url);
		return -1;
	}
	memcpy(u->host, host, hlen);
	if (port) {
		long pn;
		if (parse_pos_int(port, 65535, &pn) != 0) {
			snprintf(err, errlen, "bad URL \"%.80s\": bad port", url);
			return -1;
		}
		snprintf(u->port, sizeof u->port, "%ld", pn);
	} else {
		strcpy(u->port, "80");
	}
	const char *path = rest + alen;
	size_t plen = strcspn(path, "#");
	if (plen >= sizeof u->path - 1) {
		snprintf(err, errlen, "bad URL \"%.80s\": path too long", url);
		return -1;
	}
	if (plen == 0 || path[0] != '/')
		u->path[0] = '/';
	memcpy(u->path + (u->path[0] ? 1 : 0), path, plen);
	return 0;
}

static int dial_one(const struct addrinfo *ai, int64_t deadline, char *err, size_t errlen)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		if (errno != EINPROGRESS) {
			snprintf(err, errlen, "connect: %s", strerror(errno));
			close(fd);
			return -1;
		}
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		int n;
		do
			n = poll(&p, 1, dial_ms_left(deadline));
		while (n < 0 && errno == EINTR);
		if (n == 0) {
			snprintf(err, errlen, "connect: timed out");
			close(fd);
			return -1;
		}
		int soerr = 0;
		socklen_t sl = sizeof soerr;
		if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr) {
			snprintf(err, errlen, "connect: %s", strerror(soerr ? soerr : errno));
			close(fd);
			return -1;
		}
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

int dial_tcp(const char *host, const char *port, int timeout_ms, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG};
	struct addrinfo *res = NULL;
	int64_t deadline = mono_ms() + timeout_ms;
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "%s: %s", host, gai_strerror(rc));
		return -1;
	}
	int fd = -1;
	char last[256] = "no address";
	for (const struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
		if (dial_ms_left(deadline) == 0) {
			snprintf(last, sizeof last, "connect: timed out");
			break;
		}
		fd = dial_one(ai, deadline, last, sizeof last);
	}
	freeaddrinfo(res);
	if (fd < 0)
		snprintf(err, errlen, "%s port %s: %s", host, port, last);
	return fd;
}

/* wait for events on fd until deadline: 1 ready, 0 timed out, -1 error */
static int dial_wait(int fd, short events, int64_t deadline)
{
	struct pollfd p = {.fd = fd, .events = events};
	for (;;) {
		int n = poll(&p, 1, dial_ms_left(deadline));
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 ? -1 : n;
	}
}

int dial_write_all(int fd, const void *buf, size_t len, int64_t deadline, char *err, size_t errlen)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
		if (w > 0) {
			p += w;
			len -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int r = dial_wait(fd, POLLOUT, deadline);
			if (r > 0)
				continue;
			snprintf(err, errlen, r == 0 ? "write: timed out" : "poll: %s", strerror(errno));
			return -1;
		}
		snprintf(err, errlen, "write: %s", strerror(errno));
		return -1;
	}
	return 0;
}

ssize_t dial_read(int fd, void *buf, size_t cap, int64_t deadline, char *err, size_t errlen)
{
	for (;;) {
		ssize_t n = recv(fd, buf, cap, 0);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			snprintf(err, errlen, "read: %s", strerror(errno));
			return -1;
		}
		int r = dial_wait(fd, POLLIN, deadline);
		if (r <= 0) {
			snprintf(err, errlen, r == 0 ? "read: timed out" : "poll: %s", strerror(errno));
			return -1;
		}
	}
}

const char *dial_header(const char *head, const char *name, char *val, size_t cap)
{
	size_t nlen = strlen(name);
	for (const char *l = strstr(head, "\r\n"); l && l[2] && l[2] != '\r'; l = strstr(l + 2, "\r\n")) {
		const char *h = l + 2;
		if (strncasecmp(h, name, nlen) != 0 || h[nlen] != ':')
			continue;
		const char *v = h + nlen + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		size_t n = strcspn(v, "\r");
		while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
			n--;
		if (n >= cap)
			n = cap - 1;
		memcpy(val, v, n);
		val[n] = 0;
		return val;
	}
	return NULL;
}
