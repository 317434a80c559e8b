/* mcp_calls — the state under the tools of `meshctl mcp`: the pubkey ->
 * name cache (filled by list_peers replies and peer events), the tool calls
 * that wait for a broker reply (by tag) and how each ends, the frames sent
 * on the sessions (send, list_peers, client_ack, set_summary), and the
 * recently acked message ids that drop redeliveries. */
#include "cli/mcp_calls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sodium.h>

#include "cli/mcp_out.h"
#include "cli/roster.h"
#include "common/util.h"
#include "proto/box.h"

int mcp_link_send(struct mcp_link *l, const cJSON *frame)
{
	return peersess_send(&l->sess, frame);
}

/* ------------------------------------------------------------ names */

const char *mcp_name_of(struct mcp *m, const char *pubkey)
{
	for (size_t i = 0; i < MCP_NAMES_MAX; i++)
		if (m->names[i].pubkey[0] && !strcmp(m->names[i].pubkey, pubkey))
			return m->names[i].name;
	return NULL;
}

void mcp_name_learn(struct mcp *m, const char *pubkey, const char *name)
{
	if (!pubkey || !name || !*name || strlen(pubkey) != 64)
		return;
	for (size_t i = 0; i < MCP_NAMES_MAX; i++)
		if (!strcmp(m->names[i].pubkey, pubkey)) {
			snprintf(m->names[i].name, sizeof m->names[i].name, "%s", name);
			return;
		}
	struct mcp_name *n = &m->names[m->names_next++ % MCP_NAMES_MAX];
	snprintf(n->pubkey, sizeof n->pubkey, "%s", pubkey);
	snprintf(n->name, sizeof n->name, "%s", name);
}

/* ------------------------------------------------------------ calls */

struct mcp_call *mcp_call_new(struct mcp *m, enum mcp_call_kind kind, const cJSON *id)
{
	for (int i = 0; i < MCP_CALLS_MAX; i++) {
		struct mcp_call *c = &m->calls[i];
		if (c->kind != CALL_NONE)
			continue;
		memset(c, 0, sizeof *c);
		c->kind = kind;
		c->id = cJSON_Duplicate(id, 1);
		snprintf(c->tag, sizeof c->tag, "mcp-%u-%08x-%u", (unsigned)getpid(), m->tag_salt, ++m->tag_seq);
		c->deadline = mono_ms() + MCP_CALL_MS;
		return c;
	}
	return NULL;
}

void mcp_call_end(struct mcp_call *c, cJSON *result)
{
	if (result)
		mcp_reply(c->id, result);
	cJSON_Delete(c->id);
	cJSON_Delete(c->acc);
	free(c->to);
	if (c->text)
		sodium_memzero(c->text, strlen(c->text));
	free(c->text);
	topicbody_key_wipe(&c->key);
	memset(c, 0, sizeof *c);
}

struct mcp_call *mcp_call_by_tag(struct mcp *m, const char *tag)
{
	for (int i = 0; tag && i < MCP_CALLS_MAX; i++)
		if (m->calls[i].kind != CALL_NONE && !strcmp(m->calls[i].tag, tag))
			return &m->calls[i];
	return NULL;
}

int mcp_ready_links(struct mcp *m)
{
	int n = 0;
	for (int i = 0; i < m->nlinks; i++)
		n += m->links[i].ready;
	return n;
}

/* list_peers on every connected mesh; the call collects the answers */
int mcp_ask_peers(struct mcp *m, struct mcp_call *c, const char *scope)
{
	c->acc = cJSON_CreateArray();
	for (int i = 0; i < m->nlinks; i++) {
		struct mcp_link *l = &m->links[i];
		if (!l->ready)
			continue;
		cJSON *f = cJSON_CreateObject();
		cJSON_AddStringToObject(f, "type", "list_peers");
		cJSON_AddStringToObject(f, "_reqId", c->tag);
		if (scope)
			cJSON_AddStringToObject(f, "scope", scope);
		if (mcp_link_send(l, f) == 0)
			c->waiting++;
		cJSON_Delete(f);
	}
	return c->waiting;
}

/* ------------------------------------------------------------ send_message */

