/* store_topic — the worker's statements for topics (docs/protocol.md §5),
 * one function per statement, typed rows out, with the rules of store.h:
 * callbacks run in FIFO order from db_service, -1 = nothing queued and no
 * callback.  `topic` arguments are an id or a name inside the mesh (an id
 * wins).  Rows are valid during the callback only. */
#ifndef DB_STORE_TOPIC_H
#define DB_STORE_TOPIC_H

#include <stddef.h>
#include <stdint.h>

#include "db/db.h"

/* what a topic statement found, when it was not simply done */
enum store_topic_status {
	TOPIC_OK = 0,
	TOPIC_NOT_FOUND,      /* no such topic in the mesh */
	TOPIC_NOT_MEMBER,     /* the caller is not a topic member */
	TOPIC_UNENCRYPTED,    /* legacy topic: encrypted_key_pubkey is NULL */
	TOPIC_NOT_SEALED,     /* no sealed copy for the caller */
	TOPIC_NO_RECIPIENT,   /* seal: memberId is not a topic member */
	TOPIC_ALREADY_SEALED, /* seal: a copy exists and is never overwritten */
};

struct topic_row {
	const char *id, *name, *description, *visibility, *created_at;
	long member_count;
	int created; /* topic_create: 1 when this call made it */
};
typedef void (*store_topic_cb)(void *arg, const struct topic_row *rows, int n, const char *err);

/* ---- topic_create: the topic, the creator as lead and (when
 * encrypted_key is set) the creator's sealed copy, in one statement; an
 * existing name gives that topic with created = 0 (n = 0 only when a
 * concurrent create of the same name committed meanwhile) ---- */
struct topic_new {
	const char *id, *mesh_id, *name, *description, *visibility, *creator_id;
	const char *key_pubkey;                         /* hex x25519, NULL = unencrypted */
	const char *key_id, *encrypted_key, *key_nonce; /* the creator's copy, or NULL */
};
int store_topic_create(struct db *d, const struct topic_new *t, store_topic_cb cb, void *arg);
/* topics of the mesh visible to member_id (public ones and its private ones), by name */
int store_topic_list(struct db *d, const char *mesh_id, const char *member_id, store_topic_cb cb, void *arg);

/* join (idempotent), leave, mark read: topic_id is NULL when there is no such topic */
typedef void (*store_topic_id_cb)(void *arg, const char *topic_id, const char *err);
int store_topic_join(struct db *d, const char *mesh_id, const char *topic, const char *member_id, const char *role,
                     store_topic_id_cb cb, void *arg);
int store_topic_leave(struct db *d, const char *mesh_id, const char *topic, const char *member_id, store_topic_id_cb cb,
                      void *arg);
/* also marks the member's notifications of the topic read */
int store_topic_mark_read(struct db *d, const char *mesh_id, const char *topic, const char *member_id,
                          store_topic_id_cb cb, void *arg);

struct topic_member_row {
	const char *member_id, *pubkey, *display_name, *role, *joined_at, *last_read_at; /* last_read_at may be NULL */
};
typedef void (*store_topic_members_cb)(void *arg, const char *topic_id, const struct topic_member_row *rows, int n,
                                       const char *err);
int store_topic_members(struct db *d, const char *mesh_id, const char *topic, store_topic_members_cb cb, void *arg);

struct topic_message_row {
	const char *id, *sender_pubkey, *nonce, *ciphertext, *created_at;
	int body_version;
};
/* newest first, at most limit messages and, past the first, at most
 * STORE_HISTORY_BYTES_MAX bytes of nonces and ciphertexts (a client pages
 * on with before_id); before_id NULL or a message id of the topic */
#define STORE_HISTORY_BYTES_MAX (4 << 20)
typedef void (*store_topic_history_cb)(void *arg, enum store_topic_status st, const char *topic_id,
                                       const struct topic_message_row *rows, int n, const char *err);
int store_topic_history(struct db *d, const char *mesh_id, const char *topic, const char *member_id, int limit,
                        const char *before_id, store_topic_history_cb cb, void *arg);

/* ---- keys ---- */
struct topic_key_row {
	const char *topic_id, *name, *encrypted_key, *nonce, *created_at;
};
/* the member's own sealed copy: st OK, NOT_FOUND, UNENCRYPTED or NOT_SEALED */
typedef void (*store_topic_key_cb)(void *arg, enum store_topic_status st, const struct topic_key_row *k,
                                   const char *err);
int store_topic_key(struct db *d, const char *mesh_id, const char *topic, const char *member_id, store_topic_key_cb cb,
                    void *arg);

struct topic_pending_row {
	const char *member_id, *pubkey, *display_name;
};
/* topic members without a sealed copy (at most limit), asked by a member:
 * st OK, NOT_FOUND or NOT_MEMBER; sender_pubkey is the topic's
 * encrypted_key_pubkey (NULL for a legacy topic) */
typedef void (*store_topic_pending_cb)(void *arg, enum store_topic_status st, const char *topic_id, const char *name,
                                       const char *sender_pubkey, const struct topic_pending_row *rows, int n,
                                       const char *err);
int store_topic_pending(struct db *d, const char *mesh_id, const char *topic, const char *member_id, int limit,
                        store_topic_pending_cb cb, void *arg);

/* a member seals the key for another: never overwrites, records the sealer.
 * st OK (sealed_at set), NOT_FOUND, NOT_MEMBER (the caller), NO_RECIPIENT or
 * ALREADY_SEALED, checked in that order */
