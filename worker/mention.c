/* mention — explicit mentions or @name tokens (see mention.h).  A token
 * starts at '@' at the start of the body or after a byte that cannot be in a
 * name (so a@b.example is no mention) and runs over name bytes: ASCII
 * letters, digits, '_', '-', '.', and any byte from 0x80; trailing dots are
 * punctuation.  A name that is not valid UTF-8 refuses the message. */
#include "worker/mention.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/util.h"

static int name_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
	       c == '.' || c >= 0x80;
}

/* add s[0..n) unless present or full; 1 when the list is full, -1 when
 * the name is not UTF-8 (PostgreSQL text would refuse it: the whole
 * statement, and every retry of it, would fail) */
static int add(char *out[], int *count, const char *s, size_t n)
{
	if (n == 0 || n > MENTION_NAME_MAX)
		return *count >= MENTION_MAX;
	if (!utf8_valid((const unsigned char *)s, n))
		return -1;
	for (int i = 0; i < *count; i++)
		if (strlen(out[i]) == n && strncasecmp(out[i], s, n) == 0)
			return 0;
	if (*count >= MENTION_MAX)
		return 1;
	char *c = strndup(s, n);
	if (!c)
		log_fatal("out of memory");
	out[(*count)++] = c;
	return *count >= MENTION_MAX;
}

int mention_collect(const cJSON *mentions, const unsigned char *body, size_t len, char *out[MENTION_MAX])
{
	int count = 0;
	if (mentions && !cJSON_IsNull(mentions)) {
		if (!cJSON_IsArray(mentions))
			return -1;
		const cJSON *m;
		cJSON_ArrayForEach(m, mentions)
		{
			if (!cJSON_IsString(m))
				goto bad;
			const char *s = m->valuestring;
			if (*s == '@')
				s++;
			size_t n = strlen(s);
			if (n == 0 || n > MENTION_NAME_MAX || add(out, &count, s, n) < 0)
				goto bad;
		}
		return count;
	}
	for (size_t i = 0; body && i < len; i++) {
		if (body[i] != '@' || (i > 0 && name_byte(body[i - 1])))
			continue;
		size_t j = i + 1;
		while (j < len && name_byte(body[j]))
			j++;
		size_t n = j - i - 1;
		while (n > 0 && body[i + n] == '.')
			n--;
		int full = add(out, &count, (const char *)body + i + 1, n);
		if (full < 0)
			goto bad;
		if (full)
			break;
		i = j - 1;
	}
	return count;
bad:
	mention_free(out, count);
	return -1;
}

void mention_free(char *out[], int n)
{
	for (int i = 0; i < n; i++) {
		free(out[i]);
		out[i] = NULL;
	}
}
