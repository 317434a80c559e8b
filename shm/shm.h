/* shm — the broker-wide shared-memory table (docs/design.md "Shared memory"),
 * the umbrella header its users include: the table and its counters
 * (table.h), presence slots and their mesh index (presence.h), token buckets
 * (bucket.h) and the hello replay cache (replay.h).  Every worker maps the
 * same file; no pointers inside. */
#ifndef SHM_SHM_H
#define SHM_SHM_H

#include "shm/bucket.h"
#include "shm/presence.h"
#include "shm/replay.h"
#include "shm/table.h"

#endif
