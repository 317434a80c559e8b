/* shm/bucket — token buckets in the shared table (see bucket.h): a set-
 * associative array in the header, keyed by a SipHash of the bucket's name,
 * least recently refilled way evicted, under the header's mutex. */
#include "shm/bucket.h"

#include <math.h>
#include <sodium.h>
#include <string.h>

#include "shm/layout.h"

int bucket_take(struct shm *s, const char *key, double burst, double per_min, int64_t now_ms)
{
	unsigned char hb[crypto_shorthash_BYTES];
	uint64_t h;
	crypto_shorthash(hb, (const unsigned char *)key, strlen(key), s->hdr->bucket_key);
	memcpy(&h, hb, sizeof h);
	if (!(burst > 0))
		return 0;
	if (!(per_min >= 0))
		per_min = 0;

	table_lock(s);
	struct bucket_entry *set = s->hdr->buckets[h & (BUCKET_SETS - 1)];
	struct bucket_entry *e = NULL, *victim = NULL;
	for (unsigned w = 0; w < BUCKET_WAYS; w++) {
		if (set[w].used && set[w].hash == h) {
			e = &set[w];
			break;
		}
		if (!victim || (victim->used && (!set[w].used || set[w].last_ms < victim->last_ms)))
			victim = &set[w];
	}
	if (!e) {
		e = victim;
		e->hash = h;
		e->tokens = burst;
		e->last_ms = now_ms;
		e->used = 1;
	}
	if (now_ms > e->last_ms) {
		e->tokens += (double)(now_ms - e->last_ms) * per_min / 60000.0;
		e->last_ms = now_ms;
	}
	/* also repairs an entry torn by a worker that died holding the mutex */
	if (!isfinite(e->tokens) || e->tokens > burst)
		e->tokens = burst;
	if (e->tokens < 0)
		e->tokens = 0;
	int ok = e->tokens >= 1.0;
	if (ok)
		e->tokens -= 1.0;
	table_unlock(s);
	return ok;
}
