/* send — refusals are acks with queued:false, an error line from
 * proto/reasons.h and a count in broker_messages_rejected_total; an accepted
 * send is acked only after its transaction committed.
 *
 * Group commit: accepted direct and `*` sends wait in w->sends while a send
 * statement of this connection is running, and go out together in the next
 * one (one statement, one transaction, one WAL flush for all of them, with
 * their audit rows); with none running they go out at once, at the loop's
 * next pump.  So a client that pipelines sends pays one commit per batch,
 * and one that sends one at a time waits for nothing more than before.
 *
 * Audit: a batch writes its message_sent rows in its own transaction.  A
 * send alone in its statement leaves them pending (mesh.audit_pending,
 * migration 0021: the chain step is not on its ack's path); a batch of
 * several chains them there when the mesh's chain lock is free (its acks
 * wait for the whole batch anyway, and one step serves all its rows), else
 * leaves them pending.  Rows left pending: we owe the mesh a chain step.
 * While we send nothing, one of its own (store_audit_flush, trying the lock)
 * goes CHAIN_RETRY_MS after, again every CHAIN_RETRY_MS until the lock was
 * free or nothing of the mesh is pending; a sender that never pauses gets it
 * queued behind its running batch once the debt is CHAIN_FORCE_MS old; a
 * batch that chained settles it.  One step chains every pending row of the
 * mesh, so many sends (and other workers' rows) share it.  No send ever waits for the lock (nor a hello:
 * its peer_joined row, when left pending, is owed the same way, auth.c).
 * A worker that ends while it owes: its leave's statement chains what is
 * pending (mesh.presence_leave), and a worker killed first is covered by
 * the reaper's sweep (worker/reap.c); meshctl audit verify settles the chain
 * before it reads (store_audit_settle).
 *
 * Hand-over (issue 23, migration 0019): a direct `now` send that goes alone
 * in its statement, whose recipient member has exactly one live connection
 * on this host (one host only, no HOST_ID), names that connection; when the statement's
 * rules allow, the row is claimed for it in the send's transaction and this
 * worker sends it the push itself with the wake (uds_push), so the
 * recipient runs no claim statement for it.  Whatever cannot go that way (a
 * full socket, an envelope too large) gets the plain wake, and the
 * recipient's claim takes the row. */
#include "worker/send.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/store.h"
#include "db/store_topic.h"
#include "common/log.h"
#include "proto/reasons.h"
#include "shm/histo.h"
#include "common/util.h"
#include "worker/audit.h"
#include "worker/groups.h"
#include "worker/mention.h"
#include "worker/msg.h"
#include "worker/delivery.h"
#include "worker/hosts.h"
#include "worker/msgcheck.h"
#include "worker/peers.h"
#include "worker/restcheck.h"
#include "worker/uds.h"
#include "worker/wake.h"
#include "worker/ws.h"

#define SEND_BATCH_MAX 64             /* sends in one statement */
#define SEND_BATCH_BYTES (1L << 20)   /* nonce + ciphertext bytes in one statement (at least one send) */
#define SEND_WAIT_MAX 1024            /* sends waiting for a batch (as many as the database queue holds) */
#define CHAIN_RETRY_MS 20             /* an owed audit chain step, tried again this long after */
#define CHAIN_FORCE_MS 100            /* ... and queued behind running sends once owed this long */
#define BCAST_ID_MAX 64               /* broadcastId bytes (docs/protocol.md §3.1) */
#define BCAST_ENVELOPES_MAX 1000      /* envelopes one broadcastId's token covers (the roster's cap) */
#define BCAST_WINDOW_MS 10000         /* ... sent within this long of its first */

static const struct {
	const char *message;
	enum shm_counter counter;
} rejections[] = {
#define X(id, label, code, message) [SEND_REJ_##id] = {message, C_MSGREJ_##id},
	SEND_REJECTIONS(X)
#undef X
};

