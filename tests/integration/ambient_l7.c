// SPDX-License-Identifier: Apache-2.0
/*
 * Ambient L7: `zmeshctl waypoint apply` in a lab, and service traffic that
 * ztunnel sends over HBONE to the waypoint, which routes and authorizes it
 * (VirtualService, DestinationRule, AuthorizationPolicy with targetRefs).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../harness/test.h"
#include "labkit.h"

FIXTURE(l7) {
	struct labkit k;
};

FIXTURE_SETUP(l7)
{
	static const struct lab_pod pods[] = {
		{ .name = "client", .ns = "shop", .node = 1, .labels = "{app: client}", .serve = "--http, \"8080\"" },
		{ .name = "web-v1", .ns = "shop", .node = 2, .labels = "{app: web, version: v1}",
		  .serve = "--http, \"8080\"" },
		{ .name = "web-v2", .ns = "shop", .node = 2, .labels = "{app: web, version: v2}",
		  .serve = "--http, \"8080\"" },
	};

	REQUIRE_ROOT();
	lab_init(&self->k, "w", NULL);
	ASSERT_OK(lab_write(&self->k, LAB_SHOP_WEB_CANARY, pods, 3));
	ASSERT_EQ(lab_start(&self->k, NULL, NULL, NULL, 0), 0);
}

FIXTURE_TEARDOWN(l7)
{
	lab_stop(&self->k);
}

/* curl from the client pod; the answering pod's name (echoapp's JSON) in @out. */
static int curl(struct zm_fixture_l7 *self, char *out, size_t sz, const char *args)
{
	return test_sh(out, sz, "%s lab exec client -n shop --name %s -- curl -s -m 5 %s", lab_ctl(),
		       self->k.lab, args);
}

/* Wait until the waypoint is in the path: it adds x-request-id to the
 * request (echoapp echoes the headers it got) and routes the canary to v2. */
static bool via_waypoint(struct zm_fixture_l7 *self)
{
	char out[8192];
	time_t end = time(NULL) + 15;

	do {
		if (curl(self, out, sizeof(out), "-H 'x-canary: yes' http://web/") == 0 &&
		    strstr(out, "\"pod\":\"web-v2\"") && strstr(out, "\"x-request-id\""))
			return true;
		usleep(200000);
	} while (time(NULL) < end);
	return false;
}

TEST_F(l7, waypoint_apply_puts_l7_routing_in_the_path)
{
	static char out[65536];
	int v1 = 0;

	ASSERT_EQ(test_sh(out, sizeof(out), "%s waypoint apply -n shop --enroll-namespace --lab %s", lab_ctl(),
			  self->k.lab), 0);
	EXPECT_STRSTR(out, "waypoint shop/waypoint applied");
	EXPECT_STRSTR(out, "namespace shop labeled with \"istio.io/use-waypoint=waypoint\"");
	ASSERT_TRUE(via_waypoint(self));
	/* Without the header: always v1, as the VirtualService says. */
	for (int i = 0; i < 20; i++) {
		if (curl(self, out, sizeof(out), "http://web/") == 0 && strstr(out, "\"pod\":\"web-v1\""))
			v1++;
		else
			test_log("request %d: %.300s", i, out);
	}
	EXPECT_EQ(v1, 20);
	/* The waypoint saw the client's verified identity (HBONE from its ztunnel). */
	ASSERT_EQ(test_sh(out, sizeof(out), "tail -n 5 /run/zmesh/lab/%s/logs/shop_waypoint.log", self->k.lab), 0);
	EXPECT_STRSTR(out, "\"source_principal\":\"spiffe://cluster.local/ns/shop/sa/default\"");
	EXPECT_STRSTR(out, "\"upstream_cluster\":\"outbound|80|v1|web.shop.svc.cluster.local\"");
	/* The client's ztunnel reports the tunnel to the waypoint's identity. */
	lab_metrics(self->k.lab, self->k.n1, out, sizeof(out));
	EXPECT_STRSTR(out, "destination_workload=\"waypoint\",destination_workload_namespace=\"shop\","
		      "destination_principal=\"spiffe://cluster.local/ns/shop/sa/waypoint\"");
	ASSERT_EQ(test_sh(out, sizeof(out), "%s waypoint list --lab %s", lab_ctl(), self->k.lab), 0);
	EXPECT_STRSTR(out, "namespace/shop");
}

TEST_F(l7, service_label_opts_in_and_none_opts_out)
{
	char out[8192];

	ASSERT_EQ(test_sh(NULL, 0, "%s waypoint apply -n shop --lab %s && %s lab label service web -n shop "
			  "istio.io/use-waypoint=waypoint --name %s", lab_ctl(), self->k.lab, lab_ctl(), self->k.lab), 0);
	ASSERT_TRUE(via_waypoint(self));
	/* "none" on the service: straight to an endpoint again (the header means nothing). */
	ASSERT_EQ(test_sh(NULL, 0, "%s lab label service web -n shop istio.io/use-waypoint=none --name %s",
			  lab_ctl(), self->k.lab), 0);
	usleep(1500000);
	ASSERT_EQ(curl(self, out, sizeof(out), "-H 'x-canary: yes' http://web/"), 0);
	EXPECT_FALSE(strstr(out, "\"x-request-id\""));
	EXPECT_STRSTR(out, "\"pod\":\"web-v");
	ASSERT_EQ(test_sh(out, sizeof(out), "grep -c 'outbound|80|' /run/zmesh/lab/%s/logs/shop_waypoint.log",
			  self->k.lab), 0);
	{
		int before = atoi(out);

		for (int i = 0; i < 5; i++)
			curl(self, NULL, 0, "http://web/");
		ASSERT_EQ(test_sh(out, sizeof(out), "grep -c 'outbound|80|' /run/zmesh/lab/%s/logs/shop_waypoint.log",
				  self->k.lab), 0);
		EXPECT_EQ(atoi(out), before);	/* the waypoint saw none of them */
	}
}

TEST_F(l7, authorization_policy_on_the_service_is_enforced_by_the_waypoint)
{
	char out[8192];

	ASSERT_EQ(test_sh(NULL, 0, "%s waypoint apply -n shop --enroll-namespace --lab %s", lab_ctl(), self->k.lab), 0);
	ASSERT_TRUE(via_waypoint(self));
	ASSERT_EQ(lab_apply(self->k.lab, "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
			    "metadata: {name: web-readonly, namespace: shop}\nspec:\n"
			    "  targetRefs:\n  - {kind: Service, group: \"\", name: web}\n  action: ALLOW\n  rules:\n"
			    "  - from:\n    - source: {principals: [cluster.local/ns/shop/sa/default]}\n"
			    "    to:\n    - operation: {methods: [GET], paths: [\"/api/*\", \"/\"]}\n"), 0);
	/* Picked up without a restart: POST turns 403 once the new config is in. */
	EXPECT_OK(lab_poll(out, sizeof(out), "403", 50, 200000, "%s lab exec client -n shop --name %s -- curl -s -m 5 "
			   "-o /dev/null -w '%%{http_code}' -X POST http://web/api/x", lab_ctl(), self->k.lab));
	ASSERT_EQ(curl(self, out, sizeof(out), "-o /dev/null -w '%{http_code}' http://web/api/x"), 0);
	EXPECT_STREQ(out, "200");
	/* Normalized before matching: a dot segment cannot reach around the rule. */
	ASSERT_EQ(curl(self, out, sizeof(out), "--path-as-is -o /dev/null -w '%{http_code}' "
		       "http://web/api/../admin"), 0);
	EXPECT_STREQ(out, "403");
}
