/* moderation — see moderation.h.  Every request first reads the caller's
 * standing (member role, mesh owner) from the database, never from the
 * client; kick and disconnect match live presences in the shared table
 * (no database) and, with HOST_ID, the live presences of the other hosts
 * (mesh.host_remote_peers, one statement); ban and unban match member rows.
 * The connections are closed by their own workers, told by a UDS_CLOSE
 * envelope: on this host by us, on another by its relay (a "k" or "t"
 * doorbell, worker/hosts.h; a ban's by 0012's revocation trigger). */
#include "worker/moderation.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "db/store_groups.h"
#include "shm/membercache.h"
#include "worker/audit.h"
#include "worker/groupcheck.h"
#include "worker/groups.h"
#include "worker/hosts.h"
#include "worker/msg.h"
#include "worker/peers.h"
#include "worker/skel.h"
#include "worker/uds.h"
#include "worker/ws.h"

#define MOD_PREFIX_MIN 8 /* a pubkey prefix names a member from this many characters on */
#define MOD_MATCH_MAX  1024

/* close reasons, by the index a UDS_CLOSE envelope carries */
enum {
	R_KICKED,
	R_KICKED_STALE,
	R_DISCONNECTED,
	R_DISCONNECTED_STALE,
	R_BANNED,
	R_REVOKED,
	R_FENCED,
	R_ARCHIVED,
	R_COUNT
};
static const char *const reasons[R_COUNT] = {"kicked", "kicked_stale", "disconnected", "disconnected_stale",
                                             "banned", "revoked",      "host_fenced",  "mesh_archived"};
_Static_assert(R_REVOKED == UDS_CLOSE_REASON_REVOKED, "meshctl's revocation close names reasons[R_REVOKED]");
_Static_assert(R_FENCED == UDS_CLOSE_REASON_FENCED, "meshbroker-relay's fence names reasons[R_FENCED]");
_Static_assert(R_BANNED == 4 && R_REVOKED == 5, "0012's revocation trigger names reasons 4 and 5");
_Static_assert(R_ARCHIVED == UDS_CLOSE_REASON_ARCHIVED, "0012's mesh_archived trigger names reasons[R_ARCHIVED]");

enum act { A_KICK, A_DISCONNECT, A_BAN, A_UNBAN, A_LIST };
static const struct {
	const char *verb; /* "only owner or admin can <verb>" */
	const char *reply;
	int admin_only;
} acts[] = {
    [A_KICK] = {"kicked", "kick_ack", 1},
    [A_DISCONNECT] = {"disconnected", "disconnect_ack", 1},
    [A_BAN] = {"ban", "ban_ack", 1},
    [A_UNBAN] = {"unban", "unban_ack", 1},
    [A_LIST] = {"list_bans", "list_bans_result", 0},
};

struct mod_req {
	struct worker *w;
	enum act act;
	struct mod_args args;
	char target[MOD_TARGET_MAX + 1];
	int has_req;
	char reqid[129];
	/* ban/unban: the member found */
	char member_id[SHM_MEMBER_ID_MAX], name[SHM_NAME_MAX], pubkey[SHM_PUBKEY_MAX];
	/* kick/disconnect with HOST_ID: the other hosts' live presences of the
	 * mesh, slot UINT32_MAX (only the fields matching reads) */
	struct presence_view *remote;
	int nremote;
};

static const char *req_id(const struct mod_req *r)
{
	return r->has_req ? r->reqid : NULL;
}

static void mod_error(struct mod_req *r, const char *code, const char *message)
{
	groups_error(r->w, code, message, req_id(r));
}

static void mod_db_failed(struct mod_req *r, const char *err)
{
	log_warn("moderation: statement failed", "error", err);
	mod_error(r, "internal", "database unavailable, try again");
	free(r);
}

static void mod_audit(struct worker *w, const char *event, cJSON *payload)
{
	audit_event(w, w->me.mesh_id, event, w->me.member_id, w->me.display_name, payload);
}

/* ---- kick / disconnect: live presences from the shared table ---- */

static int hex_prefix(const char *s)
{
	size_t n = strlen(s);
	return n >= MOD_PREFIX_MIN && n <= 64 && is_hex(s, n);
}

/* the target matches v: display name, member pubkey, or a prefix of it */
static int target_matches(const char *t, const struct presence_view *v)
{
	if (strcmp(v->info.display_name, t) == 0)
		return 1;
	if (!hex_prefix(t))
		return 0;
	return strncasecmp(v->info.pubkey, t, strlen(t)) == 0;
}

