/* topicring — the topic keys a meshctl topic command holds, one per key
 * epoch (docs/protocol.md §5.1, issue 22): read from a topic_key answer,
 * used to read each message with the key of its keyEpoch, to post only under
 * the current epoch, and — a lead's tail — to start an epoch nobody holds.
 * Pure: no sockets; wiped with topicring_wipe. */
#ifndef CLI_TOPICRING_H
#define CLI_TOPICRING_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "proto/topickey.h"

#define TOPICRING_MAX 64 /* epochs kept (the newest ones) */

struct topic_ring {
	int n;
	int current_epoch; /* the topic's, as last heard */
	struct {
		int epoch;
		unsigned char key[TOPICKEY_KEY_BYTES];
	} keys[TOPICRING_MAX];                   /* newest epoch first */
	unsigned char fresh[TOPICKEY_KEY_BYTES]; /* a lead's key for the epoch it starts */
	int fresh_epoch;                         /* 0: none */
};

/* every copy of a topic_key answer that opens with member_sk (the top-level
 * one only from a broker before epochs): 0, or -1 when the top-level copy
 * does not open */
int topicring_take(struct topic_ring *r, const cJSON *answer, const unsigned char member_sk[64]);
/* the key to post with: the current epoch's, else NULL (a stale key must
 * carry nothing new) */
const unsigned char *topicring_current(const struct topic_ring *r);
/* the newest epoch held (0: none) */
int topicring_epoch(const struct topic_ring *r);
/* 1 when the key of epoch is held */
int topicring_has(const struct topic_ring *r, int epoch);
/* a v2 body under the key of `epoch` first, then any other held: 0 and
 * *plain malloc'd, or -1 */
int topicring_open_body(const struct topic_ring *r, int epoch, const char *nonce, const char *ct, unsigned char **plain,
                        size_t *n);
/* {memberId, encryptedKey, nonce} sealing key to the member's ed25519
 * pubkey (hex), or NULL */
cJSON *topicring_seal_for(const unsigned char key[TOPICKEY_KEY_BYTES], const char *member_id, const char *pubkey_hex);
/* a lead starts `epoch`: a fresh key, sealed to itself (the seal request's
 * fields, NULL on failure); topicring_adopt makes it the ring's newest when
 * the broker took it, topicring_drop_fresh forgets it */
cJSON *topicring_start(struct topic_ring *r, int epoch, const char *my_member_id, const char *my_pubkey_hex);
void topicring_adopt(struct topic_ring *r);
void topicring_drop_fresh(struct topic_ring *r);
void topicring_wipe(struct topic_ring *r);

#endif
