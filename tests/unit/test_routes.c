/* test_routes — walks the HTTP route table (worker/route_table.c): every
 * route of docs/protocol.md §1, §4.3, §5.3, §6 and §12.6, written out here
 * independently, resolves to its handler with its capability, scope rule,
 * body limit and checker, under /v1/ and /api/v1/; anything else reaches a
 * catch-all; and the rows' pure checks (worker/restcheck.c) refuse what
 * they must. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "worker/hook.h"
#include "worker/restcheck.h"
#include "worker/route_table.h"
#include "worker/routes.h"
#include "worker/sse.h"
#include "worker/topic_post.h"
#include "worker/topic_rest.h"

enum body { NONE, MAX, ANY };

/* what the protocol says, written out independently of the table */
struct expect {
	const char *method, *path; /* a sample path of the route */
	route_handler handler;
	enum route_auth auth;
	const char *capability;
	enum route_scope scope;
	int member; /* needs the key's issuing member */
	enum body body;
	restcheck_fn check;
	int api; /* served under /api/v1/ too */
	int issuer; /* a key without an issuing member is 400 api_key_has_no_issuer, not 404 */
};
#define REST(m, p, h, cap, sc, b, chk) {m, p, h, ROUTE_KEY, cap, sc, 1, b, chk, 1, 0}
#define WRITE(m, p, h, cap, sc, b, chk) {m, p, h, ROUTE_KEY, cap, sc, 1, b, chk, 1, 1}
static const struct expect known[] = {
	{"OPTIONS", "/anything", route_options, ROUTE_OPEN, NULL, ROUTE_SCOPE_NONE, 0, ANY, NULL, 0, 0},
	{"GET", "/ws", route_ws, ROUTE_OPEN, NULL, ROUTE_SCOPE_NONE, 0, NONE, NULL, 0, 0},
	{"GET", "/health", route_health, ROUTE_OPEN, NULL, ROUTE_SCOPE_NONE, 0, NONE, NULL, 0, 0},
	{"GET", "/metrics", route_metrics, ROUTE_OPEN, NULL, ROUTE_SCOPE_NONE, 0, NONE, NULL, 0, 0},
	{"POST", "/hook/set-status", hook_set_status, ROUTE_KEY_OR_LOOPBACK, "status|send", ROUTE_SCOPE_NONE, 0, MAX,
	 NULL, 0, 0},
	{"POST", "/join", route_join, ROUTE_OPEN, NULL, ROUTE_SCOPE_NONE, 0, MAX, NULL, 0, 0},
	REST("GET", "/v1/topics/general/key", topic_rest_key, "read", ROUTE_SCOPE_PATH, NONE, NULL),
	REST("GET", "/v1/topics/general/pending-seals", topic_rest_pending, "read", ROUTE_SCOPE_PATH, NONE, NULL),
	REST("POST", "/v1/topics/general/seal", topic_rest_seal, "send", ROUTE_SCOPE_PATH, MAX, restcheck_seal),
	WRITE("POST", "/v1/messages", topic_post_message, "send", ROUTE_SCOPE_BODY, MAX, restcheck_post),
	REST("GET", "/v1/notifications", topic_post_notifications, "read", ROUTE_SCOPE_FILTER, NONE, restcheck_since),
	/* §12.6: what the HEAD CLI's topic commands and the web UI read */
	REST("GET", "/v1/me/notifications", topic_post_me_notifications, "read", ROUTE_SCOPE_FILTER, NONE,
	     restcheck_since),
	REST("GET", "/v1/topics/general/messages", topic_rest_messages, "read", ROUTE_SCOPE_PATH, NONE, restcheck_page),
	REST("GET", "/v1/topics/general/stream", sse_stream, "read", ROUTE_SCOPE_PATH, NONE, restcheck_stream),
	WRITE("PATCH", "/v1/topics/general/read", topic_rest_read, "read", ROUTE_SCOPE_PATH, NONE, NULL),
	REST("GET", "/v1/topics", topic_rest_topics, "read", ROUTE_SCOPE_FILTER, NONE, NULL),
	REST("GET", "/v1/me/topics", topic_rest_me_topics, "read", ROUTE_SCOPE_FILTER, NONE, NULL),
	/* the /v1/ catch-all: any key, then 404 */
	{"GET", "/v1/nothing-here", route_api_not_found, ROUTE_KEY, NULL, ROUTE_SCOPE_NONE, 0, ANY, NULL, 1, 0},
};
#define NKNOWN (sizeof known / sizeof known[0])

