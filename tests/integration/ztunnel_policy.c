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
	char lab[16], n1[32], n2[32], file[64], ctl[4200];
};

FIXTURE_SETUP(pol)
{
	FILE *f;
	int pid = getpid() % 100000;

	REQUIRE_ROOT();
	snprintf(self->lab, sizeof(self->lab), "p%d", pid);
	snprintf(self->n1, sizeof(self->n1), "pn1-%d", pid);
	snprintf(self->n2, sizeof(self->n2), "pn2-%d", pid);
	snprintf(self->file, sizeof(self->file), "/tmp/zm-pol-%s.yaml", self->lab);
	snprintf(self->ctl, sizeof(self->ctl), "%s/zmeshctl", test_build_dir());
	f = fopen(self->file, "w");
	ASSERT_OK_PTR(f);
	fprintf(f, "apiVersion: v1\nkind: Node\nmetadata: {name: %s}\n---\n"
		"apiVersion: v1\nkind: Node\nmetadata: {name: %s}\n---\n"
		"apiVersion: v1\nkind: Namespace\nmetadata: {name: mesh, labels: {istio.io/dataplane-mode: ambient}}\n---\n"
		"apiVersion: v1\nkind: Namespace\nmetadata: {name: plain}\n---\n"
		"apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: frontend, namespace: mesh}\n",
		self->n1, self->n2);
	/* a (frontend) and a2 (default) call b on the other node and b2 on theirs. */
	static const struct { const char *name, *ns, *app, *sa; int node; } pods[] = {
		{ "a", "mesh", "a", "frontend", 1 }, { "a2", "mesh", "a2", "default", 1 },
		{ "b", "mesh", "b", "default", 2 }, { "b2", "mesh", "b", "default", 1 },
		{ "c", "plain", "c", "default", 1 },
	};
	for (size_t i = 0; i < sizeof(pods) / sizeof(pods[0]); i++)
		fprintf(f, "---\napiVersion: v1\nkind: Pod\nmetadata: {name: %s, namespace: %s, labels: {app: %s}}\n"
			"spec:\n  nodeName: %s\n  serviceAccountName: %s\n  containers:\n  - name: c\n"
			"    command: [echoapp, serve, --http, \"8080\", --tcp, \"9000\"]\n",
			pods[i].name, pods[i].ns, pods[i].app, pods[i].node == 1 ? self->n1 : self->n2, pods[i].sa);
	fclose(f);
	ASSERT_EQ(test_sh(NULL, 0, "%s lab up -f %s --name %s", self->ctl, self->file, self->lab), 0);
	ASSERT_OK(lab_wait_ready(self->lab, self->n1));
	ASSERT_OK(lab_wait_ready(self->lab, self->n2));
}

FIXTURE_TEARDOWN(pol)
{
	if (!self->lab[0])
		return;
	test_sh(NULL, 0, "%s lab down --name %s", self->ctl, self->lab);
	unlink(self->file);
}

/* `zmeshctl apply` (or delete) of @yaml into the lab's store. */
static int kubectl(struct zm_fixture_pol *self, const char *verb, const char *yaml)
{
	char path[64];
	FILE *f;
	int rc;

	snprintf(path, sizeof(path), "/tmp/zm-pol-%d.yaml", getpid());
	f = fopen(path, "w");
	if (!f)
		return -1;
	fputs(yaml, f);
	fclose(f);
	rc = test_sh(NULL, 0, "%s %s -f %s --name %s", self->ctl, verb, path, self->lab);
	unlink(path);
	return rc;
}

