/* store_admin — meshctl's statements (see store_admin.h).  Every statement is
 * parameterized; result columns are named by the constants beside it. */
#include "db/store_admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/pq.h"

#define ISO_SQL(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
#define ADMIN_CONNECT_TIMEOUT "10"   /* seconds; the URL's own connect_timeout wins */
#define ADMIN_STATEMENT_TIMEOUT "30s" /* an admin command never waits forever on a lock */

struct admin_db {
	PGconn *c;
	char err[512];
};

/* first line of a libpq message, without the "ERROR:  " noise */
static void pq_line(const char *msg, char *buf, size_t cap)
{
	if (!msg || !*msg) {
		snprintf(buf, cap, "unknown error");
		return;
	}
	if (!strncmp(msg, "ERROR:  ", 8))
		msg += 8;
	size_t n = strcspn(msg, "\n");
	if (n >= cap)
		n = cap - 1;
	memcpy(buf, msg, n);
	buf[n] = 0;
}

static PGresult *exec(struct admin_db *a, const char *sql, int n, const char *const *params)
{
	PGresult *r = PQexecParams(a->c, sql, n, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		pq_line(r ? PQresultErrorMessage(r) : PQerrorMessage(a->c), a->err, sizeof a->err);
		PQclear(r);
		return NULL;
	}
	return r;
}

/* a statement whose result is not needed; 0 ok, -1 error */
static int run(struct admin_db *a, const char *sql, int n, const char *const *params)
{
	PGresult *r = exec(a, sql, n, params);
	PQclear(r);
	return r ? 0 : -1;
}

struct admin_db *store_admin_open(const char *url, char *err, size_t errlen)
{
	const char *const keys[] = {"connect_timeout", "application_name", "dbname", NULL};
	const char *const vals[] = {ADMIN_CONNECT_TIMEOUT, "meshctl", url, NULL};
	struct admin_db *a = calloc(1, sizeof *a);
	if (!a) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	a->c = PQconnectdbParams(keys, vals, 1);
	if (!a->c || PQstatus(a->c) != CONNECTION_OK) {
		pq_line(a->c ? PQerrorMessage(a->c) : NULL, err, errlen);
		store_admin_close(a);
		return NULL;
	}
	const char *p[] = {ADMIN_STATEMENT_TIMEOUT};
	if (run(a, "SELECT set_config('statement_timeout', $1, false)", 1, p) != 0) {
		snprintf(err, errlen, "%s", a->err);
		store_admin_close(a);
		return NULL;
	}
	return a;
}

void store_admin_close(struct admin_db *a)
{
	if (!a)
		return;
	PQfinish(a->c);
	free(a);
}

const char *store_admin_error(const struct admin_db *a) { return a->err; }

int store_admin_begin(struct admin_db *a) { return run(a, "BEGIN", 0, NULL); }
int store_admin_commit(struct admin_db *a) { return run(a, "COMMIT", 0, NULL); }
int store_admin_rollback(struct admin_db *a) { return run(a, "ROLLBACK", 0, NULL); }

