/* msgcheck — the pure checks of the client messages (see msgcheck.h).  The
 * handlers (send.c, peerstatus.c, delivery.c, peers.c, topic*.c) call these
 * first, in the order their refusals are documented, and answer what they
 * return. */
#include "worker/msgcheck.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/opaque.h"
#include "common/util.h"
#include "proto/box.h"
#include "worker/groupcheck.h"
#include "worker/msg.h"
#include "worker/status.h"

/* ---- send ---- */

int msgcheck_send(const cJSON *msg, size_t max_bytes, int frame_nul, struct send_fields *f, const char **detail)
{
	memset(f, 0, sizeof *f);
	f->id = "";
	*detail = NULL;
	const cJSON *idv = cJSON_GetObjectItemCaseSensitive(msg, "id");
	if (cJSON_IsString(idv)) {
		if (strlen(idv->valuestring) > SEND_ID_MAX) {
			*detail = "malformed send: id is longer than 128 characters";
			return SEND_REJ_MALFORMED;
		}
		f->id = idv->valuestring;
	}
	f->target = msg_str(msg, "targetSpec");
	f->nonce = msg_str(msg, "nonce");
	f->ct = msg_str(msg, "ciphertext");
	f->prio = msg_priority_parse(msg_str(msg, "priority"));
	if (f->prio < 0)
		return SEND_REJ_INVALID_PRIORITY;
	const char *t = f->target;
	f->direct = t && is_hex(t, 64);
	if (!t || (!f->direct && strcmp(t, "*") != 0 && t[0] != '#' && t[0] != '@') ||
	    (t[0] == '@' && !groupcheck_target(t + 1)))
		return SEND_REJ_INVALID_TARGET;
	if (t[0] == '#' && (!t[1] || strlen(t) > SEND_TOPIC_REF_MAX))
		return SEND_REJ_NO_SUCH_TOPIC;
	if (msgcheck_opaque_field(cJSON_GetObjectItemCaseSensitive(msg, "nonce"), 0) == SEND_REJ_MALFORMED ||
	    msgcheck_opaque_field(cJSON_GetObjectItemCaseSensitive(msg, "ciphertext"), 0) == SEND_REJ_MALFORMED)
		return SEND_REJ_MALFORMED;
	f->size = strlen(f->ct) + strlen(f->nonce);
	if (f->size > max_bytes)
		return SEND_REJ_PAYLOAD_TOO_LARGE;
	/* opaque, so carried whole or not at all: never a value cut at \u0000 */
	if (frame_nul)
		return SEND_REJ_NUL_IN_FIELD;
	if (msgcheck_client_ids(msg, &f->client_id, &f->fingerprint) != 0) {
		*detail = "malformed send: client_message_id and request_fingerprint must be strings of at most 128 bytes";
		return SEND_REJ_MALFORMED;
	}
	return -1;
}

int msgcheck_opaque_field(const cJSON *v, int text_nul)
{
	if (!cJSON_IsString(v))
		return SEND_REJ_MALFORMED;
	return text_nul ? SEND_REJ_NUL_IN_FIELD : -1;
}

int msgcheck_client_ids(const cJSON *msg, const char **client_id, const char **fingerprint)
{
	static const char *const keys[] = {"client_message_id", "request_fingerprint"};
	const char **out[] = {client_id, fingerprint};
	for (int i = 0; i < 2; i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(msg, keys[i]);
		*out[i] = NULL;
		if (!v || cJSON_IsNull(v))
			continue;
		if (!cJSON_IsString(v) || strlen(v->valuestring) > SEND_CLIENT_ID_MAX)
			return -1;
		*out[i] = v->valuestring[0] ? v->valuestring : NULL;
	}
	return 0;
}

