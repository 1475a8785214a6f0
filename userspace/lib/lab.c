// SPDX-License-Identifier: Apache-2.0
/* The lab: build and remove a simulated cluster from kernel objects. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "zmesh/bpf_loader.h"
#include "zmesh/ca.h"
#include "zmesh/fsutil.h"
#include "zmesh/lab.h"
#include "zmesh/zds.h"
#include "zmesh/netlink.h"
#include "zmesh/netns.h"
#include "zmesh/store.h"

#include "lab_int.h"

#define ETC_NETNS "/etc/netns"
#define BPF_PIN_ROOT "/sys/fs/bpf/zmesh"

int zm_cgroup2_root(char *buf, size_t sz)
{
	char line[1024], dev[256], dir[PATH_MAX], type[64];
	FILE *f = fopen("/proc/mounts", "re");
	int rc = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%255s %4095s %63s", dev, dir, type) == 3 &&
		    !strcmp(type, "cgroup2")) {
			rc = (size_t)snprintf(buf, sz, "%s", dir) >= sz ? -ENAMETOOLONG : 0;
			break;
		}
	}
	fclose(f);
	return rc;
}

/* Kill every process in cgroup @dir and below, then remove the directories. */
static int cgroup_kill_rm(const char *dir)
{
	char path[PATH_MAX + 300];
	DIR *d;
	struct dirent *de;
	int fd;

	if (access(dir, F_OK) < 0)
		return 0;
	d = opendir(dir);
	if (d) {
		while ((de = readdir(d))) {
			if (de->d_type != DT_DIR || de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			cgroup_kill_rm(path);
		}
		closedir(d);
	}
	/* cgroup.kill (5.14+) kills atomically, forks included; else walk procs. */
	snprintf(path, sizeof(path), "%s/cgroup.kill", dir);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		/* Best effort: the cgroup.procs walk below catches what is left. */
		(void)!write(fd, "1", 1);
		close(fd);
	}
	/* Killed tasks leave cgroup.procs before the cgroup is unpopulated
	 * (a many-threaded process takes a while to exit): rmdir says EBUSY
	 * until then, so it is retried as well, for up to 5 s. */
	for (int tries = 0; tries < 500; tries++) {
		char buf[64];
		FILE *f;

		snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
		f = fopen(path, "re");
		if (f) {
			while (fgets(buf, sizeof(buf), f))
				kill((pid_t)atoi(buf), SIGKILL);
			fclose(f);
		}
		if (rmdir(dir) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY)
			break;
		usleep(10000);
	}
	return -errno;
}

/* Every name that starts with @prefix in directory @dir. */
static void for_each_prefixed(const char *dir, const char *prefix,
			      void (*fn)(const char *dir, const char *name))
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = strlen(prefix);

	if (!d)
		return;
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, prefix, n))
			fn(dir, de->d_name);
	closedir(d);
}

static void del_netns(const char *dir, const char *name)
{
	(void)dir;
	zm_netns_del(name);
}

static void del_etc_netns(const char *dir, const char *name)
{
	char path[PATH_MAX + 300];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	zm_rm_rf(path);
}

int zm_lab_down(const char *name, struct zm_error *e)
{
	char prefix[64], path[PATH_MAX + 300], cg[PATH_MAX];
	struct zm_lab lab;
	int rc = zm_lab_name_check(name, e);

	if (rc)
		return rc;
	snprintf(prefix, sizeof(prefix), "zm-%s-", name);
	/* Processes first, so nothing holds a namespace or re-creates state. */
	if (zm_cgroup2_root(cg, sizeof(cg)) == 0) {
		snprintf(path, sizeof(path), "%s/zmesh/%s", cg, name);
		cgroup_kill_rm(path);
		snprintf(path, sizeof(path), "%s/zmesh", cg);
		rmdir(path);	/* only when no other lab is there */
	}
	if (zm_lab_load(name, &lab, NULL) == 0) {
		for (size_t i = 0; i < lab.nnodes; i++)
			zm_bpf__destroy(NULL, lab.nodes[i].netns, NULL);
		rmdir(BPF_PIN_ROOT);
		rmdir("/run/zmesh/bpf");
		zm_lab_free(&lab);
	}
	/* Names are unique per lab (lab names have no '-'), so the prefix
	 * finds exactly this lab's namespaces, also after a crash. */
	for_each_prefixed(ZM_NETNS_RUN_DIR, prefix, del_netns);
	for_each_prefixed(ETC_NETNS, prefix, del_etc_netns);
	/* The nodes' ZDS sockets (/run/zmesh/<node netns>/ztunnel.sock). */
	for_each_prefixed(ZM_ZDS_RUN_DIR, prefix, del_etc_netns);
	snprintf(path, sizeof(path), "%s/%s", ZM_LAB_STATE_ROOT, name);
	zm_rm_rf(path);
	return 0;
}

