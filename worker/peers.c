/* peers — list_peers, set_summary and session replace (see peers.h).  The
 * listing reads only the shared presence table: it is the one place that
 * knows who is live right now, and reading it costs no database round trip. */
#include "worker/peers.h"

#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "worker/msg.h"
#include "worker/msgcheck.h"
#include "worker/status.h"
#include "worker/uds.h"
#include "worker/ws.h"

const char *peers_req_id(const cJSON *msg)
{
	const char *r = msg_str(msg, "_reqId");
	return r ? r : msg_str(msg, "id");
}

struct list_ctx {
	struct worker *w;
	int scope;
	cJSON *arr;
};

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
	char at[32];
	iso8601_ms(p->connected_ms, at);
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return 1;
	cJSON_AddStringToObject(o, "pubkey", p->pubkey);
	cJSON_AddStringToObject(o, "memberId", p->member_id);
	cJSON_AddStringToObject(o, "displayName", p->display_name);
	cJSON_AddStringToObject(o, "sessionId", p->session_id);
	cJSON_AddStringToObject(o, "status", status_str(p->status));
	cJSON_AddStringToObject(o, "summary", p->summary);
	cJSON_AddStringToObject(o, "cwd", p->cwd);
	cJSON_AddStringToObject(o, "hostname", p->hostname);
	cJSON_AddStringToObject(o, "peerType", p->peer_type);
	cJSON_AddStringToObject(o, "repo", p->repo);
	cJSON_AddStringToObject(o, "connectedAt", at);
	cJSON_AddBoolToObject(o, "self", v->slot == c->w->slot && v->gen == c->w->gen);
	cJSON_AddItemToArray(c->arr, o);
	return 0;
}

void peers_on_list(struct worker *w, const cJSON *msg)
{
	int scope = msgcheck_peers_scope(msg);
	if (scope < 0) {
		ws_send_peer_error(w, PEER_ERR_INVALID_SCOPE, peers_req_id(msg));
		return;
	}
	cJSON *reply = cJSON_CreateObject();
	struct list_ctx c = {.w = w, .scope = scope, .arr = cJSON_CreateArray()};
	if (!reply || !c.arr) {
		cJSON_Delete(reply);
		cJSON_Delete(c.arr);
		return;
	}
	presence_foreach(w->shm, w->me.mesh_id, list_cb, &c);
	cJSON_AddStringToObject(reply, "type", "peers_list");
	if (msg_str(msg, "_reqId"))
		cJSON_AddStringToObject(reply, "_reqId", msg_str(msg, "_reqId"));
	cJSON_AddItemToObject(reply, "peers", c.arr);
	ws_send_json(w, reply);
	cJSON_Delete(reply);
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
	presence_foreach(w->shm, w->me.mesh_id, replace_cb, &c);
	if (c.n)
		log_info("session replaced", "mesh", w->me.mesh_id, "member", w->me.member_id, "presence",
			 w->me.presence_id);
	return c.n;
}
