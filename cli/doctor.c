/* doctor — meshctl doctor (see doctor.h): each check prints its line and
 * says whether it failed. */
#include "cli/doctor.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "cli/cli.h"
#include "cli/http.h"
#include "cli/install.h"
#include "cli/installjson.h"
#include "cli/keyfile.h"
#include "common/util.h"

#define DOCTOR_CHANNELS_MIN "2.1.80" /* Claude Code's first version with channels */

struct doctor {
	int failed;
	const char *config;
	struct keyfile_peer *peer; /* NULL when the config could not be read */
	const char *broker;
	struct http_target t;
	int have_target;
};

__attribute__((format(printf, 3, 4))) static void doctor_line(struct doctor *d, const char *level,
							     const char *fmt, ...)
{
	va_list ap;
	printf("%-4s ", level);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	if (!strcmp(level, "FAIL"))
		d->failed = 1;
}

int doctor_host_loopback(const char *host)
{
	if (!strcasecmp(host, "localhost") || !strcmp(host, "[::1]") || !strcmp(host, "::1"))
		return 1;
	unsigned a, b, c, e;
	char tail;
	return sscanf(host, "%u.%u.%u.%u%c", &a, &b, &c, &e, &tail) == 4 && a == 127 && b < 256 && c < 256 &&
	       e < 256;
}

