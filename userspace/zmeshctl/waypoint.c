// SPDX-License-Identifier: Apache-2.0
/*
 * zmeshctl waypoint: make a waypoint in a running lab, as `istioctl waypoint
 * apply` does in a cluster. A waypoint is a pod running the waypoint binary
 * (labelled gateway.networking.k8s.io/gateway-name=<name>, service account
 * <name>, out of ztunnel's capture: it speaks HBONE itself) and a Service
 * <name> on 15008. Traffic to a Service labelled istio.io/use-waypoint=<name>
 * (or in a namespace so labelled) is sent there by ztunnel.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "zmesh/lab.h"

#define GW_LABEL "gateway.networking.k8s.io/gateway-name"

static const char usage_text[] =
	"usage: zmeshctl waypoint apply -n NS [--name NAME] [--enroll-namespace] [--node NODE] [--lab LAB]\n"
	"       zmeshctl waypoint list [-n NS] [--lab LAB]\n"
	"NAME defaults to \"waypoint\"; LAB to $ZMESH_LAB or the default lab.\n";

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* The waypoint's pod, appended to @lab; -ENOMEM. */
static int add_pod(struct zm_lab *lab, const char *ns, const char *name, const char *node)
{
	struct zm_lab_pod *pods = realloc(lab->pods, (lab->npods + 1) * sizeof(*pods)), *p;
	struct zm_lab_container *c;
	char store[PATH_MAX + 16], ca[PATH_MAX + 16], id[160];
	const char *argv[] = { "waypoint", "--listen", "127.0.0.1:15080", "--hbone-port", "15008",
			       "--ca", ca, "--identity", id, "--lab", lab->name, "--name", name,
			       "--config", store, NULL };
	size_t argc = sizeof(argv) / sizeof(argv[0]) - 1;

	if (!pods)
		return -ENOMEM;
	lab->pods = pods;
	p = memset(&lab->pods[lab->npods++], 0, sizeof(*p));
	snprintf(p->ns, sizeof(p->ns), "%s", ns);
	snprintf(p->name, sizeof(p->name), "%s", name);
	snprintf(p->node, sizeof(p->node), "%s", node);
	snprintf(p->sa, sizeof(p->sa), "%s", name);
	if (zm_labels_set(&p->labels, GW_LABEL, name) ||
	    zm_labels_set(&p->labels, "istio.io/dataplane-mode", "none"))
		return -ENOMEM;
	snprintf(store, sizeof(store), "%s/store", lab->state_dir);
	snprintf(ca, sizeof(ca), "%s/ca", lab->state_dir);
	snprintf(id, sizeof(id), "%s/%s", ns, name);
	p->containers = calloc(1, sizeof(*p->containers));
	if (!p->containers)
		return -ENOMEM;
	p->ncontainers = 1;
	c = p->containers;
	snprintf(c->name, sizeof(c->name), "waypoint");
	c->argv = calloc(argc + 1, sizeof(*c->argv));
	if (!c->argv)
		return -ENOMEM;
	for (size_t i = 0; i < argc; i++)
		if (!(c->argv[c->argc++] = xstrdup(argv[i])))
			return -ENOMEM;
	return 0;
}

static int add_service(struct zm_lab *lab, const char *ns, const char *name)
{
	struct zm_lab_svc *svcs = realloc(lab->services, (lab->nservices + 1) * sizeof(*svcs)), *s;

	if (!svcs)
		return -ENOMEM;
	lab->services = svcs;
	s = memset(&lab->services[lab->nservices++], 0, sizeof(*s));
	snprintf(s->ns, sizeof(s->ns), "%s", ns);
	snprintf(s->name, sizeof(s->name), "%s", name);
	if (zm_labels_set(&s->selector, GW_LABEL, name) || zm_labels_set(&s->labels, GW_LABEL, name))
		return -ENOMEM;
	s->ports = calloc(1, sizeof(*s->ports));
	if (!s->ports)
		return -ENOMEM;
	s->nports = 1;
	snprintf(s->ports[0].name, sizeof(s->ports[0].name), "mesh");
	s->ports[0].port = 15008;
	s->ports[0].target_port = 15008;
	snprintf(s->ports[0].protocol, sizeof(s->ports[0].protocol), "TCP");
	return 0;
}

