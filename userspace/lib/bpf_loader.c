// SPDX-License-Identifier: Apache-2.0
/* Load, attach, pin and re-use zmesh's BPF programs (see bpf_loader.h). */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <net/if.h>
#include <unistd.h>

#include "bpf/cgroup_connect.skel.h"
#include "bpf/inbound.skel.h"
#include "bpf/sk_msg.skel.h"
#include "bpf/sockops.skel.h"
#include "bpf/tc.skel.h"
#include "zmesh/bpf_loader.h"
#include "zmesh/fsutil.h"
#include "zmesh/netns.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

/* bpffs holds only pins and directories: what unenrolment needs to know of
 * a pod (its map keys, where its TC sits) is kept here, one file per pod. */
#define META_ROOT "/run/zmesh/bpf"

struct zm_bpf {
	char dir[PATH_MAX];
	char meta[PATH_MAX];
	struct cgroup_connect *cc;
	struct sockops *so;
	struct sk_msg *sm;
	struct inbound *in;
	struct tc *tc;
};

/* What we need, and since when (for the error message). */
static const struct {
	enum bpf_prog_type type;
	const char *what, *kernel;
} prog_features[] = {
	{ BPF_PROG_TYPE_CGROUP_SOCK_ADDR, "cgroup sock_addr hooks (connect4, getpeername4)", "5.8" },
	{ BPF_PROG_TYPE_SOCK_OPS, "sockops", "4.13" },
	{ BPF_PROG_TYPE_SK_MSG, "sk_msg", "4.17" },
	{ BPF_PROG_TYPE_SK_LOOKUP, "sk_lookup (inbound capture)", "5.9" },
};

static int probe(struct zm_error *e)
{
	struct utsname u;
	int major = 0, minor = 0;

	for (size_t i = 0; i < sizeof(prog_features) / sizeof(prog_features[0]); i++)
		if (libbpf_probe_bpf_prog_type(prog_features[i].type, NULL) != 1)
			return zm_error_set(e, EOPNOTSUPP,
					    "this kernel has no BPF %s: zmesh needs Linux %s or later",
					    prog_features[i].what, prog_features[i].kernel);
	if (libbpf_probe_bpf_map_type(BPF_MAP_TYPE_SK_STORAGE, NULL) != 1)
		return zm_error_set(e, EOPNOTSUPP, "this kernel has no BPF socket storage: zmesh needs Linux 5.2 or later");
	/* Netns cookies in sk_msg came later than the program types. */
	if (uname(&u) == 0 && sscanf(u.release, "%d.%d", &major, &minor) == 2 &&
	    (major < 5 || (major == 5 && minor < 15)))
		return zm_error_set(e, EOPNOTSUPP,
				    "kernel %s has no bpf_get_netns_cookie() in sk_msg: zmesh needs Linux 5.15 or later",
				    u.release);
	return 0;
}

