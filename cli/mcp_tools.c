/* mcp_tools — the tools of `meshctl mcp` (docs/protocol.md §11) and what
 * feeds them: the inbox of received messages (bounded; a message is
 * client_acked only once a check_messages reply carrying it was written to
 * stdout, so a killed server loses nothing), the tool calls that wait for a
 * broker reply, and a pubkey -> name cache filled by list_peers replies and
 * peer events.  A tool error is a result with isError, never a crash. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sodium.h>

#include "cli/mcp.h"
#include "cli/mcp_rpc.h"
#include "common/util.h"
#include "proto/box.h"

static const char *str_of(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ------------------------------------------------------------ results */

static cJSON *text_result(int is_error, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static cJSON *text_result(int is_error, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	cJSON *r = cJSON_CreateObject();
	cJSON *c = cJSON_AddArrayToObject(r, "content");
	cJSON *t = cJSON_CreateObject();
	cJSON_AddStringToObject(t, "type", "text");
	cJSON_AddStringToObject(t, "text", buf);
	cJSON_AddItemToArray(c, t);
	cJSON_AddBoolToObject(r, "isError", is_error);
	return r;
}

static void reply(const cJSON *id, cJSON *result)
{
	mcp_write(mcp_rpc_result(id, result));
}

/* ------------------------------------------------------------ names */

static const char *name_of(struct mcp *m, const char *pubkey)
{
	for (size_t i = 0; i < MCP_NAMES_MAX; i++)
		if (m->names[i].pubkey[0] && !strcmp(m->names[i].pubkey, pubkey))
			return m->names[i].name;
	return NULL;
}

static void name_learn(struct mcp *m, const char *pubkey, const char *name)
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

static void notify_waiting(struct mcp *m);

/* ------------------------------------------------------------ calls */

static struct mcp_call *call_new(struct mcp *m, enum mcp_call_kind kind, const cJSON *id)
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

static void call_end(struct mcp_call *c, cJSON *result)
{
	if (result)
		reply(c->id, result);
	cJSON_Delete(c->id);
	cJSON_Delete(c->acc);
	free(c->to);
	free(c->text);
	memset(c, 0, sizeof *c);
}

static struct mcp_call *call_by_tag(struct mcp *m, const char *tag)
{
	for (int i = 0; tag && i < MCP_CALLS_MAX; i++)
		if (m->calls[i].kind != CALL_NONE && !strcmp(m->calls[i].tag, tag))
			return &m->calls[i];
	return NULL;
}

void mcp_tools_tick(struct mcp *m, int64_t now)
{
	if (m->names_wait && now >= m->names_wait)
		notify_waiting(m);
	for (int i = 0; i < MCP_CALLS_MAX; i++)
		if (m->calls[i].kind != CALL_NONE && now >= m->calls[i].deadline)
			call_end(&m->calls[i], text_result(1, "the broker did not answer within %d s; try again",
							   MCP_CALL_MS / 1000));
}

static int ready_links(struct mcp *m)
{
	int n = 0;
	for (int i = 0; i < m->nlinks; i++)
		n += m->links[i].ready;
	return n;
}

/* list_peers on every connected mesh; the call collects the answers */
static int ask_peers(struct mcp *m, struct mcp_call *c, const char *scope)
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

static void do_send(struct mcp *m, struct mcp_call *c, int link, const char *target, const char *label)
{
	struct mcp_link *l = &m->links[link];
	char *nonce = NULL, *ct = NULL;
	if (is_hex(target, 64)) {
		unsigned char rpk[32];
		if (hex_decode(target, rpk, sizeof rpk) != 0 ||
		    box_encrypt_direct(c->text, strlen(c->text), rpk, l->cfg.key.sk, &nonce, &ct) != 0) {
			call_end(c, text_result(1, "cannot encrypt for %s: not an ed25519 public key", target));
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
		call_end(c, text_result(1, "not connected to the broker; try again in a few seconds"));
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
static void resolve_done(struct mcp *m, struct mcp_call *c)
{
	char pk[65] = "", cands[2048] = "";
	int link = -1, hits = 0;
	const cJSON *p;
	cJSON_ArrayForEach(p, c->acc)
	{
		const char *name = str_of(p, "displayName"), *pub = str_of(p, "pubkey");
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
		do_send(m, c, link, pk, label);
		return;
	}
	if (hits > 1) {
		char list[2048] = "";
		cJSON_ArrayForEach(p, c->acc)
		{
			const char *name = str_of(p, "displayName"), *pub = str_of(p, "pubkey");
			size_t ll = strlen(list);
			if (name && pub && !strcasecmp(name, c->to) && !strstr(list, pub) && ll + 100 < sizeof list)
				snprintf(list + ll, sizeof list - ll, "%s%s", ll ? ", " : "", pub);
		}
		call_end(c, text_result(1, "\"%s\" is ambiguous: %d peers have that name; send to one pubkey of: %s",
					c->to, hits, list));
		return;
	}
	call_end(c, text_result(1, "no live peer named \"%s\"; candidates: %s", c->to, cands[0] ? cands : "(none)"));
}

static void tool_send(struct mcp *m, const cJSON *id, const cJSON *args)
{
	const char *to = str_of(args, "to"), *text = str_of(args, "message"), *pri = str_of(args, "priority");
	if (!to || !*to || strlen(to) > 255)
		return reply(id, text_result(1, "send_message needs \"to\": a peer name, a pubkey, * or #topic"));
	if (!text || !*text)
		return reply(id, text_result(1, "send_message needs a non-empty \"message\""));
	if (strlen(text) > MCP_TEXT_MAX)
		return reply(id, text_result(1, "message too long: %zu bytes > %u", strlen(text), MCP_TEXT_MAX));
	if (!pri)
		pri = "next";
	if (strcmp(pri, "now") && strcmp(pri, "next") && strcmp(pri, "low"))
		return reply(id, text_result(1, "priority must be now, next or low"));
	if (!ready_links(m))
		return reply(id, text_result(1, "not connected to the broker yet (reconnecting); try again shortly"));
	struct mcp_call *c = call_new(m, CALL_RESOLVE, id);
	if (!c)
		return reply(id, text_result(1, "too many tool calls in flight; try again"));
	c->text = strdup(text);
	c->to = strdup(to);
	snprintf(c->priority, sizeof c->priority, "%s", pri);
	int first = 0;
	while (!m->links[first].ready)
		first++;
	if (is_hex(to, 64)) {
		char low[65];
		for (int i = 0; i < 64; i++)
			low[i] = (char)((to[i] >= 'A' && to[i] <= 'F') ? to[i] + 32 : to[i]);
		low[64] = 0;
		const char *n = name_of(m, low);
		do_send(m, c, first, low, n ? n : low);
	} else if (!strcmp(to, "*") || to[0] == '#') {
		do_send(m, c, first, to, to);
	} else if (!ask_peers(m, c, NULL)) {
		call_end(c, text_result(1, "not connected to the broker; try again shortly"));
	}
}

/* ------------------------------------------------------------ check_messages */

static int was_acked(struct mcp *m, const char *id)
{
	for (size_t i = 0; i < MCP_ACKED_MAX; i++)
		if (!strcmp(m->acked[i], id))
			return 1;
	return 0;
}

static void send_ack(struct mcp_link *l, const char *message_id)
{
	cJSON *f = cJSON_CreateObject();
	cJSON_AddStringToObject(f, "type", "client_ack");
	cJSON_AddStringToObject(f, "brokerMessageId", message_id);
	mcp_link_send(l, f);
	cJSON_Delete(f);
}

static void tool_check(struct mcp *m, const cJSON *id)
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
		return reply(id, text_result(1, "out of memory"));
	}
	t += sprintf(t, n ? "%zu message%s:\n" : "no new messages", n, n == 1 ? "" : "s");
	for (size_t i = 0; i < n; i++) {
		struct mcp_msg *g = &m->inbox[i];
		const char *nm = name_of(m, g->from_pubkey);
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
	reply(id, r); /* written and flushed: now they are Claude's */
	for (size_t i = 0; i < n; i++) {
		struct mcp_msg *g = &m->inbox[i];
		send_ack(&m->links[g->link], g->id);
		snprintf(m->acked[m->acked_next++ % MCP_ACKED_MAX], sizeof m->acked[0], "%s", g->id);
		sodium_memzero(g->text, strlen(g->text));
		free(g->text);
	}
	if (n) {
		memmove(m->inbox, m->inbox + n, (m->ninbox - n) * sizeof *m->inbox);
		m->ninbox -= n;
	}
}

/* ------------------------------------------------------------ list_peers */

static void list_done(struct mcp *m, struct mcp_call *c)
{
	(void)m;
	int n = cJSON_GetArraySize(c->acc);
	size_t cap = 128 + (size_t)n * 512, len = 0;
	char *text = malloc(cap);
	if (!text)
		return call_end(c, text_result(1, "out of memory"));
	len += (size_t)snprintf(text, cap, "%d live peer%s:\n", n, n == 1 ? "" : "s");
	const cJSON *p;
	cJSON_ArrayForEach(p, c->acc)
	{
		const char *sum = str_of(p, "summary");
		if (len + 512 >= cap)
			break;
		len += (size_t)snprintf(text + len, cap - len, "- %s%s [%s] pubkey %.16s… cwd %.200s on %.64s%s%.200s\n",
					str_of(p, "displayName") ? str_of(p, "displayName") : "?",
					cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "self")) ? " (you)" : "",
					str_of(p, "status") ? str_of(p, "status") : "?",
					str_of(p, "pubkey") ? str_of(p, "pubkey") : "",
					str_of(p, "cwd") ? str_of(p, "cwd") : "",
					str_of(p, "hostname") ? str_of(p, "hostname") : "", sum && *sum ? " — " : "",
					sum ? sum : "");
	}
	cJSON *r = text_result(0, "%s", "");
	cJSON *item = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "content"), 0);
	cJSON_ReplaceItemInObjectCaseSensitive(item, "text", cJSON_CreateString(text));
	free(text);
	cJSON *sc = cJSON_AddObjectToObject(r, "structuredContent");
	cJSON *peers = cJSON_Duplicate(c->acc, 1);
	cJSON *q;
	cJSON_ArrayForEach(q, peers) cJSON_DeleteItemFromObjectCaseSensitive(q, "_link");
	cJSON_AddItemToObject(sc, "peers", peers);
	call_end(c, r);
}

