/* admin — mesh and member administration straight in PostgreSQL (see
 * admin.h).  The statements are db/store_admin.c's; every error is one line. */
#include "admin.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "proto/canon.h"
#include "db/migrations.h"
#include "db/store_admin.h"
#include "keyfile.h"
#include "liveclose.h"
#include "common/util.h"

#define ADMIN_NAME_MAX 127 /* display names fit the presence table (128 with NUL) */
#define ADMIN_MESH_NAME_MAX 200
#define ADMIN_SLUG_MAX 64

static const char *admin_database_url(void)
{
	const char *url = getenv("DATABASE_URL");
	if (!url || !*url) {
		cli_err("DATABASE_URL is not set");
		return NULL;
	}
	/* a URL must be PostgreSQL's; "key=value" connection strings pass as is */
	if (strstr(url, "://") && strncmp(url, "postgres://", 11) != 0 &&
	    strncmp(url, "postgresql://", 13) != 0) {
		cli_err("DATABASE_URL must start with postgres:// or postgresql://");
		return NULL;
	}
	return url;
}

/* a statement failed: its one-line reason */
int admin_db_err(struct admin_db *a) { return cli_err("database: %s", store_admin_error(a)); }

struct admin_db *admin_connect(void)
{
	char err[512];
	const char *url = admin_database_url();
	if (!url)
		return NULL;
	struct admin_db *a = store_admin_open(url, err, sizeof err);
	if (!a)
		cli_err("database: %s", err);
	return a;
}

int admin_migrate(int argc, char **argv)
{
	struct cli_opts o;
	char err[512] = "";
	if (cli_opts_parse(argc, argv, NULL, &o) != 0)
		return CLI_EXIT_USAGE;
	if (o.npos != 0)
		return cli_usage_err("usage: meshctl migrate");
	const char *url = admin_database_url();
	if (!url)
		return CLI_EXIT_FAIL;
	int n = migrations_apply(url, 1, err, sizeof err);
	if (n < 0)
		return cli_err("migrate: %s", err[0] ? err : "failed");
	printf("migrate: %d applied\n", n);
	return fflush(stdout) == 0 ? 0 : CLI_EXIT_FAIL;
}

int admin_slugify(const char *name, char *out, size_t cap)
{
	size_t n = 0;
	int dash = 0;
	for (const unsigned char *p = (const unsigned char *)name; *p && n + 1 < cap; p++) {
		unsigned char ch = *p;
		if (ch >= 'A' && ch <= 'Z')
			ch = (unsigned char)(ch - 'A' + 'a');
		if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')) {
			if (dash && n > 0) {
				if (n + 2 >= cap)
					break; /* no room for "-x": end at a word boundary */
				out[n++] = '-';
			}
			dash = 0;
			out[n++] = (char)ch;
		} else {
			dash = 1;
		}
	}
	out[n] = 0;
	return n ? 0 : -1;
}

static int admin_slug_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > ADMIN_SLUG_MAX || s[0] == '-' || s[0] == '_')
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
			return 0;
	return 1;
}

/* printable text without control characters, 1..max bytes */
static int admin_text_ok(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return 0;
	return 1;
}

