// SPDX-License-Identifier: Apache-2.0
/*
 * Per-proxy views (docs/zmeshd.md, "Views"): which objects of a store
 * generation a proxy receives, decided by what its credential proves (a
 * node's ztunnel, a waypoint, a gateway), never by what it asks for.
 *
 * The rules follow what each proxy consumes:
 * - ztunnel of node N: Namespaces (ambient enrolment, use-waypoint labels),
 *   Services and ServiceEntries (where traffic goes), the Pods of N in full
 *   and of other nodes only what routing to and verifying them needs
 *   (zd_pod_brief), its own Node, PeerAuthentications, and the
 *   AuthorizationPolicies ztunnel enforces (those without targetRef(s):
 *   targeted ones are a waypoint's, as in Istio). No routes, no Secrets.
 * - waypoint: Namespaces, Services, ServiceEntries, brief Pods,
 *   VirtualServices, DestinationRules, Gateways (VirtualServices name
 *   them), and the AuthorizationPolicies and RequestAuthentications of the
 *   namespaces it serves: its own, the root namespace, and those of the
 *   Services that use it (istio.io/use-waypoint on the Service or its
 *   Namespace). A policy elsewhere cannot apply there (l7route.c
 *   policy_applies), so it is not sent: a waypoint learns nothing of
 *   namespaces it does not serve.
 * - gateway: the waypoint's view with the policies of its own and the root
 *   namespace (a gateway enforces its own workload's), plus the Secrets of
 *   its own namespace (credentialName), and no other Secret.
 */
#include <string.h>

#include "zmeshd.h"

static const char *jstr(json_t *o, const char *a, const char *b)
{
	json_t *v = json_object_get(o, a);

	if (b)
		v = json_object_get(v, b);
	return json_string_value(v);
}

/* Copy o[a][b] into n[a][b] when present. */
static int copy_field(json_t *n, json_t *o, const char *a, const char *b)
{
	json_t *src = json_object_get(json_object_get(o, a), b), *dst;

	if (!src)
		return 0;
	dst = json_object_get(n, a);
	if (!dst) {
		dst = json_object();
		if (!dst || json_object_set_new(n, a, dst))
			return -1;
	}
	return json_object_set(dst, b, src);
}

json_t *zd_pod_brief(json_t *pod)
{
	static const char *const f[][2] = {
		{ "metadata", "name" }, { "metadata", "namespace" }, { "metadata", "uid" },
		{ "metadata", "labels" }, { "spec", "nodeName" }, { "spec", "serviceAccountName" },
		{ "spec", "serviceAccount" }, { "spec", "hostNetwork" }, { "status", "podIP" },
		{ "status", "podIPs" },
	};
	json_t *n = json_pack("{sOsO}", "apiVersion", json_object_get(pod, "apiVersion"), "kind",
			      json_object_get(pod, "kind"));

	json_t *cs = json_object_get(json_object_get(pod, "spec"), "containers"), *c;
	size_t i;

	for (i = 0; n && i < sizeof(f) / sizeof(f[0]); i++)
		if (copy_field(n, pod, f[i][0], f[i][1])) {
			json_decref(n);
			return NULL;
		}
	/* Of the containers, only those with ports, and only their name and
	 * port names and numbers: a Service's named targetPort resolves
	 * through them on any node. */
	json_array_foreach(cs, i, c) {
		json_t *ports = json_object_get(c, "ports"), *pt, *bp = json_array(), *bc, *spec;
		size_t k;

		json_array_foreach(ports, k, pt) {
			json_t *q = json_object();

			if (q && json_object_get(pt, "name"))
				json_object_set(q, "name", json_object_get(pt, "name"));
			if (q && json_object_get(pt, "containerPort"))
				json_object_set(q, "containerPort", json_object_get(pt, "containerPort"));
			json_array_append_new(bp, q);
		}
		if (!json_array_size(bp)) {
			json_decref(bp);	/* no ports: nothing a remote needs */
			continue;
		}
		bc = json_object();
		if (bc && json_object_get(c, "name"))
			json_object_set(bc, "name", json_object_get(c, "name"));
		if (bc && json_array_size(bp))
			json_object_set(bc, "ports", bp);
		json_decref(bp);
		spec = n ? json_object_get(n, "spec") : NULL;
		if (n && !spec) {
			spec = json_object();
			json_object_set_new(n, "spec", spec);
		}
		if (!bc || !spec) {
			json_decref(bc);
			goto fail;
		}
		if (!json_object_get(spec, "containers"))
			json_object_set_new(spec, "containers", json_array());
		if (json_array_append_new(json_object_get(spec, "containers"), bc))
			goto fail;
	}
	return n;
fail:
	json_decref(n);
	return NULL;
}

