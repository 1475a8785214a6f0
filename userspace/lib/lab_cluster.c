// SPDX-License-Identifier: Apache-2.0
/*
 * The lab's cluster as Kubernetes objects in its store, and back (lab.h,
 * docs/lab.md "The cluster in the store"): what the API server would say
 * about Namespaces, Nodes, ServiceAccounts, Pods and Services, so zmeshd
 * pushes workloads to the proxies as istiod does.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zmesh/buf.h"
#include "zmesh/config.h"
#include "zmesh/lab.h"
#include "zmesh/store.h"

/* ---- lab -> objects ------------------------------------------------------- */

static json_t *labels_obj(const struct zm_labels *l)
{
	json_t *o = json_object();

	for (size_t i = 0; o && i < l->n; i++)
		if (json_object_set_new(o, l->kv[i].key, json_string(l->kv[i].val))) {
			json_decref(o);
			return NULL;
		}
	return o;
}

static json_t *ip_str(struct in_addr a)
{
	char buf[INET_ADDRSTRLEN];

	return json_string(inet_ntop(AF_INET, &a, buf, sizeof(buf)));
}

static json_t *meta(const char *ns, const char *name, const struct zm_labels *l)
{
	json_t *m = json_pack("{ss}", "name", name);

	if (m && ns)
		json_object_set_new(m, "namespace", json_string(ns));
	if (m && l && l->n)
		json_object_set_new(m, "labels", labels_obj(l));
	return m;
}

static json_t *doc(const char *kind, json_t *m)
{
	return json_pack("{ssssso}", "apiVersion", "v1", "kind", kind, "metadata", m);
}

static json_t *node_json(const struct zm_lab_node *n)
{
	char cidr[INET_ADDRSTRLEN + 4];
	json_t *d = doc("Node", meta(NULL, n->name, NULL));

	inet_ntop(AF_INET, &n->pod_cidr, cidr, INET_ADDRSTRLEN);
	strcat(cidr, "/24");
	if (d) {
		json_object_set_new(d, "spec", json_pack("{ss}", "podCIDR", cidr));
		json_object_set_new(d, "status", json_pack("{s[{ssso}]}", "addresses", "type", "InternalIP",
							   "address", ip_str(n->underlay_ip)));
	}
	return d;
}

static json_t *pod_json(const struct zm_lab *lab, const struct zm_lab_pod *p)
{
	char uid[64];
	json_t *m = meta(p->ns, p->name, &p->labels), *d, *cs = json_array();

	zm_lab_pod_uid(lab, p, uid, sizeof(uid));
	if (m)
		json_object_set_new(m, "uid", json_string(uid));
	d = doc("Pod", m);
	for (size_t c = 0; cs && c < p->ncontainers; c++) {
		const struct zm_lab_container *ct = &p->containers[c];
		json_t *ports = json_array(), *cj = json_pack("{ss}", "name", ct->name);

		for (size_t k = 0; ports && k < ct->nports; k++) {
			json_t *pj = json_pack("{siss}", "containerPort", ct->ports[k].port, "protocol", "TCP");

			if (pj && ct->ports[k].name[0])
				json_object_set_new(pj, "name", json_string(ct->ports[k].name));
			json_array_append_new(ports, pj);
		}
		if (cj && ports && json_array_size(ports))
			json_object_set(cj, "ports", ports);
		json_decref(ports);
		json_array_append_new(cs, cj);
	}
	if (d) {
		json_object_set_new(d, "spec", json_pack("{sssssO}", "nodeName", p->node, "serviceAccountName",
							 p->sa, "containers", cs));
		json_object_set_new(d, "status", json_pack("{sssos[{so}]}", "phase", "Running", "podIP",
							   ip_str(p->ip), "podIPs", "ip", ip_str(p->ip)));
	}
	json_decref(cs);
	return d;
}

