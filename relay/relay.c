/* meshbroker-relay — one per broker host when HOST_ID is set (issue 24,
 * docs/design.md "More than one host").  It holds one direct PostgreSQL
 * session (never through PgBouncer: LISTEN needs a session of its own) and
 * keeps no durable state; killing it loses nothing.
 *
 *  - lease: registers mesh.broker_host(HOST_ID) and renews its lease every
 *    2 s (valid 10 s, by the database's clock);
 *  - outbound doorbells: workers hand it the recipients that have no slot on
 *    this host, after their transactions committed, as datagrams on
 *    <runtime>/relay.sock; it rings their hosts with mesh.host_ring (one
 *    NOTIFY per host and mesh), at most one statement in flight, merging
 *    what arrives meanwhile into the next one;
 *  - inbound doorbells: LISTEN mb_<HOST_ID>; each notification rings the
 *    local workers of the named members over their Unix sockets (ring.c,
 *    the same WAKE envelope the workers use), or closes their connections
 *    (a ban, a revocation or an archived mesh anywhere: the same CLOSE
 *    envelope a moderator's sends), or sends the named members or
 *    presences the STATUS, REPLACE or CLOSE envelope a worker on this host
 *    would have (set_status scope member, a hook, a session replaced, a
 *    kick or disconnect on another host: worker/hosts.h's kinds);
 *  - other outbound doorbells: a worker's "s", "k", "t" (and "c") lines go
 *    out one statement each (mesh.host_ring by member, 0011;
 *    mesh.host_ring_presences by presence, 0012);
 *  - self-fence: when the lease could not be renewed until 2 s before it
 *    ends (the database is away, or this host was paused), every local
 *    connection is closed (1001 host_fenced) and reconnects elsewhere;
 *  - repair: on every (re)connect it rings every local worker once, and every
 *    second it runs the host's sweep (mesh.host_sweep, one statement) and
 *    rings the workers of members whose undelivered rows nobody holds.
 *
 * Environment: HOST_ID (required), RELAY_DATABASE_URL (else DATABASE_URL:
 * PostgreSQL itself), MESHBROKER_RUNTIME_DIR / RUNTIME_DIRECTORY,
 * PRESENCE_SLOTS.  SIGTERM/SIGINT stop it. */
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "proto/version.h"
#include "shm/shm.h"
#include "worker/envelope.h"
#include "worker/hosts.h"
#include "worker/ring.h"

#define RENEW_MS 2000
#define SWEEP_MS 1000
#define LEASE_MS 10000
#define PENDING_MAX 65536 /* (mesh, member) pairs waiting for the next ring; more are left to the sweep */
#define LINES_MAX       256   /* other doorbells (closes, statuses, replaces) waiting to reach other hosts */
#define BACKOFF_MAX_MS 5000
#define FENCE_MARGIN_MS 2000 /* a host that could not renew closes its connections this long before its lease ends */

enum q_kind { Q_NONE, Q_RENEW, Q_RING, Q_SWEEP, Q_CLOSE };

struct pair {
	char mesh[HOSTS_KEY_MAX], member[HOSTS_KEY_MAX];
};

struct line_req { /* a worker's doorbell of another kind than "w", as it came */
	size_t len;
	char text[HOSTS_LINE_MAX];
};

