/* mcp_keys — see mcp_keys.h.  One chain per topic and round: topic_list →
 * topic_members (are we a lead?) → topic_pending_seals → (we hold the
 * current epoch) topic_seal per pending member, or (we do not) topic_key →
 * (still not) our own first seal of the epoch, which the broker takes only
 * while nobody holds one.  Keys are taken, sealed and started by
 * cli/topicbody.c, and wiped when dropped. */
#include "cli/mcp_keys.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/mcp_calls.h"
#include "cli/mcp_out.h"
#include "cli/topicbody.h"

struct mk_topic {
	char id[64];
	struct topicbody_key key; /* every epoch's key held */
};

struct mcp_keys {
	int64_t next[MCP_LINKS_MAX];
	struct mk_topic topics[MCP_LINKS_MAX][MCP_KEYS_TOPICS];
};

static void ask(struct mcp_link *l, const char *type, const char *step, const char *topic, cJSON *extra)
{
	cJSON *f = extra ? extra : cJSON_CreateObject();
	char rid[96];
	snprintf(rid, sizeof rid, "mk-%s:%s", step, topic ? topic : "");
	cJSON_AddStringToObject(f, "type", type);
	cJSON_AddStringToObject(f, "_reqId", rid);
	if (topic)
		cJSON_AddStringToObject(f, "topic", topic);
	mcp_link_send(l, f);
	cJSON_Delete(f);
}

static struct mk_topic *topic_of(struct mcp *m, int link, const char *id, int make)
{
	struct mk_topic *free_slot = NULL;
	for (int i = 0; i < MCP_KEYS_TOPICS; i++) {
		struct mk_topic *t = &m->keys->topics[link][i];
		if (!strcmp(t->id, id))
			return t;
		if (!t->id[0] && !free_slot)
			free_slot = t;
	}
	if (make && free_slot && strlen(id) < sizeof free_slot->id) {
		snprintf(free_slot->id, sizeof free_slot->id, "%s", id);
		return free_slot;
	}
	return NULL;
}

void mcp_keys_tick(struct mcp *m, int64_t now)
{
	if (!m->keys && !(m->keys = calloc(1, sizeof *m->keys)))
		return;
	for (int i = 0; i < m->nlinks; i++) {
		if (!m->links[i].ready || now < m->keys->next[i])
			continue;
		m->keys->next[i] = now + MCP_KEYS_EVERY_MS;
		cJSON *f = cJSON_CreateObject();
		cJSON_AddNumberToObject(f, "limit", MCP_KEYS_TOPICS);
		ask(&m->links[i], "topic_list", "list", NULL, f);
	}
}

static void on_members(struct mcp_link *l, const cJSON *j, const char *topic)
{
	const cJSON *x;
	cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(j, "members"))
	{
		const char *id = mcp_str(x, "memberId"), *role = mcp_str(x, "role");
		if (id && role && !strcmp(id, l->cfg.member_id) && !strcmp(role, "lead"))
			ask(l, "topic_pending_seals", "pending", topic, NULL);
	}
}

static void on_pending(struct mcp_link *l, const cJSON *j, const char *topic)
{
	const cJSON *pending = cJSON_GetObjectItemCaseSensitive(j, "pending"), *x;
	const cJSON *ep = cJSON_GetObjectItemCaseSensitive(j, "epoch");
	if (cJSON_GetArraySize(pending) == 0)
		return;
	struct mk_topic *t = topic_of(l->m, l->idx, topic, 1);
	if (!t)
		return;
	if (cJSON_IsNumber(ep) && ep->valuedouble > t->key.ring.current_epoch && ep->valuedouble <= 1e9)
		t->key.ring.current_epoch = (int)ep->valuedouble;
	if (!t->key.have || topicbody_stale(&t->key)) {
		ask(l, "topic_key", "key", topic, NULL);
		return;
	}
	cJSON_ArrayForEach(x, pending)
	{
		cJSON *f = topicbody_seal_for(&t->key, x);
		if (f)
			ask(l, "topic_seal", "seal", topic, f);
	}
}

static void start_epoch(struct mcp_link *l, struct mk_topic *t)
{
	cJSON *f = topicbody_epoch_start(&t->key, t->key.ring.current_epoch, l->cfg.member_id, l->cfg.key.pk);
	if (f)
		ask(l, "topic_seal", "fresh", t->id, f);
}

static void on_key(struct mcp_link *l, const cJSON *j, const char *type, const char *topic)
{
	struct mk_topic *t = topic_of(l->m, l->idx, topic, 1);
	if (!t)
		return;
	const char *code = mcp_str(j, "code");
	if (!strcmp(type, "topic_key_response")) {
		if (topicbody_key_take(j, l->cfg.key.sk, &t->key) != 0) {
			mcp_log("topic %s: the sealed key does not open with this member's key", topic);
			return;
		}
		if (!topicbody_stale(&t->key))
			return; /* sealed for the others next round */
	} else if (!code || strcmp(code, "key_not_sealed_for_member") != 0) {
		return; /* unencrypted, or gone */
	}
	if (t->key.ring.current_epoch < 1)
		t->key.ring.current_epoch = 1;
	start_epoch(l, t); /* the broker takes it only while nobody holds the epoch */
}

static void on_fresh(struct mcp_link *l, const char *type, const char *topic)
{
	struct mk_topic *t = topic_of(l->m, l->idx, topic, 0);
	if (!t)
		return;
	if (!strcmp(type, "topic_sealed")) {
		int epoch = t->key.ring.fresh_epoch;
		topicbody_epoch_took(&t->key, 1);
		mcp_log("started key epoch %d of topic %s", epoch, topic);
		l->m->keys->next[l->idx] = 0; /* seal it for the others now */
	} else {
		topicbody_epoch_took(&t->key, 0);
	}
}

int mcp_keys_frame(struct mcp_link *l, const cJSON *j, const char *type)
{
	const char *rid = mcp_str(j, !strcmp(type, "error") ? "id" : "_reqId");
	if (!rid || strncmp(rid, "mk-", 3) != 0 || !l->m->keys)
		return 0;
	const char *colon = strchr(rid, ':');
	const char *topic = colon ? colon + 1 : "";
	size_t step = colon ? (size_t)(colon - rid - 3) : 0;
	const cJSON *x;
	if (step == 4 && !strncmp(rid + 3, "list", 4)) {
		cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(j, "topics"))
		{
			const char *id = mcp_str(x, "id");
			if (id)
				ask(l, "topic_members", "members", id, NULL);
		}
	} else if (step == 7 && !strncmp(rid + 3, "members", 7) && strcmp(type, "error")) {
		on_members(l, j, topic);
	} else if (step == 7 && !strncmp(rid + 3, "pending", 7) && strcmp(type, "error")) {
		on_pending(l, j, topic);
	} else if (step == 3 && !strncmp(rid + 3, "key", 3)) {
		on_key(l, j, type, topic);
	} else if (step == 5 && !strncmp(rid + 3, "fresh", 5)) {
		on_fresh(l, type, topic);
	}
	return 1; /* "seal" answers, and refusals of a round, need nothing more */
}

void mcp_keys_free(struct mcp *m)
{
	if (!m->keys)
		return;
	sodium_memzero(m->keys, sizeof *m->keys);
	free(m->keys);
	m->keys = NULL;
}
