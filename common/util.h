/* util — time, hex, ids and parsing helpers shared by all programs. */
#ifndef COMMON_UTIL_H
#define COMMON_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define ID_LEN 32 /* broker-minted ids: 32 chars of [0-9A-Za-z] */

int64_t now_ms(void);      /* wall clock, ms since the epoch */
int64_t mono_ms(void);     /* monotonic clock, ms */
/* "2026-04-04T21:53:40.123Z"; buf >= 25 bytes */
void iso8601_ms(int64_t ms, char *buf);
void id_new(char out[ID_LEN + 1]);
/* 1 when s is exactly len hex digits (either case) */
int is_hex(const char *s, size_t len);
void hex_encode(const unsigned char *in, size_t n, char *out /* 2n+1 */);
/* 0 on success; lowercase or uppercase accepted */
int hex_decode(const char *hex, unsigned char *out, size_t n);
/* strict positive decimal integer <= max; 0 ok, -1 bad */
int parse_pos_int(const char *s, long max, long *out);
/* Copy up to cap bytes of src[*off..len) into dst and advance *off: the bytes
 * that arrived together with an HTTP head, handed to wslay before the socket. */
size_t buf_take(const unsigned char *src, size_t len, size_t *off, unsigned char *dst, size_t cap);
/* copy with truncation guard: -1 when src does not fit */
int str_copy(char *dst, size_t cap, const char *src);

/* sd_listen_fds(3) without libsystemd, for the worker (issue 13: libsystemd
 * and the six libraries it pulls in cost every worker ~0.5 ms of exec and
 * 124 KiB of private memory, for this one call).  The number of fds passed
 * from LISTEN_FDS_START on when LISTEN_PID is this process, 0 when none are,
 * -errno on a malformed variable or a passed fd that is not open; sets
 * FD_CLOEXEC on them and, with unset_env, removes LISTEN_PID, LISTEN_FDS and
 * LISTEN_FDNAMES from the environment either way. */
#define LISTEN_FDS_START 3
int listen_fds(int unset_env);

/* 1 when s[0..n) is well-formed UTF-8 with no NUL, no overlong form, no
 * surrogate and nothing past U+10FFFF */
int utf8_valid(const unsigned char *s, size_t n);

/* The state letter of a /proc/PID/stat line ('R', 'S', 'T', 't', ...): the
 * first field after the last ')' (a command name may hold ')' and spaces);
 * 0 when the line has no such field. */
char proc_stat_state(const char *line, size_t n);
/* 1 when pid is stopped by a signal (group stop, state 'T'): not running,
 * not sleeping and not in a ptrace stop ('t'); 0 otherwise or unreadable */
int process_group_stopped(int pid);

#endif
