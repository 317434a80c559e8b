/* store — every statement the worker sends to PostgreSQL, one function per
 * statement, with typed rows in and out.  Callbacks run in FIFO order from
 * db_service (never inside the call); a function that returns -1 queued
 * nothing and never calls back.  The delivery rules of docs/protocol.md §3.4
 * (claim, give back, delivered) are written once, in store.c. */
#ifndef DB_STORE_H
#define DB_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "db/db.h"

/* ---- hello: the member behind (meshId, pubkey), check 6 of §2 ---- */
struct member_row {
	const char *id, *display_name;
	const char *pubkey, *role; /* set by the admin statements (store_admin.h) only */
	int revoked, mesh_archived;
	long max_peers;             /* 0 when the mesh has no own limit */
	const char *pending_status; /* a hook stashed for (pid, cwd), or NULL */
};
/* rows is valid during the callback only; n rows (0 = no such member) */
typedef void (*store_member_cb)(void *arg, const struct member_row *rows, int n, const char *err);
int store_hello_member(struct db *d, const char *mesh_id, const char *pubkey, int pid, const char *cwd,
		       store_member_cb cb, void *arg);

/* ---- session keys (§12.1, migration 0005) ---- */
typedef void (*store_text_cb)(void *arg, const char *value, const char *err);
/* mesh.session_key_claim: value "ok", "member_key", "other_member" or
 * "no_member" (NULL with err on failure) */
int store_session_key_claim(struct db *d, const char *mesh_id, const char *member_pubkey, const char *session,
			    store_text_cb cb, void *arg);

/* ---- presence history (mesh.presence) ---- */
struct presence_row {
	const char *presence_id, *mesh_id, *member_id, *session_id;
	int pid, worker_pid;
	const char *cwd, *status, *status_source;
	/* optional hello fields, NULL when absent; capabilities/groups as JSON text */
	const char *display_name, *hostname, *peer_type, *channel, *model, *protocol_version;
	const char *capabilities, *groups, *broker_host;
	const char *repo; /* §11, NULL when absent */
	const char *host_id; /* HOST_ID (worker/hosts.h), NULL on a single host: then untagged */
};
/* (written by store_hello_join below, with the member's last_seen_at) */
int store_presence_status(struct db *d, const char *presence_id, const char *status, const char *source);

/* ---- the hello's writes in one statement (mesh.hello_join, migration 0013) ---- */
struct hello_join {
	struct presence_row row;
	int check;     /* a member-cache hit: re-check the membership first (and write nothing when it fails) */
	int max_peers; /* (check) the mesh's max_peers the capacity was counted with, 0 = none */
	const char *pubkey;                   /* (check) the hello's key, lowercase */
	const char *session_pubkey;           /* NULL: none */
	const char *peer_role;                /* NULL: control-plane */
	int keep_groups, saved;               /* mesh.presence_restore's arguments (migration 0006) */
	int pending_delete;                   /* the hook status of (pid, cwd) was applied: delete it */
	const char *audit, *actor_name;       /* peer_joined's canonical payload; actor NULL: the member's name */
};
struct hello_join_result {
	int ok;                   /* 0: the re-check failed, nothing was written */
	const char *display_name; /* the audit row's actor name (the member's, on a re-check) */
	int visible;              /* the restored visibility */
	int audit_pending;        /* the audit row waits in mesh.audit_pending: a chain step is owed */
	int queued;               /* the member had undelivered rows in the statement's snapshot (0022) */
};
/* r is valid during the callback only (NULL with err) */
typedef void (*store_hello_join_cb)(void *arg, const struct hello_join_result *r, const char *err);
int store_hello_join(struct db *d, const struct hello_join *j, store_hello_join_cb cb, void *arg);
int store_presence_disconnect(struct db *d, const char *presence_id);

/* ---- pending hook statuses (mesh.pending_status) ---- */
typedef void (*store_done_cb)(void *arg, const char *err);
/* stash status for (pid, cwd) for secs seconds, for any peer (mesh_id and
 * member_id NULL) or only a peer of mesh_id (and of member_id when not NULL);
 * old rows are collected on the way */
