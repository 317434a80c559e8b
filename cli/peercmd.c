/* peercmd — meshctl's WebSocket commands (see peercmd.h): signed hello (docs/protocol.md
 * §2), then connect / send / status.  stdout carries broker frames, one JSON
 * object per line; stderr carries one-line "meshctl: ..." errors. */
#include "peercmd.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "keyfile.h"
#include "peertable.h"
#include "proto/box.h"
#include "proto/hello.h"
#include "common/util.h"
#include "wsclient.h"

#define PEER_CONNECT_MS 10000     /* TCP connect + upgrade */
#define PEER_HELLO_WAIT_MS 15000  /* the broker's own hello timeout is 10 s */
#define PEER_REJECT_WAIT_MS 5000  /* for the close that follows a rejection */
#define PEER_STATUS_GRACE_MS 200  /* for an error after set_status */
#define PEER_SEND_TIMEOUT_MS 10000
#define PEER_BACKOFF_MAX_S 30     /* connect: reconnect after 1, 2, 4 ... 30 s */
#define PEER_LINE_MAX WSCLIENT_MAX_MSG   /* one stdin line = one frame */
#define PEER_STDIN_BACKLOG (32u << 20)   /* stop reading stdin above this much queued */

enum peercmd_mode { PEER_CONNECT, PEER_SEND, PEER_STATUS, PEER_APP, PEER_PEERS };
enum peercmd_phase { PH_HELLO, PH_READY, PH_REJECTED };

struct peer {
	enum peercmd_mode mode;
	enum peercmd_phase phase;
	struct keyfile_peer cfg;
	struct wsclient *ws;
	int64_t pid;
	char cwd[4097];
	char session_id[129];
	const char *status; /* set_status to send after hello_ack, or NULL */
	int finishing;      /* we decided the outcome and closed with 1000 */
	int was_ready;      /* connect: a hello_ack came once, so a lost connection is retried */
	int result;         /* the exit code once finishing */
	int64_t reject_deadline, grace_until;
	/* connect */
	long count_max, count;
	int stdin_open;
	char *line;
	size_t line_len, line_cap;
	int line_skip;
	/* peers */
	const char *scope;
	int json;
	/* send */
	char send_id[ID_LEN + 1];
	char *send_frame;
	/* app */
	struct peercmd_app *app;
};

/* SIGINT/SIGTERM during connect: close with 1000 instead of dropping the
 * socket (a second signal kills as usual) */
static volatile sig_atomic_t peercmd_stop;

static void peercmd_on_signal(int sig)
{
	(void)sig;
	peercmd_stop = 1;
}

static const char *peercmd_str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* a broker frame as one line: JSON whitespace newlines become spaces */
static void peercmd_print_raw(const char *msg, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = msg[i];
		putchar(c == '\n' || c == '\r' ? ' ' : c);
	}
	putchar('\n');
	fflush(stdout);
}

static void peercmd_finish(struct peer *p, int result)
{
	if (p->finishing)
		return;
	p->finishing = 1;
	p->result = result;
	wsclient_close(p->ws, 1000, "");
}

/* Add "text" (or "textB64") to a push we can read.  1 when added. */
static int peercmd_add_text(const struct peer *p, cJSON *push)
{
	const char *nonce = peercmd_str(push, "nonce"), *ct = peercmd_str(push, "ciphertext");
	const char *sender = peercmd_str(push, "senderPubkey");
	const cJSON *topic = cJSON_GetObjectItemCaseSensitive(push, "topic");
	const cJSON *bv = cJSON_GetObjectItemCaseSensitive(push, "bodyVersion");
	unsigned char spk[32], *plain = NULL;
	size_t n = 0;
	int added = 0;
	if (!ct)
		return 0;
	if (!topic && nonce && sender && is_hex(sender, 64) && hex_decode(sender, spk, sizeof spk) == 0 &&
	    box_decrypt_direct(nonce, ct, spk, p->cfg.key.sk, &plain, &n) == 0) {
		/* a direct message to us */
		if (utf8_valid(plain, n)) {
			added = cJSON_AddStringToObject(push, "text", (const char *)plain) != NULL;
		} else {
			char *b64 = box_b64_encode(plain, n);
			added = b64 && cJSON_AddStringToObject(push, "textB64", b64) != NULL;
			free(b64);
		}
		free(plain);
		return added;
	}
	/* broadcasts and v1 topic bodies are b64 plaintext; v2 needs the topic key */
	if (cJSON_IsNumber(bv) && bv->valuedouble == 2)
		return 0;
	if (box_b64_decode(ct, &plain, &n) == 0) {
		if (utf8_valid(plain, n))
			added = cJSON_AddStringToObject(push, "text", (const char *)plain) != NULL;
		free(plain);
	}
	return added;
}

