/* shm/table — the broker-wide shared-memory table itself (docs/design.md
 * "Shared memory"): the file every worker maps (created atomically, checked
 * on open), the broker start time and the metric counters in its header.
 * The presence slots, buckets and replay cache that live in it have modules
 * of their own (presence.h, bucket.h, replay.h); shm.h includes them all. */
#ifndef SHM_TABLE_H
#define SHM_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "proto/reasons.h"

/* Broker-wide counters (docs/protocol.md §7).  The rejection families come
 * from proto/reasons.h, in the order the shared layout has always had. */
enum shm_counter {
	C_CONNECTIONS_TOTAL,
#define X(id, label, code, message) C_REJ_##id,
	HELLO_REJECTIONS(X)
#undef X
	C_ROUTED_NOW, C_ROUTED_NEXT, C_ROUTED_LOW,
#define X(id, label, code, message) C_MSGREJ_##id,
	SEND_REJECTIONS(X)
#undef X
	C_TTL_SWEEPS, C_HOOK_REQUESTS, C_HOOK_RATE_LIMITED,
	C_WORKERS_STARTED,
#define X(id, label) C_ACC_##id,
	ACCEPT_REFUSALS(X)
#undef X
	/* new counters go here, after everything else */
#define X(id, label) C_EVICT_##id,
	ACCEPT_EVICTIONS(X)
#undef X
#define X(id, label) C_LOOKUP_##id,
	MEMBER_LOOKUPS(X)
#undef X
	C_COUNTER_MAX
};

struct shm;

/* Map <runtime_dir>/presence.shm, creating it (and runtime_dir, 0750, and
 * <runtime_dir>/w/) when missing.  Creation is atomic (complete temp file, then
 * link(): one racer wins, the others open its file); an existing file with the
 * wrong magic/version/layout is refused (-1, err set) unless `recreate` is set
 * (then it is replaced by rename(); only the acceptor at start-up passes 1, and
 * only when no worker is live).  nslots applies on creation only.  Opens the
 * lock file <runtime_dir>/presence.lock itself (OFD locks belong to the open
 * file description); a forked child that keeps using an inherited handle gets
 * its own lock file description on its first call and owns no slot.  One
 * thread per handle.  0 ok, -1 error with a one-line message in err. */
int shm_open_table(const char *runtime_dir, uint32_t nslots, int recreate, struct shm **out,
		   char *err, size_t errlen);
/* Releases the slots this process still owns through s, then unmaps. */
void shm_close(struct shm *s);
uint32_t shm_nslots(const struct shm *s);
int64_t shm_start_ms(const struct shm *s);   /* broker start (wall ms) */
void shm_set_start_ms(struct shm *s, int64_t ms);

void counter_add(struct shm *s, enum shm_counter c, uint64_t n);
uint64_t counter_get(const struct shm *s, enum shm_counter c);

#endif