/* ---- building ------------------------------------------------------------ */


static struct in_addr ip4(unsigned a, unsigned b, unsigned c, unsigned d)
{
	struct in_addr x = { htonl((a << 24) | (b << 16) | (c << 8) | d) };

	return x;
}

static const char *ipstr(struct in_addr a, char *buf)
{
	return inet_ntop(AF_INET, &a, buf, INET_ADDRSTRLEN);
}

/* Run @argv inside netns @netns with @input on its stdin; 0 when it exits 0. */
static int run_in_netns(const char *netns, char *const argv[], const char *input,
			struct zm_error *e)
{
	int pfd[2], status, saved;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return zm_error_set(e, errno, "pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return zm_error_set(e, errno, "fork: %s", strerror(errno));
	}
	if (pid == 0) {
		dup2(pfd[0], 0);
		if (zm_netns_enter(netns, &saved) < 0)
			_exit(126);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(pfd[0]);
	/* A short write shows as the command's own failure below. */
	if (input)
		(void)!write(pfd[1], input, strlen(input));
	close(pfd[1]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return zm_error_set(e, EIO, "%s in %s failed (status %d)", argv[0], netns,
				    WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return 0;
}

int zm_lab_run_in_netns(const char *netns, char *const argv[], const char *input, struct zm_error *e)
{
	return run_in_netns(netns, argv, input, e);
}

/* Do @fn inside @netns (sysctls and name->index lookups are per namespace). */

static int make_netns(const char *name, struct zm_error *e)
{
	struct zm_nl nl = { 0 };
	int rc = zm_netns_add(name);

	if (rc)
		return zm_error_set(e, -rc, "netns %s: %s", name, strerror(-rc));
	IN_NETNS(name, rc, {
		rc = zm_nl_open(&nl);
		if (!rc)
			rc = zm_nl_link_up(&nl, "lo");
		zm_nl_close(&nl);
	});
	if (rc)
		return zm_error_set(e, -rc, "netns %s: lo up: %s", name, strerror(-rc));
	return 0;
}

#define NL_TRY(what, call) do {						\
	rc = (call);							\
	if (rc) {							\
		zm_error_set(e, -rc, "%s: %s", (what), strerror(-rc));	\
		goto out;						\
	}								\
} while (0)

static int build_underlay(struct zm_lab *lab, struct zm_error *e)
{
	char ul[96], ifn[16], cidr[INET_ADDRSTRLEN];
	struct zm_nl nl = { 0 };
	int rc, ulfd = -1;

	snprintf(ul, sizeof(ul), "zm-%s-ul", lab->name);
	rc = make_netns(ul, e);
	if (rc)
		return rc;
	ulfd = zm_netns_open(ul);
	if (ulfd < 0)
		return zm_error_set(e, -ulfd, "%s: %s", ul, strerror(-ulfd));
	IN_NETNS(ul, rc, {
		rc = zm_nl_open(&nl);
		if (!rc)
			rc = zm_nl_bridge_add(&nl, "br0");
		if (!rc)
			rc = zm_nl_link_up(&nl, "br0");
		/* zmeshd's address on the underlay (lab.h) */
		if (!rc)
			rc = zm_nl_addr_add(&nl, "br0", ip4(172, 30, 0, 254), 24);
	});
	if (rc) {
		zm_error_set(e, -rc, "underlay bridge: %s", strerror(-rc));
		goto out;
	}
	for (size_t i = 0; i < lab->nnodes; i++) {
		struct zm_lab_node *n = &lab->nodes[i];
		struct zm_nl nnl = { 0 };
		int nfd;

		rc = make_netns(n->netns, e);
		if (rc)
			goto out;
		nfd = zm_netns_open(n->netns);
		if (nfd < 0) {
			rc = zm_error_set(e, -nfd, "%s: %s", n->netns, strerror(-nfd));
			goto out;
		}
		snprintf(ifn, sizeof(ifn), "n%d", n->index);
		/* Created from the underlay: "ul0" lands in the node directly. */
		IN_NETNS(ul, rc, {
			rc = zm_nl_veth_add(&nl, ifn, -1, "ul0", nfd);
			if (!rc)
				rc = zm_nl_link_set_master(&nl, ifn, "br0");
			if (!rc)
				rc = zm_nl_link_up(&nl, ifn);
		});
		close(nfd);
		if (rc) {
			zm_error_set(e, -rc, "%s: underlay veth: %s", n->name, strerror(-rc));
			goto out;
		}
		IN_NETNS(n->netns, rc, {
			rc = zm_nl_open(&nnl);
			if (!rc)
				rc = zm_nl_link_up(&nnl, "ul0");
			if (!rc)
				rc = zm_nl_addr_add(&nnl, "ul0", n->underlay_ip, 24);
			for (size_t j = 0; !rc && j < lab->nnodes; j++)
				if (j != i)
					rc = zm_nl_route_add(&nnl, lab->nodes[j].pod_cidr, 24,
							     lab->nodes[j].underlay_ip, "ul0", 0);
			/* Node processes reach ClusterIPs too: they need a route for
			 * the socket before the OUTPUT DNAT picks the endpoint. */
			if (!rc)
				rc = zm_nl_route_add(&nnl, ip4(10, 96, 0, 0), 16,
						     (struct in_addr){ 0 }, "ul0", 0);
			if (!rc)
				rc = zm_sysctl_set("net/ipv4/ip_forward", "1");
			if (!rc)
				rc = zm_sysctl_set("net/ipv4/conf/all/rp_filter", "0");
			if (!rc)
				rc = zm_sysctl_set("net/ipv4/conf/default/rp_filter", "0");
			zm_nl_close(&nnl);
		});
		if (rc) {
			zm_error_set(e, -rc, "node %s (%s): addresses and routes: %s", n->name,
				     ipstr(n->underlay_ip, cidr), strerror(-rc));
			goto out;
		}
		/* The underlay (zmeshd's netns) reaches this node's pods through
		 * it: a pod's sidecar or waypoint can talk to zmeshd. */
		IN_NETNS(ul, rc, {
			rc = zm_nl_route_add(&nl, n->pod_cidr, 24, n->underlay_ip, "br0", 0);
		});
		if (rc) {
			zm_error_set(e, -rc, "underlay route to %s's pods: %s", n->name, strerror(-rc));
			goto out;
		}
	}
out:
	zm_nl_close(&nl);
	if (ulfd >= 0)
		close(ulfd);
	return rc;
}

static int build_pod(struct zm_lab *lab, struct zm_lab_pod *p, struct zm_error *e)
{
	struct zm_lab_node *n = zm_lab_node_find(lab, p->node);
	struct zm_nl nl = { 0 };
	struct in_addr any = { 0 };
	int rc, pfd;

	rc = make_netns(p->netns, e);
	if (rc)
		return rc;
	pfd = zm_netns_open(p->netns);
	if (pfd < 0)
		return zm_error_set(e, -pfd, "%s: %s", p->netns, strerror(-pfd));
	/* Node side: the pod's gateway address on every pod veth, a host route
	 * to the pod. The pod side is eth0 with a /32 and a default route. */
	IN_NETNS(n->netns, rc, {
		rc = zm_nl_open(&nl);
		if (!rc)
			rc = zm_nl_veth_add(&nl, p->veth, -1, "eth0", pfd);
		if (!rc)
			rc = zm_nl_link_up(&nl, p->veth);
		if (!rc)
			rc = zm_nl_addr_add(&nl, p->veth, n->gateway, 32);
		if (!rc)
			rc = zm_nl_route_add(&nl, p->ip, 32, any, p->veth, 0);
		zm_nl_close(&nl);
	});
	close(pfd);
	if (rc)
		return zm_error_set(e, -rc, "pod %s/%s: node side of the veth: %s", p->ns, p->name,
				    strerror(-rc));
	IN_NETNS(p->netns, rc, {
		rc = zm_nl_open(&nl);
		if (!rc)
			rc = zm_nl_link_up(&nl, "eth0");
		if (!rc)
			rc = zm_nl_addr_add(&nl, "eth0", p->ip, 32);
		if (!rc)
			rc = zm_nl_route_add(&nl, n->gateway, 32, any, "eth0", 0);
		if (!rc)
			rc = zm_nl_route_add(&nl, any, 0, n->gateway, "eth0", 0);
		zm_nl_close(&nl);
	});
	if (rc)
		return zm_error_set(e, -rc, "pod %s/%s: eth0: %s", p->ns, p->name, strerror(-rc));
	rc = zm_mkdir_p(p->cgroup, 0755);
	if (rc)
		return zm_error_set(e, -rc, "%s: %s", p->cgroup, strerror(-rc));
	return 0;
}

static int write_hosts(struct zm_lab *lab, struct zm_lab_pod *p, struct zm_error *e)
{
	char dir[PATH_MAX], path[PATH_MAX + 16], ip[INET_ADDRSTRLEN];
	FILE *f;
	int rc;

	snprintf(dir, sizeof(dir), "%s/%s", ETC_NETNS, p->netns);
	rc = zm_mkdir_p(dir, 0755);
	if (rc)
		return zm_error_set(e, -rc, "%s: %s", dir, strerror(-rc));
	snprintf(path, sizeof(path), "%s/hosts", dir);
	f = fopen(path, "we");
	if (!f)
		return zm_error_set(e, errno, "%s: %s", path, strerror(errno));
	fprintf(f, "# written by zmeshctl lab %s\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
		lab->name);
	fprintf(f, "%s\t%s\n", ipstr(p->ip, ip), p->name);
	for (size_t i = 0; i < lab->nservices; i++) {
		struct zm_lab_svc *s = &lab->services[i];

		fprintf(f, "%s\t%s.%s.svc.cluster.local %s.%s%s%s\n", ipstr(s->cluster_ip, ip),
			s->name, s->ns, s->name, s->ns, strcmp(s->ns, p->ns) ? "" : " ",
			strcmp(s->ns, p->ns) ? "" : s->name);
	}
	if (fclose(f) != 0)
		return zm_error_set(e, errno, "%s: %s", path, strerror(errno));
	return 0;
}

int zm_lab_target_port(const struct zm_lab_sport *sp, const struct zm_lab_pod *pod)
{
	if (sp->target_port)
		return sp->target_port;
	for (size_t c = 0; c < pod->ncontainers; c++)
		for (size_t k = 0; k < pod->containers[c].nports; k++)
			if (!strcmp(pod->containers[c].ports[k].name, sp->target_name))
				return pod->containers[c].ports[k].port;
	return 0;
}

/* kube-proxy's job, as nftables DNAT in each node: ClusterIP:port -> a
 * random ready endpoint; hairpin traffic (a pod reaching itself through
 * its service) is masqueraded so replies come back through the node. */
static int build_services(struct zm_lab *lab, struct zm_error *e)
{
	size_t cap = 4096 + lab->nservices * (512 + lab->npods * 48), o = 0;
	char *rules = malloc(cap), ip[INET_ADDRSTRLEN];
	char *argv[] = { "nft", "-f", "-", NULL };
	int rc = 0;

#define OUT(...) do { if (o < cap) o += (size_t)snprintf(rules + o, cap - o, __VA_ARGS__); } while (0)
	if (!rules)
		return zm_error_set(e, ENOMEM, "out of memory");
	/* Idempotent: a lab that grows loads the whole table again. */
	OUT("table ip zmesh_lab\nflush table ip zmesh_lab\ntable ip zmesh_lab {\n chain svc {\n");
	for (size_t i = 0; i < lab->nservices; i++) {
		struct zm_lab_svc *s = &lab->services[i];

		for (size_t k = 0; k < s->nports; k++) {
			const struct zm_lab_sport *sp = &s->ports[k];
			const char *proto = !strcmp(sp->protocol, "UDP") ? "udp" :
					    !strcmp(sp->protocol, "SCTP") ? "sctp" : "tcp";
			size_t nep = 0;

			for (size_t p = 0; p < lab->npods; p++)
				if (!strcmp(lab->pods[p].ns, s->ns) && s->selector.n &&
				    zm_labels_match(&s->selector, &lab->pods[p].labels) &&
				    zm_lab_target_port(sp, &lab->pods[p]))
					nep++;
			if (!nep)
				continue;
			OUT("  ip daddr %s %s dport %d dnat to numgen random mod %zu map { ",
			    ipstr(s->cluster_ip, ip), proto, sp->port, nep);
			nep = 0;
			for (size_t p = 0; p < lab->npods; p++) {
				if (strcmp(lab->pods[p].ns, s->ns) || !s->selector.n ||
				    !zm_labels_match(&s->selector, &lab->pods[p].labels) ||
				    !zm_lab_target_port(sp, &lab->pods[p]))
					continue;
				OUT("%s%zu : %s . %d", nep ? ", " : "", nep,
				    ipstr(lab->pods[p].ip, ip), zm_lab_target_port(sp, &lab->pods[p]));
				nep++;
			}
			OUT(" }\n");
		}
	}
	OUT(" }\n chain pre {\n  type nat hook prerouting priority -100; policy accept;\n  jump svc\n }\n");
	OUT(" chain out {\n  type nat hook output priority -100; policy accept;\n  jump svc\n }\n");
	OUT(" chain post {\n  type nat hook postrouting priority 100; policy accept;\n");
	for (size_t p = 0; p < lab->npods; p++)
		OUT("  ct status dnat ip saddr %s ip daddr %s masquerade\n",
		    ipstr(lab->pods[p].ip, ip), ip);
	OUT(" }\n}\n");
#undef OUT
	if (o >= cap) {
		free(rules);
		return zm_error_set(e, E2BIG, "nftables ruleset too large");
	}
	for (size_t i = 0; i < lab->nnodes && !rc; i++)
		rc = run_in_netns(lab->nodes[i].netns, argv, rules, e);
	free(rules);
	return rc;
}

/* Enter a pod (or node): netns, cgroup, and a private mount namespace where
 * /etc/netns/<netns>/<file> covers /etc/<file>, as `ip netns exec` does. */
int zm_lab_cgroup_join(const char *cgroup, struct zm_error *e)
{
	char path[PATH_MAX + 300], pid[32];
	int fd, rc;

	snprintf(path, sizeof(path), "%s/cgroup.procs", cgroup);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return zm_error_set(e, errno, "%s: %s", path, strerror(errno));
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	rc = write(fd, pid, strlen(pid)) < 0 ? -errno : 0;
	close(fd);
	if (rc)
		return zm_error_set(e, -rc, "%s: %s", path, strerror(-rc));
	return 0;
}

void zm_lab_child_stdio(const char *log, bool null_stdin)
{
	int fd;

	setsid();
	fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
	}
	if (!null_stdin)
		return;
	fd = open("/dev/null", O_RDONLY);
	if (fd >= 0)
		dup2(fd, 0);
}

static int enter(const char *netns, const char *cgroup, struct zm_error *e)
{
	char path[PATH_MAX + 300];
	DIR *d;
	struct dirent *de;
	int saved, rc;

	rc = zm_lab_cgroup_join(cgroup, e);
	if (rc)
		return rc;
	rc = zm_netns_enter(netns, &saved);
	if (rc)
		return zm_error_set(e, -rc, "netns %s: %s", netns, strerror(-rc));
	close(saved);
	if (unshare(CLONE_NEWNS) < 0)
		return zm_error_set(e, errno, "unshare(CLONE_NEWNS): %s", strerror(errno));
	if (mount("", "/", "none", MS_SLAVE | MS_REC, NULL) < 0)
		return zm_error_set(e, errno, "mount --make-rslave /: %s", strerror(errno));
	snprintf(path, sizeof(path), "%s/%s", ETC_NETNS, netns);
	d = opendir(path);
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char src[PATH_MAX + 600], dst[PATH_MAX];

		if (de->d_name[0] == '.')
			continue;
		snprintf(src, sizeof(src), "%s/%s", path, de->d_name);
		snprintf(dst, sizeof(dst), "/etc/%s", de->d_name);
		if (mount(src, dst, "none", MS_BIND, NULL) < 0) {
			rc = zm_error_set(e, errno, "bind %s on %s: %s", src, dst, strerror(errno));
			break;
		}
	}
	closedir(d);
	return rc;
}

