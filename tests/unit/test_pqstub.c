/* test_pqstub — the libcrypto stand-in that libpq authenticates with in a
 * worker on a Unix socket (pqstub/crypto.c, issue 23): MD5 (RFC 1321's test
 * suite), SHA-256/512 and HMAC-SHA-256 (RFC 4231) as OpenSSL's EVP and HMAC
 * calls answer them, random bytes, CRYPTO_memcmp; and db/pq.c's
 * pq_url_unix_only, which decides when the worker may use it. */
#include <check.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/pqurl.h"

static void *lib;

/* build/tests/test_pqstub -> build/lib/meshbroker/pqstub-crypto.so */
static void *stub(void)
{
	if (lib)
		return lib;
	char exe[4096], path[4200];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	ck_assert_int_gt(n, 0);
	exe[n] = 0;
	*strrchr(exe, '/') = 0;
	snprintf(path, sizeof path, "%s/../lib/meshbroker/pqstub-crypto.so", exe);
	lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	ck_assert_msg(lib != NULL, "dlopen %s: %s", path, dlerror());
	return lib;
}

static void *sym(const char *name)
{
	void *f = dlsym(stub(), name);
	ck_assert_msg(f != NULL, "no %s", name);
	return f;
}

static void hex(const unsigned char *p, unsigned n, char *out)
{
	for (unsigned i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
}

/* digest of s through EVP, fed in pieces of `step` bytes */
static void digest(const char *md, const char *s, size_t step, char *out, unsigned *outlen)
{
	void *(*mdf)(void) = (void *(*)(void))sym(md);
	void *(*ctx_new)(void) = (void *(*)(void))sym("EVP_MD_CTX_new");
	int (*init)(void *, void *, void *) = (int (*)(void *, void *, void *))sym("EVP_DigestInit_ex");
	int (*upd)(void *, const void *, size_t) = (int (*)(void *, const void *, size_t))sym("EVP_DigestUpdate");
	int (*fin)(void *, unsigned char *, unsigned *) = (int (*)(void *, unsigned char *, unsigned *))sym("EVP_DigestFinal_ex");
	void (*ctx_free)(void *) = (void (*)(void *))sym("EVP_MD_CTX_free");
	void *c = ctx_new();
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(init(c, mdf(), NULL), 1);
	size_t len = strlen(s);
	for (size_t o = 0; o < len; o += step)
		ck_assert_int_eq(upd(c, s + o, len - o < step ? len - o : step), 1);
	unsigned char d[64];
	ck_assert_int_eq(fin(c, d, outlen), 1);
	hex(d, *outlen, out);
	ctx_free(c);
}

START_TEST(md5_rfc1321)
{
	static const char *const v[][2] = {
	    {"", "d41d8cd98f00b204e9800998ecf8427e"},
	    {"a", "0cc175b9c0f1b6a831c399e269772661"},
	    {"abc", "900150983cd24fb0d6963f7d28e17f72"},
	    {"message digest", "f96b697d7cb7938d525a2f31aaf161d0"},
	    {"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"},
	    {"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "d174ab98d277d9f5a5611c2c9f419d9f"},
	    {"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
	     "57edf4a22be3c955ac49da2e2107b67a"},
	};
	static const size_t steps[] = {1, 3, 63, 64, 1000};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
		for (size_t j = 0; j < sizeof steps / sizeof steps[0]; j++) {
			char out[129];
			unsigned n = 0;
			digest("EVP_md5", v[i][0], steps[j], out, &n);
			ck_assert_uint_eq(n, 16);
			ck_assert_msg(strcmp(out, v[i][1]) == 0, "md5(\"%s\") step %zu: %s", v[i][0], steps[j], out);
		}
}
END_TEST

START_TEST(sha256_sha512)
{
	char out[129];
	unsigned n = 0;
	digest("EVP_sha256", "abc", 1, out, &n);
	ck_assert_uint_eq(n, 32);
	ck_assert_str_eq(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	digest("EVP_sha512", "abc", 2, out, &n);
	ck_assert_uint_eq(n, 64);
	ck_assert_str_eq(out, "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
			      "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f");
}
END_TEST

/* TLS-only digests fail instead of answering wrong */
START_TEST(others_fail)
{
	void *(*sha1)(void) = (void *(*)(void))sym("EVP_sha1");
	void *(*ctx_new)(void) = (void *(*)(void))sym("EVP_MD_CTX_new");
	int (*init)(void *, void *, void *) = (int (*)(void *, void *, void *))sym("EVP_DigestInit_ex");
	void (*ctx_free)(void *) = (void (*)(void *))sym("EVP_MD_CTX_free");
	void *c = ctx_new();
	ck_assert_int_eq(init(c, sha1(), NULL), 0);
	ctx_free(c);
}
END_TEST

START_TEST(hmac_sha256_rfc4231)
{
	void *(*sha256)(void) = (void *(*)(void))sym("EVP_sha256");
	void *(*hnew)(void) = (void *(*)(void))sym("HMAC_CTX_new");
	int (*hinit)(void *, const void *, int, void *, void *) =
	    (int (*)(void *, const void *, int, void *, void *))sym("HMAC_Init_ex");
	int (*hupd)(void *, const unsigned char *, size_t) = (int (*)(void *, const unsigned char *, size_t))sym("HMAC_Update");
	int (*hfin)(void *, unsigned char *, unsigned *) = (int (*)(void *, unsigned char *, unsigned *))sym("HMAC_Final");
	void (*hfree)(void *) = (void (*)(void *))sym("HMAC_CTX_free");
	void *h = hnew();
	ck_assert_ptr_nonnull(h);
	/* test case 2 */
	const char *data = "what do ya want for nothing?";
	unsigned char d[32];
	unsigned n = 0;
	char out[65];
	ck_assert_int_eq(hinit(h, "Jefe", 4, sha256(), NULL), 1);
	ck_assert_int_eq(hupd(h, (const unsigned char *)data, strlen(data)), 1);
	ck_assert_int_eq(hfin(h, d, &n), 1);
	ck_assert_uint_eq(n, 32);
	hex(d, 32, out);
	ck_assert_str_eq(out, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	/* again without the key: OpenSSL's re-init with the last key */
	ck_assert_int_eq(hinit(h, NULL, 0, NULL, NULL), 1);
	ck_assert_int_eq(hupd(h, (const unsigned char *)data, 10), 1);
	ck_assert_int_eq(hupd(h, (const unsigned char *)data + 10, strlen(data) - 10), 1);
	ck_assert_int_eq(hfin(h, d, &n), 1);
	hex(d, 32, out);
	ck_assert_str_eq(out, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	/* test case 6: a key longer than the block */
	unsigned char key[131];
	memset(key, 0xaa, sizeof key);
	const char *big = "Test Using Larger Than Block-Size Key - Hash Key First";
	ck_assert_int_eq(hinit(h, key, (int)sizeof key, sha256(), NULL), 1);
	ck_assert_int_eq(hupd(h, (const unsigned char *)big, strlen(big)), 1);
	ck_assert_int_eq(hfin(h, d, &n), 1);
	hex(d, 32, out);
	ck_assert_str_eq(out, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
	hfree(h);
}
END_TEST

START_TEST(rand_and_memcmp)
{
	int (*rnd)(unsigned char *, int) = (int (*)(unsigned char *, int))sym("RAND_bytes");
	int (*cmp)(const void *, const void *, size_t) = (int (*)(const void *, const void *, size_t))sym("CRYPTO_memcmp");
	unsigned char a[32] = {0}, b[32] = {0};
	ck_assert_int_eq(rnd(a, sizeof a), 1);
	ck_assert_int_eq(rnd(b, sizeof b), 1);
	ck_assert_int_ne(memcmp(a, b, sizeof a), 0);
	ck_assert_int_eq(cmp(a, a, sizeof a), 0);
	ck_assert_int_ne(cmp(a, b, sizeof a), 0);
}
END_TEST

START_TEST(unix_only_urls)
{
	unsetenv("PGHOST");
	unsetenv("PGHOSTADDR");
	unsetenv("PGSERVICE");
	static const struct {
		const char *url;
		int unix_only;
	} v[] = {
	    {"postgresql:///meshbroker?host=/run/postgresql&port=5432&user=mb", 1},
	    {"postgresql:///meshbroker", 1}, /* libpq's default socket */
	    {"postgres://mb@%2Frun%2Fpostgresql/meshbroker", 1},
	    {"postgresql://mb:pw@%2ftmp:6432/meshbroker?sslmode=require", 1},
	    {"postgresql://localhost/meshbroker", 0},
	    {"postgresql://127.0.0.1:5432/meshbroker", 0},
	    {"postgresql://[::1]/meshbroker", 0},
	    {"postgresql://mb@db.example/meshbroker?host=/run/postgresql", 0},
	    {"postgresql:///meshbroker?host=db.example", 0},
	    {"postgresql:///meshbroker?host=/run/postgresql&hostaddr=10.0.0.1", 0},
	    {"postgresql:///meshbroker?host=/a,db.example", 0},
	    {"postgresql:///meshbroker?service=prod", 0},
	    {"host=/run/postgresql dbname=meshbroker", 0},
	    {"mysql:///x", 0},
	};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
		ck_assert_msg(pq_url_unix_only(v[i].url) == v[i].unix_only, "%s: want %d", v[i].url, v[i].unix_only);
	/* no host in the URL: the environment decides */
	setenv("PGHOST", "db.example", 1);
	ck_assert_int_eq(pq_url_unix_only("postgresql:///meshbroker"), 0);
	ck_assert_int_eq(pq_url_unix_only("postgresql:///meshbroker?host=/tmp"), 1);
	setenv("PGHOST", "/tmp", 1);
	ck_assert_int_eq(pq_url_unix_only("postgresql:///meshbroker"), 1);
	unsetenv("PGHOST");
	setenv("PGHOSTADDR", "10.0.0.1", 1);
	ck_assert_int_eq(pq_url_unix_only("postgresql:///meshbroker?host=/tmp"), 0);
	unsetenv("PGHOSTADDR");
}
END_TEST

int main(void)
{
	Suite *su = suite_create("pqstub");
	TCase *tc = tcase_create("pqstub");
	tcase_add_test(tc, md5_rfc1321);
	tcase_add_test(tc, sha256_sha512);
	tcase_add_test(tc, others_fail);
	tcase_add_test(tc, hmac_sha256_rfc4231);
	tcase_add_test(tc, rand_and_memcmp);
	tcase_add_test(tc, unix_only_urls);
	suite_add_tcase(su, tc);
	SRunner *sr = srunner_create(su);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
