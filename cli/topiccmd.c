/* topiccmd — meshctl's topic commands (see topiccmd.h).  Each is a small
 * state machine over peercmd's app runner: requests carry a _reqId, the
 * matching reply or error moves it on.  Output: one JSON object per line on
 * stdout (messages with "text" when they could be read); errors one line on
 * stderr.  The topic keys are wiped when the command ends.
 *
 * Key epochs (docs/protocol.md §5.1, issue 22): topic_key answers every copy
 * the member holds, one per epoch; history is read with the key of each
 * message's keyEpoch, a post needs the current epoch's key.  A lead's `topic
 * tail` starts an epoch nobody holds yet (after a member left or was
 * removed): a fresh key, sealed to itself first, then to the others. */
#include "cli/topiccmd.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/keyfile.h"
#include "cli/peercmd.h"
#include "common/util.h"
#include "proto/box.h"
#include "proto/topickey.h"

#define TOPIC_TIMEOUT_MS 10000
#define TAIL_RESEAL_MS   2000 /* how often tail asks for pending seals */
#define TOPIC_KEYS_MAX   64   /* epochs kept for reading (the newest ones) */

enum op { OP_CREATE, OP_LIST, OP_JOIN, OP_LEAVE, OP_MEMBERS, OP_HISTORY, OP_POST, OP_TAIL };

struct tcmd {
	struct peercmd_app app;
	enum op op;
	const char *topic, *text, *description, *visibility, *role, *priority;
	long limit;
	char rid_main[24], rid_key[24], rid_after[24];
	unsigned char key[TOPICKEY_KEY_BYTES]; /* the newest epoch's key held, key_epoch */
	int have_key, unencrypted, key_asked;
	int key_epoch, current_epoch, is_lead;
	struct {
		int epoch;
		unsigned char key[TOPICKEY_KEY_BYTES];
	} keys[TOPIC_KEYS_MAX]; /* every copy held, for reading */
	int n_keys;
	unsigned char fresh[TOPICKEY_KEY_BYTES]; /* tail, a lead: the key of the epoch it starts */
	int fresh_epoch;
	char rid_fresh[24];
	char topic_id[128];
	int64_t next_tick;
};

static void rid_new(char *rid, size_t cap)
{
	char id[ID_LEN + 1];
	id_new(id);
	snprintf(rid, cap, "%.16s", id);
}

static void print_json(const cJSON *o)
{
	char *s = cJSON_PrintUnformatted(o);
	if (s) {
		puts(s);
		fflush(stdout);
	}
	free(s);
}

static void send_req(struct tcmd *t, const char *type, char *rid, size_t cap, cJSON *extra)
{
	cJSON *o = extra ? extra : cJSON_CreateObject();
	rid_new(rid, cap);
	cJSON_AddStringToObject(o, "type", type);
	cJSON_AddStringToObject(o, "_reqId", rid);
	if (t->topic && strcmp(type, "topic_create") && strcmp(type, "topic_list") && !cJSON_HasObjectItem(o, "topic"))
		cJSON_AddStringToObject(o, "topic", t->topic);
	if (peercmd_app_send(&t->app, o) != 0) {
		cli_err("could not queue a request");
		peercmd_app_finish(&t->app, CLI_EXIT_FAIL);
	}
	cJSON_Delete(o);
}

static void fail_with(struct tcmd *t, const cJSON *err)
{
	const char *code = peercmd_str(err, "code"), *msg = peercmd_str(err, "message");
	cli_err("topic %s: %s%s%s%s", t->topic ? t->topic : "", code ? code : "error", msg ? " (" : "", msg ? msg : "",
	        msg ? ")" : "");
	peercmd_app_finish(&t->app, CLI_EXIT_FAIL);
}

