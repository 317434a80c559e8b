/* delivery — the drain claims this member's deliverable rows (oldest first,
 * only `now` unless idle), the pump hands them to wslay one at a time, and a
 * push is marked delivered only once the recipient's TCP has acknowledged
 * its last byte (docs/protocol.md §3.4): each written push keeps its end
 * offset in the outgoing byte stream until SIOCOUTQ says the peer has it.
 *
 * The marks ride on the next claim (issue 23): what was acknowledged since
 * the previous claim is marked delivered in the next claim's transaction
 * (mesh.delivery_mark_claim), one statement per wake instead of two.  What
 * no claim carries within MARK_DEFER_MS (nothing more arrives), or once
 * MARK_BATCH of them wait, is marked by a statement of its own, and so is
 * everything at the leave.
 *
 * Handed pushes (issue 23, migration 0019): a direct message's sender may
 * claim its row for this connection in its own transaction and send the push
 * itself with the wake (delivery_on_push), so no claim statement runs for it.
 * It is taken only when nothing could come before it: no claim in flight or
 * owed, no refused hand-over waiting for a claim, room in the queue, and an
 * id above every row a claim returned (one that ran after the sender's
 * commit may have pushed it already).  One
 * that is not taken stays claimed for us, unconfirmed, and the next claim
 * returns it (0019's claim), in order with everything else; until that claim
 * answered, every handed push is refused the same way (hand_hold), so a
 * later one never overtakes an earlier one. */
#include "worker/delivery.h"

#include <stdlib.h>
#include <string.h>

#include "db/store.h"
#include "common/log.h"
#include "proto/reasons.h"
#include "shm/histo.h"
#include "common/util.h"
#include "worker/hosts.h"
#include "worker/msg.h"
#include "worker/msgcheck.h"
#include "worker/restcheck.h"
#include "worker/skel.h"
#include "worker/ws.h"

#define MARK_BATCH 50     /* acknowledged pushes waiting for a claim: marked on their own at this many */
#define MARK_DEFER_MS 50  /* ... or this long after the first of them, when no claim carried them */
#define LIVE_IDS_MAX 124  /* live connections of one member passed to a claim */
#define ACK_CHECK_MIN_MS 10  /* first look at what the peer acknowledged after a write */
#define ACK_CHECK_MAX_MS 250 /* the gap doubles up to this while nothing is acknowledged */
#define ACK_LINGER_MS 500    /* at the end, the wait for the last pushes to be acknowledged */
#define DRAIN_RETRY_MIN_MS 250  /* a failed drain is tried again after this, */
#define DRAIN_RETRY_MAX_MS 4000 /* doubling up to this while it keeps failing */
#define HAND_SEEN_MAX 256 /* handed ids remembered, so a claim that returns one again does not push it twice */

struct live_ids {
	const char *member_id;
	const char *ids[LIVE_IDS_MAX];
	size_t n;
};

static int live_cb(const struct presence_view *v, void *arg)
{
	struct live_ids *l = arg;
	if (strcmp(v->info.member_id, l->member_id) != 0)
		return 0;
	if (l->n == LIVE_IDS_MAX)
		return 1;
	char *id = strdup(v->info.presence_id);
	if (!id)
		log_fatal("out of memory");
	l->ids[l->n++] = id;
	return 0;
}

static int push_cmp(const void *a, const void *b)
{
	const struct push *x = a, *y = b;
	return (x->delivery_id > y->delivery_id) - (x->delivery_id < y->delivery_id);
}

