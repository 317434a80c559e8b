/* keyset — the part the two member caches share (see keyset.h). */
#include "shm/keyset.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"

#define KEYSET_KEY_MAX 200 /* meshId (< 64) + NUL + pubkey (64) */

static void keyset_init(void *map, void *arg)
{
	(void)arg;
	struct keyset_head *k = map;
	randombytes_buf(k->key, sizeof k->key);
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&k->mu, &a);
	pthread_mutexattr_destroy(&a);
}

void *keyset_map(const char *dir, const char *name, size_t size, uint64_t magic, uint32_t version, char *err,
		 size_t errlen)
{
	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium failed to initialise");
		return NULL;
	}
	return shmfile_map(dir, name, size, magic, version, SHMFILE_CREATE, keyset_init, NULL, err, errlen);
}

int keyset_hash(const struct keyset_head *k, const char *mesh_id, const char *pubkey,
		unsigned char out[KEYSET_HASH])
{
	char buf[KEYSET_KEY_MAX];
	size_t m = strlen(mesh_id), n = strlen(pubkey);
	if (m + 1 + n > sizeof buf)
		return -1;
	memcpy(buf, mesh_id, m);
	buf[m] = 0;
	for (size_t i = 0; i < n; i++) /* hex keys are stored lowercase */
		buf[m + 1 + i] = (char)(pubkey[i] >= 'A' && pubkey[i] <= 'F' ? pubkey[i] + 32 : pubkey[i]);
	crypto_generichash(out, KEYSET_HASH, (const unsigned char *)buf, m + 1 + n, k->key, sizeof k->key);
	return 0;
}

uint32_t keyset_set(const unsigned char h[KEYSET_HASH], uint32_t sets)
{
	uint32_t x;
	memcpy(&x, h, sizeof x);
	return x & (sets - 1);
}

int keyset_lock(struct keyset_head *k, const char *what)
{
	int rc = pthread_mutex_lock(&k->mu);
	if (rc == EOWNERDEAD) {
		pthread_mutex_consistent(&k->mu);
		return 0;
	}
	if (rc != 0) {
		log_warn(what, "error", strerror(rc));
		return -1;
	}
	return 0;
}

void keyset_unlock(struct keyset_head *k) { pthread_mutex_unlock(&k->mu); }

static struct keyset_entry *way(void *set, size_t entry_size, unsigned w)
{
	return (struct keyset_entry *)((unsigned char *)set + (size_t)w * entry_size);
}

struct keyset_entry *keyset_put(void *set, size_t entry_size, unsigned ways, const unsigned char h[KEYSET_HASH],
				int64_t expires_ms)
{
	struct keyset_entry *victim = NULL;
	for (unsigned w = 0; w < ways; w++) {
		struct keyset_entry *e = way(set, entry_size, w);
		if (memcmp(e->hash, h, KEYSET_HASH) == 0) { /* already there: renew it */
			victim = e;
			break;
		}
		if (!victim || e->expires_ms < victim->expires_ms)
			victim = e; /* empty (0) and expired entries sort first */
	}
	memcpy(victim->hash, h, KEYSET_HASH);
	victim->expires_ms = expires_ms;
	return victim;
}

struct keyset_entry *keyset_find(void *set, size_t entry_size, unsigned ways, const unsigned char h[KEYSET_HASH],
				 int64_t now_ms)
{
	for (unsigned w = 0; w < ways; w++) {
		struct keyset_entry *e = way(set, entry_size, w);
		if (e->expires_ms > now_ms && memcmp(e->hash, h, KEYSET_HASH) == 0)
			return e;
	}
	return NULL;
}

int keyset_wipe(void *set, size_t entry_size, unsigned ways, const unsigned char h[KEYSET_HASH])
{
	int live = 0;
	for (unsigned w = 0; w < ways; w++) {
		struct keyset_entry *e = way(set, entry_size, w);
		if (memcmp(e->hash, h, KEYSET_HASH) == 0) {
			live |= e->expires_ms != 0;
			memset(e, 0, entry_size);
		}
	}
	return live;
}
