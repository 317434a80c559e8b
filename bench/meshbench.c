/* meshbench — the benchmark client of meshbroker (bench/run.sh starts the
 * broker and PostgreSQL, then runs this).  One process, one poll() loop over
 * non-blocking sockets (HTTP by hand, WebSocket through wslay), no threads:
 *
 *   0. baselines: spawn+exec of the worker binary alone (--worker), libpq
 *      connect + SELECT 1 + close alone;
 *   1. GET /health, sequential and 8 in flight: one TCP connection, one
 *      fork+exec of a worker and one PostgreSQL connect per request;
 *   2. WebSocket upgrade + signed hello -> hello_ack, sequential and 8 in flight;
 *   3. direct messages A -> B (send -> push at B), 100 B and 16 KiB plaintext,
 *      one at a time (latency) and pipelined (throughput);
 *   4. N idle peers: worker RSS/PSS/USS from /proc and PostgreSQL backends
 *      right after connecting and after DB_IDLE_SECONDS; then all leave at
 *      once: time until workers and backends are gone, mesh.presence rows
 *      left without disconnected_at.
 *
 *   5. the target table of issue 13: a hello burst (500, 32 in flight), 1000
 *      peers connecting at once twice (and the private memory per idle peer
 *      of every broker and database process), 10 pairs at once, a broadcast
 *      to 10 receivers at 50/s, the hot-path heap over 100k messages; every
 *      message run is accounted for (lost or duplicated: exit 1).
 *   6. cross-host (issue 24, --port-b): two broker hosts (HOST_ID set, a
 *      relay each) on one PostgreSQL; one pair one at a time and 10 pairs x
 *      1 in flight with the sender on host A and the recipient on host B,
 *      and the same pairs both on host A, alternately; e2e p50/p99 of both
 *      side by side and the target "p50 within 1 ms of same-host, p99 <=
 *      20 ms".  bench/run.sh runs it in a second invocation after the
 *      single-host sections (whose broker has HOST_ID unset) and passes the
 *      first invocation's rows on (--save / --load), so one table holds both.
 *
 * Every measurement runs --reps times; the table shows the median and the
 * min/max over the repetitions.  Every loop is bounded in count and in time.
 * Members are created here (libpq) in a fresh mesh.  Only 127.0.0.1.
 * Exit status: 0 when every measurement completed without an error, 1 when
 * something failed (the table says what), 2 on a setup failure. */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <wslay/wslay.h>

#include "proto/hello.h"
#include "common/util.h"

/* ------------------------------------------------------------------ */
/* options                                                             */

static struct {
	int port;
	const char *db_url;
	int acceptor_pid;
	int reps;
	int health_seq, health_conc_n, conc;
	int hello_seq, hello_conc_n;
	int msgs, window;
	int idle_n[4], n_idle_n;
	int db_idle_s;
	int run_timeout_s; /* bound of every single run */
	const char *worker; /* for the fork+exec baseline */
	int base_n;
	int bouncer_pid, pg_pid; /* for the memory of the database side */
	int burst_n, burst_conc; /* the target table's hello burst */
	int pairs, pair_msgs;    /* direct, N pairs at once */
	int pair_window;         /* only this window of the pairs section (1 or 8), 0: both */
	int bcast_msgs, bcast_rate;
	int reconnect_n;
	int heap_msgs, heap_timeout_s;
	int budget_s; /* no section starts after this many seconds (the table is always printed) */
	int port_b, acceptor_b_pid; /* host B of the cross-host section (--port is host A) */
	int xhost_msgs, xhost_pair_msgs; /* messages of the one pair, of each of the 10 pairs */
	const char *save, *load;   /* the rows of this run, written / read back (bench/run.sh) */
} opt = {
	.xhost_msgs = 500,
	.xhost_pair_msgs = 200,
	.budget_s = 480,
	.burst_n = 500,
	.burst_conc = 32,
	.pairs = 10,
	.pair_msgs = 1000,
	.bcast_msgs = 500,
	.bcast_rate = 50,
	.reconnect_n = 1000,
	.heap_msgs = 100000,
	.heap_timeout_s = 300,
	.base_n = 100,
	.reps = 3,
	.health_seq = 200,
	.health_conc_n = 400,
	.conc = 8,
	.hello_seq = 100,
	.hello_conc_n = 200,
	.msgs = 1000,
	.window = 64,
	.idle_n = {100, 500},
	.n_idle_n = 2,
	.db_idle_s = 2,
	.run_timeout_s = 60,
};

static int failures; /* measurements with an error: exit status 1 */
static int skipped;  /* sections or repetitions left out for the time budget */

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "meshbench: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

static int64_t now_ns(void);
static int64_t t_start;

static void note(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "meshbench [%6.1f s]: ", (double)(now_ns() - t_start) / 1e9);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
}

/* seconds left of --budget; a section that would start later is left out */
static double budget_left(void)
{
	return opt.budget_s - (double)(now_ns() - t_start) / 1e9;
}

static int over_budget(const char *what)
{
	if (budget_left() > 0)
		return 0;
	skipped++;
	note("left out (time budget of %d s spent): %s", opt.budget_s, what);
	return 1;
}

/* ------------------------------------------------------------------ */
/* statistics                                                          */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* nearest-rank percentile of n sorted values */
static double pct_sorted(const double *v, int n, double p)
{
	if (n <= 0)
		return 0;
	int k = (int)(p / 100.0 * n + 0.999999999) - 1;
	if (k < 0)
		k = 0;
	if (k >= n)
		k = n - 1;
	return v[k];
}

static double pct(double *v, int n, double p)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return pct_sorted(v, n, p);
}

/* ------------------------------------------------------------------ */
/* the table: one row per figure, one value per repetition             */

#define MAX_ROWS 256
#define MAX_REPS 9
static struct row {
	char bench[96], metric[96];
	double v[MAX_REPS];
	int n;
	int prec;
	char note[160];
} rows[MAX_ROWS];
static int nrows;

static struct row *row_get(const char *bench, const char *metric, int prec)
{
	for (int i = 0; i < nrows; i++)
		if (!strcmp(rows[i].bench, bench) && !strcmp(rows[i].metric, metric))
			return &rows[i];
	if (nrows == MAX_ROWS)
		die("too many table rows");
	struct row *r = &rows[nrows++];
	snprintf(r->bench, sizeof r->bench, "%s", bench);
	snprintf(r->metric, sizeof r->metric, "%s", metric);
	r->prec = prec;
	return r;
}

static void rec(const char *bench, const char *metric, int prec, double v)
{
	struct row *r = row_get(bench, metric, prec);
	if (r->n < MAX_REPS)
		r->v[r->n++] = v;
}

static void row_note(const char *bench, const char *metric, const char *fmt, ...)
{
	struct row *r = row_get(bench, metric, 1);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->note, sizeof r->note, fmt, ap);
	va_end(ap);
}

static void print_table(void)
{
	printf("| benchmark | metric | median | min | max | runs |\n");
	printf("|---|---|--:|--:|--:|--:|\n");
	const char *last = "";
	for (int i = 0; i < nrows; i++) {
		struct row *r = &rows[i];
		const char *b = strcmp(r->bench, last) ? r->bench : "";
		last = r->bench;
		if (r->n == 0) {
			printf("| %s | %s | — | — | — | 0 |%s%s\n", b, r->metric, r->note[0] ? " " : "", r->note);
			continue;
		}
		double s[MAX_REPS];
		memcpy(s, r->v, sizeof(double) * (size_t)r->n);
		qsort(s, (size_t)r->n, sizeof *s, cmp_double);
		double med = r->n % 2 ? s[r->n / 2] : (s[r->n / 2 - 1] + s[r->n / 2]) / 2;
		printf("| %s | %s | %.*f | %.*f | %.*f | %d |", b, r->metric, r->prec, med, r->prec, s[0], r->prec,
		       s[r->n - 1], r->n);
		if (r->note[0])
			printf(" %s", r->note);
		printf("\n");
	}
	fflush(stdout);
}

/* ------------------------------------------------------------------ */
/* members                                                             */

struct member {
	const char *mesh; /* mesh_id, or mesh2_id for the broadcast mesh */
	char id[ID_LEN + 1];
	char pub_hex[65];
	unsigned char pk[32], sk[64];
	int64_t last_ts; /* hello timestamps strictly increase per member (replay cache) */
};
static struct member *members;
static int nmembers;
static char mesh_id[ID_LEN + 1];
static char mesh2_id[ID_LEN + 1]; /* a small mesh: a broadcast reaches every member of its mesh */
#define BCAST_RECEIVERS 10
static int mesh2_base; /* members[mesh2_base] sends, the next BCAST_RECEIVERS receive */
static PGconn *pg;

