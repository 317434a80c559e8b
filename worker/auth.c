/* auth — a hello (or a session_hello, §12.1: a session key attested by its
 * member) takes the connection from PHASE_BEFORE_HELLO through
 * PHASE_HELLO_PENDING (the membership lookup, and the claim of a session
 * key) to PHASE_AUTHENTICATED, or rejects it: an error frame, close 1008
 * (4002 banned for a revoked member: moderation_refuse_hello), a counter and
 * an audit row.  A member the shared member cache (shm/membercache.h)
 * remembers skips the lookup: its slot is claimed at once and the hello's one
 * write statement (mesh.hello_join) re-checks the membership before the
 * hello_ack; a failed re-check falls back to the lookup, so every refusal
 * comes from the same code as without the cache. */
#include "worker/auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/db.h"
#include "db/store.h"
#include "db/store_groups.h"
#include "proto/canon.h"
#include "proto/hello.h"
#include "shm/histo.h"
#include "shm/membercache.h"
#include "shm/negcache.h"
#include "common/log.h"
#include "common/util.h"
#include "worker/audit.h"
#include "worker/delivery.h"
#include "worker/groupcheck.h"
#include "worker/groups.h"
#include "worker/hosts.h"
#include "worker/moderation.h"
#include "worker/msg.h"
#include "worker/peerevents.h"
#include "worker/peers.h"
#include "worker/send.h"
#include "worker/skel.h"
#include "worker/status.h"
#include "worker/uds.h"
#include "worker/ws.h"

/* a remembered signature outlives its skew window by this much */
#define REPLAY_SLACK_MS 1000
#define AUDIT_REJECTED_BURST 1   /* hello_rejected rows per mesh, before any proof of membership */
#define AUDIT_REJECTED_PER_MIN 1
#define HOSTNAME_MAX 256
/* how long a live member is remembered: only a shortcut past the lookup,
 * since mesh.hello_join re-checks it before the hello_ack (see below) */
#define MEMBER_CACHE_MS 60000

/* the rows of proto/reasons.h for a hello code, and its counter */
static const struct {
	const char *label, *code, *message;
	enum shm_counter counter;
} rejections[] = {
#define X(id, label, code, message) [HELLO_##id] = {label, code, message, C_REJ_##id},
	HELLO_REJECTIONS(X)
#undef X
};

/* why: the error frame's message when not the table's */
static void hello_reject_why(struct worker *w, enum hello_code c, const char *mesh_id, const char *why)
{
	const char *code = rejections[c].code;
	counter_add(w->shm, rejections[c].counter, 1);
	ws_send_error(w, code, why ? why : rejections[c].message, NULL);
	ws_close(w, WS_CLOSE_POLICY, code);
	log_info("hello rejected", "reason", code, "remote", w->remote_addr);
	if (!mesh_id || strlen(mesh_id) >= SHM_MESH_ID_MAX || c == HELLO_UNAUTHORIZED)
		return; /* a key that is no member's: a stranger writes nothing into the mesh's chain */
	/* anyone can name a mesh: rejections a client could not prove membership
	 * for write at most one row per mesh a minute (the counters have them all) */
	char key[SHM_MESH_ID_MAX + 16];
	snprintf(key, sizeof key, "audit-rej:%s", mesh_id);
	if (c != HELLO_CAPACITY && !bucket_take(w->shm, key, AUDIT_REJECTED_BURST, AUDIT_REJECTED_PER_MIN, now_ms()))
		return;
	cJSON *pl = cJSON_CreateObject();
	cJSON_AddStringToObject(pl, "reason", code);
	audit_event(w, mesh_id, "hello_rejected", NULL, NULL, pl);
}

static void hello_reject(struct worker *w, enum hello_code c, const char *mesh_id)
{
	hello_reject_why(w, c, mesh_id, NULL);
}

/* a connection our hello replaces does not count against the capacity
 * (presence_claim_capped counts our own new slot itself) */
static int counts_cb(const struct presence_view *v, void *arg)
{
	if (peers_is_replaced(arg, v))
		return PRESENCE_COUNTS_NOT;
	/* an event stream (no peer) does not take a connection of its member */
	return peers_is_stream(&v->info) ? PRESENCE_COUNTS_MESH : PRESENCE_COUNTS;
}

/* ---- session keys (§12.1) ---- */

