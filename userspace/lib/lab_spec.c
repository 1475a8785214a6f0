// SPDX-License-Identifier: Apache-2.0
/* Kubernetes manifests -> struct zm_lab: the lab's typed reader. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zmesh/lab.h"
#include "zmesh/yaml.h"

/* Where we are: the file (for positions) and the error sink. */
struct rd {
	const struct zm_yfile *f;
	struct zm_error *e;
};

#define FAIL(r, n, path, ...) zm_ynode_error((r)->e, (r)->f, (n), (path), __VA_ARGS__)

int zm_lab_name_check(const char *name, struct zm_error *e)
{
	size_t n = strlen(name);

	if (n == 0 || n > ZM_LAB_NAME_MAX)
		return zm_error_set(e, EINVAL, "lab name '%s': want 1 to %d characters",
				    name, ZM_LAB_NAME_MAX);
	for (size_t i = 0; i < n; i++)
		if (!islower((unsigned char)name[i]) && !isdigit((unsigned char)name[i]))
			return zm_error_set(e, EINVAL,
					    "lab name '%s': only a-z and 0-9 are allowed", name);
	return 0;
}

/* Every key of mapping @n must be in @allowed (NULL-terminated). */
static int check_keys(struct rd *r, const struct zm_ynode *n, const char *path,
		      const char *const *allowed)
{
	char p[256], esc[80];

	if (!n || n->kind != ZM_Y_MAP)
		return n ? FAIL(r, n, path, "want a mapping") : 0;
	for (size_t i = 0; i < n->n; i++) {
		const char *const *a;

		for (a = allowed; *a; a++)
			if (zm_ynode_eq(n->keys[i], *a))
				break;
		if (!*a) {
			zm_log_escape(esc, sizeof(esc), n->keys[i]->str, n->keys[i]->len);
			snprintf(p, sizeof(p), "%s%s%s", path, path[0] ? "." : "", esc);
			return FAIL(r, n->keys[i], p, "unknown field");
		}
	}
	return 0;
}

