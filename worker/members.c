/* members — list_members (see members.h): one statement, answered from its
 * callback as members_list{mesh, members:[{memberId, pubkey, displayName,
 * self}], _reqId?}.  With group (docs/protocol.md §12.8): only the members
 * a send to '@group' would reach right now (groups_members, the rule of the
 * send itself), so a client can seal an '@group' message per member. */
#include "worker/members.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "db/store_groups.h"
#include "worker/groups.h"
#include "worker/ws.h"

#define MEMBERS_GROUP_MAX 128 /* a group name's bytes (an '@group' target is at most 129) */

struct members_req {
	struct worker *w;
	int has_req;
	char reqid[129];
	char group[MEMBERS_GROUP_MAX + 1]; /* list_members{group}: echoed, "" without */
};

static const char *req_of(const struct members_req *r)
{
	return r->has_req ? r->reqid : NULL;
}

static void roster_cb(void *arg, const struct store_table *t, const char *err)
{
	struct members_req *r = arg;
	struct worker *w = r->w;
	if (err) {
		log_warn("list_members: statement failed", "error", err);
		groups_error(w, "internal", "database unavailable, try again", req_of(r));
		free(r);
		return;
	}
	cJSON *reply = groups_reply("members_list", req_of(r));
	const char *label = store_table_rows(t) ? store_table_get(t, 0, ML_MESH) : NULL;
	cJSON_AddStringToObject(reply, "meshId", w->me.mesh_id);
	cJSON_AddStringToObject(reply, "mesh", label ? label : w->me.mesh_id);
	if (r->group[0]) /* echoed: a client sees that the list is the group's (an older broker ignores group) */
		cJSON_AddStringToObject(reply, "group", r->group);
	cJSON *arr = cJSON_AddArrayToObject(reply, "members");
	for (int i = 0; i < store_table_rows(t); i++) {
		const char *id = store_table_get(t, i, ML_ID);
		cJSON *m = cJSON_CreateObject();
		cJSON_AddStringToObject(m, "memberId", id);
		cJSON_AddStringToObject(m, "pubkey", store_table_get(t, i, ML_PUBKEY));
		cJSON_AddStringToObject(m, "displayName", store_table_get(t, i, ML_NAME));
		cJSON_AddBoolToObject(m, "self", strcmp(id, w->me.member_id) == 0);
		cJSON_AddItemToArray(arr, m);
	}
	ws_send_json(w, reply);
	cJSON_Delete(reply);
	free(r);
}

void members_on_list(struct worker *w, const cJSON *msg)
{
	struct members_req *r = calloc(1, sizeof *r);
	if (!r)
		log_fatal("out of memory");
	r->w = w;
	const char *reqid = groups_req_id(msg);
	if (reqid) {
		r->has_req = 1;
		memcpy(r->reqid, reqid, strlen(reqid) + 1);
	}
	const cJSON *g = cJSON_GetObjectItemCaseSensitive(msg, "group");
	const char *group = cJSON_IsString(g) ? g->valuestring + (g->valuestring[0] == '@') : NULL;
	if (g && !cJSON_IsNull(g) && (!group || !group[0] || strlen(group) > MEMBERS_GROUP_MAX)) {
		groups_error(w, "malformed", "list_members: group must be a group name (1 to 128 bytes, '@' optional)",
			     req_of(r));
		free(r);
		return;
	}
	if (group)
		memcpy(r->group, group, strlen(group) + 1);
	int q = group ? groups_members(w, strcmp(group, "all") ? group : NULL, roster_cb, r)
		      : store_member_roster(w->db, w->me.mesh_id, roster_cb, r);
	if (q != 0) {
		groups_error(w, "internal", "broker busy, try again", req_of(r));
		free(r);
	}
}
