/* restcheck — the pure checks of the HTTP route table's rows (see
 * restcheck.h).  A POST messages body gets the socket's topic-send checks
 * (worker/msgcheck.c: bodyVersion, mentions) and the opaque-field rule of
 * both paths: any string, never one holding U+0000. */
#include "worker/restcheck.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/util.h"
#include "worker/msg.h"
#include "worker/msgcheck.h"

void restcheck_args_free(struct rest_args *a)
{
	mention_free(a->names, a->n_names);
	a->n_names = 0;
	cJSON_Delete(a->json);
	a->json = NULL;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* %-decode s[0..n) into out (cap bytes with its NUL), '+' as a space when
 * plus: the decoded length, or -1 */
static int pct_decode(const char *s, size_t n, char *out, size_t cap, int plus)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];
		if (c == '%') {
			if (i + 2 >= n)
				return -1;
			int h = hexval((unsigned char)s[i + 1]), l = hexval((unsigned char)s[i + 2]);
			if (h < 0 || l < 0)
				return -1;
			c = h * 16 + l;
			i += 2;
		} else if (c == '+' && plus) {
			c = ' ';
		}
		if (c == 0 || o + 1 >= cap)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = 0;
	return (int)o;
}

int restcheck_segment(const char *s, size_t n, char out[RESTCHECK_REF_MAX + 1])
{
	int len = pct_decode(s, n, out, RESTCHECK_REF_MAX + 1, 0);
	/* not UTF-8: PostgreSQL would refuse the parameter (a 503 for ever) */
	if (len <= 0 || strchr(out, '/') || !utf8_valid((const unsigned char *)out, (size_t)len))
		return -1;
	return 0;
}

int restcheck_query(const char *url, const char *name, char *out, size_t cap)
{
	const char *q = strchr(url, '?');
	if (!q)
		return 0;
	size_t nl = strlen(name);
	for (const char *p = q + 1; *p;) {
		size_t seg = strcspn(p, "&#");
		const char *eq = memchr(p, '=', seg);
		size_t kl = eq ? (size_t)(eq - p) : seg;
		if (kl == nl && memcmp(p, name, nl) == 0) {
			const char *v = eq ? eq + 1 : p + seg;
			return pct_decode(v, (size_t)(p + seg - v), out, cap, 1) < 0 ? -1 : 1;
		}
		if (p[seg] == '#' || !p[seg])
			break;
		p += seg + 1;
	}
	return 0;
}

static int digits(const char *s, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		*v = *v * 10 + (s[i] - '0');
	}
	return 0;
}

int restcheck_time(const char *s, int64_t *ms)
{
	size_t n = strlen(s);
	if (n > 0 && n <= 15 && strspn(s, "0123456789") == n) {
		*ms = strtoll(s, NULL, 10);
		return 0;
	}
	/* YYYY-MM-DDTHH:MM:SS */
	int y, mo, d, h, mi, se;
	if (n < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != ' ') || s[13] != ':' || s[16] != ':' ||
	    digits(s, 4, &y) || digits(s + 5, 2, &mo) || digits(s + 8, 2, &d) || digits(s + 11, 2, &h) ||
	    digits(s + 14, 2, &mi) || digits(s + 17, 2, &se))
		return -1;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
		return -1;
	const char *p = s + 19;
	int frac = 0, fd = 0;
	if (*p == '.') {
		p++;
		while (*p >= '0' && *p <= '9') {
			if (fd < 3) {
				frac = frac * 10 + (*p - '0');
				fd++;
			}
			p++;
		}
		if (p == s + 20)
			return -1;
		while (fd < 3) {
			frac *= 10;
			fd++;
		}
	}
	if (strcmp(p, "Z") != 0 && strcmp(p, "+00:00") != 0)
		return -1;
	struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = se};
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return -1;
	*ms = (int64_t)t * 1000 + frac;
	return 0;
}

/* a string field of the body: present, a string, non-empty */
static const char *field(const cJSON *b, const char *k)
{
	const char *s = msg_str(b, k);
	return s && *s ? s : NULL;
}

