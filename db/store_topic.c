/* store_topic — the topic statements (see store_topic.h).  Each statement
 * resolves the topic itself (TOPIC_SEEN), so a request is one round trip and
 * one transaction; result columns are named by the enum beside each. */
#include "db/store_call.h"
#include "db/store_topic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define ISO_SQL(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
/* the topic named by id or name (an id wins) in mesh m, as the member
 * (parameter) sees it: a private topic exists only
 * for its members, so a non-member gets exactly what a name that does not
 * exist gives (docs/protocol.md §5.1) */
#define TOPIC_SEEN(m, ref, member)                                                                                    \
	"SELECT x.id, x.name, x.encrypted_key_pubkey, x.key_epoch, x.visibility FROM mesh.topic x "                \
	"WHERE x.mesh_id = " m " AND (x.id = " ref " OR x.name = " ref ") AND x.archived_at IS NULL "              \
	"AND (x.visibility <> 'private' OR EXISTS (SELECT 1 FROM mesh.topic_member v WHERE v.topic_id = x.id "     \
	"AND v.member_id = " member ")) ORDER BY (x.id = " ref ") DESC LIMIT 1"
/* the caller (member parameter) is a member of t */
#define TOPIC_ME(member) "SELECT 1 FROM mesh.topic_member tm, t WHERE tm.topic_id = t.id AND tm.member_id = " member
/* ... and a lead of it */
#define TOPIC_LEAD(member) TOPIC_ME(member) " AND tm.role = 'lead'"

struct tcall {
	union {
		store_topic_cb topic;
		store_topic_id_cb id;
		store_topic_members_cb members;
		store_topic_member_cb member;
		store_topic_discard_cb discard;
		store_topic_history_cb history;
		store_topic_key_cb key;
		store_topic_pending_cb pending;
		store_topic_seal_cb seal;
		store_topic_post_cb post;
		store_notification_cb notif;
		store_topic_page_cb page;
		store_topic_read_cb read;
		store_topic_listing_cb listing;
		store_apikey_live_cb live;
	} cb;
	void *arg;
	int *notified; /* topic_post: where the count of notifications goes, or NULL */
	int other;     /* topic_discard: of another member's copy (a lead's reset) */
};

static int tsend(struct db *d, const char *sql, int n, const char *const *p, db_cb adapter, struct tcall c)
{
	return store_call_send(d, sql, n, p, adapter, &c, sizeof c);
}

/* ---- create, list ---- */

/* a row per outcome, its kind first: 'n' made now, 'm' the caller's own
 * (it is a member), 't' taken by a topic it is not in (nothing else said:
 * a private topic's id and visibility stay hidden), 'f' the mesh is full */
enum { TOP_ID, TOP_NAME, TOP_DESCRIPTION, TOP_VISIBILITY, TOP_MEMBERS, TOP_CREATED_AT, TOP_CREATED, TOP_KIND };
static const char topic_create_sql[] =
	"WITH ex AS (SELECT x.* FROM mesh.topic x WHERE x.mesh_id = $2 AND x.name = $3), "
	"cap AS (SELECT count(*) < $11::int AS ok FROM mesh.topic x WHERE x.mesh_id = $2 AND x.archived_at IS NULL), "
	"t AS (INSERT INTO mesh.topic (id, mesh_id, name, description, visibility, created_by, "
	"  encrypted_key_pubkey) SELECT $1, $2, $3, $4, $5, $6, $7 FROM cap WHERE cap.ok "
	"  AND NOT EXISTS (SELECT 1 FROM ex) ON CONFLICT (mesh_id, name) DO NOTHING "
	"  RETURNING id, name, description, visibility, created_at), "
	"m AS (INSERT INTO mesh.topic_member (topic_id, member_id, role) SELECT id, $6, 'lead' FROM t), "
	"k AS (INSERT INTO mesh.topic_member_key (id, topic_id, member_id, encrypted_key, nonce, sealed_by, epoch) "
	"  SELECT $8, id, $6, $9, $10, $6, 1 FROM t WHERE $9::text IS NOT NULL) "
	"SELECT id, name, description, visibility, 1, " ISO_SQL("created_at") ", true, 'n' FROM t "
	"UNION ALL SELECT x.id, x.name, x.description, x.visibility, "
	"  (SELECT count(*) FROM mesh.topic_member tm WHERE tm.topic_id = x.id), " ISO_SQL("x.created_at") ", false, "
	"  CASE WHEN EXISTS (SELECT 1 FROM mesh.topic_member tm WHERE tm.topic_id = x.id AND tm.member_id = $6) "
	"  AND x.archived_at IS NULL THEN 'm' ELSE 't' END FROM ex x "
	"UNION ALL SELECT NULL, NULL, NULL, NULL, 0, NULL, false, 'f' FROM cap "
	"  WHERE NOT cap.ok AND NOT EXISTS (SELECT 1 FROM ex)";

static const char topic_list_sql[] =
	"SELECT x.id, x.name, x.description, x.visibility, "
	"  (SELECT count(*) FROM mesh.topic_member tm WHERE tm.topic_id = x.id), " ISO_SQL("x.created_at") ", false, "
	"  'm' FROM mesh.topic x WHERE x.mesh_id = $1 AND x.archived_at IS NULL AND (x.visibility <> 'private' OR "
	"  EXISTS (SELECT 1 FROM mesh.topic_member tm WHERE tm.topic_id = x.id AND tm.member_id = $2)) "
	"  AND ($3::text IS NULL OR x.name > $3) ORDER BY x.name LIMIT $4::int + 1";

static void topic_adapter(void *arg, const PGresult *res, const char *err)
{
	struct tcall *c = arg;
	int n = err ? 0 : PQntuples(res);
	struct topic_row *rows = store_rows_alloc(n, sizeof *rows);
	for (int i = 0; i < n; i++) {
		char kind = PQgetvalue(res, i, TOP_KIND)[0];
		rows[i].st = kind == 't' ? TOPIC_NAME_TAKEN : kind == 'f' ? TOPIC_LIMIT : TOPIC_OK;
		if (rows[i].st != TOPIC_OK)
			continue;
		rows[i].id = PQgetvalue(res, i, TOP_ID);
		rows[i].name = PQgetvalue(res, i, TOP_NAME);
		rows[i].description = store_val(res, i, TOP_DESCRIPTION);
		rows[i].visibility = PQgetvalue(res, i, TOP_VISIBILITY);
		rows[i].member_count = strtol(PQgetvalue(res, i, TOP_MEMBERS), NULL, 10);
		rows[i].created_at = PQgetvalue(res, i, TOP_CREATED_AT);
		rows[i].created = store_is_true(res, i, TOP_CREATED);
	}
	c->cb.topic(c->arg, rows, n, err);
	free(rows);
	free(c);
}