static void set_pod_env(const struct zm_lab *lab, const struct zm_lab_pod *p)
{
	char ip[INET_ADDRSTRLEN];
	const char *version = zm_labels_get(&p->labels, "version");

	setenv("POD_NAME", p->name, 1);
	setenv("POD_NAMESPACE", p->ns, 1);
	setenv("POD_IP", ipstr(p->ip, ip), 1);
	setenv("NODE_NAME", p->node, 1);
	setenv("POD_SERVICE_ACCOUNT", p->sa, 1);
	setenv("POD_VERSION", version ? version : "", 1);
	setenv("ZMESH_BIN", lab->bin_dir, 1);
}

/* argv[0] "echoapp" means our build's echoapp when there is one. */
static void exec_cmd(const struct zm_lab *lab, char *const argv[])
{
	char path[PATH_MAX + 300];

	if (!strchr(argv[0], '/')) {
		snprintf(path, sizeof(path), "%s/%s", lab->bin_dir, argv[0]);
		if (access(path, X_OK) == 0)
			execv(path, argv);
	}
	execvp(argv[0], argv);
}

int zm_lab_exec(const struct zm_lab *lab, const struct zm_lab_pod *pod,
		const struct zm_lab_node *node, char *const argv[], struct zm_error *e)
{
	int rc;

	if (pod) {
		rc = enter(pod->netns, pod->cgroup, e);
		if (rc)
			return rc;
		set_pod_env(lab, pod);
	} else {
		rc = enter(node->netns, node->cgroup, e);
		if (rc)
			return rc;
		setenv("NODE_NAME", node->name, 1);
		setenv("ZMESH_BIN", lab->bin_dir, 1);
	}
	exec_cmd(lab, argv);
	return zm_error_set(e, errno, "%s: %s", argv[0], strerror(errno));
}

