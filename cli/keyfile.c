/* keyfile — reading and writing meshctl's key files and peer configs (see
 * keyfile.h).  Secrets only ever come from these files, never from argv. */
#include "keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "common/util.h"

#define KEYFILE_MAX_BYTES 65536

/* Read a whole small regular file.  *mode gets its permission bits. */
static char *keyfile_slurp(const char *path, mode_t *mode)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		cli_err("%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		cli_err("%s: not a regular file", path);
		close(fd);
		return NULL;
	}
	if (st.st_size > KEYFILE_MAX_BYTES) {
		cli_err("%s: too large (over %d bytes)", path, KEYFILE_MAX_BYTES);
		close(fd);
		return NULL;
	}
	*mode = st.st_mode & 07777;
	char *buf = malloc(KEYFILE_MAX_BYTES + 1);
	size_t n = 0;
	if (!buf) {
		cli_err("out of memory");
		close(fd);
		return NULL;
	}
	for (;;) {
		ssize_t r = read(fd, buf + n, KEYFILE_MAX_BYTES - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			cli_err("%s: %s", path, strerror(errno));
			sodium_memzero(buf, n);
			free(buf);
			close(fd);
			return NULL;
		}
		if (r == 0 || (n += (size_t)r) == KEYFILE_MAX_BYTES)
			break;
	}
	close(fd);
	buf[n] = 0;
	return buf;
}

static int keyfile_check_mode(const char *path, mode_t mode)
{
	if (mode & 077) {
		cli_err("%s: permissions %04o are too open for a file holding a secret key (chmod 600 %s)",
			path, (unsigned)mode, path);
		return -1;
	}
	return 0;
}

/* Parse the file as a JSON object; secret: check the mode first. */
static cJSON *keyfile_load(const char *path, int secret, mode_t *mode)
{
	char *text = keyfile_slurp(path, mode);
	if (!text)
		return NULL;
	if (secret && keyfile_check_mode(path, *mode) != 0) {
		sodium_memzero(text, strlen(text));
		free(text);
		return NULL;
	}
	cJSON *doc = cJSON_Parse(text);
	sodium_memzero(text, strlen(text));
	free(text);
	if (!cJSON_IsObject(doc)) {
		cli_err("%s: not a JSON object", path);
		keyfile_json_free(doc);
		return NULL;
	}
	return doc;
}

