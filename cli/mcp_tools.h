/* mcp_tools — the tools of `meshctl mcp`. */
#ifndef CLI_MCP_TOOLS_H
#define CLI_MCP_TOOLS_H

#include <stdint.h>

#include "cli/mcp_state.h"

/* a tools/call: answers now (mcp_write) or later, when the broker has */
void mcp_tools_call(struct mcp *m, const cJSON *id, const cJSON *params);
void mcp_tools_tick(struct mcp *m, int64_t now); /* tool calls that waited too long */
void mcp_tools_free(struct mcp *m);

#endif