static int start_container(struct zm_lab *lab, struct zm_lab_pod *p,
			   struct zm_lab_container *c, struct zm_error *e)
{
	char log[PATH_MAX + 400];
	pid_t pid, *pids;

	snprintf(log, sizeof(log), "%s/logs/%s_%s.log", lab->state_dir, p->ns, p->name);
	pid = fork();
	if (pid < 0)
		return zm_error_set(e, errno, "fork: %s", strerror(errno));
	if (pid == 0) {
		struct zm_error ce = { 0 };

		zm_lab_child_stdio(log, true);
		if (enter(p->netns, p->cgroup, &ce)) {
			fprintf(stderr, "zmeshctl lab: %s\n", ce.msg);
			_exit(126);
		}
		set_pod_env(lab, p);
		for (size_t i = 0; i < c->nenv; i++)
			setenv(c->env[i].key, c->env[i].val, 1);
		exec_cmd(lab, c->argv);
		fprintf(stderr, "zmeshctl lab: %s: %s\n", c->argv[0], strerror(errno));
		_exit(127);
	}
	pids = realloc(p->pids, (p->npids + 1) * sizeof(*pids));
	if (!pids)
		return zm_error_set(e, ENOMEM, "out of memory");
	p->pids = pids;
	p->pids[p->npids++] = pid;
	return 0;
}