/* "text" on a message or push we can read: v2 under the key, v1 base64 */
static void add_text(struct tcmd *t, cJSON *m)
{
	const char *nonce = peercmd_str(m, "nonce"), *ct = peercmd_str(m, "ciphertext");
	const cJSON *bv = cJSON_GetObjectItemCaseSensitive(m, "bodyVersion");
	unsigned char *plain = NULL;
	size_t n = 0;
	int ok;
	if (!ct)
		return;
	if (cJSON_IsNumber(bv) && bv->valuedouble == 2) {
		const cJSON *ev = cJSON_GetObjectItemCaseSensitive(m, "keyEpoch");
		int want = cJSON_IsNumber(ev) ? (int)ev->valuedouble : 0;
		ok = 0;
		/* the key of the message's epoch first, then any other held */
		for (int pass = 0; pass < 2 && !ok && nonce; pass++)
			for (int i = 0; i < t->n_keys && !ok; i++)
				if ((t->keys[i].epoch == want) == (pass == 0))
					ok = topickey_decrypt_body(t->keys[i].key, nonce, ct, &plain, &n) == 0;
	} else
		ok = box_b64_decode(ct, &plain, &n) == 0;
	if (ok && utf8_valid(plain, n))
		cJSON_AddStringToObject(m, "text", (const char *)plain);
	free(plain);
}

/* the reply to topic_key: 0 go on (key or none), -1 finished */
static int take_key(struct tcmd *t, const cJSON *j, const char *type)
{
	if (!strcmp(type, "error")) {
		const char *code = peercmd_str(j, "code");
		if (code && !strcmp(code, "topic_unencrypted")) {
			t->unencrypted = 1;
			return 0;
		}
		if (code && !strcmp(code, "key_not_sealed_for_member") && t->op != OP_POST)
			return 0; /* v1 bodies still read; tail asks again */
		if (code && !strcmp(code, "key_not_sealed_for_member"))
			cli_err("topic %s: no sealed copy of the key for you yet: a member who holds it must "
			        "re-seal it (meshctl topic tail %s)",
			        t->topic, t->topic);
		else
			fail_with(t, j);
		peercmd_app_finish(&t->app, CLI_EXIT_FAIL);
		return -1;
	}
	const struct keyfile_peer *me = peercmd_app_peer(&t->app);
	if (topickey_open(peercmd_str(j, "encryptedKey"), peercmd_str(j, "nonce"), me->key.sk, t->key) != 0) {
		cli_err("topic %s: the sealed key does not open with this member's key (topic_key_discard drops it, "
		        "so that it can be sealed again)",
		        t->topic);
		peercmd_app_finish(&t->app, CLI_EXIT_FAIL);
		return -1;
	}
	t->have_key = 1;
	const cJSON *ep = cJSON_GetObjectItemCaseSensitive(j, "epoch"),
		    *cur = cJSON_GetObjectItemCaseSensitive(j, "currentEpoch"), *x;
	t->key_epoch = cJSON_IsNumber(ep) ? (int)ep->valuedouble : 1;
	t->current_epoch = cJSON_IsNumber(cur) ? (int)cur->valuedouble : t->key_epoch;
	/* every copy held (a broker before key epochs sends the one only) */
	t->n_keys = 0;
	cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(j, "keys"))
	{
		const cJSON *xe = cJSON_GetObjectItemCaseSensitive(x, "epoch");
		if (t->n_keys < TOPIC_KEYS_MAX && cJSON_IsNumber(xe) &&
		    topickey_open(peercmd_str(x, "encryptedKey"), peercmd_str(x, "nonce"), me->key.sk,
		                  t->keys[t->n_keys].key) == 0)
			t->keys[t->n_keys++].epoch = (int)xe->valuedouble;
	}
	if (t->n_keys == 0) {
		memcpy(t->keys[0].key, t->key, sizeof t->key);
		t->keys[0].epoch = t->key_epoch;
		t->n_keys = 1;
	}
	const char *id = peercmd_str(j, "topicId");
	if (id)
		snprintf(t->topic_id, sizeof t->topic_id, "%s", id);
	return 0;
}