/* copy column 0 of row 0 when there is a row: 1, 0 none, -1 error */
static int first_id(struct admin_db *a, PGresult *r, char *id, size_t cap)
{
	if (!r)
		return -1;
	int found = PQntuples(r) > 0;
	if (found && id)
		snprintf(id, cap, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	(void)a;
	return found;
}

/* ---- meshes ---- */

int store_mesh_by_slug(struct admin_db *a, const char *slug, char *id, size_t cap)
{
	const char *p[] = {slug};
	return first_id(a, exec(a, "SELECT id FROM mesh.mesh WHERE slug = $1", 1, p), id, cap);
}

int store_mesh_insert(struct admin_db *a, const struct mesh_row *m)
{
	const char *p[] = {m->id, m->name, m->slug, m->owner_pubkey, m->max_peers};
	PGresult *r = exec(a,
			   "INSERT INTO mesh.mesh (id, name, slug, owner_pubkey, max_peers) "
			   "VALUES ($1, $2, $3, $4, $5::integer) ON CONFLICT (slug) DO NOTHING RETURNING id",
			   5, p);
	if (!r)
		return -1;
	int inserted = PQntuples(r) == 1;
	PQclear(r);
	return inserted;
}

enum { MESH_ARCHIVED };
int store_mesh_state(struct admin_db *a, const char *mesh_id)
{
	const char *p[] = {mesh_id};
	PGresult *r = exec(a, "SELECT archived_at IS NOT NULL FROM mesh.mesh WHERE id = $1", 1, p);
	if (!r)
		return -1;
	int st = PQntuples(r) == 0 ? 0 : PQgetvalue(r, 0, MESH_ARCHIVED)[0] == 't' ? 2 : 1;
	PQclear(r);
	return st;
}

enum { GET_ID, GET_NAME, GET_SLUG, GET_OWNER, GET_MAX_PEERS, GET_ARCHIVED };
int store_mesh_get(struct admin_db *a, const char *which, struct mesh_row *m, int *archived)
{
	const char *p[] = {which};
	PGresult *r = exec(a,
			   "SELECT id, name, slug, owner_pubkey, max_peers::text, archived_at IS NOT NULL "
			   "FROM mesh.mesh WHERE id = $1 OR slug = $1 ORDER BY (id = $1) DESC LIMIT 1",
			   1, p);
	if (!r)
		return -1;
	int found = PQntuples(r) == 1;
	memset(m, 0, sizeof *m);
	if (found) {
		m->id = strdup(PQgetvalue(r, 0, GET_ID));
		m->name = strdup(PQgetvalue(r, 0, GET_NAME));
		m->slug = strdup(PQgetvalue(r, 0, GET_SLUG));
		m->owner_pubkey = strdup(PQgetvalue(r, 0, GET_OWNER));
		m->max_peers = PQgetisnull(r, 0, GET_MAX_PEERS) ? NULL : strdup(PQgetvalue(r, 0, GET_MAX_PEERS));
		*archived = PQgetvalue(r, 0, GET_ARCHIVED)[0] == 't';
	}
	PQclear(r);
	return found;
}

void store_mesh_row_free(struct mesh_row *m)
{
	free((char *)m->id);
	free((char *)m->name);
	free((char *)m->slug);
	free((char *)m->owner_pubkey);
	free((char *)m->max_peers);
	memset(m, 0, sizeof *m);
}

/* ---- invites ---- */

int store_invite_insert(struct admin_db *a, const struct invite_row *r, long long expires_at_unix)
{
	char max[24], exp[24];
	snprintf(max, sizeof max, "%ld", r->max_uses);
	snprintf(exp, sizeof exp, "%lld", expires_at_unix);
	const char *p[] = {r->id, r->mesh_id, r->token, max, r->role, exp};
	return run(a,
		   "INSERT INTO mesh.invite (id, mesh_id, token, max_uses, role, expires_at) "
		   "VALUES ($1, $2, mesh.invite_token_hash($3), $4::int, $5, to_timestamp($6::bigint))",
		   6, p);
}

enum { INV_ID, INV_TOKEN, INV_ROLE, INV_MAX, INV_USED, INV_EXPIRES, INV_REVOKED, INV_EXPIRED, INV_CREATED };
int store_invite_list(struct admin_db *a, const char *mesh_id,
		      void (*fn)(void *arg, const struct invite_row *r), void *arg)
{
	const char *p[] = {mesh_id};
	PGresult *r = exec(a,
			   "SELECT id, token, role, max_uses, used_count, " ISO_SQL("expires_at") ", "
			   "revoked_at IS NOT NULL, expires_at <= now(), " ISO_SQL("created_at") " "
			   "FROM mesh.invite WHERE mesh_id = $1 ORDER BY created_at DESC, id",
			   1, p);
	if (!r)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		struct invite_row row = {
			.id = PQgetvalue(r, i, INV_ID),
			.mesh_id = mesh_id,
			.token = PQgetvalue(r, i, INV_TOKEN),
			.role = PQgetvalue(r, i, INV_ROLE),
			.max_uses = strtol(PQgetvalue(r, i, INV_MAX), NULL, 10),
			.used_count = strtol(PQgetvalue(r, i, INV_USED), NULL, 10),
			.expires_at = PQgetvalue(r, i, INV_EXPIRES),
			.revoked = PQgetvalue(r, i, INV_REVOKED)[0] == 't',
			.expired = PQgetvalue(r, i, INV_EXPIRED)[0] == 't',
			.created_at = PQgetvalue(r, i, INV_CREATED),
		};
		fn(arg, &row);
	}
	PQclear(r);
	return 0;
}

int store_invite_revoke(struct admin_db *a, const char *mesh_id, const char *which)
{
	const char *p[] = {mesh_id, which};
	PGresult *r = exec(a,
			   "UPDATE mesh.invite SET revoked_at = now() WHERE mesh_id = $1 "
			   "AND (id = $2 OR token = mesh.invite_token_hash($2)) AND revoked_at IS NULL RETURNING id",
			   2, p);
	if (!r)
		return -1;
	int n = PQntuples(r);
	PQclear(r);
	return n > 0;
}

/* ---- API keys ---- */

