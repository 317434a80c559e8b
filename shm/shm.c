/* shm — the broker-wide shared-memory table (see shm.h and docs/design.md "Shared
 * memory"): one file mapped by every worker, created atomically, slots claimed
 * by CAS under OFD locks, plus counters, token buckets and the replay cache. */
#include "shm.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "shm/histo.h"

#define SHM_MAGIC 0x314d48534853454dULL /* "MESHSHM1" in a little-endian file */
#define SHM_VERSION 4u /* 2: hostname, repo, peer_type, 1 KiB summary, change count;
			* 3: the per-slot mesh index and the high-water mark (issue 13);
			* 4: the histograms and acceptor gauges at the header's end (issue 23) */
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

/* state = (generation << 32) | worker pid; pid 0 = FREE */
struct shm_slot {
	_Alignas(64) _Atomic uint64_t state;
	_Atomic uint32_t seq; /* odd while the owner writes info */
	uint32_t pad;
	struct presence_info info;
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

static int owned_get(const struct shm *s, uint32_t i) { return s->owned[i / 8] >> (i % 8) & 1; }
static void owned_set(struct shm *s, uint32_t i, int on)
{
	if (on)
		s->owned[i / 8] |= (uint8_t)(1u << (i % 8));
	else
		s->owned[i / 8] &= (uint8_t)~(1u << (i % 8));
}

static size_t table_size(uint32_t nslots)
{
	return sizeof(struct shm_header) + index_size(nslots) + (size_t)nslots * sizeof(struct shm_slot);
}

/* ---------------------------------------------------------------- files */

static int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	if (str_copy(buf, sizeof buf, path) != 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, mode) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, mode) != 0 && errno != EEXIST)
		return -1;
	struct stat st;
	if (stat(buf, &st) != 0)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return 0;
}

static void table_init(struct shm_header *h, uint32_t nslots)
{
	/* the file is fresh from ftruncate: everything else is already zero,
	 * which means FREE slots of generation 0, empty buckets and replays */
	h->magic = SHM_MAGIC;
	h->version = SHM_VERSION;
	h->header_size = (uint32_t)sizeof(struct shm_header);
	h->slot_size = (uint32_t)sizeof(struct shm_slot);
	h->nslots = nslots;
	randombytes_buf(&h->epoch, sizeof h->epoch);
	h->created_ms = now_ms();
	atomic_init(&h->start_ms, h->created_ms);
	randombytes_buf(h->bucket_key, sizeof h->bucket_key);
	randombytes_buf(h->replay_key, sizeof h->replay_key);
	randombytes_buf(h->index_key, sizeof h->index_key);
	atomic_init(&h->slot_hwm, 0);
	for (int c = 0; c < C_COUNTER_MAX; c++)
		atomic_init(&h->counters[c], 0);

	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&h->mu, &a);
	pthread_mutexattr_destroy(&a);
}

/* Build a complete table in a temp file, then publish it under `path`:
 * link() when creating (exactly one racer wins; a loser finds EEXIST and
 * opens the winner's file), rename() when replacing a bad file.  0 ok
 * (including a lost race), -1 error. */
static int table_create(const char *dir, const char *path, uint32_t nslots, int replace, char *err,
			size_t errlen)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof tmp, "%s/.%s.XXXXXX", dir, SHM_FILE) >= (int)sizeof tmp) {
		snprintf(err, errlen, "%s: path too long", dir);
		return -1;
	}
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot create temp file: %s", dir, strerror(errno));
		return -1;
	}
	size_t len = table_size(nslots);
	void *map = MAP_FAILED;
	if (fchmod(fd, 0600) != 0 || ftruncate(fd, (off_t)len) != 0) {
		snprintf(err, errlen, "%s: cannot size temp file: %s", tmp, strerror(errno));
		goto fail;
	}
	map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		snprintf(err, errlen, "%s: mmap: %s", tmp, strerror(errno));
		goto fail;
	}
	table_init(map, nslots);
	munmap(map, len);
	close(fd);

	if (replace) {
		if (rename(tmp, path) != 0) {
			snprintf(err, errlen, "%s: cannot replace: %s", path, strerror(errno));
			unlink(tmp);
			return -1;
		}
		return 0;
	}
	if (link(tmp, path) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: cannot create: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	unlink(tmp);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return -1;
}

