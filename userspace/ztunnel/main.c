// SPDX-License-Identifier: Apache-2.0
/* ztunnel: main loop, cluster refresh, health and metrics endpoints. */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ztunnel.h"
#include "zmesh/sock.h"

static volatile sig_atomic_t stop, reload;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		reload = 1;
	else
		stop = 1;
}

static const char usage[] =
	"usage: ztunnel --node NODE [--lab LAB] [--store DIR] [--fastpath on|off] [--cert-ttl DUR]\n"
	"               [--drain-timeout DUR] [--pool-idle DUR] [--zmeshd ADDR:PORT] [--workers N]\n"
	"               [--io epoll|uring]\n"
	"               [--log-level LEVEL]\n"
	"       ztunnel --sidecar NAMESPACE/POD [--lab LAB] [--workers N] [--log-level LEVEL]\n"
	"Runs in the node's network namespace (zmeshctl lab starts one per node),\n"
	"or with --sidecar in that pod's, behind iptables REDIRECT (lab up --mode sidecar).\n"
	"Environment: ZMESH_CERT_TTL (as --cert-ttl; default 24h, at least 1m),\n"
	"             ZMESH_POOL_IDLE (as --pool-idle; default 5m),\n"
	"             ZMESH_WORKERS (as --workers: worker threads, default one per online CPU),\n"
	"             ZMESH_IO (as --io: the workers' event loop, default uring).\n";

/* "24h", "90s": seconds in *out, or -EINVAL. */
static int seconds(const char *v, unsigned *out)
{
	int64_t ns;

	if (zm_duration_parse(v, &ns) || ns < 0 || ns / ZM_NS_PER_S > 365LL * 24 * 3600)
		return -EINVAL;
	*out = (unsigned)(ns / ZM_NS_PER_S);
	return 0;
}

static int http_listener(struct zt *z, struct zt_ev *ev, enum zt_kind kind, int port, unsigned flags)
{
	struct epoll_event e = { .events = EPOLLIN, .data.ptr = ev };
	int fd = zm_sock_listen_tcp(port, 64, ZM_SOCK_V4ONLY | flags);

	if (fd < 0)
		return fd;
	*ev = (struct zt_ev){ .kind = kind, .fd = fd };
	return epoll_ctl(z->ep, EPOLL_CTL_ADD, fd, &e) ? -errno : 0;
}