static void pg_exec(const char *sql, int n, const char *const *p)
{
	PGresult *r = PQexecParams(pg, sql, n, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
		die("SQL failed: %s: %s", sql, PQerrorMessage(pg));
	PQclear(r);
}

/* Before a timed section that follows one that wrote a lot: PostgreSQL's
 * own upkeep of what the last section wrote (VACUUM and ANALYZE of
 * delivery, message_queue, audit_log), done now rather than by autovacuum
 * in the middle of the next section. Autovacuum's first pass of a new
 * cluster came ~20 s after its start, inside the broadcast section, and
 * the replanning after its ANALYZE made sends wait 20-40 ms (a run with
 * BENCH_PG_DIAG=1 and BCAST_DUMP: statements of 37-38 ms at the times of
 * the broadcast row's worst figures, docs/design.md). */
static void db_settle(void)
{
	int64_t t = now_ns();
	PGresult *r = PQexec(pg, "VACUUM (ANALYZE) mesh.delivery, mesh.message_queue, mesh.audit_log, mesh.audit_pending, "
				  "mesh.presence, mesh.member");
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		note("VACUUM before the section failed: %s", PQerrorMessage(pg));
	PQclear(r);
	note("VACUUM (ANALYZE) before the section: %.2f s", (double)(now_ns() - t) / 1e9);
}

/* members 0..n-1 in mesh_id, then 1 + BCAST_RECEIVERS in mesh2_id */
static void setup_members(int n)
{
	pg = PQconnectdb(opt.db_url);
	if (PQstatus(pg) != CONNECTION_OK)
		die("cannot connect to PostgreSQL: %s", PQerrorMessage(pg));
	int total = n + 1 + BCAST_RECEIVERS;
	members = calloc((size_t)total, sizeof *members);
	if (!members)
		die("out of memory");
	nmembers = n;
	mesh2_base = n;
	id_new(mesh_id);
	id_new(mesh2_id);
	char slug[64], owner[65];
	pg_exec("BEGIN", 0, NULL);
	for (int i = 0; i < total; i++) {
		struct member *m = &members[i];
		m->mesh = i < n ? mesh_id : mesh2_id;
		crypto_sign_keypair(m->pk, m->sk);
		hex_encode(m->pk, 32, m->pub_hex);
		id_new(m->id);
		if (i == 0 || i == n) {
			memcpy(owner, m->pub_hex, sizeof owner);
			snprintf(slug, sizeof slug, "bench-%s", m->mesh);
			const char *p[] = {m->mesh, "meshbench", slug, owner};
			pg_exec("INSERT INTO mesh.mesh (id, name, slug, owner_pubkey) VALUES ($1, $2, $3, $4)", 4, p);
		}
		char name[32];
		snprintf(name, sizeof name, "bench-%d", i);
		const char *p[] = {m->id, m->mesh, m->pub_hex, name};
		pg_exec("INSERT INTO mesh.member (id, mesh_id, peer_pubkey, display_name) VALUES ($1, $2, $3, $4)", 4,
			p);
	}
	pg_exec("COMMIT", 0, NULL);
}

/* PostgreSQL backends of database meshbroker, the bench's own excluded */
static int pg_backends(void)
{
	PGresult *r = PQexec(pg, "SELECT count(*) FROM pg_stat_activity WHERE datname='meshbroker' "
				 "AND pid <> pg_backend_pid()");
	int n = -1;
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		n = atoi(PQgetvalue(r, 0, 0));
	else
		note("pg_stat_activity query failed: %s", PQerrorMessage(pg));
	PQclear(r);
	return n;
}

/* mesh.presence rows of the bench mesh still without disconnected_at */
static int presence_open_rows(void)
{
	const char *p[] = {mesh_id};
	PGresult *r = PQexecParams(pg, "SELECT count(*) FROM mesh.presence WHERE mesh_id = $1 AND disconnected_at IS NULL",
				   1, NULL, p, NULL, NULL, 0);
	int n = -1;
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		n = atoi(PQgetvalue(r, 0, 0));
	else
		note("mesh.presence query failed: %s", PQerrorMessage(pg));
	PQclear(r);
	return n;
}

/* ------------------------------------------------------------------ */
/* worker processes (children of the acceptor) from /proc              */

struct procsum {
	int workers;
	long rss_kb, pss_kb, uss_kb;
};

static long status_kb(const char *path, const char *key)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	char line[256];
	size_t klen = strlen(key);
	long v = -1;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, key, klen)) {
			v = strtol(line + klen, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/* A spare worker of the acceptor still waiting for a connection
 * (SPARE_WORKERS: `meshbroker-worker --spare`, `--taken` once it has one). */
static int is_spare(int pid)
{
	char path[64], buf[256];
	snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	ssize_t r = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (r <= 0)
		return 0;
	buf[r] = 0;
	size_t l0 = strlen(buf);
	return (ssize_t)l0 + 1 < r && strcmp(buf + l0 + 1, "--spare") == 0;
}

static struct procsum workers_scan(int with_mem)
{
	struct procsum s = {0};
	DIR *d = opendir("/proc");
	if (!d)
		return s;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		char path[300], buf[512];
		snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
		int fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, buf, sizeof buf - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = 0;
		char *lp = strchr(buf, '('), *rp = strrchr(buf, ')');
		if (!lp || !rp)
			continue;
		*rp = 0;
		const char *comm = lp + 1;
		char state;
		int ppid;
		if (sscanf(rp + 2, "%c %d", &state, &ppid) != 2 ||
		    (ppid != opt.acceptor_pid && (opt.acceptor_b_pid <= 0 || ppid != opt.acceptor_b_pid)))
			continue;
		if (strcmp(comm, "meshbroker-work") != 0 || state == 'Z' || is_spare(atoi(e->d_name)))
			continue; /* a spare serves no peer (SPARE_WORKERS) */
		s.workers++;
		if (with_mem) {
			snprintf(path, sizeof path, "/proc/%s/status", e->d_name);
			long rss = status_kb(path, "VmRSS:");
			snprintf(path, sizeof path, "/proc/%s/smaps_rollup", e->d_name);
			long pss = status_kb(path, "Pss:");
			long pc = status_kb(path, "Private_Clean:"), pd = status_kb(path, "Private_Dirty:");
			if (rss > 0)
				s.rss_kb += rss;
			if (pss > 0)
				s.pss_kb += pss;
			if (pc > 0)
				s.uss_kb += pc;
			if (pd > 0)
				s.uss_kb += pd;
		}
	}
	closedir(d);
	return s;
}

/* client backends of database meshbroker other than ours (pg_backends()
 * also counts autovacuum workers, as the query in the brief does) */
static int pg_client_backends(void)
{
	PGresult *r = PQexec(pg, "SELECT count(*) FROM pg_stat_activity WHERE datname='meshbroker' "
				 "AND backend_type = 'client backend' AND pid <> pg_backend_pid()");
	int n = -1;
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		n = atoi(PQgetvalue(r, 0, 0));
	PQclear(r);
	return n;
}

/* Wait (bounded) until no worker of the previous measurement is left, and
 * no PostgreSQL backend either: after a mass disconnect, backends whose
 * clients already gave up linger for seconds and would eat into the next
 * measurement's max_connections. */
static double workers_wait_gone(int timeout_ms)
{
	int64_t t0 = now_ns(), end = t0 + (int64_t)timeout_ms * 1000000;
	int n = 0, b = 0;
	while (now_ns() < end) {
		n = workers_scan(0).workers;
		if (n == 0)
			break;
		usleep(50000);
	}
	if (n)
		note("warning: %d worker(s) still running %d ms after their clients left", n, timeout_ms);
	/* through PgBouncer the backends are its pool, and they stay */
	end = now_ns() + (opt.bouncer_pid > 0 ? 0 : 15000000000LL);
	while (now_ns() < end) {
		b = pg_client_backends();
		if (b <= 0)
			break;
		usleep(100000);
	}
	if (b > 0)
		note("warning: %d PostgreSQL client backend(s) still open 15 s after the workers exited", b);
	double waited = (double)(now_ns() - t0) / 1e9;
	if (waited > 5)
		note("waited %.1f s for the previous measurement's workers and backends to go", waited);
	return waited;
}

/* ------------------------------------------------------------------ */
/* connections                                                         */

enum kind { K_HTTP, K_WS };
enum state { S_CONNECTING, S_SENDREQ, S_READHEAD, S_WS, S_DONE, S_FAILED };

struct conn;
typedef void (*text_cb)(struct conn *c, const char *type, cJSON *msg);

struct conn {
	enum kind kind;
	enum state st;
	int fd;
	char req[1024];
	size_t req_len, req_off;
	char *buf; /* response head (and body for HTTP) */
	size_t len, cap;
	wslay_event_context_ptr ctx;
	unsigned char *pre;
	size_t pre_len, pre_off;
	int member;
	int port; /* the broker's: --port, or --port-b for a peer on host B */
	int authed;
	int64_t t0, t_done; /* start, response / hello_ack */
	text_cb on_text;
	void *arg;
	char err[200];
};

static int connect_local(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

static void conn_fail(struct conn *c, const char *fmt, ...)
{
	if (c->st == S_FAILED)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err, sizeof c->err, fmt, ap);
	va_end(ap);
	c->st = S_FAILED;
	c->t_done = now_ns();
}

/* Release everything; a WebSocket says goodbye with a close frame first. */
static void conn_close(struct conn *c)
{
	if (c->ctx) {
		if (c->fd >= 0 && c->st == S_WS && !wslay_event_get_close_sent(c->ctx)) {
			wslay_event_queue_close(c->ctx, 1000, (const uint8_t *)"bench done", 10);
			wslay_event_send(c->ctx); /* one try: non-blocking */
		}
		wslay_event_context_free(c->ctx);
		c->ctx = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->buf);
	free(c->pre);
	c->buf = NULL;
	c->pre = NULL;
	if (c->st != S_FAILED)
		c->st = S_DONE;
}

static void conn_start_at(struct conn *c, enum kind kind, int member, text_cb cb, void *arg, int port)
{
	memset(c, 0, sizeof *c);
	c->kind = kind;
	c->member = member;
	c->port = port;
	c->on_text = cb;
	c->arg = arg;
	c->t0 = now_ns();
	if (kind == K_HTTP) {
		c->req_len = (size_t)snprintf(c->req, sizeof c->req,
					      "GET /health HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: meshbench\r\n"
					      "Connection: close\r\n\r\n",
					      port);
	} else {
		unsigned char nonce[16];
		char key[25];
		randombytes_buf(nonce, sizeof nonce);
		sodium_bin2base64(key, sizeof key, nonce, sizeof nonce, sodium_base64_VARIANT_ORIGINAL);
		c->req_len = (size_t)snprintf(c->req, sizeof c->req,
					      "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
					      "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
					      "Sec-WebSocket-Version: 13\r\nUser-Agent: meshbench\r\n\r\n",
					      port, key);
	}
	c->fd = connect_local(port);
	if (c->fd < 0) {
		c->fd = -1;
		conn_fail(c, "connect: %s", strerror(errno));
		return;
	}
	c->st = S_CONNECTING;
}

static void conn_start(struct conn *c, enum kind kind, int member, text_cb cb, void *arg)
{
	conn_start_at(c, kind, member, cb, arg, opt.port);
}

/* wslay glue */
static ssize_t ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
	(void)flags;
	struct conn *c = user;
	if (c->pre_off < c->pre_len) {
		size_t n = c->pre_len - c->pre_off;
		if (n > len)
			n = len;
		memcpy(buf, c->pre + c->pre_off, n);
		c->pre_off += n;
		return (ssize_t)n;
	}
	ssize_t r;
	do
		r = recv(c->fd, buf, len, 0);
	while (r < 0 && errno == EINTR);
	if (r > 0)
		return r;
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (!c->err[0])
		snprintf(c->err, sizeof c->err, "%s", r == 0 ? "connection closed by the broker" : strerror(errno));
	wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
	return -1;
}

static ssize_t ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user)
{
	struct conn *c = user;
	ssize_t r;
	do
		r = send(c->fd, data, len, MSG_NOSIGNAL | ((flags & WSLAY_MSG_MORE) ? MSG_MORE : 0));
	while (r < 0 && errno == EINTR);
	if (r >= 0)
		return r;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
	else {
		if (!c->err[0])
			snprintf(c->err, sizeof c->err, "send: %s", strerror(errno));
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
	}
	return -1;
}

static int ws_genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
	(void)ctx;
	(void)user;
	randombytes_buf(buf, len);
	return 0;
}

static void ws_msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a, void *user)
{
	(void)ctx;
	struct conn *c = user;
	if (a->opcode == WSLAY_CONNECTION_CLOSE) {
		char reason[128] = "";
		size_t n = a->msg_length > 2 ? a->msg_length - 2 : 0;
		if (n >= sizeof reason)
			n = sizeof reason - 1;
		if (n)
			memcpy(reason, a->msg + 2, n);
		reason[n] = 0;
		conn_fail(c, "closed by the broker: %u %s", a->status_code, reason);
		return;
	}
	if (a->opcode != WSLAY_TEXT_FRAME)
		return;
	cJSON *m = cJSON_ParseWithLength((const char *)a->msg, a->msg_length);
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(m, "type");
	if (!cJSON_IsString(t)) {
		conn_fail(c, "frame without a type: %.80s", (const char *)a->msg);
	} else if (!strcmp(t->valuestring, "hello_ack")) {
		c->authed = 1;
		c->t_done = now_ns();
	} else if (!strcmp(t->valuestring, "error")) {
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(m, "code");
		const cJSON *msg = cJSON_GetObjectItemCaseSensitive(m, "message");
		conn_fail(c, "error %s: %s", cJSON_IsString(code) ? code->valuestring : "?",
			  cJSON_IsString(msg) ? msg->valuestring : "?");
	} else if (c->on_text) {
		c->on_text(c, t->valuestring, m);
	}
	cJSON_Delete(m);
}

static const struct wslay_event_callbacks ws_cbs = {
	.recv_callback = ws_recv_cb,
	.send_callback = ws_send_cb,
	.genmask_callback = ws_genmask_cb,
	.on_msg_recv_callback = ws_msg_cb,
};

static int ws_queue_text(struct conn *c, const char *s, size_t len)
{
	struct wslay_event_msg m = {.opcode = WSLAY_TEXT_FRAME, .msg = (const uint8_t *)s, .msg_length = len};
	return wslay_event_queue_msg(c->ctx, &m);
}

static void ws_send_hello(struct conn *c)
{
	struct member *m = &members[c->member];
	int64_t ts = now_ms();
	if (ts <= m->last_ts)
		ts = m->last_ts + 1;
	m->last_ts = ts;
	char sig[129], sess[64], buf[1024];
	if (hello_sign(sig, m->sk, m->mesh, m->id, m->pub_hex, ts) != 0) {
		conn_fail(c, "hello_sign failed");
		return;
	}
	snprintf(sess, sizeof sess, "%d-%" PRId64 "-%d", (int)getpid(), ts, c->member);
	int n = snprintf(buf, sizeof buf,
			 "{\"type\":\"hello\",\"meshId\":\"%s\",\"memberId\":\"%s\",\"pubkey\":\"%s\","
			 "\"sessionId\":\"%s\",\"pid\":%d,\"cwd\":\"/tmp/meshbench\",\"timestamp\":%" PRId64
			 ",\"signature\":\"%s\",\"peerType\":\"connector\"}",
			 m->mesh, m->id, m->pub_hex, sess, (int)getpid(), ts, sig);
	if (ws_queue_text(c, buf, (size_t)n) != 0)
		conn_fail(c, "cannot queue the hello");
}

static void buf_need(struct conn *c, size_t more)
{
	if (c->len + more + 1 <= c->cap)
		return;
	size_t cap = c->cap ? c->cap * 2 : 4096;
	while (cap < c->len + more + 1)
		cap *= 2;
	char *nb = realloc(c->buf, cap);
	if (!nb)
		die("out of memory");
	c->buf = nb;
	c->cap = cap;
}

/* HTTP response complete?  1 done (status checked), 0 need more */
static int http_complete(struct conn *c, int eof)
{
	char *end = strstr(c->buf, "\r\n\r\n");
	if (!end)
		return eof ? (conn_fail(c, "connection closed before the response head"), 1) : 0;
	size_t head = (size_t)(end - c->buf) + 4;
	long clen = -1;
	for (char *l = strstr(c->buf, "\r\n"); l && l < end; l = strstr(l + 2, "\r\n"))
		if (!strncasecmp(l + 2, "Content-Length:", 15))
			clen = strtol(l + 17, NULL, 10);
	if (clen < 0 ? !eof : c->len < head + (size_t)clen)
		return eof ? (conn_fail(c, "response cut short"), 1) : 0;
	int code = 0;
	sscanf(c->buf, "HTTP/1.1 %d", &code);
	if (code != 200)
		conn_fail(c, "HTTP %d: %.100s", code, c->buf + head);
	else if (!strstr(c->buf + head, "\"status\":\"ok\""))
		conn_fail(c, "health body: %.100s", c->buf + head);
	else {
		c->t_done = now_ns();
		c->st = S_DONE;
	}
	return 1;
}

