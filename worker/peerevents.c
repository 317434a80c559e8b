/* peerevents — the recipient keeps a copy of its mesh's live peers (the
 * snapshot) and, no more than once a second and only when the table's change
 * count moved, compares it with the table: new sessions are peer_joined,
 * vanished ones peer_left, a changed status peer_status, a changed
 * visibility peer_visible / peer_hidden (docs/protocol.md §12.3).  A diff is by
 * nature coalesced (a session that came and went in between is no event,
 * and each session appears once), it needs no message between workers, and
 * a burst of N joins costs each recipient one push a second, not N.
 * On one of several hosts (HOST_ID) the table only knows this host: the
 * look is then, once a second, the table plus the other live hosts'
 * presences (mesh.host_remote_peers, one statement), and sessions are told
 * apart by presence id, which names a connection on any host. */
#include "worker/peerevents.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "db/store_groups.h"
#include "worker/hosts.h"
#include "worker/peers.h"
#include "worker/status.h"
#include "worker/ws.h"

#define EVENTS_EVERY_MS 1000 /* at most one event push a second */
#define EVENTS_LOOK_MS 250   /* how often the change count is looked at */

struct pe_peer {
	uint32_t slot, gen;
	int32_t status;
	int32_t hidden;
	char pubkey[SHM_PUBKEY_MAX];
	char display_name[SHM_NAME_MAX];
	char session_id[SHM_SESSION_MAX];
	char presence_id[SHM_MEMBER_ID_MAX];
};

struct pe_scan {
	struct worker *w;
	struct pe_peer *v;
	size_t n, cap;
};

static int scan_cb(const struct presence_view *v, void *arg)
{
	struct pe_scan *s = arg;
	if ((v->slot == s->w->slot && v->gen == s->w->gen) || peers_is_stream(&v->info))
		return 0; /* ours, or an event stream's (no peer) */
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 32;
		struct pe_peer *nv = realloc(s->v, cap * sizeof *nv);
		if (!nv)
			return 1;
		s->v = nv;
		s->cap = cap;
	}
	struct pe_peer *p = &s->v[s->n++];
	p->slot = v->slot;
	p->gen = v->gen;
	p->status = v->info.status;
	p->hidden = v->info.hidden;
	memcpy(p->pubkey, v->info.pubkey, sizeof p->pubkey);
	memcpy(p->display_name, v->info.display_name, sizeof p->display_name);
	memcpy(p->session_id, v->info.session_id, sizeof p->session_id);
	memcpy(p->presence_id, v->info.presence_id, sizeof p->presence_id);
	return 0;
}

static struct pe_scan scan(struct worker *w)
{
	struct pe_scan s = {.w = w};
	w->pe_seen = presence_changes(w->shm);
	presence_foreach_brief(w->shm, w->me.mesh_id, scan_cb, &s); /* no cwd, summary, hostname, repo */
	return s;
}

static void remote_look(struct worker *w, int quiet);

void peerevents_start(struct worker *w)
{
	if (!w->peer_events)
		return;
	struct pe_scan s = scan(w);
	w->pe_snap = s.v;
	w->pe_n = s.n;
	w->pe_next = mono_ms() + EVENTS_LOOK_MS;
	if (hosts_id())
		remote_look(w, 1); /* the other hosts' peers join the snapshot, as no event */
}

void peerevents_free(struct worker *w)
{
	free(w->pe_snap);
	w->pe_snap = NULL;
	w->pe_n = 0;
	w->pe_next = 0;
}

static const struct pe_peer *find(const struct pe_peer *v, size_t n, const struct pe_peer *p)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].slot == p->slot && v[i].gen == p->gen && strcmp(v[i].presence_id, p->presence_id) == 0)
			return &v[i];
	return NULL;
}

static cJSON *event_obj(const char *event, const struct pe_peer *p, int with_status)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "event", event);
	cJSON_AddStringToObject(o, "pubkey", p->pubkey);
	cJSON_AddStringToObject(o, "displayName", p->display_name);
	cJSON_AddStringToObject(o, "name", p->display_name);
	cJSON_AddStringToObject(o, "sessionId", p->session_id);
	if (with_status)
		cJSON_AddStringToObject(o, "status", status_str(p->status));
	return o;
}

static void push_events(struct worker *w, cJSON *events)
{
	int n = cJSON_GetArraySize(events);
	cJSON *push = cJSON_CreateObject();
	char at[32], id[ID_LEN + 1];
	if (!push)
		return;
	iso8601_ms(now_ms(), at);
	id_new(id);
	cJSON_AddStringToObject(push, "type", "push");
	cJSON_AddStringToObject(push, "subtype", "system");
	cJSON_AddStringToObject(push, "messageId", id);
	cJSON_AddStringToObject(push, "meshId", w->me.mesh_id);
	cJSON_AddStringToObject(push, "senderPubkey", "system");
	cJSON_AddStringToObject(push, "priority", "now");
	cJSON_AddStringToObject(push, "nonce", "");
	cJSON_AddStringToObject(push, "ciphertext", "");
	cJSON_AddStringToObject(push, "createdAt", at);
	if (n == 1) {
		cJSON *e = cJSON_DetachItemFromArray(events, 0);
		cJSON *name = cJSON_DetachItemFromObjectCaseSensitive(e, "event");
		cJSON_AddItemToObject(push, "event", name);
		cJSON_AddItemToObject(push, "eventData", e);
	} else {
		cJSON_AddStringToObject(push, "event", "peers_changed");
		cJSON *d = cJSON_AddObjectToObject(push, "eventData");
		cJSON_AddItemReferenceToObject(d, "events", events);
	}
	ws_send_json(w, push);
	cJSON_Delete(push);
}

