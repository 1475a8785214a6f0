// SPDX-License-Identifier: Apache-2.0
/*
 * North-south in the lab (lab.h, docs/gateway.md): the ingress gateway pod
 * and the "outside" network namespace.
 *
 * - zm_lab_gateway_plan(): when the lab's config has a Gateway and no pod
 *   is labelled istio=ingressgateway, add one (istio-system/
 *   istio-ingressgateway on the first node, running `waypoint --gateway`
 *   on the lab's store, out of the mesh's capture as Istio's gateway is).
 * - zm_lab_outside_up(): netns zm-<lab>-out on the underlay bridge with
 *   ZM_LAB_OUTSIDE_ADDR, and a route to each gateway pod's IP through its
 *   node (the gateway's "LoadBalancer" address is its pod IP). Nothing
 *   else of the cluster is routed from outside.
 * - zm_lab_outside_hosts(): the outside hosts file maps every host named by
 *   a Gateway server to the gateway's address, as a LoadBalancer's DNS
 *   record would; rewritten from the store before every `exec --outside`.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zmesh/config.h"
#include "zmesh/fsutil.h"
#include "zmesh/istio.h"
#include "zmesh/lab.h"
#include "zmesh/netlink.h"
#include "zmesh/netns.h"
#include "zmesh/store.h"
#include "lab_int.h"

static bool is_gateway_pod(const struct zm_lab_pod *p)
{
	const char *v = zm_labels_get(&p->labels, "istio");

	return v && !strcmp(v, "ingressgateway");
}

const struct zm_lab_pod *zm_lab_gateway_pod(const struct zm_lab *lab)
{
	for (size_t i = 0; i < lab->npods; i++)
		if (is_gateway_pod(&lab->pods[i]))
			return &lab->pods[i];
	return NULL;
}

int zm_lab_gateway_plan(struct zm_lab *lab, struct zm_error *e)
{
	static const char ns[] = "istio-system", name[] = "istio-ingressgateway";
	struct zm_lab_pod *pods, *p;
	struct zm_lab_container *c;
	char store[PATH_MAX + 16];
	const char *argv[] = { "waypoint", "--gateway", "--lab", lab->name, "--config", store,
			       "--name", name, NULL, NULL, NULL };
	bool want = false;

	for (size_t i = 0; lab->config && i < lab->config->nobjs; i++)
		want |= lab->config->objs[i]->kind == ZM_K_GATEWAY;
	if (!want || zm_lab_gateway_pod(lab) || !lab->nnodes)
		return 0;
	if (!zm_lab_ns_find(lab, ns)) {
		struct zm_lab_ns *nss = realloc(lab->namespaces, (lab->nnamespaces + 1) * sizeof(*nss));

		if (!nss)
			return zm_error_set(e, ENOMEM, "out of memory");
		lab->namespaces = nss;
		memset(&nss[lab->nnamespaces], 0, sizeof(*nss));
		snprintf(nss[lab->nnamespaces++].name, sizeof(nss->name), "%s", ns);
	}
	pods = realloc(lab->pods, (lab->npods + 1) * sizeof(*pods));
	if (!pods)
		return zm_error_set(e, ENOMEM, "out of memory");
	lab->pods = pods;
	p = memset(&lab->pods[lab->npods++], 0, sizeof(*p));
	snprintf(p->ns, sizeof(p->ns), "%s", ns);
	snprintf(p->name, sizeof(p->name), "%s", name);
	snprintf(p->node, sizeof(p->node), "%s", lab->nodes[0].name);
	snprintf(p->sa, sizeof(p->sa), "%s", name);
	snprintf(store, sizeof(store), "%s/%s", lab->state_dir, ZM_LAB_STORE);
	/* With a mesh (and so the lab's CA), the gateway has a workload
	 * identity and reaches meshed backends over HBONE with it, so
	 * AuthorizationPolicies can name it (Istio's gateway does the same). */
	if (!lab->no_mesh) {
		argv[8] = "--hbone-port";
		argv[9] = "15008";
	}
	if (zm_labels_set(&p->labels, "istio", "ingressgateway") ||
	    zm_labels_set(&p->labels, "app", name) ||
	    zm_labels_set(&p->labels, "istio.io/dataplane-mode", "none"))
		return zm_error_set(e, ENOMEM, "out of memory");
	p->containers = calloc(1, sizeof(*p->containers));
	if (!p->containers)
		return zm_error_set(e, ENOMEM, "out of memory");
	p->ncontainers = 1;
	c = p->containers;
	snprintf(c->name, sizeof(c->name), "istio-proxy");
	c->argv = calloc(sizeof(argv) / sizeof(argv[0]), sizeof(*c->argv));
	if (!c->argv)
		return zm_error_set(e, ENOMEM, "out of memory");
	for (size_t i = 0; argv[i]; i++)
		if (!(c->argv[c->argc++] = strdup(argv[i])))
			return zm_error_set(e, ENOMEM, "out of memory");
	return 0;
}

void zm_lab_outside_netns(const struct zm_lab *lab, char *buf, size_t sz)
{
	snprintf(buf, sz, "zm-%s-_outside", lab->name);
}

