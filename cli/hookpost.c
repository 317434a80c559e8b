/* hookpost — POST /hook/set-status for hook scripts (see hookpost.h).  The
 * whole exchange (connect, request, response) must finish within 5 s and the
 * response may not exceed 1 MiB. */
#include "hookpost.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <poll.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "dial.h"
#include "keyfile.h"
#include "common/util.h"

#define HOOK_TIMEOUT_MS 5000
#define HOOK_RESPONSE_MAX (1u << 20)
#define HOOK_STDIN_MAX (256u * 1024) /* Claude Code's hook JSON is small */
#define HOOK_STDIN_MS 500            /* how long to wait for it */

struct hook_resp {
	char *buf; /* the whole response, NUL-terminated */
	size_t len;
	size_t head_len; /* through the blank line */
	int status;
	const char *body;
	size_t body_len;
};

/* the base URL: --url > MESHBROKER_HTTP_URL > the broker's ws URL as http */
static int hook_base(const struct cli_opts *o, struct dial_url *u)
{
	char err[256];
	const char *url = cli_opt(o, "url");
	if (!url || !*url)
		url = getenv("MESHBROKER_HTTP_URL");
	if (url && *url) {
		if (dial_parse_url(url, "http", u, err, sizeof err) != 0)
			return cli_err("%s", err);
	} else {
		struct keyfile_peer cfg;
		const char *path = cli_config_path(o);
		memset(&cfg, 0, sizeof cfg);
		if (path && !cli_opt(o, "broker") && !getenv("MESHBROKER_URL")) {
			if (keyfile_read_peer(path, &cfg) != 0)
				return CLI_EXIT_FAIL;
			explicit_bzero(&cfg.key, sizeof cfg.key);
			explicit_bzero(cfg.api_key, sizeof cfg.api_key);
		}
		const char *ws = cli_broker_url(o, cfg.broker);
		if (dial_parse_url(ws, "ws", u, err, sizeof err) != 0)
			return cli_err("%s", err);
		strcpy(u->scheme, "http");
		strcpy(u->path, "/");
	}
	/* a base path is a prefix: drop its query and trailing slash */
	u->path[strcspn(u->path, "?")] = 0;
	size_t n = strlen(u->path);
	while (n > 0 && u->path[n - 1] == '/')
		u->path[--n] = 0;
	return 0;
}

/* A chunked body: 1 complete (decoded in place when decode), 0 not all
 * here yet, -1 malformed. */
static int hook_dechunk(char *b, size_t len, int decode, size_t *out_len)
{
	size_t in = 0, out = 0;
	for (;;) {
		char *eol = memmem(b + in, len - in, "\r\n", 2);
		if (!eol)
			return len - in > 32 ? -1 : 0;
		char *end;
		errno = 0;
		unsigned long sz = strtoul(b + in, &end, 16);
		if (errno || end == b + in || (end != eol && *end != ';' && *end != ' ') ||
		    sz > HOOK_RESPONSE_MAX)
			return -1;
		in = (size_t)(eol - b) + 2;
		if (sz == 0)
			break;
		if (len - in < sz + 2)
			return 0;
		if (memcmp(b + in + sz, "\r\n", 2) != 0)
			return -1;
		if (decode)
			memmove(b + out, b + in, sz);
		out += sz;
		in += sz + 2;
	}
	/* trailers, if any, end with an empty line */
	if (!(len - in >= 2 && !memcmp(b + in, "\r\n", 2)) && !memmem(b + in - 2, len - in + 2, "\r\n\r\n", 4))
		return 0;
	*out_len = out;
	return 1;
}

/* 1 when the response in r is complete (head parsed, body whole) */
static int hook_parse(struct hook_resp *r, int eof, char *err, size_t errlen)
{
	char val[64];
	if (!r->head_len) {
		char *end = strstr(r->buf, "\r\n\r\n");
		if (!end)
			return 0;
		r->head_len = (size_t)(end - r->buf) + 4;
		if ((strncmp(r->buf, "HTTP/1.1 ", 9) && strncmp(r->buf, "HTTP/1.0 ", 9)) ||
		    sscanf(r->buf + 9, "%3d", &r->status) != 1 || r->status < 100) {
			snprintf(err, errlen, "not an HTTP response");
			return -1;
		}
	}
	char *body = r->buf + r->head_len;
	size_t have = r->len - r->head_len;
	if (dial_header(r->buf, "Transfer-Encoding", val, sizeof val) && strcasestr(val, "chunked")) {
		int c = hook_dechunk(body, have, 0, &r->body_len);
		if (c < 0 || (c == 0 && eof)) {
			snprintf(err, errlen, c < 0 ? "bad chunked body" : "response cut short");
			return -1;
		}
		if (c == 0)
			return 0;
		hook_dechunk(body, have, 1, &r->body_len);
		r->body = body;
		return 1;
	}
	if (dial_header(r->buf, "Content-Length", val, sizeof val)) {
		long n;
		if (cli_parse_uint(val, HOOK_RESPONSE_MAX, &n) != 0) {
			snprintf(err, errlen, "bad Content-Length");
			return -1;
		}
		if (have < (size_t)n) {
			if (eof) {
				snprintf(err, errlen, "response cut short");
				return -1;
			}
			return 0;
		}
		r->body = body;
		r->body_len = (size_t)n;
		return 1;
	}
	if (!eof)
		return 0;
	r->body = body;
	r->body_len = have;
	return 1;
}

