// SPDX-License-Identifier: Apache-2.0
/*
 * The lab's control plane: node, waypoint and gateway bootstrap credentials
 * and zmeshd (lab.h, docs/zmeshd.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "zmesh/ca.h"
#include "zmesh/fsutil.h"
#include "lab_int.h"
#include "zmesh/lab.h"
#include "zmesh/netns.h"
#include "zmesh/nodeid.h"

/* Bootstrap credentials outlive any lab session; a month, well inside the CA's limit. */
#define NODE_CRED_TTL (30u * 24 * 3600)

static int mint_nodes(struct zm_lab *lab, struct zm_error *e)
{
	char cadir[PATH_MAX + 8], dir[PATH_MAX + 300], *key = NULL, *chain = NULL, *bundle = NULL;
	struct zm_ca *ca = NULL;
	int rc;

	snprintf(cadir, sizeof(cadir), "%s/ca", lab->state_dir);
	rc = zm_ca_open(cadir, &ca, e);
	if (rc)
		return rc;
	bundle = zm_ca_bundle_dup(ca);
	if (!bundle) {
		rc = zm_error_set(e, ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < lab->nnodes && !rc; i++) {
		snprintf(dir, sizeof(dir), "%s/nodes/%s", lab->state_dir, lab->nodes[i].name);
		rc = zm_ca_issue_node(ca, "cluster.local", lab->nodes[i].name, NODE_CRED_TTL, &key, &chain, e);
		if (!rc)
			rc = zm_node_cred_write(dir, key, chain, bundle, e);
		if (key)
			memset(key, 0, strlen(key));
		free(key);
		free(chain);
		key = chain = NULL;
	}
out:
	free(bundle);
	zm_ca_free(ca);
	return rc;
}

/* Which proxy a pod runs, by the labels the lab (and Istio) give them. */
static enum zm_cp_role pod_role(const struct zm_lab_pod *p)
{
	const char *istio = zm_labels_get(&p->labels, "istio");

	if (istio && !strcmp(istio, "ingressgateway"))
		return ZM_CP_GATEWAY;
	if (zm_labels_get(&p->labels, "gateway.networking.k8s.io/gateway-name"))
		return ZM_CP_WAYPOINT;
	return ZM_CP_NODE;
}

int zm_lab_mint_proxies(struct zm_lab *lab, struct zm_error *e)
{
	char cadir[PATH_MAX + 8], dir[PATH_MAX + 400], probe[PATH_MAX + 420];
	char *key = NULL, *chain = NULL, *bundle = NULL;
	struct zm_ca *ca = NULL;
	int rc = 0;

	if (lab->no_mesh || !lab->nnodes)
		return 0;
	/* No node credentials: this lab runs no zmeshd, the proxies use files. */
	snprintf(probe, sizeof(probe), "%s/nodes/%s/" ZM_NODE_CERT_FILE, lab->state_dir, lab->nodes[0].name);
	if (access(probe, F_OK) < 0)
		return 0;
	for (size_t i = 0; i < lab->npods && !rc; i++) {
		const struct zm_lab_pod *p = &lab->pods[i];
		enum zm_cp_role role = pod_role(p);

		if (role == ZM_CP_NODE)
			continue;
		snprintf(dir, sizeof(dir), "%s/" ZM_LAB_PROXIES "/%s/%s", lab->state_dir, p->ns, p->sa);
		snprintf(probe, sizeof(probe), "%s/" ZM_NODE_CERT_FILE, dir);
		if (access(probe, F_OK) == 0)
			continue;
		if (!ca) {
			snprintf(cadir, sizeof(cadir), "%s/ca", lab->state_dir);
			rc = zm_ca_open(cadir, &ca, e);
			if (!rc && !(bundle = zm_ca_bundle_dup(ca)))
				rc = zm_error_set(e, ENOMEM, "out of memory");
			if (rc)
				break;
		}
		rc = zm_ca_issue_proxy(ca, "cluster.local", role, p->ns, p->sa, NODE_CRED_TTL, &key, &chain, e);
		if (!rc)
			rc = zm_node_cred_write(dir, key, chain, bundle, e);
		if (key)
			memset(key, 0, strlen(key));
		free(key);
		free(chain);
		key = chain = NULL;
	}
	free(bundle);
	zm_ca_free(ca);
	return rc;
}

int zm_lab_start_zmeshd(struct zm_lab *lab, struct zm_error *e)
{
	char bin[PATH_MAX + 16], log[PATH_MAX + 32], store[PATH_MAX + 8], ca[PATH_MAX + 8];
	char manifests[PATH_MAX + 16];
	char cg[PATH_MAX + 16], ul[96];
	pid_t pid;
	int rc;

	snprintf(bin, sizeof(bin), "%s/zmeshd", lab->bin_dir);
	if (access(bin, X_OK) < 0)
		return 0;
	rc = mint_nodes(lab, e);
	if (!rc)
		rc = zm_lab_mint_proxies(lab, e);
	if (rc)
		return rc;
	snprintf(log, sizeof(log), "%s/logs/zmeshd.log", lab->state_dir);
	snprintf(store, sizeof(store), "%s/store", lab->state_dir);
	/* Drop manifests here and zmeshd applies them (its --watch-dir). */
	snprintf(manifests, sizeof(manifests), "%s/manifests", lab->state_dir);
	if (mkdir(manifests, 0755) < 0 && errno != EEXIST)
		return zm_error_set(e, errno, "%s: %s", manifests, strerror(errno));
	snprintf(ca, sizeof(ca), "%s/ca", lab->state_dir);
	snprintf(cg, sizeof(cg), "%s/zmeshd", lab->cgroup_root);
	snprintf(ul, sizeof(ul), "zm-%s-ul", lab->name);
	rc = zm_mkdir_p(cg, 0755);
	if (rc)
		return zm_error_set(e, -rc, "%s: %s", cg, strerror(-rc));
	pid = fork();
	if (pid < 0)
		return zm_error_set(e, errno, "fork: %s", strerror(errno));
	if (pid == 0) {
		struct zm_error ce = { 0 };
		int saved;

		zm_lab_child_stdio(log, false);
		if (zm_lab_cgroup_join(cg, &ce) || zm_netns_enter(ul, &saved)) {
			fprintf(stderr, "zmeshctl lab: zmeshd: cannot enter cgroup %s or netns %s: %s\n", cg, ul,
				ce.msg[0] ? ce.msg : "no netns");
			_exit(126);
		}
		close(saved);
		execl(bin, "zmeshd", "--store", store, "--ca-dir", ca, "--lab", lab->name, "--listen",
		      ZM_LAB_ZMESHD_ADDR ":15012", "--monitor", "127.0.0.1:15014", "--watch-dir", manifests,
		      (char *)NULL);
		_exit(127);
	}
	return 0;
}