static void conn_io(struct conn *c, short rev)
{
	if (c->st == S_CONNECTING) {
		if (!(rev & (POLLOUT | POLLERR | POLLHUP)))
			return;
		int e = 0;
		socklen_t el = sizeof e;
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el);
		if (e) {
			conn_fail(c, "connect: %s", strerror(e));
			return;
		}
		c->st = S_SENDREQ;
	}
	if (c->st == S_SENDREQ) {
		ssize_t r = send(c->fd, c->req + c->req_off, c->req_len - c->req_off, MSG_NOSIGNAL);
		if (r < 0) {
			if (errno != EAGAIN && errno != EINTR)
				conn_fail(c, "write request: %s", strerror(errno));
			return;
		}
		c->req_off += (size_t)r;
		if (c->req_off < c->req_len)
			return;
		c->st = S_READHEAD;
		return;
	}
	if (c->st == S_READHEAD) {
		if (!(rev & (POLLIN | POLLERR | POLLHUP)))
			return;
		buf_need(c, 16384);
		ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
		if (r < 0) {
			if (errno != EAGAIN && errno != EINTR)
				conn_fail(c, "read: %s", strerror(errno));
			return;
		}
		c->len += (size_t)r;
		c->buf[c->len] = 0;
		if (c->kind == K_HTTP) {
			http_complete(c, r == 0);
			return;
		}
		char *end = strstr(c->buf, "\r\n\r\n");
		if (!end) {
			if (r == 0)
				conn_fail(c, "connection closed during the upgrade");
			else if (c->len > 16384)
				conn_fail(c, "upgrade response too long");
			return;
		}
		if (strncmp(c->buf, "HTTP/1.1 101", 12) != 0) {
			conn_fail(c, "upgrade refused: %.80s", c->buf);
			return;
		}
		size_t head = (size_t)(end - c->buf) + 4;
		if (c->len > head) {
			c->pre = malloc(c->len - head);
			if (!c->pre)
				die("out of memory");
			memcpy(c->pre, c->buf + head, c->len - head);
			c->pre_len = c->len - head;
		}
		if (wslay_event_context_client_init(&c->ctx, &ws_cbs, c) != 0)
			die("out of memory");
		wslay_event_config_set_max_recv_msg_length(c->ctx, 1u << 20);
		c->st = S_WS;
		ws_send_hello(c);
		rev = POLLOUT | (c->pre_len ? POLLIN : 0);
	}
	if (c->st == S_WS) {
		if ((rev & (POLLIN | POLLERR | POLLHUP)) || c->pre_off < c->pre_len) {
			if (wslay_event_recv(c->ctx) != 0) {
				conn_fail(c, "%s", c->err[0] ? c->err : "receive failed");
				return;
			}
		}
		if (c->st == S_WS && wslay_event_want_write(c->ctx) && wslay_event_send(c->ctx) != 0) {
			conn_fail(c, "%s", c->err[0] ? c->err : "send failed");
			return;
		}
		if (c->st == S_WS && !wslay_event_want_read(c->ctx) && !wslay_event_want_write(c->ctx))
			conn_fail(c, "%s", c->err[0] ? c->err : "connection over");
	}
}

static short conn_events(const struct conn *c)
{
	switch (c->st) {
	case S_CONNECTING:
	case S_SENDREQ:
		return POLLOUT;
	case S_READHEAD:
		return POLLIN;
	case S_WS: {
		short e = 0;
		if (wslay_event_want_read(c->ctx))
			e |= POLLIN;
		if (wslay_event_want_write(c->ctx))
			e |= POLLOUT;
		return e;
	}
	default:
		return 0;
	}
}

static int conn_active(const struct conn *c) { return c->fd >= 0 && c->st != S_DONE && c->st != S_FAILED; }

/* One round of I/O over all active connections, at most timeout_ms. */
static struct pollfd *pfds;
static struct conn **pconn;
static size_t pcap;

static void pump(struct conn *cs, int n, int timeout_ms)
{
	if ((size_t)n > pcap) {
		pcap = (size_t)n;
		pfds = realloc(pfds, pcap * sizeof *pfds);
		pconn = realloc(pconn, pcap * sizeof *pconn);
		if (!pfds || !pconn)
			die("out of memory");
	}
	int k = 0;
	for (int i = 0; i < n; i++) {
		struct conn *c = &cs[i];
		if (!conn_active(c))
			continue;
		if (c->st == S_WS && c->pre_off < c->pre_len) {
			conn_io(c, 0);
			timeout_ms = 0;
			if (!conn_active(c))
				continue;
		}
		pfds[k] = (struct pollfd){.fd = c->fd, .events = conn_events(c)};
		pconn[k++] = c;
	}
	if (k == 0) {
		if (timeout_ms > 0)
			usleep((useconds_t)timeout_ms * 1000);
		return;
	}
	int r = poll(pfds, (nfds_t)k, timeout_ms);
	if (r <= 0)
		return;
	for (int i = 0; i < k; i++)
		if (pfds[i].revents)
			conn_io(pconn[i], pfds[i].revents);
}

/* ------------------------------------------------------------------ */
/* 0: the two parts of the per-connection cost, measured alone          */

extern char **environ;

/* posix_spawn of the worker binary with a bad argument: it loads its
 * libraries, prints its usage and exits 100 -- the exec part of a connection */
static void bench_exec(void)
{
	const char *name = "baseline: spawn+exec worker binary, exits at once";
	double *lat = calloc((size_t)opt.base_n, sizeof *lat);
	if (!lat)
		die("out of memory");
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	char *argv[] = {(char *)opt.worker, "--bench", NULL};
	int done = 0, bad = 0;
	int64_t t0 = now_ns(), deadline = t0 + (int64_t)opt.run_timeout_s * 1000000000;
	for (int i = 0; i < opt.base_n && now_ns() < deadline; i++) {
		int64_t t = now_ns();
		pid_t pid;
		int st;
		if (posix_spawn(&pid, opt.worker, &fa, NULL, argv, environ) != 0 || waitpid(pid, &st, 0) != pid ||
		    !WIFEXITED(st) || WEXITSTATUS(st) != 100) {
			bad++;
			continue;
		}
		lat[done++] = (double)(now_ns() - t) / 1e6;
	}
	double secs = (double)(now_ns() - t0) / 1e9;
	posix_spawn_file_actions_destroy(&fa);
	rec(name, "completed/s", 1, done / secs);
	rec(name, "p50 ms", 2, pct(lat, done, 50));
	rec(name, "p99 ms", 2, pct_sorted(lat, done, 99));
	if (bad) {
		failures++;
		row_note(name, "completed/s", "**%d spawns did not exit 100**", bad);
	}
	free(lat);
}

/* libpq from this process: connect + SELECT 1 + close, over the same Unix
 * socket the workers use -- the PostgreSQL part of a connection */
static void bench_pgconnect(void)
{
	const char *name = "baseline: PostgreSQL connect+SELECT 1+close";
	double *lat = calloc((size_t)opt.base_n, sizeof *lat);
	if (!lat)
		die("out of memory");
	int done = 0, bad = 0;
	char first_err[200] = "";
	int64_t t0 = now_ns(), deadline = t0 + (int64_t)opt.run_timeout_s * 1000000000;
	for (int i = 0; i < opt.base_n && now_ns() < deadline; i++) {
		int64_t t = now_ns();
		PGconn *c = PQconnectdb(opt.db_url);
		PGresult *r = PQstatus(c) == CONNECTION_OK ? PQexec(c, "SELECT 1") : NULL;
		int ok = r && PQresultStatus(r) == PGRES_TUPLES_OK;
		if (!ok && !first_err[0])
			snprintf(first_err, sizeof first_err, "%s", PQerrorMessage(c));
		PQclear(r);
		PQfinish(c);
		if (!ok) {
			bad++;
			continue;
		}
		lat[done++] = (double)(now_ns() - t) / 1e6;
	}
	double secs = (double)(now_ns() - t0) / 1e9;
	rec(name, "completed/s", 1, done / secs);
	rec(name, "p50 ms", 2, pct(lat, done, 50));
	rec(name, "p99 ms", 2, pct_sorted(lat, done, 99));
	if (bad) {
		failures++;
		row_note(name, "completed/s", "**%d failed** (%s)", bad, first_err);
	}
	free(lat);
}

/* ------------------------------------------------------------------ */
/* 1 + 2: connection benches (HTTP /health and WebSocket hello)        */

/* n connections, conc in flight; each closed as soon as it completes.
 * Records rate and latency percentiles under name. */
static void bench_connections(enum kind kind, const char *name, int n, int conc, int member_base,
			      int member_span)
{
	struct conn *cs = calloc((size_t)conc, sizeof *cs);
	double *lat = calloc((size_t)n, sizeof *lat);
	if (!cs || !lat)
		die("out of memory");
	for (int i = 0; i < conc; i++)
		cs[i].fd = -1, cs[i].st = S_DONE; /* t0 == 0: the slot is free */
	int started = 0, done = 0, failed = 0;
	char first_err[200] = "";
	int64_t t0 = now_ns(), deadline = t0 + (int64_t)opt.run_timeout_s * 1000000000;
	for (;;) {
		int active = 0;
		for (int i = 0; i < conc; i++) {
			struct conn *c = &cs[i];
			if (c->t0) {
				int finished = c->st == S_FAILED || (c->kind == K_HTTP && c->st == S_DONE) ||
					       (c->kind == K_WS && c->authed);
				if (finished) {
					if (c->st == S_FAILED) {
						failed++;
						if (!first_err[0])
							snprintf(first_err, sizeof first_err, "%s", c->err);
					} else {
						lat[done++] = (double)(c->t_done - c->t0) / 1e6;
					}
					conn_close(c);
					c->t0 = 0;
				}
			}
			if (!c->t0 && started < n && now_ns() < deadline) {
				conn_start(c, kind, member_base + started % member_span, NULL, NULL);
				started++;
			}
			active += c->t0 != 0;
		}
		if (!active)
			break;
		if (now_ns() >= deadline + 5000000000LL)
			break; /* the stragglers count as failures below */
		pump(cs, conc, 50);
	}
	int64_t t1 = now_ns();
	for (int i = 0; i < conc; i++)
		if (cs[i].t0) {
			failed++;
			if (!first_err[0])
				snprintf(first_err, sizeof first_err, "timed out");
			conn_close(&cs[i]);
		}
	double secs = (double)(t1 - t0) / 1e9;
	rec(name, "completed/s", 1, done / secs);
	rec(name, "ok", 0, done);
	double p50 = pct(lat, done, 50), p99 = pct_sorted(lat, done, 99);
	rec(name, "p50 ms", 2, p50);
	rec(name, "p99 ms", 2, p99);
	if (failed || done < n) {
		failures++;
		row_note(name, "completed/s", "**%d of %d failed** (first: %s)", n - done, n, first_err);
		note("%s: %d of %d failed (first: %s)", name, n - done, n, first_err);
	}
	free(cs);
	free(lat);
}

/* ------------------------------------------------------------------ */
/* 3: direct messages (pairs of peers) and broadcasts                  */

/* Every message run is accounted for: sent, acked, delivered (pushed),
 * lost (acked, never pushed) and duplicated.  A loss or a duplicate makes
 * the exit status 1.  One line per run name, summed over repetitions. */
#define MAX_ACCT 24
static struct acct {
	char name[128];
	long sent, acked, delivered, expected, lost, dup;
} accts[MAX_ACCT];
static int nacct;

static void acct_add(const char *name, long sent, long acked, long delivered, long expected, long lost, long dup)
{
	struct acct *a = NULL;
	for (int i = 0; i < nacct && !a; i++)
		if (!strcmp(accts[i].name, name))
			a = &accts[i];
	if (!a && nacct < MAX_ACCT) {
		a = &accts[nacct++];
		snprintf(a->name, sizeof a->name, "%s", name);
	}
	if (!a)
		return;
	a->sent += sent, a->acked += acked, a->delivered += delivered, a->expected += expected;
	a->lost += lost, a->dup += dup;
	if (lost || dup)
		failures++;
}

static void print_accounting(void)
{
	printf("| message run | sent | acked | delivered | expected deliveries | lost (acked, not delivered) | duplicated |\n");
	printf("|---|--:|--:|--:|--:|--:|--:|\n");
	for (int i = 0; i < nacct; i++)
		printf("| %s | %ld | %ld | %ld | %ld | %ld%s | %ld%s |\n", accts[i].name, accts[i].sent, accts[i].acked,
		       accts[i].delivered, accts[i].expected, accts[i].lost, accts[i].lost ? " **LOST**" : "",
		       accts[i].dup, accts[i].dup ? " **DUPLICATED**" : "");
}

struct msgrun {
	int n, size, from, to; /* members: sender and recipient */
	char **frames; /* the send frames, ready */
	size_t *frame_len;
	char **ct;     /* expected ciphertext (b64) per seq */
	int64_t *t_send, *t_ack, *t_push;
	int sent, acked, pushed;
	int dup, wrong, reorder, refused, last_seq;
	char first_err[200];
};

static void on_sender_text(struct conn *c, const char *type, cJSON *m)
{
	struct msgrun *r = c->arg;
	if (strcmp(type, "ack") != 0 || !r)
		return;
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "id");
	const cJSON *q = cJSON_GetObjectItemCaseSensitive(m, "queued");
	/* "m<tag>.<run>.<seq>": the sequence number after the last dot */
	const char *dot = cJSON_IsString(id) && id->valuestring[0] == 'm' ? strrchr(id->valuestring, '.') : NULL;
	int seq = dot ? atoi(dot + 1) : -1;
	if (seq < 0 || seq >= r->n)
		return;
	if (!cJSON_IsTrue(q)) {
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(m, "error");
		r->refused++;
		if (!r->first_err[0])
			snprintf(r->first_err, sizeof r->first_err, "send refused: %s",
				 cJSON_IsString(e) ? e->valuestring : "?");
		return;
	}
	if (!r->t_ack[seq]) {
		r->t_ack[seq] = now_ns();
		r->acked++;
	}
}

