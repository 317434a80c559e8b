/* topic_post — POST /v1/messages (a topic post as the API key's issuing
 * member, through the checks and the store path of a socket topic send)
 * and GET /v1/notifications, /v1/me/notifications (the caller's mentions),
 * docs/protocol.md §5.3, §12.6: rows of worker/route_table.c, which checked
 * the key, its capability, its member and its topic scope. */
#ifndef WORKER_TOPIC_POST_H
#define WORKER_TOPIC_POST_H

#include "worker/route.h"

#define NOTIFICATIONS_MAX 100   /* me/notifications */
#define NOTIFICATIONS_V1_MAX 50 /* notifications */

void topic_post_message(struct worker *w, struct http_req *req, struct route_ctx *c);
void topic_post_notifications(struct worker *w, struct http_req *req, struct route_ctx *c);
void topic_post_me_notifications(struct worker *w, struct http_req *req, struct route_ctx *c);

#endif