struct send_ctx {
	struct worker *w;
	char id[SEND_ID_MAX + 1];
	char req_id[sizeof((struct worker *)0)->req_id]; /* §12.7: the send's _reqId, "" when none */
	char *client_key;                  /* client_message_id, else id: stored once per (sender, key); NULL when none */
	char *client_id, *fingerprint;     /* client_message_id, request_fingerprint (echoed); NULL when none */
	int64_t due;                       /* mono ms: answered by then, whatever the database does */
	char message_id[ID_LEN + 1];
	char target[SEND_TARGET_MAX + 1];
	int prio;
	/* a direct or * send waiting for its batch: copies, freed with it */
	char *nonce, *ct;
	char *audit; /* canonical message_sent payload, NULL when it could not be built */
	int64_t t0_us; /* histo clock at the frame: broker_send_ack_seconds */
	int bcast_free; /* an envelope of a broadcast that did not take a token of its own */
	/* the recipient's one live connection here, to hand the row to ("": none) */
	char hand_to[SHM_MEMBER_ID_MAX];
	uint32_t hand_slot, hand_gen;
};

/* The broadcast of this connection whose envelopes ride on one token of the
 * send rate limit (docs/protocol.md §3.1 broadcastId): the envelope that
 * started it took the token; later ones with the same broadcastId, each to
 * a target not seen yet under it, within BCAST_WINDOW_MS and up to
 * BCAST_ENVELOPES_MAX, take none.  One refused as no_recipient takes its
 * token after all (and when none is left the ride ends), so the free ones
 * are bounded by the mesh's real recipients. */
struct send_bcast {
	char id[BCAST_ID_MAX + 1];
	int64_t since; /* mono ms of its first envelope */
	int n;
	char targets[BCAST_ENVELOPES_MAX][65]; /* lowercase hex */
};

/* the sends of one statement, in the order they were accepted (a topic post
 * or a group send is a batch of one); in w->batches (oldest first) while it
 * runs */
struct send_batch {
	struct worker *w;
	struct send_batch *next;
	int answered; /* its deadline passed: every send got outcome_unknown */
	int topic;    /* a topic post (not keyed by client id: its resend is a new post) */
	int n;
	struct send_ctx *s[];
};

static void send_ctx_free(struct send_ctx *sc)
{
	free(sc->nonce);
	free(sc->ct);
	free(sc->audit);
	free(sc->client_key);
	free(sc->client_id);
	free(sc->fingerprint);
	free(sc);
}

/* code: the refusal's label (ext: the machine-readable twin of error);
 * req_id: the send's _reqId for an ack sent later (one sent while the
 * frame is handled gets it from phase.c) */
static void send_ack(struct worker *w, const char *id, const char *req_id, const char *message_id,
		     const char *error, const char *code)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "ack");
	cJSON_AddStringToObject(o, "id", id);
	cJSON_AddStringToObject(o, "messageId", message_id);
	cJSON_AddBoolToObject(o, "queued", error == NULL);
	if (error)
		cJSON_AddStringToObject(o, "error", error);
	if (code)
		cJSON_AddStringToObject(o, "code", code);
	if (req_id && req_id[0])
		cJSON_AddStringToObject(o, "_reqId", req_id);
	ws_send_json(w, o);
	cJSON_Delete(o);
}

/* a stored send's ack, timed from its frame */
static void send_ack_stored(struct worker *w, const struct send_ctx *sc, const char *message_id)
{
	send_ack(w, sc->id, sc->req_id, message_id, NULL, NULL);
	histo_since(H_SEND_ACK, sc->t0_us);
}

static const char *const rejection_labels[] = {
#define X(id, label, code, message) [SEND_REJ_##id] = label,
	SEND_REJECTIONS(X)
#undef X
};

/* refuse with the table's message, or with detail when it says more */
static void send_refuse_req(struct worker *w, const char *id, const char *req_id, enum send_rejection r,
			    const char *detail)
{
	counter_add(w->shm, rejections[r].counter, 1);
	send_ack(w, id, req_id, "", detail ? detail : rejections[r].message, rejection_labels[r]);
}

static void send_refuse(struct worker *w, const char *id, enum send_rejection r, const char *detail)
{
	send_refuse_req(w, id, NULL, r, detail);
}

/* a new statement of sends (n of them, or one topic post or group send) is running */
static struct send_batch *batch_new(struct worker *w, size_t n)
{
	struct send_batch *b = malloc(sizeof *b + n * sizeof b->s[0]);
	if (!b)
		log_fatal("out of memory");
	b->w = w;
	b->next = NULL;
	b->answered = 0;
	b->topic = 0;
	b->n = (int)n;
	return b;
}

