// SPDX-License-Identifier: Apache-2.0
/*
 * Ambient L7 upstream: the waypoint forwards to a meshed endpoint over
 * HBONE (mutual TLS to <pod ip>:15008, its own certificate), so STRICT
 * PeerAuthentication holds, the destination's ztunnel sees the waypoint's
 * identity, and an L4 policy can lock a backend to its waypoint.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../harness/test.h"
#include "labkit.h"

/* web-v1 (meshed) and web-v2 (dataplane-mode none) on n2; client, rogue and the waypoint on n1. */
FIXTURE(hb) {
	struct labkit k;
	char log[128];
};

FIXTURE_SETUP(hb)
{
	static const struct lab_pod pods[] = {
		{ .name = "client", .ns = "shop", .node = 1, .labels = "{app: client}", .sa = "default",
		  .serve = "--http, \"8080\"" },
		{ .name = "rogue", .ns = "shop", .node = 1, .labels = "{app: rogue}", .sa = "rogue",
		  .serve = "--http, \"8080\"" },
		{ .name = "web-v1", .ns = "shop", .node = 2, .labels = "{app: web, version: v1}", .sa = "default",
		  .serve = "--http, \"8080\"" },
		{ .name = "web-v2", .ns = "shop", .node = 2, .labels = "{app: web, version: v2, istio.io/dataplane-mode: none}",
		  .sa = "default", .serve = "--http, \"8080\"" },
	};

	REQUIRE_ROOT();
	lab_init(&self->k, "h", NULL);
	snprintf(self->log, sizeof(self->log), "/run/zmesh/lab/%s/logs/shop_waypoint.log", self->k.lab);
	ASSERT_OK(lab_write(&self->k, LAB_SHOP_WEB_CANARY LAB_DOC
			    "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: rogue, namespace: shop}\n",
			    pods, sizeof(pods) / sizeof(pods[0])));
	ASSERT_EQ(lab_start(&self->k, NULL, NULL, NULL, 0), 0);
	/* STRICT mesh-wide: ztunnel refuses plaintext to meshed pods. */
	ASSERT_EQ(lab_apply(self->k.lab, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
			    "metadata: {name: default, namespace: istio-system}\nspec:\n  mtls: {mode: STRICT}\n"), 0);
	ASSERT_EQ(test_sh(NULL, 0, "%s waypoint apply -n shop --enroll-namespace --node n1 --lab %s", lab_ctl(),
			  self->k.lab), 0);
}

FIXTURE_TEARDOWN(hb)
{
	lab_stop(&self->k);
}

static int curl_from(struct zm_fixture_hb *self, const char *pod, char *out, size_t sz, const char *args)
{
	return test_sh(out, sz, "%s lab exec %s -n shop --name %s -- curl -s -m 5 %s", lab_ctl(), pod,
		       self->k.lab, args);
}

/* The status of GET http://web/ from the client (through the waypoint), until @want or 15 s. */
static bool web_answers(struct zm_fixture_hb *self, const char *args, const char *want)
{
	char cmd[256], out[8192];
	time_t end = time(NULL) + 15;

	snprintf(cmd, sizeof(cmd), "-o /dev/null -w '%%{http_code}' %s http://web/", args);
	do {
		if (curl_from(self, "client", out, sizeof(out), cmd) == 0 && !strcmp(out, want))
			return true;
		usleep(200000);
	} while (time(NULL) < end);
	test_log("last answer: %s", out);
	return false;
}

/* Wait until the waypoint is in the path: it adds x-request-id (echoapp
 * echoes the headers it got) and routes the canary to v2. */
/* Within 20 s, a request with curl options @opt reaches @pod through the waypoint. */
static bool answers_via_waypoint(struct zm_fixture_hb *self, const char *opt, const char *pod)
{
	char out[8192], want[128];
	time_t end = time(NULL) + 20;

	snprintf(want, sizeof(want), "\"pod\":\"%s\"", pod);
	do {
		char args[256];

		snprintf(args, sizeof(args), "%s http://web/", opt);
		if (curl_from(self, "client", out, sizeof(out), args) == 0 && strstr(out, want) &&
		    strstr(out, "\"x-request-id\""))
			return true;
		usleep(200000);
	} while (time(NULL) < end);
	return false;
}

static bool via_waypoint(struct zm_fixture_hb *self)
{
	return answers_via_waypoint(self, "-H 'x-canary: yes'", "web-v2");
}

