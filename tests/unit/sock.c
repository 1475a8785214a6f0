// SPDX-License-Identifier: Apache-2.0
/* zm_sock_*: listeners on loopback, address formatting. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../harness/test.h"
#include "zmesh/sock.h"

static void close_fd(void *arg)
{
	close((int)(long)arg);
}

TEST(addr_str_formats)
{
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(8080) };
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(443) };
	struct sockaddr sa = { .sa_family = AF_UNIX };
	char out[ZM_SOCK_ADDRSTRLEN];

	inet_pton(AF_INET, "10.244.1.2", &a4.sin_addr);
	ASSERT_OK(zm_sock_addr_str((struct sockaddr *)&a4, out, sizeof(out)));
	EXPECT_STREQ(out, "10.244.1.2:8080");
	inet_pton(AF_INET6, "fd00::1", &a6.sin6_addr);
	ASSERT_OK(zm_sock_addr_str((struct sockaddr *)&a6, out, sizeof(out)));
	EXPECT_STREQ(out, "[fd00::1]:443");
	/* What a dual-stack socket reports for an IPv4 peer reads as IPv4. */
	inet_pton(AF_INET6, "::ffff:127.0.0.1", &a6.sin6_addr);
	ASSERT_OK(zm_sock_addr_str((struct sockaddr *)&a6, out, sizeof(out)));
	EXPECT_STREQ(out, "127.0.0.1:443");
	inet_pton(AF_INET6, "fe80::1", &a6.sin6_addr);
	a6.sin6_scope_id = 3;
	ASSERT_OK(zm_sock_addr_str((struct sockaddr *)&a6, out, sizeof(out)));
	EXPECT_STREQ(out, "[fe80::1%3]:443");
	EXPECT_EQ(zm_sock_addr_str(&sa, out, sizeof(out)), -EAFNOSUPPORT);
	EXPECT_STREQ(out, "?");
	/* Truncation is safe. */
	ASSERT_OK(zm_sock_addr_str((struct sockaddr *)&a4, out, 4));
	EXPECT_STREQ(out, "10.");
}

TEST(listen_port_zero_and_connect)
{
	int l = zm_sock_listen_tcp(0, 16, ZM_SOCK_REUSEPORT), port, c, a;
	struct sockaddr_in to = { .sin_family = AF_INET };
	char peer[ZM_SOCK_ADDRSTRLEN], local[ZM_SOCK_ADDRSTRLEN], want[64];

	ASSERT_OK(l);
	test_defer(close_fd, (void *)(long)l);
	port = zm_sock_local_port(l);
	ASSERT_GT(port, 0);
	/* SO_REUSEPORT: a second listener on the same port works. */
	int l2 = zm_sock_listen_tcp(port, 16, ZM_SOCK_REUSEPORT);

	ASSERT_OK(l2);
	test_defer(close_fd, (void *)(long)l2);
	/* Without it, the port is taken. */
	EXPECT_EQ(zm_sock_listen_tcp(port, 16, 0), -EADDRINUSE);

	c = socket(AF_INET, SOCK_STREAM, 0);
	ASSERT_OK(c);
	test_defer(close_fd, (void *)(long)c);
	to.sin_port = htons((uint16_t)port);
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ASSERT_OK(connect(c, (struct sockaddr *)&to, sizeof(to)));
	ASSERT_OK(zm_sock_local_str(c, local, sizeof(local)));
	for (int i = 0; i < 100; i++) {
		a = accept(l, NULL, NULL);
		if (a < 0)
			a = accept(l2, NULL, NULL);
		if (a >= 0)
			break;
		usleep(10000);
	}
	ASSERT_OK(a);
	test_defer(close_fd, (void *)(long)a);
	/* The accepting side sees the client's address as the client does. */
	ASSERT_OK(zm_sock_peer_str(a, peer, sizeof(peer)));
	EXPECT_STREQ(peer, local);
	snprintf(want, sizeof(want), "127.0.0.1:%d", port);
	ASSERT_OK(zm_sock_local_str(a, local, sizeof(local)));
	EXPECT_STREQ(local, want);
	EXPECT_EQ(zm_sock_listen_tcp(70000, 16, 0), -EINVAL);
}
