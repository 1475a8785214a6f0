// SPDX-License-Identifier: Apache-2.0
/* proc_stats against the kernel's accounting: CPU and RSS of real processes and a real cgroup. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../harness/test.h"
#include "zmesh/lab.h"
#include "zmesh/proc_stats.h"

static void burn(double seconds)
{
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	do {
		for (int i = 0; i < 100000; i++)
			__asm__ __volatile__("" : : "r"(i));	/* keep the loop */
		clock_gettime(CLOCK_MONOTONIC, &b);
	} while ((double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9 < seconds);
}

TEST(cpu_of_self_grows_with_work)
{
	uint64_t p0, p1, s0, s1;

	ASSERT_OK(zm_proc_cpu_ns(getpid(), &p0));
	ASSERT_OK(zm_self_cpu_ns(&s0));
	burn(0.3);
	ASSERT_OK(zm_proc_cpu_ns(getpid(), &p1));
	ASSERT_OK(zm_self_cpu_ns(&s1));
	/* 0.3 s of wall time spinning: at least some of it on a CPU, even on a busy box. */
	EXPECT_GE(p1 - p0, 20000000ull);
	EXPECT_GE(s1 - s0, 20000000ull);
	/* and not more than the wall time plus a tick or two */
	EXPECT_LE(p1 - p0, 400000000ull);
}

TEST(rss_follows_touched_memory)
{
	size_t sz = 64u << 20;
	uint64_t r0, r1;
	char *m;

	ASSERT_OK(zm_proc_rss_kib(getpid(), &r0));
	EXPECT_GT(r0, 0);
	m = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(m != MAP_FAILED);
	memset(m, 1, sz);
	ASSERT_OK(zm_proc_rss_kib(getpid(), &r1));
	munmap(m, sz);
	EXPECT_GE(r1, r0 + (sz >> 10) * 9 / 10);
}

TEST(missing_process_and_cgroup)
{
	uint64_t v;
	pid_t pid = fork();

	ASSERT_GE(pid, 0);
	if (pid == 0)
		_exit(0);
	waitpid(pid, NULL, 0);
	/* a reaped child's pid is free (reuse within the test is unlikely enough) */
	EXPECT_EQ(zm_proc_cpu_ns(pid, &v), -ESRCH);
	EXPECT_EQ(zm_proc_rss_kib(pid, &v), -ESRCH);
	EXPECT_EQ(zm_cgroup_procs_cpu_ns("/nonexistent/zm-cg", &v, NULL), -ENOENT);
	EXPECT_EQ(zm_cgroup_cpu_usage_ns("/nonexistent/zm-cg", &v), -ENOENT);
}

/* A process with ") (" in its name must still parse. */
TEST(odd_comm_parses)
{
	uint64_t v;
	pid_t pid;
	int st;

	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_NAME, "x) 1 2 (y", 0, 0, 0);
		burn(0.3);
		_exit(0);
	}
	usleep(200000);
	EXPECT_OK(zm_proc_cpu_ns(pid, &v));
	/* a misparse would read fields shifted by the spaces: page counts, not 0..0.3 s */
	EXPECT_LT(v, 1000000000ull);
	EXPECT_OK(zm_proc_rss_kib(pid, &v));
	EXPECT_GT(v, 0);
	waitpid(pid, &st, 0);
}

struct cg {
	char dir[PATH_MAX];
	pid_t pid;
	bool made_parent;
	char parent[1100];
};

static void cg_cleanup(void *arg)
{
	struct cg *c = arg;

	if (c->pid > 0) {
		kill(c->pid, SIGKILL);
		waitpid(c->pid, NULL, 0);
	}
	/* the dying process leaves the cgroup asynchronously */
	for (int i = 0; i < 100 && rmdir(c->dir) < 0 && errno == EBUSY; i++)
		usleep(10000);
	if (c->made_parent)
		(void)rmdir(c->parent);
}

TEST(cgroup_sums_its_processes)
{
	static struct cg c;
	char root[1024], path[PATH_MAX + 32];
	uint64_t cpu, rss, usage;
	unsigned int n = 0;
	FILE *f;

	REQUIRE_ROOT();
	ASSERT_OK(zm_cgroup2_root(root, sizeof(root)));
	snprintf(c.parent, sizeof(c.parent), "%s/zmesh", root);
	if (mkdir(c.parent, 0755) == 0)
		c.made_parent = true;
	snprintf(c.dir, sizeof(c.dir), "%s/loadgen-ut-%d", c.parent, getpid());
	ASSERT_OK(mkdir(c.dir, 0755));
	test_defer(cg_cleanup, &c);
	c.pid = fork();
	ASSERT_GE(c.pid, 0);
	if (c.pid == 0) {
		burn(30);
		_exit(0);
	}
	snprintf(path, sizeof(path), "%s/cgroup.procs", c.dir);
	f = fopen(path, "w");
	ASSERT_OK_PTR(f);
	fprintf(f, "%d\n", c.pid);
	ASSERT_EQ(fclose(f), 0);
	usleep(400000);
	ASSERT_OK(zm_cgroup_procs_cpu_ns(c.dir, &cpu, &n));
	EXPECT_EQ(n, 1);
	EXPECT_GT(cpu, 0);
	ASSERT_OK(zm_cgroup_procs_rss_kib(c.dir, &rss, &n));
	EXPECT_EQ(n, 1);
	EXPECT_GT(rss, 0);
	ASSERT_OK(zm_cgroup_cpu_usage_ns(c.dir, &usage));
	EXPECT_GT(usage, 0);
	/* the two counters agree to within clock ticks and the read order */
	EXPECT_LE(cpu, usage + 50000000ull);
}
