/* fuzz_hello — libFuzzer target for the signed hello (proto/hello.c): the
 * input is parsed as JSON and checked with a fixed clock, as a hello and as a
 * session_hello (§12.1), then its fields go through the canonical strings
 * into a buffer too small for most of them. */
#include <cjson/cJSON.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/hello.h"

/* the clock of the seed corpus: the hellos in corpus/hello are signed at it */
#define FUZZ_NOW 1775339620000LL

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (sodium_init() < 0)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cJSON *obj = cJSON_ParseWithLength((const char *)data, size);
	struct hello h;
	enum hello_code c = hello_check(obj, &h, FUZZ_NOW);
	if (!hello_code_str(c) || !hello_code_message(c))
		abort();
	char small[48];
	int n = hello_canonical(small, sizeof small, h.mesh_id ? h.mesh_id : "", h.member_id ? h.member_id : "",
				h.pubkey ? h.pubkey : "", h.timestamp);
	if (n >= (int)sizeof small || (n >= 0 && strlen(small) != (size_t)n))
		abort();
	/* the same input as a session_hello (§12.1) */
	struct session_hello sh;
	c = session_hello_check(obj, &sh, FUZZ_NOW);
	if (!hello_code_str(c) || !hello_code_message(c))
		abort();
	if (c == HELLO_OK && (!hello_key_shape_ok(sh.session_pubkey) || !hello_key_shape_ok(sh.parent_pubkey) ||
			      sh.expires_at <= FUZZ_NOW || sh.expires_at > FUZZ_NOW + SESSION_ATTEST_MAX_MS))
		abort();
	n = session_hello_canonical(small, sizeof small, sh.mesh_id ? sh.mesh_id : "",
				    sh.parent_pubkey ? sh.parent_pubkey : "", sh.session_pubkey ? sh.session_pubkey : "",
				    sh.timestamp);
	if (n >= (int)sizeof small || (n >= 0 && strlen(small) != (size_t)n))
		abort();
	cJSON_Delete(obj);
	return 0;
}
