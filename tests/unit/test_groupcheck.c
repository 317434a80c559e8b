/* test_groupcheck — the pure checks of docs/protocol.md §12.3-§12.5
 * (worker/groupcheck.c): group names and lists, profile and stats limits,
 * moderation targets, apikey_create's arguments and its ISO time. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "proto/apikey.h"
#include "worker/groupcheck.h"

#define NOW 1770000000000LL /* 2026-02-02T02:40:00Z */

static cJSON *J(const char *s)
{
	cJSON *o = cJSON_Parse(s);
	ck_assert_ptr_nonnull(o);
	return o;
}

START_TEST(group_names_follow_the_segment_rules_and_never_all)
{
	static const char *const good[] = {"a", "reviewers", "eng/backend", "A9_.-x/b", "x/y/z"};
	static const char *const bad[] = {"", "all", "/a", "a/", "a//b", "-a", "_a", ".a", "a b", "é", "a/.b"};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		ck_assert_msg(groupcheck_name(good[i]), "%s", good[i]);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(!groupcheck_name(bad[i]), "%s", bad[i]);
	char seg[66];
	memset(seg, 'x', 64);
	seg[64] = 0;
	ck_assert(groupcheck_name(seg)); /* a segment of 64 */
	seg[64] = 'x';
	seg[65] = 0;
	ck_assert(!groupcheck_name(seg)); /* of 65 */
	char name[130];
	for (int i = 0; i < 129; i++)
		name[i] = i % 2 ? '/' : 'a';
	name[127] = 'a';
	name[128] = 0;
	ck_assert(groupcheck_name(name)); /* 128 bytes */
	name[128] = 'a';
	name[129] = 0;
	ck_assert(!groupcheck_name(name)); /* 129 */
	ck_assert(groupcheck_target("all") && groupcheck_target("eng") && !groupcheck_target("") &&
	          !groupcheck_target("a//b"));
}
END_TEST

START_TEST(hello_groups_are_at_most_32_objects_with_a_valid_name_and_role)
{
	cJSON *ok = J("[{\"name\":\"a\"},{\"name\":\"b/c\",\"role\":\"lead\"},{\"name\":\"d\",\"role\":null}]");
	ck_assert(groupcheck_list(ok));
	cJSON_Delete(ok);
	static const char *const bad[] = {"{}", "[\"a\"]", "[{\"name\":\"all\"}]", "[{\"name\":1}]",
	                                  "[{\"name\":\"a\",\"role\":\"123456789012345678901234567890123\"}]"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cJSON *b = J(bad[i]);
		ck_assert_msg(!groupcheck_list(b), "%s", bad[i]);
		cJSON_Delete(b);
	}
	cJSON *many = cJSON_CreateArray();
	for (int i = 0; i < 33; i++) {
		cJSON *g = cJSON_CreateObject();
		cJSON_AddStringToObject(g, "name", "g");
		cJSON_AddItemToArray(many, g);
	}
	ck_assert(!groupcheck_list(many));
	cJSON_DeleteItemFromArray(many, 0);
	ck_assert(groupcheck_list(many));
	cJSON_Delete(many);
}
END_TEST

START_TEST(profile_limits_and_types)
{
	cJSON *patch, *m = J("{\"title\":\"t\",\"capabilities\":[\"x\"],\"other\":1}");
	ck_assert_int_eq(groupcheck_profile(m, &patch), 0);
	ck_assert_int_eq(cJSON_GetArraySize(patch), 2); /* only the known fields */
	cJSON_Delete(patch);
	cJSON_Delete(m);
	char bio[600];
	memset(bio, 'b', 513);
	bio[513] = 0;
	cJSON *long_bio = cJSON_CreateObject();
	cJSON_AddStringToObject(long_bio, "bio", bio);
	ck_assert_int_eq(groupcheck_profile(long_bio, &patch), -1);
	ck_assert_ptr_null(patch);
	cJSON_Delete(long_bio);
	m = J("{\"avatar\":5}");
	ck_assert_int_eq(groupcheck_profile(m, &patch), -2);
	cJSON_Delete(m);
	m = J("{\"stats\":{\"uptime\":5,\"x\":1,\"errors\":\"no\"}}");
	cJSON *st;
	ck_assert_int_eq(groupcheck_stats(m, &st), 0);
	ck_assert_int_eq(cJSON_GetArraySize(st), 1);
	cJSON_Delete(st);
	cJSON_Delete(m);
}
END_TEST

