// SPDX-License-Identifier: Apache-2.0
/* Process CPU and RSS from /proc and cgroup v2; see include/zmesh/proc_stats.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "zmesh/proc_stats.h"

/* Read a small /proc file whole; returns bytes read or a negative errno. */
static ssize_t read_small(const char *path, char *buf, size_t sz)
{
	ssize_t n, got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	while ((size_t)got < sz - 1) {
		n = read(fd, buf + got, sz - 1 - (size_t)got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			got = -errno;
			break;
		}
		if (n == 0)
			break;
		got += n;
	}
	close(fd);
	if (got >= 0)
		buf[got] = '\0';
	return got;
}

int zm_proc_cpu_ns(pid_t pid, uint64_t *ns)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	long tck = sysconf(_SC_CLK_TCK);
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	n = read_small(path, buf, sizeof(buf));
	if (n < 0)
		return n == -ENOENT ? -ESRCH : (int)n;
	/* comm may hold spaces and ')': the fields start after the last ')'. */
	p = strrchr(buf, ')');
	if (!p || tck <= 0)
		return -EINVAL;
	/* state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
	if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -EINVAL;
	*ns = (uint64_t)(ut + st) * (1000000000ull / (uint64_t)tck);
	return 0;
}

int zm_proc_rss_kib(pid_t pid, uint64_t *kib)
{
	char path[64], buf[4096], *p;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	n = read_small(path, buf, sizeof(buf));
	if (n < 0)
		return n == -ENOENT ? -ESRCH : (int)n;
	p = strstr(buf, "\nVmRSS:");
	if (!p) {
		*kib = 0;	/* kernel threads and zombies have no VmRSS line */
		return 0;
	}
	*kib = strtoull(p + 7, NULL, 10);
	return 0;
}

enum what { CPU, RSS };

static int cgroup_walk(const char *dir, enum what w, uint64_t *sum, unsigned int *npids, int depth)
{
	char path[PATH_MAX], line[32];
	struct dirent *de;
	FILE *f;
	DIR *d;
	int rc = 0;

	if (depth > 32)
		return -ELOOP;
	if (snprintf(path, sizeof(path), "%s/cgroup.procs", dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		uint64_t v;
		pid_t pid = (pid_t)atoi(line);
		int r;

		if (pid <= 0)
			continue;
		r = w == CPU ? zm_proc_cpu_ns(pid, &v) : zm_proc_rss_kib(pid, &v);
		if (r == -ESRCH)
			continue;	/* exited meanwhile */
		if (r < 0) {
			rc = r;
			break;
		}
		*sum += v;
		(*npids)++;
	}
	fclose(f);
	if (rc < 0)
		return rc;
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= (int)sizeof(path)) {
			rc = -ENAMETOOLONG;
			break;
		}
		rc = cgroup_walk(path, w, sum, npids, depth + 1);
		if (rc == -ENOENT)	/* child cgroup removed meanwhile */
			rc = 0;
		if (rc < 0)
			break;
	}
	closedir(d);
	return rc;
}

int zm_cgroup_procs_cpu_ns(const char *dir, uint64_t *ns, unsigned int *npids)
{
	unsigned int n = 0;
	uint64_t sum = 0;
	int rc = cgroup_walk(dir, CPU, &sum, &n, 0);

	if (rc < 0)
		return rc;
	*ns = sum;
	if (npids)
		*npids = n;
	return 0;
}

int zm_cgroup_procs_rss_kib(const char *dir, uint64_t *kib, unsigned int *npids)
{
	unsigned int n = 0;
	uint64_t sum = 0;
	int rc = cgroup_walk(dir, RSS, &sum, &n, 0);

	if (rc < 0)
		return rc;
	*kib = sum;
	if (npids)
		*npids = n;
	return 0;
}

int zm_cgroup_cpu_usage_ns(const char *dir, uint64_t *ns)
{
	char path[PATH_MAX], buf[2048], *p;
	ssize_t n;

	if (snprintf(path, sizeof(path), "%s/cpu.stat", dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	n = read_small(path, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	p = strstr(buf, "usage_usec ");
	if (!p || (p != buf && p[-1] != '\n'))
		return -EINVAL;
	*ns = strtoull(p + 11, NULL, 10) * 1000ull;
	return 0;
}

int zm_self_cpu_ns(uint64_t *ns)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru))
		return -errno;
	*ns = ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000ull +
	      ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000ull;
	return 0;
}
