/* meshbroker-accept — the standalone super-server, shaped like s6-ipcserverd
 * (docs/design.md "Processes"): listen, accept, enforce the connection limits, fork+exec
 * one meshbroker-worker per connection exactly as systemd's Accept=yes would, reap,
 * pass SIGTERM on.  It holds no broker state: workers outlive a crash or kill of it.
 *
 * Each child gets an entry of the shared child table (shm/childtab.h) in which
 * its worker says how far the connection got (PREAUTH, HELLO, AUTHENTICATED,
 * HTTP).  At most UNAUTH_SHARE_PERCENT of MAX_CONNECTIONS may be before their
 * hello: a new connection beyond that share, or beyond MAX_CONNECTIONS, is
 * admitted and the oldest child still before its hello is evicted (its entry
 * moved to EVICTED, then SIGTERM; the worker closes at once and exits 0).
 * Only when every place is held by authenticated or HTTP children is a
 * connection refused.  Evicted children are counted until reaped, in a
 * table with MAX_CONNECTIONS / 8 (at least 16) spare entries; while those are
 * all in use, accept() waits (the backlog holds the rest).
 *
 * Spare workers (SPARE_WORKERS, issue 23): that many `meshbroker-worker
 * --spare` are kept fork+exec'd ahead, each initialised and sandboxed and
 * waiting on its own socketpair; a connection is handed to the oldest one
 * (common/handover.h) and a new spare is started.  Until the spare says it
 * holds the connection, the acceptor keeps its copy: a spare that dies first
 * (or answers nothing for SPARE_ACK_MS) costs no connection, which goes to
 * the next spare or, after SPARE_TRIES, to a fork+exec of its own.  A spare
 * waiting is no child: not in the child table, not counted against any
 * limit, never evicted; from its hand-over on it is an ordinary child. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "common/config.h"
#include "common/handover.h"
#include "common/log.h"
#include "common/netaddr.h"
#include "common/util.h"
#include "accept/spawn.h"
#include "db/pq.h"
#include "proto/version.h"
#include "shm/histo.h"
#include "shm/childtab.h"
#include "shm/shm.h"

#define ACCEPT_BACKLOG 1024
#define ACCEPT_DEFAULT_BIND "127.0.0.1" /* BROKER_BIND unset: loopback only */
#define ACCEPT_BURST 64        /* accepts per poll round, so signals are seen promptly */
#define ACCEPT_DRAIN_MS 10000  /* after SIGTERM, children get this long before SIGKILL */
#define ACCEPT_PAUSE_MS 100    /* back-off after EMFILE/ENOMEM/fork failure (no busy loop) */
#define ACCEPT_WARN_EVERY_MS 1000 /* at most one warning of a kind a second */
#define ACCEPT_EVICT_KILL_MS 5000 /* an evicted child still there after this is SIGKILLed (a bug) */
#define ACCEPT_TICK_MS 1000       /* how often evicted children are checked while any are left */
#define SPARE_TRIES 3             /* spares a connection is offered to before it gets a fork+exec of its own */
#define SPARE_ACK_MS 10000        /* a spare holding a hand-over unanswered this long is killed; the connection goes on */
#define SPARE_FAILS_MAX 8         /* spares in a row that died unused before spawning pauses ... */
#define SPARE_PAUSE_MS 1000       /* ... this long (a worker that cannot start must not be a fork loop) */

/* exit codes, as in s6 */
#define EXIT_USAGE 100
#define EXIT_SYSTEM 111

struct child {
	pid_t pid;              /* 0 = free entry */
	unsigned char src[16]; /* source key: the remote address masked to its prefix (common/netaddr.h) */
	uint64_t seq;           /* accept order: the smallest is the oldest */
	int64_t evicted_ms;     /* mono ms of the eviction, 0 = not evicted */
};

/* a spare worker (SPARE_WORKERS): waiting (fd >= 0, conn < 0), handed a
 * connection not yet acknowledged (conn >= 0), or dying (fd < 0) until reaped */
struct spare {
	pid_t pid;    /* 0 = free entry */
	int fd;       /* our end of its socketpair, -1 once closed */
	uint64_t seq; /* start order: the oldest is the likeliest to be initialised */
	int conn;     /* the connection handed over, our copy until the acknowledgement; -1 none */
	int child;    /* its entry of children[] while conn >= 0 */
	int tries;    /* spares that connection has been offered to, this one included */
	int port;
	int64_t sent_ms; /* mono ms of the hand-over */
	char ip[INET6_ADDRSTRLEN];
};

struct acceptor {
	struct config cfg;
	int lfd;                 /* listening socket, -1 once closed */
	int sfd;                 /* signalfd for SIGCHLD, SIGTERM, SIGINT */
	char worker[PATH_MAX];   /* what each connection execs */
	struct child *children;  /* cap entries, index = child table index */
	int cap;                 /* cfg.max_connections + the eviction slack */
	int nchildren;           /* entries in use, evicted ones included until reaped */
	int nevicted;            /* of those, evicted and not yet reaped */
	int unauth_cap;          /* children before their hello at most (UNAUTH_SHARE_PERCENT) */
	uint64_t seq;
	struct childtab *ct;     /* the shared per-child states */
	int64_t evict_log_ms;    /* mono ms of the last "evicted" line */
	unsigned long evicted_quiet; /* evictions not logged since then */
	int64_t pause_until;     /* mono ms: accept() paused until then */
	int64_t refuse_log_ms;   /* mono ms of the last "refused" warning */
	struct shm *shm;         /* only its counters are touched: refusals for /metrics */
	int64_t pause_log_ms;    /* mono ms of the last "accept failed" warning */
	unsigned long refused_quiet; /* refusals not logged since then */
	pid_t reaper;            /* the running `meshbroker-worker --reap`, or 0 */
	int reap_again;          /* a worker died while it ran: one more after it */
	struct spare *spares;    /* spare_cap entries (none when SPARE_WORKERS=0) */
	int spare_cap;
	int nspares;             /* entries in use, dying ones included until reaped */
	uint64_t spare_seq;
	int spare_fails;         /* spares in a row that died before taking a connection */
	int64_t spare_pause_until; /* mono ms: no spare is started before then */
	struct pollfd *pfd;      /* the poll set: signals, listener, spares awaiting an acknowledgement */
	struct stat worker_st;   /* the worker binary the waiting spares were exec'd from */
	int64_t worker_seen_ms;  /* mono ms of the last look at it */
	int *pfd_spare;          /* pfd[2 + k] is spares[pfd_spare[k]]'s */
};

