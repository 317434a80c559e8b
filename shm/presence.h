/* shm/presence — the presence slots of the shared table and their per-mesh
 * index (docs/design.md "Shared memory"): one writer each, seqlock, OFD-lock
 * liveness, lazy reclaim, generation numbers; walks of a mesh, and the
 * capacity check's admission lock. */
#ifndef SHM_PRESENCE_H
#define SHM_PRESENCE_H

#include <stddef.h>
#include <stdint.h>

#define SHM_MESH_ID_MAX 64     /* bytes incl. NUL */
#define SHM_MEMBER_ID_MAX 64
#define SHM_PUBKEY_MAX 65      /* 64 hex + NUL */
#define SHM_NAME_MAX 128
#define SHM_SESSION_MAX 129    /* 128 + NUL */
#define SHM_CWD_MAX 4097       /* 4096 + NUL */
#define SHM_SUMMARY_MAX 1025   /* 1024 + NUL (docs/protocol.md §11 set_summary) */
#define SHM_HOST_MAX 256
#define SHM_REPO_MAX 1025
#define SHM_PEER_TYPE_MAX 16

/* status values and sources (docs/protocol.md §4.2); numeric source = rank */
enum peer_status { ST_IDLE = 0, ST_WORKING = 1, ST_DND = 2 };
enum status_source { SRC_JSONL = 1, SRC_MANUAL = 2, SRC_HOOK = 3 };

/* What a slot says about its peer.  Written only by the owning worker. */
struct presence_info {
	char mesh_id[SHM_MESH_ID_MAX];
	char member_id[SHM_MEMBER_ID_MAX];
	char pubkey[SHM_PUBKEY_MAX];
	char display_name[SHM_NAME_MAX];
	char presence_id[SHM_MEMBER_ID_MAX];
	char session_id[SHM_SESSION_MAX];
	char cwd[SHM_CWD_MAX];
	char summary[SHM_SUMMARY_MAX];
	char hostname[SHM_HOST_MAX];       /* hello's optional fields, "" when absent */
	char repo[SHM_REPO_MAX];
	char peer_type[SHM_PEER_TYPE_MAX];
	char session_pubkey[SHM_PUBKEY_MAX]; /* §12.1: 64 lowercase hex, "" when none */
	char peer_role[SHM_PEER_TYPE_MAX];   /* §12.3 peerRole: "control-plane" or "session" */
	int32_t pid;          /* the peer's (client's) pid from hello */
	int32_t status;       /* enum peer_status */
	int32_t status_source; /* enum status_source */
	int64_t status_ms;    /* wall ms of the last status write */
	int64_t connected_ms; /* wall ms */
	int32_t hidden;       /* set_visible false (docs/protocol.md §12.3): out of list_peers, `*` and @group */
	int32_t pong_s;       /* seconds after connected_ms of the last pong heard (0: none yet): kick{stale} (issue 24) */
};

/* A live slot as a reader sees it: a consistent copy plus its identity. */
struct presence_view {
	uint32_t slot;
	uint32_t gen;
	int32_t worker_pid;
	struct presence_info info;
};

struct shm;

/* Claim a free (or dead, reclaimed) slot for this process: take the OFD lock
 * on byte `slot` of the lock file first, then CAS the state word to
 * {gen+1, getpid()}, then write info under the seqlock.  0 ok (slot, gen
 * set), -1 when the table is full. */
int presence_claim(struct shm *s, const struct presence_info *info, uint32_t *slot, uint32_t *gen);
/* Owner only: rewrite the slot's info under its seqlock. */
void presence_update(struct shm *s, uint32_t slot, const struct presence_info *info);
/* The same without counting a change (presence_changes): for a field no
 * change-watcher reads, the time of the last pong (pong_s), written every
 * ping interval by every connection; the mesh must be the slot's. */
void presence_touch(struct shm *s, uint32_t slot, const struct presence_info *info);
/* Owner only: set state FREE, then drop the OFD lock.  Unlinks the worker's
 * socket file <runtime>/w/<slot>.<gen>.sock. */
void presence_release(struct shm *s, uint32_t slot, uint32_t gen);
/* Consistent copy of a slot.  1 = live (out filled), 0 = free or dead (a dead
 * slot is reclaimed on the way: lock free -> CAS -> FREE, socket unlinked). */
