/* config — environment parsing (see config.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#if __has_include("git_sha.h") /* $(BUILD)/gen, written by the Makefile */
#include "git_sha.h"
#endif
#ifndef MESHBROKER_GIT_SHA
#define MESHBROKER_GIT_SHA "unknown"
#endif

static int env_int(const char *name, int def, long max, int *out, char *err, size_t errlen)
{
	const char *v = getenv(name);
	long n;
	if (!v) {
		*out = def;
		return 0;
	}
	if (parse_pos_int(v, max, &n) != 0) {
		snprintf(err, errlen, "%s must be a positive integer <= %ld, got \"%.40s\"", name, max, v);
		return -1;
	}
	*out = (int)n;
	return 0;
}

/* The scheme only: the full parse needs libpq, which the worker loads only
 * when it opens a database session (db/pq.h); the acceptor checks the whole
 * URL at start-up (pq_check_url), the worker before its first session. */
static int check_db_url(const char *url, char *err, size_t errlen)
{
	if (strncmp(url, "postgres://", 11) != 0 && strncmp(url, "postgresql://", 13) != 0) {
		snprintf(err, errlen, "DATABASE_URL must start with postgres:// or postgresql://");
		return -1;
	}
	return 0;
}

int config_load(struct config *c, int need_db, char *err, size_t errlen)
{
	memset(c, 0, sizeof *c);
	struct {
		const char *name;
		int def;
		long max;
		int *out;
	} ints[] = {
		{"BROKER_PORT", 7900, 65535, &c->broker_port},
		{"STATUS_TTL_SECONDS", 60, 86400 * 365, &c->status_ttl_seconds},
		{"HOOK_FRESH_WINDOW_SECONDS", 30, 86400 * 365, &c->hook_fresh_window_seconds},
		{"MAX_CONNECTIONS_PER_MESH", 100, 1000000, &c->max_connections_per_mesh},
		{"MAX_CONNECTIONS_PER_MEMBER", 10, 1000000, &c->max_connections_per_member},
		{"MAX_MESSAGE_BYTES", 65536, 64L << 20, &c->max_message_bytes},
		{"HOOK_RATE_LIMIT_PER_MIN", 30, 1000000, &c->hook_rate_limit_per_min},
		{"HELLO_TIMEOUT_SECONDS", 10, 3600, &c->hello_timeout_seconds},
		{"DB_IDLE_SECONDS", 30, 86400, &c->db_idle_seconds},
		/* 1: safe through PgBouncer's transaction pooling; 32 is
		 * DB_PIPELINE_MAX (db/db.h) */
		{"DB_PIPELINE_DEPTH", 1, 32, &c->db_pipeline_depth},
		{"PRESENCE_SLOTS", 4096, 1 << 20, &c->presence_slots},
		{"MAX_CONNECTIONS", 1024, 1 << 20, &c->max_connections},
		{"MAX_CONNECTIONS_PER_SOURCE", 64, 1 << 20, &c->max_per_source},
		{"UNAUTH_SHARE_PERCENT", 75, 100, &c->unauth_share_percent},
		{"MEMBER_NEGATIVE_CACHE_SECONDS", 15, 300, &c->member_negative_cache_seconds},
		{"SOURCE_PREFIX_V4", 24, 32, &c->source_prefix_v4},
		{"SOURCE_PREFIX_V6", 64, 128, &c->source_prefix_v6},
		{"HTTP_TIMEOUT_SECONDS", 5, 3600, &c->http_timeout_seconds},
		{"PING_INTERVAL_SECONDS", 30, 3600, &c->ping_interval_seconds},
		{"PONG_TIMEOUT_SECONDS", 75, 3600, &c->pong_timeout_seconds},
		{"SEND_RATE_LIMIT_PER_MIN", 60, 1000000, &c->send_rate_per_min},
		{"SEND_RATE_BURST", 10, 1000000, &c->send_rate_burst},
		{"SEND_BUFFER_BYTES", 65536, 64L << 20, &c->send_buffer_bytes},
		{"SEND_DEADLINE_MS", 10000, 600000, &c->send_deadline_ms},
		{"MAX_TOPICS_PER_MESH", 1000, 1000000, &c->max_topics_per_mesh},
		{"TOPIC_RATE_LIMIT_PER_MIN", 60, 1000000, &c->topic_rate_per_min},
		{"TOPIC_RATE_BURST", 20, 1000000, &c->topic_rate_burst},
		{"REAP_INTERVAL_SECONDS", 10, 3600, &c->reap_interval_seconds},
	};
	for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
		if (env_int(ints[i].name, ints[i].def, ints[i].max, ints[i].out, err, errlen) != 0)
			return -1;
	/* SPARE_WORKERS (the acceptor's): 0 is allowed, and means none */
	const char *sw = getenv("SPARE_WORKERS");
	long spares = CONFIG_SPARE_WORKERS_DEFAULT;
	if (sw && strcmp(sw, "0") != 0 && parse_pos_int(sw, CONFIG_SPARE_WORKERS_MAX, &spares) != 0) {
		snprintf(err, errlen, "SPARE_WORKERS must be an integer from 0 to %d, got \"%.40s\"",
			 CONFIG_SPARE_WORKERS_MAX, sw);
		return -1;
	}
	c->spare_workers = sw && strcmp(sw, "0") == 0 ? 0 : (int)spares;
	c->database_url = getenv("DATABASE_URL");
	if (c->database_url && *c->database_url) {
		if (check_db_url(c->database_url, err, errlen) != 0)
			return -1;
	} else {
		c->database_url = NULL;
		if (need_db) {
			snprintf(err, errlen, "DATABASE_URL is not set");
			return -1;
		}
	}
	/* an explicit switch, never a default: 0 or 1 */
	const char *hl = getenv("HOOK_ALLOW_LOOPBACK_UNAUTHENTICATED");
	if (hl && *hl && strcmp(hl, "0") != 0 && strcmp(hl, "1") != 0) {
		snprintf(err, errlen, "HOOK_ALLOW_LOOPBACK_UNAUTHENTICATED must be 0 or 1");
		return -1;
	}
	c->hook_allow_loopback_unauthenticated = hl && strcmp(hl, "1") == 0;
	/* session_hello (docs/protocol.md §12.1 ext switch): on unless 0 */
	const char *sh = getenv("SESSION_HELLO");
	if (sh && *sh && strcmp(sh, "0") != 0 && strcmp(sh, "1") != 0) {
		snprintf(err, errlen, "SESSION_HELLO must be 0 or 1");
		return -1;
	}
	c->session_hello = !(sh && strcmp(sh, "0") == 0);
	c->status_jsonl_dir = getenv("STATUS_JSONL_DIR");
	if (c->status_jsonl_dir && !*c->status_jsonl_dir)
		c->status_jsonl_dir = NULL;
	c->git_sha = getenv("GIT_SHA");
	if (!c->git_sha || !*c->git_sha)
		c->git_sha = MESHBROKER_GIT_SHA; /* the build's (Makefile), "unknown" outside a checkout */
	c->runtime_dir = getenv("RUNTIME_DIRECTORY");
	if (!c->runtime_dir || !*c->runtime_dir)
		c->runtime_dir = getenv("MESHBROKER_RUNTIME_DIR");
	if (!c->runtime_dir || !*c->runtime_dir)
		c->runtime_dir = "./var/run";
	if (strlen(c->runtime_dir) > 80) {
		snprintf(err, errlen, "MESHBROKER_RUNTIME_DIR is too long for Unix socket paths (max 80 bytes)");
		return -1;
	}
	return 0;
}
