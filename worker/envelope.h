/* envelope — the message between workers, one SOCK_SEQPACKET message each:
 * a fixed header, then len payload bytes (docs/design.md "Worker <-> worker").
 * Pure: no sockets, no database; fuzzed by fuzz/fuzz_envelope.c. */
#ifndef WORKER_ENVELOPE_H
#define WORKER_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

/* UDS_REPLACE: a newer connection of the same member took over this
 * session (docs/protocol.md §11): close 1000 session_replaced */
/* UDS_CLOSE: a moderator closed this connection (docs/protocol.md §12.4):
 * its payload is a struct uds_status read as {close code, reason index of
 * moderation.c's table} */
/* UDS_PUSH: a direct message handed to the recipient's worker with its wake
 * (issue 23, migration 0019): a struct uds_push, then the push frame's JSON
 * text (docs/design.md "A message's CPU") */
enum uds_type { UDS_WAKE = 1, UDS_STATUS = 2, UDS_REPLACE = 3, UDS_CLOSE = 4, UDS_PUSH = 5 };
/* the reason index of a revocation's close (meshctl member revoke, issue 22:
 * cli/liveclose.c sends it; moderation.c's table names it "revoked") */
#define UDS_CLOSE_REASON_REVOKED 5
/* the reason index of a host's self-fence (meshbroker-relay, issue 24: its
 * lease is about to run out): close 1001 "host_fenced" */
#define UDS_CLOSE_REASON_FENCED 6
/* the reason index of an archived mesh's close (0012's trigger, meshctl mesh
 * archive): close 4002 "mesh_archived" */
#define UDS_CLOSE_REASON_ARCHIVED 7

struct uds_status {
	int32_t status, source;
};

struct uds_push {
	int64_t delivery_id; /* the row, claimed for the recipient's connection */
	int64_t created_ms;  /* the message's createdAt, ms since the epoch (0: unknown) */
};
#define UDS_PUSH_JSON_MAX (65535 - sizeof(struct uds_push)) /* the header's len is 16 bits */

struct uds_env {
	uint16_t type;
	uint16_t len; /* payload bytes after the header */
	uint32_t src_slot, src_gen;
	uint32_t dst_slot, dst_gen;
	uint32_t reserved;
};
_Static_assert(sizeof(struct uds_env) == 24, "envelope header is 24 bytes");

/* Read a received message of n bytes.  0 when it is a well-formed envelope
 * for (my_slot, my_gen): *type is UDS_WAKE or UDS_REPLACE, or UDS_STATUS
 * (or UDS_CLOSE: code and reason) with *status and *source set.  -1 when it is to be ignored: short, for an earlier owner of
 * the slot, an unknown type, or a payload of the wrong size. */
int uds_parse(const unsigned char *buf, size_t n, uint32_t my_slot, uint32_t my_gen, int *type, int32_t *status,
	      int32_t *source);

/* Read a received UDS_PUSH of n bytes for (my_slot, my_gen): 0 with *push
 * and the JSON text (*json, *json_len bytes, not NUL-terminated, inside buf)
 * set; -1 when it is not one, is for an earlier owner of the slot, its len
 * disagrees with n, its JSON is empty or the delivery id not positive. */
int uds_parse_push(const unsigned char *buf, size_t n, uint32_t my_slot, uint32_t my_gen, struct uds_push *push,
		   const char **json, size_t *json_len);

#endif
