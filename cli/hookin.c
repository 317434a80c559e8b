/* hookin — Claude Code's hook event on stdin (see hookin.h). */
#include "cli/hookin.h"

#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/util.h"

/* Claude Code hands a hook its event as JSON on stdin ({session_id, cwd,
 * hook_event_name, ...}).  Read it when stdin is not a terminal and something
 * arrives soon; NULL otherwise (a hook run by hand, or stdin left open). */
cJSON *hookin_json(void)
{
	if (isatty(STDIN_FILENO))
		return NULL;
	size_t cap = HOOKIN_MAX, len = 0;
	char *buf = malloc(cap + 1);
	if (!buf)
		return NULL;
	int64_t deadline = mono_ms() + HOOKIN_WAIT_MS;
	for (;;) {
		struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
		int left = (int)(deadline - mono_ms());
		if (left <= 0 || poll(&pfd, 1, left) <= 0)
			break;
		ssize_t n = read(STDIN_FILENO, buf + len, cap - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == cap)
			break;
	}
	buf[len] = 0;
	cJSON *o = len ? cJSON_ParseWithLength(buf, len) : NULL;
	free(buf);
	if (o && !cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

