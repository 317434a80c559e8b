/* db — the worker's one PostgreSQL connection (see db.h): a small state
 * machine (idle → connecting → ready) over a non-blocking libpq connection in
 * pipeline mode, driven by db_service from the worker's poll() loop. */
#include "db.h"

#include <errno.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/idlemem.h"
#include "common/log.h"
#include "common/util.h"
#include "proto/version.h"
#include "shm/histo.h"

#define DB_CONNECT_MS 5000
#define DB_PARAMS_MAX 65535 /* the protocol's limit (a 16-bit count) */
#define DB_ERR_MAX 256
#define DB_PREPARED_MAX 16 /* named statements prepared per connection */
/* the prepared-statement probe waits for this many hot statements
 * (db_query_prepared) on the db: a connection that only says hello and
 * leaves (one claim) never sends it (issue 23) */
#define DB_PROBE_AFTER 4

enum db_state { DB_IDLE, DB_CONNECTING, DB_READY, DB_BACKOFF };

/* A server that is full (max_connections, a listen backlog overflowing
 * under a reconnect storm) is waited for, with jittered exponential backoff,
 * for up to DB_BUSY_RETRY_MS from the first refusal: queued work is delayed,
 * not failed. */
#define DB_BUSY_RETRY_MS 15000

/* Where the oldest in-flight query is in its pipeline segment: its result,
 * then the NULL that ends its results, then PGRES_PIPELINE_SYNC of its own
 * sync.  The segment is over only at the sync. */
enum query_phase { PHASE_RESULT, PHASE_END, PHASE_SYNC };

struct query {
	struct query *next;
	db_cb cb;
	void *arg;
	int done; /* the callback has run (it runs exactly once) */
	enum query_phase phase;
	int cmds;        /* commands in its segment still to answer: 2 when a Parse went first */
	const void *key; /* db_query_prepared: the caller's sql pointer names the statement */
	/* through a pooler (docs/design.md "Named statements through the
	 * bouncer"): 0 sent by its shared name alone, 1 prepared first in its
	 * segment, 2 unnamed; pooled: sent by the shared name; retry: its
	 * segment failed only for the name (nothing ran), so it goes again */
	int pool_try;
	int pooled;
	int retry;
	int nparams;
	const char *sql;
	const char **params;
	int64_t sent_us; /* histo clock when it went out: broker_db_statement_seconds */
	/* the param pointers, sql and the param strings follow in this block */
};

struct qlist {
	struct query *head, *tail;
	int n;
};

struct db {
	char *url;
	int64_t idle_ms;
	enum db_state state;
	PGconn *conn;
	int conn_used;         /* a query went out on this connection */
	short connect_events;  /* what the last PQconnectPoll waits for */
	int flush_pending;     /* PQflush returned 1: wait for POLLOUT */
	int64_t connect_deadline;
	int64_t last_used;     /* idle close counts from here */
	struct qlist wait;     /* queued, not sent */
	struct qlist flight;   /* sent, segment not finished */
	int in_cb;             /* callbacks running (they may only db_query) */
	int64_t busy_since;    /* first "server full" refusal of this attempt, or 0 */
	int64_t retry_at;      /* DB_BACKOFF: when to connect again */
	int busy_tries;
	int closing;
	int flight_max;        /* queries sent and not yet answered, at most */
	/* prepared statements (db_query_prepared) on this connection: only once
	 * the probe proved it direct (PgBouncer's transaction pooling keeps no
	 * prepared statement from one transaction to the next) */
	int direct;            /* -1 unknown (probe pending), 0 through a pooler, 1 direct */
	int want_probe;        /* DB_PROBE_AFTER hot statements: every connection gets its probe */
	int hot;               /* hot statements queued so far, counted up to DB_PROBE_AFTER */
	struct query *probe;   /* the probe queued or in flight, or NULL */
	const void *prepared[DB_PREPARED_MAX]; /* statement "mb<i>" is the caller's sql pointer [i] */
	int nprepared;
	/* shared names through a pooler: the name of the caller's sql pointer
	 * pool_keys[i] is pool_names[i]; hits and misses on this db, and off
	 * for good once the misses outweigh the hits (a pooler that discards
	 * its servers' statements) */
	const void *pool_keys[DB_PREPARED_MAX];
	char pool_names[DB_PREPARED_MAX][24];
	int npool;
	int pool_hits, pool_misses, pool_off;
	int pool_guess; /* this connection's backend key is no server's pid: a pooler's */
};

