/* meshctl — the meshbroker client and admin tool: a table of commands, each a
 * function taking the words after its name.  Exit 0 ok, 1 failure (one line
 * "meshctl: ..." on stderr), 2 usage. */
#include <curl/curl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "proto/version.h"
#include "cli/admin.h"
#include "cli/apikeycmd.h"
#include "cli/auditcmd.h"
#include "cli/invitecmd.h"
#include "cli/cli.h"
#include "cli/doctor.h"
#include "cli/install.h"
#include "cli/hookpost.h"
#include "cli/keyfile.h"
#include "cli/mcp.h"
#include "cli/modcmd.h"
#include "cli/peerconnect.h"
#include "cli/peersend.h"
#include "cli/topiccmd.h"

struct command {
	const char *group; /* "mesh", "member", or NULL for one-word commands */
	const char *name;
	int (*run)(int argc, char **argv);
	const char *usage;
	const char *opts; /* one line per option of its own, for --help */
};

static int main_help(int argc, char **argv);

#define O_PEER                                                                                   \
	"  --pid N              the pid the hello reports (default: meshctl's)\n"                 \
	"  --cwd DIR            the cwd the hello reports (default: the current directory)\n"     \
	"  --session-id S       the hello's sessionId (default: PID-MS)\n"
#define O_TIMEOUT "  --timeout SECONDS    give up after this long (decimals allowed)\n"
#define O_PRIORITY "  --priority P         now, next (default) or low\n"

