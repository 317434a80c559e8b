/* envelope — reading the worker-to-worker envelope (see envelope.h) out of a
 * received message: a pure function of the bytes, apart from uds.c's sockets
 * so that it can be unit-tested and fuzzed on its own. */
#include <string.h>

#include "worker/envelope.h"

int uds_parse(const unsigned char *buf, size_t n, uint32_t my_slot, uint32_t my_gen, int *type, int32_t *status,
	      int32_t *source)
{
	struct uds_env e;
	if (n < sizeof e)
		return -1;
	memcpy(&e, buf, sizeof e);
	if (e.dst_slot != my_slot || e.dst_gen != my_gen)
		return -1; /* meant for an earlier owner of this slot */
	if (e.type == UDS_WAKE || e.type == UDS_REPLACE) {
		*type = e.type;
		return 0;
	}
	if ((e.type == UDS_STATUS || e.type == UDS_CLOSE) && e.len == sizeof(struct uds_status) &&
	    n == sizeof e + sizeof(struct uds_status)) {
		struct uds_status st;
		memcpy(&st, buf + sizeof e, sizeof st);
		*type = e.type;
		*status = st.status;
		*source = st.source;
		return 0;
	}
	return -1;
}

int uds_parse_push(const unsigned char *buf, size_t n, uint32_t my_slot, uint32_t my_gen, struct uds_push *push,
		   const char **json, size_t *json_len)
{
	struct uds_env e;
	if (n < sizeof e + sizeof *push)
		return -1;
	memcpy(&e, buf, sizeof e);
	if (e.type != UDS_PUSH || e.dst_slot != my_slot || e.dst_gen != my_gen || (size_t)e.len != n - sizeof e ||
	    e.len <= sizeof *push)
		return -1;
	memcpy(push, buf + sizeof e, sizeof *push);
	if (push->delivery_id <= 0)
		return -1;
	*json = (const char *)buf + sizeof e + sizeof *push;
	*json_len = e.len - sizeof *push;
	return 0;
}
