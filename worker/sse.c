/* sse — the topic stream (see sse.h).  One loop: the client socket (only to
 * notice it went away), the worker socket's doorbells, a poll every
 * SSE_POLL_MS (the member's own posts wake no one of its own; a revoked key
 * ends the stream) and a heartbeat every PING_INTERVAL_SECONDS.  Each look
 * reads the messages after the cursor, oldest first, and writes them as
 * `message` events whose id is the message id. */
#include "worker/sse.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "db/store_topic.h"
#include "worker/rest.h"
#include "worker/skel.h"
#include "worker/topic_rest.h"
#include "worker/uds.h"

#define SSE_WRITE_MS 5000 /* a client that reads nothing for this long is dropped */

struct sse {
	struct worker *w;
	const struct route_ctx *c;
	char topic_id[RESTCHECK_REF_MAX + 1], name[RESTCHECK_REF_MAX + 1];
	char cursor[RESTCHECK_ID_MAX + 1]; /* the last message written (or the newest at the start), "" none */
	int wake;                          /* a doorbell rang since the last look */
	int failed;                        /* the client is gone, or the stream must end */
	/* the statement in flight */
	int done, more, cursor_found;
	enum store_topic_status st;
	const char *err;
};

/* ---- what the worker socket reports (w->hooks) ---- */

static void sse_on_wake(struct worker *w)
{
	if (w->sse)
		w->sse->wake = 1;
}

static void sse_on_status(struct worker *w, int status, int source)
{
	(void)w;
	(void)status;
	(void)source; /* a stream has no status */
}

static void sse_on_nothing(struct worker *w)
{
	(void)w;
}

static const struct worker_hooks sse_hooks = {
	.on_wake = sse_on_wake,
	.on_status = sse_on_status,
	.on_replaced = sse_on_nothing,
};

/* ---- writing events ---- */

static void sse_write(struct sse *s, const char *text, size_t len)
{
	if (!s->failed && http_write_all(s->w->fd, text, len, SSE_WRITE_MS) != 0)
		s->failed = 1;
}

/* one event; id may be NULL */
static void sse_event(struct sse *s, const char *event, const char *id, const char *data)
{
	size_t n = strlen(data) + strlen(event) + (id ? strlen(id) : 0) + 32;
	char *buf = malloc(n);
	if (!buf)
		log_fatal("out of memory");
	int len = snprintf(buf, n, "%s%s%sevent: %s\ndata: %s\n\n", id ? "id: " : "", id ? id : "", id ? "\n" : "",
			   event, data);
	sse_write(s, buf, (size_t)len);
	free(buf);
}

static void sse_event_json(struct sse *s, const char *event, const char *id, cJSON *o /* consumed */)
{
	char *data = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!data)
		log_fatal("out of memory");
	sse_event(s, event, id, data);
	free(data);
}

static void sse_error_event(struct sse *s, const char *error)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "error", error);
	sse_event_json(s, "error", NULL, o);
}

/* ---- reading the topic ---- */

static void fetch_cb(void *arg, enum store_topic_status st, const char *topic_id, const char *name, int cursor_found,
		     const struct topic_page_row *rows, int n, const char *err)
{
	struct sse *s = arg;
	s->done = 1;
	s->st = st;
	s->err = err ? "db_unavailable" : NULL;
	s->cursor_found = cursor_found;
	if (err || st != TOPIC_OK)
		return;
	if (!s->topic_id[0]) {
		snprintf(s->topic_id, sizeof s->topic_id, "%s", topic_id);
		snprintf(s->name, sizeof s->name, "%s", name);
	}
	for (int i = 0; i < n && !s->failed; i++) {
		sse_event_json(s, "message", rows[i].id, topic_rest_entry(&rows[i]));
		snprintf(s->cursor, sizeof s->cursor, "%s", rows[i].id);
	}
	s->more = n == SSE_REPLAY_MAX;
}

/* the topic, the caller's membership and its newest message (the cursor a
 * stream without Last-Event-ID starts from) */
static void open_cb(void *arg, enum store_topic_status st, const char *topic_id, const char *name, int cursor_found,
		    const struct topic_page_row *rows, int n, const char *err)
{
	struct sse *s = arg;
	(void)cursor_found;
	s->done = 1;
	s->st = st;
	s->err = err ? "db_unavailable" : NULL;
	if (err || st != TOPIC_OK)
		return;
	snprintf(s->topic_id, sizeof s->topic_id, "%s", topic_id);
	snprintf(s->name, sizeof s->name, "%s", name);
	if (n)
		snprintf(s->cursor, sizeof s->cursor, "%s", rows[0].id);
}