static const char accept_usage[] =
	"usage: meshbroker-accept [--help | --version]\n"
	"  Listens on BROKER_PORT (BROKER_BIND: address, default 127.0.0.1; :: for every\n"
	"  address; or the socket systemd\n"
	"  passes with Accept=no) and runs one meshbroker-worker per connection (fd 3,\n"
	"  LISTEN_FDS=1, REMOTE_ADDR/REMOTE_PORT), or hands it to one of SPARE_WORKERS\n"
	"  workers started ahead (0: none).  Limits: MAX_CONNECTIONS,\n"
	"  MAX_CONNECTIONS_PER_SOURCE, UNAUTH_SHARE_PERCENT.  Worker: MESHBROKER_WORKER,\n"
	"  default next to this binary.\n"
	"  Exit codes: 100 usage/config, 111 system error.\n";

static _Noreturn void accept_die_usage(const char *msg, const char *detail)
{
	fprintf(stderr, "meshbroker-accept: %s%s%s\n", msg, detail ? ": " : "", detail ? detail : "");
	exit(EXIT_USAGE);
}

static const char *accept_itoa(long v, char buf[24])
{
	snprintf(buf, 24, "%ld", v);
	return buf;
}

/* fds 0-2 must be open, or a socket could land there and the worker would
 * mistake it for its stdio. */
static void accept_fix_stdio(void)
{
	for (int fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0 && errno == EBADF && open("/dev/null", O_RDWR) != fd)
			_exit(EXIT_SYSTEM);
}

static void accept_find_worker(struct acceptor *a)
{
	const char *w = getenv("MESHBROKER_WORKER");
	if (w && *w) {
		if (str_copy(a->worker, sizeof a->worker, w) != 0)
			accept_die_usage("MESHBROKER_WORKER is too long", NULL);
	} else {
		static const char name[] = "/meshbroker-worker";
		char self[PATH_MAX];
		ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
		if (n < 0)
			log_fatal("cannot read /proc/self/exe", "error", strerror(errno));
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		size_t dir = slash ? (size_t)(slash - self) : 0;
		if (dir + sizeof name > sizeof a->worker)
			log_fatal("own path is too long");
		memcpy(a->worker, self, dir);
		memcpy(a->worker + dir, name, sizeof name);
	}
	/* fail at start, not on every connection */
	if (access(a->worker, X_OK) != 0)
		log_fatal("worker is not executable", "path", a->worker, "error", strerror(errno));
}

/* Does any worker hold its OFD lock on the presence lock file?  Then the
 * table is in use and must not be recreated under it. */
static int accept_workers_live(const char *runtime_dir)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/presence.lock", runtime_dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
	int live = fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
	close(fd);
	return live;
}

/* The acceptor creates the table (or replaces one with an old layout),
 * stamps the start time /health reports, and keeps it mapped only to count
 * its refusals (the counters' page is the one it touches). */
static struct shm *accept_open_shm(const struct config *cfg)
{
	struct shm *shm = NULL;
	char err[256];
	uint32_t nslots = (uint32_t)cfg->presence_slots;
	if (shm_open_table(cfg->runtime_dir, nslots, 0, &shm, err, sizeof err) != 0) {
		if (accept_workers_live(cfg->runtime_dir))
			log_fatal("presence table unusable while workers are live; not recreating it",
				  "error", err, "runtime_dir", cfg->runtime_dir);
		log_warn("presence table unusable; recreating it", "error", err, "runtime_dir",
			 cfg->runtime_dir);
		if (shm_open_table(cfg->runtime_dir, nslots, 1, &shm, err, sizeof err) != 0)
			log_fatal("cannot create the presence table", "error", err, "runtime_dir",
				  cfg->runtime_dir);
	}
	shm_set_start_ms(shm, now_ms());
	return shm;
}

/* One bound, listening, non-blocking socket, or -errno. */
static int accept_bind(const struct sockaddr *sa, socklen_t len)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	int one = 1, zero = 0;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
	    (sa->sa_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) != 0) ||
	    bind(fd, sa, len) != 0 || listen(fd, ACCEPT_BACKLOG) != 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

static int accept_listen_own(const struct config *cfg)
{
	/* loopback unless told otherwise: a laptop broker is not a LAN service;
	 * BROKER_BIND=:: listens on every address (dual stack), 0.0.0.0 on every
	 * IPv4 one */
	const char *bind_s = getenv("BROKER_BIND");
	if (!bind_s || !*bind_s)
		bind_s = ACCEPT_DEFAULT_BIND;
	struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_port = htons(cfg->broker_port),
				  .sin6_addr = in6addr_any};
	struct sockaddr_in s4 = {.sin_family = AF_INET, .sin_port = htons(cfg->broker_port),
				 .sin_addr.s_addr = htonl(INADDR_ANY)};
	int fd;
	{
		char host[INET6_ADDRSTRLEN + 2];
		size_t n = strlen(bind_s);
		if (n >= 2 && bind_s[0] == '[' && bind_s[n - 1] == ']' && n - 2 < sizeof host) {
			memcpy(host, bind_s + 1, n - 2); /* "[::1]" */
			host[n - 2] = '\0';
		} else if (str_copy(host, sizeof host, bind_s) != 0) {
			accept_die_usage("BROKER_BIND must be an IPv4 or IPv6 address", bind_s);
		}
		if (inet_pton(AF_INET6, host, &s6.sin6_addr) == 1)
			fd = accept_bind((struct sockaddr *)&s6, sizeof s6);
		else if (inet_pton(AF_INET, host, &s4.sin_addr) == 1)
			fd = accept_bind((struct sockaddr *)&s4, sizeof s4);
		else
			accept_die_usage("BROKER_BIND must be an IPv4 or IPv6 address", bind_s);
	}
	if (fd < 0) {
		char port[24];
		log_fatal("cannot listen", "port", accept_itoa(cfg->broker_port, port), "bind",
			  bind_s ? bind_s : "", "error", strerror(-fd));
	}
	return fd;
}

static int accept_listen(const struct config *cfg)
{
	int n = sd_listen_fds(1); /* 1: our children must not see systemd's LISTEN_* */
	if (n < 0)
		log_fatal("sd_listen_fds failed", "error", strerror(-n));
	if (n == 0)
		return accept_listen_own(cfg);
	if (n > 1)
		accept_die_usage("systemd passed more than one socket; expected one (Accept=no)",
				 NULL);
	int fd = SD_LISTEN_FDS_START;
	if (sd_is_socket_inet(fd, 0, SOCK_STREAM, 1, 0) <= 0)
		accept_die_usage("fd 3 from systemd is not a listening TCP socket (Accept=no)",
				 NULL);
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)
		log_fatal("cannot set up the systemd socket", "error", strerror(errno));
	return fd;
}

