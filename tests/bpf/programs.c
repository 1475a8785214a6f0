// SPDX-License-Identifier: Apache-2.0
/*
 * BPF programs run through BPF_PROG_TEST_RUN with crafted input, table-driven:
 * the TC program's STRICT drop and counters, sk_lookup's decisions.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../harness/test.h"
#include "bpf/inbound.skel.h"
#include "bpf/tc.skel.h"
#include "zmesh/bpf_loader.h"

#define STRICT_IP "10.244.1.2"
#define PLAIN_IP "10.244.1.3"

struct pkt {
	struct ethhdr eth;
	struct iphdr ip;
	struct tcphdr tcp;
} __attribute__((packed));

static void make_pkt(struct pkt *p, const char *dst, int proto, int dport, bool syn, bool ack)
{
	memset(p, 0, sizeof(*p));
	p->eth.h_proto = htons(ETH_P_IP);
	p->ip.version = 4;
	p->ip.ihl = 5;
	p->ip.ttl = 64;
	p->ip.protocol = (unsigned char)proto;
	p->ip.tot_len = htons(sizeof(p->ip) + sizeof(p->tcp));
	inet_pton(AF_INET, "10.244.0.2", &p->ip.saddr);
	inet_pton(AF_INET, dst, &p->ip.daddr);
	p->tcp.source = htons(40000);
	p->tcp.dest = htons((uint16_t)dport);
	p->tcp.doff = 5;
	p->tcp.syn = syn;
	p->tcp.ack = ack;
}

FIXTURE(progs) {
	char node[32];
	char root[64];
	struct tc *tc;
	struct inbound *in;
};

FIXTURE_SETUP(progs)
{
	uint32_t strict = ZM_POD_ENROLLED | ZM_POD_STRICT, plain = ZM_POD_ENROLLED, ip;
	struct zm_pod_stats zero = { 0 };
	char dir[128];

	REQUIRE_ROOT();
	/* Maps are pinned by name: give them a directory of our own. */
	snprintf(self->node, sizeof(self->node), "progtest-%d", getpid());
	snprintf(dir, sizeof(dir), "%s/%s", ZM_BPF_PIN_ROOT, self->node);
	ASSERT_EQ(test_sh(NULL, 0, "mkdir -p %s", dir), 0);
	LIBBPF_OPTS(bpf_object_open_opts, oo, .pin_root_path = dir);
	self->tc = tc__open_opts(&oo);
	ASSERT_OK_PTR(self->tc);
	ASSERT_OK(tc__load(self->tc));
	self->in = inbound__open_opts(&oo);
	ASSERT_OK_PTR(self->in);
	ASSERT_OK(inbound__load(self->in));
	inet_pton(AF_INET, STRICT_IP, &ip);
	ASSERT_OK(bpf_map_update_elem(bpf_map__fd(self->tc->maps.zm_pod_ips), &ip, &strict, BPF_ANY));
	ASSERT_OK(bpf_map_update_elem(bpf_map__fd(self->tc->maps.zm_pod_stats), &ip, &zero, BPF_ANY));
	inet_pton(AF_INET, PLAIN_IP, &ip);
	ASSERT_OK(bpf_map_update_elem(bpf_map__fd(self->tc->maps.zm_pod_ips), &ip, &plain, BPF_ANY));
}

FIXTURE_TEARDOWN(progs)
{
	if (!self->node[0])
		return;
	tc__destroy(self->tc);
	inbound__destroy(self->in);
	zm_bpf__destroy(NULL, self->node, NULL);
}

enum { OK = 0, SHOT = 2 };

static const struct {
	const char *name, *dst;
	int proto, dport;
	bool syn, ack;
	int verdict;
} tc_cases[] = {
	{ "strict: plaintext SYN dropped", STRICT_IP, IPPROTO_TCP, 8080, true, false, SHOT },
	{ "strict: HBONE SYN passes", STRICT_IP, IPPROTO_TCP, 15008, true, false, OK },
	{ "strict: SYN-ACK passes", STRICT_IP, IPPROTO_TCP, 8080, true, true, OK },
	{ "strict: established segment passes", STRICT_IP, IPPROTO_TCP, 8080, false, true, OK },
	{ "strict: UDP passes", STRICT_IP, IPPROTO_UDP, 8080, true, false, OK },
	{ "permissive: plaintext SYN passes", PLAIN_IP, IPPROTO_TCP, 8080, true, false, OK },
	{ "unknown pod passes", "10.9.9.9", IPPROTO_TCP, 8080, true, false, OK },
};

TEST_F(progs, tc_to_pod_verdicts)
{
	int fd = bpf_program__fd(self->tc->progs.zm_tc_to_pod);
	struct zm_pod_stats st;
	uint32_t ip;

	for (size_t i = 0; i < sizeof(tc_cases) / sizeof(tc_cases[0]); i++) {
		struct pkt p;
		LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = &p, .data_size_in = sizeof(p));

		make_pkt(&p, tc_cases[i].dst, tc_cases[i].proto, tc_cases[i].dport, tc_cases[i].syn,
			 tc_cases[i].ack);
		ASSERT_OK(bpf_prog_test_run_opts(fd, &o));
		if (!EXPECT_EQ(o.retval, tc_cases[i].verdict))
			test_log("case: %s", tc_cases[i].name);
	}
	/* Not IPv4 (ARP): passed untouched, not counted. */
	{
		struct pkt p;
		LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = &p, .data_size_in = sizeof(p));

		make_pkt(&p, STRICT_IP, IPPROTO_TCP, 8080, true, false);
		p.eth.h_proto = htons(ETH_P_ARP);
		ASSERT_OK(bpf_prog_test_run_opts(fd, &o));
		EXPECT_EQ(o.retval, OK);
	}
	inet_pton(AF_INET, STRICT_IP, &ip);
	ASSERT_OK(bpf_map_lookup_elem(bpf_map__fd(self->tc->maps.zm_pod_stats), &ip, &st));
	EXPECT_EQ(st.to_pod_pkts, 5);
	EXPECT_EQ(st.strict_drops, 1);
	EXPECT_EQ(st.to_pod_bytes, 5 * sizeof(struct pkt));
}

TEST_F(progs, sk_lookup_decisions)
{
	int fd = bpf_program__fd(self->in->progs.zm_sk_lookup);
	static const struct {
		const char *name, *src, *dst;
		int port, want;
	} cases[] = {
		/* No ztunnel listener registered in these cases. */
		{ "strict pod, no listener: dropped", "10.244.0.2", STRICT_IP, 8080, 0 },
		{ "permissive pod, no listener: passes", "10.244.0.2", PLAIN_IP, 8080, 1 },
		{ "from the pod itself: passes", STRICT_IP, STRICT_IP, 8080, 1 },
		{ "from loopback: passes", "127.0.0.1", STRICT_IP, 8080, 1 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct bpf_sk_lookup ctx = { .family = AF_INET, .protocol = IPPROTO_TCP,
					     .local_port = (uint32_t)cases[i].port, .remote_port = htons(40000) };
		LIBBPF_OPTS(bpf_test_run_opts, o, .ctx_in = &ctx, .ctx_size_in = sizeof(ctx));

		inet_pton(AF_INET, cases[i].src, &ctx.remote_ip4);
		inet_pton(AF_INET, cases[i].dst, &ctx.local_ip4);
		if (bpf_prog_test_run_opts(fd, &o) == -EOPNOTSUPP)
			SKIP("BPF_PROG_TEST_RUN for sk_lookup needs Linux 5.14");
		if (!EXPECT_EQ(o.retval, cases[i].want))
			test_log("case: %s", cases[i].name);
	}
}