int store_topic_create(struct db *d, const struct topic_new *t, store_topic_cb cb, void *arg)
{
	char cap[16];
	snprintf(cap, sizeof cap, "%d", t->max_topics);
	const char *p[] = {t->id,         t->mesh_id,    t->name,   t->description,   t->visibility, t->creator_id,
			   t->key_pubkey, t->key_id,     t->encrypted_key, t->key_nonce, cap};
	return tsend(d, topic_create_sql, 11, p, topic_adapter, (struct tcall){.cb.topic = cb, .arg = arg});
}

int store_topic_list(struct db *d, const char *mesh_id, const char *member_id, const char *after, int limit,
		     store_topic_cb cb, void *arg)
{
	char lim[16];
	snprintf(lim, sizeof lim, "%d", limit);
	const char *p[] = {mesh_id, member_id, after && *after ? after : NULL, lim};
	return tsend(d, topic_list_sql, 4, p, topic_adapter, (struct tcall){.cb.topic = cb, .arg = arg});
}

/* ---- join, leave, mark read ---- */

static void id_adapter(void *arg, const PGresult *res, const char *err)
{
	struct tcall *c = arg;
	const char *id = !err && PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : NULL;
	c->cb.id(c->arg, id, err);
	free(c);
}

static int topic_id_stmt(struct db *d, const char *sql, int n, const char *const *p, store_topic_id_cb cb, void *arg)
{
	return tsend(d, sql, n, p, id_adapter, (struct tcall){.cb.id = cb, .arg = arg});
}

int store_topic_join(struct db *d, const char *mesh_id, const char *topic, const char *member_id, const char *role,
		     store_topic_id_cb cb, void *arg)
{
	const char *p[] = {mesh_id, topic, member_id, role};
	return topic_id_stmt(d,
			     "WITH t AS (" TOPIC_SEEN("$1", "$2", "$3") "), "
			     "j AS (INSERT INTO mesh.topic_member (topic_id, member_id, role) SELECT id, $3, $4 FROM t "
			     "  WHERE t.visibility <> 'private' ON CONFLICT (topic_id, member_id) DO NOTHING) "
			     "SELECT id FROM t",
			     4, p, cb, arg);
}

int store_topic_leave(struct db *d, const char *mesh_id, const char *topic, const char *member_id,
		      store_topic_id_cb cb, void *arg)
{
	const char *p[] = {mesh_id, topic, member_id};
	return topic_id_stmt(d,
			     "WITH t AS (" TOPIC_SEEN("$1", "$2", "$3") "), "
			     "l AS (DELETE FROM mesh.topic_member tm USING t WHERE tm.topic_id = t.id AND "
			     "  tm.member_id = $3 RETURNING tm.topic_id), "
			     "e AS (UPDATE mesh.topic x SET key_epoch = x.key_epoch + 1 FROM l "
			     "  WHERE x.id = l.topic_id AND x.encrypted_key_pubkey IS NOT NULL) "
			     "SELECT id FROM t",
			     3, p, cb, arg);
}

int store_topic_mark_read(struct db *d, const char *mesh_id, const char *topic, const char *member_id,
			  store_topic_id_cb cb, void *arg)
{
	const char *p[] = {mesh_id, topic, member_id};
	return topic_id_stmt(d,
			     "WITH t AS (" TOPIC_SEEN("$1", "$2", "$3") "), "
			     "u AS (UPDATE mesh.topic_member tm SET last_read_at = now() FROM t WHERE "
			     "  tm.topic_id = t.id AND tm.member_id = $3), "
			     "n AS (UPDATE mesh.notification x SET read_at = now() FROM t WHERE x.topic_id = t.id AND "
			     "  x.member_id = $3 AND x.read_at IS NULL) "
			     "SELECT id FROM t",
			     3, p, cb, arg);
}

/* ---- members ---- */

enum { TMB_TOPIC, TMB_ME, TMB_MEMBER, TMB_PUBKEY, TMB_NAME, TMB_ROLE, TMB_JOINED, TMB_READ };
static const char topic_members_sql[] =
	"WITH t AS (" TOPIC_SEEN("$1", "$2", "$3") "), me AS (" TOPIC_ME("$3") ") "
	"SELECT t.id, EXISTS (SELECT 1 FROM me), tm.member_id, m.peer_pubkey, m.display_name, tm.role, "
	ISO_SQL("tm.joined_at") ", " ISO_SQL("tm.last_read_at") " FROM t LEFT JOIN mesh.topic_member tm "
	"  ON tm.topic_id = t.id AND EXISTS (SELECT 1 FROM me) "
	"LEFT JOIN mesh.member m ON m.id = tm.member_id ORDER BY tm.joined_at, tm.member_id LIMIT 1000";

static void members_adapter(void *arg, const PGresult *res, const char *err)
{
	struct tcall *c = arg;
	int n = err ? 0 : PQntuples(res);
	enum store_topic_status st = !err && n == 0 ? TOPIC_NOT_FOUND : TOPIC_OK;
	const char *topic_id = n ? PQgetvalue(res, 0, TMB_TOPIC) : NULL;
	if (n && !store_is_true(res, 0, TMB_ME))
		st = TOPIC_NOT_MEMBER;
	if (st != TOPIC_OK || (n == 1 && PQgetisnull(res, 0, TMB_MEMBER)))
		n = 0;
	struct topic_member_row *rows = store_rows_alloc(n, sizeof *rows);
	for (int i = 0; i < n; i++) {
		rows[i].member_id = PQgetvalue(res, i, TMB_MEMBER);
		rows[i].pubkey = PQgetvalue(res, i, TMB_PUBKEY);
		rows[i].display_name = PQgetvalue(res, i, TMB_NAME);
		rows[i].role = PQgetvalue(res, i, TMB_ROLE);
		rows[i].joined_at = PQgetvalue(res, i, TMB_JOINED);
		rows[i].last_read_at = store_val(res, i, TMB_READ);
	}
	c->cb.members(c->arg, st, topic_id, rows, n, err);
	free(rows);
	free(c);
}

int store_topic_members(struct db *d, const char *mesh_id, const char *topic, const char *member_id,
			store_topic_members_cb cb, void *arg)
{
	const char *p[] = {mesh_id, topic, member_id};
	return tsend(d, topic_members_sql, 3, p, members_adapter, (struct tcall){.cb.members = cb, .arg = arg});
}

/* a lead adds (or sets the role of) a live mesh member named by id, pubkey or
 * display name, or removes one (a new key epoch when it was in an encrypted
 * topic); the change runs only when the caller is a lead */