int msgcheck_send_topic(const cJSON *msg, const char *ct, struct send_topic_fields *t, const char **detail)
{
	t->version = 1;
	t->n = 0;
	*detail = NULL;
	const cJSON *bv = cJSON_GetObjectItemCaseSensitive(msg, "bodyVersion");
	if (bv && !cJSON_IsNull(bv)) {
		if (!cJSON_IsNumber(bv) || (bv->valuedouble != 1 && bv->valuedouble != 2)) {
			*detail = "malformed send: bodyVersion must be 1 or 2";
			return SEND_REJ_MALFORMED;
		}
		t->version = (int)bv->valuedouble;
	}
	unsigned char *body = NULL;
	size_t blen = 0;
	const cJSON *mv = cJSON_GetObjectItemCaseSensitive(msg, "mentions");
	if ((!mv || cJSON_IsNull(mv)) && t->version == 1 && box_b64_decode(ct, &body, &blen) != 0)
		body = NULL; /* not base64: no @name tokens to find */
	int n = mention_collect(mv, body, blen, t->names);
	free(body);
	if (n < 0) {
		*detail = "malformed send: mentions must be an array of display names (1-64 bytes each)";
		return SEND_REJ_MALFORMED;
	}
	t->n = n;
	return -1;
}

/* ---- set_status ---- */

enum peer_error msgcheck_set_status(const cJSON *msg, int *status, int *member)
{
	*status = status_parse(msg_str(msg, "status"));
	*member = 0;
	if (*status < 0)
		return PEER_ERR_INVALID_STATUS;
	const cJSON *scope = cJSON_GetObjectItemCaseSensitive(msg, "scope");
	*member = cJSON_IsString(scope) && strcmp(scope->valuestring, "member") == 0;
	if (scope && !cJSON_IsNull(scope) && !*member &&
	    !(cJSON_IsString(scope) && strcmp(scope->valuestring, "session") == 0))
		return PEER_ERR_INVALID_SCOPE;
	return PEER_ERR_NONE;
}

/* ---- client_ack ---- */

int msgcheck_client_ack(const cJSON *msg, const char **broker_id, const char **client_id)
{
	*broker_id = msg_str(msg, "brokerMessageId");
	if (!*broker_id)
		*broker_id = msg_str(msg, "messageId");
	*client_id = msg_str(msg, "clientMessageId");
	if (*broker_id && (!**broker_id || strlen(*broker_id) > CLIENT_ACK_ID_MAX))
		*broker_id = NULL;
	if (*client_id && (!**client_id || strlen(*client_id) > SEND_CLIENT_ID_MAX))
		*client_id = NULL;
	return *broker_id || *client_id ? 0 : -1;
}

/* ---- list_peers, set_summary ---- */

int msgcheck_peers_scope(const cJSON *msg)
{
	static const char *const names[] = {"mesh", "machine", "directory", "repo"};
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(msg, "scope");
	if (!v || cJSON_IsNull(v))
		return SCOPE_MESH;
	if (!cJSON_IsString(v))
		return -1;
	for (int i = 0; i < 4; i++)
		if (strcmp(v->valuestring, names[i]) == 0)
			return i;
	return -1;
}

enum peer_error msgcheck_summary(const cJSON *msg, size_t cap, const char **summary)
{
	*summary = msg_str(msg, "summary");
	if (!*summary)
		return PEER_ERR_SUMMARY_MALFORMED;
	if (strlen(*summary) >= cap)
		return PEER_ERR_SUMMARY_TOO_LONG;
	return PEER_ERR_NONE;
}

/* ---- topic requests ---- */

int topic_name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > TOPIC_NAME_MAX)
		return 0;
	for (const char *c = s; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' ||
		      *c == '_' || *c == '-'))
			return 0;
	return 1;
}

int msgcheck_topic_reqid(const cJSON *msg, char out[TOPIC_REQID_MAX + 1], int *has)
{
	out[0] = 0;
	*has = 0;
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(msg, "_reqId");
	if (!r)
		r = cJSON_GetObjectItemCaseSensitive(msg, "id");
	if (cJSON_IsString(r)) {
		if (strlen(r->valuestring) > TOPIC_REQID_MAX)
			return -1;
		snprintf(out, TOPIC_REQID_MAX + 1, "%s", r->valuestring);
		*has = 1;
	} else if (cJSON_IsNumber(r)) {
		snprintf(out, TOPIC_REQID_MAX + 1, "%.17g", r->valuedouble);
		*has = 1;
	}
	return 0;
}

const char *msgcheck_topic_ref(const cJSON *msg, const char **topic)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(msg, "topic");
	*topic = NULL;
	if (!cJSON_IsString(t) || !t->valuestring[0] || strlen(t->valuestring) > TOPIC_REF_MAX)
		return "topic must be a topic id or name (1-128 bytes)";
	*topic = t->valuestring;
	return NULL;
}

