/* cli — option parsing (getopt_long), errors and URL/config choice shared
 * by every meshctl command (see cli.h). */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

static const struct cli_optspec cli_global_opts[] = {
	{"config", 1},
	{"broker", 1},
	{"cacert", 1}, /* third: cli_opts_parse hands it to the HTTP module */
};
#define CLI_NGLOBAL (int)(sizeof cli_global_opts / sizeof cli_global_opts[0])

static void cli_vmsg(const char *fmt, va_list ap)
{
	char line[2048];
	vsnprintf(line, sizeof line, fmt, ap);
	/* one line, whatever the message carries */
	for (char *p = line; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	fprintf(stderr, "meshctl: %s\n", line);
	fflush(stderr);
}

int cli_err(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cli_vmsg(fmt, ap);
	va_end(ap);
	return CLI_EXIT_FAIL;
}

int cli_usage_err(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cli_vmsg(fmt, ap);
	va_end(ap);
	return CLI_EXIT_USAGE;
}

/* index in the combined table (spec first, then the globals), or -1 */
static int cli_opt_index(const struct cli_opts *o, const char *name, size_t len)
{
	for (int i = 0; i < o->nspec; i++)
		if (strlen(o->spec[i].name) == len && !strncmp(o->spec[i].name, name, len))
			return i;
	for (int i = 0; i < CLI_NGLOBAL; i++)
		if (strlen(cli_global_opts[i].name) == len && !strncmp(cli_global_opts[i].name, name, len))
			return o->nspec + i;
	return -1;
}

static const struct cli_optspec *cli_spec_at(const struct cli_opts *o, int i)
{
	return i < o->nspec ? &o->spec[i] : &cli_global_opts[i - o->nspec];
}

#define CLI_OPT_BASE 256 /* getopt_long's val for option i: CLI_OPT_BASE + i */

int cli_opts_parse(int argc, char **argv, const struct cli_optspec *spec, struct cli_opts *o)
{
	int nspec = 0, rc = 0;
	memset(o, 0, sizeof *o);
	while (spec && spec[nspec].name)
		nspec++;
	if (nspec + CLI_NGLOBAL > CLI_OPT_MAX || argc < 0 || argc > CLI_ARGS_MAX) {
		cli_err(argc > CLI_ARGS_MAX ? "too many arguments" : "internal: too many options");
		return -1;
	}
	o->spec = spec;
	o->nspec = nspec;
	struct option lo[CLI_OPT_MAX + 1];
	for (int i = 0; i < nspec + CLI_NGLOBAL; i++) {
		const struct cli_optspec *s = cli_spec_at(o, i);
		lo[i] = (struct option){s->name, s->has_arg ? required_argument : no_argument, NULL, CLI_OPT_BASE + i};
	}
	lo[nspec + CLI_NGLOBAL] = (struct option){0};
	/* getopt wants a program name first; "-" first in optstring keeps the
	 * words in order (returned as 1), ":" tells a missing value apart */
	char *args[CLI_ARGS_MAX + 2];
	args[0] = "meshctl";
	for (int i = 0; i < argc; i++)
		args[i + 1] = argv[i];
	args[argc + 1] = NULL;
	opterr = 0;
	optind = 0;
	int c;
	while (rc == 0 && (c = getopt_long(argc + 1, args, "-:", lo, NULL)) != -1) {
		if (c == 1) {
			if (o->npos >= CLI_POS_MAX)
				rc = cli_usage_err("too many arguments");
			else
				o->pos[o->npos++] = optarg;
		} else if (c >= CLI_OPT_BASE) {
			o->val[c - CLI_OPT_BASE] = cli_spec_at(o, c - CLI_OPT_BASE)->has_arg ? optarg : "";
		} else if (c == ':') {
			rc = cli_usage_err("option %s needs a value", args[optind - 1]);
		} else if (optopt >= CLI_OPT_BASE) {
			rc = cli_usage_err("option --%s takes no value", cli_spec_at(o, optopt - CLI_OPT_BASE)->name);
		} else {
			rc = cli_usage_err("unknown option %s", args[optind - 1]);
		}
	}
	/* after "--": words only */
	for (int i = optind; rc == 0 && i < argc + 1; i++) {
		if (o->npos >= CLI_POS_MAX)
			rc = cli_usage_err("too many arguments");
		else
			o->pos[o->npos++] = args[i];
	}
	if (rc == 0 && o->val[nspec + 2])
		http_set_cafile(o->val[nspec + 2]);
	return rc == 0 ? 0 : -1;
}

const char *cli_opt(const struct cli_opts *o, const char *name)
{
	int idx = cli_opt_index(o, name, strlen(name));
	return idx < 0 ? NULL : o->val[idx];
}

const char *cli_config_path(const struct cli_opts *o)
{
	const char *p = cli_opt(o, "config");
	if (p && *p)
		return p;
	p = getenv("MESHCTL_CONFIG");
	return p && *p ? p : NULL;
}

const char *cli_broker_url(const struct cli_opts *o, const char *config_broker)
{
	const char *u = cli_opt(o, "broker");
	if (u && *u)
		return u;
	u = getenv("MESHBROKER_URL");
	if (u && *u)
		return u;
	if (config_broker && *config_broker)
		return config_broker;
	return CLI_DEFAULT_BROKER;
}

int cli_parse_uint(const char *s, long max, long *out)
{
	if (!s || !*s || strlen(s) > 18)
		return -1;
	for (const char *p = s; *p; p++)
		if (*p < '0' || *p > '9')
			return -1;
	errno = 0;
	long v = strtol(s, NULL, 10);
	if (errno || v > max)
		return -1;
	*out = v;
	return 0;
}
