/* sha1 — SHA-1 (FIPS 180-4) of one buffer, for the WebSocket handshake's
 * Sec-WebSocket-Accept (RFC 6455 §4.2.2), where it is a checksum, not a
 * security function.  The worker's own, so that it does not link libnettle
 * for this one call: one library less to map and relocate at every exec and
 * 12 KiB less private memory in every worker (issue 23, docs/design.md
 * "Cost of a worker, second round"). */
#ifndef COMMON_SHA1_H
#define COMMON_SHA1_H

#include <stddef.h>
#include <stdint.h>

#define SHA1_BYTES 20

void sha1_digest_of(const void *data, size_t len, uint8_t out[SHA1_BYTES]);

#endif
