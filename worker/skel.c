/* skel — the worker skeleton: signals, the lazily opened shm/db handles, and
 * the WebSocket event loop.  One ppoll() waits on the client socket, the
 * database, the Unix sockets of other workers and the timers (hello timeout,
 * ping/pong, the protocol's tick, the look at what the peer acknowledged);
 * SIGTERM/SIGINT are let in only there, so one can never slip in between
 * the flag check and the wait. */
#include "worker/skel.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "db/db.h"
#include "db/pq.h"
#include "common/log.h"
#include "common/util.h"
#include "shm/membercache.h"
#include "shm/negcache.h"
#include "worker/sandbox.h"
#include "worker/uds.h"
#include "worker/ws.h"

#define POLL_IDLE_MS 1000         /* wait when no timer is due (never happens once upgraded) */
#define CLOSE_FRAME_WRITE_MS 1000 /* the bare close frame when there is no presence table */

static volatile sig_atomic_t got_term;
static sigset_t open_mask; /* the mask ppoll() waits with: SIGTERM/SIGINT let in */

static void on_term(int sig)
{
	(void)sig;
	got_term = 1;
}

void worker_signals_init(void)
{
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = {.sa_handler = on_term};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigset_t block;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &open_mask);
	sigdelset(&open_mask, SIGTERM);
	sigdelset(&open_mask, SIGINT);
}

int worker_terminating(void) { return got_term; }

const sigset_t *worker_wait_mask(void) { return &open_mask; }

/* map the acceptor's child table; which entry is ours is said apart */
static int child_table_map(struct worker *w)
{
	char err[256];
	if (childtab_open(w->cfg.runtime_dir, &w->ct, err, sizeof err) != 0) {
		log_warn("child table unavailable", "error", err);
		return -1;
	}
	return 0;
}

void worker_child_take(struct worker *w, uint32_t slot)
{
	if (!w->ct)
		return;
	w->ct_slot = slot;
	/* normally the acceptor or our pre-exec self wrote it already */
	childtab_start(w->ct, w->ct_slot, getpid());
}

static void child_table_open(struct worker *w)
{
	const char *v = getenv(CHILDTAB_ENV);
	long slot = 0;
	if (!v || !*v)
		return; /* systemd's Accept=yes: no acceptor, no table */
	if (strcmp(v, "0") != 0 && parse_pos_int(v, CHILDTAB_MAX - 1, &slot) != 0) {
		log_warn("ignoring a bad " CHILDTAB_ENV, "value", v);
		return;
	}
	if (child_table_map(w) == 0)
		worker_child_take(w, (uint32_t)slot);
}

#ifdef MESHBROKER_TEST_FORBIDDEN_SYSCALL
/* Test builds only (build/…/tests/meshbroker-worker-sbxtest, never the
 * shipped binary): SIGUSR1 makes the loop call a system call the sandbox
 * forbids, so a test can watch the worker die by SIGSYS. */
static volatile sig_atomic_t got_forbid;
static void on_forbid(int sig)
{
	(void)sig;
	got_forbid = 1;
}
static void forbidden_arm(void)
{
	struct sigaction sa = {.sa_handler = on_forbid};
	sigaction(SIGUSR1, &sa, NULL);
}
static void forbidden_check(void)
{
	if (got_forbid)
		syscall(SYS_acct, NULL); /* not on the allow-list: SIGSYS */
}
/* MESHBROKER_SANDBOX_LOG=1: calls off the list are logged (dmesg), not fatal */
static int sandbox_log_only(void) { return getenv("MESHBROKER_SANDBOX_LOG") != NULL; }
#else
static void forbidden_arm(void) {}
static void forbidden_check(void) {}
static int sandbox_log_only(void) { return 0; }
#endif

static void worker_sandbox(struct worker *w)
{
	forbidden_arm();
	/* the last step before the first byte from the client is read */
	if (sandbox_enter(w->cfg.runtime_dir, sandbox_log_only()) != 0)
		log_fatal("refusing to serve without the sandbox");
}

void worker_child_open(struct worker *w)
{
	child_table_open(w);
	worker_sandbox(w);
}

void worker_spare_open(struct worker *w)
{
	child_table_map(w);
	worker_sandbox(w); /* before the hand-over: a spare's first client byte comes after it */
}

