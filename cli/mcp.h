/* mcp — `meshctl mcp`: a Model Context Protocol server on stdio (JSON-RPC
 * 2.0, one object per line; docs/protocol.md §11) that keeps one WebSocket
 * connection per configured mesh.  stdout is the protocol; everything else
 * goes to stderr.  The state shared by mcp.c (the loop and JSON-RPC),
 * mcplink.c (the connections) and mcp_tools.c (the tools and the inbox). */
#ifndef CLI_MCP_H
#define CLI_MCP_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "cli/keyfile.h"
#include "cli/wsclient.h"

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
	char url[1100];
	struct wsclient *ws;
	int ready;         /* hello_ack received */
	int backoff_s;     /* next wait: 1, 2, 4 ... 30 */
	int64_t next_try;  /* mono ms of the next connect attempt */
	char session_id[129];
	char cwd[4097];
	char host[256];
	char repo[1025];
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
};

/* mcp.c */
int mcp_main(int argc, char **argv); /* meshctl mcp */
void mcp_write(cJSON *msg); /* one line on stdout, then msg is freed */
void mcp_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* mcplink.c */
int mcp_link_setup(struct mcp *m, int idx, const char *config_path, const char *broker_override);
void mcp_link_service(struct mcp_link *l, int64_t now); /* connect when due, notice a lost connection */
int mcp_link_send(struct mcp_link *l, cJSON *frame);    /* 0 queued; frame kept by caller */
void mcp_link_close(struct mcp_link *l);

/* mcp_tools.c */
cJSON *mcp_tools_list(void); /* mcp_schema.c */
/* a tools/call: answers now (mcp_write) or later, when the broker has */
void mcp_tools_call(struct mcp *m, const cJSON *id, const cJSON *params);
void mcp_tools_on_frame(struct mcp_link *l, const char *text, size_t len);
void mcp_tools_on_ready(struct mcp_link *l);
void mcp_tools_tick(struct mcp *m, int64_t now); /* tool calls that waited too long */
void mcp_tools_free(struct mcp *m);

#endif
