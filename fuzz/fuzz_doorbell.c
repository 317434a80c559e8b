/* fuzz_doorbell — libFuzzer target for a doorbell line (worker/hosts.c
 * hosts_parse): what a worker hands to meshbroker-relay and what one relay
 * sends another through NOTIFY, "w <mesh> <id>,<id>...".  A line is either
 * refused or read back exactly: the parsed ids, joined again, are the input. */
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
	size_t len = (size_t)snprintf(again, sizeof again, "w %s ", b.mesh_id);
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
