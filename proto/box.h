/* box — the client-side crypto of docs/protocol.md §3.3, shared by meshctl and the
 * tests: direct messages are crypto_box_easy between the x25519 forms of the
 * two members' ed25519 keys, nonce and ciphertext in standard base64. */
#ifndef PROTO_BOX_H
#define PROTO_BOX_H

#include <stddef.h>

/* Encrypt for a direct target.  *nonce_b64 and *ciphertext_b64 are malloc'd,
 * padded standard base64 (a 2-byte plaintext gives 32 and 24 characters).
 * 0 ok, -1 (bad key or no memory; nothing to free). */
int box_encrypt_direct(const char *plaintext, size_t len, const unsigned char recipient_ed_pk[32],
		       const unsigned char sender_ed_sk[64], char **nonce_b64,
		       char **ciphertext_b64);
/* Open a direct message.  *plain is malloc'd, len bytes plus a NUL that is not
 * counted.  0 ok, -1 (bad base64, bad key, forged or not for us). */
int box_decrypt_direct(const char *nonce_b64, const char *ciphertext_b64,
		       const unsigned char sender_ed_pk[32], const unsigned char recipient_ed_sk[64],
		       unsigned char **plain, size_t *len);

/* Standard padded base64 of n bytes, malloc'd; NULL when out of memory. */
char *box_b64_encode(const unsigned char *in, size_t n);
/* Decode standard base64 (padding optional, no whitespace) into a malloc'd
 * buffer with a NUL after the len bytes.  0 ok, -1 not base64. */
int box_b64_decode(const char *b64, unsigned char **out, size_t *len);

#endif