/* list_members on link (-1: every ready session) for c; the number asked */
int mcp_ask_members(struct mcp *m, struct mcp_call *c, int link)
{
	c->acc = cJSON_CreateArray();
	for (int i = 0; i < m->nlinks; i++) {
		if (!m->links[i].ready || (link >= 0 && i != link))
			continue;
		cJSON *f = roster_request(c->tag);
		if (f && mcp_link_send(&m->links[i], f) == 0)
			c->waiting++;
		cJSON_Delete(f);
	}
	return c->waiting;
}

void mcp_do_send(struct mcp *m, struct mcp_call *c, int link, const char *target, const char *label)
{
	struct mcp_link *l = &m->links[link];
	if (!strcmp(target, "*") || !strcmp(target, "@all")) {
		/* one envelope per member: the members first */
		c->kind = CALL_BCAST;
		c->link = link;
		if (!mcp_ask_members(m, c, link))
			mcp_call_end(c, mcp_result(1, "not connected to the broker; try again in a few seconds"));
		return;
	}
	if (target[0] == '@') {
		/* the members the broker resolves @group to now, then one sealed
		 * envelope each, as for * */
		c->kind = CALL_BCAST;
		c->link = link;
		c->acc = cJSON_CreateArray();
		cJSON *f = roster_group_request(c->tag, target);
		if (f && mcp_link_send(l, f) == 0)
			c->waiting = 1;
		cJSON_Delete(f);
		if (!c->waiting)
			mcp_call_end(c, mcp_result(1, "not connected to the broker; try again in a few seconds"));
		return;
	}
	/* a member or session pubkey: boxed with this run's session key, which
	 * the push names as senderPubkey */
	cJSON *f = roster_direct_frame(target, l->sess_sk, c->text, c->priority, c->tag);
	if (!f) {
		mcp_call_end(c, mcp_result(1, "cannot encrypt for %s: not an ed25519 public key", target));
		return;
	}
	int r = mcp_link_send(l, f);
	cJSON_Delete(f);
	if (r != 0) {
		mcp_call_end(c, mcp_result(1, "not connected to the broker; try again in a few seconds"));
		return;
	}
	free(c->to);
	c->to = strdup(label);
	c->kind = CALL_SEND;
	c->link = link;
	c->deadline = mono_ms() + MCP_CALL_MS;
}

/* the members gathered for a name: exactly one member, else an error
 * naming the candidates */
void mcp_resolve_done(struct mcp *m, struct mcp_call *c)
{
	char pk[65], why[2048];
	int link = 0;
	if (roster_resolve(c->acc, c->to, pk, &link, why, sizeof why) != 0 || link < 0 || link >= m->nlinks) {
		mcp_call_end(c, mcp_result(1, "%s", why));
		return;
	}
	char label[300];
	snprintf(label, sizeof label, "%s", c->to);
	mcp_do_send(m, c, link, pk, label);
}

/* the members for a broadcast: one sealed envelope each, in one batch */
static void bcast_members(struct mcp *m, struct mcp_call *c)
{
	struct mcp_link *l = &m->links[c->link];
	cJSON *frames = roster_broadcast(c->acc, l->sess_sk, c->text, c->priority, c->tag), *f;
	if (!frames)
		return mcp_call_end(c, mcp_result(1, "cannot encrypt the broadcast (a member key is not an ed25519 key)"));
	int n = 0;
	cJSON_ArrayForEach(f, frames) n += mcp_link_send(l, f) == 0;
	int total = cJSON_GetArraySize(frames);
	cJSON_Delete(frames);
	if (total == 0)
		return mcp_call_end(c, mcp_result(0, "%s: no other member to send to, nothing sent",
						  c->to && c->to[0] == '@' ? c->to : "*"));
	if (n < total)
		return mcp_call_end(c, mcp_result(1, "the connection dropped while sending (%d of %d envelopes queued); "
						   "try again", n, total));
	c->waiting = total;
	c->deadline = mono_ms() + MCP_CALL_MS;
}

