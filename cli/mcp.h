/* mcp — `meshctl mcp`: a Model Context Protocol server on stdio (JSON-RPC
 * 2.0, one object per line; docs/protocol.md §11) that keeps one peer
 * session (cli/peersess.h) per configured mesh.  stdout is the protocol;
 * everything else goes to stderr. */
#ifndef CLI_MCP_H
#define CLI_MCP_H

int mcp_main(int argc, char **argv); /* meshctl mcp */

#endif
