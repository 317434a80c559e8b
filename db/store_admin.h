/* store_admin — the statements of meshctl's admin commands (docs/protocol.md
 * §6, §8): blocking libpq on one connection, one function per statement,
 * typed rows out.  On -1 store_admin_error() says why in one line. */
#ifndef DB_STORE_ADMIN_H
#define DB_STORE_ADMIN_H

#include <stddef.h>

#include "db/store.h"

struct admin_db;

/* Connect (10 s connect timeout unless the URL says otherwise) and cap every
 * statement at 30 s.  NULL with err set to one line on failure. */
struct admin_db *store_admin_open(const char *url, char *err, size_t errlen);
void store_admin_close(struct admin_db *a);
const char *store_admin_error(const struct admin_db *a);

int store_admin_begin(struct admin_db *a);
int store_admin_commit(struct admin_db *a);
int store_admin_rollback(struct admin_db *a);

struct mesh_row {
	const char *id, *name, *slug, *owner_pubkey;
	const char *max_peers; /* decimal, or NULL for none */
};
/* 1 = a mesh has the slug (its id copied to id), 0 = none, -1 = error */
int store_mesh_by_slug(struct admin_db *a, const char *slug, char *id, size_t cap);
/* 1 = inserted, 0 = the slug is taken, -1 = error */
int store_mesh_insert(struct admin_db *a, const struct mesh_row *m);
/* 1 = live, 2 = archived, 0 = no such mesh, -1 = error */
int store_mesh_state(struct admin_db *a, const char *mesh_id);

/* a member of mesh_id whose pubkey (any case) is pubkey: 1 found (id copied,
 * *revoked set), 0 none, -1 error */
int store_member_find(struct admin_db *a, const char *mesh_id, const char *pubkey, char *id, size_t cap,
		      int *revoked);
/* 1 = inserted, 0 = (mesh, pubkey) is taken, -1 = error */
int store_member_insert(struct admin_db *a, const char *id, const char *mesh_id, const char *pubkey,
			const char *display_name, const char *role);
/* archive mesh_id: 1 archived now, 0 it was already (or is no mesh), -1 */
int store_mesh_archive(struct admin_db *a, const char *mesh_id);
/* Revoke the live members of mesh_id whose id or lowercase pubkey is who;
 * each revoked id goes to fn.  Returns how many, or -1. */
int store_member_revoke(struct admin_db *a, const char *mesh_id, const char *who,
			void (*fn)(void *arg, const char *id), void *arg);
/* any member (revoked or not) whose id or pubkey is who: 1 (id copied), 0, -1 */
int store_member_lookup(struct admin_db *a, const char *mesh_id, const char *who, char *id, size_t cap);
/* every member of mesh_id, by joining time: fn gets id, pubkey, display_name,
 * role, revoked.  0 ok, -1 error. */
int store_member_list(struct admin_db *a, const char *mesh_id, void (*fn)(void *arg, const struct member_row *m),
		      void *arg);

/* the mesh whose id or slug is which: 1 found (fields malloc'd into *m,
 * free with store_mesh_row_free; *archived set), 0 none, -1 error */
int store_mesh_get(struct admin_db *a, const char *which, struct mesh_row *m, int *archived);
void store_mesh_row_free(struct mesh_row *m);

/* ---- invites (docs/protocol.md §6) ---- */
struct invite_row {
	const char *id, *mesh_id, *token, *role, *expires_at; /* expires_at: ISO text (list) */
	long max_uses, used_count;
	int revoked, expired;
	const char *created_at;
};
/* expires_at_unix: seconds since the epoch.  0 ok, -1 error */
int store_invite_insert(struct admin_db *a, const struct invite_row *r, long long expires_at_unix);
/* every invite of mesh_id, newest first.  0 ok, -1 error */
int store_invite_list(struct admin_db *a, const char *mesh_id,
		      void (*fn)(void *arg, const struct invite_row *r), void *arg);
/* revoke the live invite of mesh_id whose id or token is which: 1 revoked, 0
 * none (no such invite, or already revoked), -1 error */
int store_invite_revoke(struct admin_db *a, const char *mesh_id, const char *which);

/* ---- API keys (docs/protocol.md §5.3): only the hash and the prefix ---- */
struct apikey_admin_row {
	const char *id, *mesh_id, *issuer_member_id /* NULL: mesh-wide */, *label, *secret_hash, *prefix;
	const char *capabilities; /* PostgreSQL array text, e.g. {send,read} */
	const char *topic_scopes; /* array text, NULL for every topic */
	const char *expires_at;   /* insert: seconds from now as decimal, or NULL; list: ISO text or NULL */
	const char *created_at, *last_used_at;
	int revoked;
};
int store_apikey_insert(struct admin_db *a, const struct apikey_admin_row *r);
int store_apikey_list(struct admin_db *a, const char *mesh_id,
		      void (*fn)(void *arg, const struct apikey_admin_row *r), void *arg);
/* revoke the live key of mesh_id whose id or prefix is which: how many (0 or
 * 1; a prefix shared by two keys revokes neither and returns 2), -1 error */
int store_apikey_revoke(struct admin_db *a, const char *mesh_id, const char *which);

struct audit_row {
	const char *id, *event_type;
	const char *actor; /* NULL when no member acted */
	const char *payload, *prev_hash, *hash, *created_at;
};
/* the next at most limit rows of mesh_id's chain after row id after (by id),
 * to fn until it returns nonzero; returns the page's row count, or -1 */
int store_audit_page(struct admin_db *a, const char *mesh_id, const char *after, int limit,
		     int (*fn)(void *arg, const struct audit_row *r), void *arg);
/* chain mesh_id's rows still waiting in mesh.audit_pending (mesh.audit_flush,
 * waiting for the chain lock), so that a reader after it sees every row an
 * event committed (a hello's row may wait there: issue 23); 0 or -1 */
int store_audit_settle(struct admin_db *a, const char *mesh_id);

#endif
