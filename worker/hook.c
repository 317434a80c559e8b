/* hook — POST /hook/set-status (docs/protocol.md §4.3): authenticate, rate-
 * limit with token buckets shared in shm, validate, find the live presence by
 * (pid, cwd) or the newest by cwd — only among the key's mesh (and member) —
 * and ask its owner worker to apply the status over its Unix socket; with
 * HOST_ID, none here → the same match among the other hosts' live
 * presences (mesh.host_hook_status, whose relay applies it); no match →
 * mesh.pending_status for 10 s.
 *
 * Who may: a Bearer API key with capability status or send.  Without a key
 * the request is refused (401) unless the broker runs with
 * HOOK_ALLOW_LOOPBACK_UNAUTHENTICATED=1 and the connection comes from a
 * loopback address without a browser's Origin header nor a proxy's
 * forwarding header (the laptop mode, where
 * any local process may set any local peer's status).
 *
 * Budgets: a key's requests share one bucket (HOOK_RATE_LIMIT_PER_MIN); in
 * the laptop mode the source address has a bucket HOOK_SOURCE_FACTOR times as
 * large (every local session comes from 127.0.0.1), and each "<pid>:<cwd>"
 * keeps its own HOOK_RATE_LIMIT_PER_MIN as before.  A client-chosen pid never
 * buys a fresh budget.  No answer carries Access-Control-Allow-Origin.  The
 * key, its capability and the size are the route table's (a row of
 * worker/route_table.c); this handler starts at the budgets. */
#include "worker/hook.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/store.h"
#include "common/log.h"
#include "common/util.h"
#include "db/store_groups.h"
#include "worker/hosts.h"
#include "worker/rest.h"
#include "worker/skel.h"
#include "worker/source.h"
#include "worker/status.h"
#include "worker/uds.h"

#define HOOK_TIMEOUT_MS 5000
#define PENDING_SECONDS 10
#define HOOK_DB_TIMEOUT_MS 3000
#define HOOK_SOURCE_FACTOR 4 /* laptop mode: one source address serves many sessions */

static void hook_reply(struct worker *w, int status, cJSON *body /* consumed */)
{
	char *s = cJSON_PrintUnformatted(body);
	http_respond_private(w->fd, status, "application/json", s, strlen(s), HOOK_TIMEOUT_MS);
	free(s);
	cJSON_Delete(body);
}

static void hook_fail(struct worker *w, int status, const char *error)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "ok", 0);
	cJSON_AddStringToObject(o, "error", error);
	hook_reply(w, status, o);
}

struct match {
	int64_t pid; /* -1: match by cwd alone */
	const char *cwd;
	const char *session_id; /* non-NULL: the presence with this sessionId, whatever its cwd and pid */
	const char *mesh_id, *member_id; /* the key's scope; NULL: any */
	struct presence_view best;
	int found;
};

static int match_cb(const struct presence_view *v, void *arg)
{
	struct match *m = arg;
	if (m->session_id ? strcmp(v->info.session_id, m->session_id) != 0
			  : (strcmp(v->info.cwd, m->cwd) != 0 || (m->pid >= 0 && v->info.pid != m->pid)))
		return 0;
	if ((m->mesh_id && strcmp(v->info.mesh_id, m->mesh_id) != 0) ||
	    (m->member_id && strcmp(v->info.member_id, m->member_id) != 0))
		return 0;
	if (!m->found || v->info.connected_ms > m->best.info.connected_ms) {
		m->best = *v;
		m->found = 1;
	}
	return 0;
}

struct pend {
	int done, ok;
};

static void pend_cb(void *arg, const char *err)
{
	struct pend *p = arg;
	p->done = 1;
	p->ok = err == NULL;
	if (err)
		log_warn("hook: pending status not stored", "error", err);
}

/* with HOST_ID: the presence on another host that took the status */
struct far {
	int found;
	char presence_id[SHM_MEMBER_ID_MAX];
};

static void far_cb(void *arg, const struct store_table *t, const char *err)
{
	struct far *f = arg;
	const char *id = err ? NULL : store_table_get(t, 0, 0);
	if (err)
		log_warn("hook: other hosts not asked", "error", err);
	if (id && id[0] && strlen(id) < sizeof f->presence_id) {
		memcpy(f->presence_id, id, strlen(id) + 1);
		f->found = 1;
	}
}

static int hook_limited(struct worker *w)
{
	counter_add(w->shm, C_HOOK_RATE_LIMITED, 1);
	hook_fail(w, 429, "rate limited");
	return 1;
}

