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
#include "roster.h"
#include "topiccmd.h"
#include "common/util.h"

#define ONE_STATUS_GRACE_MS 200 /* for an error after set_status */

enum send_mode { SEND_READY, SEND_NAME, SEND_BCAST };

struct one {
	struct peercmd_app app;
	const char *status;   /* status */
	const char *scope;    /* peers */
	int json;
	char send_id[ID_LEN + 1];
	char *send_frame;     /* send: the frame, when known before the roster */
	enum send_mode mode;  /* send: what the roster is for */
	const char *target, *text, *priority;
	char roster_rid[ID_LEN + 1];
	int bcast_total, bcast_acked, bcast_queued;
	cJSON *bcast_ids;     /* the messageIds acked */
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
	if (c->mode != SEND_READY) { /* the members first: a name, everyone, or a group's */
		id_new(c->roster_rid);
		cJSON *r = c->target[0] == '@' && strcmp(c->target, "@all") ? roster_group_request(c->roster_rid, c->target)
		                                                              : roster_request(c->roster_rid);
		int ok = r && peercmd_app_send(a, r) == 0;
		cJSON_Delete(r);
		if (ok)
			return;
	} else if (peercmd_app_send_text(a, c->send_frame, strlen(c->send_frame)) == 0) {
		return;
	}
	cli_err("could not queue the send");
	peercmd_app_finish(a, CLI_EXIT_FAIL);
}

/* the members are in: the one named, or one envelope per member (one batch) */
static void send_roster(struct peercmd_app *a, const cJSON *j)
{
	struct one *c = a->arg;
	const cJSON *members = cJSON_GetObjectItemCaseSensitive(j, "members");
	const unsigned char *sk = peercmd_app_peer(a)->key.sk;
	if (c->mode == SEND_NAME) {
		char pk[65], why[1200];
		int link;
		if (roster_resolve(members, c->target, pk, &link, why, sizeof why) != 0) {
			cli_err("send refused: %s", why);
			peercmd_app_finish(a, CLI_EXIT_FAIL);
			return;
		}
		id_new(c->send_id);
		cJSON *f = roster_direct_frame(pk, sk, c->text, c->priority, c->send_id);
		c->mode = SEND_READY;
		if (!f || peercmd_app_send(a, f) != 0) {
			cli_err("could not queue the send");
			peercmd_app_finish(a, CLI_EXIT_FAIL);
		}
		cJSON_Delete(f);
		return;
	}
	if (c->target[0] == '@' && strcmp(c->target, "@all") &&
	    !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "group"))) {
		/* an older broker ignores group and lists everyone */
		cli_err("send refused: this broker cannot list a group's members (list_members{group}); nothing sent");
		peercmd_app_finish(a, CLI_EXIT_FAIL);
		return;
	}
	id_new(c->send_id);
	cJSON *frames = roster_broadcast(members, sk, c->text, c->priority, c->send_id), *f;
	if (!frames) {
		cli_err("cannot encrypt the broadcast (a member key is not an ed25519 key?)");
		peercmd_app_finish(a, CLI_EXIT_FAIL);
		return;
	}
	c->bcast_total = cJSON_GetArraySize(frames);
	c->bcast_ids = cJSON_CreateArray();
	cJSON_ArrayForEach(f, frames) if (peercmd_app_send(a, f) != 0)
	{
		cli_err("could not queue the broadcast");
		peercmd_app_finish(a, CLI_EXIT_FAIL);
		break;
	}
	cJSON_Delete(frames);
	if (c->bcast_total == 0) {
		puts("{\"type\":\"ack\",\"broadcast\":true,\"queued\":true,\"recipients\":0,\"messageIds\":[]}");
		fflush(stdout);
		peercmd_app_finish(a, 0);
	}
}

/* one ack of a broadcast's envelopes; the last one prints the summary */
static void send_bcast_ack(struct peercmd_app *a, const cJSON *j)
{
	struct one *c = a->arg;
	const char *mid = peercmd_str(j, "messageId"), *e = peercmd_str(j, "error");
	c->bcast_acked++;
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "queued"))) {
		c->bcast_queued++;
		cJSON_AddItemToArray(c->bcast_ids, cJSON_CreateString(mid ? mid : ""));
	} else {
		cli_err("broadcast: an envelope was refused: %s", e && *e ? e : "not queued");
	}
	if (c->bcast_acked < c->bcast_total)
		return;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "ack");
	cJSON_AddStringToObject(o, "id", c->send_id);
	cJSON_AddBoolToObject(o, "broadcast", 1);
	cJSON_AddBoolToObject(o, "queued", c->bcast_queued == c->bcast_total);
	cJSON_AddNumberToObject(o, "recipients", c->bcast_total);
	cJSON_AddItemToObject(o, "messageIds", c->bcast_ids);
	c->bcast_ids = NULL;
	char *txt = cJSON_PrintUnformatted(o);
	if (txt)
		puts(txt);
	fflush(stdout);
	free(txt);
	cJSON_Delete(o);
	peercmd_app_finish(a, c->bcast_queued == c->bcast_total ? 0 : CLI_EXIT_FAIL);
}

