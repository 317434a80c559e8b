/* store — the worker's statements (see store.h).  Each statement sits next to
 * the constants that name its result columns; results are turned into typed
 * rows before the caller sees them. */
#include "db/migrations.h"
#include "db/store_call.h"
#include "db/store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "proto/apikey.h"
#include <cjson/cJSON.h>

#define ISO_SQL(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* The delivery rules of docs/protocol.md §3.4, written once.  A delivery row
 * is ours while claimed_by holds our presence id; it is done once
 * delivered_at is set.  Rows claimed by a connection that is no longer live
 * are free to claim again.  The two hot statements, the claim and the mark,
 * are plpgsql functions of migration 0004 (mesh.delivery_claim,
 * mesh.delivery_mark) written with the same rules, for their cached plans;
 * since migration 0014 the claim carries the marks of the previous pushes
 * (mesh.delivery_mark_claim; on one host since 0017 mesh.delivery_push_claim,
 * the same with the mark inline), and the mark alone is the idle flush; the
 * leave's marks and give-back are in mesh.presence_leave (migration 0016). */
#define DLV_UNDELIVERED "delivered_at IS NULL"
#define DLV_OURS(param) "claimed_by = " param
#define DLV_GIVE_BACK "SET claimed_by = NULL, claimed_at = NULL"
#define DLV_DELIVERED "SET delivered_at = now()"

/* one pending call: the caller's typed callback and argument */
struct call {
	union {
		store_member_cb member;
		store_sent_cb sent;
		store_delivery_cb delivery;
		store_count_cb count;
		store_done_cb done;
		store_apikey_cb apikey;
		store_text_cb text;
		store_join_cb join;
		store_hello_join_cb hello_join;
		store_leave_cb leave;
	} cb;
	void *arg;
	int n; /* store_messages_send: sends in the statement */
};

static int send_call(struct db *d, const char *sql, int n, const char *const *p, db_cb adapter, struct call c)
{
	return store_call_send(d, sql, n, p, adapter, &c, sizeof c);
}

/* a statement of every message (or hello, or leave): by name where the
 * connection allows (db.c: its own names on a direct connection, shared
 * ones through a pooler) */
static int send_call_hot(struct db *d, const char *sql, int n, const char *const *p, db_cb adapter, struct call c)
{
	return store_call_send_as(d, 1, sql, n, p, adapter, &c, sizeof c);
}

/* one number (the first cell), for store_count_cb */
enum { CNT_VALUE };
static void count_adapter(void *arg, const PGresult *res, const char *err)
{
	struct call *c = arg;
	int64_t v = 0;
	if (!err && !res)
		err = "no result";
	if (!err && PQntuples(res) > 0 && PQnfields(res) > 0)
		v = strtoll(PQgetvalue(res, 0, CNT_VALUE), NULL, 10);
	c->cb.count(c->arg, v, err);
	free(c);
}

/* "{a,b,c}" of n ids for a bigint[] parameter */
static char *id_array(const int64_t *ids, size_t n)
{
	size_t cap = n * 21 + 3, len = 0;
	char *arr = malloc(cap);
	if (!arr)
		log_fatal("out of memory");
	arr[len++] = '{';
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(arr + len, cap - len, "%s%" PRId64, i ? "," : "", ids[i]);
	arr[len++] = '}';
	arr[len] = 0;
	return arr;
}

static void text_adapter(void *arg, const PGresult *res, const char *err);

/* ---- hello ---- */

enum { MEM_ID, MEM_DISPLAY_NAME, MEM_REVOKED, MEM_ARCHIVED, MEM_MAX_PEERS, MEM_PENDING };
static const char hello_member_sql[] =
	"SELECT m.id, m.display_name, m.revoked_at IS NOT NULL, ms.archived_at IS NOT NULL, ms.max_peers, "
	"  (SELECT ps.status FROM mesh.pending_status ps WHERE ps.pid = $3::int AND ps.cwd = $4 "
	"   AND ps.expires_at > clock_timestamp() AND (ps.mesh_id IS NULL OR ps.mesh_id = $1) "
	"   AND (ps.member_id IS NULL OR ps.member_id = m.id) "
	"   ORDER BY ps.created_at DESC, ps.id DESC LIMIT 1) "
	"FROM mesh.member m JOIN mesh.mesh ms ON ms.id = m.mesh_id "
	"WHERE m.mesh_id = $1 AND m.peer_pubkey = $2";

static void member_adapter(void *arg, const PGresult *res, const char *err)
{
	struct call *c = arg;
	int n = err ? 0 : PQntuples(res);
	struct member_row *rows = n ? calloc((size_t)n, sizeof *rows) : NULL;
	if (n && !rows)
		log_fatal("out of memory");
	for (int i = 0; i < n; i++) {
		rows[i].id = PQgetvalue(res, i, MEM_ID);
		rows[i].display_name = PQgetvalue(res, i, MEM_DISPLAY_NAME);
		rows[i].revoked = strcmp(PQgetvalue(res, i, MEM_REVOKED), "t") == 0;
		rows[i].mesh_archived = strcmp(PQgetvalue(res, i, MEM_ARCHIVED), "t") == 0;
		rows[i].max_peers = PQgetisnull(res, i, MEM_MAX_PEERS) ? 0
								       : strtol(PQgetvalue(res, i, MEM_MAX_PEERS), NULL, 10);
		rows[i].pending_status = store_val(res, i, MEM_PENDING);
	}
	c->cb.member(c->arg, rows, n, err);
	free(rows);
	free(c);
}