/* spare entries for evicted children not yet reaped */
static int accept_evict_slack(int max_connections)
{
	int slack = max_connections / 8;
	return slack < 16 ? 16 : slack;
}

static int accept_signals_open(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
		log_fatal("sigprocmask failed", "error", strerror(errno));
	int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		log_fatal("signalfd failed", "error", strerror(errno));
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN); /* a vanished log reader must not kill us */
	return fd;
}

/* What every child starts with (accept/spawn.h): SIGTERM and SIGINT blocked
 * across the exec (a pending one stays pending) until the worker has its
 * handler, so that an eviction or a shutdown that comes this early does not
 * kill it with the default action; every other signal let in. */
static void accept_spawn_prepare(struct spawn *sp, char *const *argv, int fd)
{
	memset(sp, 0, sizeof *sp);
	sp->argv = argv;
	sp->fd = fd;
	sigemptyset(&sp->mask);
	sigaddset(&sp->mask, SIGTERM);
	sigaddset(&sp->mask, SIGINT);
}

/* Start a worker for connection cfd, presented the way systemd's Accept=yes
 * does (fd 3, LISTEN_FDS=1, LISTEN_PID, REMOTE_ADDR/REMOTE_PORT), so the
 * worker has one start-up path.  0 started (*pid), -errno not; an exec
 * failure is logged and its child (exited 111) counts until reaped. */
static int accept_spawn_worker(const struct acceptor *a, int cfd, const char *ip, int port, uint32_t slot,
			       pid_t *pid)
{
	char slotbuf[48], addrbuf[INET6_ADDRSTRLEN + 16], portbuf[32];
	char *argv[] = {(char *)a->worker, NULL};
	struct spawn sp;
	accept_spawn_prepare(&sp, argv, cfd);
	sp.path = a->worker;
	snprintf(slotbuf, sizeof slotbuf, "%s=%lu", CHILDTAB_ENV, (unsigned long)slot);
	snprintf(addrbuf, sizeof addrbuf, "REMOTE_ADDR=%s", ip);
	snprintf(portbuf, sizeof portbuf, "REMOTE_PORT=%d", port);
	const char *extra[] = {"LISTEN_FDS=1", slotbuf, addrbuf, portbuf, NULL};
	memcpy(sp.extra, extra, sizeof extra);
	sp.listen_pid = 1;
	int r = spawn_start(&sp, pid);
	if (r != 0 && *pid)
		log_error("cannot exec the worker", "path", a->worker, "error", strerror(-r));
	return *pid ? 0 : r;
}

/* Start a spare: its end of the socketpair as fd 3, and none of the
 * variables that name a connection (they come with the hand-over). */
static int accept_spawn_spare(const struct acceptor *a, int sfd, pid_t *pid)
{
	char *argv[] = {(char *)a->worker, HANDOVER_ARG, NULL};
	struct spawn sp;
	accept_spawn_prepare(&sp, argv, sfd);
	sp.path = a->worker;
	int r = spawn_start(&sp, pid);
	if (r != 0 && *pid)
		log_error("cannot exec the worker", "path", a->worker, "error", strerror(-r));
	return *pid ? 0 : r;
}

/* The reaper: `meshbroker-worker --reap` (worker/reap.h) closes the presence
 * rows of workers that died without leaving, each with its peer_left.  Run
 * at start-up (rows that outlived a previous run) and after a worker was
 * killed by a signal; one at a time, and once more when another died
 * meanwhile.  It is no connection: not in the child table, not counted. */
static void accept_reaper_spawn(struct acceptor *a)
{
	if (!a->cfg.database_url || a->lfd < 0)
		return; /* no database, or stopping */
	if (a->reaper) {
		a->reap_again = 1;
		return;
	}
	pid_t pid = fork();
	if (pid < 0) {
		log_warn("cannot fork the reaper", "error", strerror(errno));
		return;
	}
	if (pid == 0) {
		for (int s = 1; s < NSIG; s++)
			signal(s, SIG_DFL);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (close_range(3, ~0U, 0) != 0)
			for (long fd = 3, max = sysconf(_SC_OPEN_MAX); fd < max; fd++)
				close((int)fd);
		unsetenv("LISTEN_FDS");
		unsetenv("LISTEN_PID");
		unsetenv("LISTEN_FDNAMES");
		unsetenv(CHILDTAB_ENV);
		char *argv[] = {(char *)a->worker, "--reap", NULL};
		execv(a->worker, argv);
		_exit(EXIT_SYSTEM);
	}
	a->reaper = pid;
	a->reap_again = 0;
}

/* Each worker sandboxes itself (worker/sandbox.c); whether the kernel has
 * Landlock for it is said once here rather than by every worker. */
static void accept_log_landlock(void)
{
#ifdef SYS_landlock_create_ruleset
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, 1UL /* LANDLOCK_CREATE_RULESET_VERSION */);
#else
	long abi = -1;
#endif
	char v[24];
	if (abi >= 1)
		log_info("worker sandbox: Landlock available", "abi", accept_itoa(abi, v));
	else
		log_info("worker sandbox: no Landlock in this kernel; workers' file system writes are bounded only "
			 "by the unit (seccomp and no_new_privs still apply)");
}

/* ---- spare workers (SPARE_WORKERS; common/handover.h) ---- */

static void accept_start(struct acceptor *a, int ci, int fd, const char *ip, int port, int tries);
static void accept_forget(struct acceptor *a, pid_t pid);

static struct spare *accept_spare_find(struct acceptor *a, pid_t pid)
{
	for (int i = 0; i < a->spare_cap; i++)
		if (a->spares[i].pid == pid)
			return &a->spares[i];
	return NULL;
}

/* waiting for a connection: neither handed one nor dying */
static int accept_spare_waiting(const struct spare *s) { return s->pid && s->fd >= 0 && s->conn < 0; }

static int accept_spares_waiting(const struct acceptor *a)
{
	int n = 0;
	for (int i = 0; i < a->spare_cap; i++)
		n += accept_spare_waiting(&a->spares[i]);
	return n;
}

