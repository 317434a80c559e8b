/* installjson — the JSON files meshctl install edits for Claude Code: where
 * they are for a scope (user: ~/.claude.json and ~/.claude/settings.json;
 * project: ./.mcp.json and ./.claude/settings.json), reading one (a missing
 * file is an empty object; anything but a JSON object is refused, never
 * overwritten), and writing one back atomically (a temp file in the same
 * directory, fsync, rename; the old file's mode kept). */
#ifndef CLI_INSTALLJSON_H
#define CLI_INSTALLJSON_H

#include <limits.h>

#include <cjson/cJSON.h>

#define INSTALLJSON_MAX (64u << 20) /* ~/.claude.json grows with history */

enum installjson_scope { INSTALLJSON_USER, INSTALLJSON_PROJECT };

struct installjson_paths {
	char mcp[PATH_MAX];      /* the file with "mcpServers" */
	char settings[PATH_MAX]; /* the file with "hooks" */
};

/* The scope named by s ("user", "project"; NULL = user).  0 ok, -1 bad. */
int installjson_scope_parse(const char *s, enum installjson_scope *out);
/* The two files of a scope: $HOME for user, the working directory for
 * project.  0 ok, -1 after one error line. */
int installjson_paths(enum installjson_scope scope, struct installjson_paths *p);

/* Read path: *doc = the object ({} when the file does not exist), *existed
 * set.  0 ok, -1 after one error line. */
int installjson_load(const char *path, cJSON **doc, int *existed);
/* Write doc to path atomically, creating its directory (0700 under $HOME,
 * 0755 otherwise) when missing.  0 ok, -1 after one error line. */
int installjson_save(const char *path, const cJSON *doc);

/* obj[key] as an object, created (or refused when it is another type: NULL
 * after one error line). */
cJSON *installjson_object(cJSON *obj, const char *key, const char *path);

/* The absolute path of this meshctl (/proc/self/exe), and of a file given
 * on the command line.  0 ok, -1 after one error line. */
int installjson_self(char *out, size_t cap);
int installjson_abs(const char *path, char *out, size_t cap);

#endif
