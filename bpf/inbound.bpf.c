// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* sk_lookup in each enrolled pod's netns: inbound capture. */
#include "lib/common.h"
#include "lib/maps.h"

const volatile __u16 hbone_port = 15008;

/*
 * Hook: sk_lookup, ingress, a new TCP connection to the pod's IP.
 * Decides: traffic that arrives from outside the pod lands at ztunnel: port
 * 15008 at its HBONE listener, every other port at its 15006 listener.
 * No listener registered: pass, unless the pod is STRICT (then drop: a
 * missing ztunnel must not open a plaintext path).
 */
SEC("sk_lookup")
int zm_sk_lookup(struct bpf_sk_lookup *ctx)
{
	struct zm_listener_key key = {};
	struct bpf_sock *sk;
	long rc;

	if (ctx->protocol != IPPROTO_TCP || ctx->family != AF_INET)
		return SK_PASS;
	/* From inside the pod (ztunnel's own connection to the app, or the app
	 * to itself): the source is the pod's own address. Packets from outside
	 * cannot claim it: the kernel drops incoming packets with a local
	 * source address (no accept_local in pods). ingress_ifindex does not
	 * tell, as local traffic reports the address's device, not lo. */
	if (ctx->remote_ip4 == ctx->local_ip4 || zm_is_loopback4(ctx->remote_ip4))
		return SK_PASS;
	key.pod_ip = ctx->local_ip4;
	key.kind = ctx->local_port == hbone_port ? ZM_LISTEN_HBONE : ZM_LISTEN_INBOUND;
	sk = bpf_map_lookup_elem(&zm_listeners, &key);
	if (!sk) {
		__u32 *flags = bpf_map_lookup_elem(&zm_pod_ips, &key.pod_ip);

		if (flags && (*flags & ZM_POD_STRICT)) {
			ZM_COUNT(inbound_drop, 1);
			return SK_DROP;
		}
		return SK_PASS;
	}
	rc = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	if (rc) {
		ZM_COUNT(inbound_drop, 1);
		return SK_DROP;
	}
	ZM_COUNT(inbound, 1);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
