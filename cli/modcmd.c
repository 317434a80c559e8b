/* modcmd — kick, disconnect, ban, unban, bans (see modcmd.h): a peercmd app
 * that sends one request with a _reqId once the hello is acknowledged and
 * prints the reply that carries it. */
#include "cli/modcmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "cli/peercmd.h"
#include "common/util.h"

enum mod_op { MOD_KICK, MOD_DISCONNECT, MOD_BAN, MOD_UNBAN, MOD_BANS };

/* per verb: the request, its reply, the usage, the word for what was done */
static const struct mod_verb {
	const char *type, *reply, *usage, *done;
	int target; /* 1: TARGET (or --all for kick/disconnect), 0: none */
} mod_verbs[] = {
    [MOD_KICK] = {"kick", "kick_ack", "usage: meshctl kick TARGET|--all (a name, pubkey or ≥ 8 hex of one)", "kicked", 1},
    [MOD_DISCONNECT] = {"disconnect", "disconnect_ack", "usage: meshctl disconnect TARGET|--all", "disconnected", 1},
    [MOD_BAN] = {"ban", "ban_ack", "usage: meshctl ban MEMBER [--reason TEXT]", "banned", 1},
    [MOD_UNBAN] = {"unban", "unban_ack", "usage: meshctl unban MEMBER", "unbanned", 1},
    [MOD_BANS] = {"list_bans", "list_bans_result", "usage: meshctl bans", NULL, 0},
};

struct mod {
	enum mod_op op;
	cJSON *req;
	char rid[ID_LEN + 1];
};

/* "a, b, c" of a string array into out */
static void mod_join(const cJSON *arr, char *out, size_t cap)
{
	size_t n = 0;
	const cJSON *v;
	out[0] = 0;
	cJSON_ArrayForEach(v, arr)
	{
		if (!cJSON_IsString(v))
			continue;
		int w = snprintf(out + n, cap - n, "%s%s", n ? ", " : "", v->valuestring);
		if (w < 0 || (size_t)w >= cap - n) {
			snprintf(out + cap - 5, 5, "...");
			return;
		}
		n += (size_t)w;
	}
}

static void mod_ready(struct peercmd_app *a)
{
	struct mod *m = a->arg;
	if (peercmd_app_send(a, m->req) != 0) {
		cli_err("%s: not sent: the connection closed", mod_verbs[m->op].type);
		peercmd_app_finish(a, CLI_EXIT_FAIL);
	}
}

static void mod_print(const struct mod *m, const cJSON *j)
{
	char names[1024], more[1024];
	if (m->op == MOD_KICK || m->op == MOD_DISCONNECT) {
		const cJSON *k = cJSON_GetObjectItemCaseSensitive(j, "kicked");
		const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "skipped_control_plane");
		mod_join(k, names, sizeof names);
		mod_join(s, more, sizeof more);
		printf("%s %d: %s%s%s%s\n", mod_verbs[m->op].done, cJSON_GetArraySize(k), names[0] ? names : "nobody",
		       more[0] ? " (skipped, control plane: " : "", more, more[0] ? ")" : "");
	} else if (m->op == MOD_BANS) {
		const cJSON *b;
		cJSON_ArrayForEach(b, cJSON_GetObjectItemCaseSensitive(j, "bans"))
		{
			printf("%s\t%s\t%s\n", peercmd_str(b, "name") ? peercmd_str(b, "name") : "?",
			       peercmd_str(b, "pubkey") ? peercmd_str(b, "pubkey") : "?",
			       peercmd_str(b, "revokedAt") ? peercmd_str(b, "revokedAt") : "?");
		}
	} else {
		const char *who = peercmd_str(j, mod_verbs[m->op].done);
		printf("%s %s\n", mod_verbs[m->op].done, who ? who : "?");
	}
}

static void mod_frame(struct peercmd_app *a, cJSON *j, const char *type, const char *msg, size_t len)
{
	struct mod *m = a->arg;
	(void)msg;
	(void)len;
	const char *rid = peercmd_str(j, "_reqId");
	if (!rid || strcmp(rid, m->rid) != 0)
		return;
	if (!strcmp(type, "error")) {
		const char *code = peercmd_str(j, "code"), *text = peercmd_str(j, "message");
		cli_err("%s refused: %s%s%s", mod_verbs[m->op].type, code ? code : "error", text ? ": " : "",
			text ? text : "");
		peercmd_app_finish(a, CLI_EXIT_FAIL);
		return;
	}
	if (strcmp(type, mod_verbs[m->op].reply) != 0)
		return;
	mod_print(m, j);
	peercmd_app_finish(a, fflush(stdout) == 0 ? 0 : CLI_EXIT_FAIL);
}

static const struct peercmd_app_ops mod_ops = {.caps = {NULL}, .ready = mod_ready, .frame = mod_frame};

static int mod_run(enum mod_op op, int argc, char **argv)
{
	static const struct cli_optspec spec[] = {{"all", 0},  {"reason", 1}, {"timeout", 1},   {"pid", 1},
						  {"cwd", 1}, {NULL, 0}};
	const struct mod_verb *v = &mod_verbs[op];
	struct cli_opts o;
	struct mod m = {.op = op};
	int64_t timeout_ms;
	if (cli_opts_parse(argc, argv, spec, &o) != 0)
		return CLI_EXIT_USAGE;
	int all = cli_opt(&o, "all") != NULL;
	int can_all = op == MOD_KICK || op == MOD_DISCONNECT;
	if (o.npos != (v->target && !all ? 1 : 0) || (all && !can_all) || (cli_opt(&o, "reason") && op != MOD_BAN))
		return cli_usage_err("%s", v->usage);
	if (o.npos && (!o.pos[0][0] || strlen(o.pos[0]) > 256))
		return cli_usage_err("TARGET must be 1-256 bytes");
	if (peercmd_parse_timeout(&o, PEERCMD_TIMEOUT_MS, &timeout_ms) != 0)
		return cli_usage_err("--timeout must be a positive number of seconds");
	id_new(m.rid);
	m.req = cJSON_CreateObject();
	if (!m.req || !cJSON_AddStringToObject(m.req, "type", v->type) ||
	    !cJSON_AddStringToObject(m.req, "_reqId", m.rid) ||
	    (o.npos && !cJSON_AddStringToObject(m.req, "target", o.pos[0])) ||
	    (all && !cJSON_AddBoolToObject(m.req, "all", 1)) ||
	    (cli_opt(&o, "reason") && !cJSON_AddStringToObject(m.req, "reason", cli_opt(&o, "reason")))) {
		cJSON_Delete(m.req);
		return cli_err("out of memory");
	}
	struct peercmd_app a = {.ops = &mod_ops, .arg = &m};
	int rc = peercmd_app_run(&a, &o, timeout_ms);
	cJSON_Delete(m.req);
	return rc;
}

int modcmd_kick(int argc, char **argv)
{
	return mod_run(MOD_KICK, argc, argv);
}

int modcmd_disconnect(int argc, char **argv)
{
	return mod_run(MOD_DISCONNECT, argc, argv);
}

int modcmd_ban(int argc, char **argv)
{
	return mod_run(MOD_BAN, argc, argv);
}

int modcmd_unban(int argc, char **argv)
{
	return mod_run(MOD_UNBAN, argc, argv);
}

int modcmd_bans(int argc, char **argv)
{
	return mod_run(MOD_BANS, argc, argv);
}