static bool id_ok(const char *id)
{
	if (!id || !id[0] || strlen(id) > 200 || id[0] == '.')
		return false;
	for (const char *p = id; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.'))
			return false;
	return true;
}

/* Attach @prog to cgroup @cgfd and pin the link at @path, unless a link is
 * already pinned there (then the attachment stands: nothing to do). */
static int attach_cgroup_pinned(struct bpf_program *prog, int cgfd, const char *path)
{
	struct bpf_link *link;
	int rc;

	if (access(path, F_OK) == 0)
		return 0;
	link = bpf_program__attach_cgroup(prog, cgfd);
	if (!link)
		return -errno;
	rc = bpf_link__pin(link, path);
	bpf_link__destroy(link);	/* the pin keeps it attached */
	return rc;
}

int zm_bpf__open(const struct zm_bpf_opts *o, struct zm_bpf **out, struct zm_error *e)
{
	const char *root = o->pin_root ? o->pin_root : ZM_BPF_PIN_ROOT;
	uint16_t outp = o->outbound_port ? o->outbound_port : 15001;
	uint16_t hbp = o->hbone_port ? o->hbone_port : 15008;
	struct zm_bpf *b;
	char path[PATH_MAX + 64];
	int rc, cgfd;

	*out = NULL;
	if (!o->node || !id_ok(o->node))
		return zm_error_set(e, EINVAL, "bpf: invalid node name");
	rc = probe(e);
	if (rc)
		return rc;
	b = calloc(1, sizeof(*b));
	if (!b)
		return zm_error_set(e, ENOMEM, "out of memory");
	snprintf(b->dir, sizeof(b->dir), "%s/%s", root, o->node);
	snprintf(b->meta, sizeof(b->meta), "%s/%s", META_ROOT, o->node);
	rc = zm_mkdir_p(b->meta, 0700);
	if (rc) {
		zm_error_set(e, -rc, "%s: %s", b->meta, strerror(-rc));
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/pods", b->dir);
	rc = zm_mkdir_p(path, 0700);
	if (rc) {
		zm_error_set(e, -rc, "%s: %s (is bpffs mounted at /sys/fs/bpf?)", path, strerror(-rc));
		goto fail;
	}
	LIBBPF_OPTS(bpf_object_open_opts, oo, .pin_root_path = b->dir);

	b->cc = cgroup_connect__open_opts(&oo);
	b->so = sockops__open_opts(&oo);
	b->sm = sk_msg__open_opts(&oo);
	b->in = inbound__open_opts(&oo);
	b->tc = tc__open_opts(&oo);
	if (!b->cc || !b->so || !b->sm || !b->in || !b->tc) {
		rc = zm_error_set(e, errno ? errno : ENOMEM, "bpf: open objects: %s", strerror(errno));
		goto fail;
	}
	b->cc->rodata->outbound_port = outp;
	b->so->rodata->outbound_port = outp;
	b->in->rodata->hbone_port = hbp;
	b->tc->rodata->hbone_port = hbp;
	/* The first load creates and pins the maps; the rest reuse the pins. */
	if ((rc = cgroup_connect__load(b->cc)) || (rc = sockops__load(b->so)) ||
	    (rc = sk_msg__load(b->sm)) || (rc = inbound__load(b->in)) || (rc = tc__load(b->tc))) {
		zm_error_set(e, -rc, "bpf: load: %s (run with -v or see the kernel verifier log)",
			     strerror(-rc));
		goto fail;
	}
	/* sk_msg hangs off the sockhash itself; re-attaching replaces it. */
	rc = bpf_prog_attach(bpf_program__fd(b->sm->progs.zm_sk_msg),
			     bpf_map__fd(b->sm->maps.zm_sockhash), BPF_SK_MSG_VERDICT, 0);
	if (rc) {
		rc = zm_error_set(e, errno, "bpf: attach sk_msg to the sockhash: %s", strerror(errno));
		goto fail;
	}
	if (o->node_cgroup) {
		cgfd = open(o->node_cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (cgfd < 0) {
			rc = zm_error_set(e, errno, "%s: %s", o->node_cgroup, strerror(errno));
			goto fail;
		}
		snprintf(path, sizeof(path), "%s/node_sockops", b->dir);
		rc = attach_cgroup_pinned(b->so->progs.zm_sockops, cgfd, path);
		close(cgfd);
		if (rc) {
			zm_error_set(e, -rc, "bpf: sockops on %s: %s", o->node_cgroup, strerror(-rc));
			goto fail;
		}
	}
	*out = b;
	return 0;
fail:
	zm_bpf__close(b);
	return rc < 0 ? rc : -rc;
}

void zm_bpf__close(struct zm_bpf *b)
{
	if (!b)
		return;
	cgroup_connect__destroy(b->cc);
	sockops__destroy(b->so);
	sk_msg__destroy(b->sm);
	inbound__destroy(b->in);
	tc__destroy(b->tc);
	free(b);
}

static uint64_t cgroup_id(const char *path)
{
	struct {
		struct file_handle fh;
		uint64_t id;
	} h = { .fh.handle_bytes = sizeof(uint64_t) };
	int mount_id;

	if (name_to_handle_at(AT_FDCWD, path, &h.fh, &mount_id, 0) < 0)
		return 0;
	return h.id;
}

/* clsact on @ifname in netns @netns: to-pod on egress, from-pod on ingress.
 * @attach false removes the qdisc (and so both programs). */
static int tc_setup(struct zm_bpf *b, const char *netns, const char *ifname, bool attach)
{
	int nsfd = open(netns, O_RDONLY | O_CLOEXEC), saved, rc, ifindex;

	if (nsfd < 0)
		return -errno;
	rc = zm_netns_enter_fd(nsfd, &saved);
	close(nsfd);
	if (rc)
		return rc;
	ifindex = (int)if_nametoindex(ifname);
	if (!ifindex) {
		rc = -ENODEV;
		goto out;
	}
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
		    .attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS);
	if (!attach) {
		rc = bpf_tc_hook_destroy(&hook);
		goto out;
	}
	rc = bpf_tc_hook_create(&hook);
	if (rc && rc != -EEXIST)
		goto out;
	LIBBPF_OPTS(bpf_tc_opts, eg, .prog_fd = bpf_program__fd(b->tc->progs.zm_tc_to_pod));
	LIBBPF_OPTS(bpf_tc_opts, in, .prog_fd = bpf_program__fd(b->tc->progs.zm_tc_from_pod));
	hook.attach_point = BPF_TC_EGRESS;
	eg.flags = BPF_TC_F_REPLACE;
	rc = bpf_tc_attach(&hook, &eg);
	if (!rc) {
		hook.attach_point = BPF_TC_INGRESS;
		in.flags = BPF_TC_F_REPLACE;
		rc = bpf_tc_attach(&hook, &in);
	}
out:
	zm_netns_restore(saved);
	return rc;
}

int zm_bpf__enroll(struct zm_bpf *b, const struct zm_bpf_pod *p, struct zm_error *e)
{
	char dir[PATH_MAX + 256], path[PATH_MAX + 300];
	struct zm_pod_cfg cfg = { .flags = ZM_POD_ENROLLED, .pod_ip = p->ip.s_addr };
	uint32_t flags;
	uint64_t cg;
	int cgfd = -1, nsfd = -1, rc;

	if (!id_ok(p->id))
		return zm_error_set(e, EINVAL, "bpf: invalid pod id");
	if (p->strict)
		cfg.flags |= ZM_POD_STRICT;
	flags = cfg.flags;
	cg = cgroup_id(p->cgroup);
	if (!cg)
		return zm_error_set(e, errno, "%s: cannot read the cgroup id: %s", p->cgroup, strerror(errno));
	snprintf(dir, sizeof(dir), "%s/pods/%s", b->dir, p->id);
	rc = zm_mkdir_p(dir, 0700);
	if (rc)
		return zm_error_set(e, -rc, "%s: %s", dir, strerror(-rc));
	/* Mark first: the programs check the map, so capture starts with the
	 * first attached hook and not half-way. */
	if (bpf_map_update_elem(bpf_map__fd(b->cc->maps.zm_pods), &cg, &cfg, BPF_ANY) ||
	    bpf_map_update_elem(bpf_map__fd(b->cc->maps.zm_pod_ips), &cfg.pod_ip, &flags, BPF_ANY)) {
		rc = zm_error_set(e, errno, "bpf: zm_pods update: %s", strerror(errno));
		goto out;
	}
	snprintf(path, sizeof(path), "%s/%s", b->meta, p->id);
	{
		FILE *f = fopen(path, "we");

		/* Unenrolment needs the keys, maybe in another process. */
		if (!f) {
			rc = zm_error_set(e, errno, "%s: %s", path, strerror(errno));
			goto out;
		}
		fprintf(f, "%llu %u %s %s\n", (unsigned long long)cg, cfg.pod_ip,
			p->node_netns && p->host_veth ? p->node_netns : "-",
			p->node_netns && p->host_veth ? p->host_veth : "-");
		fclose(f);
	}
	cgfd = open(p->cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cgfd < 0) {
		rc = zm_error_set(e, errno, "%s: %s", p->cgroup, strerror(errno));
		goto out;
	}
	snprintf(path, sizeof(path), "%s/connect4", dir);
	rc = attach_cgroup_pinned(b->cc->progs.zm_connect4, cgfd, path);
	if (!rc) {
		snprintf(path, sizeof(path), "%s/connect6", dir);
		rc = attach_cgroup_pinned(b->cc->progs.zm_connect6, cgfd, path);
	}
	if (!rc) {
		snprintf(path, sizeof(path), "%s/getpeername4", dir);
		rc = attach_cgroup_pinned(b->cc->progs.zm_getpeername4, cgfd, path);
	}
	if (!rc) {
		snprintf(path, sizeof(path), "%s/getpeername6", dir);
		rc = attach_cgroup_pinned(b->cc->progs.zm_getpeername6, cgfd, path);
	}
	if (!rc) {
		snprintf(path, sizeof(path), "%s/sockops", dir);
		rc = attach_cgroup_pinned(b->so->progs.zm_sockops, cgfd, path);
	}
	if (rc) {
		zm_error_set(e, -rc, "bpf: attach to %s: %s", p->cgroup, strerror(-rc));
		goto out;
	}
	if (p->node_netns && p->host_veth) {
		struct zm_pod_stats zero = { 0 };

		bpf_map_update_elem(bpf_map__fd(b->tc->maps.zm_pod_stats), &cfg.pod_ip, &zero, BPF_NOEXIST);
		rc = tc_setup(b, p->node_netns, p->host_veth, true);
		if (rc) {
			zm_error_set(e, -rc, "bpf: TC on %s in %s: %s", p->host_veth, p->node_netns,
				     strerror(-rc));
			goto out;
		}
	}
	snprintf(path, sizeof(path), "%s/sk_lookup", dir);
	if (p->netns && access(path, F_OK) < 0) {
		struct bpf_link *link;

		nsfd = open(p->netns, O_RDONLY | O_CLOEXEC);
		if (nsfd < 0) {
			rc = zm_error_set(e, errno, "%s: %s", p->netns, strerror(errno));
			goto out;
		}
		link = bpf_program__attach_netns(b->in->progs.zm_sk_lookup, nsfd);
		if (!link) {
			rc = zm_error_set(e, errno, "bpf: sk_lookup in %s: %s", p->netns, strerror(errno));
			goto out;
		}
		rc = bpf_link__pin(link, path);
		bpf_link__destroy(link);
		if (rc) {
			zm_error_set(e, -rc, "bpf: pin %s: %s", path, strerror(-rc));
			goto out;
		}
	}
out:
	if (cgfd >= 0)
		close(cgfd);
	if (nsfd >= 0)
		close(nsfd);
	if (rc)
		zm_bpf__unenroll(b, p->id, NULL);
	return rc;
}

/* Unpin one link: with no pin and no fd left, the kernel detaches it. */
static void unpin(const char *path)
{
	struct bpf_link *link;

	if (access(path, F_OK) < 0)
		return;
	link = bpf_link__open(path);

	if (link) {
		bpf_link__unpin(link);
		bpf_link__destroy(link);
	}
	unlink(path);
}

/* Undo an enrolment: map entries first (new connects go direct at once),
 * then the links (unpinned, so detached) and TC. @meta is the pod's file. */
static int unenroll_dir(const char *dir, const char *meta, int pods_fd, int ips_fd)
{
	static const char *const links[] = { "connect4", "connect6", "getpeername4", "getpeername6",
					     "sockops", "sk_lookup" };
	char path[PATH_MAX + 300], netns[PATH_MAX], ifname[IF_NAMESIZE + 1];
	unsigned long long cg = 0;
	unsigned ip = 0;
	int fields = 0;
	FILE *f = fopen(meta, "re");

	if (f) {
		fields = fscanf(f, "%llu %u %4095s %16s", &cg, &ip, netns, ifname);
		fclose(f);
	}
	if (fields >= 2) {
		uint64_t key = cg;
		uint32_t k2 = ip;

		if (pods_fd >= 0)
			bpf_map_delete_elem(pods_fd, &key);
		if (ips_fd >= 0)
			bpf_map_delete_elem(ips_fd, &k2);
	}
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, links[i]);
		unpin(path);
	}
	/* The veth may be gone already (lab down): nothing to detach then. */
	if (fields == 4 && strcmp(netns, "-"))
		tc_setup(NULL, netns, ifname, false);
	unlink(meta);
	return rmdir(dir) < 0 && errno != ENOENT ? -errno : 0;
}

