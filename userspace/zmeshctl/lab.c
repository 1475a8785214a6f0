// SPDX-License-Identifier: Apache-2.0
/* zmeshctl lab: up, down, status, exec, label. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "zmesh/config.h"
#include "zmesh/lab.h"
#include "zmesh/store.h"

static const char usage_text[] =
	"usage: zmeshctl lab up -f FILE [-f FILE]... [--name LAB] [--no-mesh]\n"
	"                      [--mode ambient|sidecar|sidecar-haproxy]\n"
	"       zmeshctl lab down [--name LAB]\n"
	"       zmeshctl lab status [--name LAB] [-o json]\n"
	"       zmeshctl lab exec POD -n NS [--name LAB] -- CMD [ARGS...]\n"
	"       zmeshctl lab exec --node NODE [--name LAB] -- CMD [ARGS...]\n"
	"       zmeshctl lab exec --outside [--name LAB] -- CMD [ARGS...]   (a client outside the cluster)\n"
	"       zmeshctl lab label namespace NAME KEY=VALUE|KEY- [--name LAB]\n"
	"       zmeshctl lab label pod NAME -n NS KEY=VALUE|KEY- [--name LAB]\n"
	"       zmeshctl lab label service NAME -n NS KEY=VALUE|KEY- [--name LAB]\n";

struct opts {
	const char *name, *ns, *node, *output, *mode;
	bool no_mesh, outside;
	const char *files[64];
	size_t nfiles;
	char *pos[8];		/* positional arguments before "--" */
	int npos;
	char **cmd;		/* after "--" (NULL when absent) */
};

/* Options and positionals may come in any order; "--" ends both. */
static int parse(int argc, char **argv, struct opts *o)
{
	o->name = getenv("ZMESH_LAB") ? getenv("ZMESH_LAB") : ZM_LAB_DEFAULT;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		const char **dst = NULL;

		if (!strcmp(a, "--")) {
			o->cmd = &argv[i + 1];
			break;
		}
		if (!strcmp(a, "--no-mesh")) {
			o->no_mesh = true;
			continue;
		}
		if (!strcmp(a, "--outside")) {
			o->outside = true;
			continue;
		}
		if (!strcmp(a, "--name"))
			dst = &o->name;
		else if (!strcmp(a, "-n") || !strcmp(a, "--namespace"))
			dst = &o->ns;
		else if (!strcmp(a, "--node"))
			dst = &o->node;
		else if (!strcmp(a, "--mode"))
			dst = &o->mode;
		else if (!strcmp(a, "-o") || !strcmp(a, "--output"))
			dst = &o->output;
		else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
			if (o->nfiles == 64 || i + 1 >= argc)
				return -1;
			o->files[o->nfiles++] = argv[++i];
			continue;
		}
		if (dst) {
			if (i + 1 >= argc) {
				fprintf(stderr, "zmeshctl lab: %s needs a value\n", a);
				return -1;
			}
			*dst = argv[++i];
			continue;
		}
		/* "KEY-" (label removal) looks like an option only by its end. */
		if (a[0] == '-' && a[1]) {
			fprintf(stderr, "zmeshctl lab: unknown option %s\n", a);
			return -1;
		}
		if (o->npos == 8)
			return -1;
		o->pos[o->npos++] = argv[i];
	}
	return 0;
}

static const char *store_dir(const char *lab, char *buf, size_t sz)
{
	snprintf(buf, sz, "%s/%s/%s", ZM_LAB_STATE_ROOT, lab, ZM_LAB_STORE);
	return buf;
}

/*
 * The Istio objects of the cluster files into @cfg, checked as an apply to an
 * empty store would check them. The core documents are read too (the config
 * model checks their metadata), then dropped: they are the lab's.
 */
