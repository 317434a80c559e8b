/* mcp — `meshctl mcp --config peer.json [--config other.json ...]`: the
 * stdio MCP server of docs/protocol.md §11.  This file is the loop (stdin,
 * the peer sessions, timers), the sessions' set-up (hello capabilities
 * client_ack and peer_events, hostname, repo; reconnecting with jittered
 * backoff, said on stderr), the line reader (bounded: a line over
 * MCP_LINE_MAX is answered with a parse error and skipped) and the JSON-RPC
 * methods; the tools are mcp_tools.c's, the broker's frames mcp_inbox.c's. */
#include "cli/mcp.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "cli/cli.h"
#include "cli/groupname.h"
#include "cli/hookbox.h"
#include "cli/http.h"
#include "cli/mcp_calls.h"
#include "cli/mcp_inbox.h"
#include "cli/mcp_keys.h"
#include "cli/mcp_out.h"
#include "cli/mcp_rpc.h"
#include "cli/mcp_schema.h"
#include "cli/mcp_state.h"
#include "cli/mcp_tools.h"
#include "common/util.h"
#include "proto/version.h"

#define MCP_PROTOCOL_VERSION "2025-06-18"
#define MCP_IDLE_POLL_MS 1000

static volatile sig_atomic_t mcp_stop;

static void mcp_on_signal(int sig)
{
	(void)sig;
	mcp_stop = 1;
}

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

static void link_frame(void *arg, const char *msg, size_t len)
{
	mcp_inbox_frame(arg, msg, len);
}

static void link_down(void *arg, const char *why, int reconnect)
{
	struct mcp_link *l = arg;
	l->ready = 0;
	mcp_calls_link_down(l->m, l->idx);
	mcp_inbox_link_down(l);
	mcp_log("%s: %s; %s %.1f s", l->cfg.display_name[0] ? l->cfg.display_name : l->cfg.member_id, why,
		reconnect ? "reconnecting in" : "not reconnecting", reconnect ? l->sess.backoff_ms / 1000.0 : 0.0);
}

static const struct peersess_ops link_ops = {.frame = link_frame, .down = link_down};

static int link_setup(struct mcp *m, int idx, const char *config_path, const char *broker_override)
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
	if (strlen(url) >= sizeof l->sess.url)
		return cli_err("%s: broker URL too long", config_path);
	struct peersess_hello *h = &l->sess.hello;
	if (!getcwd(h->cwd, sizeof h->cwd))
		str_copy(h->cwd, sizeof h->cwd, "/");
	gethostname(h->hostname, sizeof h->hostname - 1);
	find_repo(h->cwd, h->repo, sizeof h->repo);
	/* one session id for the life of this process: a reconnect replaces
	 * the old connection at the broker rather than sitting beside it */
	snprintf(h->session_id, sizeof h->session_id, "%lld-%lld-%d", (long long)getpid(), (long long)now_ms(), idx);
	/* Claude Code's own session id (set for stdio MCP servers and hooks):
	 * meshctl hook matches the session by it (docs/protocol.md §4.3) */
	const char *claude_sid = getenv("CLAUDE_CODE_SESSION_ID");
	if (claude_sid && *claude_sid && strlen(claude_sid) + 12 < sizeof h->session_id)
		snprintf(h->session_id, sizeof h->session_id, "%s%s%.0d", claude_sid, idx ? "-" : "", idx);
	h->pid = getpid();
	/* this run's own session key (§12.1): direct messages to it reach this
	 * session only; kept across reconnects, wiped at the end */
	unsigned char spk[32];
	crypto_sign_keypair(spk, l->sess_sk);
	sodium_bin2hex(l->sess_pub, sizeof l->sess_pub, spk, sizeof spk);
	h->session_pubkey = l->sess_pub;
	h->peer_type = "ai";
	h->peer_role = "session"; /* one Claude Code session, not a member's control plane */
	h->caps[0] = "client_ack";
	h->caps[1] = "peer_events";
	peersess_init(&l->sess, &l->cfg, url, PEERSESS_ALWAYS, &link_ops, l);
	return 0;
}

