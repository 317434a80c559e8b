/* pqstub/ldap — a libldap-2.5.so.0 with no LDAP in it, for libpq in the
 * worker (issue 23, docs/design.md "Cost of a worker"; see pqstub/gssapi.c).
 * libpq calls LDAP only for a connection service (pg_service.conf) whose
 * entry is an ldap:// URL; here that lookup fails with libpq's own "could not
 * create LDAP structure".  Not loading OpenLDAP also leaves out GnuTLS,
 * p11-kit (pinned in memory once loaded), SASL and libidn2.  The names and
 * their version node are those libpq 15 imports. */
#include <stddef.h>

#define LDAP_NOT_SUPPORTED (-12)

static const char ldap_none[] = "LDAP is not loaded in meshbroker-worker (MESHBROKER_PQ_STUBS=0 loads it)";

void *ldap_init(const char *host, int port)
{
	(void)host;
	(void)port;
	return NULL;
}

char *ldap_err2string(int err)
{
	(void)err;
	return (char *)ldap_none;
}

int ldap_set_option(void *ld, int option, const void *value)
{
	(void)ld;
	(void)option;
	(void)value;
	return -1;
}

int ldap_simple_bind(void *ld, const char *who, const char *pw)
{
	(void)ld;
	(void)who;
	(void)pw;
	return -1;
}

int ldap_search_st(void *ld, ...) { (void)ld; return LDAP_NOT_SUPPORTED; }
int ldap_result(void *ld, ...) { (void)ld; return -1; }
int ldap_count_entries(void *ld, void *res) { (void)ld; (void)res; return -1; }
void *ldap_first_entry(void *ld, void *res) { (void)ld; (void)res; return NULL; }

void *ldap_get_values_len(void *ld, void *entry, const char *attr)
{
	(void)ld;
	(void)entry;
	(void)attr;
	return NULL;
}

void ldap_value_free_len(void *vals) { (void)vals; }
int ldap_msgfree(void *msg) { (void)msg; return 0; }
int ldap_unbind(void *ld) { (void)ld; return LDAP_NOT_SUPPORTED; }