struct match {
	struct mod_req *r;
	struct presence_view *v;
	int n, cap;
};

/* MOD_STALE: not heard (its hello, or a pong to the worker's ping) for more
 * than the ms asked (docs/protocol.md §12.4); its worker writes the time
 * of the last pong to the slot (ws.c) */
static int is_stale(const struct presence_view *v, int64_t stale_ms)
{
	int64_t heard = v->info.connected_ms + (int64_t)v->info.pong_s * 1000;
	return now_ms() - heard > stale_ms;
}

static int match_add(struct match *m, const struct presence_view *v)
{
	if (m->n == m->cap) {
		if (m->cap >= MOD_MATCH_MAX)
			return 1;
		int cap = m->cap ? m->cap * 2 : 16;
		struct presence_view *nv = realloc(m->v, (size_t)cap * sizeof *nv);
		if (!nv)
			log_fatal("out of memory");
		m->v = nv;
		m->cap = cap;
	}
	m->v[m->n++] = *v;
	return 0;
}

static int match_cb(const struct presence_view *v, void *arg)
{
	struct match *m = arg;
	struct worker *w = m->r->w;
	if (v->slot == w->slot && v->gen == w->gen)
		return 0; /* never the caller's own connection */
	if (m->r->args.pick == MOD_TARGET && !target_matches(m->r->target, v))
		return 0;
	if (m->r->args.pick == MOD_STALE && !is_stale(v, m->r->args.stale_ms))
		return 0;
	return match_add(m, v);
}

static void add_name(cJSON *arr, const char *name)
{
	cJSON *e;
	cJSON_ArrayForEach(e, arr)
	{
		if (strcmp(e->valuestring, name) == 0)
			return;
	}
	cJSON_AddItemToArray(arr, cJSON_CreateString(name));
}

static void close_presences(struct mod_req *r)
{
	struct worker *w = r->w;
	int kick = r->act == A_KICK, stale = r->args.pick == MOD_STALE;
	struct match m = {.r = r};
	presence_foreach(w->shm, w->me.mesh_id, match_cb, &m);
	/* the other hosts' presences: by target or all here; stale ones only
	 * their own host can tell (below) */
	for (int i = 0; i < r->nremote && r->args.pick != MOD_STALE; i++)
		if ((r->args.pick != MOD_TARGET || target_matches(r->target, &r->remote[i])) &&
		    match_add(&m, &r->remote[i]) != 0)
			break;
	if (r->args.pick == MOD_TARGET) {
		int members = 0;
		for (int i = 0; i < m.n; i++) {
			int seen = 0;
			for (int j = 0; j < i && !seen; j++)
				seen = strcmp(m.v[j].info.member_id, m.v[i].info.member_id) == 0;
			members += !seen;
		}
		char msg[MOD_TARGET_MAX + 64];
		if (members == 0) {
			snprintf(msg, sizeof msg, "peer \"%s\" not found", r->target);
			mod_error(r, "not_found", msg);
			goto out;
		}
		if (members > 1) {
			snprintf(msg, sizeof msg, "\"%s\" matches %d members", r->target, members);
			mod_error(r, "ambiguous", msg);
			goto out;
		}
	}
	int code = kick ? MOD_CLOSE_KICKED : WS_CLOSE_NORMAL;
	int reason = kick ? (stale ? R_KICKED_STALE : R_KICKED) : (stale ? R_DISCONNECTED_STALE : R_DISCONNECTED);
	cJSON *reply = groups_reply(acts[r->act].reply, req_id(r));
	cJSON *closed = cJSON_AddArrayToObject(reply, "kicked");
	cJSON *affected = cJSON_AddArrayToObject(reply, "affected");
	cJSON *skipped = kick ? cJSON_AddArrayToObject(reply, "skipped_control_plane") : NULL;
	cJSON *pl = cJSON_CreateObject(), *ids = cJSON_CreateArray();
	const char **far = r->nremote ? malloc((size_t)r->nremote * sizeof *far) : NULL;
	int nfar = 0;
	if (r->nremote && !far)
		log_fatal("out of memory");
	for (int i = 0; i < m.n; i++) {
		const struct presence_view *v = &m.v[i];
		add_name(affected, v->info.display_name);
		if (kick && strcmp(peers_role(v), "control-plane") == 0) {
			add_name(skipped, v->info.display_name);
			continue;
		}
		add_name(closed, v->info.display_name);
		cJSON_AddItemToArray(ids, cJSON_CreateString(v->info.presence_id));
		if (v->slot == UINT32_MAX) /* on another host: its relay closes it */
			far[nfar++] = v->info.presence_id;
		else if (uds_queue_close(w, v->slot, v->gen, code, reason) != 0)
			log_warn("moderation: the connection's worker did not answer", "presence", v->info.presence_id);
	}
	char kind[64];
	if (nfar) {
		snprintf(kind, sizeof kind, "k%d.%d", code, reason);
		hosts_hand(w->cfg.runtime_dir, kind, w->me.mesh_id, far, nfar);
	}
	if (stale && r->nremote) {
		/* the other hosts judge their own presences' ping times; a kick
		 * leaves control-plane presences alone there too */
		for (int i = 0; i < r->nremote; i++)
			if (!kick || strcmp(peers_role(&r->remote[i]), "control-plane") != 0)
				far[nfar++] = r->remote[i].info.presence_id;
		snprintf(kind, sizeof kind, "t%d.%d.%lld", code, reason,
		         (long long)(r->args.stale_ms < HOSTS_STALE_MAX ? r->args.stale_ms : HOSTS_STALE_MAX));
		hosts_hand(w->cfg.runtime_dir, kind, w->me.mesh_id, far, nfar);
	}
	free(far);
	ws_send_json(w, reply);
	cJSON_Delete(reply);
	cJSON_AddStringToObject(pl, "mode", r->args.pick == MOD_TARGET ? "target" : stale ? "stale" : "all");
	if (r->args.pick == MOD_TARGET)
		cJSON_AddStringToObject(pl, "target", r->target);
	cJSON_AddItemToObject(pl, "presenceIds", ids);
	mod_audit(w, kick ? "peer_kicked" : "peer_disconnected", pl);
out:
	free(m.v);
	free(r->remote);
	free(r);
}

