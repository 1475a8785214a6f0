/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Structs shared by the BPF programs (bpf/) and their loader
 * (userspace/lib/bpf_loader.c). Kept once, here. Fixed-size fields only.
 * Addresses and ports are in network byte order unless the name says _h.
 */
#ifndef ZMESH_BPF_SHARED_H
#define ZMESH_BPF_SHARED_H

#ifndef __bpf__
#include <linux/types.h>
#endif

/* Map names (pinned under /sys/fs/bpf/zmesh/<node>/ by these names). */
#define ZM_MAP_PODS "zm_pods"
#define ZM_MAP_ORIG_DST "zm_orig_dst"
#define ZM_MAP_SOCKHASH "zm_sockhash"
#define ZM_MAP_LISTENERS "zm_listeners"
#define ZM_MAP_CONFIG "zm_config"
#define ZM_MAP_COUNTERS "zm_counters"
#define ZM_MAP_POD_IPS "zm_pod_ips"
#define ZM_MAP_POD_STATS "zm_pod_stats"

#define ZM_MAX_PODS 4096

enum zm_pod_flags {
	ZM_POD_ENROLLED = 1 << 0,	/* capture this pod's traffic */
	ZM_POD_STRICT = 1 << 1,		/* STRICT mTLS: no plaintext into the pod */
};

/* zm_pods: cgroup id of an enrolled pod -> its config. */
struct zm_pod_cfg {
	__u32 flags;
	__u32 pod_ip;		/* IPv4, network order */
};

/* The destination the app asked for, before connect4 rewrote it. */
struct zm_orig {
	__u32 ip;		/* IPv4 (or the IPv4 of a v4-mapped IPv6), network order */
	__u16 port;		/* network order */
	__u16 family;		/* AF_INET, or AF_INET6 for a native IPv6 destination */
	__u32 ip6[4];		/* AF_INET6 only, network order */
};

/* zm_orig_dst: where ztunnel finds the original destination of an accepted
 * connection: the app socket's netns cookie and local (= ztunnel's peer) port. */
struct zm_orig_key {
	__u64 netns_cookie;
	__u32 port;		/* host order */
	__u32 pad;
};

/* zm_sockhash: the app<->ztunnel loopback sockets, for the sk_msg fast path. */
struct zm_sock_key {
	__u64 netns_cookie;
	__u32 sip, dip;		/* network order */
	__u32 sport, dport;	/* host order */
};

enum zm_listener_kind {
	ZM_LISTEN_INBOUND = 0,	/* 15006: plaintext inbound */
	ZM_LISTEN_HBONE = 1,	/* 15008: HBONE */
};

/* zm_listeners: (pod IP, kind) -> ztunnel's listening socket in that pod. */
struct zm_listener_key {
	__u32 pod_ip;		/* network order */
	__u32 kind;
};

/* zm_pod_stats: pod IP -> traffic seen on the pod's veth (TC). */
struct zm_pod_stats {
	__u64 to_pod_pkts, to_pod_bytes;	/* node -> pod */
	__u64 from_pod_pkts, from_pod_bytes;	/* pod -> node */
	__u64 strict_drops;			/* plaintext SYNs dropped (STRICT) */
};

/* zm_config[0]: run-time switches. */
struct zm_config {
	__u32 fastpath;		/* 1: splice app<->ztunnel in the kernel (sk_msg) */
	__u32 pad;
};

/* zm_counters: one per CPU, summed by userspace. */
struct zm_counters {
	__u64 redirected;	/* outbound connects sent to ztunnel */
	__u64 passthrough;	/* connects from enrolled pods left alone (loopback) */
	__u64 inbound;		/* inbound connections steered to ztunnel */
	__u64 inbound_drop;	/* inbound to a STRICT pod with no ztunnel listener */
	__u64 fastpath_msgs;	/* sk_msg redirects */
	__u64 fastpath_bytes;
	__u64 orig_dst_saved;
	__u64 fastpath_full;		/* messages sent over TCP: the peer's fast-path queue was full */
	__u64 fastpath_fallback;	/* messages sent over TCP: earlier bytes still in TCP */
	__u64 fastpath_blocking;	/* connections kept off the fast path: blocking app socket */
};

#endif
