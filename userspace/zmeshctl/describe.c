// SPDX-License-Identifier: Apache-2.0
/*
 * zmeshctl describe pod: which config applies to a pod, like
 * `istioctl x describe pod`. The pod's labels, namespace and the Services
 * come from the lab state (zm_lab_load); the config from the store.
 *
 * Selection follows Istio: PeerAuthentication mesh-wide (root namespace
 * istio-system, no selector), namespace-wide (no selector), workload
 * (selector matches); AuthorizationPolicy and RequestAuthentication in the
 * root namespace or the pod's, by selector (none: all), or by targetRef to
 * one of the pod's Services (enforced by a waypoint); DestinationRules and
 * VirtualServices whose hosts cover a Service that selects the pod.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "store_cli.h"
#include "zmesh/lab.h"
#include "zmesh/store.h"

#define ROOT_NS "istio-system"

static const char usage_text[] =
	"usage: zmeshctl describe pod NAME [-n NS] [--name LAB] [--store DIR]\n";

static const char *const mtls_names[] = { "UNSET", "DISABLE", "PERMISSIVE", "STRICT" };
static const char *const action_names[] = { "ALLOW", "DENY", "AUDIT", "CUSTOM" };

/* A workload selector against the pod's labels; absent or empty selects all. */
static bool selects(const struct zm_workload_selector *sel, const struct zm_labels *l)
{
	for (size_t i = 0; i < sel->match_labels.n; i++) {
		const char *k = sel->match_labels.v[i].key.v, *v = sel->match_labels.v[i].val.v;
		const char *have = k ? zm_labels_get(l, k) : NULL;

		if (!have || strcmp(have, v ? v : ""))
			return false;
	}
	return true;
}

static bool has_selector(const struct zm_workload_selector *sel)
{
	return sel->o.set && sel->match_labels.n > 0;
}

static void print_labels(const char *title, const zm_cmap *m)
{
	printf("%s", title);
	for (size_t i = 0; i < m->n; i++)
		printf("%s%s=%s", i ? "," : "", m->v[i].key.v ? m->v[i].key.v : "",
		       m->v[i].val.v ? m->v[i].val.v : "");
	putchar('\n');
}

/* The services of the pod's namespace whose (non-empty) selector matches it. */
static bool svc_selects(const struct zm_lab_svc *s, const struct zm_lab_pod *p)
{
	return !strcmp(s->ns, p->ns) && s->selector.n > 0 && zm_labels_match(&s->selector, &p->labels);
}

