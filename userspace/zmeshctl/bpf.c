// SPDX-License-Identifier: Apache-2.0
/* zmeshctl bpf: status, sync (enrolment from the lab), fastpath on|off. */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "zmesh/bpf_loader.h"
#include "zmesh/lab.h"

static const char usage_text[] =
	"usage: zmeshctl bpf status [--node NODE] [-o json]\n"
	"       zmeshctl bpf sync [--name LAB] [--node NODE]\n"
	"       zmeshctl bpf fastpath on|off --node NODE\n";

static const char *const links[] = { "connect4", "connect6", "getpeername4", "getpeername6",
				     "sockops", "sk_lookup" };
static const char *const maps[] = { "zm_pods", "zm_pod_ips", "zm_orig_dst", "zm_sockhash",
				    "zm_listeners", "zm_config", "zm_counters", "zm_pod_stats", "zm_fastpath_sks" };

static int link_prog_id(const char *path)
{
	struct bpf_link_info info = { 0 };
	__u32 len = sizeof(info);
	int fd = bpf_obj_get(path), id = 0;

	if (fd < 0)
		return 0;
	if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0)
		id = (int)info.prog_id;
	close(fd);
	return id;
}

static int map_id(const char *path)
{
	struct bpf_map_info info = { 0 };
	__u32 len = sizeof(info);
	int fd = bpf_obj_get(path), id = 0;

	if (fd < 0)
		return 0;
	if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0)
		id = (int)info.id;
	close(fd);
	return id;
}

static json_t *node_status(const char *node)
{
	char path[4096], **ids;
	size_t n;
	struct zm_counters c;
	json_t *j = json_object(), *pods = json_array(), *m = json_object(), *cnt;

	json_object_set_new(j, "node", json_string(node));
	zm_bpf__list(NULL, node, &ids, &n);
	for (size_t i = 0; i < n; i++) {
		json_t *p = json_object(), *pl = json_object();

		json_object_set_new(p, "id", json_string(ids[i]));
		for (size_t k = 0; k < sizeof(links) / sizeof(links[0]); k++) {
			snprintf(path, sizeof(path), "%s/%s/pods/%s/%s", ZM_BPF_PIN_ROOT, node, ids[i], links[k]);
			json_object_set_new(pl, links[k], json_integer(link_prog_id(path)));
		}
		json_object_set_new(p, "prog_ids", pl);
		{
			/* The loader's note of the pod: "<cgroup id> <pod ip> ...". */
			unsigned long long cg;
			unsigned ip;
			FILE *f;
			struct zm_pod_stats st;
			int fd;

			snprintf(path, sizeof(path), "/run/zmesh/bpf/%s/%s", node, ids[i]);
			f = fopen(path, "re");
			snprintf(path, sizeof(path), "%s/%s/zm_pod_stats", ZM_BPF_PIN_ROOT, node);
			fd = bpf_obj_get(path);
			if (f && fd >= 0 && fscanf(f, "%llu %u", &cg, &ip) == 2 &&
			    bpf_map_lookup_elem(fd, &ip, &st) == 0)
				json_object_set_new(p, "traffic", json_pack("{s:I, s:I, s:I, s:I, s:I}",
					"to_pod_pkts", (json_int_t)st.to_pod_pkts,
					"to_pod_bytes", (json_int_t)st.to_pod_bytes,
					"from_pod_pkts", (json_int_t)st.from_pod_pkts,
					"from_pod_bytes", (json_int_t)st.from_pod_bytes,
					"strict_drops", (json_int_t)st.strict_drops));
			if (f)
				fclose(f);
			if (fd >= 0)
				close(fd);
		}
		json_array_append_new(pods, p);
	}
	zm_bpf__free_ids(ids, n);
	json_object_set_new(j, "pods", pods);
	for (size_t k = 0; k < sizeof(maps) / sizeof(maps[0]); k++) {
		snprintf(path, sizeof(path), "%s/%s/%s", ZM_BPF_PIN_ROOT, node, maps[k]);
		json_object_set_new(m, maps[k], json_integer(map_id(path)));
	}
	json_object_set_new(j, "map_ids", m);
	snprintf(path, sizeof(path), "%s/%s/node_sockops", ZM_BPF_PIN_ROOT, node);
	json_object_set_new(j, "node_sockops_prog_id", json_integer(link_prog_id(path)));
	if (zm_bpf_pins_counters(NULL, node, &c) == 0) {
		cnt = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
				"redirected", (json_int_t)c.redirected,
				"passthrough", (json_int_t)c.passthrough,
				"inbound_captured", (json_int_t)c.inbound,
				"drops", (json_int_t)c.inbound_drop,
				"fastpath_msgs", (json_int_t)c.fastpath_msgs,
				"fastpath_bytes", (json_int_t)c.fastpath_bytes,
				"orig_dst_saved", (json_int_t)c.orig_dst_saved,
				"fastpath_full", (json_int_t)c.fastpath_full,
				"fastpath_fallback", (json_int_t)c.fastpath_fallback,
				"fastpath_blocking", (json_int_t)c.fastpath_blocking);
		json_object_set_new(j, "counters", cnt);
	}
	return j;
}