int store_pending_status_put(struct db *d, int64_t pid, const char *cwd, const char *status, int secs,
			     const char *mesh_id, const char *member_id, store_done_cb cb, void *arg);

typedef void (*store_count_cb)(void *arg, int64_t value, const char *err);

/* ---- audit (metadata only) ---- */
/* append the event (mesh.audit_record: chained, or left pending when the
 * mesh's chain lock is taken) and run the mesh's chain step
 * (mesh.audit_flush, waiting for the lock): two statements, queued together
 * (migration 0004) */
int store_audit_append(struct db *d, const char *mesh_id, const char *event, const char *actor,
		       const char *actor_name, const char *canonical_payload);
/* the chain step alone: the mesh's recorded events into mesh.audit_log; the
 * value is the number of rows chained, or -1 when !wait and another chain
 * step of the mesh held the lock (nothing done).  cb may be NULL. */
int store_audit_flush(struct db *d, const char *mesh_id, int wait, store_count_cb cb, void *arg);

/* ---- send: messages, their delivery rows and audit rows, atomically ---- */
struct message_row {
	const char *id, *mesh_id, *sender_member_id, *target_spec, *priority, *nonce, *ciphertext;
	const char *audit; /* canonical payload of its message_sent audit row, NULL for none */
	/* §12.1, §12.2, idempotent sends (migration 0005); NULL when absent */
	const char *sender_session; /* the sender connection's session key (m[0]'s counts) */
	const char *client_key;     /* client_message_id, else the send's id: stored once per sender (a day) */
	const char *client_id;      /* client_message_id, echoed on the push */
	const char *fingerprint;    /* request_fingerprint, echoed on the push */
	const char *hand_to;        /* the recipient's one live connection here (presence id) to hand the
				     * row to (migration 0019), NULL for the claim's way */
};
/* one per send, in the order given: stored = 0 when a direct target named no
 * live member or session key (nothing was stored); the recipient member ids
 * otherwise.  first_id: the client id was stored before by the same request
 * (nothing new stored; the first message's id); conflict: the client id was
 * stored before by another request (nothing stored). */
struct sent_row {
	int stored;
	const char *const *recipients;
	int n;
	const char *first_id;
	int conflict;
	/* handed (message_row.hand_to, migration 0019): the delivery row, now
	 * claimed for hand_to, and the message's createdAt; 0 / NULL when the
	 * row went the claim's way */
	int64_t hand_id;
	const char *hand_at;
};
/* audit_pending: the batch's audit rows were not chained in its
 * transaction (another held the mesh's chain lock, or a lone send's are
 * always left for after the ack) and wait in mesh.audit_pending for a chain
 * step (store_audit_flush) */
typedef void (*store_sent_cb)(void *arg, const struct sent_row *rows, int n, int audit_pending, const char *err);
/* n sends of one sender in one mesh (m[0]'s), in one statement and one
 * transaction (mesh.send_messages, migration 0004): messages, delivery rows
 * and message_sent audit rows (actor the sender, actor_name its display
 * name) all commit, or none does.  rows has n entries when err is NULL.
 * Opaque nonces and ciphertexts may hold anything but NUL: a batch whose
 * fields hold no comma goes comma-joined (the fast path), any other as
 * text[] literals.  A batch where some hand_to is set, and every send
 * alone in its statement, goes through mesh.send_batch_hand (migrations
 * 0019, 0021): the same, those rows handed when its rules allow
 * (sent_row.hand_id), and its message_sent rows always left pending
 * (audit_pending set: chained after the ack). */
int store_messages_send(struct db *d, const struct message_row *m, int n, const char *actor_name, store_sent_cb cb,
			void *arg);