int worker_child_mark(struct worker *w, unsigned from_mask, enum child_state to)
{
	if (!w->ct || childtab_move(w->ct, w->ct_slot, getpid(), from_mask, to))
		return 0;
	/* only an eviction stops us: an entry that is not ours (a table an
	 * acceptor restart replaced) is as good as no table */
	return worker_evicted(w) ? -1 : 0;
}

int worker_evicted(const struct worker *w)
{
	return w->ct && childtab_get(w->ct, w->ct_slot, getpid()) == CHILD_EVICTED;
}

int worker_negcache(struct worker *w)
{
	if (w->negcache)
		return 0;
	char err[256];
	if (negcache_open(w->cfg.runtime_dir, &w->negcache, err, sizeof err) != 0) {
		log_warn("negative member cache unavailable; asking the database", "error", err);
		return -1;
	}
	return 0;
}

int worker_membercache(struct worker *w)
{
	if (w->membercache)
		return 0;
	char err[256];
	if (membercache_open(w->cfg.runtime_dir, &w->membercache, err, sizeof err) != 0) {
		log_warn("member cache unavailable; asking the database", "error", err);
		return -1;
	}
	return 0;
}

int worker_shm(struct worker *w)
{
	if (w->shm)
		return 0;
	char err[256];
	if (shm_open_table(w->cfg.runtime_dir, (uint32_t)w->cfg.presence_slots, 0, &w->shm, err, sizeof err) != 0) {
		log_error("presence table unavailable", "error", err);
		return -1;
	}
	return 0;
}

int worker_db(struct worker *w)
{
	if (!w->db) {
		/* the first session: libpq is loaded here, not at exec (db/pq.h) */
		char err[512];
		if (pq_check_url(w->cfg.database_url, err, sizeof err) != 0) {
			log_error("bad configuration", "error", err);
			return -1;
		}
		w->db = db_new(w->cfg.database_url, w->cfg.db_idle_seconds);
		db_set_pipeline_depth(w->db, w->cfg.db_pipeline_depth);
	}
	return w->db ? 0 : -1;
}

static int64_t min_deadline(int64_t a, int64_t b)
{
	if (a <= 0)
		return b;
	if (b <= 0)
		return a;
	return a < b ? a : b;
}

static void skel_timers(struct worker *w, int64_t now)
{
	/* docs/protocol.md §2: no hello in time closes 1008 hello_timeout */
	if (w->hello_deadline && !w->joined && w->phase != PHASE_HELLO_PENDING && now >= w->hello_deadline) {
		counter_add(w->shm, C_REJ_TIMEOUT, 1);
		ws_close(w, WS_CLOSE_POLICY, "hello_timeout");
		w->hello_deadline = 0;
	}
	ws_keepalive(w, now);
	if (w->joined) {
		/* a drain that failed (the database away) is tried again: the
		 * wake that asked for it is not repeated by anyone */
		if (w->drain_retry_at && now >= w->drain_retry_at) {
			w->drain_retry_at = 0;
			w->hooks->on_wake(w);
		}
		w->hooks->tick(w, now);
	}
	uds_tick(w, now);
}

static int skel_timeout(const struct worker *w, int64_t now)
{
	int64_t deadline = ws_deadline(w);
	if (!w->joined)
		deadline = min_deadline(deadline, w->hello_deadline);
	if (w->phase == PHASE_CLOSING)
		deadline = min_deadline(deadline, w->close_deadline);
	if (w->db)
		deadline = min_deadline(deadline, db_next_deadline(w->db));
	if (w->joined) {
		deadline = min_deadline(deadline, w->next_ttl_check);
		deadline = min_deadline(deadline, w->pe_next);
		/* pushes written but not yet acknowledged by the peer: the pump
		 * looks again (delivery.c), armed only while there are some */
		deadline = min_deadline(deadline, w->ack_check_at);
		deadline = min_deadline(deadline, w->mark_due); /* marks no claim carried (delivery.c) */
		deadline = min_deadline(deadline, w->chain_due);
		deadline = min_deadline(deadline, w->send_due); /* a send's deadline (send.c) */
		deadline = min_deadline(deadline, w->drain_retry_at);
		deadline = min_deadline(deadline, w->reap_next); /* a look whether a sweep is due (reap.c) */
	}
	deadline = min_deadline(deadline, uds_deadline(w));
	int timeout = deadline > 0 ? (int)(deadline - now) : POLL_IDLE_MS;
	if (timeout < 0)
		timeout = 0;
	if (ws_has_early_bytes(w))
		timeout = 0; /* early frames are waiting in memory */
	return timeout;
}