char *delivery_push_json(const struct delivery_row *r)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "push");
	cJSON_AddStringToObject(o, "messageId", r->message_id);
	cJSON_AddStringToObject(o, "meshId", r->mesh_id);
	cJSON_AddStringToObject(o, "senderPubkey", r->sender_pubkey); /* its session key when it had one (§12.1) */
	/* §12.2 fix: who sent it, on every push of a message */
	cJSON_AddStringToObject(o, "senderMemberPubkey", r->sender_member_pubkey);
	cJSON_AddStringToObject(o, "senderMemberId", r->sender_member_id);
	cJSON_AddStringToObject(o, "senderName", r->sender_name);
	cJSON_AddStringToObject(o, "priority", r->priority);
	cJSON_AddStringToObject(o, "nonce", r->nonce);
	cJSON_AddStringToObject(o, "ciphertext", r->ciphertext);
	cJSON_AddStringToObject(o, "createdAt", r->created_at);
	if (r->topic_id) {
		/* §12.2: "topic" is the name the reference clients print, ext
		 * "topicId" the id meshbroker's own clients read */
		cJSON_AddStringToObject(o, "topic", r->topic_name ? r->topic_name : r->topic_id);
		cJSON_AddStringToObject(o, "topicId", r->topic_id);
		cJSON_AddNumberToObject(o, "bodyVersion", atoi(r->body_version));
	}
	if (r->client_message_id)
		cJSON_AddStringToObject(o, "client_message_id", r->client_message_id);
	if (r->request_fingerprint)
		cJSON_AddStringToObject(o, "request_fingerprint", r->request_fingerprint);
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

/* the marks that rode on the claim just answered: done when it committed,
 * else waiting again (for the next claim, the timer, or now when the
 * connection is ending) */
static void marks_settle(struct worker *w, int committed)
{
	size_t k = w->nmarking;
	w->nmarking = 0;
	if (!k)
		return;
	if (committed) {
		w->nwritten -= k;
		memmove(w->written, w->written + k, w->nwritten * sizeof *w->written);
		if (!w->nwritten)
			w->mark_due = 0;
		return;
	}
	if (w->phase != PHASE_AUTHENTICATED)
		delivery_flush(w); /* the leave: no claim will come */
	else if (!w->mark_due)
		w->mark_due = mono_ms() + MARK_DEFER_MS;
}

static void delivery_confirm(struct worker *w);

static int hand_seen(const struct worker *w, int64_t id)
{
	if (!w->hand_seen)
		return 0;
	uint32_t n = w->hand_seen_n < HAND_SEEN_MAX ? w->hand_seen_n : HAND_SEEN_MAX;
	for (uint32_t i = 0; i < n; i++)
		if (w->hand_seen[i] == id)
			return 1;
	return 0;
}

static void hand_seen_add(struct worker *w, int64_t id)
{
	if (!w->hand_seen && !(w->hand_seen = malloc(HAND_SEEN_MAX * sizeof *w->hand_seen)))
		log_fatal("out of memory");
	w->hand_seen[w->hand_seen_n++ % HAND_SEEN_MAX] = id;
}

/* the row is ours already: queued, being written, or written and not yet
 * marked delivered */
static int held(const struct worker *w, int64_t id)
{
	if (w->outstanding == id)
		return 1;
	for (size_t i = w->push_head; i < w->npush; i++)
		if (w->pushes[i].delivery_id == id)
			return 1;
	for (size_t i = w->unacked_head; i < w->nunacked; i++)
		if (w->unacked[i].delivery_id == id)
			return 1;
	for (size_t i = 0; i < w->nwritten; i++)
		if (w->written[i] == id)
			return 1;
	return 0;
}

static void pushes_room(struct worker *w, size_t more)
{
	if (w->npush + more <= w->push_cap)
		return;
	size_t cap = w->push_cap ? w->push_cap : 128;
	while (cap < w->npush + more)
		cap *= 2;
	struct push *np = realloc(w->pushes, cap * sizeof *np);
	if (!np)
		log_fatal("out of memory");
	w->pushes = np;
	w->push_cap = cap;
}

