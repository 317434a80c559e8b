/* peer — the peer protocol after the WebSocket upgrade (PROTOCOL.md §2-§4):
 * a dispatch table of message types with the phase each is legal in, the
 * signed hello and its membership check, durable sends, and the drain that
 * claims this member's deliveries and pushes them in order. */
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/canon.h"
#include "proto/hello.h"
#include "proto/log.h"
#include "proto/util.h"
#include "worker/jsonl.h"
#include "worker/worker.h"

/* a leaving worker waits this long for its last writes (marks, presence row,
 * audit) when PostgreSQL is busy; the acceptor allows 10 s on shutdown */
#define LEAVE_DB_MS 8000

#define ISO_SQL(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

enum phase { PH_PRE = 1, PH_AUTH = 2 };

static const char *const prio_names[] = {"now", "next", "low"};

static int prio_parse(const char *s)
{
	for (int i = 0; i < 3; i++)
		if (s && strcmp(s, prio_names[i]) == 0)
			return i;
	return -1;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- audit (metadata only: never bodies, nonces or ciphertexts) ---- */

static void audit(struct worker *w, const char *mesh_id, const char *event, const char *actor,
		  const char *actor_name, cJSON *payload /* consumed */)
{
	if (!mesh_id || !*mesh_id || worker_db(w) != 0) {
		cJSON_Delete(payload);
		return;
	}
	char *canon = canon_json(payload);
	if (!canon) {
		cJSON_Delete(payload);
		return;
	}
	const char *p[] = {mesh_id, event, actor, actor_name, canon, canon};
	db_query(w->db, "SELECT mesh.audit_append($1, $2, $3, $4, $5::jsonb, $6)", 6, p, NULL, NULL);
	free(canon);
	cJSON_Delete(payload);
}

/* ---- hello ---- */

static enum shm_counter reject_counter(enum hello_code c)
{
	switch (c) {
	case HELLO_TIMESTAMP_SKEW: return C_REJ_TIMESTAMP_SKEW;
	case HELLO_BAD_SIGNATURE: return C_REJ_BAD_SIGNATURE;
	case HELLO_REPLAYED: return C_REJ_REPLAYED;
	case HELLO_UNAUTHORIZED: return C_REJ_UNAUTHORIZED;
	case HELLO_CAPACITY: return C_REJ_CAPACITY;
	default: return C_REJ_MALFORMED;
	}
}

static void hello_reject(struct worker *w, enum hello_code c, const char *mesh_id)
{
	const char *code = hello_code_str(c);
	counter_add(w->shm, reject_counter(c), 1);
	ws_send_error(w, code, hello_code_message(c), NULL);
	ws_close(w, WSLAY_CODE_POLICY_VIOLATION, code);
	log_info("hello rejected", "reason", code, "remote", w->remote_addr);
	if (mesh_id && strlen(mesh_id) < SHM_MESH_ID_MAX) {
		cJSON *pl = cJSON_CreateObject();
		cJSON_AddStringToObject(pl, "reason", code);
		audit(w, mesh_id, "hello_rejected", NULL, NULL, pl);
	}
}

static int count_cb(const struct presence_view *v, void *arg)
{
	(void)v;
	++*(int *)arg;
	return 0;
}

static void presence_row_insert(struct worker *w)
{
	const cJSON *h = w->hello_obj;
	char pid[24], wpid[24];
	snprintf(pid, sizeof pid, "%d", w->me.pid);
	snprintf(wpid, sizeof wpid, "%d", (int)getpid());
	const cJSON *caps = cJSON_GetObjectItemCaseSensitive(h, "capabilities");
	const cJSON *groups = cJSON_GetObjectItemCaseSensitive(h, "groups");
	char *caps_s = cJSON_IsArray(caps) ? cJSON_PrintUnformatted(caps) : NULL;
	char *groups_s = cJSON_IsArray(groups) ? cJSON_PrintUnformatted(groups) : NULL;
	char host[256] = "";
	gethostname(host, sizeof host - 1);
	const char *p[] = {w->me.presence_id, w->me.mesh_id, w->me.member_id, w->me.session_id, pid,
			   w->me.cwd, status_str(w->me.status), status_source_str(w->me.status_source),
			   jstr(h, "displayName"), jstr(h, "hostname"), jstr(h, "peerType"), jstr(h, "channel"),
			   jstr(h, "model"), jstr(h, "protocolVersion"), caps_s, groups_s, host, wpid};
	db_query(w->db,
		 "WITH p AS (INSERT INTO mesh.presence (id, mesh_id, member_id, session_id, pid, cwd, status, "
		 "status_source, display_name, hostname, peer_type, channel, model, protocol_version, "
		 "capabilities, groups, broker_host, worker_pid) VALUES ($1, $2, $3, $4, $5::int, $6, $7, $8, "
		 "$9, $10, $11, $12, $13, $14, $15::jsonb, $16::jsonb, $17, $18::int) RETURNING member_id) "
		 "UPDATE mesh.member SET last_seen_at = now() WHERE id IN (SELECT member_id FROM p)",
		 18, p, NULL, NULL);
	w->presence_row = 1;
	free(caps_s);
	free(groups_s);
}

static void hello_member_cb(void *arg, const PGresult *res, const char *err)
{
	struct worker *w = arg;
	w->hello_inflight = 0;
	if (w->closing)
		return;
	if (err) {
		log_warn("hello: membership lookup failed", "error", err);
		ws_send_error(w, "internal", "database unavailable, try again", NULL);
		ws_close(w, WSLAY_CODE_INTERNAL_SERVER_ERROR, "database unavailable");
		return;
	}
	if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 2), "t") == 0 ||
	    strcmp(PQgetvalue(res, 0, 3), "t") == 0 || strcmp(PQgetvalue(res, 0, 0), w->me.member_id) != 0) {
		hello_reject(w, HELLO_UNAUTHORIZED, w->me.mesh_id);
		return;
	}
	snprintf(w->me.display_name, sizeof w->me.display_name, "%s", PQgetvalue(res, 0, 1));
	long limit = w->cfg.max_connections_per_mesh;
	if (!PQgetisnull(res, 0, 4)) {
		long mp = strtol(PQgetvalue(res, 0, 4), NULL, 10);
		if (mp > 0 && mp < limit)
			limit = mp;
	}
	/* Capacity (check 7): claim first, then count ourselves in, so two
	 * racing hellos can never both squeeze into the last place. */
	id_new(w->me.presence_id);
	int64_t now = now_ms();
	w->me.status = ST_IDLE;
	w->me.status_source = SRC_JSONL;
	w->me.status_ms = now;
	w->me.connected_ms = now;
	int pending = PQgetisnull(res, 0, 5) ? -1 : status_parse(PQgetvalue(res, 0, 5));
	if (pending >= 0) /* a hook that fired before we connected */
		status_apply(&w->me, pending, SRC_HOOK, now, w->cfg.hook_fresh_window_seconds);
	if (presence_claim(w->shm, &w->me, &w->slot, &w->gen) != 0) {
		counter_add(w->shm, C_REJ_TABLE_FULL, 1);
		ws_send_error(w, "capacity", "broker at connection capacity", NULL);
		ws_close(w, 1013, "table_full");
		return;
	}
	w->have_slot = 1;
	int live = 0;
	presence_foreach(w->shm, w->me.mesh_id, count_cb, &live);
	if (live > limit) {
		presence_release(w->shm, w->slot, w->gen);
		w->have_slot = 0;
		hello_reject(w, HELLO_CAPACITY, w->me.mesh_id);
		return;
	}
	if (uds_listen_open(w) != 0) {
		presence_release(w->shm, w->slot, w->gen);
		w->have_slot = 0;
		ws_send_error(w, "internal", "broker could not open its worker socket", NULL);
		ws_close(w, WSLAY_CODE_INTERNAL_SERVER_ERROR, "internal");
		return;
	}
	w->authed = 1;
	w->hello_deadline = 0;
	w->next_ttl_check = mono_ms();
	cJSON *ack = cJSON_CreateObject();
	cJSON_AddStringToObject(ack, "type", "hello_ack");
	cJSON_AddStringToObject(ack, "presenceId", w->me.presence_id);
	cJSON_AddStringToObject(ack, "memberDisplayName", w->me.display_name);
	cJSON_AddStringToObject(ack, "memberId", w->me.member_id);
	ws_send_json(w, ack);
	cJSON_Delete(ack);
	presence_row_insert(w);
	if (pending >= 0) {
		char pid[24];
		snprintf(pid, sizeof pid, "%d", w->me.pid);
		const char *pp[] = {pid, w->me.cwd};
		db_query(w->db, "DELETE FROM mesh.pending_status WHERE pid = $1::int AND cwd = $2", 2, pp, NULL, NULL);
	}
	cJSON *pl = cJSON_CreateObject();
	cJSON_AddStringToObject(pl, "presenceId", w->me.presence_id);
	audit(w, w->me.mesh_id, "peer_joined", w->me.member_id, w->me.display_name, pl);
	log_info("peer joined", "mesh", w->me.mesh_id, "member", w->me.member_id, "presence",
		 w->me.presence_id);
	peer_drain(w);
}

