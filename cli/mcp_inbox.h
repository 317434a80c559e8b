/* mcp_inbox — frames from the broker and the inbox of `meshctl mcp`. */
#ifndef CLI_MCP_INBOX_H
#define CLI_MCP_INBOX_H

#include <stddef.h>

#include "cli/mcp_state.h"

void mcp_inbox_frame(struct mcp_link *l, const char *text, size_t len);
void mcp_inbox_ready(struct mcp_link *l);            /* hello_ack */
void mcp_inbox_check(struct mcp *m, const cJSON *id); /* check_messages */
void mcp_inbox_notify_waiting(struct mcp *m);         /* names known or waited long enough */
void mcp_inbox_free(struct mcp *m);

#endif
