/* store_groups — see store_groups.h.  Statements sit next to the column
 * constants of their results (in the header); the SQL functions they call are
 * migration 0006's. */
#include "db/store_groups.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/store_call.h"

#define ISO_SQL(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

struct store_table {
	const PGresult *res;
};

const char *store_table_get(const struct store_table *t, int row, int col)
{
	if (!t || row < 0 || row >= PQntuples(t->res) || col < 0 || col >= PQnfields(t->res))
		return NULL;
	return store_val(t->res, row, col);
}

int store_table_rows(const struct store_table *t)
{
	return t ? PQntuples(t->res) : 0;
}

struct call {
	store_table_cb cb;
	void *arg;
};

static void table_adapter(void *arg, const PGresult *res, const char *err)
{
	struct call *c = arg;
	if (!err && !res)
		err = "no result";
	struct store_table t = {res};
	if (c->cb)
		c->cb(c->arg, err ? NULL : &t, err);
	free(c);
}

static int table_call(struct db *d, const char *sql, int n, const char *const *p, store_table_cb cb, void *arg)
{
	struct call c = {cb, arg};
	return store_call_send(d, sql, n, p, table_adapter, &c, sizeof c);
}

/* ---- groups ---- */

int store_group_send(struct db *d, const struct group_send *s, store_table_cb cb, void *arg)
{
	char *live = store_text_array(s->live_members, s->n_live);
	char *vis = store_text_array(s->visible, s->n_visible);
	const char *p[] = {s->id,     s->mesh_id, s->sender,     s->sender_name, s->session_pubkey,
	                   s->target, s->group,   s->priority,   s->nonce,       s->ciphertext,
	                   live,      vis,        s->client_key, s->client_id,   s->fingerprint};
	int r = table_call(d,
	                   "SELECT member, status, first_id FROM mesh.send_group($1, $2, $3, $4, $5, $6, $7, $8, $9, "
	                   "$10, $11::text[], $12::text[], $13, $14, $15)",
	                   15, p, cb, arg);
	free(live);
	free(vis);
	return r;
}

int store_presence_group(struct db *d, const char *presence_id, int join, const char *name, const char *role, int max,
                         store_table_cb cb, void *arg)
{
	char maxbuf[16];
	snprintf(maxbuf, sizeof maxbuf, "%d", max);
	const char *p[] = {presence_id, join ? "true" : "false", name, role, maxbuf};
	return table_call(d, "SELECT mesh.presence_group($1, $2::boolean, $3, $4, $5::int)", 5, p, cb, arg);
}

int store_presence_visible(struct db *d, const char *presence_id, int visible, store_table_cb cb, void *arg)
{
	const char *p[] = {presence_id, visible ? "true" : "false"};
	return table_call(
	    d,
	    "WITH p AS (UPDATE mesh.presence SET visible = $2::boolean WHERE id = $1 RETURNING member_id) "
	    "UPDATE mesh.member SET saved_visible = $2::boolean WHERE id IN (SELECT member_id FROM p)",
	    2, p, cb, arg);
}

int store_presence_profile(struct db *d, const char *presence_id, const char *profile_json, store_table_cb cb,
                           void *arg)
{
	const char *p[] = {presence_id, profile_json};
	return table_call(d,
	                  "WITH p AS (UPDATE mesh.presence SET profile = coalesce(profile, '{}'::jsonb) || $2::jsonb "
	                  "WHERE id = $1 RETURNING member_id, profile) "
	                  "UPDATE mesh.member m SET saved_profile = p.profile FROM p WHERE m.id = p.member_id",
	                  2, p, cb, arg);
}

int store_presence_stats(struct db *d, const char *presence_id, const char *stats_json)
{
	const char *p[] = {presence_id, stats_json};
	return db_query(d, "UPDATE mesh.presence SET stats = $2::jsonb WHERE id = $1", 2, p, NULL, NULL);
}

int store_presence_extras(struct db *d, const char *const *ids, int n, store_table_cb cb, void *arg)
{
	char *arr = store_text_array(ids, n);
	const char *p[] = {arr};
	int r = table_call(d,
	                   "SELECT id, groups::text, profile::text, stats::text, channel, model, visible "
	                   "FROM mesh.presence WHERE id = ANY($1::text[])",
	                   1, p, cb, arg);
	free(arr);
	return r;
}

/* ---- moderation ---- */

#define MESH_LABEL_SQL "coalesce(nullif(ms.name, ''), nullif(ms.slug, ''), ms.id)"

