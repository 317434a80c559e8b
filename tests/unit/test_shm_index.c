/* test_shm_index — the presence table's per-mesh index (shm layout v3, issue
 * 13): presence_foreach(mesh) finds a mesh's slots through the index of mesh
 * tags, through insert, remove, reuse by another mesh, a killed owner, a
 * changed mesh, and while other processes churn; a reader of one mesh maps
 * only the index and that mesh's slots; a v2 table is refused. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "shm/shm.h"

static char tmp_root[64];
static char rt[96];

static void rt_setup(void)
{
	umask(022);
	snprintf(tmp_root, sizeof tmp_root, "/tmp/test_shm_index.XXXXXX");
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
	return s;
}

static struct presence_info info_make(const char *mesh, const char *name)
{
	struct presence_info in;
	memset(&in, 0, sizeof in);
	str_copy(in.mesh_id, sizeof in.mesh_id, mesh);
	str_copy(in.member_id, sizeof in.member_id, name);
	str_copy(in.display_name, sizeof in.display_name, name);
	return in;
}

static int collect(const struct presence_view *v, void *arg)
{
	char *names = arg;
	strcat(names, v->info.display_name);
	strcat(names, ",");
	return 0;
}

/* "a,b," of the live peers of mesh (NULL: all) */
static const char *names_of(struct shm *s, const char *mesh)
{
	static char names[1024];
	names[0] = 0;
	presence_foreach(s, mesh, collect, names);
	return names;
}

static void wait_exit_ok(pid_t pid)
{
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
}

static void child_die_with_parent(pid_t parent)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
		_exit(92);
}

START_TEST(index_insert_remove_reuse)
{
	struct shm *s = table_open(8);
	struct presence_info a = info_make("red", "a"), b = info_make("blue", "b"),
			     c = info_make("red", "c");
	uint32_t sa, ga, sb, gb, sc, gc;
	ck_assert_int_eq(presence_claim(s, &a, &sa, &ga), 0);
	ck_assert_int_eq(presence_claim(s, &b, &sb, &gb), 0);
	ck_assert_int_eq(presence_claim(s, &c, &sc, &gc), 0);
	/* the lowest free slots, in order */
	ck_assert_uint_eq(sa, 0);
	ck_assert_uint_eq(sb, 1);
	ck_assert_uint_eq(sc, 2);
	ck_assert_str_eq(names_of(s, "red"), "a,c,");
	ck_assert_str_eq(names_of(s, "blue"), "b,");
	ck_assert_str_eq(names_of(s, NULL), "a,b,c,");

	/* remove: gone from its mesh, the others stay */
	presence_release(s, sa, ga);
	ck_assert_str_eq(names_of(s, "red"), "c,");
	ck_assert_str_eq(names_of(s, NULL), "b,c,");
	ck_assert_int_eq(presence_count(s), 2);

	/* reuse by another mesh: the freed slot is found under its new mesh only */
	struct presence_info d = info_make("green", "d");
	uint32_t sd, gd;
	ck_assert_int_eq(presence_claim(s, &d, &sd, &gd), 0);
	ck_assert_uint_eq(sd, sa);
	ck_assert_uint_gt(gd, ga);
	ck_assert_str_eq(names_of(s, "green"), "d,");
	ck_assert_str_eq(names_of(s, "red"), "c,");

	/* an update that moves a slot to another mesh moves its index entry */
	struct presence_info d2 = info_make("blue", "d");
	presence_update(s, sd, &d2);
	ck_assert_str_eq(names_of(s, "green"), "");
	ck_assert_str_eq(names_of(s, "blue"), "d,b,");
	/* ordinary updates (same mesh) keep it */
	str_copy(d2.summary, sizeof d2.summary, "busy");
	presence_update(s, sd, &d2);
	ck_assert_str_eq(names_of(s, "blue"), "d,b,");

	/* a slot claimed without info is in the "" mesh, nowhere else */
	uint32_t se, ge;
	ck_assert_int_eq(presence_claim(s, NULL, &se, &ge), 0);
	ck_assert_str_eq(names_of(s, "blue"), "d,b,");
	ck_assert_int_eq(presence_foreach(s, "", NULL, NULL), 1);
	ck_assert_int_eq(presence_foreach(s, NULL, NULL, NULL), 4);

	presence_release(s, sb, gb);
	presence_release(s, sc, gc);
	presence_release(s, sd, gd);
	presence_release(s, se, ge);
	ck_assert_str_eq(names_of(s, NULL), "");
	ck_assert_int_eq(presence_count(s), 0);
	shm_close(s);
}
END_TEST

