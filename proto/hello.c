/* hello — signed hello checks shared by the worker (verify) and meshctl
 * (sign); see hello.h and docs/protocol.md §2. */
#include "hello.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"

static const struct {
	const char *code, *message;
} hello_codes[] = {
	[HELLO_OK] = {"ok", "ok"},
#define X(id, label, code, message) [HELLO_##id] = {code, message},
	HELLO_REJECTIONS(X)
#undef X
};

const char *hello_code_str(enum hello_code c) { return hello_codes[c].code; }

/* the error.message text of §2 */
const char *hello_code_message(enum hello_code c) { return hello_codes[c].message; }

int hello_canonical(char *buf, size_t cap, const char *mesh_id, const char *member_id,
		    const char *pubkey, int64_t timestamp)
{
	int n = snprintf(buf, cap, "%s|%s|%s|%" PRId64, mesh_id, member_id, pubkey, timestamp);
	return (n < 0 || (size_t)n >= cap) ? -1 : n;
}

int hello_sign(char sig_hex[129], const unsigned char sk[64], const char *mesh_id,
	       const char *member_id, const char *pubkey, int64_t timestamp)
{
	char msg[1024];
	unsigned char sig[crypto_sign_BYTES];
	int n = hello_canonical(msg, sizeof msg, mesh_id, member_id, pubkey, timestamp);
	if (n < 0)
		return -1;
	crypto_sign_detached(sig, NULL, (const unsigned char *)msg, (unsigned long long)n, sk);
	hex_encode(sig, sizeof sig, sig_hex);
	return 0;
}

static const char *opt_str(const cJSON *obj, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* an integer-valued JSON number that a double holds exactly */
static int get_int(const cJSON *obj, const char *k, int64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, k);
	if (!cJSON_IsNumber(v))
		return -1;
	double d = v->valuedouble;
	if (d != d || d < -9007199254740991.0 || d > 9007199254740991.0 || d != (double)(int64_t)d)
		return -1;
	*out = (int64_t)d;
	return 0;
}

enum hello_code hello_check(const cJSON *obj, struct hello *h, int64_t now)
{
	memset(h, 0, sizeof *h);
	/* 1: required fields with the right JSON types and sane lengths */
	h->mesh_id = opt_str(obj, "meshId");
	h->member_id = opt_str(obj, "memberId");
	h->pubkey = opt_str(obj, "pubkey");
	h->session_id = opt_str(obj, "sessionId");
	h->cwd = opt_str(obj, "cwd");
	h->signature = opt_str(obj, "signature");
	if (!h->mesh_id || !h->member_id || !h->pubkey || !h->session_id || !h->cwd ||
	    !h->signature || get_int(obj, "pid", &h->pid) != 0 ||
	    get_int(obj, "timestamp", &h->timestamp) != 0)
		return HELLO_MALFORMED;
	if (!*h->mesh_id || strlen(h->mesh_id) >= 64 || !*h->member_id || strlen(h->member_id) >= 64 ||
	    !*h->session_id || strlen(h->session_id) > 128 || strlen(h->cwd) > 4096 ||
	    h->pid < 0 || h->pid > INT32_MAX)
		return HELLO_MALFORMED;
	/* 2: clock skew; exactly 60000 ms passes */
	int64_t d = now - h->timestamp;
	if (d > HELLO_SKEW_MS || d < -HELLO_SKEW_MS)
		return HELLO_TIMESTAMP_SKEW;
	/* 3: hex shapes */
	if (!is_hex(h->pubkey, 64) || !is_hex(h->signature, 128))
		return HELLO_MALFORMED;
	/* 4: the signature over the canonical bytes, pubkey exactly as sent */
	unsigned char pk[crypto_sign_PUBLICKEYBYTES], sig[crypto_sign_BYTES];
	char msg[512];
	int n = hello_canonical(msg, sizeof msg, h->mesh_id, h->member_id, h->pubkey, h->timestamp);
	if (n < 0 || hex_decode(h->pubkey, pk, sizeof pk) != 0 ||
	    hex_decode(h->signature, sig, sizeof sig) != 0)
		return HELLO_MALFORMED;
	if (crypto_sign_verify_detached(sig, (const unsigned char *)msg, (unsigned long long)n, pk) != 0)
		return HELLO_BAD_SIGNATURE;
	/* optional fields: stored when present with the right type */
	h->display_name = opt_str(obj, "displayName");
	h->hostname = opt_str(obj, "hostname");
	h->peer_type = opt_str(obj, "peerType");
	h->channel = opt_str(obj, "channel");
	h->model = opt_str(obj, "model");
	h->protocol_version = opt_str(obj, "protocolVersion");
	const cJSON *caps = cJSON_GetObjectItemCaseSensitive(obj, "capabilities");
	h->capabilities = cJSON_IsArray(caps) ? caps : NULL;
	const cJSON *groups = cJSON_GetObjectItemCaseSensitive(obj, "groups");
	h->groups = cJSON_IsArray(groups) ? groups : NULL;
	return HELLO_OK;
}
