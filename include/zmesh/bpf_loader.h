/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The loader of zmesh's BPF data plane (bpf/), one instance per node.
 *
 * Layout of the pins, under <pin_root>/<node>/ (pin_root defaults to
 * /sys/fs/bpf/zmesh):
 *   zm_*                 the shared maps (pinned by name by libbpf)
 *   node_sockops         link: sockops on the node's cgroup (ztunnel's side)
 *   pods/<id>/connect4, getpeername4, sockops   links on the pod's cgroup
 *   pods/<id>/sk_lookup  link: inbound capture in the pod's netns
 *   pods/<id>/tc         where the TC programs sit (clsact on the host veth;
 *                        TC attachments outlive the process by themselves)
 * Links are pinned, so the data plane outlives the process that made it:
 * a restarted ztunnel re-opens the node and finds every enrolled pod still
 * captured. zm_bpf__destroy() unpins everything, which detaches it.
 *
 * Every function returns 0 or a negative errno, with a message in @e.
 */
#ifndef ZMESH_BPF_LOADER_H
#define ZMESH_BPF_LOADER_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "zmesh/bpf_shared.h"
#include "zmesh/log.h"

#define ZM_BPF_PIN_ROOT "/sys/fs/bpf/zmesh"

struct zm_bpf;

struct zm_bpf_opts {
	const char *node;		/* required: names the pin directory */
	const char *pin_root;		/* default ZM_BPF_PIN_ROOT */
	const char *node_cgroup;	/* ztunnel's cgroup (for its side of the fast path); may be NULL */
	uint16_t outbound_port;		/* default 15001 */
	uint16_t hbone_port;		/* default 15008 */
};

struct zm_bpf_pod {
	const char *id;			/* unique on the node, [A-Za-z0-9_.-]: "<ns>_<pod>" */
	const char *cgroup;		/* the pod's cgroup v2 directory */
	const char *netns;		/* path of the pod's netns (/run/netns/...) */
	struct in_addr ip;
	bool strict;			/* STRICT mTLS: inbound plaintext never bypasses ztunnel */
	/* The host side of the pod's veth, for the TC counters and STRICT
	 * drop; both NULL to skip TC. */
	const char *node_netns;		/* path of the node's netns */
	const char *host_veth;		/* interface name in that netns */
};

/*
 * Check the kernel, load the programs (re-using the node's pinned maps when
 * they exist) and attach the node-wide parts. Fails with a message naming
 * the missing feature and the kernel it needs.
 */
int zm_bpf__open(const struct zm_bpf_opts *opts, struct zm_bpf **out, struct zm_error *e);
/* Close without detaching anything (pins keep the data plane running). */
void zm_bpf__close(struct zm_bpf *b);
/* Unpin and so detach everything of @node. 0 when there was nothing. */
int zm_bpf__destroy(const char *pin_root, const char *node, struct zm_error *e);

/* Capture @pod: attach to its cgroup and netns, mark it enrolled. Idempotent
 * (updates the flags of an enrolled pod). */
int zm_bpf__enroll(struct zm_bpf *b, const struct zm_bpf_pod *pod, struct zm_error *e);
/* Stop capturing pod @id: new connections take the direct path. */
int zm_bpf__unenroll(struct zm_bpf *b, const char *id, struct zm_error *e);
/* The ids of enrolled pods (pods/ directory), for reconciling. *ids is
 * malloc'd, each entry too; free with zm_bpf__free_ids. */
int zm_bpf__list(const char *pin_root, const char *node, char ***ids, size_t *n);
void zm_bpf__free_ids(char **ids, size_t n);

/* Register ztunnel's listener in a pod for sk_lookup (kind: ZM_LISTEN_*). */
int zm_bpf__set_listener(struct zm_bpf *b, struct in_addr pod_ip, enum zm_listener_kind kind,
			 int listen_fd);
/* The destination the app asked for, for a connection ztunnel accepted on
 * 15001 (found by the socket's netns cookie and peer port). -ENOENT if none. */
int zm_bpf__orig_dst(struct zm_bpf *b, int accepted_fd, struct sockaddr_in *out);
int zm_bpf__set_fastpath(struct zm_bpf *b, bool on);
/* Traffic seen by TC on pod @ip's veth. -ENOENT for an unknown pod. */
int zm_bpf__pod_stats(struct zm_bpf *b, struct in_addr ip, struct zm_pod_stats *out);
/* Sum of the per-CPU counters. */
int zm_bpf__counters(struct zm_bpf *b, struct zm_counters *sum);

/* Same, from the pins only (no programs loaded): for `zmeshctl bpf status`. */
int zm_bpf_pins_counters(const char *pin_root, const char *node, struct zm_counters *sum);

#endif