static size_t limit_of(enum body b)
{
	return b == NONE ? ROUTE_BODY_NONE : b == MAX ? ROUTE_BODY_MAX : ROUTE_BODY_ANY;
}

static void check_row(const struct expect *e, const char *path)
{
	char name[RESTCHECK_REF_MAX + 1];
	int ok;
	const struct route_row *r = route_find(e->method, path, name, &ok);
	ck_assert_msg(r->handler == e->handler, "%s %s: wrong handler", e->method, path);
	ck_assert_msg(r->auth == e->auth, "%s %s: auth %d", e->method, path, (int)r->auth);
	ck_assert_msg((!r->capability && !e->capability) ||
			      (r->capability && e->capability && !strcmp(r->capability, e->capability)),
		      "%s %s: capability %s", e->method, path, r->capability ? r->capability : "(none)");
	ck_assert_msg(r->scope == e->scope, "%s %s: scope %d", e->method, path, (int)r->scope);
	ck_assert_msg(!!(r->flags & ROUTE_MEMBER) == e->member, "%s %s: member rule", e->method, path);
	ck_assert_msg(!!(r->flags & ROUTE_ISSUER) == e->issuer, "%s %s: issuer rule", e->method, path);
	ck_assert_msg(r->body_max == limit_of(e->body), "%s %s: body limit", e->method, path);
	ck_assert_msg(r->check == e->check, "%s %s: checker", e->method, path);
	ck_assert_msg(ok, "%s %s: its :name did not decode", e->method, path);
	if (r->scope == ROUTE_SCOPE_PATH)
		ck_assert_str_eq(name, "general");
	/* a key route always names the capability it needs, or is the catch-all */
	ck_assert_msg(r->auth == ROUTE_OPEN || r->capability || r->handler == route_api_not_found,
		      "%s %s: a keyed row without a capability", e->method, path);
}

START_TEST(every_listed_route_gets_its_row_under_v1_and_api_v1)
{
	for (size_t i = 0; i < NKNOWN; i++) {
		check_row(&known[i], known[i].path);
		char alias[256];
		snprintf(alias, sizeof alias, "/api%s", known[i].path);
		char name[RESTCHECK_REF_MAX + 1];
		int ok;
		const struct route_row *r = route_find(known[i].method, alias, name, &ok);
		if (known[i].api)
			check_row(&known[i], alias);
		else
			ck_assert_msg(r->handler == route_not_found || known[i].handler == route_options,
				      "%s %s is no /api route", known[i].method, alias);
	}
}
END_TEST

START_TEST(every_table_row_is_a_route_the_protocol_knows)
{
	size_t n;
	const struct route_row *t = route_table(&n);
	ck_assert_uint_eq(n, NKNOWN + 1);
	for (size_t r = 0; r + 1 < n; r++) {
		int found = 0;
		for (size_t i = 0; i < NKNOWN; i++)
			found |= t[r].handler == known[i].handler;
		ck_assert_msg(found, "row %zu (%s) has no expectation", r, t[r].pattern);
	}
	ck_assert_ptr_null(t[n - 1].pattern);
	ck_assert_ptr_eq(t[n - 1].handler, route_not_found);
}
END_TEST