static json_t *svc_json(const struct zm_lab_svc *s)
{
	json_t *d = doc("Service", meta(s->ns, s->name, &s->labels));
	json_t *spec = json_object(), *ports = json_array();

	for (size_t k = 0; ports && k < s->nports; k++) {
		const struct zm_lab_sport *sp = &s->ports[k];
		json_t *pj = json_pack("{siss}", "port", sp->port, "protocol", sp->protocol[0] ? sp->protocol : "TCP");

		if (pj && sp->name[0])
			json_object_set_new(pj, "name", json_string(sp->name));
		if (pj)
			json_object_set_new(pj, "targetPort", sp->target_port ? json_integer(sp->target_port)
									     : json_string(sp->target_name));
		json_array_append_new(ports, pj);
	}
	if (spec) {
		if (s->selector.n)
			json_object_set_new(spec, "selector", labels_obj(&s->selector));
		json_object_set_new(spec, "ports", ports ? ports : json_array());
		if (s->cluster_ip.s_addr)
			json_object_set_new(spec, "clusterIP", ip_str(s->cluster_ip));
		json_object_set_new(spec, "type", json_string("ClusterIP"));
	} else {
		json_decref(ports);
	}
	if (d)
		json_object_set_new(d, "spec", spec);
	else
		json_decref(spec);
	return d;
}

static bool sa_listed(const struct zm_lab *lab, const char *ns, const char *name)
{
	for (size_t i = 0; i < lab->nsas; i++)
		if (!strcmp(lab->sas[i].ns, ns) && !strcmp(lab->sas[i].name, name))
			return true;
	return false;
}

static int emit(struct zm_buf *b, json_t *d)
{
	char *s = d ? json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	int rc = s ? zm_buf_printf(b, "---\n%s\n", s) : -ENOMEM;

	free(s);
	json_decref(d);
	return rc < 0 ? -ENOMEM : 0;
}

int zm_lab_cluster_objects(const struct zm_lab *lab, const struct zm_cfg_set *extra, struct zm_cfg_set *out,
			   struct zm_error *e)
{
	struct zm_buf b = { 0 };
	int rc = 0;

	for (size_t i = 0; i < lab->nnamespaces && !rc; i++)
		rc = emit(&b, doc("Namespace", meta(NULL, lab->namespaces[i].name, &lab->namespaces[i].labels)));
	for (size_t i = 0; i < lab->nnodes && !rc; i++)
		rc = emit(&b, node_json(&lab->nodes[i]));
	/* Every namespace has its "default" account, as in Kubernetes. */
	for (size_t i = 0; i < lab->nnamespaces && !rc; i++)
		if (!sa_listed(lab, lab->namespaces[i].name, "default"))
			rc = emit(&b, doc("ServiceAccount", meta(lab->namespaces[i].name, "default", NULL)));
	for (size_t i = 0; i < lab->nsas && !rc; i++)
		rc = emit(&b, doc("ServiceAccount", meta(lab->sas[i].ns, lab->sas[i].name, NULL)));
	for (size_t i = 0; i < lab->npods && !rc; i++)
		rc = emit(&b, pod_json(lab, &lab->pods[i]));
	for (size_t i = 0; i < lab->nservices && !rc; i++)
		rc = emit(&b, svc_json(&lab->services[i]));
	for (size_t i = 0; extra && i < extra->nobjs && !rc; i++)
		rc = emit(&b, zm_cfg_obj_to_json(extra->objs[i]));
	if (rc) {
		zm_buf_free(&b);
		return zm_error_set(e, ENOMEM, "out of memory");
	}
	rc = zm_buf_len(&b) ? zm_cfg_load_buf(out, "lab", zm_buf_data(&b), zm_buf_len(&b)) : 0;
	zm_buf_free(&b);
	if (rc == -EINVAL && out->nerrs)
		return zm_error_set(e, EINVAL, "lab %s: cluster objects: %s", lab->name, out->errs[0].text);
	if (rc)
		return zm_error_set(e, -rc, "lab %s: cluster objects: %s", lab->name, strerror(-rc));
	return 0;
}

