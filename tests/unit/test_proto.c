/* test_proto — unit tests of proto/ helpers not covered elsewhere: canonical
 * JSON and the audit chain hash, ids, ISO times, config parsing. */
#include <check.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "proto/canon.h"
#include "proto/hello.h"
#include <cjson/cJSON.h>
#include <stdio.h>
#include "common/config.h"
#include "common/util.h"

START_TEST(canon_sorts_keys_recursively_and_keeps_array_order)
{
	cJSON *o = cJSON_Parse("{\"b\":\"z\",\"a\":{\"y\":[{\"c\":3,\"b\":2}],\"x\":1}}");
	char *s = canon_json(o);
	ck_assert_str_eq(s, "{\"a\":{\"x\":1,\"y\":[{\"b\":2,\"c\":3}]},\"b\":\"z\"}");
	free(s);
	/* the sorted object is still a well-formed cJSON list */
	ck_assert_ptr_nonnull(cJSON_GetObjectItem(o, "b"));
	cJSON_Delete(o);
}
END_TEST

START_TEST(chain_hash_matches_the_protocol_formula)
{
	char h[65];
	canon_chain_hash(h, "genesis", "m1", "message_sent", NULL,
			 "{\"a\":{\"x\":1,\"y\":[{\"b\":2,\"c\":3}]},\"b\":\"z\"}", "2026-01-01T00:00:00.000Z");
	/* sha256 of the same bytes computed independently (python hashlib) */
	ck_assert_str_eq(h, "67fa3693ef095132bf2aa7303df83ce5cdb21b3c7e743938884c99f615eea2bf");
}
END_TEST

