/* test_clinet — meshctl's network layers that need no network: broker URLs
 * taken apart by curl's URL API (cli/http.c: ws/wss/http/https mapped for
 * curl, the Host header and request target, the path modes of join and
 * hook, refusals), the one-line certificate failures, and the hello the
 * peer session builds (cli/peersess.c: signed, optional fields only when
 * set, sessionPubkey only when given). */
#include <check.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "cli/http.h"
#include "cli/peersess.h"
#include "proto/hello.h"

static struct http_target parse_ok(const char *url, enum http_path how, const char *path)
{
	struct http_target t;
	char err[512];
	int rc = http_target_parse(url, how, path, &t, err, sizeof err);
	ck_assert_msg(rc == 0, "%s: %s", url, err);
	return t;
}

START_TEST(broker_urls_map_to_http_and_https_with_host_and_target)
{
	struct http_target t = parse_ok("wss://mesh.example.org/ws", HTTP_PATH_KEEP, NULL);
	ck_assert_str_eq(t.url, "https://mesh.example.org/ws");
	ck_assert_str_eq(t.authority, "mesh.example.org");
	ck_assert_str_eq(t.target, "/ws");
	ck_assert_int_eq(t.tls, 1);
	t = parse_ok("ws://127.0.0.1:7900/ws?x=1", HTTP_PATH_KEEP, NULL);
	ck_assert_str_eq(t.url, "http://127.0.0.1:7900/ws?x=1");
	ck_assert_str_eq(t.authority, "127.0.0.1:7900");
	ck_assert_str_eq(t.target, "/ws?x=1");
	ck_assert_int_eq(t.tls, 0);
	t = parse_ok("ws://[::1]:7900", HTTP_PATH_KEEP, NULL);
	ck_assert_str_eq(t.authority, "[::1]:7900");
	ck_assert_str_eq(t.target, "/");
	t = parse_ok("HTTPS://Mesh.Example.org:8443/base/", HTTP_PATH_KEEP, NULL);
	ck_assert_int_eq(t.tls, 1);
}
END_TEST

START_TEST(join_goes_to_the_root_and_hook_under_a_base_path)
{
	struct http_target t = parse_ok("wss://mesh.example.org/ws?q=1", HTTP_PATH_ROOT, "/join");
	ck_assert_str_eq(t.url, "https://mesh.example.org/join");
	ck_assert_str_eq(t.target, "/join");
	t = parse_ok("http://10.0.0.1:8080/prefix/", HTTP_PATH_APPEND, "/hook/set-status");
	ck_assert_str_eq(t.url, "http://10.0.0.1:8080/prefix/hook/set-status");
	t = parse_ok("https://h", HTTP_PATH_APPEND, "/hook/set-status");
	ck_assert_str_eq(t.url, "https://h/hook/set-status");
}
END_TEST

START_TEST(other_schemes_credentials_and_junk_are_refused_in_one_line)
{
	static const char *bad[] = {"ftp://h/x", "file:///etc/passwd", "ws://user:pw@h/ws", "ws://h /ws", "",
				    "not a url", "ws://"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct http_target t;
		char err[512] = "";
		ck_assert_msg(http_target_parse(bad[i], HTTP_PATH_KEEP, NULL, &t, err, sizeof err) == -1, "%s", bad[i]);
		ck_assert_msg(err[0] && !strchr(err, '\n'), "%s: \"%s\"", bad[i], err);
	}
}
END_TEST

START_TEST(certificate_failures_name_the_host_and_the_reason)
{
	struct http_target t = parse_ok("wss://mesh.example.org/ws", HTTP_PATH_KEEP, NULL);
	static const struct {
		const char *curl, *want;
	} cases[] = {
		{"SSL certificate problem: certificate has expired", "has expired"},
		{"SSL certificate problem: unable to get local issuer certificate", "not signed by a trusted CA"},
		{"SSL: no alternative certificate subject name matches target host name 'x'", "another host name"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char out[1024];
		http_describe(CURLE_PEER_FAILED_VERIFICATION, cases[i].curl, &t, out, sizeof out);
		ck_assert_msg(strstr(out, "TLS to mesh.example.org") && strstr(out, cases[i].want), "%s", out);
	}
}
END_TEST

static const cJSON *field(const cJSON *o, const char *k)
{
	return cJSON_GetObjectItemCaseSensitive(o, k);
}

START_TEST(the_hello_is_signed_and_carries_a_session_pubkey_only_when_given)
{
	struct keyfile_peer cfg = {0};
	crypto_sign_keypair(cfg.key.pk, cfg.key.sk);
	sodium_bin2hex(cfg.key.pubkey, sizeof cfg.key.pubkey, cfg.key.pk, sizeof cfg.key.pk);
	strcpy(cfg.mesh_id, "mesh1");
	strcpy(cfg.member_id, "member1");
	struct peersess_hello h = {.pid = 42, .peer_type = "ai", .caps = {"client_ack", "peer_events"}};
	strcpy(h.session_id, "42-1");
	strcpy(h.cwd, "/tmp");
	cJSON *o = peersess_hello_build(&cfg, &h, 1700000000000LL, NULL);
	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(field(o, "type")->valuestring, "hello");
	ck_assert_str_eq(field(o, "sessionId")->valuestring, "42-1");
	ck_assert_int_eq(cJSON_GetArraySize(field(o, "capabilities")), 2);
	ck_assert_ptr_null(field(o, "sessionPubkey"));
	ck_assert_ptr_null(field(o, "displayName"));
	ck_assert_ptr_null(field(o, "repo"));
	char want[129];
	ck_assert_int_eq(hello_sign(want, cfg.key.sk, "mesh1", "member1", cfg.key.pubkey, 1700000000000LL), 0);
	ck_assert_str_eq(field(o, "signature")->valuestring, want);
	cJSON_Delete(o);
	const char *spk = "ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01";
	o = peersess_hello_build(&cfg, &h, 1700000000000LL, spk);
	ck_assert_str_eq(field(o, "sessionPubkey")->valuestring, spk);
	ck_assert_str_eq(field(o, "signature")->valuestring, want); /* not signed (docs/protocol.md §12.1) */
	cJSON_Delete(o);
	sodium_memzero(&cfg, sizeof cfg);
}
END_TEST

int main(void)
{
	if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 1;
	Suite *s = suite_create("clinet");
	TCase *tc = tcase_create("clinet");
	tcase_add_test(tc, broker_urls_map_to_http_and_https_with_host_and_target);
	tcase_add_test(tc, join_goes_to_the_root_and_hook_under_a_base_path);
	tcase_add_test(tc, other_schemes_credentials_and_junk_are_refused_in_one_line);
	tcase_add_test(tc, certificate_failures_name_the_host_and_the_reason);
	tcase_add_test(tc, the_hello_is_signed_and_carries_a_session_pubkey_only_when_given);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	curl_global_cleanup();
	return failed ? 1 : 0;
}
