/* mcp_rpc — reading one line of JSON-RPC 2.0 and building the answers (see
 * mcp_rpc.h).  Nothing here does I/O: a malformed line is a value, never a
 * crash or an exit, so the server keeps running whatever it is sent. */
#include "cli/mcp_rpc.h"

#include <string.h>

#include "common/util.h"

void mcp_rpc_parse(const char *line, size_t n, struct mcp_rpc *out)
{
	memset(out, 0, sizeof *out);
	out->kind = MCP_RPC_PARSE_ERROR;
	if (!utf8_valid((const unsigned char *)line, n))
		return;
	const char *end = NULL;
	out->doc = cJSON_ParseWithLengthOpts(line, n, &end, 0);
	if (!out->doc)
		return;
	while (end && end < line + n && (*end == ' ' || *end == '\t' || *end == '\r'))
		end++;
	if (end != line + n) {
		cJSON_Delete(out->doc);
		out->doc = NULL;
		return; /* trailing bytes after the object */
	}
	out->kind = MCP_RPC_INVALID;
	if (!cJSON_IsObject(out->doc)) {
		out->why = cJSON_IsArray(out->doc) ? "batches are not supported" : "expected a JSON object";
		return;
	}
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(out->doc, "id");
	if (id && (cJSON_IsString(id) || cJSON_IsNumber(id)))
		out->id = id;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(out->doc, "jsonrpc");
	if (!cJSON_IsString(v) || strcmp(v->valuestring, "2.0") != 0) {
		out->why = "jsonrpc must be \"2.0\"";
		return;
	}
	if (id && !out->id && !cJSON_IsNull(id)) {
		out->why = "id must be a string or a number";
		return;
	}
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(out->doc, "method");
	if (!m) {
		if (cJSON_GetObjectItemCaseSensitive(out->doc, "result") ||
		    cJSON_GetObjectItemCaseSensitive(out->doc, "error")) {
			out->kind = MCP_RPC_RESPONSE;
			return;
		}
		out->why = "method missing";
		return;
	}
	if (!cJSON_IsString(m)) {
		out->why = "method must be a string";
		return;
	}
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(out->doc, "params");
	if (p && !cJSON_IsObject(p) && !cJSON_IsNull(p)) {
		out->why = "params must be an object";
		return;
	}
	out->method = m->valuestring;
	out->params = cJSON_IsObject(p) ? p : NULL;
	out->kind = id ? MCP_RPC_REQUEST : MCP_RPC_NOTIFICATION;
}

void mcp_rpc_free(struct mcp_rpc *r)
{
	cJSON_Delete(r->doc);
	memset(r, 0, sizeof *r);
}

static cJSON *envelope(const cJSON *id)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "jsonrpc", "2.0");
	cJSON_AddItemToObject(o, "id", id ? cJSON_Duplicate(id, 1) : cJSON_CreateNull());
	return o;
}

cJSON *mcp_rpc_result(const cJSON *id, cJSON *result)
{
	cJSON *o = envelope(id);
	if (!o) {
		cJSON_Delete(result);
		return NULL;
	}
	cJSON_AddItemToObject(o, "result", result ? result : cJSON_CreateObject());
	return o;
}

cJSON *mcp_rpc_error(const cJSON *id, int code, const char *message)
{
	cJSON *o = envelope(id);
	cJSON *e = o ? cJSON_AddObjectToObject(o, "error") : NULL;
	if (e) {
		cJSON_AddNumberToObject(e, "code", code);
		cJSON_AddStringToObject(e, "message", message);
	}
	return o;
}

cJSON *mcp_rpc_notification(const char *method, cJSON *params)
{
	cJSON *o = cJSON_CreateObject();
	if (!o) {
		cJSON_Delete(params);
		return NULL;
	}
	cJSON_AddStringToObject(o, "jsonrpc", "2.0");
	cJSON_AddStringToObject(o, "method", method);
	cJSON_AddItemToObject(o, "params", params ? params : cJSON_CreateObject());
	return o;
}
