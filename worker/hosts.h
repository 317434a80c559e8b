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
 *     "s<status>.<source> <mesh id> <member id>,..."         set_status scope member
 *     "r <mesh id> <presence id>,..."                        session replaced
 *     "k<code>.<reason> <mesh id> <presence id>,..."         close these connections
 *     "t<code>.<reason>.<ms> <mesh id> <presence id>,..."    close those not heard for ms
 *     "h<status>.<source> <mesh id> <presence id>,..."       a hook's status
 * (a close: a ban, a revocation, an archived mesh, a kick or disconnect on
 * another host; code 1000-4999, reason the index of moderation.c's table;
 * status and source as shm/presence.h), read back by hosts_parse (pure;
 * fuzzed by fuzz/fuzz_doorbell.c).  The first three name members (every
 * local slot of the member is told), the last four presences (one slot
 * each).  A worker hands "w" and the member kinds to its relay; the relay
 * rings the hosts holding them (mesh.host_ring, mesh.host_ring_presences,
 * 0011/0012). */
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

/* Hand a doorbell of any kind to the relay: kind is the line's first word
 * ("s2.2", "k4001.0", "t1000.3.60000", ...), ids[0..n) the member or
 * presence ids it names (as few datagrams as the line length allows; ids
 * that are no key are skipped).  Without blocking, as hosts_hand_remote. */
void hosts_hand(const char *runtime_dir, const char *kind, const char *mesh_id, const char *const *ids, int n);

/* One doorbell line, parsed: 0 ok, -1 malformed (anything but one of the
 * kinds above with exactly its numbers, in range, without leading zeros, a
 * mesh id and 1..HOSTS_IDS_MAX comma-separated ids of [A-Za-z0-9_-], each
 * shorter than HOSTS_KEY_MAX, and nothing after them). */
enum hosts_kind {
	HOSTS_WAKE = 'w',
	HOSTS_CLOSE = 'c',
	HOSTS_STATUS = 's',
	HOSTS_REPLACE = 'r',
	HOSTS_KICK = 'k',
	HOSTS_STALE = 't',
	HOSTS_HOOK = 'h',
};
#define HOSTS_STALE_MAX 999999999999999LL /* ms: kick{stale} takes < 1e15 */
struct hosts_bell {
	int kind;          /* enum hosts_kind */
	int by_presence;   /* the ids are presence ids (r, k, t, h), else member ids */
	int code, reason;  /* c, k, t: 1000-4999, 0-63; s, h: the status (0-2) and its source (1-3) */
	long long stale_ms; /* t: 0-HOSTS_STALE_MAX */
	char mesh_id[HOSTS_KEY_MAX];
	int n;
	char ids[HOSTS_IDS_MAX][HOSTS_KEY_MAX];
};
int hosts_parse(const char *line, size_t len, struct hosts_bell *out);

#endif
