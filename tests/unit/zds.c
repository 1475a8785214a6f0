// SPDX-License-Identifier: Apache-2.0
/* ZDS messages (zds.h): round trips, errors that name the field, framing over
 * a real seqpacket pair with fds, and a fuzz-ish pass of mutated input. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../harness/test.h"
#include "zmesh/zds.h"

static const char good_add[] =
	"{\"type\":\"add\",\"workload\":{\"uid\":\"0b7c-11\",\"namespace\":\"mesh\",\"name\":\"a\","
	"\"service_account\":\"web\",\"node\":\"n1\",\"ip\":\"10.244.0.2\",\"cgroup\":\"/sys/fs/cgroup/zmesh/x/pods/mesh_a\","
	"\"host_interface\":\"zp0\",\"labels\":{\"app\":\"a\",\"version\":\"v1\"}}}";

static void msg_cleanup(void *arg)
{
	zm_zds_msg_free(arg);
}

static void buf_cleanup(void *arg)
{
	zm_buf_free(arg);
}

TEST(add_parses_every_field)
{
	static struct zm_zds_msg m;
	struct zm_error e = { 0 };

	test_defer(msg_cleanup, &m);
	ASSERT_OK(zm_zds_parse(good_add, strlen(good_add), &m, &e));
	EXPECT_EQ(m.type, ZM_ZDS_ADD);
	EXPECT_STREQ(m.w.uid, "0b7c-11");
	EXPECT_STREQ(m.w.ns, "mesh");
	EXPECT_STREQ(m.w.name, "a");
	EXPECT_STREQ(m.w.sa, "web");
	EXPECT_STREQ(m.w.node, "n1");
	EXPECT_STREQ(inet_ntoa(m.w.ip), "10.244.0.2");
	EXPECT_STREQ(m.w.cgroup, "/sys/fs/cgroup/zmesh/x/pods/mesh_a");
	EXPECT_STREQ(m.w.host_if, "zp0");
	EXPECT_STREQ(zm_labels_get(&m.w.labels, "version"), "v1");
}

TEST(encode_then_parse_is_the_same_message)
{
	static struct zm_zds_msg m, back;
	static struct zm_buf b;
	struct zm_error e = { 0 };
	const unsigned char *p;

	test_defer(msg_cleanup, &m);
	test_defer(msg_cleanup, &back);
	test_defer(buf_cleanup, &b);
	ASSERT_OK(zm_zds_parse(good_add, strlen(good_add), &m, &e));
	ASSERT_OK(zm_zds_encode(&m, &b));
	p = (const unsigned char *)zm_buf_data(&b);
	ASSERT_EQ((size_t)(p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]), zm_buf_len(&b) - 4);
	ASSERT_OK(zm_zds_parse(zm_buf_data(&b) + 4, zm_buf_len(&b) - 4, &back, &e));
	EXPECT_STREQ(back.w.uid, m.w.uid);
	EXPECT_STREQ(back.w.cgroup, m.w.cgroup);
	EXPECT_EQ(back.w.ip.s_addr, m.w.ip.s_addr);
	EXPECT_EQ(back.w.labels.n, 2);
	/* del / keep / snapshot_sent */
	zm_buf_reset(&b);
	zm_zds_msg_free(&back);
	memset(&m, 0, sizeof(m));
	m.type = ZM_ZDS_DEL;
	strcpy(m.uid, "u-1");
	ASSERT_OK(zm_zds_encode(&m, &b));
	ASSERT_OK(zm_zds_parse(zm_buf_data(&b) + 4, zm_buf_len(&b) - 4, &back, &e));
	EXPECT_EQ(back.type, ZM_ZDS_DEL);
	EXPECT_STREQ(back.uid, "u-1");
	zm_buf_reset(&b);
	m.type = ZM_ZDS_SNAPSHOT_SENT;
	ASSERT_OK(zm_zds_encode(&m, &b));
	ASSERT_STREQ(zm_buf_cstr(&b) + 4, "{\"type\":\"snapshot_sent\"}");
}