static const char *keyfile_str(const cJSON *doc, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* pubkey (+ secretKey when present or needed) of a parsed doc into k */
static int keyfile_take_key(const char *path, const cJSON *doc, int need_secret,
			    struct keyfile_key *k)
{
	const char *pub = keyfile_str(doc, "pubkey");
	const char *sec = keyfile_str(doc, "secretKey");
	memset(k, 0, sizeof *k);
	if (!pub || !is_hex(pub, 64) || hex_decode(pub, k->pk, sizeof k->pk) != 0) {
		cli_err("%s: \"pubkey\" must be 64 hex characters", path);
		return -1;
	}
	hex_encode(k->pk, sizeof k->pk, k->pubkey);
	if (!sec) {
		if (need_secret) {
			cli_err("%s: no \"secretKey\"", path);
			return -1;
		}
		return 0;
	}
	if (!is_hex(sec, 128) || hex_decode(sec, k->sk, sizeof k->sk) != 0) {
		cli_err("%s: \"secretKey\" must be 128 hex characters", path);
		return -1;
	}
	/* a libsodium ed25519 secret key ends with its public key */
	unsigned char derived[32];
	crypto_sign_ed25519_sk_to_pk(derived, k->sk);
	if (sodium_memcmp(derived, k->pk, sizeof derived) != 0) {
		sodium_memzero(k->sk, sizeof k->sk);
		cli_err("%s: \"secretKey\" does not belong to \"pubkey\"", path);
		return -1;
	}
	k->has_secret = 1;
	return 0;
}

int keyfile_read_key(const char *path, int need_secret, struct keyfile_key *k)
{
	mode_t mode = 0;
	cJSON *doc = keyfile_load(path, need_secret, &mode);
	if (!doc)
		return -1;
	int rc = keyfile_take_key(path, doc, need_secret, k);
	/* a public-only file may be readable by anyone; one with a secret not */
	if (rc == 0 && k->has_secret && keyfile_check_mode(path, mode) != 0) {
		sodium_memzero(k->sk, sizeof k->sk);
		rc = -1;
	}
	keyfile_json_free(doc);
	return rc;
}

static int keyfile_take_str(const char *path, const cJSON *doc, const char *k, char *dst,
			    size_t cap, int required)
{
	const char *v = keyfile_str(doc, k);
	if (!v) {
		if (!required) {
			dst[0] = 0;
			return 0;
		}
		return cli_err("%s: missing string \"%s\"", path, k), -1;
	}
	if ((required && !*v) || str_copy(dst, cap, v) != 0)
		return cli_err("%s: \"%s\" is empty or too long", path, k), -1;
	return 0;
}

int keyfile_read_peer(const char *path, struct keyfile_peer *p)
{
	mode_t mode = 0;
	memset(p, 0, sizeof *p);
	cJSON *doc = keyfile_load(path, 1, &mode);
	if (!doc)
		return -1;
	int rc = -1;
	if (keyfile_take_str(path, doc, "meshId", p->mesh_id, sizeof p->mesh_id, 1) == 0 &&
	    keyfile_take_str(path, doc, "memberId", p->member_id, sizeof p->member_id, 1) == 0 &&
	    keyfile_take_str(path, doc, "broker", p->broker, sizeof p->broker, 0) == 0 &&
	    keyfile_take_str(path, doc, "displayName", p->display_name, sizeof p->display_name, 0) == 0 &&
	    keyfile_take_str(path, doc, "apiKey", p->api_key, sizeof p->api_key, 0) == 0 &&
	    keyfile_take_key(path, doc, 1, &p->key) == 0)
		rc = 0;
	keyfile_json_free(doc);
	return rc;
}

int keyfile_out_open(struct keyfile_out *o, const char *path, int force)
{
	memset(o, 0, sizeof *o);
	o->fd = -1;
	if (str_copy(o->path, sizeof o->path, path) != 0 || !*path)
		return cli_err("%s: bad path", path), -1;
	if (force) {
		if (snprintf(o->tmp, sizeof o->tmp, "%s.XXXXXX", path) >= (int)sizeof o->tmp)
			return cli_err("%s: path too long", path), -1;
		o->fd = mkostemp(o->tmp, O_CLOEXEC);
		if (o->fd < 0) {
			cli_err("%s: %s", o->tmp, strerror(errno));
			o->tmp[0] = 0;
			return -1;
		}
	} else {
		o->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
		if (o->fd < 0) {
			if (errno == EEXIST)
				return cli_err("%s already exists (use --force to overwrite)", path), -1;
			return cli_err("%s: %s", path, strerror(errno)), -1;
		}
	}
	/* whatever the umask, exactly owner read/write */
	if (fchmod(o->fd, 0600) != 0) {
		cli_err("%s: %s", path, strerror(errno));
		keyfile_out_abort(o);
		return -1;
	}
	return 0;
}

void keyfile_out_abort(struct keyfile_out *o)
{
	if (o->fd >= 0)
		close(o->fd);
	o->fd = -1;
	unlink(o->tmp[0] ? o->tmp : o->path);
}

int keyfile_out_commit(struct keyfile_out *o, const cJSON *doc)
{
	char *text = cJSON_Print(doc);
	if (!text) {
		keyfile_out_abort(o);
		return cli_err("out of memory"), -1;
	}
	size_t len = strlen(text), off = 0;
	int rc = 0;
	while (off < len && rc == 0) {
		ssize_t w = write(o->fd, text + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			rc = -1;
		else
			off += (size_t)w;
	}
	sodium_memzero(text, len);
	free(text);
	if (rc == 0 && (write(o->fd, "\n", 1) != 1 || fsync(o->fd) != 0))
		rc = -1;
	if (rc != 0) {
		cli_err("%s: %s", o->path, strerror(errno));
		keyfile_out_abort(o);
		return -1;
	}
	if (close(o->fd) != 0) {
		o->fd = -1;
		cli_err("%s: %s", o->path, strerror(errno));
		keyfile_out_abort(o);
		return -1;
	}
	o->fd = -1;
	if (o->tmp[0] && rename(o->tmp, o->path) != 0) {
		cli_err("%s: %s", o->path, strerror(errno));
		keyfile_out_abort(o);
		return -1;
	}
	return 0;
}

cJSON *keyfile_key_json(const struct keyfile_key *k)
{
	char sk_hex[129];
	cJSON *doc = cJSON_CreateObject();
	hex_encode(k->sk, sizeof k->sk, sk_hex);
	if (doc && (!cJSON_AddStringToObject(doc, "pubkey", k->pubkey) ||
		    !cJSON_AddStringToObject(doc, "secretKey", sk_hex))) {
		keyfile_json_free(doc);
		doc = NULL;
	}
	sodium_memzero(sk_hex, sizeof sk_hex);
	return doc;
}

cJSON *keyfile_peer_json(const struct keyfile_peer *p)
{
	char sk_hex[129];
	cJSON *doc = cJSON_CreateObject();
	hex_encode(p->key.sk, sizeof p->key.sk, sk_hex);
	if (doc && (!cJSON_AddStringToObject(doc, "broker", p->broker) ||
		    !cJSON_AddStringToObject(doc, "meshId", p->mesh_id) ||
		    !cJSON_AddStringToObject(doc, "memberId", p->member_id) ||
		    !cJSON_AddStringToObject(doc, "displayName", p->display_name) ||
		    !cJSON_AddStringToObject(doc, "pubkey", p->key.pubkey) ||
		    !cJSON_AddStringToObject(doc, "secretKey", sk_hex) ||
		    (p->api_key[0] && !cJSON_AddStringToObject(doc, "apiKey", p->api_key)))) {
		keyfile_json_free(doc);
		doc = NULL;
	}
	sodium_memzero(sk_hex, sizeof sk_hex);
	return doc;
}

static void keyfile_wipe_strings(cJSON *node)
{
	for (; node; node = node->next) {
		if (cJSON_IsString(node) && node->valuestring)
			sodium_memzero(node->valuestring, strlen(node->valuestring));
		keyfile_wipe_strings(node->child);
	}
}

void keyfile_json_free(cJSON *doc)
{
	if (!doc)
		return;
	keyfile_wipe_strings(doc->child);
	cJSON_Delete(doc);
}

int keyfile_keygen(int argc, char **argv)
{
	static const struct cli_optspec spec[] = {{"out", 1}, {"force", 0}, {NULL, 0}};
	struct cli_opts o;
	struct keyfile_out out;
	struct keyfile_key k;
	if (cli_opts_parse(argc, argv, spec, &o) != 0)
		return CLI_EXIT_USAGE;
	const char *path = cli_opt(&o, "out");
	if (o.npos != 0 || !path || !*path)
		return cli_usage_err("usage: meshctl keygen --out FILE [--force]");
	if (keyfile_out_open(&out, path, cli_opt(&o, "force") != NULL) != 0)
		return CLI_EXIT_FAIL;
	memset(&k, 0, sizeof k);
	crypto_sign_keypair(k.pk, k.sk);
	hex_encode(k.pk, sizeof k.pk, k.pubkey);
	k.has_secret = 1;
	cJSON *doc = keyfile_key_json(&k);
	sodium_memzero(k.sk, sizeof k.sk);
	if (!doc) {
		keyfile_out_abort(&out);
		return cli_err("out of memory");
	}
	int rc = keyfile_out_commit(&out, doc);
	keyfile_json_free(doc);
	if (rc != 0)
		return CLI_EXIT_FAIL;
	printf("%s\n", k.pubkey);
	return fflush(stdout) == 0 ? 0 : CLI_EXIT_FAIL;
}
