/* negcache — the negative member cache (issue 11): a hello whose key is not
 * a member of the mesh it names is remembered as "not a member" for a short
 * TTL in a shared file <runtime>/negcache.shm, so that the same stranger's
 * next hellos cost no database lookup.  Fixed size (sets x ways of a keyed
 * hash of meshId and pubkey); a full set forgets its oldest entry.  It can
 * only refuse: a missing, unreadable or evicted entry means "ask the
 * database", never "let in".  POST /join drops the entry of the key it adds;
 * a member added another way (meshctl, SQL) waits out the TTL at most. */
#ifndef SHM_NEGCACHE_H
#define SHM_NEGCACHE_H

#include <stddef.h>
#include <stdint.h>

#define NEGCACHE_SETS 512u /* a power of two */
#define NEGCACHE_WAYS 8u

struct negcache;

/* Map <runtime_dir>/negcache.shm, creating it when missing (or replacing one
 * of another layout: its content is only a cache).  0 ok, -1 with err. */
int negcache_open(const char *runtime_dir, struct negcache **out, char *err, size_t errlen);
void negcache_close(struct negcache *c);

/* 1 when (mesh_id, pubkey) is remembered as no member and its entry has not
 * expired at now_ms (a monotonic clock: CLOCK_MONOTONIC is one for every
 * process of the machine), else 0.  pubkey in either case.  *stamp (may be
 * NULL) gets the count of drops in the pair's set, for negcache_put. */
int negcache_hit(struct negcache *c, const char *mesh_id, const char *pubkey, int64_t now_ms, uint32_t *stamp);
/* Remember (mesh_id, pubkey) as no member until now_ms + ttl_ms: an expired
 * entry of its set is reused first, else the one that expires first (the
 * oldest: every entry has the same TTL).  stamp is what negcache_hit gave
 * before the database was asked: when a drop hit the set since (a join may
 * have added this key after the lookup read), nothing is remembered. */
void negcache_put(struct negcache *c, const char *mesh_id, const char *pubkey, int64_t now_ms, int64_t ttl_ms,
		  uint32_t stamp);
/* Forget (mesh_id, pubkey): it just became a member.  1 when an entry was dropped. */
int negcache_drop(struct negcache *c, const char *mesh_id, const char *pubkey);

#endif
