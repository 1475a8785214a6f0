// SPDX-License-Identifier: Apache-2.0
/* The lab end to end: real namespaces, veths, cgroups, processes. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../harness/test.h"
#include "labkit.h"

static const char cluster[] =
	"apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n---\n"
	"apiVersion: v1\nkind: Node\nmetadata: {name: n2}\n---\n"
	"apiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n---\n"
	"apiVersion: v1\nkind: Pod\nmetadata: {name: a, labels: {app: web, version: v1}}\n"
	"spec:\n  nodeName: n1\n  containers:\n  - name: c\n"
	"    command: [echoapp, serve, --http, \"8080\", --tcp, \"9000\"]\n---\n"
	"apiVersion: v1\nkind: Pod\nmetadata: {name: b, labels: {app: web, version: v2}}\n"
	"spec:\n  nodeName: n2\n  containers:\n  - name: c\n"
	"    command: [echoapp, serve, --http, \"8080\", --tcp, \"9000\"]\n---\n"
	"apiVersion: v1\nkind: Pod\nmetadata: {name: c, namespace: other}\n"
	"spec:\n  nodeName: n1\n  containers:\n  - name: c\n    command: [sleep, \"3600\"]\n---\n"
	"apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
	"spec:\n  selector: {app: web}\n  ports:\n  - {name: http, port: 80, targetPort: 8080}\n"
	"  - {name: tcp, port: 9000}\n";

FIXTURE(lab) {
	struct labkit k;
};

FIXTURE_SETUP(lab)
{
	REQUIRE_ROOT();
	lab_init(&self->k, "t", NULL);
	ASSERT_OK(test_write_file(self->k.file, cluster));
}

FIXTURE_TEARDOWN(lab)
{
	lab_stop(&self->k);
}

/* Nothing of lab @name is left: namespaces, /etc/netns, cgroups, state. */
static void expect_gone(const char *name)
{
	char out[4096];

	test_sh(out, sizeof(out), "ls /run/netns /etc/netns 2>/dev/null | grep -c '^zm-%s-'; "
		"ls -d /sys/fs/cgroup/unified/zmesh/%s /run/zmesh/lab/%s 2>/dev/null | wc -l",
		name, name, name);
	EXPECT_STREQ(out, "0\n0\n");
}

/* Poll until @cmd succeeds (servers take a moment to start). */
static int eventually(const char *cmd, char *out, size_t sz)
{
	int rc = -1;

	for (int i = 0; i < 50 && rc != 0; i++) {
		rc = test_sh(out, sz, "%s", cmd);
		if (rc)
			usleep(100000);
	}
	return rc;
}

TEST_F(lab, up_exec_status_down)
{
	char out[8192], cmd[8192];

	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab up -f %s --name %s", lab_ctl(), self->k.file,
			  self->k.lab), 0);
	EXPECT_STRSTR(out, "2 nodes, 3 pods, 1 services");
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab status --name %s", lab_ctl(), self->k.lab), 0);
	EXPECT_STRSTR(out, "10.244.0.2      Running");
	EXPECT_STRSTR(out, "10.244.1.2      Running");
	EXPECT_STRSTR(out, "10.96.0.10");

	/* Cross-node pod to pod, without the mesh. */
	snprintf(cmd, sizeof(cmd), "%s lab exec a --name %s -- echoapp client http://10.244.1.2:8080/ -n 3",
		 lab_ctl(), self->k.lab);
	ASSERT_EQ(eventually(cmd, out, sizeof(out)), 0);
	EXPECT_STRSTR(out, "pod: b=3");
	/* The answer saw the client's pod IP: no NAT between pods. */
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab exec a --name %s -- curl -s http://10.244.1.2:8080/",
			  lab_ctl(), self->k.lab), 0);
	EXPECT_STRSTR(out, "\"peer\":\"10.244.0.2:");

	/* The ClusterIP by name, from a pod and from another namespace. */
	snprintf(cmd, sizeof(cmd), "%s lab exec b --name %s -- echoapp client http://web:80/ -n 60 -c 3",
		 lab_ctl(), self->k.lab);
	ASSERT_EQ(eventually(cmd, out, sizeof(out)), 0);
	EXPECT_STRSTR(out, "requests 60, ok 60, errors 0");
	/* A new connection per request: over 40 of them both endpoints answer
	 * (all on one has odds of 2^-39). */
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab exec b --name %s -- echoapp client tcp://web:9000 -n 40",
			  lab_ctl(), self->k.lab), 0);
	EXPECT_STRSTR(out, "a=");
	EXPECT_STRSTR(out, "b=");
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab exec c -n other --name %s -- sh -c "
			  "'getent hosts web.default.svc.cluster.local; getent hosts web.default; "
			  "getent hosts web || echo no-short-name'", lab_ctl(), self->k.lab), 0);
	EXPECT_STRSTR(out, "10.96.0.10      web.default.svc.cluster.local");
	EXPECT_STRSTR(out, "no-short-name");
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab exec c -n other --name %s -- %s/echoapp client "
			  "tcp://web.default:9000 -n 4", lab_ctl(), self->k.lab, test_build_dir()), 0);
	EXPECT_STRSTR(out, "requests 4, ok 4");
	/* From a node, as kube-proxy serves node traffic too. */
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab exec --node n2 --name %s -- curl -s -o /dev/null "
			  "-w '%%{http_code}' http://10.96.0.10:80/", lab_ctl(), self->k.lab), 0);
	EXPECT_STREQ(out, "200");
	/* exec runs in the pod's cgroup and keeps the command's exit status. */
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab exec a --name %s -- cat /proc/self/cgroup",
			  lab_ctl(), self->k.lab), 0);
	EXPECT_STRSTR(out, "/zmesh/");
	EXPECT_STRSTR(out, "/pods/default_a");
	EXPECT_EQ(test_sh(NULL, 0, "%s lab exec a --name %s -- sh -c 'exit 7'", lab_ctl(),
			  self->k.lab), 7);
	/* Pod logs are kept. */
	EXPECT_EQ(test_sh(out, sizeof(out), "grep -c serving /run/zmesh/lab/%s/logs/default_a.log",
			  self->k.lab), 0);

	/* The pods' processes, by pid, from the state. */
	char pids[1024];
	ASSERT_EQ(test_sh(pids, sizeof(pids), "%s lab status --name %s -o json | python3 -c "
			  "\"import json,sys; print(' '.join(str(p) for pod in json.load(sys.stdin)['pods'] "
			  "for p in pod['pids']))\"", lab_ctl(), self->k.lab), 0);
	pids[strcspn(pids, "\n")] = 0;
	test_log("pod pids: %s", pids);
	EXPECT_GT(strlen(pids), 4);
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab down --name %s", lab_ctl(), self->k.lab), 0);
	expect_gone(self->k.lab);
	/* No process left (zombies waiting for init to reap them do not count). */
	EXPECT_EQ(test_sh(out, sizeof(out), "for p in %s; do ps -o stat= -p $p | grep -v Z; done | wc -l",
			  pids), 0);
	EXPECT_STREQ(out, "0\n");
	/* A second down is fine. */
	EXPECT_EQ(test_sh(NULL, 0, "%s lab down --name %s", lab_ctl(), self->k.lab), 0);
}

