/* invitecmd — meshctl invite create|list|revoke (admin, DATABASE_URL) and
 * meshctl join (a new peer, over HTTP): docs/protocol.md §6. */
#ifndef CLI_INVITECMD_H
#define CLI_INVITECMD_H

#include "cli/adminref.h"

int invitecmd_create(int argc, char **argv);
int invitecmd_list(int argc, char **argv);
int invitecmd_revoke(int argc, char **argv);
int invitecmd_join(int argc, char **argv);

/* the invite lifetime parser, now adminref_duration (kept for its callers) */
static inline int invitecmd_parse_duration(const char *s, long long *secs)
{
	return adminref_duration(s, secs);
}

#endif