struct topic_seal {
	const char *mesh_id, *topic, *sealer_id, *recipient_id, *key_id, *encrypted_key, *nonce;
};
typedef void (*store_topic_seal_cb)(void *arg, enum store_topic_status st, const char *topic_id, const char *sealed_at,
                                    const char *err);
int store_topic_seal(struct db *d, const struct topic_seal *s, store_topic_seal_cb cb, void *arg);

/* ---- posting: the message (message_queue + topic_message, same id), one
 * delivery per other non-revoked topic member, and one notification per
 * mentioned mesh member (names compared case-insensitively, never the
 * sender, at most n_mentions rows with the ids given), in one statement.
 * st OK (recipients listed), NOT_FOUND or NOT_MEMBER (the sender). */
#define STORE_MENTIONS_MAX 32
struct topic_post {
	const char *id, *mesh_id, *sender_id, *topic, *priority, *nonce, *ciphertext;
	int body_version;
	const char *const *mentions; /* display names */
	int n_mentions;
	const char *const *notification_ids; /* n_mentions fresh ids */
};
typedef void (*store_topic_post_cb)(void *arg, enum store_topic_status st, const char *topic_id,
                                    const char *const *recipients, int n, const char *err);
int store_topic_post(struct db *d, const struct topic_post *p, store_topic_post_cb cb, void *arg);
/* the same with the message it answers (replyToId, NULL: none) and
 * *notified set before the callback: the notifications recorded */
int store_topic_post_counted(struct db *d, const struct topic_post *p, const char *reply_to, int *notified,
                             store_topic_post_cb cb, void *arg);

/* ---- notifications (REST GET notifications, me/notifications): the
 * member's mentions since a time, newest first, limited to topic scopes ---- */
struct notification_query {
	const char *member_id;
	int64_t since_ms;
	int unread_only;
	const char *const *scopes; /* topic names or ids */
	int n_scopes;              /* -1: every topic */
	int limit;
};
struct notification_row {
	const char *id, *message_id, *topic_id, *topic_name, *sender_name, *sender_pubkey, *ciphertext, *kind,
		*read_at, *created_at, *mesh_id, *mesh_slug, *mesh_name; /* message_id … ciphertext, read_at: NULL when none */
	int body_version;
};
/* mentioned_as: the member's display name (NULL when there is no such member) */
typedef void (*store_notification_cb)(void *arg, const char *mentioned_as, const struct notification_row *rows, int n,
                                      const char *err);
int store_notifications(struct db *d, const struct notification_query *q, store_notification_cb cb, void *arg);

/* ---- REST pages and streams (GET topics/:name/messages, …/stream, §12.6):
 * a topic's messages older than the cursor, newest first (after = 0; an
 * unknown cursor is none), or newer than it, oldest first (after = 1; an
 * unknown cursor gives none, no cursor gives all); at most limit and, past
 * the first, STORE_HISTORY_BYTES_MAX bytes.  Members only: st OK,
 * NOT_FOUND or NOT_MEMBER; cursor_found says the cursor is a message of
 * the topic. ---- */
struct topic_page_query {
	const char *mesh_id, *topic, *member_id;
	int limit;
	const char *cursor; /* a message id, NULL or "" for none */
	int after;
	int settle_ms; /* after: only messages stamped at least this long ago (see store_topic.c) */
};
struct topic_page_row {
	const char *id, *sender_member_id, *sender_pubkey, *sender_name, *nonce, *ciphertext, *created_at, *reply_to;
	int body_version; /* sender_pubkey, sender_name, reply_to: NULL when the member row is gone, or none */
};
typedef void (*store_topic_page_cb)(void *arg, enum store_topic_status st, const char *topic_id, const char *name,
                                    int cursor_found, const struct topic_page_row *rows, int n, const char *err);
int store_topic_page(struct db *d, const struct topic_page_query *q, store_topic_page_cb cb, void *arg);

/* PATCH topics/:name/read: a member's last_read_at = now (its notifications
 * of the topic read); st OK (read_at set), NOT_FOUND or NOT_MEMBER (nothing
 * joined, unlike the reference's upsert) */
typedef void (*store_topic_read_cb)(void *arg, enum store_topic_status st, const char *topic_id, const char *name,
                                    const char *read_at, const char *err);
int store_topic_read(struct db *d, const char *mesh_id, const char *topic, const char *member_id,
                     store_topic_read_cb cb, void *arg);

/* GET topics (mine = 0: every topic the member may see, by name) and
 * me/topics (mine = 1: its own, newest message first, then unused ones by
 * name), limited to scopes (n_scopes -1: all); unread = messages after its
 * last_read_at (all when none) not its own */
struct topic_listing_row {
	const char *id, *name, *description, *visibility, *created_at, *mesh_id, *mesh_slug, *mesh_name,
		*last_message_at; /* description, last_message_at: NULL when none */
	long unread;
};
typedef void (*store_topic_listing_cb)(void *arg, const struct topic_listing_row *rows, int n, const char *err);
int store_topic_listing(struct db *d, const char *mesh_id, const char *member_id, const char *const *scopes,
                        int n_scopes, int mine, store_topic_listing_cb cb, void *arg);

/* a live stream's key is still not revoked: live 1 (with its issuer's
 * display name and pubkey, NULL for a mesh-wide key), else 0 */
typedef void (*store_apikey_live_cb)(void *arg, int live, const char *display_name, const char *pubkey,
                                     const char *err);
int store_apikey_live(struct db *d, const char *key_id, store_apikey_live_cb cb, void *arg);

#endif
