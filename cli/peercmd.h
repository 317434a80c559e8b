/* peercmd — meshctl as a mesh peer over the broker's WebSocket: connect (print
 * every frame as a JSON line, decrypting pushes), send (one message, wait for
 * its ack) and status (set_status).  Identity comes from the peer config. */
#ifndef CLI_PEERCMD_H
#define CLI_PEERCMD_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

struct cli_opts;
struct keyfile_peer;
struct peer;

/* A command that speaks its own requests after the hello (meshctl topic
 * ...): the runner connects, says hello and calls ops. */
struct peercmd_app;
struct peercmd_app_ops {
	int wants_pushes;                                             /* hello without client_ack, run until --timeout */
	void (*ready)(struct peercmd_app *a);                         /* hello_ack arrived */
	void (*frame)(struct peercmd_app *a, cJSON *j, const char *type); /* each later frame (j may be NULL) */
	void (*tick)(struct peercmd_app *a, int64_t now_mono);        /* at least once a second (may be NULL) */
};
struct peercmd_app {
	const struct peercmd_app_ops *ops;
	void *arg;
	struct peer *p; /* set while running */
};
/* connect with the peer config of o, hello, run a until it finishes (or
 * timeout_ms; 0 = none); the exit code */
int peercmd_app_run(struct peercmd_app *a, const struct cli_opts *o, int64_t timeout_ms);
int peercmd_app_send(struct peercmd_app *a, cJSON *frame); /* 0 queued */
void peercmd_app_finish(struct peercmd_app *a, int rc);
const struct keyfile_peer *peercmd_app_peer(const struct peercmd_app *a);
/* --timeout SECONDS into ms (def when absent); -1 bad */
int peercmd_parse_timeout(const struct cli_opts *o, int64_t def, int64_t *out);

int peercmd_connect(int argc, char **argv);
int peercmd_send(int argc, char **argv);
int peercmd_status(int argc, char **argv);
int peercmd_peers(int argc, char **argv); /* list_peers as a table or JSON */

#endif