static const struct command main_commands[] = {
	{NULL, "keygen", keyfile_keygen, "keygen --out FILE [--force]",
	 "  --out FILE           where to write the key pair (mode 0600)\n"
	 "  --force              replace an existing file\n"},
	{NULL, "migrate", admin_migrate, "migrate", ""},
	{"mesh", "create", admin_mesh_create,
	 "mesh create NAME [--slug S] [--owner-key KEYFILE] [--max-peers N] [--force]",
	 "  --slug S             the mesh's slug (default: from NAME)\n"
	 "  --owner-key KEYFILE  the owner's key (default: a new ./SLUG.owner.key)\n"
	 "  --max-peers N        live connections allowed in the mesh\n"
	 "  --force              replace an existing owner key file\n"},
	{"mesh", "archive", admin_mesh_archive, "mesh archive MESH_ID", ""},
	{"member", "add", admin_member_add,
	 "member add MESH_ID --key KEYFILE --name NAME [--role admin|member]\n"
	 "                 [--out PEERCONFIG] [--broker URL] [--force]",
	 "  --key KEYFILE        the member's public key (key file)\n"
	 "  --name NAME          display name\n"
	 "  --role R             admin or member (default)\n"
	 "  --out PEERCONFIG     also write a peer config (needs the secret key in KEYFILE)\n"
	 "  --force              replace an existing PEERCONFIG\n"},
	{"member", "revoke", admin_member_revoke, "member revoke MESH_ID MEMBER_ID|PUBKEY", ""},
	{"member", "list", admin_member_list, "member list MESH_ID", ""},
	{"audit", "verify", auditcmd_verify, "audit verify MESH_ID", ""},
	{"invite", "create", invitecmd_create,
	 "invite create MESH [--role member|admin] [--max-uses N] [--expires 24h]\n"
	 "                 [--owner-key KEYFILE] [--broker URL] [--local]",
	 "  --role R             member (default) or admin\n"
	 "  --max-uses N         joins allowed (default 1)\n"
	 "  --expires D          lifetime: 90s, 30m, 24h (default), 7d\n"
	 "  --owner-key KEYFILE  the mesh owner's key (default ./SLUG.owner.key)\n"
	 "  --broker URL         the public URL the invite carries (wss://HOST/ws)\n"
	 "  --local              allow a loopback URL (peers on this machine only)\n"},
	{"invite", "list", invitecmd_list, "invite list MESH", ""},
	{"invite", "revoke", invitecmd_revoke, "invite revoke MESH INVITE_ID|TOKEN", ""},
	{NULL, "join", invitecmd_join, "join ic://join/TOKEN [--name NAME] [--out PEERCONFIG] [--force]",
	 "  --name NAME          display name (default $USER)\n"
	 "  --out PEERCONFIG     where to write the peer config (default ./SLUG.json)\n"
	 "  --force              replace an existing PEERCONFIG\n"
	 "  --broker URL         post to this broker instead of the invite's URL\n"},
	{"apikey", "create", apikeycmd_create,
	 "apikey create MESH --caps send,read[,state_write,admin,status] [--topics a,b]\n"
	 "                 [--expires 30d] [--member NAME|MEMBER_ID|PUBKEY] [--label L] [--add-to PEERCONFIG]",
	 "  --caps LIST          capabilities: send, read, state_write, admin, status\n"
	 "  --topics LIST        topics the key may touch (default: all)\n"
	 "  --expires D          lifetime (default: never)\n"
	 "  --member M           the member the key acts for\n"
	 "  --label L            a note shown by apikey list\n"
	 "  --add-to PEERCONFIG  also store the key as the config's \"apiKey\"\n"},
	{"apikey", "list", apikeycmd_list, "apikey list MESH", ""},
	{"apikey", "revoke", apikeycmd_revoke, "apikey revoke MESH KEY_ID|PREFIX", ""},
	{NULL, "connect", peerconnect_main,
	 "connect [--count N] [--timeout SECONDS] [--status idle|working|dnd]\n"
	 "                 [--group NAME] [--pid N] [--cwd DIR] [--session-id S]",
	 "  --count N            stop after N pushes\n" O_TIMEOUT
	 "  --status S           set_status after every hello_ack\n"
	 "  --group NAME         join_group NAME after every hello_ack (@NAME sends reach it)\n" O_PEER},
	{NULL, "send", peersend_send, "send PUBKEY|NAME|'*'|#TOPIC|@GROUP TEXT [--priority now|next|low] [--timeout SECONDS]",
	 O_PRIORITY O_TIMEOUT O_PEER},
	{NULL, "status", peersend_status, "status idle|working|dnd [--timeout SECONDS]", O_TIMEOUT O_PEER},
	{"topic", "create", topiccmd_create, "topic create NAME [--description TEXT] [--visibility public|private]",
	 "  --description TEXT   what the topic is for\n"
	 "  --visibility V       public (default) or private\n" O_TIMEOUT},
	{"topic", "list", topiccmd_list, "topic list", O_TIMEOUT},
	{"topic", "join", topiccmd_join, "topic join TOPIC [--role member|observer|lead]",
	 "  --role R             member (default), observer or lead\n" O_TIMEOUT},
	{"topic", "leave", topiccmd_leave, "topic leave TOPIC", O_TIMEOUT},
	{"topic", "members", topiccmd_members, "topic members TOPIC", O_TIMEOUT},
	{"topic", "history", topiccmd_history, "topic history TOPIC [--limit N]",
	 "  --limit N            at most N messages, 1..200 (default 50)\n" O_TIMEOUT},
	{"topic", "post", topiccmd_post, "topic post TOPIC TEXT [--priority now|next|low]", O_PRIORITY O_TIMEOUT},
	{"topic", "tail", topiccmd_tail, "topic tail TOPIC [--timeout SECONDS]", O_TIMEOUT},
	{NULL, "peers", peersend_peers, "peers [--scope mesh|machine|directory|repo] [--json] [--timeout SECONDS]",
	 "  --scope S            mesh (default), machine, directory or repo\n"
	 "  --json               JSON instead of a table\n" O_TIMEOUT O_PEER},
	{NULL, "mcp", mcp_main, "mcp --config PEERCONFIG [--config PEERCONFIG ...] [--group NAME]  (MCP server on stdio)", ""},
	{NULL, "hook", hookpost_run,
	 "hook idle|working|dnd|prompt [--config PEERCONFIG] [--cwd DIR] [--pid N] [--url http(s)://HOST:PORT]",
	 "  --cwd DIR            the session's directory (default: the hook JSON's, else .)\n"
	 "  --pid N              match the peer with this pid (default: Claude Code's session_id,\n"
	 "                       else the newest in DIR)\n"
	 "  --url URL            the broker's HTTP base (default: MESHBROKER_HTTP_URL, else\n"
	 "                       the broker URL as http:// or https://)\n"},
	{NULL, "install", install_main, "install --config PEERCONFIG [--scope user|project] [--name NAME]",
	 "  --scope S            user (default: ~/.claude.json, ~/.claude/settings.json) or\n"
	 "                       project (./.mcp.json, ./.claude/settings.json)\n"
	 "  --name NAME          the mcpServers entry (default meshbroker)\n"},
	{NULL, "uninstall", install_uninstall, "uninstall [--scope user|project] [--name NAME]",
	 "  --scope S            user (default) or project\n"
	 "  --name NAME          the mcpServers entry (default meshbroker)\n"},
	{NULL, "doctor", doctor_main, "doctor [--config PEERCONFIG] [--name NAME]",
	 "  --name NAME          the mcpServers entry to look for (default meshbroker)\n"},
	{NULL, "kick", modcmd_kick, "kick TARGET|--all [--timeout SECONDS]  (owner/admin)",
	 "  --all                every other live session of the mesh\n" O_TIMEOUT},
	{NULL, "disconnect", modcmd_disconnect, "disconnect TARGET|--all [--timeout SECONDS]  (owner/admin)",
	 "  --all                every other live session of the mesh\n" O_TIMEOUT},
	{NULL, "ban", modcmd_ban, "ban MEMBER [--reason TEXT] [--timeout SECONDS]  (owner/admin)",
	 "  --reason TEXT        kept with the ban\n" O_TIMEOUT},
	{NULL, "unban", modcmd_unban, "unban MEMBER [--timeout SECONDS]  (owner/admin)", O_TIMEOUT},
	{NULL, "bans", modcmd_bans, "bans [--timeout SECONDS]", O_TIMEOUT},
	{NULL, "help", main_help, "help", ""},
};
#define MAIN_NCOMMANDS (sizeof main_commands / sizeof main_commands[0])

