/* peerstatus — writes of this peer's status: the rules are status.c's; here
 * the slot is rewritten, the mesh.presence row follows, and a status that
 * turns idle drains what was held for it.  scope "member" reaches the
 * member's sessions on other hosts too (an "s" doorbell, worker/hosts.h). */
#include "worker/peerstatus.h"

#include <stdio.h>
#include <string.h>

#include "db/store.h"
#include "common/log.h"
#include "proto/reasons.h"
#include "common/util.h"
#include "worker/delivery.h"
#include "worker/hosts.h"
#include "worker/jsonl.h"
#include "worker/msg.h"
#include "worker/msgcheck.h"
#include "worker/status.h"
#include "worker/uds.h"
#include "worker/ws.h"

#define TTL_LOOK_MS 15000     /* the TTL is looked at at least this often */
#define JSONL_LOOK_MIN_MS 1000 /* and JSONL no more often than this */

static void status_changed(struct worker *w, int before)
{
	presence_update(w->shm, w->slot, &w->me);
	if (w->db)
		store_presence_status(w->db, w->me.presence_id, status_str(w->me.status),
				      status_source_str(w->me.status_source));
	if (w->me.status == ST_IDLE && before != ST_IDLE)
		delivery_drain(w); /* held next/low messages flow now */
}

struct member_ctx {
	struct worker *w;
	int status;
};

static int member_cb(const struct presence_view *v, void *arg)
{
	struct member_ctx *c = arg;
	if (strcmp(v->info.member_id, c->w->me.member_id) == 0 && !(v->slot == c->w->slot && v->gen == c->w->gen) &&
	    uds_queue_status(c->w, v->slot, v->gen, c->status, SRC_MANUAL) != 0)
		log_warn("set_status scope member: a session's worker did not answer", "presence",
			 v->info.presence_id);
	return 0;
}

/* scope "member" (docs/protocol.md §11): every live session of our member
 * gets the status, each applied by its own worker as a manual set_status */
void peerstatus_on_set_status(struct worker *w, const cJSON *msg)
{
	int st, member;
	enum peer_error e = msgcheck_set_status(msg, &st, &member);
	if (e != PEER_ERR_NONE) {
		ws_send_peer_error(w, e, msg_str(msg, "id"));
		return;
	}
	peerstatus_request(w, st, SRC_MANUAL);
	if (member) {
		struct member_ctx c = {.w = w, .status = st};
		presence_foreach(w->shm, w->me.mesh_id, member_cb, &c);
		if (hosts_id()) { /* and its sessions on the other hosts, through the relays */
			char kind[32];
			snprintf(kind, sizeof kind, "s%d.%d", st, SRC_MANUAL);
			const char *id = w->me.member_id;
			hosts_hand(w->cfg.runtime_dir, kind, w->me.mesh_id, &id, 1);
		}
	}
}

/* TTL (docs/protocol.md §4.2): a `working` older than STATUS_TTL_SECONDS
 * becomes idle/jsonl; looked at every 15 s at most, and exactly when it
 * falls due.  JSONL inference (when STATUS_JSONL_DIR is set) runs on the
 * same timer. */
void peerstatus_tick(struct worker *w, int64_t now)
{
	if (now < w->next_ttl_check)
		return;
	int64_t wall = now_ms(), ttl = (int64_t)w->cfg.status_ttl_seconds * 1000;
	int64_t next = TTL_LOOK_MS;
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
		/* half the freshness window, so a stale hook gives way in time */
		int64_t j = (int64_t)w->cfg.hook_fresh_window_seconds * 500;
		if (j < JSONL_LOOK_MIN_MS)
			j = JSONL_LOOK_MIN_MS;
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

void peerstatus_request(struct worker *w, int status, int source)
{
	if (!w->joined || status < ST_IDLE || status > ST_DND || source < SRC_JSONL || source > SRC_HOOK)
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
