/* mcp_inbox — the frames `meshctl mcp` gets from the broker: the inbox of
 * received messages (bounded; a message is client_acked only once a
 * check_messages reply carrying it was written to stdout, so a killed server
 * loses nothing; a redelivery of one already handed over is acked again and
 * dropped), claude/channel notifications, peers_list and ack replies that
 * finish tool calls, and the hello_ack that makes a session ready. */
#include "cli/mcp_inbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cli/mcp_calls.h"
#include "cli/mcp_keys.h"
#include "cli/mcp_out.h"
#include "cli/mcp_rpc.h"
#include "common/util.h"
#include "proto/box.h"

/* the readable text of a push, malloc'd, or NULL */
static char *push_text(const struct mcp_link *l, const cJSON *push)
{
	const char *nonce = mcp_str(push, "nonce"), *ct = mcp_str(push, "ciphertext"), *sender = mcp_str(push, "senderPubkey");
	const cJSON *bv = cJSON_GetObjectItemCaseSensitive(push, "bodyVersion");
	unsigned char spk[32], *plain = NULL;
	size_t n = 0;
	if (!ct)
		return NULL;
	if (!cJSON_GetObjectItemCaseSensitive(push, "topic") && nonce && sender && is_hex(sender, 64) &&
	    hex_decode(sender, spk, sizeof spk) == 0 &&
	    box_decrypt_direct(nonce, ct, spk, l->cfg.key.sk, &plain, &n) == 0) {
		if (utf8_valid(plain, n))
			return (char *)plain;
		sodium_memzero(plain, n);
		free(plain);
		return strdup("(a message that is not UTF-8 text)");
	}
	if (cJSON_IsNumber(bv) && bv->valuedouble == 2)
		return strdup("(an encrypted topic message: this client has no topic key)");
	if (box_b64_decode(ct, &plain, &n) == 0 && utf8_valid(plain, n))
		return (char *)plain;
	free(plain);
	return NULL;
}

/* claude/channel: shown in the session at once; still acked only when
 * check_messages hands it over */
static void notify(struct mcp *m, struct mcp_msg *g)
{
	if (g->notified)
		return;
	g->notified = 1;
	const char *nm = mcp_name_of(m, g->from_pubkey);
	if (nm)
		snprintf(g->from, sizeof g->from, "%s", nm);
	cJSON *p = cJSON_CreateObject();
	cJSON_AddStringToObject(p, "content", g->text);
	cJSON *meta = cJSON_AddObjectToObject(p, "meta");
	cJSON_AddStringToObject(meta, "from", g->from);
	cJSON_AddStringToObject(meta, "from_pubkey", g->from_pubkey);
	cJSON_AddStringToObject(meta, "priority", g->priority);
	cJSON_AddStringToObject(meta, "message_id", g->id);
	mcp_write(mcp_rpc_notification("notifications/claude/channel", p));
}

/* the names refresh came back, or waited long enough */
void mcp_inbox_notify_waiting(struct mcp *m)
{
	m->names_wait = 0;
	for (size_t i = 0; i < m->ninbox; i++)
		notify(m, &m->inbox[i]);
}

