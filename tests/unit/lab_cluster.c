// SPDX-License-Identifier: Apache-2.0
/*
 * The lab's cluster as Kubernetes objects and back (lab_cluster.c): what a
 * lab writes to its store reads back, through the config model, to the
 * same routing view; malformed pushed objects are errors with their place;
 * a pod without an address is left out.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness/test.h"
#include "zmesh/config.h"
#include "zmesh/lab.h"

#include <jansson.h>

static const char cluster[] =
	"apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n"
	"---\napiVersion: v1\nkind: Node\nmetadata: {name: n2}\n"
	"---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels: {istio.io/dataplane-mode: ambient}\n"
	"---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: web, namespace: shop}\n"
	"---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: web-1\n  namespace: shop\n  labels: {app: web, version: v2}\n"
	"spec:\n  nodeName: n2\n  serviceAccountName: web\n  containers:\n  - name: app\n"
	"    command: [echoapp, serve]\n    env:\n    - {name: SECRET, value: x}\n"
	"    ports:\n    - {name: http, containerPort: 8080}\n"
	"---\napiVersion: v1\nkind: Pod\nmetadata: {name: client, namespace: shop}\n"
	"spec:\n  nodeName: n1\n  containers:\n  - {name: c, command: [sleep, \"9\"]}\n"
	"---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\n  labels: {istio.io/use-waypoint: wp}\n"
	"spec:\n  selector: {app: web}\n  ports:\n  - {name: http, port: 80, targetPort: http}\n  - {name: raw, port: 9000, targetPort: 9001}\n";

/* A lab from @yaml with the addresses `up` would give (no kernel objects). */
static int lab_from(const char *yaml, struct zm_lab *lab)
{
	char path[64];
	const char *files[1] = { path };
	struct zm_error e = { "" };
	FILE *f;
	int rc;

	snprintf(path, sizeof(path), "/tmp/zm-labcluster-%d.yaml", getpid());
	f = fopen(path, "w");
	if (!f)
		return -errno;
	fputs(yaml, f);
	fclose(f);
	memset(lab, 0, sizeof(*lab));
	rc = zm_lab_spec_load(lab, files, 1, &e);
	unlink(path);
	if (rc) {
		test_log("spec: %s", e.msg);
		return rc;
	}
	snprintf(lab->name, sizeof(lab->name), "t1");
	for (size_t i = 0; i < lab->nnodes; i++) {
		lab->nodes[i].underlay_ip.s_addr = htonl(0xac1e0001 + (uint32_t)i);
		lab->nodes[i].pod_cidr.s_addr = htonl(0x0af40000 + ((uint32_t)i << 8));
	}
	for (size_t i = 0; i < lab->npods; i++)
		lab->pods[i].ip.s_addr = htonl(0x0af40002 + ((uint32_t)zm_lab_node_find(lab, lab->pods[i].node)->index << 8) +
					       (uint32_t)i);
	for (size_t i = 0; i < lab->nservices; i++)
		lab->services[i].cluster_ip.s_addr = htonl(0x0a60000a + (uint32_t)i);
	return 0;
}

static const struct zm_cfg_obj *find(const struct zm_cfg_set *s, enum zm_kind k, const char *ns, const char *name)
{
	return zm_cfg_find(s, k, ns, name);
}

