/* hookpost — `meshctl hook`: what a Claude Code hook runs.  idle|working|dnd
 * report the session's status, POST /hook/set-status (docs/protocol.md §4.3)
 * over http:// or https:// by the HTTP module (cli/http.h); prompt is the
 * UserPromptSubmit hook that hands pending messages to Claude
 * (cli/hookprompt.h).  A hook never blocks Claude Code: stdout stays empty
 * (prompt prints Claude Code's hook JSON, and only that), every problem,
 * usage ones included, is one line on stderr, and the exit status is 0. */
#ifndef CLI_HOOKPOST_H
#define CLI_HOOKPOST_H

int hookpost_run(int argc, char **argv);

#endif
