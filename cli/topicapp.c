/* topicapp — see topicapp.h. */
#include "cli/topicapp.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/keyfile.h"
#include "common/util.h"

void topicapp_rid(char *rid, size_t cap)
{
	char id[ID_LEN + 1];
	id_new(id);
	snprintf(rid, cap, "%.16s", id);
}

void topicapp_send(struct tcmd *t, const char *type, char *rid, size_t cap, cJSON *extra)
{
	cJSON *o = extra ? extra : cJSON_CreateObject();
	topicapp_rid(rid, cap);
	cJSON_AddStringToObject(o, "type", type);
	cJSON_AddStringToObject(o, "_reqId", rid);
	if (t->topic && strcmp(type, "topic_create") && strcmp(type, "topic_list") && !cJSON_HasObjectItem(o, "topic"))
		cJSON_AddStringToObject(o, "topic", t->topic);
	if (peercmd_app_send(&t->app, o) != 0) {
		cli_err("could not queue a request");
		peercmd_app_finish(&t->app, CLI_EXIT_FAIL);
	}
	cJSON_Delete(o);
}

/* tail: seal the current epoch's key for each pending member */
static void reseal(struct tcmd *t, const cJSON *pending)
{
	const cJSON *m;
	cJSON_ArrayForEach(m, pending)
	{
		const char *id = peercmd_str(m, "memberId");
		cJSON *o = topicbody_seal_for(&t->key, m);
		if (!o) {
			cli_err("topic %s: cannot seal for member %s", t->topic, id ? id : "?");
			continue;
		}
		char rid[24];
		topicapp_send(t, "topic_seal", rid, sizeof rid, o);
	}
}

/* tail: the pending seals of the current epoch; ours to seal when we hold
 * its key, ours to start when we lead and nobody holds it yet: a fresh key,
 * sealed to ourselves first (a lead may seal an epoch's first copy only),
 * the others at the next look */
void topicapp_pending(struct tcmd *t, const cJSON *j)
{
	const cJSON *ep = cJSON_GetObjectItemCaseSensitive(j, "epoch");
	const cJSON *pending = cJSON_GetObjectItemCaseSensitive(j, "pending"), *m;
	int epoch = cJSON_IsNumber(ep) && ep->valuedouble >= 0 && ep->valuedouble <= 1e9 ? (int)ep->valuedouble
	                                                                                : topicring_epoch(&t->key.ring);
	if (epoch > t->key.ring.current_epoch)
		t->key.ring.current_epoch = epoch;
	if (t->key.have && !topicbody_stale(&t->key)) {
		reseal(t, pending);
		return;
	}
	const struct keyfile_peer *me = peercmd_app_peer(&t->app);
	int me_pending = 0;
	cJSON_ArrayForEach(m, pending)
	{
		const char *id = peercmd_str(m, "memberId");
		me_pending |= id && !strcmp(id, me->member_id);
	}
	if (!t->is_lead || !me_pending || t->rid_fresh[0])
		return;
	cJSON *o = topicbody_epoch_start(&t->key, epoch, me->member_id, me->key.pk);
	if (o)
		topicapp_send(t, "topic_seal", t->rid_fresh, sizeof t->rid_fresh, o);
}

/* the answer to our own first seal of an epoch: the fresh key is ours, or
 * another lead was first (then its copy comes to us like any other) */
void topicapp_took_epoch(struct tcmd *t, const cJSON *j, const char *type)
{
	int epoch = t->key.ring.fresh_epoch;
	if (!strcmp(type, "topic_sealed")) {
		topicbody_epoch_took(&t->key, 1);
		fprintf(stderr, "meshctl: started key epoch %d of topic %s\n", epoch, t->topic);
		t->next_tick = 0; /* seal it for the others now */
	} else {
		const char *msg = peercmd_str(j, "message");
		cli_err("topic %s: could not start key epoch %d: %s", t->topic, epoch, msg ? msg : type);
		topicbody_epoch_took(&t->key, 0);
	}
	t->rid_fresh[0] = 0;
}

void topicapp_tick(struct peercmd_app *a, int64_t now)
{
	struct tcmd *t = a->arg;
	if (t->op != OP_TAIL || now < t->next_tick)
		return;
	t->next_tick = now + TAIL_RESEAL_MS;
	if (t->key.unencrypted)
		return;
	if (t->key.have || t->is_lead) {
		char rid[24];
		topicapp_send(t, "topic_pending_seals", rid, sizeof rid, NULL);
	}
	/* no key, or not the current epoch's: someone may have sealed it to us */
	if ((!t->key.have || topicbody_stale(&t->key)) && !t->key_asked && !t->rid_fresh[0]) {
		topicapp_send(t, "topic_key", t->rid_key, sizeof t->rid_key, NULL);
		t->key_asked = 1;
	}
}
