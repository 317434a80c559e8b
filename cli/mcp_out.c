/* mcp_out — what `meshctl mcp` writes: one JSON-RPC message a line on
 * stdout (the protocol), one log line on stderr, and the tool results
 * ({content:[{type:text,text}], isError}) built for them. */
#include "cli/mcp_out.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/mcp_rpc.h"

void mcp_log(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("meshctl mcp: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

void mcp_write(cJSON *msg)
{
	char *s = msg ? cJSON_PrintUnformatted(msg) : NULL;
	if (s) {
		fputs(s, stdout);
		fputc('\n', stdout);
		fflush(stdout);
	} else {
		mcp_log("out of memory: a reply was lost");
	}
	free(s);
	cJSON_Delete(msg);
}

const char *mcp_str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

cJSON *mcp_result(int is_error, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	cJSON *r = cJSON_CreateObject();
	cJSON *c = cJSON_AddArrayToObject(r, "content");
	cJSON *t = cJSON_CreateObject();
	cJSON_AddStringToObject(t, "type", "text");
	cJSON_AddStringToObject(t, "text", buf);
	cJSON_AddItemToArray(c, t);
	cJSON_AddBoolToObject(r, "isError", is_error);
	return r;
}

void mcp_reply(const cJSON *id, cJSON *result)
{
	mcp_write(mcp_rpc_result(id, result));
}
