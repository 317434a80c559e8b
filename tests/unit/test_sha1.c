/* test_sha1 — common/sha1.c, the worker's SHA-1 for Sec-WebSocket-Accept
 * (issue 23: the worker no longer links libnettle): FIPS 180 / RFC 3174
 * vectors, RFC 6455's handshake example, and every length 0-300 (each
 * padding case: one block, two, exact multiples) against nettle's. */
#include <check.h>
#include <nettle/sha1.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "common/sha1.h"
#include "common/util.h"

static void hex_of(const void *data, size_t len, char out[2 * SHA1_BYTES + 1])
{
	uint8_t d[SHA1_BYTES];
	sha1_digest_of(data, len, d);
	hex_encode(d, sizeof d, out);
}

START_TEST(fips_vectors)
{
	char h[41];
	hex_of("abc", 3, h);
	ck_assert_str_eq(h, "a9993e364706816aba3e25717850c26c9cd0d89d");
	hex_of("", 0, h);
	ck_assert_str_eq(h, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
	const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"; /* 448 bits */
	hex_of(m, strlen(m), h);
	ck_assert_str_eq(h, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
	char *a = malloc(1000000);
	ck_assert_ptr_nonnull(a);
	memset(a, 'a', 1000000);
	hex_of(a, 1000000, h);
	ck_assert_str_eq(h, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
	free(a);
}
END_TEST

START_TEST(rfc6455_example)
{
	const char *cat = "dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	uint8_t d[SHA1_BYTES];
	sha1_digest_of(cat, strlen(cat), d);
	char b64[sodium_base64_ENCODED_LEN(SHA1_BYTES, sodium_base64_VARIANT_ORIGINAL)];
	sodium_bin2base64(b64, sizeof b64, d, sizeof d, sodium_base64_VARIANT_ORIGINAL);
	ck_assert_str_eq(b64, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}
END_TEST

START_TEST(every_length_agrees_with_nettle)
{
	uint8_t buf[300];
	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (uint8_t)(i * 131 + 7);
	for (size_t n = 0; n <= sizeof buf; n++) {
		uint8_t ours[SHA1_BYTES], theirs[SHA1_DIGEST_SIZE];
		sha1_digest_of(buf, n, ours);
		struct sha1_ctx c;
		sha1_init(&c);
		sha1_update(&c, n, buf);
		sha1_digest(&c, sizeof theirs, theirs);
		ck_assert_msg(memcmp(ours, theirs, SHA1_BYTES) == 0, "length %zu differs", n);
	}
}
END_TEST

int main(void)
{
	Suite *su = suite_create("sha1");
	TCase *tc = tcase_create("sha1");
	tcase_add_test(tc, fips_vectors);
	tcase_add_test(tc, rfc6455_example);
	tcase_add_test(tc, every_length_agrees_with_nettle);
	suite_add_tcase(su, tc);
	SRunner *sr = srunner_create(su);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
