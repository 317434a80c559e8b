/* shm/table — the shared table's file (see table.h and docs/design.md
 * "Shared memory"): created atomically, mapped by every worker, checked on
 * open; the start time, the counters and the header's mutex. */
#include "shm/table.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
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
#include "shm/layout.h"

/* ---------------------------------------------------------------- files */

static int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	if (str_copy(buf, sizeof buf, path) != 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	/* there already (every worker but the first): a lookup only.  mkdir
	 * takes its parent directory's lock exclusively even to answer EEXIST,
	 * and every worker start made eight of them, on / and /tmp too: under
	 * a hello burst, starting workers queued there (issue 23, docs/design.md
	 * "A worker's start and end, fourth round") */
	struct stat st0;
	if (stat(buf, &st0) == 0 && S_ISDIR(st0.st_mode))
		return 0;
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
	/* each slot's liveness mutex is made by its first claimer (presence.c
	 * live_take): initialising them all here would write every page of the
	 * table, ~7 KB a slot, where a fresh table touches only its header */
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

void shm_close(struct shm *s)
{
	if (!s)
		return;
	if (s->lock_pid == getpid())
		presence_release_owned(s);
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

/* ------------------------------------------------------------ the mutex */

void table_lock(struct shm *s)
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

void table_unlock(struct shm *s) { pthread_mutex_unlock(&s->hdr->mu); }

struct histo_area *shm_histo(struct shm *s) { return &s->hdr->histo; }
