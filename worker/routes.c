/* routes — the plain HTTP routes of docs/protocol.md §1 (health, metrics,
 * OPTIONS, the upgrade, 404), rows of worker/route_table.c. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "proto/version.h"
#include "db/store.h"
#include "shm/histo.h"
#include "worker/join.h"
#include "worker/rest.h"
#include "worker/routes.h"
#include "worker/session.h"
#include "worker/skel.h"

#define RESP_TIMEOUT_MS 5000
#define PROBE_TIMEOUT_MS 3000

struct db_probe {
	int done, ok;
	int64_t value;
};

static void probe_cb(void *arg, int64_t value, const char *err)
{
	struct db_probe *p = arg;
	p->done = 1;
	if (err)
		return;
	p->ok = 1;
	p->value = value;
}

/* One statement, run to completion (the worker serves only this request). */
static int probe(struct worker *w, int (*stmt)(struct db *, store_count_cb, void *), int64_t *value)
{
	struct db_probe p = {0};
	if (worker_db(w) != 0 || stmt(w->db, probe_cb, &p) != 0)
		return -1;
	db_drain_sync(w->db, PROBE_TIMEOUT_MS);
	if (value)
		*value = p.value;
	return p.ok ? 0 : -1;
}

struct db_text {
	int done, ok;
	char value[128];
};

static void text_cb(void *arg, const char *value, const char *err)
{
	struct db_text *t = arg;
	t->done = 1;
	if (err)
		return;
	t->ok = 1;
	snprintf(t->value, sizeof t->value, "%s", value ? value : "");
}

/* "up", "down" (no answer) or "unmigrated" (the schema is missing or older
 * than this binary: every hello would fail); schema: the newest migration
 * recorded, "" when none */
static const char *health_db(struct worker *w, char *schema, size_t len)
{
	int64_t table = 0;
	schema[0] = 0;
	if (probe(w, store_schema_table, &table) != 0)
		return "down";
	if (!table)
		return "unmigrated";
	struct db_text t = {0};
	if (store_schema_version(w->db, text_cb, &t) != 0)
		return "down";
	db_drain_sync(w->db, PROBE_TIMEOUT_MS);
	if (!t.ok)
		return "down";
	snprintf(schema, len, "%s", t.value);
	return *schema && strcmp(schema, store_schema_expected()) >= 0 ? "up" : "unmigrated";
}

