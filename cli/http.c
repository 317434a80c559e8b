/* http — URLs, TLS settings, failure lines and bounded requests on libcurl
 * (see http.h).  No HTTP is written or parsed here by hand: curl does it. */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "common/util.h"

static const char *http_cafile; /* --cacert, or NULL */

void http_set_cafile(const char *file)
{
	http_cafile = file && *file ? file : NULL;
}

static const char *http_ca(void)
{
	if (http_cafile)
		return http_cafile;
	const char *e = getenv("MESHBROKER_CA");
	return e && *e ? e : NULL;
}

/* the schemes a broker URL may have, and what curl connects with */
static const struct {
	const char *scheme, *curl_scheme;
	int tls;
} http_schemes[] = {
	{"ws", "http", 0},
	{"wss", "https", 1},
	{"http", "http", 0},
	{"https", "https", 1},
};

/* copy a CURLU part into out; 1 when present, 0 when absent, -1 too long */
static int http_part(CURLU *h, CURLUPart what, char *out, size_t cap)
{
	char *v = NULL;
	out[0] = 0;
	if (curl_url_get(h, what, &v, 0) != CURLUE_OK || !v)
		return 0;
	int r = str_copy(out, cap, v) == 0 ? 1 : -1;
	curl_free(v);
	return r;
}

int http_target_parse(const char *url, enum http_path how, const char *path, struct http_target *t,
		      char *err, size_t errlen)
{
	char scheme[16], port[8], upath[2048], query[2048], user[8];
	int rc = -1;
	memset(t, 0, sizeof *t);
	CURLU *h = curl_url();
	if (!h) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	CURLUcode uc = curl_url_set(h, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
	if (uc != CURLUE_OK) {
		snprintf(err, errlen, "bad URL \"%.80s\": %s", url, curl_url_strerror(uc));
		goto out;
	}
	size_t i = 0, n = sizeof http_schemes / sizeof http_schemes[0];
	if (http_part(h, CURLUPART_SCHEME, scheme, sizeof scheme) == 1)
		for (; i < n && strcasecmp(scheme, http_schemes[i].scheme) != 0; i++)
			;
	if (i == n) {
		snprintf(err, errlen, "bad URL \"%.80s\": want ws://, wss://, http:// or https://", url);
		goto out;
	}
	if (http_part(h, CURLUPART_USER, user, sizeof user) != 0) {
		snprintf(err, errlen, "bad URL \"%.80s\": no user name or password in a broker URL", url);
		goto out;
	}
	int has_port = http_part(h, CURLUPART_PORT, port, sizeof port);
	if (http_part(h, CURLUPART_HOST, t->host, sizeof t->host) != 1 || has_port < 0 ||
	    http_part(h, CURLUPART_PATH, upath, sizeof upath) < 0 ||
	    http_part(h, CURLUPART_QUERY, query, sizeof query) < 0) {
		snprintf(err, errlen, "bad URL \"%.80s\": host, path or query missing or too long", url);
		goto out;
	}
	if (snprintf(t->authority, sizeof t->authority, "%s%s%s", t->host, has_port ? ":" : "", port) >=
	    (int)sizeof t->authority) {
		snprintf(err, errlen, "bad URL \"%.80s\": host too long", url);
		goto out;
	}
	t->tls = http_schemes[i].tls;
	if (how != HTTP_PATH_KEEP) {
		/* a base path is a prefix: its trailing slashes go */
		size_t plen = strlen(upath);
		while (plen > 0 && upath[plen - 1] == '/')
			upath[--plen] = 0;
		if (how == HTTP_PATH_ROOT)
			upath[0] = 0;
		if (strlen(upath) + strlen(path) >= sizeof upath) {
			snprintf(err, errlen, "bad URL \"%.80s\": path too long", url);
			goto out;
		}
		strcat(upath, path);
		query[0] = 0;
		if (curl_url_set(h, CURLUPART_PATH, upath, 0) != CURLUE_OK ||
		    curl_url_set(h, CURLUPART_QUERY, NULL, 0) != CURLUE_OK) {
			snprintf(err, errlen, "bad URL \"%.80s\": bad path", url);
			goto out;
		}
	}
	curl_url_set(h, CURLUPART_FRAGMENT, NULL, 0);
	if (snprintf(t->target, sizeof t->target, "%s%s%s", upath[0] ? upath : "/", query[0] ? "?" : "", query) >=
	    (int)sizeof t->target) {
		snprintf(err, errlen, "bad URL \"%.80s\": path and query too long", url);
		goto out;
	}
	if (curl_url_set(h, CURLUPART_SCHEME, http_schemes[i].curl_scheme, 0) != CURLUE_OK ||
	    http_part(h, CURLUPART_URL, t->url, sizeof t->url) != 1) {
		snprintf(err, errlen, "bad URL \"%.80s\"", url);
		goto out;
	}
	rc = 0;
out:
	curl_url_cleanup(h);
	return rc;
}

int http_easy_setup(CURL *c, const struct http_target *t, long connect_ms, char *errbuf)
{
	errbuf[0] = 0;
	const char *ca = http_ca();
	int bad = curl_easy_setopt(c, CURLOPT_URL, t->url) != CURLE_OK ||
		  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf) != CURLE_OK ||
		  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
		  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
		  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
		  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
		  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
		  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, connect_ms) != CURLE_OK ||
		  curl_easy_setopt(c, CURLOPT_USERAGENT, "meshctl") != CURLE_OK ||
		  (ca && curl_easy_setopt(c, CURLOPT_CAINFO, ca) != CURLE_OK);
	return bad ? -1 : 0;
}