int store_hello_member(struct db *d, const char *mesh_id, const char *pubkey, int pid, const char *cwd,
		       store_member_cb cb, void *arg)
{
	char pidbuf[24];
	snprintf(pidbuf, sizeof pidbuf, "%d", pid);
	const char *p[] = {mesh_id, pubkey, pidbuf, cwd};
	return send_call_hot(d, hello_member_sql, 4, p, member_adapter, (struct call){.cb.member = cb, .arg = arg});
}

/* ---- session keys ---- */

int store_session_key_claim(struct db *d, const char *mesh_id, const char *member_pubkey, const char *session,
			    store_text_cb cb, void *arg)
{
	const char *p[] = {mesh_id, member_pubkey, session};
	return send_call_hot(d, "SELECT mesh.session_key_claim($1, $2, $3)", 3, p, text_adapter,
			     (struct call){.cb.text = cb, .arg = arg});
}

/* ---- the hello's writes (mesh.hello_join, migration 0013) ---- */

enum { HJ_RESULT, HJ_DISPLAY_NAME, HJ_VISIBLE, HJ_AUDIT_PENDING, HJ_QUEUED };
static void hello_join_adapter(void *arg, const PGresult *res, const char *err)
{
	struct call *c = arg;
	if (!err && (!res || PQntuples(res) != 1 || PQnfields(res) <= HJ_AUDIT_PENDING))
		err = "mesh.hello_join: no result";
	if (err) {
		c->cb.hello_join(c->arg, NULL, err);
		free(c);
		return;
	}
	const char *v = store_val(res, 0, HJ_RESULT);
	struct hello_join_result r = {
		.ok = v && strcmp(v, "ok") == 0,
		.display_name = store_val(res, 0, HJ_DISPLAY_NAME),
		.visible = !store_val(res, 0, HJ_VISIBLE) || store_is_true(res, 0, HJ_VISIBLE),
		.audit_pending = store_is_true(res, 0, HJ_AUDIT_PENDING),
		/* migration 0022; before it (no column): assume there is */
		.queued = PQnfields(res) <= HJ_QUEUED || !store_val(res, 0, HJ_QUEUED) || store_is_true(res, 0, HJ_QUEUED),
	};
	c->cb.hello_join(c->arg, &r, NULL);
	free(c);
}

int store_hello_join(struct db *d, const struct hello_join *j, store_hello_join_cb cb, void *arg)
{
	const struct presence_row *r = &j->row;
	char pid[24], wpid[24], maxp[24];
	snprintf(pid, sizeof pid, "%d", r->pid);
	snprintf(wpid, sizeof wpid, "%d", r->worker_pid);
	snprintf(maxp, sizeof maxp, "%d", j->max_peers);
	const char *p[] = {j->check ? "true" : "false", maxp, r->presence_id, r->mesh_id, r->member_id, j->pubkey,
			   r->session_id, pid, r->cwd, r->status, r->status_source, r->display_name, r->hostname,
			   r->peer_type, r->channel, r->model, r->protocol_version, r->capabilities, r->groups,
			   r->broker_host, wpid, r->repo, r->host_id, j->session_pubkey, j->peer_role,
			   j->keep_groups ? "true" : "false", j->saved ? "true" : "false",
			   j->pending_delete ? "true" : "false", j->audit, j->actor_name};
	/* a statement of every hello: by its shared name through the bouncer
	 * (db.c), like a message's */
	return send_call_hot(d,
			 "SELECT * FROM mesh.hello_join($1::boolean, $2::int, $3, $4, $5, $6, $7, $8::int, $9, $10, "
			 "$11, $12, $13, $14, $15, $16, $17, $18::jsonb, $19::jsonb, $20, $21::int, $22, $23, $24, "
			 "$25, $26::boolean, $27::boolean, $28::boolean, $29, $30)",
			 30, p, hello_join_adapter, (struct call){.cb.hello_join = cb, .arg = arg});
}

/* ---- presence history ---- */

int store_presence_status(struct db *d, const char *presence_id, const char *status, const char *source)
{
	const char *p[] = {presence_id, status, source};
	return db_query(d,
			"UPDATE mesh.presence SET status = $2, status_source = $3, status_updated_at = now() "
			"WHERE id = $1",
			3, p, NULL, NULL);
}

int store_presence_disconnect(struct db *d, const char *presence_id)
{
	const char *p[] = {presence_id};
	return db_query(d, "UPDATE mesh.presence SET disconnected_at = now() WHERE id = $1", 1, p, NULL, NULL);
}