enum { CHG_TOPIC, CHG_ME, CHG_LEAD, CHG_WHO, CHG_ROLE, CHG_DONE, CHG_EPOCH };
static const char topic_add_member_sql[] =
	"WITH t AS (" TOPIC_SEEN("$1", "$2", "$3") "), me AS (" TOPIC_ME("$3") "), ld AS (" TOPIC_LEAD("$3") "), "
	"w AS (SELECT m.id FROM mesh.member m WHERE m.mesh_id = $1 AND m.revoked_at IS NULL "
	"  AND (m.id = $4 OR m.peer_pubkey = lower($4) OR lower(m.display_name) = lower($4)) "
	"  ORDER BY (m.id = $4) DESC, (m.peer_pubkey = lower($4)) DESC LIMIT 1), "
	"i AS (INSERT INTO mesh.topic_member (topic_id, member_id, role) SELECT t.id, w.id, $5 FROM t, w "
	"  WHERE EXISTS (SELECT 1 FROM ld) ON CONFLICT (topic_id, member_id) DO UPDATE SET role = EXCLUDED.role "
	"  RETURNING member_id, role) "
	"SELECT t.id, EXISTS (SELECT 1 FROM me), EXISTS (SELECT 1 FROM ld), (SELECT id FROM w), "
	"  (SELECT role FROM i), EXISTS (SELECT 1 FROM i), t.key_epoch FROM t";
static const char topic_remove_member_sql[] =
	"WITH t AS (" TOPIC_SEEN("$1", "$2", "$3") "), me AS (" TOPIC_ME("$3") "), ld AS (" TOPIC_LEAD("$3") "), "
	"l AS (DELETE FROM mesh.topic_member tm USING t WHERE tm.topic_id = t.id AND tm.member_id = $4 "
	"  AND EXISTS (SELECT 1 FROM ld) RETURNING tm.member_id, tm.role), "
	"e AS (UPDATE mesh.topic x SET key_epoch = x.key_epoch + 1 FROM t WHERE x.id = t.id "
	"  AND x.encrypted_key_pubkey IS NOT NULL AND EXISTS (SELECT 1 FROM l) RETURNING x.key_epoch) "
	"SELECT t.id, EXISTS (SELECT 1 FROM me), EXISTS (SELECT 1 FROM ld), (SELECT member_id FROM l), "
	"  (SELECT role FROM l), EXISTS (SELECT 1 FROM l), coalesce((SELECT key_epoch FROM e), t.key_epoch) FROM t";

static void member_change_adapter(void *arg, const PGresult *res, const char *err)
{
	struct tcall *c = arg;
	enum store_topic_status st = TOPIC_OK;
	const char *topic_id = NULL, *who = NULL, *role = NULL;
	int epoch = 0;
	if (!err && PQntuples(res) == 0) {
		st = TOPIC_NOT_FOUND;
	} else if (!err) {
		topic_id = PQgetvalue(res, 0, CHG_TOPIC);
		who = store_val(res, 0, CHG_WHO);
		role = store_val(res, 0, CHG_ROLE);
		epoch = atoi(PQgetvalue(res, 0, CHG_EPOCH));
		if (!store_is_true(res, 0, CHG_ME))
			st = TOPIC_NOT_MEMBER;
		else if (!store_is_true(res, 0, CHG_LEAD))
			st = TOPIC_NOT_LEAD;
		else if (!store_is_true(res, 0, CHG_DONE))
			st = TOPIC_NO_SUCH_MEMBER;
	}
	c->cb.member(c->arg, st, topic_id, who, role, epoch, err);
	free(c);
}

int store_topic_member_change(struct db *d, const struct topic_member_change *m, store_topic_member_cb cb, void *arg)
{
	const char *p[] = {m->mesh_id, m->topic, m->caller_id, m->who, m->role};
	return tsend(d, m->remove ? topic_remove_member_sql : topic_add_member_sql, m->remove ? 4 : 5, p,
		     member_change_adapter, (struct tcall){.cb.member = cb, .arg = arg});
}

/* ---- history ---- */

enum { HIS_TOPIC, HIS_MEMBER, HIS_ID, HIS_SENDER, HIS_NONCE, HIS_CIPHERTEXT, HIS_CREATED, HIS_VERSION, HIS_EPOCH };
static const char topic_history_sql[] =
	"WITH t AS (" TOPIC_SEEN("$1", "$2", "$3") "), me AS (" TOPIC_ME("$3") "), "
	"b AS (SELECT x.created_at, x.id FROM mesh.topic_message x, t WHERE x.id = $5 AND x.topic_id = t.id) "
	"SELECT t.id, EXISTS (SELECT 1 FROM me), h.id, s.peer_pubkey, h.nonce, h.ciphertext, " ISO_SQL(
		"h.created_at") ", h.body_version, h.key_epoch "
				"FROM t LEFT JOIN LATERAL (SELECT y.* FROM (SELECT x.*, sum(length(x.nonce) + "
				"  length(x.ciphertext)) OVER (ORDER BY x.created_at DESC, x.id DESC) AS bytes, "
				"  row_number() OVER (ORDER BY x.created_at DESC, x.id DESC) AS rn "
				"  FROM mesh.topic_message x WHERE x.topic_id = t.id "
				"  AND EXISTS (SELECT 1 FROM me) AND ($5::text IS NULL OR (x.created_at, x.id) < "
				"  (SELECT b.created_at, b.id FROM b)) "
				"  ORDER BY x.created_at DESC, x.id DESC LIMIT $4::int) y WHERE y.rn = 1 OR y.bytes <= $6::bigint) "
				"  h ON true "
				"LEFT JOIN mesh.member s ON s.id = h.sender_member_id "
				"ORDER BY h.created_at DESC, h.id DESC";

static void history_adapter(void *arg, const PGresult *res, const char *err)
{
	struct tcall *c = arg;
	int n = err ? 0 : PQntuples(res);
	enum store_topic_status st = TOPIC_OK;
	const char *topic_id = NULL;
	if (!err && n == 0)
		st = TOPIC_NOT_FOUND;
	else if (!err && !store_is_true(res, 0, HIS_MEMBER))
		st = TOPIC_NOT_MEMBER;
	if (n)
		topic_id = PQgetvalue(res, 0, HIS_TOPIC);
	if (st != TOPIC_OK || (n == 1 && PQgetisnull(res, 0, HIS_ID)))
		n = 0;
	struct topic_message_row *rows = store_rows_alloc(n, sizeof *rows);
	for (int i = 0; i < n; i++) {
		rows[i].id = PQgetvalue(res, i, HIS_ID);
		rows[i].sender_pubkey = PQgetvalue(res, i, HIS_SENDER);
		rows[i].nonce = PQgetvalue(res, i, HIS_NONCE);
		rows[i].ciphertext = PQgetvalue(res, i, HIS_CIPHERTEXT);
		rows[i].created_at = PQgetvalue(res, i, HIS_CREATED);
		rows[i].body_version = atoi(PQgetvalue(res, i, HIS_VERSION));
		rows[i].key_epoch = store_val(res, i, HIS_EPOCH) ? atoi(PQgetvalue(res, i, HIS_EPOCH)) : 0;
	}
	c->cb.history(c->arg, st, topic_id, rows, n, err);
	free(rows);
	free(c);
}

