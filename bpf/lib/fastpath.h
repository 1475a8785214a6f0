/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What the sk_msg fast path may do with a socket, read from the kernel's
 * own structs (BTF, CO-RE). Why these rules: docs/bpf.md, "Fast path".
 */
#ifndef ZM_BPF_FASTPATH_H
#define ZM_BPF_FASTPATH_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#define ZM_O_NONBLOCK 04000		/* asm-generic/fcntl.h */
#define ZM_SK_USER_DATA_PTRMASK (~7UL)	/* sk_user_data: NOCOPY|BPF|PSOCK bits */
/* A peer's ingress queue may hold this much, or its rcvbuf if larger:
 * what TCP itself lets a loopback connection hold (tcp_rmem grows to MBs). */
#define ZM_FASTPATH_QUEUE_MIN (4u << 20)

/*
 * Is the socket's file non-blocking? A socket in a sockmap reads through
 * tcp_bpf_recvmsg(), which ends a *blocking* wait with -EAGAIN when it is
 * woken with nothing queued (a state change such as FIN_WAIT1 -> FIN_WAIT2
 * after the app's own shutdown(), a signal, an error): a blocking app would
 * see EAGAIN. Non-blocking sockets never wait there. No file (not yet
 * accepted, or gone): 0.
 */
static __always_inline int zm_sk_nonblocking(struct tcp_sock *tp)
{
	struct socket *so = tp->inet_conn.icsk_inet.sk.sk_socket;
	struct file *f;

	if (!so)
		return 0;
	f = BPF_CORE_READ(so, file);
	if (!f)
		return 0;
	return (BPF_CORE_READ(f, f_flags) & ZM_O_NONBLOCK) != 0;
}

/*
 * Bytes @me wrote into TCP that @peer's reader has not taken yet: both
 * counters live in the same sequence space (this direction's), so this
 * covers bytes in flight and bytes queued at the peer alike, and needs no
 * ACK to have come back.
 */
static __always_inline __u32 zm_tcp_pending(struct tcp_sock *me, struct tcp_sock *peer)
{
	return BPF_CORE_READ(me, write_seq) - BPF_CORE_READ(peer, copied_seq);
}

/* Bytes waiting in the psock's ingress_msg list (the fast path's queue). */
static __always_inline __u32 zm_psock_queued(struct tcp_sock *tp)
{
	unsigned long ud = (unsigned long)BPF_CORE_READ(tp, inet_conn.icsk_inet.sk.sk_user_data);
	struct sk_psock *psock = (struct sk_psock *)(ud & ZM_SK_USER_DATA_PTRMASK);

	return psock ? BPF_CORE_READ(psock, msg_tot_len) : 0;
}

static __always_inline __u32 zm_sk_rcvbuf(struct tcp_sock *tp)
{
	return (__u32)BPF_CORE_READ(tp, inet_conn.icsk_inet.sk.sk_rcvbuf);
}

#endif
