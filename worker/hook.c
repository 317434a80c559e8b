/* hook — POST /hook/set-status: validate, rate-limit per "<pid>:<cwd>" with a
 * token bucket shared in shm, find the live presence by (pid, cwd) or the
 * newest by cwd, and ask its owner worker to apply the status over its Unix
 * socket; no match → mesh.pending_status for 10 s. */
#include "worker/hook.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/store.h"
#include "common/log.h"
#include "common/util.h"
#include "worker/skel.h"
#include "worker/status.h"
#include "worker/uds.h"

#define HOOK_TIMEOUT_MS 5000
#define PENDING_SECONDS 10
#define HOOK_DB_TIMEOUT_MS 3000

static void hook_reply(struct worker *w, int status, cJSON *body /* consumed */)
{
	char *s = cJSON_PrintUnformatted(body);
	http_respond(w->fd, status, "application/json", NULL, s, strlen(s), HOOK_TIMEOUT_MS);
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

void hook_too_large(struct worker *w)
{
	if (worker_shm(w) == 0)
		counter_add(w->shm, C_HOOK_REQUESTS, 1);
	hook_fail(w, 413, "payload too large");
}

struct match {
	int64_t pid; /* -1: match by cwd alone */
	const char *cwd;
	struct presence_view best;
	int found;
};

static int match_cb(const struct presence_view *v, void *arg)
{
	struct match *m = arg;
	if (strcmp(v->info.cwd, m->cwd) != 0 || (m->pid >= 0 && v->info.pid != m->pid))
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

void hook_set_status(struct worker *w, struct http_req *req)
{
	if (worker_shm(w) != 0) {
		hook_fail(w, 503, "presence table unavailable");
		return;
	}
	counter_add(w->shm, C_HOOK_REQUESTS, 1);
	cJSON *body = cJSON_ParseWithLength(req->body, req->body_len);
	if (!body || !cJSON_IsObject(body)) {
		cJSON_Delete(body);
		hook_fail(w, 400, "invalid JSON: expected an object");
		return;
	}
	const cJSON *cwdv = cJSON_GetObjectItemCaseSensitive(body, "cwd");
	const cJSON *stv = cJSON_GetObjectItemCaseSensitive(body, "status");
	const cJSON *pidv = cJSON_GetObjectItemCaseSensitive(body, "pid");
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
		hook_fail(w, 413, "payload too large");
		return;
	}
	/* token bucket per "<pid or 0>:<cwd>", shared by every worker */
	size_t klen = strlen(cwd) + 40;
	char *key = malloc(klen);
	if (!key)
		log_fatal("out of memory");
	snprintf(key, klen, "hook:%lld:%s", (long long)(pid < 0 ? 0 : pid), cwd);
	int allowed = bucket_take(w->shm, key, w->cfg.hook_rate_limit_per_min, w->cfg.hook_rate_limit_per_min, now_ms());
	free(key);
	if (!allowed) {
		counter_add(w->shm, C_HOOK_RATE_LIMITED, 1);
		cJSON_Delete(body);
		hook_fail(w, 429, "rate limited");
		return;
	}
	struct match m = {.pid = pid, .cwd = cwd};
	presence_foreach(w->shm, NULL, match_cb, &m);
	if (m.found && uds_request_status(w, m.best.slot, m.best.gen, status, SRC_HOOK) == 0) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddBoolToObject(o, "ok", 1);
		cJSON_AddStringToObject(o, "presence_id", m.best.info.presence_id);
		cJSON_Delete(body);
		hook_reply(w, 200, o);
		return;
	}
	/* nobody to tell yet: stash it for a peer that connects soon */
	struct pend pd = {0};
	if (worker_db(w) == 0 &&
	    store_pending_status_put(w->db, pid < 0 ? 0 : pid, cwd, status_str(status), PENDING_SECONDS, pend_cb,
				     &pd) == 0)
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
