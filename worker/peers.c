/* peers — list_peers, set_summary and session replace (see peers.h).  The
 * listing reads the shared presence table, the one place that knows who is
 * live right now, then the groups, profile, stats, channel and model of
 * those presences in one statement (docs/protocol.md §12.3); when that
 * statement fails the list goes out without them. */
#include "worker/peers.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "db/store_groups.h"
#include "worker/groups.h"
#include "worker/hosts.h"
#include "worker/msg.h"
#include "worker/msgcheck.h"
#include "worker/sse.h"
#include "worker/status.h"
#include "worker/uds.h"
#include "worker/ws.h"

const char *peers_req_id(const cJSON *msg)
{
	const char *r = msg_str(msg, "_reqId");
	return r ? r : msg_str(msg, "id");
}

/* §12.3: the key to DM and the key that signs its sends */
const char *peers_pubkey(const struct presence_view *v)
{
	return v->info.session_pubkey[0] ? v->info.session_pubkey : v->info.pubkey;
}

/* §12.3: "session" for a session_hello (or a hello asking for it), else
 * "control-plane" */
const char *peers_role(const struct presence_view *v)
{
	return strcmp(v->info.peer_role, "session") == 0 ? "session" : "control-plane";
}

struct list_ctx {
	struct worker *w;
	int scope;
	cJSON *arr;
	const char **ids; /* the listed presences, in arr's order */
	char (*idbuf)[SHM_MEMBER_ID_MAX];
	int n, cap;
	int has_req;
	char reqid[129];
};

static void add_if(cJSON *o, const char *k, const char *v)
{
	if (v && v[0])
		cJSON_AddStringToObject(o, k, v);
}

static int same_nonempty(const char *a, const char *b)
{
	return a[0] && strcmp(a, b) == 0;
}

static int list_cb(const struct presence_view *v, void *arg)
{
	struct list_ctx *c = arg;
	const struct presence_info *me = &c->w->me, *p = &v->info;
	if ((c->scope == SCOPE_MACHINE && !same_nonempty(me->hostname, p->hostname)) ||
	    (c->scope == SCOPE_DIRECTORY && strcmp(me->cwd, p->cwd) != 0) ||
	    (c->scope == SCOPE_REPO && !same_nonempty(me->repo, p->repo)))
		return 0;
	/* a hidden presence is listed only to its own member (§12.3); an
	 * event stream's slot is no peer */
	if ((p->hidden && strcmp(p->member_id, me->member_id) != 0) || peers_is_stream(p))
		return 0;
	if (c->n == c->cap) {
		int cap = c->cap ? c->cap * 2 : 32;
		char(*nb)[SHM_MEMBER_ID_MAX] = realloc(c->idbuf, (size_t)cap * sizeof *nb);
		if (!nb)
			return 1;
		c->idbuf = nb;
		c->cap = cap;
	}
	memcpy(c->idbuf[c->n++], p->presence_id, SHM_MEMBER_ID_MAX);
	char at[32];
	iso8601_ms(p->connected_ms, at);
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return 1;
	cJSON_AddStringToObject(o, "pubkey", peers_pubkey(v));
	cJSON_AddStringToObject(o, "memberPubkey", p->pubkey);
	cJSON_AddStringToObject(o, "memberId", p->member_id);
	cJSON_AddStringToObject(o, "displayName", p->display_name);
	cJSON_AddStringToObject(o, "sessionId", p->session_id);
	cJSON_AddStringToObject(o, "status", status_str(p->status));
	if (p->summary[0])
		cJSON_AddStringToObject(o, "summary", p->summary);
	else
		cJSON_AddNullToObject(o, "summary");
	cJSON_AddStringToObject(o, "cwd", p->cwd);
	add_if(o, "hostname", p->hostname);
	add_if(o, "peerType", p->peer_type);
	add_if(o, "repo", p->repo);
	cJSON_AddStringToObject(o, "connectedAt", at);
	cJSON_AddItemToObject(o, "groups", cJSON_CreateArray());
	cJSON_AddStringToObject(o, "peerRole", peers_role(v));
	cJSON_AddBoolToObject(o, "visible", !p->hidden);
	cJSON_AddBoolToObject(o, "self", v->slot == c->w->slot && v->gen == c->w->gen);
	cJSON_AddItemToArray(c->arr, o);
	return 0;
}

/* a JSON text of the database (NULL: none), parsed */
static cJSON *json_cell(const char *s)
{
	return s ? cJSON_Parse(s) : NULL;
}

