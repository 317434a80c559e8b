/* apikey — the Bearer check shared by every REST route (see apikey.h): the
 * secret is hashed (sha256 hex) and looked up; only the hash and the prefix
 * are ever stored, and the secret never reaches a log line. */
#include "worker/apikey.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "worker/skel.h"

#define APIKEY_TIMEOUT_MS    5000
#define APIKEY_DB_TIMEOUT_MS 3000

struct lookup {
	int done, found;
	const char *err;
	struct apikey_row *row;
};

static void lookup_cb(void *arg, int found, const struct apikey_row *row, const char *err)
{
	struct lookup *l = arg;
	l->done = 1;
	l->err = err ? "db" : NULL;
	if (err)
		log_warn("api key lookup failed", "error", err);
	l->found = found;
	if (found)
		*l->row = *row;
}

enum apikey_status apikey_check(struct worker *w, const struct http_req *req, struct apikey_row *out)
{
	char secret[APIKEY_SECRET_MAX + 1], hash[APIKEY_HASH_HEX];
	memset(out, 0, sizeof *out);
	if (!req->authorization[0])
		return APIKEY_MISSING;
	if (apikey_bearer(req->authorization, secret, sizeof secret) != 0) {
		sodium_memzero(secret, sizeof secret);
		return APIKEY_INVALID;
	}
	/* a token that is not of the cm_ form cannot be a key: no query */
	int well_formed = apikey_well_formed(secret);
	apikey_hash(secret, hash);
	sodium_memzero(secret, sizeof secret);
	if (!well_formed)
		return APIKEY_INVALID;
	struct lookup l = {.row = out};
	if (worker_db(w) != 0 || store_apikey_use(w->db, hash, lookup_cb, &l) != 0)
		return APIKEY_UNAVAILABLE;
	db_drain_sync(w->db, APIKEY_DB_TIMEOUT_MS);
	if (!l.done || l.err)
		return APIKEY_UNAVAILABLE;
	return l.found ? APIKEY_OK : APIKEY_INVALID;
}

int apikey_has_capability(const struct apikey_row *k, const char *capability)
{
	if (!capability || (k->caps & APIKEY_CAP_ADMIN))
		return 1; /* admin passes every capability check (docs/protocol.md §12.5) */
	const char *p = capability;
	while (*p) {
		size_t n = strcspn(p, "|");
		char name[32];
		if (n < sizeof name) {
			memcpy(name, p, n);
			name[n] = 0;
			unsigned bit = apikey_cap_bit(name);
			if (bit && (k->caps & bit))
				return 1;
		}
		p += n;
		if (*p == '|')
			p++;
	}
	return 0;
}

int apikey_topic_allowed(const struct apikey_row *k, const char *name, const char *id)
{
	if (k->n_topics < 0)
		return 1;
	for (int i = 0; i < k->n_topics; i++)
		if ((name && strcmp(k->topics[i], name) == 0) || (id && strcmp(k->topics[i], id) == 0))
			return 1;
	return 0;
}

void apikey_deny(struct worker *w, int status, const char *error)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "error", error);
	char *s = cJSON_PrintUnformatted(o);
	http_respond(w->fd, status, "application/json", NULL, s, strlen(s), APIKEY_TIMEOUT_MS);
	free(s);
	cJSON_Delete(o);
}

int apikey_authorize(struct worker *w, const struct http_req *req, const char *capability, struct apikey_row *out)
{
	switch (apikey_check(w, req, out)) {
	case APIKEY_OK:
		break;
	case APIKEY_MISSING:
		apikey_deny(w, 401, APIKEY_ERR_MISSING);
		return -1;
	case APIKEY_INVALID:
		log_info("api key refused", "reason", APIKEY_ERR_INVALID, "remote", w->remote_addr);
		apikey_deny(w, 401, APIKEY_ERR_INVALID);
		return -1;
	default:
		apikey_deny(w, 503, "database unavailable");
		return -1;
	}
	if (!apikey_has_capability(out, capability)) {
		log_info("api key refused", "reason", APIKEY_ERR_CAPABILITY, "key", out->prefix);
		apikey_deny(w, 403, APIKEY_ERR_CAPABILITY);
		return -1;
	}
	return 0;
}
