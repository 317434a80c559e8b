/* shm/presence — presence slots and their mesh index (see presence.h and
 * docs/design.md "Shared memory"): slots claimed by CAS under OFD locks, one
 * writer each under a seqlock, dead ones reclaimed lazily; walks of a mesh
 * through the index; the capacity check under the mesh's admission lock. */
#include "shm/presence.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <poll.h>
#include <sched.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "shm/layout.h"

static int owned_get(const struct shm *s, uint32_t i) { return s->owned[i / 8] >> (i % 8) & 1; }
static void owned_set(struct shm *s, uint32_t i, int on)
{
	if (on)
		s->owned[i / 8] |= (uint8_t)(1u << (i % 8));
	else
		s->owned[i / 8] &= (uint8_t)~(1u << (i % 8));
}

/* The lock file descriptor of *this* process.  A forked child inherits the
 * parent's open file description, whose OFD locks never conflict with the
 * parent's own, so the child opens its own description on first use (and
 * owns no slot yet). */
static pid_t my_pid(void);
static int shm_lockfd(struct shm *s)
{
	pid_t me = my_pid();
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

/* Reader side: copy len bytes at off within the slot's info (and, when len2
 * is not 0, len2 bytes at off2) into the same offsets of dst, together with
 * the state word they belong to.  1 = consistent copy of a non-FREE slot,
 * 0 = FREE, -1 = no stable copy within SEQ_RETRIES (*state still set). */
static int slot_copy(const struct shm_slot *sl, size_t off, size_t len, size_t off2, size_t len2,
		     struct presence_info *dst, uint64_t *state)
{
	for (int t = 0; t < SEQ_RETRIES; t++) {
		uint32_t q1 = atomic_load_explicit(&sl->seq, memory_order_acquire);
		uint64_t st = atomic_load_explicit(&sl->state, memory_order_acquire);
		*state = st;
		if (st_pid(st) == 0)
			return 0;
		if (!(q1 & 1)) {
			memcpy((char *)dst + off, (const char *)&sl->info + off, len);
			if (len2)
				memcpy((char *)dst + off2, (const char *)&sl->info + off2, len2);
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

/* This process's pid, without a system call per slot of a walk (glibc does
 * not cache getpid): set again in a forked child (pthread_atfork). */
static pid_t my_pid_cached;
static void my_pid_forget(void) { my_pid_cached = 0; }
static pid_t my_pid(void)
{
	static int registered;
	if (!registered) {
		registered = 1;
		pthread_atfork(NULL, NULL, my_pid_forget);
	}
	if (!my_pid_cached)
		my_pid_cached = getpid();
	return my_pid_cached;
}

/* ------------------------------------------------ the liveness mutex */

/* 1 when the slot's mutex is held by a thread that has not ended: its futex
 * word is that thread's id, without FUTEX_OWNER_DIED (which the kernel sets
 * when the holder ends still holding it).  Anything else (unlocked, a holder
 * that died, a claim not that far yet) says nothing: ask the lock byte.  The
 * word is glibc's robust mutex's __lock, the futex the kernel's robust-list
 * walk writes (set_robust_list(2)); this is a read of it, never a write. */
static int live_held(const struct shm_slot *sl)
{
	uint32_t w = (uint32_t)__atomic_load_n(&sl->live.__data.__lock, __ATOMIC_ACQUIRE);
	return (w & FUTEX_TID_MASK) != 0 && !(w & FUTEX_OWNER_DIED);
}

/* Take the slot's mutex (with its lock byte in hand): 0 ok.  A holder that
 * died left it EOWNERDEAD: made consistent, it is ours.  The slot's first
 * claimer makes it (robust, process-shared): a fresh table's slots are zero
 * pages until used, and only the holder of the byte touches live_made. */
static int live_take(struct shm_slot *sl)
{
	if (!sl->live_made) {
		pthread_mutexattr_t a;
		pthread_mutexattr_init(&a);
		pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
		pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
		int rc = pthread_mutex_init(&sl->live, &a);
		pthread_mutexattr_destroy(&a);
		if (rc != 0)
			return rc;
		sl->live_made = 1;
	}
	int rc = pthread_mutex_trylock(&sl->live);
	if (rc == EOWNERDEAD)
		rc = pthread_mutex_consistent(&sl->live);
	return rc;
}

/* A reclaimer's tidy-up of a dead holder's mutex (its lock byte in hand). */
static void live_recover(struct shm_slot *sl)
{
	if (!sl->live_made)
		return;
	int rc = pthread_mutex_trylock(&sl->live);
	if (rc == EOWNERDEAD && pthread_mutex_consistent(&sl->live) == 0)
		rc = 0;
	if (rc == 0)
		pthread_mutex_unlock(&sl->live);
}

/* A non-FREE slot is live while someone holds its lock byte; ours are live
 * without asking, because GETLK never reports our own description's locks.
 * The mutex answers first: held by a live thread, the owner is live (the
 * owner takes it after the byte and drops it before), with no system call. */
static int slot_live(struct shm *s, uint32_t i, uint64_t st, int fd)
{
	if (st_pid(st) == 0)
		return 0;
	if (owned_get(s, i) && st_pid(st) == (uint32_t)my_pid())
		return 1;
	if (fd < 0)
		return 1;
	if (live_held(&s->slots[i]))
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
		live_recover(sl);
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
	/* then the liveness mutex, before the state says live */
	if (live_take(sl) != 0) {
		ofd_unlock(fd, i);
		return -1;
	}
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
		pthread_mutex_unlock(&sl->live);
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

void presence_touch(struct shm *s, uint32_t slot, const struct presence_info *info)
{
	shm_lockfd(s);
	if (slot >= s->nslots || !owned_get(s, slot))
		return;
	slot_write(&s->slots[slot], info); /* same mesh: its tag stands */
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
	/* the mutex before the byte: a held mutex always means a held byte */
	if (pthread_mutex_unlock(&sl->live) != 0)
		log_error("cannot drop a slot's liveness mutex (not its holder thread)");
	if (fd >= 0)
		ofd_unlock(fd, slot);
}

/* shm_close: every slot this process still owns goes back */
void presence_release_owned(struct shm *s)
{
	for (uint32_t i = 0; i < s->nslots; i++)
		if (owned_get(s, i)) {
			uint64_t st = atomic_load(&s->slots[i].state);
			presence_release(s, i, st_gen(st));
		}
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

/* what a brief read leaves out (presence_foreach_brief): cwd, summary,
 * hostname and repo, ~6.4 KB of a slot's ~7 KB, one block in the layout */
#define BRIEF_SKIP_FROM offsetof(struct presence_info, cwd)
#define BRIEF_SKIP_TO offsetof(struct presence_info, peer_type)
_Static_assert(offsetof(struct presence_info, summary) > BRIEF_SKIP_FROM &&
		       offsetof(struct presence_info, hostname) > BRIEF_SKIP_FROM &&
		       offsetof(struct presence_info, repo) > BRIEF_SKIP_FROM &&
		       offsetof(struct presence_info, repo) < BRIEF_SKIP_TO &&
		       offsetof(struct presence_info, pid) > BRIEF_SKIP_TO,
	       "a brief read skips cwd, summary, hostname and repo only");

static int read_at(struct shm *s, int fd, uint32_t slot, int brief, struct presence_view *out)
{
	uint64_t st;
	int rc = brief ? slot_copy(&s->slots[slot], 0, BRIEF_SKIP_FROM, BRIEF_SKIP_TO,
				   sizeof out->info - BRIEF_SKIP_TO, &out->info, &st)
		       : slot_copy(&s->slots[slot], 0, sizeof out->info, 0, 0, &out->info, &st);
	if (rc == 0)
		return 0;
	if (!slot_live(s, slot, st, fd)) {
		slot_reclaim(s, slot, fd);
		return 0;
	}
	if (rc < 0)
		return 0; /* live but being rewritten without pause: not now */
	if (brief) {
		out->info.cwd[0] = out->info.summary[0] = 0;
		out->info.hostname[0] = out->info.repo[0] = 0;
	}
	out->slot = slot;
	out->gen = st_gen(st);
	out->worker_pid = (int32_t)st_pid(st);
	info_terminate(&out->info);
	return 1;
}

int presence_read(struct shm *s, uint32_t slot, struct presence_view *out)
{
	if (slot >= s->nslots)
		return 0;
	return read_at(s, shm_lockfd(s), slot, 0, out);
}

static int walk(struct shm *s, const char *mesh_id, int brief,
		int (*fn)(const struct presence_view *v, void *arg), void *arg)
{
	struct presence_view v;
	uint64_t want = mesh_id ? mesh_tag(s, mesh_id) : 0;
	uint32_t end = index_end(s);
	int fd = shm_lockfd(s);
	int n = 0;
	for (uint32_t i = 0; i < end; i++) {
		/* the index, not the slots: most slots are free or other meshes' */
		uint64_t t = tag_get(s, i);
		if (t == 0 || (mesh_id && t != want))
			continue;
		if (!read_at(s, fd, i, brief, &v))
			continue;
		if (mesh_id && strncmp(v.info.mesh_id, mesh_id, sizeof v.info.mesh_id) != 0)
			continue;
		n++;
		if (fn && fn(&v, arg))
			break;
	}
	return n;
}

int presence_foreach(struct shm *s, const char *mesh_id,
		     int (*fn)(const struct presence_view *v, void *arg), void *arg)
{
	return walk(s, mesh_id, 0, fn, arg);
}

int presence_foreach_brief(struct shm *s, const char *mesh_id,
			   int (*fn)(const struct presence_view *v, void *arg), void *arg)
{
	return walk(s, mesh_id, 1, fn, arg);
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

/* ------------------------------------------------------------ admission */

/* The admission locks live past every slot's byte in the lock file, two
 * bytes per stripe of mesh tags (meshes that share a stripe only wait for
 * each other): the lock itself, and a gate in front of it that gives a
 * writer precedence, so that a stream of shared holders cannot keep an exact
 * count from running.  A shared holder passes the gate (shared, for one
 * call) and keeps the lock shared; an exclusive one keeps the gate, then
 * takes the lock.  OFD locks, so a holder that dies drops them with its
 * file. */
#define ADMIT_BASE ((off_t)2 * SHM_NSLOTS_MAX)
#define ADMIT_STRIPES 65536u
#define ADMIT_SPINS 64 /* yields before sleeping a millisecond between tries */

static off_t admit_byte(const struct shm *s, const char *mesh_id)
{
	return ADMIT_BASE + 2 * (off_t)((mesh_tag(s, mesh_id) >> 1) % ADMIT_STRIPES);
}

/* one byte, F_RDLCK/F_WRLCK, tried until the deadline (once at least) */
static int byte_lock(int fd, off_t at, short type, int64_t end)
{
	struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = at, .l_len = 1};
	for (int t = 0;; t++) {
		if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
			return 0;
		if (errno != EAGAIN && errno != EACCES && errno != EINTR) {
			log_error("cannot take the admission lock", "error", strerror(errno));
			return -1;
		}
		if (mono_ms() >= end)
			return -1;
		if (t < ADMIT_SPINS)
			sched_yield();
		else
			poll(NULL, 0, 1);
	}
}

static void byte_unlock(int fd, off_t at)
{
	struct flock fl = {.l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = at, .l_len = 1};
	if (fcntl(fd, F_OFD_SETLK, &fl) != 0)
		log_error("cannot drop the admission lock", "error", strerror(errno));
}

/* shared: claims that may admit; exclusive: an exact count.  0 ok, -1 not
 * within wait_ms (0: one try) */
static int admit_enter(struct shm *s, const char *mesh_id, int shared, int wait_ms)
{
	int fd = shm_lockfd(s);
	if (fd < 0)
		return -1;
	off_t lock = admit_byte(s, mesh_id), gate = lock + 1;
	int64_t end = mono_ms() + wait_ms;
	if (byte_lock(fd, gate, shared ? F_RDLCK : F_WRLCK, end) != 0)
		return -1;
	int rc = byte_lock(fd, lock, shared ? F_RDLCK : F_WRLCK, end);
	if (shared || rc != 0)
		byte_unlock(fd, gate);
	return rc;
}

static void admit_leave(struct shm *s, const char *mesh_id, int shared)
{
	int fd = shm_lockfd(s);
	if (fd < 0)
		return;
	off_t lock = admit_byte(s, mesh_id);
	byte_unlock(fd, lock);
	if (!shared)
		byte_unlock(fd, lock + 1);
}

int presence_admit_lock(struct shm *s, const char *mesh_id, int wait_ms)
{
	return admit_enter(s, mesh_id, 0, wait_ms);
}

void presence_admit_unlock(struct shm *s, const char *mesh_id)
{
	admit_leave(s, mesh_id, 0);
}

struct cap_count {
	const char *member_id;
	uint32_t slot, gen; /* ours: always counts */
	int (*counts)(const struct presence_view *v, void *arg);
	void *arg;
	long mesh, member;
};

static int cap_count_cb(const struct presence_view *v, void *arg)
{
	struct cap_count *c = arg;
	int ours = v->slot == c->slot && v->gen == c->gen;
	int k = ours || !c->counts ? PRESENCE_COUNTS : c->counts(v, c->arg);
	if (k == PRESENCE_COUNTS_NOT)
		return 0;
	c->mesh++;
	c->member += k == PRESENCE_COUNTS && strncmp(v->info.member_id, c->member_id, sizeof v->info.member_id) == 0;
	return 0;
}

/* Claim, then count the mesh with our new slot in it; over a cap, the slot
 * goes back.  OK, TABLE_FULL, MESH_FULL or MEMBER_FULL. */
static enum presence_admit claim_count(struct shm *s, const struct presence_info *info, const char *mesh,
				       const char *member, long mesh_cap, long member_cap,
				       int (*counts)(const struct presence_view *v, void *arg), void *arg,
				       uint32_t *slot, uint32_t *gen)
{
	uint32_t sl, g;
	if (presence_claim(s, info, &sl, &g) != 0)
		return ADMIT_TABLE_FULL;
	struct cap_count c = {.member_id = member, .slot = sl, .gen = g, .counts = counts, .arg = arg};
	presence_foreach(s, mesh, cap_count_cb, &c);
	enum presence_admit r = c.mesh > mesh_cap ? ADMIT_MESH_FULL : c.member > member_cap ? ADMIT_MEMBER_FULL : ADMIT_OK;
	if (r != ADMIT_OK) {
		presence_release(s, sl, g);
	} else {
		*slot = sl;
		*gen = g;
	}
	return r;
}

/* Two steps (shm.h).  First, under the admission lock shared with other
 * hellos: claim, then count.  A count can be inflated by churn but never
 * short of what matters: of claimers racing, the last to claim sees every
 * other one (each claim precedes its own walk, and a slot live for a whole
 * walk is seen), so no two admissions can both fit in one last place.  So
 * a count within the caps admits.  Second, only when over a cap: the lock
 * exclusive (no claim into the mesh runs, releases only), the claim and the
 * count again, now exact: that decides the refusal. */
enum presence_admit presence_claim_capped(struct shm *s, const struct presence_info *info, long mesh_cap,
					  long member_cap,
					  int (*counts)(const struct presence_view *v, void *arg), void *arg,
					  uint32_t *slot, uint32_t *gen)
{
	char mesh[SHM_MESH_ID_MAX], member[SHM_MEMBER_ID_MAX];
	str_copy(mesh, sizeof mesh, info ? info->mesh_id : "");
	str_copy(member, sizeof member, info ? info->member_id : "");
	if (admit_enter(s, mesh, 1, PRESENCE_ADMIT_WAIT_MS) != 0)
		return ADMIT_BUSY;
	enum presence_admit r = claim_count(s, info, mesh, member, mesh_cap, member_cap, counts, arg, slot, gen);
	admit_leave(s, mesh, 1);
	if (r != ADMIT_MESH_FULL && r != ADMIT_MEMBER_FULL)
		return r;
	if (admit_enter(s, mesh, 0, PRESENCE_ADMIT_WAIT_MS) != 0)
		return ADMIT_BUSY;
	r = claim_count(s, info, mesh, member, mesh_cap, member_cap, counts, arg, slot, gen);
	admit_leave(s, mesh, 0);
	return r;
}