/* Each bad message is refused with an error that names the field. */
TEST(bad_messages_name_the_field)
{
	static const struct { const char *json, *err; } cases[] = {
		{ "", "not JSON" },
		{ "garbage", "not JSON" },
		{ "[1,2]", "want an object" },
		{ "{}", "type: missing" },
		{ "{\"type\":7}", "type: want a string" },
		{ "{\"type\":\"reboot\"}", "type: reboot: want add" },
		{ "{\"type\":\"add\"}", "workload: missing" },
		{ "{\"type\":\"add\",\"workload\":3}", "workload: want an object" },
		{ "{\"type\":\"add\",\"workload\":{\"namespace\":\"a\",\"name\":\"b\",\"ip\":\"10.0.0.1\",\"cgroup\":\"/x\"}}",
		  "workload.uid: missing" },
		{ "{\"type\":\"add\",\"workload\":{\"uid\":\"u\",\"namespace\":\"A_B\",\"name\":\"b\",\"ip\":\"10.0.0.1\",\"cgroup\":\"/x\"}}",
		  "workload.namespace: A_B: not a DNS-1123 label" },
		{ "{\"type\":\"add\",\"workload\":{\"uid\":\"u\",\"namespace\":\"a\",\"name\":\"b\",\"ip\":\"10.0.0.300\",\"cgroup\":\"/x\"}}",
		  "workload.ip: 10.0.0.300: want an IPv4 address" },
		{ "{\"type\":\"add\",\"workload\":{\"uid\":\"u\",\"namespace\":\"a\",\"name\":\"b\",\"ip\":\"10.0.0.1\",\"cgroup\":\"x\"}}",
		  "workload.cgroup: want an absolute path" },
		{ "{\"type\":\"add\",\"workload\":{\"uid\":\"u\",\"namespace\":\"a\",\"name\":\"b\",\"ip\":\"10.0.0.1\",\"cgroup\":\"/a/../b\"}}",
		  "workload.cgroup" },
		{ "{\"type\":\"add\",\"workload\":{\"uid\":\"u\",\"namespace\":\"a\",\"name\":\"b\",\"ip\":\"10.0.0.1\",\"cgroup\":\"/x\",\"colour\":\"red\"}}",
		  "workload.colour: unknown field" },
		{ "{\"type\":\"add\",\"workload\":{\"uid\":\"u\",\"namespace\":\"a\",\"name\":\"b\",\"ip\":\"10.0.0.1\",\"cgroup\":\"/x\",\"labels\":{\"k\":1}}}",
		  "workload.labels.k: want a string" },
		{ "{\"type\":\"add\",\"workload\":{\"uid\":\"u\",\"namespace\":\"a\",\"name\":\"b\\u0000c\",\"ip\":\"10.0.0.1\",\"cgroup\":\"/x\"}}",
		  "not JSON" },
		{ "{\"type\":\"del\"}", "uid: missing" },
		{ "{\"type\":\"del\",\"uid\":\"a/b\"}", "uid: want letters" },
		{ "{\"type\":\"del\",\"uid\":\"u\",\"uid\":\"v\"}", "not JSON" },
		{ "{\"type\":\"snapshot_sent\",\"x\":1}", "x: unknown field" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct zm_zds_msg m;
		struct zm_error e = { 0 };

		EXPECT_NE(zm_zds_parse(cases[i].json, strlen(cases[i].json), &m, &e), 0);
		EXPECT_STRSTR(e.msg, cases[i].err);
	}
}

/* Random bytes, truncations and byte flips of valid messages: a clean
 * answer every time (ASan/UBSan watch for the rest), nothing leaks. */
TEST(mutated_input_never_crashes)
{
	static const char *const seeds[] = { good_add, "{\"type\":\"del\",\"uid\":\"u-1\"}",
					     "{\"type\":\"keep\",\"uid\":\"u-1\"}", "{\"type\":\"snapshot_sent\"}" };
	static const char alphabet[] = "{}[]\":,\\u0aZ-./ \x00\xff\xc3";
	char buf[1024];
	unsigned seed = 12345;
	int ok = 0, refused = 0;

	for (int round = 0; round < 20000; round++) {
		const char *s = seeds[round % 4];
		size_t n = strlen(s);
		struct zm_zds_msg m;
		struct zm_error e = { 0 };

		memcpy(buf, s, n);
		if (round % 3 == 0) {
			n = (size_t)rand_r(&seed) % (n + 1);			/* truncated */
		} else {
			for (int k = 1 + rand_r(&seed) % 4; k > 0; k--) {	/* flipped */
				size_t at = (size_t)rand_r(&seed) % n;

				buf[at] = rand_r(&seed) % 2 ? alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)]
							    : (char)rand_r(&seed);
			}
		}
		if (zm_zds_parse(buf, n, &m, &e) == 0) {
			ok++;
			zm_zds_msg_free(&m);
		} else {
			refused++;
			ASSERT_TRUE(e.msg[0] != 0);
		}
	}
	EXPECT_GT(refused, 1000);
	EXPECT_GT(ok, 10);	/* some flips land in values and still read */
}

TEST(oversized_message_is_refused_before_parsing)
{
	struct zm_zds_msg m;
	struct zm_error e = { 0 };

	EXPECT_EQ(zm_zds_parse("{}", ZM_ZDS_MAX_MSG + 1, &m, &e), -EMSGSIZE);
	EXPECT_STRSTR(e.msg, "at most");
}

