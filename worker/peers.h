/* peers — who else is on the mesh (docs/protocol.md §11): list_peers from
 * the presence table with its four scopes, set_summary on our own slot, and
 * session replace (a newer hello of the same member and sessionId closes the
 * older connection). */
#ifndef WORKER_PEERS_H
#define WORKER_PEERS_H

#include <cjson/cJSON.h>

#include "worker/worker.h"

void peers_on_list(struct worker *w, const cJSON *msg);
void peers_on_set_summary(struct worker *w, const cJSON *msg);
/* after our hello: every other live connection of our member with our
 * sessionId is told to close (1000 session_replaced); returns how many */
int peers_replace_older(struct worker *w);
/* 1 when p is a REST event stream's slot (worker/sse.c, peerType "sse"):
 * it is woken like a connection of its member but is no peer — not listed
 * by list_peers, no peer event, not counted against the member's
 * connection cap (docs/protocol.md §12.3) */
int peers_is_stream(const struct presence_info *p);
/* 1 when v is an older connection our hello replaces */
int peers_is_replaced(const struct worker *w, const struct presence_view *v);
/* what list_peers shows of a presence (docs/protocol.md §12.3): the key to
 * DM (its session key when it has one, else its member's), and
 * its peerRole ("control-plane" for a hello, "session" for session_hello):
 * the one place that reads them */
const char *peers_pubkey(const struct presence_view *v);
const char *peers_role(const struct presence_view *v);
/* the request's correlation id: _reqId (§11), else id */
const char *peers_req_id(const cJSON *msg);

#endif
