/* topic_key — creator copies and the key requests (see topic_key.h).  The
 * broker's own key lives only inside topic_key_creator_copy and is wiped
 * there together with the ephemeral secret; nothing here logs a key, a
 * sealed copy or a nonce. */
#include "worker/topic_key.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "db/store_topic.h"
#include "proto/topickey.h"
#include "worker/audit.h"
#include "worker/msg.h"

int topic_key_creator_copy(struct topic_req *tr, const cJSON *msg, const char *member_pubkey_hex, struct topic_copy *c)
{
	memset(c, 0, sizeof *c);
	const char *enc, *nonce;
	int given;
	struct topickey_sealed s;
	const char *bad = msgcheck_topic_copy(msg, &given, &enc, &nonce, &s);
	if (bad) {
		topicreq_malformed(tr, bad);
		return -1;
	}
	if (given) {
		c->encrypted_key = strdup(enc);
		c->nonce = strdup(nonce);
		if (!c->encrypted_key || !c->nonce)
			log_fatal("out of memory");
		sodium_bin2hex(c->pubkey_hex, sizeof c->pubkey_hex, s.sender_pk, sizeof s.sender_pk);
		c->source = TOPIC_KEY_CLIENT;
		return 0;
	}
	unsigned char key[TOPICKEY_KEY_BYTES], member_pk[32];
	randombytes_buf(key, sizeof key);
	int sealed = hex_decode(member_pubkey_hex, member_pk, sizeof member_pk) == 0 &&
	             topickey_seal(key, member_pk, &c->encrypted_key, &c->nonce, c->pubkey_hex) == 0;
	sodium_memzero(key, sizeof key);
	if (sealed) {
		c->source = TOPIC_KEY_BROKER;
		return 0;
	}
	/* the topic is made all the same: encrypted, without a copy for its
	 * creator (who sees key_not_sealed_for_member until one is sealed) */
	log_warn("topic key: could not seal the creator's copy", "member_pubkey", member_pubkey_hex);
	unsigned char pk[crypto_box_PUBLICKEYBYTES], sk[crypto_box_SECRETKEYBYTES];
	crypto_box_keypair(pk, sk);
	sodium_memzero(sk, sizeof sk);
	sodium_bin2hex(c->pubkey_hex, sizeof c->pubkey_hex, pk, sizeof pk);
	c->source = TOPIC_KEY_NONE;
	return 0;
}

void topic_key_copy_free(struct topic_copy *c)
{
	free(c->encrypted_key);
	free(c->nonce);
	c->encrypted_key = c->nonce = NULL;
}

/* ---- topic_key ---- */

static void sender_of(const char *enc, const char *nonce, char sender[65])
{
	struct topickey_sealed s;
	sender[0] = 0;
	if (topickey_parse(enc, nonce, &s) == 0)
		sodium_bin2hex(sender, 65, s.sender_pk, sizeof s.sender_pk);
}

void topic_key_fill(cJSON *o, const struct topic_key_row *k)
{
	char sender[65];
	sender_of(k->encrypted_key, k->nonce, sender);
	cJSON_AddStringToObject(o, "topic", k->name);
	cJSON_AddStringToObject(o, "topicId", k->topic_id);
	cJSON_AddStringToObject(o, "encryptedKey", k->encrypted_key);
	cJSON_AddStringToObject(o, "nonce", k->nonce);
	cJSON_AddStringToObject(o, "senderPubkey", sender);
	cJSON_AddStringToObject(o, "createdAt", k->created_at ? k->created_at : "");
	/* issue 22: the epoch of that copy (the newest the member holds), the
	 * topic's current epoch, and every copy the member holds */
	cJSON_AddNumberToObject(o, "epoch", k->epoch);
	cJSON_AddNumberToObject(o, "currentEpoch", k->current_epoch);
	if (k->sealed_by)
		cJSON_AddStringToObject(o, "sealedBy", k->sealed_by);
	else
		cJSON_AddNullToObject(o, "sealedBy");
	cJSON *arr = cJSON_AddArrayToObject(o, "keys");
	for (int i = 0; i < k->n_copies; i++) {
		const struct topic_key_copy *c = &k->copies[i];
		cJSON *x = cJSON_CreateObject();
		sender_of(c->encrypted_key, c->nonce, sender);
		cJSON_AddNumberToObject(x, "epoch", c->epoch);
		cJSON_AddStringToObject(x, "encryptedKey", c->encrypted_key);
		cJSON_AddStringToObject(x, "nonce", c->nonce);
		cJSON_AddStringToObject(x, "senderPubkey", sender);
		if (c->sealed_by)
			cJSON_AddStringToObject(x, "sealedBy", c->sealed_by);
		else
			cJSON_AddNullToObject(x, "sealedBy");
		cJSON_AddStringToObject(x, "createdAt", c->created_at);
		cJSON_AddItemToArray(arr, x);
	}
}