int store_topic_history(struct db *d, const char *mesh_id, const char *topic, const char *member_id, int limit,
			const char *before_id, store_topic_history_cb cb, void *arg)
{
	char lim[16];
	snprintf(lim, sizeof lim, "%d", limit);
	char cap[24];
	snprintf(cap, sizeof cap, "%d", STORE_HISTORY_BYTES_MAX);
	const char *p[] = {mesh_id, topic, member_id, lim, before_id, cap};
	return tsend(d, topic_history_sql, 6, p, history_adapter, (struct tcall){.cb.history = cb, .arg = arg});
}

/* ---- keys ---- */

/* the topic, the caller's membership, then one row per copy it holds (newest
 * epoch first; one row with NULL copy columns when none); a non-member gets
 * no copy, not even of the epochs it was once sealed */
enum {
	KEY_TOPIC, KEY_NAME, KEY_ENCRYPTED, KEY_ME, KEY_CURRENT, KEY_EPOCH, KEY_SEALED, KEY_NONCE, KEY_SEALED_BY,
	KEY_CREATED
};
static const char topic_key_sql[] =
	"WITH t AS (" TOPIC_SEEN("$1", "$2", "$3") "), me AS (" TOPIC_ME("$3") ") "
	"SELECT t.id, t.name, t.encrypted_key_pubkey IS NOT NULL, EXISTS (SELECT 1 FROM me), t.key_epoch, k.epoch, "
	"  k.encrypted_key, k.nonce, k.sealed_by, " ISO_SQL("k.created_at") " FROM t "
	"LEFT JOIN mesh.topic_member_key k ON k.topic_id = t.id AND k.member_id = $3 AND EXISTS (SELECT 1 FROM me) "
	"ORDER BY k.epoch DESC LIMIT 1000";

static void key_adapter(void *arg, const PGresult *res, const char *err)
{
	struct tcall *c = arg;
	struct topic_key_row k = {0};
	struct topic_key_copy *copies = NULL;
	enum store_topic_status st = TOPIC_OK;
	int n = err ? 0 : PQntuples(res);
	if (!err && n == 0) {
		st = TOPIC_NOT_FOUND;
	} else if (!err) {
		k.topic_id = PQgetvalue(res, 0, KEY_TOPIC);
		k.name = PQgetvalue(res, 0, KEY_NAME);
		k.current_epoch = atoi(PQgetvalue(res, 0, KEY_CURRENT));
		if (PQgetisnull(res, 0, KEY_SEALED))
			n = 0;
		copies = store_rows_alloc(n, sizeof *copies);
		for (int i = 0; i < n; i++) {
			copies[i].epoch = atoi(PQgetvalue(res, i, KEY_EPOCH));
			copies[i].encrypted_key = PQgetvalue(res, i, KEY_SEALED);
			copies[i].nonce = PQgetvalue(res, i, KEY_NONCE);
			copies[i].sealed_by = store_val(res, i, KEY_SEALED_BY);
			copies[i].created_at = PQgetvalue(res, i, KEY_CREATED);
		}
		k.copies = copies;
		k.n_copies = n;
		if (n) {
			k.epoch = copies[0].epoch;
			k.encrypted_key = copies[0].encrypted_key;
			k.nonce = copies[0].nonce;
			k.sealed_by = copies[0].sealed_by;
			k.created_at = copies[0].created_at;
		}
		if (!store_is_true(res, 0, KEY_ME))
			st = TOPIC_NOT_MEMBER;
		else if (!store_is_true(res, 0, KEY_ENCRYPTED))
			st = TOPIC_UNENCRYPTED;
		else if (!n)
			st = TOPIC_NOT_SEALED;
	}
	c->cb.key(c->arg, st, err ? NULL : &k, err);
	free(copies);
	free(c);
}

int store_topic_key(struct db *d, const char *mesh_id, const char *topic, const char *member_id,
		    store_topic_key_cb cb, void *arg)
{
	const char *p[] = {mesh_id, topic, member_id};
	return tsend(d, topic_key_sql, 3, p, key_adapter, (struct tcall){.cb.key = cb, .arg = arg});
}

enum { PEN_TOPIC, PEN_NAME, PEN_SENDER, PEN_ME, PEN_MEMBER, PEN_PUBKEY, PEN_DISPLAY, PEN_EPOCH };
static const char topic_pending_sql[] =
	"WITH t AS (" TOPIC_SEEN("$1", "$2", "$3") "), me AS (" TOPIC_ME("$3") ") "
	"SELECT t.id, t.name, t.encrypted_key_pubkey, EXISTS (SELECT 1 FROM me), p.id, p.peer_pubkey, "
	"  p.display_name, t.key_epoch FROM t LEFT JOIN LATERAL (SELECT m.id, m.peer_pubkey, m.display_name "
	"  FROM mesh.topic_member tm JOIN mesh.member m ON m.id = tm.member_id AND m.revoked_at IS NULL "
	"  WHERE tm.topic_id = t.id AND EXISTS (SELECT 1 FROM me) AND NOT EXISTS (SELECT 1 FROM "
	"  mesh.topic_member_key k WHERE k.topic_id = t.id AND k.member_id = tm.member_id AND k.epoch = t.key_epoch) "
	"  ORDER BY tm.joined_at, tm.member_id LIMIT $4::int) p ON true";

static void pending_adapter(void *arg, const PGresult *res, const char *err)
{
	struct tcall *c = arg;
	int n = err ? 0 : PQntuples(res);
	enum store_topic_status st = TOPIC_OK;
	const char *topic_id = NULL, *name = NULL, *sender = NULL;
	int epoch = 0;
	if (!err && n == 0)
		st = TOPIC_NOT_FOUND;
	else if (!err && !store_is_true(res, 0, PEN_ME))
		st = TOPIC_NOT_MEMBER;
	if (n) {
		topic_id = PQgetvalue(res, 0, PEN_TOPIC);
		name = PQgetvalue(res, 0, PEN_NAME);
		sender = store_val(res, 0, PEN_SENDER);
		epoch = atoi(PQgetvalue(res, 0, PEN_EPOCH));
	}
	if (st != TOPIC_OK || (n == 1 && PQgetisnull(res, 0, PEN_MEMBER)))
		n = 0;
	struct topic_pending_row *rows = store_rows_alloc(n, sizeof *rows);
	for (int i = 0; i < n; i++) {
		rows[i].member_id = PQgetvalue(res, i, PEN_MEMBER);
		rows[i].pubkey = PQgetvalue(res, i, PEN_PUBKEY);
		rows[i].display_name = PQgetvalue(res, i, PEN_DISPLAY);
	}
	c->cb.pending(c->arg, st, topic_id, name, sender, epoch, rows, n, err);
	free(rows);
	free(c);
}

int store_topic_pending(struct db *d, const char *mesh_id, const char *topic, const char *member_id, int limit,
			store_topic_pending_cb cb, void *arg)
{
	char lim[16];
	snprintf(lim, sizeof lim, "%d", limit);
	const char *p[] = {mesh_id, topic, member_id, lim};
	return tsend(d, topic_pending_sql, 4, p, pending_adapter, (struct tcall){.cb.pending = cb, .arg = arg});
}