/* DNS-1123 label: what Kubernetes requires of pod, namespace, node names. */
static int get_name(struct rd *r, const struct zm_ynode *n, const char *path,
		    char *out, size_t outsz, bool required)
{
	if (zm_ynode_is_null(n)) {
		if (required)
			return n ? FAIL(r, n, path, "required") :
				   zm_error_set(r->e, EINVAL, "%s: %s: required", r->f->name, path);
		out[0] = 0;
		return 0;
	}
	if (n->kind != ZM_Y_SCALAR)
		return FAIL(r, n, path, "want a string");
	if (n->len == 0 || n->len >= outsz || n->len > ZM_K8S_NAME_MAX)
		return FAIL(r, n, path, "want 1 to %d characters", ZM_K8S_NAME_MAX);
	for (size_t i = 0; i < n->len; i++) {
		char c = n->str[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			  (c == '-' && i > 0 && i + 1 < n->len);

		if (!ok)
			return FAIL(r, n, path,
				    "invalid name: want lower-case letters, digits and '-' (RFC 1123 label)");
	}
	memcpy(out, n->str, n->len);
	out[n->len] = 0;
	return 0;
}

static int get_str(struct rd *r, const struct zm_ynode *n, const char *path, char **out)
{
	if (!n || n->kind != ZM_Y_SCALAR)
		return FAIL(r, n, path, "want a string");
	if (strlen(n->str) != n->len)
		return FAIL(r, n, path, "NUL byte in string");
	*out = strdup(n->str);
	return *out ? 0 : -ENOMEM;
}

static int get_labels(struct rd *r, const struct zm_ynode *n, const char *path,
		      struct zm_labels *out)
{
	char p[256];

	if (zm_ynode_is_null(n))
		return 0;
	if (n->kind != ZM_Y_MAP)
		return FAIL(r, n, path, "want a mapping of strings");
	for (size_t i = 0; i < n->n; i++) {
		const struct zm_ynode *v = n->items[i];
		int rc;

		snprintf(p, sizeof(p), "%s.%.100s", path, n->keys[i]->str);
		if (n->keys[i]->len == 0 || n->keys[i]->len > 317 ||
		    strlen(n->keys[i]->str) != n->keys[i]->len)
			return FAIL(r, n->keys[i], p, "invalid key");
		if (v->kind != ZM_Y_SCALAR || v->len > 63 || strlen(v->str) != v->len)
			return FAIL(r, v, p, "want a string of at most 63 characters");
		rc = zm_labels_set(out, n->keys[i]->str, v->str);
		if (rc)
			return rc;
	}
	return 0;
}

static int get_int(struct rd *r, const struct zm_ynode *n, const char *path,
		   int64_t min, int64_t max, int *out)
{
	int64_t v;

	if (zm_ynode_int(n, min, max, &v))
		return FAIL(r, n, path, "want an integer from %lld to %lld",
			    (long long)min, (long long)max);
	*out = (int)v;
	return 0;
}

static const char *const meta_keys[] = { "name", "namespace", "labels", "annotations",
					 "uid", NULL };

/* metadata: name (required), namespace (when @ns), labels. */
static int read_meta(struct rd *r, const struct zm_ynode *doc, char *name, char *ns,
		     struct zm_labels *labels)
{
	const struct zm_ynode *md = zm_ymap_get(doc, "metadata");
	int rc;

	if (!md)
		return FAIL(r, doc, "metadata", "required");
	rc = check_keys(r, md, "metadata", meta_keys);
	if (!rc)
		rc = get_name(r, zm_ymap_get(md, "name"), "metadata.name", name,
			      ZM_K8S_NAME_MAX + 1, true);
	if (!rc && ns) {
		rc = get_name(r, zm_ymap_get(md, "namespace"), "metadata.namespace", ns,
			      ZM_K8S_NAME_MAX + 1, false);
		if (!rc && !ns[0])
			strcpy(ns, "default");
	} else if (!rc && zm_ymap_get(md, "namespace")) {
		rc = FAIL(r, zm_ymap_get(md, "namespace"), "metadata.namespace",
			  "not allowed: this kind is not namespaced");
	}
	if (!rc && labels)
		rc = get_labels(r, zm_ymap_get(md, "labels"), "metadata.labels", labels);
	return rc;
}

#define GROW(arr, n) ({							\
	__typeof__(arr) _p = realloc((arr), ((n) + 1) * sizeof(*(arr)));	\
	if (_p) {							\
		(arr) = _p;						\
		memset(&(arr)[(n)], 0, sizeof(*(arr)));			\
	}								\
	_p ? &(arr)[(n)++] : NULL; })

static int read_node(struct rd *r, struct zm_lab *lab, const struct zm_ynode *doc)
{
	static const char *const keys[] = { "apiVersion", "kind", "metadata", "spec", "status", NULL };
	struct zm_lab_node *nd;
	struct zm_labels ignored = { 0 };
	char name[ZM_K8S_NAME_MAX + 1];
	int rc = check_keys(r, doc, "", keys);

	if (!rc)
		rc = read_meta(r, doc, name, NULL, &ignored);
	zm_labels_free(&ignored);
	if (rc)
		return rc;
	if (zm_lab_node_find(lab, name))
		return FAIL(r, zm_ymap_get(zm_ymap_get(doc, "metadata"), "name"), "metadata.name",
			    "duplicate Node \"%s\"", name);
	if (lab->nnodes == ZM_LAB_MAX_NODES)
		return FAIL(r, doc, "kind", "more than %d nodes", ZM_LAB_MAX_NODES);
	nd = GROW(lab->nodes, lab->nnodes);
	if (!nd)
		return -ENOMEM;
	strcpy(nd->name, name);
	nd->index = (int)lab->nnodes - 1;
	return 0;
}

static int read_namespace(struct rd *r, struct zm_lab *lab, const struct zm_ynode *doc)
{
	static const char *const keys[] = { "apiVersion", "kind", "metadata", "spec", "status", NULL };
	struct zm_lab_ns tmp = { 0 }, *ns;
	int rc = check_keys(r, doc, "", keys);

	if (!rc)
		rc = read_meta(r, doc, tmp.name, NULL, &tmp.labels);
	if (!rc && zm_lab_ns_find(lab, tmp.name))
		rc = FAIL(r, zm_ymap_get(zm_ymap_get(doc, "metadata"), "name"), "metadata.name",
			  "duplicate Namespace \"%s\"", tmp.name);
	if (!rc) {
		ns = GROW(lab->namespaces, lab->nnamespaces);
		if (!ns)
			rc = -ENOMEM;
		else
			*ns = tmp;
	}
	if (rc)
		zm_labels_free(&tmp.labels);
	return rc;
}