static void peercmd_send_json(struct peer *p, cJSON *o)
{
	char *s = cJSON_PrintUnformatted(o);
	if (!s || wsclient_send_text(p->ws, s, strlen(s)) != 0)
		cli_err("could not queue a frame");
	free(s);
}

static void peercmd_send_status(struct peer *p, const char *status)
{
	cJSON *o = cJSON_CreateObject();
	/* meshctl status speaks for the user: every live session of the
	 * member, not only this short connection (docs/protocol.md §11) */
	if (o && cJSON_AddStringToObject(o, "type", "set_status") &&
	    cJSON_AddStringToObject(o, "status", status) &&
	    (p->mode != PEER_STATUS || cJSON_AddStringToObject(o, "scope", "member")))
		peercmd_send_json(p, o);
	cJSON_Delete(o);
}

/* an error before hello_ack: the broker closes with 1008 next */
static void peercmd_rejected(struct peer *p, const cJSON *j)
{
	p->phase = PH_REJECTED;
	p->reject_deadline = mono_ms() + PEER_REJECT_WAIT_MS;
	if (p->mode != PEER_CONNECT) {
		const char *code = peercmd_str(j, "code"), *msg = peercmd_str(j, "message");
		cli_err("hello rejected: %s%s%s%s", code ? code : "error", msg ? " (" : "", msg ? msg : "",
			msg ? ")" : "");
	}
}

static void peercmd_connect_frame(struct peer *p, cJSON *j, const char *type, const char *msg,
			       size_t len)
{
	if (type && !strcmp(type, "push")) {
		char *s = NULL;
		if (peercmd_add_text(p, j) && (s = cJSON_PrintUnformatted(j))) {
			fputs(s, stdout);
			putchar('\n');
			fflush(stdout);
			free(s);
		} else {
			peercmd_print_raw(msg, len);
		}
		if (p->count_max && ++p->count >= p->count_max)
			peercmd_finish(p, 0);
		return;
	}
	peercmd_print_raw(msg, len);
	if (p->phase != PH_HELLO || !type)
		return;
	if (!strcmp(type, "hello_ack")) {
		p->phase = PH_READY;
		p->was_ready = 1;
		if (p->status)
			peercmd_send_status(p, p->status);
	} else if (!strcmp(type, "error")) {
		peercmd_rejected(p, j);
	}
}

static void peercmd_send_frame(struct peer *p, cJSON *j, const char *type, const char *msg,
			    size_t len)
{
	if (!type)
		return;
	if (p->phase == PH_HELLO) {
		if (!strcmp(type, "hello_ack")) {
			p->phase = PH_READY;
			if (wsclient_send_text(p->ws, p->send_frame, strlen(p->send_frame)) != 0) {
				cli_err("could not queue the send");
				peercmd_finish(p, CLI_EXIT_FAIL);
			}
		} else if (!strcmp(type, "error")) {
			peercmd_rejected(p, j);
		}
		return;
	}
	if (p->phase != PH_READY)
		return;
	const char *id = peercmd_str(j, "id");
	if (!strcmp(type, "ack") && id && !strcmp(id, p->send_id)) {
		peercmd_print_raw(msg, len);
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "queued"))) {
			peercmd_finish(p, 0);
		} else {
			const char *e = peercmd_str(j, "error");
			cli_err("send refused: %s", e && *e ? e : "not queued");
			peercmd_finish(p, CLI_EXIT_FAIL);
		}
	} else if (!strcmp(type, "error") && (!id || !*id || !strcmp(id, p->send_id))) {
		const char *m = peercmd_str(j, "message"), *c = peercmd_str(j, "code");
		cli_err("send refused: %s", m ? m : c ? c : "error");
		peercmd_finish(p, CLI_EXIT_FAIL);
	}
}

