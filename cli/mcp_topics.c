/* mcp_topics — topics from Claude (see mcp_topics.h).  Each tool call is a
 * short exchange tagged with the call's tag as _reqId: topic_list;
 * topic_join then topic_list (a join has no reply on success);
 * topic_key then topic_history; topic_key then the send.  Keys opened for a
 * call are kept in the session's topic table, so later pushes of that topic
 * open without asking; a push of an unknown topic asks for its key once
 * (_reqId "mcp-tkey:<topicId>") and waits in mcp_inbox meanwhile. */
#include "cli/mcp_topics.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/mcp_calls.h"
#include "cli/mcp_out.h"
#include "common/util.h"

#define TKEY_PREFIX "mcp-tkey:"
#define PEND_PREFIX "mcp-pend:"
#define SEAL_REQ "mcp-seal"

static struct mcp_topic *topic_find(struct mcp_link *l, const char *ref)
{
	unsigned n = l->ntopics < MCP_TOPICS_MAX ? l->ntopics : MCP_TOPICS_MAX;
	for (unsigned i = 0; ref && i < n; i++)
		if (!strcmp(l->topics[i].id, ref) || !strcmp(l->topics[i].name, ref))
			return &l->topics[i];
	return NULL;
}

static struct mcp_topic *topic_slot(struct mcp_link *l, const char *id)
{
	struct mcp_topic *t = topic_find(l, id);
	if (t || !id || strlen(id) >= sizeof t->id)
		return t;
	t = &l->topics[l->ntopics++ % MCP_TOPICS_MAX];
	topicbody_key_wipe(&t->key);
	memset(t, 0, sizeof *t);
	snprintf(t->id, sizeof t->id, "%s", id);
	return t;
}

/* a key (or its refusal) for topic: into the session's table */
static void topic_learn_key(struct mcp_link *l, const cJSON *j, const struct topicbody_key *k, int ok)
{
	const char *id = k && k->topic_id[0] ? k->topic_id : mcp_str(j, "topicId");
	const char *ref = mcp_str(j, "_reqId");
	if (!id && ref && !strncmp(ref, TKEY_PREFIX, strlen(TKEY_PREFIX)))
		id = ref + strlen(TKEY_PREFIX);
	if (!id && mcp_str(j, "id") && !strncmp(mcp_str(j, "id"), TKEY_PREFIX, strlen(TKEY_PREFIX)))
		id = mcp_str(j, "id") + strlen(TKEY_PREFIX);
	struct mcp_topic *t = topic_slot(l, id);
	if (!t)
		return;
	if (k && k->name[0])
		snprintf(t->name, sizeof t->name, "%s", k->name);
	if (ok && k) {
		int asked = t->key.asked_epoch;
		t->key = *k; /* every epoch's key the member holds */
		t->key.asked_epoch = asked;
	}
	t->state = t->key.have || t->key.unencrypted ? TOPIC_KEYED : TOPIC_NO_KEY;
}

static int pick_link(struct mcp *m, const cJSON *args, const cJSON *id)
{
	const char *mesh = mcp_str(args, "mesh");
	for (int i = 0; i < m->nlinks; i++)
		if (m->links[i].ready && (!mesh || !strcmp(m->links[i].mesh_label, mesh) ||
					  !strcmp(m->links[i].cfg.mesh_id, mesh)))
			return i;
	if (mesh)
		mcp_reply(id, mcp_result(1, "no connected mesh named \"%.100s\"", mesh));
	else
		mcp_reply(id, mcp_result(1, "not connected to the broker yet (reconnecting); try again shortly"));
	return -1;
}

static int send_req(struct mcp_link *l, const char *type, const char *rid, const char *topic, cJSON *o)
{
	if (!o)
		o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", type);
	cJSON_AddStringToObject(o, "_reqId", rid);
	if (topic)
		cJSON_AddStringToObject(o, "topic", topic);
	int r = mcp_link_send(l, o);
	cJSON_Delete(o);
	return r;
}

/* a topic call on link: c set up with its kind and topic */
static struct mcp_call *topic_call(struct mcp *m, const cJSON *id, enum mcp_call_kind kind, int link, const char *topic)
{
	struct mcp_call *c = mcp_call_new(m, kind, id);
	if (!c) {
		mcp_reply(id, mcp_result(1, "too many tool calls in flight; try again"));
		return NULL;
	}
	c->link = link;
	c->to = strdup(topic ? topic : "");
	return c;
}

