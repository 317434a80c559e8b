/* apikeycmd — API key administration (see apikeycmd.h). */
#include "apikeycmd.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin.h"
#include "cli.h"
#include "common/util.h"
#include "db/store_admin.h"
#include "adminref.h"
#include "keyfile.h"
#include "proto/apikey.h"

#define APIKEY_LIST_MAX       32 /* topics per key */
#define APIKEY_TOPIC_NAME_MAX 127
#define APIKEY_LABEL_MAX      200

/* "a,b,c" -> the PostgreSQL array text {"a","b","c"} (each item checked by
 * ok); NULL after a usage line */
static char *apikey_array(const char *list, const char *what, int (*ok)(const char *item, size_t n))
{
	size_t cap = strlen(list) * 2 + 8, len = 0;
	int count = 0;
	char *arr = malloc(cap);
	if (!arr)
		return cli_err("out of memory"), NULL;
	arr[len++] = '{';
	for (const char *p = list;;) {
		size_t n = strcspn(p, ",");
		if (!ok(p, n) || ++count > APIKEY_LIST_MAX) {
			free(arr);
			cli_usage_err("--%s: \"%.*s\" is not allowed here", what, (int)n, p);
			return NULL;
		}
		len += (size_t)snprintf(arr + len, cap - len, "%s\"%.*s\"", count > 1 ? "," : "", (int)n, p);
		p += n;
		if (!*p)
			break;
		p++;
	}
	arr[len++] = '}';
	arr[len] = 0;
	return arr;
}

static int cap_ok(const char *item, size_t n)
{
	char name[32];
	if (n == 0 || n >= sizeof name)
		return 0;
	memcpy(name, item, n);
	name[n] = 0;
	return apikey_cap_bit(name) != 0;
}

/* topic names: printable, no quotes, commas, braces or backslashes (they
 * would need escaping in the array text) */
static int topic_ok(const char *item, size_t n)
{
	if (n == 0 || n > APIKEY_TOPIC_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)item[i];
		if (ch <= 0x20 || ch == 0x7f || strchr("\"\\{},", ch))
			return 0;
	}
	return 1;
}

/* --member by name, as `meshctl send NAME` resolves it: the one live member
 * whose display name equals it (any case) */
struct by_name {
	const char *name;
	char id[ID_LEN + 8];
	int hits;
	char pubkeys[512];
};

static void by_name_row(void *arg, const struct member_row *m)
{
	struct by_name *b = arg;
	if (m->revoked || !m->display_name || strcasecmp(m->display_name, b->name) != 0)
		return;
	if (!b->hits++)
		snprintf(b->id, sizeof b->id, "%s", m->id);
	size_t l = strlen(b->pubkeys);
	if (l + 80 < sizeof b->pubkeys)
		snprintf(b->pubkeys + l, sizeof b->pubkeys - l, "%s%.64s", l ? ", " : "", m->pubkey ? m->pubkey : "");
}

/* who (a member id, pubkey in any case, or name) of mesh m: 0 with its id
 * in member, else an error said */
static int member_find(struct admin_db *c, const struct mesh_row *m, const char *who, char *member, size_t cap)
{
	char low[65];
	const char *key = who;
	if (is_hex(who, 64)) { /* pubkeys are stored lowercase */
		for (int i = 0; i < 65; i++)
			low[i] = (char)((who[i] >= 'A' && who[i] <= 'F') ? who[i] + 32 : who[i]);
		key = low;
	}
	int f = store_member_lookup(c, m->id, key, member, cap);
	if (f < 0) {
		admin_db_err(c);
		return -1;
	}
	if (f)
		return 0;
	struct by_name b = {.name = who};
	if (store_member_list(c, m->id, by_name_row, &b) < 0) {
		admin_db_err(c);
		return -1;
	}
	if (b.hits == 1) {
		snprintf(member, cap, "%s", b.id);
		return 0;
	}
	if (b.hits > 1)
		cli_err("\"%s\" is ambiguous: %d members of mesh %s have that name; give one pubkey of: %s", who, b.hits,
		        m->slug, b.pubkeys);
	else
		cli_err("no member \"%s\" in mesh %s (a member name, id or pubkey)", who, m->slug);
	return -1;
}

