/* admin — meshctl's database commands (docs/protocol.md §6): migrate, mesh
 * create, member add|revoke|list.  Blocking libpq on DATABASE_URL,
 * parameterized queries only. */
#ifndef CLI_ADMIN_H
#define CLI_ADMIN_H

#include <stddef.h>

/* Each takes the words after the command name and returns the exit code. */
int admin_migrate(int argc, char **argv);
int admin_mesh_create(int argc, char **argv);
int admin_member_add(int argc, char **argv);
int admin_member_revoke(int argc, char **argv);
int admin_mesh_archive(int argc, char **argv);
int admin_member_list(int argc, char **argv);

struct admin_db;
/* Open DATABASE_URL; NULL after printing one line. */
struct admin_db *admin_connect(void);
/* 0 when mesh_id names a mesh (archived too with allow_archived); -1
 * after printing why not */
int admin_mesh_check(struct admin_db *c, const char *mesh_id, int allow_archived);
/* print the last statement's error; returns CLI_EXIT_FAIL */
int admin_db_err(struct admin_db *a);

/* "My Team!" -> "my-team"; at most cap-1 bytes.  0 ok, -1 when nothing is
 * left to make a slug of. */
int admin_slugify(const char *name, char *out, size_t cap);

#endif
