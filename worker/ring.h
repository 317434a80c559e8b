/* ring — the part of the worker-to-worker doorbell that both a worker and
 * meshbroker-relay use: find the live slots of some members of a mesh in
 * the shared presence table, and send one WAKE envelope to a slot's socket
 * from a process that has no slot of its own (the relay).  wake.c and
 * uds.c build on it; so does relay/relay.c. */
#ifndef WORKER_RING_H
#define WORKER_RING_H

#include <stdint.h>

#include "shm/shm.h"

/* Call fn for every live slot of mesh_id whose member is one of ids[0..n)
 * (any order, duplicates allowed): one pass over the mesh's slots.  When
 * found is not NULL, found[i] is set to 1 for each ids[i] that has a live
 * slot here (left alone otherwise). */
void ring_members(struct shm *s, const char *mesh_id, const char *const *ids, int n, unsigned char *found,
		  void (*fn)(const struct presence_view *v, void *arg), void *arg);

/* The same by presence id: fn for every live slot of mesh_id whose
 * presence id is one of ids[0..n) (a doorbell that names connections). */
void ring_presences(struct shm *s, const char *mesh_id, const char *const *ids, int n,
                    void (*fn)(const struct presence_view *v, void *arg), void *arg);

/* One WAKE envelope to the worker of (slot, gen), from outside any slot:
 * a fresh non-blocking SOCK_SEQPACKET socket, one packet, closed.  A wake is
 * idempotent, so a full or gone worker just misses it.  0 sent, -1 not. */
int ring_wake_slot(struct shm *s, uint32_t slot, uint32_t gen);
/* The same with a CLOSE envelope (code, reason index of moderation.c's
 * table): the relay's self-fence. */
int ring_close_slot(struct shm *s, uint32_t slot, uint32_t gen, int32_t code, int32_t reason);
/* A STATUS envelope (status, source: shm/presence.h), as a set_status of
 * scope member or a hook on another host asks. */
int ring_status_slot(struct shm *s, uint32_t slot, uint32_t gen, int32_t status, int32_t source);
/* A REPLACE envelope: a newer hello of the session on another host. */
int ring_replace_slot(struct shm *s, uint32_t slot, uint32_t gen);

#endif
