/* cli — option parsing, errors and URL/config choice shared by every meshctl
 * command (see cli.h). */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct cli_optspec cli_global_opts[] = {
	{"config", 1},
	{"broker", 1},
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

int cli_opts_parse(int argc, char **argv, const struct cli_optspec *spec, struct cli_opts *o)
{
	int nspec = 0, only_pos = 0;
	memset(o, 0, sizeof *o);
	while (spec && spec[nspec].name)
		nspec++;
	if (nspec + CLI_NGLOBAL > CLI_OPT_MAX) {
		cli_err("internal: too many options");
		return -1;
	}
	o->spec = spec;
	o->nspec = nspec;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (only_pos || a[0] != '-' || a[1] != '-') {
			/* "-" alone and "-x" are positional: meshctl has no short options */
			if (o->npos >= CLI_POS_MAX) {
				cli_usage_err("too many arguments");
				return -1;
			}
			o->pos[o->npos++] = a;
			continue;
		}
		if (a[2] == 0) {
			only_pos = 1;
			continue;
		}
		const char *name = a + 2, *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		int idx = cli_opt_index(o, name, len);
		if (idx < 0) {
			cli_usage_err("unknown option --%.*s", (int)len, name);
			return -1;
		}
		const struct cli_optspec *s = cli_spec_at(o, idx);
		if (!s->has_arg) {
			if (eq) {
				cli_usage_err("option --%s takes no value", s->name);
				return -1;
			}
			o->val[idx] = "";
		} else if (eq) {
			o->val[idx] = eq + 1;
		} else if (i + 1 < argc) {
			o->val[idx] = argv[++i];
		} else {
			cli_usage_err("option --%s needs a value", s->name);
			return -1;
		}
	}
	return 0;
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
