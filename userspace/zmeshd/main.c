// SPDX-License-Identifier: Apache-2.0
/* zmeshd: options, listeners, the epoll loop; see zmeshd.h and docs/zmeshd.md. */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "zmesh/config.h"
#include "zmesh/log.h"
#include "zmeshd.h"

static const char usage_text[] =
	"usage: zmeshd --store DIR --ca-dir DIR [--lab LAB] [--listen ADDR:PORT] [--monitor ADDR:PORT]\n"
	"              [--cert-ttl DUR] [--trust-domain TD] [--watch-dir DIR] [--log-level LEVEL]\n"
	"  --store DIR         the config store (store.h layout), watched for new versions\n"
	"  --ca-dir DIR        the CA (ca.h: self-signed root made on first start, or DIR/cacerts/)\n"
	"  --lab LAB           authorize CSRs from the lab's pod placement too (zm_lab_load)\n"
	"  --listen ADDR:PORT  config + CA over mTLS (default 0.0.0.0:15012)\n"
	"  --monitor ADDR:PORT /debug/syncz, /metrics, /ready (default 127.0.0.1:15014)\n"
	"  --cert-ttl DUR      workload certificate lifetime, e.g. 24h, 30m (default 24h, or $ZMESH_CERT_TTL)\n"
	"  --trust-domain TD   default cluster.local\n"
	"  --watch-dir DIR     apply the manifests in DIR (all or nothing) whenever they change\n";

static struct zd *the_zd;

long long zd_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_signal(int sig)
{
	(void)sig;
	if (the_zd)
		the_zd->stop = 1;
}

/* "host:port", "[v6]:port" or ":port" -> a non-blocking listener. */
static int listen_on(const char *spec)
{
	char host[256] = "", port[16];
	const char *colon = strrchr(spec, ':');
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV }, *ai = NULL;
	size_t hl;
	int fd = -1, one = 1, rc;

	if (!colon || !colon[1] || strlen(colon + 1) >= sizeof(port))
		return -EINVAL;
	hl = (size_t)(colon - spec);
	if (hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, spec, hl);
	host[hl] = 0;
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = 0;
	}
	snprintf(port, sizeof(port), "%s", colon + 1);
	rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
	if (rc)
		return -EINVAL;
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 512)) {
		rc = -errno;
		if (fd >= 0)
			close(fd);
		fd = rc;
	}
	freeaddrinfo(ai);
	return fd;
}

static int add_fd(struct zd *d, int fd, struct zd_ev *ev)
{
	struct epoll_event e = { .events = EPOLLIN, .data.ptr = ev };

	return epoll_ctl(d->ep, EPOLL_CTL_ADD, fd, &e) ? -errno : 0;
}

