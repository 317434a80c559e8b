/* membercache — the positive member cache (issue 23): a hello whose key was
 * found to be a live member of the mesh it names is remembered, with its
 * member id and the mesh's max_peers, in a shared file
 * <runtime>/membercache.shm, so that the same member's next hellos skip the
 * membership lookup.  Fixed size (sets x ways of a keyed hash of meshId and
 * pubkey, as shm/negcache.h); a full set forgets the entry that expires
 * first.  It never admits anyone on its own: a hit only chooses the path on
 * which the one hello statement (mesh.hello_join, migration 0013) re-checks
 * the membership in the transaction that writes the presence row, before the
 * hello_ack; a failed re-check drops the entry and asks the database as a
 * miss would.  Revocation drops the member's entries (meshctl member revoke,
 * a moderator's ban); the re-check covers every other way (SQL, another
 * host, a file written by a compromised worker). */
#ifndef SHM_MEMBERCACHE_H
#define SHM_MEMBERCACHE_H

#include <stddef.h>
#include <stdint.h>

#define MEMBERCACHE_SETS 512u /* a power of two */
#define MEMBERCACHE_WAYS 8u
#define MEMBERCACHE_ID_MAX 64    /* a member id, NUL included (SHM_MEMBER_ID_MAX) */
#define MEMBERCACHE_NAME_MAX 128 /* a display name, NUL included (SHM_NAME_MAX); longer ones are not cached */

struct membercache;

/* what a hello needs from its lookup besides "a live member" */
struct member_cached {
	char member_id[MEMBERCACHE_ID_MAX];
	char display_name[MEMBERCACHE_NAME_MAX]; /* the member's (its slot shows it before the re-check answers) */
	int32_t max_peers;                       /* the mesh's, 0 = none */
};

/* Map <runtime_dir>/membercache.shm, creating it when missing (or replacing
 * one of another layout: it is only a cache).  0 ok, -1 with err. */
int membercache_open(const char *runtime_dir, struct membercache **out, char *err, size_t errlen);
void membercache_close(struct membercache *c);

/* 1 with *out filled when (mesh_id, pubkey) is remembered and its entry has
 * not expired at now_ms (CLOCK_MONOTONIC ms), else 0.  pubkey in either case.
 * *stamp (may be NULL) gets the cache's drop count, for membercache_put. */
int membercache_get(struct membercache *c, const char *mesh_id, const char *pubkey, int64_t now_ms,
		    struct member_cached *out, uint32_t *stamp);
/* Remember (mesh_id, pubkey) -> *v until now_ms + ttl_ms.  stamp is what
 * membercache_get gave before the database was asked: when any drop happened
 * since (a revocation may have come after the lookup read the row), nothing
 * is remembered. */
void membercache_put(struct membercache *c, const char *mesh_id, const char *pubkey, const struct member_cached *v,
		     int64_t now_ms, int64_t ttl_ms, uint32_t stamp);
/* Forget (mesh_id, pubkey).  1 when an entry was dropped. */
int membercache_drop(struct membercache *c, const char *mesh_id, const char *pubkey);
/* Forget every entry of member_id (a revocation or ban, which knows the
 * member, not its key).  The number dropped. */
int membercache_drop_member(struct membercache *c, const char *member_id);

#endif
