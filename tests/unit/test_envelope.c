/* test_envelope — reading the worker-to-worker envelope (worker/envelope.c):
 * the moderation close of issue 18 next to the status request it shares a
 * payload with, and what is ignored (another owner's slot, a wrong size). */
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
	n = pack(buf, 5, 7, 3, 0, 0);
	ck_assert_int_eq(uds_parse(buf, n, 7, 3, &type, &code, &reason), -1); /* an unknown type */
}
END_TEST

int main(void)
{
	Suite *s = suite_create("envelope");
	TCase *tc = tcase_create("parse");
	tcase_add_test(tc, a_close_envelope_carries_its_code_and_reason);
	tcase_add_test(tc, a_close_for_an_earlier_owner_or_of_the_wrong_size_is_ignored);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
