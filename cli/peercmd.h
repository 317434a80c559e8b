/* peercmd — the runner of meshctl's peer commands (connect, send, status,
 * peers, topic ...): the options they share (--config, --pid, --cwd,
 * --session-id, --timeout), one peer session (cli/peersess.h) with the
 * identity of the peer config, the hello phase (a rejection is one line),
 * the command's deadline, SIGINT/SIGTERM for long-running commands, and the
 * end: the exit code and one line saying why.  Each command is an "app":
 * callbacks the runner calls once the hello is acknowledged. */
#ifndef CLI_PEERCMD_H
#define CLI_PEERCMD_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "cli/peersess.h"

struct cli_opts;
struct keyfile_peer;
struct peer;

#define PEERCMD_TIMEOUT_MS 10000 /* one-shot commands without --timeout */

struct peercmd_app;
struct peercmd_app_ops {
	int long_running;                 /* runs until --timeout (0: forever) or a signal: connect, tail */
	enum peersess_reconnect reconnect; /* PEERSESS_NEVER or PEERSESS_AFTER_READY */
	const char *caps[PEERSESS_CAPS_MAX]; /* hello capabilities */
	int all_frames;                   /* frame() sees hello_ack and hello errors too (connect prints them) */
	void (*ready)(struct peercmd_app *a);                         /* hello_ack arrived (may be NULL) */
	void (*frame)(struct peercmd_app *a, cJSON *j, const char *type, const char *msg, size_t len);
	void (*tick)(struct peercmd_app *a, int64_t now_mono);        /* at least once a second (may be NULL) */
	/* the app reads an input fd while ready (connect: stdin lines as frames) */
	int (*input_fd)(struct peercmd_app *a);                       /* -1: not now (may be NULL) */
	void (*input)(struct peercmd_app *a);                         /* it is readable */
};
struct peercmd_app {
	const struct peercmd_app_ops *ops;
	void *arg;
	struct peer *p; /* set while running */
};
/* connect with the peer config of o, hello, run a until it finishes (or
 * timeout_ms; 0 = none); the exit code */
int peercmd_app_run(struct peercmd_app *a, const struct cli_opts *o, int64_t timeout_ms);
int peercmd_app_send(struct peercmd_app *a, const cJSON *frame); /* 0 queued */
int peercmd_app_send_text(struct peercmd_app *a, const char *msg, size_t len);
size_t peercmd_app_queued(const struct peercmd_app *a);
/* the outcome: close with 1000 and exit rc (at once, or at mono ms when) */
void peercmd_app_finish(struct peercmd_app *a, int rc);
void peercmd_app_finish_at(struct peercmd_app *a, int rc, int64_t when);
const struct keyfile_peer *peercmd_app_peer(const struct peercmd_app *a);
/* --timeout SECONDS into ms (def when absent); -1 bad */
int peercmd_parse_timeout(const struct cli_opts *o, int64_t def, int64_t *out);
/* the string member k of o, or NULL */
const char *peercmd_str(const cJSON *o, const char *k);

#endif
