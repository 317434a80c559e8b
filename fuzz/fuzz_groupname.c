/* fuzz_groupname — libFuzzer target for meshctl's group name check
 * (cli/groupname.c, what `connect --group` and `mcp --group` take): on any
 * string it must agree with the broker's (worker/groupcheck.c), so meshctl
 * refuses exactly the names the broker would. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/groupname.h"
#include "worker/groupcheck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = 0; /* an embedded NUL ends the name for both */
	if (groupname_ok(s) != groupcheck_name(s))
		abort();
	cJSON *f = groupname_ok(s) ? groupname_join_frame(s) : NULL;
	cJSON_Delete(f);
	free(s);
	return 0;
}
