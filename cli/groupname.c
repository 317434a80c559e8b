/* groupname — group names and join_group (see groupname.h). */
#include "cli/groupname.h"

#include <ctype.h>
#include <string.h>

int groupname_ok(const char *name)
{
	size_t len = strlen(name), seg = 0;
	if (len == 0 || len > 128 || !strcmp(name, "all"))
		return 0;
	for (const char *p = name; *p; p++) {
		if (*p == '/') {
			if (seg == 0)
				return 0;
			seg = 0;
			continue;
		}
		int alnum = isascii((unsigned char)*p) && isalnum((unsigned char)*p);
		if (seg == 0 ? !alnum : !(alnum || *p == '_' || *p == '.' || *p == '-'))
			return 0;
		if (++seg > 64)
			return 0;
	}
	return seg > 0;
}

cJSON *groupname_join_frame(const char *name)
{
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddStringToObject(o, "type", "join_group") || !cJSON_AddStringToObject(o, "name", name)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}