/* the sequence number a push carries in the first 4 bytes of its nonce */
static int push_seq(cJSON *m, const char *sender, uint32_t n)
{
	const cJSON *nonce = cJSON_GetObjectItemCaseSensitive(m, "nonce");
	const cJSON *from = cJSON_GetObjectItemCaseSensitive(m, "senderPubkey");
	unsigned char nb[crypto_box_NONCEBYTES];
	size_t nlen = 0;
	if (!cJSON_IsString(nonce) || !cJSON_IsString(from) || strcmp(from->valuestring, sender) != 0 ||
	    sodium_base642bin(nb, sizeof nb, nonce->valuestring, strlen(nonce->valuestring), NULL, &nlen, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    nlen != sizeof nb)
		return -1;
	uint32_t seq;
	memcpy(&seq, nb, sizeof seq);
	return seq < n ? (int)seq : -1;
}

static void on_recipient_text(struct conn *c, const char *type, cJSON *m)
{
	struct msgrun *r = c->arg;
	if (strcmp(type, "push") != 0 || !r)
		return;
	int64_t t = now_ns();
	const cJSON *ct = cJSON_GetObjectItemCaseSensitive(m, "ciphertext");
	int seq = push_seq(m, members[r->from].pub_hex, (uint32_t)r->n);
	if (seq < 0 || !cJSON_IsString(ct) || strcmp(ct->valuestring, r->ct[seq]) != 0) {
		r->wrong++;
		return;
	}
	if (r->t_push[seq]) {
		r->dup++;
		return;
	}
	if (seq < r->last_seq)
		r->reorder++;
	r->last_seq = seq;
	r->t_push[seq] = t;
	r->pushed++;
}

/* A send's id is its idempotency key (docs/protocol.md "Idempotent sends",
 * issue 21): the same sender may not reuse one for another message within a
 * day, so every run's ids carry this process's random tag and a run number */
static const char *send_id_prefix(void)
{
	static char tag[32];
	static unsigned run;
	snprintf(tag, sizeof tag, "%08x.%u", (unsigned)getpid() ^ randombytes_random(), run++);
	return tag;
}

static struct msgrun *msgrun_new(int n, int size, int from, int to)
{
	char idp[32];
	snprintf(idp, sizeof idp, "%s", send_id_prefix());
	struct msgrun *r = calloc(1, sizeof *r);
	if (!r)
		die("out of memory");
	r->n = n;
	r->size = size;
	r->from = from;
	r->to = to;
	r->frames = calloc((size_t)n, sizeof *r->frames);
	r->frame_len = calloc((size_t)n, sizeof *r->frame_len);
	r->ct = calloc((size_t)n, sizeof *r->ct);
	r->t_send = calloc((size_t)n, sizeof(int64_t));
	r->t_ack = calloc((size_t)n, sizeof(int64_t));
	r->t_push = calloc((size_t)n, sizeof(int64_t));
	unsigned char *plain = malloc((size_t)size), *cbuf = malloc((size_t)size + crypto_box_MACBYTES);
	if (!r->frames || !r->frame_len || !r->ct || !r->t_send || !r->t_ack || !r->t_push || !plain || !cbuf)
		die("out of memory");
	/* crypto_box between the x25519 forms of the two keys, as clients do */
	unsigned char a_sk[32], b_pk[32], shared[crypto_box_BEFORENMBYTES];
	if (crypto_sign_ed25519_sk_to_curve25519(a_sk, members[from].sk) != 0 ||
	    crypto_sign_ed25519_pk_to_curve25519(b_pk, members[to].pk) != 0 ||
	    crypto_box_beforenm(shared, b_pk, a_sk) != 0)
		die("key conversion failed");
	sodium_memzero(a_sk, sizeof a_sk);
	for (int i = 0; i < n; i++) {
		unsigned char nonce[crypto_box_NONCEBYTES];
		randombytes_buf(nonce, sizeof nonce);
		uint32_t seq = (uint32_t)i;
		memcpy(nonce, &seq, sizeof seq); /* the recipient finds the sequence number in the nonce */
		randombytes_buf(plain, (size_t)size);
		crypto_box_easy_afternm(cbuf, plain, (unsigned long long)size, nonce, shared);
		size_t clen = (size_t)size + crypto_box_MACBYTES;
		size_t b64 = sodium_base64_ENCODED_LEN(clen, sodium_base64_VARIANT_ORIGINAL);
		char nb64[sodium_base64_ENCODED_LEN(crypto_box_NONCEBYTES, sodium_base64_VARIANT_ORIGINAL)];
		r->ct[i] = malloc(b64);
		if (!r->ct[i])
			die("out of memory");
		sodium_bin2base64(r->ct[i], b64, cbuf, clen, sodium_base64_VARIANT_ORIGINAL);
		sodium_bin2base64(nb64, sizeof nb64, nonce, sizeof nonce, sodium_base64_VARIANT_ORIGINAL);
		size_t cap = b64 + 512;
		r->frames[i] = malloc(cap);
		if (!r->frames[i])
			die("out of memory");
		r->frame_len[i] = (size_t)snprintf(r->frames[i], cap,
						   "{\"type\":\"send\",\"id\":\"m%s.%d\",\"targetSpec\":\"%s\",\"priority\":"
						   "\"now\",\"nonce\":\"%s\",\"ciphertext\":\"%s\"}",
						   idp, i, members[to].pub_hex, nb64, r->ct[i]);
	}
	sodium_memzero(shared, sizeof shared);
	free(plain);
	free(cbuf);
	r->last_seq = -1;
	return r;
}

static void msgrun_free(struct msgrun *r)
{
	for (int i = 0; i < r->n; i++) {
		free(r->frames[i]);
		free(r->ct[i]);
	}
	free(r->frames);
	free(r->frame_len);
	free(r->ct);
	free(r->t_send);
	free(r->t_ack);
	free(r->t_push);
	free(r);
}

/* connect one WebSocket peer to the broker on port and wait (bounded) for its hello_ack */
static int ws_connect_wait_at(struct conn *c, int member, text_cb cb, int port)
{
	conn_start_at(c, K_WS, member, cb, NULL, port);
	int64_t deadline = now_ns() + 15000000000LL;
	while (conn_active(c) && !c->authed && now_ns() < deadline)
		pump(c, 1, 100);
	if (!c->authed) {
		note("peer %d did not connect: %s", member, c->err[0] ? c->err : "timed out");
		return -1;
	}
	return 0;
}

static int ws_connect_wait(struct conn *c, int member, text_cb cb)
{
	return ws_connect_wait_at(c, member, cb, opt.port);
}

/* npairs connected pairs: conns[2k] sends to conns[2k+1], members[c->member]
 * their keys.  n messages of size bytes per pair, at most window unpushed or
 * unacked per pair.  Records the rate over all pairs, e2e and ack latency,
 * under name; with a prefix pfx (the cross-host section: "same-host A->A"),
 * its metrics are "<pfx>: e2e p50 ms" and so on and its accounting line
 * "<name>, <pfx>". */
static long msg_pairs_as(struct conn *conns, int npairs, int n, int size, int window, const char *name,
			 const char *pfx)
{
	char m_rate[96], m_mib[96], m_p50[96], m_p99[96], m_ack[96], aname[128];
	const char *sep = pfx[0] ? ": " : "";
	snprintf(m_rate, sizeof m_rate, "%s%smsgs/s (send -> last push)", pfx, sep);
	snprintf(m_mib, sizeof m_mib, "%s%spayload MiB/s", pfx, sep);
	snprintf(m_p50, sizeof m_p50, "%s%se2e p50 ms", pfx, sep);
	snprintf(m_p99, sizeof m_p99, "%s%se2e p99 ms", pfx, sep);
	snprintf(m_ack, sizeof m_ack, "%s%sack p50 ms", pfx, sep);
	snprintf(aname, sizeof aname, "%s%s%s", name, pfx[0] ? ", " : "", pfx);
	struct msgrun *rs[npairs];
	for (int k = 0; k < npairs; k++) {
		rs[k] = msgrun_new(n, size, conns[2 * k].member, conns[2 * k + 1].member);
		conns[2 * k].arg = conns[2 * k + 1].arg = rs[k];
	}
	int64_t t0 = now_ns(), deadline = t0 + (int64_t)opt.run_timeout_s * 1000000000;
	for (;;) {
		int busy = 0, broken = 0;
		for (int k = 0; k < npairs; k++) {
			struct msgrun *r = rs[k];
			struct conn *a = &conns[2 * k];
			if (!conn_active(a) || !conn_active(&conns[2 * k + 1]) || r->refused || r->wrong) {
				broken = 1;
				continue;
			}
			/* pushed or refused: what can still arrive */
			if (r->pushed + r->refused < n || r->acked + r->refused < r->sent)
				busy = 1;
			int queued = 0;
			while (r->sent < n && r->sent - r->pushed < window && r->sent - r->acked < window) {
				int i = r->sent++;
				r->t_send[i] = now_ns();
				if (ws_queue_text(a, r->frames[i], r->frame_len[i]) != 0)
					die("cannot queue a send");
				queued = 1;
			}
			if (queued)
				conn_io(a, POLLOUT);
		}
		if (!busy || broken || now_ns() >= deadline)
			break;
		pump(conns, 2 * npairs, 100);
	}
	/* at the deadline: what is on its way still arrives (a few seconds),
	 * so that "lost" means lost, not late */
	for (int64_t grace = now_ns() + 5000000000LL; now_ns() < deadline + 5000000000LL && now_ns() < grace;) {
		int pending = 0;
		for (int k = 0; k < npairs; k++)
			pending += conn_active(&conns[2 * k + 1]) && rs[k]->pushed < rs[k]->acked;
		if (!pending)
			break;
		pump(conns, 2 * npairs, 100);
	}
	int64_t t_last = 0;
	long total = (long)n * npairs;
	double *e2e = calloc((size_t)total, sizeof *e2e), *ack = calloc((size_t)total, sizeof *ack);
	if (!e2e || !ack)
		die("out of memory");
	int ne = 0, na = 0;
	long sent = 0, acked = 0, pushed = 0, lost = 0, dup = 0;
	char why[1024] = "";
	for (int k = 0; k < npairs; k++) {
		struct msgrun *r = rs[k];
		for (int i = 0; i < n; i++) {
			if (r->t_push[i]) {
				e2e[ne++] = (double)(r->t_push[i] - r->t_send[i]) / 1e6;
				if (r->t_push[i] > t_last)
					t_last = r->t_push[i];
			}
			if (r->t_ack[i]) {
				ack[na++] = (double)(r->t_ack[i] - r->t_send[i]) / 1e6;
				lost += !r->t_push[i];
			}
		}
		sent += r->sent, acked += r->acked, pushed += r->pushed, dup += r->dup;
		if (!why[0] && (r->pushed < n || r->dup || r->wrong || r->reorder || r->refused || r->acked < r->sent)) {
			struct conn *a = &conns[2 * k], *b = &conns[2 * k + 1];
			snprintf(why, sizeof why,
				 "**problem** (pair %d): %d/%d pushed, %d/%d acked, %d refused, %d duplicate, %d wrong, "
				 "%d out of order%s%s%s%s%s%s%s",
				 k, r->pushed, n, r->acked, r->sent, r->refused, r->dup, r->wrong, r->reorder,
				 r->first_err[0] ? "; " : "", r->first_err, !conn_active(a) ? "; A: " : "",
				 !conn_active(a) ? a->err : "", !conn_active(b) ? "; B: " : "", !conn_active(b) ? b->err : "",
				 now_ns() >= deadline ? "; timed out" : "");
		}
	}
	double secs = t_last ? (double)(t_last - t0) / 1e9 : 0;
	rec(name, m_rate, 1, secs > 0 ? ne / secs : 0);
	if (!pfx[0]) /* the cross-host rows are about latency */
		rec(name, m_mib, 2, secs > 0 ? ne * (double)size / secs / (1 << 20) : 0);
	rec(name, m_p50, 2, pct(e2e, ne, 50));
	rec(name, m_p99, 2, pct_sorted(e2e, ne, 99));
	rec(name, m_ack, 2, pct(ack, na, 50));
	acct_add(aname, sent, acked, pushed, total, lost, dup);
	if (why[0]) {
		failures++;
		row_note(name, m_rate, "%.150s", why);
		note("%s: %s", aname, why);
	}
	free(e2e);
	free(ack);
	for (int k = 0; k < npairs; k++) {
		conns[2 * k].arg = conns[2 * k + 1].arg = NULL;
		msgrun_free(rs[k]);
	}
	return pushed;
}

static long msg_pairs(struct conn *conns, int npairs, int n, int size, int window, const char *name)
{
	return msg_pairs_as(conns, npairs, n, size, window, name, "");
}

/* connect npairs pairs (members 2k and 2k+1), the senders to the broker on
 * port_from, the recipients to the one on port_to; 0 when all are up */
static int pairs_connect_at(struct conn *conns, int npairs, int port_from, int port_to)
{
	for (int i = 0; i < 2 * npairs; i++)
		conns[i].fd = -1, conns[i].st = S_DONE;
	for (int k = 0; k < npairs; k++)
		if (ws_connect_wait_at(&conns[2 * k], 2 * k, on_sender_text, port_from) != 0 ||
		    ws_connect_wait_at(&conns[2 * k + 1], 2 * k + 1, on_recipient_text, port_to) != 0)
			return -1;
	/* let the recipients' first (empty) drains finish */
	int64_t settle = now_ns() + 200000000;
	while (now_ns() < settle)
		pump(conns, 2 * npairs, 50);
	return 0;
}

static int pairs_connect(struct conn *conns, int npairs)
{
	return pairs_connect_at(conns, npairs, opt.port, opt.port);
}

static void pairs_close(struct conn *conns, int npairs)
{
	for (int i = 0; i < 2 * npairs; i++)
		conn_close(&conns[i]);
	workers_wait_gone(10000);
}

/* one repetition: connect, run, close */
static void msg_bench(int npairs, int n, int size, int window, const char *name)
{
	struct conn conns[2 * npairs];
	if (pairs_connect(conns, npairs) != 0) {
		failures++;
		row_note(name, "msgs/s (send -> last push)", "**peers could not connect**");
	} else {
		msg_pairs(conns, npairs, n, size, window, name);
	}
	pairs_close(conns, npairs);
}

static void bench_messages(void)
{
	static const int sizes[] = {100, 16384};
	for (int si = 0; si < 2; si++)
		for (int mode = 0; mode < 2; mode++) {
			char name[64];
			int window = mode == 0 ? 1 : opt.window;
			if (mode == 0)
				snprintf(name, sizeof name, "direct %s x%d, one at a time",
					 sizes[si] == 100 ? "100 B" : "16 KiB", opt.msgs);
			else
				snprintf(name, sizeof name, "direct %s x%d, pipelined (window %d)",
					 sizes[si] == 100 ? "100 B" : "16 KiB", opt.msgs, window);
			for (int rep = 0; rep < opt.reps && !over_budget(name); rep++)
				msg_bench(1, opt.msgs, sizes[si], window, name);
		}
}

/* 10 pairs at once, 1 and 8 in flight per pair (the target table's rows) */
static char pairs1_name[64], pairs8_name[64];
static void bench_pairs(void)
{
	for (int rep = 0; rep < opt.reps && !over_budget(pairs1_name); rep++) {
		if (opt.pair_window != 8)
			msg_bench(opt.pairs, opt.pair_msgs, 100, 1, pairs1_name);
		if (opt.pair_window != 1)
			msg_bench(opt.pairs, opt.pair_msgs, 100, 8, pairs8_name);
	}
}

/* ---- broadcast: one sender, BCAST_RECEIVERS receivers in their own mesh ---- */

struct bcast {
	int n;
	int64_t *t_send;
	int64_t *t_ack;  /* [seq]: when the sender's ack came (BCAST_DUMP) */
	int64_t *t_push; /* [receiver * n + seq] */
	char **ct;
	int sent, acked, refused, delivered, dup, wrong;
	char first_err[200];
};

static void on_bcast_sender(struct conn *c, const char *type, cJSON *m)
{
	struct bcast *b = c->arg;
	if (strcmp(type, "ack") != 0 || !b)
		return;
	const cJSON *q = cJSON_GetObjectItemCaseSensitive(m, "queued");
	if (cJSON_IsTrue(q)) {
		/* "b<prefix>.<seq>" */
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "id");
		const char *dot = cJSON_IsString(id) ? strrchr(id->valuestring, '.') : NULL;
		int seq = dot ? atoi(dot + 1) : -1;
		if (seq >= 0 && seq < b->n && !b->t_ack[seq])
			b->t_ack[seq] = now_ns();
		b->acked++;
		return;
	}
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(m, "error");
	b->refused++;
	if (!b->first_err[0])
		snprintf(b->first_err, sizeof b->first_err, "send refused: %s", cJSON_IsString(e) ? e->valuestring : "?");
}

