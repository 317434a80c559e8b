/* phase — the peer protocol's dispatch table (the OpenSSH monitor's
 * mon_dispatch_proto20[] idea): each row is a message type, the phases in
 * which it is legal, the error it gets in each other phase, and its handler.
 * The lookup consults only the table; a new message type is a new row. */
#ifndef WORKER_PHASE_H
#define WORKER_PHASE_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "proto/reasons.h"
#include "worker/worker.h"

typedef void (*phase_handler)(struct worker *w, const cJSON *msg);

struct phase_row {
	const char *type; /* NULL: the last row, for a missing or unknown type */
	unsigned legal;   /* PHASE_BIT()s in which handler runs */
	enum peer_error refused[PHASE_COUNT]; /* the error in a phase where it is not legal (NONE: dropped) */
	phase_handler handler;
	int own_nul_refusal; /* 1: the handler refuses a frame holding \u0000 itself (send: with an ack) */
};

/* what to do with a message of type (NULL when it has none) in phase:
 * handler set, or error (PEER_ERR_NONE: nothing at all) */
struct phase_verdict {
	phase_handler handler;
	enum peer_error error;
	int own_nul_refusal; /* the row's flag, with the handler */
};
struct phase_verdict phase_lookup(const char *type, enum phase phase);

/* the table itself, for tests: n rows, the last one the catch-all */
const struct phase_row *phase_table(size_t *n);

#define PHASE_TYPE_SHOWN 64 /* bytes of an unknown type named in its error */

/* one text frame from the client: parse, look up, run or refuse; while the
 * handler runs, w->req_id holds the request's _reqId (§12.7, at most 128
 * bytes, "" when none) and every frame sent carries it; a handler that
 * answers later copies it into its reply */
void phase_dispatch(struct worker *w, const char *text, size_t len);

#endif