/* ---- pending hook statuses ---- */

static void done_adapter(void *arg, const PGresult *res, const char *err)
{
	(void)res;
	struct call *c = arg;
	c->cb.done(c->arg, err);
	free(c);
}

int store_pending_status_put(struct db *d, int64_t pid, const char *cwd, const char *status, int secs,
			     const char *mesh_id, const char *member_id, store_done_cb cb, void *arg)
{
	char pidbuf[24], secbuf[16];
	snprintf(pidbuf, sizeof pidbuf, "%lld", (long long)pid);
	snprintf(secbuf, sizeof secbuf, "%d", secs);
	const char *p[] = {pidbuf, cwd, status, secbuf, mesh_id, member_id};
	return send_call(d,
			 "WITH gc AS (DELETE FROM mesh.pending_status WHERE expires_at < clock_timestamp() - interval "
			 "'1 minute') "
			 "INSERT INTO mesh.pending_status (pid, cwd, status, expires_at, mesh_id, member_id) "
			 "VALUES ($1::int, $2, $3, clock_timestamp() + make_interval(secs => $4::int), $5, $6)",
			 6, p, done_adapter, (struct call){.cb.done = cb, .arg = arg});
}

/* ---- audit ---- */

/* The chain (docs/protocol.md §8, migration 0004): an event is chained in its
 * own transaction when the mesh's chain lock is free, else recorded in
 * mesh.audit_pending; the chain step queued right behind it (waiting for the
 * lock, committing without waiting for its WAL flush) chains what was left
 * pending, and costs an index probe when nothing was. */
int store_audit_append(struct db *d, const char *mesh_id, const char *event, const char *actor,
		       const char *actor_name, const char *canonical_payload)
{
	const char *p[] = {mesh_id, event, actor, actor_name, canonical_payload};
	if (db_query(d, "SELECT mesh.audit_record($1, $2, $3, $4, $5)", 5, p, NULL, NULL) != 0)
		return -1;
	return store_audit_flush(d, mesh_id, 1, NULL, NULL);
}

int store_audit_flush(struct db *d, const char *mesh_id, int wait, store_count_cb cb, void *arg)
{
	static const char sql[] = "SELECT mesh.audit_flush($1, $2::boolean)"; /* one key for both */
	const char *p[] = {mesh_id, wait ? "true" : "false"};
	if (!cb)
		return db_query_prepared(d, sql, 2, p, NULL, NULL);
	return send_call_hot(d, sql, 2, p, count_adapter, (struct call){.cb.count = cb, .arg = arg});
}

/* ---- send ---- */

enum { SENT_INDEX, SENT_MEMBER, SENT_STATUS, SENT_FIRST_ID, SENT_HAND_ID, SENT_HAND_AT };
/* One statement = one transaction: every send of the batch with its delivery
 * rows and audit rows (mesh.send_batch, migration 0005), or nothing.  The
 * acks wait for its commit.  When no id, target, priority, nonce or
 * ciphertext of the batch holds a comma (base64 ones never do) their columns
 * go comma-joined and are split by string_to_array, several times cheaper
 * than parsing a text[] literal (measured: 48 against 278 us for a 16 KiB
 * message's ciphertext); opaque fields that do go as text[] literals. */
static const char messages_send_sql[] =
	"SELECT i, member, status, first_id FROM mesh.send_batch($1, $2, $3, $4, string_to_array($5, ','), "
	"string_to_array($6, ','), string_to_array($7, ','), string_to_array($8, ','), string_to_array($9, ','), "
	"$10::text[], $11::text[], $12::text[], $13::text[]) ORDER BY i";
static const char messages_send_literal_sql[] =
	"SELECT i, member, status, first_id FROM mesh.send_batch($1, $2, $3, $4, $5::text[], $6::text[], "
	"$7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[]) ORDER BY i";
/* the same with the hand-over (migrations 0019, 0021): $14 the connections to
 * hand to (NULL elements: none); the statement of every send that goes alone,
 * whose message_sent row is always left pending (chained after the ack) */
static const char messages_hand_sql[] =
	"SELECT i, member, status, first_id, hand_id, hand_at FROM mesh.send_batch_hand($1, $2, $3, $4, "
	"string_to_array($5, ','), string_to_array($6, ','), string_to_array($7, ','), string_to_array($8, ','), "
	"string_to_array($9, ','), $10::text[], $11::text[], $12::text[], $13::text[], $14::text[]) ORDER BY i";
static const char messages_hand_literal_sql[] =
	"SELECT i, member, status, first_id, hand_id, hand_at FROM mesh.send_batch_hand($1, $2, $3, $4, "
	"$5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], "
	"$13::text[], $14::text[]) ORDER BY i";

/* v[0..n) joined by commas; NULL when one holds a comma (or is NULL) */
static char *comma_join(const char *const *v, int n)
{
	size_t cap = 1;
	for (int i = 0; i < n; i++) {
		if (!v[i] || strchr(v[i], ','))
			return NULL;
		cap += strlen(v[i]) + 1;
	}
	char *out = malloc(cap), *o = out;
	if (!out)
		log_fatal("out of memory");
	for (int i = 0; i < n; i++) {
		size_t len = strlen(v[i]);
		if (i)
			*o++ = ',';
		memcpy(o, v[i], len);
		o += len;
	}
	*o = 0;
	return out;
}

