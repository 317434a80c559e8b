/* peercmd — the runner of meshctl's peer commands (see peercmd.h): the
 * shared options, one peer session, the hello phase, deadlines, signals,
 * and the one line that says how it ended.  stdout belongs to the command;
 * stderr carries one-line "meshctl: ..." errors. */
#include "peercmd.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "keyfile.h"
#include "common/util.h"

#define PEER_HELLO_WAIT_MS 15000  /* the broker's own hello timeout is 10 s */
#define PEER_REJECT_WAIT_MS 5000  /* for the close that follows a rejection */

enum peercmd_phase { PH_HELLO, PH_READY, PH_REJECTED };

struct peer {
	struct peercmd_app *app;
	struct keyfile_peer cfg;
	struct peersess sess;
	enum peercmd_phase phase;
	int finishing;      /* we decided the outcome and closed with 1000 */
	int result;         /* the exit code once finishing */
	int64_t finish_at;  /* a decided outcome that waits (0: none) */
	int finish_rc;
	int64_t hello_deadline, reject_deadline;
	char end_why[800];  /* why the connection ended (no reconnect) */
};

/* SIGINT/SIGTERM during a long-running command: close with 1000 instead of
 * dropping the socket (a second signal kills as usual) */
static volatile sig_atomic_t peercmd_stop;

static void peercmd_on_signal(int sig)
{
	(void)sig;
	peercmd_stop = 1;
}

const char *peercmd_str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

void peercmd_app_finish(struct peercmd_app *a, int rc)
{
	struct peer *p = a->p;
	if (p->finishing)
		return;
	p->finishing = 1;
	p->result = rc;
	peersess_finish(&p->sess);
}

void peercmd_app_finish_at(struct peercmd_app *a, int rc, int64_t when)
{
	a->p->finish_at = when;
	a->p->finish_rc = rc;
}

int peercmd_app_send(struct peercmd_app *a, const cJSON *frame)
{
	return peersess_send(&a->p->sess, frame);
}

int peercmd_app_send_text(struct peercmd_app *a, const char *msg, size_t len)
{
	return peersess_send_text(&a->p->sess, msg, len);
}

size_t peercmd_app_queued(const struct peercmd_app *a)
{
	return peersess_queued(&a->p->sess);
}

const struct keyfile_peer *peercmd_app_peer(const struct peercmd_app *a)
{
	return &a->p->cfg;
}

/* an error before hello_ack: the broker closes with 1008 next */
static void peercmd_rejected(struct peer *p, const cJSON *j)
{
	p->phase = PH_REJECTED;
	p->reject_deadline = mono_ms() + PEER_REJECT_WAIT_MS;
	if (!p->app->ops->all_frames) {
		const char *code = peercmd_str(j, "code"), *msg = peercmd_str(j, "message");
		cli_err("hello rejected: %s%s%s%s", code ? code : "error", msg ? " (" : "", msg ? msg : "",
			msg ? ")" : "");
	}
}

static void peercmd_on_frame(void *arg, const char *msg, size_t len)
{
	struct peer *p = arg;
	struct peercmd_app *a = p->app;
	if (p->finishing)
		return;
	cJSON *j = cJSON_ParseWithLength(msg, len);
	const char *type = cJSON_IsObject(j) ? peercmd_str(j, "type") : NULL;
	if (p->phase == PH_HELLO && type && !strcmp(type, "hello_ack")) {
		p->phase = PH_READY;
		if (a->ops->all_frames)
			a->ops->frame(a, j, type, msg, len);
		if (a->ops->ready)
			a->ops->ready(a);
	} else if (p->phase == PH_HELLO && type && !strcmp(type, "error")) {
		if (a->ops->all_frames)
			a->ops->frame(a, j, type, msg, len);
		peercmd_rejected(p, j);
	} else if (p->phase == PH_READY || a->ops->all_frames) {
		a->ops->frame(a, j, type, msg, len);
	}
	cJSON_Delete(j);
}

static void peercmd_on_down(void *arg, const char *why, int reconnect)
{
	struct peer *p = arg;
	if (reconnect) {
		cli_err("%s; reconnecting in %.1f s", why, p->sess.backoff_ms / 1000.0);
		p->phase = PH_HELLO;
		p->hello_deadline = p->sess.next_try + PEERSESS_CONNECT_MS + PEER_HELLO_WAIT_MS;
	} else {
		str_copy(p->end_why, sizeof p->end_why, why);
	}
}

static const struct peersess_ops peercmd_sess_ops = {.frame = peercmd_on_frame, .down = peercmd_on_down};

/* the exit code of a session that ended without our decision */
static int peercmd_report(struct peer *p)
{
	if (p->finishing)
		return p->result;
	if (p->sess.close_code) {
		if (p->app->ops->all_frames || p->phase != PH_REJECTED)
			cli_err("%s", p->end_why);
		if (p->phase == PH_REJECTED || !p->app->ops->long_running)
			return CLI_EXIT_FAIL;
		return p->sess.close_code == 1000 ? 0 : CLI_EXIT_FAIL;
	}
	return cli_err("%s", p->end_why[0] ? p->end_why : "connection closed");
}

