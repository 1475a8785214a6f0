// SPDX-License-Identifier: Apache-2.0
/*
 * The ingress gateway in a meshed lab: traffic from outside enters the mesh
 * over HBONE with the gateway's own identity, so it works under STRICT
 * mTLS and an AuthorizationPolicy can admit the gateway and nobody else.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../harness/test.h"
#include "labkit.h"

FIXTURE(gm) {
	struct labkit k;
};

FIXTURE_SETUP(gm)
{
	static const struct lab_pod pods[] = {
		{ .name = "web", .ns = "shop", .node = 2, .labels = "{app: web}" },
		{ .name = "other", .ns = "shop", .node = 1, .labels = "{app: other}", .serve = "--http, \"8080\"" },
	};

	REQUIRE_ROOT();
	lab_init(&self->k, "m", NULL);
	ASSERT_OK(lab_write(&self->k,
			    "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {istio.io/dataplane-mode: ambient}}\n---\n"
			    "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
			    "spec:\n  selector: {app: web}\n  ports:\n  - {name: http, port: 8080}\n---\n"
			    "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: shop}\n"
			    "spec:\n  selector: {istio: ingressgateway}\n  servers:\n"
			    "  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [web.example.com]\n---\n"
			    "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: web, namespace: shop}\n"
			    "spec:\n  hosts: [web.example.com]\n  gateways: [gw]\n  http:\n"
			    "  - route:\n    - destination: {host: web, port: {number: 8080}}\n", pods, 2));
	ASSERT_EQ(lab_start(&self->k, NULL, NULL, NULL, 0), 0);
}

FIXTURE_TEARDOWN(gm)
{
	lab_stop(&self->k);
}

/* The HTTP status the outside client gets for web.example.com, polled until @want (10 s). */
static bool outside_gets(struct zm_fixture_gm *self, const char *want)
{
	char out[256];
	time_t end = time(NULL) + 10;

	do {
		if (test_sh(out, sizeof(out), "%s lab exec --outside --name %s -- curl -s -m 3 -o /dev/null "
			    "-w %%{http_code} http://web.example.com/", lab_ctl(), self->k.lab) == 0 && !strcmp(out, want))
			return true;
		usleep(200000);
	} while (time(NULL) < end);
	test_log("last answer: %s", out);
	return false;
}

TEST_F(gm, outside_traffic_enters_the_mesh_as_the_gateway)
{
	char out[65536];

	ASSERT_TRUE(outside_gets(self, "200"));
	/* STRICT everywhere: plaintext into the mesh would be refused; HBONE is not. */
	ASSERT_EQ(lab_apply(self->k.lab, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
			"metadata: {name: default, namespace: istio-system}\nspec:\n  mtls: {mode: STRICT}\n"), 0);
	/* Lock web to the gateway's identity. */
	ASSERT_EQ(lab_apply(self->k.lab, "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
			"metadata: {name: web-from-gateway, namespace: shop}\nspec:\n"
			"  selector: {matchLabels: {app: web}}\n  rules:\n  - from:\n"
			"    - source: {principals: [cluster.local/ns/istio-system/sa/istio-ingressgateway]}\n"), 0);
	/* Another meshed pod is refused once the policy is in... */
	for (int i = 0; i < 50; i++) {
		if (test_sh(NULL, 0, "%s lab exec other -n shop --name %s -- echoapp client http://web:8080/ -n 1 "
			    "--timeout 1500", lab_ctl(), self->k.lab) != 0)
			break;
		usleep(200000);
	}
	EXPECT_NE(test_sh(NULL, 0, "%s lab exec other -n shop --name %s -- echoapp client http://web:8080/ -n 1 "
			  "--timeout 1500", lab_ctl(), self->k.lab), 0);
	/* ...while the outside still gets in, through the gateway. */
	EXPECT_TRUE(outside_gets(self, "200"));
	ASSERT_EQ(test_sh(out, sizeof(out), "grep -h '\"reporter\":\"destination\"' /run/zmesh/lab/%s/logs/ztunnel-n2.log "
			  "| grep '\"dst.workload\":\"web\"' | tail -1", self->k.lab), 0);
	EXPECT_STRSTR(out, "\"protocol\":\"HBONE\"");
	EXPECT_STRSTR(out, "\"src.identity\":\"spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway\"");
}
