// SPDX-License-Identifier: Apache-2.0
/*
 * build/loadgen against servers on 127.0.0.1 ephemeral ports: servers written
 * here (threads in the test process, so they count what they saw and die
 * with the test) and echoapp. Counts must match the server's; rates and
 * latencies are only checked where a fixed schedule or an injected stall
 * makes the answer certain, with wide bounds.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <nghttp2/nghttp2.h>

#include "../harness/test.h"

enum kind { ECHO, HTTP1, HTTP2 };

struct srv {
	enum kind kind;
	int lfd, port;
	long size;			/* ECHO: request size, to count requests */
	atomic_ullong bytes;		/* ECHO: bytes echoed */
	atomic_ullong conns_done;	/* ECHO: connections that closed after a full echo of size bytes */
	atomic_ullong requests;		/* HTTP: requests answered */
	atomic_ullong bad;		/* HTTP: requests not as configured */
	int status;			/* HTTP: the answer's status */
	const char *want_path;
	/* A server-wide stall: once `stall_after` requests were seen, answers wait 200 ms. */
	long stall_after;
	atomic_llong stall_until;	/* CLOCK_MONOTONIC ns */
	atomic_int stalled;
	pthread_t th;
};

struct cconn {
	struct srv *s;
	int fd;
};

static long long mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Call once per request the server sees: triggers and honours the stall. */
static void maybe_stall(struct srv *s, unsigned long long seen)
{
	long long until;

	if (s->stall_after && seen >= (unsigned long long)s->stall_after &&
	    !atomic_exchange(&s->stalled, 1))
		atomic_store(&s->stall_until, mono_ns() + 200000000LL);
	until = atomic_load(&s->stall_until);
	while (until && mono_ns() < until)
		usleep(1000);
}

static int write_all(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t r = send(fd, p, n, MSG_NOSIGNAL);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p = (const char *)p + r;
		n -= (size_t)r;
	}
	return 0;
}

static void serve_echo(struct cconn *cc)
{
	struct srv *s = cc->s;
	unsigned long long mine = 0;
	char buf[65536];
	ssize_t n;

	while ((n = read(cc->fd, buf, sizeof(buf))) > 0) {
		unsigned long long before = atomic_fetch_add(&s->bytes, (unsigned long long)n);

		/* A request boundary crossed: a new request seen. */
		if (s->stall_after && (before + (unsigned long long)n) / (unsigned long long)s->size >
				      before / (unsigned long long)s->size)
			maybe_stall(s, (before + (unsigned long long)n) / (unsigned long long)s->size);
		if (write_all(cc->fd, buf, (size_t)n))
			break;
		mine += (unsigned long long)n;
	}
	if (n == 0 && mine == (unsigned long long)s->size)
		atomic_fetch_add(&s->conns_done, 1);
}

/* HTTP/1.1: parse just enough (GET, no body); vary the framing of the answers. */
static void serve_http1(struct cconn *cc)
{
	struct srv *s = cc->s;
	static const char body[] = "{\"hello\":\"world\"}";
	char buf[16384], out[1024];
	size_t have = 0;
	unsigned long long on_conn = 0;

	for (;;) {
		char *end;
		ssize_t n = read(cc->fd, buf + have, sizeof(buf) - 1 - have);

		if (n <= 0)
			return;
		have += (size_t)n;
		buf[have] = '\0';
		while ((end = strstr(buf, "\r\n\r\n"))) {
			size_t reqlen = (size_t)(end + 4 - buf), len;
			unsigned long long seen = atomic_fetch_add(&s->requests, 1) + 1;
			char want[256];
			bool close_it;

			on_conn++;
			snprintf(want, sizeof(want), "GET %s HTTP/1.1\r\n", s->want_path);
			if (strncmp(buf, want, strlen(want)) || !strstr(buf, "\r\nHost: "))
				atomic_fetch_add(&s->bad, 1);
			maybe_stall(s, seen);
			/* Every 25th answer on a connection closes it; odd ones are chunked. */
			close_it = on_conn % 25 == 0;
			if (on_conn % 2)
				len = (size_t)snprintf(out, sizeof(out), "HTTP/1.1 %d X\r\n"
					"Transfer-Encoding: chunked\r\n%s\r\n"
					"5\r\n{\"a\":\r\n%zx\r\n%s\r\n0\r\n\r\n", s->status,
					close_it ? "Connection: close\r\n" : "", sizeof(body) - 1, body);
			else
				len = (size_t)snprintf(out, sizeof(out), "HTTP/1.1 %d X\r\n"
					"Content-Length: %zu\r\n%s\r\n%s", s->status, sizeof(body) - 1,
					close_it ? "Connection: close\r\n" : "", body);
			if (write_all(cc->fd, out, len))
				return;
			if (close_it)
				return;
			memmove(buf, buf + reqlen, have - reqlen);
			have -= reqlen;
			buf[have] = '\0';
		}
		if (have == sizeof(buf) - 1)
			return;
	}
}