int admin_mesh_create(int argc, char **argv)
{
	static const struct cli_optspec spec[] = {
		{"slug", 1}, {"owner-key", 1}, {"max-peers", 1}, {"force", 0}, {NULL, 0}};
	struct cli_opts o;
	char slug[ADMIN_SLUG_MAX + 1], id[ID_LEN + 1], key_path[ADMIN_SLUG_MAX + 16];
	char max_peers_buf[24];
	const char *max_peers = NULL;
	struct keyfile_key k;
	struct keyfile_out out;
	int have_out = 0, rc = CLI_EXIT_FAIL;
	struct admin_db *c = NULL;

	if (cli_opts_parse(argc, argv, spec, &o) != 0)
		return CLI_EXIT_USAGE;
	if (o.npos != 1)
		return cli_usage_err("usage: meshctl mesh create NAME [--slug S] [--owner-key KEYFILE] "
				     "[--max-peers N]");
	const char *name = o.pos[0];
	if (!admin_text_ok(name, ADMIN_MESH_NAME_MAX))
		return cli_usage_err("mesh name must be 1-%d printable bytes", ADMIN_MESH_NAME_MAX);
	if (cli_opt(&o, "slug")) {
		if (!admin_slug_ok(cli_opt(&o, "slug")))
			return cli_usage_err("--slug must be 1-%d of [a-z0-9_-], not starting with - or _",
					     ADMIN_SLUG_MAX);
		str_copy(slug, sizeof slug, cli_opt(&o, "slug"));
	} else if (admin_slugify(name, slug, 49) != 0) {
		return cli_usage_err("cannot make a slug of \"%s\"; give --slug", name);
	}
	if (cli_opt(&o, "max-peers")) {
		long v;
		if (parse_pos_int(cli_opt(&o, "max-peers"), 1000000, &v) != 0)
			return cli_usage_err("--max-peers must be a positive integer <= 1000000");
		snprintf(max_peers_buf, sizeof max_peers_buf, "%ld", v);
		max_peers = max_peers_buf;
	}

	memset(&k, 0, sizeof k);
	if (cli_opt(&o, "owner-key")) {
		if (keyfile_read_key(cli_opt(&o, "owner-key"), 0, &k) != 0)
			return CLI_EXIT_FAIL;
		sodium_memzero(k.sk, sizeof k.sk); /* only the public half is stored */
	} else {
		crypto_sign_keypair(k.pk, k.sk);
		hex_encode(k.pk, sizeof k.pk, k.pubkey);
		k.has_secret = 1;
		snprintf(key_path, sizeof key_path, "%s.owner.key", slug);
	}

	if (!(c = admin_connect()))
		goto out;
	char taken[ID_LEN + 1];
	int found = store_mesh_by_slug(c, slug, taken, sizeof taken);
	if (found < 0) {
		admin_db_err(c);
		goto out;
	}
	if (found) {
		cli_err("mesh slug \"%s\" is taken (mesh %s)", slug, taken);
		goto out;
	}
	if (!cli_opt(&o, "owner-key")) {
		if (keyfile_out_open(&out, key_path, cli_opt(&o, "force") != NULL) != 0)
			goto out;
		have_out = 1;
	}

	id_new(id);
	struct mesh_row m = {id, name, slug, k.pubkey, max_peers};
	if (store_admin_begin(c) != 0) {
		admin_db_err(c);
		goto out;
	}
	int inserted = store_mesh_insert(c, &m);
	if (inserted < 0) {
		admin_db_err(c);
		goto out;
	}
	if (!inserted) {
		cli_err("mesh slug \"%s\" is taken", slug);
		goto out;
	}
	if (have_out) {
		cJSON *doc = keyfile_key_json(&k);
		have_out = 0; /* commit removes its file itself on failure */
		int wrc = doc ? keyfile_out_commit(&out, doc) : (keyfile_out_abort(&out), -1);
		keyfile_json_free(doc);
		if (wrc != 0)
			goto out;
		if (store_admin_commit(c) != 0) {
			admin_db_err(c);
			unlink(key_path);
			goto out;
		}
	} else if (store_admin_commit(c) != 0) {
		admin_db_err(c);
		goto out;
	}
	printf("%s\n", id);
	rc = fflush(stdout) == 0 ? 0 : CLI_EXIT_FAIL;
out:
	if (have_out)
		keyfile_out_abort(&out);
	sodium_memzero(k.sk, sizeof k.sk);
	store_admin_close(c);
	return rc;
}

/* 0: mesh exists and is live; -1 after printing why not */
int admin_mesh_check(struct admin_db *c, const char *mesh_id, int allow_archived)
{
	int st = store_mesh_state(c, mesh_id);
	if (st < 0)
		return admin_db_err(c), -1;
	if (st == 0) {
		cli_err("no mesh with id %s", mesh_id);
		return -1;
	}
	if (!allow_archived && st == 2) {
		cli_err("mesh %s is archived", mesh_id);
		return -1;
	}
	return 0;
}

