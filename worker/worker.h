/* worker — the one context struct of a meshbroker-worker process (one
 * connection).  No other mutable global state exists in the worker; each
 * module's functions are declared in its own header. */
#ifndef WORKER_WORKER_H
#define WORKER_WORKER_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <wslay/wslay.h>

#include "common/config.h"
#include "shm/shm.h"

struct db;
struct childtab;
struct negcache;
struct membercache;
struct worker;
struct pe_peer;
struct send_ctx;
struct send_batch;
struct send_bcast;
struct sse;

#define PUSH_BATCH 100 /* deliveries claimed per drain query */
#define UDS_OUT_MAX 16 /* cached connections to other workers */
#define UDS_IN_MAX 64  /* accepted connections from other workers */

/* The connection's phase, kept here only (docs/design.md "Worker"): the
 * phase table (phase.c) decides what each message type may do in each. */
enum phase {
	PHASE_BEFORE_HELLO,  /* upgraded, no hello yet */
	PHASE_HELLO_PENDING, /* a hello passed checks 1-5, membership is being looked up */
	PHASE_AUTHENTICATED, /* hello_ack sent: the slot and w->me are ours */
	PHASE_CLOSING,       /* our close is on its way: nothing more is read or pushed */
	PHASE_COUNT
};
#define PHASE_BIT(p) (1u << (p))

/* What the skeleton (skel.c) and the transports (ws.c, uds.c) call: the
 * protocol plugs in here, so transports never name protocol functions. */
struct worker_hooks {
	void (*on_text)(struct worker *w, const char *text, size_t len); /* ws: one text frame */
	void (*on_wake)(struct worker *w);                                /* uds: drain now */
	void (*on_status)(struct worker *w, int status, int source);      /* uds: a hook's status */
	void (*on_replaced)(struct worker *w);                            /* uds: our session moved on */
	void (*on_close)(struct worker *w, int code, int reason);         /* uds: a moderator closed us (may be NULL) */
	/* uds: a direct message handed with its wake (issue 23; may be NULL:
	 * on_wake, whose claim takes the row) */
	void (*on_push)(struct worker *w, int64_t delivery_id, int64_t created_ms, const char *json, size_t len);
	void (*tick)(struct worker *w, int64_t now);                      /* skel: timers (joined only) */
	void (*pump)(struct worker *w);                                   /* skel: room to write (joined only) */
	void (*leave)(struct worker *w);                                  /* skel: the connection ended */
};

/* one push written to the socket whose last byte the recipient's TCP has
 * not acknowledged yet (delivery.c) */
struct unacked {
	int64_t delivery_id;
	uint64_t end; /* its end in the connection's outgoing byte stream (ws_sent_bytes) */
};

/* ws.c's frame gate: the client's byte stream is read through it before
 * wslay sees it.  It checks every frame header (RFC 6455 §5.2) and keeps
 * close frames for itself (§5.5.1, §7.4), so each violation is answered
 * with its close code and a close is echoed after what was answered
 * before it.  Its state between two reads: */
struct ws_gate {
	uint8_t hdr[14];   /* the header of the frame being read */
	uint8_t hlen;      /* header bytes seen (0: at a frame boundary) */
	uint8_t hneed;     /* the header's length, known from its second byte */
	uint64_t left;     /* payload bytes of the frame still to come, once hlen == hneed */
	int in_close;      /* the frame is a close: its bytes stay here */
	uint8_t close[125]; /* its payload, unmasked (control frames hold <= 125 bytes) */
	uint8_t close_len;
	int verdict;        /* WS_GATE_*: what to do once wslay has what came before */
	const char *why;    /* the reason of a WS_GATE_VIOLATION */
	int close_seen;     /* the client's close frame arrived */
};

/* one claimed delivery waiting to be written to the socket */
struct push {
	int64_t delivery_id;
	char *json; /* the push frame */
	size_t len;
	int priority; /* 0 now, 1 next, 2 low */
	int64_t created_ms; /* the message stored (wall ms), 0 unknown: broker_send_push_seconds */
};

