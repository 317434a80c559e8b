/* session — the peer protocol as the skeleton sees it: the hook table that
 * skel_serve_ws runs a WebSocket connection with, and the leave at its end. */
#ifndef WORKER_SESSION_H
#define WORKER_SESSION_H

#include "worker/worker.h"

extern const struct worker_hooks session_hooks;

#endif
