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
struct worker;
struct pe_peer;
struct send_ctx;

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
	void (*tick)(struct worker *w, int64_t now);                      /* skel: timers (joined only) */
	void (*pump)(struct worker *w);                                   /* skel: room to write (joined only) */
	void (*leave)(struct worker *w);                                  /* skel: the connection ended */
};

/* one claimed delivery waiting to be written to the socket */
struct push {
	int64_t delivery_id;
	char *json; /* the push frame */
	size_t len;
	int priority; /* 0 now, 1 next, 2 low */
};

struct uds_out {
	int fd;
	uint32_t slot, gen;
	int wake_pending; /* a wake that could not be sent yet */
	int64_t used_ms;
};

struct worker {
	struct config cfg;
	int fd; /* the client connection (fd 3) */
	char remote_addr[64];
	struct shm *shm; /* opened on first use: worker_shm() */
	struct db *db;   /* created on first use: worker_db() */
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

	enum phase phase;
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

	/* sends accepted and waiting for their batch's statement (send.c) */
	struct send_ctx **sends;
	size_t nsends, sends_cap;
	int send_inflight; /* send statements queued or running */
	int chain_inflight; /* audit chain steps queued or running */
	int chain_owed;     /* our audit rows may still be pending (send.c) */
	int64_t chain_due;  /* mono ms of the next chain step try, 0 = none */

	/* delivery */
	int drain_inflight, drain_again;
	struct push *pushes; /* claimed, not yet handed to wslay (FIFO) */
	size_t npush, push_head, push_cap;
	int64_t outstanding; /* delivery id handed to wslay, not yet confirmed written, or 0 */
	int64_t *written;    /* written to the socket, not yet marked delivered */
	size_t nwritten, written_cap;
	int64_t next_ttl_check; /* mono ms of the next TTL / JSONL look */

	/* worker <-> worker */
	int uds_listen;
	int uds_in[UDS_IN_MAX];
	struct uds_out uds_out[UDS_OUT_MAX];
};

#endif