/* HTTP/2 with nghttp2, blocking I/O: answer each request stream with a small body. */
static ssize_t h2_body(nghttp2_session *ss, int32_t id, uint8_t *buf, size_t len,
		       uint32_t *flags, nghttp2_data_source *src, void *ud)
{
	static const char body[] = "h2 says hello";

	memcpy(buf, body, sizeof(body) - 1 < len ? sizeof(body) - 1 : len);
	*flags |= NGHTTP2_DATA_FLAG_EOF;
	return sizeof(body) - 1 < len ? (ssize_t)sizeof(body) - 1 : (ssize_t)len;
}

static int h2_on_header(nghttp2_session *ss, const nghttp2_frame *f, const uint8_t *name,
			size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
			void *ud)
{
	struct srv *s = ud;

	if (namelen == 5 && !memcmp(name, ":path", 5) &&
	    (valuelen != strlen(s->want_path) || memcmp(value, s->want_path, valuelen)))
		atomic_fetch_add(&s->bad, 1);
	return 0;
}

static int h2_on_frame(nghttp2_session *ss, const nghttp2_frame *f, void *ud)
{
	struct srv *s = ud;
	char st[8];
	nghttp2_nv nv[] = {
		{ (uint8_t *)":status", (uint8_t *)st, 7, 0, NGHTTP2_NV_FLAG_NONE },
	};
	nghttp2_data_provider dp = { .read_callback = h2_body };

	if (f->hd.type != NGHTTP2_HEADERS || !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	snprintf(st, sizeof(st), "%d", s->status);
	nv[0].valuelen = strlen(st);
	atomic_fetch_add(&s->requests, 1);
	return nghttp2_submit_response(ss, f->hd.stream_id, nv, 1, &dp) ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

static void serve_http2(struct cconn *cc)
{
	nghttp2_session_callbacks *cbs;
	nghttp2_session *ss;
	nghttp2_settings_entry iv = { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100 };
	char buf[16384];

	if (nghttp2_session_callbacks_new(&cbs))
		return;
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, h2_on_frame);
	nghttp2_session_callbacks_set_on_header_callback(cbs, h2_on_header);
	if (nghttp2_session_server_new(&ss, cbs, cc->s)) {
		nghttp2_session_callbacks_del(cbs);
		return;
	}
	nghttp2_session_callbacks_del(cbs);
	nghttp2_submit_settings(ss, NGHTTP2_FLAG_NONE, &iv, 1);
	for (;;) {
		const uint8_t *data;
		ssize_t n;

		while ((n = nghttp2_session_mem_send(ss, &data)) > 0)
			if (write_all(cc->fd, data, (size_t)n))
				goto out;
		if (n < 0)
			break;
		n = read(cc->fd, buf, sizeof(buf));
		if (n <= 0 || nghttp2_session_mem_recv(ss, (const uint8_t *)buf, (size_t)n) < 0)
			break;
	}
out:
	nghttp2_session_del(ss);
}

static void *conn_main(void *arg)
{
	struct cconn *cc = arg;

	switch (cc->s->kind) {
	case ECHO: serve_echo(cc); break;
	case HTTP1: serve_http1(cc); break;
	case HTTP2: serve_http2(cc); break;
	}
	close(cc->fd);
	free(cc);
	return NULL;
}

static void *accept_main(void *arg)
{
	struct srv *s = arg;

	for (;;) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC), one = 1;
		struct cconn *cc;
		pthread_t th;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return NULL;	/* the listener was shut down */
		}
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		cc = malloc(sizeof(*cc));
		if (!cc) {
			close(fd);
			continue;
		}
		cc->s = s;
		cc->fd = fd;
		if (pthread_create(&th, NULL, conn_main, cc)) {
			close(fd);
			free(cc);
			continue;
		}
		pthread_detach(th);
	}
}

