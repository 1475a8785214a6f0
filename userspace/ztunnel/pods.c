// SPDX-License-Identifier: Apache-2.0
/* Enrolment: pods added and removed over ZDS (zds.c), BPF capture and listeners. */
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
#include "zmesh/zds.h"

int zt_pod_socket(const struct zt_pod *p)
{
	int saved, fd;

	if (zm_netns_enter_fd(p->nsfd, &saved))
		return -1;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	zm_netns_restore(saved);
	return fd;
}

/* Is @ip an address of netns @nsfd? (A pod IP that is not would make us
 * listen for and answer as somebody else.) */
static bool ip_in_netns(int nsfd, struct in_addr ip)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr = ip };
	int saved, fd;
	bool ok;

	if (zm_netns_enter_fd(nsfd, &saved))
		return false;
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	if (fd >= 0)
		close(fd);
	zm_netns_restore(saved);
	return ok;
}

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
	if (p->nsfd >= 0)
		close(p->nsfd);
	zm_labels_free(&p->labels);
	memset(p, 0, sizeof(*p));
}

/* The BPF view of @p; @strict as it should be. */
static struct zm_bpf_pod bpf_pod(struct zt *z, const struct zt_pod *p, bool strict)
{
	return (struct zm_bpf_pod){ .id = p->id, .cgroup = p->cgroup, .netns = p->netns, .ip = p->ip,
				    .node_netns = z->node_netns, .host_veth = p->host_if[0] ? p->host_if : NULL,
				    .strict = strict };
}