static struct bcast *bcast_cur;
static void on_bcast_receiver(struct conn *c, const char *type, cJSON *m)
{
	struct bcast *b = bcast_cur;
	if (strcmp(type, "push") != 0 || !b)
		return;
	int64_t t = now_ns();
	int rcv = c->member - mesh2_base - 1;
	const cJSON *ct = cJSON_GetObjectItemCaseSensitive(m, "ciphertext");
	int seq = push_seq(m, members[mesh2_base].pub_hex, (uint32_t)b->n);
	if (rcv < 0 || rcv >= BCAST_RECEIVERS || seq < 0 || !cJSON_IsString(ct) ||
	    strcmp(ct->valuestring, b->ct[seq]) != 0) {
		b->wrong++;
		return;
	}
	int64_t *slot = &b->t_push[(size_t)rcv * (size_t)b->n + (size_t)seq];
	if (*slot) {
		b->dup++;
		return;
	}
	*slot = t;
	b->delivered++;
}

static const char bcast_name[] = "broadcast to 10 receivers at 50/s";
static void bench_bcast(void)
{
	char idp[32];
	snprintf(idp, sizeof idp, "%s", send_id_prefix());
	int n = opt.bcast_msgs, nc = 1 + BCAST_RECEIVERS;
	struct conn cs[1 + BCAST_RECEIVERS];
	for (int i = 0; i < nc; i++)
		cs[i].fd = -1, cs[i].st = S_DONE;
	struct bcast b = {.n = n};
	b.t_send = calloc((size_t)n, sizeof *b.t_send);
	b.t_ack = calloc((size_t)n, sizeof *b.t_ack);
	b.t_push = calloc((size_t)n * BCAST_RECEIVERS, sizeof *b.t_push);
	b.ct = calloc((size_t)n, sizeof *b.ct);
	char **frames = calloc((size_t)n, sizeof *frames);
	size_t *flen = calloc((size_t)n, sizeof *flen);
	if (!b.t_send || !b.t_ack || !b.t_push || !b.ct || !frames || !flen)
		die("out of memory");
	for (int i = 0; i < n; i++) {
		/* reference clients put the base64 of the plaintext in ciphertext for '*' */
		unsigned char nonce[crypto_box_NONCEBYTES], plain[100];
		randombytes_buf(nonce, sizeof nonce);
		randombytes_buf(plain, sizeof plain);
		uint32_t seq = (uint32_t)i;
		memcpy(nonce, &seq, sizeof seq);
		char nb64[sodium_base64_ENCODED_LEN(sizeof nonce, sodium_base64_VARIANT_ORIGINAL)];
		size_t cl = sodium_base64_ENCODED_LEN(sizeof plain, sodium_base64_VARIANT_ORIGINAL);
		b.ct[i] = malloc(cl);
		frames[i] = malloc(cl + 256);
		if (!b.ct[i] || !frames[i])
			die("out of memory");
		sodium_bin2base64(b.ct[i], cl, plain, sizeof plain, sodium_base64_VARIANT_ORIGINAL);
		sodium_bin2base64(nb64, sizeof nb64, nonce, sizeof nonce, sodium_base64_VARIANT_ORIGINAL);
		flen[i] = (size_t)snprintf(frames[i], cl + 256,
					   "{\"type\":\"send\",\"id\":\"b%s.%d\",\"targetSpec\":\"*\",\"priority\":\"now\","
					   "\"nonce\":\"%s\",\"ciphertext\":\"%s\"}",
					   idp, i, nb64, b.ct[i]);
	}
	int ok = ws_connect_wait(&cs[0], mesh2_base, on_bcast_sender) == 0;
	for (int i = 1; ok && i < nc; i++)
		ok = ws_connect_wait(&cs[i], mesh2_base + i, on_bcast_receiver) == 0;
	if (!ok) {
		failures++;
		row_note(bcast_name, "deliveries / expected", "**peers could not connect**");
	} else {
		cs[0].arg = &b;
		bcast_cur = &b;
		int64_t settle = now_ns() + 200000000;
		while (now_ns() < settle)
			pump(cs, nc, 50);
		int64_t t0 = now_ns(), gap = 1000000000LL / opt.bcast_rate;
		int64_t deadline = t0 + (int64_t)n * gap + 15000000000LL;
		while (now_ns() < deadline) {
			int64_t now = now_ns();
			int alive = 1;
			for (int i = 0; i < nc; i++)
				alive &= conn_active(&cs[i]);
			if (!alive || b.refused || b.wrong)
				break;
			if (b.sent < n && now >= t0 + b.sent * gap) {
				int i = b.sent++;
				b.t_send[i] = now;
				if (ws_queue_text(&cs[0], frames[i], flen[i]) != 0)
					die("cannot queue a send");
				conn_io(&cs[0], POLLOUT);
			}
			if (b.sent == n && b.acked + b.refused == n && b.delivered >= n * BCAST_RECEIVERS)
				break;
			int64_t next = b.sent < n ? t0 + b.sent * gap : now + 50000000;
			int wait = next > now ? (int)((next - now) / 1000000) : 0;
			pump(cs, nc, wait > 50 ? 50 : wait);
		}
		/* stragglers: a little longer for duplicates to show */
		int64_t extra = now_ns() + 300000000;
		while (now_ns() < extra)
			pump(cs, nc, 50);
		double *last = calloc((size_t)n, sizeof *last);
		if (!last)
			die("out of memory");
		int nl = 0;
		long lost = 0;
		for (int i = 0; i < b.sent; i++) {
			int64_t tl = 0;
			int all = 1;
			for (int r = 0; r < BCAST_RECEIVERS; r++) {
				int64_t t = b.t_push[(size_t)r * (size_t)n + (size_t)i];
				if (!t)
					all = 0, lost++;
				else if (t > tl)
					tl = t;
			}
			if (all)
				last[nl++] = (double)(tl - b.t_send[i]) / 1e6;
		}
		/* BCAST_DUMP=FILE: one line per broadcast, to find where a p99 comes
		 * from (a first use, a stall of every receiver at once): its number,
		 * ms from the first send, ms from send to its ack, then each
		 * receiver's ms from send to push (-1: never) */
		const char *dump = getenv("BCAST_DUMP");
		FILE *df = dump && *dump ? fopen(dump, "w") : NULL;
		for (int i = 0; df && i < b.sent; i++) {
			fprintf(df, "%d %.3f %.2f", i, (double)(b.t_send[i] - t0) / 1e6,
				b.t_ack[i] ? (double)(b.t_ack[i] - b.t_send[i]) / 1e6 : -1.0);
			for (int r = 0; r < BCAST_RECEIVERS; r++) {
				int64_t t = b.t_push[(size_t)r * (size_t)n + (size_t)i];
				fprintf(df, " %.2f", t ? (double)(t - b.t_send[i]) / 1e6 : -1.0);
			}
			fputc('\n', df);
		}
		if (df)
			fclose(df);
		rec(bcast_name, "deliveries / expected", 4, (double)b.delivered / ((double)n * BCAST_RECEIVERS));
		rec(bcast_name, "last-delivery p50 ms", 2, pct(last, nl, 50));
		rec(bcast_name, "last-delivery p99 ms", 2, pct_sorted(last, nl, 99));
		acct_add(bcast_name, b.sent, b.acked, b.delivered, (long)n * BCAST_RECEIVERS,
			 lost, b.dup);
		if (b.delivered < n * BCAST_RECEIVERS || b.dup || b.wrong || b.refused || b.acked < n) {
			failures++;
			row_note(bcast_name, "deliveries / expected",
				 "**problem**: %d/%d sent, %d acked, %d refused, %d of %d delivered, %d duplicate, %d wrong%s%s",
				 b.sent, n, b.acked, b.refused, b.delivered, n * BCAST_RECEIVERS, b.dup, b.wrong,
				 b.first_err[0] ? "; " : "", b.first_err);
			note("%s: %d of %d delivered, %d duplicate, %d refused", bcast_name, b.delivered,
			     n * BCAST_RECEIVERS, b.dup, b.refused);
		}
		free(last);
	}
	bcast_cur = NULL;
	for (int i = 0; i < nc; i++) {
		cs[i].arg = NULL;
		conn_close(&cs[i]);
	}
	for (int i = 0; i < n; i++) {
		free(frames[i]);
		free(b.ct[i]);
	}
	free(frames);
	free(flen);
	free(b.ct);
	free(b.t_send);
	free(b.t_ack);
	free(b.t_push);
	workers_wait_gone(10000);
}

/* ------------------------------------------------------------------ */
/* 4: idle peers                                                       */

static void bench_idle(int n)
{
	char name[64];
	snprintf(name, sizeof name, "%d idle peers", n);
	struct conn *cs = calloc((size_t)n, sizeof *cs);
	if (!cs)
		die("out of memory");
	for (int i = 0; i < n; i++)
		cs[i].fd = -1, cs[i].st = S_DONE;
	int open_before = presence_open_rows();
	/* connect them opt.conc at a time */
	int started = 0, authed = 0, failed = 0;
	char first_err[200] = "";
	int64_t t0 = now_ns(), deadline = t0 + (int64_t)opt.run_timeout_s * 1000000000;
	while (now_ns() < deadline) {
		int inflight = 0;
		authed = failed = 0;
		for (int i = 0; i < started; i++) {
			if (cs[i].authed && conn_active(&cs[i]))
				authed++;
			else if (!conn_active(&cs[i])) {
				failed++;
				if (!first_err[0])
					snprintf(first_err, sizeof first_err, "%s", cs[i].err);
			} else
				inflight++;
		}
		if (started == n && inflight == 0)
			break;
		while (started < n && inflight < opt.conc) {
			conn_start(&cs[started], K_WS, 2 + started, NULL, NULL);
			started++;
			inflight++;
		}
		pump(cs, started, 50);
	}
	int64_t t1 = now_ns();
	rec(name, "connect rate /s", 1, authed / ((double)(t1 - t0) / 1e9));
	rec(name, "peers connected", 0, authed);
	int b1 = pg_backends(); /* first: scanning 500 smaps takes a while */
	struct procsum p1 = workers_scan(1);
	rec(name, "workers (processes)", 0, p1.workers);
	rec(name, "worker RSS total MiB", 1, p1.rss_kb / 1024.0);
	rec(name, "worker RSS each KiB", 0, p1.workers ? (double)p1.rss_kb / p1.workers : 0);
	rec(name, "worker PSS total MiB", 1, p1.pss_kb / 1024.0);
	rec(name, "worker USS (private) each KiB", 0, p1.workers ? (double)p1.uss_kb / p1.workers : 0);
	rec(name, "PG backends right after", 0, b1);
	/* stay idle (answering pings) past DB_IDLE_SECONDS */
	int64_t idle_end = now_ns() + ((int64_t)opt.db_idle_s * 1000 + 1500) * 1000000;
	while (now_ns() < idle_end)
		pump(cs, started, 100);
	int still = 0;
	for (int i = 0; i < started; i++)
		still += cs[i].authed && conn_active(&cs[i]);
	int b2 = pg_backends();
	char m[64];
	snprintf(m, sizeof m, "PG backends after %.1f s idle", opt.db_idle_s + 1.5);
	rec(name, m, 0, b2);
	if (authed < n || still < authed) {
		failures++;
		row_note(name, "peers connected", "**%d of %d failed, %d dropped while idle** (first: %s)", n - authed,
			 n, authed - still, first_err[0] ? first_err : "-");
		note("%s: %d of %d failed to connect, %d dropped while idle (first: %s)", name, n - authed, n,
		     authed - still, first_err[0] ? first_err : "-");
	}
	/* all of them leave at once (a mass disconnect) */
	for (int i = 0; i < started; i++)
		conn_close(&cs[i]);
	free(cs);
	rec(name, "s until workers + PG backends gone", 1, workers_wait_gone(20000));
	int open_after = presence_open_rows();
	int leaked = open_after - open_before;
	rec(name, "presence rows left open after leaving", 0, leaked);
	if (leaked > 0) {
		failures++;
		row_note(name, "presence rows left open after leaving",
			 "**%d of %d mesh.presence rows kept disconnected_at NULL after every worker exited**", leaked,
			 authed);
		note("%s: %d mesh.presence rows still open after every worker exited", name, leaked);
	}
}