static void srv_stop(void *arg)
{
	struct srv *s = arg;

	shutdown(s->lfd, SHUT_RDWR);
	pthread_join(s->th, NULL);
	close(s->lfd);
	free(s);
}

/* A server of @kind on 127.0.0.1, stopped by a deferred cleanup. */
static struct srv *srv_start(enum kind kind, long size)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	struct srv *s = calloc(1, sizeof(*s));

	if (!ASSERT_OK_PTR(s))
		return NULL;
	s->kind = kind;
	s->size = size;
	s->status = 200;
	s->want_path = "/";
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_GE(s->lfd, 0);
	ASSERT_OK(bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)));
	ASSERT_OK(listen(s->lfd, 1024));
	ASSERT_OK(getsockname(s->lfd, (struct sockaddr *)&sa, &len));
	s->port = ntohs(sa.sin_port);
	ASSERT_EQ(pthread_create(&s->th, NULL, accept_main, s), 0);
	test_defer(srv_stop, s);
	return s;
}

/* Run build/loadgen with @args and -o json; the parsed object (NULL on failure). @rc gets the exit status. */
static json_t *run_loadgen(int *rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static json_t *run_loadgen(int *rc, const char *fmt, ...)
{
	char args[1024], *out = malloc(1 << 20), *brace;
	json_error_t err;
	json_t *o = NULL;
	va_list ap;

	if (!out)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	test_log("loadgen %s", args);
	*rc = test_sh(out, 1 << 20, "%s/loadgen %s -o json", test_build_dir(), args);
	brace = strchr(out, '{');
	if (brace)
		o = json_loads(brace, 0, &err);
	if (!o)
		test_log("exit %d, output: %.2000s", *rc, out);
	free(out);
	if (o)
		test_defer((void (*)(void *))json_decref, o);
	return o;
}

static long long jint(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_integer(v) ? json_integer_value(v) : -1;
}

static double jnum(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_number(v) ? json_number_value(v) : -1;
}

/* Samples at or above @us from the histogram buckets in the JSON, and their total. */
static long long samples_ge(json_t *o, double us, long long *total)
{
	json_t *b = json_object_get(o, "buckets"), *e;
	long long n = 0, t = 0;
	size_t i;

	json_array_foreach(b, i, e) {
		long long c = json_integer_value(json_array_get(e, 1));

		t += c;
		if (json_number_value(json_array_get(e, 0)) >= us)
			n += c;
	}
	if (total)
		*total = t;
	return n;
}

static void log_summary(json_t *o)
{
	test_log("requests %lld warmup %lld errors %lld unsent %lld rps %.0f p50 %.1f p99 %.1f "
		 "max %.1f us", jint(o, "requests"), jint(o, "warmup_requests"), jint(o, "errors"),
		 jint(o, "unsent"), jnum(o, "rps"), jnum(o, "p50_us"), jnum(o, "p99_us"),
		 jnum(o, "max_us"));
}

TEST(tcp_rr_closed_loop_counts_match_the_server)
{
	static const char *const fields[] = {
		"proto", "model", "conns", "rate", "duration_s", "requests", "errors", "rps",
		"p50_us", "p90_us", "p99_us", "p999_us", "max_us", "gbps", "conn_per_s", "buckets",
	};
	struct srv *s = srv_start(ECHO, 1024);
	long long total;
	json_t *o;
	int rc;

	o = run_loadgen(&rc, "--proto tcp-rr --size 1024 --conns 4 --duration 1 --warmup 0.3 "
			"--target 127.0.0.1:%d", s->port);
	ASSERT_OK_PTR(o);
	log_summary(o);
	EXPECT_EQ(rc, 0);
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (!EXPECT_OK_PTR(json_object_get(o, fields[i])))
			test_log("missing field %s", fields[i]);
	EXPECT_STREQ(json_string_value(json_object_get(o, "proto")), "tcp-rr");
	EXPECT_STREQ(json_string_value(json_object_get(o, "model")), "closed");
	EXPECT_EQ(jint(o, "conns"), 4);
	EXPECT_EQ(jint(o, "errors"), 0);
	EXPECT_GT(jint(o, "requests"), 0);
	/* Every request the server echoed was counted, in warmup or in the window. */
	EXPECT_EQ(atomic_load(&s->bytes) % 1024, 0);
	EXPECT_EQ((long long)(atomic_load(&s->bytes) / 1024),
		  jint(o, "requests") + jint(o, "warmup_requests"));
	EXPECT_GT(jint(o, "warmup_requests"), 0);
	/* the buckets hold exactly the measured requests */
	samples_ge(o, 0, &total);
	EXPECT_EQ(total, jint(o, "requests"));
	EXPECT_TRUE(jnum(o, "rps") > 0 && fabs(jnum(o, "rps") - (double)jint(o, "requests") / 1.0) < 1);
	EXPECT_TRUE(jnum(o, "p50_us") > 0 && jnum(o, "p50_us") <= jnum(o, "p90_us") &&
		    jnum(o, "p90_us") <= jnum(o, "p99_us") && jnum(o, "p99_us") <= jnum(o, "p999_us") &&
		    jnum(o, "p999_us") <= jnum(o, "max_us"));
}

TEST(tcp_rr_open_loop_holds_the_rate)
{
	struct srv *s = srv_start(ECHO, 512);
	long long sent;
	json_t *o;
	int rc;

	o = run_loadgen(&rc, "--proto tcp-rr --size 512 --conns 4 --threads 2 --rate 2000 "
			"--duration 1 --warmup 0.2 --target 127.0.0.1:%d", s->port);
	ASSERT_OK_PTR(o);
	log_summary(o);
	EXPECT_EQ(rc, 0);
	EXPECT_STREQ(json_string_value(json_object_get(o, "model")), "open");
	EXPECT_EQ(jint(o, "errors"), 0);
	/* The schedule puts 2000 requests in the 1 s window (+-1 per thread for rounding). */
	sent = jint(o, "requests") + jint(o, "unsent") + jint(o, "errors");
	EXPECT_GE(sent, 1997);
	EXPECT_LE(sent, 2003);
	/* ...and a loaded machine still gets most of them out (wide bound). */
	EXPECT_GE(jint(o, "requests"), 1000);
	EXPECT_EQ((long long)(atomic_load(&s->bytes) / 512),
		  jint(o, "requests") + jint(o, "warmup_requests"));
}

/*
 * Coordinated omission: the server stops answering for 200 ms once. At a fixed
 * 1000 req/s about 200 requests are due during the stall; measured from their
 * intended send times about half of them wait more than 100 ms. A generator that
 * measured from the actual send would show only the ones in flight (<= conns).
 */
TEST(open_loop_counts_a_server_stall_in_many_samples)
{
	struct srv *s = srv_start(ECHO, 256);
	long long over, total;
	json_t *o;
	int rc;

	s->stall_after = 300;
	o = run_loadgen(&rc, "--proto tcp-rr --size 256 --conns 2 --rate 1000 --duration 1.5 "
			"--warmup 0 --target 127.0.0.1:%d", s->port);
	ASSERT_OK_PTR(o);
	log_summary(o);
	EXPECT_EQ(atomic_load(&s->stalled), 1);
	EXPECT_EQ(jint(o, "errors"), 0);
	over = samples_ge(o, 100000, &total);
	test_log("open loop: %lld of %lld samples >= 100 ms", over, total);
	EXPECT_GT(over, 10);
	EXPECT_GE(jnum(o, "p99_us"), 100000);
	EXPECT_GE(jnum(o, "max_us"), 150000);

	/* The same stall in closed loop, for the log: only requests in flight wait. */
	s = srv_start(ECHO, 256);
	s->stall_after = 300;
	o = run_loadgen(&rc, "--proto tcp-rr --size 256 --conns 2 --duration 1 --warmup 0 "
			"--target 127.0.0.1:%d", s->port);
	ASSERT_OK_PTR(o);
	test_log("closed loop: %lld samples >= 100 ms", samples_ge(o, 100000, NULL));
}

TEST(http1_keepalive_content_length_chunked_and_close)
{
	struct srv *s = srv_start(HTTP1, 0);
	json_t *o;
	int rc;

	s->want_path = "/bench/x?y=1";
	o = run_loadgen(&rc, "--proto http1 --path '/bench/x?y=1' --conns 3 --duration 1 "
			"--warmup 0.2 -H 'X-Bench: 1' --target 127.0.0.1:%d", s->port);
	ASSERT_OK_PTR(o);
	log_summary(o);
	EXPECT_EQ(rc, 0);
	EXPECT_EQ(jint(o, "errors"), 0);
	EXPECT_EQ(jint(o, "non_2xx"), 0);
	EXPECT_GT(jint(o, "requests"), 25);
	EXPECT_EQ(atomic_load(&s->bad), 0);
	EXPECT_EQ((long long)atomic_load(&s->requests),
		  jint(o, "requests") + jint(o, "warmup_requests"));
	/* The server closes every 25th: the generator reconnected each time. */
	EXPECT_GE(jint(o, "connects"), 3 + (jint(o, "requests") + jint(o, "warmup_requests")) / 25 - 3);
}

TEST(http1_error_status_counts_as_error)
{
	struct srv *s = srv_start(HTTP1, 0);
	json_t *o;
	int rc;

	s->status = 503;
	o = run_loadgen(&rc, "--proto http1 --conns 2 --duration 0.5 --warmup 0 "
			"--target 127.0.0.1:%d", s->port);
	ASSERT_OK_PTR(o);
	log_summary(o);
	EXPECT_EQ(jint(o, "requests"), 0);
	EXPECT_GT(jint(o, "errors"), 0);
	EXPECT_EQ(jint(o, "non_2xx"), jint(o, "errors"));
	EXPECT_EQ((long long)atomic_load(&s->requests), jint(o, "errors"));
	EXPECT_EQ(rc, 1);	/* nothing succeeded */
}

TEST(http2_several_streams_per_connection)
{
	struct srv *s = srv_start(HTTP2, 0);
	json_t *o;
	int rc;

	s->want_path = "/h2";
	o = run_loadgen(&rc, "--proto http2 --path /h2 --conns 2 --streams 8 --duration 1 "
			"--warmup 0.2 --target 127.0.0.1:%d", s->port);
	ASSERT_OK_PTR(o);
	log_summary(o);
	EXPECT_EQ(rc, 0);
	EXPECT_EQ(jint(o, "errors"), 0);
	EXPECT_EQ(jint(o, "streams"), 8);
	EXPECT_EQ(jint(o, "connects"), 2);
	EXPECT_GT(jint(o, "requests"), 0);
	EXPECT_EQ(atomic_load(&s->bad), 0);
	EXPECT_EQ((long long)atomic_load(&s->requests),
		  jint(o, "requests") + jint(o, "warmup_requests"));
}

TEST(http2_open_loop)
{
	struct srv *s = srv_start(HTTP2, 0);
	long long sent;
	json_t *o;
	int rc;

	o = run_loadgen(&rc, "--proto http2 --conns 1 --streams 4 --rate 1000 --duration 1 "
			"--warmup 0 --target 127.0.0.1:%d", s->port);
	ASSERT_OK_PTR(o);
	log_summary(o);
	EXPECT_EQ(jint(o, "errors"), 0);
	sent = jint(o, "requests") + jint(o, "unsent");
	EXPECT_GE(sent, 998);
	EXPECT_LE(sent, 1002);
	EXPECT_EQ((long long)atomic_load(&s->requests), jint(o, "requests"));
}

TEST(tcp_connect_one_connection_per_request)
{
	struct srv *s = srv_start(ECHO, 100);
	json_t *o;
	int rc;

	o = run_loadgen(&rc, "--proto tcp-connect --size 100 --conns 4 --duration 1 --warmup 0 "
			"--target 127.0.0.1:%d", s->port);
	ASSERT_OK_PTR(o);
	log_summary(o);
	EXPECT_EQ(rc, 0);
	EXPECT_EQ(jint(o, "errors"), 0);
	EXPECT_GT(jint(o, "requests"), 0);
	EXPECT_EQ(jint(o, "connects"), jint(o, "requests"));
	EXPECT_TRUE(jnum(o, "conn_per_s") > 0 && fabs(jnum(o, "conn_per_s") - jnum(o, "rps")) < 1e-6);
	/* the server's connection threads may still be finishing: give them a moment */
	for (int i = 0; i < 100 && (long long)atomic_load(&s->conns_done) < jint(o, "requests"); i++)
		usleep(10000);
	EXPECT_EQ((long long)atomic_load(&s->conns_done), jint(o, "requests"));
	EXPECT_EQ((long long)(atomic_load(&s->bytes) / 100), jint(o, "requests"));
}

TEST(bulk_echo_and_send)
{
	struct srv *s = srv_start(ECHO, 1);
	json_t *o;
	int rc;

	o = run_loadgen(&rc, "--proto bulk --conns 2 --duration 1 --warmup 0.2 "
			"--target 127.0.0.1:%d", s->port);
	ASSERT_OK_PTR(o);
	test_log("echo: %.3f Gbit/s, %lld bytes", jnum(o, "gbps"), jint(o, "bytes"));
	EXPECT_EQ(rc, 0);
	EXPECT_EQ(jint(o, "errors"), 0);
	EXPECT_GT(jint(o, "bytes"), 0);
	EXPECT_TRUE(jnum(o, "gbps") > 0);
	/* received within the window cannot exceed what the server echoed in total */
	EXPECT_LE(jint(o, "bytes"), (long long)atomic_load(&s->bytes));

	o = run_loadgen(&rc, "--proto bulk --bulk send --conns 1 --size 65536 --duration 1 "
			"--warmup 0 --target 127.0.0.1:%d", s->port);
	ASSERT_OK_PTR(o);
	test_log("send: %.3f Gbit/s, %lld bytes", jnum(o, "gbps"), jint(o, "bytes"));
	EXPECT_EQ(jint(o, "errors"), 0);
	EXPECT_GT(jint(o, "bytes"), 0);
}

FIXTURE(echoapp) {
	pid_t pid;
	int http, tcp;
	char dir[64];
};

FIXTURE_SETUP(echoapp)
{
	char cmd[512], pf[128];

	self->pid = -1;
	snprintf(self->dir, sizeof(self->dir), "/tmp/zm-loadgen-%d", getpid());
	mkdir(self->dir, 0700);
	snprintf(pf, sizeof(pf), "%s/ports", self->dir);
	self->pid = fork();
	if (self->pid == 0) {
		snprintf(cmd, sizeof(cmd), "exec %s/echoapp serve --http 0 --tcp 0 --port-file %s "
			 ">/dev/null 2>&1", test_build_dir(), pf);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 300; i++) {
		FILE *f = fopen(pf, "r");

		if (f) {
			int n = fscanf(f, "http=%d tcp=%d", &self->http, &self->tcp);

			fclose(f);
			if (n == 2)
				break;
		}
		usleep(10000);
	}
}

FIXTURE_TEARDOWN(echoapp)
{
	char cmd[128];

	if (self->pid > 0) {
		kill(self->pid, SIGTERM);
		waitpid(self->pid, NULL, 0);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", self->dir);
	if (self->dir[0])
		(void)!system(cmd);
}

TEST_F(echoapp, every_proto_against_echoapp)
{
	static const char *const http[] = { "http1", "http2" };
	static const char *const tcp[] = { "tcp-rr", "tcp-connect", "bulk" };
	json_t *o, *w;
	int rc;

	ASSERT_GT(self->http, 0);
	for (size_t i = 0; i < 2; i++) {
		o = run_loadgen(&rc, "--proto %s --conns 2 --duration 0.5 --warmup 0 "
				"--target localhost:%d --watch-pid %d", http[i], self->http, self->pid);
		ASSERT_OK_PTR(o);
		log_summary(o);
		EXPECT_EQ(rc, 0);
		EXPECT_EQ(jint(o, "errors"), 0);
		EXPECT_GT(jint(o, "requests"), 0);
		/* the server's own accounting, read over the window */
		w = json_object_get(o, "watch");
		ASSERT_OK_PTR(w);
		EXPECT_TRUE(json_is_true(json_object_get(w, "ok")));
		EXPECT_GT(jint(w, "rss_kib"), 0);
		EXPECT_TRUE(jnum(w, "cpu_s") >= 0);
	}
	for (size_t i = 0; i < 3; i++) {
		o = run_loadgen(&rc, "--proto %s --conns 2 --duration 0.5 --warmup 0 "
				"--target 127.0.0.1:%d", tcp[i], self->tcp);
		ASSERT_OK_PTR(o);
		log_summary(o);
		EXPECT_EQ(rc, 0);
		EXPECT_EQ(jint(o, "errors"), 0);
	}
}

TEST(bad_targets_fail_cleanly)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	char out[4096];
	json_t *o;
	int rc, fd;

	EXPECT_EQ(test_sh(out, sizeof(out), "%s/loadgen --target nocolon", test_build_dir()), 2);
	EXPECT_EQ(test_sh(out, sizeof(out), "%s/loadgen --target 127.0.0.1:1 --proto nope",
			  test_build_dir()), 2);
	EXPECT_EQ(test_sh(out, sizeof(out), "%s/loadgen --target 127.0.0.1:1 --conns 0",
			  test_build_dir()), 2);
	EXPECT_EQ(test_sh(out, sizeof(out), "%s/loadgen --target 127.0.0.1:1 -H 'no colon'",
			  test_build_dir()), 2);
	/* A port nobody listens on: bound but not listening, so nothing else takes it meanwhile. */
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_GE(fd, 0);
	ASSERT_OK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)));
	ASSERT_OK(getsockname(fd, (struct sockaddr *)&sa, &len));
	o = run_loadgen(&rc, "--proto http1 --conns 2 --duration 0.3 --warmup 0 "
			"--target 127.0.0.1:%d", ntohs(sa.sin_port));
	close(fd);
	ASSERT_OK_PTR(o);
	EXPECT_EQ(rc, 1);
	EXPECT_EQ(jint(o, "requests"), 0);
	EXPECT_GT(jint(o, "connect_errors"), 0);
	EXPECT_GE(jint(o, "errors"), jint(o, "connect_errors"));
}
