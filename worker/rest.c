/* rest — JSON answers of the REST routes (see rest.h). */
#include "worker/rest.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "db/db.h"
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

void rest_error(struct worker *w, int status, const char *error)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "error", error);
	rest_reply(w, status, o);
}

void rest_set(struct rest_answer *a, int status, cJSON *body)
{
	cJSON_Delete(a->body);
	a->status = status;
	a->body = body;
}

void rest_set_error(struct rest_answer *a, int status, const char *error)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "error", error);
	rest_set(a, status, o);
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
