/* apikey_ws — API keys over the socket (docs/protocol.md §12.5):
 * apikey_create (the secret is shown once, in its reply; only its sha256 and
 * prefix are stored, through proto/apikey.c as meshctl does), apikey_list
 * and apikey_revoke.  The owner and admins see and revoke every key of the
 * mesh and may grant admin; other members only their own keys. */
#ifndef WORKER_APIKEY_WS_H
#define WORKER_APIKEY_WS_H

#include <cjson/cJSON.h>

#include "worker/worker.h"

void apikey_ws_on_create(struct worker *w, const cJSON *msg);
void apikey_ws_on_list(struct worker *w, const cJSON *msg);
void apikey_ws_on_revoke(struct worker *w, const cJSON *msg);

#endif
