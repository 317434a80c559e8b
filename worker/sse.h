/* sse — GET /v1/topics/:name/stream (docs/protocol.md §12.6): a topic's new
 * messages as Server-Sent Events, a row of worker/route_table.c (the table
 * checked the key's read capability and its topic scope).  The worker
 * holding the stream is an ordinary per-connection worker: it claims a
 * presence slot of the key's member and listens on its worker socket, so a
 * topic post, over the socket or REST, wakes it like any live connection of
 * a recipient (worker/wake.c); it then reads what followed its cursor.
 * A Last-Event-ID replays what followed that message before going live. */
#ifndef WORKER_SSE_H
#define WORKER_SSE_H

#include "worker/route.h"

#define SSE_REPLAY_MAX 200   /* messages a fetch reads at most */
#define SSE_POLL_MS 2000     /* a look without a wake: the member's own posts, a revoked key */
/* a message is read once it is this old: a post stamped earlier but
 * committed later than one already written is not skipped (store_topic.h) */
#define SSE_SETTLE_MS 150
#define SSE_SETTLE_SLACK_MS 20
#define SSE_PEER_TYPE "sse"  /* the presence slot's peerType */

void sse_stream(struct worker *w, struct http_req *req, struct route_ctx *c);

#endif