/* ------------------------------------------------------------------ */
/* 5: the target table's peer rows: a burst of 1000, memory, the heap   */

/* private memory (Private_Clean + Private_Dirty of smaps_rollup) and page
 * tables (VmPTE) of one process, in KiB; 0 when it is gone */
static long proc_private_kb(int pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/smaps_rollup", pid);
	long pc = status_kb(path, "Private_Clean:"), pd = status_kb(path, "Private_Dirty:");
	snprintf(path, sizeof path, "/proc/%d/status", pid);
	long pte = status_kb(path, "VmPTE:");
	return (pc > 0 ? pc : 0) + (pd > 0 ? pd : 0) + (pte > 0 ? pte : 0);
}

/* pids whose parent is ppid (and, with comm, whose comm is that) */
static int children_of(int ppid, const char *comm, int *out, int max)
{
	int n = 0;
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < max) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		char path[300], buf[512];
		snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
		int fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		ssize_t r = read(fd, buf, sizeof buf - 1);
		close(fd);
		if (r <= 0)
			continue;
		buf[r] = 0;
		char *lp = strchr(buf, '('), *rp = strrchr(buf, ')');
		if (!lp || !rp)
			continue;
		*rp = 0;
		char state;
		int pp;
		if (sscanf(rp + 2, "%c %d", &state, &pp) != 2 || pp != ppid || state == 'Z')
			continue;
		if (comm && strcmp(lp + 1, comm) != 0)
			continue;
		out[n++] = atoi(e->d_name);
	}
	closedir(d);
	return n;
}

/* Everything the broker side holds for its peers: every worker, the
 * acceptor, PgBouncer, the postmaster and all its children (backends and
 * auxiliary processes), private memory plus page tables, KiB. */
static long broker_side_private_kb(long *workers_kb, int *nworkers)
{
	static int pids[8192];
	int n = children_of(opt.acceptor_pid, "meshbroker-work", pids, 8192);
	long w = 0, total = 0;
	for (int i = 0; i < n; i++)
		w += proc_private_kb(pids[i]);
	total = w + proc_private_kb(opt.acceptor_pid);
	if (opt.bouncer_pid > 0)
		total += proc_private_kb(opt.bouncer_pid);
	if (opt.pg_pid > 0) {
		total += proc_private_kb(opt.pg_pid);
		int m = children_of(opt.pg_pid, NULL, pids, 8192);
		for (int i = 0; i < m; i++)
			total += proc_private_kb(pids[i]);
	}
	*workers_kb = w;
	*nworkers = n;
	return total;
}

/* connect all n at once (every connect and hello in flight together);
 * returns how many got hello_ack, *secs the time until the last one */
static int burst_connect(struct conn *cs, int n, double *secs, char *first_err, size_t errlen)
{
	for (int i = 0; i < n; i++)
		conn_start(&cs[i], K_WS, 2 + i, NULL, NULL);
	int64_t t0 = now_ns(), deadline = t0 + (int64_t)opt.run_timeout_s * 1000000000, t_last = t0;
	int authed = 0;
	while (now_ns() < deadline) {
		int inflight = 0;
		authed = 0;
		for (int i = 0; i < n; i++) {
			if (cs[i].authed && conn_active(&cs[i])) {
				authed++;
				if (cs[i].t_done > t_last)
					t_last = cs[i].t_done;
			} else if (conn_active(&cs[i]))
				inflight++;
		}
		if (!inflight)
			break;
		pump(cs, n, 50);
	}
	for (int i = 0; i < n && !first_err[0]; i++)
		if (!cs[i].authed || !conn_active(&cs[i]))
			snprintf(first_err, errlen, "%s", cs[i].err[0] ? cs[i].err : "timed out");
	*secs = (double)(t_last - t0) / 1e9;
	return authed;
}

static char reconnect_name[64];
static void bench_reconnect(void)
{
	int n = opt.reconnect_n;
	struct conn *cs = calloc((size_t)n, sizeof *cs);
	if (!cs)
		die("out of memory");
	for (int wave = 0; wave < 2; wave++) {
		char first_err[200] = "";
		double secs = 0;
		int ok = burst_connect(cs, n, &secs, first_err, sizeof first_err);
		const char *w = wave == 0 ? "first connect" : "reconnect (all dropped, all back at once)";
		char m[96];
		snprintf(m, sizeof m, "%s: connected", w);
		rec(reconnect_name, m, 0, ok);
		snprintf(m, sizeof m, "%s: s until the last hello_ack", w);
		rec(reconnect_name, m, 2, secs);
		if (ok < n) {
			failures++;
			row_note(reconnect_name, m, "**%d of %d failed** (first: %s)", n - ok, n, first_err);
			note("%s, %s: %d of %d failed (first: %s)", reconnect_name, w, n - ok, n, first_err);
		}
		if (wave == 0) {
			/* idle past DB_IDLE_SECONDS: what an idle peer costs */
			int64_t idle_end = now_ns() + ((int64_t)opt.db_idle_s * 1000 + 1500) * 1000000;
			while (now_ns() < idle_end)
				pump(cs, n, 100);
			long wkb = 0;
			int nw = 0;
			long all = broker_side_private_kb(&wkb, &nw);
			int still = 0;
			for (int i = 0; i < n; i++)
				still += cs[i].authed && conn_active(&cs[i]);
			rec(reconnect_name, "idle: private KiB per peer, all processes + page tables", 0,
			    still ? (double)all / still : 0);
			rec(reconnect_name, "idle: private KiB per peer, workers alone", 0, still ? (double)wkb / still : 0);
			rec(reconnect_name, "idle: PG backends", 0, pg_backends());
			if (nw != still)
				note("%s: %d workers for %d live peers", reconnect_name, nw, still);
		}
		for (int i = 0; i < n; i++)
			conn_close(&cs[i]);
		workers_wait_gone(30000);
	}
	free(cs);
}

/* [heap] of a process: Size (the brk extent) and Rss, KiB; -1 when none */
static void heap_kb(int pid, long *size, long *rss)
{
	char path[64], line[256];
	*size = *rss = -1;
	snprintf(path, sizeof path, "/proc/%d/smaps", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	int in = 0;
	while (fgets(line, sizeof line, f)) {
		if (strchr(line, '-') && strstr(line, " [heap]")) {
			in = 1;
			continue;
		}
		if (!in)
			continue;
		if (!strncmp(line, "Size:", 5))
			*size = strtol(line + 5, NULL, 10);
		else if (!strncmp(line, "Rss:", 4))
			*rss = strtol(line + 4, NULL, 10);
		else if (isdigit((unsigned char)line[0]) || (line[0] >= 'a' && line[0] <= 'f'))
			break; /* the next mapping */
	}
	fclose(f);
}

/* pids without the spares among them; the new count */
static int drop_spares(int *pids, int n)
{
	int k = 0;
	for (int i = 0; i < n; i++)
		if (!is_spare(pids[i]))
			pids[k++] = pids[i];
	return k;
}

/* The worker of the connection that just authenticated: the one new child
 * (a spare that took it was no worker yet in before). */
static int new_worker(const int *before, int nbefore)
{
	int now[64];
	int n = drop_spares(now, children_of(opt.acceptor_pid, "meshbroker-work", now, 64));
	for (int i = 0; i < n; i++) {
		int seen = 0;
		for (int j = 0; j < nbefore; j++)
			seen |= now[i] == before[j];
		if (!seen)
			return now[i];
	}
	return -1;
}

static char heap_name[64];
static void bench_heap(void)
{
	struct conn conns[2];
	int pids[2] = {-1, -1}, before[64];
	for (int i = 0; i < 2; i++)
		conns[i].fd = -1, conns[i].st = S_DONE;
	for (int i = 0; i < 2; i++) {
		int nb = drop_spares(before, children_of(opt.acceptor_pid, "meshbroker-work", before, 64));
		if (ws_connect_wait(&conns[i], i, i == 0 ? on_sender_text : on_recipient_text) != 0)
			break;
		pids[i] = new_worker(before, nb);
	}
	if (pids[0] < 0 || pids[1] < 0) {
		failures++;
		row_note(heap_name, "sender heap growth KiB (Size)", "**peers could not connect**");
		pairs_close(conns, 1);
		return;
	}
	/* warm up: first connections, caches, the allocator's arenas */
	msg_pairs(conns, 1, 2000, 100, 8, "hot path heap: warm-up (2000 messages)");
	long s0[2], r0[2], s1[2], r1[2];
	for (int i = 0; i < 2; i++)
		heap_kb(pids[i], &s0[i], &r0[i]);
	int saved = opt.run_timeout_s;
	opt.run_timeout_s = opt.heap_timeout_s;
	if (budget_left() + 60 < opt.run_timeout_s) /* the last section: it may use a minute past the budget */
		opt.run_timeout_s = budget_left() + 60 > 30 ? (int)budget_left() + 60 : 30;
	long done = msg_pairs(conns, 1, opt.heap_msgs, 100, 8, heap_name);
	opt.run_timeout_s = saved;
	rec(heap_name, "messages delivered between the two looks", 0, (double)done);
	for (int i = 0; i < 2; i++)
		heap_kb(pids[i], &s1[i], &r1[i]);
	rec(heap_name, "sender heap growth KiB (Size)", 0, (double)(s1[0] - s0[0]));
	rec(heap_name, "sender heap growth KiB (Rss)", 0, (double)(r1[0] - r0[0]));
	rec(heap_name, "recipient heap growth KiB (Size)", 0, (double)(s1[1] - s0[1]));
	rec(heap_name, "recipient heap growth KiB (Rss)", 0, (double)(r1[1] - r0[1]));
	rec(heap_name, "heap after KiB (sender, Size)", 0, (double)s1[0]);
	pairs_close(conns, 1);
}

/* ------------------------------------------------------------------ */
/* 6: cross-host (issue 24): two hosts on one PostgreSQL, --port-b       */

/* the two runs, and the names of their same-host and cross-host metrics */
static char xh1_name[96], xh10_name[96];
#define XH_SAME "same-host A->A"
#define XH_CROSS "cross-host A->B"
#define XH_DELTA "cross - same: e2e p50 ms"
#define XH_PAIRS 10

/* one repetition of one run: npairs pairs connected afresh, the senders on
 * host A, the recipients on host A (same) or host B (cross), n messages of
 * 100 B per pair, one in flight per pair; 0 when it ran */
static int xhost_once(int npairs, int n, int cross, const char *name)
{
	struct conn conns[2 * XH_PAIRS];
	const char *pfx = cross ? XH_CROSS : XH_SAME;
	int rc = 0;
	if (pairs_connect_at(conns, npairs, opt.port, cross ? opt.port_b : opt.port) != 0) {
		char m[96];
		snprintf(m, sizeof m, "%s: msgs/s (send -> last push)", pfx);
		failures++;
		rc = -1;
		row_note(name, m, "**peers could not connect**");
	} else {
		msg_pairs_as(conns, npairs, n, 100, 1, name, pfx);
	}
	pairs_close(conns, npairs);
	return rc;
}

/* the figure of the last repetition recorded under (bench, metric) */
static int row_last(const char *bench, const char *metric, double *out)
{
	for (int i = 0; i < nrows; i++)
		if (!strcmp(rows[i].bench, bench) && !strcmp(rows[i].metric, metric) && rows[i].n > 0) {
			*out = rows[i].v[rows[i].n - 1];
			return 0;
		}
	return -1;
}

/* same-host and cross-host alternately (which goes first alternates too),
 * so that the machine's drift falls on both alike; each repetition also
 * records its own cross - same difference of the p50 */
static void bench_xhost(void)
{
	static const char *const p50s[2] = {XH_SAME ": e2e p50 ms", XH_CROSS ": e2e p50 ms"};
	for (int rep = 0; rep < opt.reps && !over_budget(xh1_name); rep++) {
		for (int run = 0; run < 2; run++) {
			const char *name = run == 0 ? xh1_name : xh10_name;
			int npairs = run == 0 ? 1 : XH_PAIRS, n = run == 0 ? opt.xhost_msgs : opt.xhost_pair_msgs;
			int ok = 1;
			for (int k = 0; k < 2; k++) {
				int cross = (k + rep) % 2;
				note("cross-host: %s, %s", name, cross ? XH_CROSS : XH_SAME);
				ok &= xhost_once(npairs, n, cross, name) == 0;
			}
			double same, cross;
			if (ok && row_last(name, p50s[0], &same) == 0 && row_last(name, p50s[1], &cross) == 0)
				rec(name, XH_DELTA, 2, cross - same);
		}
	}
}

/* the side-by-side table of the cross-host section (nothing without it) */
static int row_med(const char *bench, const char *metric, double *out);
static void print_xhost(void)
{
	const char *names[2] = {xh1_name, xh10_name};
	double v[7];
	int any = 0;
	for (int i = 0; i < 2; i++)
		any |= row_med(names[i], XH_CROSS ": e2e p50 ms", &v[0]) == 0;
	if (!any)
		return;
	printf("### Cross-host next to same-host (issue 24; medians over the repetitions, ms)\n\n");
	printf("Two hosts on one PostgreSQL: HOST_ID set, a meshbroker-relay and a PgBouncer each; senders on host A; "
	       "the recipients on host A (same-host) or host B (cross-host), alternately.\n\n");
	printf("| run | same-host p50 | same-host p99 | cross-host p50 | cross-host p99 | cross - same p50 | "
	       "msgs/s same / cross |\n");
	printf("|---|--:|--:|--:|--:|--:|--:|\n");
	static const char *const metrics[7] = {XH_SAME ": e2e p50 ms",  XH_SAME ": e2e p99 ms",
					       XH_CROSS ": e2e p50 ms", XH_CROSS ": e2e p99 ms",
					       XH_DELTA,                XH_SAME ": msgs/s (send -> last push)",
					       XH_CROSS ": msgs/s (send -> last push)"};
	for (int i = 0; i < 2; i++) {
		char cell[7][24];
		for (int k = 0; k < 7; k++) {
			if (row_med(names[i], metrics[k], &v[k]) != 0)
				snprintf(cell[k], sizeof cell[k], "—");
			else
				snprintf(cell[k], sizeof cell[k], k == 4 ? "%+.2f" : k >= 5 ? "%.0f" : "%.2f", v[k]);
		}
		printf("| %s | %s | %s | %s | %s | %s | %s / %s |\n", names[i], cell[0], cell[1], cell[2], cell[3],
		       cell[4], cell[5], cell[6]);
	}
	printf("\n");
}

/* ------------------------------------------------------------------ */
/* --save / --load: the rows of one invocation carried into the next    */

/* one field of a saved line: tabs and line ends would split it */
static void save_field(FILE *f, const char *s)
{
	fputc('\t', f);
	for (; *s; s++)
		fputc(*s == '\t' || *s == '\n' || *s == '\r' ? ' ' : *s, f);
}

static void rows_save(const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f)
		die("cannot write %s: %s", path, strerror(errno));
	fprintf(f, "F\t%d\t%d\n", failures, skipped);
	for (int i = 0; i < nrows; i++) {
		fprintf(f, "R\t%d\t%d", rows[i].prec, rows[i].n);
		save_field(f, rows[i].bench);
		save_field(f, rows[i].metric);
		save_field(f, rows[i].note);
		for (int k = 0; k < rows[i].n; k++)
			fprintf(f, "\t%.17g", rows[i].v[k]);
		fputc('\n', f);
	}
	for (int i = 0; i < nacct; i++) {
		fprintf(f, "A");
		save_field(f, accts[i].name);
		fprintf(f, "\t%ld\t%ld\t%ld\t%ld\t%ld\t%ld\n", accts[i].sent, accts[i].acked, accts[i].delivered,
			accts[i].expected, accts[i].lost, accts[i].dup);
	}
	if (fclose(f) != 0)
		die("cannot write %s: %s", path, strerror(errno));
}