static void on_hello(struct worker *w, const cJSON *msg)
{
	if (w->authed || w->hello_inflight) {
		ws_send_error(w, "already_authenticated", "already authenticated", jstr(msg, "id"));
		return;
	}
	struct hello h;
	enum hello_code c = hello_check(msg, &h, now_ms());
	if (c != HELLO_OK) {
		hello_reject(w, c, jstr(msg, "meshId"));
		return;
	}
	/* check 5: a signature is accepted once while it could pass the skew check */
	unsigned char sig[64];
	hex_decode(h.signature, sig, sizeof sig);
	if (!replay_check_and_remember(w->shm, sig, sizeof sig, now_ms(), h.timestamp + HELLO_SKEW_MS + 1000)) {
		hello_reject(w, HELLO_REPLAYED, h.mesh_id);
		return;
	}
	snprintf(w->me.mesh_id, sizeof w->me.mesh_id, "%s", h.mesh_id);
	snprintf(w->me.member_id, sizeof w->me.member_id, "%s", h.member_id);
	for (int i = 0; i < 64; i++) /* stored lowercase; signed as sent */
		w->me.pubkey[i] = (char)((h.pubkey[i] >= 'A' && h.pubkey[i] <= 'F') ? h.pubkey[i] + 32 : h.pubkey[i]);
	w->me.pubkey[64] = 0;
	snprintf(w->me.session_id, sizeof w->me.session_id, "%s", h.session_id);
	snprintf(w->me.cwd, sizeof w->me.cwd, "%s", h.cwd);
	w->me.pid = (int32_t)h.pid;
	w->hello_obj = cJSON_Duplicate(msg, 1);
	const cJSON *cap;
	cJSON_ArrayForEach(cap, h.capabilities)
	{
		if (cJSON_IsString(cap) && strcmp(cap->valuestring, "client_ack") == 0)
			w->client_ack = 1;
	}
	/* check 6: a live member of a live mesh, and the memberId it signed */
	char pidbuf[24];
	snprintf(pidbuf, sizeof pidbuf, "%d", w->me.pid);
	const char *p[] = {w->me.mesh_id, w->me.pubkey, pidbuf, w->me.cwd};
	if (worker_db(w) != 0 ||
	    db_query(w->db,
		     "SELECT m.id, m.display_name, m.revoked_at IS NOT NULL, ms.archived_at IS NOT NULL, ms.max_peers, "
		     "  (SELECT ps.status FROM mesh.pending_status ps WHERE ps.pid = $3::int AND ps.cwd = $4 "
		     "   AND ps.expires_at > clock_timestamp() AND (ps.mesh_id IS NULL OR ps.mesh_id = $1) "
		     "   ORDER BY ps.created_at DESC, ps.id DESC LIMIT 1) "
		     "FROM mesh.member m JOIN mesh.mesh ms ON ms.id = m.mesh_id "
		     "WHERE m.mesh_id = $1 AND m.peer_pubkey = $2",
		     4, p, hello_member_cb, w) != 0) {
		ws_close(w, WSLAY_CODE_INTERNAL_SERVER_ERROR, "internal");
		return;
	}
	w->hello_inflight = 1;
}