/* never overwrite: the insert runs only when every check passed, and ON
 * CONFLICT keeps a copy sealed concurrently.  Only a holder of the current
 * epoch's copy seals it for others, so a member without the key cannot plant
 * a bogus copy; the epoch's first copy is a lead's (the creator's at
 * creation, the rotating lead's after a departure). */
enum { SEAL_TOPIC, SEAL_RECIPIENT, SEAL_EXISTS, SEAL_CALLER, SEAL_HOLDER, SEAL_AT };
static const char topic_seal_sql[] =
	"WITH t AS (" TOPIC_SEEN("$1", "$2", "$3") "), "
	"r AS (SELECT 1 FROM mesh.topic_member tm JOIN mesh.member m ON m.id = tm.member_id AND m.revoked_at IS NULL, "
	"  t WHERE tm.topic_id = t.id AND tm.member_id = $4), "
	"e AS (SELECT 1 FROM mesh.topic_member_key k, t WHERE k.topic_id = t.id AND k.member_id = $4 "
	"  AND k.epoch = t.key_epoch), "
	"me AS (" TOPIC_ME("$3") "), "
	"h AS (SELECT 1 FROM t WHERE EXISTS (SELECT 1 FROM mesh.topic_member_key k WHERE k.topic_id = t.id "
	"  AND k.member_id = $3 AND k.epoch = t.key_epoch) OR (EXISTS (" TOPIC_LEAD("$3") ") AND NOT EXISTS "
	"  (SELECT 1 FROM mesh.topic_member_key k WHERE k.topic_id = t.id AND k.epoch = t.key_epoch))), "
	"i AS (INSERT INTO mesh.topic_member_key (id, topic_id, member_id, encrypted_key, nonce, sealed_by, epoch) "
	"  SELECT $5, t.id, $4, $6, $7, $3, t.key_epoch FROM t WHERE EXISTS (SELECT 1 FROM r) "
	"  AND EXISTS (SELECT 1 FROM me) AND EXISTS (SELECT 1 FROM h) AND NOT EXISTS (SELECT 1 FROM e) "
	"  ON CONFLICT (topic_id, member_id, epoch) DO NOTHING RETURNING created_at) "
	"SELECT t.id, EXISTS (SELECT 1 FROM r), EXISTS (SELECT 1 FROM e), EXISTS (SELECT 1 FROM me), "
	"  EXISTS (SELECT 1 FROM h), (SELECT " ISO_SQL("i.created_at") " FROM i) FROM t";

static void seal_adapter(void *arg, const PGresult *res, const char *err)
{
	struct tcall *c = arg;
	enum store_topic_status st = TOPIC_OK;
	const char *topic_id = NULL, *at = NULL;
	if (!err && PQntuples(res) == 0) {
		st = TOPIC_NOT_FOUND;
	} else if (!err) {
		topic_id = PQgetvalue(res, 0, SEAL_TOPIC);
		at = store_val(res, 0, SEAL_AT);
		/* who asks before what it finds: a non-member learns nothing of
		 * the topic's members or copies */
		if (!store_is_true(res, 0, SEAL_CALLER))
			st = TOPIC_NOT_MEMBER;
		else if (!store_is_true(res, 0, SEAL_HOLDER))
			st = TOPIC_NOT_KEY_HOLDER;
		else if (!store_is_true(res, 0, SEAL_RECIPIENT))
			st = TOPIC_NO_RECIPIENT;
		else if (store_is_true(res, 0, SEAL_EXISTS))
			st = TOPIC_ALREADY_SEALED;
		else if (!at)
			st = TOPIC_ALREADY_SEALED; /* sealed concurrently */
	}
	c->cb.seal(c->arg, st, topic_id, at, err);
	free(c);
}

int store_topic_seal(struct db *d, const struct topic_seal *s, store_topic_seal_cb cb, void *arg)
{
	const char *p[] = {s->mesh_id, s->topic, s->sealer_id, s->recipient_id, s->key_id, s->encrypted_key, s->nonce};
	return tsend(d, topic_seal_sql, 7, p, seal_adapter, (struct tcall){.cb.seal = cb, .arg = arg});
}

/* a member discards its own copy of the current epoch (one that does not
 * open), or a lead any member's: it shows in the pending seals again */
enum { DIS_TOPIC, DIS_ME, DIS_LEAD, DIS_RECIPIENT, DIS_DONE, DIS_EPOCH };
static const char topic_discard_sql[] =
	"WITH t AS (" TOPIC_SEEN("$1", "$2", "$3") "), me AS (" TOPIC_ME("$3") "), ld AS (" TOPIC_LEAD("$3") "), "
	"r AS (SELECT 1 FROM mesh.topic_member tm, t WHERE tm.topic_id = t.id AND tm.member_id = $4), "
	"d AS (DELETE FROM mesh.topic_member_key k USING t WHERE k.topic_id = t.id AND k.member_id = $4 "
	"  AND k.epoch = t.key_epoch AND EXISTS (SELECT 1 FROM me) AND ($4 = $3 OR EXISTS (SELECT 1 FROM ld)) "
	"  RETURNING k.id) "
	"SELECT t.id, EXISTS (SELECT 1 FROM me), EXISTS (SELECT 1 FROM ld), EXISTS (SELECT 1 FROM r), "
	"  EXISTS (SELECT 1 FROM d), t.key_epoch FROM t";

static void discard_adapter(void *arg, const PGresult *res, const char *err)
{
	struct tcall *c = arg;
	enum store_topic_status st = TOPIC_OK;
	const char *topic_id = NULL;
	int epoch = 0;
	if (!err && PQntuples(res) == 0) {
		st = TOPIC_NOT_FOUND;
	} else if (!err) {
		topic_id = PQgetvalue(res, 0, DIS_TOPIC);
		epoch = atoi(PQgetvalue(res, 0, DIS_EPOCH));
		if (!store_is_true(res, 0, DIS_ME))
			st = TOPIC_NOT_MEMBER;
		else if (c->other && !store_is_true(res, 0, DIS_LEAD))
			st = TOPIC_NOT_LEAD;
		else if (!store_is_true(res, 0, DIS_RECIPIENT))
			st = TOPIC_NO_RECIPIENT;
		else if (!store_is_true(res, 0, DIS_DONE))
			st = TOPIC_NOT_SEALED;
	}
	c->cb.discard(c->arg, st, topic_id, epoch, err);
	free(c);
}

int store_topic_discard(struct db *d, const char *mesh_id, const char *topic, const char *caller_id,
			const char *recipient_id, store_topic_discard_cb cb, void *arg)
{
	int own = !recipient_id || !*recipient_id || strcmp(recipient_id, caller_id) == 0;
	const char *p[] = {mesh_id, topic, caller_id, own ? caller_id : recipient_id};
	return tsend(d, topic_discard_sql, 4, p, discard_adapter,
		     (struct tcall){.cb.discard = cb, .arg = arg, .other = !own});
}