void hook_set_status(struct worker *w, struct http_req *req, struct route_ctx *c)
{
	if (worker_shm(w) != 0) {
		hook_fail(w, 503, "presence table unavailable");
		return;
	}
	/* who asks was the table's: a key with status or send, or none in the laptop mode */
	const struct apikey_row *k = &c->key;
	int have_key = c->have_key;
	char src[SOURCE_ADDR_MAX], bkey[128];
	source_of(w->fd, w->remote_addr, src, sizeof src);
	/* the credential's budget (or the source's), before anything else is read */
	double per_min = w->cfg.hook_rate_limit_per_min;
	if (have_key)
		snprintf(bkey, sizeof bkey, "hook:key:%s", k->id);
	else
		snprintf(bkey, sizeof bkey, "hook:src:%s", src);
	double cap = have_key ? per_min : per_min * HOOK_SOURCE_FACTOR;
	if (!bucket_take(w->shm, bkey, cap, cap, now_ms())) {
		hook_limited(w);
		return;
	}
	cJSON *body = cJSON_ParseWithLength(req->body, req->body_len);
	if (!body || !cJSON_IsObject(body)) {
		cJSON_Delete(body);
		hook_fail(w, 400, "invalid JSON: expected an object");
		return;
	}
	const cJSON *cwdv = cJSON_GetObjectItemCaseSensitive(body, "cwd");
	const cJSON *stv = cJSON_GetObjectItemCaseSensitive(body, "status");
	const cJSON *pidv = cJSON_GetObjectItemCaseSensitive(body, "pid");
	const cJSON *sidv = cJSON_GetObjectItemCaseSensitive(body, "session_id");
	if (!cJSON_IsString(cwdv) || !*cwdv->valuestring || !cJSON_IsString(stv)) {
		cJSON_Delete(body);
		hook_fail(w, 400, "cwd and status required");
		return;
	}
	int status = status_parse(stv->valuestring);
	if (status < 0) {
		cJSON_Delete(body);
		hook_fail(w, 400, "invalid status: expected idle, working or dnd");
		return;
	}
	int64_t pid = -1;
	if (pidv && !cJSON_IsNull(pidv)) {
		double d = cJSON_IsNumber(pidv) ? pidv->valuedouble : -1;
		if (d < 0 || d > 2147483647.0 || d != (double)(int64_t)d) {
			cJSON_Delete(body);
			hook_fail(w, 400, "pid must be a non-negative integer");
			return;
		}
		pid = (int64_t)d;
	}
	const char *cwd = cwdv->valuestring;
	if (strlen(cwd) >= SHM_CWD_MAX) {
		cJSON_Delete(body);
		/* the one 413 of every route (worker/route_table.h) */
		rest_reply_private(w, 413, rest_error_body(413, "payload_too_large", 1));
		return;
	}
	if (!have_key) {
		/* laptop mode: each "<pid or 0>:<cwd>" keeps its own budget too */
		size_t klen = strlen(cwd) + 40;
		char *pk = malloc(klen);
		if (!pk)
			log_fatal("out of memory");
		snprintf(pk, klen, "hook:%lld:%s", (long long)(pid < 0 ? 0 : pid), cwd);
		int allowed = bucket_take(w->shm, pk, per_min, per_min, now_ms());
		free(pk);
		if (!allowed) {
			cJSON_Delete(body);
			hook_limited(w);
			return;
		}
	}
	const char *mesh_id = have_key ? k->mesh_id : NULL;
	const char *member_id = have_key && k->member_id[0] ? k->member_id : NULL;
	struct match m = {.pid = pid, .cwd = cwd, .mesh_id = mesh_id, .member_id = member_id};
	/* Claude Code's session_id first: the presence whose hello said that
	 * sessionId (meshctl mcp takes it from CLAUDE_CODE_SESSION_ID); none
	 * such (an older MCP server): by pid and cwd as before */
	if (cJSON_IsString(sidv) && sidv->valuestring[0] && strlen(sidv->valuestring) < SHM_SESSION_MAX) {
		m.session_id = sidv->valuestring;
		presence_foreach(w->shm, NULL, match_cb, &m);
		m.session_id = NULL;
	}
	if (!m.found)
		presence_foreach(w->shm, NULL, match_cb, &m);
	if (m.found && uds_request_status(w, m.best.slot, m.best.gen, status, SRC_HOOK) == 0) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddBoolToObject(o, "ok", 1);
		cJSON_AddStringToObject(o, "presence_id", m.best.info.presence_id);
		cJSON_Delete(body);
		hook_reply(w, 200, o);
		return;
	}
	/* none here: with HOST_ID, a presence on another live host (the same
	 * rules, one statement), told by its relay ("h" doorbell) */
	if (!m.found && hosts_id() && worker_db(w) == 0) {
		struct far f = {0};
		char kind[32];
		snprintf(kind, sizeof kind, "h%d.%d", status, SRC_HOOK);
		const char *sid =
		    cJSON_IsString(sidv) && sidv->valuestring[0] && strlen(sidv->valuestring) < SHM_SESSION_MAX
		        ? sidv->valuestring
		        : NULL;
		if (store_host_hook_status(w->db, hosts_id(), kind, mesh_id, member_id, sid, pid, cwd, far_cb, &f) == 0)
			db_drain_sync(w->db, HOOK_DB_TIMEOUT_MS);
		if (f.found) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddBoolToObject(o, "ok", 1);
			cJSON_AddStringToObject(o, "presence_id", f.presence_id);
			cJSON_Delete(body);
			hook_reply(w, 200, o);
			return;
		}
	}
	/* nobody to tell yet: stash it for a peer that connects soon */
	struct pend pd = {0};
	if (worker_db(w) == 0 &&
	    store_pending_status_put(w->db, pid < 0 ? 0 : pid, cwd, status_str(status), PENDING_SECONDS, mesh_id,
				     member_id, pend_cb, &pd) == 0)
		db_drain_sync(w->db, HOOK_DB_TIMEOUT_MS);
	cJSON_Delete(body);
	if (!pd.ok) {
		hook_fail(w, 503, "database unavailable");
		return;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "ok", 1);
	cJSON_AddBoolToObject(o, "pending", 1);
	hook_reply(w, 200, o);
}