static void drain_cb(void *arg, const struct delivery_row *rows, int n, const char *err)
{
	struct worker *w = arg;
	w->drain_inflight = 0;
	marks_settle(w, err == NULL);
	if (err) {
		log_warn("drain failed", "error", err);
		/* the rows stay queued; the loop drains again after a back-off
		 * (skel.c), so the wake that asked for them is not lost */
		w->drain_retry_ms = w->drain_retry_ms ? w->drain_retry_ms * 2 : DRAIN_RETRY_MIN_MS;
		if (w->drain_retry_ms > DRAIN_RETRY_MAX_MS)
			w->drain_retry_ms = DRAIN_RETRY_MAX_MS;
		w->drain_retry_at = mono_ms() + w->drain_retry_ms;
		return;
	}
	w->drain_retry_ms = 0;
	/* every handed push refused before this claim went out is in it (or
	 * in the next one, when it was full) */
	if (n < PUSH_BATCH && w->claim_refused == w->hand_refused)
		w->hand_hold = 0;
	pushes_room(w, (size_t)n);
	struct push *batch = w->pushes + w->npush;
	int kept = 0;
	int64_t *giveback = n ? malloc((size_t)n * sizeof *giveback) : NULL;
	size_t ngive = 0;
	if (n && !giveback)
		log_fatal("out of memory");
	for (int i = 0; i < n; i++) {
		if (rows[i].id > w->claim_max)
			w->claim_max = rows[i].id;
		/* a handed row we took (0019's claim returns it once more while
		 * it is not marked): pushed once */
		if (w->hand_seen && (hand_seen(w, rows[i].id) || held(w, rows[i].id)))
			continue;
		/* the status may have changed while the query ran: what it no
		 * longer allows goes back to the queue */
		if (w->me.status != ST_IDLE && strcmp(rows[i].priority, "now") != 0) {
			giveback[ngive++] = rows[i].id;
			continue;
		}
		struct push *out = &batch[kept++];
		out->delivery_id = rows[i].id;
		out->json = delivery_push_json(&rows[i]);
		out->len = strlen(out->json);
		out->priority = msg_priority_parse(rows[i].priority);
		if (restcheck_time(rows[i].created_at, &out->created_ms) != 0)
			out->created_ms = 0;
	}
	if (ngive)
		store_delivery_unclaim(w->db, giveback, ngive, w->me.presence_id);
	free(giveback);
	if (kept > 1)
		qsort(batch, (size_t)kept, sizeof *batch, push_cmp); /* RETURNING has no order */
	w->npush += (size_t)kept;
	if (n == PUSH_BATCH || w->drain_again) {
		w->drain_again = 0;
		delivery_drain(w);
	}
}

void delivery_drain(struct worker *w)
{
	if (w->phase != PHASE_AUTHENTICATED) {
		w->woken_early = 1; /* the hello's first claim must not be left out */
		return;
	}
	if (w->drain_inflight || w->npush - w->push_head >= PUSH_BATCH) {
		/* one drain at a time, and no more claimed than one batch waiting
		 * for a client that may not be reading: delivery_pump asks again */
		w->drain_again = 1;
		return;
	}
	/* rows claimed by a live connection of this member (ourselves included)
	 * are in flight there; rows claimed by a dead one are taken again */
	struct live_ids l = {.member_id = w->me.member_id};
	presence_foreach_brief(w->shm, w->me.mesh_id, live_cb, &l);
	/* what the peer acknowledged since the last claim rides on this one */
	delivery_confirm(w);
	struct delivery_claim c = {w->me.member_id,
				   l.ids,
				   l.n,
				   w->me.status == ST_IDLE,
				   w->me.presence_id,
				   w->me.session_pubkey[0] ? w->me.session_pubkey : NULL,
				   PUSH_BATCH,
				   hosts_id(),
				   w->written,
				   w->nwritten};
	if (worker_db(w) == 0 && store_delivery_mark_claim(w->db, &c, drain_cb, w) == 0) {
		w->drain_inflight = 1;
		w->claim_refused = w->hand_refused;
		w->nmarking = w->nwritten;
		w->mark_due = 0; /* armed again by the next acknowledged push */
	}
	for (size_t i = 0; i < l.n; i++)
		free((char *)l.ids[i]);
}

/* A push handed by the sender's worker (see the top): taken when nothing
 * can come before it, else left to the next claim. */
void delivery_on_push(struct worker *w, int64_t delivery_id, int64_t created_ms, const char *json, size_t len)
{
	if (hand_seen(w, delivery_id) || held(w, delivery_id))
		return;
	/* a claim that ran after the sender's commit may have returned the row
	 * already (pushed, perhaps marked): only an id above every claimed one
	 * is surely not; the claim decides about the others (it returns the
	 * row only while no claim has) */
	if (w->phase != PHASE_AUTHENTICATED || w->hand_hold || w->drain_inflight || w->drain_again ||
	    delivery_id <= w->claim_max ||
	    w->drain_retry_at || w->npush - w->push_head >= PUSH_BATCH || ws_close_received(w)) {
		w->hand_hold = 1;
		w->hand_refused++;
		delivery_drain(w); /* now, or after the claim in flight (drain_again) */
		return;
	}
	char *copy = malloc(len + 1);
	if (!copy)
		log_fatal("out of memory");
	memcpy(copy, json, len);
	copy[len] = 0;
	pushes_room(w, 1);
	w->pushes[w->npush++] = (struct push){.delivery_id = delivery_id,
					      .json = copy,
					      .len = len,
					      .priority = msg_priority_parse("now"),
					      .created_ms = created_ms};
	hand_seen_add(w, delivery_id);
	delivery_pump(w);
}