static void key_cb(void *arg, enum store_topic_status st, const struct topic_key_row *k, const char *err)
{
	struct topic_req *tr = arg;
	if (err) {
		log_warn("topic_key failed", "error", err);
		topicreq_error(tr, PEER_ERR_TOPIC_DB);
	} else if (st != TOPIC_OK) {
		topicreq_error(tr, topic_status_error(st));
	} else {
		cJSON *o = topicreq_reply("topic_key_response");
		topic_key_fill(o, k);
		topicreq_send(tr, o);
	}
	free(tr);
}

void topic_key_on_get(struct worker *w, const cJSON *msg)
{
	struct topic_req *tr = topicreq_new(w, msg);
	if (!tr)
		return;
	if (topicreq_topic(tr, msg) == 0 && topicreq_db(tr)) {
		if (store_topic_key(w->db, w->me.mesh_id, tr->topic, w->me.member_id, key_cb, tr) == 0)
			return;
		topicreq_error(tr, PEER_ERR_TOPIC_DB);
	}
	free(tr);
}

/* ---- topic_pending_seals ---- */

void topic_key_pending_fill(cJSON *o, const char *name, const char *topic_id, const char *sender_pubkey, int epoch,
                            const struct topic_pending_row *rows, int n)
{
	cJSON_AddNumberToObject(o, "epoch", epoch);
	cJSON_AddStringToObject(o, "topic", name);
	cJSON_AddStringToObject(o, "topicId", topic_id);
	if (sender_pubkey)
		cJSON_AddStringToObject(o, "senderPubkey", sender_pubkey);
	else
		cJSON_AddNullToObject(o, "senderPubkey");
	cJSON *arr = cJSON_AddArrayToObject(o, "pending");
	for (int i = 0; i < n; i++) {
		cJSON *m = cJSON_CreateObject();
		cJSON_AddStringToObject(m, "memberId", rows[i].member_id);
		cJSON_AddStringToObject(m, "pubkey", rows[i].pubkey);
		cJSON_AddStringToObject(m, "displayName", rows[i].display_name);
		cJSON_AddItemToArray(arr, m);
	}
}

static void pending_cb(void *arg, enum store_topic_status st, const char *topic_id, const char *name,
                       const char *sender_pubkey, int epoch, const struct topic_pending_row *rows, int n,
                       const char *err)
{
	struct topic_req *tr = arg;
	if (err) {
		log_warn("topic_pending_seals failed", "error", err);
		topicreq_error(tr, PEER_ERR_TOPIC_DB);
	} else if (st == TOPIC_NOT_FOUND) {
		topicreq_error(tr, PEER_ERR_TOPIC_NOT_FOUND);
	} else if (st == TOPIC_NOT_MEMBER) {
		topicreq_error(tr, PEER_ERR_NOT_A_MEMBER);
	} else {
		cJSON *o = topicreq_reply("topic_pending_seals_response");
		topic_key_pending_fill(o, name, topic_id, sender_pubkey, epoch, rows, n);
		topicreq_send(tr, o);
	}
	free(tr);
}

void topic_key_on_pending(struct worker *w, const cJSON *msg)
{
	struct topic_req *tr = topicreq_new(w, msg);
	if (!tr)
		return;
	if (topicreq_topic(tr, msg) == 0 && topicreq_db(tr)) {
		if (store_topic_pending(w->db, w->me.mesh_id, tr->topic, w->me.member_id, TOPIC_PENDING_MAX, pending_cb,
		                        tr) == 0)
			return;
		topicreq_error(tr, PEER_ERR_TOPIC_DB);
	}
	free(tr);
}

/* ---- topic_seal ---- */

