// SPDX-License-Identifier: Apache-2.0
/* Enrolment: the node's pods from the lab state, BPF capture and listeners. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <unistd.h>

#include "ztunnel.h"
#include "zmesh/netns.h"
#include "zmesh/tls.h"

/* @unenroll false (ztunnel stopping): the capture stays pinned, so the
 * pod's connects are refused until ztunnel is back: closed, never open. */
static void pod_close(struct zt *z, struct zt_pod *p, bool unenroll)
{
	struct zm_error e = { 0 };

	if (unenroll && z->bpf && zm_bpf__unenroll(z->bpf, p->id, &e))
		zm_log_warn("unenrol %s: %s", p->id, e.msg);
	zt_pod_unlisten(z, p);
	zt_tunnel_pod_gone(z, p);
	zt_cert_drop(p);
	if (unenroll)
		zm_log_info("pod %s/%s left the mesh", p->ns, p->name);
	memset(p, 0, sizeof(*p));
}

static int pod_open(struct zt *z, struct zt_pod *p, const struct zm_lab_pod *lp)
{
	struct zm_bpf_pod bp = { .id = p->id, .cgroup = lp->cgroup, .netns = p->netns,
				 .ip = lp->ip, .node_netns = z->node_netns, .host_veth = lp->veth };
	struct zm_error e = { 0 };
	const char *app = zm_labels_get(&lp->labels, "app");
	int rc;

	snprintf(p->ns, sizeof(p->ns), "%s", lp->ns);
	snprintf(p->name, sizeof(p->name), "%s", lp->name);
	snprintf(p->workload, sizeof(p->workload), "%s", app ? app : lp->name);
	snprintf(p->sa, sizeof(p->sa), "%s", lp->sa);
	p->ip = lp->ip;
	p->strict = bp.strict = zt_pod_strict(z, p);
	zt_pod_identity(lp, &p->id_spiffe);
	zt_cert_issue(z, p);
	/* Listeners first (one per worker), then capture: a captured connect
	 * always finds 15001. */
	rc = zt_pod_listen(z, p);
	if (rc)
		goto fail;
	rc = z->bpf ? zm_bpf__enroll(z->bpf, &bp, &e) : 0;	/* sidecar: iptables captures */
	if (!rc && z->bpf)
		rc = zm_bpf__set_listener(z->bpf, lp->ip, ZM_LISTEN_INBOUND, p->l[1].fd);
	if (!rc && z->bpf)
		rc = zm_bpf__set_listener(z->bpf, lp->ip, ZM_LISTEN_HBONE, p->l[2].fd);
	if (rc) {
		zm_log_error("pod %s: %s", p->id, e.msg[0] ? e.msg : strerror(-rc));
		goto fail;
	}
	p->used = true;
	zm_log_info("pod %s/%s joined the mesh (%s)", p->ns, p->name, inet_ntoa(lp->ip));
	return 0;
fail:
	p->used = true;
	pod_close(z, p, true);
	return rc;
}

void zt_pods_stop_listening(struct zt *z)
{
	for (int i = 0; i < ZT_MAX_PODS; i++)
		if (z->pods[i].used)
			zt_pod_unlisten(z, &z->pods[i]);
}

void zt_pods_restrict(struct zt *z)
{
	for (int i = 0; i < ZT_MAX_PODS; i++) {
		struct zt_pod *p = &z->pods[i];
		const struct zm_lab_pod *lp;
		struct zm_error e = { 0 };
		bool strict;

		if (!p->used || p->l[0].fd < 0)
			continue;
		strict = zt_pod_strict(z, p);
		lp = zt_pod_by_ip(z, p->ip);
		if (strict == p->strict || !lp)
			continue;
		struct zm_bpf_pod bp = { .id = p->id, .cgroup = lp->cgroup, .netns = p->netns, .ip = lp->ip,
					 .node_netns = z->node_netns, .host_veth = lp->veth, .strict = strict };

		if (z->bpf && zm_bpf__enroll(z->bpf, &bp, &e)) {
			zm_log_error("pod %s: STRICT %s: %s", p->id, strict ? "on" : "off", e.msg);
			continue;
		}
		p->strict = strict;
		zm_log_info("pod %s: mTLS %s", p->id, strict ? "STRICT: plaintext can no longer bypass ztunnel"
							    : "no longer STRICT everywhere");
	}
}

