/* fuzz_pqurl — libFuzzer target for db/pqurl.c's pq_url_unix_only, which
 * decides from DATABASE_URL's text whether the worker may load libpq over
 * the OpenSSL stand-ins (issue 23).  On any string: no read past its NUL
 * (ASan), an answer of 0 or 1, and 1 only for a postgresql:// or
 * postgres:// URL. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "db/pqurl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = 0;
	int r = pq_url_unix_only(s);
	if (r != 0 && r != 1)
		abort();
	if (r && strncmp(s, "postgresql://", 13) != 0 && strncmp(s, "postgres://", 11) != 0)
		abort();
	free(s);
	return 0;
}