/* ---- send ---- */

struct send_ctx {
	struct worker *w;
	char id[129];
	char message_id[ID_LEN + 1];
	char target[80];
	int prio;
};

static void send_ack(struct worker *w, const char *id, const char *message_id, const char *error)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "ack");
	cJSON_AddStringToObject(o, "id", id);
	cJSON_AddStringToObject(o, "messageId", message_id);
	cJSON_AddBoolToObject(o, "queued", error == NULL);
	if (error)
		cJSON_AddStringToObject(o, "error", error);
	ws_send_json(w, o);
	cJSON_Delete(o);
}

static void send_refuse(struct worker *w, const char *id, enum shm_counter c, const char *error)
{
	counter_add(w->shm, c, 1);
	send_ack(w, id, "", error);
}

struct wake_ctx {
	struct worker *w;
	const char **ids; /* recipient member ids, sorted */
	int n;
};

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static int wake_cb(const struct presence_view *v, void *arg)
{
	struct wake_ctx *wc = arg;
	const char *key = v->info.member_id;
	if (bsearch(&key, wc->ids, (size_t)wc->n, sizeof *wc->ids, cmp_str))
		uds_wake(wc->w, v->slot, v->gen);
	return 0;
}

/* wake every live connection of the members in column 0 of res: one pass
 * over the mesh's slots, whatever the number of recipients */
