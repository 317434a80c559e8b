/* topic_post — POST /v1/messages (a topic post as the API key's issuing
 * member, with the rules of a WebSocket topic send) and GET
 * /v1/notifications (the caller's unread mentions), docs/protocol.md §5.3. */
#ifndef WORKER_TOPIC_POST_H
#define WORKER_TOPIC_POST_H

#include "worker/http.h"
#include "worker/worker.h"

#define NOTIFICATIONS_MAX 100

void topic_post_message(struct worker *w, struct http_req *req);
void topic_post_notifications(struct worker *w, struct http_req *req);

#endif