TEST_F(lab, labels_change_live)
{
	char out[8192];

	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab up -f %s --name %s", lab_ctl(), self->k.file,
			  self->k.lab), 0);
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab label namespace other istio.io/dataplane-mode=ambient "
			  "--name %s && %s lab label pod a version- --name %s && %s lab status --name %s -o json",
			  lab_ctl(), self->k.lab, lab_ctl(), self->k.lab, lab_ctl(), self->k.lab), 0);
	EXPECT_STRSTR(out, "\"istio.io/dataplane-mode\": \"ambient\"");
	EXPECT_FALSE(strstr(out, "\"version\": \"v1\""));
	EXPECT_STRSTR(out, "\"version\": \"v2\"");
	EXPECT_NE(test_sh(out, sizeof(out), "%s lab label pod nosuch x=y --name %s", lab_ctl(),
			  self->k.lab), 0);
	EXPECT_STRSTR(out, "no pod nosuch");
}

TEST_F(lab, bad_manifest_builds_nothing)
{
	char out[4096], bad[96];
	FILE *f;

	snprintf(bad, sizeof(bad), "%s.bad", self->k.file);
	f = fopen(bad, "w");
	ASSERT_OK_PTR(f);
	fputs(cluster, f);
	fputs("---\napiVersion: v1\nkind: Pod\nmetadata: {name: z}\nspec:\n  nodeName: n9\n"
	      "  containers:\n  - {name: c, command: [sleep, \"1\"]}\n", f);
	fclose(f);
	EXPECT_EQ(test_sh(out, sizeof(out), "%s lab up -f %s --name %s", lab_ctl(), bad, self->k.lab), 1);
	EXPECT_STRSTR(out, ".bad:53:13: spec.nodeName: no Node \"n9\"");
	unlink(bad);
	expect_gone(self->k.lab);
	/* An unknown lab: status says so. */
	EXPECT_EQ(test_sh(out, sizeof(out), "%s lab status --name %s", lab_ctl(), self->k.lab), 1);
	EXPECT_STRSTR(out, "is not up");
}

TEST_F(lab, down_after_a_crash_mid_up)
{
	char out[4096];

	char big[96];
	FILE *f;

	/* Kill `lab up` part way through a cluster big enough to take a
	 * while, and check that `down` finds and removes what it had made. */
	snprintf(big, sizeof(big), "%s.big", self->k.file);
	f = fopen(big, "w");
	ASSERT_OK_PTR(f);
	fputs(cluster, f);
	for (int i = 0; i < 80; i++)
		fprintf(f, "---\napiVersion: v1\nkind: Pod\nmetadata: {name: p%d}\nspec:\n  nodeName: n%d\n"
			"  containers:\n  - {name: c, command: [sleep, \"3600\"]}\n", i, 1 + i % 2);
	fclose(f);
	test_sh(out, sizeof(out), "%s lab up -f %s --name %s >/dev/null 2>&1 & p=$!; sleep 0.1; "
		"kill -9 $p; wait $p; ls /run/netns | grep -c zm-%s-", lab_ctl(), big, self->k.lab,
		self->k.lab);
	unlink(big);
	test_log("namespaces made before the kill: %s", out);
	EXPECT_EQ(test_sh(out, sizeof(out), "%s lab down --name %s", lab_ctl(), self->k.lab), 0);
	expect_gone(self->k.lab);
	/* And the lab can come up again afterwards. */
	EXPECT_EQ(test_sh(out, sizeof(out), "%s lab up -f %s --name %s", lab_ctl(), self->k.file,
			  self->k.lab), 0);
	EXPECT_EQ(test_sh(out, sizeof(out), "%s lab up -f %s --name %s", lab_ctl(), self->k.file,
			  self->k.lab), 1);
	EXPECT_STRSTR(out, "already up");
}
