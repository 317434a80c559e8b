/* topicbody — the client side of topic bodies (docs/protocol.md §5), shared
 * by `meshctl topic` and `meshctl mcp`: the topic key taken from a
 * topic_key_response (the member's sealed copy opened: the one place that
 * knows how a key is fetched and opened, so key epochs go here), a post
 * sealed v2 under it, and the readable text of a topic message or push. */
#ifndef CLI_TOPICBODY_H
#define CLI_TOPICBODY_H

#include <cjson/cJSON.h>

#include "proto/topickey.h"

struct topicbody_key {
	unsigned char key[TOPICKEY_KEY_BYTES];
	int have;           /* key holds the topic key */
	int unencrypted;    /* a legacy topic without a key (bodies v1) */
	char topic_id[128]; /* from the response, "" when unknown */
	char name[128];
};

/* The reply to topic_key{topic}: a topic_key_response opened with the
 * member's ed25519 secret key, or error topic_unencrypted (k->unencrypted).
 * 0 ok; -1 the sealed copy does not open; -2 another error (the caller
 * reads its code). */
int topicbody_key_take(const cJSON *reply, const unsigned char member_sk[64], struct topicbody_key *k);
/* The send frame of a post to #topic (id or name): v2 under k's key; v1
 * only for a legacy unencrypted topic; mentions (may be NULL) copied.  NULL
 * when k has neither (nothing to post with) or out of memory. */
cJSON *topicbody_post_frame(const struct topicbody_key *k, const char *topic, const char *text, const char *priority,
                            const char *id, const cJSON *mentions);
enum topicbody_how { TB_SEALED, TB_PLAIN, TB_NO_KEY, TB_UNREADABLE };
/* The text of a topic message (history entry or push), malloc'd UTF-8, or
 * NULL; *how says whether it was sealed (v2), plain v1 (unencrypted), not
 * readable without the key, or not readable at all. */
char *topicbody_text(const cJSON *msg, const struct topicbody_key *k, enum topicbody_how *how);
/* The @name tokens of text (an @ at the start or after a byte that cannot
 * be in a name; names of A-Z a-z 0-9 . _ -), at most 32, as a JSON array;
 * NULL when none. */
cJSON *topicbody_mentions(const char *text);
/* The fields of a topic_seal for one pending member ({memberId, pubkey} of
 * a topic_pending_seals_response): {memberId, encryptedKey, nonce}, k's key
 * sealed to the member's key; the caller adds type, topic and _reqId.  NULL
 * when k has no key or the member's key is bad. */
cJSON *topicbody_seal_for(const struct topicbody_key *k, const cJSON *pending_member);
void topicbody_key_wipe(struct topicbody_key *k);

#endif
