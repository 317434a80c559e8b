/* adminref — what meshctl's admin commands share: durations ("24h"), the
 * mesh named by id or slug, and the "X list MESH" / "X revoke MESH ID"
 * commands of invites and API keys (resolve, run, print, exit code). */
#ifndef CLI_ADMINREF_H
#define CLI_ADMINREF_H

#include "db/store_admin.h"

struct admin_db;

#define ADMINREF_DURATION_MAX (366LL * 24 * 3600)

/* "90s", "30m", "24h", "7d" or plain seconds, 1 s .. 366 d: 0 ok, -1 bad */
int adminref_duration(const char *s, long long *secs);
/* the mesh named by id or slug into *m (free with store_mesh_row_free);
 * an archived one only with allow_archived.  0, or -1 after an error line. */
int adminref_mesh(struct admin_db *c, const char *which, int allow_archived, struct mesh_row *m);

struct adminref_kind {
	const char *list_usage, *revoke_usage; /* "usage: meshctl invite list MESH" ... */
	const char *what;                      /* "invite", "api key" */
	int allow_archived;
	/* print the rows of mesh_id on stdout: 0 ok, -1 database error */
	int (*list)(struct admin_db *c, const char *mesh_id);
	/* revoke id in mesh_id: how many were (-1 database error) */
	int (*revoke)(struct admin_db *c, const char *mesh_id, const char *id);
};
/* meshctl KIND list MESH / meshctl KIND revoke MESH ID: the exit code */
int adminref_list(const struct adminref_kind *k, int argc, char **argv);
int adminref_revoke(const struct adminref_kind *k, int argc, char **argv);

#endif