static void wake_members(struct worker *w, const PGresult *res)
{
	int n = PQntuples(res);
	if (n == 0)
		return;
	const char **ids = malloc((size_t)n * sizeof *ids);
	if (!ids)
		log_fatal("out of memory");
	for (int i = 0; i < n; i++)
		ids[i] = PQgetvalue(res, i, 0);
	qsort(ids, (size_t)n, sizeof *ids, cmp_str);
	struct wake_ctx wc = {w, ids, n};
	presence_foreach(w->shm, w->me.mesh_id, wake_cb, &wc);
	free(ids);
}

static void send_cb(void *arg, const PGresult *res, const char *err)
{
	struct send_ctx *sc = arg;
	struct worker *w = sc->w;
	if (err) {
		log_warn("send: not stored", "error", err);
		send_refuse(w, sc->id, C_MSGREJ_DB_UNAVAILABLE, "database unavailable: message not queued, try again");
	} else if (PQntuples(res) == 0 && strcmp(sc->target, "*") != 0) {
		send_refuse(w, sc->id, C_MSGREJ_NO_RECIPIENT, "no such recipient: targetSpec is not a member of this mesh");
	} else {
		send_ack(w, sc->id, sc->message_id, NULL);
		cJSON *pl = cJSON_CreateObject();
		cJSON_AddStringToObject(pl, "messageId", sc->message_id);
		cJSON_AddStringToObject(pl, "priority", prio_names[sc->prio]);
		cJSON_AddStringToObject(pl, "targetSpec", sc->target);
		audit(w, w->me.mesh_id, "message_sent", w->me.member_id, w->me.display_name, pl);
		wake_members(w, res);
	}
	free(sc);
}

static void on_send(struct worker *w, const cJSON *msg)
{
	const cJSON *idv = cJSON_GetObjectItemCaseSensitive(msg, "id");
	char id[129] = "";
	if (cJSON_IsString(idv)) {
		if (strlen(idv->valuestring) >= sizeof id) {
			send_refuse(w, "", C_MSGREJ_MALFORMED, "malformed send: id is longer than 128 characters");
			return;
		}
		snprintf(id, sizeof id, "%s", idv->valuestring);
	}
	const char *target = jstr(msg, "targetSpec"), *nonce = jstr(msg, "nonce"), *ct = jstr(msg, "ciphertext");
	int prio = prio_parse(jstr(msg, "priority"));
	if (prio < 0) {
		send_refuse(w, id, C_MSGREJ_INVALID_PRIORITY, "invalid priority: expected now, next or low");
		return;
	}
	int direct = target && is_hex(target, 64);
	if (!target || (!direct && strcmp(target, "*") != 0 && target[0] != '#')) {
		send_refuse(w, id, C_MSGREJ_INVALID_TARGET, "invalid targetSpec: expected a 64-hex pubkey, * or #topicId");
		return;
	}
	if (target[0] == '#') {
		send_refuse(w, id, C_MSGREJ_NO_SUCH_TOPIC, "no such topic");
		return;
	}
	if (!nonce || !ct || !*ct) {
		send_refuse(w, id, C_MSGREJ_MALFORMED, "malformed send: nonce and ciphertext must be strings");
		return;
	}
	size_t size = strlen(ct) + strlen(nonce);
	if (size > (size_t)w->cfg.max_message_bytes) {
		char e[160];
		snprintf(e, sizeof e, "payload too large: %zu bytes > MAX_MESSAGE_BYTES=%d", size,
			 w->cfg.max_message_bytes);
		send_refuse(w, id, C_MSGREJ_PAYLOAD_TOO_LARGE, e);
		return;
	}
	char key[SHM_MEMBER_ID_MAX + 8];
	snprintf(key, sizeof key, "send:%s", w->me.member_id);
	if (!bucket_take(w->shm, key, w->cfg.send_rate_burst, w->cfg.send_rate_per_min, now_ms())) {
		char e[160];
		snprintf(e, sizeof e, "rate_limit: max %d msg/min (burst %d) — slow down", w->cfg.send_rate_per_min,
			 w->cfg.send_rate_burst);
		send_refuse(w, id, C_MSGREJ_RATE_LIMIT, e);
		return;
	}
	struct send_ctx *sc = calloc(1, sizeof *sc);
	if (!sc)
		log_fatal("out of memory");
	sc->w = w;
	snprintf(sc->id, sizeof sc->id, "%s", id);
	id_new(sc->message_id);
	sc->prio = prio;
	char lower[65];
	if (direct) {
		for (int i = 0; i < 64; i++)
			lower[i] = (char)((target[i] >= 'A' && target[i] <= 'F') ? target[i] + 32 : target[i]);
		lower[64] = 0;
		target = lower;
	}
	snprintf(sc->target, sizeof sc->target, "%s", target);
	/* One statement = one transaction: the message and one delivery row per
	 * recipient member, or nothing.  The ack waits for its commit. */
	const char *p[] = {sc->message_id, w->me.mesh_id, w->me.member_id, sc->target, prio_names[prio], nonce, ct};
	if (db_query(w->db,
		     "WITH r AS (SELECT m.id FROM mesh.member m WHERE m.mesh_id = $2 AND m.revoked_at IS NULL AND "
		     "  CASE WHEN $4 = '*' THEN m.id <> $3 ELSE m.peer_pubkey = $4 END), "
		     "q AS (INSERT INTO mesh.message_queue (id, mesh_id, sender_member_id, target_spec, priority, "
		     "  nonce, ciphertext) SELECT $1, $2, $3, $4, $5, $6, $7 "
		     "  WHERE $4 = '*' OR EXISTS (SELECT 1 FROM r) RETURNING id), "
		     "d AS (INSERT INTO mesh.delivery (message_id, mesh_id, recipient_member_id, priority) "
		     "  SELECT q.id, $2, r.id, $5 FROM q, r ORDER BY r.id RETURNING recipient_member_id) "
		     "SELECT recipient_member_id FROM d",
		     7, p, send_cb, sc) != 0) {
		send_refuse(w, id, C_MSGREJ_DB_UNAVAILABLE, "broker busy: message not queued, try again");
		free(sc);
	}
}

