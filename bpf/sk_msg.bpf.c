// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* sk_msg on zm_sockhash: the same-node fast path between app and ztunnel. */
#include "lib/common.h"
#include "lib/maps.h"

/*
 * Hook: sk_msg, data sent on a socket in zm_sockhash (app or ztunnel end of
 * a 127.0.0.1:15001 connection in a pod's netns).
 * Decides: deliver the data straight into the peer socket's receive queue,
 * skipping the loopback TCP stack; with the fast path off, let it through.
 */
SEC("sk_msg")
int zm_sk_msg(struct sk_msg_md *msg)
{
	struct zm_sock_key peer = {};
	long rc;

	if (!zm_fastpath_on())
		return SK_PASS;
	peer.netns_cookie = bpf_get_netns_cookie(msg);
	peer.sip = msg->remote_ip4;
	peer.dip = msg->local_ip4;
	peer.sport = bpf_ntohl(msg->remote_port);
	peer.dport = msg->local_port;
	rc = bpf_msg_redirect_hash(msg, &zm_sockhash, &peer, BPF_F_INGRESS);
	if (rc == SK_PASS) {
		ZM_COUNT(fastpath_msgs, 1);
		ZM_COUNT(fastpath_bytes, msg->size);
	}
	/* No peer in the map (say, it was added before the fast path was
	 * switched on): the redirect fails; pass the data the normal way. */
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