/* ---- posting ---- */

/* rows: ('t', topic id) when the topic exists, ('q', topic id) when posted,
 * ('r', member id) per recipient */
enum { POST_KIND, POST_VALUE };
static const char topic_post_sql[] =
	"WITH t AS (" TOPIC_SEEN("$2", "$4", "$3") "), me AS (" TOPIC_ME("$3") "), "
	"q AS (INSERT INTO mesh.message_queue (id, mesh_id, sender_member_id, target_spec, priority, nonce, "
	"  ciphertext, topic_id, body_version) SELECT $1, $2, $3, '#' || t.id, $5, $6, $7, t.id, $8::int FROM t "
	"  WHERE EXISTS (SELECT 1 FROM me) RETURNING id, topic_id), "
	"h AS (INSERT INTO mesh.topic_message (id, topic_id, sender_member_id, nonce, ciphertext, body_version, "
	"  reply_to_id, key_epoch) SELECT q.id, q.topic_id, $3, $6, $7, $8::int, $11, t.key_epoch FROM q, t), "
	"r AS (SELECT tm.member_id FROM q, mesh.topic_member tm JOIN mesh.member m ON m.id = tm.member_id "
	"  WHERE tm.topic_id = q.topic_id AND tm.member_id <> $3 AND m.revoked_at IS NULL), "
	"d AS (INSERT INTO mesh.delivery (message_id, mesh_id, recipient_member_id, priority) "
	"  SELECT q.id, $2, r.member_id, $5 FROM q, r ORDER BY r.member_id RETURNING recipient_member_id), "
	"mn AS (SELECT m.id, row_number() OVER (ORDER BY m.id) AS n FROM mesh.member m, q WHERE m.mesh_id = $2 "
	"  AND m.revoked_at IS NULL AND m.id <> $3 AND lower(m.display_name) IN "
	"  (SELECT lower(x) FROM unnest($9::text[]) x)), "
	"n AS (INSERT INTO mesh.notification (id, mesh_id, topic_id, message_id, member_id, sender_member_id, kind) "
	"  SELECT ($10::text[])[mn.n::int], $2, q.topic_id, q.id, mn.id, $3, 'mention' FROM q, mn "
	"  WHERE mn.n <= cardinality($10::text[]) RETURNING id) "
	"SELECT 't', id FROM t UNION ALL SELECT 'q', topic_id FROM q UNION ALL SELECT 'r', recipient_member_id FROM d "
	"UNION ALL SELECT 'n', id FROM n";

static void post_adapter(void *arg, const PGresult *res, const char *err)
{
	struct tcall *c = arg;
	int n = err ? 0 : PQntuples(res), nr = 0, posted = 0, notified = 0;
	const char *topic_id = NULL;
	const char **ids = store_rows_alloc(n, sizeof *ids);
	for (int i = 0; i < n; i++) {
		char kind = PQgetvalue(res, i, POST_KIND)[0];
		const char *v = PQgetvalue(res, i, POST_VALUE);
		if (kind == 't')
			topic_id = v;
		else if (kind == 'q')
			posted = 1;
		else if (kind == 'n')
			notified++;
		else
			ids[nr++] = v;
	}
	if (c->notified)
		*c->notified = notified;
	enum store_topic_status st = !topic_id ? TOPIC_NOT_FOUND : posted ? TOPIC_OK : TOPIC_NOT_MEMBER;
	c->cb.post(c->arg, err ? TOPIC_OK : st, topic_id, ids, nr, err);
	free(ids);
	free(c);
}

int store_topic_post_counted(struct db *d, const struct topic_post *p, const char *reply_to, int *notified,
			     store_topic_post_cb cb, void *arg)
{
	char ver[8];
	snprintf(ver, sizeof ver, "%d", p->body_version);
	char *names = store_text_array(p->mentions, p->n_mentions),
	     *nids = store_text_array(p->notification_ids, p->n_mentions);
	const char *prm[] = {p->id, p->mesh_id, p->sender_id, p->topic, p->priority, p->nonce, p->ciphertext, ver,
			     names, nids, reply_to};
	int r = tsend(d, topic_post_sql, 11, prm, post_adapter,
		      (struct tcall){.cb.post = cb, .arg = arg, .notified = notified});
	free(names);
	free(nids);
	return r;
}

int store_topic_post(struct db *d, const struct topic_post *p, store_topic_post_cb cb, void *arg)
{
	return store_topic_post_counted(d, p, NULL, NULL, cb, arg);
}

/* ---- notifications ---- */

/* one row per notification after the asking member's own (mentionedAs),
 * which comes back alone when there are none */
enum {
	NOT_AS, NOT_ID, NOT_MESSAGE, NOT_TOPIC, NOT_TOPIC_NAME, NOT_SENDER_NAME, NOT_SENDER, NOT_CT, NOT_VERSION,
	NOT_KIND, NOT_READ, NOT_CREATED, NOT_MESH, NOT_SLUG, NOT_MESH_NAME
};
static const char notifications_sql[] =
	"SELECT mb.display_name, x.* FROM mesh.member mb LEFT JOIN LATERAL ("
	"  SELECT x.id, x.message_id, x.topic_id, t.name, s.display_name, s.peer_pubkey, tm.ciphertext, tm.body_version, "
	"  x.kind, " ISO_SQL("x.read_at") ", " ISO_SQL("x.created_at") ", me.id, me.slug, me.name "
	"  FROM mesh.notification x JOIN mesh.mesh me ON me.id = x.mesh_id "
	"  LEFT JOIN mesh.topic t ON t.id = x.topic_id LEFT JOIN mesh.member s ON s.id = x.sender_member_id "
	"  LEFT JOIN mesh.topic_message tm ON tm.id = x.message_id "
	"  WHERE x.member_id = $1 AND x.created_at >= to_timestamp($2::bigint / 1000.0) "
	"  AND (NOT $3::boolean OR x.read_at IS NULL) "
	"  AND ($4::text[] IS NULL OR t.name = ANY($4::text[]) OR t.id = ANY($4::text[])) "
	"  ORDER BY x.created_at DESC, x.id DESC LIMIT $5::int) x ON true WHERE mb.id = $1";

