/* wsupgrade — the WebSocket opening handshake on a curl connection (see
 * wsupgrade.c). */
#ifndef CLI_WSUPGRADE_H
#define CLI_WSUPGRADE_H

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "cli/http.h"

/* Upgrade the connection of curl (socket fd) to t->target before deadline
 * (mono ms).  Bytes that came right behind the 101 go to *pre (malloc'd,
 * *pre_len).  0 ok, -1 with err filled. */
int wsupgrade_run(CURL *curl, int fd, const struct http_target *t, int64_t deadline, unsigned char **pre,
		  size_t *pre_len, char *err, size_t errlen);

#endif
