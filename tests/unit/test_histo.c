/* test_histo — the latency histograms and the acceptor's gauges in the
 * shared table (shm/histo.h, issue 23): bucket edges, the sum, observations
 * from other processes, nothing observed without a table, and the gauges
 * an acceptor publishes. */
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "shm/histo.h"
#include "shm/shm.h"

static char tmp_root[64];
static char rt[96];

static void rt_setup(void)
{
	snprintf(tmp_root, sizeof tmp_root, "/tmp/test_histo.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmp_root));
	snprintf(rt, sizeof rt, "%s/run", tmp_root);
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(p);
}

static void rt_teardown(void) { nftw(tmp_root, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

static struct shm *table_open(void)
{
	struct shm *s = NULL;
	char err[256];
	ck_assert_msg(shm_open_table(rt, 16, 0, &s, err, sizeof err) == 0, "shm_open_table: %s", err);
	return s;
}

static void read_h(struct shm *s, enum histo_id h, uint64_t c[HISTO_BOUNDS + 1], uint64_t *sum)
{
	histo_read(shm_histo(s), h, c, sum);
}

START_TEST(bounds_are_half_a_millisecond_to_ten_seconds)
{
	ck_assert_int_eq(histo_bounds_us[0], 500);
	ck_assert_int_eq(histo_bounds_us[HISTO_BOUNDS - 1], 10000000);
	for (int i = 1; i < HISTO_BOUNDS; i++)
		ck_assert_int_gt(histo_bounds_us[i], histo_bounds_us[i - 1]);
	for (int h = 0; h < H_MAX; h++)
		ck_assert_ptr_nonnull(strstr(histo_names[h], "_seconds"));
}
END_TEST

START_TEST(an_observation_lands_in_the_first_bucket_whose_bound_it_does_not_exceed)
{
	struct shm *s = table_open();
	/* le is inclusive: 500 us is in le=0.0005, 501 us in le=0.001 */
	const struct {
		int64_t us;
		int bucket;
	} cases[] = {{0, 0}, {-7, 0}, {500, 0}, {501, 1}, {1000, 1}, {9999999, 13}, {10000000, 13},
		     {10000001, 14}, {3600000000LL, 14}};
	uint64_t want[HISTO_BOUNDS + 1] = {0}, want_sum = 0;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		histo_observe_us(H_SEND_ACK, cases[i].us);
		want[cases[i].bucket]++;
		want_sum += cases[i].us > 0 ? (uint64_t)cases[i].us : 0;
		uint64_t c[HISTO_BOUNDS + 1], sum;
		read_h(s, H_SEND_ACK, c, &sum);
		for (int b = 0; b <= HISTO_BOUNDS; b++)
			ck_assert_msg(c[b] == want[b], "after %lld us: bucket %d has %llu, want %llu",
				      (long long)cases[i].us, b, (unsigned long long)c[b],
				      (unsigned long long)want[b]);
		ck_assert_uint_eq(sum, want_sum);
	}
	/* the other histograms saw nothing */
	uint64_t c[HISTO_BOUNDS + 1], sum;
	read_h(s, H_HELLO, c, &sum);
	for (int b = 0; b <= HISTO_BOUNDS; b++)
		ck_assert_uint_eq(c[b], 0);
	ck_assert_uint_eq(sum, 0);
	shm_close(s);
}
END_TEST

START_TEST(since_measures_from_its_start_and_ignores_an_unset_one)
{
	struct shm *s = table_open();
	histo_since(H_DB_STATEMENT, 0); /* never started: not observed */
	int64_t t0 = histo_clock_us();
	usleep(3000);
	histo_since(H_DB_STATEMENT, t0);
	uint64_t c[HISTO_BOUNDS + 1], sum, n = 0;
	read_h(s, H_DB_STATEMENT, c, &sum);
	for (int b = 0; b <= HISTO_BOUNDS; b++)
		n += c[b];
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_ge(sum, 3000);
	ck_assert_uint_eq(c[0] + c[1] + c[2], 0); /* 3 ms is past le=0.0025 */
	shm_close(s);
}
END_TEST

START_TEST(observations_of_every_process_add_up_and_none_without_a_table)
{
	struct shm *s = table_open();
	enum { KIDS = 4, EACH = 5000 };
	for (int k = 0; k < KIDS; k++) {
		pid_t pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			struct shm *c;
			char err[256];
			if (shm_open_table(rt, 16, 0, &c, err, sizeof err) != 0)
				_exit(1);
			for (int i = 0; i < EACH; i++)
				histo_observe_us(H_HELLO, 2000);
			shm_close(c);
			histo_observe_us(H_HELLO, 2000); /* unbound: goes nowhere */
			_exit(0);
		}
	}
	for (int k = 0; k < KIDS; k++) {
		int st;
		ck_assert_int_gt(wait(&st), 0);
		ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	uint64_t c[HISTO_BOUNDS + 1], sum;
	read_h(s, H_HELLO, c, &sum);
	ck_assert_uint_eq(c[2], (uint64_t)KIDS * EACH); /* le=0.0025 */
	ck_assert_uint_eq(sum, (uint64_t)KIDS * EACH * 2000);
	shm_close(s);
	histo_observe_us(H_HELLO, 1); /* after close: no crash, nothing to write */
}
END_TEST

START_TEST(acceptor_gauges_are_published_once_a_tick_and_go_stale)
{
	struct shm *s = table_open();
	struct acceptor_view v;
	ck_assert_int_eq(histo_acceptor_read(shm_histo(s), now_ms(), &v), 0); /* never published */
	int64_t mono = mono_ms();
	histo_acceptor_tick(shm_histo(s), mono);
	ck_assert_int_eq(histo_acceptor_read(shm_histo(s), now_ms(), &v), 1);
	ck_assert_int_eq(v.pid, getpid());
	ck_assert_int_gt(v.open_fds, 2);
	ck_assert_int_ge(v.max_fds, v.open_fds);
	ck_assert_int_gt(v.resident_bytes, 0);
	ck_assert_int_ge(v.cpu_us, 0);
	ck_assert(v.start_ms > now_ms() - 60000 && v.start_ms <= now_ms());
	/* no acceptor for longer than 5 ticks: stale */
	ck_assert_int_eq(histo_acceptor_read(shm_histo(s), now_ms() + 6 * HISTO_ACCEPTOR_TICK_MS, &v), 0);
	shm_close(s);
}
END_TEST

static Suite *histo_suite(void)
{
	Suite *su = suite_create("histo");
	TCase *tc = tcase_create("histo");
	tcase_add_checked_fixture(tc, rt_setup, rt_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, bounds_are_half_a_millisecond_to_ten_seconds);
	tcase_add_test(tc, an_observation_lands_in_the_first_bucket_whose_bound_it_does_not_exceed);
	tcase_add_test(tc, since_measures_from_its_start_and_ignores_an_unset_one);
	tcase_add_test(tc, observations_of_every_process_add_up_and_none_without_a_table);
	tcase_add_test(tc, acceptor_gauges_are_published_once_a_tick_and_go_stale);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(histo_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
