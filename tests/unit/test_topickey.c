/* test_topickey — the topic crypto of docs/protocol.md §5 (proto/topickey.c)
 * and the mention rules of §5.2 (worker/mention.c): the 80-byte sealed copy
 * opens for its member only, its parser takes exactly 80 + 24 bytes, v2
 * bodies round-trip, and mentions are collected as the protocol says. */
#include <check.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/box.h"
#include "proto/topickey.h"
#include "worker/mention.h"
#include "worker/topic_key.h"

struct party {
	unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
};

START_TEST(a_sealed_copy_is_80_bytes_and_opens_for_its_member_only)
{
	struct party a, b;
	crypto_sign_keypair(a.pk, a.sk);
	crypto_sign_keypair(b.pk, b.sk);
	unsigned char key[TOPICKEY_KEY_BYTES], got[TOPICKEY_KEY_BYTES];
	randombytes_buf(key, sizeof key);
	char *enc = NULL, *nonce = NULL, pkhex[65];
	ck_assert_int_eq(topickey_seal(key, a.pk, &enc, &nonce, pkhex), 0);
	unsigned char *raw = NULL;
	size_t len = 0;
	ck_assert_int_eq(box_b64_decode(enc, &raw, &len), 0);
	ck_assert_uint_eq(len, 80);
	char first[65];
	sodium_bin2hex(first, sizeof first, raw, 32);
	ck_assert_str_eq(first, pkhex); /* the sender's x25519 key leads */
	free(raw);
	ck_assert_int_eq(topickey_open(enc, nonce, a.sk, got), 0);
	ck_assert_mem_eq(got, key, sizeof key);
	ck_assert_int_ne(topickey_open(enc, nonce, b.sk, got), 0);
	free(enc);
	free(nonce);
}
END_TEST

START_TEST(each_seal_uses_a_fresh_ephemeral_key_and_nonce)
{
	struct party a;
	crypto_sign_keypair(a.pk, a.sk);
	unsigned char key[TOPICKEY_KEY_BYTES] = {1};
	char *e1, *n1, *e2, *n2, p1[65], p2[65];
	ck_assert_int_eq(topickey_seal(key, a.pk, &e1, &n1, p1), 0);
	ck_assert_int_eq(topickey_seal(key, a.pk, &e2, &n2, p2), 0);
	ck_assert_str_ne(p1, p2);
	ck_assert_str_ne(e1, e2);
	ck_assert_str_ne(n1, n2);
	free(e1);
	free(n1);
	free(e2);
	free(n2);
}
END_TEST

START_TEST(the_parser_takes_exactly_80_and_24_bytes)
{
	unsigned char buf[81] = {0};
	struct topickey_sealed s;
	char *e80 = box_b64_encode(buf, 80), *e79 = box_b64_encode(buf, 79), *e81 = box_b64_encode(buf, 81);
	char *n24 = box_b64_encode(buf, 24), *n23 = box_b64_encode(buf, 23);
	ck_assert_int_eq(topickey_parse(e80, n24, &s), 0);
	ck_assert_int_ne(topickey_parse(e79, n24, &s), 0);
	ck_assert_int_ne(topickey_parse(e81, n24, &s), 0);
	ck_assert_int_ne(topickey_parse(e80, n23, &s), 0);
	ck_assert_int_ne(topickey_parse("not base64!", n24, &s), 0);
	ck_assert_int_ne(topickey_parse(NULL, n24, &s), 0);
	ck_assert_int_ne(topickey_parse(e80, NULL, &s), 0);
	free(e80);
	free(e79);
	free(e81);
	free(n24);
	free(n23);
}
END_TEST

START_TEST(a_bad_member_key_is_refused)
{
	unsigned char key[TOPICKEY_KEY_BYTES] = {0}, bad[32];
	memset(bad, 0xff, sizeof bad); /* not a point on the curve */
	char *e = NULL, *n = NULL, pk[65];
	ck_assert_int_ne(topickey_seal(key, bad, &e, &n, pk), 0);
	ck_assert_ptr_null(e);
}
END_TEST

START_TEST(v2_bodies_round_trip_and_fail_under_another_key)
{
	unsigned char key[TOPICKEY_KEY_BYTES], other[TOPICKEY_KEY_BYTES];
	randombytes_buf(key, sizeof key);
	randombytes_buf(other, sizeof other);
	const char *msg = "topic secret";
	char *nonce, *ct;
	ck_assert_int_eq(topickey_encrypt_body(key, (const unsigned char *)msg, strlen(msg), &nonce, &ct), 0);
	unsigned char *plain;
	size_t len;
	ck_assert_int_eq(topickey_decrypt_body(key, nonce, ct, &plain, &len), 0);
	ck_assert_uint_eq(len, strlen(msg));
	ck_assert_mem_eq(plain, msg, len);
	free(plain);
	ck_assert_int_ne(topickey_decrypt_body(other, nonce, ct, &plain, &len), 0);
	free(nonce);
	free(ct);
}
END_TEST

