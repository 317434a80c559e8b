/* fuzz_messages — libFuzzer target for the checks every client message of
 * the peer protocol gets before its handler touches the database
 * (worker/msgcheck.c), and for what phase_dispatch does first: the input is
 * one text frame, parsed as JSON; the \u0000 scan runs over it, and an
 * object goes through the check of every message type (send and its topic
 * part, set_status, client_ack, list_peers, set_summary, each topic request,
 * the hello).  Whatever a check lets through must satisfy what its handler
 * relies on; a refusal must name a known answer. */
#include <cjson/cJSON.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/opaque.h"
#include "common/util.h"
#include "proto/hello.h"
#include "worker/groupcheck.h"
#include "worker/msg.h"
#include "worker/msgcheck.h"
#include "worker/status.h"

#define FUZZ_NOW 1775339620000LL /* the clock of the hello seeds */
#define SUMMARY_CAP 1025         /* struct presence_info's summary */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (sodium_init() < 0)
		abort();
	return 0;
}

static void need(int ok)
{
	if (!ok)
		abort();
}

static void check_send(const cJSON *msg, int frame_nul, size_t max_bytes)
{
	struct send_fields f;
	const char *detail;
	int r = msgcheck_send(msg, max_bytes, frame_nul, &f, &detail);
	need(f.id != NULL && strlen(f.id) <= SEND_ID_MAX);
	if (r >= 0) {
		need(r < SEND_REJ_COUNT && r != SEND_REJ_RATE_LIMIT && r != SEND_REJ_DB_UNAVAILABLE &&
		     r != SEND_REJ_NO_RECIPIENT);
		need(!detail || r == SEND_REJ_MALFORMED);
		return;
	}
	/* what send_on_msg and the store rely on */
	need(f.prio >= 0 && f.prio < PRIORITY_COUNT && !frame_nul);
	need(f.target && f.nonce && f.ct);
	need(!f.client_id || (*f.client_id && strlen(f.client_id) <= SEND_CLIENT_ID_MAX));
	need(!f.fingerprint || (*f.fingerprint && strlen(f.fingerprint) <= SEND_CLIENT_ID_MAX));
	need(f.direct ? is_hex(f.target, 64)
		      : strcmp(f.target, "*") == 0 || (f.target[0] == '@' && groupcheck_target(f.target + 1)) ||
				(f.target[0] == '#' && f.target[1] && strlen(f.target) <= SEND_TOPIC_REF_MAX));
	need(f.size == strlen(f.nonce) + strlen(f.ct) && f.size <= max_bytes);
	need(msgcheck_opaque_field(cJSON_GetObjectItemCaseSensitive(msg, "nonce"), 0) == -1);
	need(msgcheck_opaque_field(cJSON_GetObjectItemCaseSensitive(msg, "ciphertext"), 1) == SEND_REJ_NUL_IN_FIELD);
	if (f.target[0] != '#')
		return;
	struct send_topic_fields t;
	r = msgcheck_send_topic(msg, f.ct, &t, &detail);
	if (r >= 0) {
		need(r == SEND_REJ_MALFORMED && detail);
		return;
	}
	need((t.version == 1 || t.version == 2) && t.n >= 0 && t.n <= MENTION_MAX);
	for (int i = 0; i < t.n; i++)
		need(t.names[i][0] && strlen(t.names[i]) <= MENTION_NAME_MAX);
	mention_free(t.names, t.n);
}

static void check_topic(const cJSON *msg)
{
	char reqid[TOPIC_REQID_MAX + 1];
	int has;
	if (msgcheck_topic_reqid(msg, reqid, &has) == 0)
		need(strlen(reqid) <= TOPIC_REQID_MAX && (has || !reqid[0]));

	const char *topic, *bad = msgcheck_topic_ref(msg, &topic);
	need(bad ? !topic : topic && topic[0] && strlen(topic) <= TOPIC_REF_MAX);

	const char *name, *description, *visibility;
	if (!msgcheck_topic_create(msg, &name, &description, &visibility)) {
		need(topic_name_ok(name) && strlen(name) <= TOPIC_NAME_MAX);
		need(!description || strlen(description) <= TOPIC_DESCRIPTION_MAX);
		need(!visibility || !strcmp(visibility, "public") || !strcmp(visibility, "private"));
	}

	int given;
	const char *enc, *nonce;
	struct topickey_sealed s;
	if (!msgcheck_topic_copy(msg, &given, &enc, &nonce, &s))
		need(!given || (enc && nonce && topickey_parse(enc, nonce, &s) == 0));

	const char *role;
	if (!msgcheck_topic_join(msg, &role))
		need(!role || !strcmp(role, "lead") || !strcmp(role, "member") || !strcmp(role, "observer"));

	int limit;
	const char *before;
	if (!msgcheck_topic_history(msg, &limit, &before)) {
		need(limit >= 1 && limit <= TOPIC_HISTORY_MAX);
		need(!before || (before[0] && strlen(before) <= TOPIC_BEFORE_ID_MAX));
	}

	const char *member;
	if (!msgcheck_topic_seal(msg, &member, &enc, &nonce, &s))
		need(member[0] && strlen(member) <= TOPIC_MEMBER_ID_MAX && topickey_parse(enc, nonce, &s) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	int frame_nul = json_has_nul_escape(text, size);
	cJSON *msg = cJSON_ParseWithLength(text, size);
	if (!cJSON_IsObject(msg)) { /* bad_json: nothing else runs */
		cJSON_Delete(msg);
		return 0;
	}
	const char *type = msg_str(msg, "type");
	need(!type || strlen(type) <= size);

	check_send(msg, frame_nul, 65536);
	check_send(msg, frame_nul, 64); /* a small MAX_MESSAGE_BYTES */

	int st, member;
	enum peer_error e = msgcheck_set_status(msg, &st, &member);
	if (e == PEER_ERR_NONE)
		need(st >= 0 && status_str(st) != NULL && status_parse(status_str(st)) == st);
	else
		need(e == PEER_ERR_INVALID_STATUS || e == PEER_ERR_INVALID_SCOPE);

	const char *ack, *cack;
	int ar = msgcheck_client_ack(msg, &ack, &cack);
	need(!ack || (*ack && strlen(ack) <= CLIENT_ACK_ID_MAX));
	need(!cack || (*cack && strlen(cack) <= SEND_CLIENT_ID_MAX));
	need((ar == 0) == (ack || cack));

	int scope = msgcheck_peers_scope(msg);
	need(scope >= -1 && scope <= SCOPE_REPO);

	const char *summary;
	e = msgcheck_summary(msg, SUMMARY_CAP, &summary);
	need(e == PEER_ERR_NONE ? strlen(summary) < SUMMARY_CAP
				: e == PEER_ERR_SUMMARY_MALFORMED || e == PEER_ERR_SUMMARY_TOO_LONG);

	check_topic(msg);

	struct hello h;
	enum hello_code c = hello_check(msg, &h, FUZZ_NOW);
	need(hello_code_str(c) && hello_code_message(c));

	cJSON_Delete(msg);
	return 0;
}