/* what a certificate failure means, by the words of OpenSSL's reason */
static const struct {
	const char *needle, *reason;
} http_cert_reasons[] = {
	{"expired", "the certificate has expired"},
	{"not yet valid", "the certificate is not valid yet"},
	{"subject name", "the certificate is for another host name"},
	{"host name", "the certificate is for another host name"},
	{"local issuer", "the certificate is not signed by a trusted CA (give --cacert FILE or MESHBROKER_CA)"},
	{"self-signed", "the certificate is not signed by a trusted CA (give --cacert FILE or MESHBROKER_CA)"},
	{"self signed", "the certificate is not signed by a trusted CA (give --cacert FILE or MESHBROKER_CA)"},
	{"revoked", "the certificate is revoked"},
};

void http_describe(CURLcode rc, const char *errbuf, const struct http_target *t, char *out, size_t cap)
{
	const char *detail = errbuf && errbuf[0] ? errbuf : curl_easy_strerror(rc);
	if (rc == CURLE_PEER_FAILED_VERIFICATION) {
		const char *why = "the certificate is not trusted";
		for (size_t i = 0; i < sizeof http_cert_reasons / sizeof http_cert_reasons[0]; i++)
			if (strcasestr(detail, http_cert_reasons[i].needle)) {
				why = http_cert_reasons[i].reason;
				break;
			}
		snprintf(out, cap, "TLS to %s refused: %s (%s)", t->host, why, detail);
	} else if (rc == CURLE_SSL_CACERT_BADFILE) {
		snprintf(out, cap, "TLS to %s: cannot use the CA file %s (%s)", t->host, http_ca() ? http_ca() : "",
			 detail);
	} else if (rc == CURLE_SSL_CONNECT_ERROR) {
		snprintf(out, cap, "TLS to %s: handshake failed (%s)", t->host, detail);
	} else if (rc == CURLE_COULDNT_RESOLVE_HOST) {
		snprintf(out, cap, "cannot resolve %s (%s)", t->host, detail);
	} else if (rc == CURLE_OPERATION_TIMEDOUT) {
		snprintf(out, cap, "%s: timed out (%s)", t->authority, detail);
	} else {
		snprintf(out, cap, "cannot reach %s (%s)", t->authority, detail);
	}
}

struct http_sink {
	char *buf;
	size_t len;
	int over;
};

static size_t http_write_cb(char *data, size_t size, size_t nmemb, void *user)
{
	struct http_sink *s = user;
	size_t n = size * nmemb;
	if (n > HTTP_RESPONSE_MAX - s->len) {
		s->over = 1;
		return 0; /* curl fails the transfer */
	}
	if (!s->buf && !(s->buf = malloc(HTTP_RESPONSE_MAX + 1)))
		return 0;
	memcpy(s->buf + s->len, data, n);
	s->len += n;
	return n;
}

/* zero the header strings (an Authorization line) before freeing them */
static void http_slist_free(struct curl_slist *l)
{
	for (struct curl_slist *i = l; i; i = i->next)
		sodium_memzero(i->data, strlen(i->data));
	curl_slist_free_all(l);
}

int http_request(const char *method, const struct http_target *t, const char *bearer, const char *body,
		 struct http_resp *out, char *err, size_t errlen)
{
	char errbuf[CURL_ERROR_SIZE], auth[512];
	struct http_sink sink = {0};
	struct curl_slist *hdrs = NULL, *tmp;
	int rc = -1;
	memset(out, 0, sizeof *out);
	CURL *c = curl_easy_init();
	if (!c || http_easy_setup(c, t, HTTP_TIMEOUT_MS, errbuf) != 0) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	static const char *fixed[] = {"Content-Type: application/json", "Accept: application/json", "Expect:"};
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
		if (!(tmp = curl_slist_append(hdrs, fixed[i])))
			goto oom;
		hdrs = tmp;
	}
	if (bearer && *bearer) {
		if (snprintf(auth, sizeof auth, "Authorization: Bearer %s", bearer) >= (int)sizeof auth) {
			snprintf(err, errlen, "the API key is too long");
			goto done;
		}
		tmp = curl_slist_append(hdrs, auth);
		sodium_memzero(auth, sizeof auth);
		if (!tmp)
			goto oom;
		hdrs = tmp;
	}
	if (curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)HTTP_TIMEOUT_MS) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_write_cb) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink) != CURLE_OK)
		goto oom;
	if (body && (curl_easy_setopt(c, CURLOPT_POSTFIELDS, body) != CURLE_OK ||
		     curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body)) != CURLE_OK))
		goto oom;
	CURLcode cr = curl_easy_perform(c);
	if (sink.over) {
		snprintf(err, errlen, "%s: response over %u bytes", t->authority, HTTP_RESPONSE_MAX);
		goto done;
	}
	if (cr != CURLE_OK) {
		http_describe(cr, errbuf, t, err, errlen);
		goto done;
	}
	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (!sink.buf && !(sink.buf = malloc(1)))
		goto oom;
	sink.buf[sink.len] = 0;
	out->status = (int)status;
	out->body = sink.buf;
	out->body_len = sink.len;
	sink.buf = NULL;
	rc = 0;
	goto done;
oom:
	snprintf(err, errlen, "out of memory");
done:
	if (c)
		curl_easy_cleanup(c);
	http_slist_free(hdrs);
	free(sink.buf);
	return rc;
}
