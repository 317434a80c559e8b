/* session — wires the protocol modules into the skeleton's hooks, and the
 * leave: what the peer acknowledged is marked delivered, the slot is released,
 * what was claimed but not delivered is given back to the member's other
 * live connections, and the presence row and audit chain record the end. */
#include "worker/session.h"

#include <string.h>

#include "db/store.h"
#include "common/log.h"
#include "worker/audit.h"
#include "worker/delivery.h"
#include "worker/moderation.h"
#include "worker/peerevents.h"
#include "worker/peerstatus.h"
#include "worker/phase.h"
#include "worker/reap.h"
#include "worker/send.h"
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

static void session_leave(struct worker *w)
{
	if (w->joined) {
		/* sends still waiting for a batch are stored (as they would
		 * have been without the batching), acked if the socket allows */
		send_flush(w, 1);
		/* what the peer acknowledged is delivered; mark it while our slot
		 * still says these rows are ours (the rest is given back below) */
		delivery_pump(w);
		delivery_settle(w);
		delivery_flush(w);
		if (w->db)
			db_drain_sync(w->db, LEAVE_DB_MS);
	}
	if (w->have_slot) {
		presence_release(w->shm, w->slot, w->gen);
		w->have_slot = 0;
	}
	delivery_free(w);
	send_free(w);
	if (w->joined) {
		delivery_give_back(w);
		if (w->presence_row) {
			/* the row closed and its peer_left, once: a reaper that
			 * thought us gone (reap.c) wrote neither twice */
			reap_leave(w, LEAVE_DB_MS);
		} else {
			cJSON *pl = cJSON_CreateObject();
			cJSON_AddStringToObject(pl, "presenceId", w->me.presence_id);
			audit_event(w, w->me.mesh_id, "peer_left", w->me.member_id, w->me.display_name, pl);
			db_drain_sync(w->db, LEAVE_DB_MS);
		}
		/* rows we gave back: another live connection of this member takes them */
		presence_foreach(w->shm, w->me.mesh_id, wake_others_cb, w);
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
	.on_status = peerstatus_request,
	.on_replaced = session_on_replaced,
	.on_close = moderation_on_close,
	.tick = session_tick,
	.pump = session_pump,
	.leave = session_leave,
};
