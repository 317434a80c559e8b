/* test_netaddr — source keys by prefix and the loopback test (common/netaddr). */
#include <arpa/inet.h>
#include <check.h>
#include <string.h>

#include "common/netaddr.h"

static void addr(const char *text, unsigned char out[16])
{
	memset(out, 0, 16);
	struct in_addr a4;
	if (inet_pton(AF_INET, text, &a4) == 1) {
		out[10] = out[11] = 0xff;
		memcpy(out + 12, &a4, 4);
		return;
	}
	ck_assert_int_eq(inet_pton(AF_INET6, text, out), 1);
}

static int same_source(const char *x, const char *y, int v4, int v6)
{
	unsigned char a[16], b[16], ka[16], kb[16];
	addr(x, a);
	addr(y, b);
	source_key(a, v4, v6, ka);
	source_key(b, v4, v6, kb);
	return memcmp(ka, kb, 16) == 0;
}

START_TEST(ipv4_addresses_in_one_slash_24_are_one_source)
{
	ck_assert(same_source("192.0.2.1", "192.0.2.254", 24, 64));
	ck_assert(!same_source("192.0.2.1", "192.0.3.1", 24, 64));
	ck_assert(!same_source("192.0.2.1", "192.0.2.2", 32, 64));
	ck_assert(same_source("198.51.100.7", "198.51.101.9", 23, 64));
	ck_assert(!same_source("198.51.100.7", "198.51.102.9", 23, 64));
	ck_assert(same_source("10.1.2.3", "99.4.5.6", 0, 64));
	/* out of range clamps rather than reading past the address */
	ck_assert(!same_source("192.0.2.1", "192.0.2.2", 99, 64));
}
END_TEST

START_TEST(ipv6_addresses_in_one_slash_64_are_one_source)
{
	ck_assert(same_source("2001:db8:1:2::1", "2001:db8:1:2:ffff::9", 24, 64));
	ck_assert(!same_source("2001:db8:1:2::1", "2001:db8:1:3::1", 24, 64));
	ck_assert(!same_source("2001:db8::1", "2001:db8::2", 24, 128));
	ck_assert(same_source("2001:db8:1:2::1", "2001:db8:1:3::1", 24, 48));
	/* an IPv4-mapped address is masked as IPv4, never with the IPv6 prefix */
	ck_assert(!same_source("192.0.2.1", "192.0.3.1", 24, 0));
	ck_assert(!same_source("::1", "192.0.2.1", 24, 0));
}
END_TEST

START_TEST(loopback_is_127_slash_8_and_colon_colon_1_only)
{
	unsigned char a[16];
	const char *yes[] = {"127.0.0.1", "127.1.2.3", "127.255.255.254", "::1"};
	const char *no[] = {"128.0.0.1", "10.0.0.1", "::", "::2", "fe80::1", "0.0.0.0", "::ffff:0.0.0.1"};
	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		addr(yes[i], a);
		ck_assert_msg(addr_is_loopback(a), "%s", yes[i]);
	}
	for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
		addr(no[i], a);
		ck_assert_msg(!addr_is_loopback(a), "%s", no[i]);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("netaddr");
	TCase *tc = tcase_create("netaddr");
	tcase_add_test(tc, ipv4_addresses_in_one_slash_24_are_one_source);
	tcase_add_test(tc, ipv6_addresses_in_one_slash_64_are_one_source);
	tcase_add_test(tc, loopback_is_127_slash_8_and_colon_colon_1_only);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
