/* fuzz_clibody — libFuzzer target for what meshctl reads of the broker's
 * frames about members and topics (cli/roster.c, cli/topicbody.c): a
 * members_list, a topic_key_response and a topic push or history entry, any
 * bytes.  Nothing crashes, a resolved pubkey is 64 lowercase hex, a text
 * handed out is a NUL-terminated string, mentions are at most 32 names. */
#include <cjson/cJSON.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/roster.h"
#include "cli/topicbody.h"
#include "common/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char sk[64], pk[32];
	static int init;
	if (!init) {
		if (sodium_init() < 0)
			abort();
		crypto_sign_keypair(pk, sk);
		init = 1;
	}
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = 0;
	cJSON *mentions = topicbody_mentions(s);
	if (mentions && cJSON_GetArraySize(mentions) > 32)
		abort();
	cJSON_Delete(mentions);
	cJSON *j = cJSON_ParseWithLength((const char *)data, size);
	const cJSON *members = cJSON_GetObjectItemCaseSensitive(j, "members");
	char pubkey[65], why[1200];
	int link = -1;
	if (roster_resolve(members, "bob", pubkey, &link, why, sizeof why) == 0 &&
	    (strlen(pubkey) != 64 || !is_hex(pubkey, 64)))
		abort();
	cJSON *b = roster_broadcast(members, sk, "hi", "next", "f");
	cJSON_Delete(b);
	struct topicbody_key k = {0};
	topicbody_key_take(j, sk, &k);
	enum topicbody_how how;
	char *text = topicbody_text(j, &k, &how);
	if (text && strlen(text) > size)
		abort();
	free(text);
	cJSON *f = topicbody_post_frame(&k, "ops", "hello", "next", "id", NULL);
	cJSON_Delete(f);
	topicbody_key_wipe(&k);
	cJSON_Delete(j);
	free(s);
	return 0;
}