/* libpq prints server notices on stderr, which would break the JSON log */
static void db_notice_drop(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

/* The first line of a libpq message, trimmed; "unknown error" when empty. */
static void err_first_line(const char *msg, char *buf, size_t cap)
{
	size_t n = 0;
	if (msg)
		while (msg[n] && msg[n] != '\n' && n < cap - 1)
			n++;
	while (n > 0 && (msg[n - 1] == ' ' || msg[n - 1] == '\r' || msg[n - 1] == '\t'))
		n--;
	if (n == 0) {
		snprintf(buf, cap, "unknown error");
		return;
	}
	memcpy(buf, msg, n);
	buf[n] = 0;
}

/* The connection's own error for a lost connection: the last line that is
 * not an indented hint.  A connection's error text can still begin with the
 * previous query's error (which may quote a parameter), and this one is
 * logged. */
static void err_conn_line(const char *msg, char *buf, size_t cap)
{
	const char *pick = msg;
	if (msg)
		for (const char *p = msg; *p; p++)
			if (p[0] == '\n' && p[1] && p[1] != '\n' && p[1] != ' ' && p[1] != '\t')
				pick = p + 1;
	err_first_line(pick, buf, cap);
}

static void qlist_push(struct qlist *l, struct query *q)
{
	q->next = NULL;
	if (l->tail)
		l->tail->next = q;
	else
		l->head = q;
	l->tail = q;
	l->n++;
}

static struct query *qlist_pop(struct qlist *l)
{
	struct query *q = l->head;
	if (!q)
		return NULL;
	l->head = q->next;
	if (!l->head)
		l->tail = NULL;
	l->n--;
	q->next = NULL;
	return q;
}

static void qlist_push_front(struct qlist *l, struct query *q)
{
	q->next = l->head;
	l->head = q;
	if (!l->tail)
		l->tail = q;
	l->n++;
}

/* Take a whole list out of the db, so that callbacks run while failing it
 * can queue new work without that work being failed too. */
static struct qlist qlist_take(struct qlist *l)
{
	struct qlist out = *l;
	memset(l, 0, sizeof *l);
	return out;
}

static struct query *query_new(const char *sql, int nparams, const char *const *params, db_cb cb,
			       void *arg)
{
	size_t sqllen = strlen(sql) + 1;
	size_t size = sizeof(struct query) + (size_t)nparams * sizeof(char *) + sqllen;
	for (int i = 0; i < nparams; i++)
		if (params[i])
			size += strlen(params[i]) + 1;
	struct query *q = malloc(size);
	if (!q)
		return NULL;
	memset(q, 0, sizeof *q);
	q->cb = cb;
	q->arg = arg;
	q->nparams = nparams;
	q->params = (const char **)(q + 1);
	char *p = (char *)(q->params + nparams);
	memcpy(p, sql, sqllen);
	q->sql = p;
	p += sqllen;
	for (int i = 0; i < nparams; i++) {
		if (!params[i]) {
			q->params[i] = NULL;
			continue;
		}
		size_t n = strlen(params[i]) + 1;
		memcpy(p, params[i], n);
		q->params[i] = p;
		p += n;
	}
	return q;
}

static void query_finish(struct db *d, struct query *q, const PGresult *res, const char *err)
{
	if (q->done)
		return;
	q->done = 1;
	if (res)
		histo_since(H_DB_STATEMENT, q->sent_us);
	if (!q->cb)
		return;
	d->in_cb++;
	q->cb(q->arg, res, err);
	d->in_cb--;
}

static void qlist_fail(struct db *d, struct qlist *l, const char *err)
{
	struct query *q;
	while ((q = qlist_pop(l))) {
		query_finish(d, q, NULL, err);
		free(q);
	}
}

static void conn_drop(struct db *d)
{
	if (d->conn)
		PQfinish(d->conn);
	d->conn = NULL;
	d->state = DB_IDLE;
	d->flush_pending = 0;
	d->conn_used = 0;
	d->direct = -1;
	d->nprepared = 0;
	d->pool_guess = 0;
}

static void conn_start(struct db *d, int64_t now)
{
	static const char *const keys[] = {"dbname", "fallback_application_name", NULL};
	const char *const vals[] = {d->url, "meshbroker", NULL};
	d->conn = PQconnectStartParams(keys, vals, 1);
	d->state = DB_CONNECTING;
	d->connect_events = POLLOUT; /* libpq: start as if PGRES_POLLING_WRITING */
	d->connect_deadline = now + DB_CONNECT_MS;
	d->flush_pending = 0;
	d->conn_used = 0;
	if (d->conn)
		PQsetNoticeProcessor(d->conn, db_notice_drop, NULL);
	/* a failed start (bad URL, no socket) is reported by the next
	 * db_service, never from inside db_query: db_next_deadline says "now" */
}

/* Connecting failed: every waiting query fails.  No retry here (the next
 * db_query starts from scratch), so a dead server costs one attempt per
 * batch of queries, never a loop.  Except when the server (or the PgBouncer
 * in front of it) is only full or briefly unable to serve: then conn_fail
 * waits and retries within DB_BUSY_RETRY_MS. */
static int server_busy(const char *why)
{
	return why && (strstr(why, "too many clients") || strstr(why, "remaining connection slots") ||
		       strstr(why, "Resource temporarily unavailable") ||
		       strstr(why, "the database system is starting up") ||
		       /* PgBouncer: its max_client_conn reached, or its server
			* logins failing for a moment (server_login_retry) */
		       strstr(why, "no more connections allowed") ||
		       strstr(why, "server login has been failing") ||
		       strstr(why, "pgbouncer cannot connect to server"));
}

static void conn_fail(struct db *d, const char *why)
{
	char line[DB_ERR_MAX], err[DB_ERR_MAX + 32];
	err_first_line(why, line, sizeof line);
	int64_t now = mono_ms();
	if (server_busy(why) && !d->closing && d->flight.n == 0) {
		if (!d->busy_since)
			d->busy_since = now;
		if (now - d->busy_since < DB_BUSY_RETRY_MS) {
			conn_drop(d);
			/* 50 ms .. 400 ms: a server back from an outage is found
			 * within half a second, and a full one is asked a few
			 * times a second per waiting worker at most */
			int64_t cap = 50LL << (d->busy_tries < 3 ? d->busy_tries : 3);
			d->busy_tries++;
			d->retry_at = now + cap / 2 + (int64_t)randombytes_uniform((uint32_t)(cap / 2 + 1));
			d->state = DB_BACKOFF;
			log_debug("database busy: retrying", "error", line);
			return;
		}
	}
	d->busy_since = 0;
	d->busy_tries = 0;
	snprintf(err, sizeof err, "database unreachable: %s", line);
	log_warn("database unreachable", "error", line);
	conn_drop(d);
	struct qlist flight = qlist_take(&d->flight);
	struct qlist wait = qlist_take(&d->wait);
	qlist_fail(d, &flight, err);
	qlist_fail(d, &wait, err);
}

/* The connection broke while open.  In-flight queries may or may not have
 * run, so they fail; queries never sent are retried on a new connection,
 * unless this connection broke before sending anything (then a retry could
 * loop against a server that accepts and drops us). */
static void conn_lost(struct db *d, int64_t now)
{
	char line[DB_ERR_MAX], err[DB_ERR_MAX + 32];
	err_conn_line(d->conn ? PQerrorMessage(d->conn) : NULL, line, sizeof line);
	snprintf(err, sizeof err, "database connection lost: %s", line);
	log_warn("database connection lost", "error", line);
	int used = d->conn_used;
	conn_drop(d);
	struct qlist flight = qlist_take(&d->flight);
	struct qlist wait = {0};
	if (!used)
		wait = qlist_take(&d->wait);
	qlist_fail(d, &flight, err);
	qlist_fail(d, &wait, err);
	/* callbacks may have started a connection themselves via db_query */
	if (d->state == DB_IDLE && d->wait.n > 0 && !d->closing)
		conn_start(d, now);
}

/* Is this connection direct?  A pooler answers the startup with a backend
 * key of its own, so the server's pg_backend_pid() differs from the pid that
 * libpq was given (PgBouncer's is random); only a direct connection may keep
 * prepared statements across transactions.  Asked only by a db that sent
 * DB_PROBE_AFTER statements with db_query_prepared (a worker's HTTP routes
 * never do, a hello and its leave send one). */
static void probe_cb(void *arg, const PGresult *res, const char *err)
{
	struct db *d = arg;
	d->probe = NULL;
	if (!d->conn || err || !res || PQntuples(res) != 1)
		return; /* unknown: no prepared statements on this connection */
	d->direct = atoi(PQgetvalue(res, 0, 0)) == PQbackendPID(d->conn);
	log_debug(d->direct ? "database connection is direct: prepared statements"
			    : "database connection is pooled: unnamed statements only");
}

/* first: first in line (a new connection of a db that wants it), so the
 * hot statements after it can use what it finds; else last, behind the hot
 * statement that made the db want it, which it never delays */
static void probe_queue(struct db *d, int first)
{
	struct query *q = query_new("SELECT pg_backend_pid()", 0, NULL, probe_cb, d);
	if (!q)
		return;
	if (first) {
		qlist_push_front(&d->wait, q);
	} else {
		qlist_push(&d->wait, q);
	}
	d->probe = q;
}

static void conn_ready(struct db *d, int64_t now)
{
	if (PQsetnonblocking(d->conn, 1) != 0 || PQenterPipelineMode(d->conn) != 1) {
		conn_fail(d, PQerrorMessage(d->conn));
		return;
	}
	/* A server's backend key carries its pid, and Linux's pids stop at
	 * 2^22; PgBouncer's is random (a pid out of that range 999 times in
	 * 1,000). So a key out of range is surely a pooler's, and shared
	 * names go from the first statement; one in range is taken for a
	 * direct connection (which would log a miss for every worker's first
	 * use of every statement) and waits for the probe (probe_cb) */
	int key = PQbackendPID(d->conn);
	d->pool_guess = key <= 0 || key > (1 << 22);
	if (d->want_probe)
		probe_queue(d, 1);
	d->state = DB_READY;
	d->last_used = now;
	d->busy_since = 0;
	d->busy_tries = 0;
	log_debug("database connected");
}

static void connect_step(struct db *d, short revents, int64_t now)
{
	if (!d->conn || PQstatus(d->conn) == CONNECTION_BAD) {
		conn_fail(d, d->conn ? PQerrorMessage(d->conn) : "out of memory");
		return;
	}
	if (revents) {
		switch (PQconnectPoll(d->conn)) {
		case PGRES_POLLING_READING:
			d->connect_events = POLLIN;
			break;
		case PGRES_POLLING_WRITING:
		case PGRES_POLLING_ACTIVE:
			d->connect_events = POLLOUT;
			break;
		case PGRES_POLLING_OK:
			conn_ready(d, now);
			return;
		case PGRES_POLLING_FAILED:
		default:
			conn_fail(d, PQerrorMessage(d->conn));
			return;
		}
	}
	if (now >= d->connect_deadline)
		conn_fail(d, "timeout");
}

/* A server that ends the session (shutdown, pg_terminate_backend) answers the
 * running query with a FATAL error, and libpq reports a broken socket as the
 * query's error: callers should see both as the connection lost, not as
 * something wrong with their SQL. */
static int result_is_conn_loss(const struct db *d, const PGresult *r)
{
	const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
	if (sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0))
		return 1;
	return PQstatus(d->conn) == CONNECTION_BAD;
}

