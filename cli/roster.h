/* roster — the members of a mesh as list_members returns them
 * (docs/protocol.md §12.8), shared by `meshctl send` and `meshctl mcp`: a
 * member name resolved to its pubkey (offline members included), a direct
 * send frame (crypto_box to one key), and a broadcast as one such envelope
 * per member, offline ones included, so that nothing leaves in clear. */
#ifndef CLI_ROSTER_H
#define CLI_ROSTER_H

#include <cjson/cJSON.h>
#include <stddef.h>

#define ROSTER_BCAST_MAX 1000 /* members a broadcast is sealed for (the broker lists at most 1000) */

/* {"type":"list_members","_reqId":reqid} */
cJSON *roster_request(const char *reqid);
/* the same for the members the broker resolves target ("@name", "@all")
 * to right now: {"type":"list_members","group":name,"_reqId":reqid} */
cJSON *roster_group_request(const char *reqid, const char *target);
/* The one member (not the caller's own) whose displayName equals name (any
 * case), in members (each may carry a number "_link": *link gets it, 0
 * without).  0 found (pubkey: 64 lowercase hex); -1 no such member, -2
 * several: why says so with the candidates. */
int roster_resolve(const cJSON *members, const char *name, char pubkey[65], int *link, char *why, size_t cap);
/* The send frame of a direct message to the member or session key
 * target_hex (64 lowercase hex): crypto_box_easy from sender_sk.  NULL
 * when the key is no ed25519 key or out of memory. */
cJSON *roster_direct_frame(const char *target_hex, const unsigned char sender_sk[64], const char *text,
                           const char *priority, const char *id);
/* A broadcast: a JSON array of direct send frames, one for each member of
 * members but the caller's own ("self"), ids "<id_prefix>-<n>", each with
 * "broadcastId": id_prefix (at most 64 bytes of [A-Za-z0-9._:-]: the broker
 * charges one send of the rate limit for all of them, docs/protocol.md
 * §3.1).  NULL when out of memory or a member key is bad; an empty array
 * when alone. */
cJSON *roster_broadcast(const cJSON *members, const unsigned char sender_sk[64], const char *text,
                        const char *priority, const char *id_prefix);

#endif