START_TEST(moderation_needs_a_target_stale_or_all)
{
	struct mod_args a;
	cJSON *m = J("{\"target\":\"bob\"}");
	ck_assert_int_eq(groupcheck_moderation(m, 1, &a), 0);
	ck_assert_str_eq(a.target, "bob");
	cJSON_Delete(m);
	m = J("{\"stale\":60000}");
	ck_assert_int_eq(groupcheck_moderation(m, 0, &a), 0);
	ck_assert(a.pick == MOD_STALE && a.stale_ms == 60000);
	ck_assert_int_eq(groupcheck_moderation(m, 1, &a), -1); /* ban and unban take a target only */
	cJSON_Delete(m);
	m = J("{\"all\":true}");
	ck_assert_int_eq(groupcheck_moderation(m, 0, &a), 0);
	ck_assert(a.pick == MOD_ALL);
	cJSON_Delete(m);
	m = J("{\"target\":\"\",\"all\":false}");
	ck_assert_int_eq(groupcheck_moderation(m, 0, &a), -1);
	cJSON_Delete(m);
}
END_TEST

START_TEST(apikey_create_arguments_and_iso_times)
{
	ck_assert_int_eq(groupcheck_iso_ms("1970-01-01T00:00:01.500Z"), 1500);
	ck_assert_int_eq(groupcheck_iso_ms("2026-02-02T02:40:00Z"), NOW);
	static const char *const bad_times[] = {"2026-02-30T00:00:00Z",
	                                        "2026-02-02 02:40:00Z",
	                                        "2026-02-02T02:40:00",
	                                        "2026-02-02T24:00:00Z",
	                                        "tomorrow",
	                                        ""};
	for (size_t i = 0; i < sizeof bad_times / sizeof bad_times[0]; i++)
		ck_assert_msg(groupcheck_iso_ms(bad_times[i]) == -1, "%s", bad_times[i]);
	struct apikey_args a;
	const char *why;
	cJSON *m = J("{\"label\":\"cli-x\",\"capabilities\":[\"read\",\"send\"],\"topicScopes\":[\"general\"],"
	             "\"expiresAt\":\"2026-02-02T02:45:00.000Z\"}");
	ck_assert_int_eq(groupcheck_apikey_create(m, NOW, &a, &why), 0);
	ck_assert_uint_eq(a.caps, APIKEY_CAP_READ | APIKEY_CAP_SEND);
	ck_assert_int_eq(a.n_scopes, 1);
	ck_assert_int_eq(a.expires_ms, NOW + 300000);
	ck_assert_int_eq(groupcheck_apikey_create(m, NOW + 300000, &a, &why), -1); /* expired by then */
	cJSON_Delete(m);
	static const char *const bad[] = {"{\"capabilities\":[\"read\"]}", "{\"label\":\"x\",\"capabilities\":[]}",
	                                  "{\"label\":\"x\",\"capabilities\":[\"status\"]}",
	                                  "{\"label\":\"x\",\"capabilities\":[\"read\"],\"topicScopes\":\"general\"}"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		m = J(bad[i]);
		ck_assert_msg(groupcheck_apikey_create(m, NOW, &a, &why) == -1 && why, "%s", bad[i]);
		cJSON_Delete(m);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("groupcheck");
	TCase *tc = tcase_create("checks");
	tcase_add_test(tc, group_names_follow_the_segment_rules_and_never_all);
	tcase_add_test(tc, hello_groups_are_at_most_32_objects_with_a_valid_name_and_role);
	tcase_add_test(tc, profile_limits_and_types);
	tcase_add_test(tc, moderation_needs_a_target_stale_or_all);
	tcase_add_test(tc, apikey_create_arguments_and_iso_times);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
