/* members — list_members over the socket (docs/protocol.md §12.8, issue
 * 20): the non-revoked members of the caller's mesh with their pubkeys,
 * live or not, so that a client can encrypt a broadcast per member and
 * resolve a member name to a pubkey.  Read-only. */
#ifndef WORKER_MEMBERS_H
#define WORKER_MEMBERS_H

#include <cjson/cJSON.h>

#include "worker/worker.h"

void members_on_list(struct worker *w, const cJSON *msg);

#endif
