/* restcheck — the checks of the HTTP route table's rows (docs/protocol.md
 * §5.3, §12.6) before any handler touches the database: the path's :name,
 * the query strings and the JSON bodies.  Pure (no socket, no database, no
 * clock), so fuzz/fuzz_rest.c runs every one of them on any input.  Each
 * checker returns 0, or the HTTP status of its refusal with *error the
 * "error" code of the answer.  Strings handed back point into a->json or
 * into a's own buffers. */
#ifndef WORKER_RESTCHECK_H
#define WORKER_RESTCHECK_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/topickey.h"
#include "worker/http.h"
#include "worker/mention.h"

#define RESTCHECK_REF_MAX 128       /* a topic id or name in a path or a body */
#define RESTCHECK_ID_MAX 64         /* a message or member id */
#define RESTCHECK_REPLY_TO_MAX 128  /* replyToId */
#define RESTCHECK_PAGE_DEFAULT 50   /* GET …/messages */
#define RESTCHECK_PAGE_MAX 200
#define RESTCHECK_QUERY_MAX 256     /* one decoded query value */

/* the code of a string field holding U+0000: stored cut or refused, never
 * cut (docs/protocol.md §3.1, the same code as the socket's) */
#define RESTCHECK_NUL "nul_in_field"
/* the code of an opaque field that is not UTF-8 (PostgreSQL text cannot hold it) */
#define RESTCHECK_UTF8 "invalid_utf8"

struct rest_args {
	cJSON *json; /* the parsed body, or NULL */
	/* POST messages */
	const char *topic, *nonce, *ct, *reply_to;
	int prio, version;
	char *names[MENTION_MAX]; /* mentions (freed by restcheck_args_free) */
	int n_names;
	/* POST …/seal */
	const char *member, *enc, *key_nonce;
	struct topickey_sealed sealed;
	/* GET …/messages */
	int limit;
	char before[RESTCHECK_ID_MAX + 1]; /* "" = no cursor */
	/* GET notifications: since (ms since the epoch; has_since 0 = the route's default) */
	int64_t since_ms;
	int has_since, include_all, unread_only;
	/* GET …/stream: the Last-Event-ID header, "" = none */
	char last_event_id[RESTCHECK_ID_MAX + 1];
};
void restcheck_args_free(struct rest_args *a);

typedef int (*restcheck_fn)(const struct http_req *req, size_t max_bytes, struct rest_args *a, const char **error);

/* URL-decode one path segment s[0..n) into out: 0, or -1 when it is empty,
 * longer than RESTCHECK_REF_MAX decoded, holds a bad %-escape, a NUL or a
 * '/' (a name never has one), or is not UTF-8 */
int restcheck_segment(const char *s, size_t n, char out[RESTCHECK_REF_MAX + 1]);
/* the value of query parameter name in url (after '?'), decoded into out:
 * 1 found, 0 absent, -1 malformed or longer than cap - 1 */
int restcheck_query(const char *url, const char *name, char *out, size_t cap);
/* ISO-8601 UTC (YYYY-MM-DDTHH:MM:SS[.fff]Z, or +00:00) or integer epoch
 * milliseconds: 0 with *ms, else -1 */
int restcheck_time(const char *s, int64_t *ms);

/* POST messages: {topic, ciphertext, nonce, priority?, bodyVersion?,
 * mentions?, replyToId?} — the socket's topic-send checks (msgcheck), the
 * opaque fields NUL-free (nul_in_field) and UTF-8 (invalid_utf8), nonce plus
 * ciphertext at most max_bytes (413 payload_too_large) */
int restcheck_post(const struct http_req *req, size_t max_bytes, struct rest_args *a, const char **error);
/* POST …/seal: {memberId, encryptedKey (80 bytes b64), nonce (24)} */
int restcheck_seal(const struct http_req *req, size_t max_bytes, struct rest_args *a, const char **error);
/* GET …/messages?limit=&before= */
int restcheck_page(const struct http_req *req, size_t max_bytes, struct rest_args *a, const char **error);
/* GET notifications?since=&unread=1&include=all */
int restcheck_since(const struct http_req *req, size_t max_bytes, struct rest_args *a, const char **error);
/* GET …/stream: Last-Event-ID (a message id, else ignored) */
int restcheck_stream(const struct http_req *req, size_t max_bytes, struct rest_args *a, const char **error);

#endif
