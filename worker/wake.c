/* wake — see wake.h. */
#include "worker/wake.h"

#include <stdlib.h>

#include "common/log.h"
#include "worker/hosts.h"
#include "worker/ring.h"
#include "worker/uds.h"

static void wake_cb(const struct presence_view *v, void *arg)
{
	uds_wake(arg, v->slot, v->gen);
}

void wake_members(struct worker *w, const char *mesh_id, const char *const *member_ids, int n)
{
	if (n == 0 || !w->shm)
		return;
	if (!hosts_id()) { /* one host: exactly the local doorbells */
		ring_members(w->shm, mesh_id, member_ids, n, NULL, wake_cb, w);
		return;
	}
	/* more than one host (HOST_ID): the members without a live slot here
	 * go to this host's relay, which rings their hosts */
	unsigned char *found = calloc((size_t)n, 1);
	if (!found)
		log_fatal("out of memory");
	ring_members(w->shm, mesh_id, member_ids, n, found, wake_cb, w);
	hosts_hand_remote(w->cfg.runtime_dir, mesh_id, member_ids, found, n);
	free(found);
}