void mcp_inbox_check(struct mcp *m, const cJSON *id)
{
	size_t n = m->ninbox < MCP_CHECK_MAX ? m->ninbox : MCP_CHECK_MAX;
	cJSON *r = cJSON_CreateObject();
	cJSON *content = cJSON_AddArrayToObject(r, "content");
	cJSON *sc = cJSON_AddObjectToObject(r, "structuredContent");
	cJSON *arr = cJSON_AddArrayToObject(sc, "messages");
	/* per message: the line's frame, created (< 40), from (< 256), priority (< 8), then the text */
	size_t textcap = 64 + n * (64 + 40 + 256 + 8);
	for (size_t i = 0; i < n; i++)
		textcap += strlen(m->inbox[i].text);
	char *text = malloc(textcap), *t = text;
	if (!text) {
		cJSON_Delete(r);
		return mcp_reply(id, mcp_result(1, "out of memory"));
	}
	t += sprintf(t, n ? "%zu message%s:\n" : "no new messages", n, n == 1 ? "" : "s");
	for (size_t i = 0; i < n; i++) {
		struct mcp_msg *g = &m->inbox[i];
		const char *nm = mcp_name_of(m, g->from_pubkey);
		if (nm) /* learnt since it arrived */
			snprintf(g->from, sizeof g->from, "%s", nm);
		t += sprintf(t, "[%s] from %s (%s): %s\n", g->created, g->from, g->priority, g->text);
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "messageId", g->id);
		cJSON_AddStringToObject(o, "from", g->from);
		cJSON_AddStringToObject(o, "fromPubkey", g->from_pubkey);
		cJSON_AddStringToObject(o, "priority", g->priority);
		cJSON_AddStringToObject(o, "createdAt", g->created);
		if (g->topic[0])
			cJSON_AddStringToObject(o, "topic", g->topic);
		cJSON_AddStringToObject(o, "text", g->text);
		cJSON_AddItemToArray(arr, o);
	}
	cJSON *item = cJSON_CreateObject();
	cJSON_AddStringToObject(item, "type", "text");
	cJSON_AddStringToObject(item, "text", text);
	cJSON_AddItemToArray(content, item);
	cJSON_AddBoolToObject(r, "isError", 0);
	free(text);
	mcp_reply(id, r); /* written and flushed: now they are Claude's */
	for (size_t i = 0; i < n; i++) {
		struct mcp_msg *g = &m->inbox[i];
		mcp_send_ack(&m->links[g->link], g->id);
		snprintf(m->acked[m->acked_next++ % MCP_ACKED_MAX], sizeof m->acked[0], "%s", g->id);
		sodium_memzero(g->text, strlen(g->text));
		free(g->text);
	}
	if (n) {
		memmove(m->inbox, m->inbox + n, (m->ninbox - n) * sizeof *m->inbox);
		m->ninbox -= n;
	}
}

static void on_push(struct mcp_link *l, const cJSON *j)
{
	struct mcp *m = l->m;
	const char *mid = mcp_str(j, "messageId"), *sender = mcp_str(j, "senderPubkey");
	const char *sub = mcp_str(j, "subtype");
	if (sub && !strcmp(sub, "system")) {
		const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "eventData"), *e;
		mcp_name_learn(m, mcp_str(d, "pubkey"), mcp_str(d, "displayName"));
		cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(d, "events"))
			mcp_name_learn(m, mcp_str(e, "pubkey"), mcp_str(e, "displayName"));
		return;
	}
	if (!mid || strlen(mid) >= sizeof m->inbox[0].id || !sender)
		return;
	if (mcp_was_acked(m, mid)) {
		mcp_send_ack(l, mid); /* a redelivery of what Claude already has */
		return;
	}
	for (size_t i = 0; i < m->ninbox; i++)
		if (!strcmp(m->inbox[i].id, mid))
			return; /* redelivered after the lease: we hold it already */
	if (m->ninbox >= MCP_INBOX_MAX) {
		mcp_log("inbox full (%d messages): leaving the rest at the broker until check_messages",
			MCP_INBOX_MAX);
		return;
	}
	char *text = push_text(l, j);
	if (!text) {
		mcp_log("a message could not be read (not for this key?); dropped");
		mcp_send_ack(l, mid);
		return;
	}
	if (!m->inbox) {
		m->inbox = calloc(MCP_INBOX_MAX, sizeof *m->inbox);
		if (!m->inbox) {
			free(text);
			return;
		}
	}
	struct mcp_msg *g = &m->inbox[m->ninbox++];
	memset(g, 0, sizeof *g);
	g->text = text;
	g->link = l->idx;
	snprintf(g->id, sizeof g->id, "%s", mid);
	snprintf(g->from_pubkey, sizeof g->from_pubkey, "%s", sender);
	const char *nm = mcp_name_of(m, sender);
	snprintf(g->from, sizeof g->from, "%s", nm ? nm : sender);
	snprintf(g->priority, sizeof g->priority, "%s", mcp_str(j, "priority") ? mcp_str(j, "priority") : "next");
	snprintf(g->created, sizeof g->created, "%s", mcp_str(j, "createdAt") ? mcp_str(j, "createdAt") : "");
	snprintf(g->topic, sizeof g->topic, "%s", mcp_str(j, "topic") ? mcp_str(j, "topic") : "");
	g->notified = !m->initialized;
	if (nm || !m->initialized) {
		notify(m, g);
	} else if (!m->names_wait) {
		/* a sender we cannot name yet: ask who is there, then notify */
		cJSON *f = cJSON_CreateObject();
		cJSON_AddStringToObject(f, "type", "list_peers");
		cJSON_AddStringToObject(f, "_reqId", "mcp-names");
		mcp_link_send(l, f);
		cJSON_Delete(f);
		m->names_wait = mono_ms() + MCP_NAMES_WAIT_MS;
	}
}

