/* mcp_calls — tool calls waiting for the broker, the name cache, the frames
 * `meshctl mcp` sends and the acked-id ring (see mcp_calls.c). */
#ifndef CLI_MCP_CALLS_H
#define CLI_MCP_CALLS_H

#include "cli/mcp_state.h"

int mcp_link_send(struct mcp_link *l, const cJSON *frame); /* 0 queued */
const char *mcp_name_of(struct mcp *m, const char *pubkey);
void mcp_name_learn(struct mcp *m, const char *pubkey, const char *name);
struct mcp_call *mcp_call_new(struct mcp *m, enum mcp_call_kind kind, const cJSON *id);
void mcp_call_end(struct mcp_call *c, cJSON *result); /* result (may be NULL) is written */
struct mcp_call *mcp_call_by_tag(struct mcp *m, const char *tag);
int mcp_ready_links(struct mcp *m);
/* list_peers on every ready session for c; the number asked */
int mcp_ask_peers(struct mcp *m, struct mcp_call *c, const char *scope);
/* encrypt c->text for target (pubkey, * or #topic) and send it on link */
void mcp_do_send(struct mcp *m, struct mcp_call *c, int link, const char *target, const char *label);
void mcp_resolve_done(struct mcp *m, struct mcp_call *c); /* the peers for a name are in */
void mcp_list_done(struct mcp *m, struct mcp_call *c);    /* the peers for list_peers are in */
int mcp_was_acked(struct mcp *m, const char *id);
void mcp_send_ack(struct mcp_link *l, const char *message_id);
int mcp_send_all(struct mcp *m, cJSON *f); /* on every ready session; how many */
void mcp_send_summary(struct mcp_link *l);
void mcp_calls_link_down(struct mcp *m, int link);

#endif
