/* peersend — the one-shot peer commands: `meshctl send` (one message,
 * waiting for its ack), `meshctl status` (set_status for every live session
 * of the member) and `meshctl peers` (list_peers as a table or JSON).  Each
 * is an app of the runner (cli/peercmd.h) on a session that does not
 * reconnect; its hello asks for client_ack so that pushes are left for the
 * member's real client. */
#include "peersend.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cli.h"
#include "keyfile.h"
#include "peercmd.h"
#include "peertable.h"
#include "proto/box.h"
#include "common/util.h"

#define ONE_STATUS_GRACE_MS 200 /* for an error after set_status */

struct one {
	struct peercmd_app app;
	const char *status;   /* status */
	const char *scope;    /* peers */
	int json;
	char send_id[ID_LEN + 1];
	char *send_frame;     /* send */
};

/* a refusal of the request: one line, exit 1 */
static void one_refused(struct one *c, const char *what, const cJSON *j)
{
	const char *m = peercmd_str(j, "message"), *code = peercmd_str(j, "code");
	cli_err("%s refused: %s", what, m ? m : code ? code : "error");
	peercmd_app_finish(&c->app, CLI_EXIT_FAIL);
}

static void send_ready(struct peercmd_app *a)
{
	struct one *c = a->arg;
	if (peercmd_app_send_text(a, c->send_frame, strlen(c->send_frame)) != 0) {
		cli_err("could not queue the send");
		peercmd_app_finish(a, CLI_EXIT_FAIL);
	}
}

static void send_frame(struct peercmd_app *a, cJSON *j, const char *type, const char *msg, size_t len)
{
	struct one *c = a->arg;
	const char *id = peercmd_str(j, "id");
	if (!type)
		return;
	if (!strcmp(type, "ack") && id && !strcmp(id, c->send_id)) {
		fwrite(msg, 1, len, stdout);
		putchar('\n');
		fflush(stdout);
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "queued"))) {
			peercmd_app_finish(a, 0);
		} else {
			const char *e = peercmd_str(j, "error");
			cli_err("send refused: %s", e && *e ? e : "not queued");
			peercmd_app_finish(a, CLI_EXIT_FAIL);
		}
	} else if (!strcmp(type, "error") && (!id || !*id || !strcmp(id, c->send_id))) {
		one_refused(c, "send", j);
	}
}

static void status_ready(struct peercmd_app *a)
{
	struct one *c = a->arg;
	cJSON *o = cJSON_CreateObject();
	/* meshctl status speaks for the user: every live session of the
	 * member, not only this short connection (docs/protocol.md §11) */
	if (o && cJSON_AddStringToObject(o, "type", "set_status") && cJSON_AddStringToObject(o, "status", c->status) &&
	    cJSON_AddStringToObject(o, "scope", "member"))
		peercmd_app_send(a, o);
	cJSON_Delete(o);
	peercmd_app_finish_at(a, 0, mono_ms() + ONE_STATUS_GRACE_MS);
}

static void status_frame(struct peercmd_app *a, cJSON *j, const char *type, const char *msg, size_t len)
{
	(void)msg;
	(void)len;
	if (type && !strcmp(type, "error"))
		one_refused(a->arg, "status", j);
}

static void peers_ready(struct peercmd_app *a)
{
	struct one *c = a->arg;
	cJSON *o = cJSON_CreateObject();
	if (o && cJSON_AddStringToObject(o, "type", "list_peers") && cJSON_AddStringToObject(o, "_reqId", "meshctl-peers") &&
	    (!c->scope || cJSON_AddStringToObject(o, "scope", c->scope)))
		peercmd_app_send(a, o);
	cJSON_Delete(o);
}

static void peers_frame(struct peercmd_app *a, cJSON *j, const char *type, const char *msg, size_t len)
{
	struct one *c = a->arg;
	(void)msg;
	(void)len;
	if (type && !strcmp(type, "peers_list")) {
		peertable_print(stdout, cJSON_GetObjectItemCaseSensitive(j, "peers"), c->json);
		fflush(stdout);
		peercmd_app_finish(a, 0);
	} else if (type && !strcmp(type, "error")) {
		one_refused(c, "list_peers", j);
	}
}

