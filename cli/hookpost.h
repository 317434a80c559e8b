/* hookpost — `meshctl hook`: what a Claude Code hook script calls to report
 * its session's status, a plain HTTP/1.1 POST /hook/set-status (docs/protocol.md
 * §4.3) with a hand-written, bounded HTTP client. */
#ifndef CLI_HOOKPOST_H
#define CLI_HOOKPOST_H

#include <stddef.h>

#include "cli/dial.h"

int hookpost_run(int argc, char **argv);

/* one answered POST: buf holds the whole response (free it), body points
 * into it */
struct hookpost_resp {
	char *buf;
	int status;
	const char *body;
	size_t body_len;
};
/* POST the JSON body to u's base path + path (5 s for everything; extra
 * headers each end in \r\n).  0 with *out filled, -1 with err (not
 * reachable, no HTTP answer). */
int hookpost_post(const struct dial_url *u, const char *path, const char *extra_headers, const char *body,
		  struct hookpost_resp *out, char *err, size_t errlen);

#endif
