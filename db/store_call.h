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
 * not be queued (the copy is freed then).  hot: a statement of every
 * message, sent with db_query_prepared (sql a string constant) */
static inline int store_call_send_as(struct db *d, int hot, const char *sql, int n, const char *const *p,
				     db_cb adapter, const void *call, size_t size)
{
	void *cp = malloc(size);
	if (!cp)
		log_fatal("out of memory");
	memcpy(cp, call, size);
	if ((hot ? db_query_prepared : db_query)(d, sql, n, p, adapter, cp) != 0) {
		free(cp);
		return -1;
	}
	return 0;
}

static inline int store_call_send(struct db *d, const char *sql, int n, const char *const *p, db_cb adapter,
				  const void *call, size_t size)
{
	return store_call_send_as(d, 0, sql, n, p, adapter, call, size);
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

/* "{a,b}" text[] literal of n strings: every element quoted, quotes and
 * backslashes escaped, a NULL pointer an SQL NULL element; the caller frees */
static inline char *store_text_array(const char *const *v, int n)
{
	size_t cap = 3;
	for (int i = 0; i < n; i++)
		cap += (v[i] ? 2 * strlen(v[i]) : 4) + 3;
	char *out = malloc(cap), *o = out;
	if (!out)
		log_fatal("out of memory");
	*o++ = '{';
	for (int i = 0; i < n; i++) {
		if (i)
			*o++ = ',';
		if (!v[i]) {
			memcpy(o, "NULL", 4);
			o += 4;
			continue;
		}
		*o++ = '"';
		for (const char *s = v[i]; *s; s++) {
			if (*s == '"' || *s == '\\')
				*o++ = '\\';
			*o++ = *s;
		}
		*o++ = '"';
	}
	*o++ = '}';
	*o = 0;
	return out;
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