/* a line's next tab-separated field (empty fields kept), or "" at its end */
static char *next_field(char **p)
{
	char *s = strsep(p, "\t\n");
	return s ? s : "";
}

static void rows_load(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		die("cannot read %s: %s", path, strerror(errno));
	char line[4096];
	int lines = 0;
	while (fgets(line, sizeof line, f) && lines++ < 4 * MAX_ROWS) {
		char *p = line, *kind = next_field(&p);
		if (!strcmp(kind, "F")) {
			failures += atoi(next_field(&p));
			skipped += atoi(next_field(&p));
		} else if (!strcmp(kind, "R")) {
			int prec = atoi(next_field(&p)), n = atoi(next_field(&p));
			char *bench = next_field(&p), *metric = next_field(&p), *nt = next_field(&p);
			struct row *r = row_get(bench, metric, prec);
			if (nt[0])
				snprintf(r->note, sizeof r->note, "%s", nt);
			for (int k = 0; k < n && k < MAX_REPS && p; k++)
				rec(bench, metric, prec, strtod(next_field(&p), NULL));
		} else if (!strcmp(kind, "A")) {
			char *name = next_field(&p);
			long v[6];
			for (int k = 0; k < 6; k++)
				v[k] = strtol(next_field(&p), NULL, 10);
			int before = failures;
			acct_add(name, v[0], v[1], v[2], v[3], v[4], v[5]);
			failures = before; /* already counted in the F line */
		}
	}
	fclose(f);
}

/* ------------------------------------------------------------------ */
/* the target table (issue 13): each row's figure, met or the gap       */

static int row_med(const char *bench, const char *metric, double *out)
{
	for (int i = 0; i < nrows; i++) {
		struct row *r = &rows[i];
		if (strcmp(r->bench, bench) || strcmp(r->metric, metric) || r->n == 0)
			continue;
		double v[MAX_REPS];
		memcpy(v, r->v, sizeof(double) * (size_t)r->n);
		qsort(v, (size_t)r->n, sizeof *v, cmp_double);
		*out = r->n % 2 ? v[r->n / 2] : (v[r->n / 2 - 1] + v[r->n / 2]) / 2;
		return 0;
	}
	return -1;
}

static int row_max(const char *bench, const char *metric, double *out)
{
	for (int i = 0; i < nrows; i++) {
		struct row *r = &rows[i];
		if (strcmp(r->bench, bench) || strcmp(r->metric, metric) || r->n == 0)
			continue;
		*out = r->v[0];
		for (int k = 1; k < r->n; k++)
			if (r->v[k] > *out)
				*out = r->v[k];
		return 0;
	}
	return -1;
}

static void target_row(const char *measure, const char *target, int have, int met, const char *figure,
		       const char *why)
{
	printf("| %s | %s | %s | %s |\n", measure, target, have ? figure : "not measured",
	       !have ? "not measured (section left out or failed)" : met ? "met" : why);
}

static void print_targets(void)
{
	char f[256], name[96];
	double a, b, c;
	int have;
	printf("| measure | target | figure | met, or the gap and what stands in the way |\n");
	printf("|---|---|---|---|\n");

	snprintf(name, sizeof name, "WS connect+hello->ack %d concurrent (n=%d)", opt.burst_conc, opt.burst_n);
	double ok = 0;
	have = row_med(name, "ok", &ok) == 0 && row_med(name, "completed/s", &a) == 0 && row_med(name, "p50 ms", &b) == 0;
	snprintf(f, sizeof f, "%.0f/%d ok, %.0f/s, p50 %.1f ms", ok, opt.burst_n, have ? a : 0, have ? b : 0);
	char why[512];
	snprintf(why, sizeof why,
		 "%s%s: every hello is a fork+exec of the worker (0.8 M instructions), libpq loaded on first use "
		 "(~0.4 M with the pqstub stand-ins, issue 23), a signature check and PostgreSQL round trips "
		 "through the bouncer; 2 cores shared with PostgreSQL and the bouncer run out first",
		 ok < opt.burst_n ? "hellos failed; " : "", have && a < 510 ? "rate short of the reference's 510/s" : "");
	/* issue 23: at least the reference broker's rate on the same machine
	 * (481-509/s measured side by side), twice that the aim */
	target_row("500 peers connect + hello, 32 in flight", "500/500 ok, ≥ 510/s (the reference's), aim 1,000/s",
		   have, have && ok >= opt.burst_n && a >= 510, f, why);

	const char *w2 = "reconnect (all dropped, all back at once)";
	char m1[96], m2[96];
	snprintf(m1, sizeof m1, "%s: connected", w2);
	snprintf(m2, sizeof m2, "%s: s until the last hello_ack", w2);
	have = row_med(reconnect_name, m1, &a) == 0 && row_med(reconnect_name, m2, &b) == 0;
	snprintf(f, sizeof f, "%.0f/%d connected in %.2f s", have ? a : 0, opt.reconnect_n, have ? b : 0);
	snprintf(why, sizeof why, "%s%s: %d fork+execs and hellos at once on 2 cores; every one is a process",
		 have && a < opt.reconnect_n ? "some refused or failed" : "",
		 have && b > 3 ? (a < opt.reconnect_n ? ", over 3 s" : "over 3 s") : "", opt.reconnect_n);
	target_row("1000 peers reconnecting at once", "all connected within 3 s, none refused", have,
		   have && a >= opt.reconnect_n && b <= 3, f, why);

	snprintf(name, sizeof name, "direct 100 B x%d, one at a time", opt.msgs);
	have = row_med(name, "e2e p50 ms", &a) == 0;
	snprintf(f, sizeof f, "p50 %.2f ms", have ? a : 0);
	target_row("direct, 1 pair × 1 in flight", "p50 ≤ 1 ms", have, have && a <= 1, f,
		   "p50 above 1 ms: the send's transaction waits for its WAL flush (synchronous_commit on) before "
		   "the ack, then the recipient's worker claims the row; each statement is one more hop through the "
		   "bouncer");

	have = row_med(pairs1_name, "msgs/s (send -> last push)", &a) == 0 && row_med(pairs1_name, "e2e p50 ms", &b) == 0 &&
	       row_med(pairs1_name, "e2e p99 ms", &c) == 0;
	snprintf(f, sizeof f, "%.0f msg/s, p50 %.2f ms, p99 %.2f ms", have ? a : 0, have ? b : 0, have ? c : 0);
	target_row("direct, 10 pairs × 1 in flight", "≥ 2,500 msg/s, p50 ≤ 3 ms, p99 ≤ 10 ms", have,
		   have && a >= 2500 && b <= 3 && c <= 10, f,
		   "short: two statements per message (the send, whose ack waits for its WAL flush, and the "
		   "recipient's claim, which carries the marks) on 2 cores shared by 20 workers, PostgreSQL and the "
		   "bouncer; the send's audit chain step is about a third of its time (docs/design.md)");

	have = row_med(pairs8_name, "msgs/s (send -> last push)", &a) == 0;
	snprintf(f, sizeof f, "%.0f msg/s", have ? a : 0);
	target_row("direct, 10 pairs × 8 in flight", "≥ 5,000 msg/s", have, have && a >= 5000, f,
		   "short: one connection's waiting sends share a transaction (group commit), but behind "
		   "PgBouncer 1.18 a worker has one query in flight (DB_PIPELINE_DEPTH=1) and every recipient "
		   "still claims and marks on its own; 2 cores");

	have = row_med(bcast_name, "deliveries / expected", &a) == 0 && row_max(bcast_name, "last-delivery p99 ms", &b) == 0;
	snprintf(f, sizeof f, "%.2f%% delivered, last-delivery p99 %.2f ms", have ? a * 100 : 0, have ? b : 0);
	snprintf(why, sizeof why, "%s%s", have && a < 1 ? "deliveries missing; " : "",
		 "p99 above 10 ms: each receiver's worker claims and marks its delivery row in transactions "
		 "of its own, ten at once per message, through a pool of 20 sessions on 2 cores");
	target_row("broadcast to 10 receivers at 50/s", "every delivery, last-delivery p99 ≤ 10 ms", have,
		   have && a >= 1 && b <= 10, f, why);

	have = row_med(reconnect_name, "idle: private KiB per peer, all processes + page tables", &a) == 0 &&
	       row_med(reconnect_name, "idle: private KiB per peer, workers alone", &b) == 0;
	snprintf(f, sizeof f, "%.0f KiB per peer (workers alone %.0f KiB)", have ? a : 0, have ? b : 0);
	target_row("private memory per idle peer (all broker processes + database side, with page tables)",
		   "≤ 400 KiB (256 KiB the aim)", have, have && a <= 400, f,
		   "over 400 KiB: a whole process per peer (its stack, the private pages of its shared "
		   "libraries, page tables); is DATABASE_URL a Unix socket (the OpenSSL stand-ins, "
		   "docs/design.md \"Cost of a worker\")?");

	have = row_max(heap_name, "sender heap growth KiB (Size)", &a) == 0 &&
	       row_max(heap_name, "recipient heap growth KiB (Size)", &b) == 0 &&
	       row_med(heap_name, "messages delivered between the two looks", &c) == 0;
	snprintf(f, sizeof f, "growth over %.0f messages: sender %.0f KiB, recipient %.0f KiB", have ? c : 0,
		 have ? a : 0, have ? b : 0);
	target_row("hot path heap", "no growth over 100k messages", have, have && a <= 0 && b <= 0, f,
		   have && a <= 132 && b <= 132
			   ? "grew by at most one glibc heap step (the top pad is 128 KiB): not a per-message "
			     "growth (2 bytes a message would be 195 KiB), but not shown to be zero either"
			   : "the heap grew: a leak or a per-message cache on the hot path");

	/* issue 24: both runs of the cross-host section, medians over the repetitions
	 * (the difference is the median of each repetition's own cross - same,
	 * which the machine's drift between repetitions does not move) */
	double s1, c1, p1, d1, s10, c10, p10, d10;
	have = row_med(xh1_name, XH_SAME ": e2e p50 ms", &s1) == 0 && row_med(xh1_name, XH_CROSS ": e2e p50 ms", &c1) == 0 &&
	       row_med(xh1_name, XH_CROSS ": e2e p99 ms", &p1) == 0 && row_med(xh1_name, XH_DELTA, &d1) == 0 &&
	       row_med(xh10_name, XH_SAME ": e2e p50 ms", &s10) == 0 &&
	       row_med(xh10_name, XH_CROSS ": e2e p50 ms", &c10) == 0 &&
	       row_med(xh10_name, XH_CROSS ": e2e p99 ms", &p10) == 0 && row_med(xh10_name, XH_DELTA, &d10) == 0;
	if (!have)
		s1 = c1 = p1 = d1 = s10 = c10 = p10 = d10 = 0;
	snprintf(f, sizeof f,
		 "1 pair: p50 %.2f ms (same-host %.2f; cross - same %+.2f), p99 %.2f ms; %d pairs x 1: p50 %.2f ms "
		 "(same-host %.2f; %+.2f), p99 %.2f ms",
		 c1, s1, d1, p1, XH_PAIRS, c10, s10, d10, p10);
	int met1 = d1 <= 1 && p1 <= 20, met10 = d10 <= 1 && p10 <= 20;
	snprintf(why, sizeof why,
		 "%s%s%s: a cross-host message also waits for the sender's relay (mesh.host_ring: one NOTIFY "
		 "per host after the send committed, at most one statement in flight on its one session, "
		 "behind its 1 s sweep and 2 s lease renewal) and the recipient's relay ringing the worker",
		 !met1 ? "the one pair" : "", !met1 && !met10 ? " and " : "", !met10 ? "the 10 pairs" : "");
	target_row("cross-host direct (sender on host A, recipient on host B)",
		   "p50 within 1 ms of same-host, p99 ≤ 20 ms (one pair and 10 pairs × 1)", have,
		   have && met1 && met10, f, why);
	fflush(stdout);
}

