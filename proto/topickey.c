/* topickey — sealed topic keys and v2 topic bodies (see topickey.h). */
#include "proto/topickey.h"

#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/box.h"

_Static_assert(TOPICKEY_SEALED_BYTES == crypto_box_PUBLICKEYBYTES + TOPICKEY_KEY_BYTES + crypto_box_MACBYTES,
               "the sealed format is pk ‖ box(key)");
_Static_assert(TOPICKEY_NONCE_BYTES == crypto_box_NONCEBYTES, "crypto_box nonce");
_Static_assert(TOPICKEY_KEY_BYTES == crypto_secretbox_KEYBYTES, "a secretbox key");
_Static_assert(crypto_secretbox_NONCEBYTES == TOPICKEY_NONCE_BYTES, "secretbox nonce");

/* decode b64 into exactly n bytes */
static int decode_exact(const char *b64, unsigned char *out, size_t n)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	if (!b64 || strlen(b64) > 4 * n || box_b64_decode(b64, &buf, &len) != 0)
		return -1;
	int rc = len == n ? 0 : -1;
	if (rc == 0)
		memcpy(out, buf, n);
	sodium_memzero(buf, len);
	free(buf);
	return rc;
}

int topickey_parse(const char *encrypted_b64, const char *nonce_b64, struct topickey_sealed *out)
{
	unsigned char raw[TOPICKEY_SEALED_BYTES];
	if (decode_exact(encrypted_b64, raw, sizeof raw) != 0 ||
	    decode_exact(nonce_b64, out->nonce, sizeof out->nonce) != 0)
		return -1;
	memcpy(out->sender_pk, raw, sizeof out->sender_pk);
	memcpy(out->box, raw + sizeof out->sender_pk, sizeof out->box);
	return 0;
}

int topickey_seal(const unsigned char key[TOPICKEY_KEY_BYTES], const unsigned char member_ed_pk[32],
                  char **encrypted_b64, char **nonce_b64, char sender_pk_hex[65])
{
	unsigned char xpk[crypto_box_PUBLICKEYBYTES], epk[crypto_box_PUBLICKEYBYTES], esk[crypto_box_SECRETKEYBYTES];
	unsigned char raw[TOPICKEY_SEALED_BYTES], nonce[TOPICKEY_NONCE_BYTES];
	char *e64 = NULL, *n64 = NULL;
	int rc = -1;
	if (crypto_sign_ed25519_pk_to_curve25519(xpk, member_ed_pk) != 0)
		return -1;
	crypto_box_keypair(epk, esk);
	randombytes_buf(nonce, sizeof nonce);
	memcpy(raw, epk, sizeof epk);
	if (crypto_box_easy(raw + sizeof epk, key, TOPICKEY_KEY_BYTES, nonce, xpk, esk) != 0)
		goto out;
	if (!(e64 = box_b64_encode(raw, sizeof raw)) || !(n64 = box_b64_encode(nonce, sizeof nonce)))
		goto out;
	sodium_bin2hex(sender_pk_hex, 65, epk, sizeof epk);
	*encrypted_b64 = e64;
	*nonce_b64 = n64;
	e64 = n64 = NULL;
	rc = 0;
out:
	sodium_memzero(esk, sizeof esk);
	free(e64);
	free(n64);
	return rc;
}

int topickey_open(const char *encrypted_b64, const char *nonce_b64, const unsigned char member_ed_sk[64],
                  unsigned char key[TOPICKEY_KEY_BYTES])
{
	struct topickey_sealed s;
	unsigned char xsk[crypto_box_SECRETKEYBYTES];
	if (topickey_parse(encrypted_b64, nonce_b64, &s) != 0)
		return -1;
	if (crypto_sign_ed25519_sk_to_curve25519(xsk, member_ed_sk) != 0)
		return -1;
	int rc = crypto_box_open_easy(key, s.box, sizeof s.box, s.nonce, s.sender_pk, xsk) == 0 ? 0 : -1;
	sodium_memzero(xsk, sizeof xsk);
	if (rc != 0)
		sodium_memzero(key, TOPICKEY_KEY_BYTES);
	return rc;
}

int topickey_encrypt_body(const unsigned char key[TOPICKEY_KEY_BYTES], const unsigned char *plain, size_t len,
                          char **nonce_b64, char **ciphertext_b64)
{
	unsigned char nonce[TOPICKEY_NONCE_BYTES];
	if (len > SIZE_MAX - crypto_secretbox_MACBYTES)
		return -1;
	unsigned char *ct = malloc(len + crypto_secretbox_MACBYTES);
	if (!ct)
		return -1;
	randombytes_buf(nonce, sizeof nonce);
	crypto_secretbox_easy(ct, plain, len, nonce, key);
	char *n64 = box_b64_encode(nonce, sizeof nonce), *c64 = box_b64_encode(ct, len + crypto_secretbox_MACBYTES);
	free(ct);
	if (!n64 || !c64) {
		free(n64);
		free(c64);
		return -1;
	}
	*nonce_b64 = n64;
	*ciphertext_b64 = c64;
	return 0;
}

int topickey_decrypt_body(const unsigned char key[TOPICKEY_KEY_BYTES], const char *nonce_b64,
                          const char *ciphertext_b64, unsigned char **plain, size_t *len)
{
	unsigned char nonce[TOPICKEY_NONCE_BYTES], *ct = NULL, *pt = NULL;
	size_t clen = 0;
	int rc = -1;
	if (decode_exact(nonce_b64, nonce, sizeof nonce) != 0)
		return -1;
	if (!ciphertext_b64 || box_b64_decode(ciphertext_b64, &ct, &clen) != 0 || clen < crypto_secretbox_MACBYTES)
		goto out;
	if (!(pt = malloc(clen - crypto_secretbox_MACBYTES + 1)))
		goto out;
	if (crypto_secretbox_open_easy(pt, ct, clen, nonce, key) != 0)
		goto out;
	pt[clen - crypto_secretbox_MACBYTES] = 0;
	*plain = pt;
	*len = clen - crypto_secretbox_MACBYTES;
	pt = NULL;
	rc = 0;
out:
	free(ct);
	free(pt);
	return rc;
}
