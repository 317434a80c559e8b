/* shm/replay — the hello replay cache in the shared table (see replay.h): a
 * set-associative array of keyed hashes of signatures with their expiry,
 * under the header's mutex; a set full of live entries fails closed. */
#include "shm/replay.h"

#include <sodium.h>
#include <string.h>

#include "shm/layout.h"

int replay_check_and_remember(struct shm *s, const unsigned char *sig, size_t len, int64_t now_ms,
			      int64_t expires_ms)
{
	/* keyed, so that nobody can grind signatures into one set to evict
	 * someone else's entry and replay it */
	unsigned char hb[REPLAY_HASH_BYTES];
	uint64_t h;
	crypto_generichash(hb, sizeof hb, sig, len, s->hdr->replay_key, sizeof s->hdr->replay_key);
	memcpy(&h, hb, sizeof h);

	table_lock(s);
	struct replay_entry *set = s->hdr->replay[h & (REPLAY_SETS - 1)];
	struct replay_entry *victim = NULL;
	for (unsigned w = 0; w < REPLAY_WAYS; w++) {
		struct replay_entry *e = &set[w];
		int expired = e->expires_ms <= now_ms;
		if (!expired && memcmp(e->hash, hb, sizeof hb) == 0) {
			table_unlock(s);
			return 0;
		}
		if (!victim || (victim->expires_ms > now_ms &&
				(expired || e->expires_ms < victim->expires_ms)))
			victim = e;
	}
	if (victim->expires_ms > now_ms) {
		table_unlock(s);
		return -1; /* full of live entries: refuse rather than forget one */
	}
	memcpy(victim->hash, hb, sizeof hb);
	victim->expires_ms = expires_ms;
	table_unlock(s);
	return 1;
}