int zm_bpf__unenroll(struct zm_bpf *b, const char *id, struct zm_error *e)
{
	char dir[PATH_MAX + 256], meta[PATH_MAX + 256];
	int rc;

	if (!id_ok(id))
		return zm_error_set(e, EINVAL, "bpf: invalid pod id");
	snprintf(dir, sizeof(dir), "%s/pods/%s", b->dir, id);
	snprintf(meta, sizeof(meta), "%s/%s", b->meta, id);
	rc = unenroll_dir(dir, meta, bpf_map__fd(b->cc->maps.zm_pods), bpf_map__fd(b->cc->maps.zm_pod_ips));
	if (rc)
		return zm_error_set(e, -rc, "%s: %s", dir, strerror(-rc));
	return 0;
}

int zm_bpf__list(const char *pin_root, const char *node, char ***ids, size_t *n)
{
	char path[PATH_MAX];
	DIR *d;
	struct dirent *de;

	*ids = NULL;
	*n = 0;
	snprintf(path, sizeof(path), "%s/%s/pods", pin_root ? pin_root : ZM_BPF_PIN_ROOT, node);
	d = opendir(path);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		char **more;

		if (de->d_name[0] == '.')
			continue;
		more = realloc(*ids, (*n + 1) * sizeof(*more));
		if (!more)
			break;
		*ids = more;
		(*ids)[*n] = strdup(de->d_name);
		if ((*ids)[*n])
			(*n)++;
	}
	closedir(d);
	return 0;
}

