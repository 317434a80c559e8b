/* pq — libpq through dlopen (see pq.h). */
#define PQ_NO_MACROS
#include "pq.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "db/pqurl.h"

#define PQ_SONAME "libpq.so.5"

/* RTLD_DEEPBIND: libpq's 18 libraries look their symbols up among
 * themselves (libc included) before the program's global scope.  Without
 * it each of their ~8,500 symbol lookups first misses through every object
 * the worker linked, and a dlopen cost 13.6M instructions against 10.4M for
 * the same libraries linked at exec; with it, 10.1M.  No binding changes:
 * none of those libraries defines a symbol that the worker's own libraries
 * (sodium, cJSON, nettle, wslay, http_parser) or its executable define, but
 * for libc's, which is the same object in both scopes (the executable's
 * stdout/stderr copies hold the same FILE pointers as libc's and are never
 * reassigned).  Sanitizer runtimes refuse RTLD_DEEPBIND (their malloc must
 * win), so ASan builds do without. */
/* RTLD_LAZY (issue 23): most of libpq's libraries are linked -z now and
 * are bound at load whatever we ask, but Kerberos/GSSAPI, libresolv, GMP
 * and libffi are not, and a worker on a Unix socket never calls them.
 * RTLD_NOW bound all their PLT slots anyway: 1.5M instructions of a 10.1M
 * load.  Lazy binding looks a function up at its first call instead, in
 * the same scope; nothing changes for the functions the worker uses (the
 * PQ_FUNCS table is filled by dlsym, which checks every name now). */
#if defined(__SANITIZE_ADDRESS__)
#define PQ_DLOPEN_FLAGS (RTLD_LAZY | RTLD_LOCAL)
#else
#define PQ_DLOPEN_FLAGS (RTLD_LAZY | RTLD_LOCAL | RTLD_DEEPBIND)
#endif

/* GnuTLS is under libpq only through OpenLDAP (LDAP lookups of a
 * connection service), which calls gnutls_global_init itself before it
 * uses TLS.  GnuTLS's constructor also initialises itself, with its
 * p11-kit trust modules, at every load: 0.74M instructions of every
 * worker that connects.  GNUTLS_NO_IMPLICIT_INIT=1, read by that
 * constructor, skips it; we set it for the dlopen only and put the
 * environment back as it was. */
static void *dlopen_quiet(const char *soname)
{
	const char *had = getenv("GNUTLS_NO_IMPLICIT_INIT");
	char *old = had ? strdup(had) : NULL;
	setenv("GNUTLS_NO_IMPLICIT_INIT", "1", 1);
	void *h = dlopen(soname, PQ_DLOPEN_FLAGS);
	if (old) {
		setenv("GNUTLS_NO_IMPLICIT_INIT", old, 1);
		free(old);
	} else {
		unsetenv("GNUTLS_NO_IMPLICIT_INIT");
	}
	return h;
}

/* Stand-ins for libraries under libpq (pqstub/, issue 23), loaded first:
 * their SONAMEs satisfy libpq's dependencies, so the real libraries are
 * never loaded.  GSSAPI and LDAP always (with Kerberos, OpenLDAP, GnuTLS,
 * p11-kit, SASL and the rest of their chain: a libpq load of 8.6M
 * instructions becomes ~3.4M, and p11-kit's 84 KiB that cannot be unloaded
 * stay out); libssl and libcrypto too when DATABASE_URL can only reach a
 * Unix socket, where libpq never speaks TLS and needs libcrypto for SCRAM
 * and MD5 alone (a load of ~0.4M more, and 460 KiB of NODELETE libcrypto and
 * libssl gone from every worker).  They sit in ../lib/meshbroker next to the
 * worker's bin/ (make install: PREFIX/lib/meshbroker; the build tree:
 * build/lib/meshbroker).  When they are missing, or MESHBROKER_PQ_STUBS=0
 * (a deployment that needs GSSAPI or an LDAP connection service), libpq
 * loads its real libraries. */
static const struct {
	const char *file;
	int unix_only; /* only for a DATABASE_URL that reaches a Unix socket alone */
} pq_stubs[] = {
    {"pqstub-gssapi.so", 0},
    {"pqstub-ldap.so", 0},
    {"pqstub-crypto.so", 1},
    {"pqstub-ssl.so", 1},
};
static int stubs_wanted;
static int stubs_in;          /* pq_stubs_load ran since the last pq_unload */
static int stubs_failed;      /* libpq did not load over them: never again */
static int stubs_unix = -1;   /* the first load's pq_url_unix_only, kept for reloads */
static void *stub_handles[sizeof pq_stubs / sizeof pq_stubs[0]];
static const char *stubs_url; /* the DATABASE_URL being checked, for pq_url_unix_only */

void pq_lean(void) { stubs_wanted = 1; }

static void pq_stubs_load(void)
{
	if (stubs_in || !stubs_wanted || stubs_failed)
		return;
	stubs_in = 1;
	const char *off = getenv("MESHBROKER_PQ_STUBS");
	if (off && strcmp(off, "0") == 0)
		return;
	char dir[4096];
	ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
	if (n <= 0 || (size_t)n >= sizeof dir - 1)
		return;
	dir[n] = 0;
	char *slash = strrchr(dir, '/');
	if (!slash)
		return;
	*slash = 0; /* .../bin */
	/* decided at the first load (pq_check_url's URL); a reload after
	 * pq_unload takes the same libraries */
	if (stubs_unix < 0)
		stubs_unix = stubs_url && pq_url_unix_only(stubs_url);
	for (size_t i = 0; i < sizeof pq_stubs / sizeof pq_stubs[0]; i++) {
		if (pq_stubs[i].unix_only && !stubs_unix)
			continue;
		char path[4096 + 64];
		snprintf(path, sizeof path, "%s/../lib/meshbroker/%s", dir, pq_stubs[i].file);
		if (access(path, R_OK) != 0)
			continue;
		/* loaded while libpq is, and unloaded with it (pq_unload) */
		if (!(stub_handles[i] = dlopen(path, PQ_DLOPEN_FLAGS)))
			log_debug("libpq stand-in not loaded", "path", path, "error", dlerror());
	}
}

