/* adminref — durations, the mesh resolver and the list/revoke commands
 * shared by meshctl's admin commands (see adminref.h). */
#include "adminref.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "admin.h"
#include "cli.h"

int adminref_duration(const char *s, long long *secs)
{
	char *end;
	if (!s || !(*s >= '0' && *s <= '9'))
		return -1;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || v <= 0)
		return -1;
	long long mul = 1;
	if (*end == 's')
		end++;
	else if (*end == 'm')
		mul = 60, end++;
	else if (*end == 'h')
		mul = 3600, end++;
	else if (*end == 'd')
		mul = 86400, end++;
	if (*end || v > ADMINREF_DURATION_MAX / mul)
		return -1;
	*secs = v * mul;
	return 0;
}

int adminref_mesh(struct admin_db *c, const char *which, int allow_archived, struct mesh_row *m)
{
	int archived = 0;
	int found = store_mesh_get(c, which, m, &archived);
	if (found < 0)
		return admin_db_err(c), -1;
	if (!found)
		return cli_err("no mesh with id or slug \"%s\"", which), -1;
	if (archived && !allow_archived) {
		cli_err("mesh %s is archived", m->slug);
		store_mesh_row_free(m);
		return -1;
	}
	return 0;
}

/* parse the words (npos of them), connect, resolve the mesh */
static struct admin_db *adminref_open(const struct adminref_kind *k, int argc, char **argv, int npos,
				      const char *usage, struct cli_opts *o, struct mesh_row *m, int *rc)
{
	*rc = CLI_EXIT_USAGE;
	if (cli_opts_parse(argc, argv, NULL, o) != 0)
		return NULL;
	if (o->npos != npos) {
		cli_usage_err("%s", usage);
		return NULL;
	}
	*rc = CLI_EXIT_FAIL;
	struct admin_db *c = admin_connect();
	if (c && adminref_mesh(c, o->pos[0], k->allow_archived, m) != 0) {
		store_admin_close(c);
		return NULL;
	}
	return c;
}

int adminref_list(const struct adminref_kind *k, int argc, char **argv)
{
	struct cli_opts o;
	struct mesh_row m;
	int rc;
	struct admin_db *c = adminref_open(k, argc, argv, 1, k->list_usage, &o, &m, &rc);
	if (!c)
		return rc;
	if (k->list(c, m.id) != 0)
		admin_db_err(c);
	else
		rc = fflush(stdout) == 0 ? 0 : CLI_EXIT_FAIL;
	store_mesh_row_free(&m);
	store_admin_close(c);
	return rc;
}

int adminref_revoke(const struct adminref_kind *k, int argc, char **argv)
{
	struct cli_opts o;
	struct mesh_row m;
	int rc;
	struct admin_db *c = adminref_open(k, argc, argv, 2, k->revoke_usage, &o, &m, &rc);
	if (!c)
		return rc;
	int n = k->revoke(c, m.id, o.pos[1]);
	if (n < 0)
		admin_db_err(c);
	else if (n == 0)
		cli_err("no live %s \"%s\" in mesh %s", k->what, o.pos[1], m.slug);
	else if (n > 1)
		cli_err("prefix \"%s\" names %d %ss; give the id", o.pos[1], n, k->what);
	else {
		printf("revoked %s %s\n", k->what, o.pos[1]);
		rc = fflush(stdout) == 0 ? 0 : CLI_EXIT_FAIL;
	}
	store_mesh_row_free(&m);
	store_admin_close(c);
	return rc;
}