int zm_lab_cluster_apply(const struct zm_lab *lab, const struct zm_cfg_set *extra, uint64_t *version,
			 struct zm_error *e)
{
	char dir[PATH_MAX + 16];
	struct zm_cfg_set s;
	struct zm_store *st = NULL;
	uint64_t v = 0;
	int rc;

	zm_cfg_set_init(&s);
	rc = zm_lab_cluster_objects(lab, extra, &s, e);
	snprintf(dir, sizeof(dir), "%s/%s", lab->state_dir, ZM_LAB_STORE);
	if (!rc)
		rc = zm_store_open(dir, &st, e);
	if (!rc)
		rc = zm_store_apply(st, &s, &v, e);
	if (rc == -EINVAL && s.nerrs) {
		zm_cfg_sort_errors(&s);
		zm_error_set(e, EINVAL, "lab %s: store: %s", lab->name, s.errs[0].text);
	}
	if (version)
		*version = v;
	zm_store_close(st);
	zm_cfg_set_free(&s);
	return rc;
}

/* ---- objects -> lab ------------------------------------------------------- */

/* An error at object @o: "file:line:col: path: why (Kind ns/name)". */
static int bad(struct zm_error *e, const struct zm_cfg_obj *o, const char *path, const char *why)
{
	return zm_error_set(e, EINVAL, "%s:%u:%u: %s: %s (%s %s%s%s)", o->file ? o->file : "?", o->pos.line,
			    o->pos.col, path, why, zm_kind_name(o->kind), o->meta.ns.v ? o->meta.ns.v : "",
			    o->meta.ns.v ? "/" : "", o->meta.name.v ? o->meta.name.v : "");
}

static json_t *jget(json_t *o, const char *a, const char *b)
{
	json_t *v = json_object_get(o, a);

	return b ? json_object_get(v, b) : v;
}

/* A string map at @v (absent: empty) into @l. */
static int labels_in(const struct zm_cfg_obj *o, json_t *v, const char *path, struct zm_labels *l,
		     struct zm_error *e)
{
	const char *k;
	json_t *x;

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return bad(e, o, path, "want a map of strings");
	json_object_foreach(v, k, x) {
		if (!json_is_string(x))
			return bad(e, o, path, "want a map of strings");
		if (zm_labels_set(l, k, json_string_value(x)))
			return zm_error_set(e, ENOMEM, "out of memory");
	}
	return 0;
}

/* Optional string at @v into @out (absent: @dflt). */
static int str_in(const struct zm_cfg_obj *o, json_t *v, const char *path, const char *dflt, char *out,
		  size_t sz, struct zm_error *e)
{
	const char *s = dflt;

	if (v && !json_is_null(v)) {
		if (!json_is_string(v))
			return bad(e, o, path, "want a string");
		s = json_string_value(v);
	}
	if (strlen(s) >= sz)
		return bad(e, o, path, "too long");
	snprintf(out, sz, "%s", s);
	return 0;
}

static int port_in(const struct zm_cfg_obj *o, json_t *v, const char *path, bool required, int *out,
		   struct zm_error *e)
{
	json_int_t n;

	*out = 0;
	if (!v && !required)
		return 0;
	if (!json_is_integer(v))
		return bad(e, o, path, required && !v ? "required field is missing" : "want an integer");
	n = json_integer_value(v);
	if (n < 1 || n > 65535)
		return bad(e, o, path, "want a port from 1 to 65535");
	*out = (int)n;
	return 0;
}

/* The pod's IPv4 address: status.podIP, else the first IPv4 of
 * status.podIPs. *found false when it has none (not scheduled or not
 * started yet; IPv6 only): not routable, not an error. */
