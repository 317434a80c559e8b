/* invite — v1 invite tokens (see invite.h). */
#include "proto/invite.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

static const char *str_field(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

int invite_fields(const cJSON *obj, struct invite *out)
{
	memset(out, 0, sizeof *out);
	if (!cJSON_IsObject(obj))
		return -1;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "v");
	const cJSON *exp = cJSON_GetObjectItemCaseSensitive(obj, "expires_at");
	if (!cJSON_IsNumber(v) || v->valuedouble != 1.0 || !cJSON_IsNumber(exp))
		return -1;
	double e = exp->valuedouble;
	if (e < 0 || e > 9007199254740991.0 || e != (double)(int64_t)e)
		return -1;
	out->expires_at = (int64_t)e;
	out->mesh_id = str_field(obj, "mesh_id");
	out->mesh_slug = str_field(obj, "mesh_slug");
	out->broker_url = str_field(obj, "broker_url");
	out->mesh_root_key = str_field(obj, "mesh_root_key");
	out->role = str_field(obj, "role");
	out->owner_pubkey = str_field(obj, "owner_pubkey");
	out->signature = str_field(obj, "signature");
	if (!out->mesh_id || !*out->mesh_id || !out->mesh_slug || !out->broker_url || !out->mesh_root_key ||
	    !out->role || !out->owner_pubkey || !out->signature)
		return -1;
	if (!is_hex(out->owner_pubkey, 64) || !is_hex(out->signature, 128))
		return -1;
	return 0;
}

char *invite_signed_string(const struct invite *iv)
{
	size_t n = strlen(iv->mesh_id) + strlen(iv->mesh_slug) + strlen(iv->broker_url) + strlen(iv->mesh_root_key) +
	           strlen(iv->role) + strlen(iv->owner_pubkey) + 64;
	char *s = malloc(n);
	if (s)
		snprintf(s, n, "1|%s|%s|%s|%lld|%s|%s|%s", iv->mesh_id, iv->mesh_slug, iv->broker_url,
		         (long long)iv->expires_at, iv->mesh_root_key, iv->role, iv->owner_pubkey);
	return s;
}

int invite_verify(const struct invite *iv)
{
	unsigned char pk[32], sig[64];
	if (hex_decode(iv->owner_pubkey, pk, sizeof pk) != 0 || hex_decode(iv->signature, sig, sizeof sig) != 0)
		return 0;
	char *s = invite_signed_string(iv);
	if (!s)
		return 0;
	int ok = crypto_sign_verify_detached(sig, (const unsigned char *)s, strlen(s), pk) == 0;
	free(s);
	return ok;
}

int invite_sign(const struct invite *iv, const unsigned char sk[64], char sig_hex[129])
{
	unsigned char sig[64];
	char *s = invite_signed_string(iv);
	if (!s)
		return -1;
	crypto_sign_detached(sig, NULL, (const unsigned char *)s, strlen(s), sk);
	free(s);
	hex_encode(sig, sizeof sig, sig_hex);
	return 0;
}

cJSON *invite_payload_json(const struct invite *iv)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddNumberToObject(o, "v", 1);
	cJSON_AddStringToObject(o, "mesh_id", iv->mesh_id);
	cJSON_AddStringToObject(o, "mesh_slug", iv->mesh_slug);
	cJSON_AddStringToObject(o, "broker_url", iv->broker_url);
	cJSON_AddNumberToObject(o, "expires_at", (double)iv->expires_at);
	cJSON_AddStringToObject(o, "mesh_root_key", iv->mesh_root_key);
	cJSON_AddStringToObject(o, "role", iv->role);
	cJSON_AddStringToObject(o, "owner_pubkey", iv->owner_pubkey);
	cJSON_AddStringToObject(o, "signature", iv->signature);
	return o;
}

char *invite_token_encode(const cJSON *payload)
{
	char *js = cJSON_PrintUnformatted(payload);
	if (!js)
		return NULL;
	size_t n = strlen(js);
	size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char *tok = malloc(cap);
	if (tok)
		sodium_bin2base64(tok, cap, (const unsigned char *)js, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	free(js);
	return tok;
}

cJSON *invite_token_decode(const char *token)
{
	size_t n = strlen(token);
	while (n > 0 && token[n - 1] == '=') /* tolerate padding */
		n--;
	if (n == 0 || n / 4 * 3 + 3 > INVITE_TOKEN_MAX)
		return NULL;
	unsigned char *buf = malloc(n / 4 * 3 + 4);
	size_t len = 0;
	if (!buf)
		return NULL;
	if (sodium_base642bin(buf, n / 4 * 3 + 3, token, n, NULL, &len, NULL,
	                      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0) {
		free(buf);
		return NULL;
	}
	cJSON *o = cJSON_ParseWithLength((const char *)buf, len);
	free(buf);
	if (o && !cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}
