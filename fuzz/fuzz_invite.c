/* fuzz_invite — libFuzzer target for what POST /join and meshctl join parse
 * from the network (proto/invite.c, proto/apikey.c): the input as an invite
 * token (b64url → JSON → fields → signature) and as a JSON payload, and as
 * an Authorization header value. */
#include <cjson/cJSON.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/apikey.h"
#include "proto/invite.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (sodium_init() < 0)
		abort();
	return 0;
}

static void check_payload(const cJSON *obj)
{
	struct invite iv;
	if (invite_fields(obj, &iv) != 0)
		return;
	char *s = invite_signed_string(&iv);
	if (!s || s[0] != '1' || s[1] != '|')
		abort();
	free(s);
	(void)invite_verify(&iv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	cJSON *tok = invite_token_decode(text);
	if (tok) {
		if (!cJSON_IsObject(tok))
			abort();
		check_payload(tok);
		cJSON_Delete(tok);
	}
	cJSON *obj = cJSON_ParseWithLength((const char *)data, size);
	check_payload(obj);
	cJSON_Delete(obj);
	char bearer[APIKEY_SECRET_MAX + 1];
	if (apikey_bearer(text, bearer, sizeof bearer) == 0) {
		if (strlen(bearer) > APIKEY_SECRET_MAX || strpbrk(bearer, " \t"))
			abort();
		(void)apikey_well_formed(bearer);
	}
	free(text);
	return 0;
}
