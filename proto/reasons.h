/* reasons — the one table of rejection reasons (docs/protocol.md §2, §3, §7).
 * Each X-macro row is {id, metric label, wire code, message}; the shared
 * counter enum (shm/shm.h), the hello codes (proto/hello.h), the /metrics
 * label families and the error frames are all generated from it, so a new
 * reason is one line here.  Rows keep the order of the shared counters; the
 * metrics page sorts labels itself. */
#ifndef PROTO_REASONS_H
#define PROTO_REASONS_H

/* Hellos refused: broker_connections_rejected_total{reason=label}, an error
 * frame {code, message} (none when code is NULL), then close 1008 with the
 * code as reason (TABLE_FULL closes 1013 "table_full"; REVOKED, a banned
 * member's, closes 4002 "banned" with the mesh named in its message:
 * worker/moderation.c). */
#define HELLO_REJECTIONS(X)                                                                                           \
	X(MALFORMED, "malformed", "malformed", "hello rejected: malformed")                                           \
	X(TIMESTAMP_SKEW, "timestamp_skew", "timestamp_skew", "hello rejected: timestamp_skew")                      \
	X(BAD_SIGNATURE, "bad_signature", "bad_signature", "hello rejected: bad_signature")                         \
	X(REPLAYED, "replayed", "replayed", "hello rejected: replayed")                                              \
	X(UNAUTHORIZED, "unauthorized", "unauthorized", "pubkey not found in mesh")                                  \
	X(CAPACITY, "capacity", "capacity", "mesh at connection capacity")                                           \
	X(TIMEOUT, "hello_timeout", NULL, NULL)                                                                        \
	X(TABLE_FULL, "table_full", "capacity", "broker at connection capacity")                                     \
	/* §12.1: session keys and session_hello (metric label attestation_<code>      \
	 * for the attestation's checks, session_<code> for the session signature's) */ \
	X(BAD_SESSION_PUBKEY, "bad_session_pubkey", "bad_session_pubkey", "sessionPubkey must be 64 lowercase hex chars") \
	X(BAD_PARENT_PUBKEY, "bad_parent_pubkey", "bad_parent_pubkey",                                                 \
	  "parentMemberPubkey must be 64 lowercase hex chars")                                                        \
	X(ATTESTATION_MISMATCH, "attestation_mismatch", "attestation_mismatch",                                       \
	  "parentAttestation does not bind the claimed session+parent pubkeys")                                       \
	X(ATT_MALFORMED, "attestation_malformed", "malformed", "attestation rejected: malformed")                     \
	X(ATT_EXPIRED, "attestation_expired", "expired", "attestation rejected: expired")                            \
	X(ATT_TTL_TOO_LONG, "attestation_ttl_too_long", "ttl_too_long", "attestation rejected: ttl_too_long")         \
	X(ATT_BAD_SIGNATURE, "attestation_bad_signature", "bad_signature", "attestation rejected: bad_signature")     \
	X(SESSION_MALFORMED, "session_malformed", "malformed", "session_hello rejected: malformed")                   \
	X(SESSION_TIMESTAMP_SKEW, "session_timestamp_skew", "timestamp_skew", "session_hello rejected: timestamp_skew") \
	X(SESSION_BAD_SIGNATURE, "session_bad_signature", "bad_signature", "session_hello rejected: bad_signature")   \
	X(REVOKED, "revoked", "revoked", "You've been removed from this mesh. Contact the mesh owner to rejoin.")     \
	X(PARENT_MEMBER_ID_MISMATCH, "parent_member_id_mismatch", "parent_member_id_mismatch",                        \
	  "parentMemberId does not match parentMemberPubkey")                                                          \
	X(UNKNOWN_MESSAGE_TYPE, "unknown_message_type", "unknown_message_type", "unknown message type: session_hello")

/* Sends refused: broker_messages_rejected_total{reason=label} and an ack
 * {queued:false, error:message}; a message with a printf conversion is a
 * format the caller fills in (see send.c). */
#define SEND_REJECTIONS(X)                                                                                            \
	X(PAYLOAD_TOO_LARGE, "payload_too_large", NULL, "payload too large: %zu bytes > MAX_MESSAGE_BYTES=%d")       \
	X(RATE_LIMIT, "rate_limit", NULL, "rate_limit: max %d msg/min (burst %d) — slow down")                        \
	X(INVALID_PRIORITY, "invalid_priority", NULL, "invalid priority: expected now, next or low")                 \
	X(INVALID_TARGET, "invalid_target", NULL, "invalid targetSpec: expected a 64-hex pubkey, *, @group or #topicId")      \
	X(NO_SUCH_TOPIC, "no_such_topic", NULL, "no such topic")                                                       \
	X(DB_UNAVAILABLE, "db_unavailable", NULL, "database unavailable: message not queued, try again")            \
	X(MALFORMED, "malformed", NULL, "malformed send: nonce and ciphertext must be strings")                       \
	X(NO_RECIPIENT, "no_recipient", NULL, "no such recipient: targetSpec is not a member of this mesh")          \
	X(NUL_IN_FIELD, "nul_in_field", NULL,                                                                         \
	  "nul_in_field: a string of the send holds \\u0000, which cannot be stored; nothing was queued")            \
	X(OUTCOME_UNKNOWN, "outcome_unknown", NULL,                                                                   \
	  "outcome_unknown: the database did not answer in time; resend with the same id (stored at most once)")    \
	X(ID_CONFLICT, "client_id_conflict", NULL,                                                                    \
	  "client_id_conflict: this client_message_id was already used for a different request")

