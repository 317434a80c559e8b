/* test_hosts — the pieces of worker/hosts.c that need no database: HOST_ID's
 * check, the doorbell line's parser, and the handoff of remote recipients to
 * a relay socket (a real SOCK_DGRAM socket in a temporary directory). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "worker/hosts.h"

static struct hosts_bell b;

START_TEST(host_ids_are_short_lowercase_names)
{
	ck_assert_int_eq(hosts_valid_id("h1"), 1);
	ck_assert_int_eq(hosts_valid_id("eu-west-1a"), 1);
	ck_assert_int_eq(hosts_valid_id("0123456789abcdef0123456789abcdef"), 1); /* 32 */
	ck_assert_int_eq(hosts_valid_id("0123456789abcdef0123456789abcdef0"), 0); /* 33 */
	ck_assert_int_eq(hosts_valid_id(""), 0);
	ck_assert_int_eq(hosts_valid_id("-h"), 0);
	ck_assert_int_eq(hosts_valid_id("H1"), 0);
	ck_assert_int_eq(hosts_valid_id("h 1"), 0);
	ck_assert_int_eq(hosts_valid_id("h\"1"), 0); /* it is quoted into LISTEN "mb_<id>" */
}
END_TEST

START_TEST(a_doorbell_line_is_read_exactly_or_refused)
{
	const char *ok = "w mesh1 a,b_c,D-9";
	ck_assert_int_eq(hosts_parse(ok, strlen(ok), &b), 0);
	ck_assert_str_eq(b.mesh_id, "mesh1");
	ck_assert_int_eq(b.n, 3);
	ck_assert_str_eq(b.ids[0], "a");
	ck_assert_str_eq(b.ids[2], "D-9");
	const char *close = "c4002.4 mesh1 m1";
	ck_assert_int_eq(hosts_parse(close, strlen(close), &b), 0);
	ck_assert_int_eq(b.kind, HOSTS_CLOSE);
	ck_assert_int_eq(b.code, 4002);
	ck_assert_int_eq(b.reason, 4);
	ck_assert_str_eq(b.ids[0], "m1");
	const char *bad_close[] = {"c4002 m a", "c4002. m a", "c.4 m a", "c999.4 m a", "c5000.1 m a", "c4002.64 m a",
				   "c04002.1 m a", "c4002.01 m a", "c40020.1 m a", "c4002.4m a", "w4002.4 m a"};
	for (size_t i = 0; i < sizeof bad_close / sizeof *bad_close; i++)
		ck_assert_msg(hosts_parse(bad_close[i], strlen(bad_close[i]), &b) == -1, "accepted \"%s\"",
			      bad_close[i]);
	const char *bad[] = {"", "w", "w ", "w m", "w m ", "x m a", "w m a,", "w m ,a", "w m a,,b", "w m a b",
			     "w m a\n", "w m\"x a", "w  m a"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		ck_assert_msg(hosts_parse(bad[i], strlen(bad[i]), &b) == -1, "accepted \"%s\"", bad[i]);
	char id[HOSTS_KEY_MAX + 8];
	memset(id, 'a', sizeof id);
	char line[256];
	int n = snprintf(line, sizeof line, "w m %.*s", HOSTS_KEY_MAX - 1, id);
	ck_assert_int_eq(hosts_parse(line, (size_t)n, &b), 0);
	n = snprintf(line, sizeof line, "w m %.*s", HOSTS_KEY_MAX, id); /* one too long */
	ck_assert_int_eq(hosts_parse(line, (size_t)n, &b), -1);
	/* HOSTS_IDS_MAX ids at most */
	static char many[HOSTS_LINE_MAX + 16];
	size_t len = (size_t)snprintf(many, sizeof many, "w m ");
	for (int i = 0; i <= HOSTS_IDS_MAX; i++)
		len += (size_t)snprintf(many + len, sizeof many - len, "%s%d", i ? "," : "", i % 10);
	ck_assert_int_eq(hosts_parse(many, len, &b), -1);
	len -= 2; /* drop the last one */
	ck_assert_int_eq(hosts_parse(many, len, &b), 0);
	ck_assert_int_eq(b.n, HOSTS_IDS_MAX);
}
END_TEST

START_TEST(only_recipients_without_a_local_slot_go_to_the_relay_in_lines_it_can_read)
{
	char dir[] = "/tmp/mbhosts-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	ck_assert_int_eq(hosts_relay_path(dir, a.sun_path, sizeof a.sun_path), 0);
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	/* 500 recipients of 32 characters, every third one local */
	enum { N = 500 };
	static char idbuf[N][33];
	const char *ids[N];
	unsigned char found[N];
	for (int i = 0; i < N; i++) {
		snprintf(idbuf[i], sizeof idbuf[i], "%032d", i);
		ids[i] = idbuf[i];
		found[i] = i % 3 == 0;
	}
	hosts_hand_remote(dir, "meshX", ids, found, N);
	static char buf[HOSTS_LINE_MAX + 1];
	int seen[N] = {0}, lines = 0;
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
		if (n < 0)
			break;
		lines++;
		ck_assert_int_le(n, HOSTS_LINE_MAX);
		ck_assert_int_eq(hosts_parse(buf, (size_t)n, &b), 0);
		ck_assert_str_eq(b.mesh_id, "meshX");
		for (int i = 0; i < b.n; i++)
			seen[atoi(b.ids[i])]++;
	}
	ck_assert_int_ge(lines, 2); /* 333 ids do not fit one line */
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(seen[i], i % 3 == 0 ? 0 : 1);
	/* all local: nothing is sent */
	memset(found, 1, sizeof found);
	hosts_hand_remote(dir, "meshX", ids, found, N);
	ck_assert_int_lt(recv(fd, buf, sizeof buf, MSG_DONTWAIT), 0);
	/* no relay listening: nothing happens (the sweep repairs it) */
	close(fd);
	unlink(a.sun_path);
	memset(found, 0, sizeof found);
	hosts_hand_remote(dir, "meshX", ids, found, N);
	rmdir(dir);
}
END_TEST

