/* opaque — base64 and escaped-NUL checks (see opaque.h). */
#include "common/opaque.h"

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
	for (size_t i = 0; i + 1 < len; i++) {
		if (text[i] != '\\')
			continue;
		if (text[i + 1] == 'u' && i + 5 < len && text[i + 2] == '0' && text[i + 3] == '0' && text[i + 4] == '0' &&
		    text[i + 5] == '0')
			return 1;
		i++; /* the escaped character, so that \\ never starts another escape */
	}
	return 0;
}
