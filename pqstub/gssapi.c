/* pqstub/gssapi — a libgssapi_krb5.so.2 with no Kerberos in it, for libpq in
 * the worker (issue 23, docs/design.md "Cost of a worker").
 *
 * db/pq.c loads this file before libpq.so.5; its SONAME is the one libpq
 * needs, so the dynamic loader takes it for that dependency and the real
 * GSSAPI library, Kerberos and the chain under them are never loaded (nor
 * their constructors run, nor their symbols bound).  Every call fails the
 * way a library with no credentials fails: libpq's gssencmode=prefer (its
 * default) finds no credential cache and goes on without GSSAPI encryption;
 * gssencmode=require and a server asking for GSSAPI authentication get
 * libpq's own error, with the message below.  MESHBROKER_PQ_STUBS=0 loads
 * the real library instead.  The names and their version node are those
 * libpq 15 imports (`nm -D --undefined-only libpq.so.5`). */
#include <stddef.h>
#include <stdint.h>

typedef uint32_t OM_uint32;
struct gss_buffer {
	size_t length;
	void *value;
};

#define GSS_FAILURE (13u << 16) /* GSS_S_FAILURE */

static const char gss_none[] = "GSSAPI is not loaded in meshbroker-worker (MESHBROKER_PQ_STUBS=0 loads it)";

void *GSS_C_NT_HOSTBASED_SERVICE = NULL;

static OM_uint32 fail(OM_uint32 *minor)
{
	if (minor)
		*minor = 0;
	return GSS_FAILURE;
}

static OM_uint32 done(OM_uint32 *minor)
{
	if (minor)
		*minor = 0;
	return 0;
}

OM_uint32 gss_acquire_cred(OM_uint32 *minor, ...) { return fail(minor); }
OM_uint32 gss_import_name(OM_uint32 *minor, ...) { return fail(minor); }
OM_uint32 gss_init_sec_context(OM_uint32 *minor, ...) { return fail(minor); }
OM_uint32 gss_wrap(OM_uint32 *minor, ...) { return fail(minor); }
OM_uint32 gss_unwrap(OM_uint32 *minor, ...) { return fail(minor); }
OM_uint32 gss_wrap_size_limit(OM_uint32 *minor, ...) { return fail(minor); }
OM_uint32 gss_delete_sec_context(OM_uint32 *minor, ...) { return done(minor); }
OM_uint32 gss_release_cred(OM_uint32 *minor, ...) { return done(minor); }
OM_uint32 gss_release_name(OM_uint32 *minor, ...) { return done(minor); }

/* libpq prints what this returns, for as long as *ctx stays non-zero */
OM_uint32 gss_display_status(OM_uint32 *minor, OM_uint32 status, int type, void *mech, OM_uint32 *ctx,
			     struct gss_buffer *out)
{
	(void)status;
	(void)type;
	(void)mech;
	if (ctx)
		*ctx = 0;
	if (out) {
		out->length = sizeof gss_none - 1;
		out->value = (void *)gss_none;
	}
	return done(minor);
}

/* the message above is static: nothing to free */
OM_uint32 gss_release_buffer(OM_uint32 *minor, struct gss_buffer *b)
{
	if (b) {
		b->length = 0;
		b->value = NULL;
	}
	return done(minor);
}
