/* test_negcache — the two small shared tables of issue 11 with real
 * processes: the negative member cache (hit, TTL, drop, the drop stamp that
 * voids a put racing a join, a full set forgetting its oldest, sharing across
 * processes, a foreign file replaced) and the acceptor's child table (the
 * CAS moves between acceptor and worker, pid ownership, a fresh table). */
#include <check.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm/childtab.h"
#include "shm/negcache.h"

static char tmp_root[64];

static void rt_setup(void)
{
	snprintf(tmp_root, sizeof tmp_root, "/tmp/test_negcache.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmp_root));
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(p);
}

static void rt_teardown(void) { nftw(tmp_root, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

static struct negcache *nc_open(void)
{
	struct negcache *c = NULL;
	char err[256];
	ck_assert_msg(negcache_open(tmp_root, &c, err, sizeof err) == 0, "negcache_open: %s", err);
	return c;
}

#define MESH "meshAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define KEY1 "1111111111111111111111111111111111111111111111111111111111111111"
#define KEY2 "2222222222222222222222222222222222222222222222222222222222222222"

static uint32_t stamp_of(struct negcache *c, const char *mesh, const char *key)
{
	uint32_t st = 0;
	negcache_hit(c, mesh, key, 0, &st);
	return st;
}

START_TEST(negcache_remembers_until_the_ttl)
{
	struct negcache *c = nc_open();
	uint32_t st;
	ck_assert_int_eq(negcache_hit(c, MESH, KEY1, 1000, &st), 0);
	negcache_put(c, MESH, KEY1, 1000, 15000, st);
	ck_assert_int_eq(negcache_hit(c, MESH, KEY1, 1001, NULL), 1);
	ck_assert_int_eq(negcache_hit(c, MESH, KEY1, 15999, NULL), 1);
	ck_assert_int_eq(negcache_hit(c, MESH, KEY1, 16000, NULL), 0); /* expired */
	/* another key, another mesh: not remembered */
	ck_assert_int_eq(negcache_hit(c, MESH, KEY2, 1001, NULL), 0);
	ck_assert_int_eq(negcache_hit(c, "meshB", KEY1, 1001, NULL), 0);
	negcache_close(c);
}
END_TEST

START_TEST(negcache_pubkey_case_does_not_matter)
{
	struct negcache *c = nc_open();
	const char *lower = "abcdef0000000000000000000000000000000000000000000000000000000000";
	const char *upper = "ABCDEF0000000000000000000000000000000000000000000000000000000000";
	negcache_put(c, MESH, upper, 0, 10000, stamp_of(c, MESH, upper));
	ck_assert_int_eq(negcache_hit(c, MESH, lower, 1, NULL), 1);
	negcache_close(c);
}
END_TEST

START_TEST(negcache_drop_forgets_the_key)
{
	struct negcache *c = nc_open();
	negcache_put(c, MESH, KEY1, 0, 10000, stamp_of(c, MESH, KEY1));
	negcache_put(c, MESH, KEY2, 0, 10000, stamp_of(c, MESH, KEY2));
	ck_assert_int_eq(negcache_drop(c, MESH, KEY1), 1);
	ck_assert_int_eq(negcache_hit(c, MESH, KEY1, 1, NULL), 0);
	ck_assert_int_eq(negcache_hit(c, MESH, KEY2, 1, NULL), 1); /* the other key stays */
	ck_assert_int_eq(negcache_drop(c, MESH, KEY1), 0);         /* nothing left to drop */
	negcache_close(c);
}
END_TEST

/* a lookup that read the database before a join committed must not store
 * its stale "not a member" after the join dropped the key */
START_TEST(negcache_put_after_a_drop_of_its_set_is_void)
{
	struct negcache *c = nc_open();
	uint32_t st;
	ck_assert_int_eq(negcache_hit(c, MESH, KEY1, 0, &st), 0); /* lookup begins */
	negcache_drop(c, MESH, KEY1);                              /* the key joins */
	negcache_put(c, MESH, KEY1, 0, 10000, st);                 /* lookup ends: void */
	ck_assert_int_eq(negcache_hit(c, MESH, KEY1, 1, &st), 0);
	negcache_put(c, MESH, KEY1, 0, 10000, st); /* a fresh lookup's put counts */
	ck_assert_int_eq(negcache_hit(c, MESH, KEY1, 1, NULL), 1);
	negcache_close(c);
}
END_TEST

/* far more keys than entries: the table never grows, the newest are kept
 * and the oldest forgotten */
START_TEST(negcache_is_bounded_and_forgets_the_oldest)
{
	struct negcache *c = nc_open();
	const int n = (int)(NEGCACHE_SETS * NEGCACHE_WAYS * 4);
	char key[65];
	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof key, "%064x", i);
		negcache_put(c, MESH, key, i, 1000000, stamp_of(c, MESH, key));
	}
	int newest = 0, oldest = 0;
	for (int i = 0; i < 256; i++) {
		snprintf(key, sizeof key, "%064x", n - 1 - i);
		newest += negcache_hit(c, MESH, key, n, NULL);
		snprintf(key, sizeof key, "%064x", i);
		oldest += negcache_hit(c, MESH, key, n, NULL);
	}
	ck_assert_int_eq(newest, 256);
	ck_assert_int_eq(oldest, 0);
	struct stat st;
	char path[128];
	snprintf(path, sizeof path, "%s/negcache.shm", tmp_root);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_lt(st.st_size, 256 * 1024);
	negcache_close(c);
}
END_TEST

START_TEST(negcache_is_shared_across_processes)
{
	struct negcache *c = nc_open();
	pid_t pid = fork();
	if (pid == 0) {
		struct negcache *d = NULL;
		char err[256];
		if (negcache_open(tmp_root, &d, err, sizeof err) != 0)
			_exit(2);
		negcache_put(d, MESH, KEY1, 0, 10000, stamp_of(d, MESH, KEY1));
		_exit(negcache_hit(d, MESH, KEY2, 1, NULL) ? 3 : 0);
	}
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_int_eq(negcache_hit(c, MESH, KEY1, 1, NULL), 1);
	negcache_close(c);
}
END_TEST

START_TEST(negcache_replaces_a_foreign_file)
{
	char path[128];
	snprintf(path, sizeof path, "%s/negcache.shm", tmp_root);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("not a cache", f);
	fclose(f);
	struct negcache *c = nc_open();
	negcache_put(c, MESH, KEY1, 0, 10000, stamp_of(c, MESH, KEY1));
	ck_assert_int_eq(negcache_hit(c, MESH, KEY1, 1, NULL), 1);
	negcache_close(c);
}
END_TEST

START_TEST(negcache_null_handle_is_a_miss)
{
	uint32_t st = 0;
	ck_assert_int_eq(negcache_hit(NULL, MESH, KEY1, 1, &st), 0);
	negcache_put(NULL, MESH, KEY1, 0, 10000, st);
	ck_assert_int_eq(negcache_drop(NULL, MESH, KEY1), 0);
}
END_TEST

/* ------------------------------------------------------------ child table */

static struct childtab *ct_create(uint32_t n)
{
	struct childtab *t = NULL;
	char err[256];
	ck_assert_msg(childtab_create(tmp_root, n, &t, err, sizeof err) == 0, "childtab_create: %s", err);
	return t;
}

START_TEST(childtab_worker_and_acceptor_moves)
{
	struct childtab *t = ct_create(8);
	ck_assert_uint_eq(childtab_size(t), 8);
	ck_assert_int_eq(childtab_get(t, 3, 4242), CHILD_FREE);
	ck_assert_int_eq(childtab_start(t, 3, 4242), 1);
	ck_assert_int_eq(childtab_start(t, 3, 4242), 0); /* the child wrote it too: same word */
	ck_assert_int_eq(childtab_start(t, 3, 4343), -1); /* someone else's entry */
	ck_assert_int_eq(childtab_get(t, 3, 4242), CHILD_PREAUTH);
	ck_assert_int_eq(childtab_get(t, 3, 4343), CHILD_FREE); /* not that pid's */
	/* the worker proves its key, then the acceptor cannot evict it from AUTHENTICATED */
	ck_assert_int_eq(childtab_move(t, 3, 4242, CHILD_BIT(CHILD_PREAUTH), CHILD_HELLO), 1);
	ck_assert_int_eq(childtab_move(t, 3, 4242, CHILD_BIT(CHILD_HELLO), CHILD_AUTHENTICATED), 1);
	ck_assert_int_eq(childtab_move(t, 3, 4242, CHILD_BIT(CHILD_PREAUTH) | CHILD_BIT(CHILD_HELLO), CHILD_EVICTED), 0);
	ck_assert_int_eq(childtab_get(t, 3, 4242), CHILD_AUTHENTICATED);
	/* another pid cannot move it */
	ck_assert_int_eq(childtab_move(t, 3, 4343, CHILD_BIT(CHILD_AUTHENTICATED), CHILD_HTTP), 0);
	childtab_free(t, 3);
	ck_assert_int_eq(childtab_get(t, 3, 4242), CHILD_FREE);
	/* evicted first: the worker's own move then fails */
	ck_assert_int_eq(childtab_start(t, 5, 77), 1);
	ck_assert_int_eq(childtab_move(t, 5, 77, CHILD_BIT(CHILD_PREAUTH), CHILD_EVICTED), 1);
	ck_assert_int_eq(childtab_move(t, 5, 77, CHILD_BIT(CHILD_PREAUTH), CHILD_HTTP), 0);
	ck_assert_int_eq(childtab_get(t, 5, 77), CHILD_EVICTED);
	/* out of range */
	ck_assert_int_eq(childtab_start(t, 8, 1), -1);
	ck_assert_int_eq(childtab_get(t, 8, 1), CHILD_FREE);
	childtab_close(t);
}
END_TEST

START_TEST(childtab_worker_sees_the_acceptors_table)
{
	struct childtab *t = ct_create(4);
	ck_assert_int_eq(childtab_start(t, 1, 999999), 1);
	pid_t pid = fork();
	if (pid == 0) {
		struct childtab *w = NULL;
		char err[256];
		if (childtab_open(tmp_root, &w, err, sizeof err) != 0 || childtab_size(w) != 4)
			_exit(2);
		if (childtab_start(w, 2, getpid()) != 0 && childtab_get(w, 2, getpid()) != CHILD_PREAUTH)
			_exit(3);
		_exit(childtab_move(w, 2, getpid(), CHILD_BIT(CHILD_PREAUTH), CHILD_HTTP) ? 0 : 4);
	}
	int r = childtab_start(t, 2, pid); /* 1, or 0 when the child was first, or -1 when it already moved on */
	ck_assert(r >= -1 && r <= 1);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
	ck_assert_int_eq(childtab_get(t, 2, pid), CHILD_HTTP);
	ck_assert_int_eq(childtab_get(t, 1, 999999), CHILD_PREAUTH);
	childtab_close(t);
}
END_TEST

START_TEST(childtab_create_replaces_the_old_table)
{
	struct childtab *old = ct_create(4);
	ck_assert_int_eq(childtab_start(old, 0, 1234), 1);
	struct childtab *fresh = ct_create(6);
	ck_assert_uint_eq(childtab_size(fresh), 6);
	ck_assert_int_eq(childtab_get(fresh, 0, 1234), CHILD_FREE);
	/* a worker of the old acceptor still writes its old mapping, harmlessly */
	ck_assert_int_eq(childtab_move(old, 0, 1234, CHILD_BIT(CHILD_PREAUTH), CHILD_HTTP), 1);
	ck_assert_int_eq(childtab_get(fresh, 0, 1234), CHILD_FREE);
	struct childtab *w = NULL;
	char err[256];
	ck_assert_int_eq(childtab_open(tmp_root, &w, err, sizeof err), 0);
	ck_assert_uint_eq(childtab_size(w), 6);
	childtab_close(w);
	childtab_close(old);
	childtab_close(fresh);
}
END_TEST

START_TEST(childtab_open_without_a_table_fails)
{
	struct childtab *w = NULL;
	char err[256];
	ck_assert_int_eq(childtab_open(tmp_root, &w, err, sizeof err), -1);
	ck_assert_ptr_null(w);
	ck_assert(err[0] != 0);
}
END_TEST

static Suite *negcache_suite(void)
{
	Suite *su = suite_create("negcache");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, rt_setup, rt_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, negcache_remembers_until_the_ttl);
	tcase_add_test(tc, negcache_pubkey_case_does_not_matter);
	tcase_add_test(tc, negcache_drop_forgets_the_key);
	tcase_add_test(tc, negcache_put_after_a_drop_of_its_set_is_void);
	tcase_add_test(tc, negcache_is_bounded_and_forgets_the_oldest);
	tcase_add_test(tc, negcache_is_shared_across_processes);
	tcase_add_test(tc, negcache_replaces_a_foreign_file);
	tcase_add_test(tc, negcache_null_handle_is_a_miss);
	tcase_add_test(tc, childtab_worker_and_acceptor_moves);
	tcase_add_test(tc, childtab_worker_sees_the_acceptors_table);
	tcase_add_test(tc, childtab_create_replaces_the_old_table);
	tcase_add_test(tc, childtab_open_without_a_table_fails);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(negcache_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