static void skel_loop(struct worker *w)
{
	struct pollfd fds[2 + UDS_IN_MAX + UDS_OUT_MAX + 1];
	for (;;) {
		int64_t now = mono_ms();
		forbidden_check();
		if (w->phase != PHASE_CLOSING && !w->joined && worker_evicted(w)) {
			/* the acceptor needs the place of a connection that has not
			 * authenticated: close now, owed no close handshake */
			log_info("connection evicted before its hello", "remote", w->remote_addr);
			ws_close(w, WS_CLOSE_TRY_AGAIN, "evicted");
			w->close_deadline = now;
		} else if (worker_terminating() && w->phase != PHASE_CLOSING) {
			ws_close(w, WS_CLOSE_GOING_AWAY, "shutdown");
			if (!w->joined)
				w->close_deadline = now;
		}
		skel_timers(w, now);
		if (w->joined)
			w->hooks->pump(w);
		/* statements queued since the last look (a claim a wake asked
		 * for, the batch the pump just made) go out now, not after one
		 * more turn of ppoll for the database socket's POLLOUT (issue
		 * 23, docs/design.md "One message's time"); what their answers
		 * already in hand produce is written by the flushes below */
		if (w->db && db_pending(w->db))
			db_service(w->db, 0, now);
		if (ws_flush(w) != 0)
			break;
		if (w->joined)
			w->hooks->pump(w); /* what the send just wrote may free room for the next push */
		if (ws_flush(w) != 0)
			break;
		if (w->joined)
			w->hooks->pump(w); /* a push that flush finished is noted now: nothing else wakes us for it */
		if (ws_done(w))
			break; /* closed both ways */
		if (w->phase == PHASE_CLOSING && now >= w->close_deadline)
			break; /* the peer never read or never answered our close */
		int nf = ws_pollfd(w, &fds[0]);
		int dbi = -1;
		short dbev = 0;
		int dbfd = w->db ? db_pollfd(w->db, &dbev) : -1;
		if (dbfd >= 0) {
			dbi = nf;
			fds[nf++] = (struct pollfd){.fd = dbfd, .events = dbev};
		}
		int udsi = nf;
		nf += uds_pollfds(w, fds + nf, (int)(sizeof fds / sizeof fds[0]) - nf);
		int timeout = skel_timeout(w, now);
		struct timespec ts = {.tv_sec = timeout / 1000, .tv_nsec = (long)(timeout % 1000) * 1000000};
		int n = ppoll(fds, (nfds_t)nf, &ts, &open_mask);
		if (n < 0 && errno != EINTR)
			log_fatal("poll failed", "error", strerror(errno));
		if (n < 0)
			continue;
		now = mono_ms();
		if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) || w->pre_off < w->pre_len) {
			if (ws_read(w) != 0)
				break;
		}
		if (w->db)
			db_service(w->db, dbi >= 0 ? fds[dbi].revents : 0, now);
		uds_handle(w, fds + udsi, nf - udsi);
	}
}

void skel_serve_ws(struct worker *w, struct http_req *req, const struct worker_hooks *hooks)
{
	if (ws_handshake(w->fd, req) != 0)
		return;
	if (worker_shm(w) != 0) {
		/* no presence table: nobody can find this peer; refuse politely */
		static const unsigned char close_frame[] = {0x88, 0x02, WS_CLOSE_INTERNAL >> 8, WS_CLOSE_INTERNAL & 0xff};
		http_write_all(w->fd, close_frame, sizeof close_frame, CLOSE_FRAME_WRITE_MS);
		return;
	}
	counter_add(w->shm, C_CONNECTIONS_TOTAL, 1);
	w->hooks = hooks;
	w->phase = PHASE_BEFORE_HELLO;
	int64_t now = mono_ms();
	ws_start(w, req, now);
	w->hello_deadline = now + (int64_t)w->cfg.hello_timeout_seconds * 1000;
	uds_init(w);
	skel_loop(w);
	/* the connection is over however it ended: a reply still in flight (a
	 * hello's membership lookup finishing in the leave's db drain) must
	 * not write to the socket we are about to free */
	w->phase = PHASE_CLOSING;
	hooks->leave(w);
	uds_close_all(w);
	ws_stop(w);
}