/* ---- set_status ---- */

static void status_changed(struct worker *w, int before)
{
	presence_update(w->shm, w->slot, &w->me);
	const char *p[] = {w->me.presence_id, status_str(w->me.status), status_source_str(w->me.status_source)};
	if (w->db)
		db_query(w->db,
			 "UPDATE mesh.presence SET status = $2, status_source = $3, status_updated_at = now() "
			 "WHERE id = $1",
			 3, p, NULL, NULL);
	if (w->me.status == ST_IDLE && before != ST_IDLE)
		peer_drain(w); /* held next/low messages flow now */
}

static void on_set_status(struct worker *w, const cJSON *msg)
{
	int st = status_parse(jstr(msg, "status"));
	if (st < 0) {
		ws_send_error(w, "invalid_status", "status must be idle, working or dnd", jstr(msg, "id"));
		return;
	}
	peer_on_status_request(w, st, SRC_MANUAL);
}

/* ---- client_ack (PROTOCOL.md §3.4 ext): at-least-once for clients that ask ---- */

static void on_client_ack(struct worker *w, const cJSON *msg)
{
	const char *id = jstr(msg, "brokerMessageId");
	if (!id)
		id = jstr(msg, "messageId");
	if (!id || strlen(id) > 64) {
		ws_send_error(w, "malformed", "client_ack needs brokerMessageId", jstr(msg, "id"));
		return;
	}
	const char *p[] = {id, w->me.member_id, w->me.presence_id};
	db_query(w->db,
		 "UPDATE mesh.delivery SET delivered_at = now() WHERE message_id = $1 AND recipient_member_id = $2 "
		 "AND claimed_by = $3 AND delivered_at IS NULL",
		 3, p, NULL, NULL);
}

/* ---- dispatch ---- */

static const struct {
	const char *type;
	int phases;
	void (*fn)(struct worker *, const cJSON *);
} dispatch[] = {
	{"hello", PH_PRE | PH_AUTH, on_hello},
	{"send", PH_AUTH, on_send},
	{"set_status", PH_AUTH, on_set_status},
	{"client_ack", PH_AUTH, on_client_ack},
};

void peer_on_text(struct worker *w, const char *text, size_t len)
{
	cJSON *msg = cJSON_ParseWithLength(text, len);
	if (!msg || !cJSON_IsObject(msg)) {
		ws_send_error(w, "bad_json", "invalid JSON: expected one JSON object", NULL);
		cJSON_Delete(msg);
		return;
	}
	const char *type = jstr(msg, "type");
	int phase = w->authed ? PH_AUTH : PH_PRE;
	size_t i;
	for (i = 0; type && i < sizeof dispatch / sizeof dispatch[0]; i++)
		if (strcmp(type, dispatch[i].type) == 0)
			break;
	if (phase == PH_PRE && (!type || i == sizeof dispatch / sizeof dispatch[0] || strcmp(type, "hello") != 0))
		ws_send_error(w, "no_hello", "must send hello first", NULL);
	else if (w->hello_inflight && strcmp(type, "hello") != 0)
		ws_send_error(w, "no_hello", "must send hello first", NULL);
	else if (!type || i == sizeof dispatch / sizeof dispatch[0])
		ws_send_error(w, "unknown_type", "unknown message type", jstr(msg, "id"));
	else if (dispatch[i].phases & phase)
		dispatch[i].fn(w, msg);
	cJSON_Delete(msg);
}