static void on_peers(struct mcp_link *l, cJSON *j)
{
	struct mcp *m = l->m;
	cJSON *peers = cJSON_GetObjectItemCaseSensitive(j, "peers"), *p;
	cJSON_ArrayForEach(p, peers) mcp_name_learn(m, mcp_str(p, "pubkey"), mcp_str(p, "displayName"));
	if (m->names_wait && mcp_str(j, "_reqId") && !strcmp(mcp_str(j, "_reqId"), "mcp-names"))
		mcp_inbox_notify_waiting(m);
	struct mcp_call *c = mcp_call_by_tag(m, mcp_str(j, "_reqId"));
	if (!c || (c->kind != CALL_LIST && c->kind != CALL_RESOLVE))
		return;
	while (cJSON_GetArraySize(peers) > 0 && cJSON_GetArraySize(c->acc) < 4096) {
		p = cJSON_DetachItemFromArray(peers, 0);
		cJSON_AddNumberToObject(p, "_link", l->idx);
		cJSON_AddItemToArray(c->acc, p);
	}
	if (--c->waiting > 0)
		return;
	if (c->kind == CALL_LIST)
		mcp_list_done(m, c);
	else
		mcp_resolve_done(m, c);
}

void mcp_inbox_ready(struct mcp_link *l)
{
	l->ready = 1;
	mcp_log("connected to %s as %s", l->sess.url, l->cfg.display_name[0] ? l->cfg.display_name : l->cfg.member_id);
	if (l->m->have_summary)
		mcp_send_summary(l);
	cJSON *f = cJSON_CreateObject(); /* who is there, for the names of senders */
	cJSON_AddStringToObject(f, "type", "list_peers");
	cJSON_AddStringToObject(f, "_reqId", "mcp-names");
	mcp_link_send(l, f);
	cJSON_Delete(f);
}

void mcp_inbox_frame(struct mcp_link *l, const char *text, size_t len)
{
	struct mcp *m = l->m;
	cJSON *j = cJSON_ParseWithLength(text, len);
	const char *type = cJSON_IsObject(j) ? mcp_str(j, "type") : NULL;
	if (!type || mcp_keys_frame(l, j, type)) {
		cJSON_Delete(j);
		return;
	}
	if (!strcmp(type, "hello_ack")) {
		mcp_inbox_ready(l);
	} else if (!strcmp(type, "push")) {
		on_push(l, j);
	} else if (!strcmp(type, "peers_list")) {
		on_peers(l, j);
	} else if (!strcmp(type, "ack")) {
		struct mcp_call *c = mcp_call_by_tag(m, mcp_str(j, "id"));
		if (c && c->kind == CALL_SEND) {
			if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "queued")))
				mcp_call_end(c, mcp_result(0, "sent to %s (message %s)", c->to, mcp_str(j, "messageId") ? mcp_str(j, "messageId") : "?"));
			else
				mcp_call_end(c, mcp_result(1, "the broker refused the message: %s",
							mcp_str(j, "error") ? mcp_str(j, "error") : "not queued"));
		}
	} else if (!strcmp(type, "error")) {
		struct mcp_call *c = mcp_call_by_tag(m, mcp_str(j, "id"));
		const char *msg = mcp_str(j, "message"), *code = mcp_str(j, "code");
		if (c)
			mcp_call_end(c, mcp_result(1, "the broker refused: %s", msg ? msg : code ? code : "error"));
		else if (!l->ready)
			mcp_log("hello refused: %s (%s)", code ? code : "error", msg ? msg : "");
		else
			mcp_log("broker error: %s (%s)", code ? code : "error", msg ? msg : "");
	}
	cJSON_Delete(j);
}

void mcp_inbox_free(struct mcp *m)
{
	for (size_t i = 0; i < m->ninbox; i++) {
		sodium_memzero(m->inbox[i].text, strlen(m->inbox[i].text));
		free(m->inbox[i].text);
	}
	free(m->inbox);
	m->inbox = NULL;
	m->ninbox = 0;
}
