// SPDX-License-Identifier: Apache-2.0
/* The lab's side of ZDS: pod records and the node agents that send them (lab.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "zmesh/fsutil.h"
#include "lab_int.h"
#include "zmesh/lab.h"
#include "zmesh/zds.h"

void zm_lab_pod_uid(const struct zm_lab *lab, const struct zm_lab_pod *p, char *out, size_t sz)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char in[512];
	int n = snprintf(in, sizeof(in), "%s/%s/%s/%08x", lab->name, p->ns, p->name, p->ip.s_addr);

	EVP_Digest(in, (size_t)n, md, &mdlen, EVP_sha256(), NULL);
	/* Shaped like a Kubernetes UID (a version-4-looking UUID). */
	snprintf(out, sz, "%02x%02x%02x%02x-%02x%02x-4%01x%02x-8%01x%02x-%02x%02x%02x%02x%02x%02x", md[0], md[1],
		 md[2], md[3], md[4], md[5], md[6] & 15, md[7], md[8] & 15, md[9], md[10], md[11], md[12], md[13],
		 md[14], md[15]);
}

int zm_lab_zds_workload(const struct zm_lab *lab, const struct zm_lab_pod *p, struct zm_zds_workload *w)
{
	memset(w, 0, sizeof(*w));
	zm_lab_pod_uid(lab, p, w->uid, sizeof(w->uid));
	snprintf(w->ns, sizeof(w->ns), "%s", p->ns);
	snprintf(w->name, sizeof(w->name), "%s", p->name);
	snprintf(w->sa, sizeof(w->sa), "%s", p->sa);
	snprintf(w->node, sizeof(w->node), "%s", p->node);
	snprintf(w->cgroup, sizeof(w->cgroup), "%s", p->cgroup);
	snprintf(w->host_if, sizeof(w->host_if), "%s", p->veth);
	w->ip = p->ip;
	for (size_t i = 0; i < p->labels.n; i++)
		if (zm_labels_set(&w->labels, p->labels.kv[i].key, p->labels.kv[i].val)) {
			zm_labels_free(&w->labels);
			return -ENOMEM;
		}
	return 0;
}

bool zm_lab_pod_enrolled(const struct zm_lab *lab, const struct zm_lab_pod *p)
{
	const struct zm_lab_ns *ns = NULL;

	for (size_t i = 0; i < lab->nnamespaces && !ns; i++)
		if (!strcmp(lab->namespaces[i].name, p->ns))
			ns = &lab->namespaces[i];
	return ns && zm_enroll_wanted(&ns->labels, &p->labels);
}

int zm_lab_start_agent(struct zm_lab *lab, struct zm_lab_node *n, struct zm_error *e)
{
	char bin[PATH_MAX + 16], log[PATH_MAX + 300], cg[PATH_MAX + 300];
	pid_t pid;
	int rc;

	snprintf(bin, sizeof(bin), "%s/nodeagent", lab->bin_dir);
	if (access(bin, X_OK) < 0)
		return zm_error_set(e, ENOENT, "%s: no node agent in this build: pods cannot be enrolled", bin);
	snprintf(log, sizeof(log), "%s/logs/nodeagent-%s.log", lab->state_dir, n->name);
	snprintf(cg, sizeof(cg), "%.3000s/agents/%s", lab->cgroup_root, n->name);
	rc = zm_mkdir_p(cg, 0755);
	if (rc)
		return zm_error_set(e, -rc, "%s: %s", cg, strerror(-rc));
	pid = fork();
	if (pid < 0)
		return zm_error_set(e, errno, "fork: %s", strerror(errno));
	if (pid == 0) {
		struct zm_error ce = { 0 };

		zm_lab_child_stdio(log, true);
		/* Its own cgroup: `lab down` kills it with the lab, and it
		 * never counts against the node's ztunnel. */
		if (zm_lab_cgroup_join(cg, &ce)) {
			fprintf(stderr, "zmeshctl lab: nodeagent: %s\n", ce.msg);
			_exit(126);
		}
		execl(bin, "nodeagent", "--node", n->name, "--lab", lab->name, (char *)NULL);
		_exit(127);
	}
	return 0;
}