static int collect_body(const char *body, char *out[MENTION_MAX])
{
	return mention_collect(NULL, (const unsigned char *)body, strlen(body), out);
}

START_TEST(mentions_are_at_tokens_deduplicated_without_emails)
{
	char *out[MENTION_MAX];
	int n = collect_body("@Bob hi, @carol. and @bob again; mail a@b.example or (@dave)", out);
	ck_assert_int_eq(n, 3);
	ck_assert_str_eq(out[0], "Bob");
	ck_assert_str_eq(out[1], "carol");
	ck_assert_str_eq(out[2], "dave");
	mention_free(out, n);
	ck_assert_int_eq(collect_body("no mentions @ all", out), 0);
}
END_TEST

START_TEST(at_most_32_mentions)
{
	char body[40 * 24] = "", *out[MENTION_MAX];
	for (int i = 0; i < 40; i++) {
		char t[24];
		snprintf(t, sizeof t, "@n%d ", i);
		strcat(body, t);
	}
	int n = collect_body(body, out);
	ck_assert_int_eq(n, MENTION_MAX);
	mention_free(out, n);
}
END_TEST

START_TEST(explicit_mentions_win_and_must_be_names)
{
	char *out[MENTION_MAX];
	cJSON *m = cJSON_Parse("[\"@dave\", \"erin\"]");
	int n = mention_collect(m, (const unsigned char *)"@bob", 4, out);
	ck_assert_int_eq(n, 2);
	ck_assert_str_eq(out[0], "dave");
	mention_free(out, n);
	cJSON_Delete(m);
	m = cJSON_Parse("[\"ok\", 3]");
	ck_assert_int_eq(mention_collect(m, NULL, 0, out), -1);
	cJSON_Delete(m);
	m = cJSON_Parse("\"dave\"");
	ck_assert_int_eq(mention_collect(m, NULL, 0, out), -1);
	cJSON_Delete(m);
	m = cJSON_Parse("[\"@\"]");
	ck_assert_int_eq(mention_collect(m, NULL, 0, out), -1);
	cJSON_Delete(m);
}
END_TEST

START_TEST(a_failed_broker_seal_still_makes_an_encrypted_topic_without_a_copy)
{
	cJSON *msg = cJSON_Parse("{\"type\":\"topic_create\",\"name\":\"x\"}");
	struct topic_copy c;
	char bad[65];
	memset(bad, 'f', 64); /* not a point of the curve: the seal fails */
	bad[64] = 0;
	ck_assert_int_eq(topic_key_creator_copy(NULL, msg, bad, &c), 0);
	ck_assert_int_eq(c.source, TOPIC_KEY_NONE);
	ck_assert_ptr_null(c.encrypted_key);
	ck_assert_uint_eq(strlen(c.pubkey_hex), 64); /* encrypted_key_pubkey is set all the same */
	topic_key_copy_free(&c);
	struct party a;
	char good[65];
	crypto_sign_keypair(a.pk, a.sk);
	sodium_bin2hex(good, sizeof good, a.pk, sizeof a.pk);
	ck_assert_int_eq(topic_key_creator_copy(NULL, msg, good, &c), 0);
	ck_assert_int_eq(c.source, TOPIC_KEY_BROKER);
	unsigned char key[TOPICKEY_KEY_BYTES];
	ck_assert_int_eq(topickey_open(c.encrypted_key, c.nonce, a.sk, key), 0);
	topic_key_copy_free(&c);
	cJSON_Delete(msg);
}
END_TEST

int main(void)
{
	if (sodium_init() < 0)
		return EXIT_FAILURE;
	Suite *s = suite_create("topickey");
	TCase *tc = tcase_create("seal");
	tcase_add_test(tc, a_sealed_copy_is_80_bytes_and_opens_for_its_member_only);
	tcase_add_test(tc, each_seal_uses_a_fresh_ephemeral_key_and_nonce);
	tcase_add_test(tc, the_parser_takes_exactly_80_and_24_bytes);
	tcase_add_test(tc, a_bad_member_key_is_refused);
	tcase_add_test(tc, v2_bodies_round_trip_and_fail_under_another_key);
	tcase_add_test(tc, a_failed_broker_seal_still_makes_an_encrypted_topic_without_a_copy);
	suite_add_tcase(s, tc);
	TCase *tm = tcase_create("mention");
	tcase_add_test(tm, mentions_are_at_tokens_deduplicated_without_emails);
	tcase_add_test(tm, at_most_32_mentions);
	tcase_add_test(tm, explicit_mentions_win_and_must_be_names);
	suite_add_tcase(s, tm);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
