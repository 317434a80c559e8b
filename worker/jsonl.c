/* jsonl — transcript-based status inference; see jsonl.h.  Bounded: one
 * directory listing, one 8 KiB read per look. */
#include "worker/jsonl.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shm/shm.h"

#define TAIL_BYTES 8192

static void replace_chars(char *s, const char *set)
{
	for (; *s; s++)
		if (strchr(set, *s))
			*s = '-';
}

static int add_key(char keys[JSONL_KEYS_MAX][JSONL_KEY_MAX], int n, const char *k)
{
	if (n >= JSONL_KEYS_MAX || !*k || strcmp(k, ".") == 0 || strcmp(k, "..") == 0 || strchr(k, '/'))
		return n;
	for (int i = 0; i < n; i++)
		if (strcmp(keys[i], k) == 0)
			return n;
	snprintf(keys[n], JSONL_KEY_MAX, "%s", k);
	return n + 1;
}

int jsonl_candidates(const char *cwd, char keys[JSONL_KEYS_MAX][JSONL_KEY_MAX])
{
	char buf[JSONL_KEY_MAX];
	int n = 0;
	if (strlen(cwd) >= JSONL_KEY_MAX - 1)
		return 0;
	snprintf(buf, sizeof buf, "%s", cwd);
	replace_chars(buf, "/\\:");
	n = add_key(keys, n, buf);
	snprintf(buf, sizeof buf, "%s", cwd);
	replace_chars(buf, "/");
	n = add_key(keys, n, buf);
	snprintf(buf, sizeof buf, "%s", cwd);
	replace_chars(buf, "/\\");
	n = add_key(keys, n, buf);
	const char *nodrive = cwd;
	if (((cwd[0] >= 'A' && cwd[0] <= 'Z') || (cwd[0] >= 'a' && cwd[0] <= 'z')) && cwd[1] == ':')
		nodrive = cwd + 2;
	snprintf(buf, sizeof buf, "%s", nodrive);
	replace_chars(buf, "/\\");
	n = add_key(keys, n, buf);
	int base = n;
	for (int i = 0; i < base; i++) {
		if (keys[i][0] == '-')
			continue;
		snprintf(buf, sizeof buf, "-%s", keys[i]);
		n = add_key(keys, n, buf);
	}
	return n;
}

static int line_status(const char *line, size_t len)
{
	cJSON *o = cJSON_ParseWithLength(line, len);
	int st = -1;
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(o, "message");
	const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
	if (cJSON_IsString(t) && strcmp(t->valuestring, "assistant") == 0 && cJSON_IsArray(content)) {
		st = ST_IDLE;
		const cJSON *item;
		cJSON_ArrayForEach(item, content)
		{
			const cJSON *it = cJSON_GetObjectItemCaseSensitive(item, "type");
			if (cJSON_IsString(it) && strcmp(it->valuestring, "tool_use") == 0)
				st = ST_WORKING;
		}
	}
	cJSON_Delete(o);
	return st;
}

int jsonl_status_of(const char *tail, size_t len)
{
	size_t end = len;
	while (end > 0) {
		size_t start = end;
		while (start > 0 && tail[start - 1] != '\n')
			start--;
		if (end > start) {
			int st = line_status(tail + start, end - start);
			if (st >= 0)
				return st;
		}
		end = start ? start - 1 : 0;
	}
	return -1;
}

int jsonl_infer(const char *dir, const char *cwd)
{
	static char keys[JSONL_KEYS_MAX][JSONL_KEY_MAX];
	int n = jsonl_candidates(cwd, keys);
	for (int i = 0; i < n; i++) {
		char path[8400];
		size_t dl = strlen(dir), kl = strlen(keys[i]);
		if (dl + kl + 2 > sizeof path)
			continue;
		memcpy(path, dir, dl);
		path[dl] = '/';
		memcpy(path + dl + 1, keys[i], kl + 1);
		DIR *d = opendir(path);
		if (!d)
			continue;
		char best[256] = "";
		struct timespec best_t = {0};
		struct dirent *e;
		int seen = 0;
		while ((e = readdir(d)) && seen++ < 10000) {
			size_t l = strlen(e->d_name);
			if (l < 7 || l >= sizeof best || strcmp(e->d_name + l - 6, ".jsonl") != 0)
				continue;
			struct stat stt;
			if (fstatat(dirfd(d), e->d_name, &stt, 0) != 0 || !S_ISREG(stt.st_mode))
				continue;
			if (!best[0] || stt.st_mtim.tv_sec > best_t.tv_sec ||
			    (stt.st_mtim.tv_sec == best_t.tv_sec && stt.st_mtim.tv_nsec > best_t.tv_nsec)) {
				snprintf(best, sizeof best, "%s", e->d_name);
				best_t = stt.st_mtim;
			}
		}
		int fd = best[0] ? openat(dirfd(d), best, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
		closedir(d);
		if (fd < 0)
			return -1; /* the first existing directory decides */
		char tail[TAIL_BYTES];
		off_t size = lseek(fd, 0, SEEK_END);
		off_t from = size > TAIL_BYTES ? size - TAIL_BYTES : 0;
		ssize_t got = pread(fd, tail, TAIL_BYTES, from);
		close(fd);
		return got > 0 ? jsonl_status_of(tail, (size_t)got) : -1;
	}
	return -1;
}
