/* mcp_schema — the tools/list answer of `meshctl mcp`. */
#ifndef CLI_MCP_SCHEMA_H
#define CLI_MCP_SCHEMA_H

#include <cjson/cJSON.h>

cJSON *mcp_tools_list(void);

#endif
