/* mcp_rpc — JSON-RPC 2.0 framing for meshctl mcp (the Model Context Protocol
 * stdio transport: one JSON object per line).  Pure (cJSON only): one line
 * in, a classified message out; the responses built here.  Fuzzed by
 * fuzz/fuzz_mcp.c. */
#ifndef CLI_MCP_RPC_H
#define CLI_MCP_RPC_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* JSON-RPC 2.0 error codes */
#define MCP_PARSE_ERROR -32700
#define MCP_INVALID_REQUEST -32600
#define MCP_METHOD_NOT_FOUND -32601
#define MCP_INVALID_PARAMS -32602

enum mcp_rpc_kind {
	MCP_RPC_PARSE_ERROR,  /* not JSON (or not UTF-8): answer -32700, id null */
	MCP_RPC_INVALID,      /* JSON but not a request: answer -32600 with the id when there is one */
	MCP_RPC_REQUEST,      /* method + id: answer it */
	MCP_RPC_NOTIFICATION, /* method, no id: never answered */
	MCP_RPC_RESPONSE,     /* a response to something we sent: ignored */
};

struct mcp_rpc {
	enum mcp_rpc_kind kind;
	cJSON *doc;           /* the parsed line (owned), NULL on a parse error */
	const cJSON *id;      /* string or number, inside doc; NULL when none */
	const char *method;   /* inside doc */
	const cJSON *params;  /* an object inside doc, or NULL */
	const char *why;      /* MCP_RPC_INVALID: one line */
};

/* Classify line[0..n) (no newline).  Always fills out; free with mcp_rpc_free. */
void mcp_rpc_parse(const char *line, size_t n, struct mcp_rpc *out);
void mcp_rpc_free(struct mcp_rpc *r);

/* {"jsonrpc":"2.0","id":id,"result":result} (result is taken over) */
cJSON *mcp_rpc_result(const cJSON *id, cJSON *result);
/* {"jsonrpc":"2.0","id":id|null,"error":{"code":code,"message":message}} */
cJSON *mcp_rpc_error(const cJSON *id, int code, const char *message);
/* {"jsonrpc":"2.0","method":method,"params":params} (params taken over) */
cJSON *mcp_rpc_notification(const char *method, cJSON *params);

#endif
