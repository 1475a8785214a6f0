// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* sockops on enrolled pods' cgroups and on the node's (ztunnel's) cgroup. */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/fastpath.h"

const volatile __u16 outbound_port = 15001;

static __always_inline void fill_key(struct bpf_sock_ops *skops, struct zm_sock_key *k)
{
	k->netns_cookie = bpf_get_netns_cookie(skops);
	k->sip = skops->local_ip4;
	k->dip = skops->remote_ip4;
	k->sport = skops->local_port;			/* host order */
	k->dport = bpf_ntohl(skops->remote_port);	/* network order in the high half */
}

/*
 * Hook: sockops, both directions of a TCP connection being established.
 * Decides: (1) for an app socket that connect4 redirected, publish its
 * original destination keyed by (netns cookie, local port), which ztunnel
 * finds from the accepted socket; (2) with the fast path on, put both ends of
 * the app<->ztunnel loopback connection into zm_sockhash for sk_msg, but
 * only when the app's socket is non-blocking (lib/fastpath.h says why):
 * ztunnel's end goes in only if the app's end did.
 */
SEC("sockops")
int zm_sockops(struct bpf_sock_ops *skops)
{
	struct zm_sock_key key = {};
	struct bpf_sock *sk;
	struct tcp_sock *tp;
	__u64 addr;
	int op = (int)skops->op;

	/* IPv4, or IPv4 on a dual-stack socket (the ipv4 fields are set then). */
	if (skops->family == AF_INET6) {
		__u32 r6[4] = { skops->remote_ip6[0], skops->remote_ip6[1],
				skops->remote_ip6[2], skops->remote_ip6[3] };

		if (!zm_is_v4mapped(r6))
			return 1;
	} else if (skops->family != AF_INET) {
		return 1;
	}
	if (op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	/* The verifier wants skops->sk in a local, checked, before a helper. */
	sk = skops->sk;
	if (!sk)
		return 1;
	if (op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB) {
		struct zm_orig *orig = bpf_sk_storage_get(&zm_orig_sk, sk, 0, 0);

		if (!orig)
			return 1;	/* not a redirected connection */
		struct zm_orig_key okey = {
			.netns_cookie = bpf_get_netns_cookie(skops),
			.port = skops->local_port,
		};

		bpf_map_update_elem(&zm_orig_dst, &okey, orig, BPF_ANY);
		ZM_COUNT(orig_dst_saved, 1);
	} else if (skops->local_port != outbound_port) {
		return 1;	/* ztunnel's side: only its 15001 accepts */
	}
	if (!zm_fastpath_on() || !zm_is_loopback4(skops->remote_ip4))
		return 1;
	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return 1;
	fill_key(skops, &key);
	if (op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB) {
		if (!zm_sk_nonblocking(tp)) {
			/* An entry left by an earlier connection on the same
			 * ports must not let ztunnel's end in. */
			bpf_map_delete_elem(&zm_fastpath_sks, &key);
			ZM_COUNT(fastpath_blocking, 1);
			return 1;
		}
	} else {
		struct zm_sock_key app = {
			.netns_cookie = bpf_get_netns_cookie(skops),
			.sip = skops->remote_ip4,
			.dip = skops->local_ip4,
			.sport = bpf_ntohl(skops->remote_port),
			.dport = skops->local_port,
		};

		if (!bpf_map_lookup_elem(&zm_fastpath_sks, &app))
			return 1;	/* the app's end stayed out: so does ours */
	}
	addr = (__u64)tp;
	if (bpf_map_update_elem(&zm_fastpath_sks, &key, &addr, BPF_ANY))
		return 1;
	if (bpf_sock_hash_update(skops, &zm_sockhash, &key, BPF_NOEXIST))
		bpf_map_delete_elem(&zm_fastpath_sks, &key);
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
