/* opaque — checks for the fields the broker carries without reading them
 * (nonce, ciphertext): they must arrive whole, so the broker stores and
 * forwards them byte for byte or refuses them, never cuts them.  Pure. */
#ifndef COMMON_OPAQUE_H
#define COMMON_OPAQUE_H

#include <stddef.h>

/* 1 when s[0..n) is standard base64 (RFC 4648 §4 alphabet, '=' padding, a
 * length that is a multiple of 4), else 0.  "" is valid. */
int b64_is_valid(const char *s, size_t n);

/* 1 when the JSON text holds the escape \u0000 in any string: cJSON would
 * hand out a C string cut at that NUL.  An escaped backslash before "u0000"
 * (\\u0000, a backslash and five characters) is not one. */
int json_has_nul_escape(const char *text, size_t len);

#endif
