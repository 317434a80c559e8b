/* hookbox — how `meshctl hook prompt` gets the messages `meshctl mcp` holds
 * for the same Claude Code session when channels do not show them: the MCP
 * server (when CLAUDE_CODE_SESSION_ID is set) listens on a Unix socket
 * named after that id and its pid in a directory only this user can enter
 * ($XDG_RUNTIME_DIR/meshctl, else /tmp/meshctl-UID, 0700, checked); the hook
 * (which gets session_id on stdin) connects to each, writes "take\n" and reads one
 * JSON line a message ({from, fromPubkey, priority, createdAt, topic?,
 * text}) until EOF.  What is written is handed over, as by check_messages:
 * acked to the broker and gone from the inbox. */
#ifndef CLI_HOOKBOX_H
#define CLI_HOOKBOX_H

#include <stddef.h>

#define HOOKBOX_SID_MAX 64      /* session ids: [A-Za-z0-9_-], 1-64 bytes (Claude Code's are UUIDs) */
#define HOOKBOX_REQ_MS 200      /* the server waits this long for "take\n" */
#define HOOKBOX_MAX 50          /* messages per take */

struct mcp;

/* The socket path of the server pid for session_id (one per meshctl mcp
 * process, so two MCP servers of one session both answer), or with pid 0
 * the glob pattern of them all.  0 ok, -1 (no usable id or directory; the
 * directory is created 0700 when create). */
int hookbox_path(const char *session_id, int create, long pid, char *out, size_t cap);

/* Server (meshctl mcp): the listening socket, or -1 (no id, or it cannot be
 * made: said on stderr once). */
int hookbox_listen(const char *session_id);
/* A client is waiting on fd: answer it (bounded by HOOKBOX_REQ_MS). */
void hookbox_serve(struct mcp *m, int fd);
/* Close and unlink. */
void hookbox_close(int fd, const char *session_id);

/* Client (hook prompt): connect, take, read until EOF or timeout_ms; *text
 * = the malloc'd JSON lines (NUL-terminated, *len bytes).  0 ok (maybe
 * none), -1 no server for this session. */
int hookbox_take(const char *session_id, int timeout_ms, char **text, size_t *len);

#endif