/* one statement run to its answer: 0, or -1 with s->err */
static int run(struct sse *s, int after, int limit, const char *cursor, store_topic_page_cb cb)
{
	const struct route_ctx *c = s->c;
	struct topic_page_query q = {c->key.mesh_id, c->topic, c->key.member_id, limit, cursor, after, SSE_SETTLE_MS};
	s->done = 0;
	s->err = NULL;
	s->more = 0;
	if (store_topic_page(s->w->db, &q, cb, s) != 0) {
		s->err = "db_unavailable";
		return -1;
	}
	db_drain_sync(s->w->db, REST_DB_TIMEOUT_MS);
	if (!s->done)
		s->err = "db_unavailable";
	return s->err ? -1 : 0;
}

/* what followed the cursor, as events; a topic gone or left ends the stream */
static void sse_look(struct sse *s)
{
	do {
		char cursor[sizeof s->cursor];
		memcpy(cursor, s->cursor, sizeof cursor);
		if (run(s, 1, SSE_REPLAY_MAX, cursor, fetch_cb) != 0) {
			sse_error_event(s, s->err); /* the stream continues (§12.6) */
			return;
		}
		if (s->st != TOPIC_OK) {
			sse_error_event(s, s->st == TOPIC_NOT_FOUND ? "topic_not_found" : "not_a_member");
			s->failed = 1;
		}
	} while (s->more && !s->failed);
}

static void live_cb(void *arg, int live, const char *display_name, const char *pubkey, const char *err)
{
	struct sse *s = arg;
	s->done = 1;
	s->err = err ? "db_unavailable" : NULL;
	s->more = live; /* reused: the key's answer */
	/* who the stream's presence slot says it is (list_peers shows it) */
	if (live && display_name)
		snprintf(s->w->me.display_name, sizeof s->w->me.display_name, "%s", display_name);
	if (live && pubkey)
		snprintf(s->w->me.pubkey, sizeof s->w->me.pubkey, "%s", pubkey);
}

/* a revoked key ends the stream (an expired one does not, §12.6): 0 when
 * the key is known to be revoked, else 1 (live, or no answer this time) */
static int sse_key_live(struct sse *s)
{
	s->done = 0;
	if (store_apikey_live(s->w->db, s->c->key.id, live_cb, s) != 0)
		return 1;
	db_drain_sync(s->w->db, REST_DB_TIMEOUT_MS);
	return !(s->done && !s->err && !s->more);
}

/* ---- the stream ---- */

static int sse_claim(struct sse *s)
{
	struct worker *w = s->w;
	const struct route_ctx *c = s->c;
	struct presence_info me = w->me; /* the display name and pubkey sse_key_live found */
	snprintf(me.mesh_id, sizeof me.mesh_id, "%s", c->key.mesh_id);
	snprintf(me.member_id, sizeof me.member_id, "%s", c->key.member_id);
	id_new(me.presence_id);
	snprintf(me.session_id, sizeof me.session_id, "sse-%s", me.presence_id);
	snprintf(me.peer_type, sizeof me.peer_type, "%s", SSE_PEER_TYPE);
	me.pid = (int32_t)getpid();
	me.connected_ms = me.status_ms = now_ms();
	if (presence_claim(w->shm, &me, &w->slot, &w->gen) != 0)
		return -1;
	w->have_slot = 1;
	w->me = me;
	w->hooks = &sse_hooks;
	uds_init(w);
	if (uds_listen_open(w) != 0) {
		presence_release(w->shm, w->slot, w->gen);
		w->have_slot = 0;
		return -1;
	}
	return 0;
}

static void sse_release(struct worker *w)
{
	uds_close_all(w);
	if (w->have_slot)
		presence_release(w->shm, w->slot, w->gen);
	w->have_slot = 0;
	w->sse = NULL;
}

/* the client sent something (ignored) or went away: 0 still there */
static int client_gone(struct worker *w)
{
	char buf[512];
	for (;;) {
		ssize_t n = read(w->fd, buf, sizeof buf);
		if (n > 0)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
	}
}