static void do_post(struct tcmd *t)
{
	char *nonce = NULL, *ct = NULL;
	int version = 1;
	if (t->have_key && t->key_epoch < t->current_epoch) {
		/* a member left since: its old key must not carry anything new */
		cli_err("topic %s: the key moved on to epoch %d and no copy of it is sealed for you yet (a lead's "
		        "meshctl topic tail seals it)",
		        t->topic, t->current_epoch);
		peercmd_app_finish(&t->app, CLI_EXIT_FAIL);
		return;
	}
	if (t->have_key) {
		version = 2;
		if (topickey_encrypt_body(t->key, (const unsigned char *)t->text, strlen(t->text), &nonce, &ct) != 0) {
			cli_err("cannot encrypt the message");
			peercmd_app_finish(&t->app, CLI_EXIT_FAIL);
			return;
		}
	} else {
		unsigned char rnd[24];
		randombytes_buf(rnd, sizeof rnd);
		nonce = box_b64_encode(rnd, sizeof rnd);
		ct = box_b64_encode((const unsigned char *)t->text, strlen(t->text));
	}
	char target[160];
	snprintf(target, sizeof target, "#%s", t->topic_id[0] ? t->topic_id : t->topic);
	rid_new(t->rid_main, sizeof t->rid_main);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "send");
	cJSON_AddStringToObject(o, "id", t->rid_main);
	cJSON_AddStringToObject(o, "targetSpec", target);
	cJSON_AddStringToObject(o, "priority", t->priority);
	cJSON_AddStringToObject(o, "nonce", nonce ? nonce : "");
	cJSON_AddStringToObject(o, "ciphertext", ct ? ct : "");
	cJSON_AddNumberToObject(o, "bodyVersion", version);
	if (!nonce || !ct || peercmd_app_send(&t->app, o) != 0) {
		cli_err("could not queue the message");
		peercmd_app_finish(&t->app, CLI_EXIT_FAIL);
	}
	cJSON_Delete(o);
	free(nonce);
	free(ct);
}

/* tail: seal our key for each pending member */
static void reseal(struct tcmd *t, const cJSON *pending)
{
	const cJSON *m;
	cJSON_ArrayForEach(m, pending)
	{
		const char *id = peercmd_str(m, "memberId"), *pk = peercmd_str(m, "pubkey");
		unsigned char edpk[32];
		char *enc = NULL, *nonce = NULL, sender[65];
		if (!id || !pk || !is_hex(pk, 64) || hex_decode(pk, edpk, sizeof edpk) != 0 ||
		    topickey_seal(t->key, edpk, &enc, &nonce, sender) != 0) {
			cli_err("topic %s: cannot seal for member %s", t->topic, id ? id : "?");
			continue;
		}
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "memberId", id);
		cJSON_AddStringToObject(o, "encryptedKey", enc);
		cJSON_AddStringToObject(o, "nonce", nonce);
		char rid[24];
		send_req(t, "topic_seal", rid, sizeof rid, o);
		free(enc);
		free(nonce);
	}
}

/* tail, a lead: the current epoch has no copy yet (a member left): a fresh
 * key, sealed to ourselves first (the broker lets a lead seal an epoch's
 * first copy only); the others follow at the next look at the pending seals */
static void start_epoch(struct tcmd *t, int epoch)
{
	const struct keyfile_peer *me = peercmd_app_peer(&t->app);
	char *enc = NULL, *nonce = NULL, sender[65];
	randombytes_buf(t->fresh, sizeof t->fresh);
	if (topickey_seal(t->fresh, me->key.pk, &enc, &nonce, sender) != 0) {
		sodium_memzero(t->fresh, sizeof t->fresh);
		cli_err("topic %s: cannot seal a new key", t->topic);
		return;
	}
	t->fresh_epoch = epoch;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "memberId", me->member_id);
	cJSON_AddStringToObject(o, "encryptedKey", enc);
	cJSON_AddStringToObject(o, "nonce", nonce);
	send_req(t, "topic_seal", t->rid_fresh, sizeof t->rid_fresh, o);
	free(enc);
	free(nonce);
}

/* the answer to our own first seal of an epoch: the fresh key is ours, or
 * another lead was first (then its copy comes to us like any other) */
static void took_epoch(struct tcmd *t, const cJSON *j, const char *type)
{
	if (!strcmp(type, "topic_sealed") && t->n_keys < TOPIC_KEYS_MAX) {
		memmove(&t->keys[1], &t->keys[0], (size_t)t->n_keys * sizeof t->keys[0]);
		memcpy(t->keys[0].key, t->fresh, sizeof t->fresh);
		t->keys[0].epoch = t->fresh_epoch;
		t->n_keys++;
		memcpy(t->key, t->fresh, sizeof t->fresh);
		t->key_epoch = t->current_epoch = t->fresh_epoch;
		t->have_key = 1;
		fprintf(stderr, "meshctl: started key epoch %d of topic %s\n", t->fresh_epoch, t->topic);
		t->next_tick = 0; /* seal it for the others now */
	} else {
		const char *msg = peercmd_str(j, "message");
		cli_err("topic %s: could not start key epoch %d: %s", t->topic, t->fresh_epoch, msg ? msg : type);
	}
	sodium_memzero(t->fresh, sizeof t->fresh);
	t->fresh_epoch = 0;
	t->rid_fresh[0] = 0;
}

