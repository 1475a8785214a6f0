// SPDX-License-Identifier: Apache-2.0
/* The lab's state file: struct zm_lab <-> JSON (jansson). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zmesh/lab.h"

struct zm_lab_node *zm_lab_node_find(struct zm_lab *lab, const char *name)
{
	for (size_t i = 0; i < lab->nnodes; i++)
		if (!strcmp(lab->nodes[i].name, name))
			return &lab->nodes[i];
	return NULL;
}

struct zm_lab_ns *zm_lab_ns_find(struct zm_lab *lab, const char *name)
{
	for (size_t i = 0; i < lab->nnamespaces; i++)
		if (!strcmp(lab->namespaces[i].name, name))
			return &lab->namespaces[i];
	return NULL;
}

struct zm_lab_pod *zm_lab_pod_find(struct zm_lab *lab, const char *ns, const char *name)
{
	for (size_t i = 0; i < lab->npods; i++)
		if (!strcmp(lab->pods[i].ns, ns) && !strcmp(lab->pods[i].name, name))
			return &lab->pods[i];
	return NULL;
}

void zm_lab_free(struct zm_lab *lab)
{
	for (size_t i = 0; i < lab->nnamespaces; i++)
		zm_labels_free(&lab->namespaces[i].labels);
	for (size_t i = 0; i < lab->npods; i++) {
		struct zm_lab_pod *p = &lab->pods[i];

		zm_labels_free(&p->labels);
		for (size_t c = 0; c < p->ncontainers; c++) {
			struct zm_lab_container *ct = &p->containers[c];

			for (size_t a = 0; a < ct->argc; a++)
				free(ct->argv[a]);
			free(ct->argv);
			for (size_t v = 0; v < ct->nenv; v++) {
				free(ct->env[v].key);
				free(ct->env[v].val);
			}
			free(ct->env);
			free(ct->ports);
		}
		free(p->containers);
		free(p->pids);
	}
	for (size_t i = 0; i < lab->nservices; i++) {
		zm_labels_free(&lab->services[i].selector);
		zm_labels_free(&lab->services[i].labels);
		free(lab->services[i].ports);
	}
	free(lab->nodes);
	free(lab->namespaces);
	free(lab->pods);
	free(lab->services);
	free(lab->sas);
	memset(lab, 0, sizeof(*lab));
}

static json_t *ip_json(struct in_addr a)
{
	char buf[INET_ADDRSTRLEN];

	return json_string(inet_ntop(AF_INET, &a, buf, sizeof(buf)));
}

static json_t *labels_json(const struct zm_labels *l)
{
	json_t *o = json_object();

	for (size_t i = 0; i < l->n; i++)
		json_object_set_new(o, l->kv[i].key, json_string(l->kv[i].val));
	return o;
}

static json_t *lab_json(const struct zm_lab *lab)
{
	json_t *root = json_object(), *nodes = json_array(), *nss = json_array();
	json_t *pods = json_array(), *svcs = json_array(), *sas = json_array();

	json_object_set_new(root, "name", json_string(lab->name));
	json_object_set_new(root, "cgroup_root", json_string(lab->cgroup_root));
	json_object_set_new(root, "bin_dir", json_string(lab->bin_dir));
	for (size_t i = 0; i < lab->nnodes; i++) {
		const struct zm_lab_node *n = &lab->nodes[i];

		json_array_append_new(nodes, json_pack("{s:s, s:i, s:s, s:s, s:o, s:o, s:o, s:i}",
			"name", n->name, "index", n->index, "netns", n->netns, "cgroup", n->cgroup,
			"underlay_ip", ip_json(n->underlay_ip), "pod_cidr", ip_json(n->pod_cidr),
			"gateway", ip_json(n->gateway), "ztunnel_pid", (int)n->ztunnel_pid));
	}
	for (size_t i = 0; i < lab->nnamespaces; i++)
		json_array_append_new(nss, json_pack("{s:s, s:o}", "name", lab->namespaces[i].name,
						     "labels", labels_json(&lab->namespaces[i].labels)));
	for (size_t i = 0; i < lab->nsas; i++)
		json_array_append_new(sas, json_pack("{s:s, s:s}", "namespace", lab->sas[i].ns,
						     "name", lab->sas[i].name));
	for (size_t i = 0; i < lab->npods; i++) {
		const struct zm_lab_pod *p = &lab->pods[i];
		json_t *pids = json_array(), *cs = json_array();

		for (size_t k = 0; k < p->npids; k++)
			json_array_append_new(pids, json_integer(p->pids[k]));
		for (size_t c = 0; c < p->ncontainers; c++) {
			const struct zm_lab_container *ct = &p->containers[c];
			json_t *argv = json_array(), *env = json_object(), *ports = json_array();

			for (size_t a = 0; a < ct->argc; a++)
				json_array_append_new(argv, json_string(ct->argv[a]));
			for (size_t v = 0; v < ct->nenv; v++)
				json_object_set_new(env, ct->env[v].key, json_string(ct->env[v].val));
			for (size_t k = 0; k < ct->nports; k++)
				json_array_append_new(ports, json_pack("{s:s, s:i}", "name",
					ct->ports[k].name, "containerPort", ct->ports[k].port));
			json_array_append_new(cs, json_pack("{s:s, s:o, s:o, s:o}", "name", ct->name,
							    "argv", argv, "env", env, "ports", ports));
		}
		json_array_append_new(pods, json_pack(
			"{s:s, s:s, s:s, s:s, s:o, s:o, s:s, s:s, s:s, s:o, s:o}",
			"namespace", p->ns, "name", p->name, "node", p->node,
			"serviceAccount", p->sa, "labels", labels_json(&p->labels),
			"ip", ip_json(p->ip), "netns", p->netns, "cgroup", p->cgroup,
			"veth", p->veth, "pids", pids, "containers", cs));
	}
	for (size_t i = 0; i < lab->nservices; i++) {
		const struct zm_lab_svc *s = &lab->services[i];
		json_t *ports = json_array();

		for (size_t k = 0; k < s->nports; k++) {
			const struct zm_lab_sport *sp = &s->ports[k];

			json_array_append_new(ports, json_pack("{s:s, s:i, s:i, s:s, s:s}",
				"name", sp->name, "port", sp->port, "targetPort", sp->target_port,
				"targetPortName", sp->target_name, "protocol", sp->protocol));
		}
		json_array_append_new(svcs, json_pack("{s:s, s:s, s:o, s:o, s:o, s:o}",
			"namespace", s->ns, "name", s->name, "clusterIP", ip_json(s->cluster_ip),
			"selector", labels_json(&s->selector), "labels", labels_json(&s->labels),
			"ports", ports));
	}
	json_object_set_new(root, "nodes", nodes);
	json_object_set_new(root, "namespaces", nss);
	json_object_set_new(root, "serviceAccounts", sas);
	json_object_set_new(root, "pods", pods);
	json_object_set_new(root, "services", svcs);
	return root;
}

int zm_lab_save(const struct zm_lab *lab, struct zm_error *e)
{
	char path[PATH_MAX + 32], tmp[PATH_MAX + 32];
	json_t *root = lab_json(lab);
	int rc = 0;

	if (!root)
		return zm_error_set(e, ENOMEM, "out of memory");
	snprintf(path, sizeof(path), "%s/state.json", lab->state_dir);
	snprintf(tmp, sizeof(tmp), "%s/.state.json.tmp", lab->state_dir);
	/* Write then rename: a reader never sees half a file. */
	if (json_dump_file(root, tmp, JSON_INDENT(1) | JSON_SORT_KEYS) < 0 ||
	    rename(tmp, path) < 0)
		rc = zm_error_set(e, EIO, "%s: cannot write the lab state", path);
	json_decref(root);
	return rc;
}