void zm_bpf__free_ids(char **ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

int zm_bpf__destroy(const char *pin_root, const char *node, struct zm_error *e)
{
	static const char *const maps[] = { "zm_pods", "zm_orig_sk", "zm_orig_dst", "zm_sockhash",
					    "zm_listeners", "zm_config", "zm_counters", "zm_pod_ips", "zm_fastpath_sks",
					    "zm_pod_stats" };
	char dir[PATH_MAX], path[PATH_MAX + 300];
	char **ids;
	size_t n;

	if (!id_ok(node))
		return zm_error_set(e, EINVAL, "bpf: invalid node name");
	snprintf(dir, sizeof(dir), "%s/%s", pin_root ? pin_root : ZM_BPF_PIN_ROOT, node);
	if (access(dir, F_OK) < 0)
		return 0;
	zm_bpf__list(pin_root, node, &ids, &n);
	for (size_t i = 0; i < n; i++) {
		char meta[PATH_MAX + 300];

		snprintf(path, sizeof(path), "%s/pods/%s", dir, ids[i]);
		snprintf(meta, sizeof(meta), "%s/%s/%s", META_ROOT, node, ids[i]);
		unenroll_dir(path, meta, -1, -1);
	}
	snprintf(path, sizeof(path), "%s/%s", META_ROOT, node);
	zm_rm_rf(path);
	zm_bpf__free_ids(ids, n);
	snprintf(path, sizeof(path), "%s/pods", dir);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/node_sockops", dir);
	unpin(path);
	for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, maps[i]);
		unlink(path);
	}
	if (rmdir(dir) < 0 && errno != ENOENT)
		return zm_error_set(e, errno, "%s: %s (something else is pinned there)", dir,
				    strerror(errno));
	return 0;
}