static cJSON *initialize_result(const cJSON *params)
{
	cJSON *r = cJSON_CreateObject();
	const cJSON *pv = cJSON_GetObjectItemCaseSensitive(params, "protocolVersion");
	/* answer with the client's version when it is one we speak */
	const char *v = MCP_PROTOCOL_VERSION;
	if (cJSON_IsString(pv) && (!strcmp(pv->valuestring, "2024-11-05") || !strcmp(pv->valuestring, "2025-03-26") ||
				   !strcmp(pv->valuestring, "2025-06-18")))
		v = pv->valuestring;
	cJSON_AddStringToObject(r, "protocolVersion", v);
	cJSON *caps = cJSON_AddObjectToObject(r, "capabilities");
	cJSON_AddObjectToObject(caps, "tools");
	cJSON *exp = cJSON_AddObjectToObject(caps, "experimental");
	cJSON_AddObjectToObject(exp, "claude/channel");
	cJSON *info = cJSON_AddObjectToObject(r, "serverInfo");
	cJSON_AddStringToObject(info, "name", "meshbroker");
	cJSON_AddStringToObject(info, "version", MESHBROKER_VERSION);
	cJSON_AddStringToObject(r, "instructions",
				"You are connected to a claudemesh mesh: other Claude Code sessions you can message. "
				"list_peers shows who is live and what they work on; send_message sends to a member by "
				"name (or to one session by its pubkey, * for everyone, #topic); topic_list, topic_join, "
				"topic_read and topic_post work with topics; check_messages returns what arrived (messages may also arrive as "
				"<channel source=\"meshbroker\"> notifications). set_summary tells others what you do.");
	return r;
}

static void handle_line(struct mcp *m, const char *line, size_t n)
{
	struct mcp_rpc r;
	mcp_rpc_parse(line, n, &r);
	switch (r.kind) {
	case MCP_RPC_PARSE_ERROR:
		mcp_write(mcp_rpc_error(NULL, MCP_PARSE_ERROR, "Parse error: the line is not a JSON object"));
		break;
	case MCP_RPC_INVALID:
		mcp_write(mcp_rpc_error(r.id, MCP_INVALID_REQUEST, r.why));
		break;
	case MCP_RPC_RESPONSE:
		break;
	case MCP_RPC_NOTIFICATION:
		if (!strcmp(r.method, "notifications/initialized")) {
			m->initialized = 1;
			mcp_inbox_notify_waiting(m); /* what arrived before: each once, now */
		}
		break;
	case MCP_RPC_REQUEST:
		if (!strcmp(r.method, "initialize"))
			mcp_write(mcp_rpc_result(r.id, initialize_result(r.params)));
		else if (!strcmp(r.method, "ping"))
			mcp_write(mcp_rpc_result(r.id, cJSON_CreateObject()));
		else if (!strcmp(r.method, "tools/list")) {
			cJSON *res = cJSON_CreateObject();
			cJSON_AddItemToObject(res, "tools", mcp_tools_list());
			mcp_write(mcp_rpc_result(r.id, res));
		} else if (!strcmp(r.method, "tools/call"))
			mcp_tools_call(m, r.id, r.params);
		else
			mcp_write(mcp_rpc_error(r.id, MCP_METHOD_NOT_FOUND, "Method not found"));
		break;
	}
	mcp_rpc_free(&r);
}

struct line_buf {
	char *buf;
	size_t len, cap;
	int skipping; /* the current line went over MCP_LINE_MAX */
};

