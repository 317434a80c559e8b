/* slotclose — see slotclose.h.  One blocking SOCK_SEQPACKET send per live
 * slot of the member, as worker/uds.c's uds_request_status does for an HTTP
 * worker; the table is only read. */
#include "shm/slotclose.h"

#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "worker/envelope.h"

struct walk {
	struct shm *s;
	const char *member_id;
	int32_t code, reason;
	int told;
};

static int tell(const struct presence_view *v, void *arg)
{
	struct walk *k = arg;
	if (k->member_id && strcmp(v->info.member_id, k->member_id) != 0)
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
	         .st = {.status = k->code, .source = k->reason}};
	if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 && send(fd, &pkt, sizeof pkt, MSG_NOSIGNAL) == sizeof pkt)
		k->told++;
	close(fd);
	return 0;
}

int slotclose_member(struct shm *s, const char *member_id, int32_t code, int32_t reason)
{
	struct walk k = {.s = s, .member_id = member_id, .code = code, .reason = reason};
	presence_foreach(s, NULL, tell, &k);
	return k.told;
}

int slotclose_mesh(struct shm *s, const char *mesh_id, int32_t code, int32_t reason)
{
	struct walk k = {.s = s, .member_id = NULL, .code = code, .reason = reason};
	presence_foreach(s, mesh_id, tell, &k);
	return k.told;
}
