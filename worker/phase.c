/* phase — the dispatch table of the peer protocol after the upgrade
 * (docs/protocol.md §2-§4): before a hello only hello is legal (anything
 * else gets no_hello and the socket stays open); a second hello gets
 * already_authenticated; after hello an unknown type gets unknown_type; a
 * closing connection drops everything. */
#include "worker/phase.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/opaque.h"
#include "db/db.h"
#include "worker/auth.h"
#include "worker/apikey_ws.h"
#include "worker/delivery.h"
#include "worker/groups.h"
#include "worker/members.h"
#include "worker/moderation.h"
#include "worker/msg.h"
#include "worker/peers.h"
#include "worker/peerstatus.h"
#include "worker/send.h"
#include "worker/topic.h"
#include "worker/topic_key.h"
#include "worker/ws.h"

#define BEFORE PHASE_BIT(PHASE_BEFORE_HELLO)
#define AUTHED PHASE_BIT(PHASE_AUTHENTICATED)

/* the error of an authenticated-only message before authentication */
#define NEEDS_HELLO                                                                                                   \
	{                                                                                                             \
		[PHASE_BEFORE_HELLO] = PEER_ERR_NO_HELLO, [PHASE_HELLO_PENDING] = PEER_ERR_NO_HELLO,                  \
		[PHASE_CLOSING] = PEER_ERR_NONE                                                                       \
	}

/* rows: type, legal phases, error elsewhere, handler, own \u0000 refusal */
static const struct phase_row table[] = {
	{"hello", BEFORE,
	 {[PHASE_HELLO_PENDING] = PEER_ERR_ALREADY_AUTHENTICATED, [PHASE_AUTHENTICATED] = PEER_ERR_ALREADY_AUTHENTICATED,
	  [PHASE_CLOSING] = PEER_ERR_NONE},
	 auth_on_hello, 0},
	{"send", AUTHED, NEEDS_HELLO, send_on_msg, 1},
	{"set_status", AUTHED, NEEDS_HELLO, peerstatus_on_set_status, 0},
	{"client_ack", AUTHED, NEEDS_HELLO, delivery_on_client_ack, 0},
	/* topics (§5.2), and the key routes of §5.3 over the socket */
	{"topic_create", AUTHED, NEEDS_HELLO, topic_on_create, 0},
	{"topic_list", AUTHED, NEEDS_HELLO, topic_on_list, 0},
	{"topic_join", AUTHED, NEEDS_HELLO, topic_on_join, 0},
	{"topic_leave", AUTHED, NEEDS_HELLO, topic_on_leave, 0},
	{"topic_mark_read", AUTHED, NEEDS_HELLO, topic_on_mark_read, 0},
	{"topic_members", AUTHED, NEEDS_HELLO, topic_on_members, 0},
	{"topic_history", AUTHED, NEEDS_HELLO, topic_on_history, 0},
	{"topic_key", AUTHED, NEEDS_HELLO, topic_key_on_get, 0},
	{"topic_pending_seals", AUTHED, NEEDS_HELLO, topic_key_on_pending, 0},
	{"topic_seal", AUTHED, NEEDS_HELLO, topic_key_on_seal, 0},
	/* issue 22: a lead's members, a copy that does not open */
	{"topic_add_member", AUTHED, NEEDS_HELLO, topic_on_add_member, 0},
	{"topic_remove_member", AUTHED, NEEDS_HELLO, topic_on_remove_member, 0},
	{"topic_key_discard", AUTHED, NEEDS_HELLO, topic_key_on_discard, 0},
	{"list_peers", AUTHED, NEEDS_HELLO, peers_on_list, 0},
	{"set_summary", AUTHED, NEEDS_HELLO, peers_on_set_summary, 0},
	/* §12.1: a session's hello, signed by its session key under its member's attestation */
	{"session_hello", BEFORE,
	 {[PHASE_HELLO_PENDING] = PEER_ERR_ALREADY_AUTHENTICATED, [PHASE_AUTHENTICATED] = PEER_ERR_ALREADY_AUTHENTICATED,
	  [PHASE_CLOSING] = PEER_ERR_NONE},
	 auth_on_session_hello, 0},
	/* groups, visibility, profile (§12.3), moderation (§12.4), API keys (§12.5) */
	{"join_group", AUTHED, NEEDS_HELLO, groups_on_join, 0},
	{"leave_group", AUTHED, NEEDS_HELLO, groups_on_leave, 0},
	{"set_visible", AUTHED, NEEDS_HELLO, groups_on_set_visible, 0},
	{"set_profile", AUTHED, NEEDS_HELLO, groups_on_set_profile, 0},
	{"set_stats", AUTHED, NEEDS_HELLO, groups_on_set_stats, 0},
	{"kick", AUTHED, NEEDS_HELLO, moderation_on_kick, 0},
	{"disconnect", AUTHED, NEEDS_HELLO, moderation_on_disconnect, 0},
	{"ban", AUTHED, NEEDS_HELLO, moderation_on_ban, 0},
	{"unban", AUTHED, NEEDS_HELLO, moderation_on_unban, 0},
	{"list_bans", AUTHED, NEEDS_HELLO, moderation_on_list_bans, 0},
	{"apikey_create", AUTHED, NEEDS_HELLO, apikey_ws_on_create, 0},
	{"apikey_list", AUTHED, NEEDS_HELLO, apikey_ws_on_list, 0},
	{"apikey_revoke", AUTHED, NEEDS_HELLO, apikey_ws_on_revoke, 0},
	/* issue 20: every member with its pubkey, for per-member broadcasts and names */
	{"list_members", AUTHED, NEEDS_HELLO, members_on_list, 0},
	/* last: no type, or one not listed above */
	{NULL, 0,
	 {[PHASE_BEFORE_HELLO] = PEER_ERR_NO_HELLO, [PHASE_HELLO_PENDING] = PEER_ERR_NO_HELLO,
	  [PHASE_AUTHENTICATED] = PEER_ERR_UNKNOWN_TYPE, [PHASE_CLOSING] = PEER_ERR_NONE},
	 NULL, 0},
};
#define NROWS (sizeof table / sizeof table[0])