static void batch_link(struct worker *w, struct send_batch *b)
{
	struct send_batch **tail = &w->batches;
	while (*tail)
		tail = &(*tail)->next;
	*tail = b;
}

/* its statement answered: no longer running */
static void batch_unlink(struct worker *w, struct send_batch *b)
{
	for (struct send_batch **pp = &w->batches; *pp; pp = &(*pp)->next)
		if (*pp == b) {
			*pp = b->next;
			break;
		}
}

/* the earliest deadline of what is undecided: waiting sends and running
 * batches not yet answered */
static void send_due_update(struct worker *w)
{
	int64_t due = 0;
	for (struct send_batch *b = w->batches; b; b = b->next)
		if (!b->answered && b->n && (!due || b->s[0]->due < due))
			due = b->s[0]->due;
	if (w->nsends && (!due || w->sends[0]->due < due))
		due = w->sends[0]->due;
	w->send_due = due;
}

/* Sends undecided at their deadline (docs/protocol.md "Idempotent sends"):
 * a running batch may still commit, so its sends are told the outcome is
 * unknown (a resend with the same id is stored at most once, and gets the
 * first ack); sends still waiting for a batch were never sent to the
 * database and are refused as not queued. */
static void send_deadline(struct worker *w, int64_t now)
{
	for (struct send_batch *b = w->batches; b; b = b->next) {
		if (b->answered || !b->n || b->s[0]->due > now)
			continue;
		b->answered = 1;
		for (int i = 0; i < b->n; i++)
			send_refuse_req(w, b->s[i]->id, b->s[i]->req_id, SEND_REJ_OUTCOME_UNKNOWN,
					b->topic ? "outcome_unknown: the database did not answer in time; the post may "
						   "still be stored (topic posts are not deduplicated)"
						 : NULL);
		log_warn("send: undecided at its deadline", "sends", b->n == 1 ? "1" : "several");
	}
	size_t k = 0;
	while (k < w->nsends && w->sends[k]->due <= now) {
		struct send_ctx *sc = w->sends[k++];
		send_refuse_req(w, sc->id, sc->req_id, SEND_REJ_DB_UNAVAILABLE,
				"database unavailable: message not queued (deadline), try again");
		send_ctx_free(sc);
	}
	if (k) {
		w->nsends -= k;
		memmove(w->sends, w->sends + k, w->nsends * sizeof *w->sends);
	}
	send_due_update(w);
}

/* our audit rows wait in mesh.audit_pending: a chain step is owed */
void send_chain_owe(struct worker *w)
{
	int64_t now = mono_ms();
	if (!w->chain_owed)
		w->chain_since = now;
	w->chain_owed = 1;
	if (!w->chain_due)
		w->chain_due = now + CHAIN_RETRY_MS;
}

static void chain_cb(void *arg, int64_t chained, const char *err)
{
	struct worker *w = arg;
	w->chain_inflight--;
	if (!err && chained < 0)
		send_chain_owe(w); /* the lock was taken: again later */
}

void send_tick(struct worker *w, int64_t now)
{
	if (w->send_due && now >= w->send_due)
		send_deadline(w, now);
	if (!w->chain_owed || !w->chain_due || now < w->chain_due)
		return;
	w->chain_due = 0;
	/* a chain step of ours is queued (it may have been sent before our
	 * latest rows committed), or a send is under way and the debt is
	 * young (a step now would delay its successor): try again later */
	if (w->chain_inflight ||
	    ((w->send_inflight || w->nsends) && now - w->chain_since < CHAIN_FORCE_MS)) {
		w->chain_due = now + CHAIN_RETRY_MS;
		return;
	}
	w->chain_owed = 0;
	if (store_audit_flush(w->db, w->me.mesh_id, 0, chain_cb, w) == 0)
		w->chain_inflight++;
}

/* one token of the sender member's send rate limit: 1 taken */
static int send_charge(struct worker *w)
{
	char key[SHM_MEMBER_ID_MAX + 8];
	snprintf(key, sizeof key, "send:%s", w->me.member_id);
	return bucket_take(w->shm, key, w->cfg.send_rate_burst, w->cfg.send_rate_per_min, now_ms());
}