static void tool_list(struct mcp *m, const cJSON *id, const cJSON *args)
{
	const char *scope = str_of(args, "scope");
	if (scope && strcmp(scope, "mesh") && strcmp(scope, "machine") && strcmp(scope, "directory") &&
	    strcmp(scope, "repo"))
		return reply(id, text_result(1, "scope must be mesh, machine, directory or repo"));
	struct mcp_call *c = call_new(m, CALL_LIST, id);
	if (!c)
		return reply(id, text_result(1, "too many tool calls in flight; try again"));
	if (!ask_peers(m, c, scope))
		call_end(c, text_result(1, "not connected to the broker yet (reconnecting); try again shortly"));
}

/* ------------------------------------------------------------ status, summary */

static int send_all(struct mcp *m, cJSON *f)
{
	int n = 0;
	for (int i = 0; i < m->nlinks; i++)
		if (m->links[i].ready && mcp_link_send(&m->links[i], f) == 0)
			n++;
	return n;
}

static void tool_status(struct mcp *m, const cJSON *id, const cJSON *args)
{
	const char *s = str_of(args, "status");
	if (!s || (strcmp(s, "idle") && strcmp(s, "working") && strcmp(s, "dnd")))
		return reply(id, text_result(1, "status must be idle, working or dnd"));
	cJSON *f = cJSON_CreateObject();
	cJSON_AddStringToObject(f, "type", "set_status");
	cJSON_AddStringToObject(f, "status", s);
	int n = send_all(m, f);
	cJSON_Delete(f);
	reply(id, n ? text_result(0, "status set to %s", s) : text_result(1, "not connected to the broker; try again"));
}

