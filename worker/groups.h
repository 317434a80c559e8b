/* groups — groups, visibility, profile and stats of a presence
 * (docs/protocol.md §12.3): join_group, leave_group, set_visible,
 * set_profile, set_stats; the restore after a hello (hello groups > saved >
 * member default groups); and the fan-out of '@group' sends and of '*'
 * sends while a presence of the mesh is hidden, with the recipients fixed at
 * send time (mesh.send_group, migrations 0006 and 0009), idempotent by the
 * client's message id like direct sends. */
#ifndef WORKER_GROUPS_H
#define WORKER_GROUPS_H

#include <cjson/cJSON.h>

#include "db/store_groups.h"
#include "worker/worker.h"

void groups_on_join(struct worker *w, const cJSON *msg);
void groups_on_leave(struct worker *w, const cJSON *msg);
void groups_on_set_visible(struct worker *w, const cJSON *msg);
void groups_on_set_profile(struct worker *w, const cJSON *msg);
void groups_on_set_stats(struct worker *w, const cJSON *msg);

/* (the member's saved state after a hello — hello groups > saved > default
 * groups, saved visibility and profile; a session_hello's own or default
 * groups, visible, empty profile — is restored by the hello's one write
 * statement: worker/auth.c, mesh.hello_join of migration 0013) */

/* 1 when a send to target goes through groups_send: '@all' and '@<group>',
 * and '*' while a live presence of our mesh is hidden (one pass over the
 * mesh's slots, no database) */
int groups_routes(struct worker *w, const char *target);
/* a group send: the message, and the client's ids (NULL when none; the
 * client key is client_message_id, else the send's id).  The sender's
 * session key and display name come from w->me. */
struct groups_msg {
	const char *message_id, *target, *priority, *nonce, *ciphertext;
	const char *client_key, *client_id, *fingerprint;
};
/* what the statement said: stored (recipients members[0..n), to wake), or
 * not stored because the sender stored the client key within a day:
 * first_id set (the same request: its first message id) or conflict */
struct groups_sent {
	const char *const *members;
	int n;
	const char *first_id;
	int conflict;
};
typedef void (*groups_sent_cb)(void *arg, const struct groups_sent *r, const char *err);
/* store the send and one delivery row per recipient (mesh.send_group,
 * migration 0009).  -1 when it could not be queued (cb never runs). */
int groups_send(struct worker *w, const struct groups_msg *m, groups_sent_cb cb, void *arg);

/* the members a send to '@group' (group NULL: '*' / '@all') would reach
 * right now, by the rule of groups_send (one pass over the mesh's slots,
 * then store_group_members).  -1 when it could not be queued. */
int groups_members(struct worker *w, const char *group, store_table_cb cb, void *arg);

/* the request's _reqId when it is a string of <= 128 bytes, else NULL */
const char *groups_req_id(const cJSON *msg);
/* {type:"error", code, message, id: reqid, _reqId: reqid} (ids when set) */
void groups_error(struct worker *w, const char *code, const char *message, const char *reqid);
/* a reply object of type with _reqId when set (the caller adds fields,
 * sends and deletes it) */
cJSON *groups_reply(const char *type, const char *reqid);

#endif