static int read_sa(struct rd *r, struct zm_lab *lab, const struct zm_ynode *doc)
{
	static const char *const keys[] = { "apiVersion", "kind", "metadata", "secrets",
					    "automountServiceAccountToken", NULL };
	struct zm_lab_sa tmp = { 0 }, *sa;
	int rc = check_keys(r, doc, "", keys);

	if (!rc)
		rc = read_meta(r, doc, tmp.name, tmp.ns, NULL);
	if (rc)
		return rc;
	for (size_t i = 0; i < lab->nsas; i++)
		if (!strcmp(lab->sas[i].ns, tmp.ns) && !strcmp(lab->sas[i].name, tmp.name))
			return FAIL(r, zm_ymap_get(zm_ymap_get(doc, "metadata"), "name"),
				    "metadata.name", "duplicate ServiceAccount \"%s/%s\"",
				    tmp.ns, tmp.name);
	sa = GROW(lab->sas, lab->nsas);
	if (!sa)
		return -ENOMEM;
	*sa = tmp;
	return 0;
}

static int read_container(struct rd *r, const struct zm_ynode *cn, const char *path,
			  struct zm_lab_container *c)
{
	static const char *const keys[] = { "name", "image", "command", "args", "env", "ports",
					    "imagePullPolicy", "resources", "workingDir", NULL };
	const struct zm_ynode *cmd = zm_ymap_get(cn, "command"), *args = zm_ymap_get(cn, "args");
	const struct zm_ynode *env = zm_ymap_get(cn, "env"), *ports = zm_ymap_get(cn, "ports");
	char p[256];
	int rc = check_keys(r, cn, path, keys);

	if (rc)
		return rc;
	snprintf(p, sizeof(p), "%s.name", path);
	rc = get_name(r, zm_ymap_get(cn, "name"), p, c->name, sizeof(c->name), true);
	if (rc)
		return rc;
	if (!cmd) {
		snprintf(p, sizeof(p), "%s.command", path);
		return FAIL(r, cn, p, "required: the lab has no images, it runs this command");
	}
	for (int part = 0; part < 2; part++) {
		const struct zm_ynode *list = part ? args : cmd;

		if (!list)
			continue;
		snprintf(p, sizeof(p), "%s.%s", path, part ? "args" : "command");
		if (list->kind != ZM_Y_SEQ || (!part && list->n == 0))
			return FAIL(r, list, p, "want a non-empty list of strings");
		for (size_t i = 0; i < list->n; i++) {
			char **argv = realloc(c->argv, (c->argc + 2) * sizeof(*argv));

			if (!argv)
				return -ENOMEM;
			c->argv = argv;
			snprintf(p, sizeof(p), "%s.%s[%zu]", path, part ? "args" : "command", i);
			rc = get_str(r, list->items[i], p, &c->argv[c->argc]);
			if (rc)
				return rc;
			c->argv[++c->argc] = NULL;
		}
	}
	if (env) {
		snprintf(p, sizeof(p), "%s.env", path);
		if (env->kind != ZM_Y_SEQ)
			return FAIL(r, env, p, "want a list");
		for (size_t i = 0; i < env->n; i++) {
			static const char *const ekeys[] = { "name", "value", NULL };
			struct zm_kv *kv;

			snprintf(p, sizeof(p), "%s.env[%zu]", path, i);
			rc = check_keys(r, env->items[i], p, ekeys);
			if (rc)
				return rc;
			kv = GROW(c->env, c->nenv);
			if (!kv)
				return -ENOMEM;
			snprintf(p, sizeof(p), "%s.env[%zu].name", path, i);
			rc = get_str(r, zm_ymap_get(env->items[i], "name"), p, &kv->key);
			if (!rc && (!kv->key[0] || strchr(kv->key, '=')))
				rc = FAIL(r, zm_ymap_get(env->items[i], "name"), p,
					  "invalid environment variable name");
			if (rc)
				return rc;
			snprintf(p, sizeof(p), "%s.env[%zu].value", path, i);
			if (zm_ymap_get(env->items[i], "value"))
				rc = get_str(r, zm_ymap_get(env->items[i], "value"), p, &kv->val);
			else
				kv->val = strdup("");
			if (rc || !kv->val)
				return rc ? rc : -ENOMEM;
		}
	}
	if (ports) {
		snprintf(p, sizeof(p), "%s.ports", path);
		if (ports->kind != ZM_Y_SEQ)
			return FAIL(r, ports, p, "want a list");
		for (size_t i = 0; i < ports->n; i++) {
			static const char *const pkeys[] = { "name", "containerPort", "protocol", NULL };
			const struct zm_ynode *pn = ports->items[i], *nm;
			struct zm_lab_cport *cp;

			snprintf(p, sizeof(p), "%s.ports[%zu]", path, i);
			rc = check_keys(r, pn, p, pkeys);
			if (rc)
				return rc;
			cp = GROW(c->ports, c->nports);
			if (!cp)
				return -ENOMEM;
			snprintf(p, sizeof(p), "%s.ports[%zu].containerPort", path, i);
			rc = get_int(r, zm_ymap_get(pn, "containerPort"), p, 1, 65535, &cp->port);
			if (rc)
				return rc;
			nm = zm_ymap_get(pn, "name");
			if (nm) {
				snprintf(p, sizeof(p), "%s.ports[%zu].name", path, i);
				if (nm->kind != ZM_Y_SCALAR || nm->len == 0 || nm->len > 15)
					return FAIL(r, nm, p, "want a name of 1 to 15 characters");
				memcpy(cp->name, nm->str, nm->len + 1);
			}
		}
	}
	return 0;
}

