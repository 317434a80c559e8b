/* liveclose — see liveclose.h: the broker's presence table, opened only when
 * it exists, and shm/slotclose.c's envelopes. */
#include "liveclose.h"

#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>

#include "common/config.h"
#include "shm/membercache.h"
#include "shm/shm.h"
#include "shm/slotclose.h"
#include "worker/envelope.h"

#define LIVECLOSE_CODE 4002 /* worker/moderation.h MOD_CLOSE_BANNED */

/* the broker's table on this host, when there is one: 1 mapped, 0 none, -1 */
static int liveclose_open(struct shm **s, char *err, size_t errlen)
{
	struct config cfg;
	if (config_load(&cfg, 0, err, errlen) != 0)
		return -1;
	char path[PATH_MAX];
	struct stat st;
	snprintf(path, sizeof path, "%s/presence.shm", cfg.runtime_dir);
	if (stat(path, &st) != 0)
		return 0; /* no broker on this host (shm_open_table would make one) */
	return shm_open_table(cfg.runtime_dir, (uint32_t)cfg.presence_slots, 0, s, err, errlen) != 0 ? -1 : 1;
}

int liveclose_mesh(const char *mesh_id, char *err, size_t errlen)
{
	struct shm *s;
	int rc = liveclose_open(&s, err, errlen);
	if (rc <= 0)
		return rc;
	int told = slotclose_mesh(s, mesh_id, LIVECLOSE_CODE, UDS_CLOSE_REASON_ARCHIVED);
	shm_close(s);
	return told;
}

int liveclose_member(const char *member_id, char *err, size_t errlen)
{
	struct config cfg;
	if (config_load(&cfg, 0, err, errlen) != 0)
		return -1;
	char path[PATH_MAX];
	struct stat st;
	snprintf(path, sizeof path, "%s/membercache.shm", cfg.runtime_dir);
	struct membercache *mc = NULL;
	if (stat(path, &st) == 0 && membercache_open(cfg.runtime_dir, &mc, err, errlen) == 0) {
		/* its next hello is looked up (and refused), not taken from the
		 * cache (whose re-check would refuse it anyway: shm/membercache.h) */
		membercache_drop_member(mc, member_id);
		membercache_close(mc);
	}
	snprintf(path, sizeof path, "%s/presence.shm", cfg.runtime_dir);
	if (stat(path, &st) != 0)
		return 0; /* no broker on this host (shm_open_table would make one) */
	struct shm *s;
	if (shm_open_table(cfg.runtime_dir, (uint32_t)cfg.presence_slots, 0, &s, err, errlen) != 0)
		return -1;
	int told = slotclose_member(s, member_id, LIVECLOSE_CODE, UDS_CLOSE_REASON_REVOKED);
	shm_close(s);
	return told;
}