int admin_member_add(int argc, char **argv)
{
	static const struct cli_optspec spec[] = {
		{"key", 1}, {"name", 1}, {"role", 1}, {"out", 1}, {"force", 0}, {NULL, 0}};
	struct cli_opts o;
	struct keyfile_peer peer;
	struct keyfile_out out;
	int have_out = 0, rc = CLI_EXIT_FAIL;
	struct admin_db *c = NULL;

	if (cli_opts_parse(argc, argv, spec, &o) != 0)
		return CLI_EXIT_USAGE;
	const char *key_path = cli_opt(&o, "key"), *name = cli_opt(&o, "name");
	const char *role = cli_opt(&o, "role"), *out_path = cli_opt(&o, "out");
	if (o.npos != 1 || !key_path || !name)
		return cli_usage_err("usage: meshctl member add MESH_ID --key KEYFILE --name NAME "
				     "[--role admin|member] [--out PEERCONFIG] [--broker URL]");
	if (!role)
		role = "member";
	if (strcmp(role, "admin") != 0 && strcmp(role, "member") != 0)
		return cli_usage_err("--role must be admin or member");
	if (!admin_text_ok(name, ADMIN_NAME_MAX))
		return cli_usage_err("--name must be 1-%d printable bytes", ADMIN_NAME_MAX);
	memset(&peer, 0, sizeof peer);
	if (str_copy(peer.mesh_id, sizeof peer.mesh_id, o.pos[0]) != 0 || !o.pos[0][0])
		return cli_usage_err("bad mesh id");
	str_copy(peer.display_name, sizeof peer.display_name, name);
	if (out_path &&
	    str_copy(peer.broker, sizeof peer.broker, cli_broker_url(&o, NULL)) != 0)
		return cli_usage_err("broker URL too long");
	/* the secret is needed only to write it into the peer config */
	if (keyfile_read_key(key_path, out_path != NULL, &peer.key) != 0)
		return CLI_EXIT_FAIL;

	if (!(c = admin_connect()) || admin_mesh_check(c, peer.mesh_id, 0) != 0)
		goto out;
	char existing[ID_LEN + 8];
	int revoked = 0;
	int found = store_member_find(c, peer.mesh_id, peer.key.pubkey, existing, sizeof existing, &revoked);
	if (found < 0) {
		admin_db_err(c);
		goto out;
	}
	if (found) {
		cli_err("pubkey %s is already a member of mesh %s: %s%s", peer.key.pubkey, peer.mesh_id, existing,
			revoked ? " (revoked)" : "");
		goto out;
	}
	if (out_path) {
		if (keyfile_out_open(&out, out_path, cli_opt(&o, "force") != NULL) != 0)
			goto out;
		have_out = 1;
	}

	id_new(peer.member_id);
	if (store_admin_begin(c) != 0) {
		admin_db_err(c);
		goto out;
	}
	int inserted = store_member_insert(c, peer.member_id, peer.mesh_id, peer.key.pubkey, name, role);
	if (inserted < 0) {
		admin_db_err(c);
		goto out;
	}
	if (!inserted) {
		if (store_admin_rollback(c) != 0)
			admin_db_err(c);
		found = store_member_find(c, peer.mesh_id, peer.key.pubkey, existing, sizeof existing, &revoked);
		if (found < 0)
			admin_db_err(c);
		cli_err("pubkey %s is already a member of mesh %s: %s", peer.key.pubkey, peer.mesh_id,
			found > 0 ? existing : "?");
		goto out;
	}
	if (have_out) {
		cJSON *doc = keyfile_peer_json(&peer);
		have_out = 0;
		int wrc = doc ? keyfile_out_commit(&out, doc) : (keyfile_out_abort(&out), -1);
		keyfile_json_free(doc);
		if (wrc != 0)
			goto out;
		if (store_admin_commit(c) != 0) {
			admin_db_err(c);
			unlink(out_path);
			goto out;
		}
	} else if (store_admin_commit(c) != 0) {
		admin_db_err(c);
		goto out;
	}
	printf("%s\n", peer.member_id);
	rc = fflush(stdout) == 0 ? 0 : CLI_EXIT_FAIL;
out:
	if (have_out)
		keyfile_out_abort(&out);
	sodium_memzero(&peer.key, sizeof peer.key);
	store_admin_close(c);
	return rc;
}

