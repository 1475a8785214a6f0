// SPDX-License-Identifier: Apache-2.0
/*
 * PeerAuthentication and L4 AuthorizationPolicy enforced by ztunnel in the
 * lab, applied the way a user does: `zmeshctl apply -f` into the lab's store.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../harness/test.h"
#include "labkit.h"

FIXTURE(pol) {
	struct labkit k;
};

FIXTURE_SETUP(pol)
{
	/* a (frontend) and a2 (default) call b on the other node and b2 on theirs. */
	static const struct lab_pod pods[] = {
		{ .name = "a", .ns = "mesh", .node = 1, .labels = "{app: a}", .sa = "frontend" },
		{ .name = "a2", .ns = "mesh", .node = 1, .labels = "{app: a2}", .sa = "default" },
		{ .name = "b", .ns = "mesh", .node = 2, .labels = "{app: b}", .sa = "default" },
		{ .name = "b2", .ns = "mesh", .node = 1, .labels = "{app: b}", .sa = "default" },
		{ .name = "c", .ns = "plain", .node = 1, .labels = "{app: c}", .sa = "default" },
	};

	REQUIRE_ROOT();
	lab_init(&self->k, "p", "pn");
	ASSERT_OK(lab_write(&self->k, LAB_NS_MESH LAB_DOC LAB_NS_PLAIN LAB_DOC
			    "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: frontend, namespace: mesh}\n",
			    pods, sizeof(pods) / sizeof(pods[0])));
	ASSERT_OK(lab_start_ready(&self->k, NULL));
}

FIXTURE_TEARDOWN(pol)
{
	lab_stop(&self->k);
}

/* One TCP echo from @pod to @ip:@port: true when it came back. */
static bool reaches(struct zm_fixture_pol *self, const char *pod, const char *ns, const char *ip, int port)
{
	char out[4096];

	return test_sh(out, sizeof(out), "%s lab exec %s -n %s --name %s -- echoapp client tcp://%s:%d "
		       "-n 1 --timeout 1500", lab_ctl(), pod, ns, self->k.lab, ip, port) == 0;
}

/* Config reaches ztunnel within a second or so: wait for the outcome. */
static bool eventually(struct zm_fixture_pol *self, const char *pod, const char *ns, const char *ip, int port,
		       bool want)
{
	time_t end = time(NULL) + 10;

	do {
		if (reaches(self, pod, ns, ip, port) == want)
			return true;
		usleep(200000);
	} while (time(NULL) < end);
	return false;
}

#define B "10.244.1.2"
#define B2 "10.244.0.4"

TEST_F(pol, strict_refuses_plaintext_permissive_accepts)
{
	static char page[65536];
	char out[8192];

	/* Nothing applied: PERMISSIVE, the plain pod reaches the meshed one. */
	EXPECT_TRUE(eventually(self, "c", "plain", B, 9000, true));
	ASSERT_EQ(lab_kubectl(self->k.lab, "apply", "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
			  "metadata: {name: default, namespace: istio-system}\nspec:\n  mtls: {mode: STRICT}\n"), 0);
	EXPECT_TRUE(eventually(self, "c", "plain", B, 9000, false));
	EXPECT_TRUE(reaches(self, "a", "mesh", B, 9000));	/* HBONE is mTLS */
	/* It came over zmeshd's stream, and both ztunnels ACKed that version. */
	ASSERT_EQ(test_sh(out, sizeof(out), "%s proxy-status --name %s", lab_ctl(), self->k.lab), 0);
	EXPECT_STRSTR(out, "ztunnel~pn1-");
	EXPECT_STRSTR(out, "ztunnel~pn2-");
	EXPECT_FALSE(strstr(out, "STALE"));
	EXPECT_FALSE(strstr(out, "NACK"));
	/* The BPF side knows too: plaintext SYNs are dropped on the veth. */
	ASSERT_EQ(test_sh(out, sizeof(out), "%s bpf status --name %s --node %s -o json", lab_ctl(), self->k.lab,
			  self->k.n2), 0);
	EXPECT_FALSE(strstr(out, "\"strict_drops\": 0,"));
	/* A workload policy with a port exception: PERMISSIVE on 9000 only. */
	ASSERT_EQ(lab_kubectl(self->k.lab, "apply", "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
			  "metadata: {name: b, namespace: mesh}\nspec:\n  selector: {matchLabels: {app: b}}\n"
			  "  mtls: {mode: STRICT}\n  portLevelMtls:\n    \"9000\": {mode: PERMISSIVE}\n"), 0);
	EXPECT_TRUE(eventually(self, "c", "plain", B, 9000, true));
	EXPECT_FALSE(reaches(self, "c", "plain", B, 8080));
	lab_metrics(self->k.lab, self->k.n2, page, sizeof(page));
	EXPECT_GT(lab_metric(page, "zmesh_ztunnel_denied_total{reason=\"mtls_strict\"} "), 0);
}

