/* jsonl — optional status inference from Claude Code transcripts
 * (docs/protocol.md §4.2): cwd -> project-directory key candidates, and the
 * newest *.jsonl's last assistant message deciding working/idle. */
#ifndef WORKER_JSONL_H
#define WORKER_JSONL_H

#include <stddef.h>

#define JSONL_KEYS_MAX 8
#define JSONL_KEY_MAX 4100

/* Fill keys[] with the candidates in order, duplicates dropped; returns the count. */
int jsonl_candidates(const char *cwd, char keys[JSONL_KEYS_MAX][JSONL_KEY_MAX]);
/* The status (ST_IDLE or ST_WORKING) the transcript says, or -1 when none. */
int jsonl_infer(const char *dir, const char *cwd);
/* The status a transcript tail says (last 8 KiB of a file), or -1. */
int jsonl_status_of(const char *tail, size_t len);

#endif