static void sent_adapter(void *arg, const PGresult *res, const char *err)
{
	struct call *c = arg;
	int n = c->n, nres = err ? 0 : PQntuples(res);
	struct sent_row *rows = store_rows_alloc(n, sizeof *rows);
	const char **ids = store_rows_alloc(nres, sizeof *ids);
	/* (i, member) per delivery row, (i, NULL) for a send stored without
	 * recipients, ordered by i: each send's members are contiguous; (0,
	 * NULL) when the audit rows were left pending; (i, NULL, status) for a
	 * client id stored before */
	int pending = 0;
	for (int r = 0, w = 0; r < nres; r++) {
		int i = atoi(PQgetvalue(res, r, SENT_INDEX)) - 1;
		if (i == -1)
			pending = 1;
		if (i < 0 || i >= n)
			continue;
		const char *st = store_val(res, r, SENT_STATUS);
		if (st) {
			rows[i].conflict = strcmp(st, "conflict") == 0;
			rows[i].first_id = rows[i].conflict ? NULL : store_val(res, r, SENT_FIRST_ID);
			continue;
		}
		if (!rows[i].stored) {
			rows[i].stored = 1;
			rows[i].recipients = ids + w;
		}
		if (!PQgetisnull(res, r, SENT_MEMBER)) {
			ids[w++] = PQgetvalue(res, r, SENT_MEMBER);
			rows[i].n++;
		}
		if (PQnfields(res) > SENT_HAND_AT && !PQgetisnull(res, r, SENT_HAND_ID) &&
		    !PQgetisnull(res, r, SENT_HAND_AT)) {
			rows[i].hand_id = strtoll(PQgetvalue(res, r, SENT_HAND_ID), NULL, 10);
			rows[i].hand_at = PQgetvalue(res, r, SENT_HAND_AT);
		}
	}
	c->cb.sent(c->arg, err ? NULL : rows, err ? 0 : n, pending, err);
	free(ids);
	free(rows);
	free(c);
}

#define SEND_COLS 9 /* ids, targets, priorities, nonces, ciphertexts, audit, client keys, client ids, fingerprints */
int store_messages_send(struct db *d, const struct message_row *m, int n, const char *actor_name, store_sent_cb cb,
			void *arg)
{
	if (n < 1)
		return -1;
	const char **col = malloc((size_t)n * sizeof *col);
	if (!col)
		log_fatal("out of memory");
	char *arr[SEND_COLS];
	int literal = 0;
	for (int k = 0; k < SEND_COLS; k++) {
		for (int i = 0; i < n; i++)
			col[i] = k == 0 ? m[i].id
			       : k == 1 ? m[i].target_spec
			       : k == 2 ? m[i].priority
			       : k == 3 ? m[i].nonce
			       : k == 4 ? m[i].ciphertext
			       : k == 5 ? m[i].audit
			       : k == 6 ? m[i].client_key
			       : k == 7 ? m[i].client_id
					: m[i].fingerprint;
		arr[k] = k < 5 && !literal ? comma_join(col, n) : store_text_array(col, n);
		if (!arr[k]) { /* a comma: the whole batch as literals, from the start */
			for (int j = 0; j < k; j++)
				free(arr[j]);
			literal = 1;
			k = -1;
		}
	}
	int hand = n == 1; /* a lone send: always send_batch_hand (0021) */
	for (int i = 0; i < n; i++) {
		col[i] = m[i].hand_to;
		hand |= m[i].hand_to != NULL;
	}
	char *hand_arr = hand ? store_text_array(col, n) : NULL;
	free(col);
	const char *p[] = {m[0].mesh_id, m[0].sender_member_id, actor_name, m[0].sender_session, arr[0], arr[1],
			   arr[2], arr[3], arr[4], arr[5], arr[6], arr[7], arr[8], hand_arr};
	const char *sql = hand ? (literal ? messages_hand_literal_sql : messages_hand_sql)
			       : (literal ? messages_send_literal_sql : messages_send_sql);
	int r = send_call_hot(d, sql, hand ? 14 : 13, p, sent_adapter, (struct call){.cb.sent = cb, .arg = arg, .n = n});
	for (int k = 0; k < SEND_COLS; k++)
		free(arr[k]);
	free(hand_arr);
	return r;
}

/* ---- delivery ---- */

enum { DLV_ID, DLV_MESSAGE_ID, DLV_MESH_ID, DLV_SENDER_PUBKEY, DLV_PRIORITY, DLV_NONCE, DLV_CIPHERTEXT,
       DLV_CREATED_AT, DLV_TOPIC_ID, DLV_BODY_VERSION, DLV_SENDER_MEMBER_PUBKEY, DLV_SENDER_MEMBER_ID,
       DLV_SENDER_NAME, DLV_CLIENT_MESSAGE_ID, DLV_REQUEST_FINGERPRINT, DLV_TOPIC_NAME };