/* A pooled name's miss: 1 for "prepared statement does not exist"
 * (invalid_sql_statement_name), 2 for a statement prepared before a
 * migration changed what it returns (feature_not_supported, "cached plan
 * must not change result type"), 0 for any other error */
static int pool_name_missed(const PGresult *r)
{
	const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	if (!st)
		return 0;
	return strcmp(st, "26000") == 0 ? 1 : strcmp(st, "0A000") == 0 ? 2 : 0;
}

/* q goes again at pool_try next (its segment's sync moves it back to the
 * front of the queue, results_read); too many misses and this db names
 * nothing more */
static void pool_miss(struct db *d, struct query *q, int next)
{
	q->retry = 1;
	q->pool_try = next;
	if (++d->pool_misses >= 32 && d->pool_misses > d->pool_hits && !d->pool_off) {
		d->pool_off = 1;
		log_debug("named statements through the pooler: more misses than hits; unnamed from now on");
	}
}

/* Hand the head query its result (or error) and move its phase on. */
static void result_take(struct db *d, struct query *q, PGresult *r)
{
	char line[DB_ERR_MAX];
	q->phase = PHASE_END;
	if (q->retry)
		return; /* the rest of a segment that goes again */
	switch (PQresultStatus(r)) {
	case PGRES_TUPLES_OK:
	case PGRES_COMMAND_OK:
	case PGRES_EMPTY_QUERY:
	case PGRES_SINGLE_TUPLE:
		if (q->pooled && q->pool_try == 0)
			d->pool_hits++;
		query_finish(d, q, r, NULL);
		break;
	case PGRES_PIPELINE_ABORTED:
		query_finish(d, q, NULL, "pipeline aborted");
		break;
	default:
		err_first_line(PQresultErrorMessage(r), line, sizeof line);
		if (result_is_conn_loss(d, r)) {
			char err[DB_ERR_MAX + 32];
			snprintf(err, sizeof err, "database connection lost: %s", line);
			query_finish(d, q, NULL, err);
		} else if (q->pooled && q->pool_try == 0 && pool_name_missed(r)) {
			/* not prepared on the server the pooler gave us (or
			 * prepared before a migration changed its result): the
			 * Bind failed, nothing ran; again, preparing it first
			 * (or unnamed) */
			pool_miss(d, q, pool_name_missed(r));
		} else {
			/* undefined_table, invalid_schema_name: never migrated */
			const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
			if (st && (strcmp(st, "42P01") == 0 || strcmp(st, "3F000") == 0)) {
				char err[DB_ERR_MAX + 32];
				snprintf(err, sizeof err, DB_ERR_UNMIGRATED "%s", line);
				query_finish(d, q, NULL, err);
			} else {
				query_finish(d, q, NULL, line);
			}
		}
		break;
	}
}