const struct phase_row *phase_table(size_t *n)
{
	*n = NROWS;
	return table;
}

struct phase_verdict phase_lookup(const char *type, enum phase phase)
{
	const struct phase_row *r = &table[NROWS - 1];
	for (size_t i = 0; type && i + 1 < NROWS; i++)
		if (strcmp(type, table[i].type) == 0) {
			r = &table[i];
			break;
		}
	if ((unsigned)phase >= PHASE_COUNT)
		return (struct phase_verdict){NULL, PEER_ERR_NONE, 0};
	if (r->handler && (r->legal & PHASE_BIT(phase)))
		return (struct phase_verdict){r->handler, PEER_ERR_NONE, r->own_nul_refusal};
	return (struct phase_verdict){NULL, r->refused[phase], 0};
}

/* §12.7: the request's _reqId (a string of at most 128 bytes; anything else
 * is ignored), in w->req_id on an authenticated connection while its frame
 * is handled: ws.c puts it in every reply and error sent meanwhile (errors
 * also as id), so no handler has to.  Handlers that answer later (from a
 * database callback) keep a copy of w->req_id. */
static void req_id_take(struct worker *w, const cJSON *msg)
{
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(msg, "_reqId");
	w->req_id[0] = 0;
	if (w->phase == PHASE_AUTHENTICATED && cJSON_IsString(r) && r->valuestring[0] &&
	    strlen(r->valuestring) < sizeof w->req_id)
		memcpy(w->req_id, r->valuestring, strlen(r->valuestring) + 1);
}

/* an unknown_type error held behind the statements of earlier requests */
struct late_error {
	struct worker *w;
	char req_id[sizeof((struct worker *)0)->req_id];
	char message[64 + PHASE_TYPE_SHOWN];
	char *id; /* NULL when none */
};

static void late_error_cb(void *arg, const PGresult *res, const char *err)
{
	(void)res;
	(void)err; /* sent whatever the no-op statement did */
	struct late_error *e = arg;
	struct worker *w = e->w;
	char saved[sizeof w->req_id];
	memcpy(saved, w->req_id, sizeof saved);
	memcpy(w->req_id, e->req_id, sizeof w->req_id);
	ws_send_error(w, "unknown_type", e->message, e->id);
	memcpy(w->req_id, saved, sizeof w->req_id);
	free(e->id);
	free(e);
}

/* unknown_type names the type (§12.7 rule 2); the id echoed as before.
 * Rule 4 (replies in request order): while statements of earlier requests
 * are queued on the connection (list_peers, groups, moderation and topic
 * requests answer from their callbacks), the error waits behind them as the
 * callback of a no-op statement (callbacks run in FIFO order). */
static void unknown_type(struct worker *w, const cJSON *msg)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(msg, "type");
	char m[64 + PHASE_TYPE_SHOWN];
	snprintf(m, sizeof m, "unknown message type: %.*s", PHASE_TYPE_SHOWN,
		 cJSON_IsString(t) ? t->valuestring : "(none)");
	const char *id = msg_str(msg, "id");
	if (w->db && db_connected(w->db) && db_pending(w->db) > 0) {
		struct late_error *e = calloc(1, sizeof *e);
		if (!e || (id && !(e->id = strdup(id))))
			log_fatal("out of memory");
		e->w = w;
		memcpy(e->req_id, w->req_id, sizeof e->req_id);
		memcpy(e->message, m, sizeof e->message);
		if (db_query(w->db, "SELECT 1", 0, NULL, late_error_cb, e) == 0)
			return;
		free(e->id);
		free(e);
	}
	ws_send_error(w, "unknown_type", m, id);
}

void phase_dispatch(struct worker *w, const char *text, size_t len)
{
	cJSON *msg = cJSON_ParseWithLength(text, len);
	if (!msg || !cJSON_IsObject(msg)) {
		ws_send_peer_error(w, PEER_ERR_BAD_JSON, NULL);
		cJSON_Delete(msg);
		return;
	}
	req_id_take(w, msg);
	struct phase_verdict v = phase_lookup(msg_str(msg, "type"), w->phase);
	/* a string with \u0000 reaches the handlers cut at the NUL: nothing may
	 * store or forward it.  A row that says so refuses it itself (send: an
	 * ack the client waits for); every other frame gets this error */
	w->frame_nul = v.handler && json_has_nul_escape(text, len);
	if (w->frame_nul && !v.own_nul_refusal)
		ws_send_peer_error(w, PEER_ERR_NUL_IN_STRING, msg_str(msg, "id"));
	else if (v.handler)
		v.handler(w, msg);
	else if (v.error == PEER_ERR_UNKNOWN_TYPE)
		unknown_type(w, msg);
	else
		ws_send_peer_error(w, v.error, msg_str(msg, "id"));
	w->frame_nul = 0;
	w->req_id[0] = 0;
	cJSON_Delete(msg);
}