/* mesh.delivery_claim (migration 0004) holds the claim's statement, so its
 * plan is cached per backend; it commits without waiting for the WAL flush
 * (a lost claim only frees its rows again).  mesh.delivery_mark_claim
 * (migration 0014) first marks the listed acknowledged pushes delivered, in
 * the claim's transaction: one statement per wake (issue 23) */
/* One host: mesh.delivery_push_claim (migration 0017) is 0014's mark and
 * claim with the mark's statement inline and the topic's name (the push's
 * "topic", §12.2) in its rows: this statement, unprepared behind PgBouncer
 * and so planned on every call, has nothing left to plan but the call */
static const char delivery_claim_sql[] =
	"SELECT * FROM mesh.delivery_push_claim($7::bigint[], $1, $2::text[], $3 = 'idle', $4, $5::int, $6)";
/* more than one host (store_delivery_claim_hosts): the live presences of the
 * member on other hosts join the worker's list of this host's, and a row
 * waits while an earlier one of its sender is held there (0015: the order
 * across a move off a dead or cut host) */
static const char delivery_claim_hosts_sql[] =
	"SELECT c.*, (SELECT t.name FROM mesh.topic t WHERE t.id = c.r_topic_id) "
	"FROM mesh.delivery_mark_claim_hosts($7::bigint[], $1, $2::text[], mesh.host_live_presences($8, $1), "
	"$3 = 'idle', $4, $5::int, $6) c";

static void delivery_adapter(void *arg, const PGresult *res, const char *err)
{
	struct call *c = arg;
	int n = err ? 0 : PQntuples(res);
	struct delivery_row *rows = n ? calloc((size_t)n, sizeof *rows) : NULL;
	if (n && !rows)
		log_fatal("out of memory");
	for (int i = 0; i < n; i++) {
		struct delivery_row *r = &rows[i];
		r->id = strtoll(PQgetvalue(res, i, DLV_ID), NULL, 10);
		r->message_id = PQgetvalue(res, i, DLV_MESSAGE_ID);
		r->mesh_id = PQgetvalue(res, i, DLV_MESH_ID);
		r->sender_pubkey = PQgetvalue(res, i, DLV_SENDER_PUBKEY);
		r->priority = PQgetvalue(res, i, DLV_PRIORITY);
		r->nonce = PQgetvalue(res, i, DLV_NONCE);
		r->ciphertext = PQgetvalue(res, i, DLV_CIPHERTEXT);
		r->created_at = PQgetvalue(res, i, DLV_CREATED_AT);
		r->topic_id = store_val(res, i, DLV_TOPIC_ID);
		r->body_version = PQgetvalue(res, i, DLV_BODY_VERSION);
		r->sender_member_pubkey = PQgetvalue(res, i, DLV_SENDER_MEMBER_PUBKEY);
		r->sender_member_id = PQgetvalue(res, i, DLV_SENDER_MEMBER_ID);
		r->sender_name = PQgetvalue(res, i, DLV_SENDER_NAME);
		r->client_message_id = store_val(res, i, DLV_CLIENT_MESSAGE_ID);
		r->request_fingerprint = store_val(res, i, DLV_REQUEST_FINGERPRINT);
		r->topic_name = store_val(res, i, DLV_TOPIC_NAME);
	}
	c->cb.delivery(c->arg, rows, n, err);
	free(rows);
	free(c);
}

int store_delivery_claim(struct db *d, const char *member_id, const char *const *live, size_t n_live, int idle,
			 const char *presence_id, const char *session, int limit, store_delivery_cb cb, void *arg)
{
	struct delivery_claim c = {member_id, live, n_live, idle, presence_id, session, limit, NULL, NULL, 0};
	return store_delivery_mark_claim(d, &c, cb, arg);
}

int store_delivery_claim_hosts(struct db *d, const char *member_id, const char *const *live, size_t n_live,
			       int idle, const char *presence_id, const char *session, int limit,
			       const char *host_id, store_delivery_cb cb, void *arg)
{
	struct delivery_claim c = {member_id, live, n_live, idle, presence_id, session, limit, host_id, NULL, 0};
	return store_delivery_mark_claim(d, &c, cb, arg);
}

int store_delivery_mark_claim(struct db *d, const struct delivery_claim *c, store_delivery_cb cb, void *arg)
{
	size_t cap = 3, len = 0;
	for (size_t i = 0; i < c->n_live; i++)
		cap += strlen(c->live[i]) + 1;
	char *arr = malloc(cap);
	if (!arr)
		log_fatal("out of memory");
	arr[len++] = '{';
	for (size_t i = 0; i < c->n_live; i++)
		len += (size_t)snprintf(arr + len, cap - len, "%s%s", i ? "," : "", c->live[i]);
	arr[len++] = '}';
	arr[len] = 0;
	char lim[16];
	snprintf(lim, sizeof lim, "%d", c->limit);
	char *marks = id_array(c->mark, c->n_mark);
	const char *p[] = {c->member_id, arr, c->idle ? "idle" : "busy", c->presence_id, lim, c->session, marks,
			   c->host_id};
	int r = send_call_hot(d, c->host_id ? delivery_claim_hosts_sql : delivery_claim_sql, c->host_id ? 8 : 7, p,
			      delivery_adapter, (struct call){.cb.delivery = cb, .arg = arg});
	free(marks);
	free(arr);
	return r;
}