/* One ztunnel per node, in the node's netns and cgroup (hostNetwork, as a
 * DaemonSet pod would be), when this build has one. */
static int start_ztunnel(struct zm_lab *lab, struct zm_lab_node *n, struct zm_error *e)
{
	char bin[PATH_MAX + 16], log[PATH_MAX + 300];
	pid_t pid;

	snprintf(bin, sizeof(bin), "%s/ztunnel", lab->bin_dir);
	if (access(bin, X_OK) < 0)
		return 0;
	snprintf(log, sizeof(log), "%s/logs/ztunnel-%s.log", lab->state_dir, n->name);
	pid = fork();
	if (pid < 0)
		return zm_error_set(e, errno, "fork: %s", strerror(errno));
	if (pid == 0) {
		struct zm_error ce = { 0 };

		zm_lab_child_stdio(log, false);
		if (enter(n->netns, n->cgroup, &ce)) {
			fprintf(stderr, "zmeshctl lab: %s\n", ce.msg);
			_exit(126);
		}
		execl(bin, "ztunnel", "--node", n->name, "--lab", lab->name, (char *)NULL);
		_exit(127);
	}
	n->ztunnel_pid = pid;
	return 0;
}

/* Assign names and addresses (deterministic: from manifest order). */
static int plan(struct zm_lab *lab, struct zm_error *e)
{
	char cg[1024];
	uint32_t next_vip = (10u << 24) | (96u << 16) | 10u;
	int rc = zm_cgroup2_root(cg, sizeof(cg));
	int *podcount = calloc(lab->nnodes + 1, sizeof(int));

	if (!podcount)
		return zm_error_set(e, ENOMEM, "out of memory");
	if (rc) {
		free(podcount);
		return zm_error_set(e, -rc, "no cgroup v2 mount in /proc/mounts");
	}
	snprintf(lab->cgroup_root, sizeof(lab->cgroup_root), "%s/zmesh/%s", cg, lab->name);
	for (size_t i = 0; i < lab->nnodes; i++) {
		struct zm_lab_node *n = &lab->nodes[i];

		snprintf(n->netns, sizeof(n->netns), "zm-%s-%s", lab->name, n->name);
		snprintf(n->cgroup, sizeof(n->cgroup), "%.3000s/nodes/%s", lab->cgroup_root, n->name);
		n->underlay_ip = ip4(172, 30, 0, (unsigned)n->index + 1);
		n->pod_cidr = ip4(10, 244, (unsigned)n->index, 0);
		n->gateway = ip4(10, 244, (unsigned)n->index, 1);
	}
	for (size_t i = 0; i < lab->npods; i++) {
		struct zm_lab_pod *p = &lab->pods[i];
		struct zm_lab_node *n = zm_lab_node_find(lab, p->node);
		int k = podcount[n->index]++;

		snprintf(p->netns, sizeof(p->netns), "zm-%s-%s-%s", lab->name, p->ns, p->name);
		snprintf(p->cgroup, sizeof(p->cgroup), "%.3000s/pods/%s_%s", lab->cgroup_root, p->ns, p->name);
		snprintf(p->veth, sizeof(p->veth), "zp%d", k);
		p->ip = ip4(10, 244, (unsigned)n->index, (unsigned)k + 2);
	}
	free(podcount);
	for (size_t i = 0; i < lab->nservices; i++) {
		struct zm_lab_svc *s = &lab->services[i];
		bool taken;

		if (s->cluster_ip.s_addr)
			continue;
		do {
			taken = false;
			for (size_t j = 0; j < lab->nservices; j++)
				if (lab->services[j].cluster_ip.s_addr == htonl(next_vip))
					taken = true;
			if (taken)
				next_vip++;
		} while (taken);
		if ((next_vip & 0xffff) == 0xffff)
			return zm_error_set(e, ENOSPC, "service range 10.96.0.0/16 is full");
		s->cluster_ip.s_addr = htonl(next_vip++);
	}
	return 0;
}