/* One TCP echo from @pod to @ip:@port: true when it came back. */
static bool reaches(struct zm_fixture_pol *self, const char *pod, const char *ns, const char *ip, int port)
{
	char out[4096];

	return test_sh(out, sizeof(out), "%s lab exec %s -n %s --name %s -- echoapp client tcp://%s:%d "
		       "-n 1 --timeout 1500", self->ctl, pod, ns, self->lab, ip, port) == 0;
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
	char out[8192];

	/* Nothing applied: PERMISSIVE, the plain pod reaches the meshed one. */
	EXPECT_TRUE(eventually(self, "c", "plain", B, 9000, true));
	ASSERT_EQ(kubectl(self, "apply", "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
			  "metadata: {name: default, namespace: istio-system}\nspec:\n  mtls: {mode: STRICT}\n"), 0);
	EXPECT_TRUE(eventually(self, "c", "plain", B, 9000, false));
	EXPECT_TRUE(reaches(self, "a", "mesh", B, 9000));	/* HBONE is mTLS */
	/* It came over zmeshd's stream, and both ztunnels ACKed that version. */
	ASSERT_EQ(test_sh(out, sizeof(out), "%s proxy-status --name %s", self->ctl, self->lab), 0);
	EXPECT_STRSTR(out, "ztunnel~pn1-");
	EXPECT_STRSTR(out, "ztunnel~pn2-");
	EXPECT_FALSE(strstr(out, "STALE"));
	EXPECT_FALSE(strstr(out, "NACK"));
	/* The BPF side knows too: plaintext SYNs are dropped on the veth. */
	ASSERT_EQ(test_sh(out, sizeof(out), "%s bpf status --name %s --node %s -o json", self->ctl, self->lab,
			  self->n2), 0);
	EXPECT_FALSE(strstr(out, "\"strict_drops\": 0,"));
	/* A workload policy with a port exception: PERMISSIVE on 9000 only. */
	ASSERT_EQ(kubectl(self, "apply", "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
			  "metadata: {name: b, namespace: mesh}\nspec:\n  selector: {matchLabels: {app: b}}\n"
			  "  mtls: {mode: STRICT}\n  portLevelMtls:\n    \"9000\": {mode: PERMISSIVE}\n"), 0);
	EXPECT_TRUE(eventually(self, "c", "plain", B, 9000, true));
	EXPECT_FALSE(reaches(self, "c", "plain", B, 8080));
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab exec --node %s --name %s -- curl -s localhost:15020/metrics",
			  self->ctl, self->n2, self->lab), 0);
	EXPECT_FALSE(strstr(out, "zmesh_ztunnel_denied_total{reason=\"mtls_strict\"} 0\n"));
}

TEST_F(pol, allow_and_deny_by_principal_namespace_and_port)
{
	char out[65536];

	EXPECT_TRUE(eventually(self, "a2", "mesh", B, 9000, true));
	ASSERT_EQ(kubectl(self, "apply", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
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
	ASSERT_EQ(kubectl(self, "apply", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
			  "metadata: {name: no-8080, namespace: mesh}\nspec:\n  action: DENY\n  rules:\n"
			  "  - from:\n    - source: {namespaces: [mesh]}\n    to:\n    - operation: {ports: [\"8080\"]}\n"), 0);
	EXPECT_TRUE(eventually(self, "a", "mesh", B, 8080, false));
	EXPECT_TRUE(reaches(self, "a", "mesh", B, 9000));
	/* Refusals are counted and logged with the deciding policy. */
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab exec --node %s --name %s -- curl -s localhost:15020/metrics",
			  self->ctl, self->n2, self->lab), 0);
	EXPECT_FALSE(strstr(out, "zmesh_ztunnel_denied_total{reason=\"authorization_policy\"} 0\n"));
	ASSERT_EQ(test_sh(out, sizeof(out), "grep 'denied' /run/zmesh/lab/%s/logs/ztunnel-%s.log", self->lab,
			  self->n2), 0);
	EXPECT_STRSTR(out, "from cluster.local/ns/mesh/sa/default denied: no ALLOW policy matched");
	EXPECT_STRSTR(out, "denied by a DENY policy mesh/no-8080");
	/* Deleting the policies restores the default: allow. */
	ASSERT_EQ(test_sh(NULL, 0, "%s delete authorizationpolicy b-from-frontend -n mesh --name %s && "
			  "%s delete authorizationpolicy no-8080 -n mesh --name %s", self->ctl, self->lab,
			  self->ctl, self->lab), 0);
	EXPECT_TRUE(eventually(self, "a2", "mesh", B, 8080, true));
}