static int hook_exchange(const struct dial_url *u, const char *req, size_t req_len,
			 struct hook_resp *r, char *err, size_t errlen)
{
	int64_t deadline = mono_ms() + HOOK_TIMEOUT_MS;
	int fd = dial_tcp(u->host, u->port, HOOK_TIMEOUT_MS, err, errlen);
	if (fd < 0)
		return -1;
	int rc = -1;
	if (dial_write_all(fd, req, req_len, deadline, err, errlen) != 0)
		goto out;
	if (!(r->buf = malloc(HOOK_RESPONSE_MAX + 1))) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	r->buf[0] = 0;
	for (;;) {
		if (r->len == HOOK_RESPONSE_MAX) {
			snprintf(err, errlen, "response over %u bytes", HOOK_RESPONSE_MAX);
			goto out;
		}
		ssize_t n = dial_read(fd, r->buf + r->len, HOOK_RESPONSE_MAX - r->len, deadline, err,
				      errlen);
		if (n < 0)
			goto out;
		r->len += (size_t)n;
		r->buf[r->len] = 0;
		int done = hook_parse(r, n == 0, err, errlen);
		if (done < 0)
			goto out;
		if (done)
			break;
		if (n == 0) {
			snprintf(err, errlen, "connection closed before a response");
			goto out;
		}
	}
	rc = 0;
out:
	close(fd);
	return rc;
}

int hookpost_post(const struct dial_url *u, const char *path, const char *extra_headers, const char *body,
		  struct hookpost_resp *out, char *err, size_t errlen)
{
	struct hook_resp r = {0};
	size_t blen = strlen(body);
	size_t cap = blen + strlen(u->path) + strlen(path) + strlen(u->authority) +
		     (extra_headers ? strlen(extra_headers) : 0) + 512;
	char *req = malloc(cap);
	memset(out, 0, sizeof *out);
	if (!req) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	int n = snprintf(req, cap,
			 "POST %s%s HTTP/1.1\r\n"
			 "Host: %s\r\n"
			 "User-Agent: meshctl\r\n"
			 "Content-Type: application/json\r\n"
			 "Content-Length: %zu\r\n"
			 "%s"
			 "Connection: close\r\n"
			 "\r\n"
			 "%s",
			 u->path, path, u->authority, blen, extra_headers ? extra_headers : "", body);
	int rc = hook_exchange(u, req, (size_t)n, &r, err, errlen);
	explicit_bzero(req, (size_t)n);
	free(req);
	if (rc != 0) {
		free(r.buf);
		return -1;
	}
	out->buf = r.buf;
	out->status = r.status;
	out->body = r.body;
	out->body_len = r.body_len;
	return 0;
}

/* Claude Code hands a hook its event as JSON on stdin ({session_id, cwd,
 * hook_event_name, ...}).  Read it when stdin is not a terminal and something
 * arrives soon; NULL otherwise (a hook run by hand, or stdin left open). */
