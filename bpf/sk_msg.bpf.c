// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* sk_msg on zm_sockhash: the same-node fast path between app and ztunnel. */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/fastpath.h"

/*
 * May this message skip TCP and go straight into @peer's ingress queue?
 * Two rules keep the byte stream whole and bounded (docs/bpf.md, "Fast path"):
 *  - order: the reader takes the ingress queue before TCP's receive queue,
 *    so nothing of this direction may still be in TCP: everything we sent
 *    over TCP is acknowledged and the peer's reader has taken it;
 *  - back-pressure: the ingress queue has no limit of its own (the kernel
 *    charges it to no receive buffer), so past the peer's receive buffer the
 *    data goes over TCP, where the window holds the sender back.
 */
static __always_inline int may_redirect(struct sk_msg_md *msg, struct tcp_sock *tp)
{
	struct tcp_sock *me = msg->sk ? bpf_skc_to_tcp_sock(msg->sk) : NULL;
	__u32 limit;

	if (!me || zm_tcp_pending(me, tp)) {
		ZM_COUNT(fastpath_fallback, 1);
		return 0;
	}
	limit = zm_sk_rcvbuf(tp);
	if (limit < ZM_FASTPATH_QUEUE_MIN)
		limit = ZM_FASTPATH_QUEUE_MIN;
	/* An empty queue takes any message: a single one is bounded by the
	 * sk_msg's page count. */
	if (zm_psock_queued(tp) >= limit) {
		ZM_COUNT(fastpath_full, 1);
		return 0;
	}
	return 1;
}

/*
 * Hook: sk_msg, data sent on a socket in zm_sockhash (app or ztunnel end of
 * a 127.0.0.1:15001 connection in a pod's netns).
 * Decides: deliver the data straight into the peer socket's receive queue
 * (BPF_F_INGRESS), skipping the loopback TCP stack, when may_redirect()
 * allows; otherwise, or with the fast path off, let it take TCP.
 */
SEC("sk_msg")
int zm_sk_msg(struct sk_msg_md *msg)
{
	struct zm_sock_key key = {};
	__u64 *peer;
	long rc;

	if (!zm_fastpath_on())
		return SK_PASS;
	key.netns_cookie = bpf_get_netns_cookie(msg);
	key.sip = msg->remote_ip4;
	key.dip = msg->local_ip4;
	key.sport = bpf_ntohl(msg->remote_port);
	key.dport = msg->local_port;
	/* No peer in the map (say, it was added before the fast path was
	 * switched on): the data takes the normal way. */
	peer = bpf_map_lookup_elem(&zm_fastpath_sks, &key);
	if (!peer)
		return SK_PASS;
	if (!may_redirect(msg, (struct tcp_sock *)*peer))
		return SK_PASS;
	rc = bpf_msg_redirect_hash(msg, &zm_sockhash, &key, BPF_F_INGRESS);
	if (rc == SK_PASS) {
		ZM_COUNT(fastpath_msgs, 1);
		ZM_COUNT(fastpath_bytes, msg->size);
	}
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
