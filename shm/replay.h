/* shm/replay — the hello replay cache in the shared table: a signature is
 * accepted once while it could pass the skew check (hello check 5,
 * docs/protocol.md). */
#ifndef SHM_REPLAY_H
#define SHM_REPLAY_H

#include <stddef.h>
#include <stdint.h>

struct shm;

/* Remember sig (any bytes) until expires_ms.  1 = newly remembered,
 * 0 = already present and unexpired (a replay), -1 = its set holds only live
 * entries: nothing is evicted (an evicted signature could be replayed), so
 * the caller refuses the hello as over capacity (fails closed). */
int replay_check_and_remember(struct shm *s, const unsigned char *sig, size_t len, int64_t now_ms,
			      int64_t expires_ms);

#endif