static int self_dir(char *buf, size_t sz)
{
	ssize_t n = readlink("/proc/self/exe", buf, sz - 1);
	char *slash;

	if (n < 0)
		return -errno;
	buf[n] = 0;
	slash = strrchr(buf, '/');
	if (slash)
		*slash = 0;
	return 0;
}

/* The lab's config store, with the Istio objects of the cluster files: made
 * before any ztunnel starts, so proxies find their policy from the start. */
/* The store gets the Istio objects and the cluster (Namespaces, Nodes,
 * Pods, Services...) in one apply, before any proxy starts. */
static int make_store(struct zm_lab *lab, struct zm_error *e)
{
	return zm_lab_cluster_apply(lab, lab->config, NULL, e);
}

int zm_lab_up(struct zm_lab *lab, struct zm_error *e)
{
	char path[PATH_MAX + 32];
	int rc;

	rc = zm_lab_name_check(lab->name, e);
	if (rc)
		return rc;
	snprintf(lab->state_dir, sizeof(lab->state_dir), "%s/%s", ZM_LAB_STATE_ROOT, lab->name);
	snprintf(path, sizeof(path), "%s/state.json", lab->state_dir);
	if (access(path, F_OK) == 0)
		return zm_error_set(e, EEXIST, "lab %s is already up (zmeshctl lab down --name %s)",
				    lab->name, lab->name);
	if (!lab->bin_dir[0] && self_dir(lab->bin_dir, sizeof(lab->bin_dir)) < 0)
		return zm_error_set(e, errno, "/proc/self/exe: %s", strerror(errno));
	/* the ingress gateway pod, when there are Gateways and none is given */
	rc = zm_lab_gateway_plan(lab, e);
	if (!rc)
		rc = plan(lab, e);
	if (rc)
		return rc;
	/* Leftovers of a crashed lab of the same name would clash: clear them. */
	zm_lab_down(lab->name, NULL);
	snprintf(path, sizeof(path), "%s/logs", lab->state_dir);
	rc = zm_mkdir_p(path, 0755);
	if (rc) {
		zm_error_set(e, -rc, "%s: %s", path, strerror(-rc));
		goto fail;
	}
	/* The plan goes to disk before anything is made: `down` finds it all. */
	rc = zm_lab_save(lab, e);
	if (rc)
		goto fail;
	rc = make_store(lab, e);
	if (rc)
		goto fail;
	rc = build_underlay(lab, e);
	if (rc)
		goto fail;
	for (size_t i = 0; i < lab->nnodes; i++) {
		rc = zm_mkdir_p(lab->nodes[i].cgroup, 0755);
		if (rc) {
			zm_error_set(e, -rc, "%s: %s", lab->nodes[i].cgroup, strerror(-rc));
			goto fail;
		}
	}
	for (size_t i = 0; i < lab->npods && !rc; i++) {
		rc = build_pod(lab, &lab->pods[i], e);
		if (!rc)
			rc = write_hosts(lab, &lab->pods[i], e);
	}
	if (rc)
		goto fail;
	rc = build_services(lab, e);
	if (!rc)
		rc = zm_lab_outside_up(lab, e);
	if (rc)
		goto fail;
	/* Save before ztunnel starts: it reads the state to learn its pods. */
	rc = zm_lab_save(lab, e);
	/* The mesh CA, made once here so the ztunnels never race to create it. */
	if (!rc && !lab->no_mesh) {
		char cadir[PATH_MAX + 8];
		struct zm_ca *ca;

		snprintf(cadir, sizeof(cadir), "%s/ca", lab->state_dir);
		rc = zm_ca_open(cadir, &ca, e);
		zm_ca_free(ca);
		if (!rc)
			rc = zm_lab_start_zmeshd(lab, e);
	}
	/* Each node: its ztunnel, and the agent that enrols the node's pods
	 * into it over ZDS (the CNI node agent's role). */
	for (size_t i = 0; i < lab->nnodes && !rc && !lab->no_mesh && lab->mode == ZM_LAB_AMBIENT; i++) {
		rc = start_ztunnel(lab, &lab->nodes[i], e);
		if (!rc && lab->nodes[i].ztunnel_pid)
			rc = zm_lab_start_agent(lab, &lab->nodes[i], e);
	}
	if (!rc && !lab->no_mesh && lab->mode != ZM_LAB_AMBIENT)
		rc = zm_lab_sidecars_up(lab, e);
	for (size_t i = 0; i < lab->npods && !rc; i++)
		for (size_t c = 0; c < lab->pods[i].ncontainers && !rc; c++)
			rc = start_container(lab, &lab->pods[i], &lab->pods[i].containers[c], e);
	if (!rc)
		rc = zm_lab_save(lab, e);
	if (!rc)
		return 0;
fail:
	zm_lab_down(lab->name, NULL);
	return rc;
}

