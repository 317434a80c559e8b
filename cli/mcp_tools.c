/* mcp_tools — the tools of `meshctl mcp` (docs/protocol.md §11):
 * send_message, check_messages, list_peers, set_status, set_summary.  A tool
 * answers at once when it can (and at once with "reconnecting" while no
 * session is up), or later when the broker replies (mcp_calls.c).  A tool
 * error is a result with isError, never a crash. */
#include "cli/mcp_tools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/mcp_calls.h"
#include "cli/mcp_inbox.h"
#include "cli/mcp_out.h"
#include "cli/mcp_rpc.h"
#include "common/util.h"

static void tool_send(struct mcp *m, const cJSON *id, const cJSON *args)
{
	const char *to = mcp_str(args, "to"), *text = mcp_str(args, "message"), *pri = mcp_str(args, "priority");
	if (!to || !*to || strlen(to) > 255)
		return mcp_reply(id, mcp_result(1, "send_message needs \"to\": a peer name, a pubkey, * or #topic"));
	if (!text || !*text)
		return mcp_reply(id, mcp_result(1, "send_message needs a non-empty \"message\""));
	if (strlen(text) > MCP_TEXT_MAX)
		return mcp_reply(id, mcp_result(1, "message too long: %zu bytes > %u", strlen(text), MCP_TEXT_MAX));
	if (!pri)
		pri = "next";
	if (strcmp(pri, "now") && strcmp(pri, "next") && strcmp(pri, "low"))
		return mcp_reply(id, mcp_result(1, "priority must be now, next or low"));
	if (!mcp_ready_links(m))
		return mcp_reply(id, mcp_result(1, "not connected to the broker yet (reconnecting); try again shortly"));
	struct mcp_call *c = mcp_call_new(m, CALL_RESOLVE, id);
	if (!c)
		return mcp_reply(id, mcp_result(1, "too many tool calls in flight; try again"));
	c->text = strdup(text);
	c->to = strdup(to);
	snprintf(c->priority, sizeof c->priority, "%s", pri);
	int first = 0;
	while (!m->links[first].ready)
		first++;
	if (is_hex(to, 64)) {
		char low[65];
		for (int i = 0; i < 64; i++)
			low[i] = (char)((to[i] >= 'A' && to[i] <= 'F') ? to[i] + 32 : to[i]);
		low[64] = 0;
		const char *n = mcp_name_of(m, low);
		mcp_do_send(m, c, first, low, n ? n : low);
	} else if (!strcmp(to, "*") || to[0] == '#') {
		mcp_do_send(m, c, first, to, to);
	} else if (!mcp_ask_peers(m, c, NULL)) {
		mcp_call_end(c, mcp_result(1, "not connected to the broker; try again shortly"));
	}
}

static void tool_list(struct mcp *m, const cJSON *id, const cJSON *args)
{
	const char *scope = mcp_str(args, "scope");
	if (scope && strcmp(scope, "mesh") && strcmp(scope, "machine") && strcmp(scope, "directory") &&
	    strcmp(scope, "repo"))
		return mcp_reply(id, mcp_result(1, "scope must be mesh, machine, directory or repo"));
	struct mcp_call *c = mcp_call_new(m, CALL_LIST, id);
	if (!c)
		return mcp_reply(id, mcp_result(1, "too many tool calls in flight; try again"));
	if (!mcp_ask_peers(m, c, scope))
		mcp_call_end(c, mcp_result(1, "not connected to the broker yet (reconnecting); try again shortly"));
}

static void tool_status(struct mcp *m, const cJSON *id, const cJSON *args)
{
	const char *s = mcp_str(args, "status");
	if (!s || (strcmp(s, "idle") && strcmp(s, "working") && strcmp(s, "dnd")))
		return mcp_reply(id, mcp_result(1, "status must be idle, working or dnd"));
	cJSON *f = cJSON_CreateObject();
	cJSON_AddStringToObject(f, "type", "set_status");
	cJSON_AddStringToObject(f, "status", s);
	int n = mcp_send_all(m, f);
	cJSON_Delete(f);
	mcp_reply(id, n ? mcp_result(0, "status set to %s", s) : mcp_result(1, "not connected to the broker; try again"));
}

static void tool_summary(struct mcp *m, const cJSON *id, const cJSON *args)
{
	const char *s = mcp_str(args, "summary");
	if (!s)
		return mcp_reply(id, mcp_result(1, "set_summary needs a string \"summary\""));
	if (strlen(s) > 1024)
		return mcp_reply(id, mcp_result(1, "summary too long: %zu bytes > 1024", strlen(s)));
	snprintf(m->summary, sizeof m->summary, "%s", s);
	m->have_summary = 1; /* sent again after every reconnect */
	int n = 0;
	for (int i = 0; i < m->nlinks; i++)
		if (m->links[i].ready) {
			mcp_send_summary(&m->links[i]);
			n++;
		}
	mcp_reply(id, mcp_result(0, "summary set%s", n ? "" : " (sent when the connection is back)"));
}

void mcp_tools_call(struct mcp *m, const cJSON *id, const cJSON *params)
{
	const char *name = mcp_str(params, "name");
	const cJSON *args = cJSON_GetObjectItemCaseSensitive(params, "arguments");
	if (!name)
		return mcp_write(mcp_rpc_error(id, MCP_INVALID_PARAMS, "tools/call needs params.name"));
	if (args && !cJSON_IsObject(args) && !cJSON_IsNull(args))
		return mcp_reply(id, mcp_result(1, "arguments must be an object"));
	if (!strcmp(name, "send_message"))
		tool_send(m, id, args);
	else if (!strcmp(name, "check_messages"))
		mcp_inbox_check(m, id);
	else if (!strcmp(name, "list_peers"))
		tool_list(m, id, args);
	else if (!strcmp(name, "set_status"))
		tool_status(m, id, args);
	else if (!strcmp(name, "set_summary"))
		tool_summary(m, id, args);
	else
		mcp_reply(id, mcp_result(1, "unknown tool \"%.100s\"; the tools are send_message, check_messages, "
					 "list_peers, set_status and set_summary",
				      name));
}

void mcp_tools_tick(struct mcp *m, int64_t now)
{
	if (m->names_wait && now >= m->names_wait)
		mcp_inbox_notify_waiting(m);
	for (int i = 0; i < MCP_CALLS_MAX; i++) {
		struct mcp_call *c = &m->calls[i];
		if (c->kind == CALL_NONE || now < c->deadline)
			continue;
		int link = c->kind == CALL_SEND ? c->link : -1;
		mcp_call_end(c, mcp_result(1, "the broker did not answer within %d s; %s", MCP_CALL_MS / 1000,
					   link >= 0 ? "reconnecting (the message may not have been sent)" : "try again"));
		/* a send that got no ack: the connection is dead (the network went
		 * away without a word) — connect again rather than wait for the
		 * ping timeout */
		if (link >= 0)
			peersess_reset(&m->links[link].sess, "no ack from the broker");
	}
}

void mcp_tools_free(struct mcp *m)
{
	for (int i = 0; i < MCP_CALLS_MAX; i++)
		if (m->calls[i].kind != CALL_NONE)
			mcp_call_end(&m->calls[i], NULL);
	mcp_inbox_free(m);
}