static int load_config(struct opts *o, struct zm_cfg_set *cfg)
{
	for (size_t i = 0; i < o->nfiles; i++) {
		if (zm_cfg_load_path(cfg, o->files[i]) == -ENOMEM) {
			fprintf(stderr, "zmeshctl lab up: out of memory\n");
			return -ENOMEM;
		}
	}
	if (zm_cfg_validate(cfg, NULL)) {
		zm_cfg_sort_errors(cfg);
		for (size_t i = 0; i < cfg->nerrs; i++)
			fprintf(stderr, "%s\n", cfg->errs[i].text);
		fprintf(stderr, "zmeshctl lab up: %zu error%s: nothing made\n", cfg->nerrs,
			cfg->nerrs == 1 ? "" : "s");
		return -EINVAL;
	}
	for (size_t i = cfg->nobjs; i > 0; i--)
		if (!zm_kind_is_istio(cfg->objs[i - 1]->kind) && cfg->objs[i - 1]->kind != ZM_K_SECRET)
			zm_cfg_obj_free(zm_cfg_set_remove(cfg, i - 1));
	return 0;
}

static int up(struct opts *o)
{
	struct zm_cfg_set cfg;
	char path[PATH_MAX];
	struct zm_lab lab = { 0 };
	struct zm_error e = { 0 };
	int rc;

	if (!o->nfiles) {
		fputs(usage_text, stderr);
		return 2;
	}
	if (zm_lab_name_check(o->name, &e)) {
		fprintf(stderr, "zmeshctl lab: %s\n", e.msg);
		return 2;
	}
	snprintf(lab.name, sizeof(lab.name), "%s", o->name);
	lab.no_mesh = o->no_mesh;
	if (o->mode && zm_lab_mode_parse(o->mode, &lab.mode)) {
		fprintf(stderr, "zmeshctl lab up: --mode %s: want ambient, sidecar or sidecar-haproxy\n", o->mode);
		return 2;
	}
	zm_cfg_set_init(&cfg);
	/* The Istio documents first, before anything is built: an invalid
	 * policy fails `up` with its file:line:col and nothing is made. */
	rc = load_config(o, &cfg);
	if (rc) {
		zm_cfg_set_free(&cfg);
		return 1;
	}
	lab.config = &cfg;
	rc = zm_lab_spec_load(&lab, o->files, o->nfiles, &e);
	if (!rc)
		rc = zm_lab_up(&lab, &e);
	if (rc) {
		fprintf(stderr, "zmeshctl lab up: %s\n", e.msg[0] ? e.msg : strerror(-rc));
		zm_lab_free(&lab);
		zm_cfg_set_free(&cfg);
		return 1;
	}
	printf("lab %s up: %zu nodes, %zu pods, %zu services, %zu config objects (store version %" PRIu64 ")\n",
	       lab.name, lab.nnodes, lab.npods, lab.nservices, cfg.nobjs,
	       zm_store_version(store_dir(lab.name, path, sizeof(path))));
	zm_lab_free(&lab);
	zm_cfg_set_free(&cfg);
	return 0;
}