/* the session key claim queued beside the membership lookup */
enum { SK_NONE, SK_PENDING, SK_OK, SK_TAKEN, SK_MEMBER_KEY, SK_ERROR };

static void session_key_cb(void *arg, const char *value, const char *err)
{
	struct worker *w = arg;
	if (err || !value)
		w->sk_claim = SK_ERROR;
	else if (strcmp(value, "ok") == 0 || strcmp(value, "no_member") == 0)
		w->sk_claim = SK_OK; /* no_member: the membership check refuses it */
	else
		w->sk_claim = strcmp(value, "member_key") == 0 ? SK_MEMBER_KEY : SK_TAKEN;
}

/* queue the claim of our session key (if any) ahead of the membership
 * lookup, so its answer is known when the lookup's callback runs */
static int session_key_queue(struct worker *w)
{
	w->sk_claim = SK_NONE;
	if (!w->me.session_pubkey[0])
		return 0;
	if (store_session_key_claim(w->db, w->me.mesh_id, w->me.pubkey, w->me.session_pubkey, session_key_cb, w) != 0)
		return -1;
	w->sk_claim = SK_PENDING;
	return 0;
}

/* a session_hello's member checks 7-8 of §12.1 (the lookup found n rows by
 * (meshId, parentMemberPubkey)): 0 with w->me.member_id set, or -1 refused */
static int session_member_check(struct worker *w, const struct member_row *rows, int n)
{
	if (n == 1 && rows[0].revoked && !rows[0].mesh_archived) {
		/* banned (§12.4): the hello's one refusal, with the mesh's name */
		counter_add(w->shm, C_LOOKUP_NOT_MEMBER, 1);
		snprintf(w->me.member_id, sizeof w->me.member_id, "%s", rows[0].id);
		moderation_refuse_hello(w);
		return -1;
	}
	if (n != 1 || rows[0].mesh_archived) {
		counter_add(w->shm, C_LOOKUP_NOT_MEMBER, 1);
		hello_reject_why(w, HELLO_UNAUTHORIZED, w->me.mesh_id, "parent pubkey not found in mesh");
		return -1;
	}
	if (w->parent_member_id[0] && strcmp(w->parent_member_id, rows[0].id) != 0) {
		counter_add(w->shm, C_LOOKUP_NOT_MEMBER, 1);
		hello_reject(w, HELLO_PARENT_MEMBER_ID_MISMATCH, w->me.mesh_id);
		return -1;
	}
	snprintf(w->me.member_id, sizeof w->me.member_id, "%s", rows[0].id);
	return 0;
}

/* check 9 (§12.1 fix): the session key is no member's pubkey and no other
 * member's session key; 0 to go on, -1 refused */
static int session_key_check(struct worker *w)
{
	if (w->sk_claim == SK_NONE || w->sk_claim == SK_OK)
		return 0;
	if (w->sk_claim == SK_ERROR || w->sk_claim == SK_PENDING) {
		ws_send_peer_error(w, PEER_ERR_DB_DOWN, NULL);
		ws_close(w, WS_CLOSE_INTERNAL, "database unavailable");
		return -1;
	}
	hello_reject_why(w, HELLO_BAD_SESSION_PUBKEY, w->me.mesh_id,
			 w->sk_claim == SK_MEMBER_KEY ? "sessionPubkey is a member's pubkey"
						      : "sessionPubkey belongs to another member");
	return -1;
}

static int64_t hello_t0_us; /* histo clock at the hello frame: broker_hello_duration_seconds */

static void hello_join_cb(void *arg, const struct hello_join_result *r, const char *err);

/* The hello's writes, one statement (mesh.hello_join, migration 0013): the
 * presence row with its session key and role, the member's last_seen_at, the
 * restored groups and visibility (the member's saved ones; a session's
 * default ones), the delete of the hook status that was applied, and the
 * peer_joined audit row.  w->hello_warm: the member came from the cache and
 * the statement re-checks it first.  0 queued, -1 not. */
