/* fuzz_mcp — libFuzzer target for meshctl mcp's JSON-RPC line reader
 * (cli/mcp_rpc.c): any bytes are classified without crashing, the fields it
 * hands out agree with its verdict, and each answer it would write is one
 * JSON line. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/mcp_rpc.h"

static void one_line(cJSON *o)
{
	if (!o)
		return;
	char *s = cJSON_PrintUnformatted(o);
	if (s && strchr(s, '\n'))
		abort(); /* an answer must be one line */
	free(s);
	cJSON_Delete(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mcp_rpc r;
	mcp_rpc_parse((const char *)data, size, &r);
	switch (r.kind) {
	case MCP_RPC_PARSE_ERROR:
		if (r.doc || r.method)
			abort();
		one_line(mcp_rpc_error(NULL, MCP_PARSE_ERROR, "Parse error"));
		break;
	case MCP_RPC_INVALID:
		if (!r.why || !r.doc)
			abort();
		one_line(mcp_rpc_error(r.id, MCP_INVALID_REQUEST, r.why));
		break;
	case MCP_RPC_REQUEST:
		if (!r.method || !r.id || !(cJSON_IsString(r.id) || cJSON_IsNumber(r.id)))
			abort();
		one_line(mcp_rpc_result(r.id, cJSON_Duplicate(r.params, 1)));
		break;
	case MCP_RPC_NOTIFICATION:
		if (!r.method || r.id)
			abort();
		one_line(mcp_rpc_notification(r.method, cJSON_Duplicate(r.params, 1)));
		break;
	case MCP_RPC_RESPONSE:
		break;
	}
	if (r.params && !cJSON_IsObject(r.params))
		abort();
	mcp_rpc_free(&r);
	return 0;
}
