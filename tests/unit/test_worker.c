/* test_worker — unit tests of the worker's pure logic: status write rules,
 * JSONL key candidates and inference, the HTTP request reader (over a real
 * socketpair), the hello checks, the WebSocket frame gate and the message
 * checks. */
#include <check.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto/hello.h"
#include "common/util.h"
#include "worker/http.h"
#include "worker/jsonl.h"
#include "worker/msgcheck.h"
#include "worker/status.h"
#include "worker/ws.h"

static struct presence_info fresh_peer(int64_t t)
{
	struct presence_info p = {.status = ST_IDLE, .status_source = SRC_JSONL, .status_ms = t};
	return p;
}

START_TEST(status_different_value_always_written)
{
	struct presence_info p = fresh_peer(1000);
	ck_assert_int_eq(status_apply(&p, ST_WORKING, SRC_JSONL, 2000, 30), 1);
	ck_assert_int_eq(p.status, ST_WORKING);
	ck_assert_int_eq(p.status_ms, 2000);
}
END_TEST

START_TEST(status_same_value_higher_source_takes_source)
{
	struct presence_info p = fresh_peer(1000);
	ck_assert_int_eq(status_apply(&p, ST_IDLE, SRC_HOOK, 2000, 30), 0);
	ck_assert_int_eq(p.status_source, SRC_HOOK);
	ck_assert_int_eq(p.status_ms, 2000);
}
END_TEST

START_TEST(status_same_value_lower_source_while_fresh_only_bumps_time)
{
	struct presence_info p = {.status = ST_WORKING, .status_source = SRC_HOOK, .status_ms = 1000};
	status_apply(&p, ST_WORKING, SRC_MANUAL, 20000, 30);
	ck_assert_int_eq(p.status_source, SRC_HOOK);
	ck_assert_int_eq(p.status_ms, 20000);
}
END_TEST

START_TEST(status_same_value_lower_source_after_window_takes_source)
{
	struct presence_info p = {.status = ST_WORKING, .status_source = SRC_HOOK, .status_ms = 1000};
	status_apply(&p, ST_WORKING, SRC_MANUAL, 1000 + 31000, 30);
	ck_assert_int_eq(p.status_source, SRC_MANUAL);
}
END_TEST

START_TEST(status_fresh_hook_outranks_jsonl_then_jsonl_takes_over)
{
	struct presence_info p = {.status = ST_IDLE, .status_source = SRC_HOOK, .status_ms = 1000};
	ck_assert_int_eq(status_apply(&p, ST_WORKING, SRC_JSONL, 2000, 3), 0);
	ck_assert_int_eq(p.status, ST_IDLE);
	ck_assert_int_eq(status_apply(&p, ST_WORKING, SRC_JSONL, 5000, 3), 1);
	ck_assert_int_eq(p.status, ST_WORKING);
	ck_assert_int_eq(p.status_source, SRC_JSONL);
}
END_TEST

START_TEST(status_dnd_is_sacred_for_hooks_and_inference)
{
	struct presence_info p = {.status = ST_DND, .status_source = SRC_MANUAL, .status_ms = 1000};
	ck_assert_int_eq(status_apply(&p, ST_IDLE, SRC_HOOK, 2000, 30), 0);
	ck_assert_int_eq(status_apply(&p, ST_WORKING, SRC_JSONL, 99000, 30), 0);
	ck_assert_int_eq(p.status, ST_DND);
	ck_assert_int_eq(status_apply(&p, ST_IDLE, SRC_MANUAL, 99000, 30), 1);
	ck_assert_int_eq(p.status, ST_IDLE);
}
END_TEST

static char keys[JSONL_KEYS_MAX][JSONL_KEY_MAX];

START_TEST(jsonl_candidates_unix_path)
{
	int n = jsonl_candidates("/home/alice/project", keys);
	ck_assert_int_eq(n, 1);
	ck_assert_str_eq(keys[0], "-home-alice-project");
}
END_TEST

