/* membercache — the shared positive member cache (see membercache.h): a
 * keyed BLAKE2b of "meshId\0pubkey" (lowercase) picks a set; entries are
 * guarded by a robust process-shared mutex: the keyed sets of keyset.h. */
#include "shm/membercache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shm/keyset.h"

#define MEMBERCACHE_FILE "membercache.shm"
#define MEMBERCACHE_MAGIC 0x314843424d4d4d4dULL /* "MMMMBCH1" */
#define MEMBERCACHE_VERSION 3u                  /* 3: the head of keyset.h */

_Static_assert((MEMBERCACHE_SETS & (MEMBERCACHE_SETS - 1)) == 0, "MEMBERCACHE_SETS is a power of two");

struct membercache_entry {
	struct keyset_entry k;
	int32_t max_peers;
	uint32_t pad;
	char member_id[MEMBERCACHE_ID_MAX];
	char display_name[MEMBERCACHE_NAME_MAX];
};
_Static_assert(sizeof(struct membercache_entry) == 224, "entry layout");

struct membercache_file {
	struct keyset_head k;
	uint32_t drops; /* drops so far (a put after one is void) */
	_Alignas(64) struct membercache_entry e[MEMBERCACHE_SETS][MEMBERCACHE_WAYS];
};

struct membercache {
	struct membercache_file *f;
};

/* a holder that died inside leaves at worst a torn entry, which the hello
 * statement's re-check turns into a miss */
#define LOCK_FAILED "member cache: cannot lock"
#define ENTRY sizeof(struct membercache_entry)

int membercache_open(const char *runtime_dir, struct membercache **out, char *err, size_t errlen)
{
	*out = NULL;
	struct membercache *c = calloc(1, sizeof *c);
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	c->f = keyset_map(runtime_dir, MEMBERCACHE_FILE, sizeof *c->f, MEMBERCACHE_MAGIC, MEMBERCACHE_VERSION, err,
			  errlen);
	if (!c->f) {
		free(c);
		return -1;
	}
	*out = c;
	return 0;
}

void membercache_close(struct membercache *c)
{
	if (!c)
		return;
	shmfile_unmap(c->f, sizeof *c->f);
	free(c);
}

int membercache_get(struct membercache *c, const char *mesh_id, const char *pubkey, int64_t now_ms,
		    struct member_cached *out, uint32_t *stamp)
{
	unsigned char h[KEYSET_HASH];
	if (stamp)
		*stamp = UINT32_MAX; /* no cache: a put with it is void anyway */
	if (!c || keyset_hash(&c->f->k, mesh_id, pubkey, h) != 0 || keyset_lock(&c->f->k, LOCK_FAILED) != 0)
		return 0;
	if (stamp)
		*stamp = c->f->drops;
	struct membercache_entry *e = (struct membercache_entry *)keyset_find(
		c->f->e[keyset_set(h, MEMBERCACHE_SETS)], ENTRY, MEMBERCACHE_WAYS, h, now_ms);
	if (e) {
		memcpy(out->member_id, e->member_id, sizeof out->member_id);
		out->member_id[sizeof out->member_id - 1] = 0; /* the file is not trusted to hold a string */
		memcpy(out->display_name, e->display_name, sizeof out->display_name);
		out->display_name[sizeof out->display_name - 1] = 0;
		out->max_peers = e->max_peers;
	}
	keyset_unlock(&c->f->k);
	return e != NULL;
}

void membercache_put(struct membercache *c, const char *mesh_id, const char *pubkey, const struct member_cached *v,
		     int64_t now_ms, int64_t ttl_ms, uint32_t stamp)
{
	unsigned char h[KEYSET_HASH];
	if (!c || ttl_ms <= 0 || strnlen(v->member_id, MEMBERCACHE_ID_MAX) >= MEMBERCACHE_ID_MAX ||
	    strnlen(v->display_name, MEMBERCACHE_NAME_MAX) >= MEMBERCACHE_NAME_MAX ||
	    keyset_hash(&c->f->k, mesh_id, pubkey, h) != 0 || keyset_lock(&c->f->k, LOCK_FAILED) != 0)
		return;
	if (c->f->drops == stamp) {
		struct membercache_entry *e = (struct membercache_entry *)keyset_put(
			c->f->e[keyset_set(h, MEMBERCACHE_SETS)], ENTRY, MEMBERCACHE_WAYS, h, now_ms + ttl_ms);
		e->max_peers = v->max_peers;
		memset(e->member_id, 0, sizeof e->member_id);
		memcpy(e->member_id, v->member_id, strlen(v->member_id));
		memset(e->display_name, 0, sizeof e->display_name);
		memcpy(e->display_name, v->display_name, strlen(v->display_name));
	}
	keyset_unlock(&c->f->k);
}

int membercache_drop(struct membercache *c, const char *mesh_id, const char *pubkey)
{
	unsigned char h[KEYSET_HASH];
	if (!c || keyset_hash(&c->f->k, mesh_id, pubkey, h) != 0 || keyset_lock(&c->f->k, LOCK_FAILED) != 0)
		return 0;
	c->f->drops++;
	int dropped = keyset_wipe(c->f->e[keyset_set(h, MEMBERCACHE_SETS)], ENTRY, MEMBERCACHE_WAYS, h);
	keyset_unlock(&c->f->k);
	return dropped;
}

int membercache_drop_member(struct membercache *c, const char *member_id)
{
	size_t n = member_id ? strlen(member_id) : 0;
	if (!c || n == 0 || n >= MEMBERCACHE_ID_MAX || keyset_lock(&c->f->k, LOCK_FAILED) != 0)
		return 0;
	int dropped = 0;
	c->f->drops++;
	for (unsigned s = 0; s < MEMBERCACHE_SETS; s++)
		for (unsigned w = 0; w < MEMBERCACHE_WAYS; w++) {
			struct membercache_entry *e = &c->f->e[s][w];
			if (e->k.expires_ms != 0 && strncmp(e->member_id, member_id, MEMBERCACHE_ID_MAX) == 0) {
				memset(e, 0, sizeof *e);
				dropped++;
			}
		}
	keyset_unlock(&c->f->k);
	return dropped;
}
