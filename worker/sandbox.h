/* sandbox — the worker confines itself before it reads the first byte from
 * its client, under both launchers (OpenSSH's pre-auth sandbox idea):
 * no_new_privs, a seccomp allow-list (worker/sandbox_calls.h, compiled by
 * libseccomp at build time; anything else kills the process with SIGSYS)
 * and, where the kernel has Landlock, no file system writes outside the
 * runtime directory.  docs/security.md lists the calls and why. */
#ifndef WORKER_SANDBOX_H
#define WORKER_SANDBOX_H

/* Enter the sandbox.  0 when the seccomp filter is in place (Landlock is
 * best effort: its absence is logged); -1 when the filter could not be
 * loaded (logged; the worker must not serve then).  log_only (test builds
 * only) logs a call off the list to the kernel's audit log instead of
 * killing: how the list is checked against the integration suite. */
int sandbox_enter(const char *runtime_dir, int log_only);

#endif