static void run(struct zd *d)
{
	struct epoll_event evs[64];
	long long next_tick = 0;

	while (!d->stop) {
		int n = epoll_wait(d->ep, evs, 64, d->watch_due ? 100 : 1000);

		for (int i = 0; i < n; i++) {
			struct zd_ev *ev = evs[i].data.ptr;

			switch (ev->kind) {
			case ZD_LISTENER:
				zd_accept(d);
				break;
			case ZD_CONN:
				zd_conn_io((struct zd_conn *)ev, evs[i].events);
				break;
			case ZD_MONITOR_LISTENER:
				zd_monitor_accept(d);
				break;
			case ZD_MONITOR_CONN:
				zd_monitor_io(ev, evs[i].events);
				break;
			case ZD_INOTIFY:
				zd_store_event(d);
				break;
			case ZD_WATCH:
				zd_watch_event(d);
				break;
			}
		}
		zd_watch_poll(d);
		/* Timers once a second: handshake deadlines, a missed inotify event, renewal. */
		if (zd_now_ms() >= next_tick) {
			next_tick = zd_now_ms() + 1000;
			zd_sweep(d);
			zd_monitor_sweep(d);
			zd_store_poll(d);
			zd_ca_check(d);
			if (time(NULL) >= d->own_renew_at && zd_tls_ctx(d) == 0)
				zm_log_info("renewed zmeshd's serving certificate");
		}
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "store", required_argument, NULL, 's' },
		{ "watch-dir", required_argument, NULL, 'W' },
		{ "ca-dir", required_argument, NULL, 'c' },
		{ "lab", required_argument, NULL, 'l' },
		{ "listen", required_argument, NULL, 'L' },
		{ "monitor", required_argument, NULL, 'm' },
		{ "cert-ttl", required_argument, NULL, 't' },
		{ "trust-domain", required_argument, NULL, 'T' },
		{ "log-level", required_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct zd d = { .td = "cluster.local", .ep = -1, .lfd = -1, .mfd = -1, .ifd = -1, .wfd = -1 };
	const char *listen_spec = "0.0.0.0:15012", *monitor_spec = "127.0.0.1:15014";
	struct zm_error e = { "" };
	int opt, rc = 1;

	zm_log_init("zmeshd");
	/* The lab's knob for short-lived certificates (tests), as ztunnel reads it. */
	if (getenv("ZMESH_CERT_TTL")) {
		int64_t ns;

		if (zm_duration_parse(getenv("ZMESH_CERT_TTL"), &ns) || ns / 1000000000 < ZM_CA_MIN_TTL ||
		    ns / 1000000000 > ZM_CA_MAX_TTL) {
			fprintf(stderr, "zmeshd: ZMESH_CERT_TTL=%s: want a duration from %us to %us\n",
				getenv("ZMESH_CERT_TTL"), ZM_CA_MIN_TTL, ZM_CA_MAX_TTL);
			return 2;
		}
		d.cert_ttl = (unsigned)(ns / 1000000000);
	}
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 's': d.store_dir = optarg; break;
		case 'W': d.watch_dir = optarg; break;
		case 'c': d.ca_dir = optarg; break;
		case 'l': d.lab = optarg; break;
		case 'L': listen_spec = optarg; break;
		case 'm': monitor_spec = optarg; break;
		case 'T': d.td = optarg; break;
		case 't': {
			int64_t ns;

			if (zm_duration_parse(optarg, &ns) || ns / 1000000000 < ZM_CA_MIN_TTL ||
			    ns / 1000000000 > ZM_CA_MAX_TTL) {
				fprintf(stderr, "zmeshd: --cert-ttl %s: want a duration from %us to %us\n", optarg,
					ZM_CA_MIN_TTL, ZM_CA_MAX_TTL);
				return 2;
			}
			d.cert_ttl = (unsigned)(ns / 1000000000);
			break;
		}
		case 'v': {
			int lvl = zm_log_level_parse(optarg);

			if (lvl < 0) {
				fprintf(stderr, "zmeshd: --log-level %s: want error, warn, info or debug\n", optarg);
				return 2;
			}
			zm_log_set_level((enum zm_log_level)lvl);
			break;
		}
		case 'h': fputs(usage_text, stdout); return 0;
		default: fputs(usage_text, stderr); return 2;
		}
	}
	if (!d.store_dir || !d.ca_dir || optind != argc) {
		fputs(usage_text, stderr);
		return 2;
	}
	if (!zm_spiffe_td_valid(d.td, strlen(d.td))) {
		fprintf(stderr, "zmeshd: --trust-domain %s: not a valid trust domain\n", d.td);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	the_zd = &d;
	if (zm_ca_open(d.ca_dir, &d.ca, &e)) {
		zm_log_error("CA %s: %s", d.ca_dir, e.msg);
		goto out;
	}
	if (zd_tls_ctx(&d))
		goto out;
	zd_ca_check(&d);	/* records the CA files as they are now */
	d.ep = epoll_create1(EPOLL_CLOEXEC);
	d.lfd = listen_on(listen_spec);
	if (d.lfd < 0) {
		zm_log_error("--listen %s: %s", listen_spec, strerror(-d.lfd));
		goto out;
	}
	d.mfd = listen_on(monitor_spec);
	if (d.mfd < 0) {
		zm_log_error("--monitor %s: %s", monitor_spec, strerror(-d.mfd));
		goto out;
	}
	d.lev.kind = ZD_LISTENER;
	d.mev.kind = ZD_MONITOR_LISTENER;
	if (d.ep < 0 || add_fd(&d, d.lfd, &d.lev) || add_fd(&d, d.mfd, &d.mev) || zd_store_init(&d))
		goto out;
	rc = zd_watch_start(&d);
	if (rc < 0 || (rc > 0 && add_fd(&d, rc, &d.wev))) {
		rc = 1;
		goto out;
	}
	rc = 1;
	zm_log_info("serving config and certificates on %s (mTLS), monitoring on %s; store %s at version %llu, CA %s (%s)",
		    listen_spec, monitor_spec, d.store_dir, (unsigned long long)d.cur.version, d.ca_dir,
		    zm_ca_plugged_in(d.ca) ? "plug-in" : "self-signed");
	run(&d);
	zm_log_info("stopping");
	rc = 0;
out:
	while (d.conns)
		zd_conn_close(d.conns);
	zd_free_state(&d);
	if (d.lfd >= 0)
		close(d.lfd);
	if (d.mfd >= 0)
		close(d.mfd);
	if (d.wfd >= 0)
		close(d.wfd);
	if (d.ep >= 0)
		close(d.ep);
	SSL_CTX_free(d.ctx);
	zm_ca_free(d.ca);
	return rc;
}