static int hello_join_send(struct worker *w, int pending)
{
	const cJSON *h = w->hello_obj;
	const cJSON *caps = cJSON_GetObjectItemCaseSensitive(h, "capabilities");
	const cJSON *groups = cJSON_GetObjectItemCaseSensitive(h, "groups");
	char *caps_s = cJSON_IsArray(caps) ? cJSON_PrintUnformatted(caps) : NULL;
	char *groups_s = cJSON_IsArray(groups) ? cJSON_PrintUnformatted(groups) : NULL;
	char host[HOSTNAME_MAX] = "";
	gethostname(host, sizeof host - 1);
	cJSON *pl = cJSON_CreateObject();
	cJSON_AddStringToObject(pl, "presenceId", w->me.presence_id);
	char *audit = canon_json(pl);
	cJSON_Delete(pl);
	struct hello_join j = {
		.row = {
			.presence_id = w->me.presence_id,
			.mesh_id = w->me.mesh_id,
			.member_id = w->me.member_id,
			.session_id = w->me.session_id,
			.pid = w->me.pid,
			.worker_pid = (int)getpid(),
			.cwd = w->me.cwd,
			.status = status_str(w->me.status),
			.status_source = status_source_str(w->me.status_source),
			.display_name = msg_str(h, "displayName"),
			.hostname = msg_str(h, "hostname"),
			.peer_type = msg_str(h, "peerType"),
			.channel = msg_str(h, "channel"),
			.model = msg_str(h, "model"),
			.protocol_version = msg_str(h, "protocolVersion"),
			.capabilities = caps_s,
			.groups = groups_s,
			.broker_host = hosts_id() ? hosts_id() : host, /* the reaper's key (reap.c) */
			.repo = msg_str(h, "repo"),
			.host_id = hosts_id(),
		},
		.check = w->hello_warm,
		.max_peers = w->warm_max_peers,
		.pubkey = w->me.pubkey,
		.session_pubkey = w->me.session_pubkey[0] ? w->me.session_pubkey : NULL,
		.peer_role = w->me.peer_role,
		/* a session_hello gets its own or the member's default groups,
		 * visible, no profile; a hello the member's saved ones */
		.keep_groups = groupcheck_list(groups),
		.saved = !w->session_conn,
		.pending_delete = pending >= 0,
		.audit = audit,
		.actor_name = w->hello_warm ? NULL : w->me.display_name, /* NULL: the member's, read by the re-check */
	};
	int rc = audit ? store_hello_join(w->db, &j, hello_join_cb, w) : -1;
	free(audit);
	free(caps_s);
	free(groups_s);
	return rc;
}

/* the slot is ours and the membership proven: hello_ack */
static void hello_ack(struct worker *w)
{
	w->phase = PHASE_AUTHENTICATED;
	w->joined = 1;
	w->hello_deadline = 0;
	w->next_ttl_check = mono_ms();
	cJSON *ack = cJSON_CreateObject();
	cJSON_AddStringToObject(ack, "type", "hello_ack");
	cJSON_AddStringToObject(ack, "presenceId", w->me.presence_id);
	cJSON_AddStringToObject(ack, "memberDisplayName", w->me.display_name);
	cJSON_AddStringToObject(ack, "memberId", w->me.member_id);
	ws_send_json(w, ack);
	histo_since(H_HELLO, hello_t0_us);
	cJSON_Delete(ack);
}

/* the hello's first claim (migration 0022): */
enum hello_claim_when {
	HELLO_CLAIM,            /* now */
	HELLO_CLAIM_NONE,       /* mesh.hello_join found nothing queued for the member */
	HELLO_CLAIM_AFTER_JOIN, /* when mesh.hello_join answers, if it found something */
};

/* after hello_ack and the write statement: older sessions replaced, peer
 * events, then whatever is queued.  Our socket was bound before the
 * statement ran, so whatever commits after its snapshot wakes us: when it
 * found nothing undelivered for the member, the first claim is left out,
 * unless a wake or a handed push came before hello_ack (one host only). */
static void hello_go(struct worker *w, enum hello_claim_when when)
{
	log_info("peer joined", "mesh", w->me.mesh_id, "member", w->me.member_id, "presence", w->me.presence_id);
	peers_replace_older(w);
	if (hosts_id()) /* and on the other hosts: after our row and its session key (issue 24) */
		store_host_ring_replace(w->db, hosts_id(), w->me.presence_id);
	peerevents_start(w);
	if (hosts_id() || w->woken_early || when == HELLO_CLAIM)
		delivery_drain(w);
}

