/* mcp_schema — what `meshctl mcp` answers to tools/list: each tool of
 * docs/protocol.md §11 with a description for the model and a JSON Schema
 * for its arguments (Claude Code validates calls against it). */
#include <stdio.h>
#include <string.h>

#include "cli/mcp_schema.h"

static cJSON *schema(const char *const *props, const char *const *types, const char *const *descs, int n,
		     const char *const *required, int nreq)
{
	cJSON *s = cJSON_CreateObject();
	cJSON_AddStringToObject(s, "type", "object");
	cJSON *p = cJSON_AddObjectToObject(s, "properties");
	for (int i = 0; i < n; i++) {
		cJSON *f = cJSON_AddObjectToObject(p, props[i]);
		if (!strncmp(types[i], "enum:", 5)) {
			cJSON_AddStringToObject(f, "type", "string");
			cJSON *e = cJSON_AddArrayToObject(f, "enum");
			char buf[128];
			snprintf(buf, sizeof buf, "%s", types[i] + 5);
			for (char *t = strtok(buf, ","); t; t = strtok(NULL, ","))
				cJSON_AddItemToArray(e, cJSON_CreateString(t));
		} else {
			cJSON_AddStringToObject(f, "type", types[i]);
		}
		cJSON_AddStringToObject(f, "description", descs[i]);
	}
	cJSON_AddItemToObject(s, "required", cJSON_CreateStringArray(required, nreq));
	cJSON_AddBoolToObject(s, "additionalProperties", 0);
	return s;
}

static void add_tool(cJSON *arr, const char *name, const char *desc, cJSON *input)
{
	cJSON *t = cJSON_CreateObject();
	cJSON_AddStringToObject(t, "name", name);
	cJSON_AddStringToObject(t, "description", desc);
	cJSON_AddItemToObject(t, "inputSchema", input);
	cJSON_AddItemToArray(arr, t);
}

cJSON *mcp_tools_list(void)
{
	cJSON *a = cJSON_CreateArray();
	{
		const char *p[] = {"to", "message", "priority"};
		const char *t[] = {"string", "string", "enum:now,next,low"};
		const char *d[] = {"a peer's display name, a 64-hex pubkey, * for everyone, or #topicId",
				   "the text to send (end-to-end encrypted for a direct peer)",
				   "now: interrupts a working peer; next (default): when idle; low"};
		const char *r[] = {"to", "message"};
		add_tool(a, "send_message", "Send a message to another Claude Code session on the mesh.",
			 schema(p, t, d, 3, r, 2));
	}
	add_tool(a, "check_messages",
		 "Return the messages received since the last call, oldest first (at most 100).",
		 schema(NULL, NULL, NULL, 0, NULL, 0));
	{
		const char *p[] = {"scope"};
		const char *t[] = {"enum:mesh,machine,directory,repo"};
		const char *d[] = {"mesh (default): everyone; machine: same host; directory: same cwd; repo: "
				   "same git repository"};
		add_tool(a, "list_peers", "List the live peers: name, status, what they work on, where.",
			 schema(p, t, d, 1, NULL, 0));
	}
	{
		const char *p[] = {"status"};
		const char *t[] = {"enum:idle,working,dnd"};
		const char *d[] = {"working and dnd hold next/low messages until idle"};
		const char *r[] = {"status"};
		add_tool(a, "set_status", "Set this session's status.", schema(p, t, d, 1, r, 1));
	}
	{
		const char *p[] = {"summary"};
		const char *t[] = {"string"};
		const char *d[] = {"one line, at most 1024 bytes"};
		const char *r[] = {"summary"};
		add_tool(a, "set_summary", "Tell the other peers what this session is working on.",
			 schema(p, t, d, 1, r, 1));
	}
	return a;
}
