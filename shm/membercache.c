/* membercache — the shared positive member cache (see membercache.h): a
 * keyed BLAKE2b of "meshId\0pubkey" (lowercase) picks a set; entries are
 * guarded by a robust process-shared mutex, as negcache.c's are. */
#include "shm/membercache.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "shm/shmfile.h"

#define MEMBERCACHE_FILE "membercache.shm"
#define MEMBERCACHE_MAGIC 0x314843424d4d4d4dULL /* "MMMMBCH1" */
#define MEMBERCACHE_VERSION 2u
#define MEMBERCACHE_HASH 16u
#define MEMBERCACHE_KEY_MAX 200 /* meshId (< 64) + NUL + pubkey (64) */

_Static_assert((MEMBERCACHE_SETS & (MEMBERCACHE_SETS - 1)) == 0, "MEMBERCACHE_SETS is a power of two");

struct membercache_entry {
	unsigned char hash[MEMBERCACHE_HASH];
	int64_t expires_ms; /* 0 = empty */
	int32_t max_peers;
	uint32_t pad;
	char member_id[MEMBERCACHE_ID_MAX];
	char display_name[MEMBERCACHE_NAME_MAX];
};
_Static_assert(sizeof(struct membercache_entry) == 224, "entry layout");

struct membercache_file {
	struct shmfile_header h;
	unsigned char key[crypto_generichash_KEYBYTES];
	_Alignas(64) pthread_mutex_t mu;
	uint32_t drops; /* drops so far (a put after one is void) */
	_Alignas(64) struct membercache_entry e[MEMBERCACHE_SETS][MEMBERCACHE_WAYS];
};

struct membercache {
	struct membercache_file *f;
};

static void membercache_init(void *map, void *arg)
{
	(void)arg;
	struct membercache_file *f = map;
	randombytes_buf(f->key, sizeof f->key);
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&f->mu, &a);
	pthread_mutexattr_destroy(&a);
}

int membercache_open(const char *runtime_dir, struct membercache **out, char *err, size_t errlen)
{
	*out = NULL;
	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium failed to initialise");
		return -1;
	}
	struct membercache *c = calloc(1, sizeof *c);
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	c->f = shmfile_map(runtime_dir, MEMBERCACHE_FILE, sizeof *c->f, MEMBERCACHE_MAGIC, MEMBERCACHE_VERSION,
			   SHMFILE_CREATE, membercache_init, NULL, err, errlen);
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

/* 0 ok, -1 when the pair cannot be a key (too long): never cached then */
static int membercache_hash(const struct membercache *c, const char *mesh_id, const char *pubkey,
			    unsigned char out[MEMBERCACHE_HASH])
{
	char buf[MEMBERCACHE_KEY_MAX];
	size_t m = strlen(mesh_id), k = strlen(pubkey);
	if (m + 1 + k > sizeof buf)
		return -1;
	memcpy(buf, mesh_id, m);
	buf[m] = 0;
	for (size_t i = 0; i < k; i++) /* hex keys are stored lowercase */
		buf[m + 1 + i] = (char)(pubkey[i] >= 'A' && pubkey[i] <= 'F' ? pubkey[i] + 32 : pubkey[i]);
	crypto_generichash(out, MEMBERCACHE_HASH, (const unsigned char *)buf, m + 1 + k, c->f->key,
			   sizeof c->f->key);
	return 0;
}

static uint32_t membercache_set_index(const unsigned char h[MEMBERCACHE_HASH])
{
	uint32_t x;
	memcpy(&x, h, sizeof x);
	return x & (MEMBERCACHE_SETS - 1);
}

/* 0 locked, -1 not (then the caller acts as on a miss) */
static int membercache_lock(struct membercache *c)
{
	int rc = pthread_mutex_lock(&c->f->mu);
	if (rc == EOWNERDEAD) {
		/* a process died inside: an entry is at worst torn, which the
		 * hello statement's re-check turns into a miss */
		pthread_mutex_consistent(&c->f->mu);
		return 0;
	}
	if (rc != 0) {
		log_warn("member cache: cannot lock", "error", strerror(rc));
		return -1;
	}
	return 0;
}