/* ---- drain: claim deliverable rows, push them in order ---- */

struct live_ids {
	const char *member_id;
	char buf[4096];
	size_t n;
};

static int live_cb(const struct presence_view *v, void *arg)
{
	struct live_ids *l = arg;
	if (strcmp(v->info.member_id, l->member_id) != 0)
		return 0;
	size_t need = strlen(v->info.presence_id) + 1;
	if (l->n + need + 2 >= sizeof l->buf)
		return 1;
	l->n += (size_t)snprintf(l->buf + l->n, sizeof l->buf - l->n, "%s%s", l->n > 1 ? "," : "",
				 v->info.presence_id);
	return 0;
}

static int push_cmp(const void *a, const void *b)
{
	const struct push *x = a, *y = b;
	return (x->delivery_id > y->delivery_id) - (x->delivery_id < y->delivery_id);
}

static void drain_cb(void *arg, const PGresult *res, const char *err)
{
	struct worker *w = arg;
	w->drain_inflight = 0;
	if (err) {
		log_warn("drain failed", "error", err);
		return; /* the rows stay queued; the next wake or reconnect drains them */
	}
	int n = PQntuples(res);
	if (w->npush + (size_t)n > w->push_cap) {
		size_t cap = w->push_cap ? w->push_cap : 128;
		while (cap < w->npush + (size_t)n)
			cap *= 2;
		struct push *np = realloc(w->pushes, cap * sizeof *np);
		if (!np)
			log_fatal("out of memory");
		w->pushes = np;
		w->push_cap = cap;
	}
	struct push *batch = w->pushes + w->npush;
	int kept = 0;
	char *giveback = NULL;
	size_t gb_len = 0;
	for (int i = 0; i < n; i++) {
		/* the status may have changed while the query ran: what it no
		 * longer allows goes back to the queue */
		if (w->me.status != ST_IDLE && strcmp(PQgetvalue(res, i, 4), "now") != 0) {
			const char *id = PQgetvalue(res, i, 0);
			char *ng = realloc(giveback, gb_len + strlen(id) + 3);
			if (!ng)
				log_fatal("out of memory");
			giveback = ng;
			gb_len += (size_t)sprintf(giveback + gb_len, "%s%s", gb_len ? "," : "{", id);
			continue;
		}
		struct push *out = &batch[kept++];
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "type", "push");
		cJSON_AddStringToObject(o, "messageId", PQgetvalue(res, i, 1));
		cJSON_AddStringToObject(o, "meshId", PQgetvalue(res, i, 2));
		cJSON_AddStringToObject(o, "senderPubkey", PQgetvalue(res, i, 3));
		cJSON_AddStringToObject(o, "priority", PQgetvalue(res, i, 4));
		cJSON_AddStringToObject(o, "nonce", PQgetvalue(res, i, 5));
		cJSON_AddStringToObject(o, "ciphertext", PQgetvalue(res, i, 6));
		cJSON_AddStringToObject(o, "createdAt", PQgetvalue(res, i, 7));
		if (!PQgetisnull(res, i, 8)) {
			cJSON_AddStringToObject(o, "topic", PQgetvalue(res, i, 8));
			cJSON_AddNumberToObject(o, "bodyVersion", atoi(PQgetvalue(res, i, 9)));
		}
		out->delivery_id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		out->json = cJSON_PrintUnformatted(o);
		out->len = strlen(out->json);
		out->priority = prio_parse(PQgetvalue(res, i, 4));
		cJSON_Delete(o);
	}
	if (giveback) {
		giveback = realloc(giveback, gb_len + 2);
		if (!giveback)
			log_fatal("out of memory");
		strcpy(giveback + gb_len, "}");
		const char *p[] = {giveback, w->me.presence_id};
		db_query(w->db,
			 "UPDATE mesh.delivery SET claimed_by = NULL, claimed_at = NULL "
			 "WHERE id = ANY($1::bigint[]) AND claimed_by = $2 AND delivered_at IS NULL",
			 2, p, NULL, NULL);
		free(giveback);
	}
	if (kept > 1)
		qsort(batch, (size_t)kept, sizeof *batch, push_cmp); /* RETURNING has no order */
	w->npush += (size_t)kept;
	if (n == PUSH_BATCH || w->drain_again) {
		w->drain_again = 0;
		peer_drain(w);
	}
}

