/* test_auth — the pure pieces of issue 8: the hook's loopback source rule,
 * API key secrets and the Bearer parse, v1 invite signing, meshctl's
 * durations. */
#include <check.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli/invitecmd.h"
#include "common/util.h"
#include "proto/apikey.h"
#include "proto/invite.h"
#include "worker/source.h"

START_TEST(source_loopback_addresses_are_loopback)
{
	ck_assert_int_eq(source_is_loopback("127.0.0.1"), 1);
	ck_assert_int_eq(source_is_loopback("127.255.3.4"), 1);
	ck_assert_int_eq(source_is_loopback("::1"), 1);
	ck_assert_int_eq(source_is_loopback("::ffff:127.0.0.1"), 1);
}
END_TEST

START_TEST(source_other_addresses_are_not_loopback)
{
	static const char *const others[] = {"10.0.0.1",  "192.168.1.10", "128.0.0.1",       "0.0.0.0",     "::",
	                                     "::2",       "fe80::1",      "::ffff:10.0.0.1", "2001:db8::1", "",
	                                     "localhost", "127.0.0.1 ",   "127.0.0.1.5",     "::1%lo",      NULL};
	for (int i = 0; others[i]; i++)
		ck_assert_msg(source_is_loopback(others[i]) == 0, "%s taken for loopback", others[i]);
	ck_assert_int_eq(source_is_loopback(NULL), 0);
}
END_TEST

START_TEST(hook_without_key_only_from_loopback_when_allowed_and_not_from_a_browser)
{
	ck_assert_int_eq(source_may_skip_key(1, "127.0.0.1", NULL, NULL), 1);
	ck_assert_int_eq(source_may_skip_key(1, "::1", "", ""), 1);
	ck_assert_int_eq(source_may_skip_key(1, "::ffff:127.0.0.1", NULL, NULL), 1);
	/* a non-loopback source is refused even when the switch is on */
	ck_assert_int_eq(source_may_skip_key(1, "192.168.1.20", NULL, NULL), 0);
	ck_assert_int_eq(source_may_skip_key(1, "10.0.0.7", "", ""), 0);
	ck_assert_int_eq(source_may_skip_key(1, "::ffff:192.0.2.1", NULL, NULL), 0);
	ck_assert_int_eq(source_may_skip_key(1, "", NULL, NULL), 0);
	/* default: off */
	ck_assert_int_eq(source_may_skip_key(0, "127.0.0.1", NULL, NULL), 0);
	/* a web page on this machine (the browser sends Origin) */
	ck_assert_int_eq(source_may_skip_key(1, "127.0.0.1", "https://evil.example", NULL), 0);
	/* a remote client through a reverse proxy on this machine */
	ck_assert_int_eq(source_may_skip_key(1, "127.0.0.1", NULL, "203.0.113.9"), 0);
}
END_TEST

START_TEST(source_of_a_non_inet_socket_is_the_fallback)
{
	int sv[2];
	char out[SOURCE_ADDR_MAX];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	source_of(sv[0], "10.1.2.3", out, sizeof out);
	ck_assert_str_eq(out, "10.1.2.3");
	source_of(-1, NULL, out, sizeof out);
	ck_assert_str_eq(out, "");
	close(sv[0]);
	close(sv[1]);
}
END_TEST