static void copy_or_empty(char *dst, size_t cap, const char *src)
{
	str_copy(dst, cap, src ? src : "");
}

/* with HOST_ID: the other hosts' live presences of the mesh, then the match */
static void remote_cb(void *arg, const struct store_table *t, const char *err)
{
	struct mod_req *r = arg;
	if (err) {
		mod_db_failed(r, err);
		return;
	}
	int n = store_table_rows(t);
	if (n > MOD_MATCH_MAX)
		n = MOD_MATCH_MAX;
	r->remote = n ? calloc((size_t)n, sizeof *r->remote) : NULL;
	if (n && !r->remote)
		log_fatal("out of memory");
	for (int i = 0; i < n; i++) {
		struct presence_view *v = &r->remote[i];
		v->slot = v->gen = UINT32_MAX;
		copy_or_empty(v->info.presence_id, sizeof v->info.presence_id, store_table_get(t, i, RP_ID));
		copy_or_empty(v->info.member_id, sizeof v->info.member_id, store_table_get(t, i, RP_MEMBER));
		copy_or_empty(v->info.pubkey, sizeof v->info.pubkey, store_table_get(t, i, RP_PUBKEY));
		copy_or_empty(v->info.display_name, sizeof v->info.display_name, store_table_get(t, i, RP_NAME));
		copy_or_empty(v->info.peer_role, sizeof v->info.peer_role, store_table_get(t, i, RP_ROLE));
	}
	r->nremote = n;
	close_presences(r);
}

/* ---- ban / unban ---- */

static void revoked_cb(void *arg, const struct store_table *t, const char *err)
{
	struct mod_req *r = arg;
	struct worker *w = r->w;
	if (err) {
		mod_db_failed(r, err);
		return;
	}
	int ban = r->act == A_BAN;
	if (ban && worker_membercache(w) == 0) /* its next hello is looked up (and refused) */
		membercache_drop_member(w->membercache, r->member_id);
	if (ban) {
		/* every live connection of the member goes, 4002 banned */
		struct match m = {.r = r};
		r->args.pick = MOD_ALL;
		presence_foreach(w->shm, w->me.mesh_id, match_cb, &m);
		for (int i = 0; i < m.n; i++)
			if (strcmp(m.v[i].info.member_id, r->member_id) == 0 &&
			    uds_queue_close(w, m.v[i].slot, m.v[i].gen, MOD_CLOSE_BANNED, R_BANNED) != 0)
				log_warn("moderation: the connection's worker did not answer", "presence",
				         m.v[i].info.presence_id);
		free(m.v);
		/* and on every other host: 0012's revocation trigger rang them
		 * ("banned": the statement set mesh.close_reason) */
	}
	if (store_table_rows(t) > 0) {
		cJSON *pl = cJSON_CreateObject();
		cJSON_AddStringToObject(pl, "target", r->name);
		if (ban)
			cJSON_AddStringToObject(pl, "targetPubkey", r->pubkey);
		mod_audit(w, ban ? "member_banned" : "member_unbanned", pl);
		log_info(ban ? "member banned" : "member unbanned", "mesh", w->me.mesh_id, "member", r->member_id, "by",
		         w->me.member_id);
	}
	cJSON *reply = groups_reply(acts[r->act].reply, req_id(r));
	cJSON_AddStringToObject(reply, ban ? "banned" : "unbanned", r->name);
	ws_send_json(w, reply);
	cJSON_Delete(reply);
	free(r);
}