/* the rows are written: the restored visibility into our slot, and the
 * chain step owed when the audit row was left pending: tried, never waited
 * for, by send.c's retry (every CHAIN_RETRY_MS until the lock was free or
 * another step took the row), so no hello queues behind the mesh's chain
 * lock; our leave, waiting for it, chains it at the latest (issue 23) */
static void hello_joined(struct worker *w, const struct hello_join_result *r)
{
	int hidden = !r->visible;
	/* a set_visible the peer sent after its hello_ack (its statement is
	 * queued after this one) is newer than the restored visibility */
	if (w->have_slot && !w->visible_set && hidden != w->me.hidden) {
		w->me.hidden = hidden;
		presence_update(w->shm, w->slot, &w->me);
	}
	if (r->audit_pending)
		send_chain_owe(w);
}

/* the slot is ours (after a lookup): a socket for other workers' wakes,
 * hello_ack, the write statement, then whatever is queued */
static void hello_accept(struct worker *w, int pending)
{
	if (hosts_id()) {
		/* more than one host: the presence row is how the other hosts
		 * see this peer (list_peers, a member-scope status or a hook,
		 * a doorbell), so hello_ack waits for it, as a warm hello's does:
		 * a peer acked is one every host can reach */
		w->hello_after_row = 1;
		w->joined = 1;       /* the leave closes the row, whenever it comes */
		w->presence_row = 1;
		if (hello_join_send(w, pending) != 0) {
			w->hello_after_row = 0;
			ws_send_peer_error(w, PEER_ERR_DB_DOWN, NULL);
			ws_close(w, WS_CLOSE_INTERNAL, "database unavailable");
		}
		return;
	}
	hello_ack(w);
	int sent = hello_join_send(w, pending) == 0;
	if (!sent)
		log_warn("hello: the presence row could not be queued", "presence", w->me.presence_id);
	w->presence_row = 1;
	/* our socket was bound before the statement (hello_member_cb): the
	 * first claim waits for its answer (hello_join_cb), unless it never
	 * comes; a wake meanwhile claims at once (we are authenticated) */
	hello_go(w, sent ? HELLO_CLAIM_AFTER_JOIN : HELLO_CLAIM);
}

/* capacity (check 7) and the slot for a member whose row said limit;
 * ADMIT_OK with w->have_slot set, else nothing held */
static enum presence_admit hello_claim(struct worker *w, long limit, int pending)
{
	/* Capacity (check 7): claimed and counted under the mesh's admission
	 * lock (shm/presence.h presence_claim_capped): two racing hellos can
	 * never both squeeze into the last place, and a refusal comes only from
	 * an exact count, so a peer that reconnects while we count cannot
	 * refuse us: the mesh (or member) really was at its cap. */
	id_new(w->me.presence_id);
	int64_t now = now_ms();
	w->me.status = ST_IDLE;
	w->me.status_source = SRC_JSONL;
	w->me.status_ms = now;
	w->me.connected_ms = now;
	if (pending >= 0) /* a hook that fired before we connected */
		status_apply(&w->me, pending, SRC_HOOK, now, w->cfg.hook_fresh_window_seconds);
	enum presence_admit a = presence_claim_capped(w->shm, &w->me, limit, w->cfg.max_connections_per_member,
						      counts_cb, w, &w->slot, &w->gen);
	if (a == ADMIT_OK)
		w->have_slot = 1;
	return a;
}

/* no free slot, or the admission lock stayed taken: try again */
static void hello_table_full(struct worker *w)
{
	counter_add(w->shm, C_REJ_TABLE_FULL, 1);
	ws_send_error(w, rejections[HELLO_TABLE_FULL].code, rejections[HELLO_TABLE_FULL].message, NULL);
	ws_close(w, WS_CLOSE_TRY_AGAIN, rejections[HELLO_TABLE_FULL].label);
}

static void hello_member_cb(void *arg, const struct member_row *rows, int n, const char *err);

/* check 6 by the database: the lookup (and the session key claim queued
 * ahead of it); 0 queued, -1 not */
static int hello_lookup(struct worker *w)
{
	if (worker_db(w) != 0 || session_key_queue(w) != 0 ||
	    store_hello_member(w->db, w->me.mesh_id, w->me.pubkey, w->me.pid, w->me.cwd, hello_member_cb, w) != 0)
		return -1;
	w->phase = PHASE_HELLO_PENDING;
	return 0;
}