/* a statement of its own for the marks no claim carries (those riding on
 * the claim in flight stay with it) */
void delivery_flush(struct worker *w)
{
	w->mark_due = 0;
	if (w->nwritten == w->nmarking || worker_db(w) != 0)
		return;
	store_delivery_mark(w->db, w->written + w->nmarking, w->nwritten - w->nmarking, w->me.presence_id);
	w->nwritten = w->nmarking;
}

static void written_add(struct worker *w, int64_t id)
{
	if (w->nwritten == w->written_cap) {
		size_t cap = w->written_cap ? w->written_cap * 2 : 128;
		int64_t *nw = realloc(w->written, cap * sizeof *nw);
		if (!nw)
			log_fatal("out of memory");
		w->written = nw;
		w->written_cap = cap;
	}
	w->written[w->nwritten++] = id;
	if (!w->mark_due)
		w->mark_due = mono_ms() + MARK_DEFER_MS;
}

/* a written push: its end offset is now, when wslay has nothing left (the
 * bytes of anything written after it only make the wait a little longer) */
static void unacked_add(struct worker *w, int64_t id)
{
	if (w->nunacked == w->unacked_cap) {
		if (w->unacked_head) { /* reuse the room of what was confirmed */
			memmove(w->unacked, w->unacked + w->unacked_head,
				(w->nunacked - w->unacked_head) * sizeof *w->unacked);
			w->nunacked -= w->unacked_head;
			w->unacked_head = 0;
		} else {
			size_t cap = w->unacked_cap ? w->unacked_cap * 2 : 64;
			struct unacked *nu = realloc(w->unacked, cap * sizeof *nu);
			if (!nu)
				log_fatal("out of memory");
			w->unacked = nu;
			w->unacked_cap = cap;
		}
	}
	w->unacked[w->nunacked++] = (struct unacked){.delivery_id = id, .end = ws_sent_bytes(w)};
	if (!w->ack_check_at) {
		w->ack_interval_ms = ACK_CHECK_MIN_MS;
		w->ack_check_at = mono_ms() + ACK_CHECK_MIN_MS;
	}
}

/* Move what the peer has acknowledged from unacked to written.  Called on
 * every turn of the loop (a wake, a readable or writable socket, the timer);
 * the timer (ack_check_at, in skel.c's poll) is armed only while something
 * is unconfirmed, 10 ms after a write and doubling to 250 ms while nothing
 * moves, so a recipient that stopped reading costs four looks a second. */
static void delivery_confirm(struct worker *w)
{
	if (w->unacked_head == w->nunacked) {
		w->ack_check_at = 0;
		return;
	}
	uint64_t acked;
	if (ws_acked_bytes(w, &acked) != 0) {
		/* SIOCOUTQ failed: the old rule for this connection, written counts */
		log_warn("SIOCOUTQ failed: pushes count as delivered once written", "presence", w->me.presence_id);
		w->ack_tracking = 0;
		acked = UINT64_MAX;
	}
	size_t before = w->unacked_head;
	while (w->unacked_head < w->nunacked && w->unacked[w->unacked_head].end <= acked)
		written_add(w, w->unacked[w->unacked_head++].delivery_id);
	if (w->unacked_head == w->nunacked) {
		w->unacked_head = w->nunacked = 0;
		w->ack_check_at = 0;
		return;
	}
	int64_t now = mono_ms();
	if (w->unacked_head != before)
		w->ack_interval_ms = ACK_CHECK_MIN_MS; /* moving: look again soon */
	else if (now < w->ack_check_at)
		return; /* an early look (some other event): the timer stays */
	else if (w->ack_interval_ms < ACK_CHECK_MAX_MS)
		w->ack_interval_ms = w->ack_interval_ms * 2 < ACK_CHECK_MAX_MS ? w->ack_interval_ms * 2 : ACK_CHECK_MAX_MS;
	w->ack_check_at = now + w->ack_interval_ms;
}