int zm_bpf__set_listener(struct zm_bpf *b, struct in_addr pod_ip, enum zm_listener_kind kind,
			 int fd)
{
	struct zm_listener_key key = { .pod_ip = pod_ip.s_addr, .kind = kind };
	uint64_t val = (uint64_t)fd;

	return bpf_map_update_elem(bpf_map__fd(b->in->maps.zm_listeners), &key, &val, BPF_ANY) ?
		       -errno : 0;
}

int zm_bpf__orig_dst(struct zm_bpf *b, int fd, struct sockaddr_in *out)
{
	struct zm_orig_key key = { 0 };
	struct zm_orig orig;
	struct sockaddr_in peer;
	socklen_t len = sizeof(key.netns_cookie), plen = sizeof(peer);

	if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &key.netns_cookie, &len) < 0)
		return -errno;
	if (getpeername(fd, (struct sockaddr *)&peer, &plen) < 0)
		return -errno;
	if (peer.sin_family != AF_INET)
		return -EAFNOSUPPORT;
	key.port = ntohs(peer.sin_port);
	if (bpf_map_lookup_elem(bpf_map__fd(b->so->maps.zm_orig_dst), &key, &orig))
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	out->sin_family = AF_INET;
	out->sin_addr.s_addr = orig.ip;
	out->sin_port = orig.port;
	return 0;
}