/* 1 = valid table (mapped into s), 0 = no file, -2 = bad file (err set),
 * -1 = error (err set) */
static int table_map(struct shm *s, const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	struct shm_ident h;
	int rc = -2;
	if (fstat(fd, &st) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		rc = -1;
		goto out;
	}
	memset(&h, 0, sizeof h);
	if ((size_t)st.st_size < sizeof h || pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h ||
	    h.magic != SHM_MAGIC) {
		snprintf(err, errlen, "%s: bad magic, not a meshbroker presence table", path);
		goto out;
	}
	if (h.version != SHM_VERSION) {
		snprintf(err, errlen, "%s: table version %u, this build needs %u", path, h.version,
			 SHM_VERSION);
		goto out;
	}
	if (h.header_size != sizeof(struct shm_header) || h.slot_size != sizeof(struct shm_slot)) {
		snprintf(err, errlen, "%s: layout mismatch (header %u/%zu, slot %u/%zu bytes)", path,
			 h.header_size, sizeof(struct shm_header), h.slot_size,
			 sizeof(struct shm_slot));
		goto out;
	}
	if (h.nslots == 0 || h.nslots > SHM_NSLOTS_MAX ||
	    (size_t)st.st_size != table_size(h.nslots)) {
		snprintf(err, errlen, "%s: size %lld does not match %u slots", path,
			 (long long)st.st_size, h.nslots);
		goto out;
	}
	void *map = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		snprintf(err, errlen, "%s: mmap: %s", path, strerror(errno));
		rc = -1;
		goto out;
	}
	s->hdr = map;
	s->index = (_Atomic uint64_t *)((char *)map + sizeof(struct shm_header));
	s->slots = (struct shm_slot *)((char *)map + sizeof(struct shm_header) + index_size(h.nslots));
	s->map_len = (size_t)st.st_size;
	s->nslots = h.nslots;
	rc = 1;
out:
	close(fd);
	return rc;
}

int shm_open_table(const char *runtime_dir, uint32_t nslots, int recreate, struct shm **out,
		   char *err, size_t errlen)
{
	char path[PATH_MAX], wdir[PATH_MAX], lpath[PATH_MAX];
	struct shm *s = NULL;
	int rc = 0;

	*out = NULL;
	if (errlen)
		err[0] = 0;
	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium failed to initialise");
		return -1;
	}
	if (nslots == 0 || nslots > SHM_NSLOTS_MAX) {
		snprintf(err, errlen, "slot count %u out of range 1..%u", nslots, SHM_NSLOTS_MAX);
		return -1;
	}
	if (snprintf(path, sizeof path, "%s/%s", runtime_dir, SHM_FILE) >= (int)sizeof path ||
	    snprintf(wdir, sizeof wdir, "%s/w", runtime_dir) >= (int)sizeof wdir ||
	    snprintf(lpath, sizeof lpath, "%s/%s", runtime_dir, SHM_LOCK_FILE) >= (int)sizeof lpath) {
		snprintf(err, errlen, "%s: runtime directory path too long", runtime_dir);
		return -1;
	}
	if (mkdir_p(runtime_dir, 0750) != 0 || mkdir_p(wdir, 0750) != 0) {
		snprintf(err, errlen, "%s: cannot create runtime directory: %s", runtime_dir,
			 strerror(errno));
		return -1;
	}

	s = calloc(1, sizeof *s);
	if (!s)
		goto oom;
	s->lock_fd = -1;

	for (int attempt = 0; attempt < 4; attempt++) {
		rc = table_map(s, path, err, errlen);
		if (rc == 1 || rc == -1)
			break;
		if (rc == -2 && !recreate)
			break;
		if (table_create(runtime_dir, path, nslots, rc == -2, err, errlen) != 0) {
			rc = -1;
			break;
		}
		if (rc == -2)
			log_warn("replaced a bad presence table", "path", path);
	}
	if (rc != 1) {
		if (rc == 0 || (rc == -2 && recreate))
			snprintf(err, errlen, "%s: table keeps changing under us", path);
		goto fail;
	}

	s->lock_fd = open(lpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (s->lock_fd < 0) {
		snprintf(err, errlen, "%s: %s", lpath, strerror(errno));
		goto fail;
	}
	s->lock_pid = getpid();
	s->owned = calloc((s->nslots + 7) / 8, 1);
	s->dir = strdup(runtime_dir);
	s->lock_path = strdup(lpath);
	if (!s->owned || !s->dir || !s->lock_path)
		goto oom;
	histo_bind(&s->hdr->histo); /* this process's observations go here (issue 23) */
	*out = s;
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
fail:
	if (s) {
		if (s->hdr)
			munmap(s->hdr, s->map_len);
		if (s->lock_fd >= 0)
			close(s->lock_fd);
		free(s->owned);
		free(s->dir);
		free(s->lock_path);
		free(s);
	}
	return -1;
}

