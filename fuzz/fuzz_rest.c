/* fuzz_rest — libFuzzer target for the checks of the HTTP route table's rows
 * (worker/restcheck.c): the input is one HTTP request, parsed by the
 * worker's parser (worker/http.c); its path segments, its query string and
 * its body then go through every row's checker.  Whatever a check lets
 * through must satisfy what its handler relies on; a refusal must be a 4xx
 * with a code. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "worker/http.h"
#include "worker/msg.h"
#include "worker/msgcheck.h"
#include "worker/restcheck.h"

static void need(int ok)
{
	if (!ok)
		abort();
}

static int id_shaped_or_empty(const char *s)
{
	size_t n = strlen(s);
	return n <= RESTCHECK_ID_MAX &&
	       strspn(s, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-") == n;
}

static void refusal(int st, const char *error)
{
	need(st == 0 || (st >= 400 && st < 500 && error && *error));
}

static void check_rows(const struct http_req *req, size_t max)
{
	struct rest_args a;
	const char *err;
	int st;

	memset(&a, 0, sizeof a);
	err = NULL;
	st = restcheck_post(req, max, &a, &err);
	refusal(st, err);
	if (st == 0) {
		need(a.topic && *a.topic && topic_name_ok(a.topic) && a.nonce && *a.nonce && a.ct && *a.ct);
		need(strlen(a.nonce) + strlen(a.ct) <= max && a.prio >= 0 && a.prio < PRIORITY_COUNT);
		need((a.version == 1 || a.version == 2) && a.n_names >= 0 && a.n_names <= MENTION_MAX);
		need(msgcheck_json_nul_free(req->body, req->body_len));
		/* what PostgreSQL text takes */
		need(utf8_valid((const unsigned char *)a.nonce, strlen(a.nonce)) &&
		     utf8_valid((const unsigned char *)a.ct, strlen(a.ct)));
		for (int i = 0; i < a.n_names; i++)
			need(a.names[i][0] && strlen(a.names[i]) <= MENTION_NAME_MAX &&
			     utf8_valid((const unsigned char *)a.names[i], strlen(a.names[i])));
		need(!a.reply_to || (*a.reply_to && strlen(a.reply_to) <= RESTCHECK_REPLY_TO_MAX));
	}
	restcheck_args_free(&a);

	memset(&a, 0, sizeof a);
	err = NULL;
	st = restcheck_seal(req, max, &a, &err);
	refusal(st, err);
	if (st == 0)
		need(a.member && id_shaped_or_empty(a.member) && *a.member && strlen(a.member) < RESTCHECK_ID_MAX &&
		     a.enc && a.key_nonce);
	restcheck_args_free(&a);

	memset(&a, 0, sizeof a);
	err = NULL;
	st = restcheck_page(req, max, &a, &err);
	refusal(st, err);
	if (st == 0)
		need(a.limit >= 1 && a.limit <= RESTCHECK_PAGE_MAX && id_shaped_or_empty(a.before));
	restcheck_args_free(&a);

	memset(&a, 0, sizeof a);
	err = NULL;
	st = restcheck_since(req, max, &a, &err);
	refusal(st, err);
	restcheck_args_free(&a);

	memset(&a, 0, sizeof a);
	err = NULL;
	st = restcheck_stream(req, max, &a, &err);
	need(st == 0 && id_shaped_or_empty(a.last_event_id));
	restcheck_args_free(&a);
}

/* every segment of the path through the :name decoder */
static void check_segments(const char *path)
{
	for (const char *p = path; *p;) {
		if (*p == '/') {
			p++;
			continue;
		}
		size_t n = strcspn(p, "/");
		char name[RESTCHECK_REF_MAX + 1];
		if (restcheck_segment(p, n, name) == 0)
			need(*name && strlen(name) <= RESTCHECK_REF_MAX && !strchr(name, '/') &&
			     utf8_valid((const unsigned char *)name, strlen(name)));
		p += n;
	}
}

/* Input: 1 control byte (bit 0: a small MAX_MESSAGE_BYTES), then the request. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t max = (data[0] & 1) ? 32 : 65536;
	struct http_req req;
	struct http_parse hp;
	http_parse_init(&hp, &req, 65536);
	int done = 0;
	enum http_read_result r = http_parse_feed(&hp, data + 1, size - 1, &done);
	if (r == HTTP_READ_OK && done && http_parse_finish(&hp) == HTTP_READ_OK) {
		check_segments(req.path);
		char v[RESTCHECK_QUERY_MAX];
		static const char *const names[] = {"limit", "before", "since", "include", "unread"};
		for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
			if (restcheck_query(req.url, names[i], v, sizeof v) == 1) {
				need(strlen(v) < sizeof v);
				int64_t ms;
				(void)restcheck_time(v, &ms);
			}
		check_rows(&req, max);
	}
	http_req_free(&req);
	return 0;
}
