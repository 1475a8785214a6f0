/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The lab: a simulated Kubernetes cluster on one Linux host, built from
 * network namespaces, veths and cgroup v2 (docs/lab.md has the topology).
 *
 * A lab is described by ordinary Kubernetes manifests (Node, Namespace,
 * ServiceAccount, Pod, Service) read by zm_lab_spec_load(); zm_lab_up() builds
 * it, zm_lab_down() removes it. The state (what exists, addresses, pids,
 * labels) is kept as JSON in <ZM_LAB_STATE_ROOT>/<lab>/state.json; other parts
 * (the node agents' enrolment, a node's own topology, proxies of a lab without
 * zmeshd) read it with zm_lab_load(). The cluster part is also written to the
 * lab's store as Kubernetes objects (zm_lab_cluster_apply below), which is
 * what zmeshd pushes and the proxies route on when it runs.
 *
 * Names: lab names are [a-z0-9]{1,12}. Network namespaces are
 * zm-<lab>-ul (underlay), zm-<lab>-<node>, zm-<lab>-<ns>-<pod>.
 */
#ifndef ZMESH_LAB_H
#define ZMESH_LAB_H

#include <limits.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "zmesh/labels.h"
#include "zmesh/log.h"

#define ZM_LAB_STATE_ROOT "/run/zmesh/lab"
#define ZM_LAB_STORE "store"	/* the lab's config store: <state root>/<lab>/store */
#define ZM_LAB_DEFAULT "zmesh"
#define ZM_LAB_NAME_MAX 12
#define ZM_K8S_NAME_MAX 63	/* DNS-1123 label */
#define ZM_LAB_MAX_NODES 200
#define ZM_LAB_MAX_PODS_PER_NODE 250

struct zm_lab_node {
	char name[ZM_K8S_NAME_MAX + 1];
	int index;			/* order in the manifests: addresses derive from it */
	char netns[96];
	char cgroup[PATH_MAX];
	struct in_addr underlay_ip;	/* 172.30.0.<index+1> */
	struct in_addr pod_cidr;	/* 10.244.<index>.0/24 */
	struct in_addr gateway;		/* 10.244.<index>.1: the node side of every pod veth */
	int npods;
	pid_t ztunnel_pid;		/* 0 when the lab runs without the mesh */
};

struct zm_lab_ns {
	char name[ZM_K8S_NAME_MAX + 1];
	struct zm_labels labels;
};

struct zm_lab_cport {
	char name[16];
	int port;
};

struct zm_lab_container {
	char name[ZM_K8S_NAME_MAX + 1];
	char **argv;			/* command + args, NULL-terminated */
	size_t argc;
	struct zm_kv *env;
	size_t nenv;
	struct zm_lab_cport *ports;
	size_t nports;
};

struct zm_lab_pod {
	char ns[ZM_K8S_NAME_MAX + 1];
	char name[ZM_K8S_NAME_MAX + 1];
	char node[ZM_K8S_NAME_MAX + 1];
	char sa[ZM_K8S_NAME_MAX + 1];	/* serviceAccountName, "default" if unset */
	struct zm_labels labels;
	struct zm_lab_container *containers;
	size_t ncontainers;
	/* set by the lab */
	struct in_addr ip;
	char netns[160];
	char cgroup[PATH_MAX];
	char veth[16];			/* host (node) side of the pod's veth */
	pid_t *pids;
	size_t npids;
};

struct zm_lab_sport {
	char name[ZM_K8S_NAME_MAX + 1];
	int port;
	int target_port;		/* 0: named, see target_name */
	char target_name[ZM_K8S_NAME_MAX + 1];
	char protocol[8];		/* TCP, UDP, SCTP */
};

struct zm_lab_svc {
	char ns[ZM_K8S_NAME_MAX + 1];
	char name[ZM_K8S_NAME_MAX + 1];
	struct zm_labels selector;
	struct zm_labels labels;	/* metadata.labels (istio.io/use-waypoint...) */
	struct zm_lab_sport *ports;
	size_t nports;
	struct in_addr cluster_ip;	/* 0 until allocated */
};

