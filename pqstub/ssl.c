/* pqstub/ssl — a libssl.so.3 with no TLS in it, for libpq in a worker whose
 * DATABASE_URL is a Unix socket (issue 23, docs/design.md "Cost of a
 * worker"; see pqstub/gssapi.c and db/pq.c).  libpq never negotiates TLS on
 * a Unix socket; should it ever try, SSL_CTX_new fails and libpq reports
 * "could not create SSL context".  Every function here fails: NULL, 0, or
 * the error value of its OpenSSL namesake.  The names and their version
 * node are those libpq 15 imports from libssl. */
#include <stddef.h>

#define SSL_ERROR_SSL 1

#define NONE_PTR(f)                 \
	void *f(void);              \
	void *f(void) { return NULL; }
#define NONE_INT(f)                 \
	int f(void);                \
	int f(void) { return 0; }
#define NONE_LONG(f)                \
	long f(void);               \
	long f(void) { return 0; }
#define NONE_VOID(f)                \
	void f(void);               \
	void f(void) {}

NONE_PTR(TLS_method)
NONE_PTR(SSL_CTX_new)
NONE_PTR(SSL_new)
NONE_PTR(SSL_CTX_get_cert_store)
NONE_PTR(SSL_get1_peer_certificate)
NONE_PTR(SSL_get_current_cipher)
NONE_PTR(SSL_get_current_compression)
NONE_PTR(SSL_get_version)
NONE_PTR(SSL_CIPHER_get_name)
NONE_INT(OPENSSL_init_ssl)
NONE_INT(SSL_CIPHER_get_bits)
NONE_INT(SSL_CTX_load_verify_locations)
NONE_INT(SSL_CTX_use_certificate_chain_file)
NONE_INT(SSL_check_private_key)
NONE_INT(SSL_set_ex_data)
NONE_INT(SSL_shutdown)
NONE_INT(SSL_use_PrivateKey)
NONE_INT(SSL_use_PrivateKey_file)
NONE_INT(SSL_pending)
NONE_LONG(SSL_CTX_ctrl)
NONE_LONG(SSL_ctrl)
NONE_LONG(SSL_CTX_set_options)
NONE_LONG(SSL_set_options)
NONE_LONG(SSL_clear_options)
NONE_VOID(SSL_CTX_free)
NONE_VOID(SSL_free)
NONE_VOID(SSL_set_bio)
NONE_VOID(SSL_set_verify)
NONE_VOID(SSL_CTX_set_default_passwd_cb)
NONE_VOID(SSL_CTX_set_default_passwd_cb_userdata)

int SSL_connect(void);
int SSL_connect(void) { return -1; }
int SSL_read(void);
int SSL_read(void) { return -1; }
int SSL_write(void);
int SSL_write(void) { return -1; }
int SSL_get_error(void);
int SSL_get_error(void) { return SSL_ERROR_SSL; }
