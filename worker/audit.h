/* audit — the hash-chained audit rows of docs/protocol.md §8, metadata only:
 * never a body, a nonce or a ciphertext. */
#ifndef WORKER_AUDIT_H
#define WORKER_AUDIT_H

#include <cjson/cJSON.h>

#include "worker/worker.h"

/* append event to mesh_id's chain (asynchronously); payload is consumed */
void audit_event(struct worker *w, const char *mesh_id, const char *event, const char *actor,
		 const char *actor_name, cJSON *payload);

#endif
