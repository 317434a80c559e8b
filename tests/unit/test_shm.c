/* test_shm — the shared-memory table with real processes: claims, liveness
 * after SIGKILL, concurrent claimers, the seqlock, counters, buckets, replay
 * cache and the creation/refusal rules of the file itself. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "shm/shm.h"

/* per test: a fresh temp directory; the runtime dir is a not-yet-existing
 * subdirectory so that every test also exercises its creation */
static char tmp_root[64];
static char rt[96];

static void rt_setup(void)
{
	umask(022);
	snprintf(tmp_root, sizeof tmp_root, "/tmp/test_shm.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmp_root));
	snprintf(rt, sizeof rt, "%s/run", tmp_root);
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(p);
}

static void rt_teardown(void) { nftw(tmp_root, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

static struct shm *table_open(uint32_t nslots)
{
	struct shm *s = NULL;
	char err[256];
	int rc = shm_open_table(rt, nslots, 0, &s, err, sizeof err);
	ck_assert_msg(rc == 0, "shm_open_table: %s", err);
	ck_assert_ptr_nonnull(s);
	return s;
}

static struct presence_info info_make(const char *mesh, const char *member, const char *name)
{
	struct presence_info in;
	memset(&in, 0, sizeof in);
	str_copy(in.mesh_id, sizeof in.mesh_id, mesh);
	str_copy(in.member_id, sizeof in.member_id, member);
	str_copy(in.display_name, sizeof in.display_name, name);
	str_copy(in.cwd, sizeof in.cwd, "/home/alice/project");
	in.pid = 4242;
	in.status = ST_WORKING;
	in.status_source = SRC_HOOK;
	in.status_ms = 1700000000123;
	in.connected_ms = 1700000000000;
	return in;
}

static void write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(90);
		p += w;
		n -= (size_t)w;
	}
}

/* 1 = got n bytes, 0 = EOF */
static int read_all(int fd, void *buf, size_t n)
{
	char *p = buf;
	while (n) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return 0;
		p += r;
		n -= (size_t)r;
	}
	return 1;
}

static void wait_exit_ok(pid_t pid)
{
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
}

static void kill_and_reap(pid_t pid)
{
	int st;
	kill(pid, SIGKILL);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
}

/* a child that loops or hangs must not outlive a test that failed early */
static void child_die_with_parent(pid_t parent)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
		_exit(92);
}

static int file_exists(const char *p) { return access(p, F_OK) == 0; }

static void touch(const char *p)
{
	int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		_exit(91);
	close(fd);
}

/* ------------------------------------------------------------ presence */

START_TEST(claim_then_release_frees_slot)
{
	struct shm *s = table_open(8);
	struct presence_info in = info_make("mesh-a", "member-1", "Alice");
	uint32_t slot, gen;
	ck_assert_int_eq(presence_claim(s, &in, &slot, &gen), 0);
	ck_assert_uint_lt(slot, 8);
	ck_assert_uint_ge(gen, 1);

	struct presence_view v;
	ck_assert_int_eq(presence_read(s, slot, &v), 1);
	ck_assert_uint_eq(v.slot, slot);
	ck_assert_uint_eq(v.gen, gen);
	ck_assert_int_eq(v.worker_pid, getpid());
	ck_assert_str_eq(v.info.mesh_id, "mesh-a");
	ck_assert_str_eq(v.info.member_id, "member-1");
	ck_assert_str_eq(v.info.display_name, "Alice");
	ck_assert_str_eq(v.info.cwd, "/home/alice/project");
	ck_assert_int_eq(v.info.pid, 4242);
	ck_assert_int_eq(v.info.status, ST_WORKING);
	ck_assert_int_eq(v.info.status_source, SRC_HOOK);
	ck_assert(v.info.status_ms == 1700000000123);
	ck_assert_int_eq(presence_count(s), 1);

	in.status = ST_DND;
	str_copy(in.summary, sizeof in.summary, "refactoring");
	presence_update(s, slot, &in);
	ck_assert_int_eq(presence_read(s, slot, &v), 1);
	ck_assert_int_eq(v.info.status, ST_DND);
	ck_assert_str_eq(v.info.summary, "refactoring");

	char sock[PATH_MAX];
	presence_sock_path(s, slot, gen, sock, sizeof sock);
	touch(sock);
	presence_release(s, slot, gen);
	ck_assert_int_eq(presence_read(s, slot, &v), 0);
	ck_assert_int_eq(presence_count(s), 0);
	ck_assert(!file_exists(sock));
	shm_close(s);
}
END_TEST

