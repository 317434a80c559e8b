/* shm/layout — the shared table's layout, private to shm/ (table.c,
 * presence.c, bucket.c, replay.c): the header, the mesh index, the slots and
 * what one process knows about its mapping.  The layout is pinned by
 * _Static_assert; a change of it is a new SHM_VERSION. */
#ifndef SHM_LAYOUT_H
#define SHM_LAYOUT_H

#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "shm/histo.h"
#include "shm/presence.h"
#include "shm/table.h"

#define SHM_MAGIC 0x314d48534853454dULL /* "MESHSHM1" in a little-endian file */
#define SHM_VERSION 7u /* 7: each slot's robust mutex, its owner's liveness without a system call (issue 23);
			* 6: the member_cache_hit counter (issue 23, shm/membercache.h);
			* 5: the histograms and acceptor gauges at the header's end (issue 23);
			* 4: session_pubkey, peer_role, hidden; 2: hostname, repo, peer_type, 1 KiB summary, change count;
			* 3: the per-slot mesh index and the high-water mark (issue 13) */
#define SHM_FILE "presence.shm"
#define SHM_LOCK_FILE "presence.lock"
#define SHM_NSLOTS_MAX (1u << 20)

#define BUCKET_SETS 1024u /* powers of two: the set is hash & (SETS - 1) */
#define BUCKET_WAYS 8u
#define REPLAY_SETS 8192u
#define REPLAY_WAYS 8u
#define REPLAY_HASH_BYTES 16u

#define SEQ_RETRIES 1000

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2 && ATOMIC_LONG_LOCK_FREE == 2,
	       "64-bit atomics must be lock-free (hence address-free) to live in shared memory");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free");
_Static_assert((BUCKET_SETS & (BUCKET_SETS - 1)) == 0, "BUCKET_SETS is a power of two");
_Static_assert((REPLAY_SETS & (REPLAY_SETS - 1)) == 0, "REPLAY_SETS is a power of two");

struct bucket_entry {
	uint64_t hash;
	double tokens;
	int64_t last_ms; /* last refill, also the LRU stamp */
	uint32_t used;
	uint32_t pad;
};
_Static_assert(sizeof(struct bucket_entry) == 32, "bucket entry layout");

struct replay_entry {
	unsigned char hash[REPLAY_HASH_BYTES];
	int64_t expires_ms; /* 0 = empty */
};
_Static_assert(sizeof(struct replay_entry) == 24, "replay entry layout");

/* The header's first fields, which table_map() checks before it maps the file:
 * read into a struct of its own, because the whole header is 1.8 MB (buckets
 * and replay cache) and a copy of it on the stack made every worker's stack
 * that big and private (issue 13). */
struct shm_ident {
	uint64_t magic; /* first, so that any foreign file is refused */
	uint32_t version;
	uint32_t header_size;
	uint32_t slot_size;
	uint32_t nslots;
};

struct shm_header {
	uint64_t magic; /* first, so that any foreign file is refused */
	uint32_t version;
	uint32_t header_size;
	uint32_t slot_size;
	uint32_t nslots;
	uint64_t epoch; /* random, new on every (re)creation */
	int64_t created_ms;
	_Atomic int64_t start_ms;
	_Atomic uint64_t presence_changes;
	unsigned char bucket_key[crypto_shorthash_KEYBYTES];
	unsigned char replay_key[crypto_generichash_KEYBYTES];
	unsigned char index_key[crypto_shorthash_KEYBYTES]; /* the mesh tags' SipHash key */
	/* 1 + the highest slot index ever claimed: readers of the index stop
	 * there (claims take the lowest free slot, so it is the peak number of
	 * peers, not PRESENCE_SLOTS) */
	_Atomic uint32_t slot_hwm;
	uint32_t pad;
	_Atomic uint64_t counters[C_COUNTER_MAX];
	/* guards buckets and replay; robust, process-shared */
	_Alignas(64) pthread_mutex_t mu;
	_Alignas(64) struct bucket_entry buckets[BUCKET_SETS][BUCKET_WAYS];
	struct replay_entry replay[REPLAY_SETS][REPLAY_WAYS];
	struct histo_area histo; /* issue 23: shm/histo.h, appended */
};
_Static_assert(offsetof(struct shm_header, magic) == 0, "magic comes first");
_Static_assert(offsetof(struct shm_header, version) == 8, "version follows magic");
_Static_assert(offsetof(struct shm_header, epoch) == sizeof(struct shm_ident) &&
		       offsetof(struct shm_header, header_size) == offsetof(struct shm_ident, header_size) &&
		       offsetof(struct shm_header, slot_size) == offsetof(struct shm_ident, slot_size) &&
		       offsetof(struct shm_header, nslots) == offsetof(struct shm_ident, nslots),
	       "struct shm_ident is the header's first fields");