void mcp_topics_post(struct mcp *m, struct mcp_call *c, int link, const char *topic)
{
	c->kind = CALL_TPOST;
	c->link = link;
	free(c->to);
	c->to = strdup(topic);
	if (send_req(&m->links[link], "topic_key", c->tag, topic, NULL) != 0)
		mcp_call_end(c, mcp_result(1, "not connected to the broker; try again in a few seconds"));
}

static const char *topic_arg(const cJSON *id, const cJSON *args)
{
	const char *t = mcp_str(args, "topic");
	if (t && t[0] == '#')
		t++;
	if (!t || !*t || strlen(t) > 128) {
		mcp_reply(id, mcp_result(1, "\"topic\" must be a topic name or id"));
		return NULL;
	}
	return t;
}

int mcp_topics_tool(struct mcp *m, const cJSON *id, const char *name, const cJSON *args)
{
	struct mcp_call *c;
	const char *topic = NULL;
	int link;
	if (!strcmp(name, "topic_list")) {
		if ((link = pick_link(m, args, id)) < 0 || !(c = topic_call(m, id, CALL_TLIST, link, NULL)))
			return 1;
		if (send_req(&m->links[link], "topic_list", c->tag, NULL, NULL) != 0)
			mcp_call_end(c, mcp_result(1, "not connected to the broker; try again"));
	} else if (!strcmp(name, "topic_join")) {
		const char *role = mcp_str(args, "role");
		if (!(topic = topic_arg(id, args)) || (link = pick_link(m, args, id)) < 0 ||
		    !(c = topic_call(m, id, CALL_TJOIN, link, topic)))
			return 1;
		cJSON *o = cJSON_CreateObject();
		if (role)
			cJSON_AddStringToObject(o, "role", role);
		/* no reply on success: the topic_list after it says it is done */
		if (send_req(&m->links[link], "topic_join", c->tag, topic, o) != 0 ||
		    send_req(&m->links[link], "topic_list", c->tag, NULL, NULL) != 0)
			mcp_call_end(c, mcp_result(1, "not connected to the broker; try again"));
	} else if (!strcmp(name, "topic_read")) {
		const cJSON *lim = cJSON_GetObjectItemCaseSensitive(args, "limit");
		if (lim && (!cJSON_IsNumber(lim) || lim->valuedouble < 1 || lim->valuedouble > MCP_TOPIC_MSGS_MAX)) {
			mcp_reply(id, mcp_result(1, "limit must be 1..%d", MCP_TOPIC_MSGS_MAX));
			return 1;
		}
		if (!(topic = topic_arg(id, args)) || (link = pick_link(m, args, id)) < 0 ||
		    !(c = topic_call(m, id, CALL_TREAD, link, topic)))
			return 1;
		c->limit = lim ? (long)lim->valuedouble : 20;
		if (send_req(&m->links[link], "topic_key", c->tag, topic, NULL) != 0)
			mcp_call_end(c, mcp_result(1, "not connected to the broker; try again"));
	} else if (!strcmp(name, "topic_post")) {
		const char *text = mcp_str(args, "message"), *pri = mcp_str(args, "priority");
		if (!(topic = topic_arg(id, args)))
			return 1;
		if (!text || !*text || strlen(text) > MCP_TEXT_MAX) {
			mcp_reply(id, mcp_result(1, "topic_post needs a \"message\" of 1..%u bytes", MCP_TEXT_MAX));
			return 1;
		}
		if (pri && strcmp(pri, "now") && strcmp(pri, "next") && strcmp(pri, "low")) {
			mcp_reply(id, mcp_result(1, "priority must be now, next or low"));
			return 1;
		}
		if ((link = pick_link(m, args, id)) < 0 || !(c = topic_call(m, id, CALL_TPOST, link, topic)))
			return 1;
		c->text = strdup(text);
		snprintf(c->priority, sizeof c->priority, "%s", pri ? pri : "next");
		mcp_topics_post(m, c, link, topic);
	} else {
		return 0;
	}
	return 1;
}

