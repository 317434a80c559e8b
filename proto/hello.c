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
	/* §12.1: an optional session key, unsigned, 64 lowercase hex when not empty */
	const cJSON *sk = cJSON_GetObjectItemCaseSensitive(obj, "sessionPubkey");
	if (sk && !cJSON_IsNull(sk)) {
		if (!cJSON_IsString(sk) || (sk->valuestring[0] && !hello_key_shape_ok(sk->valuestring)))
			return HELLO_BAD_SESSION_PUBKEY;
		h->session_pubkey = sk->valuestring[0] ? sk->valuestring : NULL;
	}
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

/* ---- session_hello ---- */

int hello_key_shape_ok(const char *s)
{
	if (!s || strlen(s) != 64)
		return 0;
	for (const char *c = s; *c; c++)
		if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
			return 0;
	return 1;
}

int session_attest_canonical(char *buf, size_t cap, const char *parent, const char *session, int64_t expires_at)
{
	int n = snprintf(buf, cap, "claudemesh-session-attest|%s|%s|%" PRId64, parent, session, expires_at);
	return (n < 0 || (size_t)n >= cap) ? -1 : n;
}

int session_hello_canonical(char *buf, size_t cap, const char *mesh_id, const char *parent, const char *session,
			    int64_t timestamp)
{
	int n = snprintf(buf, cap, "claudemesh-session-hello|%s|%s|%s|%" PRId64, mesh_id, parent, session, timestamp);
	return (n < 0 || (size_t)n >= cap) ? -1 : n;
}

/* sig_hex (128 hex) by pk_hex (64 hex) over msg[0..n): 0, or -1 */
static int verify_hex(const char *sig_hex, const char *pk_hex, const char *msg, int n)
{
	unsigned char pk[crypto_sign_PUBLICKEYBYTES], sig[crypto_sign_BYTES];
	if (n < 0 || hex_decode(pk_hex, pk, sizeof pk) != 0 || hex_decode(sig_hex, sig, sizeof sig) != 0)
		return -1;
	return crypto_sign_verify_detached(sig, (const unsigned char *)msg, (unsigned long long)n, pk);
}

enum hello_code session_hello_check(const cJSON *obj, struct session_hello *h, int64_t now)
{
	memset(h, 0, sizeof *h);
	/* 1: required fields with the right JSON types and sane lengths */
	h->mesh_id = opt_str(obj, "meshId");
	h->parent_pubkey = opt_str(obj, "parentMemberPubkey");
	h->session_pubkey = opt_str(obj, "sessionPubkey");
	h->session_id = opt_str(obj, "sessionId");
	h->cwd = opt_str(obj, "cwd");
	h->signature = opt_str(obj, "signature");
	const cJSON *att = cJSON_GetObjectItemCaseSensitive(obj, "parentAttestation");
	const cJSON *pmi = cJSON_GetObjectItemCaseSensitive(obj, "parentMemberId");
	if (!h->mesh_id || !h->parent_pubkey || !h->session_pubkey || !h->session_id || !h->cwd || !h->signature ||
	    !cJSON_IsObject(att) || get_int(obj, "pid", &h->pid) != 0 || get_int(obj, "timestamp", &h->timestamp) != 0 ||
	    (pmi && !cJSON_IsNull(pmi) && !cJSON_IsString(pmi)))
		return HELLO_MALFORMED;
	h->parent_member_id = cJSON_IsString(pmi) ? pmi->valuestring : NULL;
	if (!*h->mesh_id || strlen(h->mesh_id) >= 64 || !*h->session_id || strlen(h->session_id) > 128 ||
	    strlen(h->cwd) > 4096 || h->pid < 0 || h->pid > INT32_MAX ||
	    (h->parent_member_id && strlen(h->parent_member_id) >= 64))
		return HELLO_MALFORMED;
	/* 2: key shapes */
	if (!hello_key_shape_ok(h->session_pubkey))
		return HELLO_BAD_SESSION_PUBKEY;
	if (!hello_key_shape_ok(h->parent_pubkey))
		return HELLO_BAD_PARENT_PUBKEY;
	/* 3: the attestation binds both keys */
	const char *a_session = opt_str(att, "sessionPubkey"), *a_parent = opt_str(att, "parentMemberPubkey");
	if (!a_session || !a_parent || strcmp(a_session, h->session_pubkey) != 0 ||
	    strcmp(a_parent, h->parent_pubkey) != 0)
		return HELLO_ATTESTATION_MISMATCH;
	/* 4: the attestation: lifetime, shape, the member's signature */
	h->att_signature = opt_str(att, "signature");
	if (get_int(att, "expiresAt", &h->expires_at) != 0)
		return HELLO_ATT_MALFORMED;
	if (h->expires_at <= now)
		return HELLO_ATT_EXPIRED;
	if (h->expires_at > now + SESSION_ATTEST_MAX_MS)
		return HELLO_ATT_TTL_TOO_LONG;
	if (!h->att_signature || !is_hex(h->att_signature, 128))
		return HELLO_ATT_MALFORMED;
	char msg[512];
	int n = session_attest_canonical(msg, sizeof msg, h->parent_pubkey, h->session_pubkey, h->expires_at);
	if (verify_hex(h->att_signature, h->parent_pubkey, msg, n) != 0)
		return HELLO_ATT_BAD_SIGNATURE;
	/* 5: the session key's signature of this hello */
	int64_t d = now - h->timestamp;
	if (d > HELLO_SKEW_MS || d < -HELLO_SKEW_MS)
		return HELLO_SESSION_TIMESTAMP_SKEW;
	if (!is_hex(h->signature, 128))
		return HELLO_SESSION_MALFORMED;
	n = session_hello_canonical(msg, sizeof msg, h->mesh_id, h->parent_pubkey, h->session_pubkey, h->timestamp);
	if (verify_hex(h->signature, h->session_pubkey, msg, n) != 0)
		return HELLO_SESSION_BAD_SIGNATURE;
	h->display_name = opt_str(obj, "displayName");
	const cJSON *caps = cJSON_GetObjectItemCaseSensitive(obj, "capabilities");
	h->capabilities = cJSON_IsArray(caps) ? caps : NULL;
	return HELLO_OK;
}
