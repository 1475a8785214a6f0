/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef ZM_BPF_COMMON_H
#define ZM_BPF_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define IPPROTO_TCP 6
#define SK_DROP 0
#define SK_PASS 1

/* 127.0.0.0/8, network order. */
static __always_inline int zm_is_loopback4(__u32 ip)
{
	return (bpf_ntohl(ip) >> 24) == 127;
}

/* ::ffff:a.b.c.d, as dual-stack sockets carry IPv4 peers. */
static __always_inline int zm_is_v4mapped(const __u32 *ip6)
{
	return ip6[0] == 0 && ip6[1] == 0 && ip6[2] == bpf_htonl(0xffff);
}

#endif