/* mesh ids that differ only past where a short hash might look, or in case */
START_TEST(index_tells_similar_mesh_ids_apart)
{
	struct shm *s = table_open(8);
	char long1[SHM_MESH_ID_MAX], long2[SHM_MESH_ID_MAX];
	memset(long1, 'x', sizeof long1 - 1);
	long1[sizeof long1 - 1] = 0;
	memcpy(long2, long1, sizeof long2);
	long2[sizeof long2 - 2] = 'y';
	const char *mesh[] = {"Red", "red", long1, long2};
	const char *name[] = {"A", "a", "x", "y"};
	uint32_t slot, gen;
	for (int i = 0; i < 4; i++) {
		struct presence_info in = info_make(mesh[i], name[i]);
		ck_assert_int_eq(presence_claim(s, &in, &slot, &gen), 0);
	}
	for (int i = 0; i < 4; i++) {
		char want[8];
		snprintf(want, sizeof want, "%s,", name[i]);
		ck_assert_str_eq(names_of(s, mesh[i]), want);
	}
	shm_close(s);
}
END_TEST

/* child: claims one slot in mesh, reports it, hangs until killed */
static pid_t child_holding(const char *mesh, uint32_t nslots, uint32_t *slot)
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
		char err[256];
		uint32_t r[2];
		if (shm_open_table(rt, nslots, 0, &c, err, sizeof err) != 0)
			_exit(1);
		struct presence_info in = info_make(mesh, "child");
		if (presence_claim(c, &in, &r[0], &r[1]) != 0)
			_exit(2);
		if (write(p[1], r, sizeof r) != (ssize_t)sizeof r)
			_exit(3);
		for (;;)
			pause();
	}
	close(p[1]);
	uint32_t r[2];
	ck_assert_int_eq(read(p[0], r, sizeof r), (ssize_t)sizeof r);
	close(p[0]);
	*slot = r[0];
	return pid;
}

START_TEST(index_entry_of_a_killed_owner_is_cleared_and_reused)
{
	struct shm *s = table_open(4);
	uint32_t dead;
	pid_t pid = child_holding("red", 4, &dead);
	ck_assert_str_eq(names_of(s, "red"), "child,");
	kill(pid, SIGKILL);
	ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
	/* the dead slot is not reported, and its reader reclaims it */
	ck_assert_str_eq(names_of(s, "red"), "");
	struct presence_info b = info_make("blue", "b");
	uint32_t sb, gb;
	ck_assert_int_eq(presence_claim(s, &b, &sb, &gb), 0);
	ck_assert_uint_eq(sb, dead); /* reclaimed: FREE again, the lowest */
	ck_assert_str_eq(names_of(s, "blue"), "b,");
	ck_assert_str_eq(names_of(s, "red"), "");

	/* killed and never looked at: the claim that needs it reclaims it */
	uint32_t d1, d2, d3;
	pid_t k1 = child_holding("red", 4, &d1), k2 = child_holding("red", 4, &d2),
	      k3 = child_holding("red", 4, &d3);
	struct presence_info x = info_make("green", "x");
	uint32_t sx, gx;
	ck_assert_int_eq(presence_claim(s, &x, &sx, &gx), -1); /* full of live slots */
	kill(k2, SIGKILL);
	ck_assert_int_eq(waitpid(k2, NULL, 0), k2);
	ck_assert_int_eq(presence_claim(s, &x, &sx, &gx), 0);
	ck_assert_uint_eq(sx, d2);
	ck_assert_str_eq(names_of(s, "green"), "x,");
	ck_assert_str_eq(names_of(s, "red"), "child,child,");
	kill(k1, SIGKILL);
	kill(k3, SIGKILL);
	waitpid(k1, NULL, 0);
	waitpid(k3, NULL, 0);
	ck_assert_int_eq(presence_count(s), 2); /* b and x */
	shm_close(s);
}
END_TEST

