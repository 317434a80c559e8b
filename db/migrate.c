/* migrate — applies the embedded SQL migrations (db/migrations/) in order,
 * each once and in its own transaction, under one advisory lock so that two
 * starters never race.  Blocking libpq: for meshctl and scripts only. */
#include "migrations.h"

#include <stdio.h>
#include <string.h>

#include "db/pq.h"

/* "meshmigr" read as a big-endian int8: any fixed key works, as long as every
 * migrator of every version uses the same one */
#define MIGRATE_LOCK_KEY "7882833615131338610"

static void migrate_notice_drop(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

/* "<what>: <first line of msg>" into err */
static void migrate_err(char *err, size_t errlen, const char *what, const char *msg)
{
	size_t n = 0;
	if (!errlen)
		return;
	if (!msg)
		msg = "";
	while (msg[n] && msg[n] != '\n')
		n++;
	while (n > 0 && (msg[n - 1] == ' ' || msg[n - 1] == '\r' || msg[n - 1] == '\t'))
		n--;
	if (n == 0)
		snprintf(err, errlen, "%s: unknown error", what);
	else
		snprintf(err, errlen, "%s: %.*s", what, (int)n, msg);
}

/* Run sql (one or more statements); 0 when every statement succeeded. */
static int migrate_exec(PGconn *c, const char *sql, const char *what, char *err, size_t errlen)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r); /* a NULL result reads as PGRES_FATAL_ERROR */
	int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY;
	if (!ok)
		migrate_err(err, errlen, what, r ? PQresultErrorMessage(r) : PQerrorMessage(c));
	PQclear(r);
	return ok ? 0 : -1;
}

/* 1 when the migration is recorded, 0 when not, -1 on error */
static int migrate_recorded(PGconn *c, const char *name, char *err, size_t errlen)
{
	const char *params[1] = {name};
	PGresult *r = PQexecParams(c, "SELECT 1 FROM mesh.schema_migrations WHERE version = $1", 1,
				   NULL, params, NULL, NULL, 0);
	int rc;
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		migrate_err(err, errlen, "reading mesh.schema_migrations",
			    r ? PQresultErrorMessage(r) : PQerrorMessage(c));
		rc = -1;
	} else {
		rc = PQntuples(r) > 0;
	}
	PQclear(r);
	return rc;
}

static int migrate_one(PGconn *c, const struct migration *m, char *err, size_t errlen)
{
	char what[128];
	snprintf(what, sizeof what, "migration %s", m->name);
	if (migrate_exec(c, "BEGIN", what, err, errlen) < 0 ||
	    migrate_exec(c, m->sql, what, err, errlen) < 0)
		return -1;
	const char *params[1] = {m->name};
	PGresult *r = PQexecParams(c, "INSERT INTO mesh.schema_migrations(version) VALUES ($1)", 1,
				   NULL, params, NULL, NULL, 0);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok)
		migrate_err(err, errlen, what, r ? PQresultErrorMessage(r) : PQerrorMessage(c));
	PQclear(r);
	if (!ok)
		return -1;
	return migrate_exec(c, "COMMIT", what, err, errlen);
}

/* Everything that runs while the advisory lock is held. */
static int migrate_locked(PGconn *c, int verbose, char *err, size_t errlen)
{
	if (migrate_exec(c,
			 "CREATE SCHEMA IF NOT EXISTS mesh;"
			 "CREATE TABLE IF NOT EXISTS mesh.schema_migrations("
			 " version text PRIMARY KEY,"
			 " applied_at timestamptz NOT NULL DEFAULT now())",
			 "creating mesh.schema_migrations", err, errlen) < 0)
		return -1;
	int applied = 0;
	for (int i = 0; i < migrations_count; i++) {
		int rec = migrate_recorded(c, migrations[i].name, err, errlen);
		if (rec < 0)
			return -1;
		if (rec)
			continue;
		if (migrate_one(c, &migrations[i], err, errlen) < 0)
			return -1;
		applied++;
		if (verbose)
			fprintf(stderr, "migrate: applied %s\n", migrations[i].name);
	}
	return applied;
}

int migrations_apply(const char *database_url, int verbose, char *err, size_t errlen)
{
	if (errlen)
		err[0] = 0;
	if (!database_url) {
		migrate_err(err, errlen, "database unreachable", "no database URL");
		return -1;
	}
	static const char *const keys[] = {"dbname", "fallback_application_name", NULL};
	const char *const vals[] = {database_url, "meshbroker-migrate", NULL};
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	if (!c) {
		migrate_err(err, errlen, "database unreachable", "out of memory");
		return -1;
	}
	if (PQstatus(c) != CONNECTION_OK) {
		migrate_err(err, errlen, "database unreachable", PQerrorMessage(c));
		PQfinish(c);
		return -1;
	}
	PQsetNoticeProcessor(c, migrate_notice_drop, NULL);
	if (migrate_exec(c, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", "taking the migration lock",
			 err, errlen) < 0) {
		PQfinish(c);
		return -1;
	}
	int applied = migrate_locked(c, verbose, err, errlen);
	/* a failed migration leaves its transaction open (aborted): end it, or
	 * the unlock below would fail too */
	if (PQtransactionStatus(c) != PQTRANS_IDLE)
		PQclear(PQexec(c, "ROLLBACK"));
	PQclear(PQexec(c, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")"));
	PQfinish(c);
	return applied;
}
