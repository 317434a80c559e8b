/* apikeycmd — meshctl apikey create|list|revoke (docs/protocol.md §5.3):
 * the secret is printed once and never stored; the database keeps its sha256
 * hex and its first 11 characters. */
#ifndef CLI_APIKEYCMD_H
#define CLI_APIKEYCMD_H

int apikeycmd_create(int argc, char **argv);
int apikeycmd_list(int argc, char **argv);
int apikeycmd_revoke(int argc, char **argv);

#endif
