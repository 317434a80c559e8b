/* route_table — the HTTP route table and the one dispatcher of a request
 * (see route_table.h).  A new route is a new row; nothing after the table
 * overrides it. */
#include "worker/route_table.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "worker/apikey.h"
#include "worker/hook.h"
#include "worker/rest.h"
#include "worker/routes.h"
#include "worker/skel.h"
#include "worker/source.h"
#include "worker/sse.h"
#include "worker/topic_post.h"
#include "worker/topic_rest.h"

#define KEY ROUTE_KEY
#define OPEN ROUTE_OPEN
#define V1 (ROUTE_API | ROUTE_MEMBER)
#define V1_WRITE (V1 | ROUTE_ISSUER)

static const struct route_row table[] = {
	/* §1: preflight for any path, the peer protocol, health, metrics */
	{"OPTIONS", "*", OPEN, NULL, ROUTE_SCOPE_NONE, ROUTE_BODY_ANY, NULL, route_options, 0},
	{"GET", "/ws", OPEN, NULL, ROUTE_SCOPE_NONE, ROUTE_BODY_NONE, NULL, route_ws, ROUTE_UPGRADE},
	{"GET", "/health", OPEN, NULL, ROUTE_SCOPE_NONE, ROUTE_BODY_NONE, NULL, route_health, 0},
	{"GET", "/metrics", OPEN, NULL, ROUTE_SCOPE_NONE, ROUTE_BODY_NONE, NULL, route_metrics, 0},
	/* §4.3: hook scripts (no CORS: no web page may set a status) */
	{"POST", "/hook/set-status", ROUTE_KEY_OR_LOOPBACK, "status|send", ROUTE_SCOPE_NONE, ROUTE_BODY_MAX, NULL,
	 hook_set_status, ROUTE_OK | ROUTE_PRIVATE | ROUTE_HOOKS},
	/* §6: JSON answers for every method */
	{NULL, "/join", OPEN, NULL, ROUTE_SCOPE_NONE, ROUTE_BODY_MAX, NULL, route_join, ROUTE_OK},
	/* §5.3 and §12.6: the REST API behind a Bearer key, also under /api/v1/ */
	{"GET", "/v1/topics/:name/key", KEY, "read", ROUTE_SCOPE_PATH, ROUTE_BODY_NONE, NULL, topic_rest_key, V1},
	{"GET", "/v1/topics/:name/pending-seals", KEY, "read", ROUTE_SCOPE_PATH, ROUTE_BODY_NONE, NULL,
	 topic_rest_pending, V1},
	{"POST", "/v1/topics/:name/seal", KEY, "send", ROUTE_SCOPE_PATH, ROUTE_BODY_MAX, restcheck_seal,
	 topic_rest_seal, V1},
	{"POST", "/v1/messages", KEY, "send", ROUTE_SCOPE_BODY, ROUTE_BODY_MAX, restcheck_post, topic_post_message,
	 V1_WRITE},
	{"GET", "/v1/notifications", KEY, "read", ROUTE_SCOPE_FILTER, ROUTE_BODY_NONE, restcheck_since,
	 topic_post_notifications, V1},
	{"GET", "/v1/me/notifications", KEY, "read", ROUTE_SCOPE_FILTER, ROUTE_BODY_NONE, restcheck_since,
	 topic_post_me_notifications, V1},
	{"GET", "/v1/topics/:name/messages", KEY, "read", ROUTE_SCOPE_PATH, ROUTE_BODY_NONE, restcheck_page,
	 topic_rest_messages, V1},
	{"GET", "/v1/topics/:name/stream", KEY, "read", ROUTE_SCOPE_PATH, ROUTE_BODY_NONE, restcheck_stream, sse_stream,
	 V1},
	{"PATCH", "/v1/topics/:name/read", KEY, "read", ROUTE_SCOPE_PATH, ROUTE_BODY_NONE, NULL, topic_rest_read,
	 V1_WRITE},
	{"GET", "/v1/topics", KEY, "read", ROUTE_SCOPE_FILTER, ROUTE_BODY_NONE, NULL, topic_rest_topics, V1},
	{"GET", "/v1/me/topics", KEY, "read", ROUTE_SCOPE_FILTER, ROUTE_BODY_NONE, NULL, topic_rest_me_topics, V1},
	/* anything else under /v1/: the key first (an unauthenticated caller
	 * learns nothing, not even which routes exist), then 404 */
	{NULL, "/v1/*", KEY, NULL, ROUTE_SCOPE_NONE, ROUTE_BODY_ANY, NULL, route_api_not_found, ROUTE_API},
	/* last: anything else, 404 text (§1) */
	{NULL, NULL, OPEN, NULL, ROUTE_SCOPE_NONE, ROUTE_BODY_ANY, NULL, route_not_found, 0},
};
#define NROWS (sizeof table / sizeof table[0])

