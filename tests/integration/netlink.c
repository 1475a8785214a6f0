// SPDX-License-Identifier: Apache-2.0
/*
 * The libmnl helpers against the real kernel: two namespaces joined by a veth
 * made from one of them, addresses, a gateway route, and the errors the lab
 * relies on for rollback (EEXIST, ENODEV).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "../harness/test.h"
#include "zmesh/netlink.h"
#include "zmesh/netns.h"

static char ns_a[64], ns_b[64];

static void del_ns(void *arg)
{
	zm_netns_del(arg);
}

static struct in_addr ip(const char *s)
{
	struct in_addr a;

	inet_pton(AF_INET, s, &a);
	return a;
}

TEST(veth_addr_route_across_netns)
{
	struct zm_nl nl = { 0 };
	int saved = -1, fd_b = -1, rc;
	char out[256];

	REQUIRE_ROOT();
	snprintf(ns_a, sizeof(ns_a), "zm-nltest-a-%d", (int)getpid());
	snprintf(ns_b, sizeof(ns_b), "zm-nltest-b-%d", (int)getpid());
	ASSERT_EQ(zm_netns_add(ns_a), 0);
	test_defer(del_ns, ns_a);
	ASSERT_EQ(zm_netns_add(ns_b), 0);
	test_defer(del_ns, ns_b);
	fd_b = zm_netns_open(ns_b);
	ASSERT_GE(fd_b, 0);

	/* In a: veth va here, vb moved straight into b. */
	ASSERT_EQ(zm_netns_enter(ns_a, &saved), 0);
	rc = zm_nl_open(&nl);
	if (!rc)
		rc = zm_nl_veth_add(&nl, "va", -1, "vb", fd_b);
	if (!rc)
		rc = zm_nl_addr_add(&nl, "va", ip("10.250.0.1"), 30);
	if (!rc)
		rc = zm_nl_addr_add(&nl, "lo", ip("10.251.0.1"), 32);
	if (!rc)
		rc = zm_nl_link_up(&nl, "va");
	/* The same name again must fail cleanly, not replace. */
	int dup = rc ? 0 : zm_nl_veth_add(&nl, "va", -1, "vc", -1);
	int nodev = rc ? 0 : zm_nl_link_up(&nl, "nosuchif0");
	zm_nl_close(&nl);
	zm_netns_restore(saved);
	ASSERT_EQ(rc, 0);
	EXPECT_EQ(dup, -EEXIST);
	EXPECT_EQ(nodev, -ENODEV);

	/* In b: address, up, and reach a's loopback address through a gateway. */
	ASSERT_EQ(zm_netns_enter(ns_b, &saved), 0);
	rc = zm_nl_open(&nl);
	if (!rc)
		rc = zm_nl_addr_add(&nl, "vb", ip("10.250.0.2"), 30);
	if (!rc)
		rc = zm_nl_link_up(&nl, "vb");
	if (!rc)
		rc = zm_nl_route_add(&nl, ip("10.251.0.0"), 24, ip("10.250.0.1"), "vb", 0);
	zm_nl_close(&nl);
	zm_netns_restore(saved);
	close(fd_b);
	ASSERT_EQ(rc, 0);

	EXPECT_EQ(test_sh(out, sizeof(out), "ip -n %s -o link show vb", ns_b), 0);
	EXPECT_EQ(test_sh(out, sizeof(out), "ip -n %s route get 10.251.0.1 | grep -q 'via 10.250.0.1'", ns_b), 0);
	/*
	 * Real TCP across the veth: nothing listens on a's port, so a prompt
	 * "refused" proves the SYN went out and the RST came back through the
	 * route; a timeout (status 124) would mean no path.
	 */
	rc = test_sh(out, sizeof(out),
		"ip netns exec %s timeout 5 bash -c 'exec 3<>/dev/tcp/10.251.0.1/7777' 2>&1", ns_b);
	EXPECT_NE(rc, 124);
	EXPECT_TRUE(strstr(out, "refused") != NULL);
}

TEST(link_del_twice)
{
	struct zm_nl nl = { 0 };
	char name[64];
	int saved = -1, rc, rc2 = 0;

	REQUIRE_ROOT();
	snprintf(name, sizeof(name), "zm-nltest-d-%d", (int)getpid());
	snprintf(ns_a, sizeof(ns_a), "%s", name);
	ASSERT_EQ(zm_netns_add(ns_a), 0);
	test_defer(del_ns, ns_a);
	ASSERT_EQ(zm_netns_enter(ns_a, &saved), 0);
	rc = zm_nl_open(&nl);
	if (!rc)
		rc = zm_nl_bridge_add(&nl, "br0");
	if (!rc)
		rc = zm_nl_link_del(&nl, "br0");
	if (!rc)
		rc2 = zm_nl_link_del(&nl, "br0");
	zm_nl_close(&nl);
	zm_netns_restore(saved);
	ASSERT_EQ(rc, 0);
	EXPECT_EQ(rc2, -ENODEV);
}
