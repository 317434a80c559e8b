/* fuzz_status — libFuzzer target for the status write rules (worker/status.c,
 * docs/protocol.md §4.2): the first bytes pick a stored presence and a write,
 * the rest is a status word for status_parse.  The rules' invariants must
 * hold for every input: DND is changed only by a manual write, the return
 * value says whether the status changed, and values stay in range. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "worker/status.h"

#define FUZZ_HEAD 12

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < FUZZ_HEAD)
		return 0;
	char word[32];
	size_t n = size - FUZZ_HEAD < sizeof word - 1 ? size - FUZZ_HEAD : sizeof word - 1;
	memcpy(word, data + FUZZ_HEAD, n);
	word[n] = 0;
	int parsed = status_parse(word);
	if (parsed != -1 && (parsed < ST_IDLE || parsed > ST_DND))
		abort();
	if (parsed >= 0 && strcmp(status_str(parsed), word) != 0)
		abort();
	struct presence_info p;
	memset(&p, 0, sizeof p);
	p.status = data[0] % 3;
	p.status_source = SRC_JSONL + data[1] % 3;
	p.status_ms = (int64_t)(data[2] | data[3] << 8) * 1000;
	int status = parsed >= 0 ? parsed : data[4] % 3;
	int source = SRC_JSONL + data[5] % 3;
	int64_t now = p.status_ms + (int64_t)(data[6] | data[7] << 8) * 100;
	int window = 1 + data[8] % 120;
	struct presence_info before = p;
	int changed = status_apply(&p, status, source, now, window);
	if (changed != (p.status != before.status))
		abort();
	if (before.status == ST_DND && source != SRC_MANUAL && memcmp(&p, &before, sizeof p) != 0)
		abort();
	if (p.status < ST_IDLE || p.status > ST_DND || p.status_source < SRC_JSONL || p.status_source > SRC_HOOK)
		abort();
	if (!status_source_str(p.status_source))
		abort();
	return 0;
}
