/* peercmd — meshctl as a mesh peer over the broker's WebSocket: connect (print
 * every frame as a JSON line, decrypting pushes), send (one message, wait for
 * its ack) and status (set_status).  Identity comes from the peer config. */
#ifndef CLI_PEERCMD_H
#define CLI_PEERCMD_H

#include <stddef.h>

int peercmd_connect(int argc, char **argv);
int peercmd_send(int argc, char **argv);
int peercmd_status(int argc, char **argv);
int peercmd_peers(int argc, char **argv); /* list_peers as a table or JSON */

/* 1 when s[0..n) is valid UTF-8 without NUL (strict: no overlongs, no
 * surrogates, nothing above U+10FFFF). */
int peercmd_utf8_ok(const unsigned char *s, size_t n);

#endif