/* merge the extras of t (NULL: none) into the listed entries, send, free c */
static void list_send(struct list_ctx *c, const struct store_table *t)
{
	for (int r = 0; t && r < store_table_rows(t); r++) {
		const char *id = store_table_get(t, r, PX_ID);
		int i;
		for (i = 0; id && i < c->n && strcmp(c->idbuf[i], id) != 0; i++)
			;
		cJSON *o = id && i < c->n ? cJSON_GetArrayItem(c->arr, i) : NULL;
		if (!o)
			continue;
		cJSON *g = json_cell(store_table_get(t, r, PX_GROUPS));
		if (cJSON_IsArray(g))
			cJSON_ReplaceItemInObjectCaseSensitive(o, "groups", g);
		else
			cJSON_Delete(g);
		cJSON *pr = json_cell(store_table_get(t, r, PX_PROFILE));
		if (cJSON_IsObject(pr) && cJSON_GetArraySize(pr) > 0)
			cJSON_AddItemToObject(o, "profile", pr);
		else
			cJSON_Delete(pr);
		cJSON *st = json_cell(store_table_get(t, r, PX_STATS));
		if (cJSON_IsObject(st))
			cJSON_AddItemToObject(o, "stats", st);
		else
			cJSON_Delete(st);
		add_if(o, "channel", store_table_get(t, r, PX_CHANNEL));
		add_if(o, "model", store_table_get(t, r, PX_MODEL));
	}
	cJSON *reply = groups_reply("peers_list", c->has_req ? c->reqid : NULL);
	cJSON_AddItemToObject(reply, "peers", c->arr);
	ws_send_json(c->w, reply);
	cJSON_Delete(reply);
	free(c->idbuf);
	free(c);
}

static void extras_cb(void *arg, const struct store_table *t, const char *err)
{
	struct list_ctx *c = arg;
	if (err)
		log_warn("list_peers: extras not read", "error", err);
	list_send(c, err ? NULL : t);
}

/* the extras of every listed presence, then the reply */
static void list_extras(struct list_ctx *c)
{
	const char **ids = c->n ? malloc((size_t)c->n * sizeof *ids) : NULL;
	for (int i = 0; ids && i < c->n; i++)
		ids[i] = c->idbuf[i];
	if (c->n == 0 || !ids || store_presence_extras(c->w->db, ids, c->n, extras_cb, c) != 0)
		list_send(c, NULL);
	free(ids);
}

static const char *cell(const struct store_table *t, int r, int col)
{
	const char *v = store_table_get(t, r, col);
	return v ? v : "";
}

/* more than one host: the peers of the other live hosts, after ours, under
 * the same scope and visibility rules (the hostname, cwd and repo they gave
 * in their hellos) */
static void remote_cb(void *arg, const struct store_table *t, const char *err)
{
	struct list_ctx *c = arg;
	const struct presence_info *me = &c->w->me;
	if (err)
		log_warn("list_peers: other hosts' peers not read", "error", err);
	for (int r = 0; !err && r < store_table_rows(t); r++) {
		const char *member = cell(t, r, RP_MEMBER), *host = cell(t, r, RP_HOSTNAME);
		const char *cwd = cell(t, r, RP_CWD), *repo = cell(t, r, RP_REPO);
		if ((c->scope == SCOPE_MACHINE && !same_nonempty(me->hostname, host)) ||
		    (c->scope == SCOPE_DIRECTORY && strcmp(me->cwd, cwd) != 0) ||
		    (c->scope == SCOPE_REPO && !same_nonempty(me->repo, repo)))
			continue;
		int hidden = strcmp(cell(t, r, RP_VISIBLE), "f") == 0;
		if (hidden && strcmp(member, me->member_id) != 0)
			continue;
		if (strlen(cell(t, r, RP_ID)) >= SHM_MEMBER_ID_MAX)
			continue;
		if (c->n == c->cap) {
			int cap = c->cap ? c->cap * 2 : 32;
			char(*nb)[SHM_MEMBER_ID_MAX] = realloc(c->idbuf, (size_t)cap * sizeof *nb);
			if (!nb)
				break;
			c->idbuf = nb;
			c->cap = cap;
		}
		snprintf(c->idbuf[c->n++], SHM_MEMBER_ID_MAX, "%s", cell(t, r, RP_ID));
		const char *session_key = cell(t, r, RP_SESSION_PUBKEY), *summary = cell(t, r, RP_SUMMARY);
		cJSON *o = cJSON_CreateObject();
		if (!o)
			break;
		cJSON_AddStringToObject(o, "pubkey", session_key[0] ? session_key : cell(t, r, RP_PUBKEY));
		cJSON_AddStringToObject(o, "memberPubkey", cell(t, r, RP_PUBKEY));
		cJSON_AddStringToObject(o, "memberId", member);
		cJSON_AddStringToObject(o, "displayName", cell(t, r, RP_NAME));
		cJSON_AddStringToObject(o, "sessionId", cell(t, r, RP_SESSION));
		cJSON_AddStringToObject(o, "status", cell(t, r, RP_STATUS));
		if (summary[0])
			cJSON_AddStringToObject(o, "summary", summary);
		else
			cJSON_AddNullToObject(o, "summary");
		cJSON_AddStringToObject(o, "cwd", cwd);
		add_if(o, "hostname", host);
		add_if(o, "peerType", cell(t, r, RP_PEER_TYPE));
		add_if(o, "repo", repo);
		cJSON_AddStringToObject(o, "connectedAt", cell(t, r, RP_CONNECTED_AT));
		cJSON_AddItemToObject(o, "groups", cJSON_CreateArray());
		cJSON_AddStringToObject(o, "peerRole",
					strcmp(cell(t, r, RP_ROLE), "session") == 0 ? "session" : "control-plane");
		cJSON_AddBoolToObject(o, "visible", !hidden);
		cJSON_AddBoolToObject(o, "self", 0);
		cJSON_AddItemToArray(c->arr, o);
	}
	list_extras(c);
}

