/* reap — see reap.h. */
#include "worker/reap.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "db/db.h"
#include "db/store.h"
#include "worker/hosts.h"
#include "worker/skel.h"

#define REAP_BATCH 500          /* rows looked at per sweep query (`--reap`) */
#define REAP_LIVE_BATCH 100     /* and per sweep of a live worker, which has its own peer to serve */
#define REAP_ROUNDS 20          /* `--reap`: more queries while batches come back full */
/* one sweep per runtime directory at most every REAP_INTERVAL_SECONDS (10),
 * and a live worker looks whether one is due every 3-6 times that */
#define REAP_CHECK_PER_INTERVAL 6
#define REAP_CHAIN_MESHES 64    /* meshes with pending audit rows one sweep's chain step tries */
#define REAP_DB_MS 5000         /* `--reap`: its statements get this long */
#define REAP_STAMP "reap.stamp" /* in the runtime directory: its mtime is the last sweep */

/* the host's boot, Unix seconds (/proc/stat btime); 0 when unknown */
static int64_t boot_time(void)
{
	FILE *f = fopen("/proc/stat", "re");
	if (!f)
		return 0;
	char line[256];
	long long bt = 0;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "btime %lld", &bt) == 1)
			break;
	fclose(f);
	return bt;
}

/* the presence ids of every live slot of the table, sorted */
struct live_set {
	char (*ids)[SHM_MEMBER_ID_MAX];
	size_t n, cap;
};

static int live_cb(const struct presence_view *v, void *arg)
{
	struct live_set *l = arg;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		void *p = realloc(l->ids, cap * sizeof *l->ids);
		if (!p)
			log_fatal("out of memory");
		l->ids = p;
		l->cap = cap;
	}
	memcpy(l->ids[l->n++], v->info.presence_id, sizeof *l->ids);
	return 0;
}

static int id_cmp(const void *a, const void *b) { return strncmp(a, b, SHM_MEMBER_ID_MAX); }

/* 1 when the row's worker is surely gone: never on a guess */
static int row_gone(const struct live_set *live, const struct open_presence *r)
{
	if (r->before_boot)
		return 1;
	char key[SHM_MEMBER_ID_MAX] = {0};
	snprintf(key, sizeof key, "%s", r->presence_id);
	if ((live->n && bsearch(key, live->ids, live->n, sizeof *live->ids, id_cmp)) || r->worker_pid <= 0)
		return 0; /* a live slot holds it (dead slots are not live here), or no pid to ask */
	/* not in our table: another runtime directory's live worker on this
	 * host, a leaving one, or gone; a pid nobody has any more is gone (a
	 * reused pid only keeps the row open a while longer) */
	char path[32];
	snprintf(path, sizeof path, "/proc/%d", r->worker_pid);
	return access(path, F_OK) != 0 && errno == ENOENT;
}

struct sweep {
	struct worker *w;
	int n;      /* rows the query returned */
	int closed; /* of those, closed */
	int owned;  /* allocated by reap_start: the callback frees it */
};

static void open_cb(void *arg, const struct open_presence *rows, int n, const char *err)
{
	struct sweep *s = arg;
	s->n = n;
	if (err) {
		log_warn("reap: open presence rows unreadable", "error", err);
		s->n = -1;
		if (s->owned)
			free(s);
		return;
	}
	int closed = 0;
	struct live_set live = {0};
	if (n)
		presence_foreach(s->w->shm, NULL, live_cb, &live); /* one pass over the whole table */
	if (live.n > 1)
		qsort(live.ids, live.n, sizeof *live.ids, id_cmp);
	const char **gone = n ? malloc((size_t)n * sizeof *gone) : NULL;
	if (n && !gone)
		log_fatal("out of memory");
	for (int i = 0; i < n; i++)
		if (row_gone(&live, &rows[i]))
			gone[closed++] = rows[i].presence_id;
	if (closed && store_presence_close_many(s->w->db, gone, (size_t)closed) != 0)
		closed = 0;
	/* then the chain step nobody waits for (migration 0020): pending rows
	 * of meshes whose chain lock is free, those the closes just left
	 * pending and those of leaves that found the lock busy */
	store_audit_chain_pending(s->w->db, REAP_CHAIN_MESHES, NULL, NULL);
	free(gone);
	free(live.ids);
	s->closed = closed;
	if (closed) {
		char c[16];
		snprintf(c, sizeof c, "%d", closed);
		log_info("closing the presence rows of workers that are gone", "count", c);
	}
	if (s->owned)
		free(s);
}

