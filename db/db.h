/* db — the worker's PostgreSQL connection: opened lazily and non-blocking
 * (PQconnectStartParams/PQconnectPoll), driven from the worker's one poll()
 * loop, queries sent with PQsendQueryParams (unnamed statements, no session
 * state: PgBouncer transaction pooling works) in pipeline mode with a sync
 * after each query, so one failing query never poisons the next; closed
 * after DB_IDLE_SECONDS without use.  Callbacks run in FIFO order.  The hot
 * statements (db_query_prepared) are prepared by name, only on a connection
 * that a probe proved direct. */
#ifndef DB_DB_H
#define DB_DB_H

#include "db/pq.h"
#include <string.h>
#include <stdint.h>

struct db;

/* res is NULL and err a one-line reason when the query could not run (no
 * connection, connection lost, SQL error).  res is freed by db after the
 * callback returns: copy what you keep. */
/* err starts with this when the schema is missing (SQLSTATE 42P01/3F000):
 * the database was never migrated (meshctl migrate). */
#define DB_ERR_UNMIGRATED "schema missing: "
static inline int db_err_unmigrated(const char *err)
{
	return err && strncmp(err, DB_ERR_UNMIGRATED, sizeof DB_ERR_UNMIGRATED - 1) == 0;
}
typedef void (*db_cb)(void *arg, const PGresult *res, const char *err);

struct db *db_new(const char *database_url, int idle_seconds);
void db_free(struct db *d);

/* Queue a query (params are copied; NULL param = SQL NULL).  Starts the
 * connection when there is none.  Returns 0, or -1 when the queue is full
 * (DB_QUEUE_MAX) — the callback is then never called.  cb may be NULL. */
#define DB_QUEUE_MAX 1024
int db_query(struct db *d, const char *sql, int nparams, const char *const *params, db_cb cb,
	     void *arg);

/* The same for a hot statement: sql must be a string constant (its address
 * names the statement).  On a connection proven direct (not through a
 * pooler: see db.c's probe) it is prepared once, on first use, and executed
 * by name after that, so PostgreSQL neither parses nor plans it again; else
 * it goes as db_query's. */
int db_query_prepared(struct db *d, const char *sql, int nparams, const char *const *params, db_cb cb,
		      void *arg);

/* poll() integration: fd to watch (or -1 when there is no socket) and events. */
int db_pollfd(const struct db *d, short *events);
/* Call after poll() with the revents of db_pollfd's fd (0 when only a timer
 * fired); also runs the connect timeout and the idle close.  now = mono_ms(). */
void db_service(struct db *d, short revents, int64_t now);
/* The next time (mono ms) db_service must run even without I/O, or -1. */
int64_t db_next_deadline(const struct db *d);

/* How many queries may be sent before the first is answered (1..
 * DB_PIPELINE_MAX; db_new's default is DB_PIPELINE_MAX).  Through a
 * transaction-pooling PgBouncer (1.18, Debian 12's) it must be 1: PgBouncer
 * gives the server session back to its pool at the first ReadyForQuery even
 * when more of this client's queries are already on their way to that
 * session, and a query that spans several packets then reaches two server
 * sessions ("invalid message length", "server conn crashed?"). */
#define DB_PIPELINE_MAX 32
void db_set_pipeline_depth(struct db *d, int depth);

/* Queries queued or in flight. */
int db_pending(const struct db *d);
/* 1 when a connection is open and idle or busy; 0 otherwise. */
int db_connected(const struct db *d);

/* Drive the connection alone until nothing is pending or timeout_ms passes
 * (for one-shot HTTP routes, where the worker has nothing else to do).
 * 0 = all callbacks ran, -1 = timed out (pending callbacks get an error). */
int db_drain_sync(struct db *d, int timeout_ms);

#endif