struct zm_lab_sa {
	char ns[ZM_K8S_NAME_MAX + 1];
	char name[ZM_K8S_NAME_MAX + 1];
};

struct zm_cfg_set;
/* How the mesh runs in a lab (zmeshctl lab up --mode). */
enum zm_lab_mode {
	ZM_LAB_AMBIENT,		/* BPF capture + a ztunnel per node (the default) */
	ZM_LAB_SIDECAR,		/* iptables REDIRECT + `ztunnel --sidecar` per meshed pod */
	ZM_LAB_SIDECAR_HAPROXY,	/* iptables REDIRECT + HAProxy per meshed pod, mTLS */
};

struct zm_lab {
	char name[ZM_LAB_NAME_MAX + 1];
	char state_dir[PATH_MAX];
	char cgroup_root[PATH_MAX];	/* <cgroup2>/zmesh/<lab> */
	char bin_dir[PATH_MAX];		/* where zmesh binaries are (ZMESH_BIN) */
	bool no_mesh;			/* up: do not start a ztunnel per node */
	/* up: Istio objects (validated by the caller) applied to the lab's
	 * config store, <state_dir>/store, before any ztunnel starts; NULL:
	 * the store starts empty. Not owned, not saved: the store keeps them. */
	struct zm_cfg_set *config;
	enum zm_lab_mode mode;		/* up only; not kept in the state */
	struct zm_lab_node *nodes;
	size_t nnodes;
	struct zm_lab_ns *namespaces;
	size_t nnamespaces;
	struct zm_lab_pod *pods;
	size_t npods;
	struct zm_lab_svc *services;
	size_t nservices;
	struct zm_lab_sa *sas;
	size_t nsas;
};

/* 0 when @name is a valid lab name, else -EINVAL with e set. */
int zm_lab_name_check(const char *name, struct zm_error *e);

/*
 * Read manifests (several documents per file; several files) into @lab,
 * which must be zeroed. Checks kinds, fields (unknown ones rejected), types,
 * names, duplicates, references (pod -> node, namespace, service account),
 * clusterIP range and clashes. Errors: "file:line:col: field.path: why".
 * Documents of Istio's API groups are skipped (they are config, not lab).
 */
int zm_lab_spec_load(struct zm_lab *lab, const char *const *files, size_t nfiles,
		     struct zm_error *e);

/* Build the lab. On failure everything made so far is removed again. */
int zm_lab_up(struct zm_lab *lab, struct zm_error *e);
/* Remove everything of lab @name; 0 also when nothing (or part) exists. */
int zm_lab_down(const char *name, struct zm_error *e);
/*
 * Add to a lab that is up (loaded with zm_lab_load): the pods from index
 * @first_pod and services from @first_svc of @lab were appended by the
 * caller (ns, name, node, labels, sa, containers; services: ns, name,
 * selector, labels, ports). They get addresses, netns, cgroups and veths as
 * at `up`; every hosts file and the nodes' service rules are rewritten; the
 * pods' commands start; the state is saved (ztunnels pick it up).
 */
int zm_lab_grow(struct zm_lab *lab, size_t first_pod, size_t first_svc, struct zm_error *e);

/* Load the state of a running lab; -ENOENT when it is not up. */
int zm_lab_load(const char *name, struct zm_lab *lab, struct zm_error *e);
int zm_lab_save(const struct zm_lab *lab, struct zm_error *e);
void zm_lab_free(struct zm_lab *lab);

struct zm_lab_pod *zm_lab_pod_find(struct zm_lab *lab, const char *ns, const char *name);
struct zm_lab_node *zm_lab_node_find(struct zm_lab *lab, const char *name);
struct zm_lab_ns *zm_lab_ns_find(struct zm_lab *lab, const char *name);

/*
 * Replace the calling process with @argv run inside pod @pod (its netns,
 * cgroup, and a mount namespace where /etc/netns/<netns>/ files cover /etc)
 * or, when @pod is NULL, inside node @node. Returns only on error.
 */