START_TEST(wrong_methods_and_unknown_paths_reach_a_catch_all)
{
	static const struct {
		const char *method, *path;
		route_handler want;
	} cases[] = {
		{"POST", "/health", route_not_found},
		{"GET", "/nope", route_not_found},
		{"GET", "/", route_not_found},
		{"GET", "/healthz", route_not_found},
		{"GET", "/metrics/x", route_not_found},
		{"GET", "/v1", route_not_found},
		{"GET", "/api/health", route_not_found},
		{"POST", "/v1/topics/general/key", route_api_not_found},
		{"GET", "/v1/topics/general/seal", route_api_not_found},
		{"GET", "/v1/topics/general", route_api_not_found},
		{"GET", "/v1/topics/general/key/extra", route_api_not_found},
		{"DELETE", "/api/v1/messages", route_api_not_found},
		{"GET", "/v1/messages", route_api_not_found},
		{"POST", "/v1/topics/general/read", route_api_not_found},
		{"GET", "/v1/me", route_api_not_found},
		{"GET", "/ws/", route_not_found},
		{"PUT", "/join", route_join},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char name[RESTCHECK_REF_MAX + 1];
		int ok;
		const struct route_row *r = route_find(cases[i].method, cases[i].path, name, &ok);
		ck_assert_msg(r->handler == cases[i].want, "%s %s: wrong row", cases[i].method, cases[i].path);
	}
}
END_TEST

START_TEST(a_topic_name_in_the_path_is_url_decoded_and_checked)
{
	char name[RESTCHECK_REF_MAX + 1];
	int ok;
	const struct route_row *r = route_find("GET", "/api/v1/topics/gen%65ral/key", name, &ok);
	ck_assert_ptr_eq(r->handler, topic_rest_key);
	ck_assert(ok);
	ck_assert_str_eq(name, "general");
	const char *bad[] = {"/v1/topics/a%2Fb/key", "/v1/topics/a%00b/key", "/v1/topics/a%zz/key",
			     "/v1/topics/a%4/key", "/v1/topics/a%ff/key"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		r = route_find("GET", bad[i], name, &ok);
		ck_assert_msg(r->handler == topic_rest_key && !ok, "%s: should be its row with a bad name", bad[i]);
	}
	char longp[400] = "/v1/topics/";
	memset(longp + strlen(longp), 'a', RESTCHECK_REF_MAX + 1);
	strcat(longp, "/key");
	r = route_find("GET", longp, name, &ok);
	ck_assert(r->handler == topic_rest_key && !ok);
}
END_TEST

/* ---- the rows' checks ---- */

static int post(const char *body, size_t max, struct rest_args *a, const char **err)
{
	struct http_req req = {0};
	req.body = (char *)body;
	req.body_len = strlen(body);
	memset(a, 0, sizeof *a);
	return restcheck_post(&req, max, a, err);
}

