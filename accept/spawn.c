/* spawn — vfork+exec of workers and spares (see spawn.h). */
#include "accept/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shm/childtab.h"

#define SPAWN_FD 3 /* SD_LISTEN_FDS_START, and a spare's socketpair (common/handover.h) */
#define SPAWN_EXIT 111

extern char **environ;

/* variables of the acceptor's own environment that a child never inherits:
 * they name a connection (or systemd's socket for the acceptor) */
static const char *const spawn_dropped[] = {
	"LISTEN_FDS=", "LISTEN_PID=", "LISTEN_FDNAMES=", CHILDTAB_ENV "=", "REMOTE_ADDR=", "REMOTE_PORT=",
};

static char **spawn_envp;      /* the base environment, then room for the extras and the NULL */
static size_t spawn_nbase;
static sigset_t spawn_ignored; /* signals ignored here: SIG_IGN survives exec, so the child resets them */
static char spawn_pid_var[32] = "LISTEN_PID="; /* written by the child, before its exec */
static volatile int spawn_errno; /* the child's exec failure, seen by the parent (shared memory until the exec) */

static int spawn_is_dropped(const char *v)
{
	for (size_t i = 0; i < sizeof spawn_dropped / sizeof *spawn_dropped; i++)
		if (strncmp(v, spawn_dropped[i], strlen(spawn_dropped[i])) == 0)
			return 1;
	return 0;
}

int spawn_init(void)
{
	size_t n = 0;
	for (char **e = environ; e && *e; e++)
		n++;
	free(spawn_envp);
	spawn_envp = calloc(n + SPAWN_EXTRA_MAX + 2, sizeof *spawn_envp);
	if (!spawn_envp)
		return -1;
	spawn_nbase = 0;
	for (char **e = environ; e && *e; e++)
		if (!spawn_is_dropped(*e))
			spawn_envp[spawn_nbase++] = *e;
	sigemptyset(&spawn_ignored);
	for (int sig = 1; sig < NSIG; sig++) {
		struct sigaction sa;
		if (sig != SIGKILL && sig != SIGSTOP && sigaction(sig, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN)
			sigaddset(&spawn_ignored, sig);
	}
	return 0;
}

/* decimal of v at p (async-signal-safe: the vfork child may not call snprintf) */
static void spawn_fmt_pid(char *p, pid_t v)
{
	char d[24];
	int n = 0;
	unsigned long u = (unsigned long)v;
	do
		d[n++] = (char)('0' + u % 10);
	while ((u /= 10) && n < (int)sizeof d);
	while (n)
		*p++ = d[--n];
	*p = '\0';
}

/* The vfork child: system calls only, nothing that allocates or locks, and
 * it never returns (it shares the parent's stack frame below this one). */
static _Noreturn void spawn_child(const struct spawn *s)
{
	struct sigaction dfl;
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		if (sigismember(&spawn_ignored, sig) == 1)
			sigaction(sig, &dfl, NULL); /* handlers are reset by the exec itself; SIG_IGN is not */
	if (sigprocmask(SIG_SETMASK, &s->mask, NULL) != 0)
		goto fail;
	if (s->fd != SPAWN_FD) {
		if (dup2(s->fd, SPAWN_FD) < 0) /* the copy is not close-on-exec */
			goto fail;
	} else if (fcntl(SPAWN_FD, F_SETFD, 0) != 0) {
		goto fail;
	}
	if (close_range(SPAWN_FD + 1, ~0U, 0) != 0)
		for (long f = SPAWN_FD + 1, max = sysconf(_SC_OPEN_MAX); f < max; f++)
			close((int)f);
	if (s->listen_pid)
		spawn_fmt_pid(spawn_pid_var + sizeof "LISTEN_PID=" - 1, getpid());
	execve(s->path, s->argv, spawn_envp);
fail:
	spawn_errno = errno ? errno : EINVAL;
	_exit(SPAWN_EXIT);
}

int spawn_start(const struct spawn *s, pid_t *pid)
{
	*pid = 0;
	if (!spawn_envp)
		return -EINVAL;
	size_t n = spawn_nbase;
	for (int i = 0; i < SPAWN_EXTRA_MAX && s->extra[i]; i++)
		spawn_envp[n++] = (char *)s->extra[i];
	if (s->listen_pid)
		spawn_envp[n++] = spawn_pid_var;
	spawn_envp[n] = NULL;
	spawn_errno = 0;
	pid_t p = vfork();
	if (p == 0)
		spawn_child(s);
	if (p < 0)
		return -errno;
	*pid = p;
	return spawn_errno ? -spawn_errno : 0;
}
