/* fuzz_http — libFuzzer target for the HTTP request parser (worker/http.c)
 * on memory: the input arrives in 1-3 chunks, like reads from a socket, and
 * the request must be parsed or refused without a crash or a leak, and a
 * parsed one is HTTP/1.x (anything else is refused with 505). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "worker/http.h"

/* Input: 3 control bytes, then the request.  Byte 0 picks the chunk count
 * (bits 0-1) and a small or large body cap (bit 2); bytes 1 and 2 place the
 * cuts, as fractions of the request length. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 3)
		return 0;
	int chunks = 1 + (data[0] & 3) % 3;
	size_t max_body = (data[0] & 4) ? 64 : 65536;
	const unsigned char *buf = data + 3;
	size_t n = size - 3;
	size_t cut[4] = {0, data[1] * n / 255, data[2] * n / 255, n};
	if (cut[1] > cut[2]) {
		size_t t = cut[1];
		cut[1] = cut[2];
		cut[2] = t;
	}
	if (chunks == 1)
		cut[1] = cut[2] = n;
	else if (chunks == 2)
		cut[2] = n;

	struct http_req req;
	struct http_parse hp;
	http_parse_init(&hp, &req, max_body);
	enum http_read_result r = HTTP_READ_OK;
	int done = 0;
	for (int i = 0; i < 3 && r == HTTP_READ_OK && !done; i++)
		r = http_parse_feed(&hp, buf + cut[i], cut[i + 1] - cut[i], &done);
	if (r == HTTP_READ_OK && done) {
		r = http_parse_finish(&hp);
		/* what the routes rely on */
		if (r == HTTP_READ_OK && (!req.body || req.body[req.body_len] != 0 || req.body_len > max_body ||
					  strlen(req.path) >= HTTP_URL_MAX || req.extra_len > n ||
					  (req.extra_len && !req.is_upgrade) || hp.parser.http_major != 1))
			abort();
	}
	http_req_free(&req);
	return 0;
}
