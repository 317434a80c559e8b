/* negcache — the shared negative member cache (see negcache.h): a keyed
 * BLAKE2b of "meshId\0pubkey" (lowercase) picks a set; entries are guarded by
 * a robust process-shared mutex, as the replay cache of replay.c is. */
#include "shm/negcache.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "shm/shmfile.h"

#define NEGCACHE_FILE "negcache.shm"
#define NEGCACHE_MAGIC 0x31454843474e4d4dULL /* "MMNGCHE1" */
#define NEGCACHE_VERSION 1u
#define NEGCACHE_HASH 16u
#define NEGCACHE_KEY_MAX 200 /* meshId (< 64) + NUL + pubkey (64) */

_Static_assert((NEGCACHE_SETS & (NEGCACHE_SETS - 1)) == 0, "NEGCACHE_SETS is a power of two");

struct negcache_entry {
	unsigned char hash[NEGCACHE_HASH];
	int64_t expires_ms; /* 0 = empty */
};
_Static_assert(sizeof(struct negcache_entry) == 24, "entry layout");

struct negcache_file {
	struct shmfile_header h;
	unsigned char key[crypto_generichash_KEYBYTES];
	_Alignas(64) pthread_mutex_t mu;
	_Alignas(64) struct negcache_entry e[NEGCACHE_SETS][NEGCACHE_WAYS];
	uint32_t drops[NEGCACHE_SETS]; /* per set: drops so far (a put after one is void) */
};

struct negcache {
	struct negcache_file *f;
};

static void negcache_init(void *map, void *arg)
{
	(void)arg;
	struct negcache_file *f = map;
	randombytes_buf(f->key, sizeof f->key);
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&f->mu, &a);
	pthread_mutexattr_destroy(&a);
}

int negcache_open(const char *runtime_dir, struct negcache **out, char *err, size_t errlen)
{
	*out = NULL;
	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium failed to initialise");
		return -1;
	}
	struct negcache *c = calloc(1, sizeof *c);
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	c->f = shmfile_map(runtime_dir, NEGCACHE_FILE, sizeof *c->f, NEGCACHE_MAGIC, NEGCACHE_VERSION,
			   SHMFILE_CREATE, negcache_init, NULL, err, errlen);
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

/* 0 ok, -1 when the pair cannot be a key (too long): never cached then */
static int negcache_hash(const struct negcache *c, const char *mesh_id, const char *pubkey,
			 unsigned char out[NEGCACHE_HASH])
{
	char buf[NEGCACHE_KEY_MAX];
	size_t m = strlen(mesh_id), k = strlen(pubkey);
	if (m + 1 + k > sizeof buf)
		return -1;
	memcpy(buf, mesh_id, m);
	buf[m] = 0;
	for (size_t i = 0; i < k; i++) /* hex keys are stored lowercase */
		buf[m + 1 + i] = (char)(pubkey[i] >= 'A' && pubkey[i] <= 'F' ? pubkey[i] + 32 : pubkey[i]);
	crypto_generichash(out, NEGCACHE_HASH, (const unsigned char *)buf, m + 1 + k, c->f->key, sizeof c->f->key);
	return 0;
}

static uint32_t negcache_set_index(const unsigned char h[NEGCACHE_HASH])
{
	uint32_t x;
	memcpy(&x, h, sizeof x);
	return x & (NEGCACHE_SETS - 1);
}

/* 0 locked, -1 not (then the caller acts as on a miss) */
static int negcache_lock(struct negcache *c)
{
	int rc = pthread_mutex_lock(&c->f->mu);
	if (rc == EOWNERDEAD) {
		/* a process died inside: an entry is at worst torn, which is a
		 * miss (or a false hit on 128 keyed bits: never) */
		pthread_mutex_consistent(&c->f->mu);
		return 0;
	}
	if (rc != 0) {
		log_warn("negative cache: cannot lock", "error", strerror(rc));
		return -1;
	}
	return 0;
}

int negcache_hit(struct negcache *c, const char *mesh_id, const char *pubkey, int64_t now_ms, uint32_t *stamp)
{
	unsigned char h[NEGCACHE_HASH];
	if (stamp)
		*stamp = UINT32_MAX; /* no cache: a put with it is void anyway */
	if (!c || negcache_hash(c, mesh_id, pubkey, h) != 0 || negcache_lock(c) != 0)
		return 0;
	uint32_t si = negcache_set_index(h);
	struct negcache_entry *set = c->f->e[si];
	if (stamp)
		*stamp = c->f->drops[si];
	int hit = 0;
	for (unsigned w = 0; w < NEGCACHE_WAYS && !hit; w++)
		hit = set[w].expires_ms > now_ms && memcmp(set[w].hash, h, sizeof h) == 0;
	pthread_mutex_unlock(&c->f->mu);
	return hit;
}

void negcache_put(struct negcache *c, const char *mesh_id, const char *pubkey, int64_t now_ms, int64_t ttl_ms,
		  uint32_t stamp)
{
	unsigned char h[NEGCACHE_HASH];
	if (!c || ttl_ms <= 0 || negcache_hash(c, mesh_id, pubkey, h) != 0 || negcache_lock(c) != 0)
		return;
	uint32_t si = negcache_set_index(h);
	if (c->f->drops[si] != stamp) {
		pthread_mutex_unlock(&c->f->mu);
		return;
	}
	struct negcache_entry *set = c->f->e[si], *victim = NULL;
	for (unsigned w = 0; w < NEGCACHE_WAYS; w++) {
		struct negcache_entry *e = &set[w];
		if (memcmp(e->hash, h, sizeof h) == 0) { /* already there: renew it */
			victim = e;
			break;
		}
		if (!victim || e->expires_ms < victim->expires_ms)
			victim = e; /* empty (0) and expired entries sort first */
	}
	memcpy(victim->hash, h, sizeof h);
	victim->expires_ms = now_ms + ttl_ms;
	pthread_mutex_unlock(&c->f->mu);
}

int negcache_drop(struct negcache *c, const char *mesh_id, const char *pubkey)
{
	unsigned char h[NEGCACHE_HASH];
	if (!c || negcache_hash(c, mesh_id, pubkey, h) != 0 || negcache_lock(c) != 0)
		return 0;
	uint32_t si = negcache_set_index(h);
	struct negcache_entry *set = c->f->e[si];
	int dropped = 0;
	c->f->drops[si]++;
	for (unsigned w = 0; w < NEGCACHE_WAYS; w++)
		if (memcmp(set[w].hash, h, sizeof h) == 0) {
			dropped |= set[w].expires_ms != 0;
			memset(&set[w], 0, sizeof set[w]);
		}
	pthread_mutex_unlock(&c->f->mu);
	return dropped;
}