/* Rss of the presence.shm mapping in this process, in KiB */
static long shm_rss_kb(void)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	if (!f)
		return -1;
	char line[512];
	int in = 0;
	long kb = -1;
	while (fgets(line, sizeof line, f)) {
		unsigned long a, b;
		if (sscanf(line, "%lx-%lx ", &a, &b) == 2) {
			in = strstr(line, "/presence.shm") != NULL;
			continue;
		}
		long v;
		if (in && sscanf(line, "Rss: %ld kB", &v) == 1)
			kb = (kb < 0 ? 0 : kb) + v;
	}
	fclose(f);
	return kb;
}

/* The point of the index: a reader of one mesh (a fresh process, as every
 * worker is) maps the header page it reads, the index and that mesh's slots,
 * not the table.  1024 slots are 7 MB; 600 live peers of other meshes. */
START_TEST(foreach_of_one_mesh_maps_only_its_slots)
{
	enum { NSLOTS = 1024, OTHERS = 600 };
	struct shm *s = table_open(NSLOTS);
	uint32_t slot, gen;
	for (int i = 0; i < OTHERS; i++) {
		char mesh[16];
		snprintf(mesh, sizeof mesh, "m%d", i % 50);
		struct presence_info in = info_make(mesh, "o");
		ck_assert_int_eq(presence_claim(s, &in, &slot, &gen), 0);
	}
	for (int i = 0; i < 3; i++) {
		struct presence_info in = info_make("mine", "p");
		ck_assert_int_eq(presence_claim(s, &in, &slot, &gen), 0);
	}
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct shm *c;
		char err[256];
		if (shm_open_table(rt, NSLOTS, 0, &c, err, sizeof err) != 0)
			_exit(1);
		long before = shm_rss_kb();
		if (presence_foreach(c, "mine", NULL, NULL) != 3)
			_exit(2);
		long after = shm_rss_kb();
		fprintf(stderr, "foreach of one mesh: presence.shm Rss %ld -> %ld KiB (table %zu KiB)\n",
			before, after, (size_t)NSLOTS * sizeof(struct presence_info) / 1024);
		/* header, index and 3 slots, each with the kernel's fault-around
		 * (64 KiB): well under 1 MiB, where the walk mapped all 7 MiB */
		if (after < 0 || after > 1024)
			_exit(3);
		_exit(0);
	}
	wait_exit_ok(pid);
	shm_close(s);
}
END_TEST

/* Churn: children claim, update and release slots in a loop, each in its
 * own mesh (so freed slots are reused across meshes), while a holder per
 * mesh keeps one slot for the whole test.  The reader checks exactly what
 * shm.h promises of a walk that runs beside claims and releases: every
 * holder on every pass, never a slot of another mesh, and no more slots than
 * were live at the start (a holder and at most 3 churners' per mesh) plus the
 * claims made during the walk, which the churners count in shared memory
 * before each claim.  (A bound of 4 without the claims is not promised: a
 * churner that releases a slot behind the walk and claims one ahead of it is
 * seen twice, issue 25.) */
enum { CHURN_MESHES = 4 };
struct churn_counts {
	_Atomic long claims[CHURN_MESHES];
};

struct mesh_names {
	const char *mesh; /* NULL: any */
	char names[4096];
	int wrong; /* views of another mesh */
};

static int collect_checked(const struct presence_view *v, void *arg)
{
	struct mesh_names *mn = arg;
	if (mn->mesh && strcmp(v->info.mesh_id, mn->mesh) != 0)
		mn->wrong++;
	if (strlen(mn->names) + strlen(v->info.display_name) + 2 < sizeof mn->names) {
		strcat(mn->names, v->info.display_name);
		strcat(mn->names, ",");
	}
	return 0;
}

