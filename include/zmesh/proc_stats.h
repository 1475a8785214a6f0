/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CPU time and memory of processes, from the kernel's own accounting, for
 * benchmarks (CPU-seconds per 10k requests, proxy RSS).
 *
 * CPU time is utime + stime from /proc/<pid>/stat: every thread of the
 * process, not its waited-for children; clock-tick resolution (usually
 * 10 ms), so sample over seconds, not milliseconds. A cgroup's figure sums
 * that over every process listed in cgroup.procs of the directory and of its
 * descendants (processes that exited during the window are missed: use
 * zm_cgroup_cpu_usage_ns() for that). All functions return 0 or a negative
 * errno (-ENOENT/-ESRCH for a process that is gone).
 */
#ifndef ZMESH_PROC_STATS_H
#define ZMESH_PROC_STATS_H

#include <stdint.h>
#include <sys/types.h>

/* utime + stime of process @pid in nanoseconds. */
int zm_proc_cpu_ns(pid_t pid, uint64_t *ns);

/* Resident set size (VmRSS) of @pid in KiB; 0 for kernel threads. */
int zm_proc_rss_kib(pid_t pid, uint64_t *kib);

/*
 * Sum of zm_proc_cpu_ns() / zm_proc_rss_kib() over the processes of the
 * cgroup v2 directory @dir (e.g. /sys/fs/cgroup/unified/zmesh/x) and its
 * descendants. Processes that vanish while being read are skipped. @npids
 * (may be NULL) gets how many were counted.
 */
int zm_cgroup_procs_cpu_ns(const char *dir, uint64_t *ns, unsigned int *npids);
int zm_cgroup_procs_rss_kib(const char *dir, uint64_t *kib, unsigned int *npids);

/*
 * The cgroup's own CPU counter (usage_usec of cpu.stat, always present on
 * cgroup v2), in nanoseconds: includes processes that already exited.
 */
int zm_cgroup_cpu_usage_ns(const char *dir, uint64_t *ns);

/* CPU time (user + system) of the calling process, all threads, in ns. */
int zm_self_cpu_ns(uint64_t *ns);

#endif /* ZMESH_PROC_STATS_H */
