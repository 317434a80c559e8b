/* hookbox — the hand-over socket between meshctl mcp and meshctl hook
 * prompt (see hookbox.h). */
#include "cli/hookbox.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "cli/mcp_calls.h"
#include "cli/mcp_out.h"
#include "cli/mcp_state.h"
#include "common/localsock.h"
#include "common/util.h"

#define HOOKBOX_TAKE_MAX (4u << 20) /* a client reads at most this much */

static int hookbox_sid_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > HOOKBOX_SID_MAX)
		return 0;
	for (; *s; s++)
		if (!(isalnum((unsigned char)*s) && (unsigned char)*s < 0x80) && *s != '_' && *s != '-')
			return 0;
	return 1;
}

int hookbox_path(const char *session_id, int create, long pid, char *out, size_t cap)
{
	char dir[256];
	struct stat st;
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	if (!hookbox_sid_ok(session_id))
		return -1;
	if (xdg && xdg[0] == '/' && strlen(xdg) < 150)
		snprintf(dir, sizeof dir, "%s/meshctl", xdg);
	else
		snprintf(dir, sizeof dir, "/tmp/meshctl-%u", (unsigned)geteuid());
	if (create && mkdir(dir, 0700) != 0 && errno != EEXIST)
		return -1;
	/* ours, a directory, nobody else may enter: else another user could
	 * stand in for the MCP server */
	if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077))
		return -1;
	int w = pid > 0 ? snprintf(out, cap, "%s/hook-%s.%ld.sock", dir, session_id, pid)
			: snprintf(out, cap, "%s/hook-%s.[0-9]*.sock", dir, session_id);
	if (w < 0 || (size_t)w >= cap || strlen(out) >= 108)
		return -1; /* sun_path */
	return 0;
}

int hookbox_listen(const char *session_id)
{
	char path[256];
	if (!session_id || !*session_id)
		return -1;
	if (hookbox_path(session_id, 1, (long)getpid(), path, sizeof path) != 0) {
		mcp_log("hook prompt hand-over off: no private directory or usable session id");
		return -1;
	}
	int fd = localsock_listen(path); /* a dead server's socket is replaced: the directory is ours alone */
	if (fd < 0)
		mcp_log("hook prompt hand-over off: %s: %s", path, strerror(errno));
	return fd;
}

void hookbox_close(int fd, const char *session_id)
{
	char path[256];
	if (fd < 0)
		return;
	close(fd);
	if (hookbox_path(session_id, 0, (long)getpid(), path, sizeof path) == 0)
		unlink(path);
}

/* write all of s to a blocking-with-deadline socket; 0 ok */
static int hookbox_write(int fd, const char *s, size_t len, int64_t deadline)
{
	while (len) {
		ssize_t n = write(fd, s, len); /* SIGPIPE is ignored in meshctl mcp */
		if (n > 0) {
			s += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -1;
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		int left = (int)(deadline - mono_ms());
		if (left <= 0 || poll(&p, 1, left) <= 0)
			return -1;
	}
	return 0;
}

void hookbox_serve(struct mcp *m, int lfd)
{
	int fd = localsock_accept(lfd);
	if (fd < 0)
		return;
	int64_t deadline = mono_ms() + HOOKBOX_REQ_MS;
	char req[8];
	size_t got = 0;
	while (got < 5) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int left = (int)(deadline - mono_ms());
		if (left <= 0 || poll(&p, 1, left) <= 0)
			break;
		ssize_t n = read(fd, req + got, 5 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (got != 5 || memcmp(req, "take\n", 5) != 0) {
		close(fd);
		return;
	}
	size_t n = m->ninbox < HOOKBOX_MAX ? m->ninbox : HOOKBOX_MAX, sent = 0;
	for (; sent < n; sent++) {
		struct mcp_msg *g = &m->inbox[sent];
		const char *nm = mcp_name_of(m, g->from_pubkey);
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "from", nm ? nm : g->from);
		cJSON_AddStringToObject(o, "fromPubkey", g->from_pubkey);
		cJSON_AddStringToObject(o, "priority", g->priority);
		cJSON_AddStringToObject(o, "createdAt", g->created);
		if (g->topic[0])
			cJSON_AddStringToObject(o, "topic", g->topic);
		cJSON_AddStringToObject(o, "text", g->text);
		char *line = cJSON_PrintUnformatted(o);
		cJSON_Delete(o);
		int bad = !line || hookbox_write(fd, line, strlen(line), deadline + 500) != 0 ||
			  hookbox_write(fd, "\n", 1, deadline + 500) != 0;
		if (line) {
			sodium_memzero(line, strlen(line));
			free(line);
		}
		if (bad)
			break;
	}
	close(fd);
	/* what went out is the hook's now: acked, gone from the inbox */
	for (size_t i = 0; i < sent; i++) {
		struct mcp_msg *g = &m->inbox[i];
		mcp_send_ack(&m->links[g->link], g->id);
		snprintf(m->acked[m->acked_next++ % MCP_ACKED_MAX], sizeof m->acked[0], "%s", g->id);
		sodium_memzero(g->text, strlen(g->text));
		free(g->text);
	}
	if (sent) {
		memmove(m->inbox, m->inbox + sent, (m->ninbox - sent) * sizeof *m->inbox);
		m->ninbox -= sent;
		mcp_log("handed %zu message%s to the prompt hook", sent, sent == 1 ? "" : "s");
	}
}

/* take from one server into *buf (grown; at most HOOKBOX_TAKE_MAX) */
static int hookbox_take_one(const char *path, int64_t deadline, char **buf, size_t *len, size_t *cap)
{
	int fd = localsock_connect(path);
	if (fd < 0) {
		if (errno == ECONNREFUSED)
			unlink(path); /* a server that died without cleaning up */
		return -1;
	}
	if (write(fd, "take\n", 5) != 5) {
		close(fd);
		return -1;
	}
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int left = (int)(deadline - mono_ms());
		if (left <= 0 || poll(&p, 1, left) <= 0)
			break;
		if (*len + 1 >= *cap) {
			char *nb = *cap < HOOKBOX_TAKE_MAX ? realloc(*buf, *cap * 2) : NULL;
			if (!nb)
				break;
			*buf = nb;
			*cap *= 2;
		}
		ssize_t n = read(fd, *buf + *len, *cap - *len - 1);
		if (n <= 0)
			break;
		*len += (size_t)n;
	}
	close(fd);
	(*buf)[*len] = 0;
	return 0;
}

int hookbox_take(const char *session_id, int timeout_ms, char **text, size_t *len)
{
	char pattern[256];
	glob_t g;
	size_t cap = 4096;
	int answered = 0;
	*text = NULL;
	*len = 0;
	if (hookbox_path(session_id, 0, 0, pattern, sizeof pattern) != 0 || glob(pattern, 0, NULL, &g) != 0)
		return -1;
	int64_t deadline = mono_ms() + timeout_ms;
	char *buf = malloc(cap);
	for (size_t i = 0; buf && i < g.gl_pathc && i < 8; i++)
		answered |= hookbox_take_one(g.gl_pathv[i], deadline, &buf, len, &cap) == 0;
	globfree(&g);
	if (!buf || !answered) {
		free(buf);
		*len = 0;
		return -1;
	}
	*text = buf;
	return 0;
}
