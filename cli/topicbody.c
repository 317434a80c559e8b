/* topicbody — topic keys and bodies on the client (see topicbody.h); the
 * keys themselves, one per epoch, are kept by cli/topicring.c.  Keys,
 * nonces and bodies are never printed or logged. */
#include "cli/topicbody.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "proto/box.h"

#define TB_MENTIONS_MAX 32

static const char *str_of(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

int topicbody_key_take(const cJSON *reply, const unsigned char member_sk[64], struct topicbody_key *k)
{
	const char *type = str_of(reply, "type"), *id = str_of(reply, "topicId"), *name = str_of(reply, "topic");
	if (type && !strcmp(type, "error")) {
		const char *code = str_of(reply, "code");
		if (code && !strcmp(code, "topic_unencrypted")) {
			k->unencrypted = 1;
			return 0;
		}
		return -2;
	}
	if (topicring_take(&k->ring, reply, member_sk) != 0)
		return -1;
	k->have = k->ring.n > 0;
	if (id)
		snprintf(k->topic_id, sizeof k->topic_id, "%s", id);
	if (name)
		snprintf(k->name, sizeof k->name, "%s", name);
	return 0;
}

int topicbody_stale(const struct topicbody_key *k)
{
	return k->have && !topicring_current(&k->ring);
}

cJSON *topicbody_post_frame(const struct topicbody_key *k, const char *topic, const char *text, const char *priority,
                            const char *id, const cJSON *mentions)
{
	char *nonce = NULL, *ct = NULL, target[160];
	int version = 2;
	const unsigned char *key = k->have ? topicring_current(&k->ring) : NULL;
	if (k->have && !key) {
		return NULL; /* a stale key must carry nothing new */
	} else if (key) {
		if (topickey_encrypt_body(key, (const unsigned char *)text, strlen(text), &nonce, &ct) != 0)
			return NULL;
	} else if (k->unencrypted) {
		/* a legacy topic: the broker holds no key, its bodies are v1 */
		unsigned char rnd[24];
		randombytes_buf(rnd, sizeof rnd);
		nonce = box_b64_encode(rnd, sizeof rnd);
		ct = box_b64_encode((const unsigned char *)text, strlen(text));
		version = 1;
	} else {
		return NULL;
	}
	snprintf(target, sizeof target, "#%s", k->topic_id[0] ? k->topic_id : topic);
	cJSON *o = nonce && ct ? cJSON_CreateObject() : NULL;
	if (o && !(cJSON_AddStringToObject(o, "type", "send") && cJSON_AddStringToObject(o, "id", id) &&
	           cJSON_AddStringToObject(o, "targetSpec", target) && cJSON_AddStringToObject(o, "priority", priority) &&
	           cJSON_AddStringToObject(o, "nonce", nonce) && cJSON_AddStringToObject(o, "ciphertext", ct) &&
	           cJSON_AddNumberToObject(o, "bodyVersion", version) &&
	           (!mentions || cJSON_AddItemToObject(o, "mentions", cJSON_Duplicate(mentions, 1))))) {
		cJSON_Delete(o);
		o = NULL;
	}
	free(nonce);
	free(ct);
	return o;
}

char *topicbody_text(const cJSON *msg, const struct topicbody_key *k, enum topicbody_how *how)
{
	const char *nonce = str_of(msg, "nonce"), *ct = str_of(msg, "ciphertext");
	const cJSON *bv = cJSON_GetObjectItemCaseSensitive(msg, "bodyVersion");
	unsigned char *plain = NULL;
	size_t n = 0;
	*how = TB_UNREADABLE;
	if (!ct)
		return NULL;
	if (cJSON_IsNumber(bv) && bv->valuedouble == 2) {
		if (!k || !k->have) {
			*how = TB_NO_KEY;
			return NULL;
		}
		int epoch = topicbody_epoch_of(msg);
		if (topicring_open_body(&k->ring, epoch, nonce, ct, &plain, &n) != 0) {
			/* an epoch whose copy we lack (when it names none: the current one) */
			if (epoch ? !topicring_has(&k->ring, epoch) : !topicring_current(&k->ring))
				*how = TB_NO_KEY;
			return NULL;
		}
		*how = TB_SEALED;
	} else {
		if (box_b64_decode(ct, &plain, &n) != 0)
			return NULL;
		*how = TB_PLAIN;
	}
	if (utf8_valid(plain, n))
		return (char *)plain;
	sodium_memzero(plain, n);
	free(plain);
	*how = TB_UNREADABLE;
	return NULL;
}

int topicbody_epoch_of(const cJSON *msg)
{
	const cJSON *ev = cJSON_GetObjectItemCaseSensitive(msg, "keyEpoch");
	return cJSON_IsNumber(ev) && ev->valuedouble >= 1 && ev->valuedouble <= 1e9 ? (int)ev->valuedouble : 0;
}

static int name_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
	       c == '-';
}

cJSON *topicbody_mentions(const char *text)
{
	cJSON *a = NULL;
	int n = 0;
	for (const char *p = text; *p && n < TB_MENTIONS_MAX; p++) {
		if (*p != '@' || (p > text && name_byte((unsigned char)p[-1])))
			continue;
		size_t len = 0;
		while (name_byte((unsigned char)p[1 + len]) && len < 64)
			len++;
		if (!len)
			continue;
		char name[65];
		memcpy(name, p + 1, len);
		name[len] = 0;
		if (!a)
			a = cJSON_CreateArray();
		if (a)
			cJSON_AddItemToArray(a, cJSON_CreateString(name));
		n++;
		p += len;
	}
	return a;
}

cJSON *topicbody_seal_for(const struct topicbody_key *k, const cJSON *pending_member)
{
	const unsigned char *key = k->have ? topicring_current(&k->ring) : NULL;
	if (!key)
		return NULL;
	return topicring_seal_for(key, str_of(pending_member, "memberId"), str_of(pending_member, "pubkey"));
}

cJSON *topicbody_epoch_start(struct topicbody_key *k, int epoch, const char *my_member_id,
                             const unsigned char my_pk[32])
{
	char pk[65];
	sodium_bin2hex(pk, sizeof pk, my_pk, 32);
	return epoch >= 1 ? topicring_start(&k->ring, epoch, my_member_id, pk) : NULL;
}

void topicbody_epoch_took(struct topicbody_key *k, int took)
{
	if (took && k->ring.fresh_epoch) {
		topicring_adopt(&k->ring);
		k->have = 1;
	} else {
		topicring_drop_fresh(&k->ring);
	}
}

void topicbody_key_wipe(struct topicbody_key *k)
{
	topicring_wipe(&k->ring);
	k->have = 0;
}
