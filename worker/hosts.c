/* hosts — see hosts.h. */
#include "worker/hosts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"

int hosts_valid_id(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n >= HOSTS_ID_MAX || id[0] == '-')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '0' && id[i] <= '9') || id[i] == '-'))
			return 0;
	return 1;
}

const char *hosts_id(void)
{
	static int read;
	static const char *id;
	if (!read) {
		const char *v = getenv("HOST_ID");
		if (v && v[0] && !hosts_valid_id(v))
			log_fatal("HOST_ID must be 1-32 of a-z, 0-9 and '-', not starting with '-'");
		id = v && v[0] ? v : NULL;
		read = 1;
	}
	return id;
}

int hosts_relay_path(const char *runtime_dir, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "%s/relay.sock", runtime_dir);
	return n > 0 && (size_t)n < cap ? 0 : -1;
}

static int key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* the length of the key at s (up to end), 0 when none or too long */
static size_t key_len(const char *s, const char *end)
{
	size_t n = 0;
	while (s + n < end && key_char(s[n]))
		if (++n >= HOSTS_KEY_MAX)
			return 0;
	return n;
}

/* digits at *p (up to end) as a number in [lo, hi], at most 15 of them and
 * no leading zero; -1 when none, too many, zero-led or out of range */
static long long number(const char **p, const char *end, long long lo, long long hi)
{
	if (*p < end && **p == '0' && *p + 1 < end && (*p)[1] >= '0' && (*p)[1] <= '9')
		return -1;
	long long v = 0;
	int n = 0;
	while (*p < end && **p >= '0' && **p <= '9' && n < 16) {
		v = v * 10 + (**p - '0');
		(*p)++;
		n++;
	}
	return n == 0 || n > 15 || v < lo || v > hi ? -1 : v;
}

/* the kinds: what the ids name, and the numbers after the letter */
static const struct kind_spec {
	char kind, by_presence, nnum;
	long long lo[3], hi[3];
} kinds[] = {
    {HOSTS_WAKE, 0, 0, {0}, {0}},
    {HOSTS_CLOSE, 0, 2, {1000, 0}, {4999, 63}},
    {HOSTS_STATUS, 0, 2, {0, 1}, {2, 3}},
    {HOSTS_REPLACE, 1, 0, {0}, {0}},
    {HOSTS_KICK, 1, 2, {1000, 0}, {4999, 63}},
    {HOSTS_STALE, 1, 3, {1000, 0, 0}, {4999, 63, HOSTS_STALE_MAX}},
    {HOSTS_HOOK, 1, 2, {0, 1}, {2, 3}},
};

int hosts_parse(const char *line, size_t len, struct hosts_bell *out)
{
	const char *p = line, *end = line + len;
	if (len < 2 || len > HOSTS_LINE_MAX)
		return -1;
	const struct kind_spec *ks = NULL;
	for (size_t i = 0; i < sizeof kinds / sizeof *kinds && !ks; i++)
		if (kinds[i].kind == p[0])
			ks = &kinds[i];
	if (!ks)
		return -1;
	out->kind = p[0];
	out->by_presence = ks->by_presence;
	out->code = out->reason = 0;
	out->stale_ms = 0;
	p++;
	long long v[3] = {0, 0, 0};
	for (int i = 0; i < ks->nnum; i++) {
		if (i && (p == end || *p++ != '.'))
			return -1;
		if ((v[i] = number(&p, end, ks->lo[i], ks->hi[i])) < 0)
			return -1;
	}
	out->code = (int)v[0];
	out->reason = (int)v[1];
	out->stale_ms = v[2];
	if (p == end || *p++ != ' ')
		return -1;
	size_t k = key_len(p, end);
	if (!k || p + k >= end || p[k] != ' ')
		return -1;
	memcpy(out->mesh_id, p, k);
	out->mesh_id[k] = 0;
	p += k + 1;
	out->n = 0;
	for (;;) {
		k = key_len(p, end);
		if (!k || out->n == HOSTS_IDS_MAX)
			return -1;
		memcpy(out->ids[out->n], p, k);
		out->ids[out->n++][k] = 0;
		p += k;
		if (p == end)
			return 0;
		if (*p++ != ',')
			return -1;
	}
}