static void close_pair(void *arg)
{
	int *sv = arg;

	close(sv[0]);
	close(sv[1]);
}

/* Framing over a real seqpacket pair: an fd arrives with its record; bad
 * lengths, two fds and oversized records are told apart. */
TEST(records_and_fds_over_a_socket)
{
	static int sv[2];
	static char buf[4 + ZM_ZDS_MAX_MSG];
	static struct zm_buf b;
	struct zm_error e = { 0 };
	const char *json;
	size_t len;
	int fd, devnull;

	ASSERT_OK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv));
	test_defer(close_pair, sv);
	test_defer(buf_cleanup, &b);
	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ASSERT_GE(devnull, 0);
	ASSERT_OK(zm_zds_encode_ack(NULL, &b));
	ASSERT_OK(zm_zds_send(sv[0], &b, devnull));
	ASSERT_OK(zm_zds_recv(sv[1], buf, sizeof(buf), &json, &len, &fd, &e));
	EXPECT_GE(fd, 0);
	if (fd >= 0)
		close(fd);
	ASSERT_EQ(len, zm_buf_len(&b) - 4);
	{
		char err[64];

		ASSERT_OK(zm_zds_parse_ack(json, len, err, sizeof(err), &e));
		EXPECT_STREQ(err, "");
	}
	/* A length prefix that lies. */
	ASSERT_EQ(send(sv[0], "\x00\x00\x10\x00{}", 6, 0), 6);
	EXPECT_EQ(zm_zds_recv(sv[1], buf, sizeof(buf), &json, &len, &fd, &e), -EPROTO);
	EXPECT_STRSTR(e.msg, "length 4096 but the record holds 2 bytes");
	/* A huge one. */
	ASSERT_EQ(send(sv[0], "\xff\xff\xff\xff{}", 6, 0), 6);
	EXPECT_EQ(zm_zds_recv(sv[1], buf, sizeof(buf), &json, &len, &fd, &e), -EMSGSIZE);
	/* Too short for a prefix. */
	ASSERT_EQ(send(sv[0], "\x00\x00", 2, 0), 2);
	EXPECT_EQ(zm_zds_recv(sv[1], buf, sizeof(buf), &json, &len, &fd, &e), -EPROTO);
	/* Two fds: refused, and both closed on our side. */
	{
		union { char c[CMSG_SPACE(2 * sizeof(int))]; struct cmsghdr al; } ctl = { 0 };
		struct iovec iov = { .iov_base = (void *)"\x00\x00\x00\x02{}", .iov_len = 6 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.c,
				     .msg_controllen = sizeof(ctl.c) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		int two[2] = { devnull, devnull };

		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(two));
		memcpy(CMSG_DATA(c), two, sizeof(two));
		ASSERT_EQ(sendmsg(sv[0], &mh, 0), 6);
		EXPECT_EQ(zm_zds_recv(sv[1], buf, sizeof(buf), &json, &len, &fd, &e), -EINVAL);
		EXPECT_EQ(fd, -1);
		EXPECT_STRSTR(e.msg, "2 file descriptors");
	}
	/* Bigger than the receiver's buffer: truncated, refused. */
	{
		static char big[8192];

		memset(big, ' ', sizeof(big));
		big[0] = 0, big[1] = 0, big[2] = 0x1f, big[3] = (char)0xfc;
		ASSERT_EQ(send(sv[0], big, sizeof(big), 0), (ssize_t)sizeof(big));
		EXPECT_EQ(zm_zds_recv(sv[1], buf, 100, &json, &len, &fd, &e), -EMSGSIZE);
	}
	/* Nothing queued: EAGAIN; the peer gone: json NULL. */
	EXPECT_EQ(zm_zds_recv(sv[1], buf, sizeof(buf), &json, &len, &fd, &e), -EAGAIN);
	close(devnull);
	shutdown(sv[0], SHUT_WR);
	ASSERT_OK(zm_zds_recv(sv[1], buf, sizeof(buf), &json, &len, &fd, &e));
	EXPECT_TRUE(json == NULL);
}

TEST(socket_path_is_keyed_by_node)
{
	char p[128];

	ASSERT_OK(zm_zds_path("zm-lab1-n1", p, sizeof(p)));
	EXPECT_STREQ(p, "/run/zmesh/zm-lab1-n1/ztunnel.sock");
	EXPECT_EQ(zm_zds_path("../etc", p, sizeof(p)), -EINVAL);
	EXPECT_EQ(zm_zds_path("", p, sizeof(p)), -EINVAL);
	{
		char longkey[120];

		memset(longkey, 'k', sizeof(longkey) - 1);
		longkey[sizeof(longkey) - 1] = 0;
		EXPECT_EQ(zm_zds_path(longkey, p, sizeof(p)), -ENAMETOOLONG);
	}
}