/* tail: the pending seals of the current epoch; ours to seal when we hold
 * its key, ours to start when we lead and nobody holds it */
static void on_pending(struct tcmd *t, const cJSON *j)
{
	const cJSON *ep = cJSON_GetObjectItemCaseSensitive(j, "epoch");
	const cJSON *pending = cJSON_GetObjectItemCaseSensitive(j, "pending"), *m;
	int epoch = cJSON_IsNumber(ep) ? (int)ep->valuedouble : t->key_epoch;
	if (epoch > t->current_epoch)
		t->current_epoch = epoch;
	if (t->have_key && t->key_epoch >= epoch) {
		reseal(t, pending);
		return;
	}
	const struct keyfile_peer *me = peercmd_app_peer(&t->app);
	int me_pending = 0;
	cJSON_ArrayForEach(m, pending)
	{
		const char *id = peercmd_str(m, "memberId");
		if (id && !strcmp(id, me->member_id))
			me_pending = 1;
	}
	if (t->is_lead && me_pending && !t->rid_fresh[0])
		start_epoch(t, epoch);
}

static void on_ready(struct peercmd_app *a)
{
	struct tcmd *t = a->arg;
	cJSON *o = NULL;
	switch (t->op) {
	case OP_CREATE: {
		const struct keyfile_peer *me = peercmd_app_peer(a);
		unsigned char key[TOPICKEY_KEY_BYTES];
		char *enc = NULL, *nonce = NULL, sender[65];
		randombytes_buf(key, sizeof key);
		int ok = topickey_seal(key, me->key.pk, &enc, &nonce, sender) == 0;
		sodium_memzero(key, sizeof key);
		if (!ok) {
			cli_err("cannot seal the new topic key");
			peercmd_app_finish(a, CLI_EXIT_FAIL);
			return;
		}
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", t->topic);
		if (t->description)
			cJSON_AddStringToObject(o, "description", t->description);
		cJSON_AddStringToObject(o, "visibility", t->visibility ? t->visibility : "public");
		cJSON_AddStringToObject(o, "encryptedKey", enc);
		cJSON_AddStringToObject(o, "nonce", nonce);
		free(enc);
		free(nonce);
		send_req(t, "topic_create", t->rid_main, sizeof t->rid_main, o);
		break;
	}
	case OP_LIST:
		send_req(t, "topic_list", t->rid_main, sizeof t->rid_main, NULL);
		break;
	case OP_JOIN:
	case OP_LEAVE:
		o = cJSON_CreateObject();
		if (t->op == OP_JOIN && t->role)
			cJSON_AddStringToObject(o, "role", t->role);
		send_req(t, t->op == OP_JOIN ? "topic_join" : "topic_leave", t->rid_main, sizeof t->rid_main, o);
		/* no reply on success: a later reply means it is done */
		send_req(t, "topic_list", t->rid_after, sizeof t->rid_after, NULL);
		break;
	case OP_MEMBERS:
		send_req(t, "topic_members", t->rid_main, sizeof t->rid_main, NULL);
		break;
	case OP_HISTORY:
	case OP_POST:
	case OP_TAIL:
		send_req(t, "topic_key", t->rid_key, sizeof t->rid_key, NULL);
		t->key_asked = 1;
		if (t->op == OP_TAIL) /* the topic id, whether or not we hold the key */
			send_req(t, "topic_members", t->rid_after, sizeof t->rid_after, NULL);
		break;
	}
}

static void print_list(const cJSON *arr)
{
	const cJSON *x;
	cJSON_ArrayForEach(x, arr) print_json(x);
}