static void send_line(int fd, const struct sockaddr_un *a, const char *line, size_t len)
{
	if (sendto(fd, line, len, MSG_DONTWAIT | MSG_NOSIGNAL, (const struct sockaddr *)a, sizeof *a) < 0)
		log_debug("relay missed a doorbell (the sweep repairs it)");
}

void hosts_hand_remote(const char *runtime_dir, const char *mesh_id, const char *const *ids,
		       const unsigned char *found, int n)
{
	size_t mlen = strlen(mesh_id);
	if (mlen == 0 || mlen >= HOSTS_KEY_MAX)
		return;
	int any = 0;
	for (int i = 0; i < n && !any; i++)
		any = !found[i];
	if (!any)
		return;
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	if (hosts_relay_path(runtime_dir, a.sun_path, sizeof a.sun_path) != 0)
		return;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	char line[HOSTS_LINE_MAX];
	size_t head = (size_t)snprintf(line, sizeof line, "w %s ", mesh_id), len = head;
	int count = 0;
	for (int i = 0; i < n; i++) {
		if (found[i])
			continue;
		size_t k = strlen(ids[i]);
		if (k == 0 || k >= HOSTS_KEY_MAX)
			continue;
		if (len + k + 1 > sizeof line || count == HOSTS_IDS_MAX) {
			send_line(fd, &a, line, len - 1); /* without the trailing comma */
			len = head;
			count = 0;
		}
		memcpy(line + len, ids[i], k);
		len += k;
		line[len++] = ',';
		count++;
	}
	if (count)
		send_line(fd, &a, line, len - 1);
	close(fd);
}

void hosts_hand_close(const char *runtime_dir, const char *mesh_id, const char *member_id, int code, int reason)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	if (hosts_relay_path(runtime_dir, a.sun_path, sizeof a.sun_path) != 0)
		return;
	char line[HOSTS_LINE_MAX];
	int n = snprintf(line, sizeof line, "c%d.%d %s %s", code, reason, mesh_id, member_id);
	if (n <= 0 || (size_t)n >= sizeof line)
		return;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL, (const struct sockaddr *)&a, sizeof a) < 0)
		log_warn("relay missed a close for other hosts: is meshbroker-relay running?", "member", member_id);
	close(fd);
}

void hosts_hand(const char *runtime_dir, const char *kind, const char *mesh_id, const char *const *ids, int n)
{
	size_t mlen = strlen(mesh_id);
	if (n <= 0 || mlen == 0 || mlen >= HOSTS_KEY_MAX || strlen(kind) > 40)
		return;
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	if (hosts_relay_path(runtime_dir, a.sun_path, sizeof a.sun_path) != 0)
		return;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	char line[HOSTS_LINE_MAX];
	size_t head = (size_t)snprintf(line, sizeof line, "%s %s ", kind, mesh_id), len = head;
	int count = 0;
	for (int i = 0; i < n; i++) {
		size_t k = strlen(ids[i]);
		if (k == 0 || k >= HOSTS_KEY_MAX || key_len(ids[i], ids[i] + k) != k)
			continue;
		if (len + k + 1 > sizeof line || count == HOSTS_IDS_MAX) {
			send_line(fd, &a, line, len - 1);
			len = head;
			count = 0;
		}
		memcpy(line + len, ids[i], k);
		len += k;
		line[len++] = ',';
		count++;
	}
	if (count && sendto(fd, line, len - 1, MSG_DONTWAIT | MSG_NOSIGNAL, (const struct sockaddr *)&a, sizeof a) < 0)
		log_warn("relay missed a doorbell for other hosts: is meshbroker-relay running?", "kind", kind);
	close(fd);
}
