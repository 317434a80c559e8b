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
#include "cli/topicbody.h"

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
#define MCP_TOPICS_MAX 64      /* topics (and keys) known per session */
#define MCP_HELD_MAX 64        /* topic pushes waiting for their topic key */
#define MCP_TOPIC_MSGS_MAX 50  /* messages topic_read returns */
#define MCP_RESEAL_MS 3000     /* how often members waiting for a topic key we hold are looked for */

struct mcp;

/* a topic seen on a session: its name and key (cli/topicbody.h) */
enum mcp_topic_state { TOPIC_UNKNOWN, TOPIC_ASKED, TOPIC_KEYED, TOPIC_NO_KEY };
struct mcp_topic {
	char id[128];
	char name[128];
	enum mcp_topic_state state;
	struct topicbody_key key;
};

struct mcp_link {
	struct mcp *m;
	int idx;
	struct keyfile_peer cfg;
	struct peersess sess; /* reconnects on its own (PEERSESS_ALWAYS) */
	int ready;            /* hello_ack received on the current connection */
	const char *group;    /* --group: join_group after every hello_ack, or NULL */
	/* this run's session key (docs/protocol.md §12.1): the hello's
	 * sessionPubkey; sends are boxed with it, pushes opened with it
	 * first, then with the member key (§12.2) */
	unsigned char sess_sk[64];
	char sess_pub[65];
	char mesh_label[128]; /* from members_list; "" until known */
	struct mcp_topic topics[MCP_TOPICS_MAX];
	unsigned ntopics;     /* slots used (a ring past MCP_TOPICS_MAX) */
};

struct mcp_msg {
	char id[64];
	char from[256];
	char from_pubkey[65];
	char priority[8];
	char created[40];
	char topic[128];      /* topic posts: the topic's id */
	char topic_name[128]; /* and name, when known */
	int unencrypted;      /* the body came in clear (an old sender's base64) */
	int mention;          /* a topic post naming this member (@name) */
	char *text;
	int link;
	int notified; /* the claude/channel notification went out (or never will) */
};

enum mcp_call_kind {
	CALL_NONE,
	CALL_LIST,    /* list_peers */
	CALL_RESOLVE, /* send_message to a name: list_members first */
	CALL_SEND,    /* a send: its ack */
	CALL_BCAST,   /* send_message to *: list_members, then one envelope per member and their acks */
	CALL_TLIST,   /* topic_list */
	CALL_TJOIN,   /* topic_join, then topic_list to know it went through */
	CALL_TREAD,   /* topic_key, then topic_history */
	CALL_TPOST,   /* topic_key, then the send */
};

struct mcp_call {
	enum mcp_call_kind kind;
	cJSON *id; /* the JSON-RPC id */
	char tag[40];
	int64_t deadline;
	int waiting; /* links yet to answer */
	cJSON *acc;  /* peers gathered so far */
	char *to, *text;
	char priority[8];
	int link; /* CALL_SEND and topic calls: the session used */
	int acked, queued; /* CALL_BCAST: envelopes answered, queued */
	long limit;        /* CALL_TREAD */
	struct topicbody_key key; /* CALL_TREAD, CALL_TPOST */
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
	unsigned tag_salt;  /* random per run: tags (send ids) never repeat across runs */
	int64_t next_reseal; /* mono ms: the next look for members waiting for a topic key */
	struct {
		cJSON *push;
		int link;
	} held[MCP_HELD_MAX]; /* topic pushes waiting for their topic key */
	struct mcp_keys *keys; /* mcp_keys.c: the topic keys a lead's server keeps moving (issue 22) */
};

#endif
