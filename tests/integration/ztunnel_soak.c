// SPDX-License-Identifier: Apache-2.0
/*
 * ztunnel over many connections (issue 4, "no fd or memory growth over a
 * long run"): rounds of new connections (closed with FIN and with RST),
 * kept ones and bulk echoes, across nodes and on one node; once the pools
 * went idle again, both ztunnels hold exactly the descriptors they held
 * after the first round, and their memory has not kept growing. Counts and
 * sizes, not timings: the machine's speed only changes how many
 * connections a round makes. Every round must also be free of errors (a
 * client closing with RST once cost pooled siblings their streams).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>

#include "../harness/test.h"
#include "labkit.h"

#define FAR "10.244.1.2"	/* b, the only pod on the second node */
#define NEAR "10.244.0.3"	/* b2, the second pod on the first node */

FIXTURE(soak) {
	char lab[16], n1[32], n2[32], file[64];
};

FIXTURE_SETUP(soak)
{
	FILE *f;
	int pid = getpid() % 100000;

	REQUIRE_ROOT();
	snprintf(self->lab, sizeof(self->lab), "sk%d", pid);
	snprintf(self->n1, sizeof(self->n1), "sn1-%d", pid);
	snprintf(self->n2, sizeof(self->n2), "sn2-%d", pid);
	snprintf(self->file, sizeof(self->file), "/tmp/zm-soak-%s.yaml", self->lab);
	f = fopen(self->file, "w");
	ASSERT_OK_PTR(f);
	fprintf(f, "apiVersion: v1\nkind: Node\nmetadata: {name: %s}\n---\n"
		"apiVersion: v1\nkind: Node\nmetadata: {name: %s}\n---\n"
		"apiVersion: v1\nkind: Namespace\nmetadata: {name: mesh, labels: {istio.io/dataplane-mode: ambient}}\n",
		self->n1, self->n2);
	static const struct { const char *name; int node; } pods[] = { { "a", 1 }, { "b", 2 }, { "b2", 1 } };
	for (size_t i = 0; i < 3; i++)
		fprintf(f, "---\napiVersion: v1\nkind: Pod\nmetadata: {name: %s, namespace: mesh}\n"
			"spec:\n  nodeName: %s\n  containers:\n  - name: c\n"
			"    command: [echoapp, serve, --http, \"8080\", --tcp, \"9000\"]\n",
			pods[i].name, pods[i].node == 1 ? self->n1 : self->n2);
	fclose(f);
	/* Idle tunnels close after 1 s, so "idle" is reached within the test. */
	ASSERT_EQ(test_sh(NULL, 0, "ZMESH_POOL_IDLE=1s %s lab up -f %s --name %s", lab_ctl(), self->file,
			  self->lab), 0);
	ASSERT_OK(lab_wait_ready(self->lab, self->n1));
	ASSERT_OK(lab_wait_ready(self->lab, self->n2));
}

FIXTURE_TEARDOWN(soak)
{
	if (!self->lab[0])
		return;
	test_sh(NULL, 0, "%s lab down --name %s", lab_ctl(), self->lab);
	unlink(self->file);
}

static int nfds(int pid)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static long rss_kib(int pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmRSS:", 6))
			kib = atol(line + 6);
	fclose(f);
	return kib;
}

/* Until no HBONE connection and no captured connection is open on either
 * node (the 1 s pool idle time, then the close), 15 s at most. */
static bool settle(struct zm_fixture_soak *self)
{
	static char out[65536];

	for (int i = 0; i < 150; i++) {
		long long open = 0;

		for (int k = 0; k < 2; k++) {
			lab_metrics(self->lab, k ? self->n2 : self->n1, out, sizeof(out));
			open += lab_metric(out, "zmesh_ztunnel_hbone_connections{role=\"client\"} ") +
				lab_metric(out, "zmesh_ztunnel_hbone_connections{role=\"server\"} ");
		}
		if (open == 0)
			return true;
		usleep(100000);
	}
	return false;
}

/* One round: every kind of connection, to a pod on the other node and to
 * one on this node. Returns the requests that failed. */
static long round_of_traffic(struct zm_fixture_soak *self)
{
	static const char *const kinds[] = {
		"--proto tcp-connect --size 1024 --conns 8",
		"--proto tcp-connect --size 1024 --conns 8 --linger0",
		"--proto tcp-rr --size 4096 --conns 16",
		"--proto bulk --conns 2",
	};
	static char out[8192];
	long errors = 0;

	for (int t = 0; t < 2; t++)
		for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
			char cmd[512];
			const char *p;

			snprintf(cmd, sizeof(cmd), "loadgen --target %s:9000 %s --duration 1 --warmup 0 -o json",
				 t ? NEAR : FAR, kinds[k]);
			if (lab_in_pod(self->lab, "a", "mesh", out, sizeof(out), cmd)) {
				test_log("%s: %s", cmd, out);
				errors++;
				continue;
			}
			p = strstr(out, "\"errors\":");
			errors += p ? atol(p + 9) : 1;
		}
	return errors;
}

TEST_F(soak, no_descriptor_or_memory_growth_over_many_connections)
{
	int pid[2] = { lab_ztunnel_pid(self->lab, self->n1), lab_ztunnel_pid(self->lab, self->n2) };
	int fds0[2], fds1[2];
	long rss0[2], rss1[2];

	ASSERT_GT(pid[0], 0);
	ASSERT_GT(pid[1], 0);
	/* The first round brings every lazily made thing into being (the
	 * certificates' contexts, the allocator's arenas, the workers' rings). */
	EXPECT_EQ(round_of_traffic(self), 0);
	ASSERT_TRUE(settle(self));
	for (int k = 0; k < 2; k++) {
		fds0[k] = nfds(pid[k]);
		rss0[k] = rss_kib(pid[k]);
	}
	for (int r = 0; r < 4; r++) {
		EXPECT_EQ(round_of_traffic(self), 0);
		settle(self);
		test_log("round %d: RSS %ld, %ld KiB; fds %d, %d", r, rss_kib(pid[0]), rss_kib(pid[1]), nfds(pid[0]), nfds(pid[1]));
	}
	ASSERT_TRUE(settle(self));
	for (int k = 0; k < 2; k++) {
		fds1[k] = nfds(pid[k]);
		rss1[k] = rss_kib(pid[k]);
		test_log("ztunnel %d: fds %d -> %d, RSS %ld -> %ld KiB", k + 1, fds0[k], fds1[k], rss0[k], rss1[k]);
		EXPECT_EQ(fds1[k], fds0[k]);
		/* ztunnel trims the heap when idle (main.c); a leak of a few
		 * hundred bytes per connection would be tens of MiB here. */
		EXPECT_LT(rss1[k] - rss0[k], 8 * 1024);
	}
}
