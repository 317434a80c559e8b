/* worker — the one context struct of a meshbroker-worker process (one
 * connection), and the entry points of its modules.  No other mutable
 * global state exists in the worker. */
#ifndef WORKER_WORKER_H
#define WORKER_WORKER_H

#include <cjson/cJSON.h>
#include <poll.h>
#include <stdint.h>
#include <wslay/wslay.h>

#include "db/db.h"
#include "proto/config.h"
#include "shm/shm.h"
#include "worker/http.h"

#define PUSH_BATCH 100      /* deliveries claimed per drain query */
#define UDS_OUT_MAX 16      /* cached connections to other workers */
#define UDS_IN_MAX 64       /* accepted connections from other workers */

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
	struct shm *shm;
	struct db *db;

	/* WebSocket */
	wslay_event_context_ptr ws;
	const unsigned char *pre; /* bytes that came with the HTTP head */
	size_t pre_len, pre_off;
	int64_t hello_deadline; /* mono ms, 0 once authenticated */
	int64_t next_ping, last_pong;
	int closing;            /* we are closing: no more pushes */
	int close_queued;       /* the close frame is in wslay's queue */
	uint16_t close_code;
	char close_reason[124];
	int64_t close_deadline; /* give up on a clean close after this */
	long recv_budget;       /* bytes wslay may still read this turn */

	/* authenticated identity */
	int authed;
	int hello_inflight;
	struct presence_info me;
	uint32_t slot, gen;
	int have_slot;
	int presence_row; /* the mesh.presence row was written */
	cJSON *hello_obj; /* the accepted hello, for the optional fields */
	int client_ack;   /* hello listed "client_ack": delivered only when the client acks */

	/* delivery */
	int drain_inflight, drain_again;
	struct push *pushes; /* claimed, not yet handed to wslay (FIFO) */
	size_t npush, push_head, push_cap;
	int64_t outstanding;  /* delivery id handed to wslay, not yet confirmed written, or 0 */
	int64_t *written;     /* written to the socket, not yet marked delivered */
	size_t nwritten, written_cap;
	int64_t next_ttl_check; /* mono ms of the next TTL / JSONL look */

	/* worker <-> worker */
	int uds_listen;
	int uds_in[UDS_IN_MAX];
	struct uds_out uds_out[UDS_OUT_MAX];
};

/* sig.c */
void worker_signals_init(void); /* SIGPIPE ignored, SIGTERM/SIGINT noted */
int worker_terminating(void);   /* SIGTERM or SIGINT arrived */
#include <signal.h>
const sigset_t *worker_wait_mask(void); /* for ppoll(): the only place they are let in */

/* routes.c */
void route_request(struct worker *w, struct http_req *req);
int worker_shm(struct worker *w); /* open the presence table on first use; 0 ok */
int worker_db(struct worker *w);  /* create the db handle on first use; 0 ok */

/* ws.c */
void ws_serve(struct worker *w, struct http_req *req); /* handshake + loop; returns at the end */
int ws_send_json(struct worker *w, cJSON *obj);        /* queue a text frame (obj kept by caller) */
int ws_send_text(struct worker *w, const char *s, size_t len);
void ws_send_error(struct worker *w, const char *code, const char *message, const char *id);
void ws_close(struct worker *w, uint16_t code, const char *reason);

/* peer.c: the protocol after the upgrade */
void peer_on_text(struct worker *w, const char *msg, size_t len);
void peer_drain(struct worker *w);          /* claim and push what is deliverable */
void peer_pump(struct worker *w);           /* hand pushes to wslay, track what was written */
void peer_tick(struct worker *w, int64_t now); /* timers: TTL */
void peer_leave(struct worker *w);          /* end of connection: marks, presence row, slot */
void peer_on_wake(struct worker *w);
void peer_on_status_request(struct worker *w, int status, int source); /* from a hook's worker */

/* status.c: the write rules of PROTOCOL.md §4.2 (pure) */
const char *status_str(int status);
const char *status_source_str(int source);
int status_parse(const char *s); /* -1 when unknown */
/* Apply a (status, source) write at now_ms to p.  Returns 1 when the status
 * value changed, 0 otherwise (including an ignored write). */
int status_apply(struct presence_info *p, int status, int source, int64_t now_ms, int fresh_window_s);

/* uds.c, envelope.c: the envelope between workers, one SOCK_SEQPACKET
 * message each: the header, then len payload bytes */
enum uds_type { UDS_WAKE = 1, UDS_STATUS = 2 };

struct uds_status {
	int32_t status, source;
};

struct uds_env {
	uint16_t type;
	uint16_t len; /* payload bytes after the header */
	uint32_t src_slot, src_gen;
	uint32_t dst_slot, dst_gen;
	uint32_t reserved;
};
_Static_assert(sizeof(struct uds_env) == 24, "envelope header is 24 bytes");

/* Read a received message of n bytes (pure).  0 when it is a well-formed
 * envelope for (my_slot, my_gen): *type is UDS_WAKE, or UDS_STATUS with
 * *status and *source set.  -1 when it is to be ignored: short, for an
 * earlier owner of the slot, an unknown type, or a payload of the wrong size. */
int uds_parse(const unsigned char *buf, size_t n, uint32_t my_slot, uint32_t my_gen, int *type, int32_t *status,
	      int32_t *source);

/* uds.c */
int uds_listen_open(struct worker *w);
void uds_close_all(struct worker *w);
int uds_wake(struct worker *w, uint32_t slot, uint32_t gen);
/* ask the owner of (slot, gen) to apply a status (one-shot; 0 = sent) */
int uds_request_status(struct worker *w, uint32_t slot, uint32_t gen, int status, int source);
/* poll integration: fill fds, return count; then handle */
int uds_pollfds(struct worker *w, struct pollfd *fds, int max);
void uds_handle(struct worker *w, const struct pollfd *fds, int n);

#endif