int apikeycmd_create(int argc, char **argv)
{
	static const struct cli_optspec spec[] = {{"caps", 1},  {"topics", 1}, {"expires", 1}, {"member", 1},
	                                          {"label", 1}, {"add-to", 1}, {NULL, 0}};
	struct cli_opts o;
	struct mesh_row m;
	struct keyfile_peer peer;
	struct keyfile_out out;
	char secret[APIKEY_SECRET_MAX + 1], hash[APIKEY_HASH_HEX], prefix[APIKEY_PREFIX_LEN + 1];
	char id[ID_LEN + 1], member[ID_LEN + 8], secs[24];
	char *caps = NULL, *topics = NULL;
	long long expires = 0;
	int rc = CLI_EXIT_FAIL, have_out = 0;
	struct admin_db *c = NULL;

	if (cli_opts_parse(argc, argv, spec, &o) != 0)
		return CLI_EXIT_USAGE;
	if (o.npos != 1 || !cli_opt(&o, "caps"))
		return cli_usage_err("usage: meshctl apikey create MESH --caps send,read[,state_write,admin,status] "
		                     "[--topics a,b] [--expires 30d] [--member NAME|MEMBER_ID|PUBKEY] [--label L] "
		                     "[--add-to PEERCONFIG]");
	if (!(caps = apikey_array(cli_opt(&o, "caps"), "caps", cap_ok)))
		return CLI_EXIT_USAGE;
	if (cli_opt(&o, "topics") && !(topics = apikey_array(cli_opt(&o, "topics"), "topics", topic_ok))) {
		free(caps);
		return CLI_EXIT_USAGE;
	}
	if (cli_opt(&o, "expires") && adminref_duration(cli_opt(&o, "expires"), &expires) != 0) {
		free(caps);
		free(topics);
		return cli_usage_err("--expires must be a duration such as 90s, 30m, 24h or 7d (at most 366d)");
	}
	const char *label = cli_opt(&o, "label");
	if (label && (strlen(label) > APIKEY_LABEL_MAX)) {
		free(caps);
		free(topics);
		return cli_usage_err("--label must be at most %d bytes", APIKEY_LABEL_MAX);
	}
	memset(&peer, 0, sizeof peer);
	memset(&m, 0, sizeof m);
	const char *who = cli_opt(&o, "member");
	if (cli_opt(&o, "add-to")) {
		if (keyfile_read_peer(cli_opt(&o, "add-to"), &peer) != 0)
			goto out;
		if (!who)
			who = peer.member_id; /* the config's own member issues the key */
	}
	if (!(c = admin_connect()) || adminref_mesh(c, o.pos[0], 1, &m) != 0)
		goto out;
	if (cli_opt(&o, "add-to") && strcmp(peer.mesh_id, m.id) != 0) {
		cli_err("%s is a peer config of another mesh", cli_opt(&o, "add-to"));
		goto out;
	}
	if (who && member_find(c, &m, who, member, sizeof member) != 0)
		goto out;
	if (cli_opt(&o, "add-to")) {
		if (keyfile_out_open(&out, cli_opt(&o, "add-to"), 1) != 0)
			goto out;
		have_out = 1;
	}
	apikey_generate(secret, sizeof secret);
	apikey_hash(secret, hash);
	memcpy(prefix, secret, APIKEY_PREFIX_LEN);
	prefix[APIKEY_PREFIX_LEN] = 0;
	snprintf(secs, sizeof secs, "%lld", expires);
	id_new(id);
	struct apikey_admin_row row = {
	    .id = id,
	    .mesh_id = m.id,
	    .issuer_member_id = who ? member : NULL,
	    .label = label,
	    .secret_hash = hash,
	    .prefix = prefix,
	    .capabilities = caps,
	    .topic_scopes = topics,
	    .expires_at = expires ? secs : NULL,
	};
	if (store_apikey_insert(c, &row) != 0) {
		admin_db_err(c);
		goto out;
	}
	if (have_out) {
		snprintf(peer.api_key, sizeof peer.api_key, "%s", secret);
		cJSON *doc = keyfile_peer_json(&peer);
		int w = doc ? keyfile_out_commit(&out, doc) : -1;
		keyfile_json_free(doc);
		have_out = 0;
		if (w != 0) {
			cli_err("the key %s was created but not saved to %s; revoke it", id, cli_opt(&o, "add-to"));
			goto out;
		}
		fprintf(stderr, "meshctl: the key is saved in %s (\"apiKey\")\n", cli_opt(&o, "add-to"));
	}
	printf("%s\n", secret);
	fprintf(stderr,
	        "meshctl: api key %s (prefix %s) for mesh %s%s%s: caps %s; shown once, only its hash is "
	        "stored\n",
	        id, prefix, m.slug, who ? ", member " : " (mesh-wide)", who ? member : "", cli_opt(&o, "caps"));
	rc = fflush(stdout) == 0 ? 0 : CLI_EXIT_FAIL;
out:
	if (have_out)
		keyfile_out_abort(&out);
	sodium_memzero(secret, sizeof secret);
	sodium_memzero(&peer, sizeof peer);
	free(caps);
	free(topics);
	store_mesh_row_free(&m);
	store_admin_close(c);
	return rc;
}

static void apikey_print(void *arg, const struct apikey_admin_row *r)
{
	(void)arg;
	printf("%s\t%s\t%s\tcaps %s\ttopics %s\tissuer %s\texpires %s\tlast used %s\t%s\n", r->id, r->prefix,
	       r->revoked ? "revoked" : "live", r->capabilities, r->topic_scopes ? r->topic_scopes : "*",
	       r->issuer_member_id ? r->issuer_member_id : "-", r->expires_at ? r->expires_at : "never",
	       r->last_used_at ? r->last_used_at : "never", r->label ? r->label : "");
}

static int apikey_list_rows(struct admin_db *c, const char *mesh_id)
{
	return store_apikey_list(c, mesh_id, apikey_print, NULL);
}

static const struct adminref_kind apikey_kind = {
	.list_usage = "usage: meshctl apikey list MESH",
	.revoke_usage = "usage: meshctl apikey revoke MESH KEY_ID|PREFIX",
	.what = "api key",
	.allow_archived = 1,
	.list = apikey_list_rows,
	.revoke = store_apikey_revoke,
};

int apikeycmd_list(int argc, char **argv)
{
	return adminref_list(&apikey_kind, argc, argv);
}

int apikeycmd_revoke(int argc, char **argv)
{
	return adminref_revoke(&apikey_kind, argc, argv);
}
