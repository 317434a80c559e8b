/* wake — see wake.h. */
#include "worker/wake.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "worker/uds.h"

struct wake_ctx {
	struct worker *w;
	const char *const *ids; /* recipient member ids, sorted */
	int n;
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int wake_cb(const struct presence_view *v, void *arg)
{
	struct wake_ctx *wc = arg;
	const char *key = v->info.member_id;
	if (bsearch(&key, wc->ids, (size_t)wc->n, sizeof *wc->ids, cmp_str))
		uds_wake(wc->w, v->slot, v->gen);
	return 0;
}

void wake_members(struct worker *w, const char *mesh_id, const char *const *member_ids, int n)
{
	if (n == 0 || !w->shm)
		return;
	const char **ids = malloc((size_t)n * sizeof *ids);
	if (!ids)
		log_fatal("out of memory");
	memcpy(ids, member_ids, (size_t)n * sizeof *ids);
	qsort(ids, (size_t)n, sizeof *ids, cmp_str);
	struct wake_ctx wc = {w, ids, n};
	presence_foreach(w->shm, mesh_id, wake_cb, &wc);
	free(ids);
}