/* start (vfork+exec, accept/spawn.h) one more spare; 0 started, -1 not now */
static int accept_spare_spawn(struct acceptor *a)
{
	struct spare *s = accept_spare_find(a, 0);
	if (!s)
		return -1; /* hand-overs in flight and dying spares hold every entry */
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
		log_warn("cannot make a spare worker's socket", "error", strerror(errno));
		return -1;
	}
	pid_t pid;
	int r = accept_spawn_spare(a, sv[1], &pid);
	close(sv[1]);
	if (r != 0) {
		log_warn("cannot start a spare worker", "error", strerror(-r));
		close(sv[0]);
		return -1;
	}
	*s = (struct spare){.pid = pid, .fd = sv[0], .seq = ++a->spare_seq, .conn = -1, .child = -1};
	a->nspares++;
	return 0;
}

/* Keep SPARE_WORKERS spares waiting (not while stopping, nor for a moment
 * after a fork failure or a run of spares that died unused). */
static void accept_spares_fill(struct acceptor *a)
{
	if (!a->cfg.spare_workers || a->lfd < 0)
		return;
	int64_t now = mono_ms();
	if (now < a->spare_pause_until)
		return;
	for (int n = accept_spares_waiting(a); n < a->cfg.spare_workers; n++)
		if (accept_spare_spawn(a) != 0) {
			a->spare_pause_until = now + ACCEPT_PAUSE_MS;
			return;
		}
}

/* the oldest spare waiting, or NULL */
static struct spare *accept_spare_pick(struct acceptor *a)
{
	struct spare *best = NULL;
	for (int i = 0; i < a->spare_cap; i++) {
		struct spare *s = &a->spares[i];
		if (accept_spare_waiting(s) && (!best || s->seq < best->seq))
			best = s;
	}
	return best;
}

/* The spare acknowledged its connection: from now on it is an ordinary
 * child (children[s->child]); our copy of the connection and our end of
 * its socket go, and so does its spare entry. */
static void accept_spare_taken(struct acceptor *a, struct spare *s)
{
	close(s->conn);
	close(s->fd);
	*s = (struct spare){.fd = -1, .conn = -1, .child = -1};
	a->nspares--;
	a->spare_fails = 0;
}

/* The spare is gone, or will be made to go, without having acknowledged
 * a connection handed to it (its end closed, its socket failed, it died, or
 * it answered nothing for SPARE_ACK_MS): no part of the connection was read
 * by it, so the connection goes on, to another spare or a fork+exec.  The
 * entry stays until the pid is reaped (reaped: it is, do not signal it). */
static void accept_spare_lost(struct acceptor *a, struct spare *s, const char *why, int reaped)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	if (!reaped)
		kill(s->pid, SIGKILL); /* one that is still there is stuck, or is exiting anyway */
	int conn = s->conn, ci = s->child, tries = s->tries, port = s->port;
	char ip[INET6_ADDRSTRLEN];
	memcpy(ip, s->ip, sizeof ip);
	s->conn = -1;
	s->child = -1;
	if (conn < 0)
		return;
	struct child *c = &a->children[ci];
	char p[24], t[24];
	if (c->evicted_ms || a->lfd < 0) {
		/* evicted, or stopping: the connection was to go anyway; its
		 * child entry goes when the pid is reaped */
		close(conn);
		return;
	}
	log_info("a spare worker did not take its connection; handing it on", "reason", why, "pid",
		 accept_itoa(s->pid, p), "remote", ip, "tries", accept_itoa(tries, t));
	childtab_free(a->ct, (uint32_t)ci);
	c->pid = 0;
	a->nchildren--;
	accept_start(a, ci, conn, ip, port, tries);
}

/* A spare's socket is readable: its acknowledgement, or its end. */
static void accept_spare_event(struct acceptor *a, struct spare *s, int reaped)
{
	char b[8];
	ssize_t n = recv(s->fd, b, sizeof b, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n == 1 && b[0] == HANDOVER_ACK && s->conn >= 0)
		accept_spare_taken(a, s);
	else
		accept_spare_lost(a, s, n == 0 ? "closed" : n < 0 ? strerror(errno) : "bad answer", reaped);
}

/* Hand-overs unanswered for SPARE_ACK_MS: the spare is stuck. */
static void accept_spares_overdue(struct acceptor *a)
{
	int64_t now = mono_ms();
	for (int i = 0; i < a->spare_cap; i++) {
		struct spare *s = &a->spares[i];
		if (s->pid && s->fd >= 0 && s->conn >= 0 && now - s->sent_ms >= SPARE_ACK_MS)
			accept_spare_lost(a, s, "no answer", 0);
	}
}

/* A reaped pid that was a spare's: 1 when it is done with here, 0 when it
 * had become a child (it acknowledged its connection before it died), whose
 * exit the caller handles as any child's. */
static int accept_spare_exited(struct acceptor *a, struct spare *s, int st)
{
	pid_t pid = s->pid;
	int unused = s->fd >= 0; /* it died by itself, not because we closed its socket */
	if (s->fd >= 0 && s->conn >= 0) {
		accept_spare_event(a, s, 1); /* an acknowledgement it sent before it died is still there */
		if (!s->pid)
			return 0;
		if (s->conn >= 0)
			accept_spare_lost(a, s, "exited", 1);
	}
	char p[24], v[24];
	int stopping = a->lfd < 0; /* the spares still waiting were killed on purpose */
	if (!stopping && WIFSIGNALED(st))
		log_info("spare worker killed", "pid", accept_itoa(pid, p), "signal", accept_itoa(WTERMSIG(st), v));
	else if (!stopping && WEXITSTATUS(st) != 0)
		log_info("spare worker failed", "pid", accept_itoa(pid, p), "status", accept_itoa(WEXITSTATUS(st), v));
	if (s->fd >= 0)
		close(s->fd);
	*s = (struct spare){.fd = -1, .conn = -1, .child = -1};
	a->nspares--;
	if (unused && a->lfd >= 0 && ++a->spare_fails >= SPARE_FAILS_MAX) {
		log_warn("spare workers keep exiting before they get a connection; starting none for a while",
			 "count", accept_itoa(a->spare_fails, v));
		a->spare_fails = 0;
		a->spare_pause_until = mono_ms() + SPARE_PAUSE_MS;
	}
	accept_forget(a, pid); /* a connection it held that was evicted or stopped meanwhile */
	return 1;
}

/* The worker binary replaced (a package upgrade): the spares waiting were
 * exec'd from the old one, and new connections exec the new binary, so they
 * are let go (their socket closed: they exit 0) and new ones started.
 * Looked at once a second. */