int zm_bpf__pod_stats(struct zm_bpf *b, struct in_addr ip, struct zm_pod_stats *out)
{
	return bpf_map_lookup_elem(bpf_map__fd(b->tc->maps.zm_pod_stats), &ip.s_addr, out) ? -errno : 0;
}

int zm_bpf__set_fastpath(struct zm_bpf *b, bool on)
{
	struct zm_config cfg = { .fastpath = on };
	uint32_t zero = 0;

	return bpf_map_update_elem(bpf_map__fd(b->so->maps.zm_config), &zero, &cfg, BPF_ANY) ?
		       -errno : 0;
}

static int sum_counters(int fd, struct zm_counters *sum)
{
	int ncpu = libbpf_num_possible_cpus();
	struct zm_counters *per;
	uint32_t zero = 0;

	if (ncpu <= 0)
		return -EINVAL;
	per = calloc((size_t)ncpu, sizeof(*per));
	if (!per)
		return -ENOMEM;
	memset(sum, 0, sizeof(*sum));
	if (bpf_map_lookup_elem(fd, &zero, per)) {
		free(per);
		return -errno;
	}
	for (int i = 0; i < ncpu; i++) {
		sum->redirected += per[i].redirected;
		sum->passthrough += per[i].passthrough;
		sum->inbound += per[i].inbound;
		sum->inbound_drop += per[i].inbound_drop;
		sum->fastpath_msgs += per[i].fastpath_msgs;
		sum->fastpath_bytes += per[i].fastpath_bytes;
		sum->orig_dst_saved += per[i].orig_dst_saved;
		sum->fastpath_full += per[i].fastpath_full;
		sum->fastpath_fallback += per[i].fastpath_fallback;
		sum->fastpath_blocking += per[i].fastpath_blocking;
	}
	free(per);
	return 0;
}

int zm_bpf__counters(struct zm_bpf *b, struct zm_counters *sum)
{
	return sum_counters(bpf_map__fd(b->cc->maps.zm_counters), sum);
}

int zm_bpf_pins_counters(const char *pin_root, const char *node, struct zm_counters *sum)
{
	char path[PATH_MAX];
	int fd, rc;

	snprintf(path, sizeof(path), "%s/%s/zm_counters", pin_root ? pin_root : ZM_BPF_PIN_ROOT, node);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -errno;
	rc = sum_counters(fd, sum);
	close(fd);
	return rc;
}
