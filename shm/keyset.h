/* keyset — what the two member caches share (shm/negcache.c, the negative
 * one; shm/membercache.c, the positive one): a small shared file of sets of
 * entries, each entry named by a keyed BLAKE2b of "meshId\0pubkey" (the key
 * lowercase), the set picked by the hash, every access under one robust
 * process-shared mutex.  Each cache's file begins with a struct keyset_head
 * and each of its entries with a struct keyset_entry; what an entry holds
 * beyond that, and the drop counts that void a put, are the cache's own. */
#ifndef SHM_KEYSET_H
#define SHM_KEYSET_H

#include <pthread.h>
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>

#include "shm/shmfile.h"

#define KEYSET_HASH 16u

struct keyset_head {
	struct shmfile_header h;
	unsigned char key[crypto_generichash_KEYBYTES]; /* random, made with the file */
	_Alignas(64) pthread_mutex_t mu;
};

struct keyset_entry {
	unsigned char hash[KEYSET_HASH];
	int64_t expires_ms; /* 0 = empty */
};

/* Map <dir>/<name> of `size` bytes (a struct that begins with a struct
 * keyset_head), creating it when missing or replacing one of another magic,
 * version or size (its content is only a cache): a fresh file gets its
 * random key and its mutex.  The mapping, or NULL with err. */
void *keyset_map(const char *dir, const char *name, size_t size, uint64_t magic, uint32_t version, char *err,
		 size_t errlen);

/* The hash naming (mesh_id, pubkey); -1 when the pair is too long to be a
 * key (never cached then). */
int keyset_hash(const struct keyset_head *k, const char *mesh_id, const char *pubkey,
		unsigned char out[KEYSET_HASH]);
/* The set of hash h among `sets` (a power of two). */
uint32_t keyset_set(const unsigned char h[KEYSET_HASH], uint32_t sets);

/* 0 locked; -1 not (logged, naming `what`): the caller acts as on a miss.
 * A holder that died inside leaves at worst a torn entry, which each cache
 * treats as a miss. */
int keyset_lock(struct keyset_head *k, const char *what);
void keyset_unlock(struct keyset_head *k);

/* In a set of `ways` entries of entry_size bytes, each beginning with a
 * struct keyset_entry: the entry to write h into (h's own, to renew it; else
 * an empty or expired one, else the one that expires first), with its hash
 * and expiry set.  Under the lock. */
struct keyset_entry *keyset_put(void *set, size_t entry_size, unsigned ways, const unsigned char h[KEYSET_HASH],
				int64_t expires_ms);
/* Find h's live entry at now_ms, or NULL.  Under the lock. */
struct keyset_entry *keyset_find(void *set, size_t entry_size, unsigned ways, const unsigned char h[KEYSET_HASH],
				 int64_t now_ms);
/* Wipe h's entries: 1 when one was live.  Under the lock. */
int keyset_wipe(void *set, size_t entry_size, unsigned ways, const unsigned char h[KEYSET_HASH]);

#endif