static void notif_adapter(void *arg, const PGresult *res, const char *err)
{
	struct tcall *c = arg;
	int n = err ? 0 : PQntuples(res);
	const char *as = n ? PQgetvalue(res, 0, NOT_AS) : NULL;
	if (n == 1 && PQgetisnull(res, 0, NOT_ID))
		n = 0;
	struct notification_row *rows = store_rows_alloc(n, sizeof *rows);
	for (int i = 0; i < n; i++) {
		rows[i].id = PQgetvalue(res, i, NOT_ID);
		rows[i].message_id = store_val(res, i, NOT_MESSAGE);
		rows[i].topic_id = store_val(res, i, NOT_TOPIC);
		rows[i].topic_name = store_val(res, i, NOT_TOPIC_NAME);
		rows[i].sender_name = store_val(res, i, NOT_SENDER_NAME);
		rows[i].sender_pubkey = store_val(res, i, NOT_SENDER);
		rows[i].ciphertext = store_val(res, i, NOT_CT);
		rows[i].body_version = store_val(res, i, NOT_VERSION) ? atoi(PQgetvalue(res, i, NOT_VERSION)) : 1;
		rows[i].kind = PQgetvalue(res, i, NOT_KIND);
		rows[i].read_at = store_val(res, i, NOT_READ);
		rows[i].created_at = PQgetvalue(res, i, NOT_CREATED);
		rows[i].mesh_id = PQgetvalue(res, i, NOT_MESH);
		rows[i].mesh_slug = PQgetvalue(res, i, NOT_SLUG);
		rows[i].mesh_name = PQgetvalue(res, i, NOT_MESH_NAME);
	}
	c->cb.notif(c->arg, as, rows, n, err);
	free(rows);
	free(c);
}

int store_notifications(struct db *d, const struct notification_query *q, store_notification_cb cb, void *arg)
{
	char since[24], lim[16];
	snprintf(since, sizeof since, "%lld", (long long)q->since_ms);
	snprintf(lim, sizeof lim, "%d", q->limit);
	char *scopes = q->n_scopes >= 0 ? store_text_array(q->scopes, q->n_scopes) : NULL;
	const char *p[] = {q->member_id, since, q->unread_only ? "true" : "false", scopes, lim};
	int r = tsend(d, notifications_sql, 5, p, notif_adapter, (struct tcall){.cb.notif = cb, .arg = arg});
	free(scopes);
	return r;
}

/* ---- REST pages and streams (§12.6): one topic's messages around a cursor ---- */

/* the topic, the caller's membership, whether the cursor is a message of it,
 * then the messages (one row with NULL message columns when none) */
enum {
	PG_TOPIC, PG_NAME, PG_MEMBER, PG_CURSOR, PG_ID, PG_SENDER, PG_PUBKEY, PG_SENDER_NAME, PG_NONCE, PG_CT,
	PG_VERSION, PG_CREATED, PG_REPLY_TO, PG_EPOCH
};
#define PAGE_SQL(cmp, order)                                                                                          \
	"WITH t AS (" TOPIC_SEEN("$1", "$2", "$3") "), me AS (" TOPIC_ME("$3") "), "                                          \
	"c AS (SELECT x.created_at, x.id FROM mesh.topic_message x, t WHERE x.id = $5 AND x.topic_id = t.id) "      \
	"SELECT t.id, t.name, EXISTS (SELECT 1 FROM me), EXISTS (SELECT 1 FROM c), h.id, h.sender_member_id, "       \
	"  s.peer_pubkey, s.display_name, h.nonce, h.ciphertext, h.body_version, " ISO_SQL("h.created_at") ", "    \
	"  h.reply_to_id, h.key_epoch "                                                                               \
	"FROM t LEFT JOIN LATERAL (SELECT y.* FROM (SELECT x.*, sum(length(x.nonce) + length(x.ciphertext)) "       \
	"  OVER (ORDER BY x.created_at " order ", x.id " order ") AS bytes, "                                       \
	"  row_number() OVER (ORDER BY x.created_at " order ", x.id " order ") AS rn "                              \
	"  FROM mesh.topic_message x WHERE x.topic_id = t.id AND EXISTS (SELECT 1 FROM me) AND " cmp " "            \
	"  ORDER BY x.created_at " order ", x.id " order " LIMIT $4::int) y "                                       \
	"  WHERE y.rn = 1 OR y.bytes <= $6::bigint) h ON true "                                                      \
	"LEFT JOIN mesh.member s ON s.id = h.sender_member_id ORDER BY h.created_at " order ", h.id " order
/* older than the cursor, newest first (an unknown cursor is none) */
static const char page_before_sql[] =
	PAGE_SQL("($5::text IS NULL OR NOT EXISTS (SELECT 1 FROM c) OR "
		 "(x.created_at, x.id) < (SELECT c.created_at, c.id FROM c)) AND $7::int >= 0", "DESC");
/* newer than the cursor, oldest first (an unknown cursor gives nothing; none
 * gives all), and older than $7 ms: created_at is taken before the commit, so
 * a row is read only once every post stamped before it has committed (else
 * a reader whose cursor passed it would never see a post that committed late) */
static const char page_after_sql[] =
	PAGE_SQL("($5::text IS NULL OR (EXISTS (SELECT 1 FROM c) AND "
		 "(x.created_at, x.id) > (SELECT c.created_at, c.id FROM c))) "
		 "AND x.created_at <= clock_timestamp() - make_interval(secs => $7::int / 1000.0)", "ASC");

static void page_adapter(void *arg, const PGresult *res, const char *err)
{
	struct tcall *c = arg;
	int n = err ? 0 : PQntuples(res), cursor = 0;
	enum store_topic_status st = TOPIC_OK;
	const char *topic_id = NULL, *name = NULL;
	if (!err && n == 0) {
		st = TOPIC_NOT_FOUND;
	} else if (!err) {
		topic_id = PQgetvalue(res, 0, PG_TOPIC);
		name = PQgetvalue(res, 0, PG_NAME);
		cursor = store_is_true(res, 0, PG_CURSOR);
		if (!store_is_true(res, 0, PG_MEMBER))
			st = TOPIC_NOT_MEMBER;
	}
	if (st != TOPIC_OK || (n == 1 && PQgetisnull(res, 0, PG_ID)))
		n = 0;
	struct topic_page_row *rows = store_rows_alloc(n, sizeof *rows);
	for (int i = 0; i < n; i++) {
		rows[i].id = PQgetvalue(res, i, PG_ID);
		rows[i].sender_member_id = PQgetvalue(res, i, PG_SENDER);
		rows[i].sender_pubkey = store_val(res, i, PG_PUBKEY);
		rows[i].sender_name = store_val(res, i, PG_SENDER_NAME);
		rows[i].nonce = PQgetvalue(res, i, PG_NONCE);
		rows[i].ciphertext = PQgetvalue(res, i, PG_CT);
		rows[i].body_version = atoi(PQgetvalue(res, i, PG_VERSION));
		rows[i].created_at = PQgetvalue(res, i, PG_CREATED);
		rows[i].reply_to = store_val(res, i, PG_REPLY_TO);
		rows[i].key_epoch = store_val(res, i, PG_EPOCH) ? atoi(PQgetvalue(res, i, PG_EPOCH)) : 0;
	}
	c->cb.page(c->arg, st, topic_id, name, cursor, rows, n, err);
	free(rows);
	free(c);
}