/* a Parse that failed: the statement is not prepared, and this connection
 * prepares nothing more */
static void prepared_forget(struct db *d, const void *key)
{
	for (int i = 0; i < d->nprepared; i++)
		if (d->prepared[i] == key)
			d->prepared[i] = NULL;
	d->direct = 0;
}

/* Read every result libpq has buffered, in order; never blocks (PQgetResult
 * only after PQisBusy says it will not). */
static void results_read(struct db *d, int64_t now)
{
	while (d->state == DB_READY && d->flight.head) {
		if (PQisBusy(d->conn))
			break;
		PGresult *r = PQgetResult(d->conn);
		struct query *q = d->flight.head;
		if (!r) {
			if (PQstatus(d->conn) == CONNECTION_BAD)
				break;
			if (q->cmds > 1) {
				/* the end of the Parse's results: the statement's own next */
				q->cmds--;
				q->phase = PHASE_RESULT;
				continue;
			}
			if (q->phase == PHASE_SYNC) {
				/* a second NULL: libpq and we disagree about the
				 * pipeline; only a new connection is safe */
				conn_lost(d, now);
				return;
			}
			if (!q->retry)
				query_finish(d, q, NULL, "no result");
			q->phase = PHASE_SYNC;
			continue;
		}
		ExecStatusType st = PQresultStatus(r);
		if (st == PGRES_PIPELINE_SYNC) {
			PQclear(r);
			if (q->retry) {
				/* its segment is over and nothing of it ran: first in
				 * line again (one in flight at most: nothing passed it) */
				qlist_pop(&d->flight);
				q->retry = 0;
				q->phase = PHASE_RESULT;
				qlist_push_front(&d->wait, q);
				d->last_used = now;
				continue;
			}
			query_finish(d, q, NULL, "no result");
			free(qlist_pop(&d->flight));
			d->last_used = now;
			continue;
		}
		if (q->phase != PHASE_RESULT) {
			PQclear(r); /* a second result for one statement: not ours to keep */
			continue;
		}
		if (q->cmds > 1) {
			/* the Parse of a statement prepared in this segment */
			if (st != PGRES_COMMAND_OK && q->pooled) {
				/* most likely prepared meanwhile on the server the
				 * pooler gave us (duplicate_prepared_statement): the
				 * rest of the segment is skipped; again, unnamed */
				pool_miss(d, q, 2);
			} else if (st != PGRES_COMMAND_OK) {
				prepared_forget(d, q->key);
				result_take(d, q, r); /* its error is the query's; the rest of the segment is skipped */
			}
			q->phase = PHASE_END;
			PQclear(r);
			continue;
		}
		if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
			/* libpq now expects COPY data: the connection is unusable */
			PQclear(r);
			query_finish(d, q, NULL, "COPY is not supported");
			conn_lost(d, now);
			return;
		}
		result_take(d, q, r);
		PQclear(r);
	}
	if (d->state == DB_READY && PQstatus(d->conn) == CONNECTION_BAD)
		conn_lost(d, now);
}

