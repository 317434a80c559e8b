/* peersess — meshctl's one peer session over the broker's WebSocket, used by
 * connect, send, status, peers, topic ... and mcp: dial (ws:// or wss://,
 * through wsclient on libcurl) → upgrade → the signed hello (docs/protocol.md
 * §2; member key, and an optional session pubkey) → hello_ack → frames both
 * ways, and, when asked, reconnecting after a loss with jittered exponential
 * backoff (about 0.5, 1, 2 ... 30 s; back to the start after a hello_ack).
 * Never blocks: even connecting and TLS move on in peersess_service. */
#ifndef CLI_PEERSESS_H
#define CLI_PEERSESS_H

#include <cjson/cJSON.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#include "cli/keyfile.h"

#define PEERSESS_CONNECT_MS 5000 /* TCP, TLS and the upgrade must be done within this */
#define PEERSESS_BACKOFF_MIN_MS 500
#define PEERSESS_BACKOFF_MAX_MS 30000
#define PEERSESS_CAPS_MAX 4

/* What a hello says besides the member identity. */
struct peersess_hello {
	char session_id[129]; /* required; "" = "<pid>-<ms>" at the first hello */
	int64_t pid;
	char cwd[4097];
	char hostname[256];   /* "" = none */
	char repo[1025];      /* "" = none */
	const char *peer_type;                  /* "ai", or NULL */
	const char *caps[PEERSESS_CAPS_MAX];    /* capabilities, NULL-terminated */
	const char *session_pubkey;             /* what peersess passes to the builder: NULL for now */
};

/* The signed hello frame of cfg at time ts (ms), with "sessionPubkey" when
 * session_pubkey (64 lowercase hex, docs/protocol.md §12.1) is not NULL;
 * NULL when out of memory or the key cannot sign. */
cJSON *peersess_hello_build(const struct keyfile_peer *cfg, const struct peersess_hello *h, int64_t ts,
			    const char *session_pubkey);

enum peersess_state {
	PEERSESS_IDLE,    /* not connected; next attempt at next_try (never, without reconnect) */
	PEERSESS_HELLO,   /* connected, hello sent, waiting for hello_ack */
	PEERSESS_READY,   /* hello_ack received */
	PEERSESS_ENDED,   /* over for good (no reconnect, or closed by us) */
};

/* when a session connects again */
enum peersess_reconnect {
	PEERSESS_NEVER,       /* one connection: its end is the end (send, status, topic ...) */
	PEERSESS_AFTER_READY, /* after a loss, once a hello_ack came; not after a rejected hello
				 or the broker's 1000 (session replaced) (connect) */
	PEERSESS_ALWAYS,      /* whatever happened, until closed (mcp) */
};

struct peersess_ops {
	/* every text frame from the broker (hello_ack and errors too) */
	void (*frame)(void *arg, const char *msg, size_t len);
	/* the connection ended (why: one line); reconnect says whether
	 * another attempt will follow */
	void (*down)(void *arg, const char *why, int reconnect);
};

struct peersess {
	const struct keyfile_peer *cfg;
	char url[1100];
	struct peersess_hello hello;
	enum peersess_reconnect reconnect;
	const struct peersess_ops *ops;
	void *arg;
	/* state */
	enum peersess_state state;
	struct wsclient *ws;
	int attempt;       /* failed or lost connections since the last hello_ack */
	int64_t next_try;  /* mono ms */
	int64_t backoff_ms; /* the wait before next_try, as said in the last down() */
	uint16_t close_code; /* the broker's close status of the last connection, 0 when none */
	int ever_ready;    /* a hello_ack came once */
	int rejected;      /* this connection's hello got an error */
	int finishing;     /* closed by us: no more attempts */
};

/* Set s up (no I/O).  url is copied; cfg must outlive s. */
void peersess_init(struct peersess *s, const struct keyfile_peer *cfg, const char *url,
		   enum peersess_reconnect reconnect, const struct peersess_ops *ops, void *arg);
/* Connect when due, run I/O without waiting, notice the end.  Frames and
 * down() are delivered from here. */
void peersess_service(struct peersess *s, int64_t now);
/* For the caller's poll(): the socket (fd -1 when none) and *timeout_ms
 * lowered to this session's next timer. */
void peersess_pollfd(const struct peersess *s, struct pollfd *p, int64_t now, int *timeout_ms);
/* Queue a frame (text or cJSON).  0 queued; -1 not connected or closing. */
int peersess_send_text(struct peersess *s, const char *msg, size_t len);
int peersess_send(struct peersess *s, const cJSON *frame);
/* Drop the connection now (a peer that stopped answering: a network that
 * went away without a FIN is otherwise found only by the ping timeout) and
 * go on as after a loss: down(), then reconnect if the mode says so. */
void peersess_reset(struct peersess *s, const char *why);
/* Bytes queued and not yet written (0 when not connected). */
size_t peersess_queued(const struct peersess *s);
/* No more attempts: start the closing handshake (1000); peersess_service
 * then ends the session (PEERSESS_ENDED, down() with reconnect 0). */
void peersess_finish(struct peersess *s);
/* peersess_finish, then wait up to 2 s for the broker's half and free the
 * connection; the state is PEERSESS_ENDED. */
void peersess_close(struct peersess *s);

/* --timeout SECONDS and the like: a positive decimal number of seconds (up
 * to 1e7) into ms.  0 ok, -1 bad. */
int peersess_parse_seconds(const char *s, int64_t *ms);

#endif
