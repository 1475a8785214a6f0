// SPDX-License-Identifier: Apache-2.0
/*
 * zmeshd's per-proxy views in a lab (docs/zmeshd.md, "Views"): every
 * proxy follows zmeshd's :15012 stream, ztunnels, the waypoint and the
 * ingress gateway alike; each holds only its view; a change outside a
 * view leaves that proxy's version alone; a VirtualService applied with
 * `zmeshctl apply` reaches the waypoint through zmeshd and changes routing;
 * the waypoint keeps routing on its last config while zmeshd is gone.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "../harness/test.h"
#include "labkit.h"
#include "zmesh/lab.h"

FIXTURE(zv) {
	char lab[16], file[64], ctl[4200];
};

static const char vs_mesh[] =
	"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: web, namespace: shop}\n"
	"spec:\n  hosts: [web]\n  http:\n  - match:\n    - headers:\n        x-canary: {exact: \"yes\"}\n"
	"    route:\n    - destination: {host: web, subset: v2}\n  - route:\n    - destination: {host: web, subset: %s}\n";

FIXTURE_SETUP(zv)
{
	FILE *f;

	REQUIRE_ROOT();
	snprintf(self->lab, sizeof(self->lab), "v%d", getpid() % 100000);
	snprintf(self->file, sizeof(self->file), "/tmp/zm-zv-%s.yaml", self->lab);
	snprintf(self->ctl, sizeof(self->ctl), "%s/zmeshctl", test_build_dir());
	f = fopen(self->file, "w");
	ASSERT_OK_PTR(f);
	fprintf(f, "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n---\n"
		"apiVersion: v1\nkind: Node\nmetadata: {name: n2}\n---\n"
		"apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {istio.io/dataplane-mode: ambient}}\n---\n"
		"apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
		"spec:\n  selector: {app: web}\n  ports:\n  - {name: http, port: 80, targetPort: 8080}\n---\n"
		"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: web, namespace: shop}\n"
		"spec:\n  host: web\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n---\n"
		"apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: shop}\n"
		"spec:\n  selector: {istio: ingressgateway}\n  servers:\n"
		"  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [web.example.com]\n---\n"
		"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: web-in, namespace: shop}\n"
		"spec:\n  hosts: [web.example.com]\n  gateways: [gw]\n  http:\n"
		"  - route:\n    - destination: {host: web, port: {number: 80}}\n---\n"
		"apiVersion: v1\nkind: Secret\nmetadata: {name: app-secret, namespace: shop}\ndata: {key: c2VjcmV0}\n---\n");
	fprintf(f, vs_mesh, "v1");
	static const struct { const char *name, *labels, *node; } pods[] = {
		{ "client", "{app: client}", "n1" },
		{ "web-v1", "{app: web, version: v1}", "n2" },
		{ "web-v2", "{app: web, version: v2}", "n2" },
	};
	for (size_t i = 0; i < 3; i++)
		fprintf(f, "---\napiVersion: v1\nkind: Pod\nmetadata: {name: %s, namespace: shop, labels: %s}\n"
			"spec:\n  nodeName: %s\n  containers:\n  - name: c\n"
			"    command: [echoapp, serve, --http, \"8080\"]\n", pods[i].name, pods[i].labels, pods[i].node);
	fclose(f);
	ASSERT_EQ(test_sh(NULL, 0, "%s lab up -f %s --name %s", self->ctl, self->file, self->lab), 0);
}

FIXTURE_TEARDOWN(zv)
{
	if (!self->lab[0])
		return;
	test_sh(NULL, 0, "%s lab down --name %s", self->ctl, self->lab);
	unlink(self->file);
}

static int curl(struct zm_fixture_zv *self, char *out, size_t sz, const char *args)
{
	return test_sh(out, sz, "%s lab exec client -n shop --name %s -- curl -s -m 5 %s", self->ctl,
		       self->lab, args);
}

/* Poll until a plain request to web is answered by @pod through the waypoint (15 s). */
static bool answered_by(struct zm_fixture_zv *self, const char *hdr, const char *pod)
{
	char out[8192], want[64], args[128];
	time_t end = time(NULL) + 15;

	snprintf(want, sizeof(want), "\"pod\":\"%s\"", pod);
	snprintf(args, sizeof(args), "%s http://web/", hdr);
	do {
		if (curl(self, out, sizeof(out), args) == 0 && strstr(out, want) && strstr(out, "\"x-request-id\""))
			return true;
		usleep(200000);
	} while (time(NULL) < end);
	test_log("last answer: %.300s", out);
	return false;
}