/* check 6 from the member cache: a plain hello (no session key) of the
 * member id the cache remembers for its key takes its slot now, and
 * mesh.hello_join re-checks the membership before hello_ack.  1 when the
 * hello went this way (answered, or waiting for the statement), 0 when it
 * must be looked up. */
static int hello_from_cache(struct worker *w)
{
	struct member_cached mc;
	w->mc_stamp = UINT32_MAX;
	if (worker_membercache(w) != 0 ||
	    !membercache_get(w->membercache, w->me.mesh_id, w->me.pubkey, mono_ms(), &mc, &w->mc_stamp) ||
	    w->me.session_pubkey[0] || strcmp(mc.member_id, w->me.member_id) != 0)
		return 0;
	if (worker_db(w) != 0) {
		ws_close(w, WS_CLOSE_INTERNAL, "internal");
		return 1;
	}
	counter_add(w->shm, C_LOOKUP_MEMBER_CACHE_HIT, 1);
	str_copy(w->me.display_name, sizeof w->me.display_name, mc.display_name); /* the slot shows it */
	/* as after a lookup: from now on the acceptor never evicts this
	 * connection (a failed re-check closes it soon enough) */
	if (worker_child_mark(w, CHILD_BIT(CHILD_HELLO), CHILD_AUTHENTICATED) != 0)
		return 1;
	long limit = w->cfg.max_connections_per_mesh;
	if (mc.max_peers > 0 && mc.max_peers < limit)
		limit = mc.max_peers;
	enum presence_admit a = hello_claim(w, limit, -1);
	if (a == ADMIT_TABLE_FULL || a == ADMIT_BUSY) {
		hello_table_full(w);
		return 1;
	}
	if (a != ADMIT_OK) /* a capacity refusal is the lookup's to make */
		return 0;
	/* the socket before the statement: a send that commits after its
	 * snapshot finds our slot and its wake reaches us (hello_go) */
	if (uds_listen_open(w) != 0) {
		presence_release(w->shm, w->slot, w->gen);
		w->have_slot = 0;
		ws_send_peer_error(w, PEER_ERR_NO_WORKER_SOCKET, NULL);
		ws_close(w, WS_CLOSE_INTERNAL, "internal");
		return 1;
	}
	w->hello_warm = 1;
	w->warm_max_peers = mc.max_peers;
	if (hello_join_send(w, -1) != 0) {
		uds_listen_close(w);
		presence_release(w->shm, w->slot, w->gen);
		w->have_slot = 0;
		w->hello_warm = 0;
		ws_close(w, WS_CLOSE_INTERNAL, "internal");
		return 1;
	}
	w->phase = PHASE_HELLO_PENDING;
	return 1;
}

static void hello_join_cb(void *arg, const struct hello_join_result *r, const char *err)
{
	struct worker *w = arg;
	if (w->hello_after_row) { /* after a lookup, with HOST_ID: hello_ack comes now */
		w->hello_after_row = 0;
		if (err) {
			log_warn("hello: presence row failed", "presence", w->me.presence_id, "error", err);
			if (w->phase != PHASE_CLOSING) {
				ws_send_peer_error(w, db_err_unmigrated(err) ? PEER_ERR_DB_UNMIGRATED : PEER_ERR_DB_DOWN,
						   NULL);
				ws_close(w, WS_CLOSE_INTERNAL, "database unavailable");
			}
			return;
		}
		if (w->phase == PHASE_CLOSING)
			return;
		hello_ack(w);
		hello_joined(w, r);
		hello_go(w, HELLO_CLAIM);
		return;
	}
	if (!w->hello_warm) { /* after a lookup: hello_ack went before */
		if (err)
			log_warn("hello: presence row failed", "presence", w->me.presence_id, "error", err);
		else
			hello_joined(w, r);
		if (err || r->queued) /* the first claim, which waited for the answer (hello_go) */
			delivery_drain(w);
		return;
	}
	w->hello_warm = 0;
	if (err) {
		counter_add(w->shm, C_LOOKUP_ERROR, 1);
		log_warn("hello: membership re-check failed", "error", err);
		if (w->phase != PHASE_CLOSING) {
			ws_send_peer_error(w, db_err_unmigrated(err) ? PEER_ERR_DB_UNMIGRATED : PEER_ERR_DB_DOWN, NULL);
			ws_close(w, WS_CLOSE_INTERNAL, "database unavailable");
		}
		return;
	}
	if (!r->ok) {
		/* revoked, archived, another member id or max_peers, or a hook
		 * status waiting: nothing was written; forget the entry and ask
		 * the database, whose answer is the hello's */
		membercache_drop(w->membercache, w->me.mesh_id, w->me.pubkey);
		uds_listen_close(w); /* bound for the slot given back (the lookup binds its own) */
		if (w->have_slot)
			presence_release(w->shm, w->slot, w->gen);
		w->have_slot = 0;
		if (w->phase == PHASE_CLOSING)
			return;
		struct member_cached mc;
		membercache_get(w->membercache, w->me.mesh_id, w->me.pubkey, mono_ms(), &mc, &w->mc_stamp);
		if (hello_lookup(w) != 0)
			ws_close(w, WS_CLOSE_INTERNAL, "internal");
		return;
	}
	/* the rows are written: the leave closes them whatever happens next */
	w->joined = 1;
	w->presence_row = 1;
	if (w->phase == PHASE_CLOSING)
		return;
	if (r->display_name && strcmp(r->display_name, w->me.display_name) != 0) { /* renamed since it was cached */
		snprintf(w->me.display_name, sizeof w->me.display_name, "%s", r->display_name);
		presence_update(w->shm, w->slot, &w->me);
	}
	hello_ack(w);
	hello_joined(w, r);
	hello_go(w, r->queued ? HELLO_CLAIM : HELLO_CLAIM_NONE);
}