static void on_frame(struct peercmd_app *a, cJSON *j, const char *type, const char *msg, size_t len)
{
	(void)msg;
	(void)len;
	struct tcmd *t = a->arg;
	if (!type)
		return;
	const char *rid = peercmd_str(j, !strcmp(type, "error") || !strcmp(type, "ack") ? "id" : "_reqId");
	if (!strcmp(type, "push")) {
		const char *topic = peercmd_str(j, "topic");
		if (t->op == OP_TAIL && topic && t->topic_id[0] && !strcmp(topic, t->topic_id)) {
			add_text(t, j);
			print_json(j);
		}
		return;
	}
	if (!rid)
		return;
	if (!strcmp(rid, t->rid_key)) {
		t->key_asked = 0;
		if (take_key(t, j, type) != 0)
			return;
		if (t->op == OP_POST) {
			do_post(t);
		} else if (t->op == OP_HISTORY) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddNumberToObject(o, "limit", (double)t->limit);
			send_req(t, "topic_history", t->rid_main, sizeof t->rid_main, o);
		}
		return;
	}
	if (t->rid_fresh[0] && !strcmp(rid, t->rid_fresh)) {
		took_epoch(t, j, type);
		return;
	}
	if (!strcmp(rid, t->rid_after) && t->op == OP_TAIL) {
		if (!strcmp(type, "error")) {
			fail_with(t, j);
			return;
		}
		const char *id = peercmd_str(j, "topic");
		if (id)
			snprintf(t->topic_id, sizeof t->topic_id, "%s", id);
		/* our role: a lead starts new key epochs */
		const struct keyfile_peer *me = peercmd_app_peer(a);
		const cJSON *m;
		cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(j, "members"))
		{
			const char *mid = peercmd_str(m, "memberId"), *role = peercmd_str(m, "role");
			if (mid && role && !strcmp(mid, me->member_id))
				t->is_lead = !strcmp(role, "lead");
		}
		return;
	}
	if (!strcmp(rid, t->rid_after)) { /* join/leave went through */
		peercmd_app_finish(a, 0);
		return;
	}
	if (!strcmp(type, "error")) {
		if (!strcmp(rid, t->rid_main))
			fail_with(t, j);
		else if (t->op == OP_TAIL) /* a re-seal someone else did first, say */
			cli_err("topic %s: %s", t->topic, peercmd_str(j, "message") ? peercmd_str(j, "message") : "error");
		return;
	}
	if (t->op == OP_TAIL) {
		if (!strcmp(type, "topic_pending_seals_response"))
			on_pending(t, j);
		else if (!strcmp(type, "topic_sealed"))
			fprintf(stderr, "meshctl: sealed the topic key for member %s\n", peercmd_str(j, "memberId"));
		return;
	}
	if (strcmp(rid, t->rid_main) != 0)
		return;
	if (!strcmp(type, "topic_created")) {
		cJSON *topic = cJSON_DetachItemFromObjectCaseSensitive(j, "topic");
		if (topic) {
			cJSON_AddBoolToObject(topic, "created",
			                      cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "created")));
			print_json(topic);
		}
		cJSON_Delete(topic);
	} else if (!strcmp(type, "topic_list_response")) {
		print_list(cJSON_GetObjectItemCaseSensitive(j, "topics"));
	} else if (!strcmp(type, "topic_members_response")) {
		print_list(cJSON_GetObjectItemCaseSensitive(j, "members"));
	} else if (!strcmp(type, "topic_history_response")) {
		cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
		for (int i = cJSON_GetArraySize(msgs) - 1; i >= 0; i--) { /* oldest first */
			cJSON *m = cJSON_GetArrayItem(msgs, i);
			add_text(t, m);
			print_json(m);
		}
	} else if (!strcmp(type, "ack")) {
		print_json(j);
		if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "queued"))) {
			cli_err("post refused: %s", peercmd_str(j, "error") ? peercmd_str(j, "error") : "not queued");
			peercmd_app_finish(a, CLI_EXIT_FAIL);
			return;
		}
	} else {
		return;
	}
	peercmd_app_finish(a, 0);
}

static void on_tick(struct peercmd_app *a, int64_t now)
{
	struct tcmd *t = a->arg;
	if (t->op != OP_TAIL || now < t->next_tick)
		return;
	t->next_tick = now + TAIL_RESEAL_MS;
	if (t->unencrypted)
		return;
	if (t->have_key || t->is_lead) {
		char rid[24];
		send_req(t, "topic_pending_seals", rid, sizeof rid, NULL);
	}
	/* no key, or not the current epoch's: someone may have sealed it to us */
	if ((!t->have_key || t->key_epoch < t->current_epoch) && !t->key_asked && !t->rid_fresh[0]) {
		send_req(t, "topic_key", t->rid_key, sizeof t->rid_key, NULL);
		t->key_asked = 1;
	}
}