static void doctor_config(struct doctor *d)
{
	struct stat st;
	if (!d->config) {
		doctor_line(d, "FAIL", "config: no peer config (give --config FILE or set MESHCTL_CONFIG)");
		return;
	}
	if (stat(d->config, &st) != 0) {
		doctor_line(d, "FAIL", "config: %s: %s", d->config, strerror(errno));
		return;
	}
	if (st.st_mode & 077)
		doctor_line(d, "FAIL", "key permissions: %s is mode %04o: others can read the secret key (chmod 600 %s)",
			    d->config, (unsigned)(st.st_mode & 07777), d->config);
	else if (st.st_uid != geteuid())
		doctor_line(d, "warn", "key permissions: %s is mode %04o but owned by uid %u, not you", d->config,
			    (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
	else
		doctor_line(d, "ok", "key permissions: %s is mode %04o, yours", d->config,
			    (unsigned)(st.st_mode & 07777));
	d->peer = calloc(1, sizeof *d->peer);
	if (!d->peer || (st.st_mode & 077) || keyfile_read_peer(d->config, d->peer) != 0) {
		free(d->peer);
		d->peer = NULL;
		if (!(st.st_mode & 077))
			doctor_line(d, "FAIL", "config: %s cannot be read as a peer config (see the line above)",
				    d->config);
		return;
	}
	sodium_memzero(d->peer->key.sk, sizeof d->peer->key.sk);
	doctor_line(d, "ok", "config: %s: mesh %s, member %s (%s)", d->config, d->peer->mesh_id, d->peer->member_id,
		    d->peer->display_name);
}

static void doctor_broker(struct doctor *d, const struct cli_opts *o)
{
	char err[512];
	d->broker = cli_opt(o, "broker");
	if (!d->broker || !*d->broker)
		d->broker = getenv("MESHBROKER_URL");
	if ((!d->broker || !*d->broker) && d->peer && d->peer->broker[0])
		d->broker = d->peer->broker;
	if (!d->broker || !*d->broker) {
		doctor_line(d, "FAIL", "broker: no broker URL (the config's \"broker\", --broker or MESHBROKER_URL)");
		return;
	}
	if (http_target_parse(d->broker, HTTP_PATH_ROOT, "/health", &d->t, err, sizeof err) != 0) {
		doctor_line(d, "FAIL", "broker: %s", err);
		return;
	}
	d->have_target = 1;
	struct http_resp r;
	int64_t t0 = now_ms();
	if (http_request("GET", &d->t, NULL, NULL, &r, err, sizeof err) != 0) {
		doctor_line(d, "FAIL", "broker: %s not reachable: %s", d->broker, err);
		if (d->t.tls && strstr(err, "TLS"))
			doctor_line(d, "FAIL", "tls: the TLS handshake with %s failed (see above)", d->t.host);
		return;
	}
	int64_t t1 = now_ms();
	cJSON *j = cJSON_ParseWithLength(r.body, r.body_len);
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "status"), *db = cJSON_GetObjectItemCaseSensitive(j, "db");
	const cJSON *ver = cJSON_GetObjectItemCaseSensitive(j, "version"), *now = cJSON_GetObjectItemCaseSensitive(j, "now");
	if (r.status == 200)
		doctor_line(d, "ok", "broker: %s answered /health in %lld ms (meshbroker %s)", d->broker,
			    (long long)(t1 - t0), cJSON_IsString(ver) ? ver->valuestring : "?");
	else
		doctor_line(d, "FAIL", "broker: %s answered /health with HTTP %d (status %s, db %s)", d->broker, r.status,
			    cJSON_IsString(st) ? st->valuestring : "?", cJSON_IsString(db) ? db->valuestring : "?");
	if (d->t.tls)
		doctor_line(d, "ok", "tls: %s's certificate verified (host name and CA)", d->t.host);
	else if (doctor_host_loopback(d->t.host))
		doctor_line(d, "ok", "tls: not used, and not needed: %s is this machine", d->t.host);
	else
		doctor_line(d, "FAIL", "tls: %s has no TLS to another machine: use wss://%s/ws behind TLS "
			    "(docs/deploy.md)", d->broker, d->t.host);
	if (cJSON_IsNumber(now)) {
		double skew = (double)(t0 + t1) / 2.0 - now->valuedouble;
		double a = skew < 0 ? -skew : skew;
		doctor_line(d, a > DOCTOR_SKEW_FAIL_MS ? "FAIL" : a > DOCTOR_SKEW_WARN_MS ? "warn" : "ok",
			    "clock: %+.1f s against the broker's (hellos allow 60 s)%s", skew / 1000.0,
			    a > DOCTOR_SKEW_WARN_MS ? ": set up NTP (timedatectl set-ntp true)" : "");
	} else {
		doctor_line(d, "warn", "clock: the broker's /health gives no time (an older broker): not checked");
	}
	cJSON_Delete(j);
	free(r.body);
}

/* "2.1.80 (Claude Code)" → 2*1e6 + 1*1e3 + 80 */
static long doctor_version(const char *s)
{
	unsigned a, b, c;
	return sscanf(s, "%u.%u.%u", &a, &b, &c) == 3 ? (long)a * 1000000L + (long)b * 1000L + c : -1;
}

static void doctor_channels(struct doctor *d)
{
	char line[256] = "";
	FILE *f = popen("timeout 5 claude --version 2>/dev/null", "r");
	if (f) {
		if (!fgets(line, sizeof line, f))
			line[0] = 0;
		pclose(f);
	}
	line[strcspn(line, "\r\n")] = 0;
	long v = doctor_version(line);
	if (v < 0)
		doctor_line(d, "warn", "channels: claude not found on PATH: cannot tell; without channels the "
			    "UserPromptSubmit hook (meshctl hook prompt) delivers messages");
	else if (v >= doctor_version(DOCTOR_CHANNELS_MIN))
		doctor_line(d, "ok", "channels: Claude Code %s has channels (they need a claude.ai login; without "
			    "one the prompt hook delivers messages)", line);
	else
		doctor_line(d, "warn", "channels: Claude Code %s is older than %s: no channels, messages come by "
			    "the prompt hook", line, DOCTOR_CHANNELS_MIN);
}

static void doctor_path(struct doctor *d)
{
	const char *path = getenv("PATH");
	char buf[PATH_MAX], self[PATH_MAX];
	if (installjson_self(self, sizeof self) != 0)
		self[0] = 0;
	for (const char *p = path ? path : ""; *p;) {
		size_t n = strcspn(p, ":");
		if (n && n < sizeof buf - 10) {
			snprintf(buf, sizeof buf, "%.*s/meshctl", (int)n, p);
			if (access(buf, X_OK) == 0) {
				doctor_line(d, "ok", "path: meshctl on PATH is %s", buf);
				return;
			}
		}
		p += n + (p[n] == ':');
	}
	doctor_line(d, "warn", "path: meshctl is not on PATH (meshctl install registers %s by its full path)",
		    self[0] ? self : "this meshctl");
}

static void doctor_install(struct doctor *d, const char *name)
{
	static const struct {
		enum installjson_scope scope;
		const char *label;
	} scopes[] = {{INSTALLJSON_USER, "user"}, {INSTALLJSON_PROJECT, "project"}};
	int any = 0;
	for (size_t i = 0; i < sizeof scopes / sizeof scopes[0]; i++) {
		struct installjson_paths p;
		int hooks = 0, mcp = 0;
		if (installjson_paths(scopes[i].scope, &p) != 0 || install_count(&p, name, &hooks, &mcp) != 0)
			continue;
		if (hooks || mcp) {
			any = 1;
			doctor_line(d, mcp && hooks ? "ok" : "warn", "install: %s scope: MCP server \"%s\" %s, %d hook%s "
				    "(%s, %s)", scopes[i].label, name, mcp ? "registered" : "missing", hooks,
				    hooks == 1 ? "" : "s", p.mcp, p.settings);
		}
	}
	if (!any)
		doctor_line(d, "FAIL", "install: Claude Code does not know this mesh: run meshctl install --config FILE "
			    "[--scope user|project]");
}

int doctor_main(int argc, char **argv)
{
	static const struct cli_optspec spec[] = {{"name", 1}, {NULL, 0}};
	struct cli_opts o;
	struct doctor d = {0};
	if (cli_opts_parse(argc, argv, spec, &o) != 0)
		return CLI_EXIT_USAGE;
	if (o.npos != 0)
		return cli_usage_err("usage: meshctl doctor [--config PEERCONFIG] [--name NAME]");
	d.config = cli_config_path(&o);
	doctor_config(&d);
	doctor_broker(&d, &o);
	doctor_channels(&d);
	doctor_path(&d);
	doctor_install(&d, cli_opt(&o, "name") ? cli_opt(&o, "name") : INSTALL_NAME);
	if (d.peer) {
		sodium_memzero(d.peer, sizeof *d.peer);
		free(d.peer);
	}
	fflush(stdout);
	return d.failed ? CLI_EXIT_FAIL : 0;
}