static void hello_member_cb(void *arg, const struct member_row *rows, int n, const char *err)
{
	struct worker *w = arg;
	if (w->phase == PHASE_CLOSING)
		return;
	if (!err && w->session_conn && session_member_check(w, rows, n) != 0)
		return;
	if (err) {
		counter_add(w->shm, C_LOOKUP_ERROR, 1);
		log_warn("hello: membership lookup failed", "error", err);
		ws_send_peer_error(w, db_err_unmigrated(err) ? PEER_ERR_DB_UNMIGRATED : PEER_ERR_DB_DOWN, NULL);
		ws_close(w, WS_CLOSE_INTERNAL, "database unavailable");
		return;
	}
	if (n == 1 && rows[0].revoked && !rows[0].mesh_archived && strcmp(rows[0].id, w->me.member_id) == 0) {
		counter_add(w->shm, C_LOOKUP_NOT_MEMBER, 1);
		moderation_refuse_hello(w); /* banned (§12.4): not cached, so an unban lets it back at once */
		return;
	}
	if (n != 1 || rows[0].revoked || rows[0].mesh_archived || strcmp(rows[0].id, w->me.member_id) != 0) {
		counter_add(w->shm, C_LOOKUP_NOT_MEMBER, 1);
		/* a key that is no (live) member of a live mesh is remembered
		 * as such; one that is a member under another memberId is not
		 * (only that member's own client signs with it) */
		if ((n == 0 || rows[0].revoked || rows[0].mesh_archived) && worker_negcache(w) == 0)
			negcache_put(w->negcache, w->me.mesh_id, w->me.pubkey, mono_ms(),
				     (int64_t)w->cfg.member_negative_cache_seconds * 1000, w->neg_stamp);
		hello_reject(w, HELLO_UNAUTHORIZED, w->me.mesh_id);
		return;
	}
	counter_add(w->shm, C_LOOKUP_MEMBER, 1);
	if (!w->session_conn && worker_membercache(w) == 0) {
		/* a live member: its next hellos skip this lookup (unless a
		 * drop came since the stamp was taken, before the lookup) */
		struct member_cached mc = {.max_peers = rows[0].max_peers > INT32_MAX ? 0 : (int32_t)rows[0].max_peers};
		if (str_copy(mc.member_id, sizeof mc.member_id, rows[0].id) == 0 &&
		    str_copy(mc.display_name, sizeof mc.display_name, rows[0].display_name) == 0)
			membercache_put(w->membercache, w->me.mesh_id, w->me.pubkey, &mc, mono_ms(), MEMBER_CACHE_MS,
					w->mc_stamp);
	}
	if (session_key_check(w) != 0)
		return;
	/* a member: from now on the acceptor never evicts this connection
	 * (unless it already did: then it is on its way out) */
	if (worker_child_mark(w, CHILD_BIT(CHILD_HELLO), CHILD_AUTHENTICATED) != 0)
		return;
	snprintf(w->me.display_name, sizeof w->me.display_name, "%s", rows[0].display_name);
	if (w->session_conn && msg_str(w->hello_obj, "displayName") && msg_str(w->hello_obj, "displayName")[0])
		str_copy(w->me.display_name, sizeof w->me.display_name, msg_str(w->hello_obj, "displayName"));
	long limit = w->cfg.max_connections_per_mesh;
	if (rows[0].max_peers > 0 && rows[0].max_peers < limit)
		limit = rows[0].max_peers;
	int pending = rows[0].pending_status ? status_parse(rows[0].pending_status) : -1;
	enum presence_admit a = hello_claim(w, limit, pending);
	if (a == ADMIT_TABLE_FULL || a == ADMIT_BUSY) {
		hello_table_full(w);
		return;
	}
	if (a != ADMIT_OK) {
		hello_reject_why(w, HELLO_CAPACITY, w->me.mesh_id,
				 a == ADMIT_MESH_FULL ? NULL : "member at connection capacity (MAX_CONNECTIONS_PER_MEMBER)");
		return;
	}
	if (uds_listen_open(w) != 0) {
		presence_release(w->shm, w->slot, w->gen);
		w->have_slot = 0;
		ws_send_peer_error(w, PEER_ERR_NO_WORKER_SOCKET, NULL);
		ws_close(w, WS_CLOSE_INTERNAL, "internal");
		return;
	}
	hello_accept(w, pending);
}