static int str_into(json_t *o, const char *key, char *out, size_t sz)
{
	const char *s = json_string_value(json_object_get(o, key));

	if (!s || strlen(s) >= sz)
		return -EINVAL;
	strcpy(out, s);
	return 0;
}

static int ip_from(json_t *o, const char *key, struct in_addr *a)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s && inet_pton(AF_INET, s, a) == 1 ? 0 : -EINVAL;
}

static int labels_from(json_t *o, struct zm_labels *l)
{
	const char *k;
	json_t *v;
	int rc;

	if (!json_is_object(o))
		return -EINVAL;
	json_object_foreach(o, k, v) {
		if (!json_is_string(v))
			return -EINVAL;
		rc = zm_labels_set(l, k, json_string_value(v));
		if (rc)
			return rc;
	}
	return 0;
}

static int lab_from_json(json_t *root, struct zm_lab *lab)
{
	json_t *a, *v;
	size_t i;
	int rc = 0;

	if (str_into(root, "name", lab->name, sizeof(lab->name)) ||
	    str_into(root, "cgroup_root", lab->cgroup_root, sizeof(lab->cgroup_root)) ||
	    str_into(root, "bin_dir", lab->bin_dir, sizeof(lab->bin_dir)))
		return -EINVAL;
	a = json_object_get(root, "nodes");
	lab->nodes = calloc(json_array_size(a) + 1, sizeof(*lab->nodes));
	if (!lab->nodes)
		return -ENOMEM;
	json_array_foreach(a, i, v) {
		struct zm_lab_node *n = &lab->nodes[lab->nnodes++];

		n->index = (int)json_integer_value(json_object_get(v, "index"));
		n->ztunnel_pid = (pid_t)json_integer_value(json_object_get(v, "ztunnel_pid"));
		if (str_into(v, "name", n->name, sizeof(n->name)) ||
		    str_into(v, "netns", n->netns, sizeof(n->netns)) ||
		    str_into(v, "cgroup", n->cgroup, sizeof(n->cgroup)) ||
		    ip_from(v, "underlay_ip", &n->underlay_ip) ||
		    ip_from(v, "pod_cidr", &n->pod_cidr) || ip_from(v, "gateway", &n->gateway))
			return -EINVAL;
	}
	a = json_object_get(root, "namespaces");
	lab->namespaces = calloc(json_array_size(a) + 1, sizeof(*lab->namespaces));
	if (!lab->namespaces)
		return -ENOMEM;
	json_array_foreach(a, i, v) {
		struct zm_lab_ns *n = &lab->namespaces[lab->nnamespaces++];

		if (str_into(v, "name", n->name, sizeof(n->name)) ||
		    (rc = labels_from(json_object_get(v, "labels"), &n->labels)))
			return rc ? rc : -EINVAL;
	}
	a = json_object_get(root, "serviceAccounts");
	lab->sas = calloc(json_array_size(a) + 1, sizeof(*lab->sas));
	if (!lab->sas)
		return -ENOMEM;
	json_array_foreach(a, i, v) {
		struct zm_lab_sa *s = &lab->sas[lab->nsas++];

		if (str_into(v, "namespace", s->ns, sizeof(s->ns)) ||
		    str_into(v, "name", s->name, sizeof(s->name)))
			return -EINVAL;
	}
	a = json_object_get(root, "pods");
	lab->pods = calloc(json_array_size(a) + 1, sizeof(*lab->pods));
	if (!lab->pods)
		return -ENOMEM;
	json_array_foreach(a, i, v) {
		struct zm_lab_pod *p = &lab->pods[lab->npods++];
		json_t *pids = json_object_get(v, "pids"), *cs = json_object_get(v, "containers"), *x;
		size_t k;

		if (str_into(v, "namespace", p->ns, sizeof(p->ns)) ||
		    str_into(v, "name", p->name, sizeof(p->name)) ||
		    str_into(v, "node", p->node, sizeof(p->node)) ||
		    str_into(v, "serviceAccount", p->sa, sizeof(p->sa)) ||
		    str_into(v, "netns", p->netns, sizeof(p->netns)) ||
		    str_into(v, "cgroup", p->cgroup, sizeof(p->cgroup)) ||
		    str_into(v, "veth", p->veth, sizeof(p->veth)) || ip_from(v, "ip", &p->ip))
			return -EINVAL;
		rc = labels_from(json_object_get(v, "labels"), &p->labels);
		if (rc)
			return rc;
		p->pids = calloc(json_array_size(pids) + 1, sizeof(*p->pids));
		p->containers = calloc(json_array_size(cs) + 1, sizeof(*p->containers));
		if (!p->pids || !p->containers)
			return -ENOMEM;
		json_array_foreach(pids, k, x)
			p->pids[p->npids++] = (pid_t)json_integer_value(x);
		json_array_foreach(cs, k, x) {
			struct zm_lab_container *ct = &p->containers[p->ncontainers++];
			json_t *argv = json_object_get(x, "argv"), *y;
			size_t m;

			if (str_into(x, "name", ct->name, sizeof(ct->name)))
				return -EINVAL;
			ct->argv = calloc(json_array_size(argv) + 1, sizeof(*ct->argv));
			if (!ct->argv)
				return -ENOMEM;
			json_array_foreach(argv, m, y) {
				ct->argv[ct->argc] = strdup(json_string_value(y) ? json_string_value(y) : "");
				if (!ct->argv[ct->argc++])
					return -ENOMEM;
			}
			/* Named service target ports resolve through these. */
			json_t *cports = json_object_get(x, "ports");

			ct->ports = calloc(json_array_size(cports) + 1, sizeof(*ct->ports));
			if (!ct->ports)
				return -ENOMEM;
			json_array_foreach(cports, m, y) {
				struct zm_lab_cport *cp = &ct->ports[ct->nports];
				const char *pn = json_string_value(json_object_get(y, "name"));

				snprintf(cp->name, sizeof(cp->name), "%s", pn ? pn : "");
				cp->port = (int)json_integer_value(json_object_get(y, "containerPort"));
				ct->nports++;
			}
		}
	}
	a = json_object_get(root, "services");
	lab->services = calloc(json_array_size(a) + 1, sizeof(*lab->services));
	if (!lab->services)
		return -ENOMEM;
	json_array_foreach(a, i, v) {
		struct zm_lab_svc *s = &lab->services[lab->nservices++];
		json_t *ports = json_object_get(v, "ports"), *x;
		size_t k;

		if (str_into(v, "namespace", s->ns, sizeof(s->ns)) ||
		    str_into(v, "name", s->name, sizeof(s->name)) ||
		    ip_from(v, "clusterIP", &s->cluster_ip))
			return -EINVAL;
		rc = labels_from(json_object_get(v, "selector"), &s->selector);
		if (!rc && json_object_get(v, "labels"))
			rc = labels_from(json_object_get(v, "labels"), &s->labels);
		if (rc)
			return rc;
		s->ports = calloc(json_array_size(ports) + 1, sizeof(*s->ports));
		if (!s->ports)
			return -ENOMEM;
		json_array_foreach(ports, k, x) {
			struct zm_lab_sport *sp = &s->ports[s->nports++];

			sp->port = (int)json_integer_value(json_object_get(x, "port"));
			sp->target_port = (int)json_integer_value(json_object_get(x, "targetPort"));
			if (str_into(x, "name", sp->name, sizeof(sp->name)) ||
			    str_into(x, "targetPortName", sp->target_name, sizeof(sp->target_name)) ||
			    str_into(x, "protocol", sp->protocol, sizeof(sp->protocol)))
				return -EINVAL;
		}
	}
	return 0;
}

int zm_lab_load(const char *name, struct zm_lab *lab, struct zm_error *e)
{
	char path[PATH_MAX];
	json_error_t jerr;
	json_t *root;
	int rc;

	memset(lab, 0, sizeof(*lab));
	rc = zm_lab_name_check(name, e);
	if (rc)
		return rc;
	snprintf(path, sizeof(path), "%s/%s/state.json", ZM_LAB_STATE_ROOT, name);
	if (access(path, F_OK) < 0)
		return zm_error_set(e, ENOENT, "lab %s is not up (no %s)", name, path);
	root = json_load_file(path, 0, &jerr);
	if (!root)
		return zm_error_set(e, EINVAL, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
	rc = lab_from_json(root, lab);
	json_decref(root);
	snprintf(lab->state_dir, sizeof(lab->state_dir), "%s/%s", ZM_LAB_STATE_ROOT, name);
	if (rc) {
		zm_lab_free(lab);
		return zm_error_set(e, -rc, "%s: malformed lab state", path);
	}
	return 0;
}
