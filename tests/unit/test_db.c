/* test_db — db/ against a real PostgreSQL: the migrator, and the worker's
 * non-blocking pipelined connection (order, errors, loss, restart, idle).
 * Uses TEST_DATABASE_URL when set, else starts a private cluster. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glob.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db/db.h"
#include "db/migrations.h"
#include "db/pq.h"
#include "common/log.h"
#include "common/util.h"

#define PG_USER "meshbroker"

static char base_url[1024];  /* the server every test uses */
static int own_cluster;      /* 1: we started it, so we may stop it */
static char pg_root[64];     /* private cluster: data/, socket, log */
static int pg_port;
static pid_t main_pid;
static char pg_bin[256];     /* the newest installed server's bin directory */

/* PG_BINDIR, else the highest /usr/lib/postgresql/N/bin that has pg_ctl:
 * whatever major version Debian installed. */
static void pg_bin_find(void)
{
	const char *env = getenv("PG_BINDIR");
	if (env && *env) {
		snprintf(pg_bin, sizeof pg_bin, "%s", env);
		return;
	}
	glob_t g;
	int best = -1;
	if (glob("/usr/lib/postgresql/*/bin/pg_ctl", 0, NULL, &g) == 0) {
		for (size_t i = 0; i < g.gl_pathc; i++) {
			int v = atoi(g.gl_pathv[i] + strlen("/usr/lib/postgresql/"));
			if (v > best) {
				best = v;
				snprintf(pg_bin, sizeof pg_bin, "%.*s", (int)(strlen(g.gl_pathv[i]) - strlen("/pg_ctl")),
					 g.gl_pathv[i]);
			}
		}
		globfree(&g);
	}
	if (best < 0) {
		fprintf(stderr, "test_db: no PostgreSQL server under /usr/lib/postgresql/*/bin (set PG_BINDIR)\n");
		exit(1);
	}
}

/* ---- the private cluster ---- */

/* Run a PostgreSQL program through the shell; as PG_USER when we are root
 * (PostgreSQL refuses to run as root).  Returns the exit status. */
