/* groups — see groups.h.  The state lives on the mesh.presence row (and is
 * saved on the member row, migration 0006); only the hidden flag is also in
 * our presence slot, because the fan-out and list_peers must know it
 * without asking the database.  Replies wait for the statement, so a client
 * that gets its ack knows every other peer sees the change. */
#include "worker/groups.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "db/store_groups.h"
#include "worker/groupcheck.h"
#include "worker/msg.h"
#include "worker/ws.h"

#define REQ_ID_MAX 128

static const char invalid_group_msg[] =
    "invalid group: names are 1-128 bytes of /-separated segments [A-Za-z0-9][A-Za-z0-9_.-]{0,63} (not all), "
    "roles at most 32 bytes, at most 32 groups";

const char *groups_req_id(const cJSON *msg)
{
	const char *r = msg_str(msg, "_reqId");
	return r && strlen(r) <= REQ_ID_MAX ? r : NULL;
}

cJSON *groups_reply(const char *type, const char *reqid)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		log_fatal("out of memory");
	cJSON_AddStringToObject(o, "type", type);
	if (reqid)
		cJSON_AddStringToObject(o, "_reqId", reqid);
	return o;
}

void groups_error(struct worker *w, const char *code, const char *message, const char *reqid)
{
	cJSON *o = groups_reply("error", reqid);
	cJSON_AddStringToObject(o, "code", code);
	cJSON_AddStringToObject(o, "message", message);
	if (reqid)
		cJSON_AddStringToObject(o, "id", reqid);
	ws_send_json(w, o);
	cJSON_Delete(o);
}

/* a request waiting for its statement */
struct pending {
	struct worker *w;
	int has_req;
	char reqid[REQ_ID_MAX + 1];
	int visible; /* set_visible's new value */
};

static struct pending *pending_new(struct worker *w, const cJSON *msg)
{
	struct pending *p = calloc(1, sizeof *p);
	if (!p)
		log_fatal("out of memory");
	p->w = w;
	const char *r = groups_req_id(msg);
	if (r) {
		p->has_req = 1;
		memcpy(p->reqid, r, strlen(r) + 1);
	}
	return p;
}

static const char *pending_req(const struct pending *p)
{
	return p->has_req ? p->reqid : NULL;
}

static void db_failed(struct worker *w, const char *what, const char *err, const char *reqid)
{
	log_warn("groups: statement failed", "request", what, "error", err);
	groups_error(w, "internal", "database unavailable, try again", reqid);
}

/* ---- join_group / leave_group: silent on success ---- */

static void group_cb(void *arg, const struct store_table *t, const char *err)
{
	struct pending *p = arg;
	const char *n = err ? NULL : store_table_get(t, 0, PG_COUNT);
	if (err)
		db_failed(p->w, "join_group", err, pending_req(p));
	else if (n && strcmp(n, "-1") == 0)
		groups_error(p->w, "invalid_group", invalid_group_msg, pending_req(p));
	free(p);
}

static void group_change(struct worker *w, const cJSON *msg, int join)
{
	const char *name, *role = NULL;
	int bad = join ? groupcheck_join(msg, &name, &role) : groupcheck_leave(msg, &name);
	if (bad) {
		groups_error(w, "invalid_group", invalid_group_msg, groups_req_id(msg));
		return;
	}
	struct pending *p = pending_new(w, msg);
	if (store_presence_group(w->db, w->me.presence_id, join, name, role, GROUPS_MAX, group_cb, p) != 0) {
		groups_error(w, "internal", "broker busy, try again", pending_req(p));
		free(p);
	}
}

void groups_on_join(struct worker *w, const cJSON *msg)
{
	group_change(w, msg, 1);
}

void groups_on_leave(struct worker *w, const cJSON *msg)
{
	group_change(w, msg, 0);
}

/* ---- set_visible / set_profile: ack{id, messageId:"", queued:false} ---- */