static int pod_ip(const struct zm_cfg_obj *o, json_t *status, struct in_addr *ip, bool *found,
		  struct zm_error *e)
{
	json_t *v = json_object_get(status, "podIP"), *ips = json_object_get(status, "podIPs"), *x;
	size_t i;

	*found = false;
	if (v && !json_is_null(v)) {
		struct in6_addr a6;
		const char *sv = json_string_value(v);

		if (!sv)
			return bad(e, o, "status.podIP", "want a string");
		if (inet_pton(AF_INET, sv, ip) == 1) {
			*found = true;
			return 0;
		}
		if (inet_pton(AF_INET6, sv, &a6) != 1)
			return bad(e, o, "status.podIP", "not an IP address");
	}
	if (ips && !json_is_null(ips) && !json_is_array(ips))
		return bad(e, o, "status.podIPs", "want a list");
	json_array_foreach(ips, i, x) {
		const char *s = json_string_value(json_object_get(x, "ip"));

		if (!s)
			return bad(e, o, "status.podIPs[].ip", "want a string");
		if (inet_pton(AF_INET, s, ip) == 1) {
			*found = true;
			return 0;
		}
	}
	return 0;
}

static int add_pod(struct zm_lab *lab, const struct zm_cfg_obj *o, struct zm_error *e)
{
	json_t *r = o->raw, *spec = json_object_get(r, "spec"), *cs = json_object_get(spec, "containers"), *c;
	struct zm_lab_pod *p = &lab->pods[lab->npods];
	json_t *sa = jget(spec, "serviceAccountName", NULL);
	size_t i;
	bool found;
	int rc;

	memset(p, 0, sizeof(*p));
	/* A host-network pod's address is its node's: naming a workload by it
	 * would give the node's traffic that pod's identity. Never meshed. */
	if (json_is_true(json_object_get(spec, "hostNetwork")))
		return 0;
	rc = pod_ip(o, json_object_get(r, "status"), &p->ip, &found, e);
	if (rc || !found)
		return rc;
	snprintf(p->ns, sizeof(p->ns), "%s", o->meta.ns.v);
	snprintf(p->name, sizeof(p->name), "%s", o->meta.name.v);
	if (!sa || json_is_null(sa))
		sa = jget(spec, "serviceAccount", NULL);	/* the deprecated spelling */
	rc = str_in(o, jget(spec, "nodeName", NULL), "spec.nodeName", "", p->node, sizeof(p->node), e);
	if (!rc)
		rc = str_in(o, sa, "spec.serviceAccountName", "default", p->sa, sizeof(p->sa), e);
	if (!rc)
		rc = labels_in(o, jget(r, "metadata", "labels"), "metadata.labels", &p->labels, e);
	if (!rc && cs && !json_is_null(cs) && !json_is_array(cs))
		rc = bad(e, o, "spec.containers", "want a list");
	if (rc)
		goto fail;
	p->containers = calloc(json_array_size(cs) + 1, sizeof(*p->containers));
	if (!p->containers) {
		rc = zm_error_set(e, ENOMEM, "out of memory");
		goto fail;
	}
	json_array_foreach(cs, i, c) {
		struct zm_lab_container *ct = &p->containers[p->ncontainers++];
		json_t *ports = json_object_get(c, "ports"), *x;
		size_t k;

		rc = str_in(o, json_object_get(c, "name"), "spec.containers[].name", "", ct->name, sizeof(ct->name), e);
		if (!rc && ports && !json_is_null(ports) && !json_is_array(ports))
			rc = bad(e, o, "spec.containers[].ports", "want a list");
		if (rc)
			goto fail;
		ct->ports = calloc(json_array_size(ports) + 1, sizeof(*ct->ports));
		if (!ct->ports) {
			rc = zm_error_set(e, ENOMEM, "out of memory");
			goto fail;
		}
		json_array_foreach(ports, k, x) {
			struct zm_lab_cport *cp = &ct->ports[ct->nports++];

			rc = str_in(o, json_object_get(x, "name"), "spec.containers[].ports[].name", "", cp->name,
				    sizeof(cp->name), e);
			if (!rc)
				rc = port_in(o, json_object_get(x, "containerPort"),
					     "spec.containers[].ports[].containerPort", true, &cp->port, e);
			if (rc)
				goto fail;
		}
	}
	lab->npods++;
	return 0;
fail:
	lab->npods++;	/* zm_lab_free() takes what it holds */
	return rc;
}

