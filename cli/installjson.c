/* installjson — Claude Code's config files for meshctl install (see
 * installjson.h). */
#include "cli/installjson.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"

int installjson_scope_parse(const char *s, enum installjson_scope *out)
{
	if (!s || !strcmp(s, "user"))
		*out = INSTALLJSON_USER;
	else if (!strcmp(s, "project"))
		*out = INSTALLJSON_PROJECT;
	else
		return -1;
	return 0;
}

int installjson_paths(enum installjson_scope scope, struct installjson_paths *p)
{
	char base[PATH_MAX];
	if (scope == INSTALLJSON_USER) {
		const char *home = getenv("HOME");
		if (!home || home[0] != '/')
			return cli_err("HOME is not set to an absolute path"), -1;
		if ((size_t)snprintf(base, sizeof base, "%s", home) >= sizeof base)
			return cli_err("HOME is too long"), -1;
	} else if (!getcwd(base, sizeof base)) {
		return cli_err("getcwd: %s", strerror(errno)), -1;
	}
	const char *mcp = scope == INSTALLJSON_USER ? ".claude.json" : ".mcp.json";
	if ((size_t)snprintf(p->mcp, sizeof p->mcp, "%s/%s", base, mcp) >= sizeof p->mcp ||
	    (size_t)snprintf(p->settings, sizeof p->settings, "%s/.claude/settings.json", base) >=
		    sizeof p->settings)
		return cli_err("%s: path too long", base), -1;
	return 0;
}

int installjson_load(const char *path, cJSON **doc, int *existed)
{
	*doc = NULL;
	*existed = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			return cli_err("%s: %s", path, strerror(errno)), -1;
		*doc = cJSON_CreateObject();
		return *doc ? 0 : (cli_err("out of memory"), -1);
	}
	*existed = 1;
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > INSTALLJSON_MAX) {
		close(fd);
		return cli_err("%s: not a regular file of at most %u MiB", path, INSTALLJSON_MAX >> 20), -1;
	}
	size_t len = 0, cap = (size_t)st.st_size;
	char *buf = malloc(cap + 1);
	if (!buf) {
		close(fd);
		return cli_err("out of memory"), -1;
	}
	while (len < cap) {
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = 0;
	size_t skip = 0;
	while (skip < len && strchr(" \t\r\n", buf[skip]))
		skip++;
	if (skip == len) { /* an empty file counts as {} */
		free(buf);
		*doc = cJSON_CreateObject();
		return 0;
	}
	*doc = cJSON_ParseWithLength(buf, len);
	free(buf);
	if (!cJSON_IsObject(*doc)) {
		cJSON_Delete(*doc);
		*doc = NULL;
		return cli_err("%s: not a JSON object; left as it is (fix or move it, then run again)", path), -1;
	}
	return 0;
}

/* mkdir -p of path's directory */
static int installjson_mkdirs(const char *path)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = 0;
	const char *home = getenv("HOME");
	mode_t mode = home && !strncmp(dir, home, strlen(home)) ? 0700 : 0755;
	for (char *p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(dir, 0755) != 0 && errno != EEXIST)
			return cli_err("mkdir %s: %s", dir, strerror(errno)), -1;
		*p = '/';
	}
	if (mkdir(dir, mode) != 0 && errno != EEXIST)
		return cli_err("mkdir %s: %s", dir, strerror(errno)), -1;
	return 0;
}

int installjson_save(const char *path, const cJSON *doc)
{
	char tmp[PATH_MAX + 16];
	struct stat st;
	mode_t mode = 0644;
	if (stat(path, &st) == 0)
		mode = st.st_mode & 07777;
	else if (strstr(path, "/.claude.json"))
		mode = 0600; /* Claude Code's own file holds account details */
	if (installjson_mkdirs(path) != 0)
		return -1;
	char *text = cJSON_Print(doc);
	if (!text)
		return cli_err("out of memory"), -1;
	if ((size_t)snprintf(tmp, sizeof tmp, "%s.XXXXXX", path) >= sizeof tmp) {
		free(text);
		return cli_err("%s: path too long", path), -1;
	}
	int fd = mkstemp(tmp);
	if (fd < 0) {
		free(text);
		return cli_err("%s: %s", tmp, strerror(errno)), -1;
	}
	size_t len = strlen(text), off = 0;
	int ok = fchmod(fd, mode) == 0;
	while (ok && off < len) {
		ssize_t n = write(fd, text + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		ok = n > 0;
		off += n > 0 ? (size_t)n : 0;
	}
	ok = ok && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
	int err = errno;
	ok = close(fd) == 0 && ok;
	free(text);
	if (!ok || rename(tmp, path) != 0) {
		err = ok ? errno : err;
		unlink(tmp);
		return cli_err("%s: not written: %s", path, strerror(err)), -1;
	}
	return 0;
}

cJSON *installjson_object(cJSON *obj, const char *key, const char *path)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (!v)
		return cJSON_AddObjectToObject(obj, key);
	if (!cJSON_IsObject(v)) {
		cli_err("%s: \"%s\" is not an object; left as it is", path, key);
		return NULL;
	}
	return v;
}

int installjson_self(char *out, size_t cap)
{
	ssize_t n = readlink("/proc/self/exe", out, cap - 1);
	if (n <= 0 || (size_t)n >= cap - 1)
		return cli_err("cannot find meshctl's own path (/proc/self/exe)"), -1;
	out[n] = 0;
	return 0;
}

int installjson_abs(const char *path, char *out, size_t cap)
{
	char buf[PATH_MAX];
	if (!realpath(path, buf))
		return cli_err("%s: %s", path, strerror(errno)), -1;
	if ((size_t)snprintf(out, cap, "%s", buf) >= cap)
		return cli_err("%s: path too long", path), -1;
	return 0;
}