static void peercmd_status_frame(struct peer *p, cJSON *j, const char *type)
{
	if (!type)
		return;
	if (p->phase == PH_HELLO) {
		if (!strcmp(type, "hello_ack")) {
			p->phase = PH_READY;
			peercmd_send_status(p, p->status);
			p->grace_until = mono_ms() + PEER_STATUS_GRACE_MS;
		} else if (!strcmp(type, "error")) {
			peercmd_rejected(p, j);
		}
	} else if (p->phase == PH_READY && !strcmp(type, "error")) {
		const char *m = peercmd_str(j, "message"), *c = peercmd_str(j, "code");
		cli_err("status refused: %s", m ? m : c ? c : "error");
		peercmd_finish(p, CLI_EXIT_FAIL);
	}
}

static void peercmd_peers_frame(struct peer *p, cJSON *j, const char *type)
{
	if (!type)
		return;
	if (p->phase == PH_HELLO) {
		if (!strcmp(type, "hello_ack")) {
			p->phase = PH_READY;
			cJSON *o = cJSON_CreateObject();
			if (o && cJSON_AddStringToObject(o, "type", "list_peers") &&
			    cJSON_AddStringToObject(o, "_reqId", "meshctl-peers") &&
			    (!p->scope || cJSON_AddStringToObject(o, "scope", p->scope)))
				peercmd_send_json(p, o);
			cJSON_Delete(o);
		} else if (!strcmp(type, "error")) {
			peercmd_rejected(p, j);
		}
	} else if (p->phase == PH_READY && !strcmp(type, "peers_list")) {
		peertable_print(stdout, cJSON_GetObjectItemCaseSensitive(j, "peers"), p->json);
		fflush(stdout);
		peercmd_finish(p, 0);
	} else if (p->phase == PH_READY && !strcmp(type, "error")) {
		const char *m = peercmd_str(j, "message"), *c = peercmd_str(j, "code");
		cli_err("list_peers refused: %s", m ? m : c ? c : "error");
		peercmd_finish(p, CLI_EXIT_FAIL);
	}
}

static void peercmd_on_text(void *arg, const char *msg, size_t len)
{
	struct peer *p = arg;
	if (p->finishing)
		return;
	cJSON *j = cJSON_ParseWithLength(msg, len);
	const char *type = cJSON_IsObject(j) ? peercmd_str(j, "type") : NULL;
	switch (p->mode) {
	case PEER_CONNECT:
		peercmd_connect_frame(p, j, type, msg, len);
		break;
	case PEER_SEND:
		peercmd_send_frame(p, j, type, msg, len);
		break;
	case PEER_STATUS:
		peercmd_status_frame(p, j, type);
		break;
	case PEER_APP:
		if (p->phase == PH_HELLO && type && !strcmp(type, "hello_ack")) {
			p->phase = PH_READY;
			p->app->ops->ready(p->app);
		} else if (p->phase == PH_HELLO && type && !strcmp(type, "error")) {
			peercmd_rejected(p, j);
		} else if (p->phase == PH_READY) {
			p->app->ops->frame(p->app, j, type);
		}
		break;
	case PEER_PEERS:
		peercmd_peers_frame(p, j, type);
		break;
	}
	cJSON_Delete(j);
}

