/* netaddr — what the acceptor counts as one source: the remote address
 * masked to a prefix (a /24 for IPv4, a /64 for IPv6 by default), so that one
 * holder of a whole block cannot take every slot with many addresses.  Pure. */
#ifndef COMMON_NETADDR_H
#define COMMON_NETADDR_H

/* addr: 16 bytes, IPv4 as v4-mapped IPv6 (::ffff:a.b.c.d).  key: addr with
 * every bit past the prefix cleared (v4_prefix counts the IPv4 bits, 0-32;
 * v6_prefix the IPv6 bits, 0-128; out-of-range values are clamped). */
void source_key(const unsigned char addr[16], int v4_prefix, int v6_prefix, unsigned char key[16]);

/* 1 when addr (as above) is a loopback address: 127.0.0.0/8 or ::1 */
int addr_is_loopback(const unsigned char addr[16]);

#endif
