/* negcache — the shared negative member cache (see negcache.h), on the
 * keyed sets of keyset.h. */
#include "shm/negcache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shm/keyset.h"

#define NEGCACHE_FILE "negcache.shm"
#define NEGCACHE_MAGIC 0x31454843474e4d4dULL /* "MMNGCHE1" */
#define NEGCACHE_VERSION 2u                  /* 2: the head of keyset.h */

_Static_assert((NEGCACHE_SETS & (NEGCACHE_SETS - 1)) == 0, "NEGCACHE_SETS is a power of two");

struct negcache_entry {
	struct keyset_entry k; /* nothing more: being here is the answer */
};
_Static_assert(sizeof(struct negcache_entry) == 24, "entry layout");

struct negcache_file {
	struct keyset_head k;
	_Alignas(64) struct negcache_entry e[NEGCACHE_SETS][NEGCACHE_WAYS];
	uint32_t drops[NEGCACHE_SETS]; /* per set: drops so far (a put after one is void) */
};

struct negcache {
	struct negcache_file *f;
};

#define LOCK_FAILED "negative cache: cannot lock"

int negcache_open(const char *runtime_dir, struct negcache **out, char *err, size_t errlen)
{
	*out = NULL;
	struct negcache *c = calloc(1, sizeof *c);
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	c->f = keyset_map(runtime_dir, NEGCACHE_FILE, sizeof *c->f, NEGCACHE_MAGIC, NEGCACHE_VERSION, err, errlen);
	if (!c->f) {
		free(c);
		return -1;
	}
	*out = c;
	return 0;
}

void negcache_close(struct negcache *c)
{
	if (!c)
		return;
	shmfile_unmap(c->f, sizeof *c->f);
	free(c);
}

int negcache_hit(struct negcache *c, const char *mesh_id, const char *pubkey, int64_t now_ms, uint32_t *stamp)
{
	unsigned char h[KEYSET_HASH];
	if (stamp)
		*stamp = UINT32_MAX; /* no cache: a put with it is void anyway */
	if (!c || keyset_hash(&c->f->k, mesh_id, pubkey, h) != 0 || keyset_lock(&c->f->k, LOCK_FAILED) != 0)
		return 0;
	uint32_t si = keyset_set(h, NEGCACHE_SETS);
	if (stamp)
		*stamp = c->f->drops[si];
	/* a torn entry (a holder died inside) is a miss, or a false hit on
	 * 128 keyed bits: never */
	int hit = keyset_find(c->f->e[si], sizeof(struct negcache_entry), NEGCACHE_WAYS, h, now_ms) != NULL;
	keyset_unlock(&c->f->k);
	return hit;
}

void negcache_put(struct negcache *c, const char *mesh_id, const char *pubkey, int64_t now_ms, int64_t ttl_ms,
		  uint32_t stamp)
{
	unsigned char h[KEYSET_HASH];
	if (!c || ttl_ms <= 0 || keyset_hash(&c->f->k, mesh_id, pubkey, h) != 0 ||
	    keyset_lock(&c->f->k, LOCK_FAILED) != 0)
		return;
	uint32_t si = keyset_set(h, NEGCACHE_SETS);
	if (c->f->drops[si] == stamp)
		keyset_put(c->f->e[si], sizeof(struct negcache_entry), NEGCACHE_WAYS, h, now_ms + ttl_ms);
	keyset_unlock(&c->f->k);
}

int negcache_drop(struct negcache *c, const char *mesh_id, const char *pubkey)
{
	unsigned char h[KEYSET_HASH];
	if (!c || keyset_hash(&c->f->k, mesh_id, pubkey, h) != 0 || keyset_lock(&c->f->k, LOCK_FAILED) != 0)
		return 0;
	uint32_t si = keyset_set(h, NEGCACHE_SETS);
	c->f->drops[si]++;
	int dropped = keyset_wipe(c->f->e[si], sizeof(struct negcache_entry), NEGCACHE_WAYS, h);
	keyset_unlock(&c->f->k);
	return dropped;
}
