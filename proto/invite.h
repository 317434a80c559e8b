/* invite — the v1 invite token of docs/protocol.md §6, shared by meshctl
 * (minting) and the worker (POST /join): token = b64url (no padding) of the
 * JSON {v:1, mesh_id, mesh_slug, broker_url, expires_at (unix s),
 * mesh_root_key, role, owner_pubkey, signature}, signature = ed25519 hex by
 * the mesh owner's key over v|mesh_id|mesh_slug|broker_url|expires_at|
 * mesh_root_key|role|owner_pubkey.  Pure: no libpq. */
#ifndef PROTO_INVITE_H
#define PROTO_INVITE_H

#include <cjson/cJSON.h>
#include <stdint.h>

#define INVITE_TOKEN_MAX 8192 /* decoded JSON larger than this is refused */

struct invite {
	const char *mesh_id, *mesh_slug, *broker_url, *mesh_root_key, *role, *owner_pubkey, *signature;
	int64_t expires_at;
};

/* Read the fields of a payload object (pointers into obj).  0 ok, -1 when a
 * field is missing, of the wrong type, v is not 1, or a key is not hex of the
 * right length. */
int invite_fields(const cJSON *obj, struct invite *out);
/* The signed string, malloc'd (NULL when out of memory). */
char *invite_signed_string(const struct invite *iv);
/* 1 when iv->signature is owner_pubkey's ed25519 signature of the signed string */
int invite_verify(const struct invite *iv);
/* Sign iv (its signature field is ignored) with the 64-byte ed25519 secret
 * key into sig_hex. 0 ok, -1 out of memory. */
int invite_sign(const struct invite *iv, const unsigned char sk[64], char sig_hex[129]);
/* The payload object of iv (with signature) and its token; both malloc'd /
 * cJSON_Delete'd by the caller.  NULL when out of memory. */
cJSON *invite_payload_json(const struct invite *iv);
char *invite_token_encode(const cJSON *payload);
/* Decode a token into its JSON object; NULL when it is not b64url of a JSON
 * object. */
cJSON *invite_token_decode(const char *token);

#endif
