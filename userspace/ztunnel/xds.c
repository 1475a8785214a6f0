// SPDX-License-Identifier: Apache-2.0
/*
 * ztunnel as zmeshd's client (cfgclient.h): config versions pushed on the
 * :15012 stream replace the store polling, and workload certificates come
 * from CSRs instead of the lab's CA files. Used when the node has a
 * bootstrap credential (the lab makes one per node when zmeshd runs) or
 * --zmeshd ADDR says so.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ztunnel.h"
#include "zmesh/cfgclient.h"

static int on_config(void *arg, uint64_t version, json_t *objects, char *why, size_t whysz)
{
	struct zt *z = arg;
	struct zm_cfg_set fresh;
	int rc;

	struct zm_lab cluster;
	struct zm_error e = { "" };

	zm_cfg_set_init(&fresh);
	rc = zm_cfgclient_to_set(objects, &fresh, why, whysz);
	/* The workloads (Pods, Services, Namespaces) come with the config, as
	 * istiod pushes them: a version that does not read is refused whole. */
	if (!rc) {
		rc = zm_lab_cluster_from_cfg(&fresh, &cluster, &e);
		if (rc)
			snprintf(why, whysz, "%s", e.msg);
	}
	if (rc) {
		/* NACK: keep serving on the last good config. */
		zm_log_error("config version %llu from zmeshd refused: %s", (unsigned long long)version, why);
		zm_cfg_set_free(&fresh);
		return rc;
	}
	zt_write_lock(z);
	zm_cfg_set_free(&z->cfg);
	z->cfg = fresh;
	z->cfg_version = version;
	zm_lab_free(&z->pushed);
	z->pushed = cluster;
	z->pushed_once = true;
	zm_log_info("config version %llu from zmeshd: %zu objects (%zu pods, %zu services, %zu namespaces)",
		    (unsigned long long)version, z->cfg.nobjs, z->pushed.npods, z->pushed.nservices,
		    z->pushed.nnamespaces);
	zt_pods_restrict(z);
	zt_write_unlock(z);
	return 0;
}

static void on_cert(void *arg, int rc, struct zm_svid_cert *cert, const char *bundle, const char *error)
{
	struct zt_pod *p = arg;
	struct zt *z = p->z;
	struct zm_spiffe_id want = p->id_spiffe;

	p->cert_pending = false;
	if (!p->used)
		return;		/* the pod left while we asked */
	if (rc) {
		zm_log_error("pod %s: certificate from zmeshd: %s", p->id, error ? error : strerror(-rc));
		p->renew_at = time(NULL) + 2;
		return;
	}
	if (strcmp(cert->id.ns, want.ns) || strcmp(cert->id.sa, want.sa)) {
		zm_log_error("pod %s: zmeshd sent a certificate for another identity: ignored", p->id);
		p->renew_at = time(NULL) + 2;
		return;
	}
	zt_write_lock(z);
	zt_cert_install(z, p, cert->key_pem, cert->chain_pem, bundle);
	zt_write_unlock(z);
}

static void on_bundle(void *arg, const char *bundle)
{
	struct zt *z = arg;

	/* Every pod's contexts change and pooled connections are re-checked. */
	zt_write_lock(z);
	zt_certs_bundle(z, bundle);
	zt_write_unlock(z);
}

int zt_xds_start(struct zt *z, const char *server)
{
	char cred[512];
	struct stat st;
	struct zm_error e = { 0 };
	struct zm_cfgclient_opts o = { .on_config = on_config, .on_bundle = on_bundle, .arg = z,
				       .proxy = "ztunnel" };
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &z->xds_ev };

	snprintf(cred, sizeof(cred), "%s/%s/nodes/%s", ZM_LAB_STATE_ROOT, z->lab, z->node);
	if (!server) {
		char f[600];

		snprintf(f, sizeof(f), "%s/node-cert.pem", cred);
		if (stat(f, &st) < 0)
			return 0;	/* no control plane in this lab: files and the lab CA */
		server = ZM_LAB_ZMESHD_ADDR ":15012";
	}
	snprintf(z->xds_addr, sizeof(z->xds_addr), "%s", server);
	/* Each sidecar is a proxy of its own (they share the node's credential). */
	if (z->sidecar_pod[0]) {
		snprintf(z->xds_kind, sizeof(z->xds_kind), "sidecar.%s.%s", z->sidecar_ns, z->sidecar_pod);
		z->xds_kind[63] = '\0';	/* zmeshd takes 1-63 of [a-z0-9.-] */
		o.proxy = z->xds_kind;
	}
	o.server = z->xds_addr;
	o.cred_dir = cred;
	if (zm_cfgclient_new(&o, &z->xds, &e)) {
		zm_log_error("zmeshd %s: %s", server, e.msg);
		return -EINVAL;
	}
	z->xds_ev = (struct zt_ev){ .kind = ZT_XDS, .fd = zm_cfgclient_fd(z->xds), .owner = z };
	if (epoll_ctl(z->ep, EPOLL_CTL_ADD, z->xds_ev.fd, &ev) < 0)
		return -errno;
	/* From here the cluster is what zmeshd says, nothing before its first version. */
	zt_write_lock(z);
	z->view = &z->pushed;
	zt_write_unlock(z);
	zm_log_info("control plane: zmeshd at %s (config stream, workloads and CSRs)", server);
	zm_cfgclient_process(z->xds);
	return 1;
}

void zt_xds_process(struct zt *z)
{
	if (z->xds)
		zm_cfgclient_process(z->xds);
}

void zt_xds_stop(struct zt *z)
{
	zm_cfgclient_free(z->xds);
	z->xds = NULL;
}

int zt_xds_request_cert(struct zt *z, struct zt_pod *p)
{
	int rc;

	if (p->cert_pending)
		return 0;
	rc = zm_cfgclient_request_cert(z->xds, &p->id_spiffe, on_cert, p);
	if (rc == 0)
		p->cert_pending = true;
	return rc;
}
