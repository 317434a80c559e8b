/* fuzz_envelope — libFuzzer target for the worker-to-worker envelope
 * (worker/envelope.c): a received message is either ignored or read as a
 * wake or a status request for this worker's (slot, gen); uds_parse_push
 * reads a handed push (issue 23) only inside the message's bytes. */
#include <stdint.h>
#include <stdlib.h>

#include "worker/envelope.h"

/* the receiver of the seed corpus: the envelopes in corpus/envelope go to it */
#define FUZZ_SLOT 7
#define FUZZ_GEN 3

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct uds_push push;
	const char *json = NULL;
	size_t json_len = 0;
	if (uds_parse_push(data, size, FUZZ_SLOT, FUZZ_GEN, &push, &json, &json_len) == 0) {
		if (json_len == 0 || push.delivery_id <= 0 || (const uint8_t *)json < data ||
		    (const uint8_t *)json + json_len != data + size)
			abort();
		volatile char last = json[json_len - 1]; /* every byte readable (ASan) */
		(void)last;
	}
	int type = 0;
	int32_t status = 0, source = 0;
	if (uds_parse(data, size, FUZZ_SLOT, FUZZ_GEN, &type, &status, &source) != 0)
		return 0;
	if (type == UDS_STATUS || type == UDS_CLOSE ? size != sizeof(struct uds_env) + sizeof(struct uds_status) : (type != UDS_WAKE && type != UDS_REPLACE))
		abort();
	return 0;
}
