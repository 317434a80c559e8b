/* hosts — more than one broker host on one PostgreSQL cluster (issue 24,
 * docs/design.md "More than one host").  HOST_ID switches it on; unset,
 * nothing here runs and a broker is exactly single-host.
 *
 * A worker hands the recipients that have no live slot on this host to the
 * host's relay (meshbroker-relay) as one datagram on <runtime>/relay.sock,
 * after its transaction committed; the relay rings their hosts with NOTIFY.
 * Both the datagram and the NOTIFY payload are one doorbell line
 *     "w <mesh id> <member id>,<member id>,..."            ring (drain now)
 *     "c<code>.<reason> <mesh id> <member id>,..."           close every connection
 * (a close: a ban on another host; code 1000-4999, reason the index of
 * moderation.c's table), read back by hosts_parse (pure; fuzzed by
 * fuzz/fuzz_doorbell.c). */
#ifndef WORKER_HOSTS_H
#define WORKER_HOSTS_H

#include <stddef.h>

#define HOSTS_ID_MAX 33        /* 32 + NUL: [a-z0-9][a-z0-9-]{0,31} */
#define HOSTS_KEY_MAX 64       /* a mesh or member id, NUL included */
#define HOSTS_LINE_MAX 7900    /* a doorbell line (NOTIFY payloads stay under 8000 bytes) */
#define HOSTS_IDS_MAX 240      /* member ids in one line */

/* HOST_ID, read once: NULL when unset or empty (one host).  An invalid value
 * stops the process (log_fatal): meshbroker-relay refuses it at start-up
 * first, with the same message. */
const char *hosts_id(void);
/* 1 when id is a valid HOST_ID */
int hosts_valid_id(const char *id);
/* "<runtime_dir>/relay.sock" (0 ok, -1 too long) */
int hosts_relay_path(const char *runtime_dir, char *buf, size_t cap);

/* Hand members ids[i] with !found[i] to the relay: as few datagrams as the
 * line length allows, sent without blocking on a fresh socket.  A relay that
 * is down or full just misses them: its sweep rings their workers later. */
void hosts_hand_remote(const char *runtime_dir, const char *mesh_id, const char *const *ids,
		       const unsigned char *found, int n);

/* Hand one close of every connection of member_id (on every other host) to
 * the relay: a ban's reach beyond this host. */
void hosts_hand_close(const char *runtime_dir, const char *mesh_id, const char *member_id, int code, int reason);

/* One doorbell line, parsed: 0 ok, -1 malformed (anything but "w" or
 * "c<code>.<reason>", a mesh id and 1..HOSTS_IDS_MAX comma-separated member
 * ids of [A-Za-z0-9_-], each shorter than HOSTS_KEY_MAX, and nothing after
 * them). */
enum hosts_kind { HOSTS_WAKE = 'w', HOSTS_CLOSE = 'c' };
struct hosts_bell {
	int kind;          /* enum hosts_kind */
	int code, reason;  /* HOSTS_CLOSE: 1000-4999, 0-63 */
	char mesh_id[HOSTS_KEY_MAX];
	int n;
	char ids[HOSTS_IDS_MAX][HOSTS_KEY_MAX];
};
int hosts_parse(const char *line, size_t len, struct hosts_bell *out);

#endif