static int pg_run(const char *fmt, ...)
{
	char cmd[2048], full[2400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	snprintf(full, sizeof full, "%s%s >>'%s/cmd.log' 2>&1",
		 geteuid() == 0 ? "runuser -u " PG_USER " -- " : "", cmd, pg_root);
	int st = system(full);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int pg_start(void)
{
	return pg_run("%s/pg_ctl -D '%s/data' -l '%s/postgres.log' -w -t 30 "
			     "-o \"-k '%s' -c listen_addresses='' -p %d -c fsync=off\" start",
		      pg_bin, pg_root, pg_root, pg_root, pg_port);
}

static int pg_stop(const char *mode)
{
	return pg_run("%s/pg_ctl -D '%s/data' -m %s -w -t 30 stop", pg_bin, pg_root, mode);
}

static void pg_user_ensure(void)
{
	if (geteuid() != 0 || getpwnam(PG_USER))
		return;
	/* another test may be adding it at the same moment: check again after */
	int st = system("useradd --system --no-create-home --shell /usr/sbin/nologin " PG_USER
			" >/dev/null 2>&1");
	(void)st;
	if (!getpwnam(PG_USER)) {
		fprintf(stderr, "test_db: cannot create user %s\n", PG_USER);
		exit(1);
	}
}

static void cluster_start(void)
{
	pg_user_ensure();
	snprintf(pg_root, sizeof pg_root, "/tmp/mbtest-db-XXXXXX");
	if (!mkdtemp(pg_root)) {
		perror("test_db: mkdtemp");
		exit(1);
	}
	if (geteuid() == 0) {
		struct passwd *pw = getpwnam(PG_USER);
		if (chown(pg_root, pw->pw_uid, pw->pw_gid) != 0) {
			perror("test_db: chown");
			exit(1);
		}
	}
	pg_port = 20000 + (int)(getpid() % 20000);
	own_cluster = 1;
	pg_bin_find();
	if (pg_run("%s/initdb -D '%s/data' -U " PG_USER " -A trust -E UTF8 --locale=C -N", pg_bin,
		   pg_root) != 0 ||
	    pg_start() != 0) {
		fprintf(stderr, "test_db: cannot start PostgreSQL (logs in %s)\n", pg_root);
		exit(1);
	}
	snprintf(base_url, sizeof base_url,
		 "postgresql://" PG_USER "@/postgres?host=%s&port=%d", pg_root, pg_port);
}

static void cluster_remove(void)
{
	if (!own_cluster || getpid() != main_pid)
		return;
	own_cluster = 0;
	pg_stop("immediate");
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", pg_root);
	if (system(cmd) != 0)
		fprintf(stderr, "test_db: could not remove %s\n", pg_root);
}

/* Killed (a runner's timeout, ^C): the postmaster lives in its own session
 * (pg_ctl detaches it), so stop it rather than leave it running. */
static void cluster_on_signal(int sig)
{
	if (getpid() == main_pid)
		cluster_remove();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* ---- helpers ---- */

static void notice_drop(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

static PGconn *pg_connect(const char *url)
{
	PGconn *c = PQconnectdb(url);
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect: %s", PQerrorMessage(c));
	PQsetNoticeProcessor(c, notice_drop, NULL);
	return c;
}

/* Blocking one-shot query on a fresh connection; the first value or "". */
static void sql_value(const char *url, const char *sql, char *out, size_t cap)
{
	PGconn *c = pg_connect(url);
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	ck_assert_msg(st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK, "%s: %s", sql,
		      PQresultErrorMessage(r));
	snprintf(out, cap, "%s", st == PGRES_TUPLES_OK && PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
	PQfinish(c);
}

/* base_url with another database name, as a keyword=value string. */
static void url_with_db(const char *dbname, char *out, size_t cap)
{
	char *perr = NULL;
	PQconninfoOption *opts = PQconninfoParse(base_url, &perr);
	ck_assert_msg(opts != NULL, "bad TEST_DATABASE_URL: %s", perr ? perr : "");
	size_t n = 0;
	out[0] = 0;
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		const char *v = strcmp(o->keyword, "dbname") == 0 ? dbname : o->val;
		if (!v)
			continue;
		n += (size_t)snprintf(out + n, cap - n, "%s='", o->keyword);
		for (; *v && n < cap - 4; v++) {
			if (*v == '\'' || *v == '\\')
				out[n++] = '\\';
			out[n++] = *v;
		}
		n += (size_t)snprintf(out + n, cap - n, "' ");
		ck_assert(n < cap - 1);
	}
	PQconninfoFree(opts);
}

static void scratch_name(const char *what, char *out, size_t cap)
{
	snprintf(out, cap, "mbtest_%s_%d", what, (int)main_pid);
}

/* A new empty database for one test, so the migrations meet a fresh schema
 * even on a shared server.  Without CREATEDB the base database is used and
 * the tests count relative to what is already recorded. */
static void scratch_db(const char *what, char *url, size_t cap)
{
	char name[64], sql[160];
	scratch_name(what, name, sizeof name);
	PGconn *c = pg_connect(base_url);
	snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", name);
	PQclear(PQexec(c, sql));
	snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
	PGresult *r = PQexec(c, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	PQclear(r);
	PQfinish(c);
	if (ok)
		url_with_db(name, url, cap);
	else
		snprintf(url, cap, "%s", base_url);
}

static void scratch_drop_all(void)
{
	static const char *const what[] = {"mig", "race"};
	PGconn *c = PQconnectdb(base_url);
	PQsetNoticeProcessor(c, notice_drop, NULL);
	if (PQstatus(c) == CONNECTION_OK)
		for (size_t i = 0; i < sizeof what / sizeof what[0]; i++) {
			char name[64], sql[160];
			scratch_name(what[i], name, sizeof name);
			snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
			PQclear(PQexec(c, sql));
		}
	PQfinish(c);
}

static int migrations_recorded(const char *url)
{
	char v[32];
	sql_value(url, "SELECT to_regclass('mesh.schema_migrations') IS NOT NULL", v, sizeof v);
	if (strcmp(v, "t") != 0)
		return 0;
	sql_value(url, "SELECT count(*) FROM mesh.schema_migrations", v, sizeof v);
	return atoi(v);
}

/* Drive the db as a worker's loop would, for ms (no failure on timeout). */
static void db_drive(struct db *d, int ms)
{
	int64_t end = mono_ms() + ms;
	for (;;) {
		int64_t now = mono_ms();
		if (now >= end)
			return;
		int64_t wake = end, dl = db_next_deadline(d);
		if (dl >= 0 && dl < wake)
			wake = dl;
		short events;
		struct pollfd p = {.fd = db_pollfd(d, &events)};
		p.events = events;
		int n = poll(&p, p.fd >= 0 ? 1 : 0, wake > now ? (int)(wake - now) : 0);
		db_service(d, n > 0 ? p.revents : 0, mono_ms());
	}
}

/* One query's outcome, as its callback saw it. */
struct got {
	int calls;
	int ok;
	char val[128];
	char err[256];
};

static void got_cb(void *arg, const PGresult *res, const char *err)
{
	struct got *g = arg;
	g->calls++;
	ck_assert_msg((res == NULL) != (err == NULL), "exactly one of res and err");
	if (res) {
		g->ok = 1;
		snprintf(g->val, sizeof g->val, "%s",
			 PQntuples(res) && PQnfields(res) ? PQgetvalue(res, 0, 0) : "");
	} else {
		snprintf(g->err, sizeof g->err, "%s", err);
	}
}

/* db_query + db_drain_sync, for the common one-query case. */
static void query_run(struct db *d, const char *sql, const char *param, struct got *g)
{
	const char *params[1] = {param};
	memset(g, 0, sizeof *g);
	ck_assert_int_eq(db_query(d, sql, param ? 1 : 0, params, got_cb, g), 0);
	ck_assert_int_eq(db_drain_sync(d, 5000), 0);
	ck_assert_int_eq(g->calls, 1);
}

/* ---- migrations ---- */

START_TEST(migrations_apply_once_then_nothing)
{
	char url[1024], err[256];
	scratch_db("mig", url, sizeof url);
	int before = migrations_recorded(url);
	int n = migrations_apply(url, 0, err, sizeof err);
	ck_assert_msg(n == migrations_count - before, "applied %d: %s", n, err);
	ck_assert_int_eq(migrations_recorded(url), migrations_count);
	ck_assert_int_eq(migrations_apply(url, 0, err, sizeof err), 0);
	ck_assert_int_eq(migrations_recorded(url), migrations_count);
	char v[64];
	sql_value(url, "SELECT to_regclass('mesh.member')::text", v, sizeof v);
	ck_assert_str_eq(v, "mesh.member");
}
END_TEST

START_TEST(migrations_two_concurrent_appliers_apply_each_once)
{
	char url[1024], err[256];
	scratch_db("race", url, sizeof url);
	int before = migrations_recorded(url);
	int gate[2];
	ck_assert_int_eq(pipe(gate), 0);
	pid_t kids[2];
	for (int i = 0; i < 2; i++) {
		kids[i] = fork();
		ck_assert_int_ge(kids[i], 0);
		if (kids[i] == 0) {
			char c;
			close(gate[1]);
			ssize_t r = read(gate[0], &c, 1); /* both start together */
			(void)r;
			int n = migrations_apply(url, 0, err, sizeof err);
			if (n < 0)
				fprintf(stderr, "applier: %s\n", err);
			_exit(n < 0 ? 255 : n);
		}
	}
	close(gate[0]);
	close(gate[1]);
	int total = 0;
	for (int i = 0; i < 2; i++) {
		int st;
		ck_assert_int_eq(waitpid(kids[i], &st, 0), kids[i]);
		ck_assert(WIFEXITED(st) && WEXITSTATUS(st) != 255);
		total += WEXITSTATUS(st);
	}
	ck_assert_int_eq(total, migrations_count - before);
	ck_assert_int_eq(migrations_recorded(url), migrations_count);
}
END_TEST

START_TEST(migrations_unreachable_server_is_one_line_error)
{
	char err[256];
	int n = migrations_apply("postgresql:///x?host=/nonexistent-mbtest&port=1", 0, err,
				 sizeof err);
	ck_assert_int_eq(n, -1);
	ck_assert_msg(strncmp(err, "database unreachable: ", 22) == 0, "err: %s", err);
	ck_assert_ptr_null(strchr(err, '\n'));
}
END_TEST

/* ---- the worker's connection ---- */

START_TEST(query_select_returns_value_and_connects_lazily)
{
	struct db *d = db_new(base_url, 30);
	ck_assert_ptr_nonnull(d);
	ck_assert_int_eq(db_connected(d), 0);
	short ev;
	ck_assert_int_eq(db_pollfd(d, &ev), -1); /* lazy: no socket yet */
	ck_assert_int_eq(db_next_deadline(d), -1);
	struct got g;
	query_run(d, "SELECT $1::int + 1", "41", &g);
	ck_assert_msg(g.ok, "err: %s", g.err);
	ck_assert_str_eq(g.val, "42");
	ck_assert_int_eq(db_connected(d), 1);
	ck_assert_int_eq(db_pending(d), 0);
	/* NULL params are SQL NULL */
	const char *nullp[1] = {NULL};
	memset(&g, 0, sizeof g);
	ck_assert_int_eq(db_query(d, "SELECT coalesce($1::text, 'was null')", 1, nullp, got_cb, &g), 0);
	ck_assert_int_eq(db_drain_sync(d, 5000), 0);
	ck_assert_str_eq(g.val, "was null");
	db_free(d);
}
END_TEST

struct order {
	struct db *d;
	char seq[16];
	int requeued;
};

static void order_cb(void *arg, const PGresult *res, const char *err)
{
	struct order *o = arg;
	ck_assert_msg(res != NULL, "err: %s", err ? err : "");
	strncat(o->seq, PQgetvalue(res, 0, 0), sizeof o->seq - strlen(o->seq) - 1);
	if (!o->requeued) {
		/* re-entrant: a callback queues more work */
		const char *p[1] = {"d"};
		o->requeued = 1;
		ck_assert_int_eq(db_query(o->d, "SELECT $1::text", 1, p, order_cb, o), 0);
	}
}

START_TEST(queries_run_in_fifo_order_and_callbacks_may_queue_more)
{
	struct order o = {.d = db_new(base_url, 30)};
	/* the first sleeps, so a later query finishing first would show */
	ck_assert_int_eq(db_query(o.d, "SELECT 'a'::text FROM pg_sleep(0.1)", 0, NULL, order_cb, &o), 0);
	const char *b[1] = {"b"}, *c[1] = {"c"};
	ck_assert_int_eq(db_query(o.d, "SELECT $1::text", 1, b, order_cb, &o), 0);
	ck_assert_int_eq(db_query(o.d, "SELECT $1::text", 1, c, order_cb, &o), 0);
	ck_assert_int_eq(db_pending(o.d), 3);
	ck_assert_int_eq(db_drain_sync(o.d, 5000), 0);
	ck_assert_str_eq(o.seq, "abcd");
	db_free(o.d);
}
END_TEST

START_TEST(failing_query_gets_error_and_next_query_still_succeeds)
{
	struct db *d = db_new(base_url, 30);
	struct got bad, div0, good, after;
	memset(&bad, 0, sizeof bad);
	memset(&div0, 0, sizeof div0);
	memset(&good, 0, sizeof good);
	memset(&after, 0, sizeof after);
	ck_assert_int_eq(db_query(d, "SELEC 1", 0, NULL, got_cb, &bad), 0);
	ck_assert_int_eq(db_query(d, "SELECT 2", 0, NULL, got_cb, &good), 0);
	ck_assert_int_eq(db_query(d, "SELECT 1/0", 0, NULL, got_cb, &div0), 0);
	ck_assert_int_eq(db_query(d, "SELECT 3", 0, NULL, got_cb, &after), 0);
	ck_assert_int_eq(db_drain_sync(d, 5000), 0);
	ck_assert_int_eq(bad.calls, 1);
	ck_assert_int_eq(bad.ok, 0);
	ck_assert_msg(strstr(bad.err, "syntax error") != NULL, "err: %s", bad.err);
	ck_assert_ptr_null(strchr(bad.err, '\n'));
	ck_assert_int_eq(good.calls, 1);
	ck_assert_str_eq(good.val, "2");
	ck_assert_int_eq(div0.calls, 1);
	ck_assert_msg(strstr(div0.err, "division by zero") != NULL, "err: %s", div0.err);
	ck_assert_int_eq(after.calls, 1);
	ck_assert_str_eq(after.val, "3");
	ck_assert_int_eq(db_connected(d), 1);
	db_free(d);
}
END_TEST

struct count {
	int calls, ok, next;
	int in_order;
};

static void count_cb(void *arg, const PGresult *res, const char *err)
{
	struct count *c = arg;
	(void)err;
	if (res) {
		c->ok++;
		if (atoi(PQgetvalue(res, 0, 0)) != c->next)
			c->in_order = 0;
	}
	c->next++;
	c->calls++;
}

START_TEST(full_queue_refuses_and_every_queued_query_runs_once)
{
	struct db *d = db_new(base_url, 30);
	struct count c = {.in_order = 1};
	char num[16];
	const char *p[1] = {num};
	for (int i = 0; i < DB_QUEUE_MAX; i++) {
		snprintf(num, sizeof num, "%d", i);
		ck_assert_int_eq(db_query(d, "SELECT $1::int", 1, p, count_cb, &c), 0);
	}
	ck_assert_int_eq(db_query(d, "SELECT 1", 0, NULL, count_cb, &c), -1);
	ck_assert_int_eq(db_pending(d), DB_QUEUE_MAX);
	ck_assert_int_eq(db_drain_sync(d, 10000), 0);
	ck_assert_int_eq(c.calls, DB_QUEUE_MAX);
	ck_assert_int_eq(c.ok, DB_QUEUE_MAX);
	ck_assert(c.in_order);
	db_free(d);
}
END_TEST

START_TEST(unreachable_server_fails_queries_and_next_query_tries_again)
{
	struct db *d = db_new("postgresql:///x?host=/nonexistent-mbtest&port=1", 30);
	struct got a, b;
	memset(&a, 0, sizeof a);
	memset(&b, 0, sizeof b);
	ck_assert_int_eq(db_query(d, "SELECT 1", 0, NULL, got_cb, &a), 0);
	ck_assert_int_eq(db_query(d, "SELECT 2", 0, NULL, got_cb, &b), 0);
	ck_assert_int_eq(db_drain_sync(d, 2000), 0);
	ck_assert_int_eq(a.calls, 1);
	ck_assert_int_eq(b.calls, 1);
	ck_assert_msg(strncmp(a.err, "database unreachable: ", 22) == 0, "err: %s", a.err);
	ck_assert_ptr_null(strchr(a.err, '\n'));
	ck_assert_int_eq(db_connected(d), 0);
	ck_assert_int_eq(db_next_deadline(d), -1);
	query_run(d, "SELECT 3", NULL, &a);
	ck_assert_msg(strncmp(a.err, "database unreachable: ", 22) == 0, "err: %s", a.err);
	db_free(d);
}
END_TEST

START_TEST(connect_times_out_after_5s_against_a_silent_server)
{
	/* a listening socket nobody answers on: TCP connects, the startup
	 * packet gets no reply */
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof a;
	ck_assert_int_eq(bind(ls, (struct sockaddr *)&a, sizeof a), 0);
	ck_assert_int_eq(listen(ls, 4), 0);
	ck_assert_int_eq(getsockname(ls, (struct sockaddr *)&a, &alen), 0);
	char url[128];
	snprintf(url, sizeof url, "postgresql://x@127.0.0.1:%d/x?sslmode=disable&gssencmode=disable",
		 ntohs(a.sin_port));
	struct db *d = db_new(url, 30);
	struct got g;
	int64_t t0 = mono_ms();
	memset(&g, 0, sizeof g);
	ck_assert_int_eq(db_query(d, "SELECT 1", 0, NULL, got_cb, &g), 0);
	int64_t t1 = mono_ms(); /* the connect started in between, however long the scheduler kept us */
	int64_t dl = db_next_deadline(d);
	ck_assert_int_ge(dl, t0 + 4900);
	ck_assert_int_le(dl, t1 + 5100);
	ck_assert_int_eq(db_drain_sync(d, 8000), 0);
	int64_t took = mono_ms() - t0;
	ck_assert_int_ge(took, 4900);
	ck_assert_int_lt(took, 7000);
	ck_assert_int_eq(g.calls, 1);
	ck_assert_str_eq(g.err, "database unreachable: timeout");
	ck_assert_int_eq(db_connected(d), 0);
	ck_assert_int_eq(db_pollfd(d, &(short){0}), -1);
	db_free(d);
	close(ls);
}
END_TEST

START_TEST(drain_timeout_fails_pending_and_drops_connection)
{
	struct db *d = db_new(base_url, 30);
	struct got g;
	memset(&g, 0, sizeof g);
	ck_assert_int_eq(db_query(d, "SELECT pg_sleep(5)", 0, NULL, got_cb, &g), 0);
	int64_t t0 = mono_ms();
	ck_assert_int_eq(db_drain_sync(d, 300), -1);
	ck_assert_int_lt(mono_ms() - t0, 2000);
	ck_assert_int_eq(g.calls, 1);
	ck_assert_str_eq(g.err, "database timeout");
	ck_assert_int_eq(db_pending(d), 0);
	ck_assert_int_eq(db_connected(d), 0);
	query_run(d, "SELECT 4", NULL, &g);
	ck_assert_str_eq(g.val, "4");
	db_free(d);
}
END_TEST

START_TEST(idle_connection_closes_after_idle_seconds)
{
	struct db *d = db_new(base_url, 1);
	struct got g;
	query_run(d, "SELECT 1", NULL, &g);
	ck_assert_int_eq(db_connected(d), 1);
	int64_t t0 = mono_ms(), dl = db_next_deadline(d);
	ck_assert_int_gt(dl, t0);
	ck_assert_int_le(dl, t0 + 1000);
	/* open until its deadline (checked while there is time before it: a
	 * scheduler that keeps us away past it proves nothing either way) */
	while (mono_ms() < dl - 100) {
		ck_assert_int_eq(db_connected(d), 1);
		db_drive(d, 50);
	}
	while (db_connected(d) && mono_ms() - t0 < 3000)
		db_drive(d, 50);
	ck_assert_int_eq(db_connected(d), 0);
	ck_assert_int_ge(mono_ms(), dl); /* not before idle_seconds passed */
	short ev;
	ck_assert_int_eq(db_pollfd(d, &ev), -1);
	ck_assert_int_eq(db_next_deadline(d), -1);
	/* and opens again on demand */
	query_run(d, "SELECT 5", NULL, &g);
	ck_assert_str_eq(g.val, "5");
	db_free(d);
}
END_TEST

/* returns once the backend has exited (PostgreSQL 14+ waits for it, up to
 * the timeout given), so its socket is closed: no fixed sleep guessing when */
static void backend_terminate(const char *pid)
{
	char sql[128], v[16];
	snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d, 10000)::text", atoi(pid));
	sql_value(base_url, sql, v, sizeof v);
	ck_assert_str_eq(v, "true");
}

START_TEST(connection_loss_fails_in_flight_and_retries_unsent)
{
	struct db *d = db_new(base_url, 30);
	struct got pid, sleep;
	query_run(d, "SELECT pg_backend_pid()", NULL, &pid);
	ck_assert(pid.ok);
	/* more than fit in flight: the rest are still unsent when the
	 * connection dies, and must run on the next one */
	memset(&sleep, 0, sizeof sleep);
	ck_assert_int_eq(db_query(d, "SELECT pg_sleep(30)", 0, NULL, got_cb, &sleep), 0);
	struct count c = {.in_order = 1};
	for (int i = 0; i < 60; i++)
		ck_assert_int_eq(db_query(d, "SELECT 1", 0, NULL, count_cb, &c), 0);
	db_drive(d, 200);
	ck_assert_int_eq(sleep.calls, 0);
	backend_terminate(pid.val);
	ck_assert_int_eq(db_drain_sync(d, 5000), 0);
	ck_assert_int_eq(sleep.calls, 1);
	ck_assert_msg(strncmp(sleep.err, "database connection lost: ", 26) == 0, "err: %s",
		      sleep.err);
	ck_assert_int_eq(c.calls, 60);
	ck_assert_int_gt(c.ok, 0);      /* the unsent ones ran on a new connection */
	ck_assert_int_lt(c.ok, 60);     /* the in-flight ones failed */
	struct got after;
	query_run(d, "SELECT pg_backend_pid()", NULL, &after);
	ck_assert(after.ok);
	ck_assert_str_ne(after.val, pid.val);
	db_free(d);
}
END_TEST

START_TEST(connection_closed_by_server_while_idle_is_replaced_transparently)
{
	struct db *d = db_new(base_url, 30);
	struct got pid, g;
	query_run(d, "SELECT pg_backend_pid()", NULL, &pid);
	ck_assert(pid.ok);
	backend_terminate(pid.val); /* gone; the worker's loop has not looked at the socket yet */
	query_run(d, "SELECT pg_backend_pid()", NULL, &g);
	ck_assert_msg(g.ok, "err: %s", g.err);
	ck_assert_str_ne(g.val, pid.val);
	db_free(d);
}
END_TEST

START_TEST(postgres_restart_fails_pending_query_then_new_query_succeeds)
{
	struct db *d = db_new(base_url, 30);
	struct got g, sleep;
	query_run(d, "SELECT pg_backend_pid()", NULL, &g);
	ck_assert(g.ok);
	memset(&sleep, 0, sizeof sleep);
	ck_assert_int_eq(db_query(d, "SELECT pg_sleep(30)", 0, NULL, got_cb, &sleep), 0);
	db_drive(d, 200);
	ck_assert_int_eq(db_pending(d), 1);
	if (own_cluster)
		ck_assert_int_eq(pg_stop("fast"), 0);
	else
		backend_terminate(g.val); /* a shared server: lose only our session */
	ck_assert_int_eq(db_drain_sync(d, 5000), 0);
	ck_assert_int_eq(sleep.calls, 1);
	ck_assert_msg(strncmp(sleep.err, "database connection lost: ", 26) == 0, "err: %s",
		      sleep.err);
	ck_assert_int_eq(db_connected(d), 0);
	if (own_cluster) {
		query_run(d, "SELECT 6", NULL, &g); /* while down */
		ck_assert_msg(strncmp(g.err, "database unreachable: ", 22) == 0, "err: %s", g.err);
		ck_assert_int_eq(pg_start(), 0);
	}
	query_run(d, "SELECT 7", NULL, &g);
	ck_assert_msg(g.ok, "err: %s", g.err);
	ck_assert_str_eq(g.val, "7");
	db_free(d);
}
END_TEST

/* ---- prepared statements (db_query_prepared) ---- */

static const char prep_add[] = "SELECT $1::int + 100";
static const char prep_bad[] = "SELEC $1::int";

/* db_query_prepared + db_drain_sync */
static void prepared_run(struct db *d, const char *sql, const char *param, struct got *g)
{
	const char *params[1] = {param};
	memset(g, 0, sizeof *g);
	ck_assert_int_eq(db_query_prepared(d, sql, 1, params, got_cb, g), 0);
	ck_assert_int_eq(db_drain_sync(d, 5000), 0);
	ck_assert_int_eq(g->calls, 1);
}

START_TEST(prepared_statement_is_prepared_once_per_direct_connection)
{
	struct db *d = db_new(base_url, 30);
	struct got g, n;
	/* the first uses go out unnamed: the probe waits for the fourth hot
	 * statement (a hello and its leave send one) and goes behind it */
	prepared_run(d, prep_add, "1", &g);
	ck_assert_msg(g.ok, "err: %s", g.err);
	ck_assert_str_eq(g.val, "101");
	for (int i = 2; i < 5; i++) {
		char v[16], want[16];
		snprintf(v, sizeof v, "%d", i);
		snprintf(want, sizeof want, "%d", i + 100);
		prepared_run(d, prep_add, v, &g);
		ck_assert_msg(g.ok, "err: %s", g.err);
		ck_assert_str_eq(g.val, want);
	}
	query_run(d, "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'mb%'", NULL, &n);
	ck_assert_str_eq(n.val, "0");
	/* the probe found the connection direct: one named statement, on it */
	prepared_run(d, prep_add, "5", &g);
	ck_assert_msg(g.ok, "err: %s", g.err);
	ck_assert_str_eq(g.val, "105");
	prepared_run(d, prep_add, "6", &g);
	ck_assert_str_eq(g.val, "106");
	query_run(d, "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'mb%'", NULL, &n);
	ck_assert_str_eq(n.val, "1");
	/* a new connection prepares it again */
	struct got pid;
	query_run(d, "SELECT pg_backend_pid()", NULL, &pid);
	backend_terminate(pid.val);
	prepared_run(d, prep_add, "7", &g);
	prepared_run(d, prep_add, "8", &g);
	ck_assert_msg(g.ok, "err: %s", g.err);
	ck_assert_str_eq(g.val, "108");
	query_run(d, "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'mb%'", NULL, &n);
	ck_assert_str_eq(n.val, "1");
	db_free(d);
}
END_TEST

START_TEST(prepared_statement_that_fails_to_prepare_is_an_error_and_the_next_query_runs)
{
	struct db *d = db_new(base_url, 30);
	struct got g, bad, after;
	for (int i = 0; i < 4; i++) /* connected, and the probe (behind the fourth) answered */
		prepared_run(d, prep_add, "1", &g);
	memset(&bad, 0, sizeof bad);
	memset(&after, 0, sizeof after);
	const char *p[1] = {"1"};
	ck_assert_int_eq(db_query_prepared(d, prep_bad, 1, p, got_cb, &bad), 0);
	ck_assert_int_eq(db_query_prepared(d, prep_add, 1, p, got_cb, &after), 0);
	ck_assert_int_eq(db_drain_sync(d, 5000), 0);
	ck_assert_int_eq(bad.calls, 1);
	ck_assert_msg(!bad.ok && strstr(bad.err, "syntax error") != NULL, "err: %s", bad.err);
	ck_assert_int_eq(after.calls, 1);
	ck_assert_msg(after.ok, "err: %s", after.err);
	ck_assert_str_eq(after.val, "101");
	ck_assert_int_eq(db_connected(d), 1);
	db_free(d);
}
END_TEST

/* ---- named statements through a pooler (docs/design.md "Named statements
 * through the bouncer") ---- */

/* A PgBouncer in transaction mode in front of base_url, pool_size server
 * connections, as this test process's child (it dies with it); its URL. */
static pid_t bouncer_pid;
static char bouncer_dir[64];

static void bouncer_start(int pool_size, char *url, size_t cap)
{
	char *perr = NULL;
	PQconninfoOption *opts = PQconninfoParse(base_url, &perr);
	ck_assert_msg(opts != NULL, "bad base url: %s", perr ? perr : "");
	const char *host = "", *port = "5432", *user = PG_USER, *dbname = "postgres", *pass = NULL;
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (!o->val)
			continue;
		if (strcmp(o->keyword, "host") == 0)
			host = o->val;
		else if (strcmp(o->keyword, "port") == 0)
			port = o->val;
		else if (strcmp(o->keyword, "user") == 0)
			user = o->val;
		else if (strcmp(o->keyword, "dbname") == 0)
			dbname = o->val;
		else if (strcmp(o->keyword, "password") == 0)
			pass = o->val;
	}
	snprintf(bouncer_dir, sizeof bouncer_dir, "/tmp/mbtest-bouncer-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(bouncer_dir));
	struct passwd *pw = geteuid() == 0 ? getpwnam(PG_USER) : NULL;
	if (pw)
		ck_assert_int_eq(chown(bouncer_dir, pw->pw_uid, pw->pw_gid), 0);
	int bport = 40000 + (int)(getpid() % 20000);
	char path[128];
	snprintf(path, sizeof path, "%s/users.txt", bouncer_dir);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "\"%s\" \"\"\n", user);
	fclose(f);
	snprintf(path, sizeof path, "%s/pgbouncer.ini", bouncer_dir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f,
		"[databases]\nbt = host=%s port=%s dbname=%s user=%s%s%s\n[pgbouncer]\nlisten_addr =\n"
		"listen_port = %d\nunix_socket_dir = %s\nauth_type = trust\nauth_file = %s/users.txt\n"
		"pool_mode = transaction\ndefault_pool_size = %d\nmax_db_connections = %d\n"
		"logfile = %s/pgbouncer.log\n",
		host, port, dbname, user, pass ? " password=" : "", pass ? pass : "", bport, bouncer_dir,
		bouncer_dir, pool_size, pool_size, bouncer_dir);
	fclose(f);
	char userbuf[64];
	snprintf(userbuf, sizeof userbuf, "%s", user);
	PQconninfoFree(opts); /* host, port, user point into it */
	const char *bin = access("/usr/sbin/pgbouncer", X_OK) == 0 ? "/usr/sbin/pgbouncer" : "pgbouncer";
	bouncer_pid = fork();
	ck_assert_int_ge(bouncer_pid, 0);
	if (bouncer_pid == 0) {
		if (pw && (setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0))
			_exit(126);
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* after setuid, which clears it */
		execlp(bin, bin, "-q", path, (char *)NULL);
		_exit(127);
	}
	char sock[160];
	snprintf(sock, sizeof sock, "%s/.s.PGSQL.%d", bouncer_dir, bport);
	struct stat stb;
	int64_t end = mono_ms() + 10000;
	while (stat(sock, &stb) != 0 && mono_ms() < end)
		usleep(20000);
	ck_assert_msg(stat(sock, &stb) == 0, "pgbouncer did not open %s (is it installed?)", sock);
	snprintf(url, cap, "postgresql://%s@/bt?host=%s&port=%d", userbuf, bouncer_dir, bport);
}

static void bouncer_stop(void)
{
	if (bouncer_pid > 0) {
		kill(bouncer_pid, SIGTERM);
		waitpid(bouncer_pid, NULL, 0);
		bouncer_pid = 0;
	}
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", bouncer_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "test_db: could not remove %s\n", bouncer_dir);
}

/* named statements on the one server the pooler has (pool size 1), by
 * this db's shared name */
static int pooled_names(struct db *d)
{
	struct got n;
	query_run(d, "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'mbp%'", NULL, &n);
	ck_assert_msg(n.ok, "err: %s", n.err);
	return atoi(n.val);
}

START_TEST(pooled_hot_statement_goes_by_a_shared_name_and_a_server_without_it_costs_nothing)
{
	char url[512];
	bouncer_start(1, url, sizeof url);
	struct db *d = db_new(url, 30);
	db_set_pipeline_depth(d, 1); /* the worker's default through PgBouncer */
	struct got g;
	/* five uses: PgBouncer's backend key is random, so one connection in
	 * 1,000 looks direct and waits for the probe, which answers after the
	 * fourth hot statement (db.c conn_ready) */
	for (int i = 0; i < 5; i++) {
		prepared_run(d, prep_add, "1", &g);
		ck_assert_msg(g.ok, "err: %s", g.err);
		ck_assert_str_eq(g.val, "101");
	}
	ck_assert_int_eq(pooled_names(d), 1);
	for (int i = 2; i < 12; i++) {
		char v[16], want[16];
		snprintf(v, sizeof v, "%d", i);
		snprintf(want, sizeof want, "%d", i + 100);
		if (i % 3 == 0) {
			/* the server forgets it (a new server, DISCARD ALL) */
			query_run(d, "DEALLOCATE ALL", NULL, &g);
			ck_assert_msg(g.ok, "err: %s", g.err);
			ck_assert_int_eq(pooled_names(d), 0);
		}
		prepared_run(d, prep_add, v, &g);
		ck_assert_msg(g.ok, "run %d, err: %s", i, g.err);
		ck_assert_str_eq(g.val, want);
		ck_assert_int_eq(pooled_names(d), 1);
	}
	/* a second db (another worker) finds it there: still one */
	struct db *d2 = db_new(url, 30);
	db_set_pipeline_depth(d2, 1);
	for (int i = 0; i < 5; i++)
		prepared_run(d2, prep_add, "50", &g);
	ck_assert_str_eq(g.val, "150");
	ck_assert_int_eq(pooled_names(d2), 1);
	/* its errors are its own, and the next runs */
	struct got bad, after;
	memset(&bad, 0, sizeof bad);
	memset(&after, 0, sizeof after);
	const char *p[1] = {"x"};
	ck_assert_int_eq(db_query_prepared(d, prep_add, 1, p, got_cb, &bad), 0);
	const char *p2[1] = {"7"};
	ck_assert_int_eq(db_query_prepared(d, prep_add, 1, p2, got_cb, &after), 0);
	ck_assert_int_eq(db_drain_sync(d, 5000), 0);
	ck_assert_int_eq(bad.calls, 1);
	ck_assert_msg(!bad.ok && strstr(bad.err, "invalid input syntax") != NULL, "err: %s", bad.err);
	ck_assert_int_eq(after.calls, 1);
	ck_assert_str_eq(after.val, "107");
	db_free(d2);
	db_free(d);
	bouncer_stop();
}
END_TEST

START_TEST(a_direct_connection_gets_no_shared_names_so_no_misses)
{
	/* straight to PostgreSQL, one query in flight (the worker's setting):
	 * a shared name would miss on every worker's first use of every
	 * statement, one ERROR line in the server's log each; the backend key
	 * is the server's pid, so the connection is taken for direct and its
	 * own names wait for the probe */
	struct db *d = db_new(base_url, 30);
	db_set_pipeline_depth(d, 1);
	struct got g, n;
	for (int i = 0; i < 3; i++) {
		prepared_run(d, prep_add, "1", &g);
		ck_assert_msg(g.ok, "err: %s", g.err);
	}
	query_run(d, "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'mb%'", NULL, &n);
	ck_assert_str_eq(n.val, "0");
	for (int i = 0; i < 3; i++)
		prepared_run(d, prep_add, "2", &g);
	ck_assert_str_eq(g.val, "102");
	/* the probe found it direct: its own name, never a shared one */
	query_run(d, "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'mbp%'", NULL, &n);
	ck_assert_str_eq(n.val, "0");
	query_run(d, "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'mb%'", NULL, &n);
	ck_assert_str_eq(n.val, "1");
	db_free(d);
}
END_TEST

static const char prep_fn[] = "SELECT * FROM mbtest_pooled_fn()";

START_TEST(pooled_name_whose_result_changed_goes_again_unnamed)
{
	char url[512], v[16];
	bouncer_start(1, url, sizeof url);
	sql_value(base_url, "CREATE OR REPLACE FUNCTION mbtest_pooled_fn() RETURNS TABLE (a int) "
			    "LANGUAGE sql AS 'SELECT 1'", v, sizeof v);
	struct db *d = db_new(url, 30);
	db_set_pipeline_depth(d, 1);
	struct got g;
	for (int i = 0; i < 5; i++) { /* five: see the test above */
		memset(&g, 0, sizeof g);
		ck_assert_int_eq(db_query_prepared(d, prep_fn, 0, NULL, got_cb, &g), 0);
		ck_assert_int_eq(db_drain_sync(d, 5000), 0);
		ck_assert_msg(g.ok, "err: %s", g.err);
		ck_assert_str_eq(g.val, "1");
	}
	ck_assert_int_eq(pooled_names(d), 1);
	/* a migration changes what it returns: the statement prepared before
	 * it can no longer run ("cached plan must not change result type") */
	sql_value(base_url, "DROP FUNCTION mbtest_pooled_fn(); CREATE FUNCTION mbtest_pooled_fn() "
			    "RETURNS TABLE (a text, b int) LANGUAGE sql AS 'SELECT ''two''::text, 2'", v, sizeof v);
	memset(&g, 0, sizeof g);
	ck_assert_int_eq(db_query_prepared(d, prep_fn, 0, NULL, got_cb, &g), 0);
	ck_assert_int_eq(db_drain_sync(d, 5000), 0);
	ck_assert_int_eq(g.calls, 1);
	ck_assert_msg(g.ok, "err: %s", g.err);
	ck_assert_str_eq(g.val, "two");
	db_free(d);
	sql_value(base_url, "DROP FUNCTION mbtest_pooled_fn()", v, sizeof v);
	bouncer_stop();
}
END_TEST

START_TEST(a_pooler_that_forgets_every_statement_gets_unnamed_ones_after_32_misses)
{
	char url[512];
	bouncer_start(1, url, sizeof url);
	struct db *d = db_new(url, 30);
	db_set_pipeline_depth(d, 1);
	struct got g;
	for (int i = 0; i < 40; i++) {
		char v[16], want[16];
		snprintf(v, sizeof v, "%d", i);
		snprintf(want, sizeof want, "%d", i + 100);
		query_run(d, "DEALLOCATE ALL", NULL, &g);
		prepared_run(d, prep_add, v, &g);
		ck_assert_msg(g.ok, "run %d, err: %s", i, g.err);
		ck_assert_str_eq(g.val, want);
	}
	/* every named use missed (the first four may have gone unnamed,
	 * see above): names are off, so nothing is prepared now */
	query_run(d, "DEALLOCATE ALL", NULL, &g);
	prepared_run(d, prep_add, "1", &g);
	ck_assert_str_eq(g.val, "101");
	ck_assert_int_eq(pooled_names(d), 0);
	db_free(d);
	bouncer_stop();
}
END_TEST

static Suite *db_suite(void)
{
	Suite *s = suite_create("db");
	TCase *m = tcase_create("migrations");
	tcase_set_timeout(m, 30);
	tcase_add_test(m, migrations_apply_once_then_nothing);
	tcase_add_test(m, migrations_two_concurrent_appliers_apply_each_once);
	tcase_add_test(m, migrations_unreachable_server_is_one_line_error);
	suite_add_tcase(s, m);
	TCase *q = tcase_create("connection");
	tcase_set_timeout(q, 30);
	tcase_add_test(q, query_select_returns_value_and_connects_lazily);
	tcase_add_test(q, queries_run_in_fifo_order_and_callbacks_may_queue_more);
	tcase_add_test(q, failing_query_gets_error_and_next_query_still_succeeds);
	tcase_add_test(q, full_queue_refuses_and_every_queued_query_runs_once);
	tcase_add_test(q, unreachable_server_fails_queries_and_next_query_tries_again);
	tcase_add_test(q, connect_times_out_after_5s_against_a_silent_server);
	tcase_add_test(q, drain_timeout_fails_pending_and_drops_connection);
	tcase_add_test(q, idle_connection_closes_after_idle_seconds);
	tcase_add_test(q, connection_loss_fails_in_flight_and_retries_unsent);
	tcase_add_test(q, connection_closed_by_server_while_idle_is_replaced_transparently);
	tcase_add_test(q, prepared_statement_is_prepared_once_per_direct_connection);
	tcase_add_test(q, prepared_statement_that_fails_to_prepare_is_an_error_and_the_next_query_runs);
	tcase_add_test(q, pooled_hot_statement_goes_by_a_shared_name_and_a_server_without_it_costs_nothing);
	tcase_add_test(q, pooled_name_whose_result_changed_goes_again_unnamed);
	tcase_add_test(q, a_direct_connection_gets_no_shared_names_so_no_misses);
	tcase_add_test(q, a_pooler_that_forgets_every_statement_gets_unnamed_ones_after_32_misses);
	/* last: it stops the server */
	tcase_add_test(q, postgres_restart_fails_pending_query_then_new_query_succeeds);
	suite_add_tcase(s, q);
	return s;
}

int main(void)
{
	main_pid = getpid();
	log_init("test_db");
	if (!getenv("LOG_LEVEL"))
		log_set_level(LOG_ERROR_); /* connection-lost warnings are expected here */
	const char *url = getenv("TEST_DATABASE_URL");
	if (url && *url)
		snprintf(base_url, sizeof base_url, "%s", url);
	else
		cluster_start();
	atexit(cluster_remove); /* only the main process removes it */
	signal(SIGTERM, cluster_on_signal);
	signal(SIGINT, cluster_on_signal);
	SRunner *sr = srunner_create(db_suite());
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	scratch_drop_all();
	cluster_remove();
	return failed ? 1 : 0;
}