/* the timers of the command: what is due now, and when to look again */
static int64_t peercmd_timers(struct peer *p, int64_t now, int64_t deadline)
{
	struct peercmd_app *a = p->app;
	int64_t next = now + 1000;
	if (p->finishing)
		return next;
	if (peercmd_stop) {
		peercmd_app_finish(a, 0);
	} else if (p->phase == PH_HELLO && now >= p->hello_deadline && p->sess.state == PEERSESS_HELLO) {
		cli_err("no hello_ack from the broker within %d s", PEER_HELLO_WAIT_MS / 1000);
		peercmd_app_finish(a, CLI_EXIT_FAIL);
	} else if (p->phase == PH_REJECTED && now >= p->reject_deadline) {
		peercmd_app_finish(a, CLI_EXIT_FAIL);
	} else if (p->finish_at && now >= p->finish_at) {
		peercmd_app_finish(a, p->finish_rc);
	} else if (deadline && now >= deadline) {
		if (a->ops->long_running && p->phase == PH_READY) {
			peercmd_app_finish(a, 0);
		} else {
			cli_err("timed out waiting for %s", p->phase == PH_HELLO ? "hello_ack" : "the broker");
			peercmd_app_finish(a, CLI_EXIT_FAIL);
		}
	}
	if (!p->finishing && a->ops->tick && p->phase == PH_READY)
		a->ops->tick(a, now);
	const int64_t t[] = {p->phase == PH_HELLO ? p->hello_deadline : 0,
			     p->phase == PH_REJECTED ? p->reject_deadline : 0, p->finish_at, deadline};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		if (t[i] && t[i] < next)
			next = t[i];
	return next;
}

/* connect, hello, then run until the outcome is known and the socket shut */
static int peercmd_run(struct peer *p, const struct cli_opts *o, int64_t timeout_ms)
{
	struct peercmd_app *a = p->app;
	int64_t start = mono_ms();
	int64_t deadline = timeout_ms > 0 ? start + timeout_ms : 0;
	p->hello_deadline = start + PEERSESS_CONNECT_MS + PEER_HELLO_WAIT_MS;
	for (size_t i = 0; i < PEERSESS_CAPS_MAX; i++)
		p->sess.hello.caps[i] = a->ops->caps[i];
	peersess_init(&p->sess, &p->cfg, cli_broker_url(o, p->cfg.broker), a->ops->reconnect, &peercmd_sess_ops, p);
	if (a->ops->long_running) {
		struct sigaction sa = {.sa_handler = peercmd_on_signal, .sa_flags = SA_RESETHAND};
		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
	}
	peersess_service(&p->sess, mono_ms());
	while (p->sess.state != PEERSESS_ENDED) {
		int64_t now = mono_ms();
		int64_t next = peercmd_timers(p, now, deadline);
		int timeout = (int)(next > now ? next - now : 0);
		struct pollfd pf[2];
		peersess_pollfd(&p->sess, &pf[0], now, &timeout);
		int in = -1;
		if (a->ops->input_fd && p->phase == PH_READY && !p->finishing)
			in = a->ops->input_fd(a);
		pf[1] = (struct pollfd){.fd = in, .events = POLLIN};
		int n = poll(pf, in >= 0 ? 2 : 1, timeout);
		if (n < 0 && errno != EINTR)
			return cli_err("poll: %s", strerror(errno));
		if (n > 0 && in >= 0 && (pf[1].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)))
			a->ops->input(a);
		peersess_service(&p->sess, mono_ms());
	}
	return peercmd_report(p);
}

/* the options every WebSocket command shares, and the identity */
static int peercmd_setup(struct peer *p, const struct cli_opts *o)
{
	struct peersess_hello *h = &p->sess.hello;
	const char *path = cli_config_path(o);
	long v;
	if (!path)
		return cli_usage_err("no peer config: give --config FILE or set MESHCTL_CONFIG");
	if (keyfile_read_peer(path, &p->cfg) != 0)
		return CLI_EXIT_FAIL;
	h->pid = getpid();
	if (cli_opt(o, "pid")) {
		if (cli_parse_uint(cli_opt(o, "pid"), INT32_MAX, &v) != 0)
			return cli_usage_err("--pid must be an integer 0..%d", INT32_MAX);
		h->pid = v;
	}
	if (cli_opt(o, "cwd")) {
		if (str_copy(h->cwd, sizeof h->cwd, cli_opt(o, "cwd")) != 0)
			return cli_usage_err("--cwd is longer than 4096 bytes");
	} else if (!getcwd(h->cwd, sizeof h->cwd)) {
		return cli_err("getcwd: %s (give --cwd DIR)", strerror(errno));
	}
	if (cli_opt(o, "session-id")) {
		const char *s = cli_opt(o, "session-id");
		if (!*s || str_copy(h->session_id, sizeof h->session_id, s) != 0)
			return cli_usage_err("--session-id must be 1-128 bytes");
	}
	/* for list_peers scope machine */
	if (gethostname(h->hostname, sizeof h->hostname - 1) != 0)
		h->hostname[0] = 0;
	return 0;
}

int peercmd_parse_timeout(const struct cli_opts *o, int64_t def, int64_t *out)
{
	const char *s = cli_opt(o, "timeout");
	if (!s) {
		*out = def;
		return 0;
	}
	return peersess_parse_seconds(s, out);
}

int peercmd_app_run(struct peercmd_app *a, const struct cli_opts *o, int64_t timeout_ms)
{
	struct peer *p = calloc(1, sizeof *p);
	if (!p)
		return cli_err("out of memory");
	p->app = a;
	a->p = p;
	int rc = peercmd_setup(p, o);
	if (rc == 0)
		rc = peercmd_run(p, o, timeout_ms);
	peersess_close(&p->sess);
	sodium_memzero(&p->cfg.key, sizeof p->cfg.key);
	sodium_memzero(p->cfg.api_key, sizeof p->cfg.api_key);
	a->p = NULL;
	free(p);
	return rc;
}
