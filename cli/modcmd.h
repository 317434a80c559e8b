/* modcmd — meshctl's moderation verbs for a mesh's owner and admins
 * (docs/protocol.md §12.4) over one peer session: kick and disconnect
 * (a name, a pubkey or a prefix of ≥ 8 hex, or --all), ban [--reason] and
 * unban (a member), and bans (the banned members, which any member may
 * list).  One line answers on stdout; a refusal (forbidden, not_found,
 * ambiguous ...) is one line on stderr and exit 1; usage exit 2. */
#ifndef CLI_MODCMD_H
#define CLI_MODCMD_H

int modcmd_kick(int argc, char **argv);
int modcmd_disconnect(int argc, char **argv);
int modcmd_ban(int argc, char **argv);
int modcmd_unban(int argc, char **argv);
int modcmd_bans(int argc, char **argv);

#endif