TEST_F(hb, strict_mesh_wide_waypoint_reaches_backend_with_its_identity)
{
	static char out[65536];
	char v1[64];
	int ok = 0;

	ASSERT_TRUE(via_waypoint(self));
	/* The mesh has converged once web-v1's ztunnel knows the new waypoint
	 * pod (it learns it from zmeshd's push, ~100 ms after `waypoint
	 * apply`); from then on every request must pass. */
	ASSERT_TRUE(answers_via_waypoint(self, "", "web-v1"));
	ASSERT_EQ(lab_pod_ip(self->k.lab, "web-v1", v1, sizeof(v1)), 0);
	for (int i = 0; i < 10; i++) {
		if (curl_from(self, "client", out, sizeof(out), "http://web/") == 0 &&
		    strstr(out, "\"pod\":\"web-v1\"") && strstr(out, "\"x-request-id\""))
			ok++;
		else
			test_log("request %d: %.300s", i, out);
	}
	EXPECT_EQ(ok, 10);
	/* The non-meshed endpoint (web-v2) is still reached, in plaintext. */
	ASSERT_EQ(curl_from(self, "client", out, sizeof(out), "-H 'x-canary: yes' http://web/"), 0);
	EXPECT_STRSTR(out, "\"pod\":\"web-v2\"");
	/* The waypoint's log: the client's identity in, web-v1 out. */
	ASSERT_EQ(test_sh(out, sizeof(out), "grep 'outbound|80|v1|' %s | tail -n 1", self->log), 0);
	EXPECT_STRSTR(out, "\"source_principal\":\"spiffe://cluster.local/ns/shop/sa/default\"");
	EXPECT_STRSTR(out, "\"response_code\":200");
	/* The backend's ztunnel (n2) saw HBONE from the waypoint's identity. */
	lab_metrics(self->k.lab, self->k.n2, out, sizeof(out));
	EXPECT_STRSTR(out, "reporter=\"destination\",source_workload=\"waypoint\",source_workload_namespace=\"shop\","
		      "source_principal=\"spiffe://cluster.local/ns/shop/sa/waypoint\",destination_workload=\"web\"");
	EXPECT_STRSTR(out, "source_principal=\"spiffe://cluster.local/ns/shop/sa/waypoint\",destination_workload=\"web\","
		      "destination_workload_namespace=\"shop\",destination_principal=\"spiffe://cluster.local/ns/shop/sa/default\","
		      "connection_security_policy=\"mutual_tls\"");
	ASSERT_EQ(test_sh(out, sizeof(out), "grep '\"type\":\"access\"' /run/zmesh/lab/%s/logs/ztunnel-n2.log | "
			  "grep '\"dst.addr\":\"%s:8080\"' | tail -n 1 | python3 -c \"import json,sys; "
			  "d=json.load(sys.stdin); print(d['src.identity'], d['dst.identity'], d['protocol'])\"",
			  self->k.lab, v1), 0);
	EXPECT_STREQ(out, "spiffe://cluster.local/ns/shop/sa/waypoint spiffe://cluster.local/ns/shop/sa/default HBONE\n");
	/* Several requests, few connections: HBONE connections are pooled per pod. */
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab exec waypoint -n shop --name %s -- ss -tn state established "
			  "dst %s:15008 | grep -c 15008", lab_ctl(), self->k.lab, v1), 0);
	EXPECT_EQ(atoi(out), 1);
	/* 150 client connections at once need 150 streams: a second connection
	 * (100 streams each), and no request fails. */
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab exec client -n shop --name %s -- loadgen --target web:80 "
			  "--proto http1 --conns 150 --duration 3 --warmup 0 -o json | python3 -c \"import json,sys; "
			  "d=json.load(sys.stdin); print(d['requests'] > 0, d['errors'])\"", lab_ctl(), self->k.lab), 0);
	EXPECT_STREQ(out, "True 0\n");
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab exec waypoint -n shop --name %s -- ss -tn state established "
			  "dst %s:15008 | grep -c 15008", lab_ctl(), self->k.lab, v1), 0);
	EXPECT_GE(atoi(out), 2);
	EXPECT_LE(atoi(out), 3);
}