static void send_frame(struct peercmd_app *a, cJSON *j, const char *type, const char *msg, size_t len)
{
	struct one *c = a->arg;
	const char *id = peercmd_str(j, "id"), *rid = peercmd_str(j, "_reqId");
	size_t pl = strlen(c->send_id);
	if (!type)
		return;
	if (!strcmp(type, "members_list") && rid && !strcmp(rid, c->roster_rid)) {
		send_roster(a, j);
	} else if (!strcmp(type, "ack") && c->mode == SEND_BCAST && id && pl && !strncmp(id, c->send_id, pl) &&
	           id[pl] == '-') {
		send_bcast_ack(a, j);
	} else if (!strcmp(type, "ack") && id && !strcmp(id, c->send_id)) {
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
	} else if (!strcmp(type, "error") &&
	           (!id || !*id || !strcmp(id, c->send_id) || (c->roster_rid[0] && !strcmp(id, c->roster_rid)))) {
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

/* meshctl send TARGET TEXT: a pubkey (a member's or a session's) as one
 * crypto_box; a member NAME resolved through list_members (offline members
 * too); '*' and @all as one crypto_box per member (docs/protocol.md §3.3),
 * @GROUP the same for the members list_members{group} says the broker
 * resolves it to now, all under one broadcastId; #TOPIC as meshctl topic
 * post (v2 under the topic key).  Nothing leaves in clear. */
int peersend_send(int argc, char **argv)
{
	static const struct cli_optspec spec[] = {
		{"priority", 1}, {"timeout", 1}, {"pid", 1}, {"cwd", 1}, {"session-id", 1}, {NULL, 0}};
	struct cli_opts o;
	struct one c = {0};
	char target[129];
	if (cli_opts_parse(argc, argv, spec, &o) != 0)
		return CLI_EXIT_USAGE;
	if (o.npos != 2)
		return cli_usage_err("usage: meshctl send PUBKEY|NAME|'*'|#TOPIC|@GROUP TEXT [--priority now|next|low] "
				     "[--timeout SECONDS] [--config FILE]");
	const char *priority = cli_opt(&o, "priority") ? cli_opt(&o, "priority") : "next";
	if (strcmp(priority, "now") && strcmp(priority, "next") && strcmp(priority, "low"))
		return cli_usage_err("--priority must be now, next or low");
	if (str_copy(target, sizeof target, o.pos[0]) != 0 || !target[0])
		return cli_usage_err("bad target");
	if (!utf8_valid((const unsigned char *)o.pos[1], strlen(o.pos[1])) && o.pos[1][0])
		return cli_usage_err("TEXT must be UTF-8");
	if (target[0] == '#') {
		/* a topic post: the topic command's code, sealed with the topic key */
		char *args[CLI_ARGS_MAX + 2];
		int n = 0;
		for (int i = 0; i < argc && n < CLI_ARGS_MAX; i++)
			args[n++] = argv[i] == o.pos[0] ? argv[i] + 1 : argv[i];
		args[n] = NULL;
		return topiccmd_post(n, args);
	}
	c.target = target;
	c.text = o.pos[1];
	c.priority = priority;
	if (!strcmp(target, "*") || target[0] == '@') {
		c.mode = SEND_BCAST; /* @group: the members the broker resolves it to now */
	} else if (is_hex(target, 64)) {
		for (char *t = target; *t; t++)
			if (*t >= 'A' && *t <= 'F')
				*t = (char)(*t - 'A' + 'a');
	} else {
		c.mode = SEND_NAME;
	}
	if (c.mode == SEND_READY) { /* the frame is known now: a pubkey */
		const char *path = cli_config_path(&o);
		struct keyfile_peer cfg;
		if (!path)
			return cli_usage_err("no peer config: give --config FILE or set MESHCTL_CONFIG");
		if (keyfile_read_peer(path, &cfg) != 0)
			return CLI_EXIT_FAIL;
		id_new(c.send_id);
		cJSON *f = roster_direct_frame(target, cfg.key.sk, c.text, priority, c.send_id);
		sodium_memzero(&cfg, sizeof cfg);
		c.send_frame = f ? cJSON_PrintUnformatted(f) : NULL;
		cJSON_Delete(f);
		if (!c.send_frame)
			return cli_err("cannot encrypt for %s (not an ed25519 public key?)", target);
	}
	int rc = one_run(&c, &send_ops, &o);
	free(c.send_frame);
	cJSON_Delete(c.bcast_ids);
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
