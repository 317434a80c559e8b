/* canon — canonical JSON and the audit chain hash; see canon.h. */
#include "canon.h"

#include <sodium.h>
#include <string.h>

#include "common/util.h"

static void canon_sort(cJSON *o)
{
	if (cJSON_IsArray(o)) {
		for (cJSON *c = o->child; c; c = c->next)
			canon_sort(c);
		return;
	}
	if (!cJSON_IsObject(o))
		return;
	/* insertion sort of the child list by key (audit payloads are small) */
	cJSON *sorted = NULL;
	cJSON *c = o->child;
	while (c) {
		cJSON *next = c->next;
		canon_sort(c);
		cJSON **pp = &sorted;
		while (*pp && strcmp((*pp)->string, c->string) <= 0)
			pp = &(*pp)->next;
		c->next = *pp;
		*pp = c;
		c = next;
	}
	/* cJSON's list: prev of the head points at the tail */
	cJSON *last = NULL;
	for (cJSON *i = sorted; i; i = i->next) {
		i->prev = last;
		last = i;
	}
	if (sorted)
		sorted->prev = last;
	o->child = sorted;
}

char *canon_json(cJSON *obj)
{
	canon_sort(obj);
	return cJSON_PrintUnformatted(obj);
}

void canon_chain_hash(char out[65], const char *prev, const char *mesh_id, const char *event,
		      const char *actor, const char *canonical, const char *created_at_iso)
{
	crypto_hash_sha256_state st;
	unsigned char h[crypto_hash_sha256_BYTES];
	const char *parts[] = {prev, mesh_id, event, actor ? actor : "null", canonical, created_at_iso};
	crypto_hash_sha256_init(&st);
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
		if (i)
			crypto_hash_sha256_update(&st, (const unsigned char *)"|", 1);
		crypto_hash_sha256_update(&st, (const unsigned char *)parts[i], strlen(parts[i]));
	}
	crypto_hash_sha256_final(&st, h);
	hex_encode(h, sizeof h, out);
}