/* The lock file descriptor of *this* process.  A forked child inherits the
 * parent's open file description, whose OFD locks never conflict with the
 * parent's own, so the child opens its own description on first use (and
 * owns no slot yet). */
static int shm_lockfd(struct shm *s)
{
	pid_t me = getpid();
	if (s->lock_pid == me)
		return s->lock_fd;
	int fd = open(s->lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		log_error("cannot open the lock file", "path", s->lock_path, "error",
			  strerror(errno));
		return -1;
	}
	if (s->lock_fd >= 0)
		close(s->lock_fd); /* the parent's locks stay: it still holds the description */
	s->lock_fd = fd;
	s->lock_pid = me;
	memset(s->owned, 0, (s->nslots + 7) / 8);
	return fd;
}

void shm_close(struct shm *s)
{
	if (!s)
		return;
	if (s->lock_pid == getpid()) {
		for (uint32_t i = 0; i < s->nslots; i++)
			if (owned_get(s, i)) {
				uint64_t st = atomic_load(&s->slots[i].state);
				presence_release(s, i, st_gen(st));
			}
	}
	histo_unbind(&s->hdr->histo);
	munmap(s->hdr, s->map_len);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	free(s->owned);
	free(s->dir);
	free(s->lock_path);
	free(s);
}

uint32_t shm_nslots(const struct shm *s) { return s->nslots; }

int64_t shm_start_ms(const struct shm *s)
{
	return atomic_load_explicit(&s->hdr->start_ms, memory_order_relaxed);
}

void shm_set_start_ms(struct shm *s, int64_t ms)
{
	atomic_store_explicit(&s->hdr->start_ms, ms, memory_order_relaxed);
}

/* ------------------------------------------------------------ OFD locks */

/* 0 = locked, -1 = held by another description (or error) */
static int ofd_trylock(int fd, uint32_t i)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = i, .l_len = 1};
	return fcntl(fd, F_OFD_SETLK, &fl) == 0 ? 0 : -1;
}

static void ofd_unlock(int fd, uint32_t i)
{
	struct flock fl = {.l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = i, .l_len = 1};
	if (fcntl(fd, F_OFD_SETLK, &fl) != 0)
		log_error("cannot drop a slot lock", "error", strerror(errno));
}

/* 1 when another description holds byte i.  Our own locks never show here. */
static int ofd_held(int fd, uint32_t i)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = i, .l_len = 1};
	if (fcntl(fd, F_OFD_GETLK, &fl) != 0)
		return 1; /* cannot tell: never reclaim on a guess */
	return fl.l_type != F_UNLCK;
}

/* ---------------------------------------------------------- mesh index */

/* The tag of a mesh id: SipHash under the table's key, never 0 (= free). */
static uint64_t mesh_tag(const struct shm *s, const char *mesh_id)
{
	unsigned char h[crypto_shorthash_BYTES];
	uint64_t t;
	crypto_shorthash(h, (const unsigned char *)mesh_id, strnlen(mesh_id, SHM_MESH_ID_MAX),
			 s->hdr->index_key);
	memcpy(&t, h, sizeof t);
	return t | 1;
}