static long claims_sum(struct churn_counts *cc)
{
	long n = 0;
	for (int m = 0; m < CHURN_MESHES; m++)
		n += atomic_load(&cc->claims[m]);
	return n;
}

/* churner of mesh m: 3 claims (each counted first), an update, 3 releases,
 * forever; capped = through presence_claim_capped (under the admission lock) */
static pid_t churner_start(struct churn_counts *cc, int m, const char *mesh, uint32_t nslots, int capped)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid != 0)
		return pid;
	child_die_with_parent(parent);
	struct shm *c;
	char err[256];
	if (shm_open_table(rt, nslots, 0, &c, err, sizeof err) != 0)
		_exit(1);
	struct presence_info in = info_make(mesh, "churn");
	for (unsigned n = 0;; n++) {
		uint32_t sl[3], g[3];
		for (int k = 0; k < 3; k++) {
			if (cc)
				atomic_fetch_add(&cc->claims[m], 1);
			int rc = capped ? (int)presence_claim_capped(c, &in, 1000, 1000, NULL, NULL, &sl[k], &g[k])
					: presence_claim(c, &in, &sl[k], &g[k]);
			if (rc != 0)
				_exit(2);
		}
		presence_update(c, sl[n % 3], &in);
		for (int k = 0; k < 3; k++)
			presence_release(c, sl[k], g[k]);
		if (n % 16 == 0)
			sched_yield();
	}
}

static void kill_all(pid_t *pids, int n)
{
	for (int i = 0; i < n; i++)
		kill(pids[i], SIGKILL);
	for (int i = 0; i < n; i++)
		waitpid(pids[i], NULL, 0);
}

