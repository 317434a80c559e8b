/* mention — who a topic message mentions (docs/protocol.md §5.2): the
 * explicit `mentions` array when the send has one, else the @name tokens of
 * a version-1 (plaintext) body.  Pure: no database, no I/O. */
#ifndef WORKER_MENTION_H
#define WORKER_MENTION_H

#include <cjson/cJSON.h>
#include <stddef.h>

#define MENTION_MAX      32 /* names per message */
#define MENTION_NAME_MAX 64 /* bytes per name */

/* Collect up to MENTION_MAX distinct names (ASCII case-insensitively, a
 * leading '@' dropped) into out[] (malloc'd; mention_free).  mentions is the
 * send's "mentions" item (NULL when absent); body/len the decoded v1 body
 * (NULL when none).  Returns the count, or -1 when mentions is present but
 * not an array of non-empty strings of at most 64 bytes, or when a name
 * (listed, or an @name token of the body) is not valid UTF-8. */
int mention_collect(const cJSON *mentions, const unsigned char *body, size_t len, char *out[MENTION_MAX]);
void mention_free(char *out[], int n);

#endif
