/* doctor — meshctl doctor: is this machine ready to use the mesh from
 * Claude Code?  One line a check, "ok", "warn" or "FAIL" first: the peer
 * config and its key's file mode, the broker URL, the broker reachable
 * (GET /health), TLS, the clock against the broker's (hellos allow 60 s),
 * Claude Code's channel support (claude --version), meshctl on PATH, and
 * what meshctl install registered.  Exit 1 when a check failed. */
#ifndef CLI_DOCTOR_H
#define CLI_DOCTOR_H

#define DOCTOR_SKEW_WARN_MS 10000 /* a hello allows 60 s (docs/protocol.md §2) */
#define DOCTOR_SKEW_FAIL_MS 45000

int doctor_main(int argc, char **argv);

/* 1 when host (as in a URL: "localhost", "127.0.0.1", "[::1]") is loopback */
int doctor_host_loopback(const char *host);

#endif
