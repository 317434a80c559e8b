/* invitecmd — invites and joining (see invitecmd.h).  An invite is signed
 * with the mesh owner's key file (the one `mesh create` wrote, or --owner-key)
 * and recorded in mesh.invite; the broker's POST /join is the only place a
 * token turns into a member. */
#include "invitecmd.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "admin.h"
#include "adminref.h"
#include "cli.h"
#include "common/util.h"
#include "db/store_admin.h"
#include "http.h"
#include "keyfile.h"
#include "proto/invite.h"

#define INVITE_DEFAULT_EXPIRES (24LL * 3600)
#define INVITE_MAX_USES        1000000
#define JOIN_NAME_MAX          127

int invitecmd_create(int argc, char **argv)
{
	static const struct cli_optspec spec[] = {
	    {"role", 1}, {"max-uses", 1}, {"expires", 1}, {"owner-key", 1}, {NULL, 0}};
	struct cli_opts o;
	long max_uses = 1;
	long long expires = INVITE_DEFAULT_EXPIRES;
	const char *role = "member";
	char key_path[512], root_key[64], sig[129], id[ID_LEN + 1];
	unsigned char raw[32];
	struct keyfile_key k;
	struct mesh_row m;
	struct admin_db *c = NULL;
	int rc = CLI_EXIT_FAIL;

	if (cli_opts_parse(argc, argv, spec, &o) != 0)
		return CLI_EXIT_USAGE;
	if (o.npos != 1)
		return cli_usage_err("usage: meshctl invite create MESH [--role member|admin] [--max-uses N] "
		                     "[--expires 24h] [--owner-key KEYFILE]");
	if (cli_opt(&o, "role")) {
		role = cli_opt(&o, "role");
		if (strcmp(role, "member") && strcmp(role, "admin"))
			return cli_usage_err("--role must be member or admin");
	}
	if (cli_opt(&o, "max-uses") && parse_pos_int(cli_opt(&o, "max-uses"), INVITE_MAX_USES, &max_uses) != 0)
		return cli_usage_err("--max-uses must be an integer 1..%d", INVITE_MAX_USES);
	if (cli_opt(&o, "expires") && adminref_duration(cli_opt(&o, "expires"), &expires) != 0)
		return cli_usage_err("--expires must be a duration such as 90s, 30m, 24h or 7d (at most 366d)");
	if (!(c = admin_connect()))
		return CLI_EXIT_FAIL;
	if (adminref_mesh(c, o.pos[0], 0, &m) != 0) {
		store_admin_close(c);
		return CLI_EXIT_FAIL;
	}
	if (cli_opt(&o, "owner-key"))
		snprintf(key_path, sizeof key_path, "%s", cli_opt(&o, "owner-key"));
	else
		snprintf(key_path, sizeof key_path, "%s.owner.key", m.slug);
	memset(&k, 0, sizeof k);
	if (keyfile_read_key(key_path, 1, &k) != 0) {
		if (!cli_opt(&o, "owner-key"))
			cli_err("the owner key of mesh %s is needed to sign (give --owner-key KEYFILE)", m.slug);
		goto out;
	}
	if (strcasecmp(k.pubkey, m.owner_pubkey) != 0) {
		cli_err("%s is not the owner key of mesh %s (owner %.16s…)", key_path, m.slug, m.owner_pubkey);
		goto out;
	}
	randombytes_buf(raw, sizeof raw);
	sodium_bin2base64(root_key, sizeof root_key, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	/* the URL the invite carries is where joiners go: it must be one meshctl
	 * can reach, and from other machines a public wss:// one */
	struct http_target pub;
	char uerr[512];
	if (http_target_parse(cli_broker_url(&o, NULL), HTTP_PATH_KEEP, NULL, &pub, uerr, sizeof uerr) != 0) {
		cli_err("--broker: %s", uerr);
		goto out;
	}
	if (!pub.tls)
		fprintf(stderr, "meshctl: note: the invite carries %s (no TLS); for peers on other machines mint it "
			"with --broker wss://HOST/ws (docs/deploy.md §4)\n", cli_broker_url(&o, NULL));
	struct invite iv = {
	    .mesh_id = m.id,
	    .mesh_slug = m.slug,
	    .broker_url = cli_broker_url(&o, NULL),
	    .mesh_root_key = root_key,
	    .role = role,
	    .owner_pubkey = m.owner_pubkey,
	    .expires_at = now_ms() / 1000 + expires,
	};
	if (invite_sign(&iv, k.sk, sig) != 0) {
		cli_err("out of memory");
		goto out;
	}
	iv.signature = sig;
	cJSON *payload = invite_payload_json(&iv);
	char *token = payload ? invite_token_encode(payload) : NULL;
	cJSON_Delete(payload);
	if (!token) {
		cli_err("out of memory");
		goto out;
	}
	id_new(id);
	struct invite_row row = {.id = id, .mesh_id = m.id, .token = token, .role = role, .max_uses = max_uses};
	if (store_invite_insert(c, &row, (long long)iv.expires_at) != 0) {
		admin_db_err(c);
		free(token);
		goto out;
	}
	printf("%s\nic://join/%s\n", token, token);
	fprintf(stderr, "meshctl: invite %s to mesh %s: role %s, %ld use%s, expires in %llds\n", id, m.slug, role,
	        max_uses, max_uses == 1 ? "" : "s", expires);
	free(token);
	rc = fflush(stdout) == 0 ? 0 : CLI_EXIT_FAIL;
out:
	sodium_memzero(k.sk, sizeof k.sk);
	store_mesh_row_free(&m);
	store_admin_close(c);
	return rc;
}

static void invite_print(void *arg, const struct invite_row *r)
{
	(void)arg;
	const char *state = r->revoked                     ? "revoked"
	                    : r->expired                   ? "expired"
	                    : r->used_count >= r->max_uses ? "exhausted"
	                                                   : "live";
	printf("%s\t%s\t%s\t%ld/%ld\texpires %s\ttoken %.12s…\n", r->id, state, r->role, r->used_count, r->max_uses,
	       r->expires_at, r->token);
}

static int invite_list_rows(struct admin_db *c, const char *mesh_id)
{
	return store_invite_list(c, mesh_id, invite_print, NULL);
}

static const struct adminref_kind invite_kind = {
	.list_usage = "usage: meshctl invite list MESH",
	.revoke_usage = "usage: meshctl invite revoke MESH INVITE_ID|TOKEN",
	.what = "invite",
	.list = invite_list_rows,
	.revoke = store_invite_revoke,
};

int invitecmd_list(int argc, char **argv)
{
	return adminref_list(&invite_kind, argc, argv);
}

int invitecmd_revoke(int argc, char **argv)
{
	return adminref_revoke(&invite_kind, argc, argv);
}

/* ---- join ---- */

/* the token of "ic://join/<token>", an https://…/join/<token> link or a
 * bare token (links taken apart by curl's URL API) into out; -1 too long */
static int join_token_of(const char *link, char *out, size_t cap)
{
	CURLU *h = strchr(link, ':') ? curl_url() : NULL;
	char *scheme = NULL, *host = NULL, *path = NULL;
	const char *tok = link, *j;
	if (h && curl_url_set(h, CURLUPART_URL, link, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
	    curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(h, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
	    curl_url_get(h, CURLUPART_PATH, &path, 0) == CURLUE_OK) {
		if (!strcasecmp(scheme, "ic") && !strcasecmp(host, "join"))
			tok = path + (path[0] == '/');
		else if ((j = strstr(path, "/join/")))
			tok = j + 6;
	}
	int r = str_copy(out, cap, tok);
	curl_free(scheme);
	curl_free(host);
	curl_free(path);
	curl_url_cleanup(h);
	return r;
}

/* the broker for /join: --broker > MESHBROKER_URL > the invite's broker_url
 * (ws/wss/http/https; /join is at the root, whatever the URL's path) */
static int join_target(const struct cli_opts *o, const char *invite_broker, struct http_target *t, char *ws,
		       size_t wscap)
{
	char err[512];
	const char *url = cli_opt(o, "broker");
	if (!url || !*url)
		url = getenv("MESHBROKER_URL");
	if (!url || !*url)
		url = invite_broker;
	if (!url || !*url)
		url = CLI_DEFAULT_BROKER;
	snprintf(ws, wscap, "%s", url);
	if (http_target_parse(url, HTTP_PATH_ROOT, "/join", t, err, sizeof err) != 0)
		return cli_err("broker URL: %s", err), -1;
	return 0;
}

int invitecmd_join(int argc, char **argv)
{
	static const struct cli_optspec spec[] = {{"name", 1}, {"out", 1}, {"force", 0}, {NULL, 0}};
	struct cli_opts o;
	struct http_target t;
	struct keyfile_out out;
	struct keyfile_peer peer;
	struct invite iv;
	struct http_resp resp = {0};
	char err[512], out_path[512], name[JOIN_NAME_MAX + 1], ws[1024], token[8192];
	int rc = CLI_EXIT_FAIL, have_out = 0;
	cJSON *payload = NULL, *req = NULL, *ans = NULL;
	char *body = NULL;

	if (cli_opts_parse(argc, argv, spec, &o) != 0)
		return CLI_EXIT_USAGE;
	if (o.npos != 1)
		return cli_usage_err("usage: meshctl join ic://join/TOKEN [--name NAME] [--out PEERCONFIG] [--force]");
	if (join_token_of(o.pos[0], token, sizeof token) != 0)
		return cli_usage_err("the invite link is too long");
	payload = invite_token_decode(token);
	if (!payload || invite_fields(payload, &iv) != 0)
		return cli_err("not an invite link or token (expected ic://join/<token>)"), cJSON_Delete(payload),
		       CLI_EXIT_FAIL;
	if (!invite_verify(&iv)) {
		cJSON_Delete(payload);
		return cli_err("the invite's signature does not verify (a damaged or forged link)");
	}
	if (iv.expires_at <= now_ms() / 1000) {
		cJSON_Delete(payload);
		return cli_err("the invite expired");
	}
	const char *nm = cli_opt(&o, "name");
	if (!nm)
		nm = getenv("USER");
	if (!nm || !*nm)
		nm = "peer";
	if (str_copy(name, sizeof name, nm) != 0) {
		cJSON_Delete(payload);
		return cli_usage_err("--name must be 1-%d bytes", JOIN_NAME_MAX);
	}
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p < 0x20 || *p == 0x7f) {
			cJSON_Delete(payload);
			return cli_usage_err("--name must not hold control characters");
		}
	if (cli_opt(&o, "out"))
		snprintf(out_path, sizeof out_path, "%s", cli_opt(&o, "out"));
	else
		snprintf(out_path, sizeof out_path, "%s.json", iv.mesh_slug[0] ? iv.mesh_slug : "mesh");
	if (join_target(&o, iv.broker_url, &t, ws, sizeof ws) != 0)
		goto done;
	/* the output file first: a clash is found before the broker counts a use */
	if (keyfile_out_open(&out, out_path, cli_opt(&o, "force") != NULL) != 0)
		goto done;
	have_out = 1;
	memset(&peer, 0, sizeof peer);
	crypto_sign_keypair(peer.key.pk, peer.key.sk);
	hex_encode(peer.key.pk, sizeof peer.key.pk, peer.key.pubkey);
	peer.key.has_secret = 1;
	req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "invite_token", token);
	cJSON_AddItemReferenceToObject(req, "invite_payload", payload);
	cJSON_AddStringToObject(req, "peer_pubkey", peer.key.pubkey);
	cJSON_AddStringToObject(req, "display_name", name);
	body = cJSON_PrintUnformatted(req);
	if (!body) {
		cli_err("out of memory");
		goto done;
	}
	if (http_request("POST", &t, NULL, body, &resp, err, sizeof err) != 0) {
		cli_err("join: %s", err);
		goto done;
	}
	ans = cJSON_ParseWithLength(resp.body, resp.body_len);
	const cJSON *okv = cJSON_GetObjectItemCaseSensitive(ans, "ok");
	const cJSON *mid = cJSON_GetObjectItemCaseSensitive(ans, "memberId");
	if (!cJSON_IsTrue(okv) || !cJSON_IsString(mid)) {
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(ans, "error");
		cli_err("join refused: HTTP %d %s", resp.status,
		        cJSON_IsString(e) ? e->valuestring : "(no JSON error in the answer)");
		goto done;
	}
	if (str_copy(peer.member_id, sizeof peer.member_id, mid->valuestring) != 0 ||
	    str_copy(peer.mesh_id, sizeof peer.mesh_id, iv.mesh_id) != 0) {
		cli_err("join: the broker's answer does not fit a peer config");
		goto done;
	}
	snprintf(peer.broker, sizeof peer.broker, "%s", ws);
	snprintf(peer.display_name, sizeof peer.display_name, "%s", name);
	cJSON *doc = keyfile_peer_json(&peer);
	if (!doc) {
		cli_err("out of memory");
		goto done;
	}
	int w = keyfile_out_commit(&out, doc);
	keyfile_json_free(doc);
	if (w != 0) {
		have_out = 0;
		goto done;
	}
	have_out = 0;
	printf("%s\n", peer.member_id);
	fprintf(stderr, "meshctl: joined mesh %s as %s (member %s); peer config %s\n", iv.mesh_slug, name,
	        peer.member_id, out_path);
	rc = fflush(stdout) == 0 ? 0 : CLI_EXIT_FAIL;
done:
	if (have_out)
		keyfile_out_abort(&out);
	sodium_memzero(&peer, sizeof peer);
	cJSON_Delete(ans);
	free(resp.body);
	if (body) {
		sodium_memzero(body, strlen(body));
		free(body);
	}
	cJSON_Delete(req);
	cJSON_Delete(payload);
	return rc;
}