START_TEST(foreach_under_churn_never_misses_or_mixes)
{
	enum { MESHES = CHURN_MESHES, NSLOTS = 64 };
	struct shm *s = table_open(NSLOTS);
	struct churn_counts *cc =
		mmap(NULL, sizeof *cc, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(cc, MAP_FAILED);
	for (int m = 0; m < MESHES; m++)
		atomic_init(&cc->claims[m], 0);
	pid_t holders[MESHES], churners[MESHES];
	char mesh[MESHES][16];
	for (int m = 0; m < MESHES; m++)
		snprintf(mesh[m], sizeof mesh[m], "mesh%d", m);
	/* the churners first, so that holders get slots in among theirs */
	for (int m = 0; m < MESHES; m++)
		churners[m] = churner_start(cc, m, mesh[m], NSLOTS, 0);
	for (int m = 0; m < MESHES; m++) {
		uint32_t slot;
		holders[m] = child_holding(mesh[m], NSLOTS, &slot);
	}
	/* 700 ms, and on until 50 passes (20 s at most: a loaded machine may
	 * starve the reader) */
	int64_t end = mono_ms() + 700, cap = mono_ms() + 20000;
	long passes = 0, quiet = 0, doubled = 0;
	while ((mono_ms() < end || passes <= 50) && mono_ms() < cap) {
		for (int m = 0; m < MESHES; m++) {
			struct mesh_names mn = {.mesh = mesh[m]};
			long c0 = atomic_load(&cc->claims[m]);
			int n = presence_foreach(s, mesh[m], collect_checked, &mn);
			long during = atomic_load(&cc->claims[m]) - c0;
			ck_assert_msg(strstr(mn.names, "child,") != NULL, "pass %ld: %s's holder missed (%s)",
				      passes, mesh[m], mn.names);
			ck_assert_msg(mn.wrong == 0, "pass %ld: %d slots of another mesh reported for %s", passes,
				      mn.wrong, mesh[m]);
			/* live at the start (a holder, at most 3 churners') plus the claims during the walk */
			ck_assert_int_ge(n, 1);
			ck_assert_msg(n <= 4 + during, "pass %ld: %s: %d slots, at most %ld live or claimed", passes,
				      mesh[m], n, 4 + during);
			quiet += during == 0;
			doubled += n > 4;
		}
		struct mesh_names all = {.mesh = NULL};
		long c0 = claims_sum(cc);
		int n = presence_foreach(s, NULL, collect_checked, &all);
		long during = claims_sum(cc) - c0;
		ck_assert_int_ge(n, MESHES);
		ck_assert_msg(n <= MESHES * 4 + during, "all: %d slots, at most %ld", n, MESHES * 4 + during);
		passes++;
	}
	kill_all(churners, MESHES);
	kill_all(holders, MESHES);
	fprintf(stderr, "churn walk: %ld passes, %ld mesh walks without a claim beside them, %ld saw more than 4\n",
		passes, quiet, doubled);
	ck_assert_msg(passes > 50, "only %ld passes", passes);
	ck_assert_int_eq(presence_count(s), 0);
	munmap(cc, sizeof *cc);
	shm_close(s);
}
END_TEST

/* The exact count a capacity decision needs (issue 25): the same churn, but
 * the churners claim through presence_claim_capped, as every hello does; a
 * reader holding a mesh's admission lock sees no claim into it run, so its
 * walk counts at most the holder and 3 churners' slots, and never misses the
 * holder.  The reader yields at every slot, so that each walk spans many of
 * the churners' moves: without the lock it sees one twice within a few
 * passes. */
static int collect_slowly(const struct presence_view *v, void *arg)
{
	sched_yield();
	return collect_checked(v, arg);
}

START_TEST(foreach_under_admission_lock_is_exact_under_churn)
{
	enum { MESHES = CHURN_MESHES, NSLOTS = 64 };
	struct shm *s = table_open(NSLOTS);
	pid_t holders[MESHES], churners[MESHES];
	char mesh[MESHES][16];
	for (int m = 0; m < MESHES; m++)
		snprintf(mesh[m], sizeof mesh[m], "mesh%d", m);
	for (int m = 0; m < MESHES; m++)
		churners[m] = churner_start(NULL, m, mesh[m], NSLOTS, 1);
	for (int m = 0; m < MESHES; m++) {
		uint32_t slot;
		holders[m] = child_holding(mesh[m], NSLOTS, &slot);
	}
	int64_t end = mono_ms() + 500, cap = mono_ms() + 20000;
	long passes = 0;
	while ((mono_ms() < end || passes <= 20) && mono_ms() < cap) {
		for (int m = 0; m < MESHES; m++) {
			struct mesh_names mn = {.mesh = mesh[m]};
			ck_assert_int_eq(presence_admit_lock(s, mesh[m], 5000), 0);
			int n = presence_foreach(s, mesh[m], collect_slowly, &mn);
			presence_admit_unlock(s, mesh[m]);
			ck_assert_msg(strstr(mn.names, "child,") != NULL, "pass %ld: %s's holder missed (%s)",
				      passes, mesh[m], mn.names);
			ck_assert_int_eq(mn.wrong, 0);
			ck_assert_msg(n >= 1 && n <= 4, "pass %ld: %s: %d slots under the lock (%s)", passes,
				      mesh[m], n, mn.names);
		}
		passes++;
	}
	/* the churners never failed a claim (a dead one would stop the churn) */
	for (int m = 0; m < MESHES; m++)
		ck_assert_int_eq(waitpid(churners[m], NULL, WNOHANG), 0);
	kill_all(churners, MESHES);
	kill_all(holders, MESHES);
	ck_assert_msg(passes > 20, "only %ld passes", passes);
	ck_assert_int_eq(presence_count(s), 0);
	shm_close(s);
}
END_TEST

struct mesh_check {
	const char *mesh;
	int wrong;
};

static int check_mesh(const struct presence_view *v, void *arg)
{
	struct mesh_check *mc = arg;
	if (strcmp(v->info.mesh_id, mc->mesh) != 0)
		mc->wrong++;
	return 0;
}

/* the same churn, checking the other half: no slot of another mesh */
START_TEST(foreach_under_churn_reports_only_its_mesh)
{
	enum { NSLOTS = 16 };
	struct shm *s = table_open(NSLOTS);
	pid_t parent = getpid();
	pid_t kids[2];
	const char *mesh[] = {"left", "right"};
	for (int k = 0; k < 2; k++) {
		kids[k] = fork();
		ck_assert_int_ge(kids[k], 0);
		if (kids[k] == 0) {
			child_die_with_parent(parent);
			struct shm *c;
			char err[256];
			if (shm_open_table(rt, NSLOTS, 0, &c, err, sizeof err) != 0)
				_exit(1);
			/* one slot, its mesh flipping between the two */
			struct presence_info in = info_make(mesh[k], "flip");
			uint32_t sl, g;
			for (;;) {
				if (presence_claim(c, &in, &sl, &g) != 0)
					_exit(2);
				struct presence_info other = info_make(mesh[1 - k], "flip");
				presence_update(c, sl, &other);
				presence_release(c, sl, g);
			}
		}
	}
	int64_t end = mono_ms() + 500, cap = mono_ms() + 20000;
	long seen = 0;
	while ((mono_ms() < end || seen == 0) && mono_ms() < cap) {
		for (int k = 0; k < 2; k++) {
			struct mesh_check mc = {.mesh = mesh[k]};
			seen += presence_foreach(s, mesh[k], check_mesh, &mc);
			ck_assert_int_eq(mc.wrong, 0);
		}
	}
	for (int k = 0; k < 2; k++) {
		kill(kids[k], SIGKILL);
		waitpid(kids[k], NULL, 0);
	}
	ck_assert_msg(seen > 0, "the readers never saw a live slot");
	shm_close(s);
}
END_TEST

/* two hellos racing for the last place: each claims, then counts its mesh;
 * at least one of them must see the other (auth.c's capacity check) */
START_TEST(racing_claimers_see_each_other)
{
	enum { NSLOTS = 8, ROUNDS = 200 };
	struct shm *s = table_open(NSLOTS);
	for (int r = 0; r < ROUNDS; r++) {
		int go[2], done[2], res[2];
		ck_assert_int_eq(pipe(go), 0);
		ck_assert_int_eq(pipe(done), 0);
		ck_assert_int_eq(pipe(res), 0);
		pid_t kids[2];
		for (int k = 0; k < 2; k++) {
			kids[k] = fork();
			ck_assert_int_ge(kids[k], 0);
			if (kids[k] == 0) {
				close(go[1]);
				close(done[1]);
				close(res[0]);
				struct shm *c;
				char err[256], b;
				if (shm_open_table(rt, NSLOTS, 0, &c, err, sizeof err) != 0)
					_exit(1);
				struct presence_info in = info_make("race", "r");
				(void)read(go[0], &b, 1); /* EOF = go */
				uint32_t sl, g;
				if (presence_claim(c, &in, &sl, &g) != 0)
					_exit(2);
				char n = (char)presence_foreach(c, "race", NULL, NULL);
				if (write(res[1], &n, 1) != 1)
					_exit(3);
				(void)read(done[0], &b, 1); /* hold until both have counted */
				shm_close(c); /* no dead slot for the next round to see */
				_exit(0);
			}
		}
		close(go[0]);
		close(done[0]);
		close(res[1]);
		close(go[1]);
		char n[2];
		ck_assert_int_eq(read(res[0], &n[0], 1), 1);
		ck_assert_int_eq(read(res[0], &n[1], 1), 1);
		close(res[0]);
		close(done[1]);
		for (int k = 0; k < 2; k++)
			wait_exit_ok(kids[k]);
		ck_assert_msg(n[0] == 2 || n[1] == 2, "round %d: both counted only themselves (%d, %d)", r,
			      n[0], n[1]);
		ck_assert_int_le(n[0], 2);
		ck_assert_int_le(n[1], 2);
		ck_assert_int_eq(presence_count(s), 0);
	}
	shm_close(s);
}
END_TEST

/* The admission lock is bounded both ways: held by a live process, a claim
 * into that mesh waits at most its wait and says busy (another mesh is not
 * held up); held by a process that dies, the kernel drops it and the next
 * claim goes through at once. */
START_TEST(admission_lock_held_by_a_live_or_dead_process)
{
	struct shm *s = table_open(8);
	int p[2];
	ck_assert_int_eq(pipe(p), 0);
	pid_t parent = getpid();
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		child_die_with_parent(parent);
		close(p[0]);
		struct shm *c;
		char err[256];
		if (shm_open_table(rt, 8, 0, &c, err, sizeof err) != 0)
			_exit(1);
		if (presence_admit_lock(c, "red", 1000) != 0)
			_exit(2);
		if (write(p[1], "x", 1) != 1)
			_exit(3);
		for (;;)
			pause();
	}
	close(p[1]);
	char b;
	ck_assert_int_eq(read(p[0], &b, 1), 1);
	close(p[0]);
	int64_t t0 = mono_ms();
	ck_assert_int_eq(presence_admit_lock(s, "red", 100), -1);
	int64_t took = mono_ms() - t0;
	ck_assert_msg(took >= 100 && took < 10000, "gave up after %lld ms", (long long)took);
	/* other meshes are not held up (each shares red's stripe one time in
	 * 65536: one of three different ones is free) */
	int free_ones = 0;
	static const char *const others[] = {"blue", "green", "grey"};
	for (int i = 0; i < 3; i++)
		if (presence_admit_lock(s, others[i], 100) == 0) {
			free_ones++;
			presence_admit_unlock(s, others[i]);
		}
	ck_assert_int_ge(free_ones, 2);
	struct presence_info in;
	uint32_t sl, g;
	kill(pid, SIGKILL);
	ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
	/* free at the first try (a wait of 0 tries once) */
	ck_assert_int_eq(presence_admit_lock(s, "red", 0), 0);
	presence_admit_unlock(s, "red");
	in = info_make("red", "r");
	ck_assert_int_eq(presence_claim_capped(s, &in, 10, 10, NULL, NULL, &sl, &g), ADMIT_OK);
	ck_assert_str_eq(names_of(s, "red"), "r,");
	presence_release(s, sl, g);
	shm_close(s);
}
END_TEST