START_TEST(open_creates_runtime_dir_and_socket_dir)
{
	struct shm *s = table_open(8);
	struct stat st;
	char w[PATH_MAX];
	snprintf(w, sizeof w, "%s/w", rt);
	ck_assert_int_eq(stat(rt, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 0777, 0750);
	ck_assert_int_eq(stat(w, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 0777, 0750);
	ck_assert_uint_eq(shm_nslots(s), 8);
	shm_close(s);

	/* nslots applies on creation only */
	s = table_open(100);
	ck_assert_uint_eq(shm_nslots(s), 8);
	shm_close(s);
}
END_TEST

START_TEST(sock_path_names_slot_and_generation)
{
	struct shm *s = table_open(4);
	char p[PATH_MAX], want[PATH_MAX];
	presence_sock_path(s, 3, 17, p, sizeof p);
	snprintf(want, sizeof want, "%s/w/3.17.sock", rt);
	ck_assert_str_eq(p, want);
	shm_close(s);
}
END_TEST

START_TEST(generation_increases_on_reuse)
{
	struct shm *s = table_open(1);
	struct presence_info in = info_make("m", "a", "A");
	uint32_t slot, gen, slot2, gen2;
	ck_assert_int_eq(presence_claim(s, &in, &slot, &gen), 0);
	presence_release(s, slot, gen);
	ck_assert_int_eq(presence_claim(s, &in, &slot2, &gen2), 0);
	ck_assert_uint_eq(slot2, slot);
	ck_assert_uint_eq(gen2, gen + 1);
	struct presence_view v;
	ck_assert_int_eq(presence_read(s, slot2, &v), 1);
	ck_assert_uint_eq(v.gen, gen2);
	shm_close(s);
}
END_TEST

START_TEST(full_table_refuses_claim)
{
	struct shm *s = table_open(4);
	struct presence_info in = info_make("m", "a", "A");
	uint32_t slot[4], gen[4], x, xg;
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(presence_claim(s, &in, &slot[i], &gen[i]), 0);
	ck_assert_int_eq(presence_claim(s, &in, &x, &xg), -1);
	ck_assert_int_eq(presence_count(s), 4);

	/* another process sees it full too */
	pid_t pid = fork();
	if (pid == 0) {
		struct shm *c;
		char err[256];
		shm_close(s); /* the inherited handle: must leave our slots alone */
		if (shm_open_table(rt, 4, 0, &c, err, sizeof err) != 0)
			_exit(1);
		int rc = presence_claim(c, &in, &x, &xg) == -1 && presence_count(c) == 4 ? 0 : 2;
		shm_close(c);
		_exit(rc);
	}
	wait_exit_ok(pid);

	presence_release(s, slot[2], gen[2]);
	ck_assert_int_eq(presence_claim(s, &in, &x, &xg), 0);
	ck_assert_uint_eq(x, slot[2]);
	shm_close(s);
}
END_TEST

/* child: claim one slot on its own table, create its socket file, report
 * {slot, gen}, then wait to be killed */
static pid_t child_claim_and_hang(uint32_t *slot, uint32_t *gen, const char *mesh)
{
	int p[2];
	pid_t parent = getpid();
	ck_assert_int_eq(pipe(p), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		child_die_with_parent(parent);
		close(p[0]);
		struct shm *c;
		char err[256], sock[PATH_MAX];
		uint32_t r[2];
		if (shm_open_table(rt, 4, 0, &c, err, sizeof err) != 0)
			_exit(1);
		struct presence_info in = info_make(mesh, "child", "Child");
		if (presence_claim(c, &in, &r[0], &r[1]) != 0)
			_exit(2);
		presence_sock_path(c, r[0], r[1], sock, sizeof sock);
		touch(sock);
		write_all(p[1], r, sizeof r);
		for (;;)
			pause();
	}
	close(p[1]);
	uint32_t r[2];
	ck_assert(read_all(p[0], r, sizeof r));
	close(p[0]);
	*slot = r[0];
	*gen = r[1];
	return pid;
}

START_TEST(killed_child_slot_is_reclaimed_and_socket_unlinked)
{
	struct shm *s = table_open(4);
	uint32_t slot, gen;
	pid_t pid = child_claim_and_hang(&slot, &gen, "m");
	char sock[PATH_MAX];
	presence_sock_path(s, slot, gen, sock, sizeof sock);
	ck_assert(file_exists(sock));

	struct presence_view v;
	ck_assert_int_eq(presence_count(s), 1);
	ck_assert_int_eq(presence_read(s, slot, &v), 1);
	ck_assert_int_eq(v.worker_pid, pid);
	ck_assert_str_eq(v.info.display_name, "Child");

	kill_and_reap(pid);
	ck_assert_int_eq(presence_count(s), 0);
	ck_assert(!file_exists(sock));
	ck_assert_int_eq(presence_read(s, slot, &v), 0);

	struct presence_info in = info_make("m", "p", "Parent");
	uint32_t s2, g2;
	ck_assert_int_eq(presence_claim(s, &in, &s2, &g2), 0);
	ck_assert_uint_eq(s2, slot);
	ck_assert_uint_eq(g2, gen + 1);
	shm_close(s);
}
END_TEST

START_TEST(claim_reclaims_dead_slot_directly)
{
	struct shm *s = table_open(1);
	uint32_t slot, gen;
	pid_t pid = child_claim_and_hang(&slot, &gen, "m");
	char sock[PATH_MAX];
	presence_sock_path(s, slot, gen, sock, sizeof sock);

	struct presence_info in = info_make("m", "p", "Parent");
	uint32_t s2, g2;
	ck_assert_int_eq(presence_claim(s, &in, &s2, &g2), -1); /* live: full */
	kill_and_reap(pid);
	/* no reader has looked: the claimer does the reclaim itself */
	ck_assert_int_eq(presence_claim(s, &in, &s2, &g2), 0);
	ck_assert_uint_eq(s2, slot);
	ck_assert_uint_eq(g2, gen + 1);
	ck_assert(!file_exists(sock));
	struct presence_view v;
	ck_assert_int_eq(presence_read(s, s2, &v), 1);
	ck_assert_str_eq(v.info.display_name, "Parent");
	shm_close(s);
}
END_TEST

START_TEST(forked_child_with_inherited_handle_uses_its_own_locks)
{
	struct shm *s = table_open(4);
	struct presence_info in = info_make("m", "p", "Parent");
	uint32_t slot, gen;
	ck_assert_int_eq(presence_claim(s, &in, &slot, &gen), 0);

	pid_t pid = fork();
	if (pid == 0) {
		uint32_t cs, cg;
		struct presence_view v;
		/* the parent's slot is live for the child, and not the child's */
		if (presence_count(s) != 1 || presence_read(s, slot, &v) != 1)
			_exit(1);
		if (presence_claim(s, &in, &cs, &cg) != 0 || cs == slot)
			_exit(2);
		if (presence_count(s) != 2)
			_exit(3);
		_exit(0); /* dies holding cs */
	}
	wait_exit_ok(pid);
	ck_assert_int_eq(presence_count(s), 1);
	struct presence_view v;
	ck_assert_int_eq(presence_read(s, slot, &v), 1);
	ck_assert_int_eq(v.worker_pid, getpid());
	shm_close(s);
}
END_TEST

START_TEST(concurrent_claims_never_share_a_slot)
{
	enum { CHILDREN = 4, EACH = 8, NSLOTS = 64 };
	struct shm *s = table_open(NSLOTS);
	int go[2], done[2], res[2];
	ck_assert_int_eq(pipe(go), 0);
	ck_assert_int_eq(pipe(done), 0);
	ck_assert_int_eq(pipe(res), 0);
	pid_t kids[CHILDREN];
	for (int k = 0; k < CHILDREN; k++) {
		kids[k] = fork();
		ck_assert_int_ge(kids[k], 0);
		if (kids[k] == 0) {
			shm_close(s);
			close(go[1]);
			close(done[1]);
			close(res[0]);
			struct shm *c;
			char err[256], b;
			if (shm_open_table(rt, NSLOTS, 0, &c, err, sizeof err) != 0)
				_exit(1);
			struct presence_info in = info_make("m", "c", "C");
			(void)read(go[0], &b, 1); /* EOF = start */
			uint32_t got[EACH], gen;
			for (int i = 0; i < EACH; i++)
				if (presence_claim(c, &in, &got[i], &gen) != 0)
					_exit(2);
			write_all(res[1], got, sizeof got);
			(void)read(done[0], &b, 1); /* hold the slots until told */
			shm_close(c);
			_exit(0);
		}
	}
	close(go[0]);
	close(done[0]);
	close(res[1]);
	close(go[1]);

	int seen[NSLOTS] = {0};
	for (int k = 0; k < CHILDREN; k++) {
		uint32_t got[EACH];
		ck_assert(read_all(res[0], got, sizeof got));
		for (int i = 0; i < EACH; i++) {
			ck_assert_uint_lt(got[i], NSLOTS);
			ck_assert_msg(!seen[got[i]], "slot %u claimed twice", got[i]);
			seen[got[i]] = 1;
		}
	}
	ck_assert_int_eq(presence_count(s), CHILDREN * EACH);
	close(done[1]);
	for (int k = 0; k < CHILDREN; k++)
		wait_exit_ok(kids[k]);
	close(res[0]);
	ck_assert_int_eq(presence_count(s), 0);
	shm_close(s);
}
END_TEST

static int collect(const struct presence_view *v, void *arg)
{
	char *names = arg;
	strcat(names, v->info.display_name);
	strcat(names, ",");
	return 0;
}

static int stop_first(const struct presence_view *v, void *arg)
{
	(void)v;
	++*(int *)arg;
	return 1;
}

START_TEST(foreach_filters_by_mesh)
{
	struct shm *s = table_open(8);
	uint32_t slot, gen;
	const char *mesh[] = {"red", "blue", "red", "green", "red"};
	const char *name[] = {"a", "b", "c", "d", "e"};
	for (int i = 0; i < 5; i++) {
		struct presence_info in = info_make(mesh[i], name[i], name[i]);
		ck_assert_int_eq(presence_claim(s, &in, &slot, &gen), 0);
	}
	char names[256] = "";
	ck_assert_int_eq(presence_foreach(s, "red", collect, names), 3);
	ck_assert_str_eq(names, "a,c,e,");
	names[0] = 0;
	ck_assert_int_eq(presence_foreach(s, "blue", collect, names), 1);
	ck_assert_str_eq(names, "b,");
	ck_assert_int_eq(presence_foreach(s, "nope", collect, names), 0);
	names[0] = 0;
	ck_assert_int_eq(presence_foreach(s, NULL, collect, names), 5);
	ck_assert_str_eq(names, "a,b,c,d,e,");
	int calls = 0;
	ck_assert_int_eq(presence_foreach(s, "red", stop_first, &calls), 1);
	ck_assert_int_eq(calls, 1);
	shm_close(s);
}
END_TEST

START_TEST(foreach_skips_dead_slots_of_the_mesh)
{
	struct shm *s = table_open(4);
	uint32_t slot, gen;
	pid_t pid = child_claim_and_hang(&slot, &gen, "red");
	struct presence_info in = info_make("red", "p", "Parent");
	uint32_t ps, pg;
	ck_assert_int_eq(presence_claim(s, &in, &ps, &pg), 0);
	ck_assert_int_eq(presence_foreach(s, "red", NULL, NULL), 2);
	kill_and_reap(pid);
	char names[64] = "";
	ck_assert_int_eq(presence_foreach(s, "red", collect, names), 1);
	ck_assert_str_eq(names, "Parent,");
	shm_close(s);
}
END_TEST

static int keep_view(const struct presence_view *v, void *arg)
{
	*(struct presence_view *)arg = *v;
	return 1;
}

/* a brief walk copies everything but cwd, summary, hostname and repo */
START_TEST(foreach_brief_leaves_out_the_big_strings_only)
{
	struct shm *s = table_open(4);
	struct presence_info in = info_make("red", "mem", "Name");
	str_copy(in.pubkey, sizeof in.pubkey, "pk");
	str_copy(in.presence_id, sizeof in.presence_id, "pres");
	str_copy(in.session_id, sizeof in.session_id, "sess");
	str_copy(in.summary, sizeof in.summary, "a summary");
	str_copy(in.hostname, sizeof in.hostname, "host");
	str_copy(in.repo, sizeof in.repo, "repo");
	str_copy(in.peer_type, sizeof in.peer_type, "claude");
	str_copy(in.session_pubkey, sizeof in.session_pubkey, "spk");
	str_copy(in.peer_role, sizeof in.peer_role, "session");
	in.hidden = 1;
	in.pong_s = 7;
	uint32_t slot, gen;
	ck_assert_int_eq(presence_claim(s, &in, &slot, &gen), 0);
	struct presence_view b, f;
	memset(&b, 0x55, sizeof b);
	ck_assert_int_eq(presence_foreach_brief(s, "red", keep_view, &b), 1);
	ck_assert_int_eq(presence_foreach(s, "red", keep_view, &f), 1);
	ck_assert_str_eq(b.info.cwd, "");
	ck_assert_str_eq(b.info.summary, "");
	ck_assert_str_eq(b.info.hostname, "");
	ck_assert_str_eq(b.info.repo, "");
	ck_assert_str_eq(f.info.cwd, "/home/alice/project");
	ck_assert_str_eq(f.info.repo, "repo");
	ck_assert_str_eq(b.info.mesh_id, "red");
	ck_assert_str_eq(b.info.member_id, "mem");
	ck_assert_str_eq(b.info.pubkey, "pk");
	ck_assert_str_eq(b.info.display_name, "Name");
	ck_assert_str_eq(b.info.presence_id, "pres");
	ck_assert_str_eq(b.info.session_id, "sess");
	ck_assert_str_eq(b.info.peer_type, "claude");
	ck_assert_str_eq(b.info.session_pubkey, "spk");
	ck_assert_str_eq(b.info.peer_role, "session");
	ck_assert_int_eq(b.info.pid, 4242);
	ck_assert_int_eq(b.info.status, ST_WORKING);
	ck_assert_int_eq(b.info.hidden, 1);
	ck_assert_int_eq(b.info.pong_s, 7);
	ck_assert(b.info.status_ms == 1700000000123);
	ck_assert_uint_eq(b.slot, slot);
	ck_assert_uint_eq(b.gen, gen);
	shm_close(s);
}
END_TEST

/* A live owner is live by its slot's mutex, with no look at the lock file
 * (issue 23: F_OFD_GETLK walks every worker's lock, ~2.5 µs a call with 1,000
 * peers).  The lock file is swapped for an empty one, so a reader that asked
 * it would find the byte free, take the live child's slot for dead and
 * reclaim it; the mutex says its holder lives.  Once the child is killed the
 * mutex says nothing and the reader goes to the lock byte (the old file's,
 * which a reader that opened it sees free): dead. */
START_TEST(live_owner_is_seen_by_its_mutex_without_the_lock_file)
{
	struct shm *s = table_open(4);
	uint32_t slot, gen;
	pid_t pid = child_claim_and_hang(&slot, &gen, "red");
	char lock[PATH_MAX], old[PATH_MAX];
	snprintf(lock, sizeof lock, "%s/presence.lock", rt);
	snprintf(old, sizeof old, "%s/presence.lock.old", rt);
	ck_assert_int_eq(rename(lock, old), 0);
	touch(lock);

	pid_t r = fork();
	if (r == 0) {
		/* a new reader: its own handle, on the empty lock file */
		struct shm *c;
		char err[256];
		shm_close(s);
		if (shm_open_table(rt, 4, 0, &c, err, sizeof err) != 0)
			_exit(1);
		struct presence_view v;
		int rc = presence_foreach(c, "red", NULL, NULL) == 1 && presence_count(c) == 1 &&
				 presence_read(c, slot, &v) == 1 && v.worker_pid == pid
			     ? 0
			     : 2;
		shm_close(c);
		_exit(rc);
	}
	wait_exit_ok(r);
	struct presence_view v;
	ck_assert_int_eq(presence_read(s, slot, &v), 1); /* not reclaimed by the reader */

	kill_and_reap(pid);
	ck_assert_int_eq(rename(old, lock), 0); /* the file the child's byte was on */
	ck_assert_int_eq(presence_foreach(s, "red", NULL, NULL), 0);
	/* and its slot is claimable again, its mutex recovered */
	struct presence_info in = info_make("red", "p", "Parent");
	uint32_t s2, g2;
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(presence_claim(s, &in, &s2, &g2), 0);
	shm_close(s);
}
END_TEST

/* the writer keeps pid, status_ms, display_name, summary and cwd in step;
 * a torn copy would break the pairing */
static void info_for(struct presence_info *in, int n)
{
	memset(in, 0, sizeof *in);
	str_copy(in->mesh_id, sizeof in->mesh_id, "m");
	snprintf(in->display_name, sizeof in->display_name, "w%d", n);
	memset(in->summary, 'a' + n % 26, sizeof in->summary - 1);
	memset(in->cwd, 'A' + n % 26, sizeof in->cwd - 1);
	in->pid = n;
	in->status_ms = n;
}

START_TEST(seqlock_reader_never_sees_torn_info)
{
	struct shm *s = table_open(4);
	int p[2];
	pid_t parent = getpid();
	ck_assert_int_eq(pipe(p), 0);
	pid_t pid = fork();
	if (pid == 0) {
		child_die_with_parent(parent);
		close(p[0]);
		struct shm *c;
		char err[256];
		struct presence_info in;
		uint32_t r[2];
		if (shm_open_table(rt, 4, 0, &c, err, sizeof err) != 0)
			_exit(1);
		info_for(&in, 0);
		if (presence_claim(c, &in, &r[0], &r[1]) != 0)
			_exit(2);
		write_all(p[1], r, sizeof r);
		for (int n = 1;; n++) {
			info_for(&in, n);
			presence_update(c, r[0], &in);
			if (n % 4 == 0)
				sched_yield();
		}
	}
	close(p[1]);
	uint32_t r[2];
	ck_assert(read_all(p[0], r, sizeof r));

	/* at least 700 ms, and on until enough reads and writes were seen (a
	 * loaded machine may starve either side for a while; 20 s at most) */
	int64_t end = mono_ms() + 700, cap = mono_ms() + 20000;
	long ok = 0, reads = 0, last = -1, advanced = 0;
	struct presence_view v;
	while ((mono_ms() < end || ok <= 100 || advanced <= 10) && mono_ms() < cap) {
		reads++;
		if (presence_read(s, r[0], &v) != 1)
			continue;
		ok++;
		int n = v.info.pid;
		char want[32];
		snprintf(want, sizeof want, "w%d", n);
		ck_assert_str_eq(v.info.display_name, want);
		ck_assert(v.info.status_ms == n);
		ck_assert_uint_eq(strlen(v.info.summary), SHM_SUMMARY_MAX - 1);
		ck_assert_uint_eq(strspn(v.info.summary, (char[]){(char)('a' + n % 26), 0}),
				  SHM_SUMMARY_MAX - 1);
		ck_assert_uint_eq(strspn(v.info.cwd, (char[]){(char)('A' + n % 26), 0}),
				  SHM_CWD_MAX - 1);
		if (n != last)
			advanced++;
		last = n;
	}
	kill_and_reap(pid);
	ck_assert_msg(ok > 100, "only %ld of %ld reads succeeded", ok, reads);
	ck_assert_msg(advanced > 10, "the writer did not make progress (%ld)", advanced);
	shm_close(s);
}
END_TEST

START_TEST(shm_close_releases_owned_slots)
{
	struct shm *s = table_open(4);
	struct shm *t = table_open(4);
	struct presence_info in = info_make("m", "a", "A");
	uint32_t slot, gen;
	ck_assert_int_eq(presence_claim(t, &in, &slot, &gen), 0);
	ck_assert_int_eq(presence_count(s), 1);
	shm_close(t);
	ck_assert_int_eq(presence_count(s), 0);
	shm_close(s);
}
END_TEST

/* ------------------------------------------------------------- counters */

START_TEST(counters_are_shared_across_fork)
{
	enum { KIDS = 4, ADDS = 10000 };
	struct shm *s = table_open(4);
	ck_assert_uint_eq(counter_get(s, C_ROUTED_NOW), 0);
	counter_add(s, C_ROUTED_NOW, 2);
	pid_t kids[KIDS];
	for (int k = 0; k < KIDS; k++) {
		kids[k] = fork();
		if (kids[k] == 0) {
			struct shm *c;
			char err[256];
			shm_close(s);
			if (shm_open_table(rt, 4, 0, &c, err, sizeof err) != 0)
				_exit(1);
			for (int i = 0; i < ADDS; i++)
				counter_add(c, C_ROUTED_NOW, 1);
			counter_add(c, C_REJ_REPLAYED, 3);
			shm_close(c);
			_exit(0);
		}
	}
	for (int k = 0; k < KIDS; k++)
		wait_exit_ok(kids[k]);
	ck_assert_uint_eq(counter_get(s, C_ROUTED_NOW), 2 + KIDS * ADDS);
	ck_assert_uint_eq(counter_get(s, C_REJ_REPLAYED), 3 * KIDS);
	ck_assert_uint_eq(counter_get(s, C_ROUTED_LOW), 0);
	shm_close(s);

	/* and they survive reopening */
	s = table_open(4);
	ck_assert_uint_eq(counter_get(s, C_ROUTED_NOW), 2 + KIDS * ADDS);
	shm_close(s);
}
END_TEST

START_TEST(start_ms_is_shared)
{
	struct shm *s = table_open(4);
	int64_t now = now_ms();
	ck_assert(shm_start_ms(s) > now - 60000 && shm_start_ms(s) <= now);
	shm_set_start_ms(s, 123456789);
	struct shm *t = table_open(4);
	ck_assert(shm_start_ms(t) == 123456789);
	shm_close(t);
	shm_close(s);
}
END_TEST

START_TEST(concurrent_first_opens_share_one_table)
{
	enum { KIDS = 8 };
	int go[2];
	ck_assert_int_eq(pipe(go), 0);
	pid_t kids[KIDS];
	for (int k = 0; k < KIDS; k++) {
		kids[k] = fork();
		if (kids[k] == 0) {
			close(go[1]);
			char b, err[256];
			struct shm *c;
			(void)read(go[0], &b, 1);
			if (shm_open_table(rt, 16, 0, &c, err, sizeof err) != 0) {
				fprintf(stderr, "%s\n", err);
				_exit(1);
			}
			counter_add(c, C_WORKERS_STARTED, 1);
			shm_close(c);
			_exit(0);
		}
	}
	close(go[0]);
	close(go[1]);
	for (int k = 0; k < KIDS; k++)
		wait_exit_ok(kids[k]);
	struct shm *s = table_open(16);
	ck_assert_uint_eq(counter_get(s, C_WORKERS_STARTED), KIDS);
	shm_close(s);
	/* no temp files left behind */
	DIR *d = opendir(rt);
	ck_assert_ptr_nonnull(d);
	int n = 0;
	for (struct dirent *e; (e = readdir(d));)
		if (strncmp(e->d_name, ".presence", 9) == 0)
			n++;
	closedir(d);
	ck_assert_int_eq(n, 0);
}
END_TEST

/* -------------------------------------------------------------- buckets */

START_TEST(bucket_allows_burst_then_limits)
{
	struct shm *s = table_open(4);
	int64_t t = 1000000;
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(bucket_take(s, "hook:alice", 5, 30, t), 1);
	ck_assert_int_eq(bucket_take(s, "hook:alice", 5, 30, t), 0);
	ck_assert_int_eq(bucket_take(s, "hook:alice", 5, 30, t + 1), 0);
	shm_close(s);
}
END_TEST

START_TEST(bucket_refills_with_time)
{
	struct shm *s = table_open(4);
	int64_t t = 1000000;
	/* 60 a minute = one a second */
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(bucket_take(s, "k", 3, 60, t), 1);
	ck_assert_int_eq(bucket_take(s, "k", 3, 60, t), 0);
	ck_assert_int_eq(bucket_take(s, "k", 3, 60, t + 999), 0);
	ck_assert_int_eq(bucket_take(s, "k", 3, 60, t + 1000), 1);
	ck_assert_int_eq(bucket_take(s, "k", 3, 60, t + 1000), 0);
	ck_assert_int_eq(bucket_take(s, "k", 3, 60, t + 2500), 1); /* 1.5 since */
	ck_assert_int_eq(bucket_take(s, "k", 3, 60, t + 2500), 0);
	ck_assert_int_eq(bucket_take(s, "k", 3, 60, t + 3000), 1); /* 0.5 + 0.5 */
	/* a long pause refills to the burst, never beyond */
	int64_t later = t + 3600 * 1000;
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(bucket_take(s, "k", 3, 60, later), 1);
	ck_assert_int_eq(bucket_take(s, "k", 3, 60, later), 0);
	/* a clock that steps back refills nothing */
	ck_assert_int_eq(bucket_take(s, "k", 3, 60, t), 0);
	shm_close(s);
}
END_TEST

START_TEST(bucket_keys_are_independent)
{
	struct shm *s = table_open(4);
	int64_t t = 5000;
	ck_assert_int_eq(bucket_take(s, "a", 1, 1, t), 1);
	ck_assert_int_eq(bucket_take(s, "a", 1, 1, t), 0);
	ck_assert_int_eq(bucket_take(s, "b", 1, 1, t), 1);
	ck_assert_int_eq(bucket_take(s, "b", 1, 1, t), 0);
	/* many more keys than the table holds: each new one starts full */
	char key[32];
	for (int i = 0; i < 20000; i++) {
		snprintf(key, sizeof key, "k%d", i);
		ck_assert_int_eq(bucket_take(s, key, 2, 1, t + i), 1);
	}
	shm_close(s);
}
END_TEST

START_TEST(bucket_recently_used_key_survives_eviction)
{
	struct shm *s = table_open(4);
	/* keep "hot" the most recently used while thousands of keys pass
	 * through its set: it must stay limited, not come back full */
	int64_t t = 1000;
	ck_assert_int_eq(bucket_take(s, "hot", 1, 0, t), 1);
	char key[32];
	for (int i = 0; i < 50000; i++) {
		snprintf(key, sizeof key, "cold%d", i);
		bucket_take(s, key, 1, 0, t + 1 + 2 * i);
		ck_assert_int_eq(bucket_take(s, "hot", 1, 0, t + 2 + 2 * i), 0);
	}
	shm_close(s);
}
END_TEST

START_TEST(bucket_is_shared_across_processes)
{
	struct shm *s = table_open(4);
	pid_t pid = fork();
	if (pid == 0) {
		struct shm *c;
		char err[256];
		shm_close(s);
		if (shm_open_table(rt, 4, 0, &c, err, sizeof err) != 0)
			_exit(1);
		for (int i = 0; i < 3; i++)
			if (bucket_take(c, "shared", 3, 1, 1000) != 1)
				_exit(2);
		shm_close(c);
		_exit(0);
	}
	wait_exit_ok(pid);
	ck_assert_int_eq(bucket_take(s, "shared", 3, 1, 1000), 0);
	ck_assert_int_eq(bucket_take(s, "other", 3, 1, 1000), 1);
	shm_close(s);
}
END_TEST

START_TEST(bucket_survives_a_holder_killed_mid_take)
{
	struct shm *s = table_open(4);
	pid_t parent = getpid();
	for (int round = 0; round < 20; round++) {
		pid_t pid = fork();
		if (pid == 0) {
			child_die_with_parent(parent);
			char key[32];
			for (int i = 0;; i++) {
				snprintf(key, sizeof key, "x%d", i & 1023);
				bucket_take(s, key, 5, 60, i);
				replay_check_and_remember(s, (unsigned char *)key, strlen(key), i,
							  i + 10);
			}
		}
		usleep(1000 + (unsigned)(round * 500));
		kill_and_reap(pid);
		/* would hang (the Check timeout fails it) if the mutex stayed held */
		ck_assert_int_eq(bucket_take(s, "after", 1000, 60, 1), 1);
		/* a fresh key is remembered (1): asked at a time past every entry
		 * a child wrote (now < 2^31 + 10) and every earlier round's, so
		 * no set can be full of live entries.  At now = 1, as this asked
		 * before, the children's entries were all live: their key
		 * collisions, with i restarting at 0 each round, can fill up to 7 of
		 * a set's 8 ways (a simulation of this loop), and under heavy load
		 * a set was full: -1, "full of live entries", was the right
		 * answer (make test-repeat, round 95, load average 76). */
		int64_t now = ((int64_t)1 << 40) + (int64_t)round * 100;
		ck_assert_int_eq(replay_check_and_remember(s, (unsigned char *)&round, sizeof round,
							    now, now + 50),
				 1);
	}
	shm_close(s);
}
END_TEST

/* --------------------------------------------------------------- replay */

START_TEST(replay_cache_full_of_live_entries_refuses_and_forgets_nothing)
{
	struct shm *s = table_open(4);
	enum { MAXN = 8192 * 8 + 1 }; /* more than every set's every way */
	static uint32_t kept[MAXN];
	int nkept = 0, refused = 0;
	for (uint32_t i = 0; i < MAXN && !refused; i++) {
		int r = replay_check_and_remember(s, (const unsigned char *)&i, sizeof i, 1000, 999999);
		ck_assert_int_ne(r, 0); /* every key is new */
		if (r == 1)
			kept[nkept++] = i;
		else
			refused = 1;
	}
	ck_assert_msg(refused, "a full set must refuse (fail closed), not evict");
	/* nothing remembered was evicted to make room: each is still a replay */
	for (int k = 0; k < nkept; k++)
		ck_assert_int_eq(replay_check_and_remember(s, (const unsigned char *)&kept[k], sizeof kept[k], 1001,
							    999999),
				 0);
	/* once entries expire, room comes back */
	uint32_t late = 0xfffffff0u;
	ck_assert_int_eq(replay_check_and_remember(s, (const unsigned char *)&late, sizeof late, 1000000, 2000000), 1);
	shm_close(s);
}
END_TEST

START_TEST(replay_first_new_then_replayed_then_expires)
{
	struct shm *s = table_open(4);
	const unsigned char sig[64] = "signature-one";
	ck_assert_int_eq(replay_check_and_remember(s, sig, sizeof sig, 1000, 61000), 1);
	ck_assert_int_eq(replay_check_and_remember(s, sig, sizeof sig, 1001, 61001), 0);
	ck_assert_int_eq(replay_check_and_remember(s, sig, sizeof sig, 60999, 120999), 0);
	ck_assert_int_eq(replay_check_and_remember(s, sig, sizeof sig, 61000, 121000), 1);
	ck_assert_int_eq(replay_check_and_remember(s, sig, sizeof sig, 61001, 121001), 0);

	/* a different signature is independent; so is another process's view */
	const unsigned char other[64] = "signature-two";
	ck_assert_int_eq(replay_check_and_remember(s, other, sizeof other, 1000, 61000), 1);
	pid_t pid = fork();
	if (pid == 0) {
		struct shm *c;
		char err[256];
		shm_close(s);
		if (shm_open_table(rt, 4, 0, &c, err, sizeof err) != 0)
			_exit(1);
		const unsigned char third[] = "signature-three";
		int rc = replay_check_and_remember(c, other, sizeof other, 2000, 62000) == 0 &&
				 replay_check_and_remember(c, third, sizeof third, 2000, 62000) == 1
			 ? 0
			 : 2;
		shm_close(c);
		_exit(rc);
	}
	wait_exit_ok(pid);
	const unsigned char third[] = "signature-three";
	ck_assert_int_eq(replay_check_and_remember(s, third, sizeof third, 2000, 62000), 0);
	shm_close(s);
}
END_TEST

START_TEST(replay_remembers_many_unexpired)
{
	struct shm *s = table_open(4);
	char sig[32];
	/* far below capacity (64k): every one must still be remembered */
	for (int i = 0; i < 5000; i++) {
		snprintf(sig, sizeof sig, "sig-%d", i);
		ck_assert_int_eq(
			replay_check_and_remember(s, (unsigned char *)sig, strlen(sig), 10, 100000), 1);
	}
	for (int i = 0; i < 5000; i++) {
		snprintf(sig, sizeof sig, "sig-%d", i);
		ck_assert_int_eq(
			replay_check_and_remember(s, (unsigned char *)sig, strlen(sig), 20, 100000), 0);
	}
	shm_close(s);
}
END_TEST

/* ------------------------------------------------------------ the file */

static void write_garbage(const char *name, size_t n)
{
	char p[PATH_MAX];
	ck_assert_int_eq(mkdir(rt, 0750), 0);
	snprintf(p, sizeof p, "%s/%s", rt, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	char buf[4096];
	memset(buf, 'Z', sizeof buf);
	while (n) {
		size_t k = n < sizeof buf ? n : sizeof buf;
		ck_assert_int_eq(write(fd, buf, k), (ssize_t)k);
		n -= k;
	}
	close(fd);
}

START_TEST(bad_magic_file_is_refused)
{
	write_garbage("presence.shm", 1 << 20);
	struct shm *s = (struct shm *)1;
	char err[256] = "";
	ck_assert_int_eq(shm_open_table(rt, 4, 0, &s, err, sizeof err), -1);
	ck_assert_ptr_null(s);
	ck_assert_msg(strstr(err, "magic") != NULL, "err: %s", err);
	ck_assert_ptr_null(strchr(err, '\n'));
}
END_TEST

START_TEST(empty_file_is_refused)
{
	write_garbage("presence.shm", 0);
	struct shm *s;
	char err[256] = "";
	ck_assert_int_eq(shm_open_table(rt, 4, 0, &s, err, sizeof err), -1);
	ck_assert_str_ne(err, "");
}
END_TEST

START_TEST(recreate_replaces_bad_file)
{
	write_garbage("presence.shm", 1 << 20);
	struct shm *s;
	char err[256] = "";
	ck_assert_int_eq(shm_open_table(rt, 4, 1, &s, err, sizeof err), 0);
	ck_assert_uint_eq(shm_nslots(s), 4);
	struct presence_info in = info_make("m", "a", "A");
	uint32_t slot, gen;
	ck_assert_int_eq(presence_claim(s, &in, &slot, &gen), 0);
	shm_close(s);
	/* now an ordinary open accepts it */
	s = table_open(4);
	ck_assert_int_eq(presence_count(s), 0);
	shm_close(s);
}
END_TEST

START_TEST(recreate_keeps_a_good_table)
{
	struct shm *s = table_open(4);
	counter_add(s, C_CONNECTIONS_TOTAL, 7);
	shm_close(s);
	char err[256];
	ck_assert_int_eq(shm_open_table(rt, 32, 1, &s, err, sizeof err), 0);
	ck_assert_uint_eq(shm_nslots(s), 4);
	ck_assert_uint_eq(counter_get(s, C_CONNECTIONS_TOTAL), 7);
	shm_close(s);
}
END_TEST

static Suite *shm_suite(void)
{
	Suite *su = suite_create("shm");
	TCase *tc = tcase_create("shm");
	tcase_add_checked_fixture(tc, rt_setup, rt_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, claim_then_release_frees_slot);
	tcase_add_test(tc, open_creates_runtime_dir_and_socket_dir);
	tcase_add_test(tc, sock_path_names_slot_and_generation);
	tcase_add_test(tc, generation_increases_on_reuse);
	tcase_add_test(tc, full_table_refuses_claim);
	tcase_add_test(tc, killed_child_slot_is_reclaimed_and_socket_unlinked);
	tcase_add_test(tc, claim_reclaims_dead_slot_directly);
	tcase_add_test(tc, forked_child_with_inherited_handle_uses_its_own_locks);
	tcase_add_test(tc, concurrent_claims_never_share_a_slot);
	tcase_add_test(tc, foreach_filters_by_mesh);
	tcase_add_test(tc, foreach_skips_dead_slots_of_the_mesh);
	tcase_add_test(tc, live_owner_is_seen_by_its_mutex_without_the_lock_file);
	tcase_add_test(tc, foreach_brief_leaves_out_the_big_strings_only);
	tcase_add_test(tc, seqlock_reader_never_sees_torn_info);
	tcase_add_test(tc, shm_close_releases_owned_slots);
	tcase_add_test(tc, counters_are_shared_across_fork);
	tcase_add_test(tc, start_ms_is_shared);
	tcase_add_test(tc, concurrent_first_opens_share_one_table);
	tcase_add_test(tc, bucket_allows_burst_then_limits);
	tcase_add_test(tc, bucket_refills_with_time);
	tcase_add_test(tc, bucket_keys_are_independent);
	tcase_add_test(tc, bucket_recently_used_key_survives_eviction);
	tcase_add_test(tc, bucket_is_shared_across_processes);
	tcase_add_test(tc, bucket_survives_a_holder_killed_mid_take);
	tcase_add_test(tc, replay_first_new_then_replayed_then_expires);
	tcase_add_test(tc, replay_cache_full_of_live_entries_refuses_and_forgets_nothing);
	tcase_add_test(tc, replay_remembers_many_unexpired);
	tcase_add_test(tc, bad_magic_file_is_refused);
	tcase_add_test(tc, empty_file_is_refused);
	tcase_add_test(tc, recreate_replaces_bad_file);
	tcase_add_test(tc, recreate_keeps_a_good_table);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(shm_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