int membercache_get(struct membercache *c, const char *mesh_id, const char *pubkey, int64_t now_ms,
		    struct member_cached *out, uint32_t *stamp)
{
	unsigned char h[MEMBERCACHE_HASH];
	if (stamp)
		*stamp = UINT32_MAX; /* no cache: a put with it is void anyway */
	if (!c || membercache_hash(c, mesh_id, pubkey, h) != 0 || membercache_lock(c) != 0)
		return 0;
	struct membercache_entry *set = c->f->e[membercache_set_index(h)];
	if (stamp)
		*stamp = c->f->drops;
	int hit = 0;
	for (unsigned w = 0; w < MEMBERCACHE_WAYS && !hit; w++) {
		struct membercache_entry *e = &set[w];
		if (e->expires_ms > now_ms && memcmp(e->hash, h, sizeof h) == 0) {
			hit = 1;
			memcpy(out->member_id, e->member_id, sizeof out->member_id);
			out->member_id[sizeof out->member_id - 1] = 0; /* the file is not trusted to hold a string */
			memcpy(out->display_name, e->display_name, sizeof out->display_name);
			out->display_name[sizeof out->display_name - 1] = 0;
			out->max_peers = e->max_peers;
		}
	}
	pthread_mutex_unlock(&c->f->mu);
	return hit;
}

void membercache_put(struct membercache *c, const char *mesh_id, const char *pubkey, const struct member_cached *v,
		     int64_t now_ms, int64_t ttl_ms, uint32_t stamp)
{
	unsigned char h[MEMBERCACHE_HASH];
	if (!c || ttl_ms <= 0 || strnlen(v->member_id, MEMBERCACHE_ID_MAX) >= MEMBERCACHE_ID_MAX ||
	    strnlen(v->display_name, MEMBERCACHE_NAME_MAX) >= MEMBERCACHE_NAME_MAX ||
	    membercache_hash(c, mesh_id, pubkey, h) != 0 || membercache_lock(c) != 0)
		return;
	if (c->f->drops != stamp) {
		pthread_mutex_unlock(&c->f->mu);
		return;
	}
	struct membercache_entry *set = c->f->e[membercache_set_index(h)], *victim = NULL;
	for (unsigned w = 0; w < MEMBERCACHE_WAYS; w++) {
		struct membercache_entry *e = &set[w];
		if (memcmp(e->hash, h, sizeof h) == 0) { /* already there: renew it */
			victim = e;
			break;
		}
		if (!victim || e->expires_ms < victim->expires_ms)
			victim = e; /* empty (0) and expired entries sort first */
	}
	memcpy(victim->hash, h, sizeof h);
	victim->expires_ms = now_ms + ttl_ms;
	victim->max_peers = v->max_peers;
	memset(victim->member_id, 0, sizeof victim->member_id);
	memcpy(victim->member_id, v->member_id, strlen(v->member_id));
	memset(victim->display_name, 0, sizeof victim->display_name);
	memcpy(victim->display_name, v->display_name, strlen(v->display_name));
	pthread_mutex_unlock(&c->f->mu);
}

int membercache_drop(struct membercache *c, const char *mesh_id, const char *pubkey)
{
	unsigned char h[MEMBERCACHE_HASH];
	if (!c || membercache_hash(c, mesh_id, pubkey, h) != 0 || membercache_lock(c) != 0)
		return 0;
	struct membercache_entry *set = c->f->e[membercache_set_index(h)];
	int dropped = 0;
	c->f->drops++;
	for (unsigned w = 0; w < MEMBERCACHE_WAYS; w++)
		if (memcmp(set[w].hash, h, sizeof h) == 0) {
			dropped |= set[w].expires_ms != 0;
			memset(&set[w], 0, sizeof set[w]);
		}
	pthread_mutex_unlock(&c->f->mu);
	return dropped;
}

int membercache_drop_member(struct membercache *c, const char *member_id)
{
	size_t n = member_id ? strlen(member_id) : 0;
	if (!c || n == 0 || n >= MEMBERCACHE_ID_MAX || membercache_lock(c) != 0)
		return 0;
	int dropped = 0;
	c->f->drops++;
	for (unsigned s = 0; s < MEMBERCACHE_SETS; s++)
		for (unsigned w = 0; w < MEMBERCACHE_WAYS; w++) {
			struct membercache_entry *e = &c->f->e[s][w];
			if (e->expires_ms != 0 && strncmp(e->member_id, member_id, MEMBERCACHE_ID_MAX) == 0) {
				memset(e, 0, sizeof *e);
				dropped++;
			}
		}
	pthread_mutex_unlock(&c->f->mu);
	return dropped;
}
