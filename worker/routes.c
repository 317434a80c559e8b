/* routes — the plain HTTP routes of PROTOCOL.md §1 (health, metrics,
 * OPTIONS, 404) and the dispatch of one request to its route. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/log.h"
#include "proto/util.h"
#include "proto/version.h"
#include "worker/hook.h"
#include "worker/worker.h"

#define RESP_TIMEOUT_MS 5000

int worker_shm(struct worker *w)
{
	if (w->shm)
		return 0;
	char err[256];
	if (shm_open_table(w->cfg.runtime_dir, (uint32_t)w->cfg.presence_slots, 0, &w->shm, err, sizeof err) != 0) {
		log_error("presence table unavailable", "error", err);
		return -1;
	}
	return 0;
}

int worker_db(struct worker *w)
{
	if (!w->db)
		w->db = db_new(w->cfg.database_url, w->cfg.db_idle_seconds);
	return w->db ? 0 : -1;
}

struct db_probe {
	int done, ok;
	int64_t value;
};

static void probe_cb(void *arg, const PGresult *res, const char *err)
{
	struct db_probe *p = arg;
	p->done = 1;
	if (err || !res)
		return;
	p->ok = 1;
	if (PQntuples(res) > 0 && PQnfields(res) > 0)
		p->value = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
}

/* One query, run to completion (the worker serves only this request). */
static int probe(struct worker *w, const char *sql, int64_t *value)
{
	struct db_probe p = {0};
	if (worker_db(w) != 0 || db_query(w->db, sql, 0, NULL, probe_cb, &p) != 0)
		return -1;
	db_drain_sync(w->db, 3000);
	if (value)
		*value = p.value;
	return p.ok ? 0 : -1;
}

static void route_health(struct worker *w)
{
	int up = probe(w, "SELECT 1", NULL) == 0;
	int64_t uptime = 0;
	if (worker_shm(w) == 0) {
		uptime = (now_ms() - shm_start_ms(w->shm)) / 1000;
		if (uptime < 0)
			uptime = 0;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "status", up ? "ok" : "degraded");
	cJSON_AddStringToObject(o, "db", up ? "up" : "down");
	cJSON_AddStringToObject(o, "version", MESHBROKER_VERSION);
	cJSON_AddStringToObject(o, "gitSha", w->cfg.git_sha);
	cJSON_AddNumberToObject(o, "uptime", (double)uptime);
	char *body = cJSON_PrintUnformatted(o);
	http_respond(w->fd, up ? 200 : 503, "application/json", NULL, body, strlen(body), RESP_TIMEOUT_MS);
	free(body);
	cJSON_Delete(o);
}

struct mbuf {
	char *p;
	size_t n, cap;
};

static void mb_printf(struct mbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mb_printf(struct mbuf *b, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		va_start(ap, fmt);
		int n = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if (b->p && b->n + (size_t)n < b->cap) {
			b->n += (size_t)n;
			return;
		}
		size_t cap = b->cap ? b->cap * 2 : 8192;
		while (cap < b->n + (size_t)n + 1)
			cap *= 2;
		char *np = realloc(b->p, cap);
		if (!np)
			return;
		b->p = np;
		b->cap = cap;
	}
}