/* Connections the acceptor refused before any worker ran (an HTTP 503 and a
 * close): broker_connections_refused_total{reason=label}. */
#define ACCEPT_REFUSALS(X)                                                                                            \
	X(MAX_CONNECTIONS, "max_connections")                                                                          \
	X(PER_SOURCE, "max_connections_per_source")

/* Connections the acceptor closed to make room for a new one, always the
 * oldest that had not authenticated (SIGTERM; the worker closes at once):
 * broker_connections_evicted_total{reason=label}.  unauthenticated_share:
 * UNAUTH_SHARE_PERCENT of MAX_CONNECTIONS were before their hello;
 * max_connections: every place was taken. */
#define ACCEPT_EVICTIONS(X)                                                                                           \
	X(UNAUTH_SHARE, "unauthenticated_share")                                                                       \
	X(MAX_CONNECTIONS, "max_connections")

/* The membership lookups of hellos (check 6): broker_member_lookups_total{result=label}.
 * negative_cache_hit: a key remembered as no member of the mesh was refused
 * without asking the database (MEMBER_NEGATIVE_CACHE_SECONDS).
 * member_cache_hit: a key remembered as a live member skipped the lookup (its
 * hello statement re-checked it; a failed re-check is counted again by the
 * lookup it falls back to).  Appended last: the shared layout's order. */
#define MEMBER_LOOKUPS(X)                                                                                             \
	X(MEMBER, "member")                                                                                            \
	X(NOT_MEMBER, "not_member")                                                                                    \
	X(NEGATIVE_CACHE_HIT, "negative_cache_hit")                                                                    \
	X(ERROR, "error")                                                                                              \
	X(MEMBER_CACHE_HIT, "member_cache_hit")

/* Error frames of the peer protocol that count nothing: {code, message};
 * echo_id = 1 when the request's "id" is echoed in the frame. */
#define PEER_ERRORS(X)                                                                                                \
	X(BAD_JSON, "bad_json", "invalid JSON: expected one JSON object", 0)                                         \
	X(NO_HELLO, "no_hello", "must send hello first", 0)                                                           \
	X(UNKNOWN_TYPE, "unknown_type", "unknown message type", 1)                                                    \
	X(ALREADY_AUTHENTICATED, "already_authenticated", "already authenticated", 1)                                \
	X(INVALID_STATUS, "invalid_status", "status must be idle, working or dnd", 1)                                \
	X(CLIENT_ACK_MALFORMED, "malformed", "client_ack needs brokerMessageId", 1)                                  \
	X(INVALID_SCOPE, "invalid_scope", "scope must be mesh, machine, directory or repo (member for set_status)", 1) \
	X(SUMMARY_MALFORMED, "malformed", "set_summary needs a string summary", 1)                                   \
	X(SUMMARY_TOO_LONG, "summary_too_long", "summary is longer than 1024 bytes", 1)                              \
	X(DB_DOWN, "internal", "database unavailable, try again", 0)                                                  \
	X(DB_UNMIGRATED, "internal", "database not migrated (run meshctl migrate), try again later", 0)              \
	X(NO_WORKER_SOCKET, "internal", "broker could not open its worker socket", 0)                                 \
	X(NUL_IN_STRING, "bad_json", "invalid JSON: strings may not contain \\u0000", 1)                          \
	X(TOPIC_NOT_FOUND, "topic_not_found", "no such topic in this mesh", 1)                                        \
	X(NOT_A_MEMBER, "not_a_member", "not a member of this topic (topic_join first)", 1)                          \
	X(TOPIC_UNENCRYPTED, "topic_unencrypted", "legacy topic without a key: bodies are version 1", 1)              \
	X(KEY_NOT_SEALED, "key_not_sealed_for_member",                                                              \
	  "no sealed copy of the topic key for you yet: a member holding it must re-seal it", 1)                    \
	X(RECIPIENT_NOT_IN_TOPIC, "recipient_not_in_topic", "memberId is not a member of this topic", 1)             \
	X(ALREADY_SEALED, "already_sealed", "that member already has a sealed copy: it is never overwritten", 1)     \
	X(TOPIC_DB, "internal", "database unavailable, try again", 1)                                                 \
	/* issue 22: who may read what */                                                                              \
	X(TOPIC_NAME_TAKEN, "topic_name_taken", "a topic of that name exists and you are not a member of it", 1)     \
	X(TOPIC_LIMIT, "topic_limit_reached", "this mesh has MAX_TOPICS_PER_MESH topics", 1)                         \
	X(TOPIC_RATE_LIMIT, "rate_limit", "too many topic requests: slow down (TOPIC_RATE_LIMIT_PER_MIN)", 1)        \
	X(ROLE_NOT_GRANTED, "role_not_granted", "only a topic lead grants the lead role (topic_add_member)", 1)      \
	X(NOT_A_LEAD, "not_a_lead", "only a lead of this topic may do that", 1)                                      \
	X(NO_SUCH_MEMBER, "member_not_found", "no live member of this mesh by that id, pubkey or name", 1)          \
	X(NOT_A_KEY_HOLDER, "not_a_key_holder",                                                                     \
	  "you hold no copy of the current key epoch: only a holder (or a lead starting the epoch) seals it", 1)

enum peer_error {
	PEER_ERR_NONE = 0, /* nothing is sent */
#define X(id, code, message, echo_id) PEER_ERR_##id,
	PEER_ERRORS(X)
#undef X
		PEER_ERR_MAX
};

/* One generated row of either rejection list, for the metrics page. */
struct reason_row {
	const char *label, *code, *message;
};

#endif
