/* source — where an HTTP request came from, for the hook's loopback rule
 * (docs/protocol.md §4.3): the peer address of the connection as the kernel
 * reports it, and whether an address is a loopback one.  Pure apart from
 * getpeername; unit-tested (tests/unit/test_worker.c). */
#ifndef WORKER_SOURCE_H
#define WORKER_SOURCE_H

#include <stddef.h>

#define SOURCE_ADDR_MAX 64

/* 1 when addr (text) is 127.0.0.0/8, ::1 or an IPv4-mapped 127.x address;
 * 0 for anything else, including text that is not an address */
int source_is_loopback(const char *addr);
/* The hook's rule for a request without an API key (docs/protocol.md
 * §4.3): 1 only when the broker allows it (HOOK_ALLOW_LOOPBACK_UNAUTHENTICATED=1),
 * the source is loopback, no browser sent it (no Origin header) and no proxy
 * forwarded it (no Forwarded, X-Forwarded-For or X-Real-IP: behind a local
 * reverse proxy every request comes from loopback).  origin and forwarded
 * are the header values, NULL or "" when absent. */
int source_may_skip_key(int allow_loopback, const char *src, const char *origin, const char *forwarded);
/* The connection's peer address as text ("" when unknown): getpeername on
 * fd, else fallback (REMOTE_ADDR from the acceptor or systemd). */
void source_of(int fd, const char *fallback, char *out, size_t cap);

#endif
