/* invitecmd — meshctl invite create|list|revoke (admin, DATABASE_URL) and
 * meshctl join (a new peer, over HTTP): docs/protocol.md §6. */
#ifndef CLI_INVITECMD_H
#define CLI_INVITECMD_H

int invitecmd_create(int argc, char **argv);
int invitecmd_list(int argc, char **argv);
int invitecmd_revoke(int argc, char **argv);
int invitecmd_join(int argc, char **argv);

#endif