static bool alive(pid_t pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

static int status(struct opts *o)
{
	char ip[INET_ADDRSTRLEN], buf[PATH_MAX + 16];
	struct zm_lab lab;
	struct zm_error e = { 0 };

	if (zm_lab_load(o->name, &lab, &e)) {
		fprintf(stderr, "zmeshctl lab status: %s\n", e.msg);
		return 1;
	}
	if (o->output && !strcmp(o->output, "json")) {
		snprintf(buf, sizeof(buf), "%s/state.json", lab.state_dir);
		json_t *j = json_load_file(buf, 0, NULL);

		/* Add liveness, which the file cannot know. */
		json_t *pods = json_object_get(j, "pods"), *pod;
		size_t i;

		json_array_foreach(pods, i, pod) {
			bool up = lab.pods[i].npids > 0;

			for (size_t k = 0; k < lab.pods[i].npids; k++)
				up = up && alive(lab.pods[i].pids[k]);
			json_object_set_new(pod, "running", json_boolean(up));
		}
		json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		putchar('\n');
		json_decref(j);
		zm_lab_free(&lab);
		return 0;
	} else if (o->output) {
		fprintf(stderr, "zmeshctl lab status: -o %s: want json\n", o->output);
		zm_lab_free(&lab);
		return 2;
	}
	printf("lab %s\n\nNODE            UNDERLAY        POD CIDR          NETNS\n", lab.name);
	for (size_t i = 0; i < lab.nnodes; i++) {
		char ip2[INET_ADDRSTRLEN + 4];

		inet_ntop(AF_INET, &lab.nodes[i].pod_cidr, ip2, INET_ADDRSTRLEN);
		strcat(ip2, "/24");
		printf("%-15s %-15s %-17s %s\n", lab.nodes[i].name,
		       inet_ntop(AF_INET, &lab.nodes[i].underlay_ip, ip, sizeof(ip)), ip2,
		       lab.nodes[i].netns);
	}
	printf("\nNAMESPACE       POD             NODE       IP              STATUS   LABELS\n");
	for (size_t i = 0; i < lab.npods; i++) {
		struct zm_lab_pod *p = &lab.pods[i];
		bool up = p->npids > 0;

		for (size_t k = 0; k < p->npids; k++)
			up = up && alive(p->pids[k]);
		printf("%-15s %-15s %-10s %-15s %-8s ", p->ns, p->name, p->node,
		       inet_ntop(AF_INET, &p->ip, ip, sizeof(ip)), up ? "Running" : "Exited");
		for (size_t k = 0; k < p->labels.n; k++)
			printf("%s%s=%s", k ? "," : "", p->labels.kv[k].key, p->labels.kv[k].val);
		putchar('\n');
	}
	printf("\nNAMESPACE       SERVICE         CLUSTER-IP      PORTS\n");
	for (size_t i = 0; i < lab.nservices; i++) {
		struct zm_lab_svc *s = &lab.services[i];

		printf("%-15s %-15s %-15s ", s->ns, s->name,
		       inet_ntop(AF_INET, &s->cluster_ip, ip, sizeof(ip)));
		for (size_t k = 0; k < s->nports; k++)
			printf("%s%d/%s", k ? "," : "", s->ports[k].port, s->ports[k].protocol);
		putchar('\n');
	}
	printf("\nNAMESPACE       LABELS\n");
	for (size_t i = 0; i < lab.nnamespaces; i++) {
		printf("%-15s ", lab.namespaces[i].name);
		for (size_t k = 0; k < lab.namespaces[i].labels.n; k++)
			printf("%s%s=%s", k ? "," : "", lab.namespaces[i].labels.kv[k].key,
			       lab.namespaces[i].labels.kv[k].val);
		putchar('\n');
	}
	zm_lab_free(&lab);
	return 0;
}

static int exec_cmd(struct opts *o)
{
	struct zm_lab lab;
	struct zm_error e = { 0 };
	struct zm_lab_pod *pod = NULL;
	struct zm_lab_node *node = NULL;
	const char *ns = o->ns ? o->ns : "default";

	if (!o->cmd || !o->cmd[0] || (o->outside && (o->node || o->npos)) ||
	    (!o->outside && ((!o->node && o->npos != 1) || (o->node && o->npos)))) {
		fputs(usage_text, stderr);
		return 2;
	}
	if (zm_lab_load(o->name, &lab, &e)) {
		fprintf(stderr, "zmeshctl lab exec: %s\n", e.msg);
		return 1;
	}
	if (o->outside) {
		zm_lab_exec_outside(&lab, o->cmd, &e);
		fprintf(stderr, "zmeshctl lab exec --outside: %s\n", e.msg);
		zm_lab_free(&lab);
		return 127;
	}
	if (!o->node) {
		pod = zm_lab_pod_find(&lab, ns, o->pos[0]);
		if (!pod) {
			fprintf(stderr, "zmeshctl lab exec: no pod %s in namespace %s\n", o->pos[0], ns);
			zm_lab_free(&lab);
			return 1;
		}
	} else {
		node = zm_lab_node_find(&lab, o->node);
		if (!node) {
			fprintf(stderr, "zmeshctl lab exec: no node %s\n", o->node);
			zm_lab_free(&lab);
			return 1;
		}
	}
	zm_lab_exec(&lab, pod, node, o->cmd, &e);
	fprintf(stderr, "zmeshctl lab exec: %s\n", e.msg);
	zm_lab_free(&lab);
	return 127;
}

static int label(struct opts *o)
{
	struct zm_lab lab;
	struct zm_error e = { 0 };
	struct zm_labels *labels = NULL;
	const char *kind, *name;
	int rc = 0;

	if (o->npos < 3) {
		fputs(usage_text, stderr);
		return 2;
	}
	kind = o->pos[0];
	name = o->pos[1];
	if (zm_lab_load(o->name, &lab, &e)) {
		fprintf(stderr, "zmeshctl lab label: %s\n", e.msg);
		return 1;
	}
	if (!strcmp(kind, "namespace") || !strcmp(kind, "ns")) {
		struct zm_lab_ns *ns = zm_lab_ns_find(&lab, name);

		labels = ns ? &ns->labels : NULL;
	} else if (!strcmp(kind, "pod")) {
		struct zm_lab_pod *p = zm_lab_pod_find(&lab, o->ns ? o->ns : "default", name);

		labels = p ? &p->labels : NULL;
	} else if (!strcmp(kind, "service") || !strcmp(kind, "svc")) {
		for (size_t i = 0; i < lab.nservices && !labels; i++)
			if (!strcmp(lab.services[i].ns, o->ns ? o->ns : "default") &&
			    !strcmp(lab.services[i].name, name))
				labels = &lab.services[i].labels;
	} else {
		fprintf(stderr, "zmeshctl lab label: kind %s: want namespace, pod or service\n", kind);
		zm_lab_free(&lab);
		return 2;
	}
	if (!labels) {
		fprintf(stderr, "zmeshctl lab label: no %s %s\n", kind, name);
		zm_lab_free(&lab);
		return 1;
	}
	for (int k = 2; k < o->npos && !rc; k++) {
		char *arg = o->pos[k], *eq = strchr(arg, '=');
		size_t n = strlen(arg);

		if (eq && eq != arg) {
			*eq = 0;
			rc = zm_labels_set(labels, arg, eq + 1);
		} else if (!eq && n > 1 && arg[n - 1] == '-') {
			arg[n - 1] = 0;
			zm_labels_del(labels, arg);
		} else {
			fprintf(stderr, "zmeshctl lab label: %s: want KEY=VALUE or KEY-\n", arg);
			rc = -EINVAL;
		}
	}
	if (!rc)
		rc = zm_lab_save(&lab, &e);
	/* The API server's copy: zmeshd pushes the change to the proxies. */
	if (!rc)
		rc = zm_lab_cluster_apply(&lab, NULL, NULL, &e);
	if (rc && e.msg[0])
		fprintf(stderr, "zmeshctl lab label: %s\n", e.msg);
	zm_lab_free(&lab);
	return rc ? 1 : 0;
}

static int cmd_lab(int argc, char **argv)
{
	struct opts o = { 0 };
	const char *sub;
	struct zm_error e = { 0 };

	if (argc < 2) {
		fputs(usage_text, stderr);
		return 2;
	}
	sub = argv[1];
	if (parse(argc - 2, argv + 2, &o) < 0) {
		fputs(usage_text, stderr);
		return 2;
	}
	if (!strcmp(sub, "up"))
		return up(&o);
	if (!strcmp(sub, "down")) {
		if (zm_lab_down(o.name, &e)) {
			fprintf(stderr, "zmeshctl lab down: %s\n", e.msg);
			return 1;
		}
		printf("lab %s down\n", o.name);
		return 0;
	}
	if (!strcmp(sub, "status"))
		return status(&o);
	if (!strcmp(sub, "exec"))
		return exec_cmd(&o);
	if (!strcmp(sub, "label"))
		return label(&o);
	fputs(usage_text, stderr);
	return 2;
}

ZM_CMD(lab, cmd_lab, "lab up|down|status|exec|label   the simulated cluster (network namespaces)");