static const struct peercmd_app_ops oneshot_ops = {.caps = {"client_ack"}, .ready = on_ready, .frame = on_frame};
static const struct peercmd_app_ops tail_ops = {.long_running = 1, .ready = on_ready, .frame = on_frame, .tick = on_tick};

/* parse, check the positional count, run */
static int topiccmd_run(enum op op, int argc, char **argv, int npos, const char *usage)
{
	static const struct cli_optspec spec[] = {{"timeout", 1},     {"pid", 1},        {"cwd", 1},  {"session-id", 1},
	                                          {"description", 1}, {"visibility", 1}, {"role", 1}, {"limit", 1},
	                                          {"priority", 1},    {NULL, 0}};
	struct cli_opts o;
	struct tcmd *t = calloc(1, sizeof *t);
	int64_t timeout_ms;
	if (!t)
		return cli_err("out of memory");
	int rc = CLI_EXIT_USAGE;
	if (cli_opts_parse(argc, argv, spec, &o) != 0)
		goto out;
	if (o.npos != npos) {
		rc = cli_usage_err("usage: meshctl %s", usage);
		goto out;
	}
	t->op = op;
	t->topic = npos > 0 ? o.pos[0] : NULL;
	t->text = npos > 1 ? o.pos[1] : NULL;
	t->description = cli_opt(&o, "description");
	t->visibility = cli_opt(&o, "visibility");
	t->role = cli_opt(&o, "role");
	t->priority = cli_opt(&o, "priority") ? cli_opt(&o, "priority") : "next";
	t->limit = 50;
	const char *bad = NULL;
	if (t->topic && (!*t->topic || strlen(t->topic) > 128))
		bad = "TOPIC must be a topic id or name";
	else if (cli_opt(&o, "limit") && (cli_parse_uint(cli_opt(&o, "limit"), 200, &t->limit) != 0 || t->limit < 1))
		bad = "--limit must be 1..200";
	else if (strcmp(t->priority, "now") && strcmp(t->priority, "next") && strcmp(t->priority, "low"))
		bad = "--priority must be now, next or low";
	else if (t->text && !utf8_valid((const unsigned char *)t->text, strlen(t->text)))
		bad = "TEXT must be UTF-8";
	else if (peercmd_parse_timeout(&o, op == OP_TAIL ? 0 : TOPIC_TIMEOUT_MS, &timeout_ms) != 0)
		bad = "--timeout must be a positive number of seconds";
	if (bad) {
		rc = cli_usage_err("%s", bad);
		goto out;
	}
	t->app.ops = op == OP_TAIL ? &tail_ops : &oneshot_ops;
	t->app.arg = t;
	rc = peercmd_app_run(&t->app, &o, timeout_ms);
out:
	sodium_memzero(t, sizeof *t); /* every key held, and the fresh one */
	free(t);
	return rc;
}

int topiccmd_create(int argc, char **argv)
{
	return topiccmd_run(OP_CREATE, argc, argv, 1,
	                    "topic create NAME [--description TEXT] [--visibility public|private]");
}
int topiccmd_list(int argc, char **argv)
{
	return topiccmd_run(OP_LIST, argc, argv, 0, "topic list");
}
int topiccmd_join(int argc, char **argv)
{
	return topiccmd_run(OP_JOIN, argc, argv, 1, "topic join TOPIC [--role member|observer|lead]");
}
int topiccmd_leave(int argc, char **argv)
{
	return topiccmd_run(OP_LEAVE, argc, argv, 1, "topic leave TOPIC");
}
int topiccmd_members(int argc, char **argv)
{
	return topiccmd_run(OP_MEMBERS, argc, argv, 1, "topic members TOPIC");
}
int topiccmd_history(int argc, char **argv)
{
	return topiccmd_run(OP_HISTORY, argc, argv, 1, "topic history TOPIC [--limit N]");
}
int topiccmd_post(int argc, char **argv)
{
	return topiccmd_run(OP_POST, argc, argv, 2, "topic post TOPIC TEXT [--priority now|next|low]");
}
int topiccmd_tail(int argc, char **argv)
{
	return topiccmd_run(OP_TAIL, argc, argv, 1, "topic tail TOPIC [--timeout SECONDS]");
}