static void send_summary(struct mcp_link *l)
{
	cJSON *f = cJSON_CreateObject();
	cJSON_AddStringToObject(f, "type", "set_summary");
	cJSON_AddStringToObject(f, "summary", l->m->summary);
	mcp_link_send(l, f);
	cJSON_Delete(f);
}

static void tool_summary(struct mcp *m, const cJSON *id, const cJSON *args)
{
	const char *s = str_of(args, "summary");
	if (!s)
		return reply(id, text_result(1, "set_summary needs a string \"summary\""));
	if (strlen(s) > 1024)
		return reply(id, text_result(1, "summary too long: %zu bytes > 1024", strlen(s)));
	snprintf(m->summary, sizeof m->summary, "%s", s);
	m->have_summary = 1; /* sent again after every reconnect */
	int n = 0;
	for (int i = 0; i < m->nlinks; i++)
		if (m->links[i].ready) {
			send_summary(&m->links[i]);
			n++;
		}
	reply(id, text_result(0, "summary set%s", n ? "" : " (sent when the connection is back)"));
}

void mcp_tools_call(struct mcp *m, const cJSON *id, const cJSON *params)
{
	const char *name = str_of(params, "name");
	const cJSON *args = cJSON_GetObjectItemCaseSensitive(params, "arguments");
	if (!name)
		return mcp_write(mcp_rpc_error(id, MCP_INVALID_PARAMS, "tools/call needs params.name"));
	if (args && !cJSON_IsObject(args) && !cJSON_IsNull(args))
		return reply(id, text_result(1, "arguments must be an object"));
	if (!strcmp(name, "send_message"))
		tool_send(m, id, args);
	else if (!strcmp(name, "check_messages"))
		tool_check(m, id);
	else if (!strcmp(name, "list_peers"))
		tool_list(m, id, args);
	else if (!strcmp(name, "set_status"))
		tool_status(m, id, args);
	else if (!strcmp(name, "set_summary"))
		tool_summary(m, id, args);
	else
		reply(id, text_result(1, "unknown tool \"%.100s\"; the tools are send_message, check_messages, "
					 "list_peers, set_status and set_summary",
				      name));
}

