/* auth — the hello of docs/protocol.md §2 on the broker's side: checks 1-4
 * (proto/hello.c), the replay cache (5), membership (6), capacity (7), then
 * the presence slot, hello_ack and the first drain; and the session_hello of
 * §12.1 the same way. */
#ifndef WORKER_AUTH_H
#define WORKER_AUTH_H

#include <cjson/cJSON.h>

#include "worker/worker.h"

void auth_on_hello(struct worker *w, const cJSON *msg);
/* §12.1: a session connection's first frame (its checks 1-10), legal where
 * hello is; refused with unknown_message_type when SESSION_HELLO=0 */
void auth_on_session_hello(struct worker *w, const cJSON *msg);

#endif
