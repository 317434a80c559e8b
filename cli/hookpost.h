/* hookpost — `meshctl hook`: what a Claude Code hook script calls to report
 * its session's status, a plain HTTP/1.1 POST /hook/set-status (docs/protocol.md
 * §4.3) with a hand-written, bounded HTTP client. */
#ifndef CLI_HOOKPOST_H
#define CLI_HOOKPOST_H

int hookpost_run(int argc, char **argv);

#endif
