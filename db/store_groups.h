/* store_groups — the worker's statements for groups, visibility, profile
 * (docs/protocol.md §12.3), moderation (§12.4) and API keys over the socket
 * (§12.5).  Asynchronous on the worker's connection (db.h: FIFO callbacks);
 * each function names the columns of its result next to it, and results
 * reach the caller as a table of text cells (SQL NULL = NULL). */
#ifndef DB_STORE_GROUPS_H
#define DB_STORE_GROUPS_H

#include "db/store.h"

struct store_table;
/* the cell (row, col) of a result, NULL for SQL NULL */
const char *store_table_get(const struct store_table *t, int row, int col);
int store_table_rows(const struct store_table *t);
/* err set: t is NULL */
typedef void (*store_table_cb)(void *arg, const struct store_table *t, const char *err);

/* ---- groups, visibility, profile, stats (migration 0006) ---- */
/* one '*' (group NULL) or '@group' send, message and delivery rows in one
 * transaction (mesh.send_group, migration 0009): rows (member, NULL, NULL)
 * of its recipients; or, when the sender stored its client key within a
 * day, one row (NULL, 'dup', first message id) or (NULL, 'conflict', NULL)
 * and nothing stored */
struct group_send {
	const char *id, *mesh_id, *sender, *target, *group, *priority, *nonce, *ciphertext;
	const char *const *live_members; /* members with a live slot */
	int n_live;
	const char *const *visible; /* visible live presence ids */
	int n_visible;
	const char *sender_name;             /* the sender connection's display name */
	const char *session_pubkey;          /* the sender connection's session key, NULL for none */
	const char *client_key;              /* client_message_id, else id; NULL for none */
	const char *client_id, *fingerprint; /* client_message_id, request_fingerprint; NULL when not sent */
};
enum { GS_MEMBER, GS_STATUS, GS_FIRST_ID };
int store_group_send(struct db *d, const struct group_send *s, store_table_cb cb, void *arg);
/* join (role may be NULL) or leave name; row (count): groups after it, -1
 * when a join would exceed max */
enum { PG_COUNT };
int store_presence_group(struct db *d, const char *presence_id, int join, const char *name, const char *role, int max,
                         store_table_cb cb, void *arg);
/* visible flag, profile fields merged (JSON object text), stats (JSON
 * object text); visibility and profile are saved for the member too */
int store_presence_visible(struct db *d, const char *presence_id, int visible, store_table_cb cb, void *arg);
int store_presence_profile(struct db *d, const char *presence_id, const char *profile_json, store_table_cb cb,
                           void *arg);
int store_presence_stats(struct db *d, const char *presence_id, const char *stats_json);
/* the list_peers extras of n presences: rows (id, groups, profile, stats,
 * channel, model, visible), JSON as text */
enum { PX_ID, PX_GROUPS, PX_PROFILE, PX_STATS, PX_CHANNEL, PX_MODEL, PX_VISIBLE };
int store_presence_extras(struct db *d, const char *const *ids, int n, store_table_cb cb, void *arg);

/* ---- moderation ---- */
/* the caller's standing: row (role, is_owner 't'/'f', mesh label = name,
 * else slug, else id) */
enum { MA_ROLE, MA_OWNER, MA_LABEL };
int store_member_authority(struct db *d, const char *member_id, store_table_cb cb, void *arg);
/* the mesh's label (name, else slug, else id): row (label) */
int store_mesh_label(struct db *d, const char *mesh_id, store_table_cb cb, void *arg);
/* members of mesh_id matching who — display name equal, pubkey equal (any
 * case) or, with >= 8 characters, a pubkey prefix (literal) — revoked ones
 * when revoked, live ones otherwise: rows (id, display_name, pubkey,
 * is_owner) */