/* the key of a TPOST or TREAD call came (or was refused) */
static void call_key(struct mcp_link *l, struct mcp_call *c, const cJSON *j)
{
	int r = topicbody_key_take(j, l->cfg.key.sk, &c->key);
	const char *code = mcp_str(j, "code"), *msg = mcp_str(j, "message");
	int not_sealed = r == -2 && code && !strcmp(code, "key_not_sealed_for_member");
	if (r == 0 || not_sealed)
		topic_learn_key(l, j, r == 0 ? &c->key : NULL, r == 0);
	if (r == -1)
		return mcp_call_end(c, mcp_result(1, "the sealed topic key does not open with this member's key"));
	if (r == -2 && !(not_sealed && c->kind == CALL_TREAD)) {
		if (not_sealed)
			return mcp_call_end(c, mcp_result(1, "no copy of the key of #%s is sealed for you yet: a member "
							    "who holds it must re-seal it (meshctl topic tail %s)",
							  c->to, c->to));
		return mcp_call_end(c, mcp_result(1, "#%s: %s", c->to, msg ? msg : code ? code : "refused"));
	}
	if (c->kind == CALL_TPOST && topicbody_stale(&c->key))
		return mcp_call_end(c, mcp_result(1, "the key of #%s moved on to epoch %d and no copy of it is sealed for "
						    "you yet (a lead's meshctl topic tail or mcp seals it); try again shortly",
						  c->to, c->key.ring.current_epoch));
	if (c->kind == CALL_TREAD) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "limit", (double)c->limit);
		c->acked = 1; /* now the history */
		if (send_req(l, "topic_history", c->tag, c->key.topic_id[0] ? c->key.topic_id : c->to, o) != 0)
			mcp_call_end(c, mcp_result(1, "not connected to the broker; try again"));
		return;
	}
	cJSON *mentions = topicbody_mentions(c->text);
	cJSON *f = topicbody_post_frame(&c->key, c->to, c->text, c->priority, c->tag, mentions);
	cJSON_Delete(mentions);
	int sent = f && mcp_link_send(l, f) == 0;
	cJSON_Delete(f);
	if (!sent)
		return mcp_call_end(c, mcp_result(1, "could not seal or queue the post; try again"));
	char label[140];
	snprintf(label, sizeof label, "#%s", c->key.name[0] ? c->key.name : c->to);
	free(c->to);
	c->to = strdup(label);
	c->kind = CALL_SEND; /* the ack ends it (mcp_calls_on_ack) */
	c->deadline = mono_ms() + MCP_CALL_MS;
}

static void history_done(struct mcp *m, struct mcp_call *c, const cJSON *j)
{
	const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
	int n = cJSON_GetArraySize(msgs);
	size_t cap = 256, len = 0;
	const cJSON *x;
	cJSON_ArrayForEach(x, msgs) cap += 512 + (mcp_str(x, "ciphertext") ? strlen(mcp_str(x, "ciphertext")) : 0);
	char *text = malloc(cap);
	if (!text)
		return mcp_call_end(c, mcp_result(1, "out of memory"));
	cJSON *arr = cJSON_CreateArray();
	len += (size_t)snprintf(text, cap, "#%s: %d message%s%s\n", c->key.name[0] ? c->key.name : c->to, n,
				n == 1 ? "" : "s", n ? " (oldest first)" : "");
	for (int i = n - 1; i >= 0; i--) { /* newest first on the wire */
		x = cJSON_GetArrayItem(msgs, i);
		enum topicbody_how how;
		char *body = topicbody_text(x, &c->key, &how);
		const char *spk = mcp_str(x, "senderPubkey"), *nm = spk ? mcp_name_of(m, spk) : NULL;
		const char *shown = body ? body : how == TB_NO_KEY ? "(sealed: no key for you yet)" : "(unreadable)";
		len += (size_t)snprintf(text + len, cap - len, "[%s] %s%s: %s\n",
					mcp_str(x, "createdAt") ? mcp_str(x, "createdAt") : "", nm ? nm : spk ? spk : "?",
					how == TB_PLAIN ? " (unencrypted)" : "", shown);
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", mcp_str(x, "id") ? mcp_str(x, "id") : "");
		cJSON_AddStringToObject(o, "from", nm ? nm : spk ? spk : "");
		cJSON_AddStringToObject(o, "createdAt", mcp_str(x, "createdAt") ? mcp_str(x, "createdAt") : "");
		cJSON_AddStringToObject(o, "text", shown);
		cJSON_AddBoolToObject(o, "encrypted", how != TB_PLAIN);
		cJSON_AddItemToArray(arr, o);
		if (body)
			sodium_memzero(body, strlen(body));
		free(body);
	}
	cJSON *r = mcp_result(0, "%s", "");
	cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "content"), 0),
					       "text", cJSON_CreateString(text));
	sodium_memzero(text, cap);
	free(text);
	cJSON *sc = cJSON_AddObjectToObject(r, "structuredContent");
	cJSON_AddStringToObject(sc, "topic", c->key.name[0] ? c->key.name : c->to);
	cJSON_AddItemToObject(sc, "messages", arr);
	mcp_call_end(c, r);
}