static void seal_cb(void *arg, enum store_topic_status st, const char *topic_id, const char *sealed_at, const char *err)
{
	struct topic_req *tr = arg;
	struct worker *w = tr->w;
	if (err) {
		log_warn("topic_seal failed", "error", err);
		topicreq_error(tr, PEER_ERR_TOPIC_DB);
	} else if (st != TOPIC_OK) {
		topicreq_error(tr, topic_status_error(st));
	} else {
		cJSON *o = topicreq_reply("topic_sealed");
		cJSON_AddStringToObject(o, "topic", tr->topic);
		cJSON_AddStringToObject(o, "topicId", topic_id);
		cJSON_AddStringToObject(o, "memberId", tr->extra);
		cJSON_AddStringToObject(o, "sealedAt", sealed_at);
		topicreq_send(tr, o);
		cJSON *pl = cJSON_CreateObject();
		cJSON_AddStringToObject(pl, "topicId", topic_id);
		cJSON_AddStringToObject(pl, "memberId", tr->extra);
		audit_event(w, w->me.mesh_id, "topic_key_sealed", w->me.member_id, w->me.display_name, pl);
	}
	free(tr);
}

void topic_key_on_seal(struct worker *w, const cJSON *msg)
{
	struct topic_req *tr = topicreq_new(w, msg);
	if (!tr)
		return;
	const char *member, *enc, *nonce, *bad;
	struct topickey_sealed s;
	char key_id[ID_LEN + 1];
	if (topicreq_topic(tr, msg) != 0)
		goto done;
	if ((bad = msgcheck_topic_seal(msg, &member, &enc, &nonce, &s)) != NULL) {
		topicreq_malformed(tr, bad);
		goto done;
	}
	snprintf(tr->extra, sizeof tr->extra, "%s", member);
	id_new(key_id);
	struct topic_seal ts = {w->me.mesh_id, tr->topic, w->me.member_id, member, key_id, enc, nonce};
	if (!topicreq_db(tr))
		goto done;
	if (store_topic_seal(w->db, &ts, seal_cb, tr) == 0)
		return;
	topicreq_error(tr, PEER_ERR_TOPIC_DB);
done:
	free(tr);
}

/* ---- topic_key_discard: a copy that does not open goes (own, or a lead's reset) ---- */

static void discard_cb(void *arg, enum store_topic_status st, const char *topic_id, int epoch, const char *err)
{
	struct topic_req *tr = arg;
	struct worker *w = tr->w;
	if (err) {
		log_warn("topic_key_discard failed", "error", err);
		topicreq_error(tr, PEER_ERR_TOPIC_DB);
	} else if (st != TOPIC_OK) {
		topicreq_error(tr, topic_status_error(st));
	} else {
		cJSON *o = topicreq_reply("topic_key_discarded");
		cJSON_AddStringToObject(o, "topic", tr->topic);
		cJSON_AddStringToObject(o, "topicId", topic_id);
		cJSON_AddStringToObject(o, "memberId", tr->extra);
		cJSON_AddNumberToObject(o, "epoch", epoch);
		topicreq_send(tr, o);
		cJSON *pl = cJSON_CreateObject();
		cJSON_AddStringToObject(pl, "topicId", topic_id);
		cJSON_AddStringToObject(pl, "memberId", tr->extra);
		cJSON_AddNumberToObject(pl, "epoch", epoch);
		audit_event(w, w->me.mesh_id, "topic_key_discarded", w->me.member_id, w->me.display_name, pl);
	}
	free(tr);
}

void topic_key_on_discard(struct worker *w, const cJSON *msg)
{
	struct topic_req *tr = topicreq_new(w, msg);
	if (!tr)
		return;
	const char *member, *bad;
	if (topicreq_topic(tr, msg) != 0)
		goto done;
	if ((bad = topicreq_discard_args(msg, &member)) != NULL) {
		topicreq_malformed(tr, bad);
		goto done;
	}
	snprintf(tr->extra, sizeof tr->extra, "%s", member ? member : w->me.member_id);
	if (!topicreq_db(tr))
		goto done;
	if (store_topic_discard(w->db, w->me.mesh_id, tr->topic, w->me.member_id, member, discard_cb, tr) == 0)
		return;
	topicreq_error(tr, PEER_ERR_TOPIC_DB);
done:
	free(tr);
}
