/* fuzz_doorbell — libFuzzer target for a doorbell line (worker/hosts.c
 * hosts_parse): what a worker hands to meshbroker-relay and what one relay
 * sends another through NOTIFY, "w <mesh> <id>,<id>..." or
 * "c<code>.<reason> <mesh> <id>,...".  A line is either refused or read back
 * exactly: what was parsed, written again, is the input (so "c04002.1", with a
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
	if (b.kind == HOSTS_WAKE)
		len = (size_t)snprintf(again, sizeof again, "w %s ", b.mesh_id);
	else if (b.kind == HOSTS_CLOSE && b.code >= 1000 && b.code <= 4999 && b.reason >= 0 && b.reason <= 63)
		len = (size_t)snprintf(again, sizeof again, "c%d.%d %s ", b.code, b.reason, b.mesh_id);
	else
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
