/* ring — see ring.h. */
#include "worker/ring.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "worker/envelope.h"

struct ring_id {
	const char *id;
	int idx;
};

struct ring_ctx {
	int by_presence;     /* match the presence id, not the member id */
	struct ring_id *ids; /* sorted by id */
	int n;
	unsigned char *found;
	void (*fn)(const struct presence_view *v, void *arg);
	void *arg;
};

static int cmp_id(const void *a, const void *b)
{
	return strcmp(((const struct ring_id *)a)->id, ((const struct ring_id *)b)->id);
}

static int ring_cb(const struct presence_view *v, void *arg)
{
	struct ring_ctx *rc = arg;
	struct ring_id key = {rc->by_presence ? v->info.presence_id : v->info.member_id, 0};
	struct ring_id *hit = bsearch(&key, rc->ids, (size_t)rc->n, sizeof *rc->ids, cmp_id);
	if (!hit)
		return 0;
	if (rc->found) /* every equal id: duplicates sit next to the hit */
		for (struct ring_id *e = hit; e >= rc->ids && strcmp(e->id, key.id) == 0; e--)
			rc->found[e->idx] = 1;
	if (rc->found)
		for (struct ring_id *e = hit + 1; e < rc->ids + rc->n && strcmp(e->id, key.id) == 0; e++)
			rc->found[e->idx] = 1;
	rc->fn(v, rc->arg);
	return 0;
}

static void ring_match(struct shm *s, const char *mesh_id, int by_presence, const char *const *ids, int n,
                       unsigned char *found, void (*fn)(const struct presence_view *v, void *arg), void *arg)
{
	if (n <= 0 || !s)
		return;
	struct ring_id *sorted = malloc((size_t)n * sizeof *sorted);
	if (!sorted)
		log_fatal("out of memory");
	for (int i = 0; i < n; i++)
		sorted[i] = (struct ring_id){ids[i], i};
	qsort(sorted, (size_t)n, sizeof *sorted, cmp_id);
	struct ring_ctx rc = {by_presence, sorted, n, found, fn, arg};
	presence_foreach(s, mesh_id, ring_cb, &rc);
	free(sorted);
}

void ring_members(struct shm *s, const char *mesh_id, const char *const *ids, int n, unsigned char *found,
                  void (*fn)(const struct presence_view *v, void *arg), void *arg)
{
	ring_match(s, mesh_id, 0, ids, n, found, fn, arg);
}

void ring_presences(struct shm *s, const char *mesh_id, const char *const *ids, int n,
                    void (*fn)(const struct presence_view *v, void *arg), void *arg)
{
	ring_match(s, mesh_id, 1, ids, n, NULL, fn, arg);
}

static int ring_send(struct shm *s, uint32_t slot, uint32_t gen, const void *pkt, size_t len)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	presence_sock_path(s, slot, gen, a.sun_path, sizeof a.sun_path);
	if (!a.sun_path[0])
		return -1;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
		 send(fd, pkt, len, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)len;
	close(fd);
	return ok ? 0 : -1;
}

int ring_wake_slot(struct shm *s, uint32_t slot, uint32_t gen)
{
	struct uds_env e = {.type = UDS_WAKE, .src_slot = UINT32_MAX, .dst_slot = slot, .dst_gen = gen};
	return ring_send(s, slot, gen, &e, sizeof e);
}

int ring_close_slot(struct shm *s, uint32_t slot, uint32_t gen, int32_t code, int32_t reason)
{
	struct {
		struct uds_env e;
		struct uds_status st;
	} pkt = {.e = {.type = UDS_CLOSE, .len = sizeof(struct uds_status), .src_slot = UINT32_MAX, .dst_slot = slot,
		       .dst_gen = gen},
		 .st = {.status = code, .source = reason}};
	return ring_send(s, slot, gen, &pkt, sizeof pkt);
}

int ring_status_slot(struct shm *s, uint32_t slot, uint32_t gen, int32_t status, int32_t source)
{
	struct {
		struct uds_env e;
		struct uds_status st;
	} pkt = {.e = {.type = UDS_STATUS,
	               .len = sizeof(struct uds_status),
	               .src_slot = UINT32_MAX,
	               .dst_slot = slot,
	               .dst_gen = gen},
	         .st = {.status = status, .source = source}};
	return ring_send(s, slot, gen, &pkt, sizeof pkt);
}

int ring_replace_slot(struct shm *s, uint32_t slot, uint32_t gen)
{
	struct uds_env e = {.type = UDS_REPLACE, .src_slot = UINT32_MAX, .dst_slot = slot, .dst_gen = gen};
	return ring_send(s, slot, gen, &e, sizeof e);
}