/* the send's broadcastId when it is one (1..BCAST_ID_MAX bytes of
 * [A-Za-z0-9._:-]), else NULL: an envelope without a usable one is charged
 * like any send */
static const char *bcast_id(const cJSON *msg)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(msg, "broadcastId");
	if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) > BCAST_ID_MAX)
		return NULL;
	for (const char *p = v->valuestring; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      strchr("._:-", *p)))
			return NULL;
	return v->valuestring;
}

/* 1 when the envelope to target (lowercase hex) of broadcast bid rides on
 * the token of the broadcast under way (and is counted in it) */
static int bcast_ride(struct worker *w, const char *bid, const char *target, int64_t now)
{
	struct send_bcast *b = w->bcast;
	if (!b || !bid || strcmp(b->id, bid) != 0 || now - b->since > BCAST_WINDOW_MS || b->n >= BCAST_ENVELOPES_MAX)
		return 0;
	for (int i = 0; i < b->n; i++)
		if (!strcmp(b->targets[i], target))
			return 0; /* the same recipient twice: not one envelope each */
	memcpy(b->targets[b->n++], target, 65);
	return 1;
}

/* the envelope to target took a token: bid (when set) starts a broadcast */
static void bcast_start(struct worker *w, const char *bid, const char *target, int64_t now)
{
	if (!bid)
		return;
	if (!w->bcast && !(w->bcast = malloc(sizeof *w->bcast)))
		log_fatal("out of memory");
	snprintf(w->bcast->id, sizeof w->bcast->id, "%s", bid);
	w->bcast->since = now;
	w->bcast->n = 1;
	memcpy(w->bcast->targets[0], target, 65);
}

struct hand_find {
	const char *pubkey;
	int n;
	struct presence_view v;
};

static int hand_find_cb(const struct presence_view *v, void *arg)
{
	struct hand_find *f = arg;
	if (strcmp(v->info.pubkey, f->pubkey) != 0 || peers_is_stream(&v->info))
		return 0; /* another member's, or a topic stream (no direct pushes) */
	if (++f->n == 1)
		f->v = *v;
	return f->n > 1; /* two: the claim decides between them */
}

/* sc's recipient connection to hand its row to, when it can be one: a
 * direct `now` send on one host whose target member has exactly one live
 * connection here, another than ours, and a push that fits an envelope */
static void hand_pick(struct worker *w, struct send_ctx *sc)
{
	sc->hand_to[0] = 0;
	if (hosts_id() || !w->shm || strcmp(msg_priority_names[sc->prio], "now") != 0 || strlen(sc->target) != 64 ||
	    strlen(sc->nonce) + strlen(sc->ct) + 2048 > UDS_PUSH_JSON_MAX)
		return;
	struct hand_find f = {.pubkey = sc->target};
	presence_foreach(w->shm, w->me.mesh_id, hand_find_cb, &f);
	if (f.n != 1 || (w->have_slot && f.v.slot == w->slot && f.v.gen == w->gen))
		return;
	snprintf(sc->hand_to, sizeof sc->hand_to, "%s", f.v.info.presence_id);
	sc->hand_slot = f.v.slot;
	sc->hand_gen = f.v.gen;
}

/* the row of sc was claimed for its recipient's connection: send it the
 * push; when that cannot go, the plain wake (its claim takes the row) */
static void hand_over(struct worker *w, const struct send_ctx *sc, const struct sent_row *r)
{
	struct delivery_row d = {.id = r->hand_id,
				 .message_id = sc->message_id,
				 .mesh_id = w->me.mesh_id,
				 .sender_pubkey = w->me.session_pubkey[0] ? w->me.session_pubkey : w->me.pubkey,
				 .priority = msg_priority_names[sc->prio],
				 .nonce = sc->nonce,
				 .ciphertext = sc->ct,
				 .created_at = r->hand_at,
				 .sender_member_pubkey = w->me.pubkey,
				 .sender_member_id = w->me.member_id,
				 .sender_name = w->me.display_name,
				 .client_message_id = sc->client_id,
				 .request_fingerprint = sc->fingerprint};
	char *json = delivery_push_json(&d);
	struct uds_push p = {.delivery_id = r->hand_id};
	if (restcheck_time(r->hand_at, &p.created_ms) != 0)
		p.created_ms = 0;
	if (!json || uds_push(w, sc->hand_slot, sc->hand_gen, &p, json, strlen(json)) != 0)
		uds_wake(w, sc->hand_slot, sc->hand_gen);
	free(json);
}