static int sweep_queue(struct worker *w, struct sweep *s, int limit)
{
	if (worker_shm(w) != 0 || worker_db(w) != 0)
		return -1;
	char host[HOST_NAME_MAX + 1] = "";
	gethostname(host, sizeof host - 1);
	if (hosts_id()) /* one of several hosts: its rows carry HOST_ID (auth.c), as two hosts may share a name */
		snprintf(host, sizeof host, "%s", hosts_id());
	s->w = w;
	s->n = s->closed = s->owned = 0;
	return store_presence_open(w->db, host, boot_time(), limit, open_cb, s);
}

int reap_start(struct worker *w)
{
	struct sweep *s = calloc(1, sizeof *s);
	if (!s)
		log_fatal("out of memory");
	if (sweep_queue(w, s, REAP_LIVE_BATCH) != 0) {
		free(s);
		return -1;
	}
	s->owned = 1; /* queued: the callback runs exactly once and frees it */
	return 0;
}

/* 1 when no sweep of the runtime directory ran in the last
 * REAP_INTERVAL_SECONDS (and this one is now recorded as running) */
static int reap_due(const struct worker *w)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof path, "%s/" REAP_STAMP, w->cfg.runtime_dir) >= (int)sizeof path)
		return 0;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return 0;
	int due = 0;
	struct stat st;
	if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &st) == 0) {
		time_t now = time(NULL);
		/* a new file (size 0) has never recorded a sweep; mtime 0: a
		 * leave could not close its row (reap_leave) */
		if (st.st_size == 0 || st.st_mtime == 0 || now - st.st_mtime >= w->cfg.reap_interval_seconds ||
		    st.st_mtime > now) {
			due = 1;
			if (st.st_size == 0 && write(fd, "1", 1) != 1)
				due = 0;
			else if (futimens(fd, NULL) != 0)
				due = 0;
		}
	}
	close(fd);
	return due;
}

struct leave {
	int failed;
	int owed; /* the peer_left row was left pending: a chain step is owed */
};

static void leave_cb(void *arg, const char *closed_mesh, int audit_pending, const char *err)
{
	struct leave *l = arg;
	if (err)
		l->failed = 1;
	else if (closed_mesh && audit_pending)
		l->owed = 1;
}

int reap_leave(struct worker *w, const int64_t *mark, size_t n_mark, int ms)
{
	struct leave l = {0, 0};
	if (worker_db(w) != 0 ||
	    store_presence_leave(w->db, w->me.presence_id, w->me.member_id, mark, n_mark, leave_cb, &l) != 0 ||
	    db_drain_sync(w->db, ms) != 0 || l.failed) {
		/* the database is away: the next worker that looks sweeps at
		 * once (its hello's first tick), not REAP_INTERVAL_SECONDS later */
		char path[PATH_MAX];
		if (snprintf(path, sizeof path, "%s/" REAP_STAMP, w->cfg.runtime_dir) < (int)sizeof path) {
			struct timespec old[2] = {{.tv_sec = 0}, {.tv_sec = 0}};
			utimensat(AT_FDCWD, path, old, 0);
		}
		log_info("presence row left open for the next sweep", "presence", w->me.presence_id);
		return -1;
	}
	return l.owed;
}

void reap_tick(struct worker *w, int64_t now)
{
	if (now < w->reap_next)
		return;
	/* spread the looks: workers that joined together do not look together */
	uint32_t check_ms = (uint32_t)w->cfg.reap_interval_seconds * 1000u * REAP_CHECK_PER_INTERVAL;
	w->reap_next = now + check_ms / 2 + (int64_t)randombytes_uniform(check_ms / 2);
	if (reap_due(w))
		reap_start(w);
}

int reap_main(void)
{
	static struct worker w;
	char err[256];
	if (config_load(&w.cfg, 1, err, sizeof err) != 0) {
		log_error("bad configuration", "error", err);
		return 100;
	}
	if (sodium_init() < 0)
		log_fatal("libsodium failed to initialise");
	struct sweep s = {0};
	for (int round = 0; round < REAP_ROUNDS; round++) {
		/* a full batch with nothing to close is other live rows: done */
		if (sweep_queue(&w, &s, REAP_BATCH) != 0 || db_drain_sync(w.db, REAP_DB_MS) != 0 || s.n < REAP_BATCH ||
		    s.closed == 0)
			break;
	}
	if (w.db)
		db_free(w.db);
	if (w.shm)
		shm_close(w.shm);
	return 0;
}
