/* wake — ring the doorbell of every live connection of some members of a
 * mesh (their workers then drain the database), from a peer's send or a
 * REST post.  The message itself never travels between workers. */
#ifndef WORKER_WAKE_H
#define WORKER_WAKE_H

#include "worker/worker.h"

/* one pass over the mesh's slots, whatever the number of members */
void wake_members(struct worker *w, const char *mesh_id, const char *const *member_ids, int n);

#endif
