/* liveclose — meshctl's side of a revocation (docs/protocol.md §6): the
 * revoked member's live connections on this host are closed by their own
 * workers, told through the shared presence table and a UDS_CLOSE envelope
 * (worker/envelope.h), exactly as a moderator's ban closes them
 * (worker/moderation.c): close 4002, reason "revoked".  The runtime
 * directory is the broker's (RUNTIME_DIRECTORY, MESHBROKER_RUNTIME_DIR,
 * else ./var/run); a host without the table has nothing live to close.
 * The member's entries of the member cache (shm/membercache.h) are dropped
 * first, so its next hello on this host is looked up. */
#ifndef CLI_LIVECLOSE_H
#define CLI_LIVECLOSE_H

#include <stddef.h>

/* how many connections were told (>= 0), -1 with err set when the table
 * exists but could not be read */
int liveclose_member(const char *member_id, char *err, size_t errlen);
/* meshctl mesh archive: every live connection of the mesh on this host,
 * close 4002 "mesh_archived" (the other hosts': migration 0012's trigger) */
int liveclose_mesh(const char *mesh_id, char *err, size_t errlen);

#endif