static int peercmd_send_hello(struct peer *p)
{
	char sig[129];
	int64_t ts = now_ms();
	const struct keyfile_peer *c = &p->cfg;
	if (hello_sign(sig, c->key.sk, c->mesh_id, c->member_id, c->key.pubkey, ts) != 0)
		return cli_err("cannot sign the hello");
	if (!p->session_id[0])
		snprintf(p->session_id, sizeof p->session_id, "%lld-%lld", (long long)p->pid,
			 (long long)now_ms());
	cJSON *h = cJSON_CreateObject();
	int ok = h && cJSON_AddStringToObject(h, "type", "hello") &&
		 cJSON_AddStringToObject(h, "meshId", c->mesh_id) &&
		 cJSON_AddStringToObject(h, "memberId", c->member_id) &&
		 cJSON_AddStringToObject(h, "pubkey", c->key.pubkey) &&
		 cJSON_AddStringToObject(h, "sessionId", p->session_id) &&
		 cJSON_AddNumberToObject(h, "pid", (double)p->pid) &&
		 cJSON_AddStringToObject(h, "cwd", p->cwd) &&
		 cJSON_AddNumberToObject(h, "timestamp", (double)ts) &&
		 cJSON_AddStringToObject(h, "signature", sig);
	if (ok && c->display_name[0])
		ok = cJSON_AddStringToObject(h, "displayName", c->display_name) != NULL;
	char host[256] = "";
	if (ok && gethostname(host, sizeof host - 1) == 0 && host[0]) /* for list_peers scope machine */
		ok = cJSON_AddStringToObject(h, "hostname", host) != NULL;
	if (ok && p->mode != PEER_CONNECT && !(p->app && p->app->ops->wants_pushes)) {
		/* a one-shot session does not print pushes: on brokers that offer
		 * at-least-once delivery, leave them for the real client */
		const char *caps[] = {"client_ack"};
		cJSON *a = cJSON_CreateStringArray(caps, 1);
		ok = a && cJSON_AddItemToObject(h, "capabilities", a);
	}
	if (!ok) {
		cJSON_Delete(h);
		return cli_err("out of memory");
	}
	peercmd_send_json(p, h);
	cJSON_Delete(h);
	return 0;
}

/* one complete stdin line (NUL-terminated in p->line) */
static void peercmd_stdin_line(struct peer *p)
{
	char *s = p->line;
	size_t n = p->line_len;
	while (n > 0 && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	while (n > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	if (n == 0)
		return;
	s[n] = 0;
	if (!utf8_valid((const unsigned char *)s, n)) {
		cli_err("stdin: line is not UTF-8 text, ignored");
		return;
	}
	const char *end = NULL;
	cJSON *j = cJSON_ParseWithOpts(s, &end, 1);
	int obj = cJSON_IsObject(j);
	cJSON_Delete(j);
	if (!obj) {
		cli_err("stdin: line is not a JSON object, ignored");
		return;
	}
	if (wsclient_send_text(p->ws, s, n) != 0)
		cli_err("stdin: could not queue the frame");
}

static int peercmd_line_reserve(struct peer *p, size_t more)
{
	if (p->line_len + more + 1 <= p->line_cap)
		return 0;
	size_t cap = p->line_cap ? p->line_cap : 4096;
	while (cap < p->line_len + more + 1)
		cap *= 2;
	char *nl = realloc(p->line, cap);
	if (!nl)
		return -1;
	p->line = nl;
	p->line_cap = cap;
	return 0;
}

static void peercmd_read_stdin(struct peer *p)
{
	char buf[65536];
	ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
	if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (n <= 0) {
		/* EOF (or an unreadable stdin): keep the connection, stop reading */
		if (p->line_len && !p->line_skip)
			peercmd_stdin_line(p);
		p->line_len = 0;
		p->stdin_open = 0;
		return;
	}
	const char *s = buf, *end = buf + n;
	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t chunk = (size_t)((nl ? nl : end) - s);
		if (!p->line_skip) {
			if (p->line_len + chunk > PEER_LINE_MAX || peercmd_line_reserve(p, chunk) != 0) {
				cli_err("stdin: line over %u bytes, ignored", PEER_LINE_MAX);
				p->line_skip = 1;
				p->line_len = 0;
			} else {
				memcpy(p->line + p->line_len, s, chunk);
				p->line_len += chunk;
			}
		}
		if (!nl)
			break;
		if (!p->line_skip)
			peercmd_stdin_line(p);
		p->line_len = 0;
		p->line_skip = 0;
		s = nl + 1;
	}
}

/* the options every WebSocket command shares, and the identity */
static int peercmd_setup(struct peer *p, const struct cli_opts *o)
{
	const char *path = cli_config_path(o);
	long v;
	if (!path)
		return cli_usage_err("no peer config: give --config FILE or set MESHCTL_CONFIG");
	if (keyfile_read_peer(path, &p->cfg) != 0)
		return CLI_EXIT_FAIL;
	p->pid = getpid();
	if (cli_opt(o, "pid")) {
		if (cli_parse_uint(cli_opt(o, "pid"), INT32_MAX, &v) != 0)
			return cli_usage_err("--pid must be an integer 0..%d", INT32_MAX);
		p->pid = v;
	}
	if (cli_opt(o, "cwd")) {
		if (str_copy(p->cwd, sizeof p->cwd, cli_opt(o, "cwd")) != 0)
			return cli_usage_err("--cwd is longer than 4096 bytes");
	} else if (!getcwd(p->cwd, sizeof p->cwd)) {
		return cli_err("getcwd: %s (give --cwd DIR)", strerror(errno));
	}
	if (cli_opt(o, "session-id")) {
		const char *s = cli_opt(o, "session-id");
		if (!*s || str_copy(p->session_id, sizeof p->session_id, s) != 0)
			return cli_usage_err("--session-id must be 1-128 bytes");
	}
	return 0;
}

/* --timeout SECONDS (decimals allowed) into ms; def when absent */
int peercmd_parse_timeout(const struct cli_opts *o, int64_t def, int64_t *out)
{
	const char *s = cli_opt(o, "timeout");
	if (!s) {
		*out = def;
		return 0;
	}
	char *end;
	errno = 0;
	double d = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(d) || d <= 0 || d > 1e7)
		return -1;
	*out = (int64_t)(d * 1000.0 + 0.5);
	if (*out < 1)
		*out = 1;
	return 0;
}