int zm_lab_exec(const struct zm_lab *lab, const struct zm_lab_pod *pod,
		const struct zm_lab_node *node, char *const argv[], struct zm_error *e);

/* The port service port @sp sends to on @pod (named target ports resolve
 * per pod through its containers' ports); 0 when @pod has no such port. */
int zm_lab_target_port(const struct zm_lab_sport *sp, const struct zm_lab_pod *pod);

/*
 * The lab's control plane (docs/zmeshd.md), started by zm_lab_up() unless
 * no_mesh: a bootstrap credential per node in <state>/nodes/<node>/
 * (nodeid.h files), and zmeshd in the underlay netns zm-<lab>-ul, in cgroup
 * <lab cgroup>/zmeshd, serving ZM_LAB_ZMESHD_ADDR:15012 (every node reaches
 * it over its ul0) with :15014 on that netns' 127.0.0.1, store
 * <state>/store, CA <state>/ca, log <state>/logs/zmeshd.log. 0 and nothing
 * started when this build has no zmeshd binary.
 */
#define ZM_LAB_ZMESHD_ADDR "172.30.0.254"
int zm_lab_start_zmeshd(struct zm_lab *lab, struct zm_error *e);

/*
 * Waypoints and gateways are zmeshd's clients too, each with a bootstrap
 * credential of its own (nodeid.h: spiffe://cluster.local/zmesh/waypoint|
 * gateway/<ns>/<sa>) in <state>/proxies/<ns>/<sa>/. zm_lab_mint_proxies()
 * makes one for every pod labelled gateway.networking.k8s.io/gateway-name
 * (a waypoint) or istio=ingressgateway (the gateway) that has none, when the
 * lab runs zmeshd (its node credentials exist); zm_lab_start_zmeshd() and
 * zm_lab_grow() call it before the pods start. The waypoint binary finds its
 * credential there and then follows zmeshd instead of the store files.
 */
#define ZM_LAB_PROXIES "proxies"
int zm_lab_mint_proxies(struct zm_lab *lab, struct zm_error *e);

/*
 * Sidecar modes (lab_sidecar.c), for benchmarks against ambient: for every
 * pod zm_enroll_wanted() selects, iptables nat rules in its netns as Istio's
 * istio-init makes (OUTPUT -> 127.0.0.1:15001 except group
 * ZM_LAB_PROXY_GID, lo and 15008; PREROUTING -> 15006 except 15008, 15020,
 * 15021) and one proxy process in the pod's netns, in its own cgroup
 * <cgroup_root>/sidecars/<ns>_<pod> (so its CPU and memory are its own), log
 * in <state_dir>/logs/sidecar-<ns>_<pod>.log. Returns once every proxy
 * accepts on 15001 (or -ETIMEDOUT after 10 s). Called by zm_lab_up().
 */
#define ZM_LAB_PROXY_GID 1337
int zm_lab_sidecars_up(struct zm_lab *lab, struct zm_error *e);
const char *zm_lab_mode_name(enum zm_lab_mode m);
/* -EINVAL for an unknown name. */
int zm_lab_mode_parse(const char *name, enum zm_lab_mode *m);

/*
 * North-south (lab_gateway.c, docs/gateway.md). zm_lab_up() calls
 * zm_lab_gateway_plan() (adds istio-system/istio-ingressgateway, labelled
 * istio=ingressgateway, running `waypoint --gateway`, when the config has
 * a Gateway and no pod has that label) and zm_lab_outside_up() (netns
 * zm-<lab>-_outside on the underlay at ZM_LAB_OUTSIDE_ADDR, routed to the
 * gateway pods only; its hosts file names every Gateway host).
 * zm_lab_exec_outside() rewrites that hosts file from the lab's store and
 * replaces the process with @argv there. Returns only on error.
 */
