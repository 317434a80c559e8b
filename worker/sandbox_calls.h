/* sandbox_calls — the worker's seccomp allow-list (docs/security.md "The
 * worker's own sandbox" says why each call is here).  Data only: it is
 * compiled into BPF at build time by scripts/sandbox-bpf-gen.c with
 * libseccomp, so the worker loads a ready program and neither maps
 * libseccomp nor leaves its compile's heap behind in every process. */
#ifndef WORKER_SANDBOX_CALLS_H
#define WORKER_SANDBOX_CALLS_H

#include <sys/ioctl.h>
#include <sys/socket.h>

/* allowed with any arguments */
static const char *const allowed[] = {
	/* the loop: poll, read and write sockets and files, timers, signals */
	"ppoll", "poll", "read", "write", "readv", "writev", "pread64", "pwrite64", "recvfrom", "sendto",
	"recvmsg", "sendmsg", "close", "fcntl", "lseek", "dup", "dup2", "dup3",
	"clock_gettime", "clock_getres", "gettimeofday", "time", "nanosleep", "clock_nanosleep",
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigsuspend", "sigaltstack", "restart_syscall",
	"exit", "exit_group", "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid",
	"getresuid", "getresgid", "getgroups", "tgkill", "sched_yield", "sched_getaffinity",
	"uname", "sysinfo", "prlimit64", "getrlimit", "getrusage", "umask",
	/* memory: malloc, and dlopen of libpq and its libraries (executable mappings) */
	"brk", "mmap", "munmap", "mprotect", "mremap", "madvise", "futex", "set_robust_list", "rseq",
	"getrandom",
	/* files: reads anywhere (libraries, /etc for the resolver and OpenSSL,
	 * the presence table); writes are Landlock's to bound */
	"openat", "open", "newfstatat", "fstat", "stat", "lstat", "statx", "statfs", "fstatfs", "access",
	"faccessat", "faccessat2", "readlink", "readlinkat", "getdents64", "getcwd",
	"flock", "ftruncate", "fallocate", "fsync", "fdatasync", "fchmod", "fchown", "utimensat",
	"mkdir", "mkdirat", "unlink", "unlinkat", "link", "linkat", "rename", "renameat", "renameat2",
	/* sockets: the client, worker sockets (bind/listen/accept), PostgreSQL */
	"connect", "bind", "listen", "accept", "accept4", "shutdown", "getsockopt", "setsockopt",
	"getsockname", "getpeername", "socketpair", "pipe2", "eventfd2",
};

/* the sanitizer runtime's own needs (ASan's LeakSanitizer stops the world
 * at exit: a cloned tracer that ptraces the process) */
static const char *const allowed_san[] = {
	"clone", "clone3", "ptrace", "wait4", "waitid", "prctl", "kill", "arch_prctl", "setrlimit",
	"sched_setaffinity", "personality", "getdents",
};

/* socket(2) domains: Unix (the client under tests, worker sockets,
 * PostgreSQL's socket), IPv4/IPv6 (the client, PostgreSQL over TCP) and
 * netlink (glibc's getaddrinfo with AI_ADDRCONFIG) */
static const int socket_domains[] = {AF_UNIX, AF_INET, AF_INET6, AF_NETLINK};

/* ioctl(2) requests: SIOCOUTQ (= TIOCOUTQ, what the peer has not
 * acknowledged), FIONREAD, FIONBIO, FIOCLEX and TCGETS (isatty) */
static const unsigned long ioctl_requests[] = {TIOCOUTQ, FIONREAD, FIONBIO, FIOCLEX, TCGETS};

#endif