static int read_pod(struct rd *r, struct zm_lab *lab, const struct zm_ynode *doc)
{
	static const char *const keys[] = { "apiVersion", "kind", "metadata", "spec", "status", NULL };
	static const char *const skeys[] = { "nodeName", "serviceAccountName", "containers",
					     "restartPolicy", "terminationGracePeriodSeconds", NULL };
	const struct zm_ynode *spec = zm_ymap_get(doc, "spec"), *cs;
	struct zm_lab_pod *pod;
	char p[128];
	int rc = check_keys(r, doc, "", keys);

	if (rc)
		return rc;
	pod = GROW(lab->pods, lab->npods);
	if (!pod)
		return -ENOMEM;
	rc = read_meta(r, doc, pod->name, pod->ns, &pod->labels);
	if (rc)
		return rc;
	for (size_t i = 0; i + 1 < lab->npods; i++)
		if (!strcmp(lab->pods[i].ns, pod->ns) && !strcmp(lab->pods[i].name, pod->name))
			return FAIL(r, zm_ymap_get(zm_ymap_get(doc, "metadata"), "name"),
				    "metadata.name", "duplicate Pod \"%s/%s\"", pod->ns, pod->name);
	if (!spec)
		return FAIL(r, doc, "spec", "required");
	rc = check_keys(r, spec, "spec", skeys);
	if (!rc)
		rc = get_name(r, zm_ymap_get(spec, "nodeName"), "spec.nodeName", pod->node,
			      sizeof(pod->node), true);
	if (!rc)
		rc = get_name(r, zm_ymap_get(spec, "serviceAccountName"), "spec.serviceAccountName",
			      pod->sa, sizeof(pod->sa), false);
	if (rc)
		return rc;
	if (!pod->sa[0])
		strcpy(pod->sa, "default");
	cs = zm_ymap_get(spec, "containers");
	if (!cs || cs->kind != ZM_Y_SEQ || cs->n == 0)
		return FAIL(r, cs ? cs : spec, "spec.containers", "want a non-empty list");
	pod->containers = calloc(cs->n, sizeof(*pod->containers));
	if (!pod->containers)
		return -ENOMEM;
	pod->ncontainers = cs->n;
	for (size_t i = 0; i < cs->n; i++) {
		snprintf(p, sizeof(p), "spec.containers[%zu]", i);
		rc = read_container(r, cs->items[i], p, &pod->containers[i]);
		if (rc)
			return rc;
	}
	return 0;
}

