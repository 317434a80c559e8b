/* hello — the signed hello of docs/protocol.md §2: the canonical signed bytes,
 * signing (clients) and the broker's stateless checks 1-4 (fields, skew, hex,
 * signature).  Replay, membership and capacity are the worker's. */
#ifndef PROTO_HELLO_H
#define PROTO_HELLO_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/reasons.h"

#define HELLO_SKEW_MS 60000

struct hello {
	const char *mesh_id, *member_id, *pubkey, *session_id, *cwd, *signature;
	int64_t pid;
	int64_t timestamp;
	/* optional, NULL when absent */
	const char *display_name, *hostname, *peer_type, *channel, *model, *protocol_version;
	const cJSON *capabilities, *groups;
	const char *session_pubkey; /* §12.1, NULL when absent or "" (then checked: 64 lowercase hex) */
};

/* rejection codes (proto/reasons.h); the wire string is hello_code_str().
 * HELLO_TIMEOUT and HELLO_TABLE_FULL are never returned by hello_check. */
enum hello_code {
	HELLO_OK = 0,
#define X(id, label, code, message) HELLO_##id,
	HELLO_REJECTIONS(X)
#undef X
};
const char *hello_code_str(enum hello_code c);
/* the error.message text of §2 */
const char *hello_code_message(enum hello_code c);

/* meshId|memberId|pubkey|timestamp into buf; returns length or -1 if too long */
int hello_canonical(char *buf, size_t cap, const char *mesh_id, const char *member_id,
		    const char *pubkey, int64_t timestamp);
/* ed25519 signature (128 lowercase hex + NUL) of the canonical bytes */
int hello_sign(char sig_hex[129], const unsigned char sk[64], const char *mesh_id,
	       const char *member_id, const char *pubkey, int64_t timestamp);
/* Checks 1-4 of §2 in order (and sessionPubkey's shape right after check 3,
 * §12.1: HELLO_BAD_SESSION_PUBKEY).  Fills h with pointers into obj (valid
 * while obj lives).  now_ms is the broker's clock. */
enum hello_code hello_check(const cJSON *obj, struct hello *h, int64_t now_ms);

/* ---- session_hello (§12.1) ---- */

#define SESSION_ATTEST_MAX_MS 86400000 /* an attestation lives at most 24 h */

struct session_hello {
	const char *mesh_id, *parent_pubkey, *parent_member_id /* NULL when absent */, *session_pubkey;
	const char *session_id, *cwd, *signature, *att_signature;
	int64_t pid, timestamp, expires_at;
	const char *display_name; /* NULL when absent */
	const cJSON *capabilities;
};
/* 1 when s is exactly 64 lowercase hex characters */
int hello_key_shape_ok(const char *s);
/* claudemesh-session-attest|<parent>|<session>|<expiresAt>, signed by the member key */
int session_attest_canonical(char *buf, size_t cap, const char *parent, const char *session, int64_t expires_at);
/* claudemesh-session-hello|<meshId>|<parent>|<session>|<timestamp>, signed by the session key */
int session_hello_canonical(char *buf, size_t cap, const char *mesh_id, const char *parent, const char *session,
			    int64_t timestamp);
/* Checks 1-5 of §12.1's session_hello table in order; the codes are the
 * HELLO_* rows (HELLO_MALFORMED for check 1, HELLO_ATT_* for 4,
 * HELLO_SESSION_* for 5).  Replay, membership, ownership of the session key
 * and capacity are the worker's.  Pointers into obj. */
enum hello_code session_hello_check(const cJSON *obj, struct session_hello *h, int64_t now_ms);

#endif