static void sse_loop(struct sse *s)
{
	struct worker *w = s->w;
	int64_t heartbeat_ms = (int64_t)w->cfg.ping_interval_seconds * 1000;
	int64_t now = mono_ms(), next_poll = now + SSE_POLL_MS, next_beat = now + heartbeat_ms, next_look = 0;
	struct pollfd fds[1 + 1 + UDS_IN_MAX + UDS_OUT_MAX];
	s->wake = 1; /* what was posted between the first look and the slot's socket */
	while (!s->failed && !worker_terminating()) {
		now = mono_ms();
		if (s->wake) {
			/* a post committed: it is read once it settled (store_topic.c) */
			s->wake = 0;
			if (!next_look)
				next_look = now + SSE_SETTLE_MS + SSE_SETTLE_SLACK_MS;
		}
		if ((next_look && now >= next_look) || now >= next_poll) {
			int polled = now >= next_poll;
			next_look = 0;
			sse_look(s);
			if (polled) {
				if (!sse_key_live(s)) {
					sse_error_event(s, "api_key_revoked");
					s->failed = 1;
				}
				next_poll = now + SSE_POLL_MS;
			}
			continue;
		}
		if (now >= next_beat) {
			char ms[24];
			snprintf(ms, sizeof ms, "%lld", (long long)now_ms());
			sse_event(s, "heartbeat", NULL, ms);
			next_beat = now + heartbeat_ms;
			continue;
		}
		fds[0] = (struct pollfd){.fd = w->fd, .events = POLLIN | POLLRDHUP};
		int nf = 1 + uds_pollfds(w, fds + 1, (int)(sizeof fds / sizeof fds[0]) - 1);
		int64_t due = next_poll < next_beat ? next_poll : next_beat;
		if (next_look && next_look < due)
			due = next_look;
		int64_t left = due - now;
		struct timespec ts = {.tv_sec = left / 1000, .tv_nsec = (long)(left % 1000) * 1000000};
		int n = ppoll(fds, (nfds_t)nf, &ts, worker_wait_mask());
		if (n < 0 && errno != EINTR)
			log_fatal("poll failed", "error", strerror(errno));
		if (n <= 0)
			continue;
		if ((fds[0].revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR)) && client_gone(w))
			break;
		uds_handle(w, fds + 1, nf - 1);
	}
}

void sse_stream(struct worker *w, struct http_req *req, struct route_ctx *c)
{
	(void)req;
	struct sse s = {.w = w, .c = c};
	if (worker_shm(w) != 0 || worker_db(w) != 0) {
		rest_error(w, 503, "db_unavailable");
		return;
	}
	/* the member's name for the slot (a key revoked since the table's check ends here) */
	if (!sse_key_live(&s)) {
		rest_error(w, 401, "api_key_invalid");
		return;
	}
	/* the slot first: a post stored from here on rings our doorbell */
	w->sse = &s;
	if (sse_claim(&s) != 0) {
		w->sse = NULL;
		rest_error(w, 503, "presence_table_full");
		return;
	}
	if (run(&s, 0, 1, NULL, open_cb) != 0 || s.st != TOPIC_OK) {
		if (s.err)
			rest_error(w, 503, s.err);
		else
			rest_error(w, s.st == TOPIC_NOT_FOUND ? 404 : 403,
				   s.st == TOPIC_NOT_FOUND ? "topic_not_found" : "not_a_member");
		sse_release(w);
		return;
	}
	static const char head[] = "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n";
	if (http_respond_head(w->fd, 200, "text/event-stream", head, SSE_WRITE_MS) != 0) {
		sse_release(w);
		return;
	}
	char at[32];
	iso8601_ms(now_ms(), at);
	cJSON *ready = cJSON_CreateObject();
	cJSON_AddStringToObject(ready, "topic", s.name);
	cJSON_AddStringToObject(ready, "topicId", s.topic_id);
	cJSON_AddStringToObject(ready, "connectedAt", at);
	sse_event_json(&s, "ready", NULL, ready);
	/* resumed: what followed the client's last event, if that is a message
	 * of this topic (else from now, like a fresh stream) */
	if (c->args.last_event_id[0]) {
		char newest[sizeof s.cursor];
		memcpy(newest, s.cursor, sizeof newest);
		snprintf(s.cursor, sizeof s.cursor, "%s", c->args.last_event_id);
		if (run(&s, 1, SSE_REPLAY_MAX, s.cursor, fetch_cb) == 0 && !s.cursor_found)
			memcpy(s.cursor, newest, sizeof s.cursor);
	}
	log_info("stream opened", "topic", s.topic_id, "key", c->key.prefix);
	sse_loop(&s);
	log_info("stream closed", "topic", s.topic_id, "key", c->key.prefix);
	sse_release(w);
}