static int peercmd_report(struct peer *p)
{
	uint16_t code;
	const char *reason;
	if (p->finishing)
		return p->result;
	if (wsclient_peer_close(p->ws, &code, &reason)) {
		if (p->mode == PEER_CONNECT || p->phase != PH_REJECTED)
			cli_err("closed %u%s%s", code, *reason ? " " : "", reason);
		if (p->phase == PH_REJECTED || p->mode != PEER_CONNECT)
			return CLI_EXIT_FAIL;
		return code == 1000 ? 0 : CLI_EXIT_FAIL;
	}
	const char *e = wsclient_error(p->ws);
	return cli_err("%s", e ? e : "connection closed");
}

/* connect: wait out the backoff (a signal ends it), then connect again
 * until it works.  0 = connected and hello sent, -1 = stopped. */
static int peercmd_reconnect(struct peer *p, const char *url, int64_t deadline)
{
	int backoff = 1;
	for (;;) {
		uint16_t code;
		const char *reason;
		char why[300];
		if (p->ws && wsclient_peer_close(p->ws, &code, &reason))
			snprintf(why, sizeof why, "closed %u%s%s", code, *reason ? " " : "", reason);
		else
			snprintf(why, sizeof why, "%s", p->ws && wsclient_error(p->ws) ? wsclient_error(p->ws) : "connection lost");
		wsclient_free(p->ws);
		p->ws = NULL;
		cli_err("%s; reconnecting in %d s", why, backoff);
		int64_t until = mono_ms() + backoff * 1000;
		while (!peercmd_stop && mono_ms() < until && !(deadline && mono_ms() >= deadline))
			poll(NULL, 0, 100);
		if (peercmd_stop || (deadline && mono_ms() >= deadline))
			return -1;
		backoff = backoff * 2 > PEER_BACKOFF_MAX_S ? PEER_BACKOFF_MAX_S : backoff * 2;
		char err[512];
		p->ws = wsclient_open(url, PEER_CONNECT_MS, peercmd_on_text, p, err, sizeof err);
		if (!p->ws) {
			cli_err("%s; reconnecting in %d s", err, backoff);
			until = mono_ms() + backoff * 1000;
			while (!peercmd_stop && mono_ms() < until)
				poll(NULL, 0, 100);
			continue;
		}
		p->phase = PH_HELLO;
		if (peercmd_send_hello(p) == 0)
			return 0;
	}
}