static int add_svc(struct zm_lab *lab, const struct zm_cfg_obj *o, struct zm_error *e)
{
	json_t *r = o->raw, *spec = json_object_get(r, "spec"), *ports = json_object_get(spec, "ports"), *x;
	json_t *cip = json_object_get(spec, "clusterIP");
	struct zm_lab_svc *s = &lab->services[lab->nservices++];
	size_t k;
	int rc;

	snprintf(s->ns, sizeof(s->ns), "%s", o->meta.ns.v);
	snprintf(s->name, sizeof(s->name), "%s", o->meta.name.v);
	rc = labels_in(o, jget(r, "metadata", "labels"), "metadata.labels", &s->labels, e);
	if (!rc)
		rc = labels_in(o, json_object_get(spec, "selector"), "spec.selector", &s->selector, e);
	if (rc)
		return rc;
	/* Absent or "None" (headless): no virtual IP, nothing to resolve. */
	if (cip && !json_is_null(cip) && (!json_is_string(cip) ||
					  (strcmp(json_string_value(cip), "None") && strcmp(json_string_value(cip), "") &&
					   inet_pton(AF_INET, json_string_value(cip), &s->cluster_ip) != 1)))
		return bad(e, o, "spec.clusterIP", "want an IPv4 address or None");
	if (ports && !json_is_null(ports) && !json_is_array(ports))
		return bad(e, o, "spec.ports", "want a list");
	s->ports = calloc(json_array_size(ports) + 1, sizeof(*s->ports));
	if (!s->ports)
		return zm_error_set(e, ENOMEM, "out of memory");
	json_array_foreach(ports, k, x) {
		struct zm_lab_sport *sp = &s->ports[s->nports++];
		json_t *tp = json_object_get(x, "targetPort");

		rc = str_in(o, json_object_get(x, "name"), "spec.ports[].name", "", sp->name, sizeof(sp->name), e);
		if (!rc)
			rc = str_in(o, json_object_get(x, "protocol"), "spec.ports[].protocol", "TCP", sp->protocol,
				    sizeof(sp->protocol), e);
		if (!rc)
			rc = port_in(o, json_object_get(x, "port"), "spec.ports[].port", true, &sp->port, e);
		if (rc)
			return rc;
		/* Kubernetes: targetPort defaults to port; a string names a container port. */
		if (!tp || json_is_null(tp))
			sp->target_port = sp->port;
		else if (json_is_string(tp))
			rc = str_in(o, tp, "spec.ports[].targetPort", "", sp->target_name, sizeof(sp->target_name), e);
		else
			rc = port_in(o, tp, "spec.ports[].targetPort", true, &sp->target_port, e);
		if (rc)
			return rc;
	}
	return 0;
}