static void ack_cb(void *arg, const struct store_table *t, const char *err)
{
	(void)t;
	struct pending *p = arg;
	if (err) {
		db_failed(p->w, "set_visible/set_profile", err, pending_req(p));
	} else {
		cJSON *o = groups_reply("ack", pending_req(p));
		cJSON_AddStringToObject(o, "id", p->has_req ? p->reqid : "");
		cJSON_AddStringToObject(o, "messageId", "");
		cJSON_AddBoolToObject(o, "queued", 0);
		ws_send_json(p->w, o);
		cJSON_Delete(o);
	}
	free(p);
}

void groups_on_set_visible(struct worker *w, const cJSON *msg)
{
	int visible;
	if (groupcheck_visible(msg, &visible) != 0) {
		groups_error(w, "malformed", "set_visible needs a boolean visible", groups_req_id(msg));
		return;
	}
	/* the slot first: list_peers, the fan-out and the peer events read it */
	w->visible_set = 1; /* the hello's restored visibility, if it comes later, is older */
	if (w->me.hidden != !visible) {
		w->me.hidden = !visible;
		presence_update(w->shm, w->slot, &w->me);
	}
	struct pending *p = pending_new(w, msg);
	p->visible = visible;
	if (store_presence_visible(w->db, w->me.presence_id, visible, ack_cb, p) != 0) {
		groups_error(w, "internal", "broker busy, try again", pending_req(p));
		free(p);
	}
}

void groups_on_set_profile(struct worker *w, const cJSON *msg)
{
	cJSON *patch;
	int r = groupcheck_profile(msg, &patch);
	if (r != 0) {
		groups_error(w, r == -1 ? "profile_too_long" : "malformed",
		             r == -1
		                 ? "profile too long: avatar <= 256, title <= 64, bio <= 512 bytes, "
		                   "capabilities <= 16 strings of <= 64 bytes"
		                 : "set_profile: avatar, title and bio are strings, capabilities an array of strings",
		             groups_req_id(msg));
		return;
	}
	char *json = cJSON_PrintUnformatted(patch);
	cJSON_Delete(patch);
	if (!json)
		log_fatal("out of memory");
	struct pending *p = pending_new(w, msg);
	if (store_presence_profile(w->db, w->me.presence_id, json, ack_cb, p) != 0) {
		groups_error(w, "internal", "broker busy, try again", pending_req(p));
		free(p);
	}
	free(json);
}

void groups_on_set_stats(struct worker *w, const cJSON *msg)
{
	cJSON *stats;
	if (groupcheck_stats(msg, &stats) != 0) {
		groups_error(w, "malformed", "set_stats needs an object stats", groups_req_id(msg));
		return;
	}
	char *json = cJSON_PrintUnformatted(stats);
	cJSON_Delete(stats);
	if (!json)
		log_fatal("out of memory");
	store_presence_stats(w->db, w->me.presence_id, json);
	free(json);
}

/* ---- fan-out ---- */

static int hidden_cb(const struct presence_view *v, void *arg)
{
	int *any = arg;
	if (v->info.hidden) {
		*any = 1;
		return 1;
	}
	return 0;
}

int groups_routes(struct worker *w, const char *target)
{
	if (target[0] == '@')
		return 1;
	if (strcmp(target, "*") != 0)
		return 0;
	uint64_t seen = presence_changes(w->shm);
	if (!w->hidden_known || seen != w->hidden_seen) {
		int any = 0;
		presence_foreach(w->shm, w->me.mesh_id, hidden_cb, &any);
		w->hidden_any = any;
		w->hidden_seen = seen;
		w->hidden_known = 1;
	}
	return w->hidden_any;
}

struct live {
	const char **members, **visible;
	char *buf; /* the strings, copied out of the slots */
	int n_members, n_visible, cap;
	size_t used, buf_cap;
};

static const char *live_copy(struct live *l, const char *s)
{
	size_t n = strlen(s) + 1;
	if (l->used + n > l->buf_cap)
		return NULL;
	char *d = l->buf + l->used;
	memcpy(d, s, n);
	l->used += n;
	return d;
}

