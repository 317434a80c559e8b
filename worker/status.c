/* status — the presence status write rules of docs/protocol.md §4.2: source
 * ranks hook > manual > jsonl, the freshness window, DND is sacred. */
#include <string.h>

#include "worker/status.h"

const char *status_str(int status)
{
	switch (status) {
	case ST_WORKING: return "working";
	case ST_DND: return "dnd";
	default: return "idle";
	}
}

const char *status_source_str(int source)
{
	switch (source) {
	case SRC_HOOK: return "hook";
	case SRC_MANUAL: return "manual";
	default: return "jsonl";
	}
}

int status_parse(const char *s)
{
	if (!s)
		return -1;
	if (strcmp(s, "idle") == 0)
		return ST_IDLE;
	if (strcmp(s, "working") == 0)
		return ST_WORKING;
	if (strcmp(s, "dnd") == 0)
		return ST_DND;
	return -1;
}

int status_apply(struct presence_info *p, int status, int source, int64_t now, int fresh_window_s)
{
	int fresh = now - p->status_ms <= (int64_t)fresh_window_s * 1000;
	/* DND is sacred: only set_status (manual) changes it */
	if (p->status == ST_DND && source != SRC_MANUAL)
		return 0;
	/* a fresh hook outranks inference */
	if (source == SRC_JSONL && p->status_source == SRC_HOOK && fresh) {
		if (status == p->status)
			p->status_ms = now;
		return 0;
	}
	if (status != p->status) {
		p->status = status;
		p->status_source = source;
		p->status_ms = now;
		return 1;
	}
	if (source >= p->status_source || !fresh)
		p->status_source = source;
	p->status_ms = now;
	return 0;
}