static void accept_spares_check_binary(struct acceptor *a, int64_t now)
{
	if (!a->spare_cap || now - a->worker_seen_ms < ACCEPT_TICK_MS)
		return;
	a->worker_seen_ms = now;
	struct stat st;
	if (stat(a->worker, &st) != 0)
		return; /* gone for a moment (being replaced): look again later */
	if (st.st_ino == a->worker_st.st_ino && st.st_dev == a->worker_st.st_dev &&
	    st.st_mtim.tv_sec == a->worker_st.st_mtim.tv_sec && st.st_mtim.tv_nsec == a->worker_st.st_mtim.tv_nsec)
		return;
	int n = 0;
	for (int i = 0; i < a->spare_cap; i++)
		if (accept_spare_waiting(&a->spares[i])) {
			close(a->spares[i].fd);
			a->spares[i].fd = -1;
			n++;
		}
	char c[24];
	log_info("the worker binary changed; spare workers restarted", "path", a->worker, "spares", accept_itoa(n, c));
	a->worker_st = st;
}

static void accept_spares_kill(struct acceptor *a, int sig)
{
	for (int i = 0; i < a->spare_cap; i++)
		if (a->spares[i].pid)
			kill(a->spares[i].pid, sig);
}

static void accept_forget(struct acceptor *a, pid_t pid)
{
	for (int i = 0; i < a->cap; i++)
		if (a->children[i].pid == pid) {
			a->children[i].pid = 0;
			if (a->children[i].evicted_ms) {
				a->children[i].evicted_ms = 0;
				a->nevicted--;
			}
			childtab_free(a->ct, (uint32_t)i);
			a->nchildren--;
			return;
		}
}

static void accept_reap(struct acceptor *a)
{
	int st;
	pid_t pid;
	int reap = 0;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		char p[24], v[24];
		if (pid == a->reaper) {
			a->reaper = 0;
			reap |= a->reap_again;
			if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
				log_warn("the reaper failed", "pid", accept_itoa(pid, p));
			continue;
		}
		struct spare *sp = a->spare_cap ? accept_spare_find(a, pid) : NULL;
		if (sp && accept_spare_exited(a, sp, st))
			continue; /* a spare, not (or no longer) a connection's worker */
		accept_forget(a, pid);
		if (WIFSIGNALED(st)) {
			log_info("worker killed", "pid", accept_itoa(pid, p), "signal",
				 accept_itoa(WTERMSIG(st), v));
			reap = 1; /* it could not close its presence row */
		}
		else if (WEXITSTATUS(st) != 0)
			log_info("worker failed", "pid", accept_itoa(pid, p), "status",
				 accept_itoa(WEXITSTATUS(st), v));
		else
			log_debug("worker done", "pid", accept_itoa(pid, p));
	}
	if (reap)
		accept_reaper_spawn(a);
}

/* Read pending signals; reap.  1 when asked to stop. */
static int accept_signals_read(struct acceptor *a)
{
	struct signalfd_siginfo si;
	int stop = 0;
	while (read(a->sfd, &si, sizeof si) == (ssize_t)sizeof si)
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
			stop = 1;
	accept_reap(a);
	return stop;
}

/* the connections a source holds: its children, but not those whose worker
 * has closed the connection and only has its exit left (CHILD_CLOSED): a
 * client that closes and reconnects at once, as a burst of hellos does, is
 * not refused for processes still exiting; they count against
 * MAX_CONNECTIONS until reaped */
static int accept_count_source(const struct acceptor *a, const unsigned char src[16])
{
	int n = 0, seen = 0;
	for (int i = 0; i < a->cap && seen < a->nchildren; i++) {
		if (!a->children[i].pid)
			continue;
		seen++;
		if (memcmp(a->children[i].src, src, 16) == 0 &&
		    childtab_get(a->ct, (uint32_t)i, a->children[i].pid) != CHILD_CLOSED)
			n++;
	}
	return n;
}

/* children that count against MAX_CONNECTIONS: the evicted are on their way out */
static int accept_live(const struct acceptor *a) { return a->nchildren - a->nevicted; }

/* the state a live child's worker last wrote; a child that has not written
 * its entry yet is before its hello */
static enum child_state accept_child_state(const struct acceptor *a, int i)
{
	enum child_state st = childtab_get(a->ct, (uint32_t)i, a->children[i].pid);
	return st == CHILD_FREE ? CHILD_PREAUTH : st;
}

static int accept_count_unauth(const struct acceptor *a)
{
	int n = 0, seen = 0;
	for (int i = 0; i < a->cap && seen < a->nchildren; i++) {
		if (!a->children[i].pid)
			continue;
		seen++;
		if (a->children[i].evicted_ms)
			continue;
		enum child_state st = accept_child_state(a, i);
		n += st == CHILD_PREAUTH || st == CHILD_HELLO;
	}
	return n;
}

/* Evict the oldest live child that has sent no hello yet, else the oldest
 * whose hello is waiting for its membership lookup: its entry becomes
 * EVICTED (a worker that authenticates at this moment wins or loses that
 * CAS, never both), then SIGTERM.  0 done, -1 when every live child has
 * authenticated or serves HTTP. */
static int accept_evict(struct acceptor *a, enum shm_counter counter, const char *why)
{
	for (int attempt = 0; attempt < 8; attempt++) {
		int best = -1, best_hello = -1, seen = 0;
		for (int i = 0; i < a->cap && seen < a->nchildren; i++) {
			const struct child *c = &a->children[i];
			if (!c->pid)
				continue;
			seen++;
			if (c->evicted_ms)
				continue;
			enum child_state st = accept_child_state(a, i);
			if (st == CHILD_PREAUTH && (best < 0 || c->seq < a->children[best].seq))
				best = i;
			else if (st == CHILD_HELLO && (best_hello < 0 || c->seq < a->children[best_hello].seq))
				best_hello = i;
		}
		if (best < 0)
			best = best_hello;
		if (best < 0)
			return -1;
		struct child *c = &a->children[best];
		/* a child that has not written its entry yet cannot move it
		 * either: the table only says PREAUTH once one of us wrote it */
		childtab_start(a->ct, (uint32_t)best, c->pid);
		if (!childtab_move(a->ct, (uint32_t)best, c->pid, CHILD_BIT(CHILD_PREAUTH) | CHILD_BIT(CHILD_HELLO),
				   CHILD_EVICTED))
			continue; /* it authenticated (or began HTTP) just now: look again */
		kill(c->pid, SIGTERM);
		c->evicted_ms = mono_ms();
		a->nevicted++;
		counter_add(a->shm, counter, 1);
		int64_t now = c->evicted_ms;
		if (now - a->evict_log_ms < ACCEPT_WARN_EVERY_MS) {
			a->evicted_quiet++;
			return 0;
		}
		char p[24], n[24], q[24];
		log_info("evicted a connection before its hello", "reason", why, "pid", accept_itoa(c->pid, p),
			 "live", accept_itoa(accept_live(a), n), "suppressed", accept_itoa((long)a->evicted_quiet, q));
		a->evict_log_ms = now;
		a->evicted_quiet = 0;
		return 0;
	}
	return -1;
}