enum { MF_ID, MF_NAME, MF_PUBKEY, MF_OWNER };
int store_member_match(struct db *d, const char *mesh_id, const char *who, int revoked, store_table_cb cb, void *arg);
/* set or clear revoked_at of one member: row (id) when it changed */
int store_member_set_revoked(struct db *d, const char *member_id, int revoked, store_table_cb cb, void *arg);
/* the revoked members of mesh_id: rows (name, pubkey, revokedAt ISO) */
enum { MB_NAME, MB_PUBKEY, MB_REVOKED_AT };
int store_member_bans(struct db *d, const char *mesh_id, store_table_cb cb, void *arg);
/* list_members (issue 20): the non-revoked members of mesh_id with the
 * mesh's label, at most 1000: rows (id, display_name, pubkey, mesh label) */
enum { ML_ID, ML_NAME, ML_PUBKEY, ML_MESH };
int store_member_roster(struct db *d, const char *mesh_id, store_table_cb cb, void *arg);
/* list_members{group} (§12.8): the members a '*' (group NULL) or
 * '@group' send of sender would reach right now (mesh.group_recipients, the
 * rule of mesh.send_group), at most 1000, in the rows of
 * store_member_roster */
int store_group_members(struct db *d, const char *mesh_id, const char *sender, const char *group,
                        const char *const *live_members, int n_live, const char *const *visible, int n_visible,
                        store_table_cb cb, void *arg);

/* ---- API keys over the socket (§12.5): only the hash is stored ---- */
struct apikey_new {
	const char *id, *mesh_id, *issuer, *label, *hash, *prefix;
	const char *caps;          /* text[] literal */
	const char *const *scopes; /* topic names */
	int n_scopes;              /* -1: every topic (NULL scopes) */
	const char *expires_ms;    /* ms since the epoch (decimal), NULL for never */
};
/* row (createdAt ISO, topicScopes as a JSON array or NULL) */
enum { AC_CREATED };
int store_apikey_ws_create(struct db *d, const struct apikey_new *k, store_table_cb cb, void *arg);
/* the keys of mesh_id (only issuer's when issuer is not NULL), newest first:
 * rows (id, label, prefix, capabilities JSON, topicScopes JSON or NULL,
 * createdAt, lastUsedAt, revokedAt, expiresAt, issuer) */
enum { AL_ID, AL_LABEL, AL_PREFIX, AL_CAPS, AL_SCOPES, AL_CREATED, AL_USED, AL_REVOKED, AL_EXPIRES, AL_ISSUER };
int store_apikey_ws_list(struct db *d, const char *mesh_id, const char *issuer, store_table_cb cb, void *arg);
/* revoke the key of mesh_id whose id is which, or (which of >= 6
 * characters) the one key whose id starts with it (literal); only issuer's
 * keys when issuer is not NULL.  Row
 * (matches, id): one match is revoked (idempotent), none or several
 * change nothing */
enum { AR_MATCHES, AR_ID };
int store_apikey_ws_revoke(struct db *d, const char *mesh_id, const char *issuer, const char *which, store_table_cb cb,
                           void *arg);

/* more than one host: the live presences of mesh_id on the other live hosts
 * (mesh.host_remote_peers, 0011), oldest first */
enum { RP_ID, RP_MEMBER, RP_PUBKEY, RP_SESSION_PUBKEY, RP_NAME, RP_SESSION, RP_PID, RP_CWD, RP_STATUS,
       RP_SUMMARY, RP_HOSTNAME, RP_PEER_TYPE, RP_REPO, RP_ROLE, RP_VISIBLE, RP_CONNECTED_AT, RP_HOST };
int store_host_remote_peers(struct db *d, const char *host_id, const char *mesh_id, store_table_cb cb, void *arg);
/* more than one host: the new presence replaces its session's connections
 * on the other hosts (mesh.host_ring_replace, 0012); no answer wanted */
int store_host_ring_replace(struct db *d, const char *host_id, const char *presence_id);
/* more than one host: a hook's status for a presence on another host
 * (mesh.host_hook_status, 0012; kind "h<status>.<source>"; mesh, member,
 * session NULL for any, pid < 0 for any): one row, the presence id told or
 * NULL */
int store_host_hook_status(struct db *d, const char *host_id, const char *kind, const char *mesh_id,
                           const char *member_id, const char *session_id, long long pid, const char *cwd,
                           store_table_cb cb, void *arg);

#endif