const struct route_row *route_table(size_t *n)
{
	*n = NROWS;
	return table;
}

/* path against pattern: 1 when it matches (a ":name" segment decoded into
 * name, *name_ok 0 when it does not decode) */
static int path_match(const char *pattern, const char *path, char name[RESTCHECK_REF_MAX + 1], int *name_ok)
{
	if (strcmp(pattern, "*") == 0)
		return 1;
	const char *p = pattern, *s = path;
	while (*p) {
		if (*p != '/' || *s != '/')
			return 0;
		p++;
		s++;
		size_t pl = strcspn(p, "/"), sl = strcspn(s, "/");
		if (pl == 1 && *p == '*' && !p[1])
			return 1;
		if (pl == 5 && strncmp(p, ":name", 5) == 0) {
			if (sl == 0)
				return 0;
			*name_ok = restcheck_segment(s, sl, name) == 0;
		} else if (pl != sl || strncmp(p, s, pl) != 0) {
			return 0;
		}
		p += pl;
		s += sl;
	}
	return *s == 0;
}

const struct route_row *route_find(const char *method, const char *path, char name[RESTCHECK_REF_MAX + 1],
				   int *name_ok)
{
	static const char api[] = "/api";
	const char *alias = strncmp(path, "/api/v1/", 8) == 0 ? path + sizeof api - 1 : NULL;
	for (size_t i = 0; i + 1 < NROWS; i++) {
		const struct route_row *r = &table[i];
		if (r->method && strcmp(r->method, method) != 0)
			continue;
		name[0] = 0;
		*name_ok = 1;
		if (path_match(r->pattern, path, name, name_ok) ||
		    (alias && (r->flags & ROUTE_API) && path_match(r->pattern, alias, name, name_ok)))
			return r;
	}
	name[0] = 0;
	*name_ok = 1;
	return &table[NROWS - 1];
}

/* the one refusal body of the table (and of rest_error) */
static void refuse(struct worker *w, const struct route_row *r, int status, const char *error)
{
	cJSON *o = rest_error_body(status, error, (r->flags & ROUTE_OK) != 0);
	if (r->flags & ROUTE_PRIVATE)
		rest_reply_private(w, status, o);
	else
		rest_reply(w, status, o);
}

/* who asks: 0 (c->have_key says whether with a key), or the refusal's status with *error */
static int authenticate(struct worker *w, const struct http_req *req, const struct route_row *r, struct route_ctx *c,
			const char **error)
{
	if (r->auth == ROUTE_OPEN)
		return 0;
	switch (apikey_check(w, req, &c->key)) {
	case APIKEY_OK:
		c->have_key = 1;
		break;
	case APIKEY_MISSING: {
		char src[SOURCE_ADDR_MAX];
		source_of(w->fd, w->remote_addr, src, sizeof src);
		if (r->auth == ROUTE_KEY_OR_LOOPBACK &&
		    source_may_skip_key(w->cfg.hook_allow_loopback_unauthenticated, src, req->origin, req->forwarded))
			return 0;
		*error = APIKEY_ERR_MISSING;
		return 401;
	}
	case APIKEY_INVALID:
		log_info("api key refused", "reason", APIKEY_ERR_INVALID, "remote", w->remote_addr);
		*error = APIKEY_ERR_INVALID;
		return 401;
	default:
		*error = "db_unavailable";
		return 503;
	}
	if (!apikey_has_capability(&c->key, r->capability)) {
		log_info("api key refused", "reason", APIKEY_ERR_CAPABILITY, "key", c->key.prefix);
		*error = APIKEY_ERR_CAPABILITY;
		return 403;
	}
	/* a mesh-wide key has no topic keys, posts or notifications of its
	 * own: to it the member routes do not exist */
	if ((r->flags & ROUTE_MEMBER) && !c->key.member_id[0]) {
		*error = r->flags & ROUTE_ISSUER ? "api_key_has_no_issuer" : "not_found";
		return r->flags & ROUTE_ISSUER ? 400 : 404;
	}
	return 0;
}