START_TEST(ids_are_32_alphanumerics_and_distinct)
{
	char a[ID_LEN + 1], b[ID_LEN + 1];
	id_new(a);
	id_new(b);
	ck_assert_uint_eq(strlen(a), 32);
	ck_assert_uint_eq(strspn(a, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"), 32);
	ck_assert_str_ne(a, b);
}
END_TEST

START_TEST(iso_times_have_milliseconds_and_z)
{
	char buf[32];
	iso8601_ms(1775339620123LL, buf);
	ck_assert_str_eq(buf, "2026-04-04T21:53:40.123Z");
}
END_TEST

START_TEST(config_rejects_bad_values_naming_the_variable)
{
	struct config c;
	char err[256];
	clearenv(); /* the defaults below, whatever the caller exported (BROKER_PORT ...) */
	setenv("DATABASE_URL", "postgresql:///x?host=/tmp", 1);
	setenv("MAX_MESSAGE_BYTES", "12k", 1);
	ck_assert_int_eq(config_load(&c, 1, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "MAX_MESSAGE_BYTES"));
	setenv("MAX_MESSAGE_BYTES", "0", 1);
	ck_assert_int_eq(config_load(&c, 1, err, sizeof err), -1);
	unsetenv("MAX_MESSAGE_BYTES");
	setenv("DATABASE_URL", "mysql://x", 1);
	ck_assert_int_eq(config_load(&c, 1, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "DATABASE_URL"));
	setenv("DATABASE_URL", "postgres://u@localhost:5432/db", 1);
	ck_assert_int_eq(config_load(&c, 1, err, sizeof err), 0);
	ck_assert_int_eq(c.broker_port, 7900);
	ck_assert_int_eq(c.max_message_bytes, 65536);
	ck_assert_int_eq(c.status_ttl_seconds, 60);
	unsetenv("DATABASE_URL");
	ck_assert_int_eq(config_load(&c, 1, err, sizeof err), -1);
	ck_assert_int_eq(config_load(&c, 0, err, sizeof err), 0);
}
END_TEST

/* ---- session_hello (§12.1) ---- */

#define SH_NOW 1775339620000LL

struct sh_keys {
	unsigned char mpk[32], msk[64], spk[32], ssk[64];
	char mhex[65], shex[65];
};

static void sign_hex(char out[129], const unsigned char sk[64], const char *msg)
{
	unsigned char sig[64];
	crypto_sign_detached(sig, NULL, (const unsigned char *)msg, strlen(msg), sk);
	hex_encode(sig, 64, out);
}

/* a session_hello signed at SH_NOW, its attestation expiring at exp */
static cJSON *sh_frame(const struct sh_keys *k, int64_t exp, int64_t ts, const unsigned char *att_sk)
{
	char buf[512], sig[129];
	cJSON *o = cJSON_CreateObject(), *a = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "session_hello");
	cJSON_AddStringToObject(o, "meshId", "mesh1");
	cJSON_AddStringToObject(o, "parentMemberPubkey", k->mhex);
	cJSON_AddStringToObject(o, "sessionPubkey", k->shex);
	cJSON_AddStringToObject(o, "sessionId", "s1");
	cJSON_AddNumberToObject(o, "pid", 7);
	cJSON_AddStringToObject(o, "cwd", "/");
	cJSON_AddNumberToObject(o, "timestamp", (double)ts);
	session_attest_canonical(buf, sizeof buf, k->mhex, k->shex, exp);
	sign_hex(sig, att_sk ? att_sk : k->msk, buf);
	cJSON_AddStringToObject(a, "sessionPubkey", k->shex);
	cJSON_AddStringToObject(a, "parentMemberPubkey", k->mhex);
	cJSON_AddNumberToObject(a, "expiresAt", (double)exp);
	cJSON_AddStringToObject(a, "signature", sig);
	cJSON_AddItemToObject(o, "parentAttestation", a);
	session_hello_canonical(buf, sizeof buf, "mesh1", k->mhex, k->shex, ts);
	sign_hex(sig, k->ssk, buf);
	cJSON_AddStringToObject(o, "signature", sig);
	return o;
}

START_TEST(session_hello_checks_in_order)
{
	ck_assert_int_ge(sodium_init(), 0);
	struct sh_keys k;
	unsigned char other_pk[32], other_sk[64];
	crypto_sign_keypair(k.mpk, k.msk);
	crypto_sign_keypair(k.spk, k.ssk);
	crypto_sign_keypair(other_pk, other_sk);
	hex_encode(k.mpk, 32, k.mhex);
	hex_encode(k.spk, 32, k.shex);
	const int64_t hour = 3600000;
	struct session_hello h;
	struct {
		int64_t exp, ts;
		const unsigned char *att_sk;
		enum hello_code want;
	} cases[] = {
		{SH_NOW + 12 * hour, SH_NOW, NULL, HELLO_OK},
		{SH_NOW + 24 * hour, SH_NOW + 60000, NULL, HELLO_OK}, /* both limits pass */
		{SH_NOW, SH_NOW, NULL, HELLO_ATT_EXPIRED},
		{SH_NOW + 24 * hour + 1, SH_NOW, NULL, HELLO_ATT_TTL_TOO_LONG},
		{SH_NOW + hour, SH_NOW, other_sk, HELLO_ATT_BAD_SIGNATURE},
		{SH_NOW + hour, SH_NOW - 60001, NULL, HELLO_SESSION_TIMESTAMP_SKEW},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cJSON *o = sh_frame(&k, cases[i].exp, cases[i].ts, cases[i].att_sk);
		ck_assert_msg(session_hello_check(o, &h, SH_NOW) == cases[i].want, "case %zu", i);
		cJSON_Delete(o);
	}
	/* a session signature by another key, a mismatched attestation, bad shapes */
	cJSON *o = sh_frame(&k, SH_NOW + hour, SH_NOW, NULL);
	char sig[129];
	sign_hex(sig, other_sk, "claudemesh-session-hello|mesh1");
	cJSON_ReplaceItemInObject(o, "signature", cJSON_CreateString(sig));
	ck_assert_int_eq(session_hello_check(o, &h, SH_NOW), HELLO_SESSION_BAD_SIGNATURE);
	cJSON_ReplaceItemInObject(cJSON_GetObjectItem(o, "parentAttestation"), "sessionPubkey",
				  cJSON_CreateString(k.mhex));
	ck_assert_int_eq(session_hello_check(o, &h, SH_NOW), HELLO_ATTESTATION_MISMATCH);
	char upper[65];
	snprintf(upper, sizeof upper, "%s", k.mhex);
	for (char *c = upper; *c; c++)
		if (*c >= 'a' && *c <= 'f')
			*c = (char)(*c - 32);
	cJSON_ReplaceItemInObject(o, "parentMemberPubkey", cJSON_CreateString(upper));
	ck_assert_int_eq(session_hello_check(o, &h, SH_NOW), HELLO_BAD_PARENT_PUBKEY);
	cJSON_ReplaceItemInObject(o, "sessionPubkey", cJSON_CreateString("abc"));
	ck_assert_int_eq(session_hello_check(o, &h, SH_NOW), HELLO_BAD_SESSION_PUBKEY);
	cJSON_DeleteItemFromObject(o, "parentAttestation");
	ck_assert_int_eq(session_hello_check(o, &h, SH_NOW), HELLO_MALFORMED);
	cJSON_Delete(o);
	ck_assert_int_eq(session_hello_check(NULL, &h, SH_NOW), HELLO_MALFORMED);
}
END_TEST

START_TEST(hello_session_pubkey_is_lowercase_hex_or_empty)
{
	cJSON *o = cJSON_Parse("{\"meshId\":\"m\",\"memberId\":\"i\",\"pubkey\":\"00\",\"sessionId\":\"s\",\"pid\":1,"
			       "\"cwd\":\"/\",\"timestamp\":1775339620000,\"signature\":\"00\",\"sessionPubkey\":\"AB\"}");
	struct hello h;
	/* check 3 (hex shapes) comes first, so give the right lengths */
	char pk[65], sig[129];
	memset(pk, 'a', 64);
	pk[64] = 0;
	memset(sig, 'a', 128);
	sig[128] = 0;
	cJSON_ReplaceItemInObject(o, "pubkey", cJSON_CreateString(pk));
	cJSON_ReplaceItemInObject(o, "signature", cJSON_CreateString(sig));
	ck_assert_int_eq(hello_check(o, &h, SH_NOW), HELLO_BAD_SESSION_PUBKEY);
	cJSON_ReplaceItemInObject(o, "sessionPubkey", cJSON_CreateString(""));
	ck_assert_int_ne(hello_check(o, &h, SH_NOW), HELLO_BAD_SESSION_PUBKEY); /* empty: none */
	cJSON_ReplaceItemInObject(o, "sessionPubkey", cJSON_CreateString(pk));
	ck_assert_int_ne(hello_check(o, &h, SH_NOW), HELLO_BAD_SESSION_PUBKEY);
	cJSON_Delete(o);
}
END_TEST


int main(void)
{
	if (sodium_init() < 0)
		return 1;
	Suite *s = suite_create("proto");
	TCase *tc = tcase_create("proto");
	tcase_add_test(tc, canon_sorts_keys_recursively_and_keeps_array_order);
	tcase_add_test(tc, chain_hash_matches_the_protocol_formula);
	tcase_add_test(tc, ids_are_32_alphanumerics_and_distinct);
	tcase_add_test(tc, iso_times_have_milliseconds_and_z);
	tcase_add_test(tc, config_rejects_bad_values_naming_the_variable);
	tcase_add_test(tc, session_hello_checks_in_order);
	tcase_add_test(tc, hello_session_pubkey_is_lowercase_hex_or_empty);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