/* ---- delivery (§3.4) ---- */
struct delivery_row {
	int64_t id; /* the delivery row */
	const char *message_id, *mesh_id, *sender_pubkey, *priority, *nonce, *ciphertext, *created_at;
	const char *topic_id;     /* NULL for a direct or * message */
	const char *body_version; /* with topic_id */
	/* §12.2: sender_pubkey is the sender's session key when it had one */
	const char *sender_member_pubkey, *sender_member_id, *sender_name;
	const char *client_message_id, *request_fingerprint; /* NULL when the send had none */
	const char *topic_name;   /* with topic_id: the topic's name (NULL if the topic is gone) */
};
typedef void (*store_delivery_cb)(void *arg, const struct delivery_row *rows, int n, const char *err);
/* Claim up to limit undelivered rows of member_id for presence_id, oldest
 * first, skipping rows locked by a concurrent claim and rows claimed by a
 * live connection of the member (live: n_live presence ids); only `now`
 * rows unless idle; rows addressed to a session key only when session (the
 * connection's session key, NULL for none) is that key. */
int store_delivery_claim(struct db *d, const char *member_id, const char *const *live, size_t n_live, int idle,
			 const char *presence_id, const char *session, int limit, store_delivery_cb cb, void *arg);
/* the same on one of several hosts (host_id: HOST_ID, NULL = the above): the
 * member's live presences on other hosts count as live too */
int store_delivery_claim_hosts(struct db *d, const char *member_id, const char *const *live, size_t n_live,
			       int idle, const char *presence_id, const char *session, int limit,
			       const char *host_id, store_delivery_cb cb, void *arg);
/* The claim that carries marks (issue 23): n_mark delivery ids of presence_id
 * whose pushes the recipient's TCP acknowledged are marked delivered, in the
 * claim's transaction, before it claims (mark may be NULL when n_mark is 0;
 * host_id as store_delivery_claim_hosts).  The transaction commits without
 * waiting for its WAL flush: a PostgreSQL crash may lose the marks with the
 * claim, and those rows are then pushed again (same messageId). */
struct delivery_claim {
	const char *member_id;
	const char *const *live;
	size_t n_live;
	int idle;
	const char *presence_id, *session;
	int limit;
	const char *host_id;
	const int64_t *mark;
	size_t n_mark;
};
int store_delivery_mark_claim(struct db *d, const struct delivery_claim *c, store_delivery_cb cb, void *arg);
/* a client_ack by the client's own id (§12.1): the member's message sent with
 * that client_message_id reached this member's client through presence_id */
int store_delivery_client_ack_cid(struct db *d, const char *client_id, const char *member_id,
				  const char *presence_id);
/* give back the listed rows we claimed and have not delivered */
int store_delivery_unclaim(struct db *d, const int64_t *ids, size_t n, const char *presence_id);
/* give back every row presence_id claimed and did not deliver */
int store_delivery_unclaim_all(struct db *d, const char *presence_id);
/* the listed rows we claimed reached the recipient (its TCP acknowledged
 * them): a statement of its own, waiting for its WAL flush (the idle flush;
 * otherwise the marks ride on the next claim, or on the leave's statement,
 * store_presence_leave) */
int store_delivery_mark(struct db *d, const int64_t *ids, size_t n, const char *presence_id);
/* a client_ack: the message reached this member's client through presence_id */
int store_delivery_client_ack(struct db *d, const char *message_id, const char *member_id, const char *presence_id);

/* ---- API keys (docs/protocol.md §5.3) ---- */
#define APIKEY_TOPICS_MAX 32
#define APIKEY_TOPIC_LEN 128
/* a usable key: copied out of the result, so it outlives the callback */
struct apikey_row {
	char id[64], mesh_id[64];
	char member_id[64]; /* the issuing member, "" for a mesh-wide key */
	char prefix[16];
	unsigned caps;  /* APIKEY_CAP_* bits (proto/apikey.h) */
	int n_topics;   /* -1: every topic; else the scopes below */
	char topics[APIKEY_TOPICS_MAX][APIKEY_TOPIC_LEN];
};
/* found = 1 with *row when a live (not revoked, not expired) key has the
 * hash; its last_used_at is bumped in the same statement.  row is NULL when
 * found is 0. */