static void main_usage(FILE *f)
{
	fputs("usage: meshctl COMMAND [ARGS]\n\n", f);
	for (size_t i = 0; i < MAIN_NCOMMANDS; i++) {
		fprintf(f, "  meshctl %s\n", main_commands[i].usage);
	}
	fputs("\n"
	      "Admin commands use DATABASE_URL.  mesh create without --owner-key writes a new\n"
	      "owner key pair to ./<slug>.owner.key (mode 0600).  Key files and peer configs\n"
	      "are JSON, mode 0600; secrets are never taken from the command line.\n"
	      "\n"
	      "Peer commands (connect, send, status) read the peer config from --config FILE\n"
	      "or MESHCTL_CONFIG.  Broker URL: --broker URL > MESHBROKER_URL > the config's\n"
	      "\"broker\" > " CLI_DEFAULT_BROKER ".  ws://, wss://, http:// and https://\n"
	      "all work; TLS checks the certificate against the system's CAs, or --cacert FILE /\n"
	      "MESHBROKER_CA, and the host name; a failure is one line, never plain text instead.\n"
	      "meshctl COMMAND --help lists the command's options.\n"
	      "connect prints every frame from the broker as one JSON line on stdout (pushes\n"
	      "it can read get \"text\" or \"textB64\"), and sends each JSON object line read\n"
	      "from stdin as a frame.\n"
	      "topic commands use the peer config too; TOPIC is a topic id or name.  create\n"
	      "seals a fresh key to you (the broker never sees it); post encrypts with the\n"
	      "topic key (version 2), history and tail print messages with \"text\", and tail\n"
	      "re-seals the key for members still waiting for a copy while it runs.\n"
	      "status applies to every live session of the member (scope member).\n"
	      "peers lists the live peers (the table leaves out meshctl's own connection).\n"
	      "mcp is the MCP server for Claude Code; meshctl mcp --help prints the\n"
	      "claude mcp add line.\n"
	      "hook posts to --url > MESHBROKER_HTTP_URL > the broker URL (--broker, MESHBROKER_URL,\n"
	      "the peer config's \"broker\"; no default) as http(s)://; the broker matches Claude\n"
	      "Code's session_id (hook JSON on stdin, else CLAUDE_CODE_SESSION_ID), else --pid,\n"
	      "else the newest peer in that cwd; the API key sent as Bearer is MESHBROKER_API_KEY,\n"
	      "else the peer config's \"apiKey\".  hook prompt prints the waiting messages as\n"
	      "Claude Code's UserPromptSubmit JSON (additionalContext) within about 2 s.  hook\n"
	      "never blocks a prompt: nothing else on stdout, exit 0 always, problems one line\n"
	      "on stderr.\n"
	      "install registers meshctl mcp and the hooks with Claude Code (--scope user: ~/.claude.json\n"
	      "and ~/.claude/settings.json; project: ./.mcp.json and ./.claude/settings.json), keeping\n"
	      "every other entry; uninstall removes exactly those; doctor checks the setup, one line each.\n"
	      "kick, disconnect, ban and unban are for the mesh's owner and admins.\n"
	      "invite create signs with the mesh owner's key file (default ./SLUG.owner.key) and\n"
	      "refuses a loopback broker URL unless --local;\n"
	      "join needs no DATABASE_URL.  apikey create prints the secret once.\n"
	      "\n"
	      "Exit status: 0 ok, 1 failure (one line on stderr), 2 usage error.\n",
	      f);
}