static int parse_ip(const struct zm_ynode *n, struct in_addr *out)
{
	return n && n->kind == ZM_Y_SCALAR && strlen(n->str) == n->len &&
			       inet_pton(AF_INET, n->str, out) == 1 ? 0 : -EINVAL;
}

static int read_service(struct rd *r, struct zm_lab *lab, const struct zm_ynode *doc)
{
	static const char *const keys[] = { "apiVersion", "kind", "metadata", "spec", "status", NULL };
	static const char *const skeys[] = { "selector", "ports", "clusterIP", "type", NULL };
	static const char *const pkeys[] = { "name", "port", "targetPort", "protocol", NULL };
	const struct zm_ynode *spec = zm_ymap_get(doc, "spec"), *ports, *cip, *type;
	struct zm_lab_svc *svc;
	char p[128];
	int rc = check_keys(r, doc, "", keys);

	if (rc)
		return rc;
	svc = GROW(lab->services, lab->nservices);
	if (!svc)
		return -ENOMEM;
	rc = read_meta(r, doc, svc->name, svc->ns, &svc->labels);
	if (rc)
		return rc;
	for (size_t i = 0; i + 1 < lab->nservices; i++)
		if (!strcmp(lab->services[i].ns, svc->ns) && !strcmp(lab->services[i].name, svc->name))
			return FAIL(r, zm_ymap_get(zm_ymap_get(doc, "metadata"), "name"),
				    "metadata.name", "duplicate Service \"%s/%s\"", svc->ns, svc->name);
	if (!spec)
		return FAIL(r, doc, "spec", "required");
	rc = check_keys(r, spec, "spec", skeys);
	if (!rc)
		rc = get_labels(r, zm_ymap_get(spec, "selector"), "spec.selector", &svc->selector);
	if (rc)
		return rc;
	type = zm_ymap_get(spec, "type");
	if (type && !zm_ynode_eq(type, "ClusterIP"))
		return FAIL(r, type, "spec.type", "only ClusterIP is supported by the lab");
	cip = zm_ymap_get(spec, "clusterIP");
	if (cip) {
		struct in_addr a;
		uint32_t h;

		if (parse_ip(cip, &a))
			return FAIL(r, cip, "spec.clusterIP", "want an IPv4 address");
		h = ntohl(a.s_addr);
		if ((h >> 16) != ((10u << 8) | 96u) || (h & 0xffff) < 10 || (h & 0xffff) == 0xffff)
			return FAIL(r, cip, "spec.clusterIP",
				    "%s is outside the service range 10.96.0.10-10.96.255.254", cip->str);
		for (size_t i = 0; i + 1 < lab->nservices; i++)
			if (lab->services[i].cluster_ip.s_addr == a.s_addr)
				return FAIL(r, cip, "spec.clusterIP", "%s is already used by Service \"%s/%s\"",
					    cip->str, lab->services[i].ns, lab->services[i].name);
		svc->cluster_ip = a;
	}
	ports = zm_ymap_get(spec, "ports");
	if (!ports || ports->kind != ZM_Y_SEQ || ports->n == 0)
		return FAIL(r, ports ? ports : spec, "spec.ports", "want a non-empty list");
	svc->ports = calloc(ports->n, sizeof(*svc->ports));
	if (!svc->ports)
		return -ENOMEM;
	svc->nports = ports->n;
	for (size_t i = 0; i < ports->n; i++) {
		const struct zm_ynode *pn = ports->items[i], *nm, *tp, *proto;
		struct zm_lab_sport *sp = &svc->ports[i];

		snprintf(p, sizeof(p), "spec.ports[%zu]", i);
		rc = check_keys(r, pn, p, pkeys);
		if (rc)
			return rc;
		snprintf(p, sizeof(p), "spec.ports[%zu].port", i);
		rc = get_int(r, zm_ymap_get(pn, "port"), p, 1, 65535, &sp->port);
		if (rc)
			return rc;
		nm = zm_ymap_get(pn, "name");
		snprintf(p, sizeof(p), "spec.ports[%zu].name", i);
		if (nm && (rc = get_name(r, nm, p, sp->name, sizeof(sp->name), false)))
			return rc;
		if (!nm && ports->n > 1)
			return FAIL(r, pn, p, "required when a Service has several ports");
		tp = zm_ymap_get(pn, "targetPort");
		snprintf(p, sizeof(p), "spec.ports[%zu].targetPort", i);
		if (!tp) {
			sp->target_port = sp->port;
		} else if (tp->plain && zm_ynode_int(tp, 1, 65535, &(int64_t){ 0 }) == 0) {
			rc = get_int(r, tp, p, 1, 65535, &sp->target_port);
		} else {
			if (tp->kind != ZM_Y_SCALAR || tp->len == 0 || tp->len > 15)
				return FAIL(r, tp, p, "want a port number or a port name of at most 15 characters");
			memcpy(sp->target_name, tp->str, tp->len + 1);
		}
		if (rc)
			return rc;
		proto = zm_ymap_get(pn, "protocol");
		snprintf(p, sizeof(p), "spec.ports[%zu].protocol", i);
		if (!proto)
			strcpy(sp->protocol, "TCP");
		else if (zm_ynode_eq(proto, "TCP") || zm_ynode_eq(proto, "UDP") || zm_ynode_eq(proto, "SCTP"))
			memcpy(sp->protocol, proto->str, proto->len + 1);
		else
			return FAIL(r, proto, p, "want one of TCP, UDP, SCTP");
	}
	return 0;
}

