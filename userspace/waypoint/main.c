// SPDX-License-Identifier: Apache-2.0
/*
 * waypoint: command line, config snapshots (from zmeshd's stream, xds.c, or
 * from files loaded at start, on change and on SIGHUP; a bad config keeps
 * the last good one), listeners and the accept loop.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zmesh/config.h"
#include "zmesh/lab.h"
#include "zmesh/log.h"
#include "zmesh/nodeid.h"
#include "zmesh/sock.h"
#include "zmesh/store.h"
#include "waypoint.h"

const struct wp_opts *wp_options;
static struct wp_snap *cur;
static pthread_mutex_t snap_mu = PTHREAD_MUTEX_INITIALIZER;
static volatile sig_atomic_t reload_wanted, stop_wanted;
static atomic_int jwks_changed;

static void on_jwks_change(void)
{
	atomic_store(&jwks_changed, 1);
}

struct wp_snap *wp_snap_get(void)
{
	struct wp_snap *s;

	pthread_mutex_lock(&snap_mu);
	s = cur;
	if (s)
		atomic_fetch_add(&s->ref, 1);
	pthread_mutex_unlock(&snap_mu);
	return s;
}

void wp_snap_put(struct wp_snap *s)
{
	if (!s || atomic_fetch_sub(&s->ref, 1) != 1)
		return;
	zm_l7_put(s->l7);
	if (s->have_lab)
		zm_lab_free(&s->lab);
	free(s);
}

/* A store directory (<dir>/current -> gen-N) or plain manifests. */
static int load_config(const char *path, struct zm_cfg_set *set, uint64_t *version)
{
	char cur_path[PATH_MAX], target[64];
	struct stat st;
	ssize_t n;

	*version = 0;
	if (!path)
		return 0;
	snprintf(cur_path, sizeof(cur_path), "%s/current", path);
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode) && lstat(cur_path, &st) == 0) {
		n = readlink(cur_path, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = '\0';
			if (!strncmp(target, "gen-", 4))
				*version = strtoull(target + 4, NULL, 10);
		}
		return zm_cfg_load_path(set, cur_path);
	}
	return zm_cfg_load_path(set, path);
}

int wp_build(const struct wp_opts *o, struct zm_cfg_set *set, uint64_t version, char *why, size_t whysz)
{
	struct wp_snap *s = calloc(1, sizeof(*s)), *old;
	struct zm_l7_view view = { 0 };
	struct zm_l7_opts lo = { .waypoint_name = o->name, .path_set = true,
				 .path = zm_path_opts_istio(o->path_norm), .jwks_uri = wp_jwks_get };
	struct zm_error e = { "" };
	struct gw_set *gw = NULL;
	int rc;

	if (!s)
		return -ENOMEM;
	atomic_init(&s->ref, 1);
	s->version = version;
	rc = zm_cfg_validate(set, NULL);
	if (rc) {
		zm_cfg_sort_errors(set);
		for (size_t i = 0; i < set->nerrs && i < 20; i++)
			zm_log_error("config: %s", set->errs[i].text);
		snprintf(why, whysz, "%s", set->nerrs ? set->errs[0].text : "config does not validate");
		goto fail;
	}
	/* jwksUri documents come from the fetch thread; ask for every one in use */
	for (size_t i = 0; i < set->nobjs; i++) {
		const struct zm_cfg_obj *ob = set->objs[i];

		if (ob->kind != ZM_K_REQUESTAUTHENTICATION)
			continue;
		for (size_t j = 0; j < ob->ra->jwt_rules.n; j++)
			if (ob->ra->jwt_rules.v[j].jwks_uri.v && !ob->ra->jwt_rules.v[j].jwks.v)
				wp_jwks_want(ob->ra->jwt_rules.v[j].jwks_uri.v);
	}
	if (wp_xds_on()) {
		/* zmeshd pushes the workloads with the config: the services,
		 * endpoints and pods come from this version, not the lab state. */
		rc = zm_lab_cluster_from_cfg(set, &s->lab, &e);
		if (rc) {
			zm_log_error("config: %s", e.msg);
			snprintf(why, whysz, "%s", e.msg);
			goto fail;
		}
		s->have_lab = true;
		rc = zm_l7_view_from_lab(&s->lab, &view);
		if (rc) {
			snprintf(why, whysz, "service view: %s", strerror(-rc));
			goto fail;
		}
	} else if (o->lab) {
		rc = zm_lab_load(o->lab, &s->lab, &e);
		if (rc) {
			zm_log_error("lab %s: %s", o->lab, e.msg);
			snprintf(why, whysz, "lab %s: %s", o->lab, e.msg);
			goto fail;
		}
		s->have_lab = true;
		rc = zm_l7_view_from_lab(&s->lab, &view);
		if (rc) {
			snprintf(why, whysz, "lab %s: service view: %s", o->lab, strerror(-rc));
			goto fail;
		}
	}
	if (o->gateway) {
		/* before the engine takes the objects: Gateways and Secrets */
		rc = wp_gw_build(set, &gw);
		if (rc) {
			snprintf(why, whysz, "gateway: %s", strerror(-rc));
			goto fail;
		}
		lo.gateways = wp_gw_keys(gw, &lo.ngateways);
		lo.gw_hosts = wp_gw_hosts(gw, &lo.ngw_hosts);
		lo.self_ns = o->gateway_ns;
		lo.self_labels = &o->gateway_labels;
	}
	rc = zm_l7_build(set, &view, &lo, &s->l7, &e);
	if (rc) {
		zm_log_error("config: %s; keeping the last good one", e.msg);
		snprintf(why, whysz, "%s", e.msg);
		goto fail;
	}
	if (gw)
		wp_gw_publish(gw);
	pthread_mutex_lock(&snap_mu);
	old = cur;
	cur = s;
	pthread_mutex_unlock(&snap_mu);
	wp_snap_put(old);
	zm_log_info("config loaded (version %llu, %zu services)", (unsigned long long)s->version,
		    s->have_lab ? s->lab.nservices : 0);
	return 0;
fail:
	wp_gw_put(gw);
	zm_l7_view_free(&view);
	wp_snap_put(s);
	return rc ? rc : -EINVAL;
}