int presence_read(struct shm *s, uint32_t slot, struct presence_view *out);
/* Calls fn for every live slot whose mesh_id equals mesh_id (all live slots
 * when mesh_id is NULL).  fn returns nonzero to stop.  Returns the number of
 * live slots visited.
 *
 * What a walk promises while other processes claim and release (issue 25).
 * It is a walk, not a snapshot: slots are looked at one by one, lock-free.
 *  - Never another mesh's slot: every view passed to fn is a consistent copy
 *    of a slot that was live, with this mesh_id, at some moment of the call.
 *  - Never a miss: a slot live (in this mesh) for the whole call is reported.
 *  - Each slot index at most once per call; but one peer that releases a slot
 *    behind the walk and claims another ahead of it is seen twice.
 * So the number returned n lies between the slots live for the whole call
 * and the slots live at its start plus the claims made during it:
 *      live throughout  <=  n  <=  live at start + claims during the call.
 * With no claim into the mesh during the call (releases may run), n is at
 * most the number live at its start and at least the number live at its end.
 * A decision on a count (a cap) must therefore not be taken on a bare walk:
 * presence_claim_capped takes it under the mesh's admission lock, where no
 * claim into the mesh can run. */
int presence_foreach(struct shm *s, const char *mesh_id,
		     int (*fn)(const struct presence_view *v, void *arg), void *arg);
/* The same walk with the same promise, but each view's cwd, summary,
 * hostname and repo are "" (not copied: ~6.4 KB of a slot's ~7 KB): for a
 * caller that needs none of them (ids, names, keys, status, visibility, type,
 * role).  With 1,000 peers in a mesh a full walk copies ~7 MB. */
int presence_foreach_brief(struct shm *s, const char *mesh_id,
			   int (*fn)(const struct presence_view *v, void *arg), void *arg);
/* Number of live slots (reclaims dead ones on the way); the same walk and
 * the same promise as presence_foreach(s, NULL, ...): good for a gauge
 * (broker_connections_active), not for a decision. */
int presence_count(struct shm *s);

/* The capacity check (docs/design.md "Shared memory", capacity): claim a
 * slot for info only if, counted with it, its mesh holds at most mesh_cap
 * live slots and its member (info->member_id) at most member_cap.  Every
 * hello claims through here; the mesh's admission lock (OFD locks on bytes
 * of the lock file past the slots' bytes, chosen by the mesh tag; the kernel
 * drops them when their holder dies) orders the claims into one mesh:
 *  - admitted: claimed, then counted, with the lock shared among hellos.  A
 *    count may be inflated by churn, never short of a rival: of two hellos
 *    racing for the last place the later claimer sees the other (a slot live
 *    for a whole walk is seen), so both are never admitted over the cap;
 *  - refused: only by a second claim and count with the lock exclusive (no
 *    claim into the mesh runs beside it, releases only), which is exact: the
 *    mesh (or member) really held its cap at a moment of the call.  A
 *    reconnecting peer counted twice cannot refuse anyone.
 * counts(v, arg), when not NULL, says whether another live slot counts:
 * PRESENCE_COUNTS_NOT (a connection this one replaces), PRESENCE_COUNTS_MESH
 * (a place of the mesh but not of its member: an event stream), or
 * PRESENCE_COUNTS (both); our own new slot always counts.  Waits at most PRESENCE_ADMIT_WAIT_MS for each step's lock, which
 * an exclusive holder takes before new shared holders.  Releases the slot
 * again when over. */
enum presence_admit {
	ADMIT_OK = 0,
	ADMIT_TABLE_FULL = -1,  /* no free slot */
	ADMIT_MESH_FULL = -2,   /* the mesh is at mesh_cap */
	ADMIT_MEMBER_FULL = -3, /* the member is at member_cap (and the mesh is not at its cap) */
	ADMIT_BUSY = -4,        /* the admission lock stayed taken (or the lock file failed) */
};
#define PRESENCE_ADMIT_WAIT_MS 2000
enum { PRESENCE_COUNTS_NOT = 0, PRESENCE_COUNTS = 1, PRESENCE_COUNTS_MESH = 2 };
enum presence_admit presence_claim_capped(struct shm *s, const struct presence_info *info, long mesh_cap,
					  long member_cap,
					  int (*counts)(const struct presence_view *v, void *arg), void *arg,
					  uint32_t *slot, uint32_t *gen);
/* The admission lock of a mesh, exclusive, for tests and for a caller that
 * must count a mesh exactly: while held, no presence_claim_capped into the
 * mesh runs, so
 * presence_foreach of that mesh returns at most the slots live when it
 * started and at least those live when it ended.  0 ok, -1 not within
 * wait_ms (0: one try).  One at a time per handle. */
int presence_admit_lock(struct shm *s, const char *mesh_id, int wait_ms);
void presence_admit_unlock(struct shm *s, const char *mesh_id);
/* A broker-wide count of presence changes (claims, updates, releases,
 * reclaims): readers that keep a copy of the table rescan only when it moved. */
uint64_t presence_changes(const struct shm *s);
/* "<runtime>/w/<slot>.<gen>.sock" */
void presence_sock_path(const struct shm *s, uint32_t slot, uint32_t gen, char *buf, size_t cap);

#endif