TEST(lab_objects_read_back_the_same)
{
	struct zm_lab lab, back = { 0 };
	struct zm_cfg_set s;
	struct zm_error e = { "" };
	const struct zm_cfg_obj *o;
	char uid[64];

	ASSERT_OK(lab_from(cluster, &lab));
	zm_cfg_set_init(&s);
	ASSERT_OK(zm_lab_cluster_objects(&lab, NULL, &s, &e));
	/* What the store would take: it validates the same way. */
	EXPECT_OK(zm_cfg_validate(&s, NULL));
	/* 2 nodes, 2 namespaces (shop, default), 3 accounts (shop/web and each
	 * namespace's default), 2 pods, 1 service */
	EXPECT_EQ(s.nobjs, 10);
	o = find(&s, ZM_K_POD, "shop", "web-1");
	ASSERT_OK_PTR(o);
	zm_lab_pod_uid(&lab, zm_lab_pod_find(&lab, "shop", "web-1"), uid, sizeof(uid));
	EXPECT_STREQ(json_string_value(json_object_get(json_object_get(o->raw, "metadata"), "uid")), uid);
	EXPECT_STREQ(json_string_value(json_object_get(json_object_get(o->raw, "status"), "phase")), "Running");
	/* The lab's commands and env stay the lab's. */
	{
		char *txt = json_dumps(o->raw, 0);

		EXPECT_EQ(strstr(txt, "SECRET"), NULL);
		EXPECT_EQ(strstr(txt, "echoapp"), NULL);
		free(txt);
	}
	EXPECT_OK_PTR(find(&s, ZM_K_SERVICEACCOUNT, "shop", "default"));
	EXPECT_OK_PTR(find(&s, ZM_K_NODE, NULL, "n2"));

	ASSERT_OK(zm_lab_cluster_from_cfg(&s, &back, &e));
	ASSERT_EQ(back.nnodes, 2);
	ASSERT_EQ(back.npods, 2);
	ASSERT_EQ(back.nservices, 1);
	ASSERT_EQ(back.nnamespaces, 2);
	EXPECT_EQ(back.nsas, 3);
	EXPECT_EQ(back.nodes[1].underlay_ip.s_addr, lab.nodes[1].underlay_ip.s_addr);
	EXPECT_EQ(back.nodes[1].pod_cidr.s_addr, lab.nodes[1].pod_cidr.s_addr);
	EXPECT_EQ(ntohl(back.nodes[1].gateway.s_addr), ntohl(lab.nodes[1].pod_cidr.s_addr) + 1);
	EXPECT_STREQ(zm_labels_get(&zm_lab_ns_find(&back, "shop")->labels, "istio.io/dataplane-mode"), "ambient");
	for (size_t i = 0; i < lab.npods; i++) {
		struct zm_lab_pod *a = &lab.pods[i], *b = zm_lab_pod_find(&back, a->ns, a->name);

		ASSERT_OK_PTR(b);
		EXPECT_EQ(a->ip.s_addr, b->ip.s_addr);
		EXPECT_STREQ(a->node, b->node);
		EXPECT_STREQ(a->sa, b->sa);
		EXPECT_EQ(a->labels.n, b->labels.n);
		EXPECT_EQ(a->ncontainers, b->ncontainers);
		EXPECT_EQ(b->containers[0].argc, 0);
		/* Named target ports resolve the same on both. */
		EXPECT_EQ(zm_lab_target_port(&lab.services[0].ports[0], a),
			  zm_lab_target_port(&back.services[0].ports[0], b));
	}
	EXPECT_EQ(zm_lab_target_port(&back.services[0].ports[0], zm_lab_pod_find(&back, "shop", "web-1")), 8080);
	EXPECT_EQ(back.services[0].ports[1].target_port, 9001);
	EXPECT_EQ(back.services[0].cluster_ip.s_addr, lab.services[0].cluster_ip.s_addr);
	EXPECT_STREQ(zm_labels_get(&back.services[0].labels, "istio.io/use-waypoint"), "wp");
	EXPECT_STREQ(zm_labels_get(&back.services[0].selector, "app"), "web");
	zm_lab_free(&back);
	zm_cfg_set_free(&s);
	zm_lab_free(&lab);
}

TEST(extra_objects_join_the_same_apply)
{
	static const char vs[] = "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
				 "metadata: {name: web, namespace: shop}\nspec:\n  hosts: [web]\n"
				 "  http:\n  - route:\n    - destination: {host: web}\n";
	struct zm_lab lab;
	struct zm_cfg_set s, extra;
	struct zm_error e = { "" };

	ASSERT_OK(lab_from(cluster, &lab));
	zm_cfg_set_init(&s);
	zm_cfg_set_init(&extra);
	ASSERT_OK(zm_cfg_load_buf(&extra, "vs.yaml", vs, strlen(vs)));
	ASSERT_OK(zm_lab_cluster_objects(&lab, &extra, &s, &e));
	EXPECT_EQ(s.nobjs, 11);
	EXPECT_OK_PTR(find(&s, ZM_K_VIRTUALSERVICE, "shop", "web"));
	EXPECT_EQ(extra.nobjs, 1);	/* the caller's set is left alone */
	zm_cfg_set_free(&extra);
	zm_cfg_set_free(&s);
	zm_lab_free(&lab);
}

