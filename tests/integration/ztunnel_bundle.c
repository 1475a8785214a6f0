// SPDX-License-Identifier: Apache-2.0
/*
 * Trust bundle rotation and pooled HBONE connections (SECURITY.md: pooled
 * connections once skipped revocation, istio/istio#59714): when zmeshd
 * pushes a bundle, a pooled connection whose peer still verifies stays in
 * use; one whose peer no longer does takes no new stream, so the next
 * stream re-handshakes against the new bundle (and here fails closed: the
 * peer's certificate is from the retired root).
 * One worker (ZMESH_WORKERS=1): the pool, and so the counts, are per worker.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness/test.h"

FIXTURE(bundle) {
	char lab[16], n1[32], n2[32], file[64], ctl[4200], held[64];
};

/* A connection from a to b's echo port held across the rotation: one line
 * before, one after "<held>.go" appears. */
static const char held_py[] =
	"import os, socket, sys, time\n"
	"s = socket.create_connection(('10.244.1.2', 9000), timeout=60)\n"
	"def echo(w):\n"
	"    s.sendall(w + b'\\n'); r = b''\n"
	"    while not r.endswith(w + b'\\n'): r += s.recv(4096)\n"
	"    return w.decode()\n"
	"print('first', echo(b'one-marker'), flush=True)\n"
	"while not os.path.exists(sys.argv[1] + '.go'): time.sleep(0.1)\n"
	"print('second', echo(b'two-marker'), flush=True)\n";

static int wait_ready(struct zm_fixture_bundle *self, const char *node)
{
	for (int i = 0; i < 150; i++) {
		if (test_sh(NULL, 0, "%s lab exec --node %s --name %s -- curl -sf localhost:15021/healthz/ready",
			    self->ctl, node, self->lab) == 0)
			return 0;
		usleep(100000);
	}
	return -1;
}

FIXTURE_SETUP(bundle)
{
	FILE *f;
	int pid = getpid() % 100000;

	REQUIRE_ROOT();
	snprintf(self->lab, sizeof(self->lab), "t%d", pid);
	snprintf(self->n1, sizeof(self->n1), "tn1-%d", pid);
	snprintf(self->n2, sizeof(self->n2), "tn2-%d", pid);
	snprintf(self->file, sizeof(self->file), "/tmp/zm-bundle-%s.yaml", self->lab);
	snprintf(self->ctl, sizeof(self->ctl), "%s/zmeshctl", test_build_dir());
	if (test_sh(NULL, 0, "test -x %s/zmeshd", test_build_dir()))
		SKIP("no zmeshd in this build");
	f = fopen(self->file, "w");
	ASSERT_OK_PTR(f);
	fprintf(f, "apiVersion: v1\nkind: Node\nmetadata: {name: %s}\n---\n"
		"apiVersion: v1\nkind: Node\nmetadata: {name: %s}\n---\n"
		"apiVersion: v1\nkind: Namespace\nmetadata: {name: mesh, labels: {istio.io/dataplane-mode: ambient}}\n",
		self->n1, self->n2);
	for (int i = 0; i < 2; i++)
		fprintf(f, "---\napiVersion: v1\nkind: Pod\nmetadata: {name: %s, namespace: mesh, labels: {app: %s}}\n"
			"spec:\n  nodeName: %s\n  containers:\n  - name: c\n"
			"    command: [echoapp, serve, --http, \"8080\", --tcp, \"9000\"]\n",
			i ? "b" : "a", i ? "b" : "a", i ? self->n2 : self->n1);
	fclose(f);
	ASSERT_EQ(test_sh(NULL, 0, "ZMESH_WORKERS=1 %s lab up -f %s --name %s", self->ctl, self->file, self->lab), 0);
	ASSERT_OK(wait_ready(self, self->n1));
	ASSERT_OK(wait_ready(self, self->n2));
}

FIXTURE_TEARDOWN(bundle)
{
	if (!self->lab[0])
		return;
	if (self->held[0])
		test_sh(NULL, 0, "touch %s.go; sleep 0.5; rm -f %s %s.go %s.out", self->held, self->held, self->held,
			self->held);
	test_sh(NULL, 0, "%s lab down --name %s", self->ctl, self->lab);
	unlink(self->file);
}

/* One sample of node @node's /metrics (-1 when absent). */
static long long metric(struct zm_fixture_bundle *self, const char *node, const char *series)
{
	char out[256];

	if (test_sh(out, sizeof(out), "%s lab exec --node %s --name %s -- curl -s localhost:15020/metrics | "
		    "awk -v s='%s' '$1 == s {print $2}'", self->ctl, node, self->lab, series) || !out[0])
		return -1;
	return atoll(out);
}

static int a_to_b(struct zm_fixture_bundle *self)
{
	return test_sh(NULL, 0, "%s lab exec a -n mesh --name %s -- echoapp client http://10.244.1.2:8080/ -n 2 "
		       "--timeout 3000 | grep -q 'pod: b=2'", self->ctl, self->lab);
}

