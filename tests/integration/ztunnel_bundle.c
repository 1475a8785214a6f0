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
#include "labkit.h"

FIXTURE(bundle) {
	struct labkit k;
	char held[64];
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

FIXTURE_SETUP(bundle)
{
	static const struct lab_pod pods[] = {
		{ .name = "a", .ns = "mesh", .node = 1, .labels = "{app: a}" },
		{ .name = "b", .ns = "mesh", .node = 2, .labels = "{app: b}" },
	};

	REQUIRE_ROOT();
	lab_init(&self->k, "t", "tn");
	if (test_sh(NULL, 0, "test -x %s/zmeshd", test_build_dir()))
		SKIP("no zmeshd in this build");
	ASSERT_OK(lab_write(&self->k, LAB_NS_MESH, pods, 2));
	ASSERT_OK(lab_start_ready(&self->k, "ZMESH_WORKERS=1"));
}

FIXTURE_TEARDOWN(bundle)
{
	if (!self->k.lab[0])
		return;
	if (self->held[0])
		test_sh(NULL, 0, "touch %s.go; sleep 0.5; rm -f %s %s.go %s.out", self->held, self->held, self->held,
			self->held);
	lab_stop(&self->k);
}

/* One sample of node @node's /metrics (-1 when absent). */
static long long metric(struct zm_fixture_bundle *self, const char *node, const char *series)
{
	char out[256];

	if (test_sh(out, sizeof(out), "%s lab exec --node %s --name %s -- curl -s localhost:15020/metrics | "
		    "awk -v s='%s' '$1 == s {print $2}'", lab_ctl(), node, self->k.lab, series) || !out[0])
		return -1;
	return atoll(out);
}

static int a_to_b(struct zm_fixture_bundle *self)
{
	return test_sh(NULL, 0, "%s lab exec a -n mesh --name %s -- echoapp client http://10.244.1.2:8080/ -n 2 "
		       "--timeout 3000 | grep -q 'pod: b=2'", lab_ctl(), self->k.lab);
}

/* Wait until node @node's ztunnel logged "trust bundle changed" @n times. */
static int wait_bundles(struct zm_fixture_bundle *self, const char *node, int n)
{
	char out[64];

	for (int i = 0; i < 100; i++) {
		if (!test_sh(out, sizeof(out), "grep -c 'trust bundle changed' /run/zmesh/lab/%s/logs/ztunnel-%s.log",
			     self->k.lab, node) && atoi(out) >= n)
			return 0;
		usleep(100000);
	}
	return -1;
}

static int bundles_seen(struct zm_fixture_bundle *self, const char *node)
{
	char out[64] = "";

	test_sh(out, sizeof(out), "grep -c 'trust bundle changed' /run/zmesh/lab/%s/logs/ztunnel-%s.log",
		self->k.lab, node);
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
	snprintf(self->held, sizeof(self->held), "/tmp/zm-bundle-%s", self->k.lab);
	f = fopen(self->held, "w");
	ASSERT_OK_PTR(f);
	fputs(held_py, f);
	fclose(f);
	ASSERT_EQ(test_sh(NULL, 0, "%s lab exec a -n mesh --name %s -- sh -c 'python3 %s %s >%s.out 2>&1 &'",
			  lab_ctl(), self->k.lab, self->held, self->held, self->held), 0);
	for (int i = 0; i < 100 && test_sh(NULL, 0, "grep -q 'first one-marker' %s.out", self->held); i++)
		usleep(100000);
	ASSERT_EQ(test_sh(out, sizeof(out), "cat %s.out", self->held), 0);
	ASSERT_STRSTR(out, "first one-marker");
	ASSERT_EQ(metric(self, self->k.n1, "zmesh_ztunnel_hbone_connections{role=\"client\"}"), 1);
	/* Step 1: a second root is trusted (it signs nothing yet). Both peers
	 * still verify: the pooled connection stays and carries new streams. */
	seen1 = bundles_seen(self, self->k.n1);
	seen2 = bundles_seen(self, self->k.n2);
	ASSERT_EQ(test_sh(NULL, 0, "%s ca prepare --name %s", lab_ctl(), self->k.lab), 0);
	ASSERT_OK(wait_bundles(self, self->k.n1, seen1 + 1));
	ASSERT_OK(wait_bundles(self, self->k.n2, seen2 + 1));
	ASSERT_OK(a_to_b(self));
	EXPECT_EQ(metric(self, self->k.n1, "zmesh_ztunnel_hbone_bundle_drained_total"), 0);
	EXPECT_EQ(metric(self, self->k.n1, "zmesh_ztunnel_hbone_connections{role=\"client\"}"), 1);
	/* Steps 2 and 3: the new root signs, the old one is retired before any
	 * certificate was renewed (24 h TTL): neither peer verifies any more. */
	ASSERT_EQ(test_sh(NULL, 0, "%s ca activate --name %s && sleep 1.5 && %s ca retire --name %s", lab_ctl(),
			  self->k.lab, lab_ctl(), self->k.lab), 0);
	/* Both ends drain their side (the push comes within zmeshd's 1 s check). */
	for (int i = 0; i < 100 && (metric(self, self->k.n1, "zmesh_ztunnel_hbone_bundle_drained_total") < 1 ||
				    metric(self, self->k.n2, "zmesh_ztunnel_hbone_bundle_drained_total") < 1); i++)
		usleep(100000);
	EXPECT_GE(metric(self, self->k.n1, "zmesh_ztunnel_hbone_bundle_drained_total"), 1);
	EXPECT_GE(metric(self, self->k.n2, "zmesh_ztunnel_hbone_bundle_drained_total"), 1);
	EXPECT_EQ(test_sh(NULL, 0, "grep -q 'unable to get local issuer certificate: drained' "
			  "/run/zmesh/lab/%s/logs/ztunnel-%s.log", self->k.lab, self->k.n1), 0);
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
	for (int i = 0; i < 100 && metric(self, self->k.n1, "zmesh_ztunnel_hbone_connections{role=\"client\"}"); i++)
		usleep(100000);
	EXPECT_EQ(metric(self, self->k.n1, "zmesh_ztunnel_hbone_connections{role=\"client\"}"), 0);
}
