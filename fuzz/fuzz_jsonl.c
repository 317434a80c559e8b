/* fuzz_jsonl — libFuzzer target for the transcript reader (worker/jsonl.c):
 * the input is a transcript tail for jsonl_status_of and, NUL-terminated, a
 * cwd for jsonl_candidates. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "worker/jsonl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int st = jsonl_status_of((const char *)data, size);
	if (st < -1)
		abort();

	char *cwd = malloc(size + 1);
	if (!cwd)
		return 0;
	memcpy(cwd, data, size);
	cwd[size] = 0;
	static char keys[JSONL_KEYS_MAX][JSONL_KEY_MAX];
	int n = jsonl_candidates(cwd, keys);
	if (n < 0 || n > JSONL_KEYS_MAX)
		abort();
	for (int i = 0; i < n; i++) /* each key is one directory name under the projects dir */
		if (!keys[i][0] || strchr(keys[i], '/') || strlen(keys[i]) >= JSONL_KEY_MAX)
			abort();
	free(cwd);
	return 0;
}
