/* shm/histo — the latency histograms and the acceptor's gauges in the shared
 * table's header (see histo.h).  An observation is a bucket search over 14
 * bounds and two relaxed atomic adds: no lock, no system call. */
#include "histo.h"

#include <dirent.h>
#include <stdio.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"

_Static_assert(sizeof(struct histo) == 128, "histogram layout: 15 buckets and the sum");
_Static_assert(sizeof(struct acceptor_gauges) == 64, "acceptor gauges layout");
_Static_assert(sizeof(struct histo_area) == 128 * H_MAX + 64, "histogram area layout");
_Static_assert(H_MAX == 4, "a new histogram changes the shared layout: bump SHM_VERSION");

const int64_t histo_bounds_us[HISTO_BOUNDS] = HISTO_BOUNDS_US;
const char *const histo_names[H_MAX] = {
#define X(id, name, help) [H_##id] = name,
	HISTOGRAMS(X)
#undef X
};
const char *const histo_helps[H_MAX] = {
#define X(id, name, help) [H_##id] = help,
	HISTOGRAMS(X)
#undef X
};

static struct histo_area *bound; /* this process's table, or NULL */

void histo_bind(struct histo_area *a) { bound = a; }

void histo_unbind(const struct histo_area *a)
{
	if (bound == a)
		bound = NULL;
}

int64_t histo_clock_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void histo_observe_us(enum histo_id h, int64_t us)
{
	struct histo_area *a = bound;
	if (!a || (unsigned)h >= H_MAX)
		return;
	if (us < 0)
		us = 0;
	int i = 0;
	while (i < HISTO_BOUNDS && us > histo_bounds_us[i])
		i++;
	atomic_fetch_add_explicit(&a->h[h].bucket[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&a->h[h].sum_us, (uint64_t)us, memory_order_relaxed);
}

void histo_since(enum histo_id h, int64_t t0_us)
{
	if (t0_us)
		histo_observe_us(h, histo_clock_us() - t0_us);
}

void histo_read(const struct histo_area *a, enum histo_id h, uint64_t counts[HISTO_BOUNDS + 1], uint64_t *sum_us)
{
	for (int i = 0; i <= HISTO_BOUNDS; i++)
		counts[i] = atomic_load_explicit(&a->h[h].bucket[i], memory_order_relaxed);
	*sum_us = atomic_load_explicit(&a->h[h].sum_us, memory_order_relaxed);
}

/* ---------------------------------------------------------- the acceptor */

static int64_t count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	int64_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* not the directory's own descriptor */
}

static int64_t resident_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "re");
	if (!f)
		return -1;
	long long size = 0, rss = 0;
	int ok = fscanf(f, "%lld %lld", &size, &rss) == 2;
	fclose(f);
	return ok ? (int64_t)rss * sysconf(_SC_PAGESIZE) : -1;
}

void histo_acceptor_tick(struct histo_area *a, int64_t mono_now)
{
	static int64_t next, start_ms;
	if (!a || mono_now < next)
		return;
	next = mono_now + HISTO_ACCEPTOR_TICK_MS;
	struct acceptor_gauges *g = &a->acc;
	int64_t wall = now_ms();
	if (!start_ms)
		start_ms = wall; /* the first turn of the loop: start-up is just over */
	struct rusage ru;
	int64_t cpu = -1;
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		cpu = ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
		      ru.ru_stime.tv_usec;
	struct rlimit rl;
	int64_t maxfds = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (int64_t)rl.rlim_cur : -1;
	atomic_store(&g->pid, (int64_t)getpid());
	atomic_store(&g->start_ms, start_ms);
	atomic_store(&g->open_fds, count_fds());
	atomic_store(&g->max_fds, maxfds);
	atomic_store(&g->resident_bytes, resident_bytes());
	atomic_store(&g->cpu_us, cpu);
	atomic_store(&g->updated_ms, wall); /* last: a reader that sees it sees the rest */
}

int histo_acceptor_read(const struct histo_area *a, int64_t wall_now, struct acceptor_view *out)
{
	const struct acceptor_gauges *g = &a->acc;
	int64_t upd = atomic_load(&g->updated_ms);
	out->pid = atomic_load(&g->pid);
	out->start_ms = atomic_load(&g->start_ms);
	out->open_fds = atomic_load(&g->open_fds);
	out->max_fds = atomic_load(&g->max_fds);
	out->resident_bytes = atomic_load(&g->resident_bytes);
	out->cpu_us = atomic_load(&g->cpu_us);
	return upd > 0 && wall_now - upd <= 5 * HISTO_ACCEPTOR_TICK_MS;
}
