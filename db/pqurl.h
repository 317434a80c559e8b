/* pqurl — does a DATABASE_URL reach a Unix socket alone? (issue 23)
 *
 * db/pq.c loads stand-ins for libssl and libcrypto under libpq (pqstub/)
 * only when libpq can never speak TLS: when the URL can reach nothing but a
 * Unix socket.  Decided on the URL's text, before libpq is loaded. */
#ifndef DB_PQURL_H
#define DB_PQURL_H

/* 1 when a DATABASE_URL (postgresql:// or postgres://) can reach nothing
 * but a Unix socket: its host, in the authority or host=, a directory ("/"
 * or "%2F" first; none at all means PGHOST, then libpq's default socket);
 * one host; no hostaddr=, no service=; PGHOST a directory if it decides,
 * no PGHOSTADDR, no PGSERVICE.  0 for anything else, key=value strings
 * included.  Reads the string up to its NUL, nothing past it. */
int pq_url_unix_only(const char *url);

#endif
