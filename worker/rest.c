/* rest — JSON answers of the REST routes (see rest.h). */
#include "worker/rest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "db/db.h"
#include "db/store_topic.h"
#include "worker/apikey.h"
#include "worker/skel.h"
#include "worker/http.h"

#define REST_WRITE_MS 5000

void rest_reply(struct worker *w, int status, cJSON *body)
{
	char *s = cJSON_PrintUnformatted(body);
	if (!s)
		log_fatal("out of memory");
	http_respond(w->fd, status, "application/json", NULL, s, strlen(s), REST_WRITE_MS);
	free(s);
	cJSON_Delete(body);
}

void rest_reply_private(struct worker *w, int status, cJSON *body)
{
	char *s = cJSON_PrintUnformatted(body);
	if (!s)
		log_fatal("out of memory");
	http_respond_private(w->fd, status, "application/json", s, strlen(s), REST_WRITE_MS);
	free(s);
	cJSON_Delete(body);
}

cJSON *rest_error_body(int status, const char *error, int ok)
{
	char code[96];
	snprintf(code, sizeof code, "error.%s", error);
	cJSON *o = cJSON_CreateObject();
	if (ok)
		cJSON_AddBoolToObject(o, "ok", 0);
	cJSON_AddStringToObject(o, "error", error);
	cJSON_AddStringToObject(o, "code", code);
	cJSON_AddNumberToObject(o, "status", status);
	return o;
}

void rest_error(struct worker *w, int status, const char *error)
{
	rest_reply(w, status, rest_error_body(status, error, 0));
}

void rest_set(struct rest_answer *a, int status, cJSON *body)
{
	cJSON_Delete(a->body);
	a->status = status;
	a->body = body;
}

void rest_set_error(struct rest_answer *a, int status, const char *error)
{
	rest_set(a, status, rest_error_body(status, error, 0));
}

void rest_finish(struct worker *w, struct rest_answer *a)
{
	if (w->db)
		db_drain_sync(w->db, REST_DB_TIMEOUT_MS);
	if (!a->status)
		rest_set_error(a, 503, "db_unavailable");
	rest_reply(w, a->status, a->body);
	a->body = NULL;
}

struct scope_q {
	int done, found;
	char id[128], name[128];
};

static void scope_cb(void *arg, enum store_topic_status st, const struct topic_key_row *k, const char *err)
{
	struct scope_q *q = arg;
	if (err)
		return;
	q->done = 1;
	if (st == TOPIC_NOT_FOUND || !k)
		return;
	q->found = 1;
	snprintf(q->id, sizeof q->id, "%s", k->topic_id);
	snprintf(q->name, sizeof q->name, "%s", k->name);
}

int rest_topic_scope(struct worker *w, const struct apikey_row *key, const char *ref, const char **error)
{
	if (apikey_topic_allowed(key, ref, ref))
		return 0;
	/* the ref may be the id of a topic scoped by name, or the other way round */
	struct scope_q q = {0};
	*error = "db_unavailable";
	if (worker_db(w) != 0 || store_topic_key(w->db, key->mesh_id, ref, key->member_id, scope_cb, &q) != 0)
		return 503;
	db_drain_sync(w->db, REST_DB_TIMEOUT_MS);
	if (!q.done)
		return 503;
	if (!q.found || apikey_topic_allowed(key, q.name, q.id))
		return 0;
	*error = APIKEY_ERR_TOPIC_SCOPE;
	return 403;
}