const char *msgcheck_topic_create(const cJSON *msg, const char **name, const char **description,
				  const char **visibility)
{
	*name = msg_str(msg, "name");
	*description = msg_str(msg, "description");
	*visibility = msg_str(msg, "visibility");
	const cJSON *dv = cJSON_GetObjectItemCaseSensitive(msg, "description"),
		    *vv = cJSON_GetObjectItemCaseSensitive(msg, "visibility");
	if (!topic_name_ok(*name))
		return "name must be 1-64 characters of A-Z a-z 0-9 . _ -";
	if ((dv && !cJSON_IsNull(dv) && !*description) || (*description && strlen(*description) > TOPIC_DESCRIPTION_MAX))
		return "description must be a string of at most 1024 bytes";
	if ((vv && !cJSON_IsNull(vv) && !*visibility) ||
	    (*visibility && strcmp(*visibility, "public") != 0 && strcmp(*visibility, "private") != 0))
		return "visibility must be public or private";
	return NULL;
}

const char *msgcheck_topic_copy(const cJSON *msg, int *given, const char **enc, const char **nonce,
				struct topickey_sealed *s)
{
	*enc = msg_str(msg, "encryptedKey");
	*nonce = msg_str(msg, "nonce");
	*given = *enc || *nonce;
	if (*given && (!*enc || !*nonce || topickey_parse(*enc, *nonce, s) != 0))
		return "encryptedKey must be base64 of 80 bytes (sender x25519 pk ‖ crypto_box of the key) and "
		       "nonce base64 of 24 bytes";
	return NULL;
}

const char *msgcheck_topic_join(const cJSON *msg, const char **role)
{
	const cJSON *rv = cJSON_GetObjectItemCaseSensitive(msg, "role");
	*role = msg_str(msg, "role");
	if (rv && !cJSON_IsNull(rv) &&
	    (!*role || (strcmp(*role, "lead") && strcmp(*role, "member") && strcmp(*role, "observer"))))
		return "role must be lead, member or observer";
	return NULL;
}

const char *msgcheck_topic_history(const cJSON *msg, int *limit, const char **before)
{
	const cJSON *lv = cJSON_GetObjectItemCaseSensitive(msg, "limit"),
		    *bv = cJSON_GetObjectItemCaseSensitive(msg, "beforeId");
	*limit = TOPIC_HISTORY_DEFAULT;
	*before = NULL;
	if (lv && !cJSON_IsNull(lv)) {
		if (!cJSON_IsNumber(lv) || !(lv->valuedouble >= 1 && lv->valuedouble <= 1e9))
			return "limit must be a number from 1 to 200";
		*limit = lv->valuedouble > TOPIC_HISTORY_MAX ? TOPIC_HISTORY_MAX : (int)lv->valuedouble;
	}
	if (bv && !cJSON_IsNull(bv)) {
		if (!cJSON_IsString(bv) || !bv->valuestring[0] || strlen(bv->valuestring) > TOPIC_BEFORE_ID_MAX)
			return "beforeId must be a message id";
		*before = bv->valuestring;
	}
	return NULL;
}

const char *msgcheck_topic_seal(const cJSON *msg, const char **member, const char **enc, const char **nonce,
				struct topickey_sealed *s)
{
	*member = msg_str(msg, "memberId");
	*enc = msg_str(msg, "encryptedKey");
	*nonce = msg_str(msg, "nonce");
	if (!*member || !**member || strlen(*member) > TOPIC_MEMBER_ID_MAX)
		return "memberId must be a member id";
	if (!*enc || !*nonce || topickey_parse(*enc, *nonce, s) != 0)
		return "encryptedKey must be base64 of 80 bytes and nonce base64 of 24 bytes";
	return NULL;
}

/* ---- U+0000 in a JSON text (the REST post path; issue 21) ---- */

int msgcheck_json_nul_free(const char *text, size_t len)
{
	/* cJSON hands out a string cut at an escaped \u0000, and stops at a
	 * raw NUL byte: either way a field would be stored cut */
	return !memchr(text, 0, len) && !json_has_nul_escape(text, len);
}