static int read_doc(struct rd *r, struct zm_lab *lab, const struct zm_ynode *doc)
{
	const struct zm_ynode *kind = zm_ymap_get(doc, "kind"), *api = zm_ymap_get(doc, "apiVersion");

	if (!doc)
		return 0;		/* empty document */
	if (doc->kind != ZM_Y_MAP)
		return FAIL(r, doc, "(document)", "want a mapping");
	if (!api || api->kind != ZM_Y_SCALAR)
		return FAIL(r, api ? api : doc, "apiVersion", "required");
	if (!kind || kind->kind != ZM_Y_SCALAR)
		return FAIL(r, kind ? kind : doc, "kind", "required");
	/* Istio config: `lab up` applies it to the lab's store through the
	 * config model, which checks it. */
	if (!strncmp(api->str, "networking.istio.io/", 20) || !strncmp(api->str, "security.istio.io/", 18))
		return 0;
	if (!zm_ynode_eq(api, "v1"))
		return FAIL(r, api, "apiVersion", "want v1 for kind %s", kind->str);
	/* Secrets (gateway credentials) are config too: into the store */
	if (zm_ynode_eq(kind, "Secret"))
		return 0;
	if (zm_ynode_eq(kind, "Node"))
		return read_node(r, lab, doc);
	if (zm_ynode_eq(kind, "Namespace"))
		return read_namespace(r, lab, doc);
	if (zm_ynode_eq(kind, "ServiceAccount"))
		return read_sa(r, lab, doc);
	if (zm_ynode_eq(kind, "Pod"))
		return read_pod(r, lab, doc);
	if (zm_ynode_eq(kind, "Service"))
		return read_service(r, lab, doc);
	return FAIL(r, kind, "kind",
		    "unsupported kind \"%.60s\" (the lab reads Node, Namespace, ServiceAccount, Pod, Service)",
		    kind->str);
}

/* Cross-document checks, with the position of the offending field. */
struct pos {
	const struct zm_yfile *f;
	const struct zm_ynode *n;
};