static void family(struct mbuf *b, const char *name, const char *type, const char *help)
{
	mb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void route_metrics(struct worker *w)
{
	struct {
		const char *reason;
		enum shm_counter c;
	} rejected[] = {
		/* label values sorted, as Prometheus prints them */
		{"bad_signature", C_REJ_BAD_SIGNATURE}, {"capacity", C_REJ_CAPACITY},
		{"hello_timeout", C_REJ_HELLO_TIMEOUT},  {"malformed", C_REJ_MALFORMED},
		{"replayed", C_REJ_REPLAYED},            {"table_full", C_REJ_TABLE_FULL},
		{"timestamp_skew", C_REJ_TIMESTAMP_SKEW}, {"unauthorized", C_REJ_UNAUTHORIZED},
	}, routed[] = {
		{"low", C_ROUTED_LOW}, {"next", C_ROUTED_NEXT}, {"now", C_ROUTED_NOW},
	}, msgrej[] = {
		{"db_unavailable", C_MSGREJ_DB_UNAVAILABLE}, {"invalid_priority", C_MSGREJ_INVALID_PRIORITY},
		{"invalid_target", C_MSGREJ_INVALID_TARGET}, {"malformed", C_MSGREJ_MALFORMED},
		{"no_recipient", C_MSGREJ_NO_RECIPIENT},     {"no_such_topic", C_MSGREJ_NO_SUCH_TOPIC},
		{"payload_too_large", C_MSGREJ_PAYLOAD_TOO_LARGE}, {"rate_limit", C_MSGREJ_RATE_LIMIT},
	};
	if (worker_shm(w) != 0) {
		http_respond_error(w->fd, 503, "presence table unavailable", RESP_TIMEOUT_MS);
		return;
	}
	int64_t depth = 0;
	int db_ok = probe(w, "SELECT count(*) FROM mesh.delivery WHERE delivered_at IS NULL", &depth) == 0;
	struct shm *s = w->shm;
	struct mbuf b = {0};
	family(&b, "broker_connections_total", "counter", "WebSocket connection attempts.");
	mb_printf(&b, "broker_connections_total %" PRIu64 "\n", counter_get(s, C_CONNECTIONS_TOTAL));
	family(&b, "broker_connections_rejected_total", "counter", "Hellos refused, by reason.");
	for (size_t i = 0; i < sizeof rejected / sizeof rejected[0]; i++)
		mb_printf(&b, "broker_connections_rejected_total{reason=\"%s\"} %" PRIu64 "\n", rejected[i].reason,
			  counter_get(s, rejected[i].c));
	family(&b, "broker_connections_active", "gauge", "Live authenticated peers (presence slots).");
	mb_printf(&b, "broker_connections_active %d\n", presence_count(s));
	family(&b, "broker_messages_routed_total", "counter", "Messages pushed to a peer, by priority.");
	for (size_t i = 0; i < sizeof routed / sizeof routed[0]; i++)
		mb_printf(&b, "broker_messages_routed_total{priority=\"%s\"} %" PRIu64 "\n", routed[i].reason,
			  counter_get(s, routed[i].c));
	family(&b, "broker_messages_rejected_total", "counter", "Sends refused, by reason.");
	for (size_t i = 0; i < sizeof msgrej / sizeof msgrej[0]; i++)
		mb_printf(&b, "broker_messages_rejected_total{reason=\"%s\"} %" PRIu64 "\n", msgrej[i].reason,
			  counter_get(s, msgrej[i].c));
	family(&b, "broker_queue_depth", "gauge", "Deliveries not yet delivered.");
	mb_printf(&b, "broker_queue_depth %" PRId64 "\n", depth);
	family(&b, "broker_ttl_sweeps_total", "counter", "Stuck working statuses flipped to idle by the TTL.");
	mb_printf(&b, "broker_ttl_sweeps_total %" PRIu64 "\n", counter_get(s, C_TTL_SWEEPS));
	family(&b, "broker_hook_requests_total", "counter", "POST /hook/set-status requests.");
	mb_printf(&b, "broker_hook_requests_total %" PRIu64 "\n", counter_get(s, C_HOOK_REQUESTS));
	family(&b, "broker_hook_requests_rate_limited_total", "counter", "Hook requests refused with 429.");
	mb_printf(&b, "broker_hook_requests_rate_limited_total %" PRIu64 "\n", counter_get(s, C_HOOK_RATE_LIMITED));
	family(&b, "broker_db_healthy", "gauge", "1 when PostgreSQL answered this scrape.");
	mb_printf(&b, "broker_db_healthy %d\n", db_ok);
	http_respond(w->fd, 200, "text/plain; version=0.0.4", NULL, b.p ? b.p : "", b.n, RESP_TIMEOUT_MS);
	free(b.p);
}

void route_request(struct worker *w, struct http_req *req)
{
	const char *m = req->method, *p = req->path;
	if (strcmp(m, "OPTIONS") == 0) {
		http_respond(w->fd, 204, NULL, NULL, NULL, 0, RESP_TIMEOUT_MS);
	} else if (strcmp(p, "/ws") == 0 && strcmp(m, "GET") == 0) {
		ws_serve(w, req);
	} else if (strcmp(p, "/health") == 0 && strcmp(m, "GET") == 0) {
		route_health(w);
	} else if (strcmp(p, "/metrics") == 0 && strcmp(m, "GET") == 0) {
		route_metrics(w);
	} else if (strcmp(p, "/hook/set-status") == 0 && strcmp(m, "POST") == 0) {
		hook_set_status(w, req);
	} else {
		http_respond(w->fd, 404, "text/plain", NULL, "not found", 9, RESP_TIMEOUT_MS);
	}
}