/* connect, hello, then run until the outcome is known and the socket shut */
static int peercmd_run(struct peer *p, const struct cli_opts *o, int64_t timeout_ms)
{
	char err[512];
	int64_t start = mono_ms();
	int64_t deadline = timeout_ms > 0 ? start + timeout_ms : 0;
	int64_t hello_deadline = start + PEER_HELLO_WAIT_MS;
	int ct = PEER_CONNECT_MS;
	if (deadline && timeout_ms < ct)
		ct = (int)timeout_ms;
	const char *url = cli_broker_url(o, p->cfg.broker);
	p->ws = wsclient_open(url, ct, peercmd_on_text, p, err, sizeof err);
	if (!p->ws)
		return cli_err("%s", err);
	if (peercmd_send_hello(p) != 0)
		return CLI_EXIT_FAIL;
	int tail = p->app && p->app->ops->wants_pushes;
	if (p->mode == PEER_CONNECT || tail) {
		struct sigaction sa = {.sa_handler = peercmd_on_signal, .sa_flags = SA_RESETHAND};
		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		p->stdin_open = p->mode == PEER_CONNECT && fcntl(STDIN_FILENO, F_GETFD) >= 0;
	}
again:

	for (;;) {
		/* a signal landing just before poll() waits at most a second */
		int64_t now = mono_ms(), next = now + 1000;
		if (!p->finishing) {
			if (peercmd_stop) {
				peercmd_finish(p, 0);
			} else if (p->phase == PH_HELLO && now >= hello_deadline) {
				cli_err("no hello_ack from the broker within %d s", PEER_HELLO_WAIT_MS / 1000);
				peercmd_finish(p, CLI_EXIT_FAIL);
			} else if (p->phase == PH_REJECTED && now >= p->reject_deadline) {
				peercmd_finish(p, CLI_EXIT_FAIL);
			} else if (p->phase == PH_READY && p->grace_until && now >= p->grace_until) {
				peercmd_finish(p, 0);
			} else if (deadline && now >= deadline) {
				if ((p->mode == PEER_CONNECT || tail) && p->phase == PH_READY) {
					peercmd_finish(p, 0);
				} else {
					cli_err("timed out waiting for %s",
						p->phase == PH_HELLO ? "hello_ack" : "the broker");
					peercmd_finish(p, CLI_EXIT_FAIL);
				}
			}
		}
		if (!p->finishing && p->app && p->app->ops->tick && p->phase == PH_READY)
			p->app->ops->tick(p->app, now);
		if (!p->finishing) {
			if (p->phase == PH_HELLO && hello_deadline < next)
				next = hello_deadline;
			if (p->phase == PH_REJECTED && p->reject_deadline < next)
				next = p->reject_deadline;
			if (p->grace_until && p->grace_until < next)
				next = p->grace_until;
			if (deadline && deadline < next)
				next = deadline;
		}
		int fd = -1, ready = 0;
		if (p->stdin_open && p->phase == PH_READY && !p->finishing &&
		    wsclient_queued(p->ws) < PEER_STDIN_BACKLOG)
			fd = STDIN_FILENO;
		if (!wsclient_step(p->ws, (int)(next - now), fd, &ready))
			break;
		if (ready)
			peercmd_read_stdin(p);
	}
	/* connect keeps a session that worked once: a lost connection (not a
	 * rejection, not our own close) is tried again with backoff */
	if (p->mode == PEER_CONNECT && p->was_ready && !p->finishing && p->phase != PH_REJECTED && !peercmd_stop) {
		uint16_t code;
		const char *reason;
		int session_replaced = wsclient_peer_close(p->ws, &code, &reason) && code == 1000;
		if (!session_replaced && peercmd_reconnect(p, url, deadline) == 0) {
			hello_deadline = mono_ms() + PEER_HELLO_WAIT_MS;
			goto again;
		}
		if (!p->ws)
			return 0;
	}
	return peercmd_report(p);
}

static void peercmd_cleanup(struct peer *p)
{
	wsclient_free(p->ws);
	sodium_memzero(&p->cfg.key, sizeof p->cfg.key);
	sodium_memzero(p->cfg.api_key, sizeof p->cfg.api_key);
	free(p->line);
	free(p->send_frame);
}

static const char *peercmd_status_ok(const char *s)
{
	return s && (!strcmp(s, "idle") || !strcmp(s, "working") || !strcmp(s, "dnd")) ? s : NULL;
}

