/* audit — one audit row, its payload in canonical JSON so that the chain
 * hash (computed by mesh.audit_append) can be re-computed by meshctl. */
#include "worker/audit.h"

#include <stdlib.h>

#include "db/store.h"
#include "proto/canon.h"
#include "worker/skel.h"

void audit_event(struct worker *w, const char *mesh_id, const char *event, const char *actor,
		 const char *actor_name, cJSON *payload)
{
	if (!mesh_id || !*mesh_id || worker_db(w) != 0) {
		cJSON_Delete(payload);
		return;
	}
	char *canon = canon_json(payload);
	if (canon)
		store_audit_append(w->db, mesh_id, event, actor, actor_name, canon);
	free(canon);
	cJSON_Delete(payload);
}

char *audit_message_sent(const char *message_id, const char *priority, const char *target_spec)
{
	cJSON *pl = cJSON_CreateObject();
	cJSON_AddStringToObject(pl, "messageId", message_id);
	cJSON_AddStringToObject(pl, "priority", priority);
	cJSON_AddStringToObject(pl, "targetSpec", target_spec);
	char *canon = canon_json(pl);
	cJSON_Delete(pl);
	return canon;
}
