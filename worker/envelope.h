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
enum uds_type { UDS_WAKE = 1, UDS_STATUS = 2, UDS_REPLACE = 3, UDS_CLOSE = 4 };
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

#endif
