/* peertable — see peertable.h.  Cells are cut to a width so that one long
 * summary or cwd cannot push the table off the screen; --json has it all,
 * the table leaves out meshctl's own connection. */
#include "cli/peertable.h"

#include <stdlib.h>
#include <string.h>

static const char *cell(const cJSON *p, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, k);
	return cJSON_IsString(v) ? v->valuestring : "";
}

/* s cut to w display bytes (UTF-8 sequences kept whole), "…" when cut */
static void put_cell(FILE *f, const char *s, int w, int last)
{
	int n = 0, i = 0;
	while (s[i] && n < w) {
		int len = 1;
		unsigned char c = (unsigned char)s[i];
		if (c >= 0xf0)
			len = 4;
		else if (c >= 0xe0)
			len = 3;
		else if (c >= 0xc0)
			len = 2;
		if (c == '\n' || c == '\t' || c == '\r')
			fputc(' ', f);
		else
			fwrite(s + i, 1, (size_t)len, f);
		i += len;
		n++;
	}
	if (s[i] && n >= w)
		fputs("…", f), n++;
	if (!last)
		fprintf(f, "%*s", w + 2 - n > 0 ? w + 2 - n : 1, "");
}

void peertable_print(FILE *f, const cJSON *peers, int json)
{
	if (json) {
		char *s = cJSON_PrintUnformatted(peers);
		if (s)
			fprintf(f, "%s\n", s);
		free(s);
		return;
	}
	static const struct {
		const char *head, *key;
		int w;
	} cols[] = {{"NAME", "displayName", 16}, {"STATUS", "status", 7},  {"PUBKEY", "pubkey", 12},
		    {"HOST", "hostname", 16},    {"CWD", "cwd", 32},         {"SUMMARY", "summary", 60}};
	const int ncol = (int)(sizeof cols / sizeof cols[0]);
	for (int i = 0; i < ncol; i++)
		put_cell(f, cols[i].head, cols[i].w, i == ncol - 1);
	fputc('\n', f);
	const cJSON *p;
	cJSON_ArrayForEach(p, peers)
	{
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "self")))
			continue; /* meshctl's own short connection */
		for (int i = 0; i < ncol; i++) {
			put_cell(f, cell(p, cols[i].key), cols[i].w, i == ncol - 1);
		}
		fputc('\n', f);
	}
}