static void list_done(struct mcp_link *l, struct mcp_call *c, const cJSON *j)
{
	const cJSON *topics = cJSON_GetObjectItemCaseSensitive(j, "topics"), *x;
	char text[8192];
	size_t len = (size_t)snprintf(text, sizeof text, "%d topic%s on %s:\n", cJSON_GetArraySize(topics),
				      cJSON_GetArraySize(topics) == 1 ? "" : "s",
				      l->mesh_label[0] ? l->mesh_label : l->cfg.mesh_id);
	cJSON_ArrayForEach(x, topics)
	{
		const cJSON *mc = cJSON_GetObjectItemCaseSensitive(x, "memberCount");
		if (len + 400 < sizeof text)
			len += (size_t)snprintf(text + len, sizeof text - len, "- #%.64s (%d members)%s%.200s\n",
						mcp_str(x, "name") ? mcp_str(x, "name") : "?",
						cJSON_IsNumber(mc) ? mc->valueint : 0,
						mcp_str(x, "description") ? " — " : "",
						mcp_str(x, "description") ? mcp_str(x, "description") : "");
	}
	cJSON *r = mcp_result(0, "%s", text);
	cJSON *sc = cJSON_AddObjectToObject(r, "structuredContent");
	cJSON_AddStringToObject(sc, "mesh", l->mesh_label);
	cJSON_AddItemToObject(sc, "topics", cJSON_Duplicate(topics, 1));
	mcp_call_end(c, r);
}

int mcp_topics_frame(struct mcp_link *l, const cJSON *j, const char *type)
{
	struct mcp *m = l->m;
	const char *rid = mcp_str(j, !strcmp(type, "error") ? "id" : "_reqId");
	if (!rid)
		return 0;
	if (!strncmp(rid, TKEY_PREFIX, strlen(TKEY_PREFIX))) { /* a key for pushes */
		struct topicbody_key k = {0};
		int ok = topicbody_key_take(j, l->cfg.key.sk, &k) == 0;
		if (!ok)
			mcp_log("no key for topic %.64s: its posts are shown as sealed", rid + strlen(TKEY_PREFIX));
		topic_learn_key(l, j, &k, ok);
		topicbody_key_wipe(&k);
		return 1;
	}
	if (!strncmp(rid, PEND_PREFIX, strlen(PEND_PREFIX))) { /* members waiting for a key we hold */
		struct mcp_topic *t = topic_find(l, rid + strlen(PEND_PREFIX));
		const cJSON *x;
		cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(j, "pending"))
		{
			cJSON *o = t && t->key.have && !strcmp(type, "topic_pending_seals_response")
					   ? topicbody_seal_for(&t->key, x) : NULL;
			if (o)
				send_req(l, "topic_seal", SEAL_REQ, t->id, o);
		}
		return 1;
	}
	if (!strcmp(rid, SEAL_REQ)) { /* already_sealed: another member was first */
		if (!strcmp(type, "topic_sealed"))
			mcp_log("sealed the key of topic %.64s for member %.64s",
				mcp_str(j, "topic") ? mcp_str(j, "topic") : "?",
				mcp_str(j, "memberId") ? mcp_str(j, "memberId") : "?");
		return 1;
	}
	struct mcp_call *c = mcp_call_by_tag(m, rid);
	if (!c || c->kind < CALL_TLIST)
		return 0;
	if ((c->kind == CALL_TPOST || (c->kind == CALL_TREAD && !c->acked)) &&
	    (!strcmp(type, "topic_key_response") || !strcmp(type, "error")))
		call_key(l, c, j);
	else if (!strcmp(type, "error"))
		mcp_call_end(c, mcp_result(1, "#%s: %s", c->to,
					   mcp_str(j, "message") ? mcp_str(j, "message") : mcp_str(j, "code") ? mcp_str(j, "code") : "refused"));
	else if (c->kind == CALL_TREAD && !strcmp(type, "topic_history_response"))
		history_done(m, c, j);
	else if (c->kind == CALL_TLIST && !strcmp(type, "topic_list_response"))
		list_done(l, c, j);
	else if (c->kind == CALL_TJOIN && !strcmp(type, "topic_list_response"))
		mcp_call_end(c, mcp_result(0, "joined #%s: its posts now arrive as notifications", c->to));
	return 1;
}