_Static_assert(sizeof(struct shm_header) % 64 == 0, "slots start on a cache line");

/* The mesh index (issue 13): between the header and the slots, one 8-byte tag
 * per slot, 0 when the slot is free, else a keyed hash of its mesh id (never
 * 0).  Written only by whoever holds the slot's OFD lock (its claimer, owner
 * or reclaimer), always before the state word makes the slot live and cleared
 * only after it is FREE again, so every live slot carries its mesh's tag.  A
 * reader looks for one mesh in this dense array (8 bytes a slot, up to the
 * high-water mark) and copies only the slots whose tag matches; a stale or
 * colliding tag costs a slot read, never a wrong answer, because the slot's
 * own mesh id is still compared.  No lists, no lock: nothing for a killed
 * worker to leave half-linked. */
static inline size_t index_size(uint32_t nslots)
{
	return ((size_t)nslots * sizeof(uint64_t) + 63) & ~(size_t)63;
}

/* state = (generation << 32) | worker pid; pid 0 = FREE.
 *
 * live: a robust, process-shared mutex its owner holds from its claim to its
 * release (issue 23).  The slot's OFD lock byte stays the truth of who owns
 * it (claims, reclaims); the mutex is how a reader sees a live owner with no
 * system call: its futex word holds the owner's thread id, and the kernel
 * sets FUTEX_OWNER_DIED in it when that thread ends without unlocking
 * (killed or not).  A word that does not say "held by a live thread" sends
 * the reader to the lock byte (F_OFD_GETLK), as every read did before: the
 * kernel walks the file's whole lock list there, one entry per live worker,
 * so with 1,000 peers in a mesh every scan of it cost ~1,000 × 2.5 µs. */
struct shm_slot {
	_Alignas(64) _Atomic uint64_t state;
	_Atomic uint32_t seq; /* odd while the owner writes info */
	uint32_t live_made;   /* 1 once `live` was initialised (by a claimer, with the slot's byte in hand) */
	struct presence_info info;
	pthread_mutex_t live;
};
_Static_assert(sizeof(struct shm_slot) % 64 == 0, "slots are padded to cache lines");
_Static_assert(offsetof(struct shm_slot, info) == 16, "slot layout");

/* What one process knows about its mapping; never shared. */
struct shm {
	struct shm_header *hdr;
	_Atomic uint64_t *index; /* nslots mesh tags */
	struct shm_slot *slots;
	size_t map_len;
	uint32_t nslots;
	int lock_fd;
	pid_t lock_pid;  /* the process that opened lock_fd */
	uint8_t *owned;  /* bitmap: slots this process claimed */
	char *dir;
	char *lock_path;
};

static inline uint32_t st_pid(uint64_t st) { return (uint32_t)st; }
static inline uint32_t st_gen(uint64_t st) { return (uint32_t)(st >> 32); }
static inline uint64_t st_make(uint32_t gen, uint32_t pid) { return (uint64_t)gen << 32 | pid; }

static inline size_t table_size(uint32_t nslots)
{
	return sizeof(struct shm_header) + index_size(nslots) + (size_t)nslots * sizeof(struct shm_slot);
}

/* table.c: the header's mutex, which guards buckets and replay (robust,
 * process-shared: a holder that died leaves it usable) */
void table_lock(struct shm *s);
void table_unlock(struct shm *s);
/* presence.c: the release of every slot this process still owns (shm_close) */
void presence_release_owned(struct shm *s);

#endif