START_TEST(a_rest_post_is_checked_like_a_socket_send)
{
	struct rest_args a;
	const char *err = NULL;
	ck_assert_int_eq(post("{\"topic\":\"general\",\"nonce\":\"fake-nonce-aaa\",\"ciphertext\":\"hello-from-a\"}",
			      1024, &a, &err),
			 0);
	ck_assert_str_eq(a.topic, "general");
	ck_assert_str_eq(a.nonce, "fake-nonce-aaa");
	ck_assert_int_eq(a.version, 1);
	restcheck_args_free(&a);
	static const struct {
		const char *body;
		int status;
		const char *error;
	} bad[] = {
		{"{\"topic\":\"general\",\"nonce\":\"a\\u0000b\",\"ciphertext\":\"x\"}", 400, RESTCHECK_NUL},
		{"{\"topic\":\"general\",\"nonce\":\"ab\",\"ciphertext\":\"x\\u0000\"}", 400, RESTCHECK_NUL},
		{"{\"topic\":\"general\",\"nonce\":\"n\",\"ciphertext\":\"QEBAPz8=\",\"mentions\":[\"\xff\xfe\"]}", 400,
		 "invalid_mentions"},
		/* a v1 body "@\xff\xfe" (base64): a mention that is not UTF-8 */
		{"{\"topic\":\"general\",\"nonce\":\"n\",\"ciphertext\":\"QP/+\"}", 400, "invalid_mentions"},
		{"{\"topic\":\"general\",\"nonce\":\"n\",\"ciphertext\":\"x\",\"bodyVersion\":3}", 400,
		 "invalid_body_version"},
		{"{\"topic\":\"general\",\"nonce\":\"n\",\"ciphertext\":\"x\",\"priority\":\"urgent\"}", 400,
		 "invalid_priority"},
		{"{\"topic\":\"gen eral\",\"nonce\":\"n\",\"ciphertext\":\"x\"}", 400, "invalid_topic"},
		{"{\"topic\":\"general\",\"ciphertext\":\"x\"}", 400, "invalid_body"},
		{"{\"topic\":\"general\",\"nonce\":\"n\",\"ciphertext\":\"\"}", 400, "invalid_body"},
		{"[1]", 400, "invalid_body"},
		{"{\"topic\":\"general\",\"nonce\":\"nnnnnnnn\",\"ciphertext\":\"xxxxxxxxx\"}", 413, "payload_too_large"},
		/* opaque but text: raw bytes that are not UTF-8; a lone surrogate is no JSON string at all */
		{"{\"topic\":\"general\",\"nonce\":\"\xff\",\"ciphertext\":\"x\"}", 400, RESTCHECK_UTF8},
		{"{\"topic\":\"general\",\"nonce\":\"n\",\"ciphertext\":\"x\xed\xb0\x80\"}", 400, RESTCHECK_UTF8},
		{"{\"topic\":\"general\",\"nonce\":\"n\",\"ciphertext\":\"\\udc00\"}", 400, "invalid_body"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err = NULL;
		int st = post(bad[i].body, 16, &a, &err);
		ck_assert_msg(st == bad[i].status && err && !strcmp(err, bad[i].error), "case %zu: %d %s", i, st,
			      err ? err : "(none)");
		restcheck_args_free(&a);
	}
}
END_TEST

START_TEST(query_strings_and_times_are_decoded_or_refused)
{
	char v[64];
	ck_assert_int_eq(restcheck_query("/x?limit=5&before=abc", "before", v, sizeof v), 1);
	ck_assert_str_eq(v, "abc");
	ck_assert_int_eq(restcheck_query("/x?limit=5", "before", v, sizeof v), 0);
	ck_assert_int_eq(restcheck_query("/x?a=%zz", "a", v, sizeof v), -1);
	ck_assert_int_eq(restcheck_query("/x?a=b+c%21", "a", v, sizeof v), 1);
	ck_assert_str_eq(v, "b c!");
	int64_t ms;
	ck_assert_int_eq(restcheck_time("2026-04-04T21:53:40.123Z", &ms), 0);
	ck_assert(ms == 1775339620123LL);
	ck_assert_int_eq(restcheck_time("1775339620123", &ms), 0);
	ck_assert(ms == 1775339620123LL);
	ck_assert_int_eq(restcheck_time("yesterday", &ms), -1);
	ck_assert_int_eq(restcheck_time("2026-13-04T21:53:40Z", &ms), -1);
	struct http_req req = {0};
	struct rest_args a = {0};
	const char *err;
	snprintf(req.url, sizeof req.url, "/v1/topics/x/messages?limit=0");
	ck_assert_int_eq(restcheck_page(&req, 0, &a, &err), 400);
	snprintf(req.url, sizeof req.url, "/v1/topics/x/messages?limit=201");
	ck_assert_int_eq(restcheck_page(&req, 0, &a, &err), 400);
	snprintf(req.url, sizeof req.url, "/v1/topics/x/messages?limit=200&before=zz%%20");
	ck_assert_int_eq(restcheck_page(&req, 0, &a, &err), 0);
	ck_assert_int_eq(a.limit, 200);
	ck_assert_str_eq(a.before, ""); /* not an id: no cursor */
	snprintf(req.url, sizeof req.url, "/v1/notifications?since=nope");
	ck_assert_int_eq(restcheck_since(&req, 0, &a, &err), 400);
	ck_assert_str_eq(err, "invalid_since");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("routes");
	TCase *tc = tcase_create("table");
	tcase_add_test(tc, every_listed_route_gets_its_row_under_v1_and_api_v1);
	tcase_add_test(tc, every_table_row_is_a_route_the_protocol_knows);
	tcase_add_test(tc, wrong_methods_and_unknown_paths_reach_a_catch_all);
	tcase_add_test(tc, a_topic_name_in_the_path_is_url_decoded_and_checked);
	tcase_add_test(tc, a_rest_post_is_checked_like_a_socket_send);
	tcase_add_test(tc, query_strings_and_times_are_decoded_or_refused);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