static void batch_cb(void *arg, const struct sent_row *rows, int n, int audit_pending, const char *err)
{
	struct send_batch *b = arg;
	struct worker *w = b->w;
	w->send_inflight--;
	int wrote_audit = 0; /* a stored send with a message_sent row */
	for (int i = 0; !err && i < n && i < b->n; i++)
		wrote_audit |= rows[i].stored && b->s[i]->audit != NULL;
	if (!err && audit_pending) {
		send_chain_owe(w); /* a lone send's always (0021): chained after the ack */
	} else if (!err && wrote_audit) {
		/* chained in the batch's transaction, and with them whatever of
		 * the mesh was pending before it */
		w->chain_owed = 0;
		w->chain_due = 0;
	}
	if (!err && n != b->n)
		err = "wrong number of results";
	batch_unlink(w, b);
	/* a connection lost with the statement on its way: it may have
	 * committed, and the client learns that the outcome is unknown */
	int unknown = err && strstr(err, "connection lost") != NULL;
	int nwake = 0;
	for (int i = 0; !err && i < n; i++)
		nwake += rows[i].n;
	const char **wake = nwake ? malloc((size_t)nwake * sizeof *wake) : NULL;
	if (nwake && !wake)
		log_fatal("out of memory");
	nwake = 0;
	int nhand = 0;
	for (int i = 0; i < b->n; i++) {
		struct send_ctx *sc = b->s[i];
		if (b->answered) {
			/* answered at its deadline; what it stored is still delivered */
		} else if (err) {
			send_refuse_req(w, sc->id, sc->req_id, unknown ? SEND_REJ_OUTCOME_UNKNOWN : SEND_REJ_DB_UNAVAILABLE,
					NULL);
		} else if (rows[i].conflict) {
			send_refuse_req(w, sc->id, sc->req_id, SEND_REJ_ID_CONFLICT, NULL);
		} else if (rows[i].first_id) {
			send_ack_stored(w, sc, rows[i].first_id); /* stored before: the first ack again */
		} else if (!rows[i].stored || (rows[i].n == 0 && strcmp(sc->target, "*") != 0)) {
			/* not a recipient: this envelope pays like any send, and
			 * with nothing left to pay the broadcast's ride ends */
			if (sc->bcast_free && !send_charge(w) && w->bcast)
				w->bcast->n = BCAST_ENVELOPES_MAX;
			send_refuse_req(w, sc->id, sc->req_id, SEND_REJ_NO_RECIPIENT, NULL);
		} else {
			send_ack_stored(w, sc, sc->message_id);
		}
		if (!err && rows[i].stored && rows[i].hand_id) {
			b->s[nhand++] = sc; /* handed after the acks went out (below) */
			continue;
		}
		if (!err && rows[i].stored)
			for (int k = 0; k < rows[i].n; k++)
				wake[nwake++] = rows[i].recipients[k];
		send_ctx_free(sc);
	}
	if (err)
		log_warn("send: not stored", "error", err);
	if (nhand) {
		/* the acks first (the client waits for them), then the pushes,
		 * each to its one recipient with no wake besides */
		ws_write(w);
		for (int i = 0, h = 0; i < b->n && h < nhand; i++)
			if (rows[i].stored && rows[i].hand_id) {
				hand_over(w, b->s[h], &rows[i]);
				send_ctx_free(b->s[h++]);
			}
	}
	wake_members(w, w->me.mesh_id, wake, nwake);
	free(wake);
	free(b);
	send_due_update(w);
	send_flush(w, 0); /* what came in meanwhile: the next batch */
}

/* Queue the next batch (when no send statement is running, or always when
 * force), or everything waiting (force). */
