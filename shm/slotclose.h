/* slotclose — close one member's live connections from outside the worker
 * that owns them (docs/protocol.md §6, issue 22): for every live slot of the
 * member, a UDS_CLOSE envelope (worker/envelope.h) to the slot's worker
 * socket, which then closes its WebSocket with the code and reason given.
 * For a process that owns no slot (meshctl member revoke); workers use
 * worker/uds.c's queued sends instead. */
#ifndef SHM_SLOTCLOSE_H
#define SHM_SLOTCLOSE_H

#include <stdint.h>

#include "shm/shm.h"

/* how many connections were told */
int slotclose_member(struct shm *s, const char *member_id, int32_t code, int32_t reason);
/* the same for every live slot of a mesh (meshctl mesh archive) */
int slotclose_mesh(struct shm *s, const char *mesh_id, int32_t code, int32_t reason);

#endif