static int main_help(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	main_usage(stdout);
	return 0;
}

#define MAIN_MAX_ARGS 256
#define MAIN_GLOBAL_OPTS                                                                        \
	"  --config FILE        peer config (else MESHCTL_CONFIG)\n"                              \
	"  --broker URL         ws://, wss://, http:// or https:// broker URL (else MESHBROKER_URL,\n" \
	"                       else the config's \"broker\", else " CLI_DEFAULT_BROKER ")\n"      \
	"  --cacert FILE        PEM CA certificates for TLS (else MESHBROKER_CA, else the system's)\n" \
	"  --help               this text\n"

/* the global options that may come before the command */
static int main_global_opt(const char *a)
{
	return !strcmp(a, "--config") || !strcmp(a, "--broker") || !strcmp(a, "--cacert");
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (sodium_init() < 0)
		return cli_err("libsodium failed to initialise");
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return cli_err("libcurl failed to initialise");
	/* global options before the command (meshctl --config F send ...) are
	 * moved behind it, where every command parses them */
	char *moved[MAIN_MAX_ARGS];
	if (argc > 2 && argc < MAIN_MAX_ARGS &&
	    main_global_opt(argv[1])) {
		int lead = 0;
		while (lead + 2 < argc && main_global_opt(argv[1 + lead]))
			lead += 2;
		int n = 0;
		moved[n++] = argv[0];
		for (int k = 1 + lead; k < argc && strcmp(argv[k], "--") != 0; k++)
			moved[n++] = argv[k];
		for (int k = 1; k <= lead; k++)
			moved[n++] = argv[k];
		for (int k = 1 + lead; k < argc; k++)
			if (!strcmp(argv[k], "--"))
				for (; k < argc; k++)
					moved[n++] = argv[k];
		moved[n] = NULL;
		argv = moved;
	}
	if (argc < 2)
		return cli_usage_err("usage: meshctl COMMAND [ARGS] (see meshctl help)");
	const char *word = argv[1];
	if (!strcmp(word, "--help") || !strcmp(word, "-h"))
		return main_help(0, NULL);
	if (!strcmp(word, "--version")) {
		puts("meshctl " MESHBROKER_VERSION);
		return 0;
	}
	for (size_t i = 0; i < MAIN_NCOMMANDS; i++) {
		const struct command *c = &main_commands[i];
		int skip;
		if (c->group) {
			if (strcmp(word, c->group) != 0 || argc < 3 || strcmp(argv[2], c->name) != 0)
				continue;
			skip = 3;
		} else {
			if (strcmp(word, c->name) != 0)
				continue;
			skip = 2;
		}
		for (int k = skip; k < argc && c->run != mcp_main; k++) {
			if (!strcmp(argv[k], "--"))
				break;
			if (!strcmp(argv[k], "--help")) {
				printf("usage: meshctl %s\n\noptions:\n%s%s", c->usage, c->opts, MAIN_GLOBAL_OPTS);
				return 0;
			}
		}
		return c->run(argc - skip, argv + skip);
	}
	for (size_t i = 0; i < MAIN_NCOMMANDS; i++)
		if (main_commands[i].group && !strcmp(word, main_commands[i].group))
			return cli_usage_err("%s: unknown or missing subcommand (see meshctl help)", word);
	return cli_usage_err("unknown command \"%s\" (see meshctl help)", word);
}