struct uds_out {
	int fd;
	uint32_t slot, gen;
	int wake_pending;    /* a wake that could not be sent yet */
	int replace_pending; /* a session-replace envelope not sent yet */
	int status_pending;  /* a status envelope not sent yet (the latest wins) */
	int32_t status, status_source;
	int close_pending; /* a moderation close envelope not sent yet */
	int32_t close_code, close_reason;
	int64_t used_ms;
	int64_t retry_at; /* its listen backlog was full: connect again then (0 = not waiting) */
	int retry_ms;     /* that back-off: 20 ms doubling to 1 s */
	int last_wake;    /* the last envelope this socket took was a wake */
};

/* envelopes for a destination that has no cached connection yet, because all
 * UDS_OUT_MAX are busy (uds.c): one entry per destination, coalesced */
struct uds_wait {
	uint32_t slot, gen;
	uint8_t wake, replace, status_pending, close_pending;
	int32_t status, status_source;
	int32_t close_code, close_reason;
};

struct worker {
	struct config cfg;
	int fd; /* the client connection (fd 3) */
	char remote_addr[64];
	struct shm *shm; /* opened on first use: worker_shm() */
	struct db *db;   /* created on first use: worker_db() */
	struct childtab *ct; /* the acceptor's child table (none under systemd): worker_child_open() */
	uint32_t ct_slot;    /* our entry in it */
	struct negcache *negcache; /* opened on first use: worker_negcache() */
	uint32_t neg_stamp;  /* negcache_hit's stamp for the lookup in flight */
	struct membercache *membercache; /* opened on first use (auth.c) */
	uint32_t mc_stamp;   /* membercache_get's stamp for the lookup in flight */
	int hello_warm;      /* the hello took its member from the cache: hello_join re-checks before the ack */
	int hello_after_row; /* HOST_ID: hello_ack waits for the presence row (worker/auth.c hello_accept) */
	int visible_set;     /* set_visible came: hello_join's restored visibility must not undo it */
	int32_t warm_max_peers; /* the cached mesh max_peers its capacity was counted with */
	const struct worker_hooks *hooks;

	/* WebSocket */
	wslay_event_context_ptr ws;
	const unsigned char *pre; /* bytes that came with the HTTP head */
	size_t pre_len, pre_off;
	int64_t hello_deadline; /* mono ms, 0 once authenticated */
	int64_t next_ping, last_pong;
	int close_queued; /* the close frame is in wslay's queue */
	uint16_t close_code;
	char close_reason[124];
	int64_t close_deadline; /* give up on a clean close after this */
	long recv_budget;       /* bytes wslay may still read this turn */
	uint64_t sent_bytes;    /* every byte send() took since the upgrade (frame headers included) */
	int ack_tracking;       /* TCP and SIOCOUTQ works: a push counts once the peer acknowledged it */
	struct ws_gate gate;

	enum phase phase;
	/* §12.7: the _reqId (<= 128 bytes) of the frame being handled, "" when
	 * none (set by phase.c; ws.c adds it to every frame sent meanwhile) */
	char req_id[129];
	/* session keys (§12.1, auth.c): the hello's session key claim, and a
	 * session_hello's member check */
	int sk_claim;                 /* SK_* (auth.c) */
	int session_conn;             /* authenticated by session_hello */
	char parent_member_id[64];    /* session_hello's parentMemberId, "" when absent */
	struct send_batch *batches;   /* send statements in flight (send.c), oldest first */
	int frame_nul; /* the frame being handled holds \u0000 (its C strings are cut): send refuses it */
	/* the hello succeeded: w->me, the slot and the presence row are this
	 * connection's (stays set while closing, for the leave) */
	int joined;
	struct presence_info me;
	uint32_t slot, gen;
	int have_slot;
	int presence_row; /* the mesh.presence row was written */
	cJSON *hello_obj; /* the accepted hello, for the optional fields */
	int client_ack;   /* hello listed "client_ack": delivered only when the client acks */
	int peer_events;  /* hello listed "peer_events": system pushes about other peers */