void send_flush(struct worker *w, int force)
{
	while (w->nsends > 0 && (force || w->send_inflight == 0)) {
		size_t k = 0;
		long bytes = 0;
		while (k < w->nsends && k < SEND_BATCH_MAX) {
			long sz = (long)(strlen(w->sends[k]->ct) + strlen(w->sends[k]->nonce));
			if (k > 0 && bytes + sz > SEND_BATCH_BYTES)
				break;
			bytes += sz;
			k++;
		}
		struct send_batch *b = batch_new(w, k);
		struct message_row *m = calloc(k, sizeof *m);
		if (!m)
			log_fatal("out of memory");
		for (size_t i = 0; i < k; i++) {
			struct send_ctx *sc = b->s[i] = w->sends[i];
			/* a batch of one only: in a batch of several the claim, one
			 * statement for all its rows, costs less per row than the
			 * hand-over's step per row (bench/run.sh --compare: the
			 * pipelined rows were slower with every row handed) */
			sc->hand_to[0] = 0;
			if (k == 1)
				hand_pick(w, sc);
			m[i] = (struct message_row){sc->message_id,
						    w->me.mesh_id,
						    w->me.member_id,
						    sc->target,
						    msg_priority_names[sc->prio],
						    sc->nonce,
						    sc->ct,
						    sc->audit,
						    w->me.session_pubkey[0] ? w->me.session_pubkey : NULL,
						    sc->client_key,
						    sc->client_id,
						    sc->fingerprint,
						    sc->hand_to[0] ? sc->hand_to : NULL};
		}
		w->nsends -= k;
		memmove(w->sends, w->sends + k, w->nsends * sizeof *w->sends);
		int r = store_messages_send(w->db, m, (int)k, w->me.display_name, batch_cb, b);
		free(m);
		if (r != 0) {
			for (size_t i = 0; i < k; i++) {
				send_refuse_req(w, b->s[i]->id, b->s[i]->req_id, SEND_REJ_DB_UNAVAILABLE,
						"broker busy: message not queued, try again");
				send_ctx_free(b->s[i]);
			}
			free(b);
			continue;
		}
		w->send_inflight++;
		batch_link(w, b);
	}
	send_due_update(w);
}

void send_free(struct worker *w)
{
	/* batches still running belong to their callbacks (db_drain_sync or
	 * the db's own teardown runs them) */
	for (size_t i = 0; i < w->nsends; i++)
		send_ctx_free(w->sends[i]);
	free(w->sends);
	w->sends = NULL;
	free(w->bcast);
	w->bcast = NULL;
	w->nsends = w->sends_cap = 0;
}

/* ---- topic posts (docs/protocol.md §5.2) ---- */

static void topic_cb(void *arg, enum store_topic_status st, const char *topic_id, const char *const *recipients,
		     int n, const char *err)
{
	struct send_batch *b = arg;
	struct send_ctx *sc = b->s[0];
	struct worker *w = sc->w;
	batch_unlink(w, b);
	int answered = b->answered; /* at its deadline */
	free(b);
	send_due_update(w);
	if (!err && st == TOPIC_OK) {
		if (!answered)
			send_ack_stored(w, sc, sc->message_id);
		char spec[SEND_TARGET_MAX + 1];
		snprintf(spec, sizeof spec, "#%s", topic_id);
		cJSON *pl = cJSON_CreateObject();
		cJSON_AddStringToObject(pl, "messageId", sc->message_id);
		cJSON_AddStringToObject(pl, "priority", msg_priority_names[sc->prio]);
		cJSON_AddStringToObject(pl, "targetSpec", spec);
		audit_event(w, w->me.mesh_id, "message_sent", w->me.member_id, w->me.display_name, pl);
		wake_members(w, w->me.mesh_id, recipients, n);
	} else if (answered) {
		/* told at its deadline that the outcome is unknown: it was not stored */
	} else if (err) {
		log_warn("topic send: not stored", "error", err);
		send_refuse_req(w, sc->id, sc->req_id, SEND_REJ_DB_UNAVAILABLE, NULL);
	} else if (st == TOPIC_NOT_FOUND) {
		send_refuse_req(w, sc->id, sc->req_id, SEND_REJ_NO_SUCH_TOPIC, NULL);
	} else {
		send_refuse_req(w, sc->id, sc->req_id, SEND_REJ_NO_SUCH_TOPIC,
				"no such topic: you are not a member of it (topic_join first)");
	}
	send_ctx_free(sc);
}