void mcp_calls_on_members(struct mcp_link *l, cJSON *j)
{
	struct mcp *m = l->m;
	cJSON *members = cJSON_GetObjectItemCaseSensitive(j, "members"), *p;
	cJSON_ArrayForEach(p, members) mcp_name_learn(m, mcp_str(p, "pubkey"), mcp_str(p, "displayName"));
	if (mcp_str(j, "mesh"))
		snprintf(l->mesh_label, sizeof l->mesh_label, "%s", mcp_str(j, "mesh"));
	struct mcp_call *c = mcp_call_by_tag(m, mcp_str(j, "_reqId"));
	if (!c || (c->kind != CALL_RESOLVE && c->kind != CALL_BCAST) || c->waiting <= 0)
		return;
	if (c->kind == CALL_BCAST && c->to && c->to[0] == '@' && strcmp(c->to, "@all") && !mcp_str(j, "group"))
		return mcp_call_end(c, mcp_result(1, "this broker cannot list a group's members (list_members{group}); "
						   "%s was not sent, so that it does not go in clear or to everyone", c->to));
	while (cJSON_GetArraySize(members) > 0 && cJSON_GetArraySize(c->acc) < 4096) {
		p = cJSON_DetachItemFromArray(members, 0);
		cJSON_AddNumberToObject(p, "_link", l->idx);
		cJSON_AddItemToArray(c->acc, p);
	}
	if (--c->waiting > 0)
		return;
	if (c->kind == CALL_RESOLVE)
		mcp_resolve_done(m, c);
	else
		bcast_members(m, c);
}

/* an ack: of a send, or of one envelope of a broadcast ("<tag>-<n>") */
void mcp_calls_on_ack(struct mcp *m, const cJSON *j)
{
	const char *id = mcp_str(j, "id"), *mid = mcp_str(j, "messageId"), *err = mcp_str(j, "error");
	int queued = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "queued"));
	struct mcp_call *c = mcp_call_by_tag(m, id);
	if (c && c->kind == CALL_SEND) {
		mcp_call_end(c, queued ? mcp_result(0, "sent to %s (message %s)", c->to, mid ? mid : "?")
				       : mcp_result(1, "the broker refused the message: %s", err ? err : "not queued"));
		return;
	}
	const char *dash = id ? strrchr(id, '-') : NULL;
	char tag[sizeof c->tag];
	if (!dash || (size_t)(dash - id) >= sizeof tag)
		return;
	memcpy(tag, id, (size_t)(dash - id));
	tag[dash - id] = 0;
	c = mcp_call_by_tag(m, tag);
	if (!c || c->kind != CALL_BCAST || c->waiting <= 0)
		return;
	c->acked++;
	c->queued += queued;
	if (!queued)
		mcp_log("broadcast: an envelope was refused: %s", err ? err : "not queued");
	if (--c->waiting == 0)
		mcp_call_end(c, mcp_result(c->queued < c->acked, "sent to %s (%d member%s, one sealed envelope each%s)",
					   c->to && c->to[0] == '@' ? c->to : "*", c->acked, c->acked == 1 ? "" : "s",
					   c->queued < c->acked ? "; some were refused" : ""));
}

/* ------------------------------------------------------------ list_peers */

