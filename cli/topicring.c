/* topicring — see topicring.h.  Keys are never printed or logged. */
#include "cli/topicring.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

static const char *str(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int num(const cJSON *o, const char *name, int def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	/* an epoch: 0..1e9 (a broker's number, never cast out of range) */
	return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble <= 1e9 ? (int)v->valuedouble : def;
}

int topicring_take(struct topic_ring *r, const cJSON *answer, const unsigned char member_sk[64])
{
	unsigned char top[TOPICKEY_KEY_BYTES];
	if (topickey_open(str(answer, "encryptedKey"), str(answer, "nonce"), member_sk, top) != 0)
		return -1;
	int epoch = num(answer, "epoch", 1);
	r->current_epoch = num(answer, "currentEpoch", epoch);
	r->n = 0;
	const cJSON *x;
	cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(answer, "keys"))
	{
		if (r->n < TOPICRING_MAX && cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(x, "epoch")) &&
		    topickey_open(str(x, "encryptedKey"), str(x, "nonce"), member_sk, r->keys[r->n].key) == 0)
			r->keys[r->n++].epoch = num(x, "epoch", 1);
	}
	if (r->n == 0) { /* a broker before key epochs: the one copy */
		memcpy(r->keys[0].key, top, sizeof top);
		r->keys[0].epoch = epoch;
		r->n = 1;
	}
	sodium_memzero(top, sizeof top);
	return 0;
}

int topicring_epoch(const struct topic_ring *r)
{
	return r->n ? r->keys[0].epoch : 0;
}

int topicring_has(const struct topic_ring *r, int epoch)
{
	for (int i = 0; i < r->n; i++)
		if (r->keys[i].epoch == epoch)
			return 1;
	return 0;
}

const unsigned char *topicring_current(const struct topic_ring *r)
{
	return r->n && r->keys[0].epoch >= r->current_epoch ? r->keys[0].key : NULL;
}

int topicring_open_body(const struct topic_ring *r, int epoch, const char *nonce, const char *ct, unsigned char **plain,
                        size_t *n)
{
	for (int pass = 0; pass < 2 && nonce && ct; pass++)
		for (int i = 0; i < r->n; i++)
			if ((r->keys[i].epoch == epoch) == (pass == 0) &&
			    topickey_decrypt_body(r->keys[i].key, nonce, ct, plain, n) == 0)
				return 0;
	return -1;
}

cJSON *topicring_seal_for(const unsigned char key[TOPICKEY_KEY_BYTES], const char *member_id, const char *pubkey_hex)
{
	unsigned char edpk[32];
	char *enc = NULL, *nonce = NULL, sender[65];
	if (!member_id || !pubkey_hex || !is_hex(pubkey_hex, 64) || hex_decode(pubkey_hex, edpk, sizeof edpk) != 0 ||
	    topickey_seal(key, edpk, &enc, &nonce, sender) != 0)
		return NULL;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "memberId", member_id);
	cJSON_AddStringToObject(o, "encryptedKey", enc);
	cJSON_AddStringToObject(o, "nonce", nonce);
	free(enc);
	free(nonce);
	return o;
}

cJSON *topicring_start(struct topic_ring *r, int epoch, const char *my_member_id, const char *my_pubkey_hex)
{
	randombytes_buf(r->fresh, sizeof r->fresh);
	cJSON *o = topicring_seal_for(r->fresh, my_member_id, my_pubkey_hex);
	if (!o) {
		topicring_drop_fresh(r);
		return NULL;
	}
	r->fresh_epoch = epoch;
	return o;
}

void topicring_adopt(struct topic_ring *r)
{
	int keep = r->n < TOPICRING_MAX ? r->n : TOPICRING_MAX - 1;
	memmove(&r->keys[1], &r->keys[0], (size_t)keep * sizeof r->keys[0]);
	memcpy(r->keys[0].key, r->fresh, sizeof r->fresh);
	r->keys[0].epoch = r->fresh_epoch;
	r->n = keep + 1;
	if (r->fresh_epoch > r->current_epoch)
		r->current_epoch = r->fresh_epoch;
	topicring_drop_fresh(r);
}

void topicring_drop_fresh(struct topic_ring *r)
{
	sodium_memzero(r->fresh, sizeof r->fresh);
	r->fresh_epoch = 0;
}

void topicring_wipe(struct topic_ring *r)
{
	sodium_memzero(r, sizeof *r);
}