int store_delivery_unclaim(struct db *d, const int64_t *ids, size_t n, const char *presence_id)
{
	char *arr = id_array(ids, n);
	const char *p[] = {arr, presence_id};
	int r = db_query(d,
			 "UPDATE mesh.delivery " DLV_GIVE_BACK " WHERE id = ANY($1::bigint[]) AND " DLV_OURS(
				 "$2") " AND " DLV_UNDELIVERED,
			 2, p, NULL, NULL);
	free(arr);
	return r;
}

int store_delivery_unclaim_all(struct db *d, const char *presence_id)
{
	const char *p[] = {presence_id};
	return db_query(d, "UPDATE mesh.delivery " DLV_GIVE_BACK " WHERE " DLV_OURS("$1") " AND " DLV_UNDELIVERED, 1,
			p, NULL, NULL);
}

/* UPDATE mesh.delivery SET delivered_at = now() WHERE id = ANY($1) AND
 * claimed_by = $2, in mesh.delivery_mark (migration 0004): a cached plan */
static const char delivery_mark_sql[] = "SELECT mesh.delivery_mark($1::bigint[], $2)";

int store_delivery_mark(struct db *d, const int64_t *ids, size_t n, const char *presence_id)
{
	char *arr = id_array(ids, n);
	const char *p[] = {arr, presence_id};
	int r = db_query_prepared(d, delivery_mark_sql, 2, p, NULL, NULL);
	free(arr);
	return r;
}

int store_delivery_client_ack(struct db *d, const char *message_id, const char *member_id, const char *presence_id)
{
	const char *p[] = {message_id, member_id, presence_id};
	return db_query(d,
			"UPDATE mesh.delivery " DLV_DELIVERED " WHERE message_id = $1 AND recipient_member_id = $2 "
			"AND " DLV_OURS("$3") " AND " DLV_UNDELIVERED,
			3, p, NULL, NULL);
}

int store_delivery_client_ack_cid(struct db *d, const char *client_id, const char *member_id,
				  const char *presence_id)
{
	const char *p[] = {client_id, member_id, presence_id};
	return db_query(d,
			"UPDATE mesh.delivery d " DLV_DELIVERED " FROM mesh.message_queue q WHERE q.id = d.message_id "
			"AND q.client_message_id = $1 AND d.recipient_member_id = $2 AND d." DLV_OURS("$3") " AND d."
			DLV_UNDELIVERED,
			3, p, NULL, NULL);
}

/* ---- API keys ---- */

enum { KEY_ID, KEY_MESH_ID, KEY_MEMBER_ID, KEY_PREFIX, KEY_CAPS, KEY_TOPICS };
/* a key works while it, its issuing member and its mesh are all live
 * (issue 22: a revoked member's or an archived mesh's key is refused even if
 * its own row was somehow not revoked with them) */
static const char apikey_use_sql[] =
	"UPDATE mesh.api_key k SET last_used_at = now() FROM mesh.mesh ms WHERE k.secret_hash = $1 "
	"AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now()) "
	"AND ms.id = k.mesh_id AND ms.archived_at IS NULL AND (k.issuer_member_id IS NULL OR EXISTS "
	"  (SELECT 1 FROM mesh.member m WHERE m.id = k.issuer_member_id AND m.revoked_at IS NULL)) "
	"RETURNING k.id, k.mesh_id, k.issuer_member_id, k.prefix, array_to_json(k.capabilities)::text, "
	"array_to_json(k.topic_scopes)::text";

static void apikey_adapter(void *arg, const PGresult *res, const char *err)
{
	struct call *c = arg;
	struct apikey_row row;
	memset(&row, 0, sizeof row);
	int found = !err && PQntuples(res) == 1;
	if (found) {
		snprintf(row.id, sizeof row.id, "%s", PQgetvalue(res, 0, KEY_ID));
		snprintf(row.mesh_id, sizeof row.mesh_id, "%s", PQgetvalue(res, 0, KEY_MESH_ID));
		snprintf(row.member_id, sizeof row.member_id, "%s", PQgetvalue(res, 0, KEY_MEMBER_ID));
		snprintf(row.prefix, sizeof row.prefix, "%s", PQgetvalue(res, 0, KEY_PREFIX));
		cJSON *caps = cJSON_Parse(PQgetvalue(res, 0, KEY_CAPS)), *it;
		cJSON_ArrayForEach(it, caps) if (cJSON_IsString(it)) row.caps |= apikey_cap_bit(it->valuestring);
		cJSON_Delete(caps);
		row.n_topics = -1;
		if (!PQgetisnull(res, 0, KEY_TOPICS)) {
			cJSON *t = cJSON_Parse(PQgetvalue(res, 0, KEY_TOPICS));
			row.n_topics = 0;
			cJSON_ArrayForEach(it, t)
			{
				if (!cJSON_IsString(it) || row.n_topics >= APIKEY_TOPICS_MAX ||
				    strlen(it->valuestring) >= APIKEY_TOPIC_LEN)
					continue;
				strcpy(row.topics[row.n_topics++], it->valuestring);
			}
			cJSON_Delete(t);
		}
	}
	c->cb.apikey(c->arg, found, found ? &row : NULL, err);
	free(c);
}