typedef void (*store_apikey_cb)(void *arg, int found, const struct apikey_row *row, const char *err);
int store_apikey_use(struct db *d, const char *secret_hash, store_apikey_cb cb, void *arg);

/* ---- POST /join (docs/protocol.md §6) ---- */
/* owner_pubkey of mesh_id, NULL when there is no such mesh */
typedef void (*store_text_cb)(void *arg, const char *value, const char *err);
int store_mesh_owner(struct db *d, const char *mesh_id, store_text_cb cb, void *arg);
struct join_row {
	/* ok, already, not_found, mesh_mismatch, revoked, expired, exhausted, member_revoked, mesh_archived */
	const char *result;
	const char *member_id, *mesh_id, *role, *invite_id; /* NULL when not_found */
};
typedef void (*store_join_cb)(void *arg, const struct join_row *row, const char *err);
/* One atomic join through mesh.invite_join (migration 0003): the invite row
 * is locked, so concurrent joins never exceed max_uses; mesh_id is the mesh
 * the signed payload names (another mesh's invite: mesh_mismatch). */
int store_invite_join(struct db *d, const char *token, const char *mesh_id, const char *pubkey,
		      const char *display_name,
		      const char *new_member_id, store_join_cb cb, void *arg);

/* ---- HTTP probes ---- */
int store_ping(struct db *d, store_count_cb cb, void *arg);        /* value 1 */
int store_schema_table(struct db *d, store_count_cb cb, void *arg); /* 1: mesh.schema_migrations exists */
/* the newest migration recorded ("" when none); names sort by their number */
int store_schema_version(struct db *d, store_text_cb cb, void *arg);
/* the newest migration this binary carries: a schema at or past it is current
 * (so an upgrade never marks old workers unmigrated) */
const char *store_schema_expected(void);
int store_queue_depth(struct db *d, store_count_cb cb, void *arg); /* undelivered rows */

/* ---- presence rows of workers that are gone (issue 21, worker/reap.c) ---- */
/* A leaving worker's one statement (mesh.presence_leave, migration 0016): the
 * n_mark acknowledged pushes marked delivered, every other undelivered row
 * presence_id claimed for member_id given back, and the presence row closed
 * with its peer_left, once (a reaper may have closed it first).  cb gets the
 * mesh id when this statement closed the row (NULL otherwise) and whether its
 * peer_left was left pending (the chain lock was busy, migration 0020: the
 * mesh's next chain step or a sweep's store_audit_chain_pending chains it;
 * nobody waits), or err. */
typedef void (*store_leave_cb)(void *arg, const char *closed_mesh, int audit_pending, const char *err);
int store_presence_leave(struct db *d, const char *presence_id, const char *member_id, const int64_t *mark,
			 size_t n_mark, store_leave_cb cb, void *arg);
/* the same for n rows in one statement (a sweep; peer_left rows whose mesh's
 * chain lock was busy wait pending for store_audit_chain_pending) */
int store_presence_close_many(struct db *d, const char *const *presence_ids, size_t n);
/* the sweep's chain step (mesh.audit_chain_pending, migration 0020): the
 * pending rows of at most max_meshes meshes chained where the mesh's chain
 * lock is free (tried, never waited for); cb may be NULL */
int store_audit_chain_pending(struct db *d, int max_meshes, store_count_cb cb, void *arg);
/* the event alone (mesh.audit_record: chained, or left pending when the
 * mesh's chain lock is taken), no chain step after it: a leave's */
int store_audit_record(struct db *d, const char *mesh_id, const char *event, const char *actor,
		       const char *actor_name, const char *canonical_payload);
struct open_presence {
	const char *presence_id, *mesh_id;
	int worker_pid;  /* 0 when unknown */
	int before_boot; /* connected before this host booted: its worker is gone */
};
typedef void (*store_open_cb)(void *arg, const struct open_presence *rows, int n, const char *err);
/* open rows of broker_host, oldest first, at
 * most limit; boot_time (Unix seconds) marks the ones older than the boot */
int store_presence_open(struct db *d, const char *broker_host, int64_t boot_time, int limit, store_open_cb cb,
			void *arg);

#endif