int store_member_authority(struct db *d, const char *member_id, store_table_cb cb, void *arg)
{
	const char *p[] = {member_id};
	return table_call(d,
	                  "SELECT m.role, lower(m.peer_pubkey) = lower(ms.owner_pubkey), " MESH_LABEL_SQL " "
	                  "FROM mesh.member m JOIN mesh.mesh ms ON ms.id = m.mesh_id WHERE m.id = $1",
	                  1, p, cb, arg);
}

int store_mesh_label(struct db *d, const char *mesh_id, store_table_cb cb, void *arg)
{
	const char *p[] = {mesh_id};
	return table_call(d, "SELECT " MESH_LABEL_SQL " FROM mesh.mesh ms WHERE ms.id = $1", 1, p, cb, arg);
}

int store_member_match(struct db *d, const char *mesh_id, const char *who, int revoked, store_table_cb cb, void *arg)
{
	const char *p[] = {mesh_id, who, revoked ? "true" : "false"};
	return table_call(d,
	                  "SELECT m.id, m.display_name, m.peer_pubkey, lower(m.peer_pubkey) = lower(ms.owner_pubkey) "
	                  "FROM mesh.member m JOIN mesh.mesh ms ON ms.id = m.mesh_id "
	                  "WHERE m.mesh_id = $1 AND (m.revoked_at IS NOT NULL) = $3::boolean "
	                  "AND (m.display_name = $2 OR lower(m.peer_pubkey) = lower($2) "
	                  "OR (length($2) >= 8 AND left(lower(m.peer_pubkey), length($2)) = lower($2))) "
	                  "ORDER BY m.joined_at, m.id LIMIT 16",
	                  3, p, cb, arg);
}

int store_member_set_revoked(struct db *d, const char *member_id, int revoked, store_table_cb cb, void *arg)
{
	const char *p[] = {member_id};
	return table_call(d,
	                  /* mesh.close_reason: 0012's trigger closes the member's
	                   * connections on every host "banned", not "revoked" */
	                  revoked ? "UPDATE mesh.member SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL "
	                            "AND set_config('mesh.close_reason', '4', true) = '4' RETURNING id"
	                          : "UPDATE mesh.member SET revoked_at = NULL WHERE id = $1 AND revoked_at IS NOT NULL "
	                            "RETURNING id",
	                  1, p, cb, arg);
}

int store_member_bans(struct db *d, const char *mesh_id, store_table_cb cb, void *arg)
{
	const char *p[] = {mesh_id};
	return table_call(
	    d,
	    "SELECT display_name, peer_pubkey, " ISO_SQL(
	        "revoked_at") " FROM mesh.member "
	                      "WHERE mesh_id = $1 AND revoked_at IS NOT NULL ORDER BY revoked_at DESC, id",
	    1, p, cb, arg);
}

int store_member_roster(struct db *d, const char *mesh_id, store_table_cb cb, void *arg)
{
	const char *p[] = {mesh_id};
	return table_call(d,
	                  "SELECT m.id, m.display_name, m.peer_pubkey, " MESH_LABEL_SQL " "
	                  "FROM mesh.member m JOIN mesh.mesh ms ON ms.id = m.mesh_id "
	                  "WHERE m.mesh_id = $1 AND m.revoked_at IS NULL ORDER BY m.display_name, m.id LIMIT 1000",
	                  1, p, cb, arg);
}

int store_group_members(struct db *d, const char *mesh_id, const char *sender, const char *group,
                        const char *const *live_members, int n_live, const char *const *visible, int n_visible,
                        store_table_cb cb, void *arg)
{
	char *live = store_text_array(live_members, n_live);
	char *vis = store_text_array(visible, n_visible);
	const char *p[] = {mesh_id, sender, group, live, vis};
	int r = table_call(d,
	                   "SELECT m.id, m.display_name, m.peer_pubkey, " MESH_LABEL_SQL " "
	                   "FROM mesh.group_recipients($1, $2, $3, $4::text[], $5::text[]) r "
	                   "JOIN mesh.member m ON m.id = r JOIN mesh.mesh ms ON ms.id = m.mesh_id "
	                   "ORDER BY m.display_name, m.id LIMIT 1000",
	                   5, p, cb, arg);
	free(live);
	free(vis);
	return r;
}

/* ---- API keys ---- */

