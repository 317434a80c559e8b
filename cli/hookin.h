/* hookin — what Claude Code hands a hook command: its event as JSON on
 * stdin ({session_id, cwd, hook_event_name, prompt, ...}), read by meshctl
 * hook and hook prompt. */
#ifndef CLI_HOOKIN_H
#define CLI_HOOKIN_H

#include <cjson/cJSON.h>

#define HOOKIN_MAX (256u * 1024) /* Claude Code's hook JSON is small */
#define HOOKIN_WAIT_MS 500       /* how long to wait for it */

/* The event object when stdin is not a terminal and it arrives within
 * HOOKIN_WAIT_MS; NULL otherwise (a hook run by hand, stdin left open, not
 * a JSON object). */
cJSON *hookin_json(void);

#endif
