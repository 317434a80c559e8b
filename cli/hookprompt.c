/* hookprompt — meshctl hook prompt (see hookprompt.h): one peer session on
 * its own poll loop with a deadline, the pushes collected, printed, acked. */
#include "cli/hookprompt.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "cli/cli.h"
#include "cli/hookbox.h"
#include "cli/hookin.h"
#include "cli/keyfile.h"
#include "cli/peersess.h"
#include "cli/wsclient.h"
#include "common/util.h"
#include "proto/box.h"

#define HOOKPROMPT_TEXT_MAX 4000 /* per message shown; longer is cut with a note */
#define HOOKPROMPT_CLOSE_MS 300

struct prompt {
	struct peersess sess;
	struct keyfile_peer cfg;
	cJSON *ids;       /* messageIds to ack once printed */
	char *context;    /* the text for Claude, malloc'd */
	size_t len, n;
	int64_t quiet_until; /* 0 until hello_ack */
	char failed[300];    /* the one line when the session failed */
};

static void prompt_on_alarm(int sig)
{
	(void)sig;
	_exit(0);
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void prompt_append(struct prompt *p, const char *s)
{
	size_t add = strlen(s);
	char *n = realloc(p->context, p->len + add + 1);
	if (!n)
		return;
	memcpy(n + p->len, s, add + 1);
	p->context = n;
	p->len += add;
}

/* the readable text of a direct or broadcast push, malloc'd; NULL for what
 * this hook cannot open (topic posts: `meshctl topic history` reads them) */
static char *prompt_text(const struct prompt *p, const cJSON *push, int *clear)
{
	const char *nonce = jstr(push, "nonce"), *ct = jstr(push, "ciphertext"), *sender = jstr(push, "senderPubkey");
	unsigned char spk[32], *plain = NULL;
	size_t n = 0;
	*clear = 0;
	if (!ct || cJSON_GetObjectItemCaseSensitive(push, "topic"))
		return NULL;
	if (nonce && sender && is_hex(sender, 64) && hex_decode(sender, spk, sizeof spk) == 0 &&
	    box_decrypt_direct(nonce, ct, spk, p->cfg.key.sk, &plain, &n) == 0) {
		if (utf8_valid(plain, n))
			return (char *)plain;
		sodium_memzero(plain, n);
		free(plain);
		return strdup("(a message that is not UTF-8 text)");
	}
	/* an old sender's plaintext in base64: shown, marked unencrypted */
	if (box_b64_decode(ct, &plain, &n) == 0 && utf8_valid(plain, n)) {
		*clear = 1;
		return (char *)plain;
	}
	free(plain);
	return NULL;
}

/* one message line of the context */
static void prompt_add(struct prompt *p, const char *from, const char *spk, const char *prio, const char *topic,
		       int clear, const char *text)
{
	size_t tl = text ? strlen(text) : 0;
	size_t cap = (tl > HOOKPROMPT_TEXT_MAX ? HOOKPROMPT_TEXT_MAX : tl) + 640;
	char *line = malloc(cap);
	if (line) {
		snprintf(line, cap, "\n- from %s (%.16s…)%s%.64s%s%s%s: %.*s%s", from && *from ? from : "?",
			 spk ? spk : "?", topic ? " in topic " : "", topic ? topic : "", prio ? ", priority " : "",
			 prio ? prio : "", clear ? ", sent unencrypted" : "", text ? HOOKPROMPT_TEXT_MAX : 80,
			 text ? text : "(encrypted: not readable by this hook)", tl > HOOKPROMPT_TEXT_MAX ? " [cut]" : "");
		prompt_append(p, line);
		sodium_memzero(line, cap);
		free(line);
	}
	p->n++;
}

static void prompt_push(struct prompt *p, const cJSON *j)
{
	const char *id = jstr(j, "messageId"), *sub = jstr(j, "subtype");
	if (!id || !*id || (sub && !strcmp(sub, "system")) || p->n >= HOOKPROMPT_MAX)
		return;
	int clear = 0;
	char *text = prompt_text(p, j, &clear);
	const char *spk = jstr(j, "senderMemberPubkey") ? jstr(j, "senderMemberPubkey") : jstr(j, "senderPubkey");
	prompt_add(p, jstr(j, "senderName"), spk, jstr(j, "priority"), NULL, clear, text);
	if (text) {
		sodium_memzero(text, strlen(text));
		free(text);
	}
	cJSON_AddItemToArray(p->ids, cJSON_CreateString(id));
	p->quiet_until = mono_ms() + HOOKPROMPT_QUIET_MS;
}

/* the messages meshctl mcp of this session holds (cli/hookbox.h): 0 when
 * it answered (p->n may stay 0), -1 when there is none to ask */
static int prompt_from_mcp(struct prompt *p, const char *sid)
{
	char *text;
	size_t len;
	if (!sid || hookbox_take(sid, HOOKPROMPT_BUDGET_MS, &text, &len) != 0)
		return -1;
	for (char *line = text, *nl; line < text + len && p->n < HOOKPROMPT_MAX; line = nl + 1) {
		if (!(nl = strchr(line, '\n')))
			break;
		cJSON *j = cJSON_ParseWithLength(line, (size_t)(nl - line));
		if (jstr(j, "text"))
			prompt_add(p, jstr(j, "from"), jstr(j, "fromPubkey"), jstr(j, "priority"), jstr(j, "topic"), 0,
				   jstr(j, "text"));
		keyfile_json_free(j);
	}
	sodium_memzero(text, len);
	free(text);
	return 0;
}

static void prompt_frame(void *arg, const char *msg, size_t len)
{
	struct prompt *p = arg;
	cJSON *j = cJSON_ParseWithLength(msg, len);
	const char *type = jstr(j, "type");
	if (!type) {
		/* not ours to judge */
	} else if (!strcmp(type, "hello_ack")) {
		p->quiet_until = mono_ms() + HOOKPROMPT_QUIET_MS * 2;
	} else if (!strcmp(type, "push")) {
		prompt_push(p, j);
	} else if (!strcmp(type, "error") && !p->quiet_until) {
		const char *code = jstr(j, "code"), *m = jstr(j, "message");
		snprintf(p->failed, sizeof p->failed, "hello refused: %s%s%s", code ? code : "error", m ? ": " : "",
			 m ? m : "");
		peersess_finish(&p->sess);
	}
	cJSON_Delete(j);
}

static void prompt_down(void *arg, const char *why, int reconnect)
{
	struct prompt *p = arg;
	(void)reconnect;
	if (!p->failed[0] && !p->quiet_until)
		snprintf(p->failed, sizeof p->failed, "%s", why && *why ? why : "connection closed");
}

static const struct peersess_ops prompt_ops = {prompt_frame, prompt_down};

/* the hook JSON on stdout, then the acks */
static void prompt_deliver(struct prompt *p)
{
	cJSON *out = cJSON_CreateObject(), *hso = cJSON_AddObjectToObject(out, "hookSpecificOutput");
	char head[160];
	snprintf(head, sizeof head, "meshbroker: %zu new message%s for you (mesh %s)%s", p->n, p->n == 1 ? "" : "s",
		 p->cfg.mesh_id, p->n >= HOOKPROMPT_MAX ? "; more are waiting" : "");
	char *all = malloc(strlen(head) + p->len + 1);
	if (!all || !hso) {
		free(all);
		cJSON_Delete(out);
		return;
	}
	memcpy(all, head, strlen(head));
	memcpy(all + strlen(head), p->context ? p->context : "", p->len + 1);
	cJSON_AddStringToObject(hso, "hookEventName", "UserPromptSubmit");
	cJSON_AddStringToObject(hso, "additionalContext", all);
	sodium_memzero(all, strlen(all));
	free(all);
	char *s = cJSON_PrintUnformatted(out);
	keyfile_json_free(out);
	if (!s)
		return;
	int ok = printf("%s\n", s) > 0 && fflush(stdout) == 0;
	sodium_memzero(s, strlen(s));
	free(s);
	if (!ok)
		return; /* not shown: not acked, the broker keeps them */
	const cJSON *id;
	cJSON_ArrayForEach(id, p->ids)
	{
		cJSON *a = cJSON_CreateObject();
		cJSON_AddStringToObject(a, "type", "client_ack");
		cJSON_AddStringToObject(a, "brokerMessageId", id->valuestring);
		peersess_send(&p->sess, a);
		cJSON_Delete(a);
	}
}

/* run the session until the queue is drained or the budget is spent */
static void prompt_loop(struct prompt *p)
{
	int64_t end = mono_ms() + HOOKPROMPT_BUDGET_MS;
	peersess_service(&p->sess, mono_ms());
	while (p->sess.state != PEERSESS_ENDED && p->sess.state != PEERSESS_IDLE) {
		int64_t now = mono_ms();
		if (now >= end || (p->quiet_until && now >= p->quiet_until))
			break;
		int64_t stop = p->quiet_until && p->quiet_until < end ? p->quiet_until : end;
		int timeout = (int)(stop - now);
		struct pollfd pf;
		peersess_pollfd(&p->sess, &pf, now, &timeout);
		if (poll(&pf, pf.fd >= 0 ? 1 : 0, timeout) < 0 && errno != EINTR)
			break;
		peersess_service(&p->sess, mono_ms());
	}
}

/* the closing handshake, the acks queued before it going out first; at most
 * HOOKPROMPT_CLOSE_MS, then the socket is just dropped */
static void prompt_close(struct prompt *p)
{
	int64_t end = mono_ms() + HOOKPROMPT_CLOSE_MS;
	int finishing = 0;
	while (p->sess.state != PEERSESS_ENDED && mono_ms() < end) {
		/* the acks out first: the library sends a close ahead of queued data */
		if (!finishing && (peersess_queued(&p->sess) == 0 || p->sess.state != PEERSESS_READY)) {
			peersess_finish(&p->sess);
			finishing = 1;
		}
		struct pollfd pf;
		int timeout = (int)(end - mono_ms());
		peersess_pollfd(&p->sess, &pf, mono_ms(), &timeout);
		if (poll(&pf, pf.fd >= 0 ? 1 : 0, timeout < 0 ? 0 : timeout) < 0 && errno != EINTR)
			break;
		peersess_service(&p->sess, mono_ms());
	}
	if (p->sess.ws) {
		wsclient_free(p->sess.ws);
		p->sess.ws = NULL;
	}
	p->sess.state = PEERSESS_ENDED;
}

int hookprompt_run(int argc, char **argv)
{
	static const struct cli_optspec spec[] = {{"cwd", 1}, {NULL, 0}};
	struct cli_opts o;
	struct sigaction sa = {.sa_handler = prompt_on_alarm};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN); /* an MCP server gone mid-answer is an error, not a kill */
	alarm(HOOKPROMPT_HARD_S); /* the rest of the budget is the loop's own */
	if (cli_opts_parse(argc, argv, spec, &o) != 0)
		return 0;
	if (o.npos != 0) {
		cli_err("usage: meshctl hook prompt [--config PEERCONFIG] [--cwd DIR]");
		return 0;
	}
	const char *path = cli_config_path(&o);
	if (!path) {
		cli_err("hook prompt: no peer config: give --config FILE or set MESHCTL_CONFIG");
		return 0;
	}
	struct prompt *p = calloc(1, sizeof *p);
	if (!p || keyfile_read_peer(path, &p->cfg) != 0) {
		free(p);
		return 0;
	}
	const char *url = cli_opt(&o, "broker") ? cli_opt(&o, "broker") : getenv("MESHBROKER_URL");
	if (!url || !*url)
		url = p->cfg.broker;
	cJSON *in = hookin_json();
	const char *in_cwd = jstr(in, "cwd"), *sid = jstr(in, "session_id");
	if (!sid || !*sid)
		sid = getenv("CLAUDE_CODE_SESSION_ID");
	struct peersess_hello *h = &p->sess.hello;
	if (prompt_from_mcp(p, sid) == 0) {
		/* this session's MCP server holds what the broker pushed it */
		if (p->n > 0)
			prompt_deliver(p);
	} else if (!*url) {
		cli_err("hook prompt: %s has no \"broker\" (and no --broker): nothing fetched", path);
	} else {
		p->ids = cJSON_CreateArray();
		peersess_init(&p->sess, &p->cfg, url, PEERSESS_NEVER, &prompt_ops, p);
		h->pid = getpid();
		snprintf(h->session_id, sizeof h->session_id, "hook-%lld-%lld", (long long)getpid(),
			 (long long)now_ms());
		if (cli_opt(&o, "cwd"))
			str_copy(h->cwd, sizeof h->cwd, cli_opt(&o, "cwd"));
		else if (in_cwd)
			str_copy(h->cwd, sizeof h->cwd, in_cwd);
		else if (!getcwd(h->cwd, sizeof h->cwd))
			str_copy(h->cwd, sizeof h->cwd, "/");
		h->caps[0] = "client_ack";
		prompt_loop(p);
		if (p->n > 0)
			prompt_deliver(p);
		else if (!p->quiet_until)
			cli_err("hook prompt: %s; no messages fetched",
				p->failed[0] ? p->failed : "no hello_ack within the budget");
		prompt_close(p);
		cJSON_Delete(p->ids);
	}
	cJSON_Delete(in);
	free(p->context);
	sodium_memzero(&p->cfg, sizeof p->cfg);
	free(p);
	return 0;
}