int store_apikey_ws_create(struct db *d, const struct apikey_new *k, store_table_cb cb, void *arg)
{
	char *scopes = k->n_scopes >= 0 ? store_text_array(k->scopes, k->n_scopes) : NULL;
	const char *p[] = {k->id, k->mesh_id, k->issuer, k->label, k->hash, k->prefix, k->caps, scopes, k->expires_ms};
	int r = table_call(d,
	                   "INSERT INTO mesh.api_key (id, mesh_id, issuer_member_id, label, secret_hash, prefix, "
	                   "capabilities, topic_scopes, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7::text[], "
	                   "$8::text[], to_timestamp($9::bigint / 1000.0)) RETURNING " ISO_SQL("created_at"),
	                   9, p, cb, arg);
	free(scopes);
	return r;
}

int store_apikey_ws_list(struct db *d, const char *mesh_id, const char *issuer, store_table_cb cb, void *arg)
{
	const char *p[] = {mesh_id, issuer};
	return table_call(d,
	                  "SELECT id, label, prefix, to_jsonb(capabilities)::text, "
	                  "to_jsonb(topic_scopes)::text, " ISO_SQL("created_at") ", " ISO_SQL(
	                      "last_used_at") ", " ISO_SQL("revoked_at") ", " ISO_SQL("expires_at") ", "
	                                                                                            "issuer_member_id "
	                                                                                            "FROM mesh.api_key "
	                                                                                            "WHERE mesh_id = "
	                                                                                            "$1 AND ($2::text "
	                                                                                            "IS NULL OR "
	                                                                                            "issuer_member_id "
	                                                                                            "= $2) "
	                                                                                            "ORDER BY "
	                                                                                            "created_at DESC, "
	                                                                                            "id LIMIT 1000",
	                  2, p, cb, arg);
}

int store_apikey_ws_revoke(struct db *d, const char *mesh_id, const char *issuer, const char *which, store_table_cb cb,
                           void *arg)
{
	const char *p[] = {mesh_id, issuer, which};
	return table_call(
	    d,
	    "WITH k AS (SELECT id FROM mesh.api_key WHERE mesh_id = $1 "
	    "AND ($2::text IS NULL OR issuer_member_id = $2) "
	    "AND (id = $3 OR (length($3) >= 6 AND left(id, length($3)) = $3)) ORDER BY id = $3 DESC LIMIT 2), "
	    "pick AS (SELECT id FROM k WHERE id = $3 UNION ALL "
	    "SELECT id FROM k WHERE NOT EXISTS (SELECT 1 FROM k WHERE id = $3) "
	    "AND (SELECT count(*) FROM k) = 1), "
	    "u AS (UPDATE mesh.api_key SET revoked_at = coalesce(revoked_at, now()) "
	    "WHERE id IN (SELECT id FROM pick) RETURNING id) "
	    "SELECT CASE WHEN EXISTS (SELECT 1 FROM u) THEN 1 ELSE (SELECT count(*) FROM k) END, "
	    "(SELECT id FROM u LIMIT 1)",
	    3, p, cb, arg);
}

/* ---- more than one host (HOST_ID, worker/hosts.h) ---- */

int store_host_remote_peers(struct db *d, const char *host_id, const char *mesh_id, store_table_cb cb, void *arg)
{
	const char *p[] = {host_id, mesh_id};
	return table_call(d,
			  "SELECT r_presence_id, r_member_id, r_pubkey, r_session_pubkey, r_display_name, "
			  "r_session_id, r_pid, r_cwd, r_status, r_summary, r_hostname, r_peer_type, r_repo, "
			  "r_peer_role, r_visible, r_connected_at, r_host_id FROM mesh.host_remote_peers($1, $2)",
			  2, p, cb, arg);
}

int store_host_ring_replace(struct db *d, const char *host_id, const char *presence_id)
{
	const char *p[] = {host_id, presence_id};
	return table_call(d, "SELECT mesh.host_ring_replace($1, $2)", 2, p, NULL, NULL);
}

int store_host_hook_status(struct db *d, const char *host_id, const char *kind, const char *mesh_id,
                           const char *member_id, const char *session_id, long long pid, const char *cwd,
                           store_table_cb cb, void *arg)
{
	char pid_s[24];
	snprintf(pid_s, sizeof pid_s, "%lld", pid);
	const char *p[] = {host_id, kind, mesh_id, member_id, session_id, pid < 0 ? NULL : pid_s, cwd};
	return table_call(d, "SELECT mesh.host_hook_status($1, $2, $3, $4, $5, $6::int, $7)", 7, p, cb, arg);
}