struct pstat {
	long long version, sent, acked;
	char status[32], type[16];
};

/* `zmeshctl proxy-status -o json`: the entry named @name. 0 when found. */
static int proxy_status(struct zm_fixture_zv *self, const char *name, struct pstat *ps)
{
	static char out[65536];
	json_t *j, *p;
	size_t i;
	int rc = -1;

	if (test_sh(out, sizeof(out), "%s proxy-status --name %s -o json", self->ctl, self->lab))
		return -1;
	j = json_loads(out, 0, NULL);
	ps->version = json_integer_value(json_object_get(j, "version"));
	json_array_foreach(json_object_get(j, "proxies"), i, p) {
		if (strcmp(json_string_value(json_object_get(p, "name")) ?: "", name))
			continue;
		ps->sent = json_integer_value(json_object_get(p, "sent"));
		ps->acked = json_integer_value(json_object_get(p, "acked"));
		snprintf(ps->status, sizeof(ps->status), "%s", json_string_value(json_object_get(p, "status")) ?: "");
		snprintf(ps->type, sizeof(ps->type), "%s", json_string_value(json_object_get(p, "type")) ?: "");
		rc = 0;
	}
	json_decref(j);
	return rc;
}

/* Poll until @name is SYNCED, its last version sent @pred to the current one (15 s). */
static bool synced(struct zm_fixture_zv *self, const char *name, bool at_current, struct pstat *ps)
{
	time_t end = time(NULL) + 15;

	do {
		if (proxy_status(self, name, ps) == 0 && !strcmp(ps->status, "SYNCED") &&
		    (ps->sent == ps->version) == at_current)
			return true;
		usleep(200000);
	} while (time(NULL) < end);
	test_log("%s: sent %lld acked %lld, zmeshd at %lld, %s", name, ps->sent, ps->acked, ps->version, ps->status);
	return false;
}

static const char web_v1_pod[] =
	"apiVersion: v1\nkind: Pod\nmetadata: {name: web-v1, namespace: shop, labels: {app: web, version: v1}}\n"
	"spec:\n  nodeName: n2\n  containers:\n  - name: c\n    command: [echoapp, serve, --http, \"8080\", %s]\n"
	"status: {phase: Running, podIP: \"%s\"}\n";

/* An L7 policy in namespace @ns targeting its Service "web" (a waypoint's). */
static const char *ap_web(const char *ns)
{
	static char doc[512];

	snprintf(doc, sizeof(doc), "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
		 "metadata: {name: l7-web, namespace: %s}\nspec:\n"
		 "  targetRefs:\n  - {kind: Service, group: \"\", name: web}\n  action: DENY\n"
		 "  rules:\n  - to:\n    - operation: {paths: [/nowhere]}\n", ns);
	return doc;
}