/* zm_lab_cluster_from_cfg over @yaml: its return, the message in @e. */
static int from(const char *yaml, struct zm_lab *out, struct zm_error *e)
{
	struct zm_cfg_set s;
	int rc;

	zm_cfg_set_init(&s);
	memset(e, 0, sizeof(*e));
	rc = zm_cfg_load_buf(&s, "push", yaml, strlen(yaml));
	if (!rc)
		rc = zm_lab_cluster_from_cfg(&s, out, e);
	else
		test_log("load: %s", s.nerrs ? s.errs[0].text : "?");
	zm_cfg_set_free(&s);
	return rc;
}

TEST(pod_without_address_or_on_the_host_network_is_left_out)
{
	struct zm_lab l;
	struct zm_error e;

	ASSERT_OK(from("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {nodeName: n1}\n"
		       "---\napiVersion: v1\nkind: Pod\nmetadata: {name: b}\nstatus: {podIP: \"fd00::1\"}\n"
		       "---\napiVersion: v1\nkind: Pod\nmetadata: {name: c}\n"
		       "status: {podIP: \"fd00::2\", podIPs: [{ip: \"fd00::2\"}, {ip: 10.1.2.3}]}\n"
		       "---\napiVersion: v1\nkind: Pod\nmetadata: {name: h}\nspec: {hostNetwork: true}\n"
		       "status: {podIP: 172.30.0.1}\n",
		       &l, &e));
	ASSERT_EQ(l.npods, 1);
	EXPECT_STREQ(l.pods[0].name, "c");
	EXPECT_STREQ(l.pods[0].ns, "default");
	EXPECT_STREQ(l.pods[0].sa, "default");
	EXPECT_EQ(l.pods[0].ip.s_addr, inet_addr("10.1.2.3"));
	zm_lab_free(&l);
}

TEST(malformed_objects_are_errors_with_their_place)
{
	static const struct {
		const char *yaml, *want;
	} cases[] = {
		{ "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nstatus: {podIP: banana}\n",
		  "push:1:1: status.podIP: not an IP address (Pod default/a)" },
		{ "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nstatus: {podIP: 10.0.0.1}\n"
		  "spec: {containers: [{name: c, ports: [{containerPort: 70000}]}]}\n",
		  "spec.containers[].ports[].containerPort: want a port from 1 to 65535" },
		{ "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {selector: {app: [x]}}\n",
		  "spec.selector: want a map of strings" },
		{ "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n"
		  "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{name: http}]}\n",
		  "push:5:1: spec.ports[].port: required field is missing (Service default/s)" },
		{ "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {clusterIP: 300.1.1.1}\n",
		  "spec.clusterIP: want an IPv4 address or None" },
		{ "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80, targetPort: 0}]}\n",
		  "spec.ports[].targetPort: want a port from 1 to 65535" },
		{ "apiVersion: v1\nkind: Node\nmetadata: {name: n}\nspec: {podCIDR: 10.0.0.0}\n",
		  "spec.podCIDR: want an IPv4 CIDR" },
		{ "apiVersion: v1\nkind: Node\nmetadata: {name: n}\nstatus: {addresses: [{type: InternalIP, address: x}]}\n",
		  "status.addresses[].address: not an IPv4 address" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct zm_lab l;
		struct zm_error e;

		EXPECT_EQ(from(cases[i].yaml, &l, &e), -EINVAL);
		if (!EXPECT_NE(strstr(e.msg, cases[i].want), NULL))
			test_log("case %zu: %s", i, e.msg);
	}
}

TEST(headless_service_has_no_address)
{
	struct zm_lab l;
	struct zm_error e;

	ASSERT_OK(from("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n"
		       "spec: {clusterIP: None, ports: [{port: 80}]}\n", &l, &e));
	ASSERT_EQ(l.nservices, 1);
	EXPECT_EQ(l.services[0].cluster_ip.s_addr, 0);
	EXPECT_EQ(l.services[0].ports[0].target_port, 80);
	zm_lab_free(&l);
}