/* The name every worker gives the statement sql through a pooler: "mbp"
 * and 20 hex digits of a hash of its text and this build's version, so
 * that one name is one text on every server of the pool (another build's
 * text has another name); NULL when the table is full. */
static const char *pool_name(struct db *d, const void *key, const char *sql)
{
	for (int i = 0; i < d->npool; i++)
		if (d->pool_keys[i] == key)
			return d->pool_names[i];
	if (d->npool >= DB_PREPARED_MAX)
		return NULL;
	unsigned char h[10];
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, sizeof h);
	crypto_generichash_update(&st, (const unsigned char *)MESHBROKER_VERSION, sizeof MESHBROKER_VERSION);
	crypto_generichash_update(&st, (const unsigned char *)sql, strlen(sql));
	crypto_generichash_final(&st, h, sizeof h);
	char *out = d->pool_names[d->npool];
	memcpy(out, "mbp", 3);
	hex_encode(h, sizeof h, out + 3);
	d->pool_keys[d->npool++] = key;
	return out;
}

/* Send q: by its prepared name when it has one (preparing it first, in the
 * same segment, on its first use on this connection), else unnamed. */
static int query_send(struct db *d, struct query *q)
{
	char name[16];
	int k = -1;
	q->cmds = 1;
	q->pooled = 0;
	if (q->key && (d->direct == 0 || (d->direct == -1 && d->pool_guess)) && d->flight_max == 1 && !d->pool_off &&
	    q->pool_try < 2) {
		/* through a pooler, one query in flight (so a retry passes
		 * nothing): the statement's shared name */
		const char *pname = pool_name(d, q->key, q->sql);
		if (pname) {
			if (q->pool_try == 1) {
				if (!PQsendPrepare(d->conn, pname, q->sql, q->nparams, NULL))
					return -1;
				q->cmds = 2;
			}
			q->pooled = 1;
			return PQsendQueryPrepared(d->conn, pname, q->nparams, q->params, NULL, NULL, 0) ? 0 : -1;
		}
	}
	if (q->key && d->direct == 1) {
		for (int i = 0; i < d->nprepared && k < 0; i++)
			if (d->prepared[i] == q->key)
				k = i;
		if (k < 0 && d->nprepared < DB_PREPARED_MAX) {
			k = d->nprepared;
			snprintf(name, sizeof name, "mb%d", k);
			if (!PQsendPrepare(d->conn, name, q->sql, q->nparams, NULL))
				return -1;
			d->prepared[d->nprepared++] = q->key;
			q->cmds = 2;
		}
	}
	if (k < 0)
		return PQsendQueryParams(d->conn, q->sql, q->nparams, NULL, q->params, NULL, NULL, 0) ? 0 : -1;
	snprintf(name, sizeof name, "mb%d", k);
	return PQsendQueryPrepared(d->conn, name, q->nparams, q->params, NULL, NULL, 0) ? 0 : -1;
}

