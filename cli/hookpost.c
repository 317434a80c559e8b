/* hookpost — POST /hook/set-status for hook scripts (see hookpost.h), by
 * http_request: the whole exchange within 5 s, the answer at most 1 MiB. */
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
#include <sodium.h>

#include "cli.h"
#include "http.h"
#include "keyfile.h"
#include "common/util.h"

#define HOOK_STDIN_MAX (256u * 1024) /* Claude Code's hook JSON is small */
#define HOOK_STDIN_MS 500            /* how long to wait for it */

/* the URL to post to: --url > MESHBROKER_HTTP_URL (each a base: its path is
 * a prefix) > the broker's URL (ws/wss as http/https, at the root) */
static int hook_target(const struct cli_opts *o, struct http_target *t)
{
	char err[512];
	const char *url = cli_opt(o, "url");
	if (!url || !*url)
		url = getenv("MESHBROKER_HTTP_URL");
	if (url && *url) {
		if (http_target_parse(url, HTTP_PATH_APPEND, "/hook/set-status", t, err, sizeof err) != 0)
			return cli_err("%s", err);
		return 0;
	}
	struct keyfile_peer cfg;
	const char *path = cli_config_path(o);
	memset(&cfg, 0, sizeof cfg);
	if (path && !cli_opt(o, "broker") && !getenv("MESHBROKER_URL")) {
		if (keyfile_read_peer(path, &cfg) != 0)
			return CLI_EXIT_FAIL;
		explicit_bzero(&cfg.key, sizeof cfg.key);
		explicit_bzero(cfg.api_key, sizeof cfg.api_key);
	}
	if (http_target_parse(cli_broker_url(o, cfg.broker), HTTP_PATH_ROOT, "/hook/set-status", t, err,
			      sizeof err) != 0)
		return cli_err("%s", err);
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
		int left = (int)(deadline - mono_ms());
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
	struct http_target t;
	struct http_resp r = {0};
	char cwd[4097], err[512], key[160], sid[129] = "";
	/* No pid unless asked: a hook runs under a shell started by Claude Code,
	 * whose pid is not the peer's, and the broker then matches the newest
	 * live presence in this cwd (docs/protocol.md §4.3). */
	long pid = -1;

	if (cli_opts_parse(argc, argv, spec, &o) != 0)
		return CLI_EXIT_USAGE;
	if (o.npos != 1 || (strcmp(o.pos[0], "idle") && strcmp(o.pos[0], "working") &&
			    strcmp(o.pos[0], "dnd")))
		return cli_usage_err("usage: meshctl hook idle|working|dnd [--cwd DIR] [--pid N] "
				     "[--url http(s)://HOST:PORT]");
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
	if (hook_target(&o, &t) != 0 || hook_key(&o, key, sizeof key) != 0)
		return 0;
	char *body = hook_body(cwd, o.pos[0], pid, sid[0] ? sid : NULL);
	if (!body) {
		sodium_memzero(key, sizeof key);
		cli_err("hook: out of memory");
		return 0;
	}
	int sent = http_request("POST", &t, key, body, &r, err, sizeof err);
	sodium_memzero(key, sizeof key);
	free(body);
	if (sent != 0) {
		cli_err("hook: broker not reached: %s; status not reported", err);
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
	free(r.body);
	return 0;
}
