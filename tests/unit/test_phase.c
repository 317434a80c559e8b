/* test_phase — walks the peer protocol's phase table (worker/phase.c): every
 * message type, known or not, in every connection phase gives its handler
 * or the right error frame (docs/protocol.md §2-§3). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "worker/apikey_ws.h"
#include "worker/auth.h"
#include "worker/delivery.h"
#include "worker/groups.h"
#include "worker/members.h"
#include "worker/moderation.h"
#include "worker/peers.h"
#include "worker/peerstatus.h"
#include "worker/phase.h"
#include "worker/send.h"
#include "worker/topic.h"
#include "worker/topic_key.h"

/* what the protocol says, written out independently of the table */
struct expect {
	const char *type;
	phase_handler handler; /* legal after hello (or before, for hello) */
};
static const struct expect known[] = {
	{"hello", auth_on_hello},
	{"send", send_on_msg},
	{"set_status", peerstatus_on_set_status},
	{"client_ack", delivery_on_client_ack},
	/* topics (§5.2) and the key routes over the socket */
	{"topic_create", topic_on_create},
	{"topic_list", topic_on_list},
	{"topic_join", topic_on_join},
	{"topic_leave", topic_on_leave},
	{"topic_mark_read", topic_on_mark_read},
	{"topic_members", topic_on_members},
	{"topic_history", topic_on_history},
	{"topic_key", topic_key_on_get},
	{"topic_pending_seals", topic_key_on_pending},
	{"topic_seal", topic_key_on_seal},
	/* issue 22 */
	{"topic_add_member", topic_on_add_member},
	{"topic_remove_member", topic_on_remove_member},
	{"topic_key_discard", topic_key_on_discard},
	{"list_peers", peers_on_list},
	{"set_summary", peers_on_set_summary},
	/* §12.1: the other first frame */
	{"session_hello", auth_on_session_hello},
	/* groups, moderation, API keys (§12.3-§12.5) */
	{"join_group", groups_on_join},
	{"leave_group", groups_on_leave},
	{"set_visible", groups_on_set_visible},
	{"set_profile", groups_on_set_profile},
	{"set_stats", groups_on_set_stats},
	{"kick", moderation_on_kick},
	{"disconnect", moderation_on_disconnect},
	{"ban", moderation_on_ban},
	{"unban", moderation_on_unban},
	{"list_bans", moderation_on_list_bans},
	{"apikey_create", apikey_ws_on_create},
	{"apikey_list", apikey_ws_on_list},
	{"apikey_revoke", apikey_ws_on_revoke},
	{"list_members", members_on_list},
};
#define NKNOWN (sizeof known / sizeof known[0])

static const enum phase phases[] = {PHASE_BEFORE_HELLO, PHASE_HELLO_PENDING, PHASE_AUTHENTICATED, PHASE_CLOSING};

static struct phase_verdict expected(const char *type, enum phase ph)
{
	struct phase_verdict v = {NULL, PEER_ERR_NONE, 0};
	if (ph == PHASE_CLOSING)
		return v; /* a closing connection drops everything */
	for (size_t i = 0; type && i < NKNOWN; i++) {
		if (strcmp(type, known[i].type) != 0)
			continue;
		if (strcmp(type, "hello") == 0 || strcmp(type, "session_hello") == 0) {
			if (ph == PHASE_BEFORE_HELLO)
				v.handler = known[i].handler;
			else
				v.error = PEER_ERR_ALREADY_AUTHENTICATED;
		} else if (ph == PHASE_AUTHENTICATED) {
			v.handler = known[i].handler;
		} else {
			v.error = PEER_ERR_NO_HELLO;
		}
		return v;
	}
	v.error = ph == PHASE_AUTHENTICATED ? PEER_ERR_UNKNOWN_TYPE : PEER_ERR_NO_HELLO;
	return v;
}

static void check_one(const char *type, enum phase ph)
{
	struct phase_verdict got = phase_lookup(type, ph), want = expected(type, ph);
	ck_assert_msg(got.handler == want.handler, "type %s in phase %d: wrong handler", type ? type : "(none)",
		      (int)ph);
	ck_assert_msg(got.error == want.error, "type %s in phase %d: error %d, want %d", type ? type : "(none)",
		      (int)ph, (int)got.error, (int)want.error);
	ck_assert_msg(!(got.handler && got.error != PEER_ERR_NONE), "a handler and an error at once");
}

START_TEST(every_listed_type_in_every_phase_gets_its_handler_or_error)
{
	size_t n;
	const struct phase_row *t = phase_table(&n);
	for (size_t r = 0; r + 1 < n; r++)
		for (size_t p = 0; p < sizeof phases / sizeof phases[0]; p++)
			check_one(t[r].type, phases[p]);
}
END_TEST

START_TEST(every_table_row_is_a_type_the_protocol_knows)
{
	size_t n;
	const struct phase_row *t = phase_table(&n);
	ck_assert_uint_eq(n, NKNOWN + 1);
	for (size_t r = 0; r + 1 < n; r++) {
		int found = 0;
		for (size_t i = 0; i < NKNOWN; i++)
			found |= t[r].type && strcmp(t[r].type, known[i].type) == 0;
		ck_assert_msg(found, "row %zu (%s) has no expectation", r, t[r].type ? t[r].type : "(null)");
	}
	ck_assert_ptr_null(t[n - 1].type);
	ck_assert_ptr_null(t[n - 1].handler);
}
END_TEST

START_TEST(unknown_and_missing_types_get_no_hello_then_unknown_type)
{
	const char *types[] = {NULL, "", "Hello", "hello ", "topic_create", "list_peers", "ack", "push"};
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
		for (size_t p = 0; p < sizeof phases / sizeof phases[0]; p++)
			check_one(types[i], phases[p]);
}
END_TEST

START_TEST(the_table_alone_decides_legal_phases)
{
	size_t n;
	const struct phase_row *t = phase_table(&n);
	for (size_t r = 0; r < n; r++)
		for (size_t p = 0; p < sizeof phases / sizeof phases[0]; p++) {
			struct phase_verdict v = phase_lookup(t[r].type, phases[p]);
			if (t[r].handler && (t[r].legal & PHASE_BIT(phases[p])))
				ck_assert(v.handler == t[r].handler);
			else
				ck_assert_int_eq(v.error, t[r].refused[phases[p]]);
		}
}
END_TEST

START_TEST(closing_drops_every_type)
{
	for (size_t i = 0; i < NKNOWN; i++) {
		struct phase_verdict v = phase_lookup(known[i].type, PHASE_CLOSING);
		ck_assert_ptr_null(v.handler);
		ck_assert_int_eq(v.error, PEER_ERR_NONE);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("phase");
	TCase *tc = tcase_create("table");
	tcase_add_test(tc, every_listed_type_in_every_phase_gets_its_handler_or_error);
	tcase_add_test(tc, every_table_row_is_a_type_the_protocol_knows);
	tcase_add_test(tc, unknown_and_missing_types_get_no_hello_then_unknown_type);
	tcase_add_test(tc, the_table_alone_decides_legal_phases);
	tcase_add_test(tc, closing_drops_every_type);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
