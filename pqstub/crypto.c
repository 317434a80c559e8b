/* pqstub/crypto — a libcrypto.so.3 for libpq in a worker whose DATABASE_URL
 * is a Unix socket (issue 23, docs/design.md "Cost of a worker"; see
 * pqstub/gssapi.c and db/pq.c).  On a Unix socket libpq uses libcrypto only
 * to authenticate: SCRAM-SHA-256 (SHA-256, HMAC-SHA-256, random nonces,
 * CRYPTO_memcmp) and md5 passwords (MD5).  Those are real here, on
 * libsodium (SHA-256/512, HMAC-SHA-256/512, randombytes, sodium_memcmp) and
 * the MD5 below (RFC 1321, checked against its test suite in
 * tests/unit/test_pqstub.c); SHA-1/224/384 and every certificate, BIO,
 * engine and error-queue function fail, as they would without TLS.  The
 * real libcrypto costs every worker ~2.5M instructions to load and 404 KiB
 * that can never be unloaded (NODELETE).  The names and their version node
 * are those libpq 15 imports from libcrypto. */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- digests ---------------------------------------------------------- */

enum md_id { MD_MD5 = 1, MD_SHA1, MD_SHA224, MD_SHA256, MD_SHA384, MD_SHA512 };

struct evp_md {
	enum md_id id;
};

static const struct evp_md md_md5 = {MD_MD5}, md_sha1 = {MD_SHA1}, md_sha224 = {MD_SHA224},
			   md_sha256 = {MD_SHA256}, md_sha384 = {MD_SHA384}, md_sha512 = {MD_SHA512};

const struct evp_md *EVP_md5(void) { return &md_md5; }
const struct evp_md *EVP_sha1(void) { return &md_sha1; }
const struct evp_md *EVP_sha224(void) { return &md_sha224; }
const struct evp_md *EVP_sha256(void) { return &md_sha256; }
const struct evp_md *EVP_sha384(void) { return &md_sha384; }
const struct evp_md *EVP_sha512(void) { return &md_sha512; }

/* by name: only TLS channel binding asks, and there is no TLS here */
const struct evp_md *EVP_get_digestbyname(const char *name)
{
	(void)name;
	return NULL;
}

struct md5 {
	uint32_t h[4];
	uint64_t len;
	unsigned char buf[64];
};

static uint32_t rol(uint32_t x, int c) { return (x << c) | (x >> (32 - c)); }

static void md5_block(struct md5 *m, const unsigned char *p)
{
	static const uint32_t k[64] = {
	    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
	    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
	    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
	    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
	    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
	    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
	    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
	    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391};
	static const int r[64] = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
				  5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
				  4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
				  6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};
	uint32_t w[16];
	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
		       (uint32_t)p[4 * i + 3] << 24;
	uint32_t a = m->h[0], b = m->h[1], c = m->h[2], d = m->h[3];
	for (int i = 0; i < 64; i++) {
		uint32_t f;
		int g;
		if (i < 16) {
			f = (b & c) | (~b & d);
			g = i;
		} else if (i < 32) {
			f = (d & b) | (~d & c);
			g = (5 * i + 1) % 16;
		} else if (i < 48) {
			f = b ^ c ^ d;
			g = (3 * i + 5) % 16;
		} else {
			f = c ^ (b | ~d);
			g = (7 * i) % 16;
		}
		uint32_t t = d;
		d = c;
		c = b;
		b = b + rol(a + f + k[i] + w[g], r[i]);
		a = t;
	}
	m->h[0] += a;
	m->h[1] += b;
	m->h[2] += c;
	m->h[3] += d;
}

static void md5_init(struct md5 *m)
{
	memset(m, 0, sizeof *m);
	m->h[0] = 0x67452301;
	m->h[1] = 0xefcdab89;
	m->h[2] = 0x98badcfe;
	m->h[3] = 0x10325476;
}

static void md5_update(struct md5 *m, const unsigned char *p, size_t n)
{
	size_t have = (size_t)(m->len % 64);
	m->len += n;
	if (have) {
		size_t take = 64 - have < n ? 64 - have : n;
		memcpy(m->buf + have, p, take);
		p += take;
		n -= take;
		if (have + take < 64)
			return;
		md5_block(m, m->buf);
	}
	for (; n >= 64; p += 64, n -= 64)
		md5_block(m, p);
	memcpy(m->buf, p, n);
}