int zm_lab_outside_up(struct zm_lab *lab, struct zm_error *e)
{
	char out[96], ul[96];
	struct zm_nl nl = { 0 };
	struct in_addr me, any = { 0 };
	int rc, ofd;

	zm_lab_outside_netns(lab, out, sizeof(out));
	snprintf(ul, sizeof(ul), "zm-%s-ul", lab->name);
	inet_pton(AF_INET, ZM_LAB_OUTSIDE_ADDR, &me);
	rc = zm_lab_make_netns(out, e);
	if (rc)
		return rc;
	ofd = zm_netns_open(out);
	if (ofd < 0)
		return zm_error_set(e, -ofd, "%s: %s", out, strerror(-ofd));
	IN_NETNS(ul, rc, {
		rc = zm_nl_open(&nl);
		if (!rc)
			rc = zm_nl_veth_add(&nl, "xo", -1, "eth0", ofd);
		if (!rc)
			rc = zm_nl_link_set_master(&nl, "xo", "br0");
		if (!rc)
			rc = zm_nl_link_up(&nl, "xo");
		zm_nl_close(&nl);
	});
	close(ofd);
	if (rc)
		return zm_error_set(e, -rc, "outside: veth to the underlay: %s", strerror(-rc));
	IN_NETNS(out, rc, {
		rc = zm_nl_open(&nl);
		if (!rc)
			rc = zm_nl_link_up(&nl, "eth0");
		if (!rc)
			rc = zm_nl_addr_add(&nl, "eth0", me, 24);
		for (size_t i = 0; !rc && i < lab->npods; i++) {
			const struct zm_lab_pod *p = &lab->pods[i];
			const struct zm_lab_node *n = zm_lab_node_find(lab, p->node);

			if (is_gateway_pod(p) && n)
				rc = zm_nl_route_add(&nl, p->ip, 32, n->underlay_ip, "eth0", 0);
		}
		zm_nl_close(&nl);
	});
	(void)any;
	if (rc)
		return zm_error_set(e, -rc, "outside: address and routes: %s", strerror(-rc));
	return zm_lab_outside_hosts(lab, lab->config, e);
}

int zm_lab_outside_hosts(const struct zm_lab *lab, const struct zm_cfg_set *cfg, struct zm_error *e)
{
	char out[96], dir[PATH_MAX], path[PATH_MAX + 16], tmp[PATH_MAX + 32], ip[INET_ADDRSTRLEN] = "";
	const struct zm_lab_pod *gp = zm_lab_gateway_pod(lab);
	FILE *f;
	int rc;

	zm_lab_outside_netns(lab, out, sizeof(out));
	snprintf(dir, sizeof(dir), "/etc/netns/%.200s", out);
	rc = zm_mkdir_p(dir, 0755);
	if (rc)
		return zm_error_set(e, -rc, "%s: %s", dir, strerror(-rc));
	snprintf(path, sizeof(path), "%s/hosts", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "we");
	if (!f)
		return zm_error_set(e, errno, "%s: %s", tmp, strerror(errno));
	fprintf(f, "# written by zmeshctl lab %s: the hosts of every Gateway (a LoadBalancer's DNS)\n"
		"127.0.0.1\tlocalhost\n", lab->name);
	if (gp)
		inet_ntop(AF_INET, &gp->ip, ip, sizeof(ip));
	for (size_t i = 0; gp && cfg && i < cfg->nobjs; i++) {
		const struct zm_cfg_obj *o = cfg->objs[i];

		if (o->kind != ZM_K_GATEWAY)
			continue;
		for (size_t s = 0; s < o->gw->servers.n; s++)
			for (size_t h = 0; h < o->gw->servers.v[s].hosts.n; h++) {
				const char *host = o->gw->servers.v[s].hosts.v[h].v, *sl = strchr(host, '/');

				host = sl ? sl + 1 : host;
				/* a wildcard is no name to resolve */
				if (host[0] && !strchr(host, '*'))
					fprintf(f, "%s\t%s\n", ip, host);
			}
	}
	if (fclose(f) || rename(tmp, path))
		return zm_error_set(e, errno, "%s: %s", path, strerror(errno));
	return 0;
}

int zm_lab_exec_outside(const struct zm_lab *lab, char *const argv[], struct zm_error *e)
{
	char out[96], cur[PATH_MAX + 32], cg[PATH_MAX + 16];
	struct zm_cfg_set cfg;
	int rc;

	zm_lab_outside_netns(lab, out, sizeof(out));
	/* the hosts of the Gateways applied now */
	zm_cfg_set_init(&cfg);
	snprintf(cur, sizeof(cur), "%s/%s/current", lab->state_dir, ZM_LAB_STORE);
	if (access(cur, F_OK) == 0 && zm_cfg_load_path(&cfg, cur) == 0)
		zm_lab_outside_hosts(lab, &cfg, NULL);
	zm_cfg_set_free(&cfg);
	snprintf(cg, sizeof(cg), "%s/outside", lab->cgroup_root);
	rc = zm_mkdir_p(cg, 0755);
	if (rc)
		return zm_error_set(e, -rc, "%s: %s", cg, strerror(-rc));
	rc = zm_lab_enter(out, cg, e);
	if (rc)
		return rc;
	execvp(argv[0], argv);
	return zm_error_set(e, errno, "%s: %s", argv[0], strerror(errno));
}