TEST_F(hb, only_tls_to_15008_on_the_wire_between_waypoint_and_backend)
{
	char out[8192], v1[64], wp[64], pcap[96];

	ASSERT_TRUE(via_waypoint(self));
	ASSERT_EQ(lab_pod_ip(self->k.lab, "web-v1", v1, sizeof(v1)), 0);
	ASSERT_EQ(lab_pod_ip(self->k.lab, "waypoint", wp, sizeof(wp)), 0);
	snprintf(pcap, sizeof(pcap), "/tmp/zm-l7hb-%d.pcap", getpid());
	/* On the backend's node, everything between the waypoint and web-v1. */
	ASSERT_EQ(test_sh(NULL, 0, "%s lab exec --node n2 --name %s -- sh -c 'timeout 8 tcpdump -i any -nn -U "
			  "-w %s host %s and host %s >/dev/null 2>&1 &'", lab_ctl(), self->k.lab, pcap, wp, v1), 0);
	usleep(1500000);
	for (int i = 0; i < 5; i++)
		curl_from(self, "client", NULL, 0, "-H 'x-marker: zm-plaintext-marker' http://web/");
	/* a new connection too (the pooled one may predate the capture) */
	usleep(7000000);
	ASSERT_EQ(test_sh(out, sizeof(out), "tcpdump -nn -r %s 2>/dev/null | wc -l", pcap), 0);
	EXPECT_GT(atoi(out), 0);
	ASSERT_EQ(test_sh(out, sizeof(out), "tcpdump -nn -r %s 'not port 15008' 2>/dev/null | wc -l", pcap), 0);
	EXPECT_EQ(atoi(out), 0);
	/* and the payload is not readable */
	ASSERT_EQ(test_sh(out, sizeof(out), "tcpdump -nn -A -r %s 2>/dev/null | grep -c zm-plaintext-marker; true",
			  pcap), 0);
	EXPECT_EQ(atoi(out), 0);
	unlink(pcap);
}

TEST_F(hb, l4_policy_locks_the_backend_to_its_waypoint)
{
	char out[8192], v1[64];

	ASSERT_TRUE(via_waypoint(self));
	ASSERT_EQ(lab_pod_ip(self->k.lab, "web-v1", v1, sizeof(v1)), 0);
	ASSERT_EQ(lab_apply(self->k.lab, "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
			  "metadata: {name: web-via-waypoint, namespace: shop}\nspec:\n"
			  "  selector: {matchLabels: {app: web}}\n  action: ALLOW\n  rules:\n"
			  "  - from:\n    - source: {principals: [cluster.local/ns/shop/sa/waypoint]}\n"), 0);
	/* A direct connection from another meshed pod is refused by web-v1's ztunnel ... */
	{
		char args[128];
		time_t end = time(NULL) + 15;

		snprintf(args, sizeof(args), "-o /dev/null -w '%%{http_code}' http://%s:8080/", v1);
		do {
			curl_from(self, "rogue", out, sizeof(out), args);
			if (!strcmp(out, "000"))
				break;
			usleep(200000);
		} while (time(NULL) < end);
		EXPECT_STREQ(out, "000");
	}
	/* ... while the same pod through the waypoint gets in. */
	EXPECT_TRUE(web_answers(self, "", "200"));
	ASSERT_EQ(curl_from(self, "rogue", out, sizeof(out), "-o /dev/null -w '%{http_code}' http://web/"), 0);
	EXPECT_STREQ(out, "200");

	/* Deny the waypoint too: its CONNECT is refused (403), a connect failure
	 * for the retry policy: Istio's default retries, then 503 UF,URX. */
	ASSERT_EQ(lab_apply(self->k.lab, "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
			  "metadata: {name: web-via-waypoint, namespace: shop}\nspec:\n"
			  "  selector: {matchLabels: {app: web}}\n  action: ALLOW\n  rules:\n"
			  "  - from:\n    - source: {principals: [cluster.local/ns/shop/sa/nobody]}\n"), 0);
	ASSERT_TRUE(web_answers(self, "", "503"));
	ASSERT_EQ(test_sh(out, sizeof(out), "grep 'outbound|80|v1|' %s | tail -n 1", self->log), 0);
	EXPECT_STRSTR(out, "\"response_flags\":\"UF,URX\"");	/* retries used up: URX, as Envoy */
	EXPECT_STRSTR(out, "\"upstream_attempts\":3");
	/* the canary to the non-meshed web-v2 does not depend on it */
	ASSERT_EQ(curl_from(self, "client", out, sizeof(out), "-H 'x-canary: yes' http://web/"), 0);
	EXPECT_STRSTR(out, "\"pod\":\"web-v2\"");
}