/* Send waiting queries (each followed by its own sync) up to the in-flight
 * cap, then flush what libpq buffered. */
static void queries_send(struct db *d, int64_t now)
{
	while (d->wait.head && d->flight.n < d->flight_max) {
		struct query *q = d->wait.head;
		if (query_send(d, q) != 0) {
			conn_lost(d, now);
			return;
		}
		qlist_push(&d->flight, qlist_pop(&d->wait));
		q->sent_us = histo_clock_us();
		if (q != d->probe)
			d->conn_used = 1;
		if (!PQpipelineSync(d->conn)) {
			conn_lost(d, now);
			return;
		}
	}
	int r = PQflush(d->conn);
	if (r < 0) {
		conn_lost(d, now);
		return;
	}
	d->flush_pending = r == 1;
}

/* Before sending on a connection that has been quiet: did the server close
 * it meanwhile (restart, idle timeout)?  Its last words and the EOF are both
 * readable, so read until the socket is drained or the EOF shows.  A query
 * sent into a dead socket would count as in flight and fail; caught here it
 * is retried on a new connection instead. */
static int conn_check_alive(struct db *d, int64_t now)
{
	for (int i = 0; i < 4; i++) {
		struct pollfd p = {.fd = PQsocket(d->conn), .events = POLLIN};
		if (p.fd < 0 || poll(&p, 1, 0) <= 0)
			break;
		if (!PQconsumeInput(d->conn) || PQstatus(d->conn) == CONNECTION_BAD) {
			conn_lost(d, now);
			return -1;
		}
	}
	return 0;
}