int store_apikey_insert(struct admin_db *a, const struct apikey_admin_row *k)
{
	const char *p[] = {k->id,     k->mesh_id,      k->issuer_member_id, k->label,
			   k->secret_hash, k->prefix, k->capabilities,     k->topic_scopes, k->expires_at};
	return run(a,
		   "INSERT INTO mesh.api_key (id, mesh_id, issuer_member_id, label, secret_hash, prefix, "
		   "capabilities, topic_scopes, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7::text[], "
		   "$8::text[], now() + make_interval(secs => $9::bigint))",
		   9, p);
}

enum { AK_ID, AK_ISSUER, AK_LABEL, AK_PREFIX, AK_CAPS, AK_TOPICS, AK_EXPIRES, AK_CREATED, AK_USED, AK_REVOKED };
int store_apikey_list(struct admin_db *a, const char *mesh_id,
		      void (*fn)(void *arg, const struct apikey_admin_row *r), void *arg)
{
	const char *p[] = {mesh_id};
	PGresult *r = exec(a,
			   "SELECT id, issuer_member_id, label, prefix, capabilities::text, topic_scopes::text, "
			   ISO_SQL("expires_at") ", " ISO_SQL("created_at") ", " ISO_SQL("last_used_at") ", "
			   "revoked_at IS NOT NULL FROM mesh.api_key WHERE mesh_id = $1 ORDER BY created_at, id",
			   1, p);
	if (!r)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
#define AKV(col) (PQgetisnull(r, i, col) ? NULL : PQgetvalue(r, i, col))
		struct apikey_admin_row row = {
			.id = AKV(AK_ID), .mesh_id = mesh_id, .issuer_member_id = AKV(AK_ISSUER),
			.label = AKV(AK_LABEL), .prefix = AKV(AK_PREFIX), .capabilities = AKV(AK_CAPS),
			.topic_scopes = AKV(AK_TOPICS), .expires_at = AKV(AK_EXPIRES),
			.created_at = AKV(AK_CREATED), .last_used_at = AKV(AK_USED),
			.revoked = PQgetvalue(r, i, AK_REVOKED)[0] == 't',
		};
#undef AKV
		fn(arg, &row);
	}
	PQclear(r);
	return 0;
}

int store_apikey_revoke(struct admin_db *a, const char *mesh_id, const char *which)
{
	const char *p[] = {mesh_id, which};
	PGresult *r = exec(a,
			   "WITH k AS (SELECT id FROM mesh.api_key WHERE mesh_id = $1 AND (id = $2 OR prefix = $2) "
			   "AND revoked_at IS NULL), n AS (SELECT count(*) AS c FROM k) "
			   "UPDATE mesh.api_key SET revoked_at = now() WHERE id IN (SELECT id FROM k) "
			   "AND (SELECT c FROM n) = 1 RETURNING (SELECT c FROM n)",
			   2, p);
	if (!r)
		return -1;
	int n = PQntuples(r);
	PQclear(r);
	if (n == 0) {
		/* nothing revoked: none, or an ambiguous prefix */
		PGresult *c = exec(a,
				   "SELECT count(*) FROM mesh.api_key WHERE mesh_id = $1 AND (id = $2 OR prefix = $2) "
				   "AND revoked_at IS NULL",
				   2, p);
		if (!c)
			return -1;
		n = (int)strtol(PQgetvalue(c, 0, 0), NULL, 10);
		PQclear(c);
	}
	return n;
}

/* ---- members ---- */

enum { FIND_ID, FIND_REVOKED };
int store_member_find(struct admin_db *a, const char *mesh_id, const char *pubkey, char *id, size_t cap,
		      int *revoked)
{
	const char *p[] = {mesh_id, pubkey};
	PGresult *r = exec(a,
			   "SELECT id, revoked_at IS NOT NULL FROM mesh.member "
			   "WHERE mesh_id = $1 AND lower(peer_pubkey) = $2",
			   2, p);
	if (!r)
		return -1;
	int found = PQntuples(r) > 0;
	if (found) {
		snprintf(id, cap, "%s", PQgetvalue(r, 0, FIND_ID));
		*revoked = PQgetvalue(r, 0, FIND_REVOKED)[0] == 't';
	}
	PQclear(r);
	return found;
}

int store_member_insert(struct admin_db *a, const char *id, const char *mesh_id, const char *pubkey,
			const char *display_name, const char *role)
{
	const char *p[] = {id, mesh_id, pubkey, display_name, role};
	PGresult *r = exec(a,
			   "INSERT INTO mesh.member (id, mesh_id, peer_pubkey, display_name, role) "
			   "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (mesh_id, peer_pubkey) DO NOTHING "
			   "RETURNING id",
			   5, p);
	if (!r)
		return -1;
	int inserted = PQntuples(r) == 1;
	PQclear(r);
	return inserted;
}

