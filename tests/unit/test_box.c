/* test_box — the direct-message crypto of docs/protocol.md §3.3 (proto/box.c) and
 * its interplay with the signed hello: the ed25519 key pair a peer signs its
 * hello with is the one its messages are boxed with. */
#include <check.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "proto/box.h"
#include "proto/hello.h"
#include "common/util.h"

struct party {
	unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
};

static void party_new(struct party *p)
{
	crypto_sign_keypair(p->pk, p->sk);
}

START_TEST(box_round_trip_alice_to_bob)
{
	struct party a, b;
	party_new(&a);
	party_new(&b);
	const char *msg = "hello bob, ünïcode and all";
	char *nonce = NULL, *ct = NULL;
	ck_assert_int_eq(box_encrypt_direct(msg, strlen(msg), b.pk, a.sk, &nonce, &ct), 0);
	unsigned char *plain = NULL;
	size_t len = 0;
	ck_assert_int_eq(box_decrypt_direct(nonce, ct, a.pk, b.sk, &plain, &len), 0);
	ck_assert_uint_eq(len, strlen(msg));
	ck_assert_mem_eq(plain, msg, len);
	ck_assert_int_eq(plain[len], 0); /* NUL after the bytes */
	free(plain);
	free(nonce);
	free(ct);
}
END_TEST

START_TEST(box_two_byte_plaintext_gives_32_char_nonce_and_24_char_ciphertext)
{
	struct party a, b;
	party_new(&a);
	party_new(&b);
	char *nonce = NULL, *ct = NULL;
	ck_assert_int_eq(box_encrypt_direct("hi", 2, b.pk, a.sk, &nonce, &ct), 0);
	ck_assert_uint_eq(strlen(nonce), 32);
	ck_assert_uint_eq(strlen(ct), 24);
	/* standard alphabet with padding: 18 bytes -> 24 chars, 24 bytes -> 32 chars */
	unsigned char *raw = NULL;
	size_t n = 0;
	ck_assert_int_eq(box_b64_decode(nonce, &raw, &n), 0);
	ck_assert_uint_eq(n, crypto_box_NONCEBYTES);
	free(raw);
	ck_assert_int_eq(box_b64_decode(ct, &raw, &n), 0);
	ck_assert_uint_eq(n, 2 + crypto_box_MACBYTES);
	free(raw);
	free(nonce);
	free(ct);
}
END_TEST

START_TEST(box_empty_plaintext_round_trips)
{
	struct party a, b;
	party_new(&a);
	party_new(&b);
	char *nonce = NULL, *ct = NULL;
	unsigned char *plain = NULL;
	size_t len = 99;
	ck_assert_int_eq(box_encrypt_direct("", 0, b.pk, a.sk, &nonce, &ct), 0);
	ck_assert_int_eq(box_decrypt_direct(nonce, ct, a.pk, b.sk, &plain, &len), 0);
	ck_assert_uint_eq(len, 0);
	free(plain);
	free(nonce);
	free(ct);
}
END_TEST

START_TEST(box_wrong_key_fails_to_decrypt)
{
	struct party a, b, eve;
	party_new(&a);
	party_new(&b);
	party_new(&eve);
	char *nonce = NULL, *ct = NULL;
	unsigned char *plain = NULL;
	size_t len = 0;
	ck_assert_int_eq(box_encrypt_direct("secret", 6, b.pk, a.sk, &nonce, &ct), 0);
	/* eve is not the recipient */
	ck_assert_int_eq(box_decrypt_direct(nonce, ct, a.pk, eve.sk, &plain, &len), -1);
	ck_assert_ptr_null(plain);
	/* the right recipient, but the wrong claimed sender */
	ck_assert_int_eq(box_decrypt_direct(nonce, ct, eve.pk, b.sk, &plain, &len), -1);
	ck_assert_ptr_null(plain);
	free(nonce);
	free(ct);
}
END_TEST

START_TEST(box_tampered_ciphertext_or_nonce_fails)
{
	struct party a, b;
	party_new(&a);
	party_new(&b);
	char *nonce = NULL, *ct = NULL;
	unsigned char *plain = NULL;
	size_t len = 0;
	ck_assert_int_eq(box_encrypt_direct("payload", 7, b.pk, a.sk, &nonce, &ct), 0);
	char *bad = strdup(ct);
	bad[3] = bad[3] == 'A' ? 'B' : 'A';
	ck_assert_int_eq(box_decrypt_direct(nonce, bad, a.pk, b.sk, &plain, &len), -1);
	free(bad);
	bad = strdup(nonce);
	bad[5] = bad[5] == 'A' ? 'B' : 'A';
	ck_assert_int_eq(box_decrypt_direct(bad, ct, a.pk, b.sk, &plain, &len), -1);
	free(bad);
	/* not base64, short nonce, ciphertext shorter than the MAC */
	ck_assert_int_eq(box_decrypt_direct("!!!!", ct, a.pk, b.sk, &plain, &len), -1);
	ck_assert_int_eq(box_decrypt_direct("AAAA", ct, a.pk, b.sk, &plain, &len), -1);
	ck_assert_int_eq(box_decrypt_direct(nonce, "AAAA", a.pk, b.sk, &plain, &len), -1);
	ck_assert_ptr_null(plain);
	free(nonce);
	free(ct);
}
END_TEST