/* the stand-ins' handles, closed (libpq's first: nothing else holds them) */
static int pq_stubs_close(void)
{
	int had = 0;
	for (size_t i = 0; i < sizeof stub_handles / sizeof stub_handles[0]; i++)
		if (stub_handles[i]) {
			dlclose(stub_handles[i]);
			stub_handles[i] = NULL;
			had = 1;
		}
	stubs_in = 0;
	return had;
}

static struct pq_api api;    /* wrappers in place of the connect and finish calls */
static struct pq_api real;   /* what dlsym found */
static void *handle;
static int live;             /* connections made through us and not finished */
#if !defined(__SANITIZE_ADDRESS__)
static int unloads;
#endif

/* Count connections, so that pq_unload never pulls the library from under
 * one.  (Results are not counted: db.c clears each before its callback
 * returns, and nothing else in a worker holds libpq objects.) */
static PGconn *conn_counted(PGconn *c)
{
	if (c)
		live++;
	return c;
}

static PGconn *w_connectdb(const char *conninfo) { return conn_counted(real.PQconnectdb(conninfo)); }

static PGconn *w_connectdbParams(const char *const *keys, const char *const *values, int expand)
{
	return conn_counted(real.PQconnectdbParams(keys, values, expand));
}

static PGconn *w_connectStartParams(const char *const *keys, const char *const *values, int expand)
{
	return conn_counted(real.PQconnectStartParams(keys, values, expand));
}

static void w_finish(PGconn *c)
{
	if (c && live > 0)
		live--;
	real.PQfinish(c);
}

int pq_loaded(void) { return handle != NULL; }

int pq_load(char *err, size_t errlen)
{
	if (handle)
		return 0;
	pq_stubs_load();
	void *h = dlopen_quiet(PQ_SONAME);
	if (!h) {
		/* a libpq that needs a name or version the stand-ins lack (an
		 * upgrade of libpq5): drop them and load it with its real libraries */
		char why[256];
		const char *e = dlerror();
		snprintf(why, sizeof why, "%s", e ? e : "unknown error");
		int had = pq_stubs_close();
		stubs_failed = 1;
		if (had) {
			log_warn("libpq does not load over the stand-ins; loading its own libraries (update pqstub/)",
				 "error", why);
			h = dlopen_quiet(PQ_SONAME);
		}
	}
	if (!h) {
		const char *why = dlerror();
		snprintf(err, errlen, "cannot load %s: %s", PQ_SONAME, why ? why : "unknown error");
		return -1;
	}
#define PQ_SYM(f)                                                                           \
	*(void **)&real.f = dlsym(h, #f);                                                  \
	if (!real.f) {                                                                     \
		snprintf(err, errlen, "%s has no %s (libpq older than 14?)", PQ_SONAME, #f); \
		dlclose(h);                                                                \
		memset(&real, 0, sizeof real);                                             \
		return -1;                                                                 \
	}
	PQ_FUNCS(PQ_SYM)
#undef PQ_SYM
	api = real;
	api.PQconnectdb = w_connectdb;
	api.PQconnectdbParams = w_connectdbParams;
	api.PQconnectStartParams = w_connectStartParams;
	api.PQfinish = w_finish;
	handle = h;
	return 0;
}

const struct pq_api *pq_api(void)
{
	if (!handle) {
		char err[512];
		if (pq_load(err, sizeof err) != 0)
			log_fatal("cannot use PostgreSQL", "error", err);
	}
	return &api;
}

int pq_unload(void)
{
#if defined(__SANITIZE_ADDRESS__)
	/* LeakSanitizer would take what the unloaded libraries still hold for
	 * leaks of ours; sanitizer builds keep libpq */
	return 0;
#else
	/* the cap is for GnuTLS and OpenLDAP's leak; over the GSSAPI and LDAP
	 * stand-ins neither is loaded, and 200 load/unload cycles left the
	 * heap in use within 0.5 KB of where it was after the first */
	int lean = stub_handles[0] && stub_handles[1];
	if (!handle || live > 0 || (unloads >= PQ_UNLOADS_MAX && !lean))
		return 0;
	dlclose(handle);
	handle = NULL;
	/* and the stand-ins under it (a few KiB of relocated data and the
	 * loader's records each); the next pq_load opens them again */
	pq_stubs_close();
	memset(&real, 0, sizeof real);
	memset(&api, 0, sizeof api);
	unloads++;
	/* the unloaded libraries' heap blocks are free now: the caller gives
	 * the pages back (db.c's idle close: common/idlemem.h) */
	return 1;
#endif
}

int pq_check_url(const char *url, char *err, size_t errlen)
{
	stubs_url = url; /* the first load may take the Unix-socket-only stand-ins */
	int rc = pq_load(err, errlen);
	stubs_url = NULL;
	if (rc != 0)
		return -1;
	char *perr = NULL;
	PQconninfoOption *o = api.PQconninfoParse(url, &perr);
	if (!o) {
		snprintf(err, errlen, "DATABASE_URL is not a valid connection URI: %s",
			 perr ? strtok(perr, "\n") : "parse error");
		api.PQfreemem(perr);
		return -1;
	}
	api.PQconninfoFree(o);
	return 0;
}
