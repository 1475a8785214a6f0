// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* cgroup sock_addr hooks on each enrolled pod's cgroup. */
#include "lib/common.h"
#include "lib/maps.h"

/* ztunnel's outbound listener, inside every enrolled pod's netns. */
const volatile __u16 outbound_port = 15001;

static __always_inline struct zm_pod_cfg *enrolled_pod(void)
{
	__u64 cg = bpf_get_current_cgroup_id();
	struct zm_pod_cfg *pod = bpf_map_lookup_elem(&zm_pods, &cg);

	return pod && (pod->flags & ZM_POD_ENROLLED) ? pod : NULL;
}

/*
 * Hook: cgroup/connect4, egress, for sockets of enrolled pods.
 * Decides: a TCP connect to a non-loopback address goes to 127.0.0.1:15001
 * (ztunnel, listening in the pod's own netns); the original destination is
 * kept in the socket's storage. Anything else is left alone.
 */
SEC("cgroup/connect4")
int zm_connect4(struct bpf_sock_addr *ctx)
{
	struct zm_orig *orig;
	struct bpf_sock *sk;

	if (ctx->type != SOCK_STREAM || !enrolled_pod())
		return 1;
	if (zm_is_loopback4(ctx->user_ip4)) {
		ZM_COUNT(passthrough, 1);
		return 1;
	}
	/* The verifier wants a checked copy of ctx->sk before the helper. */
	sk = ctx->sk;
	if (!sk)
		return 1;
	orig = bpf_sk_storage_get(&zm_orig_sk, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!orig)
		return 0;	/* cannot remember where it went: refuse, never bypass */
	orig->ip = ctx->user_ip4;
	orig->port = (__u16)ctx->user_port;
	orig->family = AF_INET;
	ctx->user_ip4 = bpf_htonl(0x7f000001);
	ctx->user_port = bpf_htons(outbound_port);
	ZM_COUNT(redirected, 1);
	return 1;
}

/*
 * Hook: cgroup/connect6, egress, for sockets of enrolled pods.
 * Decides: as connect4, for IPv6 sockets. A v4-mapped destination
 * (::ffff:a.b.c.d, what dual-stack sockets use for IPv4) goes to
 * ::ffff:127.0.0.1:15001, a native IPv6 one to [::1]:15001: an IPv6 socket
 * must not be a way around the mesh.
 */
SEC("cgroup/connect6")
int zm_connect6(struct bpf_sock_addr *ctx)
{
	struct zm_orig *orig;
	struct bpf_sock *sk;
	__u32 ip6[4];
	int mapped;

	if (ctx->type != SOCK_STREAM || !enrolled_pod())
		return 1;
	ip6[0] = ctx->user_ip6[0];
	ip6[1] = ctx->user_ip6[1];
	ip6[2] = ctx->user_ip6[2];
	ip6[3] = ctx->user_ip6[3];
	mapped = zm_is_v4mapped(ip6);
	if ((mapped && zm_is_loopback4(ip6[3])) ||
	    (!ip6[0] && !ip6[1] && !ip6[2] && ip6[3] == bpf_htonl(1))) {
		ZM_COUNT(passthrough, 1);
		return 1;
	}
	sk = ctx->sk;
	if (!sk)
		return 1;
	orig = bpf_sk_storage_get(&zm_orig_sk, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!orig)
		return 0;
	orig->port = (__u16)ctx->user_port;
	if (mapped) {
		orig->family = AF_INET;
		orig->ip = ip6[3];
		ctx->user_ip6[3] = bpf_htonl(0x7f000001);
	} else {
		orig->family = AF_INET6;
		orig->ip6[0] = ip6[0];
		orig->ip6[1] = ip6[1];
		orig->ip6[2] = ip6[2];
		orig->ip6[3] = ip6[3];
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = 0;
		ctx->user_ip6[3] = bpf_htonl(1);
	}
	ctx->user_port = bpf_htons(outbound_port);
	ZM_COUNT(redirected, 1);
	return 1;
}

/*
 * Hook: cgroup/getpeername4, for sockets of enrolled pods.
 * Decides: a redirected socket reports the address the app connected to,
 * not ztunnel's 127.0.0.1:15001.
 */
SEC("cgroup/getpeername4")
int zm_getpeername4(struct bpf_sock_addr *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	struct zm_orig *orig;

	if (!sk)
		return 1;
	orig = bpf_sk_storage_get(&zm_orig_sk, sk, 0, 0);
	if (!orig || orig->family != AF_INET)
		return 1;
	ctx->user_ip4 = orig->ip;
	ctx->user_port = orig->port;
	return 1;
}

/* Hook: cgroup/getpeername6: as getpeername4, for IPv6 sockets. */
SEC("cgroup/getpeername6")
int zm_getpeername6(struct bpf_sock_addr *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	struct zm_orig *orig;

	if (!sk)
		return 1;
	orig = bpf_sk_storage_get(&zm_orig_sk, sk, 0, 0);
	if (!orig)
		return 1;
	if (orig->family == AF_INET) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0xffff);
		ctx->user_ip6[3] = orig->ip;
	} else {
		ctx->user_ip6[0] = orig->ip6[0];
		ctx->user_ip6[1] = orig->ip6[1];
		ctx->user_ip6[2] = orig->ip6[2];
		ctx->user_ip6[3] = orig->ip6[3];
	}
	ctx->user_port = orig->port;
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