/* An evicted worker closes at once; one still there after ACCEPT_EVICT_KILL_MS
 * is stuck, and its entry is needed. */
static void accept_evict_overdue(struct acceptor *a)
{
	if (!a->nevicted)
		return;
	int64_t now = mono_ms();
	for (int i = 0; i < a->cap; i++) {
		struct child *c = &a->children[i];
		if (c->pid && c->evicted_ms && now - c->evicted_ms >= ACCEPT_EVICT_KILL_MS) {
			char p[24];
			log_warn("an evicted worker did not exit; killing it", "pid", accept_itoa(c->pid, p));
			kill(c->pid, SIGKILL);
			c->evicted_ms = now; /* once more at most, until it is reaped */
		}
	}
}

/* Best effort: a client that sent a request should see why, not a reset. */
static void accept_refuse(struct acceptor *a, int fd, const char *ip, enum shm_counter c, const char *why)
{
	counter_add(a->shm, c, 1);
	static const char resp[] = "HTTP/1.1 503 Service Unavailable\r\n"
				   "Content-Type: application/json\r\n"
				   "Content-Length: 32\r\n"
				   "Connection: close\r\n\r\n"
				   "{\"error\":\"too many connections\"}";
	_Static_assert(sizeof "{\"error\":\"too many connections\"}" - 1 == 32, "Content-Length");
	ssize_t w = send(fd, resp, sizeof resp - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	(void)w;
	shutdown(fd, SHUT_WR);
	/* unread input would turn close() into a reset that can eat the 503 */
	char sink[4096];
	for (int i = 0; i < 16 && recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; i++)
		;
	close(fd);
	int64_t now = mono_ms();
	if (now - a->refuse_log_ms < ACCEPT_WARN_EVERY_MS) {
		a->refused_quiet++;
		return;
	}
	char n[24], q[24];
	log_warn("connection refused", "reason", why, "remote", ip, "live",
		 accept_itoa(a->nchildren, n), "suppressed", accept_itoa((long)a->refused_quiet, q));
	a->refuse_log_ms = now;
	a->refused_quiet = 0;
}

/* Remote address as a 16-byte key (IPv4 v4-mapped) and as text (IPv4-mapped
 * IPv6 shown as plain IPv4, like the client sees itself). */
static void accept_peer(const struct sockaddr_storage *ss, unsigned char src[16], char *ip,
			size_t cap, int *port)
{
	memset(src, 0, 16);
	*port = 0;
	snprintf(ip, cap, "unknown");
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
		memcpy(src, &s6->sin6_addr, 16);
		*port = ntohs(s6->sin6_port);
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
			inet_ntop(AF_INET, src + 12, ip, (socklen_t)cap);
		else
			inet_ntop(AF_INET6, src, ip, (socklen_t)cap);
	} else if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
		src[10] = src[11] = 0xff;
		memcpy(src + 12, &s4->sin_addr, 4);
		*port = ntohs(s4->sin_port);
		inet_ntop(AF_INET, &s4->sin_addr, ip, (socklen_t)cap);
	}
}

static void accept_serve(struct acceptor *a, int fd, const struct sockaddr_storage *ss)
{
	unsigned char addr[16], src[16];
	char ip[INET6_ADDRSTRLEN];
	int port;
	accept_peer(ss, addr, ip, sizeof ip, &port);
	source_key(addr, a->cfg.source_prefix_v4, a->cfg.source_prefix_v6, src);
	if (accept_live(a) >= a->cfg.max_connections)
		accept_reap(a); /* a child may have exited since the last SIGCHLD read */
	if (accept_count_source(a, src) >= a->cfg.max_per_source) {
		accept_reap(a);
		if (accept_count_source(a, src) >= a->cfg.max_per_source) {
			accept_refuse(a, fd, ip, C_ACC_PER_SOURCE, "max_connections_per_source");
			return;
		}
	}
	/* room for one more: past MAX_CONNECTIONS or past the unauthenticated
	 * share, the oldest child before its hello goes */
	if (accept_live(a) >= a->cfg.max_connections) {
		if (accept_evict(a, C_EVICT_MAX_CONNECTIONS, "max_connections") != 0) {
			accept_refuse(a, fd, ip, C_ACC_MAX_CONNECTIONS, "max_connections");
			return;
		}
	} else if (accept_count_unauth(a) >= a->unauth_cap) {
		accept_evict(a, C_EVICT_UNAUTH_SHARE, "unauthenticated_share");
	}
	struct child *c = NULL;
	for (int i = 0; i < a->cap && !c; i++)
		if (!a->children[i].pid)
			c = &a->children[i];
	if (!c)
		log_fatal("child table out of step with its count");
	memcpy(c->src, src, 16);
	c->seq = ++a->seq;
	c->evicted_ms = 0;
	accept_start(a, (int)(c - a->children), fd, ip, port, 0);
}

/* Give connection fd to a worker as children[ci] (a free entry whose
 * source and order are set; counted from here on): a spare waiting, while
 * the connection has been offered to fewer than SPARE_TRIES, else a
 * fork+exec of its own.  tries: spares it was offered to before. */
