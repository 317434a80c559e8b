/* mcp_out — stdout and stderr of `meshctl mcp`, and tool results. */
#ifndef CLI_MCP_OUT_H
#define CLI_MCP_OUT_H

#include <cjson/cJSON.h>

void mcp_write(cJSON *msg); /* one line on stdout, then msg is freed */
void mcp_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* {content:[{type:"text",text}], isError} */
cJSON *mcp_result(int is_error, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* the JSON-RPC result for id (result taken over), written */
void mcp_reply(const cJSON *id, cJSON *result);
/* the string member k of o, or NULL */
const char *mcp_str(const cJSON *o, const char *k);

#endif