START_TEST(the_cross_host_kinds_carry_their_numbers_and_name_members_or_presences)
{
	const char *st = "s2.2 mesh1 m1";
	ck_assert_int_eq(hosts_parse(st, strlen(st), &b), 0);
	ck_assert_int_eq(b.kind, HOSTS_STATUS);
	ck_assert_int_eq(b.by_presence, 0);
	ck_assert_int_eq(b.code, 2);   /* the status */
	ck_assert_int_eq(b.reason, 2); /* its source */
	const char *r = "r mesh1 p1,p2";
	ck_assert_int_eq(hosts_parse(r, strlen(r), &b), 0);
	ck_assert_int_eq(b.kind, HOSTS_REPLACE);
	ck_assert_int_eq(b.by_presence, 1);
	ck_assert_int_eq(b.n, 2);
	const char *k = "k4001.0 mesh1 p1";
	ck_assert_int_eq(hosts_parse(k, strlen(k), &b), 0);
	ck_assert_int_eq(b.kind, HOSTS_KICK);
	ck_assert_int_eq(b.by_presence, 1);
	ck_assert_int_eq(b.code, 4001);
	ck_assert_int_eq(b.reason, 0);
	const char *t = "t1000.3.999999999999999 mesh1 p1";
	ck_assert_int_eq(hosts_parse(t, strlen(t), &b), 0);
	ck_assert_int_eq(b.kind, HOSTS_STALE);
	ck_assert_int_eq(b.code, 1000);
	ck_assert_int_eq(b.reason, 3);
	ck_assert(b.stale_ms == HOSTS_STALE_MAX);
	const char *h = "h1.3 mesh1 p1";
	ck_assert_int_eq(hosts_parse(h, strlen(h), &b), 0);
	ck_assert_int_eq(b.kind, HOSTS_HOOK);
	ck_assert_int_eq(b.by_presence, 1);
	/* each kind takes exactly its numbers, in range */
	const char *bad[] = {"s2 m a",      "s3.2 m a",     "s2.0 m a",       "s2.4 m a",
	                     "s2.2.1 m a",  "r1 m a",       "k4001 m a",      "k999.0 m a",
	                     "t1000.3 m a", "t1000.3. m a", "t1000.3.01 m a", "t1000.3.1000000000000000 m a",
	                     "h1 m a",      "h1.3.5 m a",   "w1 m a",         "q m a"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		ck_assert_msg(hosts_parse(bad[i], strlen(bad[i]), &b) == -1, "accepted \"%s\"", bad[i]);
}
END_TEST

START_TEST(hosts_hand_sends_any_kind_in_lines_the_relay_reads)
{
	char dir[] = "/tmp/mbhosts-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	ck_assert_int_eq(hosts_relay_path(dir, a.sun_path, sizeof a.sun_path), 0);
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	const char *ids[] = {"p1", "not a key", "p2"};
	hosts_hand(dir, "k4001.0", "meshX", ids, 3);
	static char buf[HOSTS_LINE_MAX + 1];
	ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(hosts_parse(buf, (size_t)n, &b), 0);
	ck_assert_int_eq(b.kind, HOSTS_KICK);
	ck_assert_int_eq(b.n, 2); /* the id that is no key was left out */
	ck_assert_str_eq(b.ids[1], "p2");
	close(fd);
	unlink(a.sun_path);
	rmdir(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("hosts");
	TCase *tc = tcase_create("hosts");
	tcase_add_test(tc, host_ids_are_short_lowercase_names);
	tcase_add_test(tc, a_doorbell_line_is_read_exactly_or_refused);
	tcase_add_test(tc, only_recipients_without_a_local_slot_go_to_the_relay_in_lines_it_can_read);
	tcase_add_test(tc, the_cross_host_kinds_carry_their_numbers_and_name_members_or_presences);
	tcase_add_test(tc, hosts_hand_sends_any_kind_in_lines_the_relay_reads);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
