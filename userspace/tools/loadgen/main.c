// SPDX-License-Identifier: Apache-2.0
/* loadgen: options, threads, and the report. See docs/loadgen.md. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "loadgen.h"
#include "zmesh/proc_stats.h"

static const char usage[] =
	"usage: loadgen --target HOST:PORT [--proto tcp-rr|http1|http2|tcp-connect|bulk]\n"
	"               [--conns C] [--rate R] [--duration S] [--warmup S] [--threads N]\n"
	"               [--size BYTES] [--streams N] [--path P] [--host H] [-H 'K: V']...\n"
	"               [--bulk echo|send] [--timeout S] [--linger0]\n"
	"               [--watch-pid PID]... [--watch-cgroup DIR]... [-o json]\n"
	"  --rate R: open loop, R requests/s in total, latency from the intended send time;\n"
	"            without it: closed loop, one request in flight per connection/stream.\n";

static const char *const proto_names[] = {
	[P_TCP_RR] = "tcp-rr", [P_HTTP1] = "http1", [P_HTTP2] = "http2",
	[P_TCP_CONNECT] = "tcp-connect", [P_BULK] = "bulk",
};

static int parse_double(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo && v <= hi))
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -EINVAL;
	*out = v;
	return 0;
}

/* "host:port", "[v6]:port"; names are resolved (the first address wins). */
static int resolve(struct lg_cfg *cfg)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	char host[256];
	const char *t = cfg->target, *port;
	size_t hl;
	int rc;

	if (t[0] == '[') {
		const char *e = strchr(t, ']');

		if (!e || e[1] != ':')
			return -EINVAL;
		hl = (size_t)(e - t - 1);
		t++;
		port = e + 2;
	} else {
		const char *colon = strrchr(t, ':');

		if (!colon)
			return -EINVAL;
		hl = (size_t)(colon - t);
		port = colon + 1;
	}
	if (hl == 0 || hl >= sizeof(host) || !*port)
		return -EINVAL;
	memcpy(host, t, hl);
	host[hl] = '\0';
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc) {
		fprintf(stderr, "loadgen: %s: %s\n", cfg->target, gai_strerror(rc));
		return -EHOSTUNREACH;
	}
	memcpy(&cfg->addr, res->ai_addr, res->ai_addrlen);
	cfg->addrlen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

struct watch_sample {
	uint64_t cpu_ns;
	int errors;
};

static struct watch_sample watch_cpu(const struct lg_cfg *cfg)
{
	struct watch_sample s = { 0 };

	for (int i = 0; i < cfg->nwatch_pids; i++) {
		uint64_t v;

		if (zm_proc_cpu_ns(cfg->watch_pids[i], &v) == 0)
			s.cpu_ns += v;
		else
			s.errors++;
	}
	for (int i = 0; i < cfg->nwatch_cgroups; i++) {
		uint64_t v;

		if (zm_cgroup_procs_cpu_ns(cfg->watch_cgroups[i], &v, NULL) == 0)
			s.cpu_ns += v;
		else
			s.errors++;
	}
	return s;
}

static uint64_t watch_rss(const struct lg_cfg *cfg)
{
	uint64_t sum = 0, v;

	for (int i = 0; i < cfg->nwatch_pids; i++)
		if (zm_proc_rss_kib(cfg->watch_pids[i], &v) == 0)
			sum += v;
	for (int i = 0; i < cfg->nwatch_cgroups; i++)
		if (zm_cgroup_procs_rss_kib(cfg->watch_cgroups[i], &v, NULL) == 0)
			sum += v;
	return sum;
}