static void accept_start(struct acceptor *a, int ci, int fd, const char *ip, int port, int tries)
{
	struct child *c = &a->children[ci];
	uint32_t slot = (uint32_t)ci;
	char p[24], pt[24];
	struct spare *s;
	while (tries < SPARE_TRIES && (s = accept_spare_pick(a))) {
		tries++;
		childtab_start(a->ct, slot, s->pid); /* the entry is the spare's before it can look */
		struct handover h;
		memset(&h, 0, sizeof h);
		h.magic = HANDOVER_MAGIC;
		h.slot = slot;
		h.port = port;
		snprintf(h.addr, sizeof h.addr, "%s", ip);
		int r = handover_send(s->fd, fd, &h);
		if (r != 0) {
			/* gone (EPIPE, ECONNRESET) or not reading (EAGAIN): not ours to wait for */
			childtab_free(a->ct, slot);
			s->conn = -1;
			accept_spare_lost(a, s, strerror(-r), 0);
			continue;
		}
		c->pid = s->pid;
		a->nchildren++;
		s->conn = fd;
		s->child = ci;
		s->tries = tries;
		s->port = port;
		s->sent_ms = mono_ms();
		snprintf(s->ip, sizeof s->ip, "%s", ip);
		log_debug("connection handed to a spare worker", "pid", accept_itoa(s->pid, p), "remote", ip, "port",
			  accept_itoa(port, pt));
		accept_spares_fill(a); /* its successor */
		return;
	}
	pid_t pid;
	int r = accept_spawn_worker(a, fd, ip, port, slot, &pid);
	close(fd);
	if (r != 0) {
		log_warn("cannot start a worker", "error", strerror(-r), "remote", ip);
		a->pause_until = mono_ms() + ACCEPT_PAUSE_MS;
		return;
	}
	childtab_start(a->ct, slot, pid); /* or the worker did it already (worker/skel.c) */
	c->pid = pid;
	a->nchildren++;
	log_debug("worker started", "pid", accept_itoa(pid, p), "remote", ip, "port",
		  accept_itoa(port, pt));
	accept_spares_fill(a); /* none was waiting: start them now */
}