static void print_table(json_t *j)
{
	json_t *pods = json_object_get(j, "pods"), *p, *cnt = json_object_get(j, "counters");
	json_t *m = json_object_get(j, "map_ids");
	const char *k;
	json_t *v;
	size_t i;

	printf("node %s: %zu pods enrolled\n", json_string_value(json_object_get(j, "node")),
	       json_array_size(pods));
	printf("  %-28s %8s %8s %8s %9s %10s %10s %7s\n", "POD", "CONNECT4", "CONNECT6", "SOCKOPS",
	       "SK_LOOKUP", "PKTS-IN", "PKTS-OUT", "DROPS");
	json_array_foreach(pods, i, p) {
		json_t *ids = json_object_get(p, "prog_ids"), *t = json_object_get(p, "traffic");

		printf("  %-28s %8lld %8lld %8lld %9lld %10lld %10lld %7lld\n",
		       json_string_value(json_object_get(p, "id")),
		       json_integer_value(json_object_get(ids, "connect4")),
		       json_integer_value(json_object_get(ids, "connect6")),
		       json_integer_value(json_object_get(ids, "sockops")),
		       json_integer_value(json_object_get(ids, "sk_lookup")),
		       json_integer_value(json_object_get(t, "to_pod_pkts")),
		       json_integer_value(json_object_get(t, "from_pod_pkts")),
		       json_integer_value(json_object_get(t, "strict_drops")));
	}
	printf("  maps:");
	json_object_foreach(m, k, v)
		printf(" %s=%lld", k, json_integer_value(v));
	printf("\n  counters:");
	json_object_foreach(cnt, k, v)
		printf(" %s=%lld", k, json_integer_value(v));
	printf("\n");
}

/*
 * The BPF state of a lab node is keyed by the node's netns name
 * ("zm-<lab>-<node>"), unique per lab, so two labs with a "node-1" each do
 * not share pins. A name that is not a node of @lab is taken as a key.
 */
static void node_key(const char *lab_name, const char *node, char *out, size_t outsz)
{
	struct zm_lab lab;
	struct zm_lab_node *nd;

	snprintf(out, outsz, "%s", node);
	if (zm_lab_load(lab_name, &lab, NULL))
		return;
	nd = zm_lab_node_find(&lab, node);
	if (nd)
		snprintf(out, outsz, "%s", nd->netns);
	zm_lab_free(&lab);
}

