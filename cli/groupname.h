/* groupname — a group name as the broker takes it (docs/protocol.md §12.3):
 * 1-128 bytes of '/'-separated segments [A-Za-z0-9][A-Za-z0-9_.-]{0,63},
 * not "all"; and the join_group frame meshctl connect --group and meshctl
 * mcp --group send after every hello_ack. */
#ifndef CLI_GROUPNAME_H
#define CLI_GROUPNAME_H

#include <cjson/cJSON.h>

/* 1 when name is a valid group name (a leading '@' is not part of it) */
int groupname_ok(const char *name);
/* {"type":"join_group","name":name}, or NULL when out of memory */
cJSON *groupname_join_frame(const char *name);

#endif
