/* pqurl — which DATABASE_URLs reach a Unix socket alone (see pqurl.h).
 * No libpq here: it runs before libpq is loaded, and the fuzz target
 * (fuzz/fuzz_pqurl.c) builds without the database headers. */
#include "db/pqurl.h"

#include <stdlib.h>
#include <string.h>

static int pct_slash(const char *p) { return p[0] == '/' || (p[0] == '%' && p[1] == '2' && (p[2] == 'F' || p[2] == 'f')); }

int pq_url_unix_only(const char *url)
{
	static const char *const schemes[] = {"postgresql://", "postgres://"};
	const char *p = NULL;
	for (size_t i = 0; i < sizeof schemes / sizeof schemes[0] && !p; i++)
		if (strncmp(url, schemes[i], strlen(schemes[i])) == 0)
			p = url + strlen(schemes[i]);
	if (!p)
		return 0;
	/* authority: [user[:password]@]host[:port], up to the path or query */
	size_t alen = strcspn(p, "/?");
	const char *host = p;
	for (const char *q = p; q < p + alen; q++)
		if (*q == '@')
			host = q + 1;
	size_t hlen = (size_t)(p + alen - host);
	int have_host = 0;
	if (hlen && *host != ':') {
		if (!pct_slash(host) || memchr(host, ',', hlen))
			return 0; /* a name or an address: TCP; several hosts: not looked into */
		have_host = 1;
	}
	/* the query: host= must be a directory, and nothing may name TCP or a service */
	const char *q = strchr(p + alen, '?');
	for (q = q ? q + 1 : NULL; q && *q; q += strcspn(q, "&"), q += *q == '&') {
		size_t klen = strcspn(q, "=&");
		const char *v = q[klen] == '=' ? q + klen + 1 : q + klen;
		if (klen == 4 && strncmp(q, "host", 4) == 0) {
			if (*v && *v != '&' && (!pct_slash(v) || memchr(v, ',', strcspn(v, "&"))))
				return 0;
			have_host = have_host || (*v && *v != '&');
		} else if ((klen == 8 && strncmp(q, "hostaddr", 8) == 0) ||
			   (klen == 7 && strncmp(q, "service", 7) == 0)) {
			return 0;
		}
	}
	/* no host in the URL: libpq takes PGHOST, else its default socket */
	const char *env_host = getenv("PGHOST");
	if (!have_host && env_host && *env_host && (!pct_slash(env_host) || strchr(env_host, ',')))
		return 0;
	if (getenv("PGHOSTADDR") || getenv("PGSERVICE"))
		return 0;
	return 1;
}
