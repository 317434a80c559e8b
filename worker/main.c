/* meshbroker-worker — serves exactly one connection, handed over as fd 3
 * the systemd way (LISTEN_FDS=1, LISTEN_PID, REMOTE_ADDR/REMOTE_PORT; read by
 * common/util.c's listen_fds, so that the worker does not load libsystemd) by
 * systemd (Accept=yes) or meshbroker-accept: reads one HTTP request, answers
 * it or upgrades to the WebSocket peer protocol, and exits.  Started as
 * `--spare` by meshbroker-accept (SPARE_WORKERS), it gets ready first and is
 * handed its connection over fd 3 later (worker/spare.h). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto/version.h"
#include "common/handover.h"
#include "common/log.h"
#include "common/util.h"
#include "db/db.h"
#include "db/pq.h"
#include "worker/http.h"
#include "worker/reap.h"
#include "worker/route_table.h"
#include "worker/skel.h"
#include "shm/membercache.h"
#include "worker/spare.h"
#include "shm/negcache.h"

#if defined(__SANITIZE_ADDRESS__)
/* Sanitizer builds only (make asan-bins): ASan keeps 256 MB of freed blocks
 * in quarantine by default, which makes a flooded worker look ~130 MB big,
 * beyond the MemoryMax=64M its unit allows and test_backpressure holds it
 * to.  8 MB still catches a use-after-free of anything freed recently; an
 * ASAN_OPTIONS in the environment still wins. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "quarantine_size_mb=8"; }
#endif

#define LINGER_MS 1000               /* how long a closing connection is drained */
#define LINGER_MAX_BYTES (1u << 20)  /* and how much of it is swallowed at most */
#define EXIT_DB_MS 3000              /* last writes of an HTTP route before exit */

/* Let the client read our answer before the socket goes: half-close, then
 * swallow what it still sends for a moment, so close() sends FIN, not RST. */
static void linger_close(int fd)
{
	shutdown(fd, SHUT_WR);
	char buf[4096];
	int64_t deadline = mono_ms() + LINGER_MS;
	size_t total = 0;
	while (total < LINGER_MAX_BYTES) {
		int64_t left = deadline - mono_ms();
		if (left <= 0)
			break;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, (int)left) <= 0)
			break;
		ssize_t n = read(fd, buf, sizeof buf);
		if (n <= 0 && !(n < 0 && errno == EINTR))
			break;
		if (n > 0)
			total += (size_t)n;
	}
	close(fd);
}

/* the shared tables this process mapped (the database handle goes first) */
static void worker_close_handles(struct worker *w)
{
	if (w->shm)
		shm_close(w->shm);
	w->shm = NULL;
	negcache_close(w->negcache);
	w->negcache = NULL;
	membercache_close(w->membercache);
	w->membercache = NULL;
	childtab_close(w->ct);
	w->ct = NULL;
}

static const char worker_usage[] =
	"usage: meshbroker-worker [--help | --version | --routes]\n"
	"  Serves one connection, handed over as fd 3 with LISTEN_FDS=1 (and\n"
	"  REMOTE_ADDR/REMOTE_PORT) by meshbroker-accept or a systemd socket with\n"
	"  Accept=yes; not started by hand.  Settings: the environment (meshbroker.conf(5)).\n"
	"  --routes prints the HTTP route table, one row a line.  (meshbroker-accept\n"
	"  also starts it as --spare ahead of a connection, handed over on fd 3.)\n"
	"  Exit codes: 100 usage or configuration, 111 system error.\n";

