/* send — refusals are acks with queued:false, an error line from
 * proto/reasons.h and a count in broker_messages_rejected_total; an accepted
 * send is acked only after its transaction committed. */
#include "worker/send.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/store.h"
#include "db/store_topic.h"
#include "common/log.h"
#include "proto/reasons.h"
#include "common/util.h"
#include "worker/audit.h"
#include "worker/mention.h"
#include "worker/msg.h"
#include "worker/msgcheck.h"
#include "worker/wake.h"
#include "worker/ws.h"

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
	char message_id[ID_LEN + 1];
	char target[SEND_TARGET_MAX + 1];
	int prio;
};

static void send_ack(struct worker *w, const char *id, const char *message_id, const char *error)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "ack");
	cJSON_AddStringToObject(o, "id", id);
	cJSON_AddStringToObject(o, "messageId", message_id);
	cJSON_AddBoolToObject(o, "queued", error == NULL);
	if (error)
		cJSON_AddStringToObject(o, "error", error);
	ws_send_json(w, o);
	cJSON_Delete(o);
}

/* refuse with the table's message, or with detail when it says more */
static void send_refuse(struct worker *w, const char *id, enum send_rejection r, const char *detail)
{
	counter_add(w->shm, rejections[r].counter, 1);
	send_ack(w, id, "", detail ? detail : rejections[r].message);
}

static void send_cb(void *arg, const char *const *recipients, int n, const char *err)
{
	struct send_ctx *sc = arg;
	struct worker *w = sc->w;
	if (err) {
		log_warn("send: not stored", "error", err);
		send_refuse(w, sc->id, SEND_REJ_DB_UNAVAILABLE, NULL);
	} else if (n == 0 && strcmp(sc->target, "*") != 0) {
		send_refuse(w, sc->id, SEND_REJ_NO_RECIPIENT, NULL);
	} else {
		send_ack(w, sc->id, sc->message_id, NULL);
		cJSON *pl = cJSON_CreateObject();
		cJSON_AddStringToObject(pl, "messageId", sc->message_id);
		cJSON_AddStringToObject(pl, "priority", msg_priority_names[sc->prio]);
		cJSON_AddStringToObject(pl, "targetSpec", sc->target);
		audit_event(w, w->me.mesh_id, "message_sent", w->me.member_id, w->me.display_name, pl);
		wake_members(w, w->me.mesh_id, recipients, n);
	}
	free(sc);
}

/* ---- topic posts (docs/protocol.md §5.2) ---- */

static void topic_cb(void *arg, enum store_topic_status st, const char *topic_id, const char *const *recipients,
		     int n, const char *err)
{
	struct send_ctx *sc = arg;
	struct worker *w = sc->w;
	if (err) {
		log_warn("topic send: not stored", "error", err);
		send_refuse(w, sc->id, SEND_REJ_DB_UNAVAILABLE, NULL);
	} else if (st == TOPIC_NOT_FOUND) {
		send_refuse(w, sc->id, SEND_REJ_NO_SUCH_TOPIC, NULL);
	} else if (st != TOPIC_OK) {
		send_refuse(w, sc->id, SEND_REJ_NO_SUCH_TOPIC, "no such topic: you are not a member of it (topic_join first)");
	} else {
		send_ack(w, sc->id, sc->message_id, NULL);
		char spec[SEND_TARGET_MAX + 1];
		snprintf(spec, sizeof spec, "#%s", topic_id);
		cJSON *pl = cJSON_CreateObject();
		cJSON_AddStringToObject(pl, "messageId", sc->message_id);
		cJSON_AddStringToObject(pl, "priority", msg_priority_names[sc->prio]);
		cJSON_AddStringToObject(pl, "targetSpec", spec);
		audit_event(w, w->me.mesh_id, "message_sent", w->me.member_id, w->me.display_name, pl);
		wake_members(w, w->me.mesh_id, recipients, n);
	}
	free(sc);
}

/* the topic ref (id or name), bodyVersion (1 when absent) and mentions */
static void send_topic(struct worker *w, struct send_ctx *sc, const cJSON *msg, const char *topic, const char *nonce,
		       const char *ct)
{
	struct send_topic_fields tf;
	const char *detail;
	if (msgcheck_send_topic(msg, ct, &tf, &detail) >= 0) {
		send_refuse(w, sc->id, SEND_REJ_MALFORMED, detail);
		free(sc);
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
	struct topic_post p = {sc->message_id, w->me.mesh_id, w->me.member_id, topic,   msg_priority_names[sc->prio],
			       nonce,          ct,            version,          (const char *const *)names, n,
			       idp};
	if (store_topic_post(w->db, &p, topic_cb, sc) != 0) {
		send_refuse(w, sc->id, SEND_REJ_DB_UNAVAILABLE, "broker busy: message not queued, try again");
		free(sc);
	}
	mention_free(names, n);
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
	char key[SHM_MEMBER_ID_MAX + 8];
	snprintf(key, sizeof key, "send:%s", w->me.member_id);
	if (!bucket_take(w->shm, key, w->cfg.send_rate_burst, w->cfg.send_rate_per_min, now_ms())) {
		snprintf(e, sizeof e, rejections[SEND_REJ_RATE_LIMIT].message, w->cfg.send_rate_per_min,
			 w->cfg.send_rate_burst);
		send_refuse(w, id, SEND_REJ_RATE_LIMIT, e);
		return;
	}
	struct send_ctx *sc = calloc(1, sizeof *sc);
	if (!sc)
		log_fatal("out of memory");
	sc->w = w;
	snprintf(sc->id, sizeof sc->id, "%s", id);
	id_new(sc->message_id);
	sc->prio = prio;
	if (target[0] == '#') {
		send_topic(w, sc, msg, target + 1, nonce, ct);
		return;
	}
	char lower[65];
	if (direct) {
		for (int i = 0; i < 64; i++)
			lower[i] = (char)((target[i] >= 'A' && target[i] <= 'F') ? target[i] + 32 : target[i]);
		lower[64] = 0;
		target = lower;
	}
	snprintf(sc->target, sizeof sc->target, "%s", target);
	struct message_row m = {sc->message_id, w->me.mesh_id, w->me.member_id, sc->target,
				msg_priority_names[prio], nonce, ct};
	if (store_message_insert(w->db, &m, send_cb, sc) != 0) {
		send_refuse(w, id, SEND_REJ_DB_UNAVAILABLE, "broker busy: message not queued, try again");
		free(sc);
	}
}
