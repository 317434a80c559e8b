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
	/* issue 22 */
	TOPIC_NOT_LEAD,       /* the caller is a member but not a lead */
	TOPIC_NO_SUCH_MEMBER, /* add_member: no live mesh member of that id, pubkey or name */
	TOPIC_NOT_KEY_HOLDER, /* seal: the caller holds no copy of the current epoch (and is no lead bootstrapping it) */
	TOPIC_NAME_TAKEN,     /* create: the name is a topic the caller is not a member of */
	TOPIC_LIMIT,          /* create: the mesh has MAX_TOPICS_PER_MESH topics */
	TOPIC_STATUS_COUNT
};

struct topic_row {
	const char *id, *name, *description, *visibility, *created_at;
	long member_count;
	int created; /* topic_create: 1 when this call made it */
	enum store_topic_status st; /* topic_create: OK, NAME_TAKEN or LIMIT (then no other field is set) */
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
	int max_topics;                                 /* the mesh's cap (MAX_TOPICS_PER_MESH) */
};
int store_topic_create(struct db *d, const struct topic_new *t, store_topic_cb cb, void *arg);
/* topics of the mesh visible to member_id (public ones and its private ones),
 * by name, after the name `after` (NULL: from the first), at most limit + 1
 * rows (the extra one says there is a next page) */
int store_topic_list(struct db *d, const char *mesh_id, const char *member_id, const char *after, int limit,
                     store_topic_cb cb, void *arg);

/* join (idempotent), leave, mark read: topic_id is NULL when there is no such
 * topic (or a private one the member is not in: join never enters a private
 * topic, a lead adds its members); leave starts a new key epoch of an
 * encrypted topic */
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
/* members only: st OK, NOT_FOUND or NOT_MEMBER */
typedef void (*store_topic_members_cb)(void *arg, enum store_topic_status st, const char *topic_id,
                                       const struct topic_member_row *rows, int n, const char *err);
int store_topic_members(struct db *d, const char *mesh_id, const char *topic, const char *member_id,
                        store_topic_members_cb cb, void *arg);

/* a lead adds a mesh member (who: its id, pubkey or display name) to the
 * topic with role, or sets the role of one already in it: st OK (member_id,
 * role set), NOT_FOUND, NOT_MEMBER / NOT_LEAD (the caller), NO_SUCH_MEMBER.
 * remove = 1: a lead removes the member (who: its id) and, when it was in an
 * encrypted topic, starts a new key epoch: NO_SUCH_MEMBER when it was not in. */
struct topic_member_change {
	const char *mesh_id, *topic, *caller_id, *who, *role;
	int remove;
};
typedef void (*store_topic_member_cb)(void *arg, enum store_topic_status st, const char *topic_id,
                                      const char *member_id, const char *role, int epoch, const char *err);
int store_topic_member_change(struct db *d, const struct topic_member_change *c, store_topic_member_cb cb,
                              void *arg);

struct topic_message_row {
	const char *id, *sender_pubkey, *nonce, *ciphertext, *created_at;
	int body_version;
	int key_epoch; /* the topic's key epoch when it was posted (0: before epochs) */
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
struct topic_key_copy {
	int epoch;
	const char *encrypted_key, *nonce, *sealed_by, *created_at; /* sealed_by NULL: its member row is gone */
};
struct topic_key_row {
	const char *topic_id, *name, *encrypted_key, *nonce, *created_at; /* the newest copy the member holds */
	const char *sealed_by;
	int epoch, current_epoch;
	const struct topic_key_copy *copies; /* every copy the member holds, newest epoch first */
	int n_copies;
};
/* the member's own sealed copies: st OK, NOT_FOUND, NOT_MEMBER (k has the
 * topic only), UNENCRYPTED or NOT_SEALED (no copy of any epoch) */
typedef void (*store_topic_key_cb)(void *arg, enum store_topic_status st, const struct topic_key_row *k,
                                   const char *err);
int store_topic_key(struct db *d, const char *mesh_id, const char *topic, const char *member_id, store_topic_key_cb cb,
                    void *arg);

struct topic_pending_row {
	const char *member_id, *pubkey, *display_name;
};
/* topic members without a sealed copy of the current epoch (at most limit), asked by a member:
 * st OK, NOT_FOUND or NOT_MEMBER; sender_pubkey is the topic's
 * encrypted_key_pubkey (NULL for a legacy topic) */
typedef void (*store_topic_pending_cb)(void *arg, enum store_topic_status st, const char *topic_id, const char *name,
                                       const char *sender_pubkey, int epoch, const struct topic_pending_row *rows,
                                       int n, const char *err);
int store_topic_pending(struct db *d, const char *mesh_id, const char *topic, const char *member_id, int limit,
                        store_topic_pending_cb cb, void *arg);

/* a member seals the current epoch's key for another: never overwrites,
 * records the sealer.  st OK (sealed_at set), NOT_FOUND, NOT_MEMBER (the
 * caller), NOT_KEY_HOLDER (the caller holds no copy of the current epoch and
 * is not a lead sealing the epoch's first copy), NO_RECIPIENT (not a live
 * member of the topic) or ALREADY_SEALED, checked in that order */
struct topic_seal {
	const char *mesh_id, *topic, *sealer_id, *recipient_id, *key_id, *encrypted_key, *nonce;
};
typedef void (*store_topic_seal_cb)(void *arg, enum store_topic_status st, const char *topic_id, const char *sealed_at,
                                    const char *err);
int store_topic_seal(struct db *d, const struct topic_seal *s, store_topic_seal_cb cb, void *arg);

/* discard a copy of the current epoch: the caller's own (recipient_id NULL
 * or its own id) or, by a lead, any member's.  st OK, NOT_FOUND, NOT_MEMBER,
 * NOT_LEAD, NO_RECIPIENT or NOT_SEALED (no such copy) */
typedef void (*store_topic_discard_cb)(void *arg, enum store_topic_status st, const char *topic_id, int epoch,
                                       const char *err);
int store_topic_discard(struct db *d, const char *mesh_id, const char *topic, const char *caller_id,
                        const char *recipient_id, store_topic_discard_cb cb, void *arg);

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
	int key_epoch;    /* 0: posted before key epochs */
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
