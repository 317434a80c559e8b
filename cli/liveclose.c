/* liveclose — see liveclose.h.  One blocking SOCK_SEQPACKET send per live
 * slot of the member, as worker/uds.c's uds_request_status does for an
 * HTTP worker; the table is only read (meshctl owns no slot). */
#include "liveclose.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/config.h"
#include "shm/shm.h"
#include "worker/envelope.h"

#define LIVECLOSE_CODE 4002 /* worker/moderation.h MOD_CLOSE_BANNED */

struct walk {
	struct shm *s;
	const char *member_id;
	int told;
};

static int tell(const struct presence_view *v, void *arg)
{
	struct walk *k = arg;
	if (strcmp(v->info.member_id, k->member_id) != 0)
		return 0;
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	presence_sock_path(k->s, v->slot, v->gen, a.sun_path, sizeof a.sun_path);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	struct {
		struct uds_env e;
		struct uds_status st;
	} pkt = {.e = {.type = UDS_CLOSE, .len = sizeof(struct uds_status), .dst_slot = v->slot, .dst_gen = v->gen},
		 .st = {.status = LIVECLOSE_CODE, .source = UDS_CLOSE_REASON_REVOKED}};
	if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 && send(fd, &pkt, sizeof pkt, MSG_NOSIGNAL) == sizeof pkt)
		k->told++;
	close(fd);
	return 0;
}

int liveclose_member(const char *member_id, char *err, size_t errlen)
{
	struct config cfg;
	if (config_load(&cfg, 0, err, errlen) != 0)
		return -1;
	char path[PATH_MAX];
	struct stat st;
	snprintf(path, sizeof path, "%s/presence.shm", cfg.runtime_dir);
	if (stat(path, &st) != 0)
		return 0; /* no broker on this host (shm_open_table would make one) */
	struct shm *s;
	if (shm_open_table(cfg.runtime_dir, (uint32_t)cfg.presence_slots, 0, &s, err, errlen) != 0)
		return -1;
	struct walk k = {.s = s, .member_id = member_id};
	presence_foreach(s, NULL, tell, &k);
	shm_close(s);
	return k.told;
}