static int line_feed(struct mcp *m, struct line_buf *lb)
{
	char chunk[65536];
	ssize_t n = read(STDIN_FILENO, chunk, sizeof chunk);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n <= 0)
		return -1; /* EOF: the client is gone */
	const char *s = chunk, *end = chunk + n;
	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t take = (size_t)((nl ? nl : end) - s);
		if (!lb->skipping) {
			if (lb->len + take > MCP_LINE_MAX) {
				lb->skipping = 1;
				lb->len = 0;
			} else {
				if (lb->len + take + 1 > lb->cap) {
					size_t cap = lb->cap ? lb->cap : 4096;
					while (cap < lb->len + take + 1)
						cap *= 2;
					char *nb = realloc(lb->buf, cap);
					if (!nb) {
						lb->skipping = 1;
						lb->len = 0;
						goto next;
					}
					lb->buf = nb;
					lb->cap = cap;
				}
				memcpy(lb->buf + lb->len, s, take);
				lb->len += take;
			}
		}
	next:
		if (!nl)
			break;
		if (lb->skipping)
			mcp_write(mcp_rpc_error(NULL, MCP_PARSE_ERROR, "Parse error: line longer than 1 MiB"));
		else {
			size_t k = lb->len;
			while (k && (lb->buf[k - 1] == '\r' || lb->buf[k - 1] == ' ' || lb->buf[k - 1] == '\t'))
				k--;
			if (k)
				handle_line(m, lb->buf, k);
		}
		lb->len = 0;
		lb->skipping = 0;
		s = nl + 1;
	}
	return 0;
}