static const struct peercmd_app_ops send_ops = {.caps = {"client_ack"}, .ready = send_ready, .frame = send_frame};
static const struct peercmd_app_ops status_ops = {.caps = {"client_ack"}, .ready = status_ready, .frame = status_frame};
static const struct peercmd_app_ops peers_ops = {.caps = {"client_ack"}, .ready = peers_ready, .frame = peers_frame};

static int one_run(struct one *c, const struct peercmd_app_ops *ops, const struct cli_opts *o)
{
	int64_t timeout_ms;
	if (peercmd_parse_timeout(o, PEERCMD_TIMEOUT_MS, &timeout_ms) != 0)
		return cli_usage_err("--timeout must be a positive number of seconds");
	c->app.ops = ops;
	c->app.arg = c;
	return peercmd_app_run(&c->app, o, timeout_ms);
}

/* the send frame of docs/protocol.md §3.1, body per §3.3 */
static char *one_build_send(struct one *p, const unsigned char *sk, const char *target, const char *priority,
			    const char *text)
{
	char *nonce = NULL, *ct = NULL, *out = NULL;
	int topic = target[0] == '#';
	if (is_hex(target, 64)) {
		unsigned char rpk[32];
		if (hex_decode(target, rpk, sizeof rpk) != 0 ||
		    box_encrypt_direct(text, strlen(text), rpk, sk, &nonce, &ct) != 0) {
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

int peersend_send(int argc, char **argv)
{
	static const struct cli_optspec spec[] = {
		{"priority", 1}, {"timeout", 1}, {"pid", 1}, {"cwd", 1}, {"session-id", 1}, {NULL, 0}};
	struct cli_opts o;
	struct one c = {0};
	struct keyfile_peer cfg;
	char target[129];
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
		for (char *t = target; *t; t++)
			if (*t >= 'A' && *t <= 'F')
				*t = (char)(*t - 'A' + 'a');
	} else if (strcmp(target, "*") != 0 && target[0] != '#' && target[0] != '@') {
		return cli_usage_err("target must be a member pubkey (64 hex), '*', #TOPIC_ID or @GROUP");
	}
	if (!utf8_valid((const unsigned char *)o.pos[1], strlen(o.pos[1])) && o.pos[1][0])
		return cli_usage_err("TEXT must be UTF-8");
	const char *path = cli_config_path(&o);
	if (!path)
		return cli_usage_err("no peer config: give --config FILE or set MESHCTL_CONFIG");
	if (keyfile_read_peer(path, &cfg) != 0)
		return CLI_EXIT_FAIL;
	c.send_frame = one_build_send(&c, cfg.key.sk, target, priority, o.pos[1]);
	sodium_memzero(&cfg, sizeof cfg);
	int rc = c.send_frame ? one_run(&c, &send_ops, &o) : CLI_EXIT_FAIL;
	free(c.send_frame);
	return rc;
}

int peersend_status(int argc, char **argv)
{
	static const struct cli_optspec spec[] = {
		{"timeout", 1}, {"pid", 1}, {"cwd", 1}, {"session-id", 1}, {NULL, 0}};
	struct cli_opts o;
	struct one c = {0};
	if (cli_opts_parse(argc, argv, spec, &o) != 0)
		return CLI_EXIT_USAGE;
	if (o.npos != 1 || (strcmp(o.pos[0], "idle") && strcmp(o.pos[0], "working") && strcmp(o.pos[0], "dnd")))
		return cli_usage_err("usage: meshctl status idle|working|dnd [--config FILE]");
	c.status = o.pos[0];
	return one_run(&c, &status_ops, &o);
}

int peersend_peers(int argc, char **argv)
{
	static const struct cli_optspec spec[] = {
		{"scope", 1}, {"json", 0}, {"timeout", 1}, {"pid", 1}, {"cwd", 1}, {"session-id", 1}, {NULL, 0}};
	struct cli_opts o;
	struct one c = {0};
	if (cli_opts_parse(argc, argv, spec, &o) != 0)
		return CLI_EXIT_USAGE;
	c.scope = cli_opt(&o, "scope");
	c.json = cli_opt(&o, "json") != NULL;
	if (o.npos != 0 || (c.scope && strcmp(c.scope, "mesh") && strcmp(c.scope, "machine") &&
			     strcmp(c.scope, "directory") && strcmp(c.scope, "repo")))
		return cli_usage_err("usage: meshctl peers [--scope mesh|machine|directory|repo] [--json] "
				     "[--config FILE]");
	return one_run(&c, &peers_ops, &o);
}
