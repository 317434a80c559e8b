/* session — wires the protocol modules into the skeleton's hooks, and the
 * leave: what the peer acknowledged is marked delivered, the slot is released,
 * what was claimed but not delivered is given back to the member's other
 * live connections, and the presence row and audit chain record the end —
 * the marks, the give-back and the row in one statement (issue 23). */
#include "worker/session.h"

#include <stdlib.h>
#include <string.h>

#include "db/store.h"
#include "common/log.h"
#include "proto/canon.h"
#include "worker/delivery.h"
#include "worker/moderation.h"
#include "worker/peerevents.h"
#include "worker/peerstatus.h"
#include "worker/phase.h"
#include "worker/reap.h"
#include "worker/send.h"
#include "worker/skel.h"
#include "worker/uds.h"
#include "worker/ws.h"

/* a leaving worker waits this long for its last writes (marks, presence row,
 * audit) when PostgreSQL is busy; the acceptor allows 10 s on shutdown */
#define LEAVE_DB_MS 8000

static int wake_others_cb(const struct presence_view *v, void *arg)
{
	struct worker *w = arg;
	if (strcmp(v->info.member_id, w->me.member_id) == 0 && !(v->slot == w->slot && v->gen == w->gen))
		uds_wake(w, v->slot, v->gen);
	return 0;
}

/* the leave's one statement (reap_leave): the marks of every push the peer
 * acknowledged that no committed statement marked yet (those riding on a
 * claim still in flight too: that claim may fail, and a mark of a row
 * already delivered changes nothing), the give-back of the rest and the
 * presence row's close.  The marks are its own from here: a claim in flight
 * that fails (its answer comes in reap_leave's wait) sends no flush of them */
static void session_close_row(struct worker *w)
{
	size_t n = w->nwritten;
	int64_t *mark = n ? malloc(n * sizeof *mark) : NULL;
	if (n && !mark)
		log_fatal("out of memory");
	if (n)
		memcpy(mark, w->written, n * sizeof *mark);
	w->nwritten = w->nmarking = 0;
	w->mark_due = 0;
	reap_leave(w, mark, n, LEAVE_DB_MS);
	free(mark);
}

static void session_leave(struct worker *w)
{
	int closed = 0;
	if (w->joined) {
		/* sends still waiting for a batch are stored (as they would
		 * have been without the batching), acked if the socket allows */
		send_flush(w, 1);
		delivery_pump(w);
		delivery_settle(w);
		if (w->presence_row && w->nwritten) {
			/* what the peer acknowledged is delivered: marked while our
			 * slot still says these rows are ours (once it is released,
			 * another connection of the member may take them again) */
			session_close_row(w);
			closed = 1;
		} else {
			delivery_flush(w); /* (no presence row: nothing else carries the marks) */
			if (w->db)
				db_drain_sync(w->db, LEAVE_DB_MS);
		}
	}
	if (w->have_slot) {
		presence_release(w->shm, w->slot, w->gen);
		w->have_slot = 0;
	}
	if (w->joined && w->presence_row && !closed) {
		/* the row closed and its peer_left, once: a reaper that
		 * thought us gone (reap.c) wrote neither twice */
		session_close_row(w);
	}
	delivery_free(w);
	send_free(w);
	if (w->joined) {
		if (!w->presence_row) {
			delivery_give_back(w);
			/* its peer_left as the leave's statement writes it: chained
			 * when the chain lock is free, else pending (no wait) */
			cJSON *pl = cJSON_CreateObject();
			cJSON_AddStringToObject(pl, "presenceId", w->me.presence_id);
			char *canon = canon_json(pl);
			cJSON_Delete(pl);
			if (canon && *w->me.mesh_id && worker_db(w) == 0)
				store_audit_record(w->db, w->me.mesh_id, "peer_left", w->me.member_id,
						   w->me.display_name, canon);
			free(canon);
			db_drain_sync(w->db, LEAVE_DB_MS);
		}
		/* rows we gave back: another live connection of this member takes them */
		presence_foreach_brief(w->shm, w->me.mesh_id, wake_others_cb, w);
		/* a peer_left row left pending (the chain lock was busy) is not
		 * waited for, nor tried again here (migration 0020; docs/design.md
		 * "The leave off the chain lock"): the mesh's next chain step that
		 * gets the lock, or the next sweep's (reap.c), chains it */
		log_info("peer left", "mesh", w->me.mesh_id, "member", w->me.member_id, "presence", w->me.presence_id);
	}
	cJSON_Delete(w->hello_obj);
	w->hello_obj = NULL;
	peerevents_free(w);
}

/* a newer hello of our member with our sessionId took over (§11): what we
 * claimed and did not deliver is given back by the leave, and its worker
 * is woken then */
static void session_on_replaced(struct worker *w)
{
	if (w->phase != PHASE_AUTHENTICATED)
		return;
	log_info("session replaced by a newer connection", "presence", w->me.presence_id);
	ws_close(w, WS_CLOSE_NORMAL, "session_replaced");
}

/* room to write, once per turn of the loop: the sends that came in go out
 * as one batch (send.c), then the pushes */
static void session_pump(struct worker *w)
{
	send_flush(w, 0);
	delivery_pump(w);
}

static void session_tick(struct worker *w, int64_t now)
{
	peerstatus_tick(w, now);
	peerevents_tick(w, now);
	send_tick(w, now);
	reap_tick(w, now);
}

const struct worker_hooks session_hooks = {
	.on_text = phase_dispatch,
	.on_wake = delivery_drain,
	.on_push = delivery_on_push,
	.on_status = peerstatus_request,
	.on_replaced = session_on_replaced,
	.on_close = moderation_on_close,
	.tick = session_tick,
	.pump = session_pump,
	.leave = session_leave,
};
