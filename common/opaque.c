/* opaque — base64 and escaped-NUL checks (see opaque.h). */
#include "common/opaque.h"

#include <string.h>

static int b64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

int b64_is_valid(const char *s, size_t n)
{
	if (n % 4 != 0)
		return 0;
	size_t pad = 0;
	if (n >= 1 && s[n - 1] == '=')
		pad++;
	if (n >= 2 && s[n - 2] == '=')
		pad++;
	for (size_t i = 0; i < n - pad; i++)
		if (!b64_char(s[i]))
			return 0;
	return 1;
}

int json_has_nul_escape(const char *text, size_t len)
{
	/* from backslash to backslash (memchr): most frames have few or none */
	const char *p = text, *end = text + len;
	while ((p = memchr(p, '\\', (size_t)(end - p))) != NULL) {
		if (end - p < 2)
			return 0;
		if (p[1] == 'u' && end - p >= 6 && memcmp(p + 2, "0000", 4) == 0)
			return 1;
		p += 2; /* the escaped character, so that \\ never starts another escape */
	}
	return 0;
}