int store_apikey_use(struct db *d, const char *secret_hash, store_apikey_cb cb, void *arg)
{
	const char *p[] = {secret_hash};
	return send_call(d, apikey_use_sql, 1, p, apikey_adapter, (struct call){.cb.apikey = cb, .arg = arg});
}

/* ---- POST /join ---- */

enum { TXT_VALUE };
static void text_adapter(void *arg, const PGresult *res, const char *err)
{
	struct call *c = arg;
	const char *v = !err && PQntuples(res) > 0 ? store_val(res, 0, TXT_VALUE) : NULL;
	c->cb.text(c->arg, v, err);
	free(c);
}

int store_mesh_owner(struct db *d, const char *mesh_id, store_text_cb cb, void *arg)
{
	const char *p[] = {mesh_id};
	return send_call(d, "SELECT owner_pubkey FROM mesh.mesh WHERE id = $1", 1, p, text_adapter,
			 (struct call){.cb.text = cb, .arg = arg});
}

enum { JOIN_RESULT, JOIN_MEMBER_ID, JOIN_MESH_ID, JOIN_ROLE, JOIN_INVITE_ID };
static void join_adapter(void *arg, const PGresult *res, const char *err)
{
	struct call *c = arg;
	if (!err && PQntuples(res) != 1)
		err = "no result";
	if (err) {
		c->cb.join(c->arg, NULL, err);
	} else {
		struct join_row r = {
			.result = PQgetvalue(res, 0, JOIN_RESULT),
			.member_id = store_val(res, 0, JOIN_MEMBER_ID),
			.mesh_id = store_val(res, 0, JOIN_MESH_ID),
			.role = store_val(res, 0, JOIN_ROLE),
			.invite_id = store_val(res, 0, JOIN_INVITE_ID),
		};
		c->cb.join(c->arg, &r, NULL);
	}
	free(c);
}

int store_invite_join(struct db *d, const char *token, const char *mesh_id, const char *pubkey,
		      const char *display_name, const char *new_member_id, store_join_cb cb, void *arg)
{
	const char *p[] = {token, mesh_id, pubkey, display_name, new_member_id};
	return send_call(d,
			 "SELECT result, member_id, mesh_id, role, invite_id FROM mesh.invite_join($1, $2, $3, $4, $5)",
			 5, p, join_adapter, (struct call){.cb.join = cb, .arg = arg});
}

/* ---- HTTP probes ---- */

int store_ping(struct db *d, store_count_cb cb, void *arg)
{
	return send_call(d, "SELECT 1", 0, NULL, count_adapter, (struct call){.cb.count = cb, .arg = arg});
}

int store_schema_table(struct db *d, store_count_cb cb, void *arg)
{
	return send_call(d, "SELECT (to_regclass('mesh.schema_migrations') IS NOT NULL)::int", 0, NULL,
			 count_adapter, (struct call){.cb.count = cb, .arg = arg});
}

/* text_adapter: see POST /join above (NULL when there is no row) */
int store_schema_version(struct db *d, store_text_cb cb, void *arg)
{
	return send_call(d, "SELECT coalesce(max(version), '') FROM mesh.schema_migrations", 0, NULL, text_adapter,
			 (struct call){.cb.text = cb, .arg = arg});
}

const char *store_schema_expected(void) { return migrations[migrations_count - 1].name; }

int store_queue_depth(struct db *d, store_count_cb cb, void *arg)
{
	return send_call(d, "SELECT count(*) FROM mesh.delivery WHERE " DLV_UNDELIVERED, 0, NULL, count_adapter,
			 (struct call){.cb.count = cb, .arg = arg});
}

/* ---- presence rows of workers that are gone (issue 21) ---- */

enum { LEAVE_MESH, LEAVE_AUDIT_PENDING };
static void leave_adapter(void *arg, const PGresult *res, const char *err)
{
	struct call *c = arg;
	if (!err && (!res || PQntuples(res) != 1 || PQnfields(res) <= LEAVE_AUDIT_PENDING))
		err = "mesh.presence_leave: no result";
	if (err)
		c->cb.leave(c->arg, NULL, 0, err);
	else
		c->cb.leave(c->arg, store_val(res, 0, LEAVE_MESH), store_is_true(res, 0, LEAVE_AUDIT_PENDING), NULL);
	free(c);
}