void peer_drain(struct worker *w)
{
	if (!w->authed || w->closing)
		return;
	if (w->drain_inflight || w->npush - w->push_head >= PUSH_BATCH) {
		/* one drain at a time, and no more claimed than one batch waiting
		 * for a client that may not be reading: peer_pump asks again */
		w->drain_again = 1;
		return;
	}
	/* rows claimed by a live connection of this member (ourselves included)
	 * are in flight there; rows claimed by a dead one are taken again */
	struct live_ids l = {.member_id = w->me.member_id, .buf = "{", .n = 1};
	presence_foreach(w->shm, w->me.mesh_id, live_cb, &l);
	l.buf[l.n++] = '}';
	l.buf[l.n] = 0;
	char lim[16];
	snprintf(lim, sizeof lim, "%d", PUSH_BATCH);
	const char *p[] = {w->me.member_id, l.buf, w->me.status == ST_IDLE ? "idle" : "busy", w->me.presence_id, lim};
	if (worker_db(w) != 0)
		return;
	if (db_query(w->db,
		     "WITH c AS (SELECT d.id FROM mesh.delivery d WHERE d.recipient_member_id = $1 "
		     "  AND d.delivered_at IS NULL AND (d.claimed_by IS NULL OR NOT d.claimed_by = ANY($2::text[])) "
		     "  AND (d.priority = 'now' OR $3 = 'idle') ORDER BY d.id LIMIT $5::int FOR UPDATE SKIP LOCKED) "
		     "UPDATE mesh.delivery d SET claimed_by = $4, claimed_at = now() "
		     "FROM c, mesh.message_queue q, mesh.member s "
		     "WHERE d.id = c.id AND q.id = d.message_id AND s.id = q.sender_member_id "
		     "RETURNING d.id, q.id, q.mesh_id, s.peer_pubkey, q.priority, q.nonce, q.ciphertext, " ISO_SQL(
			     "q.created_at") ", q.topic_id, q.body_version",
		     5, p, drain_cb, w) == 0)
		w->drain_inflight = 1;
}

void peer_on_wake(struct worker *w) { peer_drain(w); }

static void mark_flush(struct worker *w)
{
	if (!w->nwritten || worker_db(w) != 0)
		return;
	size_t cap = w->nwritten * 21 + 3;
	char *arr = malloc(cap);
	if (!arr)
		log_fatal("out of memory");
	size_t n = 0;
	arr[n++] = '{';
	for (size_t i = 0; i < w->nwritten; i++)
		n += (size_t)snprintf(arr + n, cap - n, "%s%" PRId64, i ? "," : "", w->written[i]);
	arr[n++] = '}';
	arr[n] = 0;
	const char *p[] = {arr, w->me.presence_id};
	db_query(w->db,
		 "UPDATE mesh.delivery SET delivered_at = now() WHERE id = ANY($1::bigint[]) AND claimed_by = $2", 2,
		 p, NULL, NULL);
	free(arr);
	w->nwritten = 0;
}

static void written_add(struct worker *w, int64_t id)
{
	if (w->nwritten == w->written_cap) {
		size_t cap = w->written_cap ? w->written_cap * 2 : 128;
		int64_t *nw = realloc(w->written, cap * sizeof *nw);
		if (!nw)
			log_fatal("out of memory");
		w->written = nw;
		w->written_cap = cap;
	}
	w->written[w->nwritten++] = id;
}

/* Hand pushes to wslay one at a time: a push counts as written (and is
 * marked delivered) only once wslay has nothing left to send and no close
 * went out before it, so a push cut off by a close stays queued for later. */
void peer_pump(struct worker *w)
{
	for (;;) {
		int busy = wslay_event_want_write(w->ws) || wslay_event_get_queued_msg_count(w->ws) > 0;
		if (w->outstanding) {
			if (busy)
				break;
			if (wslay_event_get_close_sent(w->ws))
				w->outstanding = 0; /* not known to be written: not marked */
			else {
				/* a client_ack client marks its own deliveries; what it never
				 * acks is given back when it leaves */
				if (!w->client_ack)
					written_add(w, w->outstanding);
				w->outstanding = 0;
			}
		}
		if (w->push_head == w->npush || busy || w->closing || wslay_event_get_close_received(w->ws))
			break;
		struct push *p = &w->pushes[w->push_head++];
		if (ws_send_text(w, p->json, p->len) == 0) {
			w->outstanding = p->delivery_id;
			counter_add(w->shm, (enum shm_counter)(C_ROUTED_NOW + p->priority), 1);
		}
		free(p->json);
		p->json = NULL;
		if (wslay_event_send(w->ws) != 0)
			break;
	}
	if (w->push_head == w->npush) {
		w->push_head = w->npush = 0;
		if (w->drain_again && !w->drain_inflight) {
			w->drain_again = 0;
			peer_drain(w);
		}
	}
	if (w->nwritten >= 50 || (w->nwritten && w->push_head == w->npush))
		mark_flush(w);
}

