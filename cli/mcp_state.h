/* mcp_state — the state of `meshctl mcp` (docs/protocol.md §11) shared by
 * its modules: mcp.c (the loop and JSON-RPC), mcp_tools.c (the tools),
 * mcp_inbox.c (frames from the broker), mcp_calls.c (calls, names, frames
 * sent) and mcp_out.c (stdout/stderr).  Header only. */
#ifndef CLI_MCP_STATE_H
#define CLI_MCP_STATE_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "cli/keyfile.h"
#include "cli/peersess.h"

#define MCP_LINKS_MAX 8        /* --config files */
#define MCP_LINE_MAX (1u << 20) /* one JSON-RPC line from the client */
#define MCP_INBOX_MAX 1000     /* received, not yet handed to Claude (the rest waits at the broker) */
#define MCP_CHECK_MAX 100      /* messages a check_messages returns */
#define MCP_CALLS_MAX 32       /* tool calls waiting for the broker */
#define MCP_ACKED_MAX 256      /* recently acked ids, to drop redeliveries */
#define MCP_NAMES_MAX 1024     /* pubkey -> display name cache */
#define MCP_TEXT_MAX 32768     /* a message's text, bytes */
#define MCP_CALL_MS 15000      /* a tool call waits this long for the broker */
#define MCP_NAMES_WAIT_MS 3000 /* a notification waits this long for its sender's name */

struct mcp;

struct mcp_link {
	struct mcp *m;
	int idx;
	struct keyfile_peer cfg;
	struct peersess sess; /* reconnects on its own (PEERSESS_ALWAYS) */
	int ready;            /* hello_ack received on the current connection */
};

struct mcp_msg {
	char id[64];
	char from[256];
	char from_pubkey[65];
	char priority[8];
	char created[40];
	char topic[64];
	char *text;
	int link;
	int notified; /* the claude/channel notification went out (or never will) */
};

enum mcp_call_kind { CALL_NONE, CALL_LIST, CALL_RESOLVE, CALL_SEND };

struct mcp_call {
	enum mcp_call_kind kind;
	cJSON *id; /* the JSON-RPC id */
	char tag[40];
	int64_t deadline;
	int waiting; /* links yet to answer */
	cJSON *acc;  /* peers gathered so far */
	char *to, *text;
	char priority[8];
	int link; /* CALL_SEND: where the send went */
};

struct mcp_name {
	char pubkey[65];
	char name[256];
};

struct mcp {
	struct mcp_link links[MCP_LINKS_MAX];
	int nlinks;
	int initialized; /* notifications/initialized arrived: channel notifications may go out */
	char summary[1025];
	int have_summary;
	struct mcp_msg *inbox;
	size_t ninbox;
	char acked[MCP_ACKED_MAX][64];
	size_t acked_next;
	struct mcp_call calls[MCP_CALLS_MAX];
	struct mcp_name names[MCP_NAMES_MAX];
	size_t names_next;
	unsigned tag_seq;
	int64_t names_wait; /* a push from an unknown sender waits for a names refresh until then */
	struct mcp_keys *keys; /* mcp_keys.c: the topic keys a lead's server keeps moving (issue 22) */
};

#endif
