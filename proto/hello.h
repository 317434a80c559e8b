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
/* Checks 1-4 of §2 in order.  Fills h with pointers into obj (valid while obj
 * lives).  now_ms is the broker's clock. */
enum hello_code hello_check(const cJSON *obj, struct hello *h, int64_t now_ms);

#endif