/* On failure, the pod is closed again (its netns fd too) and @err says why. */
static int pod_open(struct zt *z, struct zt_pod *p, struct zm_error *err)
{
	struct zm_bpf_pod bp;
	struct zm_error e = { 0 };
	int rc;

	for (int i = 0; i < 3; i++)
		p->l[i].fd = -1;
	p->strict = zt_pod_strict(z, p);
	bp = bpf_pod(z, p, p->strict);
	memset(&p->id_spiffe, 0, sizeof(p->id_spiffe));
	snprintf(p->id_spiffe.td, sizeof(p->id_spiffe.td), "cluster.local");
	snprintf(p->id_spiffe.ns, sizeof(p->id_spiffe.ns), "%s", p->ns);
	snprintf(p->id_spiffe.sa, sizeof(p->id_spiffe.sa), "%s", p->sa);
	zt_cert_issue(z, p);
	/* Listeners first (one per worker), then capture: a captured connect
	 * always finds 15001. */
	rc = zt_pod_listen(z, p);
	if (rc) {
		zm_error_set(err, -rc, "listen in the pod: %s", strerror(-rc));
		goto fail;
	}
	rc = z->bpf ? zm_bpf__enroll(z->bpf, &bp, &e) : 0;	/* sidecar: iptables captures */
	if (!rc && z->bpf)
		rc = zm_bpf__set_listener(z->bpf, p->ip, ZM_LISTEN_INBOUND, p->l[1].fd);
	if (!rc && z->bpf)
		rc = zm_bpf__set_listener(z->bpf, p->ip, ZM_LISTEN_HBONE, p->l[2].fd);
	if (rc) {
		zm_error_set(err, -rc, "%s", e.msg[0] ? e.msg : strerror(-rc));
		goto fail;
	}
	p->used = true;
	zm_log_info("pod %s/%s joined the mesh (%s, uid %s)", p->ns, p->name, inet_ntoa(p->ip), p->uid);
	return 0;
fail:
	zm_log_error("pod %s: %s", p->id, err->msg);
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
		struct zm_error e = { 0 };
		struct zm_bpf_pod bp;
		bool strict;

		if (!p->used || p->l[0].fd < 0)
			continue;
		strict = zt_pod_strict(z, p);
		if (strict == p->strict)
			continue;
		bp = bpf_pod(z, p, strict);

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

static struct zt_pod *find_uid(struct zt *z, const char *uid)
{
	for (int i = 0; i < ZT_MAX_PODS; i++)
		if (z->pods[i].used && !strcmp(z->pods[i].uid, uid))
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
	const struct zm_lab_ns *ns = zm_lab_ns_find(z->view, p->ns);

	return ns && zm_enroll_wanted(&ns->labels, &p->labels);
}

const struct zm_lab_pod *zt_pod_by_ip(struct zt *z, struct in_addr ip)
{
	for (size_t i = 0; i < z->view->npods; i++)
		if (z->view->pods[i].ip.s_addr == ip.s_addr)
			return &z->view->pods[i];
	return NULL;
}

int zt_cluster_reload(struct zt *z)
{
	struct zm_lab fresh;
	struct zm_error e = { 0 };

	if (zm_lab_load(z->lab, &fresh, &e)) {
		zm_log_warn("lab state: %s (keeping the last good one)", e.msg);
		return -EINVAL;
	}
	if (!zm_lab_node_find(&fresh, z->node)) {
		zm_log_warn("lab state: no node %s (keeping the last good state)", z->node);
		zm_lab_free(&fresh);
		return -ENOENT;
	}
	zm_lab_free(&z->state);
	z->state = fresh;
	z->me = zm_lab_node_find(&z->state, z->node);
	return 0;
}

static int labels_copy(struct zm_labels *dst, const struct zm_labels *src)
{
	struct zm_labels l = { 0 };

	for (size_t i = 0; i < src->n; i++)
		if (zm_labels_set(&l, src->kv[i].key, src->kv[i].val)) {
			zm_labels_free(&l);
			return -ENOMEM;
		}
	zm_labels_free(dst);
	*dst = l;
	return 0;
}

static void set_workload_name(struct zt_pod *p)
{
	const char *app = zm_labels_get(&p->labels, "app");

	snprintf(p->workload, sizeof(p->workload), "%s", app ? app : p->name);
}

int zt_pod_add(struct zt *z, const struct zm_zds_workload *w, int nsfd, struct zm_error *e)
{
	struct zt_pod *p;
	char id[160], ip[INET_ADDRSTRLEN];
	struct zm_error pe = { 0 };
	int self = -1, rc;

	inet_ntop(AF_INET, &w->ip, ip, sizeof(ip));
	if (nsfd < 0)
		return zm_error_set(e, EBADF, "add %s/%s: no network namespace: pass its fd with SCM_RIGHTS",
				    w->ns, w->name);
	if (zm_netns_fd_check(nsfd)) {
		rc = zm_error_set(e, EINVAL, "add %s/%s: the passed fd is not a network namespace", w->ns, w->name);
		goto fail;
	}
	/* Enrolling our own (the node's) namespace would capture ztunnel itself. */
	self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self >= 0 && !z->sidecar_ns[0] && zm_netns_same(self, nsfd) == 0) {
		rc = zm_error_set(e, EINVAL, "add %s/%s: the passed netns is ztunnel's own (the node's), not a pod's",
				  w->ns, w->name);
		goto fail;
	}
	if (w->node[0] && strcmp(w->node, z->node)) {
		rc = zm_error_set(e, EINVAL, "workload.node: %s is not this node (%s)", w->node, z->node);
		goto fail;
	}
	p = find_uid(z, w->uid);
	if (p) {
		/* Known (a replay, or a label change): same pod, new labels. */
		if (p->ip.s_addr != w->ip.s_addr || strcmp(p->ns, w->ns) || strcmp(p->name, w->name) ||
		    strcmp(p->sa, w->sa) || zm_netns_same(p->nsfd, nsfd)) {
			rc = zm_error_set(e, EEXIST, "uid %s is enrolled as %s/%s (%s) in another netns: del it first",
					  w->uid, p->ns, p->name, inet_ntoa(p->ip));
			goto fail;
		}
		close(nsfd);
		if (self >= 0)
			close(self);
		p->seen = true;
		if (labels_copy(&p->labels, &w->labels))
			return zm_error_set(e, ENOMEM, "out of memory");
		set_workload_name(p);
		zt_pods_restrict(z);
		return 0;
	}
	snprintf(id, sizeof(id), "%s_%s", w->ns, w->name);
	for (int i = 0; i < ZT_MAX_PODS; i++) {
		struct zt_pod *o = &z->pods[i];

		if (o->used && (!strcmp(o->id, id) || o->ip.s_addr == w->ip.s_addr)) {
			rc = zm_error_set(e, EEXIST, "%s/%s (%s) is enrolled already as uid %s (%s/%s): del it first",
					  w->ns, w->name, ip, o->uid, o->ns, o->name);
			goto fail;
		}
	}
	if (!ip_in_netns(nsfd, w->ip)) {
		rc = zm_error_set(e, EADDRNOTAVAIL, "workload.ip: %s is not an address in the passed netns", ip);
		goto fail;
	}
	p = NULL;
	for (int k = 0; k < ZT_MAX_PODS && !p; k++)
		if (!z->pods[k].used)
			p = &z->pods[k];
	if (!p) {
		rc = zm_error_set(e, ENOSPC, "more than %d pods on this node", ZT_MAX_PODS);
		goto fail;
	}
	memset(p, 0, sizeof(*p));
	snprintf(p->id, sizeof(p->id), "%s", id);
	snprintf(p->uid, sizeof(p->uid), "%s", w->uid);
	snprintf(p->ns, sizeof(p->ns), "%s", w->ns);
	snprintf(p->name, sizeof(p->name), "%s", w->name);
	snprintf(p->sa, sizeof(p->sa), "%s", w->sa);
	snprintf(p->cgroup, sizeof(p->cgroup), "%s", w->cgroup);
	snprintf(p->host_if, sizeof(p->host_if), "%s", w->host_if);
	p->ip = w->ip;
	p->nsfd = nsfd;
	/* libbpf opens the namespace by path for sk_lookup: ours, by fd. */
	snprintf(p->netns, sizeof(p->netns), "/proc/self/fd/%d", nsfd);
	p->seen = true;
	if (labels_copy(&p->labels, &w->labels)) {
		p->nsfd = -1;
		zm_labels_free(&p->labels);
		memset(p, 0, sizeof(*p));
		rc = zm_error_set(e, ENOMEM, "out of memory");
		goto fail;
	}
	set_workload_name(p);
	if (self >= 0)
		close(self);
	rc = pod_open(z, p, &pe);	/* on failure it closed the pod, nsfd too */
	if (rc)
		return zm_error_set(e, -rc, "add %s/%s: %s", w->ns, w->name, pe.msg);
	return 0;
fail:
	if (self >= 0)
		close(self);
	close(nsfd);
	return rc;
}