TEST_F(pol, allow_and_deny_by_principal_namespace_and_port)
{
	static char page[65536];
	char out[65536];

	EXPECT_TRUE(eventually(self, "a2", "mesh", B, 9000, true));
	ASSERT_EQ(lab_kubectl(self->k.lab, "apply", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
			  "metadata: {name: b-from-frontend, namespace: mesh}\nspec:\n"
			  "  selector: {matchLabels: {app: b}}\n  action: ALLOW\n  rules:\n  - from:\n"
			  "    - source: {principals: [cluster.local/ns/mesh/sa/frontend]}\n"), 0);
	EXPECT_TRUE(eventually(self, "a2", "mesh", B, 9000, false));
	EXPECT_TRUE(reaches(self, "a", "mesh", B, 9000));
	/* Same node, same rule: policy applies without leaving the node. */
	EXPECT_FALSE(reaches(self, "a2", "mesh", B2, 9000));
	EXPECT_TRUE(reaches(self, "a", "mesh", B2, 9000));
	/* Plaintext has no principal. */
	EXPECT_FALSE(reaches(self, "c", "plain", B, 9000));
	/* DENY before ALLOW: port 8080 from namespace mesh. */
	ASSERT_EQ(lab_kubectl(self->k.lab, "apply", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
			  "metadata: {name: no-8080, namespace: mesh}\nspec:\n  action: DENY\n  rules:\n"
			  "  - from:\n    - source: {namespaces: [mesh]}\n    to:\n    - operation: {ports: [\"8080\"]}\n"), 0);
	EXPECT_TRUE(eventually(self, "a", "mesh", B, 8080, false));
	EXPECT_TRUE(reaches(self, "a", "mesh", B, 9000));
	/* Refusals are counted and logged with the deciding policy. */
	lab_metrics(self->k.lab, self->k.n2, page, sizeof(page));
	EXPECT_GT(lab_metric(page, "zmesh_ztunnel_denied_total{reason=\"authorization_policy\"} "), 0);
	ASSERT_EQ(test_sh(out, sizeof(out), "grep 'denied' /run/zmesh/lab/%s/logs/ztunnel-%s.log", self->k.lab,
			  self->k.n2), 0);
	EXPECT_STRSTR(out, "from cluster.local/ns/mesh/sa/default denied: no ALLOW policy matched");
	EXPECT_STRSTR(out, "denied by a DENY policy mesh/no-8080");
	/* Deleting the policies restores the default: allow. */
	ASSERT_EQ(test_sh(NULL, 0, "%s delete authorizationpolicy b-from-frontend -n mesh --name %s && "
			  "%s delete authorizationpolicy no-8080 -n mesh --name %s", lab_ctl(), self->k.lab,
			  lab_ctl(), self->k.lab), 0);
	EXPECT_TRUE(eventually(self, "a2", "mesh", B, 8080, true));
}

