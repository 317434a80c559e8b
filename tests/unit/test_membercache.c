/* test_membercache — the positive member cache of issue 23 (shm/membercache.h)
 * with real files and processes: a hit gives back the member id and max_peers
 * until the TTL, the key's case does not matter, a drop by key and by member
 * forgets, a drop voids a put whose lookup began before it (a revocation
 * racing a lookup), a full set forgets the entry that expires first, the file
 * is shared across processes, a file of another layout is replaced, and a
 * corrupt entry (a member id without its NUL) never reads past its place. */
#include <check.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm/membercache.h"

static char tmp_root[64];

static void rt_setup(void)
{
	snprintf(tmp_root, sizeof tmp_root, "/tmp/test_membercache.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmp_root));
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(p);
}

static void rt_teardown(void) { nftw(tmp_root, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

static struct membercache *mc_open(void)
{
	struct membercache *c = NULL;
	char err[256];
	ck_assert_msg(membercache_open(tmp_root, &c, err, sizeof err) == 0, "membercache_open: %s", err);
	return c;
}

#define MESH "meshAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define KEY1 "1111111111111111111111111111111111111111111111111111111111111111"
#define KEY2 "2222222222222222222222222222222222222222222222222222222222222222"

static uint32_t stamp_of(struct membercache *c, const char *mesh, const char *key)
{
	uint32_t st = 0;
	struct member_cached out;
	membercache_get(c, mesh, key, 0, &out, &st);
	return st;
}

static void put(struct membercache *c, const char *mesh, const char *key, const char *member, int max_peers,
		int64_t now, int64_t ttl)
{
	struct member_cached v = {.max_peers = max_peers};
	snprintf(v.member_id, sizeof v.member_id, "%s", member);
	snprintf(v.display_name, sizeof v.display_name, "name of %s", member);
	membercache_put(c, mesh, key, &v, now, ttl, stamp_of(c, mesh, key));
}

START_TEST(membercache_remembers_until_the_ttl)
{
	struct membercache *c = mc_open();
	struct member_cached out;
	ck_assert_int_eq(membercache_get(c, MESH, KEY1, 1000, &out, NULL), 0);
	put(c, MESH, KEY1, "memberOne", 7, 1000, 60000);
	memset(&out, 0, sizeof out);
	ck_assert_int_eq(membercache_get(c, MESH, KEY1, 1001, &out, NULL), 1);
	ck_assert_str_eq(out.member_id, "memberOne");
	ck_assert_str_eq(out.display_name, "name of memberOne");
	ck_assert_int_eq(out.max_peers, 7);
	ck_assert_int_eq(membercache_get(c, MESH, KEY1, 60999, &out, NULL), 1);
	ck_assert_int_eq(membercache_get(c, MESH, KEY1, 61000, &out, NULL), 0); /* expired */
	/* another key, another mesh: not remembered */
	ck_assert_int_eq(membercache_get(c, MESH, KEY2, 1001, &out, NULL), 0);
	ck_assert_int_eq(membercache_get(c, "meshB", KEY1, 1001, &out, NULL), 0);
	/* a put renews the entry and its values */
	put(c, MESH, KEY1, "memberOne", 3, 70000, 1000);
	ck_assert_int_eq(membercache_get(c, MESH, KEY1, 70500, &out, NULL), 1);
	ck_assert_int_eq(out.max_peers, 3);
	membercache_close(c);
}
END_TEST

START_TEST(membercache_pubkey_case_does_not_matter)
{
	struct membercache *c = mc_open();
	char upper[65];
	for (int i = 0; i < 64; i++)
		upper[i] = "ABCDEF0123456789"[i % 16];
	upper[64] = 0;
	char lower[65];
	for (int i = 0; i < 65; i++)
		lower[i] = (char)(upper[i] >= 'A' && upper[i] <= 'F' ? upper[i] + 32 : upper[i]);
	put(c, MESH, upper, "m1", 0, 0, 10000);
	struct member_cached out;
	ck_assert_int_eq(membercache_get(c, MESH, lower, 1, &out, NULL), 1);
	membercache_close(c);
}
END_TEST

START_TEST(membercache_drop_by_key_and_by_member)
{
	struct membercache *c = mc_open();
	struct member_cached out;
	put(c, MESH, KEY1, "m1", 0, 0, 10000);
	put(c, MESH, KEY2, "m2", 0, 0, 10000);
	put(c, "meshB", KEY1, "m3", 0, 0, 10000);
	ck_assert_int_eq(membercache_drop(c, MESH, KEY1), 1);
	ck_assert_int_eq(membercache_get(c, MESH, KEY1, 1, &out, NULL), 0);
	ck_assert_int_eq(membercache_get(c, MESH, KEY2, 1, &out, NULL), 1); /* the other key stays */
	ck_assert_int_eq(membercache_drop(c, MESH, KEY1), 0);               /* nothing left to drop */
	/* a revocation knows the member id: every entry of it goes, no other */
	put(c, "meshC", KEY2, "m2", 0, 0, 10000);
	ck_assert_int_eq(membercache_drop_member(c, "m2"), 2);
	ck_assert_int_eq(membercache_get(c, MESH, KEY2, 1, &out, NULL), 0);
	ck_assert_int_eq(membercache_get(c, "meshC", KEY2, 1, &out, NULL), 0);
	ck_assert_int_eq(membercache_get(c, "meshB", KEY1, 1, &out, NULL), 1);
	ck_assert_int_eq(membercache_drop_member(c, "m"), 0); /* a prefix is no match */
	ck_assert_int_eq(membercache_drop_member(c, ""), 0);
	ck_assert_int_eq(membercache_get(c, "meshB", KEY1, 1, &out, NULL), 1);
	membercache_close(c);
}
END_TEST

/* a lookup that began before a revocation must not cache what it read */
START_TEST(membercache_put_after_a_drop_is_void)
{
	struct membercache *c = mc_open();
	struct member_cached out, v = {.member_id = "m1", .max_peers = 0};
	uint32_t st;
	ck_assert_int_eq(membercache_get(c, MESH, KEY1, 0, &out, &st), 0); /* lookup begins */
	membercache_drop_member(c, "m1");                                   /* the member is revoked */
	membercache_put(c, MESH, KEY1, &v, 0, 10000, st);                   /* lookup ends: void */
	ck_assert_int_eq(membercache_get(c, MESH, KEY1, 1, &out, &st), 0);
	membercache_drop(c, "meshZ", KEY2); /* a drop of any key voids it too */
	uint32_t st2;
	membercache_get(c, MESH, KEY1, 1, &out, &st2);
	ck_assert_uint_ne(st, st2);
	membercache_put(c, MESH, KEY1, &v, 0, 10000, st2); /* a fresh lookup's put counts */
	ck_assert_int_eq(membercache_get(c, MESH, KEY1, 1, &out, NULL), 1);
	membercache_close(c);
}
END_TEST

START_TEST(membercache_is_bounded_and_forgets_the_oldest)
{
	struct membercache *c = mc_open();
	int n = (int)(MEMBERCACHE_SETS * MEMBERCACHE_WAYS * 4); /* ~32 puts a set of 8 */
	char key[65];
	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof key, "%064d", i);
		put(c, MESH, key, "m", 0, i, 1000000);
	}
	int newest = 0, oldest = 0;
	struct member_cached out;
	for (int i = n - 64; i < n; i++) {
		snprintf(key, sizeof key, "%064d", i);
		newest += membercache_get(c, MESH, key, n, &out, NULL);
	}
	for (int i = 0; i < 64; i++) {
		snprintf(key, sizeof key, "%064d", i);
		oldest += membercache_get(c, MESH, key, n, &out, NULL);
	}
	ck_assert_int_ge(newest, 60); /* nearly every recent one is there */
	ck_assert_int_le(oldest, 4);  /* the first ones were forgotten */
	char path[128];
	struct stat st;
	snprintf(path, sizeof path, "%s/membercache.shm", tmp_root);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_lt(st.st_size, 1024 * 1024); /* fixed size (~900 KiB), whatever was put */
	membercache_close(c);
}
END_TEST

START_TEST(membercache_is_shared_across_processes)
{
	struct membercache *c = mc_open();
	pid_t pid = fork();
	if (pid == 0) {
		struct membercache *d = NULL;
		char err[256];
		struct member_cached out;
		if (membercache_open(tmp_root, &d, err, sizeof err) != 0)
			_exit(2);
		put(d, MESH, KEY1, "fromChild", 5, 0, 10000);
		_exit(membercache_get(d, MESH, KEY2, 1, &out, NULL) ? 3 : 0);
	}
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	struct member_cached out;
	ck_assert_int_eq(membercache_get(c, MESH, KEY1, 1, &out, NULL), 1);
	ck_assert_str_eq(out.member_id, "fromChild");
	ck_assert_str_eq(out.display_name, "name of fromChild");
	ck_assert_int_eq(out.max_peers, 5);
	/* and a drop by the parent is seen by a fresh process */
	membercache_drop_member(c, "fromChild");
	pid = fork();
	if (pid == 0) {
		struct membercache *d = NULL;
		char err[256];
		struct member_cached o;
		if (membercache_open(tmp_root, &d, err, sizeof err) != 0)
			_exit(2);
		_exit(membercache_get(d, MESH, KEY1, 1, &o, NULL) ? 3 : 0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	membercache_close(c);
}
END_TEST

START_TEST(membercache_replaces_a_foreign_file)
{
	char path[128];
	snprintf(path, sizeof path, "%s/membercache.shm", tmp_root);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("not a member cache", f);
	fclose(f);
	struct membercache *c = mc_open();
	put(c, MESH, KEY1, "m1", 0, 0, 10000);
	struct member_cached out;
	ck_assert_int_eq(membercache_get(c, MESH, KEY1, 1, &out, NULL), 1);
	membercache_close(c);
}
END_TEST

/* a member id filling its whole place (no NUL: a file written by someone
 * else) comes back cut, NUL-terminated, never longer than its place */
START_TEST(membercache_entry_without_nul_is_cut)
{
	struct membercache *c = mc_open();
	put(c, MESH, KEY1, "MARKERmember", 0, 0, 10000);
	membercache_close(c);
	char path[128];
	snprintf(path, sizeof path, "%s/membercache.shm", tmp_root);
	int fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	struct stat st;
	ck_assert_int_eq(fstat(fd, &st), 0);
	unsigned char *m = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne(m, MAP_FAILED);
	unsigned char *hit = memmem(m, (size_t)st.st_size, "MARKERmember", 12);
	ck_assert_ptr_nonnull(hit);
	memset(hit, 'x', MEMBERCACHE_ID_MAX); /* the whole place, no NUL */
	munmap(m, (size_t)st.st_size);
	close(fd);
	c = mc_open();
	struct member_cached out;
	ck_assert_int_eq(membercache_get(c, MESH, KEY1, 1, &out, NULL), 1);
	ck_assert_uint_eq(strlen(out.member_id), MEMBERCACHE_ID_MAX - 1);
	membercache_close(c);
}
END_TEST

START_TEST(membercache_null_handle_is_a_miss)
{
	uint32_t st = 0;
	struct member_cached out, v = {.member_id = "m1"};
	ck_assert_int_eq(membercache_get(NULL, MESH, KEY1, 1, &out, &st), 0);
	ck_assert_uint_eq(st, UINT32_MAX);
	membercache_put(NULL, MESH, KEY1, &v, 0, 10000, st);
	ck_assert_int_eq(membercache_drop(NULL, MESH, KEY1), 0);
	ck_assert_int_eq(membercache_drop_member(NULL, "m1"), 0);
	/* a key too long to hash is never cached, nor a display name without room */
	struct membercache *c = mc_open();
	struct member_cached longname = {.member_id = "m2"};
	memset(longname.display_name, 'n', sizeof longname.display_name); /* no NUL */
	membercache_put(c, MESH, KEY2, &longname, 0, 10000, stamp_of(c, MESH, KEY2));
	ck_assert_int_eq(membercache_get(c, MESH, KEY2, 1, &out, NULL), 0);
	char big[300];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = 0;
	membercache_put(c, MESH, big, &v, 0, 10000, stamp_of(c, MESH, big));
	ck_assert_int_eq(membercache_get(c, MESH, big, 1, &out, NULL), 0);
	membercache_close(c);
}
END_TEST

static Suite *membercache_suite(void)
{
	Suite *su = suite_create("membercache");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, rt_setup, rt_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, membercache_remembers_until_the_ttl);
	tcase_add_test(tc, membercache_pubkey_case_does_not_matter);
	tcase_add_test(tc, membercache_drop_by_key_and_by_member);
	tcase_add_test(tc, membercache_put_after_a_drop_is_void);
	tcase_add_test(tc, membercache_is_bounded_and_forgets_the_oldest);
	tcase_add_test(tc, membercache_is_shared_across_processes);
	tcase_add_test(tc, membercache_replaces_a_foreign_file);
	tcase_add_test(tc, membercache_entry_without_nul_is_cut);
	tcase_add_test(tc, membercache_null_handle_is_a_miss);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(membercache_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
