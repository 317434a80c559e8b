/* route_table — every HTTP route of docs/protocol.md §1, §4.3, §5.3, §6 and
 * §12.6 as one row {method, path pattern, auth, capability, topic-scope
 * rule, body limit, body checker, handler} (the shape of worker/phase.c's
 * table).  The table decides, in this order: which row (the first whose
 * method and pattern match), who asks (401), may it (403 capability, 404
 * for a key without an issuing member on a member route), the size (413),
 * the body (the row's pure checker, 400), the topic scope (403), and only
 * then the handler looks at state.  Its refusals share one JSON body:
 * {"error":E,"code":"error.<E>","status":N} (plus "ok":false on the routes
 * whose answers carry it, /hook/set-status and /join). */
#ifndef WORKER_ROUTE_TABLE_H
#define WORKER_ROUTE_TABLE_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "worker/http.h"
#include "worker/route.h"
#include "worker/worker.h"

enum route_auth {
	ROUTE_OPEN,            /* no key read */
	ROUTE_KEY,             /* a Bearer API key (§5.3) */
	ROUTE_KEY_OR_LOOPBACK, /* a key, or none from loopback when HOOK_ALLOW_LOOPBACK_UNAUTHENTICATED (§4.3) */
};

enum route_scope {
	ROUTE_SCOPE_NONE,   /* no topic */
	ROUTE_SCOPE_PATH,   /* the path's :name must be in the key's scopes */
	ROUTE_SCOPE_BODY,   /* the body's topic must be (the checker finds it) */
	ROUTE_SCOPE_FILTER, /* a listing: the handler's statement gets the scopes (ctx->scopes) */
};

#define ROUTE_BODY_NONE ((size_t)0)          /* no body: any byte is 413 */
#define ROUTE_BODY_MAX  ((size_t)SIZE_MAX - 1) /* up to MAX_MESSAGE_BYTES */
#define ROUTE_BODY_ANY  ((size_t)SIZE_MAX)   /* not checked (the answer never reads it) */

/* flags */
#define ROUTE_MEMBER  0x01u /* the key must have an issuing member, else 404 not_found */
#define ROUTE_OK      0x02u /* refusals carry "ok":false (the compat shape of §4.3, §6) */
#define ROUTE_PRIVATE 0x04u /* answers carry no CORS headers (no web page may read them) */
#define ROUTE_UPGRADE 0x08u /* the connection stays pre-auth for the acceptor (the WebSocket) */
#define ROUTE_API     0x10u /* served under /api/v1/… as well as /v1/… (§12.6) */
#define ROUTE_HOOKS   0x20u /* counts in broker_hook_requests_total */
#define ROUTE_ISSUER  0x40u /* with ROUTE_MEMBER: no issuing member is 400 api_key_has_no_issuer (§12.6's writes) */

struct route_row {
	const char *method;     /* NULL: any */
	const char *pattern;    /* segments; ":name" a topic ref, a last "*" any rest; "*" alone any path */
	enum route_auth auth;
	const char *capability; /* '|'-separated alternatives; NULL: any key */
	enum route_scope scope;
	size_t body_max;
	restcheck_fn check;     /* NULL: none */
	route_handler handler;
	unsigned flags;
};

/* the row serving method and path, and *name_ok = 0 when the row's :name
 * segment does not decode (name gets it decoded); never NULL (the last row
 * is the catch-all) */
const struct route_row *route_find(const char *method, const char *path, char name[RESTCHECK_REF_MAX + 1],
				   int *name_ok);
/* the table itself, for tests: n rows, the last one the catch-all */
const struct route_row *route_table(size_t *n);

/* the table as text, one row a line: method, pattern, auth, capability,
 * scope, body limit, flags, tab-separated ("*" any, "-" none); what
 * `meshbroker-worker --routes` prints for tests and operators */
void route_print(FILE *f);

/* Serve one request read with result r (HTTP_READ_OK, or
 * HTTP_READ_TOO_LARGE: the head alone, the body never read). */
void route_request(struct worker *w, struct http_req *req, enum http_read_result r);

#endif