/* the topic ref (id or name), bodyVersion (1 when absent) and mentions */
static void send_topic(struct worker *w, struct send_ctx *sc, const cJSON *msg, const char *topic, const char *nonce,
		       const char *ct)
{
	struct send_topic_fields tf;
	const char *detail;
	if (msgcheck_send_topic(msg, ct, &tf, &detail) >= 0) {
		send_refuse(w, sc->id, SEND_REJ_MALFORMED, detail);
		send_ctx_free(sc);
		return;
	}
	int version = tf.version, n = tf.n;
	char **names = tf.names, ids[MENTION_MAX][ID_LEN + 1];
	const char *idp[MENTION_MAX];
	for (int i = 0; i < n; i++) {
		id_new(ids[i]);
		idp[i] = ids[i];
	}
	snprintf(sc->target, sizeof sc->target, "#%s", topic);
	/* per (sender, recipient) the order of acceptance: sends waiting for
	 * their batch go first */
	send_flush(w, 1);
	struct topic_post p = {sc->message_id, w->me.mesh_id, w->me.member_id, topic,   msg_priority_names[sc->prio],
			       nonce,          ct,            version,          (const char *const *)names, n,
			       idp};
	struct send_batch *b = batch_new(w, 1);
	b->s[0] = sc;
	b->topic = 1;
	if (store_topic_post(w->db, &p, topic_cb, b) != 0) {
		send_refuse(w, sc->id, SEND_REJ_DB_UNAVAILABLE, "broker busy: message not queued, try again");
		send_ctx_free(sc);
		free(b);
	} else {
		batch_link(w, b);
		send_due_update(w);
	}
	mention_free(names, n);
}

/* ---- '@group', '@all', and '*' while a presence is hidden (groups.c, §12.3) ---- */

/* answered like a direct send (batch_cb): the first ack again for a resend
 * of a stored client key, id_conflict for another request under it, and
 * outcome_unknown at the deadline (it is a batch of one on w->batches) */
static void group_cb(void *arg, const struct groups_sent *r, const char *err)
{
	struct send_batch *b = arg;
	struct send_ctx *sc = b->s[0];
	struct worker *w = sc->w;
	batch_unlink(w, b);
	int answered = b->answered; /* at its deadline: what it stored is still delivered */
	free(b);
	send_due_update(w);
	if (err) {
		log_warn("group send: not stored", "error", err);
		if (!answered)
			send_refuse_req(w, sc->id, sc->req_id,
					strstr(err, "connection lost") ? SEND_REJ_OUTCOME_UNKNOWN : SEND_REJ_DB_UNAVAILABLE,
					NULL);
	} else if (r->conflict) {
		if (!answered)
			send_refuse_req(w, sc->id, sc->req_id, SEND_REJ_ID_CONFLICT, NULL);
	} else if (r->first_id) {
		if (!answered)
			send_ack_stored(w, sc, r->first_id); /* stored before: the first ack again */
	} else {
		if (!answered) /* no recipient is still queued:true (§12.3) */
			send_ack_stored(w, sc, sc->message_id);
		cJSON *pl = cJSON_CreateObject();
		cJSON_AddStringToObject(pl, "messageId", sc->message_id);
		cJSON_AddStringToObject(pl, "priority", msg_priority_names[sc->prio]);
		cJSON_AddStringToObject(pl, "targetSpec", sc->target);
		audit_event(w, w->me.mesh_id, "message_sent", w->me.member_id, w->me.display_name, pl);
		wake_members(w, w->me.mesh_id, r->members, r->n);
	}
	send_ctx_free(sc);
}

static void send_group(struct worker *w, struct send_ctx *sc, const char *target, const char *nonce, const char *ct)
{
	snprintf(sc->target, sizeof sc->target, "%s", target);
	send_flush(w, 1); /* per (sender, recipient) the order of acceptance */
	struct groups_msg m = {sc->message_id, sc->target,   msg_priority_names[sc->prio], nonce, ct,
			       sc->client_key, sc->client_id, sc->fingerprint};
	struct send_batch *b = batch_new(w, 1);
	b->s[0] = sc;
	if (groups_send(w, &m, group_cb, b) != 0) {
		send_refuse(w, sc->id, SEND_REJ_DB_UNAVAILABLE, "broker busy: message not queued, try again");
		send_ctx_free(sc);
		free(b);
		return;
	}
	batch_link(w, b);
	send_due_update(w);
}

