/* fuzz_doorbell — libFuzzer target for a doorbell line (worker/hosts.c
 * hosts_parse): what a worker hands to meshbroker-relay and what one relay
 * sends another through NOTIFY, "w <mesh> <id>,<id>...", "c<code>.<reason>
 * <mesh> <id>,...", and the kinds of issue 24's cross-host operations (s, r,
 * k, t, h: worker/hosts.h).  A line is either refused or read back exactly:
 * what was parsed, written again, is the input (so "c04002.1", with a
 * leading zero, must be refused). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/hosts.h"

static struct hosts_bell b;
static char again[HOSTS_LINE_MAX + 64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (hosts_parse((const char *)data, size, &b) != 0)
		return 0;
	if (b.n < 1 || b.n > HOSTS_IDS_MAX)
		abort();
	size_t len;
	int code_ok = b.code >= 1000 && b.code <= 4999 && b.reason >= 0 && b.reason <= 63;
	int status_ok = b.code >= 0 && b.code <= 2 && b.reason >= 1 && b.reason <= 3;
	switch (b.kind) {
	case HOSTS_WAKE:
	case HOSTS_REPLACE:
		len = (size_t)snprintf(again, sizeof again, "%c %s ", b.kind, b.mesh_id);
		break;
	case HOSTS_CLOSE:
	case HOSTS_KICK:
		if (!code_ok)
			abort();
		len = (size_t)snprintf(again, sizeof again, "%c%d.%d %s ", b.kind, b.code, b.reason, b.mesh_id);
		break;
	case HOSTS_STALE:
		if (!code_ok || b.stale_ms < 0 || b.stale_ms > HOSTS_STALE_MAX)
			abort();
		len = (size_t)snprintf(again, sizeof again, "t%d.%d.%lld %s ", b.code, b.reason, b.stale_ms, b.mesh_id);
		break;
	case HOSTS_STATUS:
	case HOSTS_HOOK:
		if (!status_ok)
			abort();
		len = (size_t)snprintf(again, sizeof again, "%c%d.%d %s ", b.kind, b.code, b.reason, b.mesh_id);
		break;
	default:
		abort();
	}
	/* the ids name presences exactly for the kinds that target connections */
	if (b.by_presence !=
	    (b.kind == HOSTS_REPLACE || b.kind == HOSTS_KICK || b.kind == HOSTS_STALE || b.kind == HOSTS_HOOK))
		abort();
	for (int i = 0; i < b.n; i++) {
		size_t k = strlen(b.ids[i]);
		if (k == 0 || k >= HOSTS_KEY_MAX || len + k + 1 >= sizeof again)
			abort();
		memcpy(again + len, b.ids[i], k);
		len += k;
		if (i + 1 < b.n)
			again[len++] = ',';
	}
	if (len != size || memcmp(again, data, size) != 0)
		abort();
	return 0;
}