static int check_refs(struct zm_lab *lab, struct pos *podpos, struct pos *svcpos,
		      struct zm_error *e)
{
	if (lab->nnodes == 0)
		return zm_error_set(e, EINVAL, "no Node in the manifests: the lab needs at least one");
	if (!zm_lab_ns_find(lab, "default")) {
		struct zm_lab_ns *ns = GROW(lab->namespaces, lab->nnamespaces);

		if (!ns)
			return -ENOMEM;
		strcpy(ns->name, "default");
	}
	for (size_t i = 0; i < lab->npods; i++) {
		struct zm_lab_pod *p = &lab->pods[i];
		const struct zm_ynode *spec = zm_ymap_get(podpos[i].n, "spec");
		const struct zm_ynode *md = zm_ymap_get(podpos[i].n, "metadata");
		struct zm_lab_node *nd = zm_lab_node_find(lab, p->node);
		bool sa_ok = !strcmp(p->sa, "default");

		if (!nd)
			return zm_ynode_error(e, podpos[i].f, zm_ymap_get(spec, "nodeName"),
					      "spec.nodeName", "no Node \"%s\"", p->node);
		if (++nd->npods > ZM_LAB_MAX_PODS_PER_NODE)
			return zm_ynode_error(e, podpos[i].f, zm_ymap_get(spec, "nodeName"),
					      "spec.nodeName", "more than %d pods on node \"%s\"",
					      ZM_LAB_MAX_PODS_PER_NODE, p->node);
		if (!zm_lab_ns_find(lab, p->ns))
			return zm_ynode_error(e, podpos[i].f, zm_ymap_get(md, "namespace"),
					      "metadata.namespace", "no Namespace \"%s\"", p->ns);
		for (size_t j = 0; j < lab->nsas && !sa_ok; j++)
			sa_ok = !strcmp(lab->sas[j].ns, p->ns) && !strcmp(lab->sas[j].name, p->sa);
		if (!sa_ok)
			return zm_ynode_error(e, podpos[i].f, zm_ymap_get(spec, "serviceAccountName"),
					      "spec.serviceAccountName",
					      "no ServiceAccount \"%s\" in namespace \"%s\"", p->sa, p->ns);
	}
	for (size_t i = 0; i < lab->nservices; i++) {
		if (!zm_lab_ns_find(lab, lab->services[i].ns))
			return zm_ynode_error(e, svcpos[i].f,
					      zm_ymap_get(zm_ymap_get(svcpos[i].n, "metadata"), "namespace"),
					      "metadata.namespace", "no Namespace \"%s\"",
					      lab->services[i].ns);
	}
	for (size_t i = 0; i < lab->nsas; i++)
		if (!zm_lab_ns_find(lab, lab->sas[i].ns))
			return zm_error_set(e, EINVAL, "ServiceAccount %s/%s: no Namespace \"%s\"",
					    lab->sas[i].ns, lab->sas[i].name, lab->sas[i].ns);
	return 0;
}

int zm_lab_spec_load(struct zm_lab *lab, const char *const *files, size_t nfiles,
		     struct zm_error *e)
{
	struct zm_yfile *yf = calloc(nfiles ? nfiles : 1, sizeof(*yf));
	struct pos *podpos = NULL, *svcpos = NULL;
	size_t loaded = 0;
	int rc = 0;

	if (!yf)
		return -ENOMEM;
	for (size_t i = 0; i < nfiles && !rc; i++) {
		rc = zm_yaml_load_file(files[i], &yf[i], e);
		if (rc)
			break;
		loaded++;
		struct rd r = { .f = &yf[i], .e = e };

		for (size_t d = 0; d < yf[i].ndocs && !rc; d++) {
			size_t np = lab->npods, ns = lab->nservices;

			rc = read_doc(&r, lab, yf[i].docs[d].root);
			if (!rc && lab->npods != np) {
				struct pos *pp = realloc(podpos, lab->npods * sizeof(*pp));

				if (!pp) {
					rc = -ENOMEM;
					break;
				}
				podpos = pp;
				podpos[np] = (struct pos){ &yf[i], yf[i].docs[d].root };
			}
			if (!rc && lab->nservices != ns) {
				struct pos *sp = realloc(svcpos, lab->nservices * sizeof(*sp));

				if (!sp) {
					rc = -ENOMEM;
					break;
				}
				svcpos = sp;
				svcpos[ns] = (struct pos){ &yf[i], yf[i].docs[d].root };
			}
		}
	}
	if (!rc)
		rc = check_refs(lab, podpos, svcpos, e);
	if (rc == -ENOMEM && e && !e->msg[0])
		zm_error_set(e, ENOMEM, "out of memory");
	for (size_t i = 0; i < loaded; i++)
		zm_yaml_free(&yf[i]);
	free(yf);
	free(podpos);
	free(svcpos);
	return rc;
}