static int live_cb(const struct presence_view *v, void *arg)
{
	struct live *l = arg;
	if (l->n_members == l->cap) {
		/* grow: both arrays, and the string buffer (its strings are re-pointed) */
		int cap = l->cap ? l->cap * 2 : 64;
		const char **m = malloc((size_t)cap * sizeof *m), **vis = malloc((size_t)cap * sizeof *vis);
		size_t bcap = (size_t)cap * 2 * SHM_MEMBER_ID_MAX;
		char *buf = malloc(bcap);
		if (!m || !vis || !buf)
			log_fatal("out of memory");
		for (int i = 0; i < l->n_members; i++)
			m[i] = buf + (l->members[i] - l->buf);
		for (int i = 0; i < l->n_visible; i++)
			vis[i] = buf + (l->visible[i] - l->buf);
		if (l->used)
			memcpy(buf, l->buf, l->used);
		free(l->members);
		free(l->visible);
		free(l->buf);
		l->members = m;
		l->visible = vis;
		l->buf = buf;
		l->buf_cap = bcap;
		l->cap = cap;
	}
	l->members[l->n_members++] = live_copy(l, v->info.member_id);
	if (!v->info.hidden)
		l->visible[l->n_visible++] = live_copy(l, v->info.presence_id);
	return 0;
}

struct send_wait {
	groups_sent_cb cb;
	void *arg;
};

static void sent_cb(void *arg, const struct store_table *t, const char *err)
{
	struct send_wait *s = arg;
	int n = err ? 0 : store_table_rows(t);
	struct groups_sent r = {0};
	const char *st = n == 1 ? store_table_get(t, 0, GS_STATUS) : NULL;
	if (st) { /* the client key was stored before: one row, nothing stored now */
		r.conflict = strcmp(st, "dup") != 0;
		r.first_id = r.conflict ? NULL : store_table_get(t, 0, GS_FIRST_ID);
		if (!r.conflict && !r.first_id)
			r.conflict = 1;
		n = 0;
	}
	const char **m = n ? malloc((size_t)n * sizeof *m) : NULL;
	if (n && !m)
		log_fatal("out of memory");
	for (int i = 0; i < n; i++)
		m[i] = store_table_get(t, i, GS_MEMBER);
	r.members = m;
	r.n = n;
	s->cb(s->arg, err ? NULL : &r, err);
	free(m);
	free(s);
}

int groups_send(struct worker *w, const struct groups_msg *gm, groups_sent_cb cb, void *arg)
{
	const char *target = gm->target;
	/* '@all' is exactly '*' */
	const char *group = target[0] == '@' && strcmp(target, "@all") != 0 ? target + 1 : NULL;
	struct live l = {0};
	presence_foreach(w->shm, w->me.mesh_id, live_cb, &l);
	struct group_send s = {
	    .id = gm->message_id,
	    .mesh_id = w->me.mesh_id,
	    .sender = w->me.member_id,
	    .target = target,
	    .group = group,
	    .priority = gm->priority,
	    .nonce = gm->nonce,
	    .ciphertext = gm->ciphertext,
	    .live_members = l.members,
	    .n_live = l.n_members,
	    .visible = l.visible,
	    .n_visible = l.n_visible,
	    .sender_name = w->me.display_name,
	    .session_pubkey = w->me.session_pubkey[0] ? w->me.session_pubkey : NULL,
	    .client_key = gm->client_key,
	    .client_id = gm->client_id,
	    .fingerprint = gm->fingerprint,
	};
	struct send_wait *sw = malloc(sizeof *sw);
	if (!sw)
		log_fatal("out of memory");
	*sw = (struct send_wait){cb, arg};
	int r = store_group_send(w->db, &s, sent_cb, sw);
	if (r != 0)
		free(sw);
	free(l.members);
	free(l.visible);
	free(l.buf);
	return r;
}

int groups_members(struct worker *w, const char *group, store_table_cb cb, void *arg)
{
	struct live l = {0};
	presence_foreach(w->shm, w->me.mesh_id, live_cb, &l);
	int r = store_group_members(w->db, w->me.mesh_id, w->me.member_id, group, l.members, l.n_members, l.visible,
	                            l.n_visible, cb, arg);
	free(l.members);
	free(l.visible);
	free(l.buf);
	return r;
}
