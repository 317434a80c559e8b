/* util — small helpers (see util.h). */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sodium.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void iso8601_ms(int64_t ms, char *buf)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&s, &tm);
	size_t n = strftime(buf, 21, "%Y-%m-%dT%H:%M:%S", &tm);
	int frac = (int)(ms % 1000);
	if (frac < 0)
		frac += 1000;
	buf[n] = '.';
	buf[n + 1] = (char)('0' + frac / 100);
	buf[n + 2] = (char)('0' + frac / 10 % 10);
	buf[n + 3] = (char)('0' + frac % 10);
	buf[n + 4] = 'Z';
	buf[n + 5] = 0;
}

/* One randombytes_buf per id (randombytes_uniform costs a getrandom call per
 * character): bytes below 248 = 4 * 62 map uniformly onto the alphabet, the
 * rest are skipped; 64 bytes almost always hold 32 usable ones. */
void id_new(char out[ID_LEN + 1])
{
	static const char abc[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	unsigned char buf[2 * ID_LEN];
	size_t used = sizeof buf;
	for (int i = 0; i < ID_LEN;) {
		if (used == sizeof buf) {
			randombytes_buf(buf, sizeof buf);
			used = 0;
		}
		unsigned char b = buf[used++];
		if (b < 248)
			out[i++] = abc[b % 62];
	}
	out[ID_LEN] = 0;
}

int is_hex(const char *s, size_t len)
{
	size_t i;
	for (i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
			return 0;
	}
	return s[i] == 0;
}

void hex_encode(const unsigned char *in, size_t n, char *out)
{
	sodium_bin2hex(out, 2 * n + 1, in, n);
}

int hex_decode(const char *hex, unsigned char *out, size_t n)
{
	size_t got = 0;
	const char *end = NULL;
	if (strlen(hex) != 2 * n)
		return -1;
	if (sodium_hex2bin(out, n, hex, 2 * n, NULL, &got, &end) != 0 || got != n)
		return -1;
	return 0;
}

int parse_pos_int(const char *s, long max, long *out)
{
	if (!s || !*s)
		return -1;
	for (const char *p = s; *p; p++)
		if (*p < '0' || *p > '9')
			return -1;
	errno = 0;
	char *end;
	long v = strtol(s, &end, 10);
	if (errno || *end || v <= 0 || v > max)
		return -1;
	*out = v;
	return 0;
}

int str_copy(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);
	if (n >= cap)
		return -1;
	memcpy(dst, src, n + 1);
	return 0;
}

size_t buf_take(const unsigned char *src, size_t len, size_t *off, unsigned char *dst, size_t cap)
{
	size_t n = len - *off;
	if (n > cap)
		n = cap;
	memcpy(dst, src + *off, n);
	*off += n;
	return n;
}

int utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = s[i];
		size_t need;
		unsigned cp;
		if (c == 0)
			return 0;
		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (n - i <= need)
			return 0;
		for (size_t k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += need + 1;
	}
	return 1;
}

/* strict non-negative decimal int: 0 ok, -1 bad */
static int parse_nonneg_int(const char *s, long max, long *out)
{
	if (!*s)
		return -1;
	long v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9' || v > (max - (*p - '0')) / 10)
			return -1;
		v = v * 10 + (*p - '0');
	}
	*out = v;
	return 0;
}

int listen_fds(int unset_env)
{
	int r = 0;
	long pid, n;
	const char *e = getenv("LISTEN_PID");
	if (!e)
		goto out;
	if (parse_nonneg_int(e, INT_MAX, &pid) != 0 || pid == 0) {
		r = -EINVAL;
		goto out;
	}
	if ((pid_t)pid != getpid())
		goto out; /* meant for another process (a parent that did not unset it) */
	e = getenv("LISTEN_FDS");
	if (!e)
		goto out;
	if (parse_nonneg_int(e, INT_MAX - LISTEN_FDS_START, &n) != 0) {
		r = -EINVAL;
		goto out;
	}
	for (int fd = LISTEN_FDS_START; fd < LISTEN_FDS_START + (int)n; fd++) {
		int fl = fcntl(fd, F_GETFD);
		if (fl < 0 || (!(fl & FD_CLOEXEC) && fcntl(fd, F_SETFD, fl | FD_CLOEXEC) != 0)) {
			r = -errno;
			goto out;
		}
	}
	r = (int)n;
out:
	if (unset_env) {
		unsetenv("LISTEN_PID");
		unsetenv("LISTEN_FDS");
		unsetenv("LISTEN_FDNAMES");
	}
	return r;
}

char proc_stat_state(const char *line, size_t n)
{
	const char *close = NULL;
	for (size_t i = 0; i < n; i++)
		if (line[i] == ')')
			close = line + i;
	if (!close || (size_t)(close - line) + 2 >= n || close[1] != ' ')
		return 0;
	char c = close[2];
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ? c : 0;
}

int process_group_stopped(int pid)
{
	char path[40], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t r = read(fd, buf, sizeof buf);
	close(fd);
	return r > 0 && proc_stat_state(buf, (size_t)r) == 'T';
}