/* everything the table checks; 0 when the handler may run, else the status
 * of the refusal with *error */
static int route_admit(struct worker *w, struct http_req *req, enum http_read_result rr, struct route_ctx *c,
		       int name_ok, const char **error)
{
	const struct route_row *r = c->row;
	int st = authenticate(w, req, r, c, error);
	if (st)
		return st;
	size_t max = (size_t)w->cfg.max_message_bytes;
	if (r->body_max != ROUTE_BODY_ANY &&
	    (rr == HTTP_READ_TOO_LARGE || req->body_len > (r->body_max == ROUTE_BODY_MAX ? max : r->body_max))) {
		*error = "payload_too_large";
		return 413;
	}
	if (!name_ok) {
		*error = "topic_not_found";
		return 404;
	}
	if (r->check && (st = r->check(req, max, &c->args, error)) != 0)
		return st;
	if (r->scope == ROUTE_SCOPE_BODY && c->args.topic)
		snprintf(c->topic, sizeof c->topic, "%s", c->args.topic);
	if (c->have_key && (r->scope == ROUTE_SCOPE_PATH || r->scope == ROUTE_SCOPE_BODY))
		return rest_topic_scope(w, &c->key, c->topic, error);
	return 0;
}

void route_print(FILE *f)
{
	static const char *const auth[] = {"open", "key", "key_or_loopback"},
				  *const scope[] = {"none", "path", "body", "filter"};
	for (size_t i = 0; i < NROWS; i++) {
		const struct route_row *r = &table[i];
		const char *body = r->body_max == ROUTE_BODY_NONE ? "none" : r->body_max == ROUTE_BODY_MAX ? "max" : "any";
		fprintf(f, "%s\t%s\t%s\t%s\t%s\t%s\t%s%s%s%s%s%s%s-\n", r->method ? r->method : "*",
			r->pattern ? r->pattern : "*", auth[r->auth], r->capability ? r->capability : "-", scope[r->scope],
			body, r->flags & ROUTE_MEMBER ? "member," : "", r->flags & ROUTE_OK ? "ok," : "",
			r->flags & ROUTE_PRIVATE ? "private," : "", r->flags & ROUTE_UPGRADE ? "upgrade," : "",
			r->flags & ROUTE_API ? "api," : "", r->flags & ROUTE_HOOKS ? "hooks," : "",
			r->flags & ROUTE_ISSUER ? "issuer," : "");
	}
}

void route_request(struct worker *w, struct http_req *req, enum http_read_result rr)
{
	static struct route_ctx c; /* the one request of this worker (the key is big) */
	memset(&c, 0, sizeof c);
	int name_ok;
	c.row = route_find(req->method, req->path, c.topic, &name_ok);
	const struct route_row *r = c.row;
	/* a whole request of a plain route: served now, and no longer the
	 * acceptor's to evict (a WebSocket stays PREAUTH until its hello) */
	if (!(r->flags & ROUTE_UPGRADE))
		worker_child_mark(w, CHILD_BIT(CHILD_PREAUTH), CHILD_HTTP);
	if ((r->flags & ROUTE_HOOKS) && worker_shm(w) == 0)
		counter_add(w->shm, C_HOOK_REQUESTS, 1);
	const char *error = NULL;
	int st = route_admit(w, req, rr, &c, name_ok, &error);
	if (st)
		refuse(w, r, st, error);
	else
		r->handler(w, req, &c);
	restcheck_args_free(&c.args);
}