START_TEST(box_nonces_are_fresh)
{
	struct party a, b;
	party_new(&a);
	party_new(&b);
	char *n1, *c1, *n2, *c2;
	ck_assert_int_eq(box_encrypt_direct("same", 4, b.pk, a.sk, &n1, &c1), 0);
	ck_assert_int_eq(box_encrypt_direct("same", 4, b.pk, a.sk, &n2, &c2), 0);
	ck_assert_str_ne(n1, n2);
	ck_assert_str_ne(c1, c2);
	free(n1);
	free(c1);
	free(n2);
	free(c2);
}
END_TEST

START_TEST(box_b64_matches_libsodium_original_variant)
{
	unsigned char *out = NULL;
	size_t n = 0;
	char *s = box_b64_encode((const unsigned char *)"\xfb\xff", 2);
	ck_assert_str_eq(s, "+/8=");
	ck_assert_int_eq(box_b64_decode(s, &out, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_mem_eq(out, "\xfb\xff", 2);
	free(out);
	free(s);
	/* unpadded input is accepted, the URL-safe alphabet is not */
	ck_assert_int_eq(box_b64_decode("+/8", &out, &n), 0);
	free(out);
	ck_assert_int_eq(box_b64_decode("-_8=", &out, &n), -1);
	ck_assert_int_eq(box_b64_decode("aGk=\n", &out, &n), -1);
}
END_TEST

START_TEST(box_key_pair_also_signs_a_hello_the_broker_accepts)
{
	struct party a, b;
	char pub_hex[65], sig_hex[129], canon[512];
	unsigned char sig[crypto_sign_BYTES];
	party_new(&a);
	party_new(&b);
	hex_encode(a.pk, sizeof a.pk, pub_hex);
	int64_t ts = now_ms();
	ck_assert_int_eq(hello_sign(sig_hex, a.sk, "meshA", "memberA", pub_hex, ts), 0);
	int n = hello_canonical(canon, sizeof canon, "meshA", "memberA", pub_hex, ts);
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(hex_decode(sig_hex, sig, sizeof sig), 0);
	ck_assert_int_eq(crypto_sign_verify_detached(sig, (const unsigned char *)canon,
						     (unsigned long long)n, a.pk),
			 0);
	/* a different canonical string (other mesh) does not verify */
	n = hello_canonical(canon, sizeof canon, "meshB", "memberA", pub_hex, ts);
	ck_assert_int_ne(crypto_sign_verify_detached(sig, (const unsigned char *)canon,
						     (unsigned long long)n, a.pk),
			 0);

	/* the same hello through the broker's checks 1-4 */
	cJSON *h = cJSON_CreateObject();
	cJSON_AddStringToObject(h, "type", "hello");
	cJSON_AddStringToObject(h, "meshId", "meshA");
	cJSON_AddStringToObject(h, "memberId", "memberA");
	cJSON_AddStringToObject(h, "pubkey", pub_hex);
	cJSON_AddStringToObject(h, "sessionId", "1-2");
	cJSON_AddNumberToObject(h, "pid", 1);
	cJSON_AddStringToObject(h, "cwd", "/");
	cJSON_AddNumberToObject(h, "timestamp", (double)ts);
	cJSON_AddStringToObject(h, "signature", sig_hex);
	struct hello parsed;
	ck_assert_int_eq(hello_check(h, &parsed, ts), HELLO_OK);
	cJSON_Delete(h);

	/* and a message boxed with that same key pair opens for the peer */
	char *nonce, *ct;
	unsigned char *plain;
	size_t len;
	ck_assert_int_eq(box_encrypt_direct("ok", 2, b.pk, a.sk, &nonce, &ct), 0);
	ck_assert_int_eq(box_decrypt_direct(nonce, ct, a.pk, b.sk, &plain, &len), 0);
	ck_assert_mem_eq(plain, "ok", 2);
	free(plain);
	free(nonce);
	free(ct);
}
END_TEST

static Suite *box_suite(void)
{
	Suite *s = suite_create("box");
	TCase *tc = tcase_create("direct");
	tcase_add_test(tc, box_round_trip_alice_to_bob);
	tcase_add_test(tc, box_two_byte_plaintext_gives_32_char_nonce_and_24_char_ciphertext);
	tcase_add_test(tc, box_empty_plaintext_round_trips);
	tcase_add_test(tc, box_wrong_key_fails_to_decrypt);
	tcase_add_test(tc, box_tampered_ciphertext_or_nonce_fails);
	tcase_add_test(tc, box_nonces_are_fresh);
	tcase_add_test(tc, box_b64_matches_libsodium_original_variant);
	tcase_add_test(tc, box_key_pair_also_signs_a_hello_the_broker_accepts);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	SRunner *sr = srunner_create(box_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
