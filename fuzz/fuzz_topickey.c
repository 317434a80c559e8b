/* fuzz_topickey — libFuzzer target for the sealed topic key parser
 * (proto/topickey.c) and the mention collector (worker/mention.c): the input
 * up to its first newline is the encryptedKey, the rest the nonce; a parse
 * that succeeds is opened with a fixed key (it must fail or give 32 bytes),
 * and the whole input is scanned for @mentions as a v1 body. */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "proto/topickey.h"
#include "worker/mention.h"

static unsigned char sk[crypto_sign_SECRETKEYBYTES], pk[crypto_sign_PUBLICKEYBYTES];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (sodium_init() < 0)
		abort();
	unsigned char seed[crypto_sign_SEEDBYTES] = {7};
	crypto_sign_seed_keypair(pk, sk, seed);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = 0;
	char *nl = strchr(s, '\n');
	const char *enc = s, *nonce = nl ? nl + 1 : "";
	if (nl)
		*nl = 0;
	struct topickey_sealed sealed;
	unsigned char key[TOPICKEY_KEY_BYTES];
	if (topickey_parse(enc, nonce, &sealed) == 0)
		(void)topickey_open(enc, nonce, sk, key);
	else if (topickey_open(enc, nonce, sk, key) == 0)
		abort(); /* what does not parse never opens */
	char *names[MENTION_MAX];
	int n = mention_collect(NULL, data, size, names);
	/* -1 only for a body whose @name tokens are not UTF-8 (issue 21: refused
	 * before PostgreSQL), so never for a valid UTF-8 body */
	if (n < -1 || n > MENTION_MAX || (n == -1 && utf8_valid(data, size)))
		abort();
	if (n < 0) {
		free(s);
		return 0;
	}
	for (int i = 0; i < n; i++)
		if (!names[i][0] || strlen(names[i]) > MENTION_NAME_MAX)
			abort();
	mention_free(names, n);
	free(s);
	return 0;
}