static void md5_final(struct md5 *m, unsigned char out[16])
{
	uint64_t bits = m->len * 8;
	unsigned char pad[72] = {0x80};
	size_t have = (size_t)(m->len % 64);
	size_t padlen = (have < 56 ? 56 : 120) - have;
	unsigned char lenle[8];
	for (int i = 0; i < 8; i++)
		lenle[i] = (unsigned char)(bits >> (8 * i));
	md5_update(m, pad, padlen);
	md5_update(m, lenle, 8);
	for (int i = 0; i < 16; i++)
		out[i] = (unsigned char)(m->h[i / 4] >> (8 * (i % 4)));
	sodium_memzero(m, sizeof *m);
}

struct evp_md_ctx {
	enum md_id id; /* 0 before a successful init */
	union {
		struct md5 md5;
		crypto_hash_sha256_state sha256;
		crypto_hash_sha512_state sha512;
	} u;
};

struct evp_md_ctx *EVP_MD_CTX_new(void) { return calloc(1, sizeof(struct evp_md_ctx)); }

void EVP_MD_CTX_free(struct evp_md_ctx *c)
{
	if (!c)
		return;
	sodium_memzero(c, sizeof *c);
	free(c);
}

int EVP_DigestInit_ex(struct evp_md_ctx *c, const struct evp_md *md, void *engine)
{
	(void)engine;
	if (!c || !md)
		return 0;
	c->id = 0;
	switch (md->id) {
	case MD_MD5:
		md5_init(&c->u.md5);
		break;
	case MD_SHA256:
		crypto_hash_sha256_init(&c->u.sha256);
		break;
	case MD_SHA512:
		crypto_hash_sha512_init(&c->u.sha512);
		break;
	default:
		return 0; /* SHA-1/224/384: TLS only */
	}
	c->id = md->id;
	return 1;
}

int EVP_DigestUpdate(struct evp_md_ctx *c, const void *p, size_t n)
{
	if (!c)
		return 0;
	switch (c->id) {
	case MD_MD5:
		md5_update(&c->u.md5, p, n);
		return 1;
	case MD_SHA256:
		return crypto_hash_sha256_update(&c->u.sha256, p, n) == 0;
	case MD_SHA512:
		return crypto_hash_sha512_update(&c->u.sha512, p, n) == 0;
	default:
		return 0;
	}
}

int EVP_DigestFinal_ex(struct evp_md_ctx *c, unsigned char *out, unsigned int *len)
{
	if (!c)
		return 0;
	unsigned int n = 0;
	int ok = 0;
	switch (c->id) {
	case MD_MD5:
		md5_final(&c->u.md5, out);
		n = 16, ok = 1;
		break;
	case MD_SHA256:
		ok = crypto_hash_sha256_final(&c->u.sha256, out) == 0;
		n = crypto_hash_sha256_BYTES;
		break;
	case MD_SHA512:
		ok = crypto_hash_sha512_final(&c->u.sha512, out) == 0;
		n = crypto_hash_sha512_BYTES;
		break;
	default:
		return 0;
	}
	c->id = 0;
	if (len)
		*len = ok ? n : 0;
	return ok;
}

/* ---- HMAC ------------------------------------------------------------- */

struct hmac_ctx {
	enum md_id id;  /* 0 before a successful init */
	enum md_id key; /* the digest keyed in `init`, for a re-init without a key */
	union {
		crypto_auth_hmacsha256_state sha256;
		crypto_auth_hmacsha512_state sha512;
	} cur, init;
};

struct hmac_ctx *HMAC_CTX_new(void) { return calloc(1, sizeof(struct hmac_ctx)); }

void HMAC_CTX_free(struct hmac_ctx *c)
{
	if (!c)
		return;
	sodium_memzero(c, sizeof *c);
	free(c);
}

/* OpenSSL's rules: a key starts afresh; no key (NULL) with the same or no
 * digest starts again with the last key */
int HMAC_Init_ex(struct hmac_ctx *c, const void *key, int keylen, const struct evp_md *md, void *engine)
{
	(void)engine;
	if (!c || keylen < 0)
		return 0;
	enum md_id id = md ? md->id : c->key;
	c->id = 0;
	if (!key) {
		if (!c->key || id != c->key)
			return 0;
		c->cur = c->init;
		c->id = id;
		return 1;
	}
	switch (id) {
	case MD_SHA256:
		crypto_auth_hmacsha256_init(&c->init.sha256, key, (size_t)keylen);
		break;
	case MD_SHA512:
		crypto_auth_hmacsha512_init(&c->init.sha512, key, (size_t)keylen);
		break;
	default:
		return 0;
	}
	c->key = id;
	c->cur = c->init;
	c->id = id;
	return 1;
}

