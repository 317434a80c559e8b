/* topiccmd — meshctl's topic commands (see topiccmd.h).  Each is a small
 * state machine over peercmd's app runner: requests carry a _reqId, the
 * matching reply or error moves it on.  Output: one JSON object per line on
 * stdout (messages with "text" when they could be read); errors one line on
 * stderr.  The topic keys (one per key epoch) are taken, used and wiped by
 * cli/topicbody.c; the tail's re-seals are cli/topicapp.c's. */
#include "cli/topiccmd.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/keyfile.h"
#include "cli/peercmd.h"
#include "cli/topicapp.h"
#include "common/util.h"
#include "proto/topickey.h"

#define TOPIC_TIMEOUT_MS 10000

static void print_json(const cJSON *o)
{
	char *s = cJSON_PrintUnformatted(o);
	if (s) {
		puts(s);
		fflush(stdout);
	}
	free(s);
}

static void fail_with(struct tcmd *t, const cJSON *err)
{
	const char *code = peercmd_str(err, "code"), *msg = peercmd_str(err, "message");
	cli_err("topic %s: %s%s%s%s", t->topic ? t->topic : "", code ? code : "error", msg ? " (" : "", msg ? msg : "",
	        msg ? ")" : "");
	peercmd_app_finish(&t->app, CLI_EXIT_FAIL);
}

/* "text" on a message or push we can read: v2 under the key of its
 * keyEpoch, v1 base64 (then also "unencrypted":true: an old sender's body
 * in clear) — cli/topicbody.c */
static void add_text(struct tcmd *t, cJSON *m)
{
	enum topicbody_how how;
	char *text = topicbody_text(m, &t->key, &how);
	if (text) {
		cJSON_AddStringToObject(m, "text", text);
		if (how == TB_PLAIN)
			cJSON_AddBoolToObject(m, "unencrypted", 1);
		sodium_memzero(text, strlen(text));
	}
	free(text);
}

/* the reply to topic_key: 0 go on (key or none), -1 finished */
static int take_key(struct tcmd *t, const cJSON *j, const char *type)
{
	(void)type;
	const char *code = peercmd_str(j, "code");
	int r = topicbody_key_take(j, peercmd_app_peer(&t->app)->key.sk, &t->key);
	if (r == -2) {
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
	if (r == -1) {
		cli_err("topic %s: the sealed key does not open with this member's key (topic_key_discard drops it, "
		        "so that it can be sealed again)",
		        t->topic);
		peercmd_app_finish(&t->app, CLI_EXIT_FAIL);
		return -1;
	}
	if (t->key.topic_id[0])
		snprintf(t->topic_id, sizeof t->topic_id, "%s", t->key.topic_id);
	return 0;
}

static void do_post(struct tcmd *t)
{
	if (topicbody_stale(&t->key)) {
		/* a member left since: its old key must not carry anything new */
		cli_err("topic %s: the key moved on to epoch %d and no copy of it is sealed for you yet (a lead's "
		        "meshctl topic tail seals it)",
		        t->topic, t->key.ring.current_epoch);
		peercmd_app_finish(&t->app, CLI_EXIT_FAIL);
		return;
	}
	topicapp_rid(t->rid_main, sizeof t->rid_main);
	cJSON *mentions = topicbody_mentions(t->text); /* the broker's mention notifications (v2 hides the text) */
	cJSON *o = topicbody_post_frame(&t->key, t->topic, t->text, t->priority, t->rid_main, mentions);
	cJSON_Delete(mentions);
	if (!o || peercmd_app_send(&t->app, o) != 0) {
		cli_err(o ? "could not queue the message" : "cannot encrypt the message");
		peercmd_app_finish(&t->app, CLI_EXIT_FAIL);
	}
	cJSON_Delete(o);
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
		topicapp_send(t, "topic_create", t->rid_main, sizeof t->rid_main, o);
		break;
	}
	case OP_LIST:
		topicapp_send(t, "topic_list", t->rid_main, sizeof t->rid_main, NULL);
		break;
	case OP_JOIN:
	case OP_LEAVE:
		o = cJSON_CreateObject();
		if (t->op == OP_JOIN && t->role)
			cJSON_AddStringToObject(o, "role", t->role);
		topicapp_send(t, t->op == OP_JOIN ? "topic_join" : "topic_leave", t->rid_main, sizeof t->rid_main, o);
		/* no reply on success: a later reply means it is done */
		topicapp_send(t, "topic_list", t->rid_after, sizeof t->rid_after, NULL);
		break;
	case OP_MEMBERS:
		topicapp_send(t, "topic_members", t->rid_main, sizeof t->rid_main, NULL);
		break;
	case OP_HISTORY:
	case OP_POST:
	case OP_TAIL:
		topicapp_send(t, "topic_key", t->rid_key, sizeof t->rid_key, NULL);
		t->key_asked = 1;
		if (t->op == OP_TAIL) /* the topic id, whether or not we hold the key */
			topicapp_send(t, "topic_members", t->rid_after, sizeof t->rid_after, NULL);
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
		/* §12.2: the id is topicId ("topic" is the name; an older broker
		 * sent the id there) */
		const char *topic = peercmd_str(j, "topicId") ? peercmd_str(j, "topicId") : peercmd_str(j, "topic");
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
			topicapp_send(t, "topic_history", t->rid_main, sizeof t->rid_main, o);
		}
		return;
	}
	if (t->rid_fresh[0] && !strcmp(rid, t->rid_fresh)) {
		topicapp_took_epoch(t, j, type);
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
			topicapp_pending(t, j);
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

static const struct peercmd_app_ops oneshot_ops = {.caps = {"client_ack"}, .ready = on_ready, .frame = on_frame};
static const struct peercmd_app_ops tail_ops = {.long_running = 1, .ready = on_ready, .frame = on_frame, .tick = topicapp_tick};

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
	topicbody_key_wipe(&t->key); /* every key held, and a fresh one */
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