/* ------------------------------------------------------------ frames */

/* the readable text of a push, malloc'd, or NULL */
static char *push_text(const struct mcp_link *l, const cJSON *push)
{
	const char *nonce = str_of(push, "nonce"), *ct = str_of(push, "ciphertext"), *sender = str_of(push, "senderPubkey");
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
	const char *nm = name_of(m, g->from_pubkey);
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
static void notify_waiting(struct mcp *m)
{
	m->names_wait = 0;
	for (size_t i = 0; i < m->ninbox; i++)
		notify(m, &m->inbox[i]);
}

static void on_push(struct mcp_link *l, const cJSON *j)
{
	struct mcp *m = l->m;
	const char *mid = str_of(j, "messageId"), *sender = str_of(j, "senderPubkey");
	const char *sub = str_of(j, "subtype");
	if (sub && !strcmp(sub, "system")) {
		const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "eventData"), *e;
		name_learn(m, str_of(d, "pubkey"), str_of(d, "displayName"));
		cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(d, "events"))
			name_learn(m, str_of(e, "pubkey"), str_of(e, "displayName"));
		return;
	}
	if (!mid || strlen(mid) >= sizeof m->inbox[0].id || !sender)
		return;
	if (was_acked(m, mid)) {
		send_ack(l, mid); /* a redelivery of what Claude already has */
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
		send_ack(l, mid);
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
	const char *nm = name_of(m, sender);
	snprintf(g->from, sizeof g->from, "%s", nm ? nm : sender);
	snprintf(g->priority, sizeof g->priority, "%s", str_of(j, "priority") ? str_of(j, "priority") : "next");
	snprintf(g->created, sizeof g->created, "%s", str_of(j, "createdAt") ? str_of(j, "createdAt") : "");
	snprintf(g->topic, sizeof g->topic, "%s", str_of(j, "topic") ? str_of(j, "topic") : "");
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
	cJSON_ArrayForEach(p, peers) name_learn(m, str_of(p, "pubkey"), str_of(p, "displayName"));
	if (m->names_wait && str_of(j, "_reqId") && !strcmp(str_of(j, "_reqId"), "mcp-names"))
		notify_waiting(m);
	struct mcp_call *c = call_by_tag(m, str_of(j, "_reqId"));
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
		list_done(m, c);
	else
		resolve_done(m, c);
}