static int mentions_me(const struct mcp_link *l, const char *text)
{
	const char *me = l->cfg.display_name[0] ? l->cfg.display_name : mcp_name_of(l->m, l->cfg.key.pubkey);
	cJSON *names = me ? topicbody_mentions(text) : NULL, *x;
	int hit = 0;
	cJSON_ArrayForEach(x, names) hit |= cJSON_IsString(x) && !strcasecmp(x->valuestring, me);
	cJSON_Delete(names);
	return hit;
}

const char *mcp_push_topic_id(const cJSON *push)
{
	const char *id = mcp_str(push, "topicId");
	return id ? id : mcp_str(push, "topic");
}

char *mcp_topics_push_text(struct mcp_link *l, const cJSON *push, struct mcp_msg *g, int *wait)
{
	const char *tid = mcp_push_topic_id(push);
	struct mcp_topic *t = topic_slot(l, tid);
	*wait = 0;
	if (!t)
		return NULL;
	enum topicbody_how how = TB_UNREADABLE;
	char *text = NULL;
	if (t->state == TOPIC_KEYED || t->state == TOPIC_NO_KEY) {
		/* not opened with the keys held: a newer key epoch (its keyEpoch, or
		 * the next when the push names none) — asked for once, the push held */
		text = topicbody_text(push, &t->key, &how);
		int ep = topicbody_epoch_of(push), newest = topicring_epoch(&t->key.ring);
		int want = ep ? ep : newest + 1;
		if (!text && how != TB_PLAIN && !t->key.unencrypted && want > t->key.asked_epoch && want > newest) {
			t->key.asked_epoch = want;
			t->state = TOPIC_UNKNOWN;
		}
	}
	if (t->state == TOPIC_UNKNOWN) {
		char rid[160];
		snprintf(rid, sizeof rid, TKEY_PREFIX "%s", t->id);
		t->state = send_req(l, "topic_key", rid, t->id, NULL) == 0 ? TOPIC_ASKED : TOPIC_NO_KEY;
	}
	if (t->state == TOPIC_ASKED) {
		*wait = 1;
		return NULL;
	}
	snprintf(g->topic_name, sizeof g->topic_name, "%s", t->name[0] ? t->name : t->id);
	if (!text)
		text = topicbody_text(push, &t->key, &how);
	if (how == TB_NO_KEY)
		return strdup("(an encrypted topic message: no copy of the topic key is sealed for you yet)");
	g->unencrypted = how == TB_PLAIN;
	g->mention = text && mentions_me(l, text);
	return text;
}

int mcp_topics_waiting(const struct mcp_link *l, const char *topic_id)
{
	unsigned n = l->ntopics < MCP_TOPICS_MAX ? l->ntopics : MCP_TOPICS_MAX;
	for (unsigned i = 0; topic_id && i < n; i++)
		if (!strcmp(l->topics[i].id, topic_id))
			return l->topics[i].state == TOPIC_ASKED;
	return 0;
}

void mcp_topics_tick(struct mcp *m, int64_t now)
{
	if (now < m->next_reseal)
		return;
	m->next_reseal = now + MCP_RESEAL_MS;
	for (int i = 0; i < m->nlinks; i++) {
		struct mcp_link *l = &m->links[i];
		unsigned n = l->ntopics < MCP_TOPICS_MAX ? l->ntopics : MCP_TOPICS_MAX;
		for (unsigned k = 0; l->ready && k < n; k++) {
			char rid[160];
			if (l->topics[k].state != TOPIC_KEYED || !l->topics[k].key.have)
				continue;
			int stale = topicbody_stale(&l->topics[k].key); /* then its new copy may be sealed by now */
			snprintf(rid, sizeof rid, "%s%s", stale ? TKEY_PREFIX : PEND_PREFIX, l->topics[k].id);
			send_req(l, stale ? "topic_key" : "topic_pending_seals", rid, l->topics[k].id, NULL);
		}
	}
}

void mcp_topics_wipe(struct mcp_link *l)
{
	for (unsigned i = 0; i < MCP_TOPICS_MAX; i++)
		topicbody_key_wipe(&l->topics[i].key);
}