START_TEST(jsonl_candidates_windows_paths)
{
	int n = jsonl_candidates("C:\\Users\\Alice\\dev\\myapp", keys);
	ck_assert_int_ge(n, 1);
	ck_assert_str_eq(keys[0], "C--Users-Alice-dev-myapp");
	n = jsonl_candidates("H:\\Claude", keys);
	ck_assert_str_eq(keys[0], "H--Claude");
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			ck_assert_str_ne(keys[i], keys[j]);
}
END_TEST

START_TEST(jsonl_candidates_relative_path_gets_dash_variant)
{
	int n = jsonl_candidates("project/foo", keys);
	ck_assert_int_eq(n, 2);
	ck_assert_str_eq(keys[0], "project-foo");
	ck_assert_str_eq(keys[1], "-project-foo");
}
END_TEST

START_TEST(jsonl_tool_use_means_working)
{
	ck_assert_int_eq(jsonl_infer("tests/fixtures/jsonl", "/home/alice/project"), ST_WORKING);
	ck_assert_int_eq(jsonl_infer("tests/fixtures/jsonl", "/home/nobody"), -1);
	const char *idle = "{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"text\"}]}}\n";
	ck_assert_int_eq(jsonl_status_of(idle, strlen(idle)), ST_IDLE);
	ck_assert_int_eq(jsonl_status_of("garbage\n{", 10), -1);
}
END_TEST

/* ---- HTTP reader over a real socketpair ---- */

static enum http_read_result read_req(const char *raw, size_t len, struct http_req *req, size_t max_body)
{
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	ck_assert_int_eq(http_write_all(sv[1], raw, len, 1000), 0);
	shutdown(sv[1], SHUT_WR);
	enum http_read_result r = http_read_request(sv[0], req, max_body, 1000);
	close(sv[0]);
	close(sv[1]);
	return r;
}

START_TEST(http_upgrade_keeps_early_frame_bytes)
{
	const char raw[] = "GET /ws?x=1 HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
			   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\nXYZ";
	struct http_req req;
	ck_assert_int_eq(read_req(raw, sizeof raw - 1, &req, 1024), HTTP_READ_OK);
	ck_assert_str_eq(req.path, "/ws");
	ck_assert_int_eq(req.is_upgrade, 1);
	ck_assert(http_has_token(req.connection, "upgrade"));
	ck_assert_uint_eq(req.extra_len, 3);
	ck_assert_int_eq(memcmp(req.extra, "XYZ", 3), 0);
	http_req_free(&req);
}
END_TEST

START_TEST(http_garbage_is_malformed)
{
	struct http_req req;
	ck_assert_int_eq(read_req("\x01\x02garbage\r\n\r\n", 13, &req, 1024), HTTP_READ_MALFORMED);
	http_req_free(&req);
}
END_TEST

START_TEST(http_body_over_cap_refused_before_reading)
{
	const char raw[] = "POST /hook/set-status HTTP/1.1\r\nContent-Length: 5000\r\n\r\n";
	struct http_req req;
	ck_assert_int_eq(read_req(raw, sizeof raw - 1, &req, 512), HTTP_READ_TOO_LARGE);
	ck_assert_str_eq(req.path, "/hook/set-status");
	http_req_free(&req);
}
END_TEST

START_TEST(http_huge_header_is_431)
{
	size_t n = 100 * 1024;
	char *raw = malloc(n + 64);
	int k = sprintf(raw, "GET / HTTP/1.1\r\nX-Big: ");
	memset(raw + k, 'a', n);
	memcpy(raw + k + n, "\r\n\r\n", 4);
	struct http_req req;
	/* the writer may block once the reader stops: use a bounded write */
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	pid_t pid = fork();
	if (pid == 0) {
		close(sv[0]);
		http_write_all(sv[1], raw, (size_t)k + n + 4, 2000);
		_exit(0);
	}
	close(sv[1]);
	ck_assert_int_eq(http_read_request(sv[0], &req, 1024, 2000), HTTP_READ_HEAD_TOO_LARGE);
	close(sv[0]);
	http_req_free(&req);
	free(raw);
}
END_TEST

