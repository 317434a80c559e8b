/* audit — the hash-chained audit rows of docs/protocol.md §8, metadata only:
 * never a body, a nonce or a ciphertext. */
#ifndef WORKER_AUDIT_H
#define WORKER_AUDIT_H

#include <cjson/cJSON.h>

#include "worker/worker.h"

/* append event to mesh_id's chain (asynchronously); payload is consumed */
void audit_event(struct worker *w, const char *mesh_id, const char *event, const char *actor,
		 const char *actor_name, cJSON *payload);
/* the canonical payload of a message_sent row ({messageId, priority,
 * targetSpec}), for a send that writes its audit row in its own transaction
 * (send.c); the caller frees it.  NULL when out of memory. */
char *audit_message_sent(const char *message_id, const char *priority, const char *target_spec);

#endif
