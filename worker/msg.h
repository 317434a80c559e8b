/* msg — small readers shared by the peer protocol's handlers: a string
 * field of a JSON message, and the priorities of docs/protocol.md §3. */
#ifndef WORKER_MSG_H
#define WORKER_MSG_H

#include <cjson/cJSON.h>
#include <string.h>

#define PRIORITY_COUNT 3
static const char *const msg_priority_names[PRIORITY_COUNT] = {"now", "next", "low"};

/* 0 now, 1 next, 2 low; -1 when s is none of them */
static inline int msg_priority_parse(const char *s)
{
	for (int i = 0; i < PRIORITY_COUNT; i++)
		if (s && strcmp(s, msg_priority_names[i]) == 0)
			return i;
	return -1;
}

/* the string value of o[k], or NULL */
static inline const char *msg_str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

#endif
