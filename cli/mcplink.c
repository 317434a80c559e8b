/* mcplink — one WebSocket connection of `meshctl mcp` per peer config: the
 * signed hello (capabilities client_ack and peer_events, hostname, repo),
 * and reconnecting with backoff 1, 2, 4 ... 30 s, said on stderr. */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/mcp.h"
#include "common/util.h"
#include "proto/hello.h"

#define LINK_CONNECT_MS 5000
#define LINK_BACKOFF_MAX_S 30

/* the git top-level above cwd ("" when there is none): the hello's repo */
static void find_repo(const char *cwd, char *out, size_t cap)
{
	char dir[4097], probe[4200];
	struct stat st;
	out[0] = 0;
	if (str_copy(dir, sizeof dir, cwd) != 0)
		return;
	for (;;) {
		snprintf(probe, sizeof probe, "%s/.git", dir);
		if (stat(probe, &st) == 0) {
			str_copy(out, cap, dir);
			return;
		}
		char *slash = strrchr(dir, '/');
		if (!slash || slash == dir)
			return;
		*slash = 0;
	}
}

int mcp_link_setup(struct mcp *m, int idx, const char *config_path, const char *broker_override)
{
	struct mcp_link *l = &m->links[idx];
	memset(l, 0, sizeof *l);
	l->m = m;
	l->idx = idx;
	if (keyfile_read_peer(config_path, &l->cfg) != 0)
		return -1;
	const char *url = broker_override ? broker_override : getenv("MESHBROKER_URL");
	if (!url || !*url)
		url = l->cfg.broker[0] ? l->cfg.broker : CLI_DEFAULT_BROKER;
	if (str_copy(l->url, sizeof l->url, url) != 0)
		return cli_err("%s: broker URL too long", config_path);
	if (!getcwd(l->cwd, sizeof l->cwd))
		str_copy(l->cwd, sizeof l->cwd, "/");
	gethostname(l->host, sizeof l->host - 1);
	find_repo(l->cwd, l->repo, sizeof l->repo);
	/* one session id for the life of this process: a reconnect replaces
	 * the old connection at the broker rather than sitting beside it */
	snprintf(l->session_id, sizeof l->session_id, "%lld-%lld-%d", (long long)getpid(), (long long)now_ms(), idx);
	l->backoff_s = 1;
	l->next_try = 0;
	return 0;
}

static void on_text(void *arg, const char *msg, size_t len)
{
	mcp_tools_on_frame(arg, msg, len);
}

int mcp_link_send(struct mcp_link *l, cJSON *frame)
{
	if (!l->ws)
		return -1;
	char *s = cJSON_PrintUnformatted(frame);
	int r = s ? wsclient_send_text(l->ws, s, strlen(s)) : -1;
	free(s);
	return r;
}

static int send_hello(struct mcp_link *l)
{
	char sig[129];
	int64_t ts = now_ms();
	const struct keyfile_peer *c = &l->cfg;
	if (hello_sign(sig, c->key.sk, c->mesh_id, c->member_id, c->key.pubkey, ts) != 0)
		return -1;
	cJSON *h = cJSON_CreateObject();
	const char *caps[] = {"client_ack", "peer_events"};
	int ok = h && cJSON_AddStringToObject(h, "type", "hello") && cJSON_AddStringToObject(h, "meshId", c->mesh_id) &&
		 cJSON_AddStringToObject(h, "memberId", c->member_id) &&
		 cJSON_AddStringToObject(h, "pubkey", c->key.pubkey) &&
		 cJSON_AddStringToObject(h, "sessionId", l->session_id) &&
		 cJSON_AddNumberToObject(h, "pid", (double)getpid()) && cJSON_AddStringToObject(h, "cwd", l->cwd) &&
		 cJSON_AddNumberToObject(h, "timestamp", (double)ts) && cJSON_AddStringToObject(h, "signature", sig) &&
		 cJSON_AddStringToObject(h, "peerType", "ai") && cJSON_AddStringToObject(h, "hostname", l->host) &&
		 cJSON_AddItemToObject(h, "capabilities", cJSON_CreateStringArray(caps, 2));
	if (ok && c->display_name[0])
		ok = cJSON_AddStringToObject(h, "displayName", c->display_name) != NULL;
	if (ok && l->repo[0])
		ok = cJSON_AddStringToObject(h, "repo", l->repo) != NULL;
	int r = ok ? mcp_link_send(l, h) : -1;
	cJSON_Delete(h);
	return r;
}

static void schedule_retry(struct mcp_link *l, int64_t now, const char *why)
{
	mcp_log("%s: %s; reconnecting in %d s", l->cfg.display_name[0] ? l->cfg.display_name : l->cfg.member_id,
		why, l->backoff_s);
	l->next_try = now + (int64_t)l->backoff_s * 1000;
	l->backoff_s = l->backoff_s * 2 > LINK_BACKOFF_MAX_S ? LINK_BACKOFF_MAX_S : l->backoff_s * 2;
}

void mcp_link_service(struct mcp_link *l, int64_t now)
{
	if (l->ws) {
		int dummy;
		if (wsclient_step(l->ws, 0, -1, &dummy))
			return;
		uint16_t code;
		const char *reason;
		char why[200];
		if (wsclient_peer_close(l->ws, &code, &reason))
			snprintf(why, sizeof why, "the broker closed the connection (%u%s%s)", code, *reason ? " " : "",
				 reason);
		else
			snprintf(why, sizeof why, "%s",
				 wsclient_error(l->ws) ? wsclient_error(l->ws) : "connection lost");
		wsclient_free(l->ws);
		l->ws = NULL;
		l->ready = 0;
		schedule_retry(l, now, why);
		return;
	}
	if (now < l->next_try)
		return;
	char err[512];
	l->ws = wsclient_open(l->url, LINK_CONNECT_MS, on_text, l, err, sizeof err);
	if (!l->ws) {
		schedule_retry(l, mono_ms(), err);
		return;
	}
	if (send_hello(l) != 0) {
		wsclient_free(l->ws);
		l->ws = NULL;
		schedule_retry(l, mono_ms(), "cannot sign the hello");
	}
}

void mcp_link_close(struct mcp_link *l)
{
	if (l->ws) {
		wsclient_close(l->ws, 1000, "");
		int64_t until = mono_ms() + 2000;
		int dummy;
		while (mono_ms() < until && wsclient_step(l->ws, 100, -1, &dummy))
			;
		wsclient_free(l->ws);
		l->ws = NULL;
	}
	sodium_memzero(&l->cfg.key, sizeof l->cfg.key);
}