static void accept_burst(struct acceptor *a)
{
	for (int i = 0; i < ACCEPT_BURST; i++) {
		if (a->nchildren >= a->cap) {
			accept_reap(a);
			if (a->nchildren >= a->cap)
				return; /* evictions in flight use the slack: wait for them (SIGCHLD) */
		}
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		int fd = accept4(a->lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
		if (fd >= 0) {
			accept_serve(a, fd, &ss);
			continue;
		}
		switch (errno) {
		case EAGAIN:
			return;
		/* the connection's own trouble (accept(2): retry these) */
		case EINTR: case ECONNABORTED: case EPROTO: case EPERM: case ENETDOWN:
		case ENOPROTOOPT: case EHOSTDOWN: case ENONET: case EHOSTUNREACH:
		case EOPNOTSUPP: case ENETUNREACH: case ETIMEDOUT:
			continue;
		/* out of resources: the backlog holds the rest; try again shortly */
		case EMFILE: case ENFILE: case ENOBUFS: case ENOMEM: {
			int64_t now = mono_ms();
			if (now - a->pause_log_ms >= ACCEPT_WARN_EVERY_MS) {
				log_warn("accept failed; pausing", "error", strerror(errno));
				a->pause_log_ms = now;
			}
			a->pause_until = now + ACCEPT_PAUSE_MS;
			return;
		}
		default:
			log_fatal("accept failed", "error", strerror(errno));
		}
	}
}

/* sig to every child; with skip_closed, not to a child whose worker has
 * closed its connection (CHILD_CLOSED): it is exiting on its own, and a
 * SIGTERM landing in a sanitized build's exit-time leak scan can hang it
 * (the drain's SIGKILL still ends whatever is left) */
static void accept_kill_all(struct acceptor *a, int sig, int skip_closed)
{
	for (int i = 0; i < a->cap; i++)
		if (a->children[i].pid &&
		    !(skip_closed && childtab_get(a->ct, (uint32_t)i, a->children[i].pid) == CHILD_CLOSED))
			kill(a->children[i].pid, sig);
}

/* SIGTERM: no new connections, pass SIGTERM on, wait for the children (they
 * release their slots themselves), then SIGKILL what is left. */
static void accept_drain(struct acceptor *a)
{
	char n[24], sp[24];
	close(a->lfd);
	a->lfd = -1;
	accept_reap(a);
	log_info("stopping", "children", accept_itoa(a->nchildren, n), "spares", accept_itoa(a->nspares, sp));
	/* spares still waiting hold no connection and no state: SIGKILL, not
	 * SIGTERM, so that one still starting up on a busy machine (or in a
	 * sanitized build's exit-time leak scan, which a SIGTERM can hang)
	 * does not hold the stop up; one with a hand-over in flight is a child,
	 * told below, and stops that connection as any worker does */
	for (int i = 0; i < a->spare_cap; i++)
		if (accept_spare_waiting(&a->spares[i])) {
			close(a->spares[i].fd);
			a->spares[i].fd = -1;
			kill(a->spares[i].pid, SIGKILL);
		}
	accept_kill_all(a, SIGTERM, 1);
	/* a stopped child cannot act on SIGTERM: SIGCONT, but only to a child
	 * that is stopped. A SIGCONT discards a pending SIGSTOP, and the one
	 * a sanitized build's exit-time leak scan sends its own threads (its
	 * tracer's PTRACE_ATTACH) then never comes: the scan waits for it for
	 * ever (20 of 40 exits hung under SIGCONTs in a plain ASan program) */
	for (int i = 0; i < a->cap; i++)
		if (a->children[i].pid && process_group_stopped(a->children[i].pid))
			kill(a->children[i].pid, SIGCONT);
	int64_t deadline = mono_ms() + ACCEPT_DRAIN_MS;
	while (a->nchildren > 0 || a->nspares > 0) {
		int64_t left = deadline - mono_ms();
		if (left <= 0)
			break;
		struct pollfd p = {.fd = a->sfd, .events = POLLIN};
		if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
			log_fatal("poll failed", "error", strerror(errno));
		accept_signals_read(a); /* a second SIGTERM changes nothing */
	}
	if (a->refused_quiet > 0)
		log_warn("connections refused since the last warning", "count",
			 accept_itoa((long)a->refused_quiet, n));
	if (a->evicted_quiet > 0)
		log_info("connections evicted since the last line", "count", accept_itoa((long)a->evicted_quiet, n));
	if (a->nchildren > 0 || a->nspares > 0) {
		log_warn("children did not exit in time; killing them", "children",
			 accept_itoa(a->nchildren, n), "spares", accept_itoa(a->nspares, sp));
		accept_kill_all(a, SIGKILL, 0);
		accept_spares_kill(a, SIGKILL);
		int st;
		pid_t pid;
		while ((a->nchildren > 0 || a->nspares > 0) && ((pid = waitpid(-1, &st, 0)) > 0 || errno == EINTR)) {
			if (pid <= 0)
				continue;
			struct spare *s = a->spare_cap ? accept_spare_find(a, pid) : NULL;
			if (!s || !accept_spare_exited(a, s, st))
				accept_forget(a, pid);
		}
	}
	log_info("stopped");
}

int main(int argc, char **argv)
{
	if (argc > 1) {
		if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
			fputs(accept_usage, stdout);
			return 0;
		}
		if (strcmp(argv[1], "--version") == 0) {
			puts("meshbroker-accept " MESHBROKER_VERSION);
			return 0;
		}
		fputs(accept_usage, stderr);
		return EXIT_USAGE;
	}
	accept_fix_stdio();
	static struct acceptor a = {.lfd = -1, .sfd = -1};
	char err[256];
	if (config_load(&a.cfg, 0, err, sizeof err) != 0 ||
	    (a.cfg.database_url && pq_check_url(a.cfg.database_url, err, sizeof err) != 0))
		accept_die_usage(err, NULL);
	pq_unload(); /* loaded for that check only: no need to fork with it mapped */
	log_init("accept");
	a.cap = a.cfg.max_connections + accept_evict_slack(a.cfg.max_connections);
	a.unauth_cap = (int)((long)a.cfg.max_connections * a.cfg.unauth_share_percent / 100);
	if (a.unauth_cap < 1)
		a.unauth_cap = 1;
	a.children = calloc((size_t)a.cap, sizeof *a.children);
	/* waiting spares, hand-overs in flight (a burst's), dying ones */
	a.spare_cap = a.cfg.spare_workers ? 2 * a.cfg.spare_workers + ACCEPT_BURST : 0;
	a.spares = calloc((size_t)a.spare_cap + 1, sizeof *a.spares);
	a.pfd = calloc((size_t)a.spare_cap + 2, sizeof *a.pfd);
	a.pfd_spare = calloc((size_t)a.spare_cap + 1, sizeof *a.pfd_spare);
	if (!a.children || !a.spares || !a.pfd || !a.pfd_spare)
		log_fatal("out of memory");
	for (int i = 0; i < a.spare_cap; i++)
		a.spares[i] = (struct spare){.fd = -1, .conn = -1, .child = -1};
	accept_find_worker(&a);
	a.sfd = accept_signals_open();
	if (spawn_init() != 0) /* after the dispositions above; the environment is final */
		log_fatal("out of memory");
	a.lfd = accept_listen(&a.cfg);
	a.shm = accept_open_shm(&a.cfg);
	if (childtab_create(a.cfg.runtime_dir, (uint32_t)a.cap, &a.ct, err, sizeof err) != 0)
		log_fatal("cannot create the child table", "error", err, "runtime_dir", a.cfg.runtime_dir);

	struct sockaddr_storage ss = {0};
	socklen_t sl = sizeof ss;
	unsigned char src[16];
	char addr[INET6_ADDRSTRLEN], port[24], maxc[24], maxs[24], maxu[24], spw[24];
	int lport;
	getsockname(a.lfd, (struct sockaddr *)&ss, &sl);
	accept_peer(&ss, src, addr, sizeof addr, &lport);
	log_info("listening", "addr", addr, "port", accept_itoa(lport, port), "worker", a.worker,
		 "max_connections", accept_itoa(a.cfg.max_connections, maxc),
		 "max_connections_per_source", accept_itoa(a.cfg.max_per_source, maxs),
		 "max_unauthenticated", accept_itoa(a.unauth_cap, maxu), "spare_workers",
		 accept_itoa(a.cfg.spare_workers, spw));
	accept_log_landlock();
	accept_reaper_spawn(&a); /* presence rows that outlived their workers */
	if (a.spare_cap && stat(a.worker, &a.worker_st) != 0)
		log_fatal("cannot stat the worker", "path", a.worker, "error", strerror(errno));
	a.worker_seen_ms = mono_ms();
	accept_spares_fill(&a);
	for (;;) {
		struct pollfd *p = a.pfd;
		int listening = 1;
		int timeout = -1;
		accept_evict_overdue(&a);
		int64_t now = mono_ms();
		accept_spares_overdue(&a);
		accept_spares_check_binary(&a, now);
		accept_spares_fill(&a);
		histo_acceptor_tick(shm_histo(a.shm), now); /* its process gauges for /metrics (issue 23) */
		if (now < a.pause_until) {
			listening = 0;
			timeout = (int)(a.pause_until - now);
		}
		if (a.nchildren >= a.cap)
			listening = 0; /* the slack is in use by evicted children: SIGCHLD frees it */
		if (a.nevicted > 0 && (timeout < 0 || timeout > ACCEPT_TICK_MS))
			timeout = ACCEPT_TICK_MS;
		if (timeout < 0 || timeout > HISTO_ACCEPTOR_TICK_MS)
			timeout = HISTO_ACCEPTOR_TICK_MS;
		p[0] = (struct pollfd){.fd = a.sfd, .events = POLLIN};
		p[1] = (struct pollfd){.fd = listening ? a.lfd : -1, .events = POLLIN};
		nfds_t np = 2;
		for (int i = 0; i < a.spare_cap; i++) /* hand-overs awaiting their acknowledgement */
			if (a.spares[i].pid && a.spares[i].fd >= 0 && a.spares[i].conn >= 0) {
				a.pfd_spare[np - 2] = i;
				p[np++] = (struct pollfd){.fd = a.spares[i].fd, .events = POLLIN};
			}
		if (np > 2 && timeout > ACCEPT_TICK_MS)
			timeout = ACCEPT_TICK_MS; /* SPARE_ACK_MS is checked at the top */
		if (a.cfg.spare_workers && now < a.spare_pause_until && timeout > a.spare_pause_until - now)
			timeout = (int)(a.spare_pause_until - now); /* spares are started again then */
		if (poll(p, np, timeout) < 0) {
			if (errno == EINTR)
				continue;
			log_fatal("poll failed", "error", strerror(errno));
		}
		if (p[0].revents && accept_signals_read(&a))
			break;
		for (nfds_t k = 2; k < np; k++) {
			struct spare *s = &a.spares[a.pfd_spare[k - 2]];
			/* the reap above may have settled it already */
			if (p[k].revents && s->pid && s->fd == p[k].fd && s->conn >= 0)
				accept_spare_event(&a, s, 0);
		}
		if (p[1].fd >= 0 && p[1].revents)
			accept_burst(&a);
	}
	accept_drain(&a);
	return 0;
}