int wp_reload(const struct wp_opts *o)
{
	struct zm_cfg_set set;
	uint64_t version;
	char why[ZM_ERROR_MAX];
	int rc;

	/* With zmeshd the config is its last accepted version, not files. */
	if (wp_xds_on())
		return wp_xds_rebuild();
	zm_cfg_set_init(&set);
	rc = load_config(o->config, &set, &version);
	if (rc) {
		zm_cfg_sort_errors(&set);
		for (size_t i = 0; i < set.nerrs && i < 20; i++)
			zm_log_error("config: %s", set.errs[i].text);
	} else {
		rc = wp_build(o, &set, version, why, sizeof(why));
	}
	if (rc)
		zm_log_error("config %s rejected (%zu errors); keeping the last good one", o->config ? o->config : "",
			     set.nerrs);
	zm_cfg_set_free(&set);
	return rc;
}

static void on_hup(int sig)
{
	(void)sig;
	reload_wanted = 1;
}

static void on_term(int sig)
{
	(void)sig;
	stop_wanted = 1;
}

int wp_listen(const char *spec)
{
	char host[128] = "0.0.0.0";
	const char *colon = strrchr(spec, ':');
	int port, fd, one = 1;
	struct sockaddr_in sa = { .sin_family = AF_INET };

	if (colon) {
		snprintf(host, sizeof(host), "%.*s", (int)(colon - spec), spec);
		port = atoi(colon + 1);
	} else {
		port = atoi(spec);
	}
	if (!host[0])
		snprintf(host, sizeof(host), "0.0.0.0");
	if (port <= 0 || port > 65535 || inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -EINVAL;
	sa.sin_port = htons((uint16_t)port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1024) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/*
 * Watch the config for changes (store.h: writers swap <dir>/current by
 * rename): the directory itself, or the directory holding the file. Any
 * event there means "reload"; a reload that fails keeps the last good
 * config, so a spurious or half-written change costs nothing. -1 when off.
 */
static int watch_config(const char *path)
{
	char dir[PATH_MAX];
	struct stat st;
	int fd;

	if (!path || stat(path, &st))
		return -1;
	snprintf(dir, sizeof(dir), "%s", path);
	fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd < 0)
		return -1;
	if (inotify_add_watch(fd, S_ISDIR(st.st_mode) ? path : dirname(dir),
			      IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int start_admin(int port)
{
	char spec[32];
	int fd;
	pthread_t th;

	if (!port)
		return 0;
	snprintf(spec, sizeof(spec), "0.0.0.0:%d", port);
	fd = wp_listen(spec);
	if (fd < 0)
		return fd;
	if (pthread_create(&th, NULL, wp_admin_thread, (void *)(intptr_t)fd)) {
		close(fd);
		return -EAGAIN;
	}
	pthread_detach(th);
	return 0;
}

/* The workload identity: --identity NS/SA, else the pod's namespace and service account. */
static void identity(const struct wp_opts *o, char *ns, size_t nssz, char *sa, size_t sasz)
{
	const char *id = o->identity, *slash;

	if (id && (slash = strchr(id, '/'))) {
		snprintf(ns, nssz, "%.*s", (int)(slash - id), id);
		snprintf(sa, sasz, "%s", slash + 1);
	} else {
		snprintf(ns, nssz, "%s", getenv("POD_NAMESPACE") ? getenv("POD_NAMESPACE") : "default");
		snprintf(sa, sasz, "%s", getenv("POD_SERVICE_ACCOUNT") ? getenv("POD_SERVICE_ACCOUNT") : o->name);
	}
}

/*
 * Follow zmeshd when told (--zmeshd) or when the lab minted a credential
 * for this proxy (zm_lab_mint_proxies: the lab runs zmeshd); then wait for
 * the first config and the certificate before serving, as Istio's proxies
 * wait for istiod. 0: no zmeshd (files), 1: following it, <0: error.
 */
static int start_zmeshd(const struct wp_opts *o, const char *server, const char *cred, const char *ns,
			const char *sa)
{
	char dir[PATH_MAX], probe[PATH_MAX + 32];
	long waited = 0;
	int rc;

	if (cred)
		snprintf(dir, sizeof(dir), "%s", cred);
	else if (o->lab)
		snprintf(dir, sizeof(dir), "%s/%s/" ZM_LAB_PROXIES "/%s/%s", ZM_LAB_STATE_ROOT, o->lab, ns, sa);
	else
		return server ? -EINVAL : 0;
	snprintf(probe, sizeof(probe), "%s/" ZM_NODE_CERT_FILE, dir);
	if (!server) {
		if (access(probe, R_OK) < 0)
			return 0;	/* no control plane for this proxy: the store files */
		server = ZM_LAB_ZMESHD_ADDR ":15012";
	}
	rc = wp_xds_start(o, server, dir, ns, sa);
	if (rc)
		return rc;
	while (!wp_xds_ready() && !stop_wanted) {
		struct pollfd pf = { .fd = wp_xds_fd(), .events = POLLIN };

		poll(&pf, 1, 200);
		wp_xds_process();
		if ((waited += 200) % 10000 == 0)
			zm_log_warn("still waiting for zmeshd at %s (config and certificate)", server);
	}
	return stop_wanted ? -EINTR : 1;
}

static const char usage[] =
	"usage: waypoint --listen ADDR:PORT [--config FILE|DIR] [--lab LAB] [--name NAME]\n"
	"                [--metrics-port N] [--ready-port N] [--access-log FILE|-|off]\n"
	"                [--header-timeout MS] [--idle-timeout MS]\n"
	"                [--path-normalization NONE|BASE|MERGE_SLASHES|DECODE_AND_MERGE_SLASHES]\n"
	"                [--no-peer-identity] [--hbone-port N [--ca DIR] [--identity NS/SA]] [-v]\n"
	"                [--zipkin URL] [--trace-sampling PERCENT] [--jwks-ca FILE] [--jwks-refresh S]\n"
	"                [--zmeshd ADDR:PORT [--cred-dir DIR]]\n"
	"       waypoint --gateway [--gateway-labels K=V,...] [--gateway-ns NS] [options above]\n";

int main(int argc, char **argv)
{
	static struct wp_opts o = {
		.name = "waypoint", .metrics_port = 15020, .ready_port = 15021,
		.header_timeout_ms = 10000, .idle_timeout_ms = 300000,
		.path_norm = ZM_ISTIO_PATH_BASE, .peer_identity = true,
		.trace_sampling = 1.0, .jwks_refresh_s = 600,
	};
	static const struct option lo[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "config", required_argument, NULL, 'c' },
		{ "lab", required_argument, NULL, 'L' },
		{ "name", required_argument, NULL, 'n' },
		{ "metrics-port", required_argument, NULL, 'm' },
		{ "ready-port", required_argument, NULL, 'r' },
		{ "access-log", required_argument, NULL, 'a' },
		{ "header-timeout", required_argument, NULL, 'H' },
		{ "idle-timeout", required_argument, NULL, 'I' },
		{ "path-normalization", required_argument, NULL, 'P' },
		{ "no-peer-identity", no_argument, NULL, 'N' },
		{ "hbone-port", required_argument, NULL, 'B' },
		{ "ca", required_argument, NULL, 'C' },
		{ "identity", required_argument, NULL, 'i' },
		{ "gateway", no_argument, NULL, 'G' },
		{ "gateway-labels", required_argument, NULL, 'g' },
		{ "gateway-ns", required_argument, NULL, 'S' },
		{ "zipkin", required_argument, NULL, 'z' },
		{ "trace-sampling", required_argument, NULL, 's' },
		{ "jwks-ca", required_argument, NULL, 'J' },
		{ "jwks-refresh", required_argument, NULL, 'R' },
		{ "zmeshd", required_argument, NULL, 'Z' },
		{ "cred-dir", required_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sigaction sa = { 0 };
	pthread_attr_t at;
	const char *gw_labels = "istio=ingressgateway", *zmeshd = NULL, *cred = NULL;
	char id_ns[64], id_sa[254];
	int opt, lfd = -1, rc, wfd, xfd = -1;

	zm_log_init("waypoint");
	while ((opt = getopt_long(argc, argv, "vh", lo, NULL)) != -1) {
		switch (opt) {
		case 'l': o.listen = optarg; break;
		case 'c': o.config = optarg; break;
		case 'L': o.lab = optarg; break;
		case 'n': o.name = optarg; break;
		case 'm': o.metrics_port = atoi(optarg); break;
		case 'r': o.ready_port = atoi(optarg); break;
		case 'a': o.access_log = optarg; break;
		case 'H': o.header_timeout_ms = atoi(optarg); break;
		case 'I': o.idle_timeout_ms = atoi(optarg); break;
		case 'P':
			rc = zm_istio_path_normalization_parse(optarg);
			if (rc < 0) {
				fprintf(stderr, "waypoint: --path-normalization: unknown mode '%s'\n", optarg);
				return 2;
			}
			o.path_norm = rc;
			break;
		case 'N': o.peer_identity = false; break;
		case 'B': o.hbone_port = atoi(optarg); break;
		case 'C': o.ca_dir = optarg; break;
		case 'i': o.identity = optarg; break;
		case 'G': o.gateway = true; break;
		case 'g': gw_labels = optarg; break;
		case 'S': o.gateway_ns = optarg; break;
		case 'z': o.zipkin = optarg; break;
		case 's': {
			char *end;

			o.trace_sampling = strtod(optarg, &end);
			if (end == optarg || *end || !(o.trace_sampling >= 0 && o.trace_sampling <= 100)) {
				fprintf(stderr, "waypoint: --trace-sampling: '%s' is not a percentage (0-100)\n", optarg);
				return 2;
			}
			break;
		}
		case 'J': o.jwks_ca = optarg; break;
		case 'R': o.jwks_refresh_s = atoi(optarg); break;
		case 'Z': zmeshd = optarg; break;
		case 'D': cred = optarg; break;
		case 'v': zm_log_set_level(ZM_LOG_DEBUG); break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return 2;
		}
	}
	if ((!o.listen && !o.gateway) || optind != argc || o.header_timeout_ms <= 0 ||
	    o.idle_timeout_ms <= 0 || o.jwks_refresh_s <= 0) {
		fputs(usage, stderr);
		return 2;
	}
	if (o.gateway) {
		/* "k=v,k2=v2": the labels Gateway selectors are matched against */
		char lb[1024], *save = NULL;

		snprintf(lb, sizeof(lb), "%s", gw_labels);
		for (char *kv = strtok_r(lb, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
			char *eq = strchr(kv, '=');

			if (!eq || eq == kv) {
				fprintf(stderr, "waypoint: --gateway-labels: '%s' is not key=value\n", kv);
				return 2;
			}
			*eq = '\0';
			zm_labels_set(&o.gateway_labels, kv, eq + 1);
		}
		if (!o.gateway_ns)
			o.gateway_ns = getenv("POD_NAMESPACE") ? getenv("POD_NAMESPACE") : "istio-system";
		if (!strcmp(o.name, "waypoint"))
			o.name = "istio-ingressgateway";
	}
	wp_options = &o;
	signal(SIGPIPE, SIG_IGN);
	sa.sa_handler = on_hup;
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	wp_jwks_init(on_jwks_change);
	if (wp_trace_init(&o) < 0)
		return 2;
	if (wp_access_log_open(o.access_log) < 0) {
		fprintf(stderr, "waypoint: --access-log %s: %s\n", o.access_log, strerror(errno));
		return 1;
	}
	identity(&o, id_ns, sizeof(id_ns), id_sa, sizeof(id_sa));
	rc = start_zmeshd(&o, zmeshd, cred, id_ns, id_sa);
	if (rc < 0) {
		fprintf(stderr, "waypoint: zmeshd: %s\n", strerror(-rc));
		return 1;
	}
	if (rc > 0)
		xfd = wp_xds_fd();
	else if ((rc = wp_reload(&o)) < 0) {
		fprintf(stderr, "waypoint: no usable config: %s\n", strerror(-rc));
		return 1;
	}
	if (o.listen)
		lfd = wp_listen(o.listen);
	if (o.listen && lfd < 0) {
		fprintf(stderr, "waypoint: --listen %s: %s\n", o.listen, strerror(-lfd));
		return 1;
	}
	if ((rc = start_admin(o.metrics_port)) < 0 ||
	    (o.ready_port != o.metrics_port && (rc = start_admin(o.ready_port)) < 0)) {
		fprintf(stderr, "waypoint: admin port: %s\n", strerror(-rc));
		return 1;
	}
	if (o.hbone_port) {
		char cadir[PATH_MAX];

		if (o.ca_dir)
			snprintf(cadir, sizeof(cadir), "%s", o.ca_dir);
		else
			snprintf(cadir, sizeof(cadir), "%s/%s/ca", ZM_LAB_STATE_ROOT, o.lab ? o.lab : ZM_LAB_DEFAULT);
		/* with zmeshd the certificate came by CSR (xds.c) and is renewed there */
		rc = xfd >= 0 ? wp_hbone_listen(o.hbone_port, id_ns, id_sa)
			      : wp_hbone_start(o.hbone_port, cadir, id_ns, id_sa);
		if (rc < 0) {
			fprintf(stderr, "waypoint: --hbone-port %d: %s\n", o.hbone_port, strerror(-rc));
			return 1;
		}
		/* gateway: ISTIO_MUTUAL servers need this certificate; build them again */
		if (o.gateway)
			reload_wanted = 1;
	}
	if (o.listen)
		zm_log_info("listening on %s", o.listen);
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, 512 * 1024);
	wfd = xfd >= 0 ? -1 : watch_config(o.config);
	if (o.lab) {
		/* the lab's state (pods, services, labels) feeds the service view */
		char sd[PATH_MAX];

		snprintf(sd, sizeof(sd), "%s/%s", ZM_LAB_STATE_ROOT, o.lab);
		if (wfd < 0)
			wfd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		if (wfd >= 0)
			inotify_add_watch(wfd, sd, IN_MOVED_TO | IN_CLOSE_WRITE);
	}
	while (!stop_wanted) {
		struct pollfd pfs[3];
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		pthread_t th;
		nfds_t n = 0;
		int fd, li = -1, wi = -1, xi = -1;

		if (reload_wanted || atomic_exchange(&jwks_changed, 0)) {
			reload_wanted = 0;
			wp_reload(&o);
		}
		/* the gateway has no --listen: its listeners are gateway.c's threads */
		if (lfd >= 0) {
			li = (int)n;
			pfs[n++] = (struct pollfd){ .fd = lfd, .events = POLLIN };
		}
		if (wfd >= 0) {
			wi = (int)n;
			pfs[n++] = (struct pollfd){ .fd = wfd, .events = POLLIN };
		}
		if (xfd >= 0) {
			xi = (int)n;
			pfs[n++] = (struct pollfd){ .fd = xfd, .events = POLLIN };
		}
		if (poll(pfs, n, 500) < 0)
			continue;
		/* zmeshd: each version is built on this thread and ACKed or NACKed */
		if (xi >= 0)
			wp_xds_process();
		if (wi >= 0 && (pfs[wi].revents & POLLIN)) {
			char ev[4096];

			/* let a writer finish, then take all its events as one change */
			usleep(50000);
			while (read(wfd, ev, sizeof(ev)) > 0)
				;
			reload_wanted = 1;
		}
		if (li < 0)
			continue;
		if (!(pfs[li].revents & POLLIN))
			continue;
		fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		if (atomic_load(&wp_nconns) >= WP_MAX_CONNS) {
			close(fd);
			continue;
		}
		{
			struct conn *c = wp_conn_new(fd, &ss);

			if (!c) {
				close(fd);
				continue;
			}
			atomic_fetch_add(&wp_nconns, 1);
			if (pthread_create(&th, &at, wp_conn_thread, c)) {
				atomic_fetch_sub(&wp_nconns, 1);
				close(fd);
				free(c);
			}
		}
	}
	zm_log_info("stopping");
	wp_trace_shutdown();
	wp_xds_stop();
	if (lfd >= 0)
		close(lfd);
	if (wfd >= 0)
		close(wfd);
	pthread_mutex_lock(&snap_mu);
	wp_snap_put(cur);
	cur = NULL;
	pthread_mutex_unlock(&snap_mu);
	return 0;
}