	/* peer events (peerevents.c): the mesh's peers as last pushed */
	struct pe_peer *pe_snap;
	size_t pe_n;
	uint64_t pe_seen; /* presence_changes() at the last scan */
	int64_t pe_next;  /* mono ms of the next look, 0 = none */

	/* groups.c: whether a presence of our mesh is hidden, as of the
	 * presence_changes() count hidden_seen (so a '*' send scans the mesh's
	 * slots only after the table moved) */
	uint64_t hidden_seen;
	int hidden_any;
	int hidden_known;

	/* sends accepted and waiting for their batch's statement (send.c) */
	struct send_ctx **sends;
	size_t nsends, sends_cap;
	int send_inflight; /* send statements queued or running */
	int chain_inflight; /* audit chain steps queued or running */
	int chain_owed;     /* our audit rows may still be pending (send.c) */
	int64_t chain_due;  /* mono ms of the next chain step try, 0 = none */
	int64_t chain_since; /* mono ms since when chain_owed has been set (send.c: CHAIN_FORCE_MS) */
	int64_t send_due;   /* mono ms when the oldest undecided send reaches its deadline, 0 = none */
	struct send_bcast *bcast; /* the broadcast whose envelopes ride on one rate-limit token (send.c) */

	/* delivery */
	int drain_inflight, drain_again;
	int woken_early; /* a wake or a handed push came before hello_ack: the hello's first claim runs (auth.c) */
	struct push *pushes; /* claimed, not yet handed to wslay (FIFO) */
	size_t npush, push_head, push_cap;
	int64_t outstanding; /* delivery id handed to wslay, not yet confirmed written, or 0 */
	struct unacked *unacked; /* written, not yet acknowledged by the peer's TCP (FIFO) */
	size_t nunacked, unacked_head, unacked_cap;
	int64_t ack_check_at; /* mono ms of the next look at what the peer acknowledged, 0 = none */
	int ack_interval_ms;  /* the gap before that look: 10 ms, doubling while nothing moves */
	int64_t *written;    /* acknowledged (or, without ack tracking, written), not yet marked delivered */
	size_t nwritten, written_cap;
	size_t nmarking;     /* the first nmarking of written ride on the claim in flight (delivery.c) */
	int64_t mark_due;    /* mono ms: what no claim carried by then is marked on its own, 0 = nothing waits */
	/* handed pushes (issue 23, delivery.c): once one is not taken, none is
	 * until a claim sent after it answered (hand_hold); the ids taken, so a
	 * claim that returns one of them again does not push it twice */
	int hand_hold;
	uint32_t hand_refused, claim_refused; /* refusals so far; as of the claim in flight */
	int64_t *hand_seen;  /* ring of HAND_SEEN_MAX ids, allocated at the first */
	uint32_t hand_seen_n;
	int64_t claim_max; /* the highest delivery id a claim of this connection returned */
	int64_t next_ttl_check; /* mono ms of the next TTL / JSONL look */

	/* a topic stream's state (sse.c), while it runs */
	struct sse *sse;

	/* worker <-> worker */
	int uds_listen;
	int uds_in[UDS_IN_MAX];
	struct uds_out uds_out[UDS_OUT_MAX];
	struct uds_wait *uds_wait; /* destinations waiting for a free uds_out entry (FIFO) */
	size_t nwait, wait_cap;
	int64_t drain_retry_at; /* mono ms: a failed drain is tried again then (0 = none) */
	int drain_retry_ms;     /* its back-off, doubling up to DRAIN_RETRY_MAX_MS */
	int64_t reap_next;      /* mono ms: look whether a sweep of gone workers' rows is due (reap.c) */
};

#endif