TEST_F(pol, policy_holds_while_zmeshd_is_down)
{
	char out[4096];

	ASSERT_EQ(lab_kubectl(self->k.lab, "apply", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
			  "metadata: {name: b-from-frontend, namespace: mesh}\nspec:\n"
			  "  selector: {matchLabels: {app: b}}\n  rules:\n  - from:\n"
			  "    - source: {principals: [cluster.local/ns/mesh/sa/frontend]}\n"), 0);
	EXPECT_TRUE(eventually(self, "a2", "mesh", B, 9000, false));
	/* zmeshd goes away: ztunnels keep the last good config, traffic flows. */
	ASSERT_EQ(test_sh(NULL, 0, "pkill -KILL -f 'zmeshd.*--lab %s( |$)'", self->k.lab), 0);
	usleep(500000);
	EXPECT_FALSE(reaches(self, "a2", "mesh", B, 9000));
	EXPECT_TRUE(reaches(self, "a", "mesh", B, 9000));
	EXPECT_TRUE(reaches(self, "a", "mesh", B2, 9000));
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab exec --node %s --name %s -- curl -sf localhost:15021/healthz/ready",
			  lab_ctl(), self->k.n1, self->k.lab), 0);
}

/* zmeshd --watch-dir: a manifest dropped into the lab's manifests/ is
 * applied (all or nothing); a broken one is refused and changes nothing. */
TEST_F(pol, manifests_dropped_into_the_watched_directory_are_applied)
{
	char out[8192], path[PATH_MAX];
	FILE *f;

	EXPECT_TRUE(eventually(self, "a2", "mesh", B, 9000, true));
	snprintf(path, sizeof(path), "/run/zmesh/lab/%s/manifests/.ap.yaml", self->k.lab);
	f = fopen(path, "w");
	ASSERT_OK_PTR(f);
	fprintf(f, "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
		"metadata: {name: dropped, namespace: mesh}\nspec:\n  selector: {matchLabels: {app: b}}\n"
		"  rules:\n  - from:\n    - source: {principals: [cluster.local/ns/mesh/sa/frontend]}\n");
	fclose(f);
	/* Written elsewhere, renamed in: the way tools drop files atomically. */
	ASSERT_EQ(test_sh(NULL, 0, "mv %s /run/zmesh/lab/%s/manifests/ap.yaml", path, self->k.lab), 0);
	EXPECT_TRUE(eventually(self, "a2", "mesh", B, 9000, false));
	EXPECT_TRUE(reaches(self, "a", "mesh", B, 9000));
	ASSERT_EQ(test_sh(out, sizeof(out), "%s get ap -n mesh --name %s", lab_ctl(), self->k.lab), 0);
	EXPECT_STRSTR(out, "dropped");
	/* A broken file next to it: nothing applied, the policy stays. */
	ASSERT_EQ(test_sh(NULL, 0, "printf 'apiVersion: security.istio.io/v1\\nkind: AuthorizationPolicy\\n"
			  "metadata: {name: broken, namespace: mesh}\\nspec:\\n  action: MAYBE\\n' > "
			  "/run/zmesh/lab/%s/manifests/broken.yaml", self->k.lab), 0);
	for (int i = 0; i < 30 && test_sh(NULL, 0, "grep -q 'nothing applied' /run/zmesh/lab/%s/logs/zmeshd.log",
					  self->k.lab); i++)
		usleep(100000);
	ASSERT_EQ(test_sh(out, sizeof(out), "grep 'broken.yaml' /run/zmesh/lab/%s/logs/zmeshd.log", self->k.lab), 0);
	EXPECT_STRSTR(out, "broken.yaml:5:11: spec.action:");
	EXPECT_NE(test_sh(out, sizeof(out), "%s get ap broken -n mesh --name %s", lab_ctl(), self->k.lab), 0);
	EXPECT_FALSE(reaches(self, "a2", "mesh", B, 9000));
}

TEST_F(pol, l7_rules_without_a_waypoint_fail_closed)
{
	EXPECT_TRUE(eventually(self, "a", "mesh", B, 8080, true));
	ASSERT_EQ(lab_kubectl(self->k.lab, "apply", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
			  "metadata: {name: get-only, namespace: mesh}\nspec:\n"
			  "  selector: {matchLabels: {app: b}}\n  rules:\n  - to:\n    - operation: {methods: [GET]}\n"), 0);
	/* Methods need a waypoint: at L4 the ALLOW cannot match, so nothing gets in. */
	EXPECT_TRUE(eventually(self, "a", "mesh", B, 8080, false));
	EXPECT_FALSE(reaches(self, "a", "mesh", B, 9000));
}
