/* sandbox — see sandbox.h.  The allow-list (worker/sandbox_calls.h, compiled
 * to BPF with libseccomp at build time) is the system calls the worker's
 * paths make once it serves its connection (HTTP routes, the WebSocket loop,
 * the presence table, worker sockets, and libpq loaded with dlopen at the
 * first database session, with OpenSSL, Kerberos and the resolver under it),
 * measured with `strace -f` over the integration suite (docs/security.md
 * "The worker's own sandbox" lists them and why).  Anything else kills the
 * process (SCMP_ACT_KILL_PROCESS: SIGSYS, its connection closes, nobody
 * else's).  Landlock (ABI 1 and up) leaves reads alone and allows writes,
 * creations, removals and renames only beneath the runtime directory. */
#include "worker/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"

/* Debian 12's headers know Landlock ABI 2; the kernel may know more */
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif

/* the programs scripts/sandbox-bpf-gen.c compiled from worker/sandbox_calls.h
 * with libseccomp at build time ($(BUILD)/gen/sandbox_bpf.c) */
extern const struct sock_filter sandbox_bpf_kill[], sandbox_bpf_log[];
extern const unsigned short sandbox_bpf_kill_len, sandbox_bpf_log_len;

static int seccomp_enter(int log_only)
{
	struct sock_fprog prog = {
		.len = log_only ? sandbox_bpf_log_len : sandbox_bpf_kill_len,
		.filter = (struct sock_filter *)(log_only ? sandbox_bpf_log : sandbox_bpf_kill),
	};
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0)
		return 0;
	/* a launcher's filter may forbid seccomp(2) but allow prctl(2) */
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0 ? 0 : -1;
}

/* the handled rights of each Landlock ABI (writes only: reads stay free) */
static uint64_t landlock_write_rights(int abi)
{
	uint64_t r = LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |
		     LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |
		     LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |
		     LANDLOCK_ACCESS_FS_MAKE_SYM;
	if (abi >= 2)
		r |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		r |= LANDLOCK_ACCESS_FS_TRUNCATE;
	return r;
}

/* 1 in place, 0 not available here (logged), -1 failed */
static int landlock_enter(const char *runtime_dir)
{
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	if (abi < 1) {
		log_debug("sandbox: Landlock not available; file system writes are bounded by the unit only",
			 "error", strerror(errno));
		return 0;
	}
	uint64_t rights = landlock_write_rights((int)abi);
	/* the runtime directory must exist to be named (shm.c makes it too);
	 * made only when missing: mkdir locks the parent even for EEXIST */
	int dir = open(runtime_dir, O_PATH | O_CLOEXEC | O_DIRECTORY);
	if (dir < 0 && errno == ENOENT) {
		if (mkdir(runtime_dir, 0750) != 0 && errno != EEXIST)
			log_debug("sandbox: cannot create the runtime directory", "error", strerror(errno));
		dir = open(runtime_dir, O_PATH | O_CLOEXEC | O_DIRECTORY);
	}
	if (dir < 0) {
		log_warn("sandbox: runtime directory unavailable; Landlock not applied", "path", runtime_dir,
			 "error", strerror(errno));
		return 0;
	}
	struct landlock_ruleset_attr attr = {.handled_access_fs = rights};
	int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0);
	if (rs < 0) {
		close(dir);
		return -1;
	}
	struct landlock_path_beneath_attr pb = {.allowed_access = rights, .parent_fd = dir};
	int ok = syscall(SYS_landlock_add_rule, rs, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) == 0 &&
		 syscall(SYS_landlock_restrict_self, rs, 0) == 0;
	close(dir);
	close(rs);
	return ok ? 1 : -1;
}

/* 1 when a seccomp filter already confines this process (Seccomp: 2) */
static int seccomp_filtered(void)
{
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	char buf[4096];
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	const char *p = strstr(buf, "\nSeccomp:");
	return p && strtol(p + 9, NULL, 10) == 2;
}

int sandbox_enter(const char *runtime_dir, int log_only)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		log_error("sandbox: no_new_privs failed", "error", strerror(errno));
		return -1;
	}
	if (landlock_enter(runtime_dir) < 0)
		log_warn("sandbox: Landlock failed; file system writes are bounded by the unit only", "error",
			 strerror(errno));
	if (seccomp_enter(log_only) != 0) {
		int e = errno;
		if (seccomp_filtered()) {
			/* a launcher's filter (a unit of an older version) forbids
			 * loading ours; its filter still confines us */
			log_warn("sandbox: our system call filter could not be loaded; the launcher's applies",
				 "error", strerror(e));
			return 0;
		}
		log_error("sandbox: the system call filter could not be loaded", "error", strerror(e));
		return -1;
	}
	return 0;
}
