/* idlemem — an idle process gives its unused private memory back (issue 23,
 * docs/design.md "Cost of a worker, second round").
 *
 * A worker's busiest moment is its first: the hello, libpq's load and its
 * connect dirty ~45 KiB of stack, which nothing reads again once they have
 * returned, and leave free blocks in the heap.  An idle peer's worker holds
 * them for hours.  idlemem_release gives back the main thread's stack pages
 * below the caller's frame (madvise MADV_DONTNEED: they come back as zero
 * pages at the next fault) and the heap's free pages (malloc_trim).  It is
 * called once per idle transition (db.c, when the database session closes
 * for idleness), never per message. */
#ifndef COMMON_IDLEMEM_H
#define COMMON_IDLEMEM_H

#include <stddef.h>

/* What the last release did, for logs and tests. */
struct idlemem_stats {
	size_t stack_bytes; /* the stack range given back (mapped or not) */
	int stack_ok;       /* 1: madvise ran on the main thread's stack */
	int heap_trimmed;   /* malloc_trim said it released something */
};

/* Give back the stack below the caller's frame (main thread only: another
 * thread's call trims the heap alone) and the heap's free pages. */
void idlemem_release(struct idlemem_stats *st);

#endif
