/* install — meshctl install / uninstall (see install.h): cJSON edits of
 * Claude Code's files, written back atomically only when they changed. */
#include "cli/install.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "cli/cli.h"
#include "cli/installjson.h"
#include "cli/keyfile.h"

/* the hooks we register: event, the hook mode, async (status reports need
 * not hold up the prompt), Claude Code's timeout in seconds */
static const struct install_hook {
	const char *event, *mode;
	int async, timeout;
} install_hooks[] = {
	{"UserPromptSubmit", "working", 1, 10},
	{"UserPromptSubmit", "prompt", 0, 5},
	{"Stop", "idle", 1, 10},
};
#define INSTALL_NHOOKS (sizeof install_hooks / sizeof install_hooks[0])

/* s as one single-quoted shell word into out */
static int install_quote(const char *s, char *out, size_t cap)
{
	size_t o = 0;
	out[o++] = '\'';
	for (; *s; s++) {
		const char *piece = *s == '\'' ? "'\\''" : NULL;
		size_t n = piece ? 4 : 1;
		if (o + n + 2 > cap)
			return -1;
		if (piece)
			memcpy(out + o, piece, n);
		else
			out[o] = *s;
		o += n;
	}
	out[o++] = '\'';
	out[o] = 0;
	return 0;
}

static int install_is_ours(const cJSON *hook)
{
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(hook, "command");
	size_t n = cJSON_IsString(c) ? strlen(c->valuestring) : 0, m = strlen(INSTALL_MARK);
	return n >= m && !strcmp(c->valuestring + n - m, INSTALL_MARK);
}

/* remove our hook commands from every event (a group left empty goes, and
 * an event left empty); the number removed */
static int install_strip_hooks(cJSON *hooks)
{
	int removed = 0;
	cJSON *ev = hooks ? hooks->child : NULL;
	while (ev) {
		cJSON *next_ev = ev->next;
		if (cJSON_IsArray(ev)) {
			int emptied = 0;
			cJSON *g = ev->child;
			while (g) {
				cJSON *next_g = g->next, *list = cJSON_GetObjectItemCaseSensitive(g, "hooks");
				if (cJSON_IsArray(list)) {
					cJSON *h = list->child;
					int had = cJSON_GetArraySize(list);
					while (h) {
						cJSON *next_h = h->next;
						if (install_is_ours(h)) {
							cJSON_Delete(cJSON_DetachItemViaPointer(list, h));
							removed++;
						}
						h = next_h;
					}
					if (had && !cJSON_GetArraySize(list)) {
						cJSON_Delete(cJSON_DetachItemViaPointer(ev, g));
						emptied = 1;
					}
				}
				g = next_g;
			}
			if (emptied && !cJSON_GetArraySize(ev))
				cJSON_Delete(cJSON_DetachItemViaPointer(hooks, ev));
		}
		ev = next_ev;
	}
	return removed;
}

static int install_add_hooks(cJSON *hooks, const char *exe_q, const char *cfg_q, const char *path)
{
	for (size_t i = 0; i < INSTALL_NHOOKS; i++) {
		const struct install_hook *k = &install_hooks[i];
		cJSON *ev = cJSON_GetObjectItemCaseSensitive(hooks, k->event);
		if (!ev)
			ev = cJSON_AddArrayToObject(hooks, k->event);
		if (!cJSON_IsArray(ev))
			return cli_err("%s: hooks.%s is not an array; left as it is", path, k->event);
		size_t cap = strlen(exe_q) + strlen(cfg_q) + 64;
		char *cmd = malloc(cap);
		cJSON *g = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(g, "hooks");
		cJSON *h = cJSON_CreateObject();
		if (!cmd || !list || !h) {
			free(cmd);
			cJSON_Delete(g);
			cJSON_Delete(h);
			return cli_err("out of memory");
		}
		snprintf(cmd, cap, "%s hook %s --config %s " INSTALL_MARK, exe_q, k->mode, cfg_q);
		cJSON_AddStringToObject(h, "type", "command");
		cJSON_AddStringToObject(h, "command", cmd);
		cJSON_AddNumberToObject(h, "timeout", k->timeout);
		if (k->async)
			cJSON_AddBoolToObject(h, "async", 1);
		cJSON_AddItemToArray(list, h);
		cJSON_AddItemToArray(ev, g);
		free(cmd);
	}
	return 0;
}