int peercmd_connect(int argc, char **argv)
{
	static const struct cli_optspec spec[] = {
		{"count", 1}, {"timeout", 1}, {"status", 1}, {"pid", 1},
		{"cwd", 1},   {"session-id", 1}, {NULL, 0}};
	struct cli_opts o;
	struct peer p = {.mode = PEER_CONNECT};
	int64_t timeout_ms;
	int rc;
	if (cli_opts_parse(argc, argv, spec, &o) != 0)
		return CLI_EXIT_USAGE;
	if (o.npos != 0)
		return cli_usage_err("usage: meshctl connect [--count N] [--timeout SECONDS] "
				     "[--status idle|working|dnd] [--config FILE]");
	if (cli_opt(&o, "count") && (cli_parse_uint(cli_opt(&o, "count"), INT32_MAX, &p.count_max) != 0 ||
				     p.count_max < 1))
		return cli_usage_err("--count must be a positive integer");
	if (peercmd_parse_timeout(&o, 0, &timeout_ms) != 0)
		return cli_usage_err("--timeout must be a positive number of seconds");
	if (cli_opt(&o, "status") && !(p.status = peercmd_status_ok(cli_opt(&o, "status"))))
		return cli_usage_err("--status must be idle, working or dnd");
	if ((rc = peercmd_setup(&p, &o)) == 0)
		rc = peercmd_run(&p, &o, timeout_ms);
	peercmd_cleanup(&p);
	return rc;
}

/* the send frame of docs/protocol.md §3.1, body per §3.3 */
static char *peercmd_build_send(struct peer *p, const char *target, const char *priority,
			     const char *text)
{
	char *nonce = NULL, *ct = NULL, *out = NULL;
	int topic = target[0] == '#';
	if (is_hex(target, 64)) {
		unsigned char rpk[32];
		if (hex_decode(target, rpk, sizeof rpk) != 0 ||
		    box_encrypt_direct(text, strlen(text), rpk, p->cfg.key.sk, &nonce, &ct) != 0) {
			cli_err("cannot encrypt for %s (not an ed25519 public key?)", target);
			return NULL;
		}
	} else {
		/* like the reference clients: b64 plaintext and a random nonce */
		unsigned char rnd[24];
		randombytes_buf(rnd, sizeof rnd);
		nonce = box_b64_encode(rnd, sizeof rnd);
		ct = box_b64_encode((const unsigned char *)text, strlen(text));
	}
	id_new(p->send_id);
	cJSON *s = cJSON_CreateObject();
	if (nonce && ct && s && cJSON_AddStringToObject(s, "type", "send") &&
	    cJSON_AddStringToObject(s, "id", p->send_id) &&
	    cJSON_AddStringToObject(s, "targetSpec", target) &&
	    cJSON_AddStringToObject(s, "priority", priority) &&
	    cJSON_AddStringToObject(s, "nonce", nonce) &&
	    cJSON_AddStringToObject(s, "ciphertext", ct) &&
	    (!topic || cJSON_AddNumberToObject(s, "bodyVersion", 1)))
		out = cJSON_PrintUnformatted(s);
	if (!out)
		cli_err("out of memory");
	cJSON_Delete(s);
	free(nonce);
	free(ct);
	return out;
}

int peercmd_send(int argc, char **argv)
{
	static const struct cli_optspec spec[] = {
		{"priority", 1}, {"timeout", 1}, {"pid", 1}, {"cwd", 1}, {"session-id", 1}, {NULL, 0}};
	struct cli_opts o;
	struct peer p = {.mode = PEER_SEND};
	char target[129];
	int64_t timeout_ms;
	int rc;
	if (cli_opts_parse(argc, argv, spec, &o) != 0)
		return CLI_EXIT_USAGE;
	if (o.npos != 2)
		return cli_usage_err("usage: meshctl send PUBKEY|'*' TEXT [--priority now|next|low] "
				     "[--timeout SECONDS] [--config FILE]");
	const char *priority = cli_opt(&o, "priority") ? cli_opt(&o, "priority") : "next";
	if (strcmp(priority, "now") && strcmp(priority, "next") && strcmp(priority, "low"))
		return cli_usage_err("--priority must be now, next or low");
	if (str_copy(target, sizeof target, o.pos[0]) != 0 || !target[0])
		return cli_usage_err("bad target");
	if (is_hex(target, 64)) {
		for (char *c = target; *c; c++)
			if (*c >= 'A' && *c <= 'F')
				*c = (char)(*c - 'A' + 'a');
	} else if (strcmp(target, "*") != 0 && target[0] != '#' && target[0] != '@') {
		return cli_usage_err("target must be a member pubkey (64 hex), '*', #TOPIC_ID or @GROUP");
	}
	if (!utf8_valid((const unsigned char *)o.pos[1], strlen(o.pos[1])) && o.pos[1][0])
		return cli_usage_err("TEXT must be UTF-8");
	if (peercmd_parse_timeout(&o, PEER_SEND_TIMEOUT_MS, &timeout_ms) != 0)
		return cli_usage_err("--timeout must be a positive number of seconds");
	if ((rc = peercmd_setup(&p, &o)) == 0) {
		if (!(p.send_frame = peercmd_build_send(&p, target, priority, o.pos[1])))
			rc = CLI_EXIT_FAIL;
		else
			rc = peercmd_run(&p, &o, timeout_ms);
	}
	peercmd_cleanup(&p);
	return rc;
}