/* the capabilities a hello or session_hello lists */
static void hello_caps(struct worker *w, const cJSON *caps)
{
	const cJSON *cap;
	cJSON_ArrayForEach(cap, caps)
	{
		if (cJSON_IsString(cap) && strcmp(cap->valuestring, "client_ack") == 0)
			w->client_ack = 1;
		if (cJSON_IsString(cap) && strcmp(cap->valuestring, "peer_events") == 0)
			w->peer_events = 1;
	}
}

/* legal in PHASE_BEFORE_HELLO only (phase.c) */
void auth_on_hello(struct worker *w, const cJSON *msg)
{
	hello_t0_us = histo_clock_us();
	struct hello h;
	enum hello_code c = hello_check(msg, &h, now_ms());
	if (c != HELLO_OK) {
		hello_reject(w, c, msg_str(msg, "meshId"));
		return;
	}
	/* check 5: a signature is accepted once while it could pass the skew check */
	unsigned char sig[64];
	hex_decode(h.signature, sig, sizeof sig);
	int fresh = replay_check_and_remember(w->shm, sig, sizeof sig, now_ms(),
					      h.timestamp + HELLO_SKEW_MS + REPLAY_SLACK_MS);
	if (fresh <= 0) { /* -1: the cache is full of live entries; it fails closed */
		hello_reject(w, fresh == 0 ? HELLO_REPLAYED : HELLO_TABLE_FULL, h.mesh_id);
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
	/* optional, shown by list_peers; a value too long for its place is left out */
	str_copy(w->me.hostname, sizeof w->me.hostname, msg_str(msg, "hostname") ? msg_str(msg, "hostname") : "");
	str_copy(w->me.repo, sizeof w->me.repo, msg_str(msg, "repo") ? msg_str(msg, "repo") : "");
	str_copy(w->me.peer_type, sizeof w->me.peer_type, msg_str(msg, "peerType") ? msg_str(msg, "peerType") : "");
	/* §12.1: the session key, and the role list_peers shows (ext: a hello
	 * may ask to be listed as a session) */
	str_copy(w->me.session_pubkey, sizeof w->me.session_pubkey, h.session_pubkey ? h.session_pubkey : "");
	str_copy(w->me.peer_role, sizeof w->me.peer_role,
		 msg_str(msg, "peerRole") && strcmp(msg_str(msg, "peerRole"), "session") == 0 ? "session"
											 : "control-plane");
	hello_caps(w, h.capabilities);
	/* proven key possession: the acceptor evicts this connection only after
	 * every one that has not come this far */
	if (worker_child_mark(w, CHILD_BIT(CHILD_PREAUTH), CHILD_HELLO) != 0)
		return; /* evicted: the loop closes it */
	/* check 6: a live member of a live mesh, and the memberId it signed; a
	 * key recently found to be none costs no database work */
	if (worker_negcache(w) == 0 &&
	    negcache_hit(w->negcache, w->me.mesh_id, w->me.pubkey, mono_ms(), &w->neg_stamp)) {
		counter_add(w->shm, C_LOOKUP_NEGATIVE_CACHE_HIT, 1);
		hello_reject(w, HELLO_UNAUTHORIZED, w->me.mesh_id);
		return;
	}
	if (hello_from_cache(w))
		return;
	if (hello_lookup(w) != 0)
		ws_close(w, WS_CLOSE_INTERNAL, "internal");
}

/* ---- session_hello (§12.1) ---- */

/* legal in PHASE_BEFORE_HELLO only (phase.c): checks 1-5 (proto/hello.c),
 * the replay cache (6), then the member lookup and the session key claim,
 * whose callback (hello_member_cb) runs checks 7-10 and accepts */
void auth_on_session_hello(struct worker *w, const cJSON *msg)
{
	hello_t0_us = histo_clock_us();
	if (!w->cfg.session_hello) { /* the ext switch: the daemon's session client stops retrying */
		hello_reject(w, HELLO_UNKNOWN_MESSAGE_TYPE, NULL);
		return;
	}
	struct session_hello h;
	enum hello_code c = session_hello_check(msg, &h, now_ms());
	if (c == HELLO_MALFORMED) {
		hello_reject_why(w, c, msg_str(msg, "meshId"), "session_hello rejected: malformed");
		return;
	}
	if (c != HELLO_OK) {
		hello_reject(w, c, msg_str(msg, "meshId"));
		return;
	}
	/* check 6: the session signature is accepted once while it could pass the skew check */
	unsigned char sig[64];
	hex_decode(h.signature, sig, sizeof sig);
	int fresh = replay_check_and_remember(w->shm, sig, sizeof sig, now_ms(),
					      h.timestamp + HELLO_SKEW_MS + REPLAY_SLACK_MS);
	if (fresh <= 0) {
		if (fresh == 0)
			hello_reject_why(w, HELLO_REPLAYED, h.mesh_id, "session_hello rejected: replayed");
		else
			hello_reject(w, HELLO_TABLE_FULL, h.mesh_id);
		return;
	}
	w->session_conn = 1;
	snprintf(w->me.mesh_id, sizeof w->me.mesh_id, "%s", h.mesh_id);
	snprintf(w->parent_member_id, sizeof w->parent_member_id, "%s", h.parent_member_id ? h.parent_member_id : "");
	snprintf(w->me.pubkey, sizeof w->me.pubkey, "%s", h.parent_pubkey);
	snprintf(w->me.session_pubkey, sizeof w->me.session_pubkey, "%s", h.session_pubkey);
	snprintf(w->me.peer_role, sizeof w->me.peer_role, "session");
	snprintf(w->me.session_id, sizeof w->me.session_id, "%s", h.session_id);
	snprintf(w->me.cwd, sizeof w->me.cwd, "%s", h.cwd);
	w->me.pid = (int32_t)h.pid;
	w->hello_obj = cJSON_Duplicate(msg, 1);
	str_copy(w->me.hostname, sizeof w->me.hostname, msg_str(msg, "hostname") ? msg_str(msg, "hostname") : "");
	str_copy(w->me.repo, sizeof w->me.repo, msg_str(msg, "repo") ? msg_str(msg, "repo") : "");
	str_copy(w->me.peer_type, sizeof w->me.peer_type, msg_str(msg, "peerType") ? msg_str(msg, "peerType") : "");
	hello_caps(w, h.capabilities);
	if (worker_child_mark(w, CHILD_BIT(CHILD_PREAUTH), CHILD_HELLO) != 0)
		return;
	if (worker_negcache(w) == 0 &&
	    negcache_hit(w->negcache, w->me.mesh_id, w->me.pubkey, mono_ms(), &w->neg_stamp)) {
		counter_add(w->shm, C_LOOKUP_NEGATIVE_CACHE_HIT, 1);
		hello_reject_why(w, HELLO_UNAUTHORIZED, w->me.mesh_id, "parent pubkey not found in mesh");
		return;
	}
	if (hello_lookup(w) != 0)
		ws_close(w, WS_CLOSE_INTERNAL, "internal");
}