static void mcp_help(int nconf, const char **conf)
{
	char exe[PATH_MAX], path[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	exe[n > 0 ? n : 0] = 0;
	if (n <= 0)
		snprintf(exe, sizeof exe, "meshctl");
	puts("usage: meshctl mcp --config PEERCONFIG [--config PEERCONFIG ...] [--broker URL] [--cacert FILE]\n"
	     "                   [--group NAME]\n"
	     "\n"
	     "  --config FILE   a peer config (one connection per file; default MESHCTL_CONFIG)\n"
	     "  --broker URL    ws:// or wss:// broker URL for every config (else MESHBROKER_URL,\n"
	     "                  else the config's \"broker\")\n"
	     "  --cacert FILE   PEM CA certificates for wss:// (else MESHBROKER_CA, else the system store)\n"
	     "  --group NAME    join_group NAME after every hello_ack (so @NAME sends reach this session)\n"
	     "\n"
	     "A Model Context Protocol server on stdin/stdout for Claude Code: tools send_message,\n"
	     "check_messages, list_peers, set_status, set_summary, topic_list, topic_join, topic_read\n"
	     "and topic_post, and incoming messages pushed into the session as claude/channel\n"
	     "notifications.  Each run has its own session key; nothing is sent in clear.  Logs go\n"
	     "to stderr.\n"
	     "\n"
	     "Add it to Claude Code with:\n");
	fputs("  claude mcp add meshbroker -- ", stdout);
	fputs(exe, stdout);
	fputs(" mcp", stdout);
	if (!nconf)
		fputs(" --config /path/to/peer.json", stdout);
	for (int i = 0; i < nconf; i++)
		printf(" --config %s", realpath(conf[i], path) ? path : conf[i]);
	putchar('\n');
}

int mcp_main(int argc, char **argv)
{
	const char *conf[MCP_LINKS_MAX];
	const char *broker = NULL, *group = NULL;
	int nconf = 0, help = 0, c;
	static const struct option lo[] = {{"config", required_argument, NULL, 'c'},
					   {"broker", required_argument, NULL, 'b'},
					   {"cacert", required_argument, NULL, 'a'},
					   {"group", required_argument, NULL, 'g'},
					   {"help", no_argument, NULL, 'h'},
					   {NULL, 0, NULL, 0}};
	char *args[CLI_ARGS_MAX + 2];
	if (argc > CLI_ARGS_MAX)
		return cli_usage_err("mcp: too many arguments");
	args[0] = "meshctl-mcp";
	for (int i = 0; i < argc; i++)
		args[i + 1] = argv[i];
	args[argc + 1] = NULL;
	opterr = 0;
	optind = 0;
	while ((c = getopt_long(argc + 1, args, "+:h", lo, NULL)) != -1) {
		if (c == 'h')
			help = 1;
		else if (c == 'b')
			broker = optarg;
		else if (c == 'a')
			http_set_cafile(optarg);
		else if (c == 'g' && !groupname_ok(optarg))
			return cli_usage_err("mcp: --group: a name of /-separated segments [A-Za-z0-9][A-Za-z0-9_.-]*, not all");
		else if (c == 'g')
			group = optarg;
		else if (c == 'c' && nconf == MCP_LINKS_MAX)
			return cli_usage_err("mcp: at most %d --config files", MCP_LINKS_MAX);
		else if (c == 'c')
			conf[nconf++] = optarg;
		else if (c == ':')
			return cli_usage_err("mcp: option %s needs a value", args[optind - 1]);
		else
			return cli_usage_err("mcp: unknown option %s (see meshctl mcp --help)", args[optind - 1]);
	}
	if (optind < argc + 1)
		return cli_usage_err("mcp: unexpected argument \"%s\" (see meshctl mcp --help)", args[optind]);
	if (!nconf && getenv("MESHCTL_CONFIG") && *getenv("MESHCTL_CONFIG"))
		conf[nconf++] = getenv("MESHCTL_CONFIG");
	if (help) {
		mcp_help(nconf, conf);
		return 0;
	}
	if (!nconf)
		return cli_usage_err("mcp: no peer config: give --config FILE or set MESHCTL_CONFIG");

	struct mcp *m = calloc(1, sizeof *m);
	if (!m)
		return cli_err("out of memory");
	int rc = 0;
	m->tag_salt = randombytes_random();
	for (int i = 0; i < nconf && rc == 0; i++, m->nlinks++)
		if (link_setup(m, i, conf[i], broker) != 0)
			rc = CLI_EXIT_FAIL;
		else
			m->links[i].group = group;
	struct sigaction sa = {.sa_handler = mcp_on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	struct line_buf lb = {0};
	/* meshctl hook prompt of this Claude Code session takes the inbox here */
	const char *claude_sid = getenv("CLAUDE_CODE_SESSION_ID");
	int box = rc == 0 ? hookbox_listen(claude_sid) : -1;
	while (rc == 0 && !mcp_stop) {
		int64_t now = mono_ms();
		for (int i = 0; i < m->nlinks; i++)
			peersess_service(&m->links[i].sess, now);
		mcp_tools_tick(m, now);
		mcp_keys_tick(m, now);
		struct pollfd p[2 + MCP_LINKS_MAX];
		int timeout = MCP_IDLE_POLL_MS;
		p[0] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN};
		for (int i = 0; i < m->nlinks; i++)
			peersess_pollfd(&m->links[i].sess, &p[1 + i], now, &timeout);
		p[1 + m->nlinks] = (struct pollfd){.fd = box, .events = POLLIN};
		int n = poll(p, (nfds_t)(2 + m->nlinks), timeout);
		if (n < 0 && errno != EINTR) {
			rc = cli_err("mcp: poll: %s", strerror(errno));
			break;
		}
		if (n > 0 && box >= 0 && (p[1 + m->nlinks].revents & POLLIN))
			hookbox_serve(m, box);
		if (n > 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR)) && line_feed(m, &lb) != 0)
			break; /* stdin closed: Claude Code ended the session */
	}
	hookbox_close(box, claude_sid);
	for (int i = 0; i < m->nlinks; i++) {
		peersess_close(&m->links[i].sess);
		sodium_memzero(&m->links[i].cfg.key, sizeof m->links[i].cfg.key);
		sodium_memzero(m->links[i].sess_sk, sizeof m->links[i].sess_sk);
	}
	mcp_tools_free(m);
	mcp_keys_free(m);
	free(lb.buf);
	free(m);
	return rc;
}
