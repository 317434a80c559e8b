/* test_envelope — reading the worker-to-worker envelope (worker/envelope.c):
 * the moderation close of issue 18 next to the status request it shares a
 * payload with, and what is ignored (another owner's slot, a wrong size);
 * a handed push (issue 23) read only within its own bytes. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "worker/envelope.h"

static size_t pack(unsigned char *buf, uint16_t type, uint32_t slot, uint32_t gen, int32_t a, int32_t b)
{
	struct uds_env e = {.type = type, .len = sizeof(struct uds_status), .dst_slot = slot, .dst_gen = gen};
	struct uds_status st = {a, b};
	memcpy(buf, &e, sizeof e);
	memcpy(buf + sizeof e, &st, sizeof st);
	return sizeof e + sizeof st;
}

START_TEST(a_close_envelope_carries_its_code_and_reason)
{
	unsigned char buf[64];
	int type = 0;
	int32_t code = 0, reason = 0;
	size_t n = pack(buf, UDS_CLOSE, 7, 3, 4002, 4);
	ck_assert_int_eq(uds_parse(buf, n, 7, 3, &type, &code, &reason), 0);
	ck_assert_int_eq(type, UDS_CLOSE);
	ck_assert_int_eq(code, 4002);
	ck_assert_int_eq(reason, 4);
	n = pack(buf, UDS_STATUS, 7, 3, 1, 3);
	ck_assert_int_eq(uds_parse(buf, n, 7, 3, &type, &code, &reason), 0);
	ck_assert_int_eq(type, UDS_STATUS);
}
END_TEST

START_TEST(a_close_for_an_earlier_owner_or_of_the_wrong_size_is_ignored)
{
	unsigned char buf[64];
	int type = 0;
	int32_t code = 0, reason = 0;
	size_t n = pack(buf, UDS_CLOSE, 7, 2, 4001, 0);
	ck_assert_int_eq(uds_parse(buf, n, 7, 3, &type, &code, &reason), -1); /* the slot's previous generation */
	n = pack(buf, UDS_CLOSE, 7, 3, 4001, 0);
	ck_assert_int_eq(uds_parse(buf, n - 1, 7, 3, &type, &code, &reason), -1);
	ck_assert_int_eq(uds_parse(buf, sizeof(struct uds_env), 7, 3, &type, &code, &reason), -1);
	n = pack(buf, 99, 7, 3, 0, 0);
	ck_assert_int_eq(uds_parse(buf, n, 7, 3, &type, &code, &reason), -1); /* an unknown type */
	n = pack(buf, UDS_PUSH, 7, 3, 0, 0);
	ck_assert_int_eq(uds_parse(buf, n, 7, 3, &type, &code, &reason), -1); /* uds_parse_push's */
}
END_TEST

/* a handed push: header, struct uds_push, then the JSON text */
static size_t pack_push(unsigned char *buf, uint32_t slot, uint32_t gen, int64_t id, const char *json, int len_delta)
{
	struct uds_push p = {.delivery_id = id, .created_ms = 1700000000123};
	size_t jl = strlen(json);
	struct uds_env e = {.type = UDS_PUSH, .len = (uint16_t)(sizeof p + jl + len_delta), .dst_slot = slot,
			    .dst_gen = gen};
	memcpy(buf, &e, sizeof e);
	memcpy(buf + sizeof e, &p, sizeof p);
	memcpy(buf + sizeof e + sizeof p, json, jl);
	return sizeof e + sizeof p + jl;
}

START_TEST(a_handed_push_is_read_within_its_bytes_and_anything_else_is_ignored)
{
	unsigned char buf[256];
	struct uds_push p;
	const char *json = NULL;
	size_t jl = 0;
	size_t n = pack_push(buf, 7, 3, 42, "{\"type\":\"push\"}", 0);
	ck_assert_int_eq(uds_parse_push(buf, n, 7, 3, &p, &json, &jl), 0);
	ck_assert_int_eq(p.delivery_id, 42);
	ck_assert_int_eq(p.created_ms, 1700000000123);
	ck_assert_uint_eq(jl, strlen("{\"type\":\"push\"}"));
	ck_assert(memcmp(json, "{\"type\":\"push\"}", jl) == 0);
	ck_assert_ptr_eq(json, (const char *)buf + sizeof(struct uds_env) + sizeof(struct uds_push));
	ck_assert_int_eq(uds_parse_push(buf, n, 7, 2, &p, &json, &jl), -1);     /* an earlier owner */
	ck_assert_int_eq(uds_parse_push(buf, n - 1, 7, 3, &p, &json, &jl), -1); /* cut short */
	n = pack_push(buf, 7, 3, 42, "{}", 1);                                  /* len says more */
	ck_assert_int_eq(uds_parse_push(buf, n, 7, 3, &p, &json, &jl), -1);
	n = pack_push(buf, 7, 3, 42, "", 0);                                    /* no JSON */
	ck_assert_int_eq(uds_parse_push(buf, n, 7, 3, &p, &json, &jl), -1);
	n = pack_push(buf, 7, 3, 0, "{}", 0);                                   /* no row */
	ck_assert_int_eq(uds_parse_push(buf, n, 7, 3, &p, &json, &jl), -1);
	n = pack(buf, UDS_WAKE, 7, 3, 0, 0);                                    /* another type */
	ck_assert_int_eq(uds_parse_push(buf, n, 7, 3, &p, &json, &jl), -1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("envelope");
	TCase *tc = tcase_create("parse");
	tcase_add_test(tc, a_close_envelope_carries_its_code_and_reason);
	tcase_add_test(tc, a_close_for_an_earlier_owner_or_of_the_wrong_size_is_ignored);
	tcase_add_test(tc, a_handed_push_is_read_within_its_bytes_and_anything_else_is_ignored);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