int peercmd_status(int argc, char **argv)
{
	static const struct cli_optspec spec[] = {
		{"timeout", 1}, {"pid", 1}, {"cwd", 1}, {"session-id", 1}, {NULL, 0}};
	struct cli_opts o;
	struct peer p = {.mode = PEER_STATUS};
	int64_t timeout_ms;
	int rc;
	if (cli_opts_parse(argc, argv, spec, &o) != 0)
		return CLI_EXIT_USAGE;
	if (o.npos != 1 || !(p.status = peercmd_status_ok(o.pos[0])))
		return cli_usage_err("usage: meshctl status idle|working|dnd [--config FILE]");
	if (peercmd_parse_timeout(&o, PEER_SEND_TIMEOUT_MS, &timeout_ms) != 0)
		return cli_usage_err("--timeout must be a positive number of seconds");
	if ((rc = peercmd_setup(&p, &o)) == 0)
		rc = peercmd_run(&p, &o, timeout_ms);
	peercmd_cleanup(&p);
	return rc;
}

/* ---- commands with their own requests (meshctl topic ...) ---- */

int peercmd_app_run(struct peercmd_app *a, const struct cli_opts *o, int64_t timeout_ms)
{
	struct peer *p = calloc(1, sizeof *p);
	if (!p)
		return cli_err("out of memory");
	p->mode = PEER_APP;
	p->app = a;
	a->p = p;
	int rc = peercmd_setup(p, o);
	if (rc == 0)
		rc = peercmd_run(p, o, timeout_ms);
	peercmd_cleanup(p);
	a->p = NULL;
	free(p);
	return rc;
}

int peercmd_app_send(struct peercmd_app *a, cJSON *frame)
{
	char *s = cJSON_PrintUnformatted(frame);
	int rc = s && wsclient_send_text(a->p->ws, s, strlen(s)) == 0 ? 0 : -1;
	free(s);
	return rc;
}

void peercmd_app_finish(struct peercmd_app *a, int rc) { peercmd_finish(a->p, rc); }

const struct keyfile_peer *peercmd_app_peer(const struct peercmd_app *a) { return &a->p->cfg; }

int peercmd_peers(int argc, char **argv)
{
	static const struct cli_optspec spec[] = {
		{"scope", 1}, {"json", 0}, {"timeout", 1}, {"pid", 1}, {"cwd", 1}, {"session-id", 1}, {NULL, 0}};
	struct cli_opts o;
	struct peer p = {.mode = PEER_PEERS};
	int64_t timeout_ms;
	int rc;
	if (cli_opts_parse(argc, argv, spec, &o) != 0)
		return CLI_EXIT_USAGE;
	p.scope = cli_opt(&o, "scope");
	p.json = cli_opt(&o, "json") != NULL;
	if (o.npos != 0 || (p.scope && strcmp(p.scope, "mesh") && strcmp(p.scope, "machine") &&
			     strcmp(p.scope, "directory") && strcmp(p.scope, "repo")))
		return cli_usage_err("usage: meshctl peers [--scope mesh|machine|directory|repo] [--json] "
				     "[--config FILE]");
	if (peercmd_parse_timeout(&o, PEER_SEND_TIMEOUT_MS, &timeout_ms) != 0)
		return cli_usage_err("--timeout must be a positive number of seconds");
	if ((rc = peercmd_setup(&p, &o)) == 0)
		rc = peercmd_run(&p, &o, timeout_ms);
	peercmd_cleanup(&p);
	return rc;
}