/* Tiny HTTP: one request per connection, answered at once. */
static void http_serve(struct zt *z, struct zt_ev *l, bool ready)
{
	char req[2048];
	struct timeval tv = { 0, 200000 };
	int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	n = recv(fd, req, sizeof(req) - 1, 0);
	req[n > 0 ? n : 0] = 0;
	if (l == &z->metrics && !strncmp(req, "GET /metrics", 12)) {
		zt_metrics_write(z, fd);
	} else if (l == &z->admin) {
		zt_admin_serve(z, fd, req);
	} else if (l == &z->ready && !strncmp(req, "GET /healthz/ready", 18)) {
		const char *r = ready ? "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nready\n" :
					"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 10\r\nConnection: close\r\n\r\nnot ready\n";

		(void)!write(fd, r, strlen(r));
	} else {
		static const char nf[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

		(void)!write(fd, nf, sizeof(nf) - 1);
	}
	close(fd);
}

int main(int argc, char **argv)
{
	struct zt *z = calloc(1, sizeof(*z));
	struct zm_error e = { 0 };
	struct sigaction sa = { .sa_handler = on_signal };
	const char *lab = getenv("ZMESH_LAB") ? getenv("ZMESH_LAB") : ZM_LAB_DEFAULT;
	const char *ttl = getenv("ZMESH_CERT_TTL"), *zmeshd = NULL, *sidecar = NULL;
	unsigned drain_s = 5;
	const char *idle = getenv("ZMESH_POOL_IDLE"), *workers = getenv("ZMESH_WORKERS");
	unsigned nworkers = zt_workers_default();
	const char *io = getenv("ZMESH_IO");
	int loop_kind = ZM_LOOP_URING;	/* DESIGN.md; epoll when the kernel refuses it */
	int64_t idle_ns;
	struct timespec last = { 0 }, drain_until = { 0 };
	int rc = 1;

	zm_log_init("ztunnel");
	if (!z)
		return 1;
	z->zds_listen.fd = z->zds_client.fd = -1;
	z->pool_idle_ms = 5 * 60 * 1000;	/* DESIGN.md: idle pooled connections close after 5 minutes */
	signal(SIGPIPE, SIG_IGN);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	for (int i = 1; i < argc; i += 2) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v) {
			fputs(usage, stderr);
			return 2;
		}
		if (!strcmp(argv[i], "--node"))
			snprintf(z->node, sizeof(z->node), "%s", v);
		else if (!strcmp(argv[i], "--sidecar"))
			sidecar = v;
		else if (!strcmp(argv[i], "--lab"))
			lab = v;
		else if (!strcmp(argv[i], "--cert-ttl"))
			ttl = v;
		else if (!strcmp(argv[i], "--drain-timeout") && !seconds(v, &drain_s))
			;
		else if (!strcmp(argv[i], "--zmeshd"))
			zmeshd = v;
		else if (!strcmp(argv[i], "--pool-idle"))
			idle = v;
		else if (!strcmp(argv[i], "--workers"))
			workers = v;
		else if (!strcmp(argv[i], "--io"))
			io = v;
		else if (!strcmp(argv[i], "--store"))
			snprintf(z->store_dir, sizeof(z->store_dir), "%s", v);
		else if (!strcmp(argv[i], "--fastpath"))
			z->fastpath = !strcmp(v, "on");
		else if (!strcmp(argv[i], "--log-level") && zm_log_level_parse(v) >= 0)
			zm_log_set_level((enum zm_log_level)zm_log_level_parse(v));
		else {
			fputs(usage, stderr);
			return 2;
		}
	}
	snprintf(z->lab, sizeof(z->lab), "%s", lab);
	if (!z->node[0] == !sidecar) {
		fputs(usage, stderr);
		return 2;
	}
	if (idle && (zm_duration_parse(idle, &idle_ns) || idle_ns < ZM_NS_PER_MS ||
		     idle_ns > 24LL * 3600 * ZM_NS_PER_S)) {
		fprintf(stderr, "ztunnel: pool idle timeout %s: want a duration from 1ms to 24h\n", idle);
		return 2;
	}
	if (workers && workers[0]) {
		char *end;
		unsigned long n = strtoul(workers, &end, 10);

		if (*end || n < 1 || n > ZT_MAX_WORKERS || workers[0] == '-') {
			fprintf(stderr, "ztunnel: workers %s: want a number from 1 to %d\n", workers, ZT_MAX_WORKERS);
			return 2;
		}
		nworkers = (unsigned)n;
	}
	if (io && io[0] && (loop_kind = zm_loop_kind_parse(io)) < 0) {
		fprintf(stderr, "ztunnel: io %s: want epoll or uring\n", io);
		return 2;
	}
	if (idle)
		z->pool_idle_ms = (unsigned)(idle_ns / ZM_NS_PER_MS);
	if (ttl && (seconds(ttl, &z->cert_ttl) || z->cert_ttl < ZM_CA_MIN_TTL)) {
		fprintf(stderr, "ztunnel: certificate TTL %s: want a duration of at least %us\n", ttl,
			ZM_CA_MIN_TTL);
		return 2;
	}
	zt_policy_init(z);
	z->ep = epoll_create1(EPOLL_CLOEXEC);
	if (zm_lab_load(z->lab, &z->state, &e)) {
		zm_log_error("%s", e.msg);
		goto out;
	}
	z->view = &z->state;
	if (sidecar && zt_sidecar_init(z, sidecar))
		goto out;
	z->me = zm_lab_node_find(&z->state, z->node);
	if (!z->me) {
		zm_log_error("no node %s in lab %s", z->node, z->lab);
		goto out;
	}
	snprintf(z->node_netns, sizeof(z->node_netns), "/run/netns/%s", z->me->netns);
	struct zm_bpf_opts bo = { .node = z->me->netns, .node_cgroup = z->me->cgroup };

	if (!sidecar && zm_bpf__open(&bo, &z->bpf, &e)) {
		zm_log_error("%s", e.msg);
		goto out;
	}
	if (z->bpf)
		zm_bpf__set_fastpath(z->bpf, z->fastpath);
	/* Enrolment arrives on the ZDS socket (the lab's node agent, or a
	 * CNI agent); until its first snapshot, readiness says no. */
	if (!sidecar && zt_zds_start(z))
		goto out;
	if (zt_xds_start(z, zmeshd) < 0)
		goto out;
	{
		char cadir[512];

		/* The lab's CA (made by `lab up`): zmeshd's role until zmeshd exists. */
		snprintf(cadir, sizeof(cadir), "%s/%s/ca", ZM_LAB_STATE_ROOT, z->lab);
		if (zm_ca_open(cadir, &z->ca, &e))
			zm_log_warn("no CA (%s): meshed traffic cannot use HBONE", e.msg);
	}
	if (http_listener(z, &z->metrics, ZT_HTTP_LISTEN, 15020, 0) ||
	    http_listener(z, &z->ready, ZT_HTTP_LISTEN, 15021, 0) ||
	    http_listener(z, &z->admin, ZT_HTTP_LISTEN, 15000, ZM_SOCK_LOOPBACK)) {
		zm_log_error("cannot listen on 15020/15021/15000: %s", strerror(errno));
		goto out;
	}
	if (zt_workers_start(z, nworkers, (enum zm_loop_kind)loop_kind))
		goto out;
	if (sidecar) {
		int err;

		zt_write_lock(z);
		err = zt_sidecar_enrol(z);
		zt_write_unlock(z);
		if (err)
			goto out;
	}
	if (sidecar)
		zm_log_info("sidecar of %s in lab %s", sidecar, z->lab);
	else
		zm_log_info("node %s of lab %s: fast path %s", z->node, z->lab, z->fastpath ? "on" : "off");
	for (unsigned iter = 0, quiet = 1, trimmed = 1;; iter++) {
		struct epoll_event ev[128];
		struct stat st;
		char path[512];
		int n;

		if (stop && !drain_until.tv_sec) {
			/* Drain: no new connections (the capture stays, so new
			 * ones are refused: closed, never open); live ones may
			 * finish until the deadline. */
			zt_write_lock(z);
			zt_pods_stop_listening(z);
			zt_tunnel_drain(z);
			zt_write_unlock(z);
			clock_gettime(CLOCK_MONOTONIC, &drain_until);
			drain_until.tv_sec += drain_s;
			zm_log_info("draining: %llu connections, up to %us", (unsigned long long)zt_conns_open(z),
				    drain_s);
		}
		if (stop) {
			struct timespec now;

			clock_gettime(CLOCK_MONOTONIC, &now);
			if (!zt_conns_open(z) || now.tv_sec >= drain_until.tv_sec) {
				if (zt_conns_open(z))
					zm_log_info("drain deadline: %llu connections cut",
						    (unsigned long long)zt_conns_open(z));
				break;
			}
		}
		if (reload)
			z->cfg_version = 0;	/* SIGHUP: read the config again too */
		zt_certs_tick(z);

		/* Policy before pods: a pod joins with its STRICT state known.
		 * With zmeshd, versions arrive on its stream instead. */
		if (!z->xds && zt_policy_reload(z) > 0) {
			zt_write_lock(z);
			zt_pods_restrict(z);
			zt_write_unlock(z);
		}
		zt_xds_process(z);
		/* The lab state tells about the cluster (services, other
		 * nodes' pods), not about enrolment (ZDS): re-read when it changes. */
		snprintf(path, sizeof(path), "%s/%s/state.json", ZM_LAB_STATE_ROOT, z->lab);
		/* Looked at when idle (every 200 ms) or every 256 busy wake-ups,
		 * not on each one: a stat() per wake-up was 6% of the syscalls
		 * under load. */
		if (!stop && (reload || ((quiet || !(iter & 255)) && stat(path, &st) == 0 &&
					 (st.st_mtim.tv_sec != last.tv_sec || st.st_mtim.tv_nsec != last.tv_nsec)))) {
			reload = 0;
			last = st.st_mtim;
			/* Shared state changes with the workers paused. */
			zt_write_lock(z);
			zt_cluster_reload(z);
			zt_write_unlock(z);
		}
		/* Idle again after traffic: hand the freed heap back to the
		 * kernel. glibc keeps it in each worker's arena otherwise, and
		 * the RSS of a node's ztunnel is what platform teams watch. */
		if (zt_conns_open(z)) {
			trimmed = 0;
		} else if (!trimmed) {
			malloc_trim(0);
			trimmed = 1;
		}
		n = epoll_wait(z->ep, ev, 128, 200);
		quiet = n <= 0;
		for (int i = 0; i < n; i++) {
			struct zt_ev *x = ev[i].data.ptr;

			/* Captured connections are the workers'. */
			switch (x->kind) {
			case ZT_XDS:
				zt_xds_process(z);
				break;
			case ZT_ZDS_LISTEN:
			case ZT_ZDS:
				/* Pods come and go with the workers paused. */
				zt_write_lock(z);
				zt_zds_event(z, x, ev[i].events);
				zt_write_unlock(z);
				break;
			case ZT_HTTP_LISTEN:
				/* Ready: a first enrolment snapshot is in, every pod can
				 * talk mTLS, not draining. */
				http_serve(z, x, z->enrolled_once && !stop && zt_certs_ready(z) &&
						   (!z->xds || z->pushed_once));
				break;
			default:
				break;
			}
		}
	}
	zm_log_info("stopping: listeners close, capture stays pinned");
	rc = 0;
out:
	zt_zds_stop(z);
	if (z->workers) {
		zt_write_lock(z);
		zt_pods_close(z);
		zt_write_unlock(z);
	}
	zt_workers_stop(z);
	zt_xds_stop(z);
	zm_bpf__close(z->bpf);
	zm_ca_free(z->ca);
	zm_lab_free(&z->state);
	zm_lab_free(&z->pushed);
	zt_policy_free(z);
	free(z);
	return rc;
}