static void describe_service(const struct zm_cfg_set *cfg, const struct zm_lab_svc *svc,
			     const struct zm_lab_pod *pod)
{
	char fqdn[300], h[512], ip[INET_ADDRSTRLEN];

	snprintf(fqdn, sizeof(fqdn), "%s.%s.svc.cluster.local", svc->name, svc->ns);
	printf("--------------------\nService: %s\n", svc->name);
	printf("   Cluster IP: %s\n", inet_ntop(AF_INET, &svc->cluster_ip, ip, sizeof(ip)));
	for (size_t i = 0; i < svc->nports; i++) {
		int tp = zm_lab_target_port(&svc->ports[i], pod);

		printf("   Port: %s %d/%s targets pod port %d\n", svc->ports[i].name[0] ? svc->ports[i].name : "-",
		       svc->ports[i].port, svc->ports[i].protocol, tp);
	}
	for (size_t i = 0; i < cfg->nobjs; i++) {
		const struct zm_cfg_obj *o = cfg->objs[i];
		const struct zm_destination_rule *dr;
		bool any = false;

		if (o->kind != ZM_K_DESTINATIONRULE || !o->dr->host.v)
			continue;
		dr = o->dr;
		zm_host_fqdn(dr->host.v, o->meta.ns.v, h, sizeof(h));
		if (!zm_host_match(h, fqdn))
			continue;
		printf("DestinationRule: %s.%s for \"%s\"\n", o->meta.name.v, o->meta.ns.v, dr->host.v);
		for (size_t k = 0; k < dr->subsets.n; k++) {
			struct zm_workload_selector sel = { .o.set = true, .match_labels = dr->subsets.v[k].labels };

			if (selects(&sel, &pod->labels)) {
				printf("%s%s", any ? "," : "   Matching subsets: ", dr->subsets.v[k].name.v);
				any = true;
			}
		}
		if (any)
			putchar('\n');
		else if (dr->subsets.n)
			printf("   No subset matches this pod\n");
		else
			printf("   No subsets\n");
		if (dr->traffic_policy.tls.o.set)
			printf("   Traffic Policy TLS Mode: %s\n",
			       dr->traffic_policy.tls.mode.v == ZM_CTLS_DISABLE ? "DISABLE" :
			       dr->traffic_policy.tls.mode.v == ZM_CTLS_SIMPLE ? "SIMPLE" :
			       dr->traffic_policy.tls.mode.v == ZM_CTLS_MUTUAL ? "MUTUAL" : "ISTIO_MUTUAL");
	}
	for (size_t i = 0; i < cfg->nobjs; i++) {
		const struct zm_cfg_obj *o = cfg->objs[i];
		const struct zm_virtual_service *vs;
		bool hit = false, mesh = false;

		if (o->kind != ZM_K_VIRTUALSERVICE)
			continue;
		vs = o->vs;
		for (size_t k = 0; k < vs->hosts.n && !hit; k++) {
			if (!vs->hosts.v[k].v)
				continue;
			zm_host_fqdn(vs->hosts.v[k].v, o->meta.ns.v, h, sizeof(h));
			hit = zm_host_match(h, fqdn);
		}
		if (!hit)
			continue;
		mesh = vs->gateways.n == 0;
		for (size_t k = 0; k < vs->gateways.n; k++)
			mesh = mesh || (vs->gateways.v[k].v && !strcmp(vs->gateways.v[k].v, "mesh"));
		printf("VirtualService: %s.%s\n", o->meta.name.v, o->meta.ns.v);
		if (vs->http.n)
			printf("   %zu HTTP route(s)\n", vs->http.n);
		if (vs->tcp.n)
			printf("   %zu TCP route(s)\n", vs->tcp.n);
		if (vs->tls.n)
			printf("   %zu TLS route(s)\n", vs->tls.n);
		if (!mesh)
			printf("   Bound to gateways only: does not apply to mesh traffic\n");
	}
}

/* Is @ref a targetRef to one of the pod's Services? */
static bool targets_service(const struct zm_policy_target_ref *ref, const char *ns,
			    const struct zm_lab *lab, const struct zm_lab_pod *pod, const char **svc)
{
	if (!ref->o.set || !ref->kind.v || strcmp(ref->kind.v, "Service") || !ref->name.v)
		return false;
	for (size_t i = 0; i < lab->nservices; i++) {
		const struct zm_lab_svc *s = &lab->services[i];

		if (svc_selects(s, pod) && !strcmp(s->name, ref->name.v) &&
		    !strcmp(s->ns, ref->ns.v ? ref->ns.v : ns)) {
			*svc = s->name;
			return true;
		}
	}
	return false;
}