static enum http_read_result read_head_of(size_t total)
{
	char *raw = malloc(total + 1);
	int k = sprintf(raw, "GET / HTTP/1.1\r\nX-Pad: ");
	memset(raw + k, 'a', total - (size_t)k - 4);
	memcpy(raw + total - 4, "\r\n\r\n", 4);
	struct http_req req;
	enum http_read_result r = read_req(raw, total, &req, 1024);
	http_req_free(&req);
	free(raw);
	return r;
}

START_TEST(http_head_limit_is_16k_however_it_arrives)
{
	ck_assert_int_eq(read_head_of(HTTP_HEAD_MAX - 200), HTTP_READ_OK);
	ck_assert_int_eq(read_head_of(HTTP_HEAD_MAX + 200), HTTP_READ_HEAD_TOO_LARGE);
}
END_TEST

START_TEST(http_token_matching)
{
	ck_assert(http_has_token("keep-alive, Upgrade", "upgrade"));
	ck_assert(!http_has_token("upgraded", "upgrade"));
	ck_assert(http_has_token(" websocket ", "websocket"));
}
END_TEST

/* ---- hello checks 1-4 ---- */

static unsigned char pk[32], sk[64];
static char pkhex[65];

static cJSON *signed_hello(const char *mesh_signed, const char *mesh_sent, int64_t ts)
{
	char sig[129];
	hello_sign(sig, sk, mesh_signed, "mem1", pkhex, ts);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "hello");
	cJSON_AddStringToObject(o, "meshId", mesh_sent);
	cJSON_AddStringToObject(o, "memberId", "mem1");
	cJSON_AddStringToObject(o, "pubkey", pkhex);
	cJSON_AddStringToObject(o, "sessionId", "1-2");
	cJSON_AddNumberToObject(o, "pid", 42);
	cJSON_AddStringToObject(o, "cwd", "/tmp");
	cJSON_AddNumberToObject(o, "timestamp", (double)ts);
	cJSON_AddStringToObject(o, "signature", sig);
	return o;
}

static enum hello_code check(cJSON *o, int64_t now)
{
	struct hello h;
	enum hello_code c = hello_check(o, &h, now);
	cJSON_Delete(o);
	return c;
}

START_TEST(http_version_other_than_1_is_505_once_the_request_line_ends)
{
	struct http_req req;
	ck_assert_int_eq(read_req("GET / HTTP/9.9\r\n", 16, &req, 1024), HTTP_READ_BAD_VERSION);
	http_req_free(&req);
	ck_assert_int_eq(read_req("GET / HTTP/2.0\r\nHost: x\r\n\r\n", 27, &req, 1024), HTTP_READ_BAD_VERSION);
	http_req_free(&req);
	/* empty lines before the request line are skipped, not taken for it */
	ck_assert_int_eq(read_req("\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n", 35, &req, 1024), HTTP_READ_OK);
	ck_assert_str_eq(req.path, "/health");
	http_req_free(&req);
	ck_assert_int_eq(read_req("GET / HTTP/1.0\r\n\r\n", 18, &req, 1024), HTTP_READ_OK);
	http_req_free(&req);
}
END_TEST

START_TEST(http_whitespace_in_a_header_name_is_malformed)
{
	static const char *const bad[] = {"GET / HTTP/1.1\r\nHost : x\r\n\r\n", "GET / HTTP/1.1\r\nHo st: x\r\n\r\n",
					  "GET / HTTP/1.1\r\n Host: x\r\n\r\n"};
	struct http_req req;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_int_eq(read_req(bad[i], strlen(bad[i]), &req, 1024), HTTP_READ_MALFORMED);
		http_req_free(&req);
	}
	ck_assert_int_eq(read_req("GET / HTTP/1.1\r\nHost:  x \r\n\r\n", 29, &req, 1024), HTTP_READ_OK);
	http_req_free(&req);
}
END_TEST

