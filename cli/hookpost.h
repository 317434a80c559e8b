/* hookpost — `meshctl hook`: what a Claude Code hook script calls to report
 * its session's status, POST /hook/set-status (docs/protocol.md §4.3) over
 * http:// or https:// by the HTTP module (cli/http.h). */
#ifndef CLI_HOOKPOST_H
#define CLI_HOOKPOST_H

int hookpost_run(int argc, char **argv);

#endif