void route_health(struct worker *w, struct http_req *req, struct route_ctx *c)
{
	(void)req;
	(void)c;
	char schema[128];
	const char *dbs = health_db(w, schema, sizeof schema);
	int up = strcmp(dbs, "up") == 0;
	int64_t uptime = 0;
	if (worker_shm(w) == 0) {
		uptime = (now_ms() - shm_start_ms(w->shm)) / 1000;
		if (uptime < 0)
			uptime = 0;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "status", up ? "ok" : "degraded");
	cJSON_AddStringToObject(o, "db", dbs);
	if (*schema)
		cJSON_AddStringToObject(o, "schema", schema);
	else
		cJSON_AddNullToObject(o, "schema");
	cJSON_AddStringToObject(o, "schemaExpected", store_schema_expected());
	cJSON_AddStringToObject(o, "version", MESHBROKER_VERSION);
	cJSON_AddStringToObject(o, "gitSha", w->cfg.git_sha);
	cJSON_AddNumberToObject(o, "uptime", (double)uptime);
	cJSON_AddNumberToObject(o, "now", (double)now_ms()); /* epoch ms: meshctl doctor's clock check */
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

struct labelled {
	const char *label;
	enum shm_counter c;
};

static int labelled_cmp(const void *a, const void *b)
{
	return strcmp(((const struct labelled *)a)->label, ((const struct labelled *)b)->label);
}

/* one labelled family, label values sorted as Prometheus prints them */
static void labelled_family(struct mbuf *b, struct shm *s, const char *name, const char *key,
			    const struct labelled *rows, size_t n)
{
	struct labelled sorted[32];
	if (n > sizeof sorted / sizeof sorted[0])
		log_fatal("metrics: too many labels", "metric", name);
	memcpy(sorted, rows, n * sizeof *rows);
	qsort(sorted, n, sizeof *sorted, labelled_cmp);
	for (size_t i = 0; i < n; i++)
		mb_printf(b, "%s{%s=\"%s\"} %" PRIu64 "\n", name, key, sorted[i].label, counter_get(s, sorted[i].c));
}

/* a Prometheus histogram: cumulative buckets by le (0.5 ms .. 10 s, +Inf),
 * the sum in seconds, the count (the +Inf bucket) */
static void histogram(struct mbuf *b, const struct histo_area *a, enum histo_id h)
{
	uint64_t counts[HISTO_BOUNDS + 1], sum_us, cum = 0;
	histo_read(a, h, counts, &sum_us);
	family(b, histo_names[h], "histogram", histo_helps[h]);
	for (int i = 0; i <= HISTO_BOUNDS; i++) {
		cum += counts[i];
		if (i < HISTO_BOUNDS)
			mb_printf(b, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", histo_names[h],
				  (double)histo_bounds_us[i] / 1e6, cum);
		else
			mb_printf(b, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", histo_names[h], cum);
	}
	mb_printf(b, "%s_sum %.6f\n", histo_names[h], (double)sum_us / 1e6);
	mb_printf(b, "%s_count %" PRIu64 "\n", histo_names[h], cum);
}

/* a label value as the text format wants it: \\, \" and \n escaped, cut at cap */
static const char *label_escape(const char *in, char *out, size_t cap)
{
	size_t n = 0;
	for (; *in && n + 3 < cap; in++) {
		if (*in == '\\' || *in == '"' || *in == '\n')
			out[n++] = '\\';
		out[n++] = *in == '\n' ? 'n' : *in;
	}
	out[n] = 0;
	return out;
}

/* meshbroker_build_info and, while an acceptor runs (not under systemd's
 * Accept=yes), its process gauges, which it publishes in the table */
static void build_and_acceptor(struct mbuf *b, struct worker *w)
{
	family(b, "meshbroker_build_info", "gauge", "Always 1: the broker's version and git commit.");
	char sha[160];
	mb_printf(b, "meshbroker_build_info{version=\"%s\",git_sha=\"%s\"} 1\n", MESHBROKER_VERSION,
		  label_escape(w->cfg.git_sha, sha, sizeof sha));
	struct acceptor_view v;
	int up = histo_acceptor_read(shm_histo(w->shm), now_ms(), &v);
	family(b, "meshbroker_acceptor_up", "gauge",
	       "1 while meshbroker-accept publishes its gauges (0 under systemd's Accept=yes).");
	mb_printf(b, "meshbroker_acceptor_up %d\n", up);
	if (!up)
		return;
	static const struct {
		const char *name, *type, *help;
		int scale; /* 0: as is; 1: ms -> s; 2: us -> s */
	} g[] = {
		{"meshbroker_acceptor_process_start_time_seconds", "gauge",
		 "Start time of meshbroker-accept since the epoch, in seconds.", 1},
		{"meshbroker_acceptor_process_open_fds", "gauge", "Open file descriptors of meshbroker-accept.", 0},
		{"meshbroker_acceptor_process_max_fds", "gauge", "File descriptor limit of meshbroker-accept.", 0},
		{"meshbroker_acceptor_process_resident_memory_bytes", "gauge", "Resident memory of meshbroker-accept.", 0},
		{"meshbroker_acceptor_process_cpu_seconds_total", "counter",
		 "User and system CPU time of meshbroker-accept, in seconds.", 2},
	};
	const int64_t vals[] = {v.start_ms, v.open_fds, v.max_fds, v.resident_bytes, v.cpu_us};
	for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) {
		family(b, g[i].name, g[i].type, g[i].help);
		if (g[i].scale == 0)
			mb_printf(b, "%s %" PRId64 "\n", g[i].name, vals[i]);
		else
			mb_printf(b, "%s %.3f\n", g[i].name, (double)vals[i] / (g[i].scale == 1 ? 1e3 : 1e6));
	}
}

void route_metrics(struct worker *w, struct http_req *req, struct route_ctx *c)
{
	(void)req;
	(void)c;
	static const struct labelled rejected[] = {
#define X(id, label, code, message) {label, C_REJ_##id},
		HELLO_REJECTIONS(X)
#undef X
	}, routed[] = {
		{"low", C_ROUTED_LOW}, {"next", C_ROUTED_NEXT}, {"now", C_ROUTED_NOW},
	}, msgrej[] = {
#define X(id, label, code, message) {label, C_MSGREJ_##id},
		SEND_REJECTIONS(X)
#undef X
	}, refused[] = {
#define X(id, label) {label, C_ACC_##id},
		ACCEPT_REFUSALS(X)
#undef X
	}, evicted[] = {
#define X(id, label) {label, C_EVICT_##id},
		ACCEPT_EVICTIONS(X)
#undef X
	}, lookups[] = {
#define X(id, label) {label, C_LOOKUP_##id},
		MEMBER_LOOKUPS(X)
#undef X
	};
	if (worker_shm(w) != 0) {
		http_respond_error(w->fd, 503, "presence table unavailable", RESP_TIMEOUT_MS);
		return;
	}
	int64_t depth = 0;
	int db_ok = probe(w, store_queue_depth, &depth) == 0;
	struct shm *s = w->shm;
	struct mbuf b = {0};
	family(&b, "broker_connections_total", "counter", "WebSocket connection attempts.");
	mb_printf(&b, "broker_connections_total %" PRIu64 "\n", counter_get(s, C_CONNECTIONS_TOTAL));
	family(&b, "broker_connections_rejected_total", "counter", "Hellos refused, by reason.");
	labelled_family(&b, s, "broker_connections_rejected_total", "reason", rejected,
			sizeof rejected / sizeof rejected[0]);
	family(&b, "broker_connections_refused_total", "counter",
	       "Connections the acceptor refused before a worker ran, by reason.");
	labelled_family(&b, s, "broker_connections_refused_total", "reason", refused,
			sizeof refused / sizeof refused[0]);
	family(&b, "broker_connections_evicted_total", "counter",
	       "Connections before their hello that the acceptor closed to make room, by reason.");
	labelled_family(&b, s, "broker_connections_evicted_total", "reason", evicted,
			sizeof evicted / sizeof evicted[0]);
	family(&b, "broker_member_lookups_total", "counter",
	       "Membership lookups of hellos, by result (negative_cache_hit: answered without the database).");
	labelled_family(&b, s, "broker_member_lookups_total", "result", lookups, sizeof lookups / sizeof lookups[0]);
	family(&b, "broker_connections_active", "gauge", "Live authenticated peers (presence slots).");
	mb_printf(&b, "broker_connections_active %d\n", presence_count(s));
	family(&b, "broker_messages_routed_total", "counter", "Messages pushed to a peer, by priority.");
	labelled_family(&b, s, "broker_messages_routed_total", "priority", routed, sizeof routed / sizeof routed[0]);
	family(&b, "broker_messages_rejected_total", "counter", "Sends refused, by reason.");
	labelled_family(&b, s, "broker_messages_rejected_total", "reason", msgrej, sizeof msgrej / sizeof msgrej[0]);
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
	for (int h = 0; h < H_MAX; h++)
		histogram(&b, shm_histo(s), (enum histo_id)h);
	build_and_acceptor(&b, w);
	http_respond(w->fd, 200, "text/plain; version=0.0.4", NULL, b.p ? b.p : "", b.n, RESP_TIMEOUT_MS);
	free(b.p);
}

void route_options(struct worker *w, struct http_req *req, struct route_ctx *c)
{
	(void)req;
	(void)c;
	http_respond(w->fd, 204, NULL, NULL, NULL, 0, RESP_TIMEOUT_MS);
}

void route_ws(struct worker *w, struct http_req *req, struct route_ctx *c)
{
	(void)c;
	skel_serve_ws(w, req, &session_hooks);
}

void route_join(struct worker *w, struct http_req *req, struct route_ctx *c)
{
	(void)c;
	join_request(w, req); /* JSON answers for every method (§6) */
}

void route_api_not_found(struct worker *w, struct http_req *req, struct route_ctx *c)
{
	(void)req;
	(void)c;
	rest_error(w, 404, "not_found");
}

void route_not_found(struct worker *w, struct http_req *req, struct route_ctx *c)
{
	(void)req;
	(void)c;
	http_respond(w->fd, 404, "text/plain", NULL, "not found", 9, RESP_TIMEOUT_MS);
}
