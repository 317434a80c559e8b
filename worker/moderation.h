/* moderation — kick, disconnect, ban, unban and list_bans over the socket
 * (docs/protocol.md §12.4): the owner or an admin only (list_bans: any
 * member), target matching with the fix rules, the live connections closed
 * through their workers (a UDS_CLOSE envelope), an audit row per action;
 * and the refusal of a banned member's hello (error revoked, close 4002). */
#ifndef WORKER_MODERATION_H
#define WORKER_MODERATION_H

#include <cjson/cJSON.h>

#include "worker/worker.h"

#define MOD_CLOSE_KICKED 4001
#define MOD_CLOSE_BANNED 4002

void moderation_on_kick(struct worker *w, const cJSON *msg);
void moderation_on_disconnect(struct worker *w, const cJSON *msg);
void moderation_on_ban(struct worker *w, const cJSON *msg);
void moderation_on_unban(struct worker *w, const cJSON *msg);
void moderation_on_list_bans(struct worker *w, const cJSON *msg);

/* the worker hook of a UDS_CLOSE envelope: close with code and the reason
 * of index reason (an unknown index closes with "kicked") */
void moderation_on_close(struct worker *w, int code, int reason);

/* a hello (or session_hello) whose member row exists with revoked_at set,
 * after its signature checks: error{code:"revoked", message naming the
 * mesh}, close 4002 banned, counted as reason revoked */
void moderation_refuse_hello(struct worker *w);

#endif
