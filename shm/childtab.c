/* childtab — the acceptor's shared per-child state words (see childtab.h). */
#include "shm/childtab.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "shm/shmfile.h"

#define CHILDTAB_FILE "children.shm"
#define CHILDTAB_MAGIC 0x31444c4948434d4dULL /* "MMCHILD1" */
#define CHILDTAB_VERSION 1u

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free to live in shared memory");

struct childtab_file {
	struct shmfile_header h;
	uint32_t n;
	uint32_t pad;
	_Atomic uint64_t word[]; /* pid << 32 | state; 0 = FREE */
};
_Static_assert(sizeof(struct childtab_file) == 32, "child table header layout");

struct childtab {
	struct childtab_file *f;
	size_t len;
	uint32_t n;
};

static inline uint64_t word_make(pid_t pid, enum child_state s) { return (uint64_t)(uint32_t)pid << 32 | (uint32_t)s; }

static size_t childtab_len(uint32_t n) { return sizeof(struct childtab_file) + (size_t)n * sizeof(uint64_t); }

static void childtab_init(void *map, void *arg)
{
	struct childtab_file *f = map;
	f->n = *(const uint32_t *)arg; /* the words are zero: FREE */
}

int childtab_create(const char *runtime_dir, uint32_t n, struct childtab **out, char *err, size_t errlen)
{
	*out = NULL;
	if (n == 0 || n > CHILDTAB_MAX) {
		snprintf(err, errlen, "child table size %u out of range", n);
		return -1;
	}
	struct childtab *t = calloc(1, sizeof *t);
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	t->len = childtab_len(n);
	t->f = shmfile_map(runtime_dir, CHILDTAB_FILE, t->len, CHILDTAB_MAGIC, CHILDTAB_VERSION,
			   SHMFILE_REPLACE, childtab_init, &n, err, errlen);
	if (!t->f || t->f->n != n) {
		shmfile_unmap(t->f, t->len);
		free(t);
		return -1;
	}
	t->n = n;
	*out = t;
	return 0;
}

int childtab_open(const char *runtime_dir, struct childtab **out, char *err, size_t errlen)
{
	*out = NULL;
	/* the size comes from the file: read its header first */
	struct childtab_file probe;
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", runtime_dir, CHILDTAB_FILE);
	FILE *fp = fopen(path, "rbe");
	if (!fp) {
		snprintf(err, errlen, "%s: cannot open", path);
		return -1;
	}
	size_t got = fread(&probe, 1, sizeof probe, fp);
	fclose(fp);
	if (got != sizeof probe || probe.n == 0 || probe.n > CHILDTAB_MAX) {
		snprintf(err, errlen, "%s: not a child table", path);
		return -1;
	}
	struct childtab *t = calloc(1, sizeof *t);
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	t->n = probe.n;
	t->len = childtab_len(t->n);
	/* a replaced file in between is caught by the size check (or is simply
	 * a table whose words are not ours: then nothing matches our pid) */
	t->f = shmfile_map(runtime_dir, CHILDTAB_FILE, t->len, CHILDTAB_MAGIC, CHILDTAB_VERSION, SHMFILE_OPEN,
			   NULL, NULL, err, errlen);
	if (!t->f || t->f->n != t->n) {
		shmfile_unmap(t->f, t->len);
		free(t);
		return -1;
	}
	*out = t;
	return 0;
}

void childtab_close(struct childtab *t)
{
	if (!t)
		return;
	shmfile_unmap(t->f, t->len);
	free(t);
}

uint32_t childtab_size(const struct childtab *t) { return t->n; }

int childtab_start(struct childtab *t, uint32_t i, pid_t pid)
{
	if (i >= t->n)
		return -1;
	uint64_t want = word_make(pid, CHILD_PREAUTH), cur = 0;
	if (atomic_compare_exchange_strong(&t->f->word[i], &cur, want))
		return 1;
	return cur == want ? 0 : -1;
}

void childtab_free(struct childtab *t, uint32_t i)
{
	if (i < t->n)
		atomic_store(&t->f->word[i], 0);
}

enum child_state childtab_get(const struct childtab *t, uint32_t i, pid_t pid)
{
	if (i >= t->n)
		return CHILD_FREE;
	uint64_t w = atomic_load(&t->f->word[i]);
	if ((uint32_t)(w >> 32) != (uint32_t)pid)
		return CHILD_FREE;
	return (enum child_state)(uint32_t)w;
}

int childtab_move(struct childtab *t, uint32_t i, pid_t pid, unsigned from_mask, enum child_state to)
{
	if (i >= t->n)
		return 0;
	uint64_t cur = atomic_load(&t->f->word[i]);
	for (;;) {
		if ((uint32_t)(cur >> 32) != (uint32_t)pid || !(from_mask & CHILD_BIT((uint32_t)cur & 31)))
			return 0;
		if (atomic_compare_exchange_weak(&t->f->word[i], &cur, word_make(pid, to)))
			return 1;
	}
}