static void member_cb(void *arg, const struct store_table *t, const char *err)
{
	struct mod_req *r = arg;
	if (err) {
		mod_db_failed(r, err);
		return;
	}
	int n = store_table_rows(t), ban = r->act == A_BAN;
	char msg[MOD_TARGET_MAX + 64];
	if (n == 0) {
		snprintf(msg, sizeof msg, ban ? "peer \"%s\" not found" : "no banned peer \"%s\"", r->target);
		mod_error(r, "not_found", msg);
		free(r);
		return;
	}
	if (n > 1) {
		snprintf(msg, sizeof msg, "\"%s\" matches %d members", r->target, n);
		mod_error(r, "ambiguous", msg);
		free(r);
		return;
	}
	str_copy(r->member_id, sizeof r->member_id, store_table_get(t, 0, MF_ID));
	str_copy(r->name, sizeof r->name, store_table_get(t, 0, MF_NAME));
	str_copy(r->pubkey, sizeof r->pubkey, store_table_get(t, 0, MF_PUBKEY));
	const char *owner = store_table_get(t, 0, MF_OWNER);
	if (ban && strcmp(r->member_id, r->w->me.member_id) == 0) {
		mod_error(r, "invalid", "cannot ban yourself");
		free(r);
		return;
	}
	if (ban && owner && strcmp(owner, "t") == 0) {
		mod_error(r, "forbidden", "the mesh owner cannot be banned");
		free(r);
		return;
	}
	if (store_member_set_revoked(r->w->db, r->member_id, ban, revoked_cb, r) != 0) {
		mod_error(r, "internal", "broker busy, try again");
		free(r);
	}
}

/* ---- list_bans ---- */

static void bans_cb(void *arg, const struct store_table *t, const char *err)
{
	struct mod_req *r = arg;
	if (err) {
		mod_db_failed(r, err);
		return;
	}
	cJSON *reply = groups_reply(acts[r->act].reply, req_id(r));
	cJSON *bans = cJSON_AddArrayToObject(reply, "bans");
	for (int i = 0; i < store_table_rows(t); i++) {
		cJSON *b = cJSON_CreateObject();
		cJSON_AddStringToObject(b, "name", store_table_get(t, i, MB_NAME));
		cJSON_AddStringToObject(b, "pubkey", store_table_get(t, i, MB_PUBKEY));
		cJSON_AddStringToObject(b, "revokedAt", store_table_get(t, i, MB_REVOKED_AT));
		cJSON_AddItemToArray(bans, b);
	}
	ws_send_json(r->w, reply);
	cJSON_Delete(reply);
	free(r);
}

/* ---- the caller's standing, then the action ---- */

static void authority_cb(void *arg, const struct store_table *t, const char *err)
{
	struct mod_req *r = arg;
	struct worker *w = r->w;
	if (err) {
		mod_db_failed(r, err);
		return;
	}
	const char *role = store_table_get(t, 0, MA_ROLE), *owner = store_table_get(t, 0, MA_OWNER);
	int allowed = (role && strcmp(role, "admin") == 0) || (owner && strcmp(owner, "t") == 0);
	if (acts[r->act].admin_only && !allowed) {
		char msg[96];
		snprintf(msg, sizeof msg, "only owner or admin can %s", acts[r->act].verb);
		mod_error(r, "forbidden", msg);
		free(r);
		return;
	}
	int q = 0;
	switch (r->act) {
	case A_KICK:
	case A_DISCONNECT:
		if (!hosts_id()) {
			close_presences(r);
			return;
		}
		q = store_host_remote_peers(w->db, hosts_id(), w->me.mesh_id, remote_cb, r);
		break;
	case A_BAN:
	case A_UNBAN:
		q = store_member_match(w->db, w->me.mesh_id, r->target, r->act == A_UNBAN, member_cb, r);
		break;
	case A_LIST:
		q = store_member_bans(w->db, w->me.mesh_id, bans_cb, r);
		break;
	}
	if (q != 0) {
		mod_error(r, "internal", "broker busy, try again");
		free(r);
	}
}

