/* hookprompt — `meshctl hook prompt`, the UserPromptSubmit hook for a
 * Claude Code without channels (no claude.ai login, or older than 2.1.80):
 * the messages this session's `meshctl mcp` holds (asked over cli/hookbox.h
 * by Claude Code's session_id), else — no MCP server for the session — a
 * short peer session (hello with client_ack) takes those the broker holds
 * for this member; either way they are printed as Claude Code's hook JSON
 * {"hookSpecificOutput":{"hookEventName":"UserPromptSubmit",
 * "additionalContext":...}} and only then acks them, so a killed hook loses
 * nothing.  Bounded: done within HOOKPROMPT_BUDGET_MS, a hard stop (exit 0,
 * nothing acked that was not printed) soon after; exit 0 always. */
#ifndef CLI_HOOKPROMPT_H
#define CLI_HOOKPROMPT_H

#define HOOKPROMPT_BUDGET_MS 1200 /* connect, hello and the queued pushes */
#define HOOKPROMPT_QUIET_MS 250   /* no push this long after the last: the queue is drained */
#define HOOKPROMPT_HARD_S 2       /* SIGALRM 2 s after start: exit 0 whatever is under way */
#define HOOKPROMPT_MAX 50         /* messages taken per prompt; the rest wait for the next */

int hookprompt_run(int argc, char **argv);

#endif