static int add_node(struct zm_lab *lab, const struct zm_cfg_obj *o, struct zm_error *e)
{
	json_t *r = o->raw, *addrs = jget(r, "status", "addresses"), *cidr = jget(r, "spec", "podCIDR"), *x;
	struct zm_lab_node *n = &lab->nodes[lab->nnodes];
	size_t i;

	memset(n, 0, sizeof(*n));
	snprintf(n->name, sizeof(n->name), "%s", o->meta.name.v);
	n->index = (int)lab->nnodes;
	if (addrs && !json_is_null(addrs) && !json_is_array(addrs))
		return bad(e, o, "status.addresses", "want a list");
	json_array_foreach(addrs, i, x) {
		const char *t = json_string_value(json_object_get(x, "type"));
		const char *a = json_string_value(json_object_get(x, "address"));

		if (!t || !a)
			return bad(e, o, "status.addresses[]", "want type and address strings");
		if (!strcmp(t, "InternalIP") && !n->underlay_ip.s_addr && inet_pton(AF_INET, a, &n->underlay_ip) != 1)
			return bad(e, o, "status.addresses[].address", "not an IPv4 address");
	}
	if (cidr && !json_is_null(cidr)) {
		char buf[INET_ADDRSTRLEN + 4], *slash;

		if (!json_is_string(cidr) || strlen(json_string_value(cidr)) >= sizeof(buf))
			return bad(e, o, "spec.podCIDR", "want an IPv4 CIDR");
		snprintf(buf, sizeof(buf), "%s", json_string_value(cidr));
		slash = strchr(buf, '/');
		if (slash)
			*slash = 0;
		if (!slash || inet_pton(AF_INET, buf, &n->pod_cidr) != 1)
			return bad(e, o, "spec.podCIDR", "want an IPv4 CIDR");
		/* The lab's convention: the node side of every pod veth is .1. */
		n->gateway.s_addr = htonl(ntohl(n->pod_cidr.s_addr) + 1);
	}
	lab->nnodes++;
	return 0;
}

int zm_lab_cluster_from_cfg(const struct zm_cfg_set *s, struct zm_lab *out, struct zm_error *e)
{
	size_t n[ZM_K__COUNT] = { 0 };
	int rc = 0;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < s->nobjs; i++)
		n[s->objs[i]->kind]++;
	out->nodes = calloc(n[ZM_K_NODE] + 1, sizeof(*out->nodes));
	out->namespaces = calloc(n[ZM_K_NAMESPACE] + 1, sizeof(*out->namespaces));
	out->pods = calloc(n[ZM_K_POD] + 1, sizeof(*out->pods));
	out->services = calloc(n[ZM_K_SERVICE] + 1, sizeof(*out->services));
	out->sas = calloc(n[ZM_K_SERVICEACCOUNT] + 1, sizeof(*out->sas));
	if (!out->nodes || !out->namespaces || !out->pods || !out->services || !out->sas) {
		rc = zm_error_set(e, ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < s->nobjs && !rc; i++) {
		const struct zm_cfg_obj *o = s->objs[i];

		if (!o->meta.name.v || (!zm_kind_cluster_scoped(o->kind) && !o->meta.ns.v))
			continue;	/* the reader refuses these; not ours to judge */
		if (strlen(o->meta.name.v) > ZM_K8S_NAME_MAX ||
		    (o->meta.ns.v && strlen(o->meta.ns.v) > ZM_K8S_NAME_MAX)) {
			rc = bad(e, o, "metadata.name", "longer than 63 characters");
			break;
		}
		switch (o->kind) {
		case ZM_K_NAMESPACE: {
			struct zm_lab_ns *ns = &out->namespaces[out->nnamespaces++];

			snprintf(ns->name, sizeof(ns->name), "%s", o->meta.name.v);
			rc = labels_in(o, jget(o->raw, "metadata", "labels"), "metadata.labels", &ns->labels, e);
			break;
		}
		case ZM_K_SERVICEACCOUNT:
			snprintf(out->sas[out->nsas].ns, sizeof(out->sas[0].ns), "%s", o->meta.ns.v);
			snprintf(out->sas[out->nsas].name, sizeof(out->sas[0].name), "%s", o->meta.name.v);
			out->nsas++;
			break;
		case ZM_K_POD:
			rc = add_pod(out, o, e);
			break;
		case ZM_K_SERVICE:
			rc = add_svc(out, o, e);
			break;
		case ZM_K_NODE:
			rc = add_node(out, o, e);
			break;
		default:
			break;
		}
	}
out:
	if (rc)
		zm_lab_free(out);
	return rc;
}
