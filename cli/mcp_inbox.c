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

#include "cli/groupname.h"
#include "cli/mcp_calls.h"
#include "cli/mcp_keys.h"
#include "cli/mcp_out.h"
#include "cli/mcp_rpc.h"
#include "cli/mcp_topics.h"
#include "cli/roster.h"
#include "common/util.h"
#include "proto/box.h"

/* the readable text of a push, malloc'd, or NULL: a topic post under its
 * topic key (mcp_topics.c; *wait when the key is being fetched), a direct
 * message opened with this run's session key, then the member key
 * (§12.2), else an old sender's base64 text, marked unencrypted */
static char *push_text(struct mcp_link *l, const cJSON *push, struct mcp_msg *g, int *wait)
{
	const char *nonce = mcp_str(push, "nonce"), *ct = mcp_str(push, "ciphertext"), *sender = mcp_str(push, "senderPubkey");
	unsigned char spk[32], *plain = NULL;
	size_t n = 0;
	*wait = 0;
	if (!ct)
		return NULL;
	if (mcp_push_topic_id(push))
		return mcp_topics_push_text(l, push, g, wait);
	if (nonce && sender && is_hex(sender, 64) && hex_decode(sender, spk, sizeof spk) == 0 &&
	    (box_decrypt_direct(nonce, ct, spk, l->sess_sk, &plain, &n) == 0 ||
	     box_decrypt_direct(nonce, ct, spk, l->cfg.key.sk, &plain, &n) == 0)) {
		if (utf8_valid(plain, n))
			return (char *)plain;
		sodium_memzero(plain, n);
		free(plain);
		return strdup("(a message that is not UTF-8 text)");
	}
	if (box_b64_decode(ct, &plain, &n) == 0 && utf8_valid(plain, n)) {
		g->unencrypted = 1; /* sent in clear by an old client */
		return (char *)plain;
	}
	free(plain);
	return NULL;
}

/* topic pushes waiting for their key: held, tried again once it came */
static void hold(struct mcp_link *l, const cJSON *push)
{
	struct mcp *m = l->m;
	for (int i = 0; i < MCP_HELD_MAX; i++)
		if (!m->held[i].push) {
			m->held[i].push = cJSON_Duplicate(push, 1);
			m->held[i].link = l->idx;
			return;
		}
	mcp_log("too many topic messages waiting for their key: one left at the broker until the next connection");
}

static void on_push(struct mcp_link *l, const cJSON *j);

static void release_held(struct mcp_link *l, int drop)
{
	struct mcp *m = l->m;
	for (int i = 0; i < MCP_HELD_MAX; i++) {
		cJSON *p = m->held[i].push;
		if (!p || m->held[i].link != l->idx || (!drop && mcp_topics_waiting(l, mcp_push_topic_id(p))))
			continue;
		m->held[i].push = NULL;
		if (!drop)
			on_push(l, p);
		cJSON_Delete(p);
	}
}

/* the session went down: held pushes come again on the next connection */
void mcp_inbox_link_down(struct mcp_link *l)
{
	release_held(l, 1);
	for (unsigned i = 0; i < MCP_TOPICS_MAX; i++)
		if (l->topics[i].state == TOPIC_ASKED)
			l->topics[i].state = TOPIC_UNKNOWN;
}

/* claude/channel: shown in the session at once; still acked only when
 * check_messages hands it over */