START_TEST(apikey_secret_form_hash_and_prefix)
{
	char s[APIKEY_SECRET_MAX + 1], h[APIKEY_HASH_HEX], h2[APIKEY_HASH_HEX];
	apikey_generate(s, sizeof s);
	ck_assert_uint_eq(strlen(s), 46);
	ck_assert(strncmp(s, "cm_", 3) == 0);
	ck_assert_int_eq(apikey_well_formed(s), 1);
	apikey_hash(s, h);
	ck_assert_uint_eq(strlen(h), 64);
	ck_assert(is_hex(h, 64));
	apikey_hash("abc", h2); /* sha256("abc") */
	ck_assert_str_eq(h2, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	ck_assert_int_eq(apikey_well_formed("cm_short"), 0);
	ck_assert_int_eq(apikey_well_formed("xx_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), 0);
	ck_assert_int_eq(apikey_well_formed("cm_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+"), 0);
}
END_TEST

START_TEST(apikey_bearer_parse)
{
	char t[64];
	ck_assert_int_eq(apikey_bearer("Bearer cm_abc", t, sizeof t), 0);
	ck_assert_str_eq(t, "cm_abc");
	ck_assert_int_eq(apikey_bearer("  bearer \tcm_x  ", t, sizeof t), 0);
	ck_assert_str_eq(t, "cm_x");
	ck_assert_int_eq(apikey_bearer("Basic abc", t, sizeof t), -1);
	ck_assert_int_eq(apikey_bearer("Bearer", t, sizeof t), -1);
	ck_assert_int_eq(apikey_bearer("Bearer ", t, sizeof t), -1);
	ck_assert_int_eq(apikey_bearer("Bearer a b", t, sizeof t), -1);
	ck_assert_int_eq(apikey_bearer("Bearercm_x", t, sizeof t), -1);
	ck_assert_int_eq(apikey_bearer("Bearer 0123456789", t, 5), -1);
}
END_TEST

START_TEST(apikey_capability_names)
{
	ck_assert_uint_eq(apikey_cap_bit("send"), APIKEY_CAP_SEND);
	ck_assert_uint_eq(apikey_cap_bit("status"), APIKEY_CAP_STATUS);
	ck_assert_uint_eq(apikey_cap_bit("state_write"), APIKEY_CAP_STATE_WRITE);
	ck_assert_uint_eq(apikey_cap_bit("Send"), 0);
	ck_assert_str_eq(apikey_cap_name(APIKEY_CAP_READ), "read");
}
END_TEST

START_TEST(invite_signed_token_round_trip_and_tamper)
{
	unsigned char pk[32], sk[64];
	char pkhex[65], sig[129];
	crypto_sign_keypair(pk, sk);
	hex_encode(pk, 32, pkhex);
	struct invite iv = {.mesh_id = "M1",
	                    .mesh_slug = "demo",
	                    .broker_url = "ws://127.0.0.1:7900/ws",
	                    .mesh_root_key = "rk",
	                    .role = "member",
	                    .owner_pubkey = pkhex,
	                    .expires_at = 1900000000};
	char *str = invite_signed_string(&iv);
	char want[256];
	snprintf(want, sizeof want, "1|M1|demo|ws://127.0.0.1:7900/ws|1900000000|rk|member|%s", pkhex);
	ck_assert_str_eq(str, want);
	free(str);
	ck_assert_int_eq(invite_sign(&iv, sk, sig), 0);
	iv.signature = sig;
	cJSON *p = invite_payload_json(&iv);
	char *tok = invite_token_encode(p);
	ck_assert(strchr(tok, '=') == NULL && strchr(tok, '+') == NULL && strchr(tok, '/') == NULL);
	cJSON *back = invite_token_decode(tok);
	struct invite got;
	ck_assert_ptr_nonnull(back);
	ck_assert_int_eq(invite_fields(back, &got), 0);
	ck_assert_int_eq(invite_verify(&got), 1);
	ck_assert_str_eq(got.mesh_id, "M1");
	ck_assert(got.expires_at == 1900000000);
	got.role = "admin"; /* tampered */
	ck_assert_int_eq(invite_verify(&got), 0);
	cJSON_Delete(back);
	ck_assert_ptr_null(invite_token_decode("!!!"));
	ck_assert_ptr_null(invite_token_decode("WzFd")); /* [1]: not an object */
	cJSON_ReplaceItemInObject(p, "v", cJSON_CreateNumber(2));
	ck_assert_int_eq(invite_fields(p, &got), -1);
	cJSON_Delete(p);
	free(tok);
}
END_TEST

START_TEST(invite_durations)
{
	long long s;
	ck_assert_int_eq(invitecmd_parse_duration("24h", &s), 0);
	ck_assert(s == 86400);
	ck_assert_int_eq(invitecmd_parse_duration("90s", &s), 0);
	ck_assert(s == 90);
	ck_assert_int_eq(invitecmd_parse_duration("30m", &s), 0);
	ck_assert(s == 1800);
	ck_assert_int_eq(invitecmd_parse_duration("7d", &s), 0);
	ck_assert(s == 7 * 86400);
	ck_assert_int_eq(invitecmd_parse_duration("120", &s), 0);
	ck_assert(s == 120);
	ck_assert_int_eq(invitecmd_parse_duration("0h", &s), -1);
	ck_assert_int_eq(invitecmd_parse_duration("-1h", &s), -1);
	ck_assert_int_eq(invitecmd_parse_duration("1w", &s), -1);
	ck_assert_int_eq(invitecmd_parse_duration("367d", &s), -1);
	ck_assert_int_eq(invitecmd_parse_duration("h", &s), -1);
}
END_TEST

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	Suite *s = suite_create("auth");
	TCase *tc = tcase_create("auth");
	tcase_add_test(tc, source_loopback_addresses_are_loopback);
	tcase_add_test(tc, source_other_addresses_are_not_loopback);
	tcase_add_test(tc, hook_without_key_only_from_loopback_when_allowed_and_not_from_a_browser);
	tcase_add_test(tc, source_of_a_non_inet_socket_is_the_fallback);
	tcase_add_test(tc, apikey_secret_form_hash_and_prefix);
	tcase_add_test(tc, apikey_bearer_parse);
	tcase_add_test(tc, apikey_capability_names);
	tcase_add_test(tc, invite_signed_token_round_trip_and_tamper);
	tcase_add_test(tc, invite_durations);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