TEST_F(pol, policy_holds_while_zmeshd_is_down)
{
	char out[4096];

	ASSERT_EQ(kubectl(self, "apply", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
			  "metadata: {name: b-from-frontend, namespace: mesh}\nspec:\n"
			  "  selector: {matchLabels: {app: b}}\n  rules:\n  - from:\n"
			  "    - source: {principals: [cluster.local/ns/mesh/sa/frontend]}\n"), 0);
	EXPECT_TRUE(eventually(self, "a2", "mesh", B, 9000, false));
	/* zmeshd goes away: ztunnels keep the last good config, traffic flows. */
	ASSERT_EQ(test_sh(NULL, 0, "pkill -KILL -f 'zmeshd.*--lab %s( |$)'", self->lab), 0);
	usleep(500000);
	EXPECT_FALSE(reaches(self, "a2", "mesh", B, 9000));
	EXPECT_TRUE(reaches(self, "a", "mesh", B, 9000));
	EXPECT_TRUE(reaches(self, "a", "mesh", B2, 9000));
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab exec --node %s --name %s -- curl -sf localhost:15021/healthz/ready",
			  self->ctl, self->n1, self->lab), 0);
}

/* zmeshd --watch-dir: a manifest dropped into the lab's manifests/ is
 * applied (all or nothing); a broken one is refused and changes nothing. */
TEST_F(pol, manifests_dropped_into_the_watched_directory_are_applied)
{
	char out[8192], path[PATH_MAX];
	FILE *f;

	EXPECT_TRUE(eventually(self, "a2", "mesh", B, 9000, true));
	snprintf(path, sizeof(path), "/run/zmesh/lab/%s/manifests/.ap.yaml", self->lab);
	f = fopen(path, "w");
	ASSERT_OK_PTR(f);
	fprintf(f, "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
		"metadata: {name: dropped, namespace: mesh}\nspec:\n  selector: {matchLabels: {app: b}}\n"
		"  rules:\n  - from:\n    - source: {principals: [cluster.local/ns/mesh/sa/frontend]}\n");
	fclose(f);
	/* Written elsewhere, renamed in: the way tools drop files atomically. */
	ASSERT_EQ(test_sh(NULL, 0, "mv %s /run/zmesh/lab/%s/manifests/ap.yaml", path, self->lab), 0);
	EXPECT_TRUE(eventually(self, "a2", "mesh", B, 9000, false));
	EXPECT_TRUE(reaches(self, "a", "mesh", B, 9000));
	ASSERT_EQ(test_sh(out, sizeof(out), "%s get ap -n mesh --name %s", self->ctl, self->lab), 0);
	EXPECT_STRSTR(out, "dropped");
	/* A broken file next to it: nothing applied, the policy stays. */
	ASSERT_EQ(test_sh(NULL, 0, "printf 'apiVersion: security.istio.io/v1\\nkind: AuthorizationPolicy\\n"
			  "metadata: {name: broken, namespace: mesh}\\nspec:\\n  action: MAYBE\\n' > "
			  "/run/zmesh/lab/%s/manifests/broken.yaml", self->lab), 0);
	for (int i = 0; i < 30 && test_sh(NULL, 0, "grep -q 'nothing applied' /run/zmesh/lab/%s/logs/zmeshd.log",
					  self->lab); i++)
		usleep(100000);
	ASSERT_EQ(test_sh(out, sizeof(out), "grep 'broken.yaml' /run/zmesh/lab/%s/logs/zmeshd.log", self->lab), 0);
	EXPECT_STRSTR(out, "broken.yaml:5:11: spec.action:");
	EXPECT_NE(test_sh(out, sizeof(out), "%s get ap broken -n mesh --name %s", self->ctl, self->lab), 0);
	EXPECT_FALSE(reaches(self, "a2", "mesh", B, 9000));
}

TEST_F(pol, l7_rules_without_a_waypoint_fail_closed)
{
	EXPECT_TRUE(eventually(self, "a", "mesh", B, 8080, true));
	ASSERT_EQ(kubectl(self, "apply", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
			  "metadata: {name: get-only, namespace: mesh}\nspec:\n"
			  "  selector: {matchLabels: {app: b}}\n  rules:\n  - to:\n    - operation: {methods: [GET]}\n"), 0);
	/* Methods need a waypoint: at L4 the ALLOW cannot match, so nothing gets in. */
	EXPECT_TRUE(eventually(self, "a", "mesh", B, 8080, false));
	EXPECT_FALSE(reaches(self, "a", "mesh", B, 9000));
}
