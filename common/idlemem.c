/* idlemem — see idlemem.h. */
#include "common/idlemem.h"

#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Kept below stack_release's frame (a few dozen bytes): madvise runs there,
 * and malloc_trim after it.  The range given back ends at the page boundary
 * at or below frame - KEEP. */
#define IDLEMEM_STACK_KEEP 4096

/* The main thread's stack as glibc reports it: [lo, lo + size), where lo is
 * the top less RLIMIT_STACK, clamped above the mapping below it (glibc reads
 * /proc/self/maps for this), so the range holds the [stack] mapping and
 * unmapped addresses only.  0 ok. */
static __attribute__((noinline)) int stack_range(uintptr_t *lo, uintptr_t *hi)
{
	pthread_attr_t a;
	if (pthread_getattr_np(pthread_self(), &a) != 0)
		return -1;
	void *addr = NULL;
	size_t size = 0;
	int rc = pthread_attr_getstack(&a, &addr, &size);
	pthread_attr_destroy(&a);
	if (rc != 0 || !addr || !size)
		return -1;
	*lo = (uintptr_t)addr;
	*hi = (uintptr_t)addr + size;
	return 0;
}

static __attribute__((noinline)) void stack_release(struct idlemem_stats *st)
{
	if (getpid() != gettid())
		return; /* not the main thread: its stack is not ours to judge */
	uintptr_t lo, hi;
	if (stack_range(&lo, &hi) != 0)
		return;
	/* this frame is below every live frame of the caller (always on the
	 * real stack, also when a sanitizer moves locals elsewhere); keep a
	 * page under it for the calls still to come */
	uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
	if (sp <= lo || sp > hi)
		return; /* not on the range glibc reported: leave it alone */
	long page = sysconf(_SC_PAGESIZE);
	if (page <= 0)
		return;
	uintptr_t end = (sp - IDLEMEM_STACK_KEEP) & ~((uintptr_t)page - 1);
	uintptr_t start = (lo + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
	if (end <= start)
		return;
	/* the unmapped part of the range (below the mapping's low end) makes
	 * madvise answer ENOMEM after it did the mapped part */
	(void)madvise((void *)start, end - start, MADV_DONTNEED);
	st->stack_bytes = end - start;
	st->stack_ok = 1;
}

void idlemem_release(struct idlemem_stats *st)
{
	struct idlemem_stats dummy;
	if (!st)
		st = &dummy;
	memset(st, 0, sizeof *st);
	stack_release(st);
	/* after the stack: what pthread_getattr_np's stdio allocated is free */
	st->heap_trimmed = malloc_trim(0);
}
