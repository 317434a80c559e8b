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
		snprintf(c->tag, sizeof c->tag, "mcp-%u-%u", (unsigned)getpid(), ++m->tag_seq);
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
	free(c->text);
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

void mcp_do_send(struct mcp *m, struct mcp_call *c, int link, const char *target, const char *label)
{
	struct mcp_link *l = &m->links[link];
	char *nonce = NULL, *ct = NULL;
	if (is_hex(target, 64)) {
		unsigned char rpk[32];
		if (hex_decode(target, rpk, sizeof rpk) != 0 ||
		    box_encrypt_direct(c->text, strlen(c->text), rpk, l->cfg.key.sk, &nonce, &ct) != 0) {
			mcp_call_end(c, mcp_result(1, "cannot encrypt for %s: not an ed25519 public key", target));
			return;
		}
	} else {
		unsigned char rnd[24];
		randombytes_buf(rnd, sizeof rnd);
		nonce = box_b64_encode(rnd, sizeof rnd);
		ct = box_b64_encode((const unsigned char *)c->text, strlen(c->text));
	}
	cJSON *f = cJSON_CreateObject();
	cJSON_AddStringToObject(f, "type", "send");
	cJSON_AddStringToObject(f, "id", c->tag);
	cJSON_AddStringToObject(f, "targetSpec", target);
	cJSON_AddStringToObject(f, "priority", c->priority);
	cJSON_AddStringToObject(f, "nonce", nonce ? nonce : "");
	cJSON_AddStringToObject(f, "ciphertext", ct ? ct : "");
	if (target[0] == '#')
		cJSON_AddNumberToObject(f, "bodyVersion", 1);
	int r = nonce && ct ? mcp_link_send(l, f) : -1;
	cJSON_Delete(f);
	free(nonce);
	free(ct);
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

/* the peers gathered for a name: exactly one member (by pubkey) or an error
 * listing the candidates */
void mcp_resolve_done(struct mcp *m, struct mcp_call *c)
{
	char pk[65] = "", cands[2048] = "";
	int link = -1, hits = 0;
	const cJSON *p;
	cJSON_ArrayForEach(p, c->acc)
	{
		const char *name = mcp_str(p, "displayName"), *pub = mcp_str(p, "pubkey");
		const cJSON *self = cJSON_GetObjectItemCaseSensitive(p, "self");
		const cJSON *li = cJSON_GetObjectItemCaseSensitive(p, "_link");
		if (!name || !pub || cJSON_IsTrue(self))
			continue;
		size_t cl = strlen(cands);
		if (!strstr(cands, pub) && cl + 100 < sizeof cands)
			snprintf(cands + cl, sizeof cands - cl, "%s%s (%.12s…)", cl ? ", " : "", name, pub);
		if (strcasecmp(name, c->to) != 0 || !strcmp(pk, pub))
			continue;
		hits++;
		snprintf(pk, sizeof pk, "%s", pub);
		link = cJSON_IsNumber(li) ? li->valueint : 0;
	}
	if (hits == 1) {
		char label[300];
		snprintf(label, sizeof label, "%s", c->to);
		mcp_do_send(m, c, link, pk, label);
		return;
	}
	if (hits > 1) {
		char list[2048] = "";
		cJSON_ArrayForEach(p, c->acc)
		{
			const char *name = mcp_str(p, "displayName"), *pub = mcp_str(p, "pubkey");
			size_t ll = strlen(list);
			if (name && pub && !strcasecmp(name, c->to) && !strstr(list, pub) && ll + 100 < sizeof list)
				snprintf(list + ll, sizeof list - ll, "%s%s", ll ? ", " : "", pub);
		}
		mcp_call_end(c, mcp_result(1, "\"%s\" is ambiguous: %d peers have that name; send to one pubkey of: %s",
					c->to, hits, list));
		return;
	}
	mcp_call_end(c, mcp_result(1, "no live peer named \"%s\"; candidates: %s", c->to, cands[0] ? cands : "(none)"));
}

/* ------------------------------------------------------------ list_peers */

void mcp_list_done(struct mcp *m, struct mcp_call *c)
{
	(void)m;
	int n = cJSON_GetArraySize(c->acc);
	size_t cap = 128 + (size_t)n * 512, len = 0;
	char *text = malloc(cap);
	if (!text)
		return mcp_call_end(c, mcp_result(1, "out of memory"));
	len += (size_t)snprintf(text, cap, "%d live peer%s:\n", n, n == 1 ? "" : "s");
	const cJSON *p;
	cJSON_ArrayForEach(p, c->acc)
	{
		const char *sum = mcp_str(p, "summary");
		if (len + 512 >= cap)
			break;
		len += (size_t)snprintf(text + len, cap - len, "- %s%s [%s] pubkey %.16s… cwd %.200s on %.64s%s%.200s\n",
					mcp_str(p, "displayName") ? mcp_str(p, "displayName") : "?",
					cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "self")) ? " (you)" : "",
					mcp_str(p, "status") ? mcp_str(p, "status") : "?",
					mcp_str(p, "pubkey") ? mcp_str(p, "pubkey") : "",
					mcp_str(p, "cwd") ? mcp_str(p, "cwd") : "",
					mcp_str(p, "hostname") ? mcp_str(p, "hostname") : "", sum && *sum ? " — " : "",
					sum ? sum : "");
	}
	cJSON *r = mcp_result(0, "%s", "");
	cJSON *item = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "content"), 0);
	cJSON_ReplaceItemInObjectCaseSensitive(item, "text", cJSON_CreateString(text));
	free(text);
	cJSON *sc = cJSON_AddObjectToObject(r, "structuredContent");
	cJSON *peers = cJSON_Duplicate(c->acc, 1);
	cJSON *q;
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
		else if ((c->kind == CALL_LIST || c->kind == CALL_RESOLVE) && c->waiting > 0 && --c->waiting == 0)
			mcp_call_end(c, mcp_result(1, "not connected to the broker (reconnecting); try again shortly"));
	}
}
