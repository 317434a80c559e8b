/* peersess — dial, upgrade, hello, reconnect and frames of one peer session
 * (see peersess.h). */
#include "peersess.h"

#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/wsclient.h"
#include "common/util.h"
#include "proto/hello.h"

cJSON *peersess_hello_build(const struct keyfile_peer *cfg, const struct peersess_hello *h, int64_t ts,
			    const char *session_pubkey)
{
	char sig[129];
	if (hello_sign(sig, cfg->key.sk, cfg->mesh_id, cfg->member_id, cfg->key.pubkey, ts) != 0)
		return NULL;
	size_t ncaps = 0;
	while (ncaps < PEERSESS_CAPS_MAX && h->caps[ncaps])
		ncaps++;
	cJSON *o = cJSON_CreateObject();
	int ok = o && cJSON_AddStringToObject(o, "type", "hello") && cJSON_AddStringToObject(o, "meshId", cfg->mesh_id) &&
		 cJSON_AddStringToObject(o, "memberId", cfg->member_id) &&
		 cJSON_AddStringToObject(o, "pubkey", cfg->key.pubkey) &&
		 cJSON_AddStringToObject(o, "sessionId", h->session_id) &&
		 cJSON_AddNumberToObject(o, "pid", (double)h->pid) && cJSON_AddStringToObject(o, "cwd", h->cwd) &&
		 cJSON_AddNumberToObject(o, "timestamp", (double)ts) && cJSON_AddStringToObject(o, "signature", sig);
	/* the optional fields, each only when there is something to say */
	const struct {
		const char *name, *val;
	} opt[] = {
		{"displayName", cfg->display_name}, {"hostname", h->hostname}, {"repo", h->repo},
		{"peerType", h->peer_type},         {"sessionPubkey", session_pubkey},
	};
	for (size_t i = 0; ok && i < sizeof opt / sizeof opt[0]; i++)
		if (opt[i].val && opt[i].val[0])
			ok = cJSON_AddStringToObject(o, opt[i].name, opt[i].val) != NULL;
	if (ok && ncaps)
		ok = cJSON_AddItemToObject(o, "capabilities", cJSON_CreateStringArray(h->caps, (int)ncaps));
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

void peersess_init(struct peersess *s, const struct keyfile_peer *cfg, const char *url,
		   enum peersess_reconnect reconnect, const struct peersess_ops *ops, void *arg)
{
	struct peersess_hello h = s->hello; /* the caller may have filled it already */
	memset(s, 0, sizeof *s);
	s->hello = h;
	s->cfg = cfg;
	str_copy(s->url, sizeof s->url, url);
	s->reconnect = reconnect;
	s->ops = ops;
	s->arg = arg;
	s->state = PEERSESS_IDLE;
}

static void peersess_on_text(void *arg, const char *msg, size_t len)
{
	struct peersess *s = arg;
	if (s->state == PEERSESS_HELLO) {
		cJSON *j = cJSON_ParseWithLength(msg, len);
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "type");
		if (cJSON_IsString(t) && !strcmp(t->valuestring, "hello_ack")) {
			s->state = PEERSESS_READY;
			s->attempt = 0;
			s->ever_ready = 1;
		} else if (cJSON_IsString(t) && !strcmp(t->valuestring, "error")) {
			s->rejected = 1; /* the broker closes with 1008 next */
		}
		cJSON_Delete(j);
	}
	if (s->ops->frame)
		s->ops->frame(s->arg, msg, len);
}

/* the connection is gone (or never came): retry later or end */
static void peersess_lost(struct peersess *s, int64_t now, const char *why, int replaced)
{
	int retry = !s->finishing && (s->reconnect == PEERSESS_ALWAYS ||
				      (s->reconnect == PEERSESS_AFTER_READY && s->ever_ready && !s->rejected &&
				       !replaced));
	s->state = retry ? PEERSESS_IDLE : PEERSESS_ENDED;
	if (retry) {
		/* the cap doubles from the minimum; the wait is half of it plus a
		 * random half, so that peers dropped together come back apart */
		int64_t cap = PEERSESS_BACKOFF_MIN_MS;
		for (int i = 0; i < s->attempt && cap < PEERSESS_BACKOFF_MAX_MS; i++)
			cap *= 2;
		if (cap > PEERSESS_BACKOFF_MAX_MS)
			cap = PEERSESS_BACKOFF_MAX_MS;
		s->backoff_ms = cap / 2 + (int64_t)randombytes_uniform((uint32_t)(cap / 2) + 1);
		s->next_try = now + s->backoff_ms;
		s->attempt++;
	}
	s->rejected = 0;
	if (s->ops->down)
		s->ops->down(s->arg, why, retry);
}

