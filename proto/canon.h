/* canon — canonical JSON for the audit hash chain (docs/protocol.md §8): keys
 * sorted recursively, arrays in order, no whitespace.  Shared by the worker
 * (appending) and meshctl audit verify (re-computing). */
#ifndef PROTO_CANON_H
#define PROTO_CANON_H

#include <cjson/cJSON.h>

/* Sort obj's keys in place (recursively) and print it compactly; the caller
 * frees the string.  NULL when out of memory. */
char *canon_json(cJSON *obj);
/* sha256_hex(prev|mesh|event|actor or "null"|canonical|created_at_iso) */
void canon_chain_hash(char out[65], const char *prev, const char *mesh_id, const char *event,
		      const char *actor, const char *canonical, const char *created_at_iso);

#endif