static int apply(const char *labname, const char *ns_name, const char *name, const char *node, bool enroll)
{
	struct zm_lab lab;
	struct zm_error e = { 0 };
	struct zm_lab_ns *ns;
	size_t first_pod, first_svc;
	int rc;

	if (zm_lab_load(labname, &lab, &e)) {
		fprintf(stderr, "zmeshctl waypoint apply: %s\n", e.msg);
		return 1;
	}
	ns = zm_lab_ns_find(&lab, ns_name);
	if (!ns) {
		fprintf(stderr, "zmeshctl waypoint apply: no namespace %s in lab %s\n", ns_name, labname);
		rc = -ENOENT;
		goto out;
	}
	if (!node)
		node = lab.nodes[0].name;
	if (!zm_lab_node_find(&lab, node)) {
		fprintf(stderr, "zmeshctl waypoint apply: no node %s in lab %s\n", node, labname);
		rc = -ENOENT;
		goto out;
	}
	first_pod = lab.npods;
	first_svc = lab.nservices;
	if (zm_lab_pod_find(&lab, ns_name, name)) {
		printf("waypoint %s/%s unchanged\n", ns_name, name);
	} else {
		rc = add_pod(&lab, ns_name, name, node);
		if (!rc)
			rc = add_service(&lab, ns_name, name);
		if (rc) {
			fprintf(stderr, "zmeshctl waypoint apply: %s\n", strerror(-rc));
			goto out;
		}
		rc = zm_lab_grow(&lab, first_pod, first_svc, &e);
		if (rc) {
			fprintf(stderr, "zmeshctl waypoint apply: %s\n", e.msg);
			goto out;
		}
		printf("waypoint %s/%s applied\n", ns_name, name);
	}
	rc = 0;
	if (enroll) {
		ns = zm_lab_ns_find(&lab, ns_name);
		rc = zm_labels_set(&ns->labels, "istio.io/use-waypoint", name);
		if (!rc)
			rc = zm_lab_save(&lab, &e);
		/* zmeshd pushes the label to the ztunnels from the store. */
		if (!rc)
			rc = zm_lab_cluster_apply(&lab, NULL, NULL, &e);
		if (rc) {
			fprintf(stderr, "zmeshctl waypoint apply: %s\n", e.msg[0] ? e.msg : strerror(-rc));
			goto out;
		}
		printf("namespace %s labeled with \"istio.io/use-waypoint=%s\"\n", ns_name, name);
	}
out:
	zm_lab_free(&lab);
	return rc ? 1 : 0;
}

static int list(const char *labname, const char *ns)
{
	struct zm_lab lab;
	struct zm_error e = { 0 };

	if (zm_lab_load(labname, &lab, &e)) {
		fprintf(stderr, "zmeshctl waypoint list: %s\n", e.msg);
		return 1;
	}
	printf("%-16s %-16s %-10s %s\n", "NAMESPACE", "NAME", "NODE", "ENROLLED");
	for (size_t i = 0; i < lab.npods; i++) {
		const struct zm_lab_pod *p = &lab.pods[i];
		const char *gw = zm_labels_get(&p->labels, GW_LABEL);
		char users[512] = "";
		size_t o = 0;

		if (!gw || (ns && strcmp(ns, p->ns)))
			continue;
		for (size_t k = 0; k < lab.nnamespaces; k++) {
			const char *w = zm_labels_get(&lab.namespaces[k].labels, "istio.io/use-waypoint");

			if (w && !strcmp(w, gw) && !strcmp(lab.namespaces[k].name, p->ns) && o < sizeof(users))
				o += (size_t)snprintf(users + o, sizeof(users) - o, "%snamespace/%s", o ? "," : "",
						      lab.namespaces[k].name);
		}
		for (size_t k = 0; k < lab.nservices; k++) {
			const char *w = zm_labels_get(&lab.services[k].labels, "istio.io/use-waypoint");

			if (w && !strcmp(w, gw) && !strcmp(lab.services[k].ns, p->ns) && o < sizeof(users))
				o += (size_t)snprintf(users + o, sizeof(users) - o, "%sservice/%s", o ? "," : "",
						      lab.services[k].name);
		}
		printf("%-16s %-16s %-10s %s\n", p->ns, p->name, p->node, o ? users : "-");
	}
	zm_lab_free(&lab);
	return 0;
}

static int cmd_waypoint(int argc, char **argv)
{
	const char *lab = getenv("ZMESH_LAB") ? getenv("ZMESH_LAB") : ZM_LAB_DEFAULT;
	const char *ns = NULL, *name = "waypoint", *node = NULL;
	bool enroll = false;

	if (argc < 2) {
		fputs(usage_text, stderr);
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(argv[i], "--enroll-namespace")) {
			enroll = true;
			continue;
		}
		if (!v) {
			fputs(usage_text, stderr);
			return 2;
		}
		if (!strcmp(argv[i], "-n") || !strcmp(argv[i], "--namespace"))
			ns = v;
		else if (!strcmp(argv[i], "--name"))
			name = v;
		else if (!strcmp(argv[i], "--node"))
			node = v;
		else if (!strcmp(argv[i], "--lab"))
			lab = v;
		else {
			fputs(usage_text, stderr);
			return 2;
		}
		i++;
	}
	if (!strcmp(argv[1], "apply")) {
		if (!ns) {
			fputs(usage_text, stderr);
			return 2;
		}
		/* A DNS label, as Kubernetes wants for a name that is also a Service's. */
		if (!*name || strlen(name) > 63 || strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(name) ||
		    name[0] == '-' || name[strlen(name) - 1] == '-') {
			fprintf(stderr, "zmeshctl waypoint apply: --name %s: want a DNS label (a-z, 0-9, '-', at most 63)\n",
				name);
			return 2;
		}
		return apply(lab, ns, name, node, enroll);
	}
	if (!strcmp(argv[1], "list"))
		return list(lab, ns);
	fputs(usage_text, stderr);
	return 2;
}

ZM_CMD(waypoint, cmd_waypoint, "waypoint apply|list           waypoints in the lab (istioctl waypoint)");
