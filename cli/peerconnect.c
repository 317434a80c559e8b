/* peerconnect — `meshctl connect`: a peer session that prints every frame
 * from the broker as one JSON line (pushes it can read get "text" or
 * "textB64") and sends each JSON object line read from stdin as a frame.
 * The hello asks for client_ack: a push is acked once its line is on
 * stdout, and one seen before (a redelivery after a reconnect) is acked
 * again and not printed twice, so a message acked by the broker before,
 * during or after a lost connection is printed exactly once.  A session
 * that worked once reconnects with backoff (cli/peersess.h). */
#include "peerconnect.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "keyfile.h"
#include "peercmd.h"
#include "proto/box.h"
#include "common/util.h"
#include "wsclient.h"

#define CONN_LINE_MAX WSCLIENT_MAX_MSG   /* one stdin line = one frame */
#define CONN_STDIN_BACKLOG (32u << 20)   /* stop reading stdin above this much queued */
#define CONN_SEEN_MAX 1024               /* printed message ids remembered */

struct conn {
	struct peercmd_app app;
	const char *status; /* set_status after every hello_ack, or NULL */
	long count_max, count;
	int stdin_open;
	char *line;
	size_t line_len, line_cap;
	int line_skip;
	char seen[CONN_SEEN_MAX][64];
	size_t seen_next;
};

/* a broker frame as one line: JSON whitespace newlines become spaces */
static void conn_print_raw(const char *msg, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = msg[i];
		putchar(c == '\n' || c == '\r' ? ' ' : c);
	}
	putchar('\n');
	fflush(stdout);
}

/* Add "text" (or "textB64") to a push we can read.  1 when added. */
static int conn_add_text(const struct conn *c, cJSON *push)
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
	    box_decrypt_direct(nonce, ct, spk, peercmd_app_peer(&c->app)->key.sk, &plain, &n) == 0) {
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

/* 1 when id was printed already */
static int conn_seen(struct conn *c, const char *id)
{
	for (size_t i = 0; i < CONN_SEEN_MAX; i++)
		if (!strcmp(c->seen[i], id))
			return 1;
	str_copy(c->seen[c->seen_next++ % CONN_SEEN_MAX], sizeof c->seen[0], id);
	return 0;
}

static void conn_ack(struct conn *c, const char *id)
{
	cJSON *o = cJSON_CreateObject();
	if (o && cJSON_AddStringToObject(o, "type", "client_ack") && cJSON_AddStringToObject(o, "brokerMessageId", id))
		peercmd_app_send(&c->app, o);
	cJSON_Delete(o);
}

static void conn_push(struct conn *c, cJSON *j, const char *msg, size_t len)
{
	const char *id = peercmd_str(j, "messageId");
	if (id && (strlen(id) >= sizeof c->seen[0] || conn_seen(c, id))) {
		conn_ack(c, id); /* printed before: the broker's copy after a lost ack */
		return;
	}
	char *s = NULL;
	if (conn_add_text(c, j) && (s = cJSON_PrintUnformatted(j))) {
		fputs(s, stdout);
		putchar('\n');
		fflush(stdout);
		free(s);
	} else {
		conn_print_raw(msg, len);
	}
	if (id)
		conn_ack(c, id);
	if (c->count_max && ++c->count >= c->count_max)
		peercmd_app_finish(&c->app, 0);
}

static void conn_frame(struct peercmd_app *a, cJSON *j, const char *type, const char *msg, size_t len)
{
	struct conn *c = a->arg;
	if (type && !strcmp(type, "push") && j)
		conn_push(c, j, msg, len);
	else
		conn_print_raw(msg, len);
}

static void conn_ready(struct peercmd_app *a)
{
	struct conn *c = a->arg;
	if (!c->status)
		return;
	cJSON *o = cJSON_CreateObject();
	if (o && cJSON_AddStringToObject(o, "type", "set_status") && cJSON_AddStringToObject(o, "status", c->status))
		peercmd_app_send(a, o);
	cJSON_Delete(o);
}

/* one complete stdin line (NUL-terminated in p->line) */
static void conn_stdin_line(struct conn *p)
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
	if (peercmd_app_send_text(&p->app, s, n) != 0)
		cli_err("stdin: could not queue the frame");
}

static int conn_line_reserve(struct conn *p, size_t more)
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

static void conn_read_stdin(struct conn *p)
{
	char buf[65536];
	ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
	if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (n <= 0) {
		/* EOF (or an unreadable stdin): keep the connection, stop reading */
		if (p->line_len && !p->line_skip)
			conn_stdin_line(p);
		p->line_len = 0;
		p->stdin_open = 0;
		return;
	}
	const char *s = buf, *end = buf + n;
	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t chunk = (size_t)((nl ? nl : end) - s);
		if (!p->line_skip) {
			if (p->line_len + chunk > CONN_LINE_MAX || conn_line_reserve(p, chunk) != 0) {
				cli_err("stdin: line over %u bytes, ignored", CONN_LINE_MAX);
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
			conn_stdin_line(p);
		p->line_len = 0;
		p->line_skip = 0;
		s = nl + 1;
	}
}

static int conn_input_fd(struct peercmd_app *a)
{
	struct conn *c = a->arg;
	return c->stdin_open && peercmd_app_queued(a) < CONN_STDIN_BACKLOG ? STDIN_FILENO : -1;
}

static void conn_input(struct peercmd_app *a)
{
	conn_read_stdin(a->arg);
}

static const struct peercmd_app_ops conn_ops = {
	.long_running = 1,
	.reconnect = PEERSESS_AFTER_READY,
	.caps = {"client_ack"},
	.all_frames = 1,
	.ready = conn_ready,
	.frame = conn_frame,
	.input_fd = conn_input_fd,
	.input = conn_input,
};

static const char *conn_status_ok(const char *s)
{
	return s && (!strcmp(s, "idle") || !strcmp(s, "working") || !strcmp(s, "dnd")) ? s : NULL;
}

int peerconnect_main(int argc, char **argv)
{
	static const struct cli_optspec spec[] = {
		{"count", 1}, {"timeout", 1}, {"status", 1}, {"pid", 1},
		{"cwd", 1},   {"session-id", 1}, {NULL, 0}};
	struct cli_opts o;
	int64_t timeout_ms;
	if (cli_opts_parse(argc, argv, spec, &o) != 0)
		return CLI_EXIT_USAGE;
	struct conn *c = calloc(1, sizeof *c);
	if (!c)
		return cli_err("out of memory");
	int rc = CLI_EXIT_USAGE;
	if (o.npos != 0)
		cli_usage_err("usage: meshctl connect [--count N] [--timeout SECONDS] "
			      "[--status idle|working|dnd] [--config FILE]");
	else if (cli_opt(&o, "count") && (cli_parse_uint(cli_opt(&o, "count"), INT32_MAX, &c->count_max) != 0 ||
					  c->count_max < 1))
		cli_usage_err("--count must be a positive integer");
	else if (peercmd_parse_timeout(&o, 0, &timeout_ms) != 0)
		cli_usage_err("--timeout must be a positive number of seconds");
	else if (cli_opt(&o, "status") && !(c->status = conn_status_ok(cli_opt(&o, "status"))))
		cli_usage_err("--status must be idle, working or dnd");
	else
		rc = 0;
	if (rc == 0) {
		c->app.ops = &conn_ops;
		c->app.arg = c;
		c->stdin_open = fcntl(STDIN_FILENO, F_GETFD) >= 0;
		rc = peercmd_app_run(&c->app, &o, timeout_ms);
	}
	free(c->line);
	free(c);
	return rc;
}
