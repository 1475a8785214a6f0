// SPDX-License-Identifier: Apache-2.0
/*
 * Workloads come from zmeshd (docs/lab.md "The cluster in the store",
 * docs/ztunnel.md "Workloads"): `lab up` writes Namespaces, Nodes, Pods and
 * Services into the lab's store, `zmeshctl get` shows them, ztunnel routes
 * on what zmeshd pushes (a service with a named targetPort on another node,
 * over HBONE), an edit of the lab state file changes nothing it does,
 * `lab label` reaches ztunnel as a new pushed version, and zmeshd signs a
 * node's CSR by the store's Pods, not by the lab state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "../harness/test.h"
#include "labkit.h"
#include "zmesh/lab.h"

FIXTURE(zw) {
	char lab[16], file[64], state[128], backup[160];
};

FIXTURE_SETUP(zw)
{
	FILE *f;

	REQUIRE_ROOT();
	snprintf(self->lab, sizeof(self->lab), "w%d", getpid() % 100000);
	snprintf(self->file, sizeof(self->file), "/tmp/zm-zw-%s.yaml", self->lab);
	snprintf(self->state, sizeof(self->state), "%s/%s/state.json", ZM_LAB_STATE_ROOT, self->lab);
	snprintf(self->backup, sizeof(self->backup), "/tmp/zm-zw-%s.state.json", self->lab);
	f = fopen(self->file, "w");
	ASSERT_OK_PTR(f);
	fprintf(f, "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n---\n"
		"apiVersion: v1\nkind: Node\nmetadata: {name: n2}\n---\n"
		"apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {istio.io/dataplane-mode: ambient}}\n---\n"
		"apiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n---\n"
		"apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: batch, namespace: other}\n---\n"
		"apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
		"spec:\n  selector: {app: web}\n  ports:\n  - {name: http, port: 80, targetPort: web-http}\n---\n"
		"apiVersion: v1\nkind: Service\nmetadata: {name: batch, namespace: other}\n"
		"spec:\n  selector: {app: batch}\n  ports:\n  - {name: http, port: 80, targetPort: 8080}\n---\n"
		"apiVersion: v1\nkind: Pod\nmetadata: {name: client, namespace: shop, labels: {app: client}}\n"
		"spec:\n  nodeName: n1\n  containers:\n  - name: c\n    command: [echoapp, serve, --http, \"8080\"]\n---\n"
		"apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: shop, labels: {app: web}}\n"
		"spec:\n  nodeName: n2\n  containers:\n  - name: c\n    command: [echoapp, serve, --http, \"8080\"]\n"
		"    ports:\n    - {name: web-http, containerPort: 8080}\n---\n"
		"apiVersion: v1\nkind: Pod\nmetadata: {name: batch, namespace: other, labels: {app: batch}}\n"
		"spec:\n  nodeName: n2\n  serviceAccountName: batch\n  containers:\n  - name: c\n"
		"    command: [echoapp, serve, --http, \"8080\"]\n");
	fclose(f);
	ASSERT_EQ(test_sh(NULL, 0, "%s lab up -f %s --name %s", lab_ctl(), self->file, self->lab), 0);
	ASSERT_EQ(lab_wait_ready(self->lab, "n1"), 0);
	ASSERT_EQ(lab_wait_ready(self->lab, "n2"), 0);
}

FIXTURE_TEARDOWN(zw)
{
	if (!self->lab[0])
		return;
	/* The real state back (a test may have edited it), so down finds everything. */
	if (access(self->backup, F_OK) == 0)
		test_sh(NULL, 0, "cp %s %s", self->backup, self->state);
	test_sh(NULL, 0, "%s lab down --name %s", lab_ctl(), self->lab);
	unlink(self->file);
	unlink(self->backup);
}

/* @node's ztunnel /config_dump, parsed; NULL on failure. */
static json_t *config_dump(struct zm_fixture_zw *self, const char *node)
{
	static char out[1 << 17];

	if (test_sh(out, sizeof(out), "%s lab exec --node %s --name %s -- curl -sf localhost:15000/config_dump",
		    lab_ctl(), node, self->lab))
		return NULL;
	return json_loads(out, 0, NULL);
}

