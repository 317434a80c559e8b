/* pq — libpq, loaded when first needed instead of at exec (issue 13).
 *
 * libpq.so.5 on Debian brings 18 more libraries (OpenSSL, and the Kerberos,
 * LDAP and GnuTLS chain of its GSSAPI and LDAP support).  Linked, they were
 * 10.9M of the 11.7M instructions of a worker's exec and ~980 KiB of an idle
 * worker's private memory, paid by every connection, including those that
 * never reach the database (docs/design.md "Cost of a worker").  Loaded
 * with dlopen, a connection pays for them only when it opens a database
 * session, and a worker whose session closed for idleness (DB_IDLE_SECONDS)
 * unloads them again (pq_unload), except OpenSSL and p11-kit, which are
 * NODELETE.
 *
 * Code keeps calling PQexec, PQgetvalue...: after <libpq-fe.h> (for the
 * types), each function name below is a macro for the loaded pointer, and
 * pq_api() loads the library on first use (log_fatal when it cannot: the
 * package depends on libpq5).  Callers that can fail gracefully call
 * pq_load() first. */
#ifndef DB_PQ_H
#define DB_PQ_H

#include <libpq-fe.h>
#include <stddef.h>

#define PQ_FUNCS(X)                                                                                     \
	X(PQclear) X(PQconnectPoll) X(PQconnectStartParams) X(PQconnectdb) X(PQconnectdbParams)         \
	X(PQconninfoFree) X(PQconninfoParse) X(PQconsumeInput) X(PQenterPipelineMode)                   \
	X(PQerrorMessage) X(PQexec) X(PQexecParams) X(PQfinish) X(PQflush) X(PQfreemem)                 \
	X(PQgetResult) X(PQgetisnull) X(PQgetvalue) X(PQisBusy) X(PQnfields) X(PQntuples)               \
	X(PQpipelineSync) X(PQresultErrorField) X(PQresultErrorMessage) X(PQresultStatus)               \
	X(PQsendQueryParams) X(PQsendPrepare) X(PQsendQueryPrepared) X(PQbackendPID)                    \
	X(PQsetNoticeProcessor) X(PQsetnonblocking) X(PQsocket) X(PQstatus)                             \
	X(PQtransactionStatus)

struct pq_api {
#define PQ_MEMBER(f) __typeof__(f) *f;
	PQ_FUNCS(PQ_MEMBER)
#undef PQ_MEMBER
};

/* Load libpq now: 0 ok (also when it already is), -1 with err filled. */
int pq_load(char *err, size_t errlen);

/* Load libpq with the GSSAPI and LDAP stand-ins of pqstub/ (no Kerberos,
 * OpenLDAP, GnuTLS or p11-kit under it): the worker calls it at start;
 * meshctl and the acceptor load the real libraries.  MESHBROKER_PQ_STUBS=0
 * turns it off.  Before the first pq_load only. */
void pq_lean(void);

/* 1 while libpq is mapped. */
int pq_loaded(void);
/* Unload libpq (and what only it needs, the stand-ins of pq_lean too: the
 * next load opens them again with the same choice) when no connection made
 * through it is open; a no-op under sanitizers, and after PQ_UNLOADS_MAX
 * unloads when libpq runs over its real GSSAPI and LDAP libraries (each
 * load/unload cycle leaks ~100 bytes inside GnuTLS and OpenLDAP, so a worker
 * that keeps waking up keeps the library instead; over the stand-ins there
 * is no such leak and no cap).  1 = unloaded; the freed heap is the
 * caller's to trim (common/idlemem.h). */
#define PQ_UNLOADS_MAX 8
int pq_unload(void);
/* DATABASE_URL as libpq parses it: 0 ok, -1 with a one-line reason in err
 * (loads libpq). */
int pq_check_url(const char *url, char *err, size_t errlen);

/* the table, loaded on first use */
const struct pq_api *pq_api(void);

#ifndef PQ_NO_MACROS /* db/pq.c itself */
#define PQclear (pq_api()->PQclear)
#define PQconnectPoll (pq_api()->PQconnectPoll)
#define PQconnectStartParams (pq_api()->PQconnectStartParams)
#define PQconnectdb (pq_api()->PQconnectdb)
#define PQconnectdbParams (pq_api()->PQconnectdbParams)
#define PQconninfoFree (pq_api()->PQconninfoFree)
#define PQconninfoParse (pq_api()->PQconninfoParse)
#define PQconsumeInput (pq_api()->PQconsumeInput)
#define PQenterPipelineMode (pq_api()->PQenterPipelineMode)
#define PQerrorMessage (pq_api()->PQerrorMessage)
#define PQexec (pq_api()->PQexec)
#define PQexecParams (pq_api()->PQexecParams)
#define PQfinish (pq_api()->PQfinish)
#define PQflush (pq_api()->PQflush)
#define PQfreemem (pq_api()->PQfreemem)
#define PQgetResult (pq_api()->PQgetResult)
#define PQgetisnull (pq_api()->PQgetisnull)
#define PQgetvalue (pq_api()->PQgetvalue)
#define PQisBusy (pq_api()->PQisBusy)
#define PQnfields (pq_api()->PQnfields)
#define PQntuples (pq_api()->PQntuples)
#define PQpipelineSync (pq_api()->PQpipelineSync)
#define PQresultErrorField (pq_api()->PQresultErrorField)
#define PQresultErrorMessage (pq_api()->PQresultErrorMessage)
#define PQresultStatus (pq_api()->PQresultStatus)
#define PQsendQueryParams (pq_api()->PQsendQueryParams)
#define PQsendPrepare (pq_api()->PQsendPrepare)
#define PQsendQueryPrepared (pq_api()->PQsendQueryPrepared)
#define PQbackendPID (pq_api()->PQbackendPID)
#define PQsetNoticeProcessor (pq_api()->PQsetNoticeProcessor)
#define PQsetnonblocking (pq_api()->PQsetnonblocking)
#define PQsocket (pq_api()->PQsocket)
#define PQstatus (pq_api()->PQstatus)
#define PQtransactionStatus (pq_api()->PQtransactionStatus)
#endif

#endif