/* compare s (what is there now) with the snapshot, push what changed (unless
 * quiet), and keep s as the new snapshot */
static void diff_push(struct worker *w, struct pe_scan s, int quiet)
{
	cJSON *events = quiet ? NULL : cJSON_CreateArray();
	for (size_t i = 0; events && i < s.n; i++) {
		/* a hidden session is no event but its hiding and showing */
		const struct pe_peer *old = find(w->pe_snap, w->pe_n, &s.v[i]);
		if (!old && !s.v[i].hidden)
			cJSON_AddItemToArray(events, event_obj("peer_joined", &s.v[i], 1));
		else if (old && old->hidden != s.v[i].hidden)
			cJSON_AddItemToArray(events, event_obj(s.v[i].hidden ? "peer_hidden" : "peer_visible", &s.v[i], 0));
		else if (old && !s.v[i].hidden && old->status != s.v[i].status)
			cJSON_AddItemToArray(events, event_obj("peer_status", &s.v[i], 1));
	}
	for (size_t i = 0; events && i < w->pe_n; i++)
		if (!w->pe_snap[i].hidden && !find(s.v, s.n, &w->pe_snap[i]))
			cJSON_AddItemToArray(events, event_obj("peer_left", &w->pe_snap[i], 0));
	free(w->pe_snap);
	w->pe_snap = s.v;
	w->pe_n = s.n;
	if (events && cJSON_GetArraySize(events) > 0) {
		push_events(w, events);
	}
	cJSON_Delete(events);
}

/* ---- more than one host ---- */

struct remote_look {
	struct worker *w;
	int quiet;
};

static void remote_cb(void *arg, const struct store_table *t, const char *err)
{
	struct remote_look *rl = arg;
	struct worker *w = rl->w;
	int quiet = rl->quiet;
	free(rl);
	if (!w->peer_events || w->phase != PHASE_AUTHENTICATED) {
		w->pe_next = 0;
		return;
	}
	w->pe_next = mono_ms() + EVENTS_EVERY_MS;
	if (err) { /* no verdict about the other hosts: nothing changes */
		log_warn("peer_events: other hosts' peers not read", "error", err);
		return;
	}
	struct pe_scan s = scan(w);
	for (int r = 0; r < store_table_rows(t); r++) {
		const char *id = store_table_get(t, r, RP_ID), *name = store_table_get(t, r, RP_NAME);
		const char *key = store_table_get(t, r, RP_PUBKEY), *sess = store_table_get(t, r, RP_SESSION);
		const char *st = store_table_get(t, r, RP_STATUS), *vis = store_table_get(t, r, RP_VISIBLE);
		if (!id || !key || strlen(id) >= SHM_MEMBER_ID_MAX || strlen(key) >= SHM_PUBKEY_MAX)
			continue;
		if (s.n == s.cap) {
			size_t cap = s.cap ? s.cap * 2 : 32;
			struct pe_peer *nv = realloc(s.v, cap * sizeof *nv);
			if (!nv)
				break;
			s.v = nv;
			s.cap = cap;
		}
		struct pe_peer *p = &s.v[s.n++];
		memset(p, 0, sizeof *p);
		p->slot = p->gen = UINT32_MAX; /* not in this host's table */
		int status = st ? status_parse(st) : -1;
		p->status = status < 0 ? ST_IDLE : status;
		p->hidden = vis && strcmp(vis, "f") == 0;
		snprintf(p->pubkey, sizeof p->pubkey, "%s", key);
		snprintf(p->display_name, sizeof p->display_name, "%s", name ? name : "");
		snprintf(p->session_id, sizeof p->session_id, "%s", sess ? sess : "");
		snprintf(p->presence_id, sizeof p->presence_id, "%s", id);
	}
	diff_push(w, s, quiet);
}

static void remote_look(struct worker *w, int quiet)
{
	struct remote_look *rl = malloc(sizeof *rl);
	if (!rl)
		log_fatal("out of memory");
	*rl = (struct remote_look){w, quiet};
	if (store_host_remote_peers(w->db, hosts_id(), w->me.mesh_id, remote_cb, rl) != 0) {
		free(rl);
		w->pe_next = mono_ms() + EVENTS_EVERY_MS;
		return;
	}
	w->pe_next = mono_ms() + 10000; /* the answer sets the next look (this, if it never comes) */
}

void peerevents_tick(struct worker *w, int64_t now)
{
	if (!w->peer_events || !w->pe_next || now < w->pe_next)
		return;
	if (w->phase != PHASE_AUTHENTICATED) {
		w->pe_next = 0; /* closing: no more events, and no timer that is always due */
		return;
	}
	if (hosts_id()) {
		remote_look(w, 0);
		return;
	}
	if (presence_changes(w->shm) == w->pe_seen) {
		w->pe_next = now + EVENTS_LOOK_MS;
		return;
	}
	diff_push(w, scan(w), 0);
	w->pe_next = now + EVENTS_EVERY_MS; /* a scan at most once a second, too */
}