static int status(const char *node, bool as_json)
{
	json_t *all = json_array();
	DIR *d;
	struct dirent *de;

	if (node) {
		char path[4096];

		snprintf(path, sizeof(path), "%s/%s", ZM_BPF_PIN_ROOT, node);
		if (access(path, F_OK) < 0) {
			fprintf(stderr, "zmeshctl bpf status: nothing pinned for node %s (%s)\n", node, path);
			json_decref(all);
			return 1;
		}
		json_array_append_new(all, node_status(node));
	} else if ((d = opendir(ZM_BPF_PIN_ROOT))) {
		while ((de = readdir(d)))
			if (de->d_name[0] != '.')
				json_array_append_new(all, node_status(de->d_name));
		closedir(d);
	}
	if (as_json) {
		json_dumpf(all, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		putchar('\n');
	} else if (!json_array_size(all)) {
		printf("no zmesh BPF state under %s\n", ZM_BPF_PIN_ROOT);
	} else {
		size_t i;
		json_t *j;

		json_array_foreach(all, i, j)
			print_table(j);
	}
	json_decref(all);
	return 0;
}

/* Make each node's enrolment match the lab's labels, live. */
static int sync_lab(const char *lab_name, const char *only)
{
	struct zm_lab lab;
	struct zm_error e = { 0 };
	int failed = 0;

	if (zm_lab_load(lab_name, &lab, &e)) {
		fprintf(stderr, "zmeshctl bpf sync: %s\n", e.msg);
		return 1;
	}
	for (size_t i = 0; i < lab.nnodes; i++) {
		struct zm_lab_node *nd = &lab.nodes[i];
		struct zm_bpf_opts o = { .node = nd->netns, .node_cgroup = nd->cgroup };
		struct zm_bpf *b;
		char **ids;
		size_t nids;

		if (only && strcmp(only, nd->name))
			continue;
		if (zm_bpf__open(&o, &b, &e)) {
			fprintf(stderr, "zmeshctl bpf sync: node %s: %s\n", nd->name, e.msg);
			failed = 1;
			continue;
		}
		zm_bpf__list(NULL, nd->netns, &ids, &nids);
		printf("%s:", nd->name);
		for (size_t p = 0; p < lab.npods; p++) {
			struct zm_lab_pod *pod = &lab.pods[p];
			struct zm_lab_ns *ns = zm_lab_ns_find(&lab, pod->ns);
			char id[160], netns[256], node_netns[256];
			struct zm_bpf_pod bp = { .id = id, .cgroup = pod->cgroup, .netns = netns, .ip = pod->ip,
						 .node_netns = node_netns, .host_veth = pod->veth };

			if (strcmp(pod->node, nd->name) || !ns || !zm_enroll_wanted(&ns->labels, &pod->labels))
				continue;
			snprintf(id, sizeof(id), "%s_%s", pod->ns, pod->name);
			snprintf(netns, sizeof(netns), "/run/netns/%s", pod->netns);
			snprintf(node_netns, sizeof(node_netns), "/run/netns/%s", nd->netns);
			if (zm_bpf__enroll(b, &bp, &e)) {
				fprintf(stderr, "\nzmeshctl bpf sync: %s: %s\n", id, e.msg);
				failed = 1;
				continue;
			}
			printf(" +%s", id);
			for (size_t k = 0; k < nids; k++)
				if (ids[k] && !strcmp(ids[k], id)) {
					free(ids[k]);
					ids[k] = NULL;
				}
		}
		/* What is pinned but no longer wanted goes. */
		for (size_t k = 0; k < nids; k++) {
			if (!ids[k])
				continue;
			if (zm_bpf__unenroll(b, ids[k], &e)) {
				fprintf(stderr, "\nzmeshctl bpf sync: %s: %s\n", ids[k], e.msg);
				failed = 1;
			} else {
				printf(" -%s", ids[k]);
			}
		}
		printf("\n");
		zm_bpf__free_ids(ids, nids);
		zm_bpf__close(b);
	}
	zm_lab_free(&lab);
	return failed;
}

static int fastpath(const char *node, const char *onoff)
{
	struct zm_bpf_opts o = { .node = node };
	struct zm_bpf *b;
	struct zm_error e = { 0 };
	int rc;

	if (!node || !onoff || (strcmp(onoff, "on") && strcmp(onoff, "off"))) {
		fputs(usage_text, stderr);
		return 2;
	}
	if (zm_bpf__open(&o, &b, &e)) {
		fprintf(stderr, "zmeshctl bpf fastpath: %s\n", e.msg);
		return 1;
	}
	rc = zm_bpf__set_fastpath(b, !strcmp(onoff, "on"));
	zm_bpf__close(b);
	if (rc) {
		fprintf(stderr, "zmeshctl bpf fastpath: %s\n", strerror(-rc));
		return 1;
	}
	printf("%s: fast path %s\n", node, onoff);
	return 0;
}

static int cmd_bpf(int argc, char **argv)
{
	const char *node = NULL, *out = NULL, *lab = getenv("ZMESH_LAB"), *pos = NULL;
	char key[256];

	if (!lab)
		lab = ZM_LAB_DEFAULT;
	if (argc < 2) {
		fputs(usage_text, stderr);
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--node") && i + 1 < argc)
			node = argv[++i];
		else if (!strcmp(argv[i], "--name") && i + 1 < argc)
			lab = argv[++i];
		else if (!strcmp(argv[i], "-o") && i + 1 < argc)
			out = argv[++i];
		else if (argv[i][0] != '-' && !pos)
			pos = argv[i];
		else {
			fputs(usage_text, stderr);
			return 2;
		}
	}
	if (out && strcmp(out, "json")) {
		fprintf(stderr, "zmeshctl bpf: -o %s: want json\n", out);
		return 2;
	}
	if (node && strcmp(argv[1], "sync")) {
		node_key(lab, node, key, sizeof(key));
		node = key;
	}
	if (!strcmp(argv[1], "status"))
		return status(node, out != NULL);
	if (!strcmp(argv[1], "sync"))
		return sync_lab(lab, node);
	if (!strcmp(argv[1], "fastpath"))
		return fastpath(node, pos);
	fputs(usage_text, stderr);
	return 2;
}

ZM_CMD(bpf, cmd_bpf, "bpf status|sync|fastpath        BPF programs, enrolled pods, counters");
