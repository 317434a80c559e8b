/* migrations — the SQL files of db/migrations/, embedded at build time
 * (scripts/embed-sql.sh), and the migrator that applies them. */
#ifndef DB_MIGRATIONS_H
#define DB_MIGRATIONS_H

struct migration {
	const char *name; /* "0001_schema" */
	const char *sql;
};
extern const struct migration migrations[];
extern const int migrations_count;

#include <stddef.h>
/* Apply every migration not yet recorded in mesh.schema_migrations, in order,
 * each in its own transaction, all under one advisory lock (two starters never
 * race).  Blocking (used by meshctl and the scripts, never in a worker's loop).
 * Prints one progress line per applied migration to stderr when verbose.
 * Returns the number applied, or -1 with err filled. */
int migrations_apply(const char *database_url, int verbose, char *err, size_t errlen);

#endif