/* row names that depend on the options, set before any section runs (a
 * --load'ed run's target rows are found under the same names) */
static void names_init(void)
{
	snprintf(pairs1_name, sizeof pairs1_name, "direct 100 B, %d pairs x 1 in flight (n=%d each)", opt.pairs,
		 opt.pair_msgs);
	snprintf(pairs8_name, sizeof pairs8_name, "direct 100 B, %d pairs x 8 in flight (n=%d each)", opt.pairs,
		 opt.pair_msgs);
	snprintf(reconnect_name, sizeof reconnect_name, "%d peers connecting at once", opt.reconnect_n);
	snprintf(heap_name, sizeof heap_name, "hot path heap, 1 pair x 8 in flight, %d messages", opt.heap_msgs);
	snprintf(xh1_name, sizeof xh1_name, "two hosts: 1 pair x 1 in flight (n=%d)", opt.xhost_msgs);
	snprintf(xh10_name, sizeof xh10_name, "two hosts: %d pairs x 1 in flight (n=%d each)", XH_PAIRS,
		 opt.xhost_pair_msgs);
}

/* ------------------------------------------------------------------ */


static void usage(void)
{
	fprintf(stderr,
		"usage: meshbench --port P --db DATABASE_URL --acceptor PID [--reps N] [--quick]\n"
		"                 [--db-idle S] [--msgs N] [--window W] [--idle N[,N...]] [--only LIST]\n"
		"                 [--worker PATH (adds the spawn+exec baseline)] [--conc N (default 8)]\n"
		"                 [--bouncer-pid PID] [--pg-pid PID (the postmaster)] [--heap-msgs N]\n"
		"                 [--reconnect N] [--pair-msgs N] [--pair-window 1|8 (default both)]\n"
		"                 [--bcast-msgs N] [--budget S (default 480)]\n"
		"                 [--port-b P --acceptor-b PID (host B: adds the cross-host section)]\n"
		"                 [--xhost-msgs N] [--xhost-pair-msgs N] [--save FILE] [--load FILE]\n"
		"  LIST: comma-separated of health,hello,burst,msg,pairs,bcast,idle,reconnect,heap,xhost (default: all)\n"
		"  --save writes this run's rows, --load puts a saved run's rows before this one's (one table)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *only = "health,hello,burst,msg,pairs,bcast,idle,reconnect,heap,xhost";
	static const struct option lo[] = {
		{"port", 1, 0, 'p'},  {"db", 1, 0, 'd'},     {"acceptor", 1, 0, 'a'}, {"reps", 1, 0, 'r'},
		{"quick", 0, 0, 'q'}, {"db-idle", 1, 0, 'i'}, {"msgs", 1, 0, 'm'},     {"window", 1, 0, 'w'},
		{"idle", 1, 0, 'n'},  {"only", 1, 0, 'o'},    {"worker", 1, 0, 'W'},   {"conc", 1, 0, 'c'},
		{"bouncer-pid", 1, 0, 'B'}, {"pg-pid", 1, 0, 'P'}, {"heap-msgs", 1, 0, 'H'}, {"reconnect", 1, 0, 'R'},
		{"pair-msgs", 1, 0, 'M'}, {"bcast-msgs", 1, 0, 'C'}, {"budget", 1, 0, 'G'},
		{"port-b", 1, 0, 'b'}, {"acceptor-b", 1, 0, 'A'}, {"xhost-msgs", 1, 0, 'x'},
		{"xhost-pair-msgs", 1, 0, 'X'}, {"save", 1, 0, 's'}, {"load", 1, 0, 'l'},
		{"pair-window", 1, 0, 'V'},
		{0, 0, 0, 0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'p': opt.port = atoi(optarg); break;
		case 'd': opt.db_url = optarg; break;
		case 'a': opt.acceptor_pid = atoi(optarg); break;
		case 'r': opt.reps = atoi(optarg); break;
		case 'q':
			opt.health_seq = 50, opt.health_conc_n = 100, opt.hello_seq = 30, opt.hello_conc_n = 60;
			opt.msgs = 200, opt.idle_n[0] = 20, opt.idle_n[1] = 60, opt.base_n = 30;
			opt.burst_n = 100, opt.pair_msgs = 100, opt.bcast_msgs = 50, opt.reconnect_n = 100;
			opt.heap_msgs = 5000, opt.xhost_msgs = 100, opt.xhost_pair_msgs = 50;
			break;
		case 'b': opt.port_b = atoi(optarg); break;
		case 'A': opt.acceptor_b_pid = atoi(optarg); break;
		case 'x': opt.xhost_msgs = atoi(optarg); break;
		case 'X': opt.xhost_pair_msgs = atoi(optarg); break;
		case 's': opt.save = optarg; break;
		case 'l': opt.load = optarg; break;
		case 'B': opt.bouncer_pid = atoi(optarg); break;
		case 'P': opt.pg_pid = atoi(optarg); break;
		case 'H': opt.heap_msgs = atoi(optarg); break;
		case 'R': opt.reconnect_n = atoi(optarg); break;
		case 'M': opt.pair_msgs = atoi(optarg); break;
		case 'V': opt.pair_window = atoi(optarg); break;
		case 'C': opt.bcast_msgs = atoi(optarg); break;
		case 'G': opt.budget_s = atoi(optarg); break;
		case 'i': opt.db_idle_s = atoi(optarg); break;
		case 'm': opt.msgs = atoi(optarg); break;
		case 'w': opt.window = atoi(optarg); break;
		case 'n': {
			opt.n_idle_n = 0;
			for (char *s = strtok(optarg, ","); s && opt.n_idle_n < 4; s = strtok(NULL, ","))
				opt.idle_n[opt.n_idle_n++] = atoi(s);
			break;
		}
		case 'o': only = optarg; break;
		case 'W': opt.worker = optarg; break;
		case 'c': opt.conc = atoi(optarg); break;
		default: usage();
		}
	}
	if (opt.port <= 0 || !opt.db_url || opt.acceptor_pid <= 0 || opt.reps < 1 || opt.reps > MAX_REPS ||
	    opt.msgs < 1 || opt.window < 1 || opt.conc < 1 || opt.conc > 1000 || opt.pairs < 1 || opt.pairs > 32 ||
	    opt.pair_msgs < 1 || opt.bcast_msgs < 1 || opt.bcast_rate < 1 || opt.reconnect_n < 1 ||
	    (opt.pair_window != 0 && opt.pair_window != 1 && opt.pair_window != 8) ||
	    opt.reconnect_n > 8000 || opt.heap_msgs < 1 || opt.burst_n < 1 || opt.burst_conc < 1 ||
	    opt.xhost_msgs < 1 || opt.xhost_msgs > 100000 || opt.xhost_pair_msgs < 1 || opt.xhost_pair_msgs > 100000 ||
	    opt.port_b < 0 || (opt.port_b > 0 && opt.port_b == opt.port))
		usage();
	t_start = now_ns();
	names_init();
	if (opt.load)
		rows_load(opt.load);
	if (sodium_init() < 0)
		die("libsodium failed to initialise");
	int max_idle = strstr(only, "reconnect") ? opt.reconnect_n : 0;
	for (int i = 0; i < opt.n_idle_n; i++)
		if (opt.idle_n[i] > max_idle)
			max_idle = opt.idle_n[i];
	if (strstr(only, "burst") && opt.burst_n > max_idle)
		max_idle = opt.burst_n;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)max_idle + 64) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_cur < (rlim_t)max_idle + 64)
			die("RLIMIT_NOFILE %lu is too low for %d peers", (unsigned long)rl.rlim_cur, max_idle);
	}

	/* members 0..2*pairs-1 talk in pairs, 2.. are the idle peers and the hello pool */
	int need = 2 + (max_idle > 64 ? max_idle : 64);
	setup_members(need);
	note("mesh %s with %d members", mesh_id, need);
	workers_wait_gone(5000);

	char name[64];
	/* the target table's sections first: under the time budget the others may be left out */
	if (strstr(only, "burst") && !over_budget("burst")) {
		note("hello burst: %d peers, %d in flight", opt.burst_n, opt.burst_conc);
		snprintf(name, sizeof name, "WS connect+hello->ack %d concurrent (n=%d)", opt.burst_conc, opt.burst_n);
		bench_connections(K_WS, name, opt.burst_n, opt.burst_conc, 2, need - 2);
		workers_wait_gone(20000);
	}
	if (strstr(only, "msg") && !over_budget("msg")) {
		note("direct messages, one pair");
		bench_messages();
	}
	if (strstr(only, "pairs") && !over_budget("pairs")) {
		note("direct messages, %d pairs at once", opt.pairs);
		db_settle();
		bench_pairs();
	}
	if (strstr(only, "bcast") && !over_budget("bcast")) {
		note("broadcast to %d receivers at %d/s", BCAST_RECEIVERS, opt.bcast_rate);
		db_settle();
		bench_bcast();
	}
	if (strstr(only, "reconnect") && !over_budget("reconnect")) {
		note("%d peers connecting at once, twice", opt.reconnect_n);
		bench_reconnect();
	}
	if (strstr(only, "heap") && !over_budget("heap")) {
		note("hot path heap over %d messages", opt.heap_msgs);
		bench_heap();
	}
	if (strstr(only, "health") && !over_budget("health")) {
		note("/health");
		for (int rep = 0; rep < opt.reps; rep++) {
			if (opt.worker)
				bench_exec();
			bench_pgconnect();
			snprintf(name, sizeof name, "GET /health sequential (n=%d)", opt.health_seq);
			bench_connections(K_HTTP, name, opt.health_seq, 1, 0, 1);
			workers_wait_gone(10000);
			snprintf(name, sizeof name, "GET /health %d concurrent (n=%d)", opt.conc, opt.health_conc_n);
			bench_connections(K_HTTP, name, opt.health_conc_n, opt.conc, 0, 1);
			workers_wait_gone(10000);
		}
	}
	if (strstr(only, "hello") && !over_budget("hello")) {
		note("WebSocket connect + hello");
		int span = need - 2;
		for (int rep = 0; rep < opt.reps; rep++) {
			snprintf(name, sizeof name, "WS connect+hello->ack sequential (n=%d)", opt.hello_seq);
			bench_connections(K_WS, name, opt.hello_seq, 1, 2, span);
			workers_wait_gone(10000);
			snprintf(name, sizeof name, "WS connect+hello->ack %d concurrent (n=%d)", opt.conc,
				 opt.hello_conc_n);
			bench_connections(K_WS, name, opt.hello_conc_n, opt.conc, 2, span);
			workers_wait_gone(10000);
		}
	}
	if (strstr(only, "idle") && !over_budget("idle")) {
		note("idle peers");
		for (int k = 0; k < opt.n_idle_n; k++) /* once each: the reconnect rows repeat it at 1000 */
			bench_idle(opt.idle_n[k]);
	}
	if (strstr(only, "xhost") && !opt.port_b)
		note("cross-host: left out here (no --port-b; bench/run.sh runs it with its two hosts afterwards)");
	else if (strstr(only, "xhost") && !over_budget("xhost")) {
		note("cross-host: host A on port %d, host B on port %d", opt.port, opt.port_b);
		bench_xhost();
	}
	note("done");
	if (opt.save)
		rows_save(opt.save);
	if (skipped)
		printf("**%d sections or repetitions were left out: the time budget (--budget %d s) was spent.**\n\n",
		       skipped, opt.budget_s);
	printf("### Targets\n\n");
	print_targets();
	printf("\n");
	print_xhost();
	printf("### Every figure (median, min, max over the repetitions)\n\n");
	print_table();
	printf("\n### Message accounting (every message run)\n\n");
	print_accounting();
	PQfinish(pg);
	return failures ? 1 : 0;
}
