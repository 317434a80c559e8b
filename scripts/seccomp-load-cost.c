/* seccomp-load-cost — what loading the worker's seccomp filter costs the
 * kernel, for libseccomp's linear chain and its binary tree
 * (SCMP_FLTATR_CTL_OPTIMIZE=2, what scripts/sandbox-bpf-gen.c emits; docs/
 * design.md "A worker's start and end, fourth round").  The allow-list of
 * worker/sandbox_calls.h is compiled both ways, then N children each set
 * no_new_privs, load one program (or none) and exit; the CPU time of the
 * children (getrusage RUSAGE_CHILDREN, user + system) per child is printed,
 * the three kinds alternating, ROUNDS times.  A measuring tool, not built
 * by make:
 *
 *   cc -std=c17 -D_GNU_SOURCE -O2 -I. -o /tmp/seccomp-load-cost scripts/seccomp-load-cost.c -lseccomp
 *   /tmp/seccomp-load-cost [N [ROUNDS]]          (default 2000 3) */
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "worker/sandbox_calls.h"

struct prog {
	struct sock_filter insn[4096];
	unsigned short len;
};

static void die(const char *what)
{
	fprintf(stderr, "seccomp-load-cost: %s failed\n", what);
	exit(1);
}

static void allow_names(scmp_filter_ctx f, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int nr = seccomp_syscall_resolve_name(names[i]);
		if (nr != __NR_SCMP_ERROR && seccomp_rule_add(f, SCMP_ACT_ALLOW, nr, 0) != 0)
			die(names[i]);
	}
}

/* the shipped program's rules (scripts/sandbox-bpf-gen.c), optimize 1 or 2 */
static void compile(struct prog *p, uint32_t optimize)
{
	scmp_filter_ctx f = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (!f || seccomp_attr_set(f, SCMP_FLTATR_CTL_OPTIMIZE, optimize) != 0)
		die("seccomp_init");
	allow_names(f, allowed, sizeof allowed / sizeof *allowed);
	for (size_t i = 0; i < sizeof socket_domains / sizeof *socket_domains; i++)
		if (seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
				     SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)socket_domains[i])) != 0)
			die("socket rule");
	for (size_t i = 0; i < sizeof ioctl_requests / sizeof *ioctl_requests; i++)
		if (seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
				     SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)ioctl_requests[i])) != 0)
			die("ioctl rule");
	int fd = memfd_create("bpf", 0);
	if (fd < 0 || seccomp_export_bpf(f, fd) != 0)
		die("seccomp_export_bpf");
	seccomp_release(f);
	ssize_t n = pread(fd, p->insn, sizeof p->insn, 0);
	close(fd);
	if (n <= 0 || n % (ssize_t)sizeof *p->insn)
		die("reading the program");
	p->len = (unsigned short)(n / (ssize_t)sizeof *p->insn);
}

static double children_cpu(void)
{
	struct rusage r;
	getrusage(RUSAGE_CHILDREN, &r);
	return (double)r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + (double)r.ru_stime.tv_sec +
	       r.ru_stime.tv_usec / 1e6;
}

/* microseconds of CPU per child that loads p (NULL: none) */
static double run(const struct prog *p, int n)
{
	double t0 = children_cpu();
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid < 0)
			die("fork");
		if (pid == 0) {
			if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
				_exit(1);
			struct sock_fprog fp = {.len = p ? p->len : 0, .filter = p ? (struct sock_filter *)p->insn : NULL};
			if (p && syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fp) != 0)
				_exit(1);
			_exit(0);
		}
		int st;
		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			die("a child");
	}
	return (children_cpu() - t0) / n * 1e6;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 2000, rounds = argc > 2 ? atoi(argv[2]) : 3;
	if (n < 1 || rounds < 1)
		die("the arguments");
	static struct prog linear, tree;
	compile(&linear, 1);
	compile(&tree, 2);
	printf("programs: linear chain %u instructions, binary tree %u\n", linear.len, tree.len);
	for (int r = 0; r < rounds; r++) {
		double none = run(NULL, n), lin = run(&linear, n), bt = run(&tree, n);
		printf("round %d, CPU us per child: no filter %.1f, linear %.1f (+%.1f), tree %.1f (+%.1f)\n", r, none,
		       lin, lin - none, bt, bt - none);
	}
	return 0;
}