void mcp_tools_on_ready(struct mcp_link *l)
{
	l->ready = 1;
	l->backoff_s = 1;
	mcp_log("connected to %s as %s", l->url, l->cfg.display_name[0] ? l->cfg.display_name : l->cfg.member_id);
	if (l->m->have_summary)
		send_summary(l);
	cJSON *f = cJSON_CreateObject(); /* who is there, for the names of senders */
	cJSON_AddStringToObject(f, "type", "list_peers");
	cJSON_AddStringToObject(f, "_reqId", "mcp-names");
	mcp_link_send(l, f);
	cJSON_Delete(f);
}

void mcp_tools_on_frame(struct mcp_link *l, const char *text, size_t len)
{
	struct mcp *m = l->m;
	cJSON *j = cJSON_ParseWithLength(text, len);
	const char *type = cJSON_IsObject(j) ? str_of(j, "type") : NULL;
	if (!type) {
		cJSON_Delete(j);
		return;
	}
	if (!strcmp(type, "hello_ack")) {
		mcp_tools_on_ready(l);
	} else if (!strcmp(type, "push")) {
		on_push(l, j);
	} else if (!strcmp(type, "peers_list")) {
		on_peers(l, j);
	} else if (!strcmp(type, "ack")) {
		struct mcp_call *c = call_by_tag(m, str_of(j, "id"));
		if (c && c->kind == CALL_SEND) {
			if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "queued")))
				call_end(c, text_result(0, "sent to %s (message %s)", c->to, str_of(j, "messageId") ? str_of(j, "messageId") : "?"));
			else
				call_end(c, text_result(1, "the broker refused the message: %s",
							str_of(j, "error") ? str_of(j, "error") : "not queued"));
		}
	} else if (!strcmp(type, "error")) {
		struct mcp_call *c = call_by_tag(m, str_of(j, "id"));
		const char *msg = str_of(j, "message"), *code = str_of(j, "code");
		if (c)
			call_end(c, text_result(1, "the broker refused: %s", msg ? msg : code ? code : "error"));
		else if (!l->ready)
			mcp_log("hello refused: %s (%s)", code ? code : "error", msg ? msg : "");
		else
			mcp_log("broker error: %s (%s)", code ? code : "error", msg ? msg : "");
	}
	cJSON_Delete(j);
}

void mcp_tools_free(struct mcp *m)
{
	for (int i = 0; i < MCP_CALLS_MAX; i++)
		if (m->calls[i].kind != CALL_NONE)
			call_end(&m->calls[i], NULL);
	for (size_t i = 0; i < m->ninbox; i++) {
		sodium_memzero(m->inbox[i].text, strlen(m->inbox[i].text));
		free(m->inbox[i].text);
	}
	free(m->inbox);
}