static void sleep_until(int64_t t)
{
	struct timespec ts = { .tv_sec = t / 1000000000LL, .tv_nsec = t % 1000000000LL };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static double us(uint64_t ns)
{
	return (double)ns / 1000.0;
}

struct result {
	struct lg_stats st;
	struct zm_hist *hist;
	double cpu_s, watch_cpu_s;
	uint64_t watch_rss_kib;
	bool watch_ok;
};

static json_t *to_json(const struct lg_cfg *cfg, const struct result *r)
{
	const struct zm_hist *h = r->hist;
	double d = cfg->duration_s;
	json_t *o = json_object(), *b = json_array();
	double rps = (double)r->st.requests / d;
	double gbps = cfg->proto == P_BULK ? (double)r->st.bytes * 8 / d / 1e9 : 0;

	json_object_set_new(o, "proto", json_string(proto_names[cfg->proto]));
	json_object_set_new(o, "model", json_string(cfg->rate > 0 ? "open" : "closed"));
	json_object_set_new(o, "target", json_string(cfg->target));
	json_object_set_new(o, "conns", json_integer(cfg->conns));
	json_object_set_new(o, "threads", json_integer(cfg->threads));
	json_object_set_new(o, "streams", json_integer(cfg->proto == P_HTTP2 ? cfg->streams : 1));
	json_object_set_new(o, "size", json_integer(cfg->size));
	json_object_set_new(o, "rate", json_real(cfg->rate));
	json_object_set_new(o, "duration_s", json_real(d));
	json_object_set_new(o, "warmup_s", json_real(cfg->warmup_s));
	json_object_set_new(o, "requests", json_integer((json_int_t)r->st.requests));
	json_object_set_new(o, "warmup_requests", json_integer((json_int_t)r->st.warmup_requests));
	json_object_set_new(o, "errors", json_integer((json_int_t)r->st.errors));
	json_object_set_new(o, "non_2xx", json_integer((json_int_t)r->st.non_2xx));
	json_object_set_new(o, "timeouts", json_integer((json_int_t)r->st.timeouts));
	json_object_set_new(o, "connect_errors", json_integer((json_int_t)r->st.connect_errors));
	json_object_set_new(o, "connects", json_integer((json_int_t)r->st.connects));
	json_object_set_new(o, "unsent", json_integer((json_int_t)r->st.unsent));
	json_object_set_new(o, "rps", json_real(rps));
	json_object_set_new(o, "p50_us", json_real(us(zm_hist_percentile(h, 50))));
	json_object_set_new(o, "p90_us", json_real(us(zm_hist_percentile(h, 90))));
	json_object_set_new(o, "p99_us", json_real(us(zm_hist_percentile(h, 99))));
	json_object_set_new(o, "p999_us", json_real(us(zm_hist_percentile(h, 99.9))));
	json_object_set_new(o, "max_us", json_real(us(h->count ? h->max : 0)));
	json_object_set_new(o, "min_us", json_real(us(h->count ? h->min : 0)));
	json_object_set_new(o, "mean_us", json_real(zm_hist_mean(h) / 1000.0));
	json_object_set_new(o, "send_lag_mean_us", json_real(r->st.lag_n ?
		(double)r->st.lag_sum / (double)r->st.lag_n / 1000.0 : 0));
	json_object_set_new(o, "send_lag_max_us", json_real(us(r->st.lag_max)));
	json_object_set_new(o, "bytes", json_integer((json_int_t)r->st.bytes));
	json_object_set_new(o, "gbps", json_real(gbps));
	json_object_set_new(o, "conn_per_s", json_real(cfg->proto == P_TCP_CONNECT ? rps : 0));
	json_object_set_new(o, "cpu_s", json_real(r->cpu_s));
	if (cfg->nwatch_pids || cfg->nwatch_cgroups) {
		json_t *wj = json_object();

		json_object_set_new(wj, "ok", json_boolean(r->watch_ok));
		json_object_set_new(wj, "cpu_s", json_real(r->watch_cpu_s));
		json_object_set_new(wj, "rss_kib", json_integer((json_int_t)r->watch_rss_kib));
		json_object_set_new(wj, "cpu_s_per_10k_req", r->st.requests ?
			json_real(r->watch_cpu_s * 10000.0 / (double)r->st.requests) : json_null());
		json_object_set_new(wj, "cpu_s_per_gb", r->st.bytes ?
			json_real(r->watch_cpu_s * 1e9 / (double)r->st.bytes) : json_null());
		json_object_set_new(o, "watch", wj);
	}
	for (size_t i = 0; i < ZM_HIST_BUCKETS; i++) {
		if (!h->counts[i])
			continue;
		json_array_append_new(b, json_pack("[f,I]", us(zm_hist_bucket_hi(i)),
						   (json_int_t)h->counts[i]));
	}
	json_object_set_new(o, "buckets", b);
	return o;
}

static void print_human(const struct lg_cfg *cfg, const struct result *r)
{
	const struct zm_hist *h = r->hist;
	double d = cfg->duration_s;

	printf("loadgen: %s to %s, %s loop", proto_names[cfg->proto], cfg->target,
	       cfg->rate > 0 ? "open" : "closed");
	if (cfg->rate > 0)
		printf(" at %.0f req/s", cfg->rate);
	printf(", %d conns", cfg->conns);
	if (cfg->proto == P_HTTP2)
		printf(" x %d streams", cfg->streams);
	printf(", %d thread%s, %.1f s (+%.1f s warmup)\n", cfg->threads,
	       cfg->threads > 1 ? "s" : "", d, cfg->warmup_s);
	if (cfg->proto == P_BULK) {
		printf("bulk (%s): %.3f Gbit/s, %llu bytes, errors %llu\n",
		       cfg->bulk == BULK_ECHO ? "received echo" : "delivered",
		       (double)r->st.bytes * 8 / d / 1e9, (unsigned long long)r->st.bytes,
		       (unsigned long long)r->st.errors);
	} else {
		printf("requests %llu (%.1f/s), errors %llu (timeouts %llu, non-2xx/3xx %llu, "
		       "connect %llu), unsent %llu\n",
		       (unsigned long long)r->st.requests, (double)r->st.requests / d,
		       (unsigned long long)r->st.errors, (unsigned long long)r->st.timeouts,
		       (unsigned long long)r->st.non_2xx, (unsigned long long)r->st.connect_errors,
		       (unsigned long long)r->st.unsent);
		printf("latency us: p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f\n",
		       us(zm_hist_percentile(h, 50)), us(zm_hist_percentile(h, 90)),
		       us(zm_hist_percentile(h, 99)), us(zm_hist_percentile(h, 99.9)),
		       us(h->count ? h->max : 0), zm_hist_mean(h) / 1000.0);
		if (cfg->rate > 0)
			printf("send lag us (actual - intended send): mean %.1f  max %.1f\n",
			       r->st.lag_n ? (double)r->st.lag_sum / (double)r->st.lag_n / 1000.0 : 0,
			       us(r->st.lag_max));
	}
	printf("cpu: loadgen %.2f s", r->cpu_s);
	if (cfg->nwatch_pids || cfg->nwatch_cgroups)
		printf(", watched %.2f s%s, watched RSS %llu KiB", r->watch_cpu_s,
		       r->watch_ok ? "" : " (some gone)", (unsigned long long)r->watch_rss_kib);
	printf("\n");
}

static void raise_nofile(int conns)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)conns + 64) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "proto", required_argument, NULL, 'p' },
		{ "target", required_argument, NULL, 't' },
		{ "conns", required_argument, NULL, 'c' },
		{ "rate", required_argument, NULL, 'r' },
		{ "duration", required_argument, NULL, 'd' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "threads", required_argument, NULL, 'T' },
		{ "size", required_argument, NULL, 's' },
		{ "streams", required_argument, NULL, 'm' },
		{ "path", required_argument, NULL, 'P' },
		{ "host", required_argument, NULL, 'A' },
		{ "header", required_argument, NULL, 'H' },
		{ "bulk", required_argument, NULL, 'B' },
		{ "timeout", required_argument, NULL, 'x' },
		{ "linger0", no_argument, NULL, 'L' },
		{ "watch-pid", required_argument, NULL, 'W' },
		{ "watch-cgroup", required_argument, NULL, 'G' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct lg_cfg cfg = {
		.proto = P_TCP_RR, .bulk = BULK_ECHO, .path = "/", .size = -1,
		.conns = 16, .threads = 1, .streams = 10,
		.duration_s = 10, .warmup_s = 1, .timeout_s = 5,
	};
	struct worker *ws = NULL;
	struct result res = { 0 };
	struct watch_sample w0 = { 0 }, w1;
	uint64_t cpu0 = 0, cpu1 = 0;
	char *authority = NULL;
	int opt, rc = 1, started = 0;
	long v;

	while ((opt = getopt_long(argc, argv, "p:t:c:r:d:w:T:s:m:P:A:H:B:x:LW:G:o:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'p': {
			size_t i;

			for (i = 0; i < sizeof(proto_names) / sizeof(proto_names[0]); i++)
				if (!strcmp(optarg, proto_names[i]))
					break;
			if (i == sizeof(proto_names) / sizeof(proto_names[0]))
				goto bad;
			cfg.proto = (enum lg_proto)i;
			break;
		}
		case 't': cfg.target = optarg; break;
		case 'c':
			if (parse_long(optarg, 1, 1000000, &v))
				goto bad;
			cfg.conns = (int)v;
			break;
		case 'r':
			if (parse_double(optarg, 0, 1e9, &cfg.rate))
				goto bad;
			break;
		case 'd':
			if (parse_double(optarg, 0.001, 1e6, &cfg.duration_s))
				goto bad;
			break;
		case 'w':
			if (parse_double(optarg, 0, 1e6, &cfg.warmup_s))
				goto bad;
			break;
		case 'T':
			if (parse_long(optarg, 1, 1024, &v))
				goto bad;
			cfg.threads = (int)v;
			break;
		case 's':
			if (parse_long(optarg, 1, 64L << 20, &v))
				goto bad;
			cfg.size = v;
			break;
		case 'm':
			if (parse_long(optarg, 1, 10000, &v))
				goto bad;
			cfg.streams = (int)v;
			break;
		case 'P':
			if (optarg[0] != '/' || strpbrk(optarg, " \r\n"))
				goto bad;
			cfg.path = optarg;
			break;
		case 'A':
			if (!*optarg || strpbrk(optarg, " \r\n"))
				goto bad;
			cfg.authority = optarg;
			break;
		case 'H': {
			const char *colon = strchr(optarg, ':');

			if (cfg.nheaders == LG_MAX_HEADERS || !colon || colon == optarg ||
			    strpbrk(optarg, "\r\n") || memchr(optarg, ' ', (size_t)(colon - optarg)))
				goto bad;
			cfg.headers[cfg.nheaders++] = optarg;
			break;
		}
		case 'B':
			if (!strcmp(optarg, "echo"))
				cfg.bulk = BULK_ECHO;
			else if (!strcmp(optarg, "send"))
				cfg.bulk = BULK_SEND;
			else
				goto bad;
			break;
		case 'x':
			if (parse_double(optarg, 0.001, 3600, &cfg.timeout_s))
				goto bad;
			break;
		case 'L': cfg.linger0 = true; break;
		case 'W':
			if (cfg.nwatch_pids == LG_MAX_WATCH || parse_long(optarg, 1, 1L << 22, &v))
				goto bad;
			cfg.watch_pids[cfg.nwatch_pids++] = (pid_t)v;
			break;
		case 'G':
			if (cfg.nwatch_cgroups == LG_MAX_WATCH)
				goto bad;
			cfg.watch_cgroups[cfg.nwatch_cgroups++] = optarg;
			break;
		case 'o':
			if (strcmp(optarg, "json"))
				goto bad;
			cfg.json = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			goto bad;
		}
	}
	if (optind != argc || !cfg.target)
		goto bad;
	if (cfg.size < 0)
		cfg.size = cfg.proto == P_BULK ? 256 * 1024 : 1024;
	if (cfg.proto == P_BULK && cfg.rate > 0) {
		fprintf(stderr, "loadgen: --rate does not apply to bulk\n");
		return 2;
	}
	if (cfg.threads > cfg.conns)
		cfg.threads = cfg.conns;
	if (resolve(&cfg) < 0) {
		fprintf(stderr, "loadgen: bad --target %s (want host:port or [v6]:port)\n", cfg.target);
		return 2;
	}
	if (!cfg.authority) {
		authority = strdup(cfg.target);
		if (!authority)
			goto out;
		cfg.authority = authority;
	}
	cfg.timeout_ns = (int64_t)(cfg.timeout_s * 1e9);
	switch (cfg.proto) {
	case P_HTTP1:
		if (http1_build_request(&cfg) < 0)
			goto out;
		break;
	case P_HTTP2:
		if (http2_build_nva(&cfg) < 0)
			goto out;
		break;
	default:
		/* The payload: a pattern the echo must give back unchanged. */
		cfg.req = malloc((size_t)cfg.size);
		if (!cfg.req)
			goto out;
		for (long i = 0; i < cfg.size; i++)
			cfg.req[i] = (char)('a' + (i * 7 + i / 26) % 26);
		cfg.reqlen = (size_t)cfg.size;
		break;
	}
	signal(SIGPIPE, SIG_IGN);
	raise_nofile(cfg.conns);

	ws = calloc((size_t)cfg.threads, sizeof(*ws));
	res.hist = malloc(sizeof(*res.hist));
	if (!ws || !res.hist)
		goto out;
	zm_hist_init(res.hist);
	/* Connections open during the 100 ms before t0; the schedule starts at t0. */
	cfg.t0 = lg_now() + 100000000LL;
	cfg.t_meas = cfg.t0 + (int64_t)(cfg.warmup_s * 1e9);
	cfg.t_end = cfg.t_meas + (int64_t)(cfg.duration_s * 1e9);
	for (int i = 0; i < cfg.threads; i++) {
		int n = cfg.conns / cfg.threads + (i < cfg.conns % cfg.threads);

		if (worker_init(&ws[i], &cfg, i, n, cfg.rate * n / cfg.conns) < 0) {
			fprintf(stderr, "loadgen: out of memory or file descriptors\n");
			goto out;
		}
	}
	for (; started < cfg.threads; started++) {
		if (pthread_create(&ws[started].th, NULL, worker_run, &ws[started])) {
			fprintf(stderr, "loadgen: cannot start threads\n");
			goto out;
		}
	}
	sleep_until(cfg.t_meas);
	w0 = watch_cpu(&cfg);
	zm_self_cpu_ns(&cpu0);
	sleep_until(cfg.t_end);
	w1 = watch_cpu(&cfg);
	zm_self_cpu_ns(&cpu1);
	res.watch_rss_kib = watch_rss(&cfg);
	res.watch_ok = !w0.errors && !w1.errors;
	res.watch_cpu_s = w1.cpu_ns > w0.cpu_ns ? (double)(w1.cpu_ns - w0.cpu_ns) / 1e9 : 0;
	res.cpu_s = (double)(cpu1 - cpu0) / 1e9;
	for (int i = 0; i < started; i++) {
		struct lg_stats *s = &ws[i].st;

		pthread_join(ws[i].th, NULL);
		res.st.requests += s->requests;
		res.st.warmup_requests += s->warmup_requests;
		res.st.errors += s->errors;
		res.st.non_2xx += s->non_2xx;
		res.st.timeouts += s->timeouts;
		res.st.connects += s->connects;
		res.st.connect_errors += s->connect_errors;
		res.st.unsent += s->unsent;
		res.st.bytes += s->bytes;
		res.st.lag_sum += s->lag_sum;
		res.st.lag_n += s->lag_n;
		if (s->lag_max > res.st.lag_max)
			res.st.lag_max = s->lag_max;
		zm_hist_merge(res.hist, ws[i].hist);
		if (ws[i].rc < 0)
			fprintf(stderr, "loadgen: worker %d: %s\n", i, strerror(-ws[i].rc));
	}
	started = 0;
	if (cfg.json) {
		json_t *o = to_json(&cfg, &res);

		if (json_dumpf(o, stdout, JSON_COMPACT) == 0)
			fputc('\n', stdout);
		json_decref(o);
	} else {
		print_human(&cfg, &res);
	}
	/* Nothing at all got through: fail, so a script notices. */
	rc = res.st.requests || res.st.bytes ? 0 : 1;
out:
	/* Only after a failed start: the workers still running are cancelled with the process. */
	if (started)
		_exit(1);
	if (ws)
		for (int i = 0; i < cfg.threads; i++)
			worker_free(&ws[i]);
	free(ws);
	free(res.hist);
	free(cfg.req);
	free(authority);
	if (cfg.nva) {
		for (size_t i = 5; i < cfg.nnva; i++)
			free(cfg.nva[i].name);
		free(cfg.nva);
	}
	return rc;
bad:
	fputs(usage, stderr);
	return 2;
}