#define ZM_LAB_OUTSIDE_ADDR "172.30.0.253"
int zm_lab_gateway_plan(struct zm_lab *lab, struct zm_error *e);
int zm_lab_outside_up(struct zm_lab *lab, struct zm_error *e);
int zm_lab_outside_hosts(const struct zm_lab *lab, const struct zm_cfg_set *cfg, struct zm_error *e);
int zm_lab_exec_outside(const struct zm_lab *lab, char *const argv[], struct zm_error *e);
const struct zm_lab_pod *zm_lab_gateway_pod(const struct zm_lab *lab);
void zm_lab_outside_netns(const struct zm_lab *lab, char *buf, size_t sz);

/* Run @argv in netns @netns with @input on stdin; 0 when it exits 0. */
int zm_lab_run_in_netns(const char *netns, char *const argv[], const char *input, struct zm_error *e);

/*
 * ZDS (zds.h) for lab pods (lab_zds.c): the pod's uid (a UUID derived from
 * lab, namespace, name and IP: lab pods are never replaced under the same
 * name) and its enrolment record (labels copied: zm_labels_free them).
 */
struct zm_zds_workload;
void zm_lab_pod_uid(const struct zm_lab *lab, const struct zm_lab_pod *p, char *out, size_t sz);
int zm_lab_zds_workload(const struct zm_lab *lab, const struct zm_lab_pod *p, struct zm_zds_workload *w);
/* Should node @node's ztunnel have @p enrolled? */
bool zm_lab_pod_enrolled(const struct zm_lab *lab, const struct zm_lab_pod *p);
/* The node agent of each node (build/nodeagent: it feeds the node's ztunnel
 * over ZDS from the lab state), in cgroup <lab cgroup>/agents/<node>, log
 * <state>/logs/nodeagent-<node>.log. Started by zm_lab_up(). */
int zm_lab_start_agent(struct zm_lab *lab, struct zm_lab_node *n, struct zm_error *e);

/*
 * The cluster in the lab's store (lab_cluster.c, docs/lab.md "The cluster
 * in the store"): Kubernetes objects for what the lab runs, as an API
 * server would hold them, so zmeshd pushes workloads as istiod does.
 * Namespace (labels), Node (spec.podCIDR, status.addresses InternalIP = the
 * underlay address), ServiceAccount (the listed ones and each namespace's
 * "default"), Pod (metadata.uid from zm_lab_pod_uid, labels,
 * spec.nodeName, serviceAccountName, containers[].name/ports,
 * status.phase Running, podIP, podIPs), Service (labels, selector, ports
 * with targetPort a number or a container port name, clusterIP).
 *
 * zm_lab_cluster_objects: those objects, then @extra's (may be NULL),
 * loaded into @out (initialised by the caller). zm_lab_cluster_apply: the
 * same as one apply to <state_dir>/store (unchanged objects change
 * nothing); *@version (may be NULL) gets the store version. zm_lab_up(),
 * zm_lab_grow() and `zmeshctl lab label` call it.
 */
int zm_lab_cluster_objects(const struct zm_lab *lab, const struct zm_cfg_set *extra, struct zm_cfg_set *out,
			   struct zm_error *e);
int zm_lab_cluster_apply(const struct zm_lab *lab, const struct zm_cfg_set *extra, uint64_t *version,
			 struct zm_error *e);
/*
 * The other way, for proxies fed by zmeshd: the cluster part of a lab
 * (nodes, namespaces, service accounts, pods, services) from the core
 * objects of a pushed config set. @out is overwritten (zm_lab_free it);
 * what only the lab knows (netns, cgroup, veth, pids, commands) stays
 * empty; a node's gateway is the first address of its podCIDR. A Pod
 * without an IPv4 podIP is left out (not routable yet), not an error; so is
 * a hostNetwork Pod (its address is the node's, never a workload's).
 * Malformed fields fail the whole call with -EINVAL and
 * "file:line:col: field: why (Kind ns/name)" in @e, so a proxy NACKs and
 * keeps its last good view.
 */
int zm_lab_cluster_from_cfg(const struct zm_cfg_set *s, struct zm_lab *out, struct zm_error *e);

/* The cgroup v2 mount point (from /proc/mounts) into @buf. */
int zm_cgroup2_root(char *buf, size_t sz);

#endif