/* Wait until node @node's ztunnel logged "trust bundle changed" @n times. */
static int wait_bundles(struct zm_fixture_bundle *self, const char *node, int n)
{
	char out[64];

	for (int i = 0; i < 100; i++) {
		if (!test_sh(out, sizeof(out), "grep -c 'trust bundle changed' /run/zmesh/lab/%s/logs/ztunnel-%s.log",
			     self->lab, node) && atoi(out) >= n)
			return 0;
		usleep(100000);
	}
	return -1;
}

static int bundles_seen(struct zm_fixture_bundle *self, const char *node)
{
	char out[64] = "";

	test_sh(out, sizeof(out), "grep -c 'trust bundle changed' /run/zmesh/lab/%s/logs/ztunnel-%s.log",
		self->lab, node);
	return atoi(out);
}

TEST_F(bundle, rotation_drains_pooled_connections_the_new_bundle_does_not_trust)
{
	char out[4096];
	int seen1, seen2;
	FILE *f;

	/* A pooled connection from a's ztunnel to b's, with a stream held open on it. */
	for (int i = 0; i < 30 && a_to_b(self); i++)
		usleep(200000);
	ASSERT_OK(a_to_b(self));
	snprintf(self->held, sizeof(self->held), "/tmp/zm-bundle-%s", self->lab);
	f = fopen(self->held, "w");
	ASSERT_OK_PTR(f);
	fputs(held_py, f);
	fclose(f);
	ASSERT_EQ(test_sh(NULL, 0, "%s lab exec a -n mesh --name %s -- sh -c 'python3 %s %s >%s.out 2>&1 &'",
			  self->ctl, self->lab, self->held, self->held, self->held), 0);
	for (int i = 0; i < 100 && test_sh(NULL, 0, "grep -q 'first one-marker' %s.out", self->held); i++)
		usleep(100000);
	ASSERT_EQ(test_sh(out, sizeof(out), "cat %s.out", self->held), 0);
	ASSERT_STRSTR(out, "first one-marker");
	ASSERT_EQ(metric(self, self->n1, "zmesh_ztunnel_hbone_connections{role=\"client\"}"), 1);
	/* Step 1: a second root is trusted (it signs nothing yet). Both peers
	 * still verify: the pooled connection stays and carries new streams. */
	seen1 = bundles_seen(self, self->n1);
	seen2 = bundles_seen(self, self->n2);
	ASSERT_EQ(test_sh(NULL, 0, "%s ca prepare --name %s", self->ctl, self->lab), 0);
	ASSERT_OK(wait_bundles(self, self->n1, seen1 + 1));
	ASSERT_OK(wait_bundles(self, self->n2, seen2 + 1));
	ASSERT_OK(a_to_b(self));
	EXPECT_EQ(metric(self, self->n1, "zmesh_ztunnel_hbone_bundle_drained_total"), 0);
	EXPECT_EQ(metric(self, self->n1, "zmesh_ztunnel_hbone_connections{role=\"client\"}"), 1);
	/* Steps 2 and 3: the new root signs, the old one is retired before any
	 * certificate was renewed (24 h TTL): neither peer verifies any more. */
	ASSERT_EQ(test_sh(NULL, 0, "%s ca activate --name %s && sleep 1.5 && %s ca retire --name %s", self->ctl,
			  self->lab, self->ctl, self->lab), 0);
	/* Both ends drain their side (the push comes within zmeshd's 1 s check). */
	for (int i = 0; i < 100 && (metric(self, self->n1, "zmesh_ztunnel_hbone_bundle_drained_total") < 1 ||
				    metric(self, self->n2, "zmesh_ztunnel_hbone_bundle_drained_total") < 1); i++)
		usleep(100000);
	EXPECT_GE(metric(self, self->n1, "zmesh_ztunnel_hbone_bundle_drained_total"), 1);
	EXPECT_GE(metric(self, self->n2, "zmesh_ztunnel_hbone_bundle_drained_total"), 1);
	EXPECT_EQ(test_sh(NULL, 0, "grep -q 'unable to get local issuer certificate: drained' "
			  "/run/zmesh/lab/%s/logs/ztunnel-%s.log", self->lab, self->n1), 0);
	/* A new stream does not ride the drained connection: it re-handshakes,
	 * and b's certificate (old root) no longer verifies: refused. */
	EXPECT_NE(a_to_b(self), 0);
	/* The stream that was live all along finishes normally... */
	ASSERT_EQ(test_sh(NULL, 0, "touch %s.go", self->held), 0);
	for (int i = 0; i < 100 && test_sh(NULL, 0, "grep -q 'second' %s.out", self->held); i++)
		usleep(100000);
	ASSERT_EQ(test_sh(out, sizeof(out), "cat %s.out", self->held), 0);
	EXPECT_STRSTR(out, "second two-marker");
	/* ...and then its drained connection closes. */
	for (int i = 0; i < 100 && metric(self, self->n1, "zmesh_ztunnel_hbone_connections{role=\"client\"}"); i++)
		usleep(100000);
	EXPECT_EQ(metric(self, self->n1, "zmesh_ztunnel_hbone_connections{role=\"client\"}"), 0);
}
