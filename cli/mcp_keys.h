/* mcp_keys — `meshctl mcp` keeps its topics' keys moving (docs/protocol.md
 * §5.1, issue 22), as `meshctl topic tail` does: every MCP_KEYS_EVERY_MS,
 * on each ready session, for the topics where its member is a lead, it seals
 * the current key epoch for the members lacking it and, when nobody holds
 * the current epoch yet (a member left or was removed), starts it: a fresh
 * key sealed to itself first, then to the others.  Its requests carry
 * `_reqId`s of their own ("mk-…"), whose answers never reach Claude. */
#ifndef CLI_MCP_KEYS_H
#define CLI_MCP_KEYS_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "cli/mcp_state.h"

#define MCP_KEYS_EVERY_MS 5000
#define MCP_KEYS_TOPICS   32 /* topics looked after per session (the first page of topic_list) */

void mcp_keys_tick(struct mcp *m, int64_t now);
/* 1 when the frame answered one of our requests (consumed), else 0 */
int mcp_keys_frame(struct mcp_link *l, const cJSON *j, const char *type);
void mcp_keys_free(struct mcp *m);

#endif