/* seq_cst, like the tag stores: two claimers that each store their tag and
 * then read the other's cannot both miss (auth.c's capacity check) */
static uint64_t tag_get(const struct shm *s, uint32_t i) { return atomic_load(&s->index[i]); }
static void tag_set(struct shm *s, uint32_t i, uint64_t t) { atomic_store(&s->index[i], t); }

/* How far readers of the index must look. */
static uint32_t index_end(const struct shm *s)
{
	uint32_t n = atomic_load(&s->hdr->slot_hwm);
	return n < s->nslots ? n : s->nslots;
}

static void hwm_raise(struct shm *s, uint32_t i)
{
	uint32_t cur = atomic_load(&s->hdr->slot_hwm);
	while (cur < i + 1 && !atomic_compare_exchange_weak(&s->hdr->slot_hwm, &cur, i + 1))
		;
}

/* ------------------------------------------------------------- presence */

void presence_sock_path(const struct shm *s, uint32_t slot, uint32_t gen, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s/w/%u.%u.sock", s->dir, slot, gen);
}

static void sock_unlink(const struct shm *s, uint32_t slot, uint32_t gen)
{
	char p[PATH_MAX];
	presence_sock_path(s, slot, gen, p, sizeof p);
	if (unlink(p) != 0 && errno != ENOENT)
		log_warn("cannot unlink a worker socket", "path", p, "error", strerror(errno));
}

/* Owner side of the seqlock.  An odd start (a writer died mid-write) stays
 * odd until we finish. */
