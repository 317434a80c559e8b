/* route — what a row of the HTTP route table (worker/route_table.c) hands
 * its handler: the request's key (checked by the table: capability, issuing
 * member, topic scope), the topic the path or the body names and what the
 * row's body checker (worker/restcheck.h) parsed.  Types only: handlers
 * include this header, never the table's, so no module calls back into the
 * dispatcher. */
#ifndef WORKER_ROUTE_H
#define WORKER_ROUTE_H

#include "db/store.h"
#include "worker/http.h"
#include "worker/restcheck.h"
#include "worker/worker.h"

struct route_row;

struct route_ctx {
	const struct route_row *row;
	struct apikey_row key; /* when have_key */
	int have_key;          /* 0: an open route, or the hook's laptop mode */
	char topic[RESTCHECK_REF_MAX + 1]; /* the path's :name (decoded) or the body's topic, "" when none */
	struct rest_args args;             /* what the row's checker parsed (restcheck_args_free) */
};

typedef void (*route_handler)(struct worker *w, struct http_req *req, struct route_ctx *c);

#endif