static void ready_step(struct db *d, short revents, int64_t now)
{
	if (revents & (POLLIN | POLLERR | POLLHUP | POLLNVAL)) {
		if (!PQconsumeInput(d->conn)) {
			conn_lost(d, now);
			return;
		}
	}
	if (d->flight.n == 0 && d->wait.n > 0 && conn_check_alive(d, now) < 0)
		return;
	results_read(d, now);
	if (d->state == DB_READY)
		queries_send(d, now);
	/* a flush that would block makes libpq read input: take it now, since
	 * the socket may not become readable again for it */
	if (d->state == DB_READY)
		results_read(d, now);
}

struct db *db_new(const char *database_url, int idle_seconds)
{
	if (!database_url)
		return NULL;
	struct db *d = calloc(1, sizeof *d);
	if (!d)
		return NULL;
	d->url = strdup(database_url);
	if (!d->url) {
		free(d);
		return NULL;
	}
	d->idle_ms = idle_seconds > 0 ? (int64_t)idle_seconds * 1000 : 0;
	d->state = DB_IDLE;
	d->flight_max = DB_PIPELINE_MAX;
	d->direct = -1;
	return d;
}

void db_set_pipeline_depth(struct db *d, int depth)
{
	if (d)
		d->flight_max = depth < 1 ? 1 : depth > DB_PIPELINE_MAX ? DB_PIPELINE_MAX : depth;
}

/* Fail everything pending with err and close the connection. */
static void db_abort(struct db *d, const char *err)
{
	conn_drop(d);
	struct qlist flight = qlist_take(&d->flight);
	struct qlist wait = qlist_take(&d->wait);
	qlist_fail(d, &flight, err);
	qlist_fail(d, &wait, err);
}

void db_free(struct db *d)
{
	if (!d)
		return;
	d->closing = 1;
	db_abort(d, "database closed");
	free(d->url);
	free(d);
}