enum { REVOKED_ID };
int store_mesh_archive(struct admin_db *a, const char *mesh_id)
{
	const char *p[] = {mesh_id};
	return first_id(
	    a,
	    exec(a, "UPDATE mesh.mesh SET archived_at = now() WHERE id = $1 AND archived_at IS NULL RETURNING id", 1,
	         p),
	    NULL, 0);
}

int store_member_revoke(struct admin_db *a, const char *mesh_id, const char *who,
			void (*fn)(void *arg, const char *id), void *arg)
{
	const char *p[] = {mesh_id, who};
	PGresult *r = exec(a,
			   "UPDATE mesh.member SET revoked_at = now() WHERE mesh_id = $1 "
			   "AND (id = $2 OR lower(peer_pubkey) = $2) AND revoked_at IS NULL "
			   "RETURNING id",
			   2, p);
	if (!r)
		return -1;
	int n = PQntuples(r);
	for (int i = 0; i < n; i++)
		fn(arg, PQgetvalue(r, i, REVOKED_ID));
	PQclear(r);
	return n;
}

int store_member_lookup(struct admin_db *a, const char *mesh_id, const char *who, char *id, size_t cap)
{
	const char *p[] = {mesh_id, who};
	return first_id(a,
			exec(a,
			     "SELECT id FROM mesh.member WHERE mesh_id = $1 "
			     "AND (id = $2 OR lower(peer_pubkey) = $2)",
			     2, p),
			id, cap);
}

enum { LIST_ID, LIST_PUBKEY, LIST_NAME, LIST_ROLE, LIST_REVOKED };
int store_member_list(struct admin_db *a, const char *mesh_id, void (*fn)(void *arg, const struct member_row *m),
		      void *arg)
{
	const char *p[] = {mesh_id};
	PGresult *r = exec(a,
			   "SELECT id, peer_pubkey, display_name, role, revoked_at IS NOT NULL "
			   "FROM mesh.member WHERE mesh_id = $1 ORDER BY joined_at, id",
			   1, p);
	if (!r)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		struct member_row m = {
			.id = PQgetvalue(r, i, LIST_ID),
			.pubkey = PQgetvalue(r, i, LIST_PUBKEY),
			.display_name = PQgetvalue(r, i, LIST_NAME),
			.role = PQgetvalue(r, i, LIST_ROLE),
			.revoked = PQgetvalue(r, i, LIST_REVOKED)[0] == 't',
		};
		fn(arg, &m);
	}
	PQclear(r);
	return 0;
}

/* ---- audit ---- */

enum { AUD_ID, AUD_EVENT, AUD_ACTOR, AUD_PAYLOAD, AUD_PREV_HASH, AUD_HASH, AUD_CREATED_AT };
int store_audit_page(struct admin_db *a, const char *mesh_id, const char *after, int limit,
		     int (*fn)(void *arg, const struct audit_row *r), void *arg)
{
	char lim[16];
	snprintf(lim, sizeof lim, "%d", limit);
	const char *p[] = {mesh_id, after, lim};
	PGresult *r = exec(a,
			   "SELECT id, event_type, actor_member_id, payload::text, prev_hash, hash, " ISO_SQL(
				   "created_at") " FROM mesh.audit_log WHERE mesh_id = $1 AND id > $2::bigint "
						 "ORDER BY id LIMIT $3::int",
			   3, p);
	if (!r)
		return -1;
	int n = PQntuples(r);
	for (int i = 0; i < n; i++) {
		struct audit_row row = {
			.id = PQgetvalue(r, i, AUD_ID),
			.event_type = PQgetvalue(r, i, AUD_EVENT),
			.actor = PQgetisnull(r, i, AUD_ACTOR) ? NULL : PQgetvalue(r, i, AUD_ACTOR),
			.payload = PQgetvalue(r, i, AUD_PAYLOAD),
			.prev_hash = PQgetvalue(r, i, AUD_PREV_HASH),
			.hash = PQgetvalue(r, i, AUD_HASH),
			.created_at = PQgetvalue(r, i, AUD_CREATED_AT),
		};
		if (fn(arg, &row))
			break;
	}
	PQclear(r);
	return n;
}

int store_audit_settle(struct admin_db *a, const char *mesh_id)
{
	const char *p[] = {mesh_id};
	return run(a, "SELECT mesh.audit_flush($1, true)", 1, p);
}