static uint32_t seq_begin(struct shm_slot *sl)
{
	uint32_t q = atomic_load_explicit(&sl->seq, memory_order_relaxed);
	if (!(q & 1))
		q++;
	atomic_store_explicit(&sl->seq, q, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	return q;
}

static void seq_end(struct shm_slot *sl, uint32_t q)
{
	atomic_store_explicit(&sl->seq, q + 1, memory_order_release);
}

static void changes_bump(struct shm *s)
{
	atomic_fetch_add_explicit(&s->hdr->presence_changes, 1, memory_order_release);
}

uint64_t presence_changes(const struct shm *s)
{
	return atomic_load_explicit(&s->hdr->presence_changes, memory_order_acquire);
}

static void slot_write(struct shm_slot *sl, const struct presence_info *info)
{
	uint32_t q = seq_begin(sl);
	if (info)
		memcpy(&sl->info, info, sizeof sl->info);
	else
		memset(&sl->info, 0, sizeof sl->info);
	seq_end(sl, q);
}

/* Reader side: copy len bytes at off within the slot's info together with
 * the state word they belong to.  1 = consistent copy of a non-FREE slot,
 * 0 = FREE, -1 = no stable copy within SEQ_RETRIES (*state still set). */
static int slot_copy(const struct shm_slot *sl, size_t off, size_t len, void *dst,
		     uint64_t *state)
{
	for (int t = 0; t < SEQ_RETRIES; t++) {
		uint32_t q1 = atomic_load_explicit(&sl->seq, memory_order_acquire);
		uint64_t st = atomic_load_explicit(&sl->state, memory_order_acquire);
		*state = st;
		if (st_pid(st) == 0)
			return 0;
		if (!(q1 & 1)) {
			memcpy(dst, (const char *)&sl->info + off, len);
			atomic_thread_fence(memory_order_acquire);
			uint32_t q2 = atomic_load_explicit(&sl->seq, memory_order_relaxed);
			uint64_t st2 = atomic_load_explicit(&sl->state, memory_order_relaxed);
			if (q1 == q2 && st == st2)
				return 1;
		}
		if ((t & 63) == 63)
			sched_yield();
	}
	return -1;
}

/* A non-FREE slot is live while someone holds its lock byte; ours are live
 * without asking, because GETLK never reports our own description's locks. */
static int slot_live(struct shm *s, uint32_t i, uint64_t st, int fd)
{
	if (st_pid(st) == 0)
		return 0;
	if (owned_get(s, i) && st_pid(st) == (uint32_t)getpid())
		return 1;
	if (fd < 0)
		return 1;
	return ofd_held(fd, i);
}

/* Free a dead slot: only with its lock in hand (no owner can hold it then). */
static void slot_reclaim(struct shm *s, uint32_t i, int fd)
{
	if (fd < 0 || owned_get(s, i))
		return; /* a lock we "take" on our own slot would be dropped below */
	if (ofd_trylock(fd, i) != 0)
		return;
	struct shm_slot *sl = &s->slots[i];
	uint64_t st = atomic_load_explicit(&sl->state, memory_order_acquire);
	if (st_pid(st) != 0 &&
	    atomic_compare_exchange_strong(&sl->state, &st, st_make(st_gen(st), 0))) {
		char slot[16], pid[16];
		snprintf(slot, sizeof slot, "%u", i);
		snprintf(pid, sizeof pid, "%u", st_pid(st));
		log_info("reclaimed a dead worker's slot", "slot", slot, "pid", pid);
		tag_set(s, i, 0); /* FREE first, then the tag: a live slot always has one */
		changes_bump(s);
		sock_unlink(s, i, st_gen(st));
	}
	ofd_unlock(fd, i);
}

/* Claim slot i if its lock is free (it is then FREE, or dead): 0 ok. */
static int claim_at(struct shm *s, int fd, uint32_t i, uint64_t tag, const struct presence_info *info,
		    uint32_t *slot, uint32_t *gen)
{
	if (owned_get(s, i))
		return -1;
	/* the lock first: a held byte means live, or being claimed or
	 * reclaimed by someone else right now */
	if (ofd_trylock(fd, i) != 0)
		return -1;
	struct shm_slot *sl = &s->slots[i];
	uint64_t st = atomic_load_explicit(&sl->state, memory_order_acquire);
	uint32_t g = st_gen(st) + 1;
	/* the index before the state: readers stop at the high-water mark and
	 * skip by the tag, so both must cover the slot before it is live */
	hwm_raise(s, i);
	tag_set(s, i, tag);
	/* readers must not pair the old info with the new state */
	uint32_t q = seq_begin(sl);
	if (!atomic_compare_exchange_strong(&sl->state, &st, st_make(g, (uint32_t)getpid()))) {
		/* cannot happen while we hold the lock; a stale tag is harmless */
		seq_end(sl, q);
		ofd_unlock(fd, i);
		return -1;
	}
	if (st_pid(st) != 0)
		sock_unlink(s, i, st_gen(st)); /* a dead owner's socket */
	if (info)
		memcpy(&sl->info, info, sizeof sl->info);
	else
		memset(&sl->info, 0, sizeof sl->info);
	seq_end(sl, q);
	owned_set(s, i, 1);
	changes_bump(s);
	*slot = i;
	*gen = g;
	return 0;
}

int presence_claim(struct shm *s, const struct presence_info *info, uint32_t *slot, uint32_t *gen)
{
	int fd = shm_lockfd(s);
	if (fd < 0)
		return -1;
	uint64_t tag = mesh_tag(s, info ? info->mesh_id : "");
	/* the lowest slot whose tag says FREE: one lock attempt, usually, and
	 * no slot touched but the one we take */
	for (uint32_t i = 0; i < s->nslots; i++)
		if (tag_get(s, i) == 0 && claim_at(s, fd, i, tag, info, slot, gen) == 0)
			return 0;
	/* none: a dead worker's slot that no reader has reclaimed yet (or one
	 * whose claimer died before its state moved), reclaimed directly */
	for (uint32_t i = 0; i < s->nslots; i++)
		if (tag_get(s, i) != 0 && claim_at(s, fd, i, tag, info, slot, gen) == 0)
			return 0;
	return -1;
}

void presence_update(struct shm *s, uint32_t slot, const struct presence_info *info)
{
	shm_lockfd(s);
	if (slot >= s->nslots || !owned_get(s, slot)) {
		log_error("refused to write a slot this process does not own");
		return;
	}
	uint64_t tag = mesh_tag(s, info ? info->mesh_id : "");
	if (tag_get(s, slot) != tag)
		tag_set(s, slot, tag); /* a new mesh: the tag first, as in a claim */
	slot_write(&s->slots[slot], info);
	changes_bump(s);
}

void presence_release(struct shm *s, uint32_t slot, uint32_t gen)
{
	int fd = shm_lockfd(s);
	if (slot >= s->nslots || !owned_get(s, slot)) {
		log_error("release of a slot this process does not own");
		return;
	}
	struct shm_slot *sl = &s->slots[slot];
	uint64_t st = atomic_load_explicit(&sl->state, memory_order_acquire);
	if (st != st_make(gen, (uint32_t)getpid()))
		log_error("releasing a slot whose state is not ours");
	atomic_store_explicit(&sl->state, st_make(st_gen(st), 0), memory_order_release);
	/* after FREE, so no reader takes the blank for a live peer; still
	 * ours until the unlock, so no claimer races this */
	slot_write(sl, NULL);
	tag_set(s, slot, 0); /* after FREE; still ours until the unlock */
	sock_unlink(s, slot, gen);
	owned_set(s, slot, 0);
	changes_bump(s);
	if (fd >= 0)
		ofd_unlock(fd, slot);
}

static void info_terminate(struct presence_info *in)
{
	in->mesh_id[sizeof in->mesh_id - 1] = 0;
	in->member_id[sizeof in->member_id - 1] = 0;
	in->pubkey[sizeof in->pubkey - 1] = 0;
	in->display_name[sizeof in->display_name - 1] = 0;
	in->presence_id[sizeof in->presence_id - 1] = 0;
	in->session_id[sizeof in->session_id - 1] = 0;
	in->cwd[sizeof in->cwd - 1] = 0;
	in->summary[sizeof in->summary - 1] = 0;
	in->hostname[sizeof in->hostname - 1] = 0;
	in->repo[sizeof in->repo - 1] = 0;
	in->peer_type[sizeof in->peer_type - 1] = 0;
}

int presence_read(struct shm *s, uint32_t slot, struct presence_view *out)
{
	if (slot >= s->nslots)
		return 0;
	int fd = shm_lockfd(s);
	uint64_t st;
	int rc = slot_copy(&s->slots[slot], 0, sizeof out->info, &out->info, &st);
	if (rc == 0)
		return 0;
	if (!slot_live(s, slot, st, fd)) {
		slot_reclaim(s, slot, fd);
		return 0;
	}
	if (rc < 0)
		return 0; /* live but being rewritten without pause: not now */
	out->slot = slot;
	out->gen = st_gen(st);
	out->worker_pid = (int32_t)st_pid(st);
	info_terminate(&out->info);
	return 1;
}

int presence_foreach(struct shm *s, const char *mesh_id,
		     int (*fn)(const struct presence_view *v, void *arg), void *arg)
{
	struct presence_view v;
	uint64_t want = mesh_id ? mesh_tag(s, mesh_id) : 0;
	uint32_t end = index_end(s);
	int n = 0;
	for (uint32_t i = 0; i < end; i++) {
		/* the index, not the slots: most slots are free or other meshes' */
		uint64_t t = tag_get(s, i);
		if (t == 0 || (mesh_id && t != want))
			continue;
		if (!presence_read(s, i, &v))
			continue;
		if (mesh_id && strncmp(v.info.mesh_id, mesh_id, sizeof v.info.mesh_id) != 0)
			continue;
		n++;
		if (fn && fn(&v, arg))
			break;
	}
	return n;
}

int presence_count(struct shm *s)
{
	int fd = shm_lockfd(s);
	uint32_t end = index_end(s);
	int n = 0;
	for (uint32_t i = 0; i < end; i++) {
		if (tag_get(s, i) == 0)
			continue;
		uint64_t st = atomic_load_explicit(&s->slots[i].state, memory_order_acquire);
		if (st_pid(st) == 0)
			continue;
		if (slot_live(s, i, st, fd))
			n++;
		else
			slot_reclaim(s, i, fd);
	}
	return n;
}

/* ------------------------------------------------------------- counters */

void counter_add(struct shm *s, enum shm_counter c, uint64_t n)
{
	if ((unsigned)c >= C_COUNTER_MAX)
		return;
	atomic_fetch_add_explicit(&s->hdr->counters[c], n, memory_order_relaxed);
}

uint64_t counter_get(const struct shm *s, enum shm_counter c)
{
	if ((unsigned)c >= C_COUNTER_MAX)
		return 0;
	return atomic_load_explicit(&s->hdr->counters[c], memory_order_relaxed);
}

/* ------------------------------------------- buckets and replay (mutex) */

static void table_lock(struct shm *s)
{
	int rc = pthread_mutex_lock(&s->hdr->mu);
	if (rc == EOWNERDEAD) {
		/* a worker died inside; entries are small and each use
		 * re-validates them, so carry on */
		log_warn("previous holder of the shared table mutex died");
		pthread_mutex_consistent(&s->hdr->mu);
	} else if (rc != 0) {
		log_fatal("cannot lock the shared table mutex", "error", strerror(rc));
	}
}

static void table_unlock(struct shm *s) { pthread_mutex_unlock(&s->hdr->mu); }

int bucket_take(struct shm *s, const char *key, double burst, double per_min, int64_t now_ms)
{
	unsigned char hb[crypto_shorthash_BYTES];
	uint64_t h;
	crypto_shorthash(hb, (const unsigned char *)key, strlen(key), s->hdr->bucket_key);
	memcpy(&h, hb, sizeof h);
	if (!(burst > 0))
		return 0;
	if (!(per_min >= 0))
		per_min = 0;

	table_lock(s);
	struct bucket_entry *set = s->hdr->buckets[h & (BUCKET_SETS - 1)];
	struct bucket_entry *e = NULL, *victim = NULL;
	for (unsigned w = 0; w < BUCKET_WAYS; w++) {
		if (set[w].used && set[w].hash == h) {
			e = &set[w];
			break;
		}
		if (!victim || (victim->used && (!set[w].used || set[w].last_ms < victim->last_ms)))
			victim = &set[w];
	}
	if (!e) {
		e = victim;
		e->hash = h;
		e->tokens = burst;
		e->last_ms = now_ms;
		e->used = 1;
	}
	if (now_ms > e->last_ms) {
		e->tokens += (double)(now_ms - e->last_ms) * per_min / 60000.0;
		e->last_ms = now_ms;
	}
	/* also repairs an entry torn by a worker that died holding the mutex */
	if (!isfinite(e->tokens) || e->tokens > burst)
		e->tokens = burst;
	if (e->tokens < 0)
		e->tokens = 0;
	int ok = e->tokens >= 1.0;
	if (ok)
		e->tokens -= 1.0;
	table_unlock(s);
	return ok;
}

int replay_check_and_remember(struct shm *s, const unsigned char *sig, size_t len, int64_t now_ms,
			      int64_t expires_ms)
{
	/* keyed, so that nobody can grind signatures into one set to evict
	 * someone else's entry and replay it */
	unsigned char hb[REPLAY_HASH_BYTES];
	uint64_t h;
	crypto_generichash(hb, sizeof hb, sig, len, s->hdr->replay_key, sizeof s->hdr->replay_key);
	memcpy(&h, hb, sizeof h);

	table_lock(s);
	struct replay_entry *set = s->hdr->replay[h & (REPLAY_SETS - 1)];
	struct replay_entry *victim = NULL;
	for (unsigned w = 0; w < REPLAY_WAYS; w++) {
		struct replay_entry *e = &set[w];
		int expired = e->expires_ms <= now_ms;
		if (!expired && memcmp(e->hash, hb, sizeof hb) == 0) {
			table_unlock(s);
			return 0;
		}
		if (!victim || (victim->expires_ms > now_ms &&
				(expired || e->expires_ms < victim->expires_ms)))
			victim = e;
	}
	if (victim->expires_ms > now_ms) {
		table_unlock(s);
		return -1; /* full of live entries: refuse rather than forget one */
	}
	memcpy(victim->hash, hb, sizeof hb);
	victim->expires_ms = expires_ms;
	table_unlock(s);
	return 1;
}

struct histo_area *shm_histo(struct shm *s) { return &s->hdr->histo; }