/* an mcpServers entry that meshctl install wrote (args ["mcp", ...]) */
static int install_mcp_ours(const cJSON *e)
{
	const cJSON *args = cJSON_GetObjectItemCaseSensitive(e, "args");
	const cJSON *a0 = cJSON_IsArray(args) ? args->child : NULL;
	return cJSON_IsString(a0) && !strcmp(a0->valuestring, "mcp");
}

/* load, edit, save when changed; the edit returns 0 or an exit code */
typedef int (*install_edit)(cJSON *doc, const char *path, void *arg);
static int install_file(const char *path, install_edit edit, void *arg, int *changed)
{
	cJSON *doc;
	int existed;
	*changed = 0;
	if (installjson_load(path, &doc, &existed) != 0)
		return CLI_EXIT_FAIL;
	char *before = cJSON_PrintUnformatted(doc);
	int rc = edit(doc, path, arg);
	char *after = rc == 0 ? cJSON_PrintUnformatted(doc) : NULL;
	if (rc == 0 && (!before || !after))
		rc = cli_err("out of memory");
	if (rc == 0 && strcmp(before, after) != 0 && (existed || cJSON_GetArraySize(doc) > 0)) {
		rc = installjson_save(path, doc) == 0 ? 0 : CLI_EXIT_FAIL;
		*changed = rc == 0;
	}
	free(before);
	free(after);
	cJSON_Delete(doc);
	return rc;
}

struct install_ctx {
	const char *name, *exe, *cfg;
	char exe_q[PATH_MAX * 4 + 3], cfg_q[PATH_MAX * 4 + 3];
	int uninstall, removed;
};

static int edit_mcp(cJSON *doc, const char *path, void *arg)
{
	struct install_ctx *c = arg;
	cJSON *servers = cJSON_GetObjectItemCaseSensitive(doc, "mcpServers");
	cJSON *e = cJSON_GetObjectItemCaseSensitive(servers, c->name);
	if (e && !install_mcp_ours(e))
		return cli_err("%s: mcpServers.%s is not meshctl's; left as it is (use --name)", path, c->name);
	if (c->uninstall) {
		c->removed += e != NULL;
		if (e)
			cJSON_DeleteItemFromObjectCaseSensitive(servers, c->name);
		return 0;
	}
	if (!(servers = installjson_object(doc, "mcpServers", path)))
		return CLI_EXIT_FAIL;
	cJSON *n = cJSON_CreateObject();
	cJSON_AddStringToObject(n, "type", "stdio");
	cJSON_AddStringToObject(n, "command", c->exe);
	cJSON *args = cJSON_AddArrayToObject(n, "args");
	cJSON_AddItemToArray(args, cJSON_CreateString("mcp"));
	cJSON_AddItemToArray(args, cJSON_CreateString("--config"));
	cJSON_AddItemToArray(args, cJSON_CreateString(c->cfg));
	if (e)
		cJSON_ReplaceItemInObjectCaseSensitive(servers, c->name, n);
	else
		cJSON_AddItemToObject(servers, c->name, n);
	return 0;
}

static int edit_hooks(cJSON *doc, const char *path, void *arg)
{
	struct install_ctx *c = arg;
	cJSON *hooks = cJSON_GetObjectItemCaseSensitive(doc, "hooks");
	if (hooks && !cJSON_IsObject(hooks))
		return cli_err("%s: \"hooks\" is not an object; left as it is", path);
	c->removed += install_strip_hooks(hooks);
	if (c->uninstall)
		return 0;
	if (!(hooks = installjson_object(doc, "hooks", path)))
		return CLI_EXIT_FAIL;
	return install_add_hooks(hooks, c->exe_q, c->cfg_q, path);
}

static const struct cli_optspec install_spec[] = {{"scope", 1}, {"name", 1}, {NULL, 0}};

