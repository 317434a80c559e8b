/* box — direct-message crypto of docs/protocol.md §3.3 (see box.h).  Every
 * derived x25519 secret is wiped before return. */
#include "box.h"

#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

char *box_b64_encode(const unsigned char *in, size_t n)
{
	size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
	char *out = malloc(cap);
	if (!out)
		return NULL;
	sodium_bin2base64(out, cap, in, n, sodium_base64_VARIANT_ORIGINAL);
	return out;
}

int box_b64_decode(const char *b64, unsigned char **out, size_t *len)
{
	static const int variants[] = {sodium_base64_VARIANT_ORIGINAL,
				       sodium_base64_VARIANT_ORIGINAL_NO_PADDING};
	size_t n = strlen(b64);
	/* 3 bytes per 4 characters, rounded up, never less than what decodes */
	unsigned char *buf = malloc(n / 4 * 3 + 3 + 1);
	if (!buf)
		return -1;
	for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
		size_t got = 0;
		const char *end = NULL;
		if (sodium_base642bin(buf, n / 4 * 3 + 3, b64, n, NULL, &got, &end, variants[i]) == 0 &&
		    end == b64 + n) {
			buf[got] = 0;
			*out = buf;
			*len = got;
			return 0;
		}
	}
	free(buf);
	return -1;
}

int box_encrypt_direct(const char *plaintext, size_t len, const unsigned char recipient_ed_pk[32],
		       const unsigned char sender_ed_sk[64], char **nonce_b64,
		       char **ciphertext_b64)
{
	unsigned char xpk[crypto_box_PUBLICKEYBYTES], xsk[crypto_box_SECRETKEYBYTES];
	unsigned char nonce[crypto_box_NONCEBYTES];
	unsigned char *ct = NULL;
	char *n64 = NULL, *c64 = NULL;
	int rc = -1;

	if (len > SIZE_MAX - crypto_box_MACBYTES)
		return -1;
	if (crypto_sign_ed25519_pk_to_curve25519(xpk, recipient_ed_pk) != 0)
		goto out;
	if (crypto_sign_ed25519_sk_to_curve25519(xsk, sender_ed_sk) != 0)
		goto out;
	if (!(ct = malloc(len + crypto_box_MACBYTES)))
		goto out;
	randombytes_buf(nonce, sizeof nonce);
	if (crypto_box_easy(ct, (const unsigned char *)plaintext, len, nonce, xpk, xsk) != 0)
		goto out;
	if (!(n64 = box_b64_encode(nonce, sizeof nonce)) ||
	    !(c64 = box_b64_encode(ct, len + crypto_box_MACBYTES)))
		goto out;
	*nonce_b64 = n64;
	*ciphertext_b64 = c64;
	n64 = c64 = NULL;
	rc = 0;
out:
	sodium_memzero(xsk, sizeof xsk);
	free(ct);
	free(n64);
	free(c64);
	return rc;
}

int box_decrypt_direct(const char *nonce_b64, const char *ciphertext_b64,
		       const unsigned char sender_ed_pk[32], const unsigned char recipient_ed_sk[64],
		       unsigned char **plain, size_t *len)
{
	unsigned char xpk[crypto_box_PUBLICKEYBYTES], xsk[crypto_box_SECRETKEYBYTES];
	unsigned char *nonce = NULL, *ct = NULL, *pt = NULL;
	size_t nlen = 0, clen = 0;
	int rc = -1;

	if (box_b64_decode(nonce_b64, &nonce, &nlen) != 0 || nlen != crypto_box_NONCEBYTES)
		goto out;
	if (box_b64_decode(ciphertext_b64, &ct, &clen) != 0 || clen < crypto_box_MACBYTES)
		goto out;
	if (crypto_sign_ed25519_pk_to_curve25519(xpk, sender_ed_pk) != 0)
		goto out;
	if (crypto_sign_ed25519_sk_to_curve25519(xsk, recipient_ed_sk) != 0)
		goto out;
	if (!(pt = malloc(clen - crypto_box_MACBYTES + 1)))
		goto out;
	if (crypto_box_open_easy(pt, ct, clen, nonce, xpk, xsk) != 0)
		goto out;
	pt[clen - crypto_box_MACBYTES] = 0;
	*plain = pt;
	*len = clen - crypto_box_MACBYTES;
	pt = NULL;
	rc = 0;
out:
	sodium_memzero(xsk, sizeof xsk);
	free(nonce);
	free(ct);
	free(pt);
	return rc;
}
