/* shm/histo — latency histograms and the acceptor's process gauges, kept in
 * the shared table's header (issue 23, docs/protocol.md §7): every worker
 * adds its observations with two lock-free atomic adds (its bucket, the sum),
 * /metrics renders them as Prometheus histograms; the acceptor, which serves
 * no HTTP, publishes its own process figures here once a second.  The layout
 * is fixed (_Static_assert in histo.c); a change of it is a new SHM_VERSION. */
#ifndef SHM_HISTO_H
#define SHM_HISTO_H

#include <stdatomic.h>
#include <stdint.h>

struct shm;

/* the finite upper bounds (le), 0.5 ms .. 10 s; one more bucket is +Inf */
#define HISTO_BOUNDS 14
#define HISTO_BOUNDS_US                                                                            \
	{500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, \
	 5000000, 10000000}
#define HISTO_ACCEPTOR_TICK_MS 1000 /* how often the acceptor publishes its gauges */

/* X(id, metric name, help) — the order is the shared layout's: append only */
#define HISTOGRAMS(X)                                                                                     \
	X(HELLO, "broker_hello_duration_seconds",                                                         \
	  "From a hello (or session_hello) frame to its hello_ack.")                                      \
	X(SEND_ACK, "broker_send_ack_seconds", "From a send frame to its positive ack (the message stored).") \
	X(SEND_PUSH, "broker_send_push_seconds",                                                          \
	  "From a message stored (created_at) to its push written to the recipient's socket.")            \
	X(DB_STATEMENT, "broker_db_statement_seconds",                                                    \
	  "From a statement sent to PostgreSQL to its result (pipelined: includes the wait behind others).")

enum histo_id {
#define X(id, name, help) H_##id,
	HISTOGRAMS(X)
#undef X
	H_MAX
};

/* one histogram: per-bucket counts (not cumulative; the last is +Inf) and
 * the sum of the observations in microseconds; the count is their total */
struct histo {
	_Atomic uint64_t bucket[HISTO_BOUNDS + 1];
	_Atomic uint64_t sum_us;
};

/* the acceptor's process figures; updated_ms 0 = never published */
struct acceptor_gauges {
	_Atomic int64_t updated_ms;    /* wall ms of the last publication */
	_Atomic int64_t pid;
	_Atomic int64_t start_ms;      /* wall ms the acceptor started */
	_Atomic int64_t open_fds;
	_Atomic int64_t max_fds;       /* RLIMIT_NOFILE soft */
	_Atomic int64_t resident_bytes;
	_Atomic int64_t cpu_us;        /* user + system */
	int64_t pad;
};

struct histo_area {
	_Alignas(64) struct histo h[H_MAX];
	_Alignas(64) struct acceptor_gauges acc;
};

/* shm.c: the area in s's header; bind/unbind make it the one this process's
 * observations go to (the table's open and close call them) */
struct histo_area *shm_histo(struct shm *s);
void histo_bind(struct histo_area *a);
void histo_unbind(const struct histo_area *a);

/* the histogram clock: monotonic microseconds (clock_gettime, the vDSO) */
int64_t histo_clock_us(void);
/* add one observation of us microseconds (negative counts as 0); nothing
 * when no table is bound */
void histo_observe_us(enum histo_id h, int64_t us);
/* observe histo_clock_us() - t0_us; nothing when t0_us is 0 (never started) */
void histo_since(enum histo_id h, int64_t t0_us);

extern const char *const histo_names[H_MAX];
extern const char *const histo_helps[H_MAX];
extern const int64_t histo_bounds_us[HISTO_BOUNDS];
/* a copy of one histogram: counts per bucket (not cumulative), sum in us */
void histo_read(const struct histo_area *a, enum histo_id h, uint64_t counts[HISTO_BOUNDS + 1], uint64_t *sum_us);

/* the acceptor, on every turn of its loop: publishes its gauges when
 * HISTO_ACCEPTOR_TICK_MS have passed since the last time (mono_now in ms) */
void histo_acceptor_tick(struct histo_area *a, int64_t mono_now);
/* what /metrics shows of the acceptor */
struct acceptor_view {
	int64_t pid, start_ms, open_fds, max_fds, resident_bytes, cpu_us;
};
/* a copy of the acceptor's gauges; 1 when published within the last 5 ticks
 * (an acceptor is running), else 0 (systemd's Accept=yes has none) */
int histo_acceptor_read(const struct histo_area *a, int64_t wall_now, struct acceptor_view *out);

#endif