static int install_setup(int argc, char **argv, struct install_ctx *c, struct installjson_paths *p,
			 const char *usage)
{
	struct cli_opts o;
	enum installjson_scope scope;
	if (cli_opts_parse(argc, argv, install_spec, &o) != 0)
		return CLI_EXIT_USAGE;
	if (o.npos != 0 || installjson_scope_parse(cli_opt(&o, "scope"), &scope) != 0)
		return cli_usage_err("%s", usage);
	c->name = cli_opt(&o, "name") ? cli_opt(&o, "name") : INSTALL_NAME;
	if (!*c->name || strlen(c->name) > 64)
		return cli_usage_err("--name must be 1-64 bytes");
	if (installjson_paths(scope, p) != 0)
		return CLI_EXIT_FAIL;
	if (c->uninstall)
		return 0;
	static char exe[PATH_MAX], cfg[PATH_MAX];
	const char *path = cli_config_path(&o);
	if (!path)
		return cli_usage_err("no peer config: give --config FILE or set MESHCTL_CONFIG");
	struct keyfile_peer *peer = calloc(1, sizeof *peer);
	if (!peer)
		return cli_err("out of memory");
	int bad = keyfile_read_peer(path, peer) != 0;
	int nobroker = !bad && !peer->broker[0];
	sodium_memzero(peer, sizeof *peer);
	free(peer);
	if (bad)
		return CLI_EXIT_FAIL;
	if (nobroker)
		return cli_err("%s has no \"broker\": hooks would not know where to report", path);
	if (installjson_self(exe, sizeof exe) != 0 || installjson_abs(path, cfg, sizeof cfg) != 0)
		return CLI_EXIT_FAIL;
	c->exe = exe;
	c->cfg = cfg;
	if (install_quote(exe, c->exe_q, sizeof c->exe_q) != 0 || install_quote(cfg, c->cfg_q, sizeof c->cfg_q) != 0)
		return cli_err("path too long");
	return 0;
}

int install_main(int argc, char **argv)
{
	struct install_ctx c = {0};
	struct installjson_paths p;
	int changed;
	int rc = install_setup(argc, argv, &c, &p, "usage: meshctl install --config PEERCONFIG "
					    "[--scope user|project] [--name NAME]");
	if (rc != 0)
		return rc;
	if ((rc = install_file(p.mcp, edit_mcp, &c, &changed)) != 0)
		return rc;
	printf("mcpServers.%s in %s: %s\n", c.name, p.mcp, changed ? "registered" : "already there");
	if ((rc = install_file(p.settings, edit_hooks, &c, &changed)) != 0)
		return rc;
	printf("hooks (UserPromptSubmit: working, prompt; Stop: idle) in %s: %s\n", p.settings,
	       changed ? "registered" : "already there");
	return 0;
}

int install_uninstall(int argc, char **argv)
{
	struct install_ctx c = {.uninstall = 1};
	struct installjson_paths p;
	int changed;
	int rc = install_setup(argc, argv, &c, &p, "usage: meshctl uninstall [--scope user|project] [--name NAME]");
	if (rc != 0)
		return rc;
	if ((rc = install_file(p.mcp, edit_mcp, &c, &changed)) != 0)
		return rc;
	printf("mcpServers.%s in %s: %s\n", c.name, p.mcp, changed ? "removed" : "not there");
	c.removed = 0;
	if ((rc = install_file(p.settings, edit_hooks, &c, &changed)) != 0)
		return rc;
	printf("meshctl hooks in %s: %d removed\n", p.settings, c.removed);
	return 0;
}

static int edit_count(cJSON *doc, const char *path, void *arg)
{
	int *n = arg;
	(void)path;
	const cJSON *ev, *g, *h;
	cJSON_ArrayForEach(ev, cJSON_GetObjectItemCaseSensitive(doc, "hooks"))
	{
		cJSON_ArrayForEach(g, ev)
		{
			cJSON_ArrayForEach(h, cJSON_GetObjectItemCaseSensitive(g, "hooks")) *n += install_is_ours(h);
		}
	}
	return 0;
}

static int edit_has_mcp(cJSON *doc, const char *path, void *arg)
{
	struct install_ctx *c = arg;
	(void)path;
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "mcpServers"),
							  c->name);
	c->removed = e && install_mcp_ours(e);
	return 0;
}

int install_count(const struct installjson_paths *p, const char *name, int *hooks, int *mcp)
{
	struct install_ctx c = {.name = name};
	int changed;
	*hooks = 0;
	if (install_file(p->settings, edit_count, hooks, &changed) != 0 ||
	    install_file(p->mcp, edit_has_mcp, &c, &changed) != 0)
		return -1;
	*mcp = c.removed;
	return 0;
}