int zt_pod_del(struct zt *z, const char *uid, struct zm_error *e)
{
	struct zt_pod *p = find_uid(z, uid);

	if (!p)
		return zm_error_set(e, ENOENT, "del: no workload with uid %s", uid);
	pod_close(z, p, true);
	return 0;
}

int zt_pod_keep(struct zt *z, const char *uid, struct zm_error *e)
{
	struct zt_pod *p = find_uid(z, uid);

	if (!p)
		return zm_error_set(e, ENOENT, "keep: no workload with uid %s: add it (with its netns)", uid);
	p->seen = true;
	return 0;
}

void zt_pods_snapshot_begin(struct zt *z)
{
	for (int i = 0; i < ZT_MAX_PODS; i++)
		z->pods[i].seen = false;
}

void zt_pods_snapshot_end(struct zt *z)
{
	struct zm_error e = { 0 };
	char **ids;
	size_t n;

	for (int i = 0; i < ZT_MAX_PODS; i++)
		if (z->pods[i].used && !z->pods[i].seen)
			pod_close(z, &z->pods[i], true);
	/* Pinned by an earlier run but not in the snapshot (gone while we were down). */
	if (z->bpf && zm_bpf__list(NULL, z->me->netns, &ids, &n) == 0) {
		for (size_t i = 0; i < n; i++)
			if (!find(z, ids[i]) && !zm_bpf__unenroll(z->bpf, ids[i], &e))
				zm_log_info("pod %s left the mesh (while ztunnel was down)", ids[i]);
		zm_bpf__free_ids(ids, n);
	}
}

void zt_pods_close(struct zt *z)
{
	for (int i = 0; i < ZT_MAX_PODS; i++)
		if (z->pods[i].used)
			pod_close(z, &z->pods[i], false);
}