/* In @node's ztunnel view: the pod @ns/@name (-1 absent, else its "meshed"). */
static int view_pod(struct zm_fixture_zw *self, const char *node, const char *ns, const char *name)
{
	json_t *j = config_dump(self, node), *p;
	size_t i;
	int rc = -1;

	char want[160];

	snprintf(want, sizeof(want), "%s/%s", ns, name);
	json_array_foreach(json_object_get(json_object_get(j, "cluster"), "pods"), i, p)
		if (!strcmp(json_string_value(json_object_get(p, "pod")) ?: "", want))
			rc = json_is_true(json_object_get(p, "meshed"));
	json_decref(j);
	return rc;
}

static bool view_has_service(struct zm_fixture_zw *self, const char *node, const char *ns, const char *name)
{
	json_t *j = config_dump(self, node), *s;
	size_t i;
	bool found = false;

	char want[160];

	snprintf(want, sizeof(want), "%s/%s", ns, name);
	json_array_foreach(json_object_get(json_object_get(j, "cluster"), "services"), i, s)
		found |= !strcmp(json_string_value(json_object_get(s, "service")) ?: "", want);
	json_decref(j);
	return found;
}

/* proxy-status: the version zmeshd last sent ztunnel~@node and whether it is ACKed. */
static long long sent_version(struct zm_fixture_zw *self, const char *node, bool *synced)
{
	static char out[65536];
	char name[64];
	json_t *j, *p;
	size_t i;
	long long v = -1;

	*synced = false;
	snprintf(name, sizeof(name), "ztunnel~%s", node);
	if (test_sh(out, sizeof(out), "%s proxy-status --name %s -o json", lab_ctl(), self->lab))
		return -1;
	j = json_loads(out, 0, NULL);
	json_array_foreach(json_object_get(j, "proxies"), i, p) {
		if (strcmp(json_string_value(json_object_get(p, "name")) ?: "", name))
			continue;
		v = json_integer_value(json_object_get(p, "sent"));
		*synced = !strcmp(json_string_value(json_object_get(p, "status")) ?: "", "SYNCED") &&
			  json_integer_value(json_object_get(p, "acked")) == v;
	}
	json_decref(j);
	return v;
}

/* Edit the lab state file with a python expression over `s` (a backup is
 * kept for the teardown); the new mtime makes ztunnel re-read it. */
static int edit_state(struct zm_fixture_zw *self, const char *expr)
{
	if (test_sh(NULL, 0, "cp -n %s %s", self->state, self->backup))
		return -1;
	return test_sh(NULL, 0, "python3 -c \"import json;p='%s';s=json.load(open(p));%s;"
		       "json.dump(s,open(p+'.t','w'));import os;os.rename(p+'.t',p)\"", self->state, expr);
}

