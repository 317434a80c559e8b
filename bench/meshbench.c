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
	int pairs;            /* sender -> recipient pairs at once in the message rows */
	int windows[4], n_windows; /* sends in flight per pair; 0 = {1, window} */
	int sizes[4], n_sizes;     /* plaintext bytes */
	int idle_n[4], n_idle_n;
	int db_idle_s;
	int run_timeout_s; /* bound of every single run */
	const char *worker; /* for the fork+exec baseline */
	int base_n;
} opt = {
	.base_n = 100,
	.reps = 3,
	.health_seq = 200,
	.health_conc_n = 400,
	.conc = 8,
	.hello_seq = 100,
	.hello_conc_n = 200,
	.msgs = 1000,
	.window = 64,
	.pairs = 1,
	.sizes = {100, 16384},
	.n_sizes = 2,
	.idle_n = {100, 500},
	.n_idle_n = 2,
	.db_idle_s = 2,
	.run_timeout_s = 60,
};

static int failures; /* measurements with an error: exit status 1 */

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

#define MAX_ROWS 96
#define MAX_REPS 9
static struct row {
	char bench[64], metric[48];
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
	char id[ID_LEN + 1];
	char pub_hex[65];
	unsigned char pk[32], sk[64];
	int64_t last_ts; /* hello timestamps strictly increase per member (replay cache) */
};
static struct member *members;
static int nmembers;
static char mesh_id[ID_LEN + 1];
static PGconn *pg;

