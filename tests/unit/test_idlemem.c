/* test_idlemem — common/idlemem.c (issue 23): an idle process gives back
 * the main thread's stack below the caller and the heap's free pages, and
 * both work as before afterwards; another thread's call leaves the stacks
 * alone. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/idlemem.h"

/* Rss KiB of the mappings called name ("[stack]", "[heap]") in our smaps */
static long rss_of(const char *name)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	ck_assert_ptr_nonnull(f);
	char line[512];
	int in = 0;
	long kib = 0;
	while (fgets(line, sizeof line, f)) {
		char a[64], perms[8], off[16], dev[16], path[256] = "";
		unsigned long ino;
		if (sscanf(line, "%63s %7s %15s %15s %lu %255s", a, perms, off, dev, &ino, path) >= 5 && strchr(a, '-')) {
			in = strcmp(path, name) == 0;
			continue;
		}
		long v;
		if (in && sscanf(line, "Rss: %ld kB", &v) == 1)
			kib += v;
	}
	fclose(f);
	return kib;
}

/* dirties about kib KiB of stack below the caller; the sum of what every
 * frame wrote and read back (so a page that came back wrong shows) */
static __attribute__((noinline)) long deep(int kib)
{
	volatile unsigned char buf[1024];
	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (unsigned char)(kib + i);
	long below = kib > 1 ? deep(kib - 1) : 0;
	long sum = below;
	for (size_t i = 0; i < sizeof buf; i++)
		sum += buf[i];
	return sum;
}

static long deep_expected(int kib)
{
	long sum = 0;
	for (int k = 1; k <= kib; k++)
		for (int i = 0; i < 1024; i++)
			sum += (unsigned char)(k + i);
	return sum;
}

START_TEST(stack_below_the_caller_is_given_back)
{
	ck_assert_int_eq(deep(512), deep_expected(512));
	long busy = rss_of("[stack]");
	ck_assert_int_ge(busy, 512);
	struct idlemem_stats st;
	idlemem_release(&st);
	long idle = rss_of("[stack]");
	ck_assert_int_eq(st.stack_ok, 1);
	ck_assert_uint_ge(st.stack_bytes, 500u << 10);
	/* what is left: the frames above ours (the test runner's) */
	ck_assert_msg(idle <= busy / 4, "stack %ld KiB after the release, %ld before", idle, busy);
	/* and the stack works as before: the pages come back as new ones */
	ck_assert_int_eq(deep(512), deep_expected(512));
	ck_assert_int_ge(rss_of("[stack]"), 512);
	idlemem_release(&st); /* twice in a row is fine too */
	ck_assert_int_eq(st.stack_ok, 1);
}
END_TEST

START_TEST(heap_free_pages_are_given_back)
{
#if defined(__SANITIZE_ADDRESS__)
	/* the sanitizer's allocator is not glibc's heap */
	struct idlemem_stats st;
	idlemem_release(&st);
	ck_assert_int_eq(st.stack_ok, 1);
#else
	/* every other block freed: free chunks between live ones, which only a
	 * trim gives back (free() itself trims the heap's top alone) */
	enum { N = 64, SZ = 16 << 10 };
	char *blocks[N];
	for (int i = 0; i < N; i++) {
		blocks[i] = malloc(SZ);
		ck_assert_ptr_nonnull(blocks[i]);
		memset(blocks[i], i, SZ);
	}
	for (int i = 0; i < N; i += 2)
		free(blocks[i]);
	long busy = rss_of("[heap]");
	struct idlemem_stats st;
	idlemem_release(&st);
	long idle = rss_of("[heap]");
	ck_assert_int_eq(st.heap_trimmed, 1);
	/* 32 free chunks of 16 KiB hold at least 3 whole pages each */
	ck_assert_msg(idle <= busy - 32 * 12, "heap %ld KiB after the release, %ld before", idle, busy);
	/* the live blocks are intact, and malloc still works over the pages */
	for (int i = 1; i < N; i += 2)
		ck_assert_int_eq(blocks[i][SZ - 1], (char)i);
	for (int i = 0; i < N; i += 2) {
		blocks[i] = malloc(SZ);
		ck_assert_ptr_nonnull(blocks[i]);
		memset(blocks[i], 0x5a, SZ);
	}
	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(blocks[i][SZ - 1], i % 2 ? (char)i : 0x5a);
		free(blocks[i]);
	}
#endif
}
END_TEST

static void *in_thread(void *arg)
{
	idlemem_release(arg);
	return NULL;
}

START_TEST(another_thread_leaves_the_stacks_alone)
{
	ck_assert_int_eq(deep(128), deep_expected(128));
	long busy = rss_of("[stack]");
	struct idlemem_stats st = {.stack_ok = 7};
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, in_thread, &st), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_int_eq(st.stack_ok, 0);
	ck_assert_uint_eq(st.stack_bytes, 0);
	ck_assert_int_ge(rss_of("[stack]"), busy - 8); /* the main stack untouched */
}
END_TEST

int main(void)
{
	Suite *su = suite_create("idlemem");
	TCase *tc = tcase_create("idlemem");
	tcase_add_test(tc, stack_below_the_caller_is_given_back);
	tcase_add_test(tc, heap_free_pages_are_given_back);
	tcase_add_test(tc, another_thread_leaves_the_stacks_alone);
	suite_add_tcase(su, tc);
	SRunner *sr = srunner_create(su);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