#define ZD_ROOT_NS "istio-system"	/* Istio's default rootNamespace, as l7route.c */

static const char *label(json_t *o, const char *k)
{
	return json_string_value(json_object_get(json_object_get(json_object_get(o, "metadata"), "labels"), k));
}

/*
 * The namespaces whose policies can apply at waypoint @p: a set (name ->
 * true). Mirrors ztunnel's choice of waypoint (relay.c waypoint_for): the
 * Service's labels, else its Namespace's; "none" opts out.
 */
static json_t *served_namespaces(const struct zd_gen *g, const struct zd_proxy *p)
{
	json_t *set = json_object(), *o;
	const char *key;

	if (!set || json_object_set_new(set, p->ns, json_true()) ||
	    json_object_set_new(set, ZD_ROOT_NS, json_true()))
		goto fail;
	json_object_foreach(g->objs, key, o) {
		const char *sns = jstr(o, "metadata", "namespace"), *wp, *wpns;
		char nkey[128];

		if (strncmp(key, "Service/", 8) || !sns)
			continue;
		wp = label(o, "istio.io/use-waypoint");
		wpns = label(o, "istio.io/use-waypoint-namespace");
		if (!wp) {
			json_t *ns;

			snprintf(nkey, sizeof(nkey), "Namespace//%s", sns);
			ns = json_object_get(g->objs, nkey);
			wp = label(ns, "istio.io/use-waypoint");
			wpns = label(ns, "istio.io/use-waypoint-namespace");
		}
		if (wp && !strcmp(wp, p->sa) && !strcmp(wpns ? wpns : sns, p->ns) &&
		    json_object_set_new(set, sns, json_true()))
			goto fail;
	}
	return set;
fail:
	json_decref(set);
	return NULL;
}

static bool has_target(json_t *o)
{
	json_t *spec = json_object_get(o, "spec");

	return json_object_get(spec, "targetRef") || json_object_get(spec, "targetRefs");
}

/* What @p sees of the object at @key (borrowed), or NULL. @served: the
 * namespaces whose policies a waypoint or gateway gets. */
static json_t *pick(const struct zd_gen *g, const struct zd_proxy *p, json_t *served, const char *key,
		    json_t *o)
{
	const char *slash = strchr(key, '/');
	size_t kl = slash ? (size_t)(slash - key) : strlen(key);
	bool zt = p->view == ZD_VIEW_ZTUNNEL;

#define IS(k) (kl == sizeof(k) - 1 && !memcmp(key, k, kl))
	if (IS("Namespace") || IS("Service") || IS("ServiceEntry"))
		return o;
	if (IS("Pod")) {
		if (zt && !strcmp(jstr(o, "spec", "nodeName") ?: "", p->node))
			return o;
		return json_object_get(g->pods_brief, key);
	}
	if (IS("Node"))
		return zt && !strcmp(jstr(o, "metadata", "name") ?: "", p->node) ? o : NULL;
	if (IS("PeerAuthentication"))
		return zt ? o : NULL;
	if (IS("AuthorizationPolicy") && zt)
		return !has_target(o) ? o : NULL;
	if (IS("AuthorizationPolicy") || IS("RequestAuthentication"))
		return !zt && json_object_get(served, jstr(o, "metadata", "namespace") ?: "") ? o : NULL;
	if (IS("VirtualService") || IS("DestinationRule") || IS("Gateway"))
		return zt ? NULL : o;
	if (IS("Secret"))
		return p->view == ZD_VIEW_GATEWAY && !strcmp(jstr(o, "metadata", "namespace") ?: "", p->ns) ? o
													       : NULL;
#undef IS
	return NULL;	/* ServiceAccount and anything new: nobody until someone needs it */
}

json_t *zd_view(const struct zd_gen *g, const struct zd_proxy *p)
{
	json_t *v = json_object(), *served = NULL, *o, *mine;
	const char *key;

	if (!v)
		return NULL;
	if (p->view == ZD_VIEW_WAYPOINT)
		served = served_namespaces(g, p);
	else if (p->view == ZD_VIEW_GATEWAY)
		served = json_pack("{sbsb}", p->ns, 1, ZD_ROOT_NS, 1);
	if (p->view != ZD_VIEW_ZTUNNEL && !served)
		goto fail;
	json_object_foreach(g->objs, key, o) {
		mine = pick(g, p, served, key, o);
		if (mine && json_object_set(v, key, mine))
			goto fail;
	}
	json_decref(served);
	return v;
fail:
	json_decref(served);
	json_decref(v);
	return NULL;
}
