/* roster — member names and per-member envelopes (see roster.h). */
#include "cli/roster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"
#include "proto/box.h"

static const char *str_of(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

cJSON *roster_request(const char *reqid)
{
	cJSON *o = cJSON_CreateObject();
	if (o && !(cJSON_AddStringToObject(o, "type", "list_members") && cJSON_AddStringToObject(o, "_reqId", reqid))) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

cJSON *roster_group_request(const char *reqid, const char *target)
{
	cJSON *o = roster_request(reqid);
	if (o && !cJSON_AddStringToObject(o, "group", target[0] == '@' ? target + 1 : target)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

int roster_resolve(const cJSON *members, const char *name, char pubkey[65], int *link, char *why, size_t cap)
{
	char cands[1024] = "";
	int hits = 0;
	const cJSON *p;
	pubkey[0] = 0;
	cJSON_ArrayForEach(p, members)
	{
		const char *nm = str_of(p, "displayName"), *pk = str_of(p, "pubkey");
		const cJSON *li = cJSON_GetObjectItemCaseSensitive(p, "_link");
		if (!nm || !pk || !is_hex(pk, 64) || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "self")))
			continue;
		size_t cl = strlen(cands);
		if (strcasecmp(nm, name) != 0) {
			if (cl + 80 < sizeof cands)
				snprintf(cands + cl, sizeof cands - cl, "%s%.60s", cl ? ", " : "", nm);
			continue;
		}
		if (hits && !strcasecmp(pubkey, pk))
			continue; /* the same member seen on another link */
		hits++;
		for (int i = 0; i < 64; i++)
			pubkey[i] = (char)((pk[i] >= 'A' && pk[i] <= 'F') ? pk[i] + 32 : pk[i]);
		pubkey[64] = 0;
		*link = cJSON_IsNumber(li) ? li->valueint : 0;
	}
	if (hits == 1)
		return 0;
	if (hits > 1) {
		char list[1024] = "";
		cJSON_ArrayForEach(p, members)
		{
			const char *nm = str_of(p, "displayName"), *pk = str_of(p, "pubkey");
			size_t ll = strlen(list);
			if (nm && pk && !strcasecmp(nm, name) && ll + 80 < sizeof list)
				snprintf(list + ll, sizeof list - ll, "%s%.64s", ll ? ", " : "", pk);
		}
		snprintf(why, cap, "\"%s\" is ambiguous: %d members have that name; send to one pubkey of: %s", name,
		         hits, list);
		return -2;
	}
	snprintf(why, cap, "no member named \"%s\"; members: %s", name, cands[0] ? cands : "(none)");
	return -1;
}

cJSON *roster_direct_frame(const char *target_hex, const unsigned char sender_sk[64], const char *text,
                           const char *priority, const char *id)
{
	unsigned char rpk[32];
	char *nonce = NULL, *ct = NULL;
	if (!is_hex(target_hex, 64) || hex_decode(target_hex, rpk, sizeof rpk) != 0 ||
	    box_encrypt_direct(text, strlen(text), rpk, sender_sk, &nonce, &ct) != 0)
		return NULL;
	cJSON *o = cJSON_CreateObject();
	if (o && !(cJSON_AddStringToObject(o, "type", "send") && cJSON_AddStringToObject(o, "id", id) &&
	           cJSON_AddStringToObject(o, "targetSpec", target_hex) &&
	           cJSON_AddStringToObject(o, "priority", priority) && cJSON_AddStringToObject(o, "nonce", nonce) &&
	           cJSON_AddStringToObject(o, "ciphertext", ct))) {
		cJSON_Delete(o);
		o = NULL;
	}
	free(nonce);
	free(ct);
	return o;
}

cJSON *roster_broadcast(const cJSON *members, const unsigned char sender_sk[64], const char *text,
                        const char *priority, const char *id_prefix)
{
	cJSON *arr = cJSON_CreateArray();
	const cJSON *p;
	int n = 0;
	cJSON_ArrayForEach(p, members)
	{
		const char *pk = str_of(p, "pubkey");
		if (!arr || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "self")) || n >= ROSTER_BCAST_MAX)
			continue;
		char low[65], id[160];
		if (!pk || !is_hex(pk, 64))
			goto bad;
		for (int i = 0; i < 64; i++)
			low[i] = (char)((pk[i] >= 'A' && pk[i] <= 'F') ? pk[i] + 32 : pk[i]);
		low[64] = 0;
		snprintf(id, sizeof id, "%.120s-%d", id_prefix, n++);
		cJSON *f = roster_direct_frame(low, sender_sk, text, priority, id);
		if (!f || !cJSON_AddStringToObject(f, "broadcastId", id_prefix)) {
			cJSON_Delete(f);
			goto bad;
		}
		cJSON_AddItemToArray(arr, f);
	}
	return arr;
bad:
	cJSON_Delete(arr);
	return NULL;
}