void mcp_list_done(struct mcp *m, struct mcp_call *c)
{
	int n = cJSON_GetArraySize(c->acc);
	size_t cap = 128 + (size_t)n * 1024, len = 0;
	char *text = malloc(cap);
	if (!text)
		return mcp_call_end(c, mcp_result(1, "out of memory"));
	len += (size_t)snprintf(text, cap, "%d live session%s:\n", n, n == 1 ? "" : "s");
	cJSON *q;
	cJSON_ArrayForEach(q, c->acc)
	{
		const char *sum = mcp_str(q, "summary"), *repo = mcp_str(q, "repo");
		const cJSON *li = cJSON_GetObjectItemCaseSensitive(q, "_link");
		const struct mcp_link *l = cJSON_IsNumber(li) && li->valueint >= 0 && li->valueint < m->nlinks
						   ? &m->links[li->valueint] : NULL;
		const char *mesh = l ? (l->mesh_label[0] ? l->mesh_label : l->cfg.mesh_id) : "";
		if (l)
			cJSON_AddStringToObject(q, "mesh", mesh);
		if (len + 1024 >= cap)
			continue;
		/* one line a session: the mesh when there are several, the session
		 * key to address this session alone, where it works */
		len += (size_t)snprintf(text + len, cap - len,
					"- %s%.64s%s%s [%s] session pubkey %.64s, cwd %.200s%s%.200s on %.64s%s%.200s\n",
					m->nlinks > 1 ? "[" : "", m->nlinks > 1 ? mesh : "", m->nlinks > 1 ? "] " : "",
					mcp_str(q, "displayName") ? mcp_str(q, "displayName") : "?",
					mcp_str(q, "status") ? mcp_str(q, "status") : "?",
					mcp_str(q, "pubkey") ? mcp_str(q, "pubkey") : "",
					mcp_str(q, "cwd") ? mcp_str(q, "cwd") : "", repo && *repo ? ", repo " : "",
					repo ? repo : "", mcp_str(q, "hostname") ? mcp_str(q, "hostname") : "",
					sum && *sum ? " — " : "", sum ? sum : "");
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(q, "self")) && len > 1)
			len += (size_t)snprintf(text + len - 1, cap - len + 1, " (you)\n") - 1;
	}
	cJSON *r = mcp_result(0, "%s", "");
	cJSON *item = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "content"), 0);
	cJSON_ReplaceItemInObjectCaseSensitive(item, "text", cJSON_CreateString(text));
	free(text);
	cJSON *sc = cJSON_AddObjectToObject(r, "structuredContent");
	cJSON *peers = cJSON_Duplicate(c->acc, 1);
	cJSON_ArrayForEach(q, peers) cJSON_DeleteItemFromObjectCaseSensitive(q, "_link");
	cJSON_AddItemToObject(sc, "peers", peers);
	mcp_call_end(c, r);
}

/* ------------------------------------------------------------ check_messages */

int mcp_was_acked(struct mcp *m, const char *id)
{
	for (size_t i = 0; i < MCP_ACKED_MAX; i++)
		if (!strcmp(m->acked[i], id))
			return 1;
	return 0;
}

void mcp_send_ack(struct mcp_link *l, const char *message_id)
{
	cJSON *f = cJSON_CreateObject();
	cJSON_AddStringToObject(f, "type", "client_ack");
	cJSON_AddStringToObject(f, "brokerMessageId", message_id);
	mcp_link_send(l, f);
	cJSON_Delete(f);
}

/* ------------------------------------------------------------ status, summary */

int mcp_send_all(struct mcp *m, cJSON *f)
{
	int n = 0;
	for (int i = 0; i < m->nlinks; i++)
		if (m->links[i].ready && mcp_link_send(&m->links[i], f) == 0)
			n++;
	return n;
}

void mcp_send_summary(struct mcp_link *l)
{
	cJSON *f = cJSON_CreateObject();
	cJSON_AddStringToObject(f, "type", "set_summary");
	cJSON_AddStringToObject(f, "summary", l->m->summary);
	mcp_link_send(l, f);
	cJSON_Delete(f);
}

/* a session went down: what waited on it ends now, not after MCP_CALL_MS */
void mcp_calls_link_down(struct mcp *m, int link)
{
	for (int i = 0; i < MCP_CALLS_MAX; i++) {
		struct mcp_call *c = &m->calls[i];
		if (c->kind == CALL_SEND && c->link == link)
			mcp_call_end(c, mcp_result(1, "the connection to the broker dropped before it acknowledged "
						      "the message (reconnecting); it may not have been sent: try again"));
		else if (c->kind == CALL_BCAST && c->link == link)
			mcp_call_end(c, mcp_result(1, "the connection to the broker dropped during the broadcast "
						      "(reconnecting); some members may not have it: try again"));
		else if (c->kind >= CALL_TLIST && c->link == link)
			mcp_call_end(c, mcp_result(1, "the connection to the broker dropped (reconnecting); try again"));
		else if ((c->kind == CALL_LIST || c->kind == CALL_RESOLVE) && c->waiting > 0 && --c->waiting == 0)
			mcp_call_end(c, mcp_result(1, "not connected to the broker (reconnecting); try again shortly"));
	}
}