int HMAC_Update(struct hmac_ctx *c, const unsigned char *p, size_t n)
{
	if (!c)
		return 0;
	switch (c->id) {
	case MD_SHA256:
		return crypto_auth_hmacsha256_update(&c->cur.sha256, p, n) == 0;
	case MD_SHA512:
		return crypto_auth_hmacsha512_update(&c->cur.sha512, p, n) == 0;
	default:
		return 0;
	}
}

int HMAC_Final(struct hmac_ctx *c, unsigned char *out, unsigned int *len)
{
	if (!c)
		return 0;
	unsigned int n;
	int ok;
	switch (c->id) {
	case MD_SHA256:
		ok = crypto_auth_hmacsha256_final(&c->cur.sha256, out) == 0;
		n = crypto_auth_hmacsha256_BYTES;
		break;
	case MD_SHA512:
		ok = crypto_auth_hmacsha512_final(&c->cur.sha512, out) == 0;
		n = crypto_auth_hmacsha512_BYTES;
		break;
	default:
		return 0;
	}
	c->id = 0;
	if (len)
		*len = ok ? n : 0;
	return ok;
}

/* ---- randomness, comparison ------------------------------------------- */

int RAND_bytes(unsigned char *buf, int n)
{
	if (n < 0 || sodium_init() < 0)
		return 0;
	randombytes_buf(buf, (size_t)n);
	return 1;
}

int RAND_poll(void) { return sodium_init() >= 0; }
int RAND_status(void) { return sodium_init() >= 0; }

int CRYPTO_memcmp(const void *a, const void *b, size_t n) { return sodium_memcmp(a, b, n) != 0; }

/* ---- everything of TLS: fails ------------------------------------------ */

#define NONE_PTR(f)                 \
	void *f(void);              \
	void *f(void) { return NULL; }
#define NONE_INT(f, v)              \
	int f(void);                \
	int f(void) { return v; }
#define NONE_VOID(f)                \
	void f(void);               \
	void f(void) {}

NONE_PTR(ASN1_STRING_get0_data)
NONE_INT(ASN1_STRING_length, 0)
NONE_VOID(BIO_clear_flags)
NONE_PTR(BIO_get_ex_data)
NONE_INT(BIO_get_new_index, -1)
NONE_INT(BIO_int_ctrl, 0)
NONE_VOID(BIO_meth_free)
NONE_PTR(BIO_meth_get_callback_ctrl)
NONE_PTR(BIO_meth_get_create)
NONE_PTR(BIO_meth_get_ctrl)
NONE_PTR(BIO_meth_get_destroy)
NONE_PTR(BIO_meth_get_gets)
NONE_PTR(BIO_meth_get_puts)
NONE_PTR(BIO_meth_new)
NONE_INT(BIO_meth_set_callback_ctrl, 0)
NONE_INT(BIO_meth_set_create, 0)
NONE_INT(BIO_meth_set_ctrl, 0)
NONE_INT(BIO_meth_set_destroy, 0)
NONE_INT(BIO_meth_set_gets, 0)
NONE_INT(BIO_meth_set_puts, 0)
NONE_INT(BIO_meth_set_read, 0)
NONE_INT(BIO_meth_set_write, 0)
NONE_PTR(BIO_new)
NONE_PTR(BIO_s_socket)
NONE_INT(BIO_set_ex_data, 0)
NONE_VOID(BIO_set_flags)
NONE_PTR(ENGINE_by_id)
NONE_INT(ENGINE_finish, 0)
NONE_INT(ENGINE_free, 0)
NONE_INT(ENGINE_init, 0)
NONE_PTR(ENGINE_load_private_key)
NONE_VOID(ERR_clear_error)
NONE_VOID(ERR_new)
NONE_PTR(ERR_reason_error_string)
NONE_VOID(ERR_set_debug)
NONE_VOID(ERR_set_error)
NONE_VOID(GENERAL_NAME_free)
NONE_PTR(OBJ_nid2sn)
NONE_INT(OPENSSL_sk_num, -1)
NONE_VOID(OPENSSL_sk_pop_free)
NONE_PTR(OPENSSL_sk_value)
NONE_PTR(X509_NAME_ENTRY_get_data)
NONE_PTR(X509_NAME_get_entry)
NONE_INT(X509_NAME_get_index_by_NID, -1)
NONE_INT(X509_STORE_load_locations, 0)
NONE_INT(X509_STORE_set_flags, 0)
NONE_INT(X509_digest, 0)
NONE_VOID(X509_free)
NONE_PTR(X509_get_ext_d2i)
NONE_INT(X509_get_signature_info, 0)
NONE_PTR(X509_get_subject_name)

/* no error queue: nothing ever failed that OpenSSL would have recorded */
unsigned long ERR_get_error(void);
unsigned long ERR_get_error(void) { return 0; }
