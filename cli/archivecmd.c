/* archivecmd — `meshctl mesh archive MESH_ID` (issue 24): the archive
 * statement is db/store_admin.c's; the live close is cli/liveclose.h's. */
#include <stdio.h>

#include "admin.h"
#include "cli.h"
#include "db/store_admin.h"
#include "liveclose.h"

/* archive a mesh: its hellos and API keys are refused from the commit on
 * (§2, migration 0010's trigger) and its live connections close 4002
 * "mesh_archived": this host's here (cli/liveclose.h), every host's with
 * HOST_ID by migration 0012's trigger */
int admin_mesh_archive(int argc, char **argv)
{
	struct cli_opts o;
	int rc = CLI_EXIT_FAIL;
	if (cli_opts_parse(argc, argv, NULL, &o) != 0)
		return CLI_EXIT_USAGE;
	if (o.npos != 1 || !o.pos[0][0])
		return cli_usage_err("usage: meshctl mesh archive MESH_ID");
	struct admin_db *c = admin_connect();
	if (!c || admin_mesh_check(c, o.pos[0], 0) != 0)
		goto out;
	int n = store_mesh_archive(c, o.pos[0]);
	if (n < 0) {
		admin_db_err(c);
		goto out;
	}
	if (n == 0) {
		cli_err("mesh %s is archived", o.pos[0]);
		goto out;
	}
	printf("%s\n", o.pos[0]);
	char err[256];
	int told = liveclose_mesh(o.pos[0], err, sizeof err);
	if (told < 0)
		fprintf(stderr, "meshctl: mesh %s archived, but its live connections could not be closed: %s\n",
		        o.pos[0], err);
	else if (told > 0)
		fprintf(stderr, "meshctl: closed %d live connection(s) of mesh %s\n", told, o.pos[0]);
	rc = fflush(stdout) == 0 ? 0 : CLI_EXIT_FAIL;
out:
	store_admin_close(c);
	return rc;
}
