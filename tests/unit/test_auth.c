/* test_auth — the pure pieces of issue 8: the hook's loopback source rule,
 * API key secrets and the Bearer parse, v1 invite signing, meshctl's
 * durations; and the hello's capacity check (presence_claim_capped, issue
 * 25) against a real shared table while other members churn. */
#include <check.h>
#include <ftw.h>
#include <sched.h>
#include <signal.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/invitecmd.h"
#include "common/util.h"
#include "proto/apikey.h"
#include "proto/invite.h"
#include "shm/shm.h"
#include "worker/source.h"

START_TEST(source_loopback_addresses_are_loopback)
{
	ck_assert_int_eq(source_is_loopback("127.0.0.1"), 1);
	ck_assert_int_eq(source_is_loopback("127.255.3.4"), 1);
	ck_assert_int_eq(source_is_loopback("::1"), 1);
	ck_assert_int_eq(source_is_loopback("::ffff:127.0.0.1"), 1);
}
END_TEST

START_TEST(source_other_addresses_are_not_loopback)
{
	static const char *const others[] = {"10.0.0.1",  "192.168.1.10", "128.0.0.1",       "0.0.0.0",     "::",
	                                     "::2",       "fe80::1",      "::ffff:10.0.0.1", "2001:db8::1", "",
	                                     "localhost", "127.0.0.1 ",   "127.0.0.1.5",     "::1%lo",      NULL};
	for (int i = 0; others[i]; i++)
		ck_assert_msg(source_is_loopback(others[i]) == 0, "%s taken for loopback", others[i]);
	ck_assert_int_eq(source_is_loopback(NULL), 0);
}
END_TEST

START_TEST(hook_without_key_only_from_loopback_when_allowed_and_not_from_a_browser)
{
	ck_assert_int_eq(source_may_skip_key(1, "127.0.0.1", NULL, NULL), 1);
	ck_assert_int_eq(source_may_skip_key(1, "::1", "", ""), 1);
	ck_assert_int_eq(source_may_skip_key(1, "::ffff:127.0.0.1", NULL, NULL), 1);
	/* a non-loopback source is refused even when the switch is on */
	ck_assert_int_eq(source_may_skip_key(1, "192.168.1.20", NULL, NULL), 0);
	ck_assert_int_eq(source_may_skip_key(1, "10.0.0.7", "", ""), 0);
	ck_assert_int_eq(source_may_skip_key(1, "::ffff:192.0.2.1", NULL, NULL), 0);
	ck_assert_int_eq(source_may_skip_key(1, "", NULL, NULL), 0);
	/* default: off */
	ck_assert_int_eq(source_may_skip_key(0, "127.0.0.1", NULL, NULL), 0);
	/* a web page on this machine (the browser sends Origin) */
	ck_assert_int_eq(source_may_skip_key(1, "127.0.0.1", "https://evil.example", NULL), 0);
	/* a remote client through a reverse proxy on this machine */
	ck_assert_int_eq(source_may_skip_key(1, "127.0.0.1", NULL, "203.0.113.9"), 0);
}
END_TEST

START_TEST(source_of_a_non_inet_socket_is_the_fallback)
{
	int sv[2];
	char out[SOURCE_ADDR_MAX];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	source_of(sv[0], "10.1.2.3", out, sizeof out);
	ck_assert_str_eq(out, "10.1.2.3");
	source_of(-1, NULL, out, sizeof out);
	ck_assert_str_eq(out, "");
	close(sv[0]);
	close(sv[1]);
}
END_TEST

