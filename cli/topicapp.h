/* topicapp — what meshctl's topic commands share (cli/topiccmd.c): the
 * command's state, the requests it sends (each with a fresh _reqId), and the
 * tail's upkeep of the topic key (docs/protocol.md §5.1, issue 22): it
 * re-seals the current epoch's key for pending members and, run by a lead,
 * starts an epoch nobody holds yet — a fresh key sealed to itself first,
 * then to the others. */
#ifndef CLI_TOPICAPP_H
#define CLI_TOPICAPP_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "cli/peercmd.h"
#include "cli/topicbody.h"

#define TAIL_RESEAL_MS 2000 /* how often tail asks for pending seals */

enum op { OP_CREATE, OP_LIST, OP_JOIN, OP_LEAVE, OP_MEMBERS, OP_HISTORY, OP_POST, OP_TAIL };

struct tcmd {
	struct peercmd_app app;
	enum op op;
	const char *topic, *text, *description, *visibility, *role, *priority;
	long limit;
	char rid_main[24], rid_key[24], rid_after[24];
	struct topicbody_key key; /* every epoch's key held, or unencrypted (cli/topicbody.h) */
	int key_asked, is_lead;
	char rid_fresh[24]; /* tail, a lead: its seal starting a new epoch */
	char topic_id[128];
	int64_t next_tick;
};

/* a fresh request id into rid */
void topicapp_rid(char *rid, size_t cap);
/* queue {type, _reqId (into rid), topic, ...extra} (extra consumed); finishes
 * the command when it cannot be queued */
void topicapp_send(struct tcmd *t, const char *type, char *rid, size_t cap, cJSON *extra);
/* tail: a topic_pending_seals answer; the answer to its own epoch seal; its tick */
void topicapp_pending(struct tcmd *t, const cJSON *j);
void topicapp_took_epoch(struct tcmd *t, const cJSON *j, const char *type);
void topicapp_tick(struct peercmd_app *a, int64_t now);

#endif
