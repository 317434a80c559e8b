/* test_opaque — base64 and escaped-NUL checks (common/opaque). */
#include <check.h>
#include <string.h>

#include "common/opaque.h"

static int v(const char *s) { return b64_is_valid(s, strlen(s)); }
static int nul(const char *s) { return json_has_nul_escape(s, strlen(s)); }

START_TEST(base64_standard_alphabet_and_padding_only)
{
	ck_assert(v(""));
	ck_assert(v("AAAA"));
	ck_assert(v("ab+/"));
	ck_assert(v("YQ=="));
	ck_assert(v("YWI="));
	ck_assert(v("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")); /* a 24-byte nonce */
	ck_assert(!v("YQ="));   /* length */
	ck_assert(!v("Y==="));  /* too much padding */
	ck_assert(!v("Y=Q="));  /* padding inside */
	ck_assert(!v("ab-_"));  /* URL alphabet */
	ck_assert(!v("ab c"));
	ck_assert(!v("abc\n"));
	ck_assert(!b64_is_valid("ab\0d", 4)); /* a NUL is not base64 */
}
END_TEST

START_TEST(escaped_nul_found_and_escaped_backslash_not_mistaken)
{
	ck_assert(nul("{\"c\":\"abc\\u0000def\"}"));
	ck_assert(nul("\\u0000"));
	ck_assert(!nul("{\"c\":\"abc\\\\u0000def\"}")); /* \\ then u0000: text, not a NUL */
	ck_assert(nul("{\"c\":\"abc\\\\\\u0000\"}"));   /* \\ then \u0000 */
	ck_assert(nul("{\"c\":\"\\u00001\"}")); /* a NUL, then "1" */
	ck_assert(!nul("{\"c\":\"\\u0001\"}"));
	ck_assert(!nul("{\"c\":\"u0000\"}"));
	ck_assert(!nul("\\u000"));                 /* cut short */
	ck_assert(!json_has_nul_escape("\\u0000", 5));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("opaque");
	TCase *tc = tcase_create("opaque");
	tcase_add_test(tc, base64_standard_alphabet_and_padding_only);
	tcase_add_test(tc, escaped_nul_found_and_escaped_backslash_not_mistaken);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
