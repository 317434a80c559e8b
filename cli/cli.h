/* cli — what every meshctl command shares: option parsing (options may come
 * before, between or after the positional words), one-line errors and the
 * broker URL and peer config choice of docs/protocol.md's client rules. */
#ifndef CLI_CLI_H
#define CLI_CLI_H

#include <stddef.h>

/* exit codes: 0 ok, 1 failure, 2 usage */
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

#define CLI_DEFAULT_BROKER "ws://127.0.0.1:7900/ws"

struct cli_optspec {
	const char *name; /* without the leading "--" */
	int has_arg;
};

#define CLI_POS_MAX 8
#define CLI_OPT_MAX 16
#define CLI_ARGS_MAX 254 /* words after the command */
struct cli_opts {
	const char *pos[CLI_POS_MAX];
	int npos;
	const char *val[CLI_OPT_MAX]; /* by spec index; "" for a flag given */
	const struct cli_optspec *spec;
	int nspec;
};

/* Parse argv[0..argc) against spec with getopt_long (the global --config,
 * --broker and --cacert FILE are always accepted; options may come before,
 * between or after the words; "--" ends options; "--name=value" works; a
 * --cacert goes to http_set_cafile).  On a usage error prints one line and
 * returns -1. */
int cli_opts_parse(int argc, char **argv, const struct cli_optspec *spec, struct cli_opts *o);
/* The value of option name, or NULL when not given. */
const char *cli_opt(const struct cli_opts *o, const char *name);

/* "meshctl: <fmt>\n" on stderr; always returns CLI_EXIT_FAIL. */
int cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Same, returns CLI_EXIT_USAGE. */
int cli_usage_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The peer config path: --config, else MESHCTL_CONFIG, else NULL. */
const char *cli_config_path(const struct cli_opts *o);
/* The broker URL: --broker > MESHBROKER_URL > config_broker (may be NULL or
 * "") > CLI_DEFAULT_BROKER. */
const char *cli_broker_url(const struct cli_opts *o, const char *config_broker);

/* Strict non-negative decimal <= max.  0 ok, -1 bad. */
int cli_parse_uint(const char *s, long max, long *out);

#endif