static int query_queue(struct db *d, const char *sql, int nparams, const char *const *params, db_cb cb, void *arg,
		       const void *key)
{
	if (!d || d->closing || !sql || nparams < 0 || nparams > DB_PARAMS_MAX ||
	    (nparams > 0 && !params))
		return -1;
	if (db_pending(d) >= DB_QUEUE_MAX)
		return -1;
	struct query *q = query_new(sql, nparams, params, cb, arg);
	if (!q)
		return -1;
	q->key = key;
	qlist_push(&d->wait, q);
	if (key && !d->want_probe && ++d->hot >= DB_PROBE_AFTER) {
		/* a worker that carries messages: from now on every connection is
		 * probed (the one open now at once, behind this statement).  Not
		 * before: the probe would be one statement in four of a hello and
		 * its leave, and what it can buy (named statements) pays only over
		 * many messages; until it answers every statement is unnamed */
		d->want_probe = 1;
		if (d->state == DB_READY && d->direct == -1 && !d->probe)
			probe_queue(d, 0);
	}
	/* Sending happens in db_service (db_pollfd asks for POLLOUT), so no
	 * callback ever runs inside db_query. */
	int64_t now = mono_ms();
	d->last_used = now;
	if (d->state == DB_IDLE)
		conn_start(d, now);
	return 0;
}

int db_query(struct db *d, const char *sql, int nparams, const char *const *params, db_cb cb, void *arg)
{
	return query_queue(d, sql, nparams, params, cb, arg, NULL);
}

int db_query_prepared(struct db *d, const char *sql, int nparams, const char *const *params, db_cb cb, void *arg)
{
	return query_queue(d, sql, nparams, params, cb, arg, sql);
}

int db_pollfd(const struct db *d, short *events)
{
	*events = 0;
	if (!d || !d->conn || d->state == DB_IDLE || d->state == DB_BACKOFF)
		return -1;
	int fd = PQsocket(d->conn);
	if (fd < 0)
		return -1;
	if (d->state == DB_CONNECTING) {
		*events = d->connect_events;
	} else {
		*events = POLLIN;
		if (d->flush_pending || (d->wait.n > 0 && d->flight.n < d->flight_max))
			*events |= POLLOUT;
	}
	return fd;
}

void db_service(struct db *d, short revents, int64_t now)
{
	if (!d || d->in_cb)
		return;
	if (d->state == DB_BACKOFF && now >= d->retry_at)
		conn_start(d, now);
	if (d->state == DB_CONNECTING)
		connect_step(d, revents, now);
	if (d->state == DB_READY)
		ready_step(d, revents, now);
	if (d->state == DB_READY && db_pending(d) == 0 && now >= d->last_used + d->idle_ms) {
		log_debug("database idle close");
		conn_drop(d);
		/* and libpq with its 18 libraries, until the next session
		 * (db/pq.h): an idle peer's worker keeps ~430 KiB less */
		if (pq_unload())
			log_debug("libpq unloaded");
		/* and what the busy part left: the stack below this frame and
		 * the heap's free pages (common/idlemem.h), once per idle close */
		idlemem_release(NULL);
	}
}

int64_t db_next_deadline(const struct db *d)
{
	if (!d)
		return -1;
	if (d->state == DB_BACKOFF)
		return d->retry_at;
	if (d->state == DB_CONNECTING) {
		if (!d->conn || PQstatus(d->conn) == CONNECTION_BAD)
			return 0; /* report the failed start at once */
		return d->connect_deadline;
	}
	if (d->state == DB_READY && db_pending(d) == 0)
		return d->last_used + d->idle_ms;
	return -1;
}

int db_pending(const struct db *d)
{
	return d ? d->wait.n + d->flight.n : 0;
}

int db_connected(const struct db *d)
{
	return d && d->state == DB_READY;
}

int db_drain_sync(struct db *d, int timeout_ms)
{
	if (!d || d->in_cb)
		return -1;
	int64_t end = mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	for (;;) {
		if (db_pending(d) == 0)
			return 0;
		int64_t now = mono_ms();
		if (now >= end) {
			log_warn("database timeout");
			db_abort(d, "database timeout");
			return -1;
		}
		int64_t wake = end, dl = db_next_deadline(d);
		if (dl >= 0 && dl < wake)
			wake = dl;
		short events;
		struct pollfd p = {.fd = db_pollfd(d, &events)};
		p.events = events;
		int n = poll(&p, p.fd >= 0 ? 1 : 0, wake > now ? (int)(wake - now) : 0);
		if (n < 0 && errno != EINTR)
			n = 0;
		db_service(d, n > 0 ? p.revents : 0, mono_ms());
	}
}