TEST_F(zw, store_holds_the_cluster_and_ztunnel_routes_on_the_push)
{
	char out[16384], ip[64];

	/* What `lab up` wrote, as `kubectl get` would show it. */
	ASSERT_EQ(test_sh(out, sizeof(out), "%s get pods -A --name %s", lab_ctl(), self->lab), 0);
	EXPECT_STRSTR(out, "client");
	EXPECT_STRSTR(out, "web");
	EXPECT_STRSTR(out, "batch");
	ASSERT_EQ(test_sh(out, sizeof(out), "%s get services -A --name %s", lab_ctl(), self->lab), 0);
	EXPECT_STRSTR(out, "shop        web");
	EXPECT_STRSTR(out, "other       batch");
	ASSERT_EQ(test_sh(out, sizeof(out), "%s get nodes --name %s", lab_ctl(), self->lab), 0);
	EXPECT_STRSTR(out, "n2 ");
	ASSERT_EQ(test_sh(ip, sizeof(ip), "%s lab status --name %s -o json | python3 -c \"import json,sys;"
			  "print([p['ip'] for p in json.load(sys.stdin)['pods'] if p['name']=='web'][0])\"",
			  lab_ctl(), self->lab), 0);
	ip[strcspn(ip, "\n")] = 0;
	ASSERT_EQ(test_sh(out, sizeof(out), "%s get pod web -n shop -o json --name %s", lab_ctl(), self->lab), 0);
	EXPECT_STRSTR(out, "\"nodeName\": \"n2\"");
	EXPECT_STRSTR(out, ip);
	EXPECT_STRSTR(out, "\"uid\"");
	EXPECT_STRSTR(out, "\"web-http\"");

	/* ztunnel's cluster is zmeshd's push; n1 holds n2's pods in brief,
	 * with the container port the named targetPort needs. */
	{
		json_t *j = config_dump(self, "n1");

		ASSERT_OK_PTR(j);
		EXPECT_STREQ(json_string_value(json_object_get(json_object_get(j, "cluster"), "source")), "zmeshd");
		json_decref(j);
	}
	EXPECT_EQ(view_pod(self, "n1", "shop", "web"), 1);
	EXPECT_EQ(view_pod(self, "n1", "other", "batch"), 0);
	ASSERT_EQ(lab_in_pod(self->lab, "client", "shop", out, sizeof(out), "curl -sf -m 5 http://web/"), 0);
	EXPECT_STRSTR(out, "\"pod\":\"web\"");
	lab_metrics(self->lab, "n1", out, sizeof(out));
	EXPECT_STRSTR(out, "destination_workload=\"web\",destination_workload_namespace=\"shop\","
		      "destination_principal=\"spiffe://cluster.local/ns/shop/sa/default\","
		      "connection_security_policy=\"mutual_tls\"}");

	/* The lab state is no longer what ztunnel routes on: without its
	 * services and with a pod zmeshd never heard of (on a node no agent
	 * serves, so enrolment is untouched), its view stays the push. */
	ASSERT_EQ(edit_state(self, "g=dict(s['pods'][0]);g.update(name='ghost',node='n9',ip='10.244.1.99',"
				   "netns='none',pids=[]);s['pods'].append(g);s['services']=[]"), 0);
	sleep(1);
	EXPECT_TRUE(view_has_service(self, "n1", "shop", "web"));
	EXPECT_EQ(view_pod(self, "n1", "shop", "ghost"), -1);
	ASSERT_EQ(lab_in_pod(self->lab, "client", "shop", out, sizeof(out), "curl -sf -m 5 http://web/"), 0);
	EXPECT_STRSTR(out, "\"pod\":\"web\"");
}

TEST_F(zw, lab_label_reaches_ztunnel_through_zmeshd)
{
	char out[16384];
	long long v0, v = -1;
	bool synced = false;
	time_t end;

	end = time(NULL) + 10;
	do {
		v0 = sent_version(self, "n1", &synced);
	} while (!synced && time(NULL) < end && !usleep(200000));
	ASSERT_TRUE(synced);
	ASSERT_EQ(view_pod(self, "n1", "other", "batch"), 0);
	/* Before: batch is outside the mesh, so client's ztunnel passes through. */
	ASSERT_EQ(lab_in_pod(self->lab, "client", "shop", out, sizeof(out), "curl -sf -m 5 http://batch.other/"), 0);
	EXPECT_STRSTR(out, "\"pod\":\"batch\"");

	ASSERT_EQ(test_sh(NULL, 0, "%s lab label namespace other istio.io/dataplane-mode=ambient --name %s",
			  lab_ctl(), self->lab), 0);
	ASSERT_EQ(test_sh(out, sizeof(out), "%s get namespace other -o yaml --name %s", lab_ctl(), self->lab), 0);
	EXPECT_STRSTR(out, "istio.io/dataplane-mode: ambient");
	/* A new version for n1's ztunnel, ACKed, in which batch is meshed. */
	end = time(NULL) + 15;
	do {
		v = sent_version(self, "n1", &synced);
	} while (!(v > v0 && synced && view_pod(self, "n1", "other", "batch") == 1) && time(NULL) < end &&
		 !usleep(200000));
	EXPECT_GT(v, v0);
	EXPECT_TRUE(synced);
	EXPECT_EQ(view_pod(self, "n1", "other", "batch"), 1);
	/* n2's agent enrols batch; client's ztunnel now talks HBONE to it with
	 * batch's own identity, which it knows only from the push. */
	end = time(NULL) + 15;
	do {
		if (lab_in_pod(self->lab, "client", "shop", out, sizeof(out), "curl -sf -m 5 http://batch.other/"))
			continue;
		lab_metrics(self->lab, "n1", out, sizeof(out));
		if (strstr(out, "destination_principal=\"spiffe://cluster.local/ns/other/sa/batch\","
				"connection_security_policy=\"mutual_tls\"}"))
			break;
	} while (time(NULL) < end && !usleep(300000));
	EXPECT_STRSTR(out, "destination_workload=\"batch\",destination_workload_namespace=\"other\","
		      "destination_principal=\"spiffe://cluster.local/ns/other/sa/batch\","
		      "connection_security_policy=\"mutual_tls\"}");
}