void peers_on_list(struct worker *w, const cJSON *msg)
{
	int scope = msgcheck_peers_scope(msg);
	if (scope < 0) {
		ws_send_peer_error(w, PEER_ERR_INVALID_SCOPE, peers_req_id(msg));
		return;
	}
	struct list_ctx *c = calloc(1, sizeof *c);
	if (!c)
		log_fatal("out of memory");
	*c = (struct list_ctx){.w = w, .scope = scope, .arr = cJSON_CreateArray()};
	const char *r = groups_req_id(msg);
	if (r) {
		c->has_req = 1;
		memcpy(c->reqid, r, strlen(r) + 1);
	}
	if (!c->arr)
		log_fatal("out of memory");
	presence_foreach(w->shm, w->me.mesh_id, list_cb, c);
	if (hosts_id() && store_host_remote_peers(w->db, hosts_id(), w->me.mesh_id, remote_cb, c) == 0)
		return;
	list_extras(c);
}

void peers_on_set_summary(struct worker *w, const cJSON *msg)
{
	const char *s;
	enum peer_error e = msgcheck_summary(msg, sizeof w->me.summary, &s);
	if (e != PEER_ERR_NONE) {
		ws_send_peer_error(w, e, peers_req_id(msg));
		return;
	}
	memcpy(w->me.summary, s, strlen(s) + 1);
	presence_update(w->shm, w->slot, &w->me);
}

int peers_is_stream(const struct presence_info *p)
{
	return strcmp(p->peer_type, SSE_PEER_TYPE) == 0;
}

int peers_is_replaced(const struct worker *w, const struct presence_view *v)
{
	/* same member, and the same sessionId (§11) or session key (§12.1) */
	return strcmp(v->info.member_id, w->me.member_id) == 0 &&
	       (strcmp(v->info.session_id, w->me.session_id) == 0 ||
		(w->me.session_pubkey[0] && strcmp(v->info.session_pubkey, w->me.session_pubkey) == 0)) &&
	       !(w->have_slot && v->slot == w->slot && v->gen == w->gen);
}

struct replace_ctx {
	struct worker *w;
	int n;
};

static int replace_cb(const struct presence_view *v, void *arg)
{
	struct replace_ctx *c = arg;
	if (!peers_is_replaced(c->w, v))
		return 0;
	if (uds_queue_replace(c->w, v->slot, v->gen) == 0)
		c->n++;
	else
		log_warn("session replace: the older connection's worker did not answer", "presence",
			 v->info.presence_id);
	return 0;
}

int peers_replace_older(struct worker *w)
{
	struct replace_ctx c = {.w = w};
	presence_foreach_brief(w->shm, w->me.mesh_id, replace_cb, &c);
	if (c.n)
		log_info("session replaced", "mesh", w->me.mesh_id, "member", w->me.member_id, "presence",
			 w->me.presence_id);
	return c.n;
}