/* ---- the WebSocket frame gate ---- */

/* one masked client frame (key 0): header then payload */
static size_t ws_frame(uint8_t *out, uint8_t b0, const char *payload, size_t n)
{
	size_t h = 0;
	out[h++] = b0;
	if (n < 126) {
		out[h++] = (uint8_t)(0x80 | n);
	} else {
		out[h++] = 0x80 | 126;
		out[h++] = (uint8_t)(n >> 8);
		out[h++] = (uint8_t)n;
	}
	memset(out + h, 0, 4);
	memcpy(out + h + 4, payload, n);
	return h + 4 + n;
}

START_TEST(ws_gate_passes_data_frames_and_keeps_the_close)
{
	struct ws_gate g;
	uint8_t buf[512];
	size_t n = ws_frame(buf, 0x81, "{}", 2);
	size_t at_close = n + ws_frame(buf + n, 0x89, "p", 1);
	n = at_close + ws_frame(buf + at_close, 0x88, "\x03\xe8ok", 4);
	n += ws_frame(buf + n, 0x81, "after", 5);
	ws_gate_init(&g);
	ck_assert_uint_eq(ws_gate_scan(&g, buf, n), at_close); /* text and ping pass, the close stays */
	ck_assert_int_eq(g.verdict, WS_GATE_CLOSE);
	ck_assert_uint_eq(g.close_len, 4);
	ck_assert_int_eq(memcmp(g.close, "\x03\xe8ok", 4), 0);
	/* the same stream one byte at a time */
	ws_gate_init(&g);
	size_t passed = 0;
	for (size_t i = 0; i < n && !g.verdict; i++)
		passed += ws_gate_scan(&g, buf + i, 1);
	ck_assert_uint_eq(passed, at_close);
	ck_assert_int_eq(g.verdict, WS_GATE_CLOSE);
	ck_assert_uint_eq(g.close_len, 4);
}
END_TEST

START_TEST(ws_gate_stops_before_a_bad_header)
{
	static const struct {
		uint8_t b0, b1;
	} bad[] = {
		{0xc1, 0x80}, /* RSV1 */
		{0x83, 0x80}, /* reserved opcode */
		{0x8b, 0x80}, /* reserved control opcode */
		{0x81, 0x00}, /* unmasked */
		{0x09, 0x80}, /* fragmented ping */
		{0x89, 0xfe}, /* ping with a 16-bit length */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct ws_gate g;
		uint8_t buf[64];
		size_t n = ws_frame(buf, 0x81, "ok", 2);
		buf[n] = bad[i].b0;
		buf[n + 1] = bad[i].b1;
		ws_gate_init(&g);
		ck_assert_uint_eq(ws_gate_scan(&g, buf, n + 2), n);
		ck_assert_int_eq(g.verdict, WS_GATE_VIOLATION);
		ck_assert_ptr_nonnull(g.why);
	}
	/* a 16-bit length under 126 */
	struct ws_gate g;
	const uint8_t shortform[] = {0x81, 0x80 | 126, 0x00, 0x05};
	ws_gate_init(&g);
	ck_assert_uint_eq(ws_gate_scan(&g, shortform, 3), 3);
	ck_assert_uint_eq(ws_gate_scan(&g, shortform + 3, 1), 0);
	ck_assert_int_eq(g.verdict, WS_GATE_VIOLATION);
}
END_TEST

START_TEST(ws_close_codes)
{
	static const unsigned valid[] = {1000, 1001, 1002, 1003, 1007, 1011, 1012, 1013, 1014, 3000, 4999};
	static const unsigned invalid[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535};
	for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++)
		ck_assert_msg(ws_close_code_valid(valid[i]), "%u", valid[i]);
	for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++)
		ck_assert_msg(!ws_close_code_valid(invalid[i]), "%u", invalid[i]);
}
END_TEST

