// SPDX-License-Identifier: Apache-2.0
/*
 * ztunnel as one pod's sidecar: the comparison mode of the benchmarks
 * (`zmeshctl lab up --mode sidecar`). The same relay and HBONE code; what
 * differs is only how traffic reaches it and how the destination is found:
 * the lab puts iptables REDIRECT rules in the pod's netns (as Istio's
 * istio-init does) instead of the BPF capture, so the original destination
 * comes from conntrack (SO_ORIGINAL_DST) on both 15001 and 15006.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ztunnel.h"
#include "zmesh/netns.h"
#include "zmesh/zds.h"

/* <linux/netfilter_ipv4.h> clashes with <netinet/in.h>; the value is ABI. */
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif

int zt_sidecar_init(struct zt *z, const char *ns_pod)
{
	const char *slash = strchr(ns_pod, '/');
	const struct zm_lab_pod *p = NULL;

	if (!slash || slash == ns_pod || !slash[1] || (size_t)(slash - ns_pod) >= sizeof(z->sidecar_ns)) {
		zm_log_error("--sidecar %s: want NAMESPACE/POD", ns_pod);
		return -EINVAL;
	}
	snprintf(z->sidecar_ns, sizeof(z->sidecar_ns), "%.*s", (int)(slash - ns_pod), ns_pod);
	snprintf(z->sidecar_pod, sizeof(z->sidecar_pod), "%s", slash + 1);
	for (size_t i = 0; i < z->state.npods && !p; i++)
		if (!strcmp(z->state.pods[i].ns, z->sidecar_ns) && !strcmp(z->state.pods[i].name, z->sidecar_pod))
			p = &z->state.pods[i];
	if (!p) {
		zm_log_error("--sidecar: no pod %s in lab %s", ns_pod, z->lab);
		return -ENOENT;
	}
	/* The pod's node stands in for ours: reconcile then picks this pod only. */
	snprintf(z->node, sizeof(z->node), "%s", p->node);
	/* Our own sockets must escape the pod's REDIRECT rules, which skip this
	 * group (Istio matches its proxy's uid 1337 the same way). */
	if (setgid(ZT_SIDECAR_GID) < 0) {
		zm_log_error("setgid(%d): %s", ZT_SIDECAR_GID, strerror(errno));
		return -errno;
	}
	return 0;
}

int zt_sidecar_enrol(struct zt *z)
{
	struct zm_lab_pod *lp = zm_lab_pod_find(&z->state, z->sidecar_ns, z->sidecar_pod);
	struct zm_zds_workload w;
	struct zm_error e = { 0 };
	int nsfd, rc;

	if (!lp)
		return -ENOENT;
	rc = zm_lab_zds_workload(&z->state, lp, &w);
	if (rc)
		return rc;
	w.host_if[0] = 0;	/* no BPF, so no TC either */
	nsfd = zm_netns_open(lp->netns);
	rc = nsfd < 0 ? nsfd : zt_pod_add(z, &w, nsfd, &e);
	if (rc)
		zm_log_error("sidecar %s/%s: %s", lp->ns, lp->name, nsfd < 0 ? strerror(-nsfd) : e.msg);
	else
		z->enrolled_once = true;
	zm_labels_free(&w.labels);
	return rc;
}

/*
 * A connection made straight to one of our ports was never redirected, and
 * conntrack then reports the port itself as the original destination:
 * relaying it would connect back to us, over and over. Refused.
 */
static int redirected_dst(int fd, struct sockaddr_in *dst)
{
	socklen_t l = sizeof(*dst);
	uint16_t port;

	if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, dst, &l))
		return -errno;
	port = ntohs(dst->sin_port);
	if ((ntohl(dst->sin_addr.s_addr) >> 24) == 127 || port == 15001 || port == 15006 || port == 15008)
		return -ELOOP;
	return 0;
}

int zt_orig_dst(struct zt *z, int fd, struct sockaddr_in *dst)
{
	if (!z->sidecar_ns[0])
		return zm_bpf__orig_dst(z->bpf, fd, dst);
	return redirected_dst(fd, dst);
}

int zt_inbound_dst(struct zt *z, int fd, struct sockaddr_in *dst)
{
	socklen_t l = sizeof(*dst);

	/* sk_lookup keeps the dialled address; REDIRECT rewrote it to :15006. */
	if (z->sidecar_ns[0])
		return redirected_dst(fd, dst);
	return getsockname(fd, (struct sockaddr *)dst, &l) ? -errno : 0;
}