static void peersess_dial(struct peersess *s)
{
	char err[768];
	s->close_code = 0;
	s->ws = wsclient_open(s->url, PEERSESS_CONNECT_MS, peersess_on_text, s, err, sizeof err);
	if (!s->ws) {
		peersess_lost(s, mono_ms(), err, 0);
		return;
	}
	if (!s->hello.session_id[0])
		snprintf(s->hello.session_id, sizeof s->hello.session_id, "%lld-%lld", (long long)s->hello.pid,
			 (long long)now_ms());
	cJSON *h = peersess_hello_build(s->cfg, &s->hello, now_ms(), s->hello.session_pubkey);
	s->state = PEERSESS_HELLO;
	if (!h || peersess_send(s, h) != 0) {
		cJSON_Delete(h);
		wsclient_free(s->ws);
		s->ws = NULL;
		s->finishing = 1;
		peersess_lost(s, mono_ms(), "cannot build or queue the hello", 0);
		return;
	}
	cJSON_Delete(h);
}

void peersess_service(struct peersess *s, int64_t now)
{
	if (s->state == PEERSESS_ENDED)
		return;
	if (!s->ws) {
		if (now >= s->next_try)
			peersess_dial(s);
		return;
	}
	int dummy;
	if (wsclient_step(s->ws, 0, -1, &dummy))
		return;
	uint16_t code;
	const char *reason;
	char why[300];
	int replaced = 0;
	if (wsclient_peer_close(s->ws, &code, &reason)) {
		s->close_code = code;
		replaced = code == 1000;
		snprintf(why, sizeof why, "closed %u%s%s", code, *reason ? " " : "", reason);
	} else {
		snprintf(why, sizeof why, "%s", wsclient_error(s->ws) ? wsclient_error(s->ws) : "connection lost");
	}
	wsclient_free(s->ws);
	s->ws = NULL;
	peersess_lost(s, now, why, replaced);
}

void peersess_pollfd(const struct peersess *s, struct pollfd *p, int64_t now, int *timeout_ms)
{
	if (s->ws) {
		wsclient_pollfd(s->ws, p);
		int t = wsclient_timer_ms(s->ws, *timeout_ms);
		if (t < *timeout_ms)
			*timeout_ms = t;
		return;
	}
	*p = (struct pollfd){.fd = -1};
	if (s->state == PEERSESS_IDLE) {
		int64_t t = s->next_try - now;
		if (t < *timeout_ms)
			*timeout_ms = t < 0 ? 0 : (int)t;
	}
}

int peersess_send_text(struct peersess *s, const char *msg, size_t len)
{
	return s->ws ? wsclient_send_text(s->ws, msg, len) : -1;
}

int peersess_send(struct peersess *s, const cJSON *frame)
{
	char *txt = cJSON_PrintUnformatted(frame);
	int r = txt ? peersess_send_text(s, txt, strlen(txt)) : -1;
	free(txt);
	return r;
}

void peersess_reset(struct peersess *s, const char *why)
{
	if (!s->ws)
		return;
	wsclient_free(s->ws);
	s->ws = NULL;
	peersess_lost(s, mono_ms(), why, 0);
}

size_t peersess_queued(const struct peersess *s)
{
	return s->ws ? wsclient_queued(s->ws) : 0;
}

void peersess_finish(struct peersess *s)
{
	s->finishing = 1;
	if (s->ws)
		wsclient_close(s->ws, 1000, "");
	else
		s->state = PEERSESS_ENDED;
}

void peersess_close(struct peersess *s)
{
	peersess_finish(s);
	if (s->ws) {
		int64_t until = mono_ms() + 2000;
		int dummy;
		while (mono_ms() < until && wsclient_step(s->ws, 100, -1, &dummy))
			;
		wsclient_free(s->ws);
		s->ws = NULL;
	}
	s->state = PEERSESS_ENDED;
}

int peersess_parse_seconds(const char *str, int64_t *ms)
{
	char *end;
	errno = 0;
	double d = strtod(str, &end);
	if (errno || end == str || *end || !isfinite(d) || d <= 0 || d > 1e7)
		return -1;
	*ms = (int64_t)(d * 1000.0 + 0.5);
	if (*ms < 1)
		*ms = 1;
	return 0;
}