void send_on_msg(struct worker *w, const cJSON *msg)
{
	struct send_fields f;
	const char *detail;
	char e[160];
	int r = msgcheck_send(msg, (size_t)w->cfg.max_message_bytes, w->frame_nul, &f, &detail);
	if (r == SEND_REJ_PAYLOAD_TOO_LARGE) {
		snprintf(e, sizeof e, rejections[r].message, f.size, w->cfg.max_message_bytes);
		detail = e;
	}
	if (r >= 0) {
		send_refuse(w, f.id, (enum send_rejection)r, detail);
		return;
	}
	char id[SEND_ID_MAX + 1];
	snprintf(id, sizeof id, "%s", f.id);
	const char *target = f.target, *nonce = f.nonce, *ct = f.ct;
	int prio = f.prio, direct = f.direct;
	char lower[65];
	if (direct) {
		for (int i = 0; i < 64; i++)
			lower[i] = (char)((target[i] >= 'A' && target[i] <= 'F') ? target[i] + 32 : target[i]);
		lower[64] = 0;
		target = lower;
	}
	/* one token per send, and per broadcast: its envelopes (direct sends
	 * with one broadcastId) ride on the first one's */
	const char *bid = direct ? bcast_id(msg) : NULL;
	int64_t mono = mono_ms();
	int ride = bcast_ride(w, bid, target, mono);
	if (!ride && !send_charge(w)) {
		snprintf(e, sizeof e, rejections[SEND_REJ_RATE_LIMIT].message, w->cfg.send_rate_per_min,
			 w->cfg.send_rate_burst);
		send_refuse(w, id, SEND_REJ_RATE_LIMIT, e);
		return;
	}
	if (!ride)
		bcast_start(w, bid, target, mono);
	struct send_ctx *sc = calloc(1, sizeof *sc);
	if (!sc)
		log_fatal("out of memory");
	sc->w = w;
	snprintf(sc->id, sizeof sc->id, "%s", id);
	snprintf(sc->req_id, sizeof sc->req_id, "%s", w->req_id); /* answered later: keep the _reqId (§12.7) */
	id_new(sc->message_id);
	sc->prio = prio;
	sc->due = mono_ms() + w->cfg.send_deadline_ms;
	sc->t0_us = histo_clock_us();
	/* idempotent sends: the client's message id, else its correlation id */
	const char *ckey = f.client_id ? f.client_id : (id[0] ? id : NULL);
	sc->client_key = ckey ? strdup(ckey) : NULL;
	sc->client_id = f.client_id ? strdup(f.client_id) : NULL;
	sc->fingerprint = f.fingerprint ? strdup(f.fingerprint) : NULL;
	if ((ckey && !sc->client_key) || (f.client_id && !sc->client_id) || (f.fingerprint && !sc->fingerprint))
		log_fatal("out of memory");
	if (target[0] == '#') {
		send_topic(w, sc, msg, target + 1, nonce, ct);
		return;
	}
	if (groups_routes(w, target)) {
		send_group(w, sc, target, nonce, ct);
		return;
	}
	sc->bcast_free = ride;
	snprintf(sc->target, sizeof sc->target, "%s", target);
	if (w->nsends >= SEND_WAIT_MAX) {
		send_refuse(w, id, SEND_REJ_DB_UNAVAILABLE, "broker busy: message not queued, try again");
		send_ctx_free(sc);
		return;
	}
	sc->nonce = strdup(nonce);
	sc->ct = strdup(ct);
	sc->audit = audit_message_sent(sc->message_id, msg_priority_names[prio], sc->target);
	if (!sc->nonce || !sc->ct)
		log_fatal("out of memory");
	if (w->nsends == w->sends_cap) {
		size_t cap = w->sends_cap ? w->sends_cap * 2 : 16;
		struct send_ctx **ns = realloc(w->sends, cap * sizeof *ns);
		if (!ns)
			log_fatal("out of memory");
		w->sends = ns;
		w->sends_cap = cap;
	}
	w->sends[w->nsends++] = sc; /* stored by send_flush: at the next pump, or with the running batch's successor */
	send_due_update(w);
}