static void describe_peer_auth(const struct zm_cfg_set *cfg, const struct zm_lab_pod *pod)
{
	const struct zm_cfg_obj *mesh = NULL, *nsw = NULL, *wl = NULL;
	int mode = ZM_MTLS_UNSET;
	const char *from = "default";
	int nmesh = 0, nns = 0, nwl = 0;

	for (size_t i = 0; i < cfg->nobjs; i++) {
		const struct zm_cfg_obj *o = cfg->objs[i];

		if (o->kind != ZM_K_PEERAUTHENTICATION)
			continue;
		if (!strcmp(o->meta.ns.v, ROOT_NS) && !has_selector(&o->pa->selector)) {
			nmesh++;
			if (!mesh)
				mesh = o;
		} else if (!strcmp(o->meta.ns.v, pod->ns) && !has_selector(&o->pa->selector)) {
			nns++;
			if (!nsw)
				nsw = o;
		} else if (!strcmp(o->meta.ns.v, pod->ns) && selects(&o->pa->selector, &pod->labels)) {
			nwl++;
			if (!wl)
				wl = o;
		}
	}
	/* Narrowest scope with a mode wins; UNSET inherits from the wider one. */
	if (mesh && mesh->pa->mtls.mode.v != ZM_MTLS_UNSET) {
		mode = mesh->pa->mtls.mode.v;
		from = "mesh";
	}
	if (nsw && nsw->pa->mtls.mode.v != ZM_MTLS_UNSET) {
		mode = nsw->pa->mtls.mode.v;
		from = "namespace";
	}
	if (wl && wl->pa->mtls.mode.v != ZM_MTLS_UNSET) {
		mode = wl->pa->mtls.mode.v;
		from = "workload";
	}
	printf("--------------------\nEffective PeerAuthentication:\n");
	printf("   Workload mTLS mode: %s (%s)\n",
	       mode == ZM_MTLS_UNSET ? "PERMISSIVE" : mtls_names[mode], from);
	if (wl)
		for (size_t k = 0; k < wl->pa->port_level_mtls.n; k++)
			printf("   Port %s mTLS mode: %s\n", wl->pa->port_level_mtls.v[k].key.v,
			       mtls_names[wl->pa->port_level_mtls.v[k].val.mode.v & 3]);
	if (!mesh && !nsw && !wl) {
		printf("Applied PeerAuthentication: none\n");
		return;
	}
	printf("Applied PeerAuthentication:\n");
	if (mesh)
		printf("   %s.%s (mesh-wide)%s\n", mesh->meta.name.v, mesh->meta.ns.v,
		       nmesh > 1 ? ", ignoring other mesh-wide ones" : "");
	if (nsw)
		printf("   %s.%s (namespace)%s\n", nsw->meta.name.v, nsw->meta.ns.v,
		       nns > 1 ? ", ignoring other namespace-wide ones" : "");
	if (wl)
		printf("   %s.%s (workload selector)%s\n", wl->meta.name.v, wl->meta.ns.v,
		       nwl > 1 ? ", ignoring other ones selecting this pod" : "");
}

static void describe_authz(const struct zm_cfg_set *cfg, const struct zm_lab *lab,
			   const struct zm_lab_pod *pod)
{
	int n = 0;

	printf("--------------------\nAuthorizationPolicies:\n");
	for (size_t i = 0; i < cfg->nobjs; i++) {
		const struct zm_cfg_obj *o = cfg->objs[i];
		const struct zm_authorization_policy *ap;
		const char *svc = NULL;
		bool by_ref = false, in_scope;
		int act;

		if (o->kind != ZM_K_AUTHORIZATIONPOLICY)
			continue;
		ap = o->ap;
		in_scope = !strcmp(o->meta.ns.v, ROOT_NS) || !strcmp(o->meta.ns.v, pod->ns);
		if (!in_scope)
			continue;
		by_ref = targets_service(&ap->target_ref, o->meta.ns.v, lab, pod, &svc);
		for (size_t k = 0; k < ap->target_refs.n && !by_ref; k++)
			by_ref = targets_service(&ap->target_refs.v[k], o->meta.ns.v, lab, pod, &svc);
		if (!by_ref && (ap->target_ref.o.set || ap->target_refs.n ||
				!selects(&ap->selector, &pod->labels)))
			continue;
		act = ap->action.v;
		printf("   %s.%s: %s, %zu rule(s)", o->meta.name.v, o->meta.ns.v,
		       act >= 0 && act < 4 ? action_names[act] : "?", ap->rules.n);
		if (by_ref)
			printf(", via targetRef Service %s (enforced by its waypoint)", svc);
		else if (!has_selector(&ap->selector))
			printf(", %s", !strcmp(o->meta.ns.v, ROOT_NS) ? "mesh-wide" : "namespace-wide");
		else
			print_labels(", selector ", &ap->selector.match_labels);
		if (!has_selector(&ap->selector) || by_ref)
			putchar('\n');
		n++;
	}
	if (!n)
		printf("   none (all traffic allowed unless mTLS mode forbids it)\n");
	n = 0;
	for (size_t i = 0; i < cfg->nobjs; i++) {
		const struct zm_cfg_obj *o = cfg->objs[i];

		if (o->kind != ZM_K_REQUESTAUTHENTICATION ||
		    (strcmp(o->meta.ns.v, ROOT_NS) && strcmp(o->meta.ns.v, pod->ns)) ||
		    o->ra->target_ref.o.set || o->ra->target_refs.n ||
		    !selects(&o->ra->selector, &pod->labels))
			continue;
		printf("%s   %s.%s: %zu JWT rule(s)\n", n ? "" : "RequestAuthentications:\n",
		       o->meta.name.v, o->meta.ns.v, o->ra->jwt_rules.n);
		n++;
	}
}

