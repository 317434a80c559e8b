/* shm/bucket — token buckets in the shared table, shared by all workers
 * (rate limits: hooks, joins, sends). */
#ifndef SHM_BUCKET_H
#define SHM_BUCKET_H

#include <stdint.h>

struct shm;

/* Take one token from the bucket named key (capacity `burst`, refilled
 * continuously at `per_min` tokens a minute).  1 = allowed, 0 = limited. */
int bucket_take(struct shm *s, const char *key, double burst, double per_min, int64_t now_ms);

#endif
