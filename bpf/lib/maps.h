/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Maps shared by every zmesh BPF object. Each object declares them all with
 * LIBBPF_PIN_BY_NAME; the loader opens every object with the same
 * pin_root_path (/sys/fs/bpf/zmesh/<node>), so the first load creates and
 * pins each map and the others (and a restarted ztunnel) reuse the pins.
 */
#ifndef ZM_BPF_MAPS_H
#define ZM_BPF_MAPS_H

#include "zmesh/bpf_shared.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, ZM_MAX_PODS);
	__type(key, __u64);			/* cgroup id */
	__type(value, struct zm_pod_cfg);
} zm_pods SEC(".maps");

/* Per socket: the destination the app connected to. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct zm_orig);
} zm_orig_sk SEC(".maps");

/* LRU: entries of closed connections age out instead of leaking. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, 65536);
	__type(key, struct zm_orig_key);
	__type(value, struct zm_orig);
} zm_orig_dst SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, 65536);
	__type(key, struct zm_sock_key);
	__type(value, __u64);
} zm_sockhash SEC(".maps");

/*
 * Beside zm_sockhash: the kernel address of each fast-path socket, by the
 * same key. sk_msg may not take a reference on a sockhash entry (no
 * bpf_sk_release there), so it reads the peer's queue state through this
 * address with bpf_probe_read_kernel(): advisory only, the redirect itself
 * goes through zm_sockhash, which holds the socket. LRU: entries of closed
 * connections age out.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, 65536);
	__type(key, struct zm_sock_key);
	__type(value, __u64);
} zm_fastpath_sks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, 2 * ZM_MAX_PODS);
	__type(key, struct zm_listener_key);
	__type(value, __u64);
} zm_listeners SEC(".maps");

/* Pod IP -> ZM_POD_* flags, for inbound decisions (sk_lookup sees IPs). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, ZM_MAX_PODS);
	__type(key, __u32);
	__type(value, __u32);
} zm_pod_ips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, ZM_MAX_PODS);
	__type(key, __u32);
	__type(value, struct zm_pod_stats);
} zm_pod_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct zm_config);
} zm_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct zm_counters);
} zm_counters SEC(".maps");

static __always_inline struct zm_counters *zm_counters_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&zm_counters, &zero);
}

#define ZM_COUNT(field, n) do {						\
	struct zm_counters *_c = zm_counters_get();			\
	if (_c)								\
		_c->field += (n);					\
} while (0)

static __always_inline int zm_fastpath_on(void)
{
	__u32 zero = 0;
	struct zm_config *cfg = bpf_map_lookup_elem(&zm_config, &zero);

	return cfg && cfg->fastpath;
}

#endif