/* The leave in one statement (issue 23): before, the last marks, the give
 * back, mesh.presence_close and a waiting chain step went one after another;
 * mesh.presence_leave (migration 0016) does them all with the rules above;
 * its chain step only tries the mesh's chain lock (migration 0020): when it
 * is busy the peer_left row waits in mesh.audit_pending for the mesh's next
 * chain step or the sweep's (store_audit_chain_pending). */
int store_presence_leave(struct db *d, const char *presence_id, const char *member_id, const int64_t *mark,
			 size_t n_mark, store_leave_cb cb, void *arg)
{
	char *marks = id_array(mark, n_mark);
	const char *p[] = {presence_id, member_id, marks};
	int r = send_call_hot(d, "SELECT * FROM mesh.presence_leave($1, $2, $3::bigint[])", 3, p, leave_adapter,
			      (struct call){.cb.leave = cb, .arg = arg});
	free(marks);
	return r;
}

/* Many rows at once (a sweep): two statements whatever their number, so a
 * live worker's sweep never queues a statement per row ahead of its own
 * pushes.  Presence ids are [A-Za-z0-9] (id_new): comma-joined. */
int store_presence_close_many(struct db *d, const char *const *presence_ids, size_t n)
{
	if (n == 0)
		return 0;
	size_t len = 1;
	for (size_t i = 0; i < n; i++)
		len += strlen(presence_ids[i]) + 1;
	char *ids = malloc(len), *o = ids;
	if (!ids)
		log_fatal("out of memory");
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(presence_ids[i]);
		memcpy(o, presence_ids[i], l);
		o += l;
		*o++ = i + 1 < n ? ',' : '\0';
	}
	const char *p[] = {ids};
	int rc = db_query(d, "SELECT count(mesh.presence_close(x)) FROM unnest(string_to_array($1, ',')) x", 1, p,
			  NULL, NULL);
	free(ids);
	return rc;
}

/* One event chained when the mesh's chain lock is free, else left pending
 * (mesh.audit_record, migration 0004), with no chain step after it: a leave
 * whose presence row was never written (migration 0020: no leave waits). */
int store_audit_record(struct db *d, const char *mesh_id, const char *event, const char *actor,
		       const char *actor_name, const char *canonical_payload)
{
	const char *p[] = {mesh_id, event, actor, actor_name, canonical_payload};
	return db_query(d, "SELECT mesh.audit_record($1, $2, $3, $4, $5)", 5, p, NULL, NULL);
}

/* The sweep's chain step (migration 0020, mesh.audit_chain_pending): for at
 * most max_meshes meshes with rows in mesh.audit_pending, the chain lock is
 * tried, never waited for, and the rows of those it got are chained; cb (may
 * be NULL) gets the number of rows chained. */
int store_audit_chain_pending(struct db *d, int max_meshes, store_count_cb cb, void *arg)
{
	char lim[16];
	snprintf(lim, sizeof lim, "%d", max_meshes);
	const char *p[] = {lim};
	if (!cb)
		return db_query(d, "SELECT mesh.audit_chain_pending($1::int)", 1, p, NULL, NULL);
	return send_call(d, "SELECT mesh.audit_chain_pending($1::int)", 1, p, count_adapter,
			 (struct call){.cb.count = cb, .arg = arg});
}

enum { OPEN_ID, OPEN_MESH, OPEN_PID, OPEN_BEFORE_BOOT };

struct open_call {
	store_open_cb cb;
	void *arg;
};

static void open_rows_adapter(void *arg, const PGresult *res, const char *err)
{
	struct open_call *c = arg;
	int n = err ? 0 : PQntuples(res);
	struct open_presence *rows = n ? calloc((size_t)n, sizeof *rows) : NULL;
	if (n && !rows)
		log_fatal("out of memory");
	for (int i = 0; i < n; i++) {
		rows[i].presence_id = PQgetvalue(res, i, OPEN_ID);
		rows[i].mesh_id = PQgetvalue(res, i, OPEN_MESH);
		rows[i].worker_pid = PQgetisnull(res, i, OPEN_PID) ? 0 : atoi(PQgetvalue(res, i, OPEN_PID));
		rows[i].before_boot = store_is_true(res, i, OPEN_BEFORE_BOOT);
	}
	c->cb(c->arg, rows, n, err);
	free(rows);
	free(c);
}

int store_presence_open(struct db *d, const char *broker_host, int64_t boot_time, int limit, store_open_cb cb,
			void *arg)
{
	char boot[24], lim[24];
	snprintf(boot, sizeof boot, "%lld", (long long)boot_time);
	snprintf(lim, sizeof lim, "%d", limit);
	const char *p[] = {broker_host, boot, lim};
	struct open_call c = {cb, arg};
	return store_call_send(d,
			       "SELECT id, mesh_id, worker_pid, connected_at < to_timestamp($2::bigint) FROM mesh.presence "
			       "WHERE disconnected_at IS NULL AND broker_host = $1 "
			       "ORDER BY connected_at LIMIT $3::int",
			       3, p, open_rows_adapter, &c, sizeof c);
}
