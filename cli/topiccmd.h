/* topiccmd — meshctl topic create|list|join|leave|members|history|post|tail
 * (docs/protocol.md §5) over the peer's WebSocket.  The topic key never
 * leaves the client in the clear: create seals a fresh key to the creator
 * itself, post/history/tail open the member's own sealed copy, and tail
 * re-seals it for members still waiting for one. */
#ifndef CLI_TOPICCMD_H
#define CLI_TOPICCMD_H

int topiccmd_create(int argc, char **argv);
int topiccmd_list(int argc, char **argv);
int topiccmd_join(int argc, char **argv);
int topiccmd_leave(int argc, char **argv);
int topiccmd_members(int argc, char **argv);
int topiccmd_history(int argc, char **argv);
int topiccmd_post(int argc, char **argv);
int topiccmd_tail(int argc, char **argv);

#endif