/* The HTTP status zmeshd answers node @n's CSR @csr with ("" when no answer). */
static void csr_status(struct zm_fixture_zw *self, int n, const char *csr, char *out, size_t sz)
{
	char nodes[256];

	snprintf(nodes, sizeof(nodes), "%s/%s/nodes", ZM_LAB_STATE_ROOT, self->lab);
	out[0] = 0;
	test_sh(out, sz, "%s lab exec --node n%d --name %s -- curl -sk --http2 --cert %s/n%d/node-cert.pem "
		"--key %s/n%d/node-key.pem --data-binary @%s -o /dev/null -w '%%{http_code}' https://"
		ZM_LAB_ZMESHD_ADDR ":15012/v1/certs", lab_ctl(), n, self->lab, nodes, n, nodes, n, csr);
}

TEST_F(zw, csr_is_judged_by_the_store_not_the_lab_state)
{
	char out[256], csr[300];
	time_t end;

	snprintf(csr, sizeof(csr), "/tmp/zm-zw-%s.csr", self->lab);
	ASSERT_EQ(test_sh(NULL, 0, "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
			  "-keyout /dev/null -subj / -addext subjectAltName=URI:spiffe://cluster.local/ns/other/sa/batch "
			  "-out %s 2>/dev/null", csr), 0);
	/* The lab state claims batch runs on n1; the store says n2. */
	ASSERT_EQ(edit_state(self, "[p.update(node='n1') for p in s['pods'] if p['name']=='batch']"), 0);
	csr_status(self, 1, csr, out, sizeof(out));
	EXPECT_STREQ(out, "403");
	csr_status(self, 2, csr, out, sizeof(out));
	EXPECT_STREQ(out, "200");
	/* Moved in the store (as the API server would say): the answer follows. */
	ASSERT_EQ(lab_apply(self->lab, "apiVersion: v1\nkind: Pod\nmetadata: {name: batch, namespace: other}\n"
				       "spec: {nodeName: n1, serviceAccountName: batch}\n"), 0);
	end = time(NULL) + 10;
	do
		csr_status(self, 1, csr, out, sizeof(out));
	while (strcmp(out, "200") && time(NULL) < end && !usleep(200000));
	EXPECT_STREQ(out, "200");
	csr_status(self, 2, csr, out, sizeof(out));
	EXPECT_STREQ(out, "403");
	unlink(csr);
}

/* A request from client to web through the waypoint: answered by web with
 * the x-request-id the waypoint adds (15 s). */
static bool via_waypoint(struct zm_fixture_zw *self)
{
	char out[8192] = "";
	time_t end = time(NULL) + 15;

	do {
		if (test_sh(out, sizeof(out), "%s lab exec client -n shop --name %s -- curl -s -m 5 http://web/",
			    lab_ctl(), self->lab) == 0 && strstr(out, "\"pod\":\"web\"") && strstr(out, "\"x-request-id\""))
			return true;
		usleep(200000);
	} while (time(NULL) < end);
	test_log("last answer: %.300s", out);
	return false;
}

TEST_F(zw, waypoint_serves_from_the_push_not_the_lab_state)
{
	char out[8192];

	/* The waypoint pod and Service reach the store (zm_lab_grow), the
	 * namespace label too: ztunnel sends web's traffic there. */
	ASSERT_EQ(test_sh(NULL, 0, "%s waypoint apply -n shop --enroll-namespace --lab %s", lab_ctl(), self->lab), 0);
	ASSERT_EQ(test_sh(out, sizeof(out), "%s get pods -n shop --name %s", lab_ctl(), self->lab), 0);
	EXPECT_STRSTR(out, "waypoint");
	ASSERT_TRUE(via_waypoint(self));
	/* The waypoint re-reads on a state change (inotify) and rebuilds from
	 * the last pushed version: services gone from the file, it still
	 * knows web and its endpoint (named targetPort included). */
	ASSERT_EQ(edit_state(self, "s['services']=[]"), 0);
	sleep(1);
	EXPECT_TRUE(via_waypoint(self));
	ASSERT_EQ(test_sh(out, sizeof(out), "grep -c 'config loaded' /run/zmesh/lab/%s/logs/shop_waypoint.log",
			  self->lab), 0);
	test_log("waypoint builds: %s", out);
}