static void admin_print_id(void *arg, const char *id)
{
	(void)arg;
	printf("%s\n", id);
}

/* a revoked member's id printed, and its live connections on this host
 * closed at once (close 4002 "revoked", cli/liveclose.h); its API keys and
 * its topics' key epochs were taken care of by the revocation itself
 * (migration 0010's trigger) */
static void admin_revoked(void *arg, const char *id)
{
	admin_print_id(arg, id);
	char err[256];
	int n = liveclose_member(id, err, sizeof err);
	if (n < 0)
		fprintf(stderr, "meshctl: member %s revoked, but its live connections could not be closed: %s\n", id,
			err);
	else if (n > 0)
		fprintf(stderr, "meshctl: closed %d live connection(s) of member %s\n", n, id);
}

int admin_member_revoke(int argc, char **argv)
{
	struct cli_opts o;
	int rc = CLI_EXIT_FAIL;
	char who[65];
	if (cli_opts_parse(argc, argv, NULL, &o) != 0)
		return CLI_EXIT_USAGE;
	if (o.npos != 2 || !o.pos[0][0] || !o.pos[1][0])
		return cli_usage_err("usage: meshctl member revoke MESH_ID MEMBER_ID|PUBKEY");
	if (str_copy(who, sizeof who, o.pos[1]) != 0)
		return cli_usage_err("no member id or pubkey is that long");
	if (is_hex(who, 64))
		for (char *p = who; *p; p++)
			if (*p >= 'A' && *p <= 'F')
				*p = (char)(*p - 'A' + 'a');
	struct admin_db *c = admin_connect();
	if (!c || admin_mesh_check(c, o.pos[0], 1) != 0)
		goto out;
	int n = store_member_revoke(c, o.pos[0], who, admin_revoked, NULL);
	if (n < 0) {
		admin_db_err(c);
		goto out;
	}
	if (n > 0) {
		rc = fflush(stdout) == 0 ? 0 : CLI_EXIT_FAIL;
		goto out;
	}
	char id[ID_LEN + 8];
	int found = store_member_lookup(c, o.pos[0], who, id, sizeof id);
	if (found < 0)
		admin_db_err(c);
	else if (found)
		cli_err("member %s is already revoked", id);
	else
		cli_err("no member %s in mesh %s", who, o.pos[0]);
out:
	store_admin_close(c);
	return rc;
}

/* one word-safe line: control characters become '?' */
static void admin_put_text(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		putchar(*p < 0x20 || *p == 0x7f ? '?' : *p);
}

static void admin_print_member(void *arg, const struct member_row *m)
{
	(void)arg;
	admin_put_text(m->id);
	putchar(' ');
	admin_put_text(m->pubkey);
	putchar(' ');
	admin_put_text(m->display_name);
	putchar(' ');
	admin_put_text(m->role);
	if (m->revoked)
		fputs(" revoked", stdout);
	putchar('\n');
}

int admin_member_list(int argc, char **argv)
{
	struct cli_opts o;
	int rc = CLI_EXIT_FAIL;
	if (cli_opts_parse(argc, argv, NULL, &o) != 0)
		return CLI_EXIT_USAGE;
	if (o.npos != 1 || !o.pos[0][0])
		return cli_usage_err("usage: meshctl member list MESH_ID");
	struct admin_db *c = admin_connect();
	if (!c || admin_mesh_check(c, o.pos[0], 1) != 0)
		goto out;
	if (store_member_list(c, o.pos[0], admin_print_member, NULL) != 0) {
		admin_db_err(c);
		goto out;
	}
	rc = fflush(stdout) == 0 ? 0 : CLI_EXIT_FAIL;
out:
	store_admin_close(c);
	return rc;
}