struct relay {
	struct config cfg;
	const char *host;
	const char *url;
	struct shm *shm;
	ino_t shm_ino; /* presence.shm's inode when mapped: the acceptor may replace the file (a new layout) */
	int sock;
	char sock_path[108];
	PGconn *pg;
	char epoch[24];
	enum q_kind inflight;
	int flushing;
	struct pair *pend; /* waiting for the next ring */
	size_t npend, dropped;
	struct line_req *lines; /* LINES_MAX, a ring: one statement each */
	size_t line_head, nlines;
	int64_t next_renew, next_sweep, next_connect, backoff;
	int64_t lease_ok; /* mono ms of the last renewal (or registration) that held: the lease runs LEASE_MS from before it */
	int64_t next_fence; /* while fencing: the next round of closes */
	int64_t rang, notified, swept, fenced; /* counters for the log line at exit */
	int64_t renew_sent;
	int64_t inflight_since; /* a statement unanswered for a lease's length: the session is dropped */
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static const char relay_usage[] =
	"usage: meshbroker-relay\n"
	"One per broker host when HOST_ID is set: leases the host, rings other hosts' workers\n"
	"with NOTIFY after this host's sends commit, and rings this host's workers on theirs.\n"
	"Environment: HOST_ID, RELAY_DATABASE_URL (else DATABASE_URL; PostgreSQL itself, not\n"
	"PgBouncer), MESHBROKER_RUNTIME_DIR.  See docs/deploy.md \"More than one host\".\n";

/* ---- local doorbells ---- */

static void ring_cb(const struct presence_view *v, void *arg)
{
	struct relay *r = arg;
	if (ring_wake_slot(r->shm, v->slot, v->gen) == 0)
		r->rang++;
}

static int ring_all_cb(const struct presence_view *v, void *arg)
{
	ring_cb(v, arg);
	return 0;
}

static void ring_local(struct relay *r, const char *mesh, const char *const *ids, int n)
{
	ring_members(r->shm, mesh, ids, n, NULL, ring_cb, r);
}

struct close_ctx {
	struct relay *r;
	int code, reason;
};

static void close_cb(const struct presence_view *v, void *arg)
{
	struct close_ctx *c = arg;
	if (ring_close_slot(c->r->shm, v->slot, v->gen, c->code, c->reason) != 0)
		log_warn("relay: a connection to close did not answer", "presence", v->info.presence_id);
}

struct bell_ctx {
	struct relay *r;
	const struct hosts_bell *b;
};

static void status_cb(const struct presence_view *v, void *arg)
{
	const struct hosts_bell *b = ((struct bell_ctx *)arg)->b;
	if (ring_status_slot(((struct bell_ctx *)arg)->r->shm, v->slot, v->gen, b->code, b->reason) != 0)
		log_warn("relay: a connection's worker did not take a status", "presence", v->info.presence_id);
}

static void replace_cb(const struct presence_view *v, void *arg)
{
	if (ring_replace_slot(((struct bell_ctx *)arg)->r->shm, v->slot, v->gen) != 0)
		log_warn("relay: a replaced connection did not answer", "presence", v->info.presence_id);
}

/* "t": only a connection not heard (hello or pong) for more than the ms
 * the moderator gave: the ping time is this host's alone */
static void stale_cb(const struct presence_view *v, void *arg)
{
	struct bell_ctx *c = arg;
	int64_t heard = v->info.connected_ms + (int64_t)v->info.pong_s * 1000;
	if (now_ms() - heard <= c->b->stale_ms)
		return;
	struct close_ctx cc = {c->r, c->b->code, c->b->reason};
	close_cb(v, &cc);
}

static void ring_line(struct relay *r, const char *line, size_t len)
{
	static struct hosts_bell b;
	if (hosts_parse(line, len, &b) != 0) {
		log_warn("relay: a malformed doorbell ignored");
		return;
	}
	const char *ids[HOSTS_IDS_MAX];
	for (int i = 0; i < b.n; i++)
		ids[i] = b.ids[i];
	struct bell_ctx bc = {r, &b};
	struct close_ctx c = {r, b.code, b.reason};
	switch (b.kind) {
	case HOSTS_CLOSE:
		ring_members(r->shm, b.mesh_id, ids, b.n, NULL, close_cb, &c);
		break;
	case HOSTS_STATUS:
		ring_members(r->shm, b.mesh_id, ids, b.n, NULL, status_cb, &bc);
		break;
	case HOSTS_REPLACE:
		ring_presences(r->shm, b.mesh_id, ids, b.n, replace_cb, &bc);
		break;
	case HOSTS_KICK:
		ring_presences(r->shm, b.mesh_id, ids, b.n, close_cb, &c);
		break;
	case HOSTS_STALE:
		ring_presences(r->shm, b.mesh_id, ids, b.n, stale_cb, &bc);
		break;
	case HOSTS_HOOK:
		ring_presences(r->shm, b.mesh_id, ids, b.n, status_cb, &bc);
		break;
	default:
		ring_local(r, b.mesh_id, ids, b.n);
	}
}

/* ---- the self-fence ---- */

static int fence_cb(const struct presence_view *v, void *arg)
{
	struct relay *r = arg;
	if (ring_close_slot(r->shm, v->slot, v->gen, 1001, UDS_CLOSE_REASON_FENCED) == 0)
		r->fenced++;
	return 0;
}

/* every local connection closes (1001 host_fenced) and its client
 * reconnects, through the balancer, to a host that holds its lease: no
 * connection lives on here past the lease, unseen by the other hosts */
static void fence(struct relay *r)
{
	presence_foreach(r->shm, NULL, fence_cb, r);
}

/* a lease that could not be renewed in time: fence now, and again every
 * second while it lasts (hellos keep arriving) */
static void fence_check(struct relay *r, int64_t now)
{
	if (!r->lease_ok || now < r->lease_ok + LEASE_MS - FENCE_MARGIN_MS || now < r->next_fence)
		return;
	if (!r->next_fence)
		log_error("relay: lease not renewed in time: closing this host's connections", "host", r->host);
	fence(r);
	r->next_fence = now + 1000;
}

/* ---- the presence table ---- */

static ino_t shm_inode(const struct relay *r)
{
	char path[4200];
	struct stat st;
	snprintf(path, sizeof path, "%s/presence.shm", r->cfg.runtime_dir);
	return stat(path, &st) == 0 ? st.st_ino : 0;
}

/* map the table, or map it again when the acceptor replaced its file */
static void shm_check(struct relay *r)
{
	ino_t ino = shm_inode(r);
	if (r->shm && ino == r->shm_ino)
		return;
	char err[256];
	struct shm *s = NULL;
	if (shm_open_table(r->cfg.runtime_dir, (uint32_t)r->cfg.presence_slots, 0, &s, err, sizeof err) != 0) {
		if (!r->shm)
			log_fatal("relay: presence table unusable", "error", err);
		return; /* keep the old one until the new one is complete */
	}
	if (r->shm) {
		log_info("relay: the presence table was replaced: mapped again");
		shm_close(r->shm);
	}
	r->shm = s;
	r->shm_ino = shm_inode(r);
}

/* ---- the workers' datagrams ---- */

static void pend_add(struct relay *r, const struct hosts_bell *b)
{
	for (int i = 0; i < b->n; i++) {
		if (r->npend == PENDING_MAX) {
			r->dropped++;
			continue;
		}
		struct pair *p = &r->pend[r->npend++];
		memcpy(p->mesh, b->mesh_id, sizeof p->mesh);
		memcpy(p->member, b->ids[i], sizeof p->member);
	}
}

static void sock_read(struct relay *r)
{
	static char buf[HOSTS_LINE_MAX + 1];
	static struct hosts_bell b;
	for (int k = 0; k < 256; k++) {
		ssize_t n = recv(r->sock, buf, sizeof buf, MSG_DONTWAIT);
		if (n < 0)
			return;
		int ok = hosts_parse(buf, (size_t)n, &b) == 0;
		if (ok && b.kind == HOSTS_WAKE) {
			pend_add(r, &b);
		} else if (ok && r->nlines == LINES_MAX) {
			log_error("relay: too many doorbells waiting: one did not reach other hosts", "mesh",
			          b.mesh_id);
		} else if (ok) {
			struct line_req *l = &r->lines[(r->line_head + r->nlines++) % LINES_MAX];
			memcpy(l->text, buf, (size_t)n);
			l->len = (size_t)n;
		} else
			log_warn("relay: a malformed handoff ignored");
	}
}

static int sock_open(struct relay *r)
{
	if (hosts_relay_path(r->cfg.runtime_dir, r->sock_path, sizeof r->sock_path) != 0)
		return -1;
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	memcpy(a.sun_path, r->sock_path, strlen(r->sock_path) + 1);
	unlink(a.sun_path);
	r->sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (r->sock < 0)
		return -1;
	mode_t old = umask(0077); /* the broker's uid only (the runtime dir is 0750 too) */
	int rc = bind(r->sock, (struct sockaddr *)&a, sizeof a);
	umask(old);
	int big = 4 << 20;
	setsockopt(r->sock, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
	return rc;
}

/* ---- the database session ---- */

static void pg_drop(struct relay *r, const char *why)
{
	if (r->pg) {
		log_warn("relay: database session lost, reconnecting", "error", why);
		PQfinish(r->pg);
	}
	r->pg = NULL;
	r->inflight = Q_NONE;
	r->flushing = 0;
	r->next_connect = mono_ms() + r->backoff;
	r->backoff = r->backoff ? (r->backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : r->backoff * 2) : 250;
}

static int exec_ok(PGconn *c, const char *sql, int nparams, const char *const *params, char *out, size_t cap)
{
	PGresult *res = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
	int st = PQresultStatus(res);
	int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
	if (ok && out && PQntuples(res) == 1)
		snprintf(out, cap, "%s", PQgetvalue(res, 0, 0));
	else if (!ok)
		log_error("relay: statement failed", "error", PQresultErrorMessage(res));
	PQclear(res);
	return ok ? 0 : -1;
}

static void pg_connect(struct relay *r)
{
	/* a bounded connect: a silent partition must not stall the loop (and
	 * the fence) for longer than this */
	const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
	const char *vals[] = {r->url, "2", "meshbroker-relay", NULL};
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(c) != CONNECTION_OK) {
		r->pg = c; /* for pg_drop's message */
		pg_drop(r, PQerrorMessage(c));
		return;
	}
	char listen[64];
	snprintf(listen, sizeof listen, "LISTEN \"mb_%s\"", r->host);
	const char *p[] = {r->host};
	if (exec_ok(c, "SET synchronous_commit = off", 0, NULL, NULL, 0) != 0 || exec_ok(c, listen, 0, NULL, NULL, 0) != 0 ||
	    exec_ok(c, "SELECT mesh.host_register($1)", 1, p, r->epoch, sizeof r->epoch) != 0) {
		r->pg = c;
		pg_drop(r, "set-up failed");
		return;
	}
	PQsetnonblocking(c, 1);
	r->pg = c;
	r->backoff = 0;
	r->lease_ok = mono_ms();
	log_info("relay: host registered", "host", r->host, "epoch", r->epoch);
	/* what a doorbell lost while we were away missed: every local worker
	 * drains once (an empty drain is one cheap claim) */
	presence_foreach(r->shm, NULL, ring_all_cb, r);
	int64_t now = mono_ms();
	r->next_renew = now + RENEW_MS;
	r->next_sweep = now + SWEEP_MS;
}

/* "{a,b,c}": ids are [A-Za-z0-9_-] (hosts_parse), so no quoting */
static char *pg_array(const struct pair *p, size_t n, int member)
{
	char *s = malloc(n * HOSTS_KEY_MAX + 3);
	if (!s)
		log_fatal("out of memory");
	size_t len = 0;
	s[len++] = '{';
	for (size_t i = 0; i < n; i++) {
		const char *v = member ? p[i].member : p[i].mesh;
		if (i)
			s[len++] = ',';
		size_t k = strlen(v);
		memcpy(s + len, v, k);
		len += k;
	}
	s[len++] = '}';
	s[len] = 0;
	return s;
}

static void pg_send(struct relay *r, enum q_kind kind, const char *sql, int n, const char *const *params)
{
	if (!PQsendQueryParams(r->pg, sql, n, NULL, params, NULL, NULL, 0)) {
		pg_drop(r, PQerrorMessage(r->pg));
		return;
	}
	r->inflight = kind;
	r->inflight_since = mono_ms();
	r->flushing = PQflush(r->pg) == 1;
}

/* one doorbell line a worker handed over (it parsed when it came): its
 * kind, its mesh once per id, its ids, to the function that finds their
 * hosts (by member or by presence id) */
static void pg_send_line(struct relay *r, const struct line_req *l)
{
	static struct hosts_bell b;
	if (hosts_parse(l->text, l->len, &b) != 0)
		return;
	const char *sp = memchr(l->text, ' ', l->len);
	char kind[48];
	snprintf(kind, sizeof kind, "%.*s", (int)(sp - l->text), l->text);
	static struct pair pairs[HOSTS_IDS_MAX];
	for (int i = 0; i < b.n; i++) {
		memcpy(pairs[i].mesh, b.mesh_id, sizeof pairs[i].mesh);
		memcpy(pairs[i].member, b.ids[i], sizeof pairs[i].member);
	}
	char *meshes = pg_array(pairs, (size_t)b.n, 0), *ids = pg_array(pairs, (size_t)b.n, 1);
	const char *p[] = {r->host, kind, meshes, ids};
	pg_send(r, Q_CLOSE,
	        b.by_presence ? "SELECT mesh.host_ring_presences($1, $2, $3::text[], $4::text[])"
	                      : "SELECT mesh.host_ring($1, $2, $3::text[], $4::text[])",
	        4, p);
	free(meshes);
	free(ids);
}

/* the next statement, when none is in flight: the lease first, then the
 * sweep when due (so steady traffic never starves it), then the doorbells
 * that piled up */
static void pg_next(struct relay *r, int64_t now)
{
	if (!r->pg || r->inflight != Q_NONE)
		return;
	if (now >= r->next_renew) {
		const char *p[] = {r->host, r->epoch};
		pg_send(r, Q_RENEW, "SELECT mesh.host_renew($1, $2::bigint)", 2, p);
		r->renew_sent = now;
		r->next_renew = now + RENEW_MS;
	} else if (now >= r->next_sweep) {
		shm_check(r); /* once a sweep: a stat */
		const char *p[] = {r->host, r->epoch};
		pg_send(r, Q_SWEEP, "SELECT r_mesh_id, r_member_id FROM mesh.host_sweep($1, $2::bigint)", 2, p);
		r->next_sweep = now + SWEEP_MS;
	} else if (r->nlines) {
		pg_send_line(r, &r->lines[r->line_head]);
		r->line_head = (r->line_head + 1) % LINES_MAX;
		r->nlines--;
	} else if (r->npend) {
		char *meshes = pg_array(r->pend, r->npend, 0), *members = pg_array(r->pend, r->npend, 1);
		const char *p[] = {r->host, "w", meshes, members};
		pg_send(r, Q_RING, "SELECT mesh.host_ring($1, $2, $3::text[], $4::text[])", 4, p);
		free(meshes);
		free(members);
		r->npend = 0;
	}
}

static void pg_result(struct relay *r, PGresult *res)
{
	int st = PQresultStatus(res);
	if (st != PGRES_TUPLES_OK) {
		log_error("relay: statement failed", "error", PQresultErrorMessage(res));
		return;
	}
	if (r->inflight == Q_RENEW && !PQgetisnull(res, 0, 0)) {
		r->lease_ok = r->renew_sent; /* the database's 10 s began no earlier than when we asked */
	} else if (r->inflight == Q_RENEW) {
		/* the lease ran out (this host was away longer than 10 s):
		 * register again under a new epoch; the presences of the old one
		 * are dead to every reader, as on any other host */
		log_error("relay: host lease lost, registering again", "host", r->host, "epoch", r->epoch);
		PQsetnonblocking(r->pg, 0);
		const char *p[] = {r->host};
		fence(r); /* this host's connections are dead to every other host: they reconnect */
		if (exec_ok(r->pg, "SELECT mesh.host_register($1)", 1, p, r->epoch, sizeof r->epoch) == 0) {
			log_info("relay: host registered", "host", r->host, "epoch", r->epoch);
			r->lease_ok = mono_ms();
		}
		PQsetnonblocking(r->pg, 1);
	} else if (r->inflight == Q_RING || r->inflight == Q_CLOSE) {
		r->notified += atoi(PQgetvalue(res, 0, 0));
	} else if (r->inflight == Q_SWEEP) {
		for (int i = 0; i < PQntuples(res); i++) {
			const char *id = PQgetvalue(res, i, 1);
			ring_local(r, PQgetvalue(res, i, 0), &id, 1);
			r->swept++;
		}
	}
}

static void pg_input(struct relay *r)
{
	if (!PQconsumeInput(r->pg)) {
		pg_drop(r, PQerrorMessage(r->pg));
		return;
	}
	while (r->inflight != Q_NONE && !PQisBusy(r->pg)) {
		PGresult *res = PQgetResult(r->pg);
		if (!res) {
			r->inflight = Q_NONE;
			break;
		}
		pg_result(r, res);
		PQclear(res);
	}
	PGnotify *n;
	while ((n = PQnotifies(r->pg)) != NULL) {
		ring_line(r, n->extra, strlen(n->extra));
		PQfreemem(n);
	}
	if (PQstatus(r->pg) != CONNECTION_OK)
		pg_drop(r, PQerrorMessage(r->pg));
}

/* ---- main ---- */

int main(int argc, char **argv)
{
	if (argc > 1) {
		int help = strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0;
		if (strcmp(argv[1], "--version") == 0) {
			puts("meshbroker-relay " MESHBROKER_VERSION);
			return 0;
		}
		fputs(relay_usage, help ? stdout : stderr);
		return help ? 0 : 64;
	}
	static struct relay r = {.sock = -1};
	char err[256];
	log_init("relay");
	if (config_load(&r.cfg, 1, err, sizeof err) != 0) {
		fprintf(stderr, "meshbroker-relay: %s\n", err);
		return 64;
	}
	const char *h = getenv("HOST_ID");
	if (!h || !h[0] || !hosts_valid_id(h)) {
		fprintf(stderr, "meshbroker-relay: HOST_ID must be 1-32 of a-z, 0-9 and '-', not starting with '-'\n");
		return 64;
	}
	r.host = h;
	const char *direct = getenv("RELAY_DATABASE_URL");
	r.url = direct && direct[0] ? direct : r.cfg.database_url;
	shm_check(&r);
	if (sock_open(&r) != 0)
		log_fatal("relay socket failed", "path", r.sock_path, "error", strerror(errno));
	r.pend = malloc(PENDING_MAX * sizeof *r.pend);
	r.lines = malloc(LINES_MAX * sizeof *r.lines);
	if (!r.pend || !r.lines)
		log_fatal("out of memory");
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	log_info("relay: started", "host", r.host, "socket", r.sock_path);
	while (!stop) {
		int64_t now = mono_ms();
		if (!r.pg && now >= r.next_connect)
			pg_connect(&r);
		pg_next(&r, now);
		struct pollfd fds[2] = {{.fd = r.sock, .events = POLLIN}, {.fd = -1}};
		if (r.pg)
			fds[1] = (struct pollfd){.fd = PQsocket(r.pg),
						 .events = (short)(POLLIN | (r.flushing ? POLLOUT : 0))};
		if (r.pg && r.inflight != Q_NONE && now - r.inflight_since > LEASE_MS)
			pg_drop(&r, "no answer for 10 s");
		fence_check(&r, now);
		if (r.next_fence && now < r.lease_ok + LEASE_MS - FENCE_MARGIN_MS) {
			log_info("relay: lease renewed again", "host", r.host);
			r.next_fence = 0;
		}
		int64_t wake = r.pg ? (r.next_renew < r.next_sweep ? r.next_renew : r.next_sweep) : r.next_connect;
		if (r.lease_ok) {
			int64_t f = r.next_fence ? r.next_fence : r.lease_ok + LEASE_MS - FENCE_MARGIN_MS;
			wake = f < wake ? f : wake;
		}
		int timeout = wake > now ? (int)(wake - now) : 0;
		if (poll(fds, 2, timeout) < 0 && errno != EINTR)
			log_fatal("poll failed", "error", strerror(errno));
		if (fds[0].revents & POLLIN)
			sock_read(&r);
		if (r.pg && (fds[1].revents & POLLOUT) && r.flushing)
			r.flushing = PQflush(r.pg) == 1;
		if (r.pg && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)))
			pg_input(&r);
	}
	char rang[24], notified[24], swept[24], dropped[24], fenced[24];
	snprintf(fenced, sizeof fenced, "%lld", (long long)r.fenced);
	snprintf(rang, sizeof rang, "%lld", (long long)r.rang);
	snprintf(notified, sizeof notified, "%lld", (long long)r.notified);
	snprintf(swept, sizeof swept, "%lld", (long long)r.swept);
	snprintf(dropped, sizeof dropped, "%zu", r.dropped);
	log_info("relay: stopping", "rang", rang, "notified", notified, "swept", swept, "dropped", dropped,
		 "fenced", fenced);
	if (r.pg)
		PQfinish(r.pg);
	unlink(r.sock_path);
	close(r.sock);
	shm_close(r.shm);
	free(r.pend);
	free(r.lines);
	return 0;
}