static void pg_exec(const char *sql, int n, const char *const *p)
{
	PGresult *r = PQexecParams(pg, sql, n, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
		die("SQL failed: %s: %s", sql, PQerrorMessage(pg));
	PQclear(r);
}

static void setup_members(int n)
{
	pg = PQconnectdb(opt.db_url);
	if (PQstatus(pg) != CONNECTION_OK)
		die("cannot connect to PostgreSQL: %s", PQerrorMessage(pg));
	members = calloc((size_t)n, sizeof *members);
	if (!members)
		die("out of memory");
	nmembers = n;
	id_new(mesh_id);
	char slug[64], owner[65];
	snprintf(slug, sizeof slug, "bench-%s", mesh_id);
	pg_exec("BEGIN", 0, NULL);
	for (int i = 0; i < n; i++) {
		struct member *m = &members[i];
		crypto_sign_keypair(m->pk, m->sk);
		hex_encode(m->pk, 32, m->pub_hex);
		id_new(m->id);
		if (i == 0) {
			memcpy(owner, m->pub_hex, sizeof owner);
			const char *p[] = {mesh_id, "meshbench", slug, owner};
			pg_exec("INSERT INTO mesh.mesh (id, name, slug, owner_pubkey) VALUES ($1, $2, $3, $4)", 4, p);
		}
		char name[32];
		snprintf(name, sizeof name, "bench-%d", i);
		const char *p[] = {m->id, mesh_id, m->pub_hex, name};
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
		if (sscanf(rp + 2, "%c %d", &state, &ppid) != 2 || ppid != opt.acceptor_pid)
			continue;
		if (strcmp(comm, "meshbroker-work") != 0 || state == 'Z')
			continue;
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

/* CPU time (ns, /proc/PID/schedstat) of the children of ppid with the given
 * comm, plus ppid itself when self */
static int64_t cpu_ns_children(int ppid, const char *comm, int self)
{
	int64_t sum = 0;
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
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
		char state;
		int pp;
		if (sscanf(rp + 2, "%c %d", &state, &pp) != 2)
			continue;
		if (!((pp == ppid && strcmp(lp + 1, comm) == 0) || (self && atoi(e->d_name) == ppid)))
			continue;
		snprintf(path, sizeof path, "/proc/%s/schedstat", e->d_name);
		FILE *f = fopen(path, "r");
		long long ns = 0;
		if (f) {
			if (fscanf(f, "%lld", &ns) == 1)
				sum += ns;
			fclose(f);
		}
	}
	closedir(d);
	return sum;
}

/* the postmaster of our PostgreSQL: the parent of our own backend */
static int pg_postmaster(void)
{
	static int pm;
	if (pm)
		return pm;
	PGresult *r = PQexec(pg, "SELECT pg_backend_pid()");
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
		char path[64], buf[512];
		snprintf(path, sizeof path, "/proc/%s/stat", PQgetvalue(r, 0, 0));
		int fd = open(path, O_RDONLY);
		ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
		if (fd >= 0)
			close(fd);
		char *rp = n > 0 ? (buf[n] = 0, strrchr(buf, ')')) : NULL;
		char state;
		if (rp && sscanf(rp + 2, "%c %d", &state, &pm) != 2)
			pm = 0;
	}
	PQclear(r);
	return pm;
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
	end = now_ns() + 15000000000LL;
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
	int authed;
	int64_t t0, t_done; /* start, response / hello_ack */
	text_cb on_text;
	void *arg;
	char err[200];
};

static int connect_local(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
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

static void conn_start(struct conn *c, enum kind kind, int member, text_cb cb, void *arg)
{
	memset(c, 0, sizeof *c);
	c->kind = kind;
	c->member = member;
	c->on_text = cb;
	c->arg = arg;
	c->t0 = now_ns();
	if (kind == K_HTTP) {
		c->req_len = (size_t)snprintf(c->req, sizeof c->req,
					      "GET /health HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: meshbench\r\n"
					      "Connection: close\r\n\r\n",
					      opt.port);
	} else {
		unsigned char nonce[16];
		char key[25];
		randombytes_buf(nonce, sizeof nonce);
		sodium_bin2base64(key, sizeof key, nonce, sizeof nonce, sodium_base64_VARIANT_ORIGINAL);
		c->req_len = (size_t)snprintf(c->req, sizeof c->req,
					      "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
					      "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
					      "Sec-WebSocket-Version: 13\r\nUser-Agent: meshbench\r\n\r\n",
					      opt.port, key);
	}
	c->fd = connect_local();
	if (c->fd < 0) {
		c->fd = -1;
		conn_fail(c, "connect: %s", strerror(errno));
		return;
	}
	c->st = S_CONNECTING;
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
	if (hello_sign(sig, m->sk, mesh_id, m->id, m->pub_hex, ts) != 0) {
		conn_fail(c, "hello_sign failed");
		return;
	}
	snprintf(sess, sizeof sess, "%d-%" PRId64 "-%d", (int)getpid(), ts, c->member);
	int n = snprintf(buf, sizeof buf,
			 "{\"type\":\"hello\",\"meshId\":\"%s\",\"memberId\":\"%s\",\"pubkey\":\"%s\","
			 "\"sessionId\":\"%s\",\"pid\":%d,\"cwd\":\"/tmp/meshbench\",\"timestamp\":%" PRId64
			 ",\"signature\":\"%s\",\"peerType\":\"connector\"}",
			 mesh_id, m->id, m->pub_hex, sess, (int)getpid(), ts, sig);
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
/* 3: direct messages A -> B, over one pair or --pairs pairs at once     */

/* one sender -> recipient pair: members 2p (A) and 2p+1 (B) */
struct msgrun {
	int n, size;
	int a, b;      /* member indices */
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
	int seq = cJSON_IsString(id) && id->valuestring[0] == 'm' ? atoi(id->valuestring + 1) : -1;
	if (seq < 0 || seq >= r->n)
		return;
	if (!cJSON_IsTrue(q)) {
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(m, "error");
		r->refused++;
		if (!r->first_err[0])
			snprintf(r->first_err, sizeof r->first_err, "send refused: %s",
				 cJSON_IsString(e) ? e->valuestring : "?");
	}
	if (!r->t_ack[seq]) {
		r->t_ack[seq] = now_ns();
		r->acked++;
	}
}

static void on_recipient_text(struct conn *c, const char *type, cJSON *m)
{
	struct msgrun *r = c->arg;
	if (strcmp(type, "push") != 0 || !r)
		return;
	int64_t t = now_ns();
	const cJSON *nonce = cJSON_GetObjectItemCaseSensitive(m, "nonce");
	const cJSON *ct = cJSON_GetObjectItemCaseSensitive(m, "ciphertext");
	const cJSON *sender = cJSON_GetObjectItemCaseSensitive(m, "senderPubkey");
	unsigned char nb[crypto_box_NONCEBYTES];
	size_t nlen = 0;
	if (!cJSON_IsString(nonce) || !cJSON_IsString(ct) || !cJSON_IsString(sender) ||
	    sodium_base642bin(nb, sizeof nb, nonce->valuestring, strlen(nonce->valuestring), NULL, &nlen, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    nlen != sizeof nb) {
		r->wrong++;
		return;
	}
	uint32_t seq;
	memcpy(&seq, nb, sizeof seq);
	if (seq >= (uint32_t)r->n || strcmp(sender->valuestring, members[r->a].pub_hex) != 0 ||
	    strcmp(ct->valuestring, r->ct[seq]) != 0) {
		r->wrong++;
		return;
	}
	if (r->t_push[seq]) {
		r->dup++;
		return;
	}
	if ((int)seq < r->last_seq)
		r->reorder++;
	r->last_seq = (int)seq;
	r->t_push[seq] = t;
	r->pushed++;
}

static struct msgrun *msgrun_new(int n, int size, int a, int b)
{
	struct msgrun *r = calloc(1, sizeof *r);
	if (!r)
		die("out of memory");
	r->n = n;
	r->size = size;
	r->a = a;
	r->b = b;
	r->frames = calloc((size_t)n, sizeof *r->frames);
	r->frame_len = calloc((size_t)n, sizeof *r->frame_len);
	r->ct = calloc((size_t)n, sizeof *r->ct);
	r->t_send = calloc((size_t)n, sizeof(int64_t));
	r->t_ack = calloc((size_t)n, sizeof(int64_t));
	r->t_push = calloc((size_t)n, sizeof(int64_t));
	unsigned char *plain = malloc((size_t)size), *cbuf = malloc((size_t)size + crypto_box_MACBYTES);
	if (!r->frames || !r->frame_len || !r->ct || !r->t_send || !r->t_ack || !r->t_push || !plain || !cbuf)
		die("out of memory");
	/* crypto_box between the x25519 forms of A's and B's keys, as clients do */
	unsigned char a_sk[32], b_pk[32], shared[crypto_box_BEFORENMBYTES];
	if (crypto_sign_ed25519_sk_to_curve25519(a_sk, members[a].sk) != 0 ||
	    crypto_sign_ed25519_pk_to_curve25519(b_pk, members[b].pk) != 0 ||
	    crypto_box_beforenm(shared, b_pk, a_sk) != 0)
		die("key conversion failed");
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
						   "{\"type\":\"send\",\"id\":\"m%d\",\"targetSpec\":\"%s\",\"priority\":"
						   "\"now\",\"nonce\":\"%s\",\"ciphertext\":\"%s\"}",
						   i, members[b].pub_hex, nb64, r->ct[i]);
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

/* np pairs: peers[2p] = A (sender), peers[2p+1] = B (recipient), each pair
 * with window sends in flight (1 = one at a time); throughput counts every
 * pair's pushes from the common start to the last push of any pair */
static void msg_run(struct conn *peers, int np, int size, int window, const char *name)
{
	int n = opt.msgs;
	struct msgrun **rs = calloc((size_t)np, sizeof *rs);
	if (!rs)
		die("out of memory");
	for (int p = 0; p < np; p++) {
		rs[p] = msgrun_new(n, size, 2 * p, 2 * p + 1);
		peers[2 * p].arg = rs[p];
		peers[2 * p + 1].arg = rs[p];
	}
	int pm = pg_postmaster();
	int64_t pg0 = pm ? cpu_ns_children(pm, "postgres", 1) : 0, wk0 = cpu_ns_children(opt.acceptor_pid,
												"meshbroker-work", 0);
	int64_t t0 = now_ns(), deadline = t0 + (int64_t)opt.run_timeout_s * 1000000000;
	for (;;) {
		int busy = 0, broken = 0;
		for (int p = 0; p < np; p++) {
			struct msgrun *r = rs[p];
			if (!conn_active(&peers[2 * p]) || !conn_active(&peers[2 * p + 1]) || r->refused || r->wrong)
				broken = 1;
			if (r->pushed < n || r->acked < r->sent)
				busy = 1;
		}
		if (!busy || broken || now_ns() >= deadline)
			break;
		for (int p = 0; p < np; p++) {
			struct msgrun *r = rs[p];
			/* in flight = sent, not yet pushed at B (or not yet acked at A) */
			while (r->sent < n && r->sent - r->pushed < window && r->sent - r->acked < window) {
				int i = r->sent++;
				r->t_send[i] = now_ns();
				if (ws_queue_text(&peers[2 * p], r->frames[i], r->frame_len[i]) != 0)
					die("cannot queue a send");
				conn_io(&peers[2 * p], POLLOUT);
			}
		}
		pump(peers, 2 * np, 100);
	}
	/* while every connection is still open: CPU of PostgreSQL (postmaster
	 * and its children, the bench's own backend included) and of the
	 * workers during the run, per message pushed */
	int64_t pg1 = pm ? cpu_ns_children(pm, "postgres", 1) : 0, wk1 = cpu_ns_children(opt.acceptor_pid,
												"meshbroker-work", 0);
	int64_t t_last = 0;
	double *e2e = calloc((size_t)n * (size_t)np, sizeof *e2e), *ack = calloc((size_t)n * (size_t)np, sizeof *ack);
	int ne = 0, na = 0;
	for (int p = 0; p < np; p++)
		for (int i = 0; i < n; i++) {
			struct msgrun *r = rs[p];
			if (r->t_push[i]) {
				e2e[ne++] = (double)(r->t_push[i] - r->t_send[i]) / 1e6;
				if (r->t_push[i] > t_last)
					t_last = r->t_push[i];
			}
			if (r->t_ack[i])
				ack[na++] = (double)(r->t_ack[i] - r->t_send[i]) / 1e6;
		}
	double secs = t_last ? (double)(t_last - t0) / 1e9 : 0;
	rec(name, "msgs/s (send -> last push)", 1, secs > 0 ? ne / secs : 0);
	rec(name, "payload MiB/s", 2, secs > 0 ? ne * (double)size / secs / (1 << 20) : 0);
	rec(name, "e2e p50 ms", 2, pct(e2e, ne, 50));
	rec(name, "e2e p99 ms", 2, pct_sorted(e2e, ne, 99));
	rec(name, "ack p50 ms", 2, pct(ack, na, 50));
	if (ne > 0) {
		rec(name, "PostgreSQL CPU us/msg", 0, (double)(pg1 - pg0) / 1e3 / ne);
		rec(name, "worker CPU us/msg", 0, (double)(wk1 - wk0) / 1e3 / ne);
	}
	for (int p = 0; p < np; p++) {
		struct msgrun *r = rs[p];
		struct conn *a = &peers[2 * p], *b = &peers[2 * p + 1];
		if (r->pushed < n || r->dup || r->wrong || r->reorder || r->refused || r->acked < r->sent) {
			failures++;
			char why[1024];
			snprintf(why, sizeof why,
				 "**problem**%s: %d/%d pushed, %d/%d acked, %d refused, %d duplicate, %d wrong, %d out of "
				 "order%s%s%s%s",
				 np > 1 ? " (a pair)" : "", r->pushed, n, r->acked, r->sent, r->refused, r->dup, r->wrong,
				 r->reorder, r->first_err[0] ? "; " : "", r->first_err, !conn_active(a) ? "; A: " : "",
				 !conn_active(a) ? a->err : "");
			if (!conn_active(b))
				snprintf(why + strlen(why), sizeof why - strlen(why), "; B: %s", b->err);
			if (now_ns() >= deadline)
				snprintf(why + strlen(why), sizeof why - strlen(why), "; timed out after %d s",
					 opt.run_timeout_s);
			row_note(name, "msgs/s (send -> last push)", "%.150s", why);
			note("%s: %s", name, why);
			break;
		}
	}
	free(e2e);
	free(ack);
	for (int p = 0; p < np; p++) {
		peers[2 * p].arg = peers[2 * p + 1].arg = NULL;
		msgrun_free(rs[p]);
	}
	free(rs);
}

/* connect one WebSocket peer and wait (bounded) for its hello_ack */
static int ws_connect_wait(struct conn *c, int member, text_cb cb)
{
	conn_start(c, K_WS, member, cb, NULL);
	int64_t deadline = now_ns() + 15000000000LL;
	while (conn_active(c) && !c->authed && now_ns() < deadline)
		pump(c, 1, 100);
	if (!c->authed) {
		note("peer %d did not connect: %s", member, c->err[0] ? c->err : "timed out");
		return -1;
	}
	return 0;
}

static void bench_messages(void)
{
	int np = opt.pairs;
	struct conn *peers = calloc((size_t)np * 2, sizeof *peers);
	if (!peers)
		die("out of memory");
	for (int si = 0; si < opt.n_sizes; si++)
		for (int wi = 0; wi < opt.n_windows; wi++) {
			char name[64], size[16], who[24] = "";
			int window = opt.windows[wi];
			if (opt.sizes[si] % 1024 == 0)
				snprintf(size, sizeof size, "%d KiB", opt.sizes[si] / 1024);
			else
				snprintf(size, sizeof size, "%d B", opt.sizes[si]);
			if (np > 1)
				snprintf(who, sizeof who, ", %d pairs", np);
			if (window == 1)
				snprintf(name, sizeof name, "direct %s x%d%s, one at a time", size, opt.msgs, who);
			else
				snprintf(name, sizeof name, "direct %s x%d%s, pipelined (window %d)", size, opt.msgs, who,
					 window);
			for (int rep = 0; rep < opt.reps; rep++) {
				int ok = 1;
				for (int i = 0; i < 2 * np; i++)
					peers[i].fd = -1, peers[i].st = S_DONE;
				for (int i = 0; i < 2 * np && ok; i++)
					ok = ws_connect_wait(&peers[i], i, i % 2 ? on_recipient_text : on_sender_text) == 0;
				if (!ok) {
					failures++;
					row_note(name, "msgs/s (send -> last push)", "**peers could not connect**");
				} else {
					/* let the recipients' first (empty) drains finish */
					int64_t settle = now_ns() + 200000000;
					while (now_ns() < settle)
						pump(peers, 2 * np, 50);
					msg_run(peers, np, opt.sizes[si], window, name);
				}
				for (int i = 0; i < 2 * np; i++)
					conn_close(&peers[i]);
				workers_wait_gone(10000);
			}
		}
	free(peers);
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

static void usage(void)
{
	fprintf(stderr,
		"usage: meshbench --port P --db DATABASE_URL --acceptor PID [--reps N] [--quick]\n"
		"                 [--db-idle S] [--msgs N] [--window W] [--idle N[,N...]] [--only LIST]\n"
		"                 [--worker PATH (adds the spawn+exec baseline)] [--conc N (default 8)]\n"
		"                 [--pairs N (default 1)] [--windows W[,W...] (default 1,--window)]\n"
		"                 [--sizes B[,B...] (default 100,16384)]\n"
		"  LIST: comma-separated of health,hello,msg,idle (default: all)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *only = "health,hello,msg,idle";
	static const struct option lo[] = {
		{"port", 1, 0, 'p'},  {"db", 1, 0, 'd'},     {"acceptor", 1, 0, 'a'}, {"reps", 1, 0, 'r'},
		{"quick", 0, 0, 'q'}, {"db-idle", 1, 0, 'i'}, {"msgs", 1, 0, 'm'},     {"window", 1, 0, 'w'},
		{"idle", 1, 0, 'n'},  {"only", 1, 0, 'o'},    {"worker", 1, 0, 'W'},   {"conc", 1, 0, 'c'},
		{"pairs", 1, 0, 'P'}, {"windows", 1, 0, 'L'}, {"sizes", 1, 0, 'S'},
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
			break;
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
		case 'P': opt.pairs = atoi(optarg); break;
		case 'L':
			opt.n_windows = 0;
			for (char *t = strtok(optarg, ","); t && opt.n_windows < 4; t = strtok(NULL, ","))
				opt.windows[opt.n_windows++] = atoi(t);
			break;
		case 'S':
			opt.n_sizes = 0;
			for (char *t = strtok(optarg, ","); t && opt.n_sizes < 4; t = strtok(NULL, ","))
				opt.sizes[opt.n_sizes++] = atoi(t);
			break;
		default: usage();
		}
	}
	if (opt.port <= 0 || !opt.db_url || opt.acceptor_pid <= 0 || opt.reps < 1 || opt.reps > MAX_REPS ||
	    opt.msgs < 1 || opt.window < 1 || opt.conc < 1 || opt.conc > 1000 || opt.pairs < 1 || opt.pairs > 32)
		usage();
	if (!opt.n_windows) {
		opt.windows[0] = 1, opt.windows[1] = opt.window;
		opt.n_windows = 2;
	}
	for (int i = 0; i < opt.n_windows; i++)
		if (opt.windows[i] < 1)
			usage();
	for (int i = 0; i < opt.n_sizes; i++)
		if (opt.sizes[i] < 1 || opt.sizes[i] > (1 << 20))
			usage();
	t_start = now_ns();
	if (sodium_init() < 0)
		die("libsodium failed to initialise");
	int max_idle = 0;
	for (int i = 0; i < opt.n_idle_n; i++)
		if (opt.idle_n[i] > max_idle)
			max_idle = opt.idle_n[i];
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)max_idle + 64) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_cur < (rlim_t)max_idle + 64)
			die("RLIMIT_NOFILE %lu is too low for %d peers", (unsigned long)rl.rlim_cur, max_idle);
	}

	/* members 0 and 1 talk (0..2*pairs-1 with --pairs), 2.. are the idle
	 * peers and the hello pool */
	int need = 2 + (max_idle > 64 ? max_idle : 64);
	setup_members(need);
	note("mesh %s with %d members", mesh_id, need);
	workers_wait_gone(5000);

	char name[64];
	if (strstr(only, "health")) {
		note("1/4 /health");
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
	if (strstr(only, "hello")) {
		note("2/4 WebSocket connect + hello");
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
	if (strstr(only, "msg")) {
		note("3/4 direct messages");
		bench_messages();
	}
	if (strstr(only, "idle")) {
		note("4/4 idle peers");
		for (int k = 0; k < opt.n_idle_n; k++)
			for (int rep = 0; rep < opt.reps; rep++)
				bench_idle(opt.idle_n[k]);
	}
	note("done");
	print_table();
	PQfinish(pg);
	return failures ? 1 : 0;
}
