/* apikey — what the broker and meshctl share about REST API keys
 * (docs/protocol.md §5.3): the secret's form (cm_ + b64url of 32 random
 * bytes), what is stored of it (sha256 hex of the whole secret and its first
 * 11 characters), the capability names, and the Bearer header parse.  Pure:
 * no libpq, fuzzable. */
#ifndef PROTO_APIKEY_H
#define PROTO_APIKEY_H

#include <stddef.h>

#define APIKEY_SECRET_MAX 64 /* "cm_" + 43 b64url chars = 46; room for junk detection */
#define APIKEY_PREFIX_LEN 11
#define APIKEY_HASH_HEX   65 /* 64 hex + NUL */

/* capability bits */
enum {
	APIKEY_CAP_SEND = 1u << 0,
	APIKEY_CAP_READ = 1u << 1,
	APIKEY_CAP_STATE_WRITE = 1u << 2,
	APIKEY_CAP_ADMIN = 1u << 3,
	APIKEY_CAP_STATUS = 1u << 4, /* POST /hook/set-status (meshbroker's own) */
};
/* the bit of one capability name, 0 when unknown */
unsigned apikey_cap_bit(const char *name);
/* the name of one bit, NULL when unknown */
const char *apikey_cap_name(unsigned bit);
/* every known capability, NULL-terminated, in bit order */
extern const char *const apikey_cap_names[];

/* A new secret "cm_<b64url of 32 random bytes>" into out (>= APIKEY_SECRET_MAX
 * bytes); the caller wipes it (sodium_memzero). */
void apikey_generate(char *out, size_t cap);
/* sha256 hex of the whole secret */
void apikey_hash(const char *secret, char out[APIKEY_HASH_HEX]);
/* 1 when s has the form of a secret: cm_ and 43 b64url characters */
int apikey_well_formed(const char *s);

/* The token of an "Authorization: Bearer <token>" value (scheme matched
 * case-insensitively, surrounding blanks dropped) copied into out.  0 ok, -1
 * when the value is empty, another scheme or the token does not fit. */
int apikey_bearer(const char *header, char *out, size_t cap);

#endif
