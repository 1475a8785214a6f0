// SPDX-License-Identifier: Apache-2.0
/* `make demo` works end to end and leaves nothing behind. */
#include <stdio.h>
#include <string.h>

#include "../harness/test.h"

TEST(demo_shows_traffic_and_tears_down)
{
	static char out[65536];
	char root[4096];

	REQUIRE_ROOT();
	snprintf(root, sizeof(root), "%s/..", test_build_dir());
	/* stdin is not a terminal: the demo tears down on its own. */
	ASSERT_EQ(test_sh(out, sizeof(out), "cd %s && ZMESH_LAB=demot scripts/demo.sh </dev/null",
			  root), 0);
	EXPECT_STRSTR(out, "lab demot up: 2 nodes, 7 pods, 4 services");
	EXPECT_STRSTR(out, "-> http://order-service:8080/orders    order-v1 (node-1) x20 errors 0");
	/* Which payment pods answer is up to kube-proxy's random choice per
	 * connection: only that payment-service answered is certain. */
	EXPECT_STRSTR(out, "-> http://payment-service:8080/pay     payment-v");
	EXPECT_STRSTR(out, "legacy-client  (node-1) -> http://product-service.ecommerce.svc.cluster.local:8080/  product-v1 (node-2) x10 errors 0");
	EXPECT_STRSTR(out, "\"namespace\": \"ecommerce\"");
	EXPECT_FALSE(strstr(out, "errors 1"));
	EXPECT_EQ(test_sh(out, sizeof(out), "ls /run/netns | grep -c zm-demot-"), 1);
	EXPECT_STREQ(out, "0\n");
}