START_TEST(apikey_secret_form_hash_and_prefix)
{
	char s[APIKEY_SECRET_MAX + 1], h[APIKEY_HASH_HEX], h2[APIKEY_HASH_HEX];
	apikey_generate(s, sizeof s);
	ck_assert_uint_eq(strlen(s), 46);
	ck_assert(strncmp(s, "cm_", 3) == 0);
	ck_assert_int_eq(apikey_well_formed(s), 1);
	apikey_hash(s, h);
	ck_assert_uint_eq(strlen(h), 64);
	ck_assert(is_hex(h, 64));
	apikey_hash("abc", h2); /* sha256("abc") */
	ck_assert_str_eq(h2, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	ck_assert_int_eq(apikey_well_formed("cm_short"), 0);
	ck_assert_int_eq(apikey_well_formed("xx_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), 0);
	ck_assert_int_eq(apikey_well_formed("cm_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+"), 0);
}
END_TEST

START_TEST(apikey_bearer_parse)
{
	char t[64];
	ck_assert_int_eq(apikey_bearer("Bearer cm_abc", t, sizeof t), 0);
	ck_assert_str_eq(t, "cm_abc");
	ck_assert_int_eq(apikey_bearer("  bearer \tcm_x  ", t, sizeof t), 0);
	ck_assert_str_eq(t, "cm_x");
	ck_assert_int_eq(apikey_bearer("Basic abc", t, sizeof t), -1);
	ck_assert_int_eq(apikey_bearer("Bearer", t, sizeof t), -1);
	ck_assert_int_eq(apikey_bearer("Bearer ", t, sizeof t), -1);
	ck_assert_int_eq(apikey_bearer("Bearer a b", t, sizeof t), -1);
	ck_assert_int_eq(apikey_bearer("Bearercm_x", t, sizeof t), -1);
	ck_assert_int_eq(apikey_bearer("Bearer 0123456789", t, 5), -1);
}
END_TEST

START_TEST(apikey_capability_names)
{
	ck_assert_uint_eq(apikey_cap_bit("send"), APIKEY_CAP_SEND);
	ck_assert_uint_eq(apikey_cap_bit("status"), APIKEY_CAP_STATUS);
	ck_assert_uint_eq(apikey_cap_bit("state_write"), APIKEY_CAP_STATE_WRITE);
	ck_assert_uint_eq(apikey_cap_bit("Send"), 0);
	ck_assert_str_eq(apikey_cap_name(APIKEY_CAP_READ), "read");
}
END_TEST

START_TEST(invite_signed_token_round_trip_and_tamper)
{
	unsigned char pk[32], sk[64];
	char pkhex[65], sig[129];
	crypto_sign_keypair(pk, sk);
	hex_encode(pk, 32, pkhex);
	struct invite iv = {.mesh_id = "M1",
	                    .mesh_slug = "demo",
	                    .broker_url = "ws://127.0.0.1:7900/ws",
	                    .mesh_root_key = "rk",
	                    .role = "member",
	                    .owner_pubkey = pkhex,
	                    .expires_at = 1900000000};
	char *str = invite_signed_string(&iv);
	char want[256];
	snprintf(want, sizeof want, "1|M1|demo|ws://127.0.0.1:7900/ws|1900000000|rk|member|%s", pkhex);
	ck_assert_str_eq(str, want);
	free(str);
	ck_assert_int_eq(invite_sign(&iv, sk, sig), 0);
	iv.signature = sig;
	cJSON *p = invite_payload_json(&iv);
	char *tok = invite_token_encode(p);
	ck_assert(strchr(tok, '=') == NULL && strchr(tok, '+') == NULL && strchr(tok, '/') == NULL);
	cJSON *back = invite_token_decode(tok);
	struct invite got;
	ck_assert_ptr_nonnull(back);
	ck_assert_int_eq(invite_fields(back, &got), 0);
	ck_assert_int_eq(invite_verify(&got), 1);
	ck_assert_str_eq(got.mesh_id, "M1");
	ck_assert(got.expires_at == 1900000000);
	got.role = "admin"; /* tampered */
	ck_assert_int_eq(invite_verify(&got), 0);
	cJSON_Delete(back);
	ck_assert_ptr_null(invite_token_decode("!!!"));
	ck_assert_ptr_null(invite_token_decode("WzFd")); /* [1]: not an object */
	cJSON_ReplaceItemInObject(p, "v", cJSON_CreateNumber(2));
	ck_assert_int_eq(invite_fields(p, &got), -1);
	cJSON_Delete(p);
	free(tok);
}
END_TEST

START_TEST(invite_durations)
{
	long long s;
	ck_assert_int_eq(invitecmd_parse_duration("24h", &s), 0);
	ck_assert(s == 86400);
	ck_assert_int_eq(invitecmd_parse_duration("90s", &s), 0);
	ck_assert(s == 90);
	ck_assert_int_eq(invitecmd_parse_duration("30m", &s), 0);
	ck_assert(s == 1800);
	ck_assert_int_eq(invitecmd_parse_duration("7d", &s), 0);
	ck_assert(s == 7 * 86400);
	ck_assert_int_eq(invitecmd_parse_duration("120", &s), 0);
	ck_assert(s == 120);
	ck_assert_int_eq(invitecmd_parse_duration("0h", &s), -1);
	ck_assert_int_eq(invitecmd_parse_duration("-1h", &s), -1);
	ck_assert_int_eq(invitecmd_parse_duration("1w", &s), -1);
	ck_assert_int_eq(invitecmd_parse_duration("367d", &s), -1);
	ck_assert_int_eq(invitecmd_parse_duration("h", &s), -1);
}
END_TEST

/* ------------------------------------------------------------ capacity */

static char cap_root[64], cap_rt[96];

static int cap_rm(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(p);
}

static struct presence_info cap_info(const char *mesh, const char *member)
{
	struct presence_info in;
	memset(&in, 0, sizeof in);
	str_copy(in.mesh_id, sizeof in.mesh_id, mesh);
	str_copy(in.member_id, sizeof in.member_id, member);
	str_copy(in.display_name, sizeof in.display_name, member);
	return in;
}

enum { CAP_NSLOTS = 32, CAP_MESH = 8, CAP_MEMBER = 2 };

/* A member that reconnects without pause (it holds its connection for a few
 * yields, then leaves and comes back at once), through the hello's own check
 * with the hello's caps (capped), or another mesh's peer moving three slots
 * around the table (not capped).  A capped churner exits 2 the first time it
 * is refused. */
static pid_t cap_churner(const char *mesh, const char *member, int capped)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid != 0)
		return pid;
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
		_exit(92);
	struct shm *c;
	char err[256];
	if (shm_open_table(cap_rt, CAP_NSLOTS, 0, &c, err, sizeof err) != 0)
		_exit(1);
	struct presence_info in = cap_info(mesh, member);
	for (;;) {
		uint32_t sl[3], g[3];
		int k = capped ? 1 : 3;
		for (int i = 0; i < k; i++) {
			int rc = capped ? (int)presence_claim_capped(c, &in, CAP_MESH, CAP_MEMBER, NULL, NULL, &sl[i], &g[i])
					: presence_claim(c, &in, &sl[i], &g[i]);
			if (rc != 0)
				_exit(2);
		}
		for (int y = 0; y < 4; y++)
			sched_yield();
		for (int i = 0; i < k; i++)
			presence_release(c, sl[i], g[i]);
	}
}

static enum presence_admit cap_claim(struct shm *s, const char *mesh, const char *member, long mesh_cap,
				     uint32_t *sl, uint32_t *g)
{
	struct presence_info in = cap_info(mesh, member);
	return presence_claim_capped(s, &in, mesh_cap, CAP_MEMBER, NULL, NULL, sl, g);
}

/* Mesh "m" (cap 8, 2 a member) holds 4 steady members, and 3 more members
 * (c0..c2) reconnect without pause, each holding at most one connection;
 * another mesh's peer moves slots about.  Then, every time:
 *  - s0's second connection is admitted: with the churners' at most 3 it
 *    makes at most 8 of 8 (and 2 of 2);
 *  - a churner is never refused: with the others' at most 2 and s0's second
 *    it too makes at most 8 of 8.  A reconnect seen twice by a count made
 *    beside it is exactly one too many here (issue 25);
 *  - s0's third connection is refused for the member cap (asked with a mesh
 *    cap it does not reach, so that the member cap is the reason);
 *  - mesh "full", at its cap of 3, refuses a fourth member for the mesh cap,
 *    and admits it as soon as one of the three leaves. */
START_TEST(capacity_refuses_exactly_at_the_cap_while_others_churn)
{
	umask(022);
	snprintf(cap_root, sizeof cap_root, "/tmp/test_auth.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(cap_root));
	snprintf(cap_rt, sizeof cap_rt, "%s/run", cap_root);
	struct shm *s = NULL;
	char err[256];
	ck_assert_msg(shm_open_table(cap_rt, CAP_NSLOTS, 0, &s, err, sizeof err) == 0, "%s", err);

	uint32_t sl[8], g[8], x, xg, y, yg;
	static const char *const steady[] = {"s0", "s1", "s2", "s3"};
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(cap_claim(s, "m", steady[i], CAP_MESH, &sl[i], &g[i]), ADMIT_OK);
	static const char *const full[] = {"f0", "f1", "f2"};
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(cap_claim(s, "full", full[i], 3, &sl[4 + i], &g[4 + i]), ADMIT_OK);
	pid_t kids[4];
	kids[0] = cap_churner("m", "c0", 1);
	kids[1] = cap_churner("m", "c1", 1);
	kids[2] = cap_churner("m", "c2", 1);
	kids[3] = cap_churner("other", "o", 0);

	int64_t end = mono_ms() + 400, cap = mono_ms() + 20000;
	long rounds = 0;
	while ((mono_ms() < end || rounds <= 20) && mono_ms() < cap) {
		/* s0: the second connection fits, the third is one over the member cap */
		ck_assert_int_eq(cap_claim(s, "m", "s0", CAP_MESH, &x, &xg), ADMIT_OK);
		enum presence_admit a = cap_claim(s, "m", "s0", 1000, &y, &yg);
		ck_assert_msg(a == ADMIT_MEMBER_FULL, "round %ld: s0's third connection: %d", rounds, a);
		presence_release(s, x, xg);
		/* "full": refused at the mesh cap, admitted one below it */
		a = cap_claim(s, "full", "f3", 3, &y, &yg);
		ck_assert_msg(a == ADMIT_MESH_FULL, "round %ld: a fourth in a full mesh: %d", rounds, a);
		presence_release(s, sl[4], g[4]);
		ck_assert_int_eq(cap_claim(s, "full", "f3", 3, &y, &yg), ADMIT_OK);
		presence_release(s, y, yg);
		ck_assert_int_eq(cap_claim(s, "full", "f0", 3, &sl[4], &g[4]), ADMIT_OK);
		/* counted under the admission lock: exact, never over the cap */
		ck_assert_int_eq(presence_admit_lock(s, "m", 5000), 0);
		int n = presence_foreach(s, "m", NULL, NULL);
		presence_admit_unlock(s, "m");
		ck_assert_msg(n >= 4 && n <= 7, "round %ld: mesh m holds %d", rounds, n);
		rounds++;
	}
	/* no churner was ever refused: each is still running */
	for (int i = 0; i < 4; i++)
		ck_assert_msg(waitpid(kids[i], NULL, WNOHANG) == 0, "churner %d stopped (refused?)", i);
	for (int i = 0; i < 4; i++)
		kill(kids[i], SIGKILL);
	for (int i = 0; i < 4; i++)
		waitpid(kids[i], NULL, 0);
	ck_assert_msg(rounds > 20, "only %ld rounds", rounds);
	shm_close(s);
	nftw(cap_root, cap_rm, 16, FTW_DEPTH | FTW_PHYS);
}
END_TEST

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	Suite *s = suite_create("auth");
	TCase *tc = tcase_create("auth");
	tcase_add_test(tc, source_loopback_addresses_are_loopback);
	tcase_add_test(tc, source_other_addresses_are_not_loopback);
	tcase_add_test(tc, hook_without_key_only_from_loopback_when_allowed_and_not_from_a_browser);
	tcase_add_test(tc, source_of_a_non_inet_socket_is_the_fallback);
	tcase_add_test(tc, apikey_secret_form_hash_and_prefix);
	tcase_add_test(tc, apikey_bearer_parse);
	tcase_add_test(tc, apikey_capability_names);
	tcase_add_test(tc, invite_signed_token_round_trip_and_tamper);
	tcase_add_test(tc, invite_durations);
	suite_add_tcase(s, tc);
	TCase *cap = tcase_create("capacity");
	tcase_set_timeout(cap, 60);
	tcase_add_test(cap, capacity_refuses_exactly_at_the_cap_while_others_churn);
	suite_add_tcase(s, cap);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
