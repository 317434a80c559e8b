/* apikey — the one Bearer API key check of every REST route
 * (docs/protocol.md §5.3).  A route calls apikey_authorize first; when it
 * returns nonzero the request has already been answered (401/403/503 with the
 * JSON bodies of §5.3) and the route just returns.
 *
 * Stable interface (issue 8; the topic REST routes of issue 9 build on it):
 *
 *   struct apikey_row key;
 *   if (apikey_authorize(w, req, "read", &key) != 0)
 *           return;
 *   if (!apikey_topic_allowed(&key, topic_name, topic_id)) {
 *           apikey_deny(w, 403, APIKEY_ERR_TOPIC_SCOPE);
 *           return;
 *   }
 *   ... key.mesh_id, key.member_id ("" for a mesh-wide key), key.caps ...
 */
#ifndef WORKER_APIKEY_H
#define WORKER_APIKEY_H

#include "db/store.h"
#include "proto/apikey.h"
#include "worker/http.h"
#include "worker/worker.h"

/* the error strings of §5.3 */
#define APIKEY_ERR_MISSING     "api_key_missing"
#define APIKEY_ERR_INVALID     "api_key_invalid"
#define APIKEY_ERR_CAPABILITY  "api_key_missing_capability"
#define APIKEY_ERR_TOPIC_SCOPE "api_key_topic_out_of_scope"

enum apikey_status {
	APIKEY_OK = 0,
	APIKEY_MISSING,     /* no Authorization header */
	APIKEY_INVALID,     /* not a Bearer key, unknown, revoked or expired */
	APIKEY_UNAVAILABLE, /* PostgreSQL did not answer */
};

/* Look the request's Bearer key up (no answer is written).  On APIKEY_OK *out
 * is the key.  The secret is wiped from memory before this returns. */
enum apikey_status apikey_check(struct worker *w, const struct http_req *req, struct apikey_row *out);

/* The check of every REST route: 0 when the request carries a live key with
 * capability (one name, or alternatives separated by '|', e.g. "status|send";
 * NULL = any capability) and *out is the key; otherwise the answer is already
 * written — 401 {"error":"api_key_missing"|"api_key_invalid"}, 403
 * {"error":"api_key_missing_capability"}, 503 when the database is down — and
 * it returns -1. */
int apikey_authorize(struct worker *w, const struct http_req *req, const char *capability, struct apikey_row *out);

/* 1 when the key has one of the '|'-separated capabilities (NULL: any), or
 * admin, which passes every check */
int apikey_has_capability(const struct apikey_row *k, const char *capability);
/* 1 when the key may touch the topic named name or with id id (either may be
 * NULL): a key without topic scopes may touch every topic */
int apikey_topic_allowed(const struct apikey_row *k, const char *name, const char *id);
/* answer {"error": error} with status (application/json, the CORS headers of §1) */
void apikey_deny(struct worker *w, int status, const char *error);

#endif