static void notify(struct mcp *m, struct mcp_msg *g)
{
	if (g->notified || !m->initialized)
		return; /* before initialized: sent when it comes */
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
	if (m->nlinks > 1)
		cJSON_AddStringToObject(meta, "mesh", m->links[g->link].mesh_label[0] ? m->links[g->link].mesh_label
										 : m->links[g->link].cfg.mesh_id);
	if (g->topic[0]) {
		cJSON_AddStringToObject(meta, "topic", g->topic_name[0] ? g->topic_name : g->topic);
		cJSON_AddStringToObject(meta, "topic_id", g->topic);
	}
	if (g->mention)
		cJSON_AddStringToObject(meta, "mention", "true");
	if (g->unencrypted)
		cJSON_AddStringToObject(meta, "unencrypted", "true");
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
	/* per message: the line's frame, created (< 40), from (< 256), priority (< 8), topic (< 140), flag, then the text */
	size_t textcap = 64 + n * (64 + 40 + 256 + 8 + 140 + 16);
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
		t += sprintf(t, "[%s] from %s%s%.128s (%s%s): %s\n", g->created, g->from, g->topic[0] ? " in #" : "",
			     g->topic[0] ? (g->topic_name[0] ? g->topic_name : g->topic) : "", g->priority,
			     g->unencrypted ? ", unencrypted" : "", g->text);
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "messageId", g->id);
		cJSON_AddStringToObject(o, "from", g->from);
		cJSON_AddStringToObject(o, "fromPubkey", g->from_pubkey);
		cJSON_AddStringToObject(o, "priority", g->priority);
		cJSON_AddStringToObject(o, "createdAt", g->created);
		if (g->topic[0])
			cJSON_AddStringToObject(o, "topic", g->topic_name[0] ? g->topic_name : g->topic);
		if (g->unencrypted)
			cJSON_AddBoolToObject(o, "unencrypted", 1);
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
	struct mcp_msg tmp = {0};
	int wait;
	char *text = push_text(l, j, &tmp, &wait);
	if (wait) {
		hold(l, j);
		return;
	}
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
	*g = tmp;
	g->text = text;
	g->link = l->idx;
	/* who: the member behind the sending connection (§12.2), by name */
	const char *mpk = mcp_str(j, "senderMemberPubkey"), *sname = mcp_str(j, "senderName");
	snprintf(g->id, sizeof g->id, "%s", mid);
	snprintf(g->from_pubkey, sizeof g->from_pubkey, "%s", mpk && *mpk ? mpk : sender);
	if (sname && *sname)
		mcp_name_learn(m, g->from_pubkey, sname);
	const char *nm = mcp_name_of(m, g->from_pubkey);
	snprintf(g->from, sizeof g->from, "%s", nm ? nm : g->from_pubkey);
	snprintf(g->priority, sizeof g->priority, "%s", mcp_str(j, "priority") ? mcp_str(j, "priority") : "next");
	snprintf(g->created, sizeof g->created, "%s", mcp_str(j, "createdAt") ? mcp_str(j, "createdAt") : "");
	snprintf(g->topic, sizeof g->topic, "%s", mcp_push_topic_id(j) ? mcp_push_topic_id(j) : "");
	if (mcp_str(j, "topicId") && mcp_str(j, "topic")) /* the name, known before the topic's key */
		snprintf(g->topic_name, sizeof g->topic_name, "%s", mcp_str(j, "topic"));
	g->notified = 0; /* whenever it arrives: notified once initialized */
	if (nm || !m->initialized) {
		notify(m, g);
	} else if (!m->names_wait) {
		/* a sender we cannot name yet: ask who is there, then notify */
		cJSON *f = roster_request("mcp-names");
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
	if (!c || c->kind != CALL_LIST)
		return;
	while (cJSON_GetArraySize(peers) > 0 && cJSON_GetArraySize(c->acc) < 4096) {
		p = cJSON_DetachItemFromArray(peers, 0);
		cJSON_AddNumberToObject(p, "_link", l->idx);
		cJSON_AddItemToArray(c->acc, p);
	}
	if (--c->waiting > 0)
		return;
	mcp_list_done(m, c);
}

void mcp_inbox_ready(struct mcp_link *l)
{
	l->ready = 1;
	mcp_log("connected to %s as %s", l->sess.url, l->cfg.display_name[0] ? l->cfg.display_name : l->cfg.member_id);
	if (l->m->have_summary)
		mcp_send_summary(l);
	cJSON *f = roster_request("mcp-names"); /* every member, for names and the mesh's label */
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
		cJSON *g = l->group ? groupname_join_frame(l->group) : NULL;
		if (g)
			peersess_send(&l->sess, g);
		cJSON_Delete(g);
		mcp_inbox_ready(l);
	} else if (!strcmp(type, "push")) {
		on_push(l, j);
	} else if (!strcmp(type, "peers_list")) {
		on_peers(l, j);
	} else if (!strcmp(type, "members_list")) {
		mcp_calls_on_members(l, j);
		if (m->names_wait && mcp_str(j, "_reqId") && !strcmp(mcp_str(j, "_reqId"), "mcp-names"))
			mcp_inbox_notify_waiting(m);
	} else if (!strcmp(type, "ack")) {
		mcp_calls_on_ack(m, j);
	} else if (mcp_topics_frame(l, j, type)) {
		release_held(l, 0); /* a topic key came: what waited for it */
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
	for (int i = 0; i < MCP_HELD_MAX; i++) {
		cJSON_Delete(m->held[i].push);
		m->held[i].push = NULL;
	}
	for (int i = 0; i < m->nlinks; i++)
		mcp_topics_wipe(&m->links[i]);
}