static cJSON *hook_stdin_json(void)
{
	if (isatty(STDIN_FILENO))
		return NULL;
	size_t cap = HOOK_STDIN_MAX, len = 0;
	char *buf = malloc(cap + 1);
	if (!buf)
		return NULL;
	int64_t deadline = mono_ms() + HOOK_STDIN_MS;
	for (;;) {
		struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
		int left = dial_ms_left(deadline);
		if (left <= 0 || poll(&pfd, 1, left) <= 0)
			break;
		ssize_t n = read(STDIN_FILENO, buf + len, cap - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == cap)
			break;
	}
	buf[len] = 0;
	cJSON *o = len ? cJSON_ParseWithLength(buf, len) : NULL;
	free(buf);
	if (o && !cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static char *hook_body(const char *cwd, const char *status, long pid, const char *session_id)
{
	cJSON *o = cJSON_CreateObject();
	char *s = NULL;
	if (o && cJSON_AddStringToObject(o, "cwd", cwd) && cJSON_AddStringToObject(o, "status", status) &&
	    (pid < 0 || cJSON_AddNumberToObject(o, "pid", (double)pid)) &&
	    (!session_id || cJSON_AddStringToObject(o, "session_id", session_id)))
		s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

/* The API key: MESHBROKER_API_KEY, else the peer config's "apiKey".  "" when
 * none; -1 after an error line. */
static int hook_key(const struct cli_opts *o, char *key, size_t cap)
{
	const char *env = getenv("MESHBROKER_API_KEY");
	key[0] = 0;
	if (env && *env) {
		if (str_copy(key, cap, env) != 0)
			return cli_err("MESHBROKER_API_KEY is too long"), -1;
	} else {
		const char *path = cli_config_path(o);
		if (path) {
			struct keyfile_peer cfg;
			if (keyfile_read_peer(path, &cfg) != 0)
				return -1;
			snprintf(key, cap, "%s", cfg.api_key);
			explicit_bzero(&cfg, sizeof cfg);
		}
	}
	for (const char *k = key; *k; k++)
		if ((unsigned char)*k <= 0x20 || *k == 0x7f)
			return cli_err("the API key holds spaces or control characters"), -1;
	return 0;
}

/* A hook must never fail the user's prompt: whatever goes wrong past the
 * usage check is one line on stderr and exit 0. */
int hookpost_run(int argc, char **argv)
{
	static const struct cli_optspec spec[] = {{"cwd", 1}, {"pid", 1}, {"url", 1}, {NULL, 0}};
	struct cli_opts o;
	struct dial_url u;
	struct hookpost_resp r = {0};
	char cwd[4097], err[256], key[160], auth[256] = "", sid[129] = "";
	/* No pid unless asked: a hook runs under a shell started by Claude Code,
	 * whose pid is not the peer's, and the broker then matches the newest
	 * live presence in this cwd (docs/protocol.md §4.3). */
	long pid = -1;

	if (cli_opts_parse(argc, argv, spec, &o) != 0)
		return CLI_EXIT_USAGE;
	if (o.npos != 1 || (strcmp(o.pos[0], "idle") && strcmp(o.pos[0], "working") &&
			    strcmp(o.pos[0], "dnd")))
		return cli_usage_err("usage: meshctl hook idle|working|dnd [--cwd DIR] [--pid N] "
				     "[--url http://HOST:PORT]");
	if (cli_opt(&o, "pid") && cli_parse_uint(cli_opt(&o, "pid"), INT32_MAX, &pid) != 0)
		return cli_usage_err("--pid must be an integer 0..%d", INT32_MAX);
	cJSON *in = hook_stdin_json();
	const cJSON *in_cwd = cJSON_GetObjectItemCaseSensitive(in, "cwd");
	const cJSON *in_sid = cJSON_GetObjectItemCaseSensitive(in, "session_id");
	if (cJSON_IsString(in_sid))
		snprintf(sid, sizeof sid, "%s", in_sid->valuestring);
	if (cli_opt(&o, "cwd")) {
		if (str_copy(cwd, sizeof cwd, cli_opt(&o, "cwd")) != 0 || !cwd[0]) {
			cJSON_Delete(in);
			return cli_usage_err("--cwd must be 1-4096 bytes");
		}
	} else if (cJSON_IsString(in_cwd) && in_cwd->valuestring[0] &&
		   str_copy(cwd, sizeof cwd, in_cwd->valuestring) == 0) {
		/* the session's directory, as Claude Code reports it */
	} else if (!getcwd(cwd, sizeof cwd)) {
		cJSON_Delete(in);
		cli_err("hook: getcwd: %s (give --cwd DIR)", strerror(errno));
		return 0;
	}
	cJSON_Delete(in);
	if (hook_base(&o, &u) != 0 || hook_key(&o, key, sizeof key) != 0)
		return 0;
	if (key[0])
		snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", key);
	explicit_bzero(key, sizeof key);
	char *body = hook_body(cwd, o.pos[0], pid, sid[0] ? sid : NULL);
	if (!body) {
		explicit_bzero(auth, sizeof auth);
		cli_err("hook: out of memory");
		return 0;
	}
	int sent = hookpost_post(&u, "/hook/set-status", auth, body, &r, err, sizeof err);
	explicit_bzero(auth, sizeof auth);
	free(body);
	if (sent != 0) {
		cli_err("hook: broker not reached at http://%s (%s); status not reported", u.authority, err);
		return 0;
	}
	fwrite(r.body, 1, r.body_len, stdout);
	if (r.body_len == 0 || r.body[r.body_len - 1] != '\n')
		putchar('\n');
	fflush(stdout);
	if (r.status < 200 || r.status >= 300) {
		size_t show = r.body_len > 200 ? 200 : r.body_len;
		cli_err("hook: HTTP %d %.*s", r.status, (int)show, r.body);
	}
	free(r.buf);
	return 0;
}
