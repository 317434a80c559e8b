/* msgcheck — the checks each client message of the peer protocol gets
 * before its handler touches the database, the presence table or the rate
 * limits (docs/protocol.md §3-§5.2, §11): field types and lengths, the
 * opaque fields, priorities, statuses, scopes, topic names and sealed keys.
 * Pure (no socket, no database, no clock), so fuzz/fuzz_messages.c runs
 * every one of them on any input.  Strings handed back point into msg. */
#ifndef WORKER_MSGCHECK_H
#define WORKER_MSGCHECK_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "proto/reasons.h"
#include "proto/topickey.h"
#include "worker/mention.h"

/* ---- send (§3.1, §5.2) ---- */

#define SEND_ID_MAX 128    /* the client's correlation id */
#define SEND_TARGET_MAX 129   /* '@' and a group name (docs/protocol.md §12.3) */
#define SEND_TOPIC_REF_MAX 79 /* '#' and a topic ref */
#define SEND_CLIENT_ID_MAX 128 /* client_message_id, request_fingerprint (§12.1) */

enum send_rejection {
#define X(id, label, code, message) SEND_REJ_##id,
	SEND_REJECTIONS(X)
#undef X
		SEND_REJ_COUNT
};

struct send_fields {
	const char *id; /* the id to echo: "" when absent or refused for its length */
	const char *target, *nonce, *ct;
	int prio;      /* msg_priority_parse() */
	int direct;    /* target is a member's or session's 64-hex pubkey (either case) */
	size_t size;   /* nonce plus ciphertext bytes */
	const char *client_id, *fingerprint; /* client_message_id, request_fingerprint: NULL when absent or "" */
};
/* The checks of a send before its rate limit: -1 when it passes, else the
 * rejection, with *detail when the ack says more than the table's message
 * (PAYLOAD_TOO_LARGE: the caller formats the table's message with f->size).
 * frame_nul: the frame held \u0000 (its strings are cut): NUL_IN_FIELD. */
int msgcheck_send(const cJSON *msg, size_t max_bytes, int frame_nul, struct send_fields *f, const char **detail);

/* An opaque field (nonce, ciphertext: §3.1, §12.6): any JSON string (empty
 * too), carried byte for byte.  v: the field's value; text_nul: the JSON text
 * it was parsed from holds the escape \u0000 (common/opaque.h
 * json_has_nul_escape: cJSON handed out strings cut there, and PostgreSQL
 * text cannot hold a NUL).  -1 when it passes, else SEND_REJ_MALFORMED (not
 * a string) or SEND_REJ_NUL_IN_FIELD.  The one check of the socket's sends
 * and the REST post path. */
int msgcheck_opaque_field(const cJSON *v, int text_nul);

/* client_message_id and request_fingerprint (§12.1): each absent, null, ""
 * (then NULL) or a string of at most SEND_CLIENT_ID_MAX bytes; 0, or -1 for
 * anything else. */
int msgcheck_client_ids(const cJSON *msg, const char **client_id, const char **fingerprint);

struct send_topic_fields {
	int version; /* bodyVersion: 1 or 2 */
	char *names[MENTION_MAX]; /* who it mentions (mention_free) */
	int n;
};
/* A #topic send's bodyVersion and mentions (ct: its ciphertext, whose @names
 * a v1 body without "mentions" is searched for): -1 when they pass (free
 * t->names with mention_free), else SEND_REJ_MALFORMED with *detail. */
int msgcheck_send_topic(const cJSON *msg, const char *ct, struct send_topic_fields *t, const char **detail);

/* ---- set_status (§3.1, §11) ---- */

/* PEER_ERR_NONE with *status (status_parse) and *member (scope "member"),
 * or INVALID_STATUS / INVALID_SCOPE */
enum peer_error msgcheck_set_status(const cJSON *msg, int *status, int *member);

/* ---- client_ack (§3.4) ---- */

#define CLIENT_ACK_ID_MAX 64
/* brokerMessageId (or messageId) and clientMessageId (§12.1), each NULL when
 * missing, empty or too long; 0 when one is there, else -1 (ignored) */
int msgcheck_client_ack(const cJSON *msg, const char **broker_id, const char **client_id);

/* ---- list_peers, set_summary (§11) ---- */

enum peers_scope { SCOPE_MESH, SCOPE_MACHINE, SCOPE_DIRECTORY, SCOPE_REPO };
/* the scope (absent: mesh), or -1 for an unknown one */
int msgcheck_peers_scope(const cJSON *msg);
/* PEER_ERR_NONE with *summary (shorter than cap), or SUMMARY_MALFORMED /
 * SUMMARY_TOO_LONG */
enum peer_error msgcheck_summary(const cJSON *msg, size_t cap, const char **summary);

/* ---- topic requests (§5.2) ---- */

#define TOPIC_NAME_MAX 64
#define TOPIC_DESCRIPTION_MAX 1024
#define TOPIC_HISTORY_DEFAULT 50
#define TOPIC_HISTORY_MAX 200
#define TOPIC_REF_MAX 128 /* a topic id or name */
#define TOPIC_REQID_MAX 128
#define TOPIC_MEMBER_ID_MAX 64
#define TOPIC_BEFORE_ID_MAX 64

/* 1 when s is a valid topic name: 1-64 bytes of [A-Za-z0-9._-] */
int topic_name_ok(const char *s);
/* The request id (_reqId, else id; a number is printed %.17g) into out,
 * *has set when there is one: 0, or -1 when it is over 128 characters. */
int msgcheck_topic_reqid(const cJSON *msg, char out[TOPIC_REQID_MAX + 1], int *has);
/* Each of these: NULL when the fields pass, else the message of the
 * error{code:"malformed"} the request gets. */
const char *msgcheck_topic_ref(const cJSON *msg, const char **topic); /* "topic", 1-128 bytes */
const char *msgcheck_topic_create(const cJSON *msg, const char **name, const char **description,
				  const char **visibility); /* absent description / visibility: NULL */
/* the creator's own sealed copy of a topic_create: *given = 0 when it sent
 * none (the broker seals one), 1 when it did (*s parsed) */
const char *msgcheck_topic_copy(const cJSON *msg, int *given, const char **enc, const char **nonce,
				struct topickey_sealed *s);
const char *msgcheck_topic_join(const cJSON *msg, const char **role); /* absent role: NULL */
const char *msgcheck_topic_history(const cJSON *msg, int *limit, const char **before);
const char *msgcheck_topic_seal(const cJSON *msg, const char **member, const char **enc, const char **nonce,
				struct topickey_sealed *s);

/* ---- U+0000 (the REST post path) ---- */

/* 1 when no string of the JSON text text[0..len) can hold U+0000 (neither
 * the escape \u0000 nor a raw NUL byte), else 0: such a field is refused
 * with the code nul_in_field, never stored cut */
int msgcheck_json_nul_free(const char *text, size_t len);

#endif
