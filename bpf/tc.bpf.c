// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* TC on each enrolled pod's veth, host (node) side. */
#include "lib/common.h"
#include "lib/maps.h"

#define TC_ACT_OK 0
#define TC_ACT_SHOT 2
#define ETH_P_IP 0x0800
#define ETH_HLEN 14

const volatile __u16 hbone_port = 15008;

/* Entries are made by the loader at enrolment, never here: a pod that
 * spoofs source addresses must not be able to fill the map. */
static __always_inline struct zm_pod_stats *stats_of(__u32 ip)
{
	return bpf_map_lookup_elem(&zm_pod_stats, &ip);
}

/*
 * Hook: TC egress of the pod's host-side veth, i.e. packets entering the pod.
 * Decides: count them per pod; for a STRICT pod, drop a TCP SYN to any port
 * but 15008: plaintext must not reach a STRICT pod past ztunnel, even if
 * the pod's own capture (sk_lookup) were missing.
 */
SEC("tc")
int zm_tc_to_pod(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + ETH_HLEN;
	struct zm_pod_stats *st;
	struct tcphdr *tcp;
	__u32 *flags;

	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	st = stats_of(ip->daddr);
	if (st) {
		__sync_fetch_and_add(&st->to_pod_pkts, 1);
		__sync_fetch_and_add(&st->to_pod_bytes, skb->len);
	}
	if (ip->protocol != IPPROTO_TCP || ip->ihl < 5)
		return TC_ACT_OK;
	flags = bpf_map_lookup_elem(&zm_pod_ips, &ip->daddr);
	if (!flags || !(*flags & ZM_POD_STRICT))
		return TC_ACT_OK;
	/* The verifier wants the variable IP header length bounded. */
	tcp = (void *)ip + ((ip->ihl & 0xf) * 4);
	if ((void *)(tcp + 1) > end)
		return TC_ACT_OK;
	if (tcp->syn && !tcp->ack && tcp->dest != bpf_htons(hbone_port)) {
		if (st)
			__sync_fetch_and_add(&st->strict_drops, 1);
		ZM_COUNT(inbound_drop, 1);
		return TC_ACT_SHOT;
	}
	return TC_ACT_OK;
}

/*
 * Hook: TC ingress of the pod's host-side veth, i.e. packets leaving the pod.
 * Decides: nothing; counts them per pod.
 */
SEC("tc")
int zm_tc_from_pod(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + ETH_HLEN;
	struct zm_pod_stats *st;

	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	st = stats_of(ip->saddr);
	if (st) {
		__sync_fetch_and_add(&st->from_pod_pkts, 1);
		__sync_fetch_and_add(&st->from_pod_bytes, skb->len);
	}
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
