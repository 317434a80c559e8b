/* topic_key — the topic keys of docs/protocol.md §5: the creator's sealed
 * copy made at topic_create (the client's own, or one the broker seals and
 * forgets), and the WebSocket forms of the key routes of §5.3 (ext):
 * topic_key (the caller's copy), topic_pending_seals and topic_seal (a
 * member re-seals the key for a member without a copy). */
#ifndef WORKER_TOPIC_KEY_H
#define WORKER_TOPIC_KEY_H

#include <cjson/cJSON.h>

#include "worker/topicreq.h"
#include "worker/worker.h"

#define TOPIC_PENDING_MAX 50

enum topic_key_source { TOPIC_KEY_NONE, TOPIC_KEY_CLIENT, TOPIC_KEY_BROKER };

/* the creator's copy: strings malloc'd (NULL with NONE) */
struct topic_copy {
	enum topic_key_source source;
	char *encrypted_key, *nonce;
	char pubkey_hex[65]; /* topic.encrypted_key_pubkey; "" only when unset */
};

/* From msg's encryptedKey + nonce when the client sent them (checked: 80
 * and 24 bytes), else a fresh key sealed for member_pubkey_hex and wiped at
 * once.  A broker seal that fails leaves source NONE but pubkey_hex set, so
 * the topic is still made (encrypted, its creator without a copy).  -1
 * after answering malformed (a bad client copy). */
int topic_key_creator_copy(struct topic_req *tr, const cJSON *msg, const char *member_pubkey_hex, struct topic_copy *c);
void topic_key_copy_free(struct topic_copy *c);

void topic_key_on_get(struct worker *w, const cJSON *msg);
void topic_key_on_pending(struct worker *w, const cJSON *msg);
void topic_key_on_seal(struct worker *w, const cJSON *msg);
/* issue 22: topic_key_discard{topic, memberId?} drops a copy of the current
 * epoch (the caller's own; another member's by a lead) */
void topic_key_on_discard(struct worker *w, const cJSON *msg);

/* the body of a key answer, over the socket or REST: the newest copy the
 * member holds (topic, topicId, encryptedKey, nonce, senderPubkey,
 * createdAt, epoch, sealedBy), currentEpoch, and keys[] (every copy) */
struct topic_key_row;
void topic_key_fill(cJSON *o, const struct topic_key_row *k);

/* the body of a pending-seals answer, over the socket or REST: topic,
 * topicId, senderPubkey (null when unknown) and pending[{memberId, pubkey,
 * displayName}], and epoch (the current key epoch, whose copy they lack) */
struct topic_pending_row;
void topic_key_pending_fill(cJSON *o, const char *name, const char *topic_id, const char *sender_pubkey, int epoch,
                            const struct topic_pending_row *rows, int n);

#endif