/* TTL (PROTOCOL.md §4.2): a `working` older than STATUS_TTL_SECONDS becomes
 * idle/jsonl; looked at every 15 s at most, and exactly when it falls due.
 * JSONL inference (when STATUS_JSONL_DIR is set) runs on the same timer. */
void peer_tick(struct worker *w, int64_t now)
{
	if (now < w->next_ttl_check)
		return;
	int64_t wall = now_ms(), ttl = (int64_t)w->cfg.status_ttl_seconds * 1000;
	int64_t next = 15000;
	if (w->cfg.status_jsonl_dir) {
		int inferred = jsonl_infer(w->cfg.status_jsonl_dir, w->me.cwd);
		if (inferred >= 0) {
			int before = w->me.status;
			int64_t before_ms = w->me.status_ms;
			int before_src = w->me.status_source;
			status_apply(&w->me, inferred, SRC_JSONL, wall, w->cfg.hook_fresh_window_seconds);
			if (w->me.status != before || w->me.status_source != before_src)
				status_changed(w, before);
			else if (w->me.status_ms != before_ms)
				presence_update(w->shm, w->slot, &w->me);
		}
		int64_t j = (int64_t)w->cfg.hook_fresh_window_seconds * 500;
		if (j < 1000)
			j = 1000;
		if (j < next)
			next = j;
	}
	if (w->me.status == ST_WORKING && wall - w->me.status_ms > ttl) {
		int before = w->me.status;
		w->me.status = ST_IDLE;
		w->me.status_source = SRC_JSONL;
		w->me.status_ms = wall;
		counter_add(w->shm, C_TTL_SWEEPS, 1);
		log_info("status TTL: working -> idle", "presence", w->me.presence_id);
		status_changed(w, before);
	}
	if (w->me.status == ST_WORKING) {
		int64_t due = w->me.status_ms + ttl + 1 - wall;
		if (due < next)
			next = due < 1 ? 1 : due;
	}
	w->next_ttl_check = now + next;
}

void peer_on_status_request(struct worker *w, int status, int source)
{
	if (!w->authed || status < ST_IDLE || status > ST_DND || source < SRC_JSONL || source > SRC_HOOK)
		return;
	int before = w->me.status;
	int before_src = w->me.status_source;
	status_apply(&w->me, status, source, now_ms(), w->cfg.hook_fresh_window_seconds);
	if (w->me.status != before || w->me.status_source != before_src)
		status_changed(w, before);
	else
		presence_update(w->shm, w->slot, &w->me); /* the time moved */
	w->next_ttl_check = mono_ms(); /* a new working starts a new TTL */
}

static int wake_others_cb(const struct presence_view *v, void *arg)
{
	struct worker *w = arg;
	if (strcmp(v->info.member_id, w->me.member_id) == 0 && !(v->slot == w->slot && v->gen == w->gen))
		uds_wake(w, v->slot, v->gen);
	return 0;
}

void peer_leave(struct worker *w)
{
	if (w->authed) {
		/* what reached the socket is delivered; mark it while our slot
		 * still says these rows are ours */
		peer_pump(w);
		mark_flush(w);
		if (w->db)
			db_drain_sync(w->db, LEAVE_DB_MS);
	}
	if (w->have_slot) {
		presence_release(w->shm, w->slot, w->gen);
		w->have_slot = 0;
	}
	for (size_t i = w->push_head; i < w->npush; i++)
		free(w->pushes[i].json);
	free(w->pushes);
	free(w->written);
	w->pushes = NULL;
	w->written = NULL;
	if (w->authed) {
		const char *p[] = {w->me.presence_id};
		db_query(w->db,
			 "UPDATE mesh.delivery SET claimed_by = NULL, claimed_at = NULL "
			 "WHERE claimed_by = $1 AND delivered_at IS NULL",
			 1, p, NULL, NULL);
		if (w->presence_row)
			db_query(w->db, "UPDATE mesh.presence SET disconnected_at = now() WHERE id = $1", 1, p, NULL,
				 NULL);
		cJSON *pl = cJSON_CreateObject();
		cJSON_AddStringToObject(pl, "presenceId", w->me.presence_id);
		audit(w, w->me.mesh_id, "peer_left", w->me.member_id, w->me.display_name, pl);
		db_drain_sync(w->db, LEAVE_DB_MS);
		/* rows we gave back: another live connection of this member takes them */
		presence_foreach(w->shm, w->me.mesh_id, wake_others_cb, w);
		log_info("peer left", "mesh", w->me.mesh_id, "member", w->me.member_id, "presence", w->me.presence_id);
	}
	cJSON_Delete(w->hello_obj);
	w->hello_obj = NULL;
}