/* ---- message checks ---- */

START_TEST(msgcheck_send_refusals_in_order)
{
	static const struct {
		const char *json;
		int want;
	} cases[] = {
		{"{\"priority\":\"now\",\"targetSpec\":\"*\",\"nonce\":\"\",\"ciphertext\":\"YQ==\"}", -1},
		{"{\"priority\":\"soon\",\"targetSpec\":\"bad\"}", SEND_REJ_INVALID_PRIORITY},
		{"{\"priority\":\"now\",\"targetSpec\":\"bad\"}", SEND_REJ_INVALID_TARGET},
		{"{\"priority\":\"now\",\"targetSpec\":\"#\"}", SEND_REJ_NO_SUCH_TOPIC},
		{"{\"priority\":\"now\",\"targetSpec\":\"*\",\"nonce\":\"\"}", SEND_REJ_MALFORMED},
		/* opaque (§12, issue 18): any string passes, base64 or not */
		{"{\"priority\":\"now\",\"targetSpec\":\"*\",\"nonce\":\"n-1\",\"ciphertext\":\"YQ!\"}", -1},
		{"{\"priority\":\"now\",\"targetSpec\":\"*\",\"nonce\":1,\"ciphertext\":\"x\"}", SEND_REJ_MALFORMED},
		{"{\"priority\":\"now\",\"targetSpec\":\"*\",\"nonce\":\"\",\"ciphertext\":\"YWJjZGVmZ2g=\"}",
		 SEND_REJ_PAYLOAD_TOO_LARGE},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cJSON *m = cJSON_Parse(cases[i].json);
		struct send_fields f;
		const char *detail;
		ck_assert_msg(msgcheck_send(m, 8, 0, &f, &detail) == cases[i].want, "%s", cases[i].json);
		cJSON_Delete(m);
	}
	cJSON *m = cJSON_Parse("{\"id\":\"x\",\"priority\":\"low\",\"targetSpec\":\"#t\",\"nonce\":\"\",\"ciphertext\":\"YQ==\"}");
	struct send_fields f;
	const char *detail;
	ck_assert_int_eq(msgcheck_send(m, 8, 1, &f, &detail), SEND_REJ_NUL_IN_FIELD); /* held \\u0000 */
	ck_assert_int_eq(msgcheck_send(m, 8, 0, &f, &detail), -1);
	ck_assert_str_eq(f.id, "x");
	ck_assert_int_eq(f.prio, 2);
	cJSON_Delete(m);
}
END_TEST

START_TEST(msgcheck_topic_fields)
{
	cJSON *m = cJSON_Parse("{\"topic\":\"general\",\"role\":\"boss\",\"limit\":1000,\"name\":\"a b\"}");
	const char *s, *d, *v;
	int limit;
	ck_assert_ptr_null(msgcheck_topic_ref(m, &s));
	ck_assert_str_eq(s, "general");
	ck_assert_ptr_nonnull(msgcheck_topic_join(m, &s));
	ck_assert_ptr_null(msgcheck_topic_history(m, &limit, &s));
	ck_assert_int_eq(limit, TOPIC_HISTORY_MAX);
	ck_assert_ptr_nonnull(msgcheck_topic_create(m, &s, &d, &v));
	cJSON_Delete(m);
	ck_assert(topic_name_ok("eng.ops_1-x"));
	ck_assert(!topic_name_ok(""));
	ck_assert(!topic_name_ok("ümlaut"));
}
END_TEST

START_TEST(hello_valid_and_exact_skew_boundary_pass)
{
	int64_t now = 1700000000000;
	ck_assert_int_eq(check(signed_hello("A", "A", now), now), HELLO_OK);
	ck_assert_int_eq(check(signed_hello("A", "A", now - 60000), now), HELLO_OK);
	ck_assert_int_eq(check(signed_hello("A", "A", now + 60000), now), HELLO_OK);
}
END_TEST

