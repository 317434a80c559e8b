/* topickey — the topic crypto of docs/protocol.md §5, shared by the worker
 * (the creator's seal for compat clients) and meshctl (seal, open, v2
 * bodies).  A sealed copy of a 32-byte topic key is 80 bytes before base64:
 * sender_x25519_pk[32] ‖ crypto_box_easy(key, nonce, x25519(member ed25519
 * pk), sender_x25519_sk); the nonce (24 bytes) travels beside it.  Nothing
 * here keeps a secret: every derived or ephemeral secret is wiped. */
#ifndef PROTO_TOPICKEY_H
#define PROTO_TOPICKEY_H

#include <stddef.h>

#define TOPICKEY_KEY_BYTES    32 /* crypto_secretbox_KEYBYTES */
#define TOPICKEY_SEALED_BYTES 80 /* 32 + 32 + crypto_box_MACBYTES */
#define TOPICKEY_NONCE_BYTES  24

/* A parsed (not yet opened) sealed copy. */
struct topickey_sealed {
	unsigned char sender_pk[32]; /* x25519 */
	unsigned char box[TOPICKEY_SEALED_BYTES - 32];
	unsigned char nonce[TOPICKEY_NONCE_BYTES];
};

/* Decode and check the wire form: encrypted_b64 must decode to exactly 80
 * bytes and nonce_b64 to 24 (standard base64, padding optional).  0 ok, -1. */
int topickey_parse(const char *encrypted_b64, const char *nonce_b64, struct topickey_sealed *out);

/* Seal key for the member whose ed25519 public key is member_ed_pk, from a
 * fresh ephemeral x25519 pair (its secret wiped before return).
 * *encrypted_b64 and *nonce_b64 are malloc'd; sender_pk_hex gets the
 * ephemeral public key (64 hex + NUL).  0 ok, -1 (a bad member key, no
 * memory; nothing to free). */
int topickey_seal(const unsigned char key[TOPICKEY_KEY_BYTES], const unsigned char member_ed_pk[32],
                  char **encrypted_b64, char **nonce_b64, char sender_pk_hex[65]);

/* Open a sealed copy with the member's ed25519 secret key.  0 ok (key
 * filled: the caller wipes it), -1 (malformed, forged, not for us). */
int topickey_open(const char *encrypted_b64, const char *nonce_b64, const unsigned char member_ed_sk[64],
                  unsigned char key[TOPICKEY_KEY_BYTES]);

/* A v2 topic body: crypto_secretbox_easy under the topic key, random
 * nonce; both malloc'd standard base64.  0 ok, -1. */
int topickey_encrypt_body(const unsigned char key[TOPICKEY_KEY_BYTES], const unsigned char *plain, size_t len,
                          char **nonce_b64, char **ciphertext_b64);
/* Open a v2 body: *plain malloc'd with a NUL after len bytes.  0 ok, -1. */
int topickey_decrypt_body(const unsigned char key[TOPICKEY_KEY_BYTES], const char *nonce_b64,
                          const char *ciphertext_b64, unsigned char **plain, size_t *len);

#endif
