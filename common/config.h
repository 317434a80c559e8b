/* config — the broker's environment (docs/protocol.md §9), parsed once at start.
 * A bad value stops start-up with a one-line error naming the variable. */
#ifndef COMMON_CONFIG_H
#define COMMON_CONFIG_H

#include <stddef.h>

struct config {
	int broker_port;             /* BROKER_PORT 7900 */
	const char *database_url;    /* DATABASE_URL (required by the worker) */
	int status_ttl_seconds;      /* STATUS_TTL_SECONDS 60 */
	int hook_fresh_window_seconds; /* HOOK_FRESH_WINDOW_SECONDS 30 */
	int max_connections_per_mesh; /* MAX_CONNECTIONS_PER_MESH 100 */
	int max_connections_per_member; /* MAX_CONNECTIONS_PER_MEMBER 10: one member cannot fill its mesh */
	int max_message_bytes;       /* MAX_MESSAGE_BYTES 65536 */
	int hook_rate_limit_per_min; /* HOOK_RATE_LIMIT_PER_MIN 30 */
	int hello_timeout_seconds;   /* HELLO_TIMEOUT_SECONDS 10 */
	const char *status_jsonl_dir; /* STATUS_JSONL_DIR (NULL = off) */
	const char *git_sha;         /* GIT_SHA ("unknown") */
	/* meshbroker's own */
	const char *runtime_dir;     /* RUNTIME_DIRECTORY or MESHBROKER_RUNTIME_DIR, default ./var/run */
	int db_idle_seconds;         /* DB_IDLE_SECONDS 30 */
	int db_pipeline_depth;       /* DB_PIPELINE_DEPTH 1: queries in flight per worker */
	int presence_slots;          /* PRESENCE_SLOTS 4096 */
	int max_connections;         /* MAX_CONNECTIONS 1024 (acceptor) */
	int max_per_source;          /* MAX_CONNECTIONS_PER_SOURCE 64 (acceptor) */
	int unauth_share_percent;    /* UNAUTH_SHARE_PERCENT 75: of MAX_CONNECTIONS, at most this share before a hello (acceptor) */
	int member_negative_cache_seconds; /* MEMBER_NEGATIVE_CACHE_SECONDS 15: how long "not a member" is remembered */
	int source_prefix_v4;        /* SOURCE_PREFIX_V4 24: IPv4 addresses in one /24 are one source */
	int source_prefix_v6;        /* SOURCE_PREFIX_V6 64: IPv6 addresses in one /64 are one source */
	int http_timeout_seconds;    /* HTTP_TIMEOUT_SECONDS 5: whole request must arrive */
	int ping_interval_seconds;   /* PING_INTERVAL_SECONDS 30 */
	int pong_timeout_seconds;    /* PONG_TIMEOUT_SECONDS 75 */
	int send_rate_per_min;       /* SEND_RATE_LIMIT_PER_MIN 60 */
	int send_rate_burst;         /* SEND_RATE_BURST 10 */
	int send_buffer_bytes;       /* SEND_BUFFER_BYTES 65536: SO_SNDBUF of a WebSocket connection */
	int hook_allow_loopback_unauthenticated; /* HOOK_ALLOW_LOOPBACK_UNAUTHENTICATED 0|1, default 0 */
	int session_hello;           /* SESSION_HELLO 1: session_hello accepted (0: unknown_message_type, close 1008) */
	int send_deadline_ms;        /* SEND_DEADLINE_MS 10000: a send undecided this long is answered outcome_unknown */
	int max_topics_per_mesh;     /* MAX_TOPICS_PER_MESH 1000: topic_create beyond it is topic_limit_reached */
	int topic_rate_per_min;      /* TOPIC_RATE_LIMIT_PER_MIN 60: a member's topic create/join/leave/mark_read/add/remove */
	int topic_rate_burst;        /* TOPIC_RATE_BURST 20 */
	int spare_workers;           /* SPARE_WORKERS: workers the acceptor keeps exec'd ahead (0 = fork+exec per connection) */
	int reap_interval_seconds;   /* REAP_INTERVAL_SECONDS 10: a sweep (worker/reap.c) per runtime dir at most this often */
};
#define CONFIG_SPARE_WORKERS_DEFAULT 2 /* docs/design.md "Cost of a worker, second round": the measurement */
#define CONFIG_SPARE_WORKERS_MAX 64

/* need_db: DATABASE_URL must be set.  When set, its scheme is checked here;
 * the rest of it by db/pq.h's pq_check_url, which needs libpq (the acceptor
 * at start-up, the worker before its first database session).  0 ok, -1
 * with err filled. */
int config_load(struct config *c, int need_db, char *err, size_t errlen);

#endif