int zm_lab_grow(struct zm_lab *lab, size_t first_pod, size_t first_svc, struct zm_error *e)
{
	uint32_t next_vip = (10u << 24) | (96u << 16) | 10u;
	int rc = 0;

	if (!lab->bin_dir[0] && self_dir(lab->bin_dir, sizeof(lab->bin_dir)) < 0)
		return zm_error_set(e, errno, "/proc/self/exe: %s", strerror(errno));
	/* Plan the newcomers as `up` would have: the next address of their
	 * node (addresses are never reused while the lab is up). */
	for (size_t i = first_pod; i < lab->npods; i++) {
		struct zm_lab_pod *p = &lab->pods[i];
		struct zm_lab_node *n = zm_lab_node_find(lab, p->node);
		unsigned k = 0;

		if (!n)
			return zm_error_set(e, ENOENT, "pod %s/%s: no node %s", p->ns, p->name, p->node);
		for (size_t j = 0; j < i; j++)
			if (!strcmp(lab->pods[j].node, p->node))
				k++;
		if (k + 2 > 254)
			return zm_error_set(e, ENOSPC, "node %s has no pod address left", n->name);
		snprintf(p->netns, sizeof(p->netns), "zm-%s-%s-%s", lab->name, p->ns, p->name);
		snprintf(p->cgroup, sizeof(p->cgroup), "%.3000s/pods/%s_%s", lab->cgroup_root, p->ns, p->name);
		snprintf(p->veth, sizeof(p->veth), "zp%u", k);
		p->ip = ip4(10, 244, (unsigned)n->index, k + 2);
	}
	for (size_t i = first_svc; i < lab->nservices; i++) {
		bool taken;

		do {
			taken = false;
			for (size_t j = 0; j < lab->nservices; j++)
				if (lab->services[j].cluster_ip.s_addr == htonl(next_vip))
					taken = true;
			if (taken)
				next_vip++;
		} while (taken);
		lab->services[i].cluster_ip.s_addr = htonl(next_vip++);
	}
	/* On disk first, so `down` finds whatever gets made. */
	rc = zm_lab_save(lab, e);
	for (size_t i = first_pod; i < lab->npods && !rc; i++)
		rc = build_pod(lab, &lab->pods[i], e);
	/* Every pod's hosts file learns the new service names. */
	for (size_t i = 0; i < lab->npods && !rc; i++)
		rc = write_hosts(lab, &lab->pods[i], e);
	if (!rc)
		rc = build_services(lab, e);
	/* A new waypoint or gateway finds its zmeshd credential when it starts. */
	if (!rc)
		rc = zm_lab_mint_proxies(lab, e);
	for (size_t i = first_pod; i < lab->npods && !rc; i++)
		for (size_t c = 0; c < lab->pods[i].ncontainers && !rc; c++)
			rc = start_container(lab, &lab->pods[i], &lab->pods[i].containers[c], e);
	if (!rc)
		rc = zm_lab_save(lab, e);
	/* zmeshd pushes the newcomers from the store. */
	if (!rc)
		rc = zm_lab_cluster_apply(lab, NULL, NULL, e);
	return rc;
}

int zm_lab_make_netns(const char *name, struct zm_error *e)
{
	return make_netns(name, e);
}

int zm_lab_enter(const char *netns, const char *cgroup, struct zm_error *e)
{
	return enter(netns, cgroup, e);
}