/* Hand pushes to wslay one at a time: a push counts as written only once
 * wslay has nothing left to send and no close went out before it, so a push
 * cut off by a close stays queued for later; it counts as delivered (and is
 * marked) once the peer has acknowledged it (delivery_confirm). */
void delivery_pump(struct worker *w)
{
	for (;;) {
		int busy = ws_busy(w);
		if (w->outstanding) {
			if (busy)
				break;
			if (ws_close_sent(w))
				w->outstanding = 0; /* not known to be written: not marked */
			else {
				/* a client_ack client marks its own deliveries; what it never
				 * acks is given back when it leaves */
				if (!w->client_ack && w->ack_tracking)
					unacked_add(w, w->outstanding);
				else if (!w->client_ack)
					written_add(w, w->outstanding); /* no TCP: written counts */
				w->outstanding = 0;
			}
		}
		if (w->push_head == w->npush || busy || w->phase == PHASE_CLOSING || ws_close_received(w))
			break;
		struct push *p = &w->pushes[w->push_head++];
		if (ws_send_text(w, p->json, p->len) == 0) {
			w->outstanding = p->delivery_id;
			counter_add(w->shm, (enum shm_counter)(C_ROUTED_NOW + p->priority), 1);
			if (p->created_ms)
				histo_observe_us(H_SEND_PUSH, (now_ms() - p->created_ms) * 1000);
		}
		free(p->json);
		p->json = NULL;
		if (ws_write(w) != 0)
			break;
	}
	if (w->push_head == w->npush) {
		w->push_head = w->npush = 0;
		if (w->drain_again && !w->drain_inflight) {
			w->drain_again = 0;
			delivery_drain(w);
		}
	}
	delivery_confirm(w);
	/* marks wait for the next claim (delivery_drain), but no longer than
	 * MARK_DEFER_MS, nor more than MARK_BATCH of them */
	if (w->nwritten - w->nmarking >= MARK_BATCH || (w->mark_due && mono_ms() >= w->mark_due))
		delivery_flush(w);
}

void delivery_settle(struct worker *w)
{
	if (w->unacked_head == w->nunacked)
		return;
	/* a clean close acknowledges all the peer read within a round trip; a
	 * reset or a peer that stopped reading leaves the rest unconfirmed */
	ws_await_acked(w, w->unacked[w->nunacked - 1].end, ACK_LINGER_MS);
	delivery_confirm(w);
}

/* client_ack (docs/protocol.md §3.4 ext): at-least-once for clients that
 * ask; by brokerMessageId or by the sender's clientMessageId (§12.1), and
 * with neither ignored without a reply (a stray error would settle some
 * other pending request of the HEAD client) */
void delivery_on_client_ack(struct worker *w, const cJSON *msg)
{
	const char *broker_id, *client_id;
	if (msgcheck_client_ack(msg, &broker_id, &client_id) != 0)
		return;
	if (broker_id)
		store_delivery_client_ack(w->db, broker_id, w->me.member_id, w->me.presence_id);
	else
		store_delivery_client_ack_cid(w->db, client_id, w->me.member_id, w->me.presence_id);
}

void delivery_free(struct worker *w)
{
	for (size_t i = w->push_head; i < w->npush; i++)
		free(w->pushes[i].json);
	free(w->pushes);
	free(w->written);
	free(w->unacked);
	free(w->hand_seen);
	w->hand_seen = NULL;
	w->hand_seen_n = 0;
	w->claim_max = 0;
	w->pushes = NULL;
	w->written = NULL;
	w->unacked = NULL;
	w->nunacked = w->unacked_head = w->unacked_cap = 0;
	w->nwritten = w->written_cap = w->nmarking = 0;
	w->ack_check_at = 0;
	w->mark_due = 0;
}

/* every row of ours not marked delivered: claimed and never pushed, and
 * pushed but never acknowledged by the peer (never marked, see
 * delivery_settle), so the next connection gets it again */
void delivery_give_back(struct worker *w) { store_delivery_unclaim_all(w->db, w->me.presence_id); }