TEST_F(zv, every_proxy_follows_zmeshd_with_its_own_view)
{
	static char out[65536];
	char doc[1024], ip[64];
	struct pstat n1, n2, wp, gw;
	long long v;

	ASSERT_EQ(test_sh(NULL, 0, "%s waypoint apply -n shop --enroll-namespace --lab %s", self->ctl, self->lab), 0);
	ASSERT_TRUE(answered_by(self, "-H 'x-canary: yes'", "web-v2"));
	ASSERT_TRUE(answered_by(self, "", "web-v1"));
	/* Four proxies, each of its type, in sync. */
	ASSERT_TRUE(synced(self, "ztunnel~n1", true, &n1));
	ASSERT_TRUE(synced(self, "ztunnel~n2", true, &n2));
	ASSERT_TRUE(synced(self, "waypoint~waypoint.shop", true, &wp));
	EXPECT_STREQ(wp.type, "waypoint");
	ASSERT_TRUE(synced(self, "gateway~istio-ingressgateway.istio-system", true, &gw));
	EXPECT_STREQ(gw.type, "gateway");
	EXPECT_STREQ(n1.type, "ztunnel");
	ASSERT_EQ(test_sh(out, sizeof(out), "%s proxy-status --name %s", self->ctl, self->lab), 0);
	EXPECT_STRSTR(out, "waypoint~waypoint.shop                   waypoint");
	ASSERT_EQ(test_sh(out, sizeof(out), "grep -c 'control plane: zmeshd' /run/zmesh/lab/%s/logs/shop_waypoint.log "
			  "/run/zmesh/lab/%s/logs/istio-system_istio-ingressgateway.log", self->lab, self->lab), 0);
	EXPECT_FALSE(strstr(out, ":0"));
	/* The lab's store holds Istio config and the cluster (docs/lab.md):
	 * n1's ztunnel holds the workloads, neither routes nor Secrets. */
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab exec --node n1 --name %s -- curl -sf localhost:15000/config_dump",
			  self->ctl, self->lab), 0);
	EXPECT_STRSTR(out, "\"Pod/shop/web-v1\"");
	EXPECT_STRSTR(out, "\"Service/shop/web\"");
	EXPECT_FALSE(strstr(out, "VirtualService/"));
	EXPECT_FALSE(strstr(out, "Secret/"));
	EXPECT_FALSE(strstr(out, "AuthorizationPolicy/"));
	/* web-v1's address, as the store (the API server) has it. */
	ASSERT_EQ(test_sh(ip, sizeof(ip), "%s get pod web-v1 -n shop -o json --name %s | python3 -c "
			  "\"import json,sys;print(json.load(sys.stdin)['status']['podIP'])\"", self->ctl, self->lab), 0);
	ip[strcspn(ip, "\n")] = 0;
	/* An L4 policy and a changed Pod object (Kubernetes-style, in the store) enter its view. */
	ASSERT_EQ(lab_apply(self->lab, "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
			"metadata: {name: deny-nobody, namespace: shop}\nspec:\n  action: DENY\n  rules:\n"
			"  - from:\n    - source: {principals: [cluster.local/ns/nowhere/sa/nobody]}\n"), 0);
	snprintf(doc, sizeof(doc), web_v1_pod, "--tcp, \"9000\"", ip);
	ASSERT_EQ(lab_apply(self->lab, doc), 0);
	ASSERT_TRUE(synced(self, "ztunnel~n1", true, &n1));
	for (int i = 0; i < 50; i++) {
		ASSERT_EQ(test_sh(out, sizeof(out), "%s lab exec --node n1 --name %s -- curl -sf "
				  "localhost:15000/config_dump", self->ctl, self->lab), 0);
		if (strstr(out, "\"config_version\": ") && atoll(strstr(out, "\"config_version\": ") + 18) == n1.version)
			break;
		usleep(100000);
	}
	EXPECT_STRSTR(out, "\"AuthorizationPolicy/shop/deny-nobody\"");
	EXPECT_STRSTR(out, "\"Pod/shop/web-v1\"");
	EXPECT_FALSE(strstr(out, "VirtualService/"));
	EXPECT_FALSE(strstr(out, "DestinationRule/"));
	EXPECT_FALSE(strstr(out, "Gateway/"));
	EXPECT_FALSE(strstr(out, "Secret/"));
	ASSERT_TRUE(answered_by(self, "", "web-v1"));

	/* web-v1's command changes: n2 runs it; n1, the waypoint and the gateway see nothing new. */
	snprintf(doc, sizeof(doc), web_v1_pod, "--tcp, \"9001\"", ip);
	ASSERT_EQ(lab_apply(self->lab, doc), 0);
	v = n1.version;
	for (int i = 0; i < 50 && (proxy_status(self, "ztunnel~n2", &n2) || n2.version == v); i++)
		usleep(100000);
	ASSERT_TRUE(synced(self, "ztunnel~n2", true, &n2));
	EXPECT_GT(n2.version, v);
	ASSERT_TRUE(synced(self, "ztunnel~n1", false, &n1));
	EXPECT_EQ(n1.sent, v);
	ASSERT_TRUE(synced(self, "waypoint~waypoint.shop", false, &wp));
	EXPECT_EQ(wp.sent, v);
	ASSERT_TRUE(synced(self, "gateway~istio-ingressgateway.istio-system", false, &gw));
	EXPECT_EQ(gw.sent, v);

	/* Policies reach a waypoint only from the namespaces it serves (shop,
	 * the root): one naming a Service "web" in a namespace it does not
	 * serve stays out of its view (and the gateway's); the L4 one beside it
	 * reaches the ztunnels, so zmeshd did take the version. */
	v = wp.sent;
	snprintf(doc, sizeof(doc), "%s---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
		 "metadata: {name: l4-far, namespace: elsewhere}\nspec:\n  action: DENY\n  rules:\n"
		 "  - from:\n    - source: {principals: [cluster.local/ns/nowhere/sa/nobody]}\n", ap_web("elsewhere"));
	ASSERT_EQ(lab_apply(self->lab, doc), 0);
	ASSERT_TRUE(synced(self, "ztunnel~n1", true, &n1));
	ASSERT_TRUE(synced(self, "waypoint~waypoint.shop", false, &wp));
	EXPECT_EQ(wp.sent, v);
	ASSERT_TRUE(synced(self, "gateway~istio-ingressgateway.istio-system", false, &gw));
	EXPECT_EQ(gw.sent, v);
	/* The same policy in shop is the waypoint's (and not the ztunnels': it is targeted). */
	v = n1.sent;
	ASSERT_EQ(lab_apply(self->lab, ap_web("shop")), 0);
	ASSERT_TRUE(synced(self, "waypoint~waypoint.shop", true, &wp));
	ASSERT_TRUE(synced(self, "ztunnel~n1", false, &n1));
	EXPECT_EQ(n1.sent, v);

	/* A route change: the waypoint gets it through zmeshd, ACKs, and routes by it. */
	snprintf(doc, sizeof(doc), vs_mesh, "v2");
	ASSERT_EQ(lab_apply(self->lab, doc), 0);
	ASSERT_TRUE(answered_by(self, "", "web-v2"));
	ASSERT_TRUE(synced(self, "waypoint~waypoint.shop", true, &wp));
	ASSERT_TRUE(synced(self, "ztunnel~n1", false, &n1));
	EXPECT_EQ(n1.sent, v);

	/* zmeshd gone: the waypoint keeps routing on its last good config. */
	{
		struct zm_lab lab;
		struct zm_error e = { "" };
		char procs[PATH_MAX + 32];
		FILE *f;
		int pid = 0;

		ASSERT_OK(zm_lab_load(self->lab, &lab, &e));
		snprintf(procs, sizeof(procs), "%s/zmeshd/cgroup.procs", lab.cgroup_root);
		zm_lab_free(&lab);
		f = fopen(procs, "r");
		ASSERT_OK_PTR(f);
		EXPECT_EQ(fscanf(f, "%d", &pid), 1);
		fclose(f);
		ASSERT_GT(pid, 1);
		ASSERT_OK(kill(pid, SIGKILL));
	}
	usleep(500000);
	EXPECT_TRUE(answered_by(self, "", "web-v2"));
	EXPECT_TRUE(answered_by(self, "-H 'x-canary: yes'", "web-v2"));
}
