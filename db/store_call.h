/* store_call — what db/store*.c share to turn a statement into a typed
 * callback: the pending call is copied to the heap and handed to its result
 * adapter, which frees it; and the little readers of a result's cells.
 * Internal to db/ (the store modules), not for callers. */
#ifndef DB_STORE_CALL_H
#define DB_STORE_CALL_H

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "db/db.h"
#include "db/pq.h"

/* send sql with the call (size bytes at call) for adapter; -1 when it could
 * not be queued (the copy is freed then) */
static inline int store_call_send(struct db *d, const char *sql, int n, const char *const *p, db_cb adapter,
				  const void *call, size_t size)
{
	void *cp = malloc(size);
	if (!cp)
		log_fatal("out of memory");
	memcpy(cp, call, size);
	if (db_query(d, sql, n, p, adapter, cp) != 0) {
		free(cp);
		return -1;
	}
	return 0;
}

/* a cell's text, NULL for SQL NULL */
static inline const char *store_val(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

/* a boolean cell: 1 only for true */
static inline int store_is_true(const PGresult *res, int row, int col)
{
	return !PQgetisnull(res, row, col) && strcmp(PQgetvalue(res, row, col), "t") == 0;
}

/* n zeroed rows of size bytes (NULL for none) */
static inline void *store_rows_alloc(int n, size_t size)
{
	void *r = n ? calloc((size_t)n, size) : NULL;
	if (n && !r)
		log_fatal("out of memory");
	return r;
}

#endif
