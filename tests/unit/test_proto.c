/* test_proto — unit tests of proto/ helpers not covered elsewhere: canonical
 * JSON and the audit chain hash, ids, ISO times, config parsing. */
#include <check.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "proto/canon.h"
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
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