int store_topic_page(struct db *d, const struct topic_page_query *q, store_topic_page_cb cb, void *arg)
{
	char lim[16], cap[24];
	snprintf(lim, sizeof lim, "%d", q->limit);
	snprintf(cap, sizeof cap, "%d", STORE_HISTORY_BYTES_MAX);
	char settle[16];
	snprintf(settle, sizeof settle, "%d", q->settle_ms);
	const char *p[] = {q->mesh_id, q->topic, q->member_id, lim, q->cursor && *q->cursor ? q->cursor : NULL, cap,
			   settle};
	return tsend(d, q->after ? page_after_sql : page_before_sql, 7, p, page_adapter,
		     (struct tcall){.cb.page = cb, .arg = arg});
}

/* ---- PATCH topics/:name/read: the member's last_read_at, its notifications read ---- */

enum { RD_TOPIC, RD_NAME, RD_MEMBER, RD_AT };
static const char topic_read_sql[] =
	"WITH t AS (" TOPIC_SEEN("$1", "$2", "$3") "), "
	"u AS (UPDATE mesh.topic_member tm SET last_read_at = now() FROM t WHERE tm.topic_id = t.id "
	"  AND tm.member_id = $3 RETURNING tm.last_read_at), "
	"n AS (UPDATE mesh.notification x SET read_at = now() FROM t, u WHERE x.topic_id = t.id "
	"  AND x.member_id = $3 AND x.read_at IS NULL) "
	"SELECT t.id, t.name, EXISTS (SELECT 1 FROM u), (SELECT " ISO_SQL("u.last_read_at") " FROM u) FROM t";

static void read_adapter(void *arg, const PGresult *res, const char *err)
{
	struct tcall *c = arg;
	enum store_topic_status st = TOPIC_OK;
	const char *topic_id = NULL, *name = NULL, *at = NULL;
	if (!err && PQntuples(res) == 0) {
		st = TOPIC_NOT_FOUND;
	} else if (!err) {
		topic_id = PQgetvalue(res, 0, RD_TOPIC);
		name = PQgetvalue(res, 0, RD_NAME);
		at = store_val(res, 0, RD_AT);
		if (!store_is_true(res, 0, RD_MEMBER))
			st = TOPIC_NOT_MEMBER;
	}
	c->cb.read(c->arg, st, topic_id, name, at, err);
	free(c);
}

int store_topic_read(struct db *d, const char *mesh_id, const char *topic, const char *member_id,
		     store_topic_read_cb cb, void *arg)
{
	const char *p[] = {mesh_id, topic, member_id};
	return tsend(d, topic_read_sql, 3, p, read_adapter, (struct tcall){.cb.read = cb, .arg = arg});
}

/* ---- GET topics, me/topics: the topics a member sees, with its unread counts ---- */

enum { TL_ID, TL_NAME, TL_DESCRIPTION, TL_VISIBILITY, TL_CREATED, TL_MESH, TL_SLUG, TL_MESH_NAME, TL_UNREAD, TL_LAST };
static const char topic_listing_sql[] =
	"SELECT x.id, x.name, x.description, x.visibility, " ISO_SQL("x.created_at") ", me.id, me.slug, me.name, "
	"  (SELECT count(*) FROM mesh.topic_message m WHERE m.topic_id = x.id AND m.sender_member_id <> $2 "
	"   AND (tm.last_read_at IS NULL OR m.created_at > tm.last_read_at)), " ISO_SQL("lm.at") " "
	"FROM mesh.topic x JOIN mesh.mesh me ON me.id = x.mesh_id "
	"LEFT JOIN mesh.topic_member tm ON tm.topic_id = x.id AND tm.member_id = $2 "
	"LEFT JOIN LATERAL (SELECT max(m.created_at) AS at FROM mesh.topic_message m WHERE m.topic_id = x.id) lm ON true "
	"WHERE x.mesh_id = $1 AND x.archived_at IS NULL AND (x.visibility <> 'private' OR tm.member_id IS NOT NULL) "
	"  AND (NOT $4::boolean OR tm.member_id IS NOT NULL) "
	"  AND ($3::text[] IS NULL OR x.name = ANY($3::text[]) OR x.id = ANY($3::text[])) "
	"ORDER BY (CASE WHEN $4::boolean THEN lm.at END) DESC NULLS LAST, x.name LIMIT 1000";

static void listing_adapter(void *arg, const PGresult *res, const char *err)
{
	struct tcall *c = arg;
	int n = err ? 0 : PQntuples(res);
	struct topic_listing_row *rows = store_rows_alloc(n, sizeof *rows);
	for (int i = 0; i < n; i++) {
		rows[i].id = PQgetvalue(res, i, TL_ID);
		rows[i].name = PQgetvalue(res, i, TL_NAME);
		rows[i].description = store_val(res, i, TL_DESCRIPTION);
		rows[i].visibility = PQgetvalue(res, i, TL_VISIBILITY);
		rows[i].created_at = PQgetvalue(res, i, TL_CREATED);
		rows[i].mesh_id = PQgetvalue(res, i, TL_MESH);
		rows[i].mesh_slug = PQgetvalue(res, i, TL_SLUG);
		rows[i].mesh_name = PQgetvalue(res, i, TL_MESH_NAME);
		rows[i].unread = strtol(PQgetvalue(res, i, TL_UNREAD), NULL, 10);
		rows[i].last_message_at = store_val(res, i, TL_LAST);
	}
	c->cb.listing(c->arg, rows, n, err);
	free(rows);
	free(c);
}

int store_topic_listing(struct db *d, const char *mesh_id, const char *member_id, const char *const *scopes,
			int n_scopes, int mine, store_topic_listing_cb cb, void *arg)
{
	char *sc = n_scopes >= 0 ? store_text_array(scopes, n_scopes) : NULL;
	const char *p[] = {mesh_id, member_id, sc, mine ? "true" : "false"};
	int r = tsend(d, topic_listing_sql, 4, p, listing_adapter, (struct tcall){.cb.listing = cb, .arg = arg});
	free(sc);
	return r;
}

/* ---- a stream's key: still not revoked (expiry does not end a stream, §12.6) ---- */

static void key_live_adapter(void *arg, const PGresult *res, const char *err)
{
	struct tcall *c = arg;
	int live = !err && PQntuples(res) == 1;
	c->cb.live(c->arg, live, live ? store_val(res, 0, 0) : NULL, live ? store_val(res, 0, 1) : NULL, err);
	free(c);
}

int store_apikey_live(struct db *d, const char *key_id, store_apikey_live_cb cb, void *arg)
{
	const char *p[] = {key_id};
	return tsend(d,
		     "SELECT m.display_name, m.peer_pubkey FROM mesh.api_key k LEFT JOIN mesh.member m "
		     "ON m.id = k.issuer_member_id JOIN mesh.mesh ms ON ms.id = k.mesh_id WHERE k.id = $1 "
		     "AND k.revoked_at IS NULL AND m.revoked_at IS NULL AND ms.archived_at IS NULL",
		     1, p, key_live_adapter, (struct tcall){.cb.live = cb, .arg = arg});
}
