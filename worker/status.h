/* status — the presence status write rules of docs/protocol.md §4.2 (pure:
 * no sockets, no database): source ranks hook > manual > jsonl, the
 * freshness window, DND is sacred. */
#ifndef WORKER_STATUS_H
#define WORKER_STATUS_H

#include <stdint.h>

#include "shm/shm.h"

const char *status_str(int status);
const char *status_source_str(int source);
int status_parse(const char *s); /* -1 when unknown */
/* Apply a (status, source) write at now_ms to p.  Returns 1 when the status
 * value changed, 0 otherwise (including an ignored write). */
int status_apply(struct presence_info *p, int status, int source, int64_t now_ms, int fresh_window_s);

#endif