static void mod_start(struct worker *w, const cJSON *msg, enum act act)
{
	struct mod_req *r = calloc(1, sizeof *r);
	if (!r)
		log_fatal("out of memory");
	r->w = w;
	r->act = act;
	const char *reqid = groups_req_id(msg);
	if (reqid) {
		r->has_req = 1;
		memcpy(r->reqid, reqid, strlen(reqid) + 1);
	}
	if (act != A_LIST) {
		if (groupcheck_moderation(msg, act == A_BAN || act == A_UNBAN, &r->args) != 0) {
			mod_error(r, "invalid", "target required");
			free(r);
			return;
		}
		if (r->args.target)
			str_copy(r->target, sizeof r->target, r->args.target);
		r->args.target = NULL; /* points into msg, which is gone by the callback */
	}
	if (store_member_authority(w->db, w->me.member_id, authority_cb, r) != 0) {
		mod_error(r, "internal", "broker busy, try again");
		free(r);
	}
}

void moderation_on_kick(struct worker *w, const cJSON *msg)
{
	mod_start(w, msg, A_KICK);
}

void moderation_on_disconnect(struct worker *w, const cJSON *msg)
{
	mod_start(w, msg, A_DISCONNECT);
}

void moderation_on_ban(struct worker *w, const cJSON *msg)
{
	mod_start(w, msg, A_BAN);
}

void moderation_on_unban(struct worker *w, const cJSON *msg)
{
	mod_start(w, msg, A_UNBAN);
}

void moderation_on_list_bans(struct worker *w, const cJSON *msg)
{
	mod_start(w, msg, A_LIST);
}

void moderation_on_close(struct worker *w, int code, int reason)
{
	if (w->phase != PHASE_AUTHENTICATED)
		return;
	const char *why = reason >= 0 && reason < R_COUNT ? reasons[reason] : reasons[R_KICKED];
	if (reason == R_FENCED) /* not a moderator: this host's lease is running out (meshbroker-relay) */
		code = WS_CLOSE_GOING_AWAY;
	else if (code != MOD_CLOSE_KICKED && code != MOD_CLOSE_BANNED && code != WS_CLOSE_NORMAL)
		code = MOD_CLOSE_KICKED;
	log_info(reason == R_FENCED     ? "closed: this host lost its lease"
	         : reason == R_ARCHIVED ? "closed: the mesh was archived"
	                                : "closed by a moderator",
	         "presence", w->me.presence_id, "reason", why);
	ws_close(w, (uint16_t)code, why);
}

/* ---- a banned member's hello ---- */

static void label_cb(void *arg, const struct store_table *t, const char *err)
{
	struct worker *w = arg;
	const char *label = err ? NULL : store_table_get(t, 0, 0);
	char msg[SHM_NAME_MAX + 256];
	snprintf(msg, sizeof msg, "You've been removed from \"%.200s\". Contact the mesh owner to rejoin.",
	         label ? label : w->me.mesh_id);
	counter_add(w->shm, C_REJ_REVOKED, 1);
	if (w->phase == PHASE_CLOSING)
		return;
	ws_send_error(w, "revoked", msg, NULL);
	ws_close(w, MOD_CLOSE_BANNED, "banned");
	log_info("hello rejected", "reason", "revoked", "remote", w->remote_addr);
	/* a client that retries on its backoff writes at most a row a minute */
	char key[SHM_MESH_ID_MAX + 16];
	snprintf(key, sizeof key, "audit-rej:%s", w->me.mesh_id);
	if (!bucket_take(w->shm, key, 1, 1, now_ms()))
		return;
	cJSON *pl = cJSON_CreateObject();
	cJSON_AddStringToObject(pl, "reason", "revoked");
	audit_event(w, w->me.mesh_id, "hello_rejected", w->me.member_id, NULL, pl);
}

void moderation_refuse_hello(struct worker *w)
{
	if (store_mesh_label(w->db, w->me.mesh_id, label_cb, w) != 0)
		label_cb(w, NULL, "busy");
}