/* a table of the layout before the index is refused, and replaced only by
 * the acceptor's recreate */
START_TEST(v2_table_is_refused)
{
	struct shm *s = table_open(4);
	shm_close(s);
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/presence.shm", rt);
	int fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	uint32_t v2 = 2;
	ck_assert_int_eq(pwrite(fd, &v2, sizeof v2, 8), (ssize_t)sizeof v2);
	close(fd);
	char err[256];
	s = NULL;
	ck_assert_int_eq(shm_open_table(rt, 4, 0, &s, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "version 2") != NULL, "%s", err);
	ck_assert_int_eq(shm_open_table(rt, 4, 1, &s, err, sizeof err), 0);
	shm_close(s);
}
END_TEST

static Suite *index_suite(void)
{
	Suite *su = suite_create("shm_index");
	TCase *tc = tcase_create("shm_index");
	tcase_add_checked_fixture(tc, rt_setup, rt_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, index_insert_remove_reuse);
	tcase_add_test(tc, index_tells_similar_mesh_ids_apart);
	tcase_add_test(tc, index_entry_of_a_killed_owner_is_cleared_and_reused);
	tcase_add_test(tc, foreach_of_one_mesh_maps_only_its_slots);
	tcase_add_test(tc, foreach_under_churn_never_misses_or_mixes);
	tcase_add_test(tc, foreach_under_admission_lock_is_exact_under_churn);
	tcase_add_test(tc, foreach_under_churn_reports_only_its_mesh);
	tcase_add_test(tc, racing_claimers_see_each_other);
	tcase_add_test(tc, admission_lock_held_by_a_live_or_dead_process);
	tcase_add_test(tc, v2_table_is_refused);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(index_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
