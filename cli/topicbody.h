/* topicbody — the client side of topic keys and bodies (docs/protocol.md
 * §5, §5.1), shared by `meshctl topic` (cli/topiccmd.c, cli/topicapp.c) and
 * `meshctl mcp` (cli/mcp_topics.c, cli/mcp_keys.c): the one place that takes
 * a topic_key answer (every key epoch's sealed copy opened into a
 * cli/topicring.h ring), opens a body with the key of its keyEpoch (every
 * key held when it names none), seals a post under the current epoch's key
 * only (a stale key carries nothing new), seals the current key for pending
 * members, and starts an epoch nobody holds (a lead). */
#ifndef CLI_TOPICBODY_H
#define CLI_TOPICBODY_H

#include <cjson/cJSON.h>

#include "cli/topicring.h"

struct topicbody_key {
	struct topic_ring ring; /* every epoch's key held, newest first */
	int have;               /* ring holds at least one key */
	int unencrypted;        /* a legacy topic without a key (bodies v1) */
	char topic_id[128];     /* from the response, "" when unknown */
	char name[128];
	int asked_epoch; /* its holder's: the newest epoch whose copy it asked for again */
};

/* The reply to topic_key{topic}: a topic_key_response whose copies open
 * with the member's ed25519 secret key, or error topic_unencrypted
 * (k->unencrypted).  0 ok; -1 the sealed copy does not open; -2 another
 * error (the caller reads its code). */
int topicbody_key_take(const cJSON *reply, const unsigned char member_sk[64], struct topicbody_key *k);
/* k holds keys, but not the current epoch's (the topic moved on since):
 * nothing may be posted or sealed with them */
int topicbody_stale(const struct topicbody_key *k);
/* The send frame of a post to #topic (id or name): v2 under the current
 * epoch's key (the broker stamps its keyEpoch); v1 only for a legacy
 * unencrypted topic; mentions (may be NULL) copied.  NULL when k has no current key (none, or
 * stale: see topicbody_stale) or out of memory. */
cJSON *topicbody_post_frame(const struct topicbody_key *k, const char *topic, const char *text, const char *priority,
                            const char *id, const cJSON *mentions);
enum topicbody_how { TB_SEALED, TB_PLAIN, TB_NO_KEY, TB_UNREADABLE };
/* The text of a topic message (history entry or push), malloc'd UTF-8, or
 * NULL; *how says whether it was sealed (v2, opened with the key of its
 * keyEpoch, else any held), plain v1 (unencrypted), not readable without a
 * key (none, or none of its keyEpoch), or not readable at all.  k may be
 * NULL. */
char *topicbody_text(const cJSON *msg, const struct topicbody_key *k, enum topicbody_how *how);
/* the keyEpoch a message or push names, 0 when none */
int topicbody_epoch_of(const cJSON *msg);
/* The @name tokens of text (an @ at the start or after a byte that cannot
 * be in a name; names of A-Z a-z 0-9 . _ -), at most 32, as a JSON array;
 * NULL when none. */
cJSON *topicbody_mentions(const char *text);
/* The fields of a topic_seal for one pending member ({memberId, pubkey} of
 * a topic_pending_seals_response): {memberId, encryptedKey, nonce}, the
 * current epoch's key sealed to the member's key; the caller adds type,
 * topic and _reqId.  NULL when k has no current key or the member's key is
 * bad. */
cJSON *topicbody_seal_for(const struct topicbody_key *k, const cJSON *pending_member);
/* A lead starts `epoch` nobody holds: a fresh key sealed to itself (the
 * topic_seal's fields, NULL on failure); topicbody_epoch_took(k, 1) makes it
 * k's current key once the broker took it, (k, 0) forgets it. */
cJSON *topicbody_epoch_start(struct topicbody_key *k, int epoch, const char *my_member_id,
                             const unsigned char my_pk[32]);
void topicbody_epoch_took(struct topicbody_key *k, int took);
void topicbody_key_wipe(struct topicbody_key *k);

#endif