static int describe_pod(struct zm_lab *lab, const struct zm_cfg_set *cfg, const char *ns,
			const char *name)
{
	struct zm_lab_pod *p = zm_lab_pod_find(lab, ns, name);
	struct zm_lab_ns *lns;
	char ip[INET_ADDRSTRLEN];
	int nsvc = 0;

	if (!p) {
		fprintf(stderr, "Error: pod \"%s\" not found in namespace %s (lab %s)\n", name, ns, lab->name);
		return 1;
	}
	lns = zm_lab_ns_find(lab, p->ns);
	printf("Pod: %s\n   Namespace: %s\n   Node: %s\n   IP: %s\n", p->name, p->ns, p->node,
	       inet_ntop(AF_INET, &p->ip, ip, sizeof(ip)));
	printf("   Identity: spiffe://cluster.local/ns/%s/sa/%s\n", p->ns, p->sa);
	printf("   Labels: ");
	for (size_t i = 0; i < p->labels.n; i++)
		printf("%s%s=%s", i ? "," : "", p->labels.kv[i].key, p->labels.kv[i].val);
	printf("\n   Mesh: %s\n", zm_enroll_wanted(lns ? &lns->labels : &(struct zm_labels){ 0 }, &p->labels)
	       ? "ambient" : "not enrolled (no istio.io/dataplane-mode=ambient)");
	for (size_t c = 0; c < p->ncontainers; c++)
		for (size_t k = 0; k < p->containers[c].nports; k++)
			printf("   Pod Port: %d (%s)\n", p->containers[c].ports[k].port, p->containers[c].name);
	for (size_t i = 0; i < lab->nservices; i++) {
		if (!svc_selects(&lab->services[i], p))
			continue;
		describe_service(cfg, &lab->services[i], p);
		nsvc++;
	}
	if (!nsvc)
		printf("--------------------\nNo Service selects this pod\n");
	describe_peer_auth(cfg, p);
	describe_authz(cfg, lab, p);
	return 0;
}

static int cmd_describe(int argc, char **argv)
{
	struct zmctl_store_opts o = { 0 };
	struct zm_lab lab = { 0 };
	struct zm_cfg_set cfg;
	struct zm_error e = { 0 };
	char dir[PATH_MAX], *pos[2];
	int npos = 0, rc = 1, r;

	for (int i = 1; i < argc; i++) {
		r = zmctl_store_opt("describe", argc, argv, &i, &o);
		if (r < 0)
			return 2;
		if (r)
			continue;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(usage_text, stdout);
			return 0;
		}
		if (argv[i][0] == '-' || npos == 2) {
			fprintf(stderr, "zmeshctl describe: unexpected argument '%s'\n%s", argv[i], usage_text);
			return 2;
		}
		pos[npos++] = argv[i];
	}
	if (npos != 2 || o.nfiles || o.all_ns || o.output) {
		fputs(usage_text, stderr);
		return 2;
	}
	if (strcmp(pos[0], "pod") && strcmp(pos[0], "pods") && strcmp(pos[0], "po")) {
		fprintf(stderr, "zmeshctl describe: only pods can be described\n%s", usage_text);
		return 2;
	}
	if (!o.lab)
		o.lab = getenv("ZMESH_LAB") && *getenv("ZMESH_LAB") ? getenv("ZMESH_LAB") : ZM_LAB_DEFAULT;
	if (zmctl_store_dir("describe", &o, dir, sizeof(dir)))
		return 1;
	if (zm_lab_load(o.lab, &lab, &e)) {
		fprintf(stderr, "zmeshctl describe: lab %s: %s\n", o.lab, e.msg);
		return 1;
	}
	zm_cfg_set_init(&cfg);
	r = zm_store_read(dir, &cfg, NULL, &e);
	if (r == -ENOENT) {
		/* A lab made before labs had stores: describe it without config. */
		fprintf(stderr, "zmeshctl describe: %s: describing without config\n", e.msg);
	} else if (r) {
		fprintf(stderr, "zmeshctl describe: %s\n", e.msg);
		goto out;
	}
	rc = describe_pod(&lab, &cfg, o.ns ? o.ns : "default", pos[1]);
out:
	zm_cfg_set_free(&cfg);
	zm_lab_free(&lab);
	return rc;
}

ZM_CMD(describe, cmd_describe, "describe pod NAME -n NS    the config that applies to a pod (istioctl x describe pod)");
