/* test_listen_fds — common/util.c's listen_fds, the worker's replacement for
 * sd_listen_fds(3) (issue 13): the same answers for the same environment;
 * and the /proc state reading the acceptor's drain uses to SIGCONT only a
 * child that is stopped. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"

/* Run listen_fds with fds 3 (and 4 when two) made a pipe's ends, everything
 * restored before the caller asserts (Check may own low fds itself). */
struct run {
	int rc;
	int cloexec3;
	int env_left; /* LISTEN_PID, LISTEN_FDS or LISTEN_FDNAMES still set */
};

static struct run run_with(const char *pid, const char *nfds, int open_fds, int unset_env)
{
	struct run r = {0};
	int q[2], p[2];
	ck_assert_int_eq(pipe(q), 0);
	/* out of the way first: pipe() may well have returned 3 and 4 */
	p[0] = fcntl(q[0], F_DUPFD_CLOEXEC, 100);
	p[1] = fcntl(q[1], F_DUPFD_CLOEXEC, 100);
	close(q[0]);
	close(q[1]);
	int save3 = fcntl(3, F_DUPFD_CLOEXEC, 100), save4 = fcntl(4, F_DUPFD_CLOEXEC, 100);
	close(3);
	close(4);
	if (open_fds >= 1)
		dup2(p[0], 3);
	if (open_fds >= 2)
		dup2(p[1], 4);
	if (pid)
		setenv("LISTEN_PID", pid, 1);
	else
		unsetenv("LISTEN_PID");
	if (nfds)
		setenv("LISTEN_FDS", nfds, 1);
	else
		unsetenv("LISTEN_FDS");
	setenv("LISTEN_FDNAMES", "connection", 1);

	r.rc = listen_fds(unset_env);
	int fl = fcntl(3, F_GETFD);
	r.cloexec3 = fl >= 0 && (fl & FD_CLOEXEC);
	r.env_left = getenv("LISTEN_PID") || getenv("LISTEN_FDS") || getenv("LISTEN_FDNAMES");

	close(3);
	close(4);
	if (save3 >= 0)
		dup2(save3, 3), close(save3);
	if (save4 >= 0)
		dup2(save4, 4), close(save4);
	close(p[0]);
	close(p[1]);
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return r;
}

static const char *me(void)
{
	static char buf[24];
	snprintf(buf, sizeof buf, "%d", (int)getpid());
	return buf;
}

START_TEST(ours_one_fd)
{
	struct run r = run_with(me(), "1", 1, 1);
	ck_assert_int_eq(r.rc, 1);
	ck_assert(r.cloexec3);
	ck_assert(!r.env_left);
}
END_TEST

START_TEST(ours_two_fds)
{
	struct run r = run_with(me(), "2", 2, 1);
	ck_assert_int_eq(r.rc, 2);
}
END_TEST

START_TEST(not_set_is_zero)
{
	struct run r = run_with(NULL, NULL, 1, 1);
	ck_assert_int_eq(r.rc, 0);
	ck_assert(!r.env_left);
	r = run_with(me(), NULL, 1, 1);
	ck_assert_int_eq(r.rc, 0);
}
END_TEST

START_TEST(another_pid_is_zero_and_unset)
{
	struct run r = run_with("1", "1", 1, 1);
	ck_assert_int_eq(r.rc, 0);
	ck_assert(!r.cloexec3); /* not ours: left alone */
	ck_assert(!r.env_left);
}
END_TEST

START_TEST(kept_without_unset)
{
	struct run r = run_with(me(), "1", 1, 0);
	ck_assert_int_eq(r.rc, 1);
	ck_assert(r.env_left);
}
END_TEST

START_TEST(malformed_is_einval)
{
	ck_assert_int_eq(run_with(me(), "x", 1, 1).rc, -EINVAL);
	ck_assert_int_eq(run_with(me(), "-1", 1, 1).rc, -EINVAL);
	ck_assert_int_eq(run_with(me(), "", 1, 1).rc, -EINVAL);
	ck_assert_int_eq(run_with(me(), "99999999999", 1, 1).rc, -EINVAL);
	ck_assert_int_eq(run_with("abc", "1", 1, 1).rc, -EINVAL);
	ck_assert_int_eq(run_with("0", "1", 1, 1).rc, -EINVAL);
	struct run r = run_with(me(), "1x", 1, 1);
	ck_assert_int_eq(r.rc, -EINVAL);
	ck_assert(!r.env_left); /* unset on failure too */
}
END_TEST

START_TEST(closed_fd_is_ebadf)
{
	ck_assert_int_eq(run_with(me(), "2", 1, 1).rc, -EBADF);
}
END_TEST

START_TEST(zero_fds)
{
	ck_assert_int_eq(run_with(me(), "0", 0, 1).rc, 0);
}
END_TEST

START_TEST(stat_state_after_the_last_paren)
{
	const char *plain = "123 (meshbroker-wor) S 1 2 3";
	ck_assert_int_eq(proc_stat_state(plain, strlen(plain)), 'S');
	/* a command name may hold ") T (" itself: the last ')' counts */
	const char *tricky = "77 (a) T (b) t 1 2";
	ck_assert_int_eq(proc_stat_state(tricky, strlen(tricky)), 't');
	const char *cut = "77 (abc)";
	ck_assert_int_eq(proc_stat_state(cut, strlen(cut)), 0);
	ck_assert_int_eq(proc_stat_state("77 (abc) ", 9), 0);
	ck_assert_int_eq(proc_stat_state("no paren S", 10), 0);
	ck_assert_int_eq(proc_stat_state("", 0), 0);
}
END_TEST

START_TEST(a_sigstopped_child_is_stopped_a_sleeping_one_is_not)
{
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		for (;;)
			pause();
	}
	int st;
	usleep(20000);
	ck_assert_int_eq(process_group_stopped(pid), 0);
	kill(pid, SIGSTOP);
	ck_assert_int_eq(waitpid(pid, &st, WUNTRACED), pid);
	ck_assert(WIFSTOPPED(st));
	ck_assert_int_eq(process_group_stopped(pid), 1);
	kill(pid, SIGCONT);
	ck_assert_int_eq(waitpid(pid, &st, WCONTINUED), pid);
	ck_assert_int_eq(process_group_stopped(pid), 0);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	ck_assert_int_eq(process_group_stopped(pid), 0); /* gone: no /proc entry */
}
END_TEST

int main(void)
{
	Suite *su = suite_create("listen_fds");
	TCase *tc = tcase_create("listen_fds");
	tcase_add_test(tc, ours_one_fd);
	tcase_add_test(tc, ours_two_fds);
	tcase_add_test(tc, not_set_is_zero);
	tcase_add_test(tc, another_pid_is_zero_and_unset);
	tcase_add_test(tc, kept_without_unset);
	tcase_add_test(tc, malformed_is_einval);
	tcase_add_test(tc, closed_fd_is_ebadf);
	tcase_add_test(tc, zero_fds);
	suite_add_tcase(su, tc);
	TCase *ps = tcase_create("proc_state");
	tcase_add_test(ps, stat_state_after_the_last_paren);
	tcase_add_test(ps, a_sigstopped_child_is_stopped_a_sleeping_one_is_not);
	suite_add_tcase(su, ps);
	SRunner *sr = srunner_create(su);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