START_TEST(hello_rejections)
{
	int64_t now = 1700000000000;
	ck_assert_int_eq(check(signed_hello("A", "A", now - 61000), now), HELLO_TIMESTAMP_SKEW);
	ck_assert_int_eq(check(signed_hello("A", "A", now + 61000), now), HELLO_TIMESTAMP_SKEW);
	ck_assert_int_eq(check(signed_hello("A", "B", now), now), HELLO_BAD_SIGNATURE);
	cJSON *o = signed_hello("A", "A", now);
	cJSON_ReplaceItemInObject(o, "pubkey", cJSON_CreateString("not-hex"));
	ck_assert_int_eq(check(o, now), HELLO_MALFORMED);
	o = signed_hello("A", "A", now);
	cJSON_ReplaceItemInObject(o, "signature", cJSON_CreateString("abc123"));
	ck_assert_int_eq(check(o, now), HELLO_MALFORMED);
	o = signed_hello("A", "A", now);
	cJSON_DeleteItemFromObject(o, "sessionId");
	ck_assert_int_eq(check(o, now), HELLO_MALFORMED);
	o = signed_hello("A", "A", now);
	cJSON_ReplaceItemInObject(o, "pid", cJSON_CreateString("42"));
	ck_assert_int_eq(check(o, now), HELLO_MALFORMED);
	/* signed by another key */
	unsigned char pk2[32], sk2[64];
	crypto_sign_keypair(pk2, sk2);
	char sig[129];
	hello_sign(sig, sk2, "A", "mem1", pkhex, now);
	o = signed_hello("A", "A", now);
	cJSON_ReplaceItemInObject(o, "signature", cJSON_CreateString(sig));
	ck_assert_int_eq(check(o, now), HELLO_BAD_SIGNATURE);
}
END_TEST

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	crypto_sign_keypair(pk, sk);
	hex_encode(pk, 32, pkhex);
	Suite *s = suite_create("worker");
	TCase *tc = tcase_create("logic");
	tcase_add_test(tc, status_different_value_always_written);
	tcase_add_test(tc, status_same_value_higher_source_takes_source);
	tcase_add_test(tc, status_same_value_lower_source_while_fresh_only_bumps_time);
	tcase_add_test(tc, status_same_value_lower_source_after_window_takes_source);
	tcase_add_test(tc, status_fresh_hook_outranks_jsonl_then_jsonl_takes_over);
	tcase_add_test(tc, status_dnd_is_sacred_for_hooks_and_inference);
	tcase_add_test(tc, jsonl_candidates_unix_path);
	tcase_add_test(tc, jsonl_candidates_windows_paths);
	tcase_add_test(tc, jsonl_candidates_relative_path_gets_dash_variant);
	tcase_add_test(tc, jsonl_tool_use_means_working);
	tcase_add_test(tc, http_upgrade_keeps_early_frame_bytes);
	tcase_add_test(tc, http_garbage_is_malformed);
	tcase_add_test(tc, http_body_over_cap_refused_before_reading);
	tcase_add_test(tc, http_huge_header_is_431);
	tcase_add_test(tc, http_head_limit_is_16k_however_it_arrives);
	tcase_add_test(tc, http_token_matching);
	tcase_add_test(tc, http_version_other_than_1_is_505_once_the_request_line_ends);
	tcase_add_test(tc, http_whitespace_in_a_header_name_is_malformed);
	tcase_add_test(tc, ws_gate_passes_data_frames_and_keeps_the_close);
	tcase_add_test(tc, ws_gate_stops_before_a_bad_header);
	tcase_add_test(tc, ws_close_codes);
	tcase_add_test(tc, msgcheck_send_refusals_in_order);
	tcase_add_test(tc, msgcheck_topic_fields);
	tcase_add_test(tc, hello_valid_and_exact_skew_boundary_pass);
	tcase_add_test(tc, hello_rejections);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