/* 1 when s is a broker-minted-looking id: 1-64 of [0-9A-Za-z_-] */
static int id_shaped(const char *s)
{
	size_t n = strlen(s);
	return n > 0 && n <= RESTCHECK_ID_MAX &&
	       strspn(s, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-") == n;
}

static int refuse(const char **error, int status, const char *code)
{
	*error = code;
	return status;
}

/* parse the body as a JSON object into a->json; NUL-free (nul_in_field) */
static int body_object(const struct http_req *req, struct rest_args *a, const char **error)
{
	const char *text = req->body ? req->body : "";
	if (!msgcheck_json_nul_free(text, req->body_len))
		return refuse(error, 400, RESTCHECK_NUL);
	a->json = cJSON_ParseWithLength(text, req->body_len);
	if (!cJSON_IsObject(a->json))
		return refuse(error, 400, "invalid_body");
	return 0;
}

int restcheck_post(const struct http_req *req, size_t max_bytes, struct rest_args *a, const char **error)
{
	int st = body_object(req, a, error);
	if (st)
		return st;
	const cJSON *b = a->json, *tv = cJSON_GetObjectItemCaseSensitive(b, "topic"),
		    *pv = cJSON_GetObjectItemCaseSensitive(b, "priority"),
		    *bv = cJSON_GetObjectItemCaseSensitive(b, "bodyVersion"),
		    *rv = cJSON_GetObjectItemCaseSensitive(b, "replyToId");
	const char *topic = cJSON_IsString(tv) ? tv->valuestring : NULL;
	if (topic && *topic == '#')
		topic++;
	if (!topic || !*topic || strlen(topic) > RESTCHECK_REF_MAX || !topic_name_ok(topic))
		return refuse(error, 400, "invalid_topic");
	a->topic = topic;
	a->nonce = field(b, "nonce");
	a->ct = field(b, "ciphertext");
	if (!a->nonce || !a->ct)
		return refuse(error, 400, "invalid_body");
	if (strlen(a->nonce) + strlen(a->ct) > max_bytes)
		return refuse(error, 413, "payload_too_large");
	/* opaque, but text: a string that is not UTF-8 (raw bytes, or a lone
	 * surrogate escape) cannot be stored, so it is refused before PostgreSQL */
	if (!utf8_valid((const unsigned char *)a->nonce, strlen(a->nonce)) ||
	    !utf8_valid((const unsigned char *)a->ct, strlen(a->ct)))
		return refuse(error, 400, RESTCHECK_UTF8);
	a->prio = pv && !cJSON_IsNull(pv) ? msg_priority_parse(cJSON_IsString(pv) ? pv->valuestring : NULL) : 1;
	if (a->prio < 0)
		return refuse(error, 400, "invalid_priority");
	if (bv && !cJSON_IsNull(bv) && (!cJSON_IsNumber(bv) || (bv->valuedouble != 1 && bv->valuedouble != 2)))
		return refuse(error, 400, "invalid_body_version");
	if (rv && !cJSON_IsNull(rv)) {
		if (!cJSON_IsString(rv) || !rv->valuestring[0] || strlen(rv->valuestring) > RESTCHECK_REPLY_TO_MAX ||
		    !utf8_valid((const unsigned char *)rv->valuestring, strlen(rv->valuestring)))
			return refuse(error, 400, "invalid_reply_to");
		a->reply_to = rv->valuestring;
	}
	/* the socket's own check of a topic send: bodyVersion and who it mentions */
	struct send_topic_fields tf;
	const char *detail;
	if (msgcheck_send_topic(b, a->ct, &tf, &detail) >= 0)
		return refuse(error, 400, "invalid_mentions");
	a->version = tf.version;
	a->n_names = tf.n;
	memcpy(a->names, tf.names, sizeof a->names);
	return 0;
}

int restcheck_seal(const struct http_req *req, size_t max_bytes, struct rest_args *a, const char **error)
{
	(void)max_bytes;
	int st = body_object(req, a, error);
	if (st)
		return st;
	a->member = field(a->json, "memberId");
	a->enc = msg_str(a->json, "encryptedKey");
	a->key_nonce = msg_str(a->json, "nonce");
	if (!a->member || !id_shaped(a->member) || strlen(a->member) >= RESTCHECK_ID_MAX || !a->enc || !a->key_nonce ||
	    topickey_parse(a->enc, a->key_nonce, &a->sealed) != 0)
		return refuse(error, 400, "invalid_body");
	return 0;
}

int restcheck_page(const struct http_req *req, size_t max_bytes, struct rest_args *a, const char **error)
{
	(void)max_bytes;
	char v[RESTCHECK_QUERY_MAX];
	a->limit = RESTCHECK_PAGE_DEFAULT;
	int r = restcheck_query(req->url, "limit", v, sizeof v);
	if (r < 0)
		return refuse(error, 400, "invalid_limit");
	if (r > 0) {
		size_t n = strlen(v);
		if (n == 0 || n > 3 || strspn(v, "0123456789") != n || atoi(v) < 1 || atoi(v) > RESTCHECK_PAGE_MAX)
			return refuse(error, 400, "invalid_limit");
		a->limit = atoi(v);
	}
	/* an unknown id is no cursor (§12.6): so is one that cannot be an id */
	if (restcheck_query(req->url, "before", v, sizeof v) > 0 && id_shaped(v))
		memcpy(a->before, v, strlen(v) + 1); /* id_shaped: at most 64 bytes */
	return 0;
}

int restcheck_since(const struct http_req *req, size_t max_bytes, struct rest_args *a, const char **error)
{
	(void)max_bytes;
	char v[RESTCHECK_QUERY_MAX];
	int r = restcheck_query(req->url, "since", v, sizeof v);
	if (r < 0 || (r > 0 && restcheck_time(v, &a->since_ms) != 0))
		return refuse(error, 400, "invalid_since");
	a->has_since = r > 0;
	a->include_all = restcheck_query(req->url, "include", v, sizeof v) > 0 && strcmp(v, "all") == 0;
	a->unread_only = restcheck_query(req->url, "unread", v, sizeof v) > 0 && (!strcmp(v, "1") || !strcmp(v, "true"));
	return 0;
}

int restcheck_stream(const struct http_req *req, size_t max_bytes, struct rest_args *a, const char **error)
{
	(void)max_bytes;
	(void)error;
	if (id_shaped(req->last_event_id))
		memcpy(a->last_event_id, req->last_event_id, strlen(req->last_event_id) + 1);
	return 0;
}