static struct zt_pod *find(struct zt *z, const char *id)
{
	for (int i = 0; i < ZT_MAX_PODS; i++)
		if (z->pods[i].used && !strcmp(z->pods[i].id, id))
			return &z->pods[i];
	return NULL;
}

void zt_pod_identity(const struct zm_lab_pod *p, struct zm_spiffe_id *id)
{
	memset(id, 0, sizeof(*id));
	snprintf(id->td, sizeof(id->td), "cluster.local");
	snprintf(id->ns, sizeof(id->ns), "%s", p->ns);
	snprintf(id->sa, sizeof(id->sa), "%s", p->sa);
}

bool zt_pod_meshed(struct zt *z, const struct zm_lab_pod *p)
{
	const struct zm_lab_ns *ns = zm_lab_ns_find(&z->state, p->ns);

	return ns && zm_enroll_wanted(&ns->labels, &p->labels);
}

const struct zm_lab_pod *zt_pod_by_ip(struct zt *z, struct in_addr ip)
{
	for (size_t i = 0; i < z->state.npods; i++)
		if (z->state.pods[i].ip.s_addr == ip.s_addr)
			return &z->state.pods[i];
	return NULL;
}

int zt_reconcile(struct zt *z)
{
	struct zm_lab fresh;
	struct zm_error e = { 0 };

	if (zm_lab_load(z->lab, &fresh, &e)) {
		zm_log_warn("lab state: %s (keeping the last good one)", e.msg);
		return -EINVAL;
	}
	zm_lab_free(&z->state);
	z->state = fresh;
	z->me = zm_lab_node_find(&z->state, z->node);
	if (!z->me)
		return -ENOENT;
	for (int i = 0; i < ZT_MAX_PODS; i++)
		z->pods[i].seen = false;
	for (size_t i = 0; i < z->state.npods; i++) {
		const struct zm_lab_pod *lp = &z->state.pods[i];
		const struct zm_lab_ns *ns = zm_lab_ns_find(&z->state, lp->ns);
		char id[160];
		struct zt_pod *p;

		if (strcmp(lp->node, z->node) || !ns || !zm_enroll_wanted(&ns->labels, &lp->labels) ||
		    !zt_sidecar_wants(z, lp))
			continue;
		snprintf(id, sizeof(id), "%s_%s", lp->ns, lp->name);
		p = find(z, id);
		if (!p) {
			for (int k = 0; k < ZT_MAX_PODS && !p; k++)
				if (!z->pods[k].used)
					p = &z->pods[k];
			if (!p) {
				zm_log_error("more than %d pods on this node", ZT_MAX_PODS);
				break;
			}
			snprintf(p->id, sizeof(p->id), "%s", id);
			snprintf(p->netns, sizeof(p->netns), "/run/netns/%s", lp->netns);
			if (pod_open(z, p, lp))
				continue;
		}
		p->seen = true;
	}
	for (int i = 0; i < ZT_MAX_PODS; i++)
		if (z->pods[i].used && !z->pods[i].seen)
			pod_close(z, &z->pods[i], true);
	/* Pinned by an earlier run but no longer wanted (changed while we were down). */
	{
		char **ids;
		size_t n;

		if (z->bpf && zm_bpf__list(NULL, z->me->netns, &ids, &n) == 0) {
			for (size_t i = 0; i < n; i++)
				if (!find(z, ids[i]) && !zm_bpf__unenroll(z->bpf, ids[i], &e))
					zm_log_info("pod %s left the mesh (while ztunnel was down)", ids[i]);
			zm_bpf__free_ids(ids, n);
		}
	}
	return 0;
}

void zt_pods_close(struct zt *z)
{
	for (int i = 0; i < ZT_MAX_PODS; i++)
		if (z->pods[i].used)
			pod_close(z, &z->pods[i], false);
}