int main(int argc, char **argv)
{
	log_init("worker");
	/* exec'd ahead by meshbroker-accept (SPARE_WORKERS): worker/spare.h */
	int spare = argc == 2 && strcmp(argv[1], HANDOVER_ARG) == 0;
	if (argc > 1 && !spare) {
		if (strcmp(argv[1], "--reap") == 0)
			return reap_main(); /* the acceptor's sweep of gone workers' rows (reap.h) */
		if (strcmp(argv[1], "--version") == 0) {
			puts("meshbroker-worker " MESHBROKER_VERSION);
			return 0;
		}
		if (strcmp(argv[1], "--routes") == 0) {
			route_print(stdout);
			return 0;
		}
		int help = strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0;
		fputs(worker_usage, help ? stdout : stderr);
		return help ? 0 : 100;
	}
	static struct worker w; /* the one context, zeroed */
	char err[256];
	pq_lean(); /* libpq without Kerberos and LDAP (db/pq.c, issue 23) */
	int cfg_ok = config_load(&w.cfg, 1, err, sizeof err) == 0;
	if (spare) {
		/* signals, libsodium, child table and sandbox done before the wait */
		int got = spare_start(&w, cfg_ok, argv[1]);
		if (got <= 0)
			return got == 0 ? 0 : 111;
	} else {
		int n = listen_fds(1);
		if (n != 1) {
			fprintf(stderr, "meshbroker-worker: expected one connection in LISTEN_FDS, got %d "
					"(start it from meshbroker-accept or a systemd socket with Accept=yes)\n",
				n);
			return 100;
		}
		w.fd = LISTEN_FDS_START;
		const char *ra = getenv("REMOTE_ADDR");
		snprintf(w.remote_addr, sizeof w.remote_addr, "%s", ra ? ra : "");
	}
	fcntl(w.fd, F_SETFD, FD_CLOEXEC);
	fcntl(w.fd, F_SETFL, fcntl(w.fd, F_GETFL) | O_NONBLOCK);
	int one = 1;
	setsockopt(w.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (!spare)
		worker_signals_init();
	if (!cfg_ok) {
		log_error("bad configuration", "error", err);
		http_respond_error(w.fd, 503, "broker misconfigured", HTTP_REFUSAL_MS);
		linger_close(w.fd);
		return 100;
	}
	if (!spare) {
		if (sodium_init() < 0)
			log_fatal("libsodium failed to initialise");
		worker_child_open(&w);
	}

	struct http_req req;
	/* SIGTERM before a whole request (shutdown, or the acceptor evicting
	 * a connection that never spoke) ends the wait at once */
	enum http_read_result r =
		http_read_request_until(w.fd, &req, (size_t)w.cfg.max_message_bytes, w.cfg.http_timeout_seconds * 1000,
					worker_wait_mask(), worker_terminating);
	if (r == HTTP_READ_CANCELLED) {
		log_info(worker_evicted(&w) ? "connection evicted before its request" : "stopping before a request arrived",
			 "remote", w.remote_addr);
		http_req_free(&req);
		worker_close_handles(&w);
		close(w.fd); /* nothing was asked: no answer, no linger */
		return 0;
	}
	switch (r) {
	case HTTP_READ_OK:
	case HTTP_READ_TOO_LARGE: /* the route table checks the key before it answers 413 */
		route_request(&w, &req, r);
		break;
	case HTTP_READ_MALFORMED:
		http_respond_error(w.fd, 400, "malformed request", HTTP_REFUSAL_MS);
		break;
	case HTTP_READ_TIMEOUT:
		http_respond_error(w.fd, 408, "request timeout", HTTP_REFUSAL_MS);
		break;
	case HTTP_READ_HEAD_TOO_LARGE:
		http_respond_error(w.fd, 431, "request header fields too large", HTTP_REFUSAL_MS);
		break;
	case HTTP_READ_BAD_VERSION:
		http_respond_error(w.fd, 505, "http version not supported", HTTP_REFUSAL_MS);
		break;
	default:
		break;
	}
	if (r != HTTP_READ_OK && r != HTTP_READ_TOO_LARGE && r > 0)
		log_info("bad request refused", "status", http_reason((int)r), "remote", w.remote_addr);
	http_req_free(&req);
	if (w.db) {
		db_drain_sync(w.db, EXIT_DB_MS);
		db_free(w.db);
		w.db = NULL;
	}
	int evicted = worker_evicted(&w);
	/* the client has had everything: from here on this is a process on its
	 * way out, not a connection its source holds (a client that reconnects
	 * at once is not refused for our exit, accept.c) */
	worker_child_mark(&w, CHILD_BIT(CHILD_PREAUTH) | CHILD_BIT(CHILD_HELLO) | CHILD_BIT(CHILD_AUTHENTICATED) |
				      CHILD_BIT(CHILD_HTTP), CHILD_CLOSED);
	worker_close_handles(&w);
	if (evicted)
		close(w.fd); /* its place is wanted now: no lingering for a client that never spoke */
	else
		linger_close(w.fd);
	return 0;
}
