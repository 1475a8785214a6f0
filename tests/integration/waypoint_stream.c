// SPDX-License-Identifier: Apache-2.0
/*
 * Bodies stream through the waypoint (docs/waypoint.md, "Streaming"): gRPC
 * server-streaming and bidirectional calls where the client sees a message
 * before its stream ends (a proxy that buffers would hang them: each test
 * waits for an answer before it sends or lets the server send more), 64 MiB
 * up and down over HTTP/1.1 and h2c with the waypoint's peak RSS bounded, a
 * reader that stops reading holds the upstream back, trailers arrive.
 *
 * The same through the HBONE front (mutual TLS + CONNECT, HTTP/1.1 inside)
 * and through the ingress gateway's TLS front (HTTP/1.1 and HTTP/2 in TLS).
 *
 * A lab without mesh: a client pod, the waypoint pod and an upstream pod
 * where this test runs two servers: an HTTP/1.1 one (a 64 MiB source and a
 * sink) and an HTTP/2 gRPC-like one (echo each DATA as it arrives; or one
 * message, then a second once the client said it saw the first).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "zmesh/ca.h"
#include "zmesh/hbone.h"
#include "zmesh/keymat.h"
#include "zmesh/netns.h"
#include "zmesh/spiffe.h"
#include "zmesh/tls.h"
#include "../harness/test.h"
#include "labkit.h"

#define BIG (64LL * 1024 * 1024)

static const char cluster_fmt[] =
	"apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n---\n"
	"apiVersion: v1\nkind: Pod\nmetadata: {name: client, labels: {app: client}}\n"
	"spec:\n  nodeName: n1\n  containers:\n  - {name: c, command: [sleep, \"3600\"]}\n---\n"
	"apiVersion: v1\nkind: Pod\nmetadata: {name: up, labels: {app: up}}\n"
	"spec:\n  nodeName: n1\n  containers:\n  - {name: c, command: [sleep, \"3600\"]}\n---\n"
	"apiVersion: v1\nkind: Pod\nmetadata: {name: waypoint, labels: {app: waypoint}}\n"
	"spec:\n  nodeName: n1\n  containers:\n"
	"  - {name: c, command: [waypoint, --listen, \"0.0.0.0:8080\", --lab, %s, --config, %s,\n"
	"                         --access-log, \"off\", --hbone-port, \"15008\"]}\n---\n"
	"apiVersion: v1\nkind: Service\nmetadata: {name: bulk}\n"
	"spec:\n  selector: {app: up}\n  ports:\n  - {name: http, port: 80, targetPort: 8080}\n---\n"
	"apiVersion: v1\nkind: Service\nmetadata: {name: stream}\n"
	"spec:\n  selector: {app: up}\n  ports:\n  - {name: grpc, port: 50051}\n";

/* timeout 0s: no timeout, what streaming gRPC users set */
static const char config[] =
	"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: stream}\n"
	"spec:\n  hosts: [stream]\n  http:\n"
	"  - match: [{uri: {prefix: /timeout.}}]\n    timeout: 1s\n"
	"    route: [{destination: {host: stream}}]\n"
	"  - timeout: 0s\n"
	"    route: [{destination: {host: stream}}]\n";

FIXTURE(st) {
	char name[16];
	char dir[64];
	char ip[32];		/* the waypoint pod's IP */
	pid_t srv;
	pid_t wp;
};

/* ---- the HTTP/1.1 upstream: GET /big/<n> sends n bytes, POST /sink counts a body ---- */

struct h1c {
	int fd;
	const char *dir;
};

static int read_line(int fd, char *b, size_t sz)
{
	size_t n = 0;

	while (n + 1 < sz) {
		char ch;

		if (recv(fd, &ch, 1, 0) != 1)
			return -1;
		if (ch == '\n')
			break;
		if (ch != '\r')
			b[n++] = ch;
	}
	b[n] = 0;
	return (int)n;
}

static long long drain(int fd, long long n)
{
	char buf[65536];
	long long got = 0;

	while (got < n) {
		ssize_t r = recv(fd, buf, (size_t)(n - got < (long long)sizeof(buf) ? n - got : (long long)sizeof(buf)), 0);

		if (r <= 0)
			return -1;
		got += r;
	}
	return got;
}

static void *h1_conn(void *arg)
{
	struct h1c *c = arg;
	char line[1024], method[16] = "", path[256] = "", buf[65536];

	for (;;) {
		long long clen = -1, total = 0;
		bool chunked = false;

		if (read_line(c->fd, line, sizeof(line)) <= 0 || sscanf(line, "%15s %255s", method, path) != 2)
			break;
		while (read_line(c->fd, line, sizeof(line)) > 0) {
			if (!strncasecmp(line, "content-length:", 15))
				clen = atoll(line + 15);
			if (!strncasecmp(line, "transfer-encoding:", 18) && strstr(line, "chunked"))
				chunked = true;
		}
		if (chunked) {
			for (;;) {
				long long n;

				if (read_line(c->fd, line, sizeof(line)) < 0)
					goto out;
				n = strtoll(line, NULL, 16);
				if (n == 0) {
					while (read_line(c->fd, line, sizeof(line)) > 0)
						;
					break;
				}
				if (drain(c->fd, n) != n || read_line(c->fd, line, sizeof(line)) < 0)
					goto out;
				total += n;
			}
		} else if (clen > 0) {
			if (drain(c->fd, clen) != clen)
				break;
			total = clen;
		}
		if (!strncmp(path, "/big/", 5)) {
			long long n = atoll(path + 5), sent = 0, mark = 0;
			char prog[128];

			snprintf(prog, sizeof(prog), "%s/sent", c->dir);
			snprintf(line, sizeof(line), "HTTP/1.1 200 OK\r\ncontent-length: %lld\r\n\r\n", n);
			if (send(c->fd, line, strlen(line), MSG_NOSIGNAL) < 0)
				break;
			memset(buf, 'z', sizeof(buf));
			while (sent < n) {
				ssize_t w = send(c->fd, buf, (size_t)(n - sent < (long long)sizeof(buf) ?
							 n - sent : (long long)sizeof(buf)), MSG_NOSIGNAL);

				if (w <= 0)
					goto out;
				sent += w;
				if (sent - mark >= 256 * 1024 || sent == n) {
					char v[32];

					mark = sent;
					snprintf(v, sizeof(v), "%lld\n", sent);
					test_write_file(prog, v);
				}
			}
		} else {
			char body[64];

			snprintf(body, sizeof(body), "{\"bytes\":%lld}", total);
			snprintf(line, sizeof(line), "HTTP/1.1 200 OK\r\ncontent-length: %zu\r\n\r\n%s",
				 strlen(body), body);
			if (send(c->fd, line, strlen(line), MSG_NOSIGNAL) < 0)
				break;
		}
	}
out:
	close(c->fd);
	free(c);
	return NULL;
}

/* ---- the HTTP/2 upstream: gRPC-like streams ---- */

struct gs {
	int fd;
	const char *dir;
	nghttp2_session *s;
	int32_t id;
	bool bidi, second_sent, client_done, ended;
	bool big, sink;			/* /Big: BIG bytes down; /Sink: count what comes up */
	long long big_sent, sink_got;
	char out[65536];
	size_t outn;
};

static ssize_t gs_send(nghttp2_session *s, const uint8_t *d, size_t n, int fl, void *ud)
{
	(void)s; (void)fl;
	return send(((struct gs *)ud)->fd, d, n, MSG_NOSIGNAL);
}

static ssize_t gs_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
		       nghttp2_data_source *src, void *ud)
{
	struct gs *g = ud;
	size_t n = g->outn < len ? g->outn : len;
	nghttp2_nv tr[] = { { (uint8_t *)"grpc-status", (uint8_t *)"0", 11, 1, NGHTTP2_NV_FLAG_NONE },
			    { (uint8_t *)"grpc-message", (uint8_t *)"done", 12, 4, NGHTTP2_NV_FLAG_NONE } };

	(void)src;
	if (g->big && g->big_sent < BIG) {
		n = len < (size_t)(BIG - g->big_sent) ? len : (size_t)(BIG - g->big_sent);
		memset(buf, 'g', n);
		g->big_sent += (long long)n;
		return (ssize_t)n;
	}
	if (n) {
		memcpy(buf, g->out, n);
		memmove(g->out, g->out + n, g->outn - n);
		g->outn -= n;
		return (ssize_t)n;
	}
	if ((g->bidi && g->client_done) || g->big || (g->sink && g->client_done) ||
	    (!g->bidi && g->second_sent)) {
		*flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
		nghttp2_submit_trailer(s, id, tr, 2);
		g->ended = true;
		return 0;
	}
	return NGHTTP2_ERR_DEFERRED;
}

static void gs_queue(struct gs *g, const void *d, size_t n)
{
	if (g->outn + n <= sizeof(g->out)) {
		memcpy(g->out + g->outn, d, n);
		g->outn += n;
	}
	nghttp2_session_resume_data(g->s, g->id);
}

static int gs_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
		     const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
	struct gs *g = ud;

	(void)s; (void)f; (void)flags;
	if (nl == 5 && !memcmp(name, ":path", 5)) {
		g->bidi = vl >= 5 && !memcmp(value + vl - 5, "/Bidi", 5);
		g->big = vl >= 4 && !memcmp(value + vl - 4, "/Big", 4);
		g->sink = vl >= 5 && !memcmp(value + vl - 5, "/Sink", 5);
	}
	return 0;
}

static int gs_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct gs *g = ud;
	nghttp2_nv h[2] = {
		{ (uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16, NGHTTP2_NV_FLAG_NONE },
	};
	nghttp2_data_provider prd = { .read_callback = gs_body };

	if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
		g->id = f->hd.stream_id;
		nghttp2_submit_response(s, f->hd.stream_id, h, 2, &prd);
		if (!g->bidi && !g->big && !g->sink)
			gs_queue(g, "\0\0\0\0\5first", 10);
	}
	if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
	    (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
		g->client_done = true;
		if (g->sink) {
			char m[64];

			snprintf(m, sizeof(m), "bytes=%lld", g->sink_got);
			gs_queue(g, m, strlen(m));
		}
		nghttp2_session_resume_data(s, g->id);
	}
	return 0;
}

static int gs_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *d, size_t n, void *ud)
{
	struct gs *g = ud;

	(void)s; (void)flags; (void)id;
	if (g->bidi)
		gs_queue(g, d, n);	/* echo each piece as it arrives */
	if (g->sink)
		g->sink_got += (long long)n;
	return 0;
}

static void *gs_conn(void *arg)
{
	struct gs *g = arg;
	nghttp2_session_callbacks *cb;
	char buf[16384], flag[128];

	snprintf(flag, sizeof(flag), "%s/saw-first", g->dir);
	nghttp2_session_callbacks_new(&cb);
	nghttp2_session_callbacks_set_send_callback(cb, gs_send);
	nghttp2_session_callbacks_set_on_header_callback(cb, gs_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, gs_frame);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, gs_data);
	nghttp2_session_server_new(&g->s, cb, g);
	nghttp2_session_callbacks_del(cb);
	nghttp2_submit_settings(g->s, NGHTTP2_FLAG_NONE, NULL, 0);
	for (;;) {
		struct pollfd pf = { .fd = g->fd, .events = POLLIN };
		ssize_t n;

		if (nghttp2_session_send(g->s))
			break;
		/* server streaming: the second message once the client saw the first */
		if (g->id && !g->bidi && !g->big && !g->sink && !g->second_sent && access(flag, F_OK) == 0) {
			g->second_sent = true;
			gs_queue(g, "\0\0\0\0\6second", 11);
			continue;
		}
		if (poll(&pf, 1, 50) <= 0)
			continue;
		n = recv(g->fd, buf, sizeof(buf), 0);
		if (n <= 0 || nghttp2_session_mem_recv(g->s, (uint8_t *)buf, (size_t)n) < 0)
			break;
	}
	nghttp2_session_del(g->s);
	close(g->fd);
	free(g);
	return NULL;
}

static int listen_on(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 64))
		return -1;
	return fd;
}

static void servers(const char *netns, const char *dir)
{
	int saved, l1, l2;

	if (zm_netns_enter(netns, &saved))
		_exit(1);
	l1 = listen_on(8080);
	l2 = listen_on(50051);
	if (l1 < 0 || l2 < 0)
		_exit(2);
	for (;;) {
		struct pollfd pf[2] = { { .fd = l1, .events = POLLIN }, { .fd = l2, .events = POLLIN } };
		pthread_t th;

		if (poll(pf, 2, -1) <= 0)
			continue;
		if (pf[0].revents) {
			struct h1c *c = calloc(1, sizeof(*c));

			c->fd = accept(l1, NULL, NULL);
			c->dir = dir;
			if (c->fd < 0 || pthread_create(&th, NULL, h1_conn, c))
				_exit(3);
			pthread_detach(th);
		}
		if (pf[1].revents) {
			struct gs *g = calloc(1, sizeof(*g));

			g->fd = accept(l2, NULL, NULL);
			g->dir = dir;
			/* as gRPC servers do: small frames (WINDOW_UPDATE) not held back by Nagle */
			setsockopt(g->fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
			if (g->fd < 0 || pthread_create(&th, NULL, gs_conn, g))
				_exit(3);
			pthread_detach(th);
		}
	}
}

/* The pid of a process in the netns of pod @pod ("<ns>-<name>"), or -1. */
static pid_t pid_in_pod(const char *lab, const char *pod, const char *comm)
{
	char path[300];
	struct stat want;
	DIR *d;
	struct dirent *e;
	pid_t pid = -1;

	snprintf(path, sizeof(path), "/run/netns/zm-%s-%s", lab, pod);
	if (stat(path, &want) || !(d = opendir("/proc")))
		return -1;
	while ((e = readdir(d)) && pid < 0) {
		struct stat ns;
		char c[64] = "";
		FILE *f;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/ns/net", e->d_name);
		if (stat(path, &ns) || ns.st_ino != want.st_ino || ns.st_dev != want.st_dev)
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", e->d_name);
		if ((f = fopen(path, "r"))) {
			if (!fgets(c, sizeof(c), f))
				c[0] = 0;
			fclose(f);
		}
		c[strcspn(c, "\n")] = 0;
		if (!strcmp(c, comm))
			pid = atoi(e->d_name);
	}
	closedir(d);
	return pid;
}

static void kill_child(void *arg)
{
	pid_t pid = (pid_t)(intptr_t)arg;

	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* The upstreams (servers()) in a child in pod up's netns; its pid, or -1. */
static pid_t fork_servers(const char *lab, const char *dir)
{
	char netns[64];
	pid_t pid;

	snprintf(netns, sizeof(netns), "zm-%s-default-up", lab);
	pid = fork();
	if (pid == 0) {
		servers(netns, dir);
		_exit(0);
	}
	return pid;
}

FIXTURE_SETUP(st)
{
	char path[128], cluster[sizeof(cluster_fmt) + 512], out[4096], cfg[128];

	REQUIRE_ROOT();
	ASSERT_OK(lab_init_dir(self->name, sizeof(self->name), self->dir, sizeof(self->dir), "s", 0755));
	snprintf(cfg, sizeof(cfg), "%s/config.yaml", self->dir);
	ASSERT_OK(test_write_file(cfg, config));
	snprintf(cluster, sizeof(cluster), cluster_fmt, self->name, cfg);
	snprintf(path, sizeof(path), "%s/cluster.yaml", self->dir);
	ASSERT_OK(test_write_file(path, cluster));
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab up --no-mesh -f %s --name %s", lab_ctl(), path,
			  self->name), 0);
	ASSERT_EQ(lab_pod_ip(self->name, "waypoint", self->ip, sizeof(self->ip)), 0);
	self->srv = fork_servers(self->name, self->dir);
	ASSERT_GE(self->srv, 0);
	ASSERT_OK(lab_poll(out, sizeof(out), "200", 100, 100000, "%s lab exec client --name %s -- curl -s -o /dev/null "
			   "-w '%%{http_code}' -H 'Host: bulk' http://%s:8080/sink", lab_ctl(), self->name, self->ip));
	self->wp = pid_in_pod(self->name, "default-waypoint", "waypoint");
	ASSERT_GT(self->wp, 0);
}

FIXTURE_TEARDOWN(st)
{
	if (self->srv > 0)
		kill_child((void *)(intptr_t)self->srv);
	lab_remove(self->name, self->dir);
}

/* ---- a gRPC client (nghttp2) in the client pod ---- */

struct gc {
	int fd;
	nghttp2_session *s;
	int32_t id;
	bool bidi;
	const char *dir;
	/* what to send: messages released one at a time */
	const char *msgs[3];
	int nmsgs, released, sent;
	size_t off;
	char got[4096];
	size_t gotn;
	char status[8], grpc_status[8];
	bool closed;
	uint32_t err;
};

static ssize_t gc_send(nghttp2_session *s, const uint8_t *d, size_t n, int fl, void *ud)
{
	(void)s; (void)fl;
	return send(((struct gc *)ud)->fd, d, n, MSG_NOSIGNAL);
}

static ssize_t gc_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
		       nghttp2_data_source *src, void *ud)
{
	struct gc *g = ud;

	(void)s; (void)id; (void)src;
	if (g->sent == g->nmsgs) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		return 0;
	}
	if (g->sent < g->released) {
		const char *m = g->msgs[g->sent];
		size_t n = strlen(m) - g->off < len ? strlen(m) - g->off : len;

		memcpy(buf, m + g->off, n);
		g->off += n;
		if (g->off == strlen(m)) {
			g->sent++;
			g->off = 0;
		}
		return (ssize_t)n;
	}
	return NGHTTP2_ERR_DEFERRED;
}

static int gc_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
		     const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
	struct gc *g = ud;

	(void)s; (void)f; (void)flags;
	if (nl == 7 && !memcmp(name, ":status", 7))
		snprintf(g->status, sizeof(g->status), "%.*s", (int)vl, value);
	if (nl == 11 && !memcmp(name, "grpc-status", 11))
		snprintf(g->grpc_status, sizeof(g->grpc_status), "%.*s", (int)vl, value);
	return 0;
}

static int gc_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *d, size_t n, void *ud)
{
	struct gc *g = ud;

	(void)s; (void)flags; (void)id;
	if (g->gotn + n < sizeof(g->got)) {
		memcpy(g->got + g->gotn, d, n);
		g->gotn += n;
		g->got[g->gotn] = 0;
	}
	return 0;
}

static int gc_close(nghttp2_session *s, int32_t id, uint32_t err, void *ud)
{
	struct gc *g = ud;

	(void)s; (void)id;
	g->closed = true;
	g->err = err;
	return 0;
}

/*
 * In the client pod: one call to the waypoint. Bidi: send message i only
 * after the echo of message i-1 arrived. Server streaming: after "first"
 * arrived, tell the server (a file) to send "second". Exit status 0 when
 * the call ended with grpc-status 0 and every message; 10 s at most.
 */
enum call { SERVER_STREAM, BIDI, TIMED_OUT };

static int grpc_call(const char *netns, const char *ip, const char *dir, enum call mode)
{
	bool bidi = mode == BIDI;
	const char *path = mode == BIDI ? "/test.Echo/Bidi" : mode == TIMED_OUT ? "/timeout.Echo/ServerStream" :
			   "/test.Echo/ServerStream";
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(8080) };
	struct gc g = { .bidi = bidi, .dir = dir };
	nghttp2_session_callbacks *cb;
	nghttp2_data_provider prd = { .read_callback = gc_body };
	nghttp2_nv h[] = {
		{ (uint8_t *)":method", (uint8_t *)"POST", 7, 4, 0 },
		{ (uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0 },
		{ (uint8_t *)":path", (uint8_t *)path, 5, strlen(path), 0 },
		{ (uint8_t *)":authority", (uint8_t *)"stream", 10, 6, 0 },
		{ (uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16, 0 },
		{ (uint8_t *)"te", (uint8_t *)"trailers", 2, 8, 0 },
	};
	char flag[128];
	time_t start = time(NULL);
	int saved;

	if (zm_netns_enter(netns, &saved))
		return 2;
	snprintf(flag, sizeof(flag), "%s/saw-first", dir);
	g.fd = socket(AF_INET, SOCK_STREAM, 0);
	inet_pton(AF_INET, ip, &sa.sin_addr);
	if (connect(g.fd, (struct sockaddr *)&sa, sizeof(sa)))
		return 3;
	g.msgs[0] = "one|";
	g.msgs[1] = "two|";
	g.msgs[2] = "three|";
	g.nmsgs = bidi ? 3 : 1;
	g.released = 1;
	nghttp2_session_callbacks_new(&cb);
	nghttp2_session_callbacks_set_send_callback(cb, gc_send);
	nghttp2_session_callbacks_set_on_header_callback(cb, gc_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, gc_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, gc_close);
	nghttp2_session_client_new(&g.s, cb, &g);
	nghttp2_session_callbacks_del(cb);
	nghttp2_submit_settings(g.s, NGHTTP2_FLAG_NONE, NULL, 0);
	g.id = nghttp2_submit_request(g.s, NULL, h, 6, &prd, NULL);
	while (!g.closed && time(NULL) - start < 10) {
		struct pollfd pf = { .fd = g.fd, .events = POLLIN };
		char buf[16384];
		ssize_t n;

		if (nghttp2_session_send(g.s))
			return 4;
		if (poll(&pf, 1, 100) <= 0)
			continue;
		n = recv(g.fd, buf, sizeof(buf), 0);
		if (n <= 0 || nghttp2_session_mem_recv(g.s, (uint8_t *)buf, (size_t)n) < 0)
			return 5;
		if (bidi) {
			/* the echo of every message sent so far: release the next one */
			char want[64] = "";

			for (int i = 0; i < g.released; i++)
				strcat(want, g.msgs[i]);
			if (g.released < g.nmsgs && !strcmp(g.got, want)) {
				g.released++;
				nghttp2_session_resume_data(g.s, g.id);
			}
		} else if (mode == SERVER_STREAM && memmem(g.got, g.gotn, "first", 5) && access(flag, F_OK) != 0) {
			test_write_file(flag, "1");
		}
	}
	printf("status=%s grpc-status=%s got=%zu closed=%d err=%u\n", g.status, g.grpc_status, g.gotn,
	       g.closed, g.err);
	if (mode == TIMED_OUT)	/* the head and "first" came, then the route timeout cut the stream */
		return g.closed && g.err && !strcmp(g.status, "200") && memmem(g.got, g.gotn, "first", 5) ? 0 : 9;
	if (!g.closed || strcmp(g.status, "200") || strcmp(g.grpc_status, "0"))
		return 6;
	if (bidi)
		return strcmp(g.got, "one|two|three|") ? 7 : 0;
	return memcmp(g.got, "\0\0\0\0\5first\0\0\0\0\6second", 21) || g.gotn != 21 ? 8 : 0;
}

static int run_call(struct zm_fixture_st *self, enum call mode)
{
	char netns[64];
	pid_t pid;
	int ws;

	snprintf(netns, sizeof(netns), "zm-%s-default-client", self->name);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0)
		_exit(grpc_call(netns, self->ip, self->dir, mode));
	if (waitpid(pid, &ws, 0) != pid || !WIFEXITED(ws))
		return -1;
	return WEXITSTATUS(ws);
}

TEST_F(st, grpc_bidi_stream_echoes_each_message_before_the_end)
{
	/* message 2 is sent only after the echo of message 1 came back through the waypoint */
	EXPECT_EQ(run_call(self, BIDI), 0);
	/* again: the connection's streams come and go */
	EXPECT_EQ(run_call(self, BIDI), 0);
}

TEST_F(st, grpc_server_stream_first_message_before_the_end)
{
	/* the server sends "second" (and its trailers) only after the client saw "first" */
	EXPECT_EQ(run_call(self, SERVER_STREAM), 0);
}

TEST_F(st, route_timeout_bounds_the_whole_stream)
{
	/* timeout: 1s on /timeout.*: the head and the first message pass, the
	 * stream is reset when the second does not come within the timeout;
	 * timeout: 0s (the other tests) never cuts */
	EXPECT_EQ(run_call(self, TIMED_OUT), 0);
}

/* A sparse file of BIG bytes, @dir/up.bin, its path in @file; 0 or -1. */
static int big_file(const char *dir, char *file, size_t sz)
{
	int fd, rc;

	snprintf(file, sz, "%s/up.bin", dir);
	fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -1;
	rc = ftruncate(fd, BIG);
	close(fd);
	return rc;
}

/* curl in the client pod; its output in @out. */
static int curl(struct zm_fixture_st *self, char *out, size_t sz, const char *args)
{
	time_t t0 = time(NULL);
	int rc = test_sh(out, sz, "%s lab exec client --name %s -- curl -s -m 100 %s", lab_ctl(), self->name, args);

	test_log("curl %s: %d %.80s (%lld s)", args, rc, out, (long long)(time(NULL) - t0));
	return rc;
}

TEST_F(st, big_bodies_up_and_down_with_bounded_memory)
{
	char args[512], out[4096], file[128];
	long before, after;

	ASSERT_OK(big_file(self->dir, file, sizeof(file)));
	before = test_proc_kib(self->wp, "VmHWM");
	ASSERT_GT(before, 0);
	/* HTTP/1.1 upload (content-length) and download */
	snprintf(args, sizeof(args), "-H 'Host: bulk' --data-binary @%s http://%s:8080/sink", file, self->ip);
	ASSERT_EQ(curl(self, out, sizeof(out), args), 0);
	EXPECT_STRSTR(out, "{\"bytes\":67108864}");
	/* chunked upload: the client does not say the length */
	snprintf(args, sizeof(args), "-H 'Host: bulk' -H 'transfer-encoding: chunked' -T %s http://%s:8080/sink",
		 file, self->ip);
	ASSERT_EQ(curl(self, out, sizeof(out), args), 0);
	EXPECT_STRSTR(out, "{\"bytes\":67108864}");
	snprintf(args, sizeof(args), "-o /dev/null -w '%%{http_code} %%{size_download}' -H 'Host: bulk' "
		 "http://%s:8080/big/%lld", self->ip, BIG);
	ASSERT_EQ(curl(self, out, sizeof(out), args), 0);
	EXPECT_STREQ(out, "200 67108864");
	/* h2c: the same both ways */
	snprintf(args, sizeof(args), "--http2-prior-knowledge -H 'Host: bulk' --data-binary @%s "
		 "http://%s:8080/sink", file, self->ip);
	ASSERT_EQ(curl(self, out, sizeof(out), args), 0);
	EXPECT_STRSTR(out, "{\"bytes\":67108864}");
	snprintf(args, sizeof(args), "--http2-prior-knowledge -o /dev/null -w '%%{http_code} %%{size_download}' "
		 "-H 'Host: bulk' http://%s:8080/big/%lld", self->ip, BIG);
	ASSERT_EQ(curl(self, out, sizeof(out), args), 0);
	EXPECT_STREQ(out, "200 67108864");
	after = test_proc_kib(self->wp, "VmHWM");
	test_log("waypoint VmHWM %ld KiB before, %ld KiB after 4 x 64 MiB", before, after);
	/* a proxy that holds a body whole grows by at least 64 MiB */
	EXPECT_LT(after - before, 64L * 1024);
}

TEST_F(st, grpc_upstream_big_messages_with_bounded_memory)
{
	char args[512], out[4096], file[128];
	long before, after;

	ASSERT_OK(big_file(self->dir, file, sizeof(file)));
	before = test_proc_kib(self->wp, "VmHWM");
	/* h2c client, h2c upstream (a port named grpc): 64 MiB down, then up */
	snprintf(args, sizeof(args), "--http2-prior-knowledge -o /dev/null -w '%%{http_code} %%{size_download}' "
		 "-H 'content-type: application/grpc' -H 'te: trailers' -d '' "
		 "-H 'Host: stream' http://%s:8080/test.Echo/Big", self->ip);
	ASSERT_EQ(curl(self, out, sizeof(out), args), 0);
	EXPECT_STREQ(out, "200 67108864");
	snprintf(args, sizeof(args), "--http2-prior-knowledge -H 'content-type: application/grpc' "
		 "-H 'te: trailers' --data-binary @%s -H 'Host: stream' http://%s:8080/test.Echo/Sink",
		 file, self->ip);
	ASSERT_EQ(curl(self, out, sizeof(out), args), 0);
	EXPECT_STREQ(out, "bytes=67108864");
	/* an HTTP/1.1 client of the same upstream: the body chunked, grpc-status as a chunked trailer */
	snprintf(args, sizeof(args), "-o /dev/null -w '%%{http_code} %%{size_download}' "
		 "-H 'content-type: application/grpc' -d '' -H 'Host: stream' http://%s:8080/test.Echo/Big",
		 self->ip);
	ASSERT_EQ(curl(self, out, sizeof(out), args), 0);
	EXPECT_STREQ(out, "200 67108864");
	snprintf(args, sizeof(args), "--raw -H 'content-type: application/grpc' -d '' "
		 "-H 'Host: stream' http://%s:8080/test.Echo/Sink", self->ip);
	ASSERT_EQ(curl(self, out, sizeof(out), args), 0);
	EXPECT_STRSTR(out, "bytes=0");
	EXPECT_STRSTR(out, "\r\n0\r\ngrpc-status: 0\r\n");
	after = test_proc_kib(self->wp, "VmHWM");
	test_log("waypoint VmHWM %ld KiB before, %ld KiB after 64 MiB down and up over h2c to h2c", before, after);
	EXPECT_LT(after - before, 64L * 1024);
}

/* In the client pod: GET 64 MiB, read nothing until the upstream stops
 * sending, report how far it got, then read it all. */
static int slow_get(const char *netns, const char *ip, const char *dir)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(8080) };
	char req[256], buf[65536], prog[128];
	long long got = 0, last = -1, sent = 0;
	int fd, saved, rcv = 64 * 1024;

	if (zm_netns_enter(netns, &saved))
		return 2;
	snprintf(prog, sizeof(prog), "%s/sent", dir);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	inet_pton(AF_INET, ip, &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		return 3;
	snprintf(req, sizeof(req), "GET /big/%lld HTTP/1.1\r\nHost: bulk\r\n\r\n", BIG);
	if (send(fd, req, strlen(req), 0) < 0)
		return 4;
	/* wait until the upstream is held back: its progress stops moving */
	for (int i = 0; i < 100; i++) {
		FILE *f;

		usleep(300000);
		if ((f = fopen(prog, "r"))) {
			if (fscanf(f, "%lld", &sent) != 1)
				sent = 0;
			fclose(f);
		}
		if (sent == last && sent > 0)
			break;
		last = sent;
	}
	printf("upstream sent %lld of %lld while the client read nothing\n", sent, BIG);
	fflush(stdout);
	if (sent >= BIG)
		return 5;
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);

		if (n <= 0)
			break;
		got += n;
		if (got >= BIG)
			break;
	}
	printf("client read %lld bytes (with the head)\n", got);
	return got > BIG ? 0 : 6;
}

TEST_F(st, slow_reader_holds_the_upstream_back)
{
	char netns[64];
	long before, after;
	pid_t pid;
	int ws;

	snprintf(netns, sizeof(netns), "zm-%s-default-client", self->name);
	before = test_proc_kib(self->wp, "VmHWM");
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		_exit(slow_get(netns, self->ip, self->dir));
	ASSERT_EQ(waitpid(pid, &ws, 0), pid);
	ASSERT_TRUE(WIFEXITED(ws));
	EXPECT_EQ(WEXITSTATUS(ws), 0);
	after = test_proc_kib(self->wp, "VmHWM");
	test_log("waypoint VmHWM %ld KiB before, %ld KiB after", before, after);
	EXPECT_LT(after - before, 64L * 1024);
}

/* ---- through the HBONE front: a test client speaking mTLS + CONNECT ---- */

struct hbc {
	struct zm_hbone *hb;
	int status;
	long long got;
	char tail[256];
	bool ended, closed;
};

static void hc_resp(void *ud, struct zm_hbone *h, int32_t id, int st)
{
	(void)h; (void)id;
	((struct hbc *)ud)->status = st;
}

static void hc_data(void *ud, struct zm_hbone *h, int32_t id, const uint8_t *d, size_t n)
{
	struct hbc *c = ud;
	size_t keep = n < sizeof(c->tail) - 1 ? n : sizeof(c->tail) - 1;

	(void)h; (void)id;
	c->got += (long long)n;
	memcpy(c->tail, d + n - keep, keep);
	c->tail[keep] = 0;
}

static void hc_end(void *ud, struct zm_hbone *h, int32_t id)
{
	(void)h; (void)id;
	((struct hbc *)ud)->ended = true;
}

static void hc_close(void *ud, struct zm_hbone *h, int32_t id, uint32_t err)
{
	(void)h; (void)id; (void)err;
	((struct hbc *)ud)->closed = true;
}

/* Flush, then read once (up to 10 ms). -1 when the connection failed. */
static int hb_step(int fd, struct zm_hbone *hb)
{
	const void *out;
	size_t n;
	char buf[65536];
	struct pollfd pf = { .fd = fd, .events = POLLIN };

	while ((n = zm_hbone_output(hb, &out)) > 0) {
		ssize_t w = send(fd, out, n, MSG_NOSIGNAL);

		if (w <= 0)
			return -1;
		zm_hbone_consumed(hb, (size_t)w);
	}
	if (poll(&pf, 1, 10) > 0) {
		ssize_t r = recv(fd, buf, sizeof(buf), 0);

		if (r <= 0 || zm_hbone_input(hb, buf, (size_t)r))
			return -1;
	}
	return 0;
}

/*
 * In the client pod: over one HBONE connection to the waypoint, CONNECT to
 * @authority and GET 64 MiB, then on a second stream POST 64 MiB. 0 when
 * both went through whole.
 */
static int hbone_bulk(const char *netns, const char *cadir, const char *wp_ip, const char *authority)
{
	static const struct zm_hbone_cbs cbs = { NULL, hc_resp, hc_data, hc_end, hc_close };
	struct zm_error e = { "" };
	struct zm_spiffe_id me, want;
	struct zm_ca *ca = NULL;
	char *kpem = NULL, *csr = NULL, *chain = NULL, req[256];
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(15008) };
	struct hbc cl = { 0 };
	struct zm_hbone *hb = NULL;
	SSL_CTX *ctx;
	int32_t sid;
	int fd, saved;
	time_t start = time(NULL);
	static char zeros[16384];

	if (zm_netns_enter(netns, &saved) || zm_ca_open(cadir, &ca, &e) ||
	    zm_spiffe_make(&me, "cluster.local", "default", "client") ||
	    zm_spiffe_make(&want, "cluster.local", "default", "default") ||
	    zm_key_csr(&me, &kpem, &csr, &e) || zm_ca_sign(ca, csr, &me, 3600, &chain, &e) ||
	    !(ctx = zm_tls_ctx_new(false, kpem, chain, zm_ca_bundle(ca), "cluster.local", &e)) ||
	    zm_hbone_new(ctx, false, &cbs, &cl, &hb)) {
		fprintf(stderr, "hbone client setup: %s\n", e.msg);
		return 2;
	}
	cl.hb = hb;
	zm_tls_expect_peer(zm_hbone_ssl(hb), &want);
	inet_pton(AF_INET, wp_ip, &sa.sin_addr);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		return 3;
	while (!zm_hbone_ready(hb) && time(NULL) - start < 10)
		if (hb_step(fd, hb))
			return 4;
	/* down */
	if (zm_hbone_open(hb, authority, NULL, 0, &sid))
		return 5;
	snprintf(req, sizeof(req), "GET /big/%lld HTTP/1.1\r\nHost: bulk\r\nConnection: close\r\n\r\n", BIG);
	if (zm_hbone_send(hb, sid, req, strlen(req)) || zm_hbone_end(hb, sid))
		return 6;
	while (!cl.ended && !cl.closed && time(NULL) - start < 90)
		if (hb_step(fd, hb))
			return 7;
	printf("hbone down: CONNECT %d, %lld bytes, %lld s\n", cl.status, cl.got, (long long)(time(NULL) - start));
	if (cl.status != 200 || cl.got < BIG)
		return 8;
	/* up */
	cl = (struct hbc){ .hb = hb };
	if (zm_hbone_open(hb, authority, NULL, 0, &sid))
		return 9;
	snprintf(req, sizeof(req), "POST /sink HTTP/1.1\r\nHost: bulk\r\nContent-Length: %lld\r\n"
		 "Connection: close\r\n\r\n", BIG);
	while (!cl.status && time(NULL) - start < 90)
		if (hb_step(fd, hb))
			return 10;
	if (zm_hbone_send(hb, sid, req, strlen(req)))
		return 11;
	for (long long sent = 0; sent < BIG && time(NULL) - start < 90;) {
		int rc = zm_hbone_send(hb, sid, zeros, sizeof(zeros));

		if (rc == 0)
			sent += (long long)sizeof(zeros);
		else if (rc != -ENOBUFS)
			return 12;
		if ((rc || sent % (1 << 20) == 0) && hb_step(fd, hb))
			return 13;
	}
	zm_hbone_end(hb, sid);
	while (!cl.ended && !cl.closed && time(NULL) - start < 90)
		if (hb_step(fd, hb))
			return 14;
	printf("hbone up: CONNECT %d, answer ...%s, %lld s, ended %d closed %d\n", cl.status, cl.tail,
	       (long long)(time(NULL) - start), cl.ended, cl.closed);
	return strstr(cl.tail, "{\"bytes\":67108864}") ? 0 : 15;
}

TEST_F(st, hbone_front_streams_big_bodies)
{
	char netns[64], cadir[128], vip[64], auth[96];
	long before, after;
	pid_t pid;
	int ws;

	ASSERT_EQ(test_sh(vip, sizeof(vip), "%s lab status --name %s -o json | python3 -c "
			  "\"import json,sys; print([s['clusterIP'] for s in json.load(sys.stdin)['services'] "
			  "if s['name']=='bulk'][0])\"", lab_ctl(), self->name), 0);
	vip[strcspn(vip, "\n")] = 0;
	snprintf(auth, sizeof(auth), "%s:80", vip);
	snprintf(netns, sizeof(netns), "zm-%s-default-client", self->name);
	snprintf(cadir, sizeof(cadir), "/run/zmesh/lab/%s/ca", self->name);
	before = test_proc_kib(self->wp, "VmHWM");
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		_exit(hbone_bulk(netns, cadir, self->ip, auth));
	ASSERT_EQ(waitpid(pid, &ws, 0), pid);
	ASSERT_TRUE(WIFEXITED(ws));
	EXPECT_EQ(WEXITSTATUS(ws), 0);
	after = test_proc_kib(self->wp, "VmHWM");
	test_log("waypoint VmHWM %ld KiB before, %ld KiB after 2 x 64 MiB over HBONE", before, after);
	EXPECT_LT(after - before, 64L * 1024);
}


/* ---- the gateway's TLS front (its own lab) ---- */

/* and the Secret bulk-cred of bulk.crt and bulk.key */
static const char gw_cluster[] =
	"apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n---\n"
	"apiVersion: v1\nkind: Namespace\nmetadata: {name: istio-system}\n---\n"
	"apiVersion: v1\nkind: Pod\nmetadata: {name: up, labels: {app: up}}\n"
	"spec:\n  nodeName: n1\n  containers:\n  - {name: c, command: [sleep, \"3600\"]}\n---\n"
	"apiVersion: v1\nkind: Service\nmetadata: {name: bulk}\n"
	"spec:\n  selector: {app: up}\n  ports:\n  - {name: http, port: 80, targetPort: 8080}\n---\n"
	"apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: bulk-gw}\n"
	"spec:\n  selector: {istio: ingressgateway}\n  servers:\n"
	"  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [bulk.example.com]\n"
	"    tls: {mode: SIMPLE, credentialName: bulk-cred}\n---\n"
	"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: bulk}\n"
	"spec:\n  hosts: [bulk.example.com]\n  gateways: [bulk-gw]\n  http:\n"
	"  - route: [{destination: {host: bulk, port: {number: 80}}}]\n---\n";

FIXTURE(gws) {
	char name[16];
	char dir[64];
	pid_t srv;
	pid_t gw;
};

FIXTURE_SETUP(gws)
{
	char path[128], out[4096], pod[128];
	FILE *f;

	REQUIRE_ROOT();
	ASSERT_OK(lab_init_dir(self->name, sizeof(self->name), self->dir, sizeof(self->dir), "t", 0755));
	ASSERT_EQ(test_sh(NULL, 0, "cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
			  "-nodes -keyout bulk.key -out bulk.crt -days 2 -subj /CN=bulk.example.com "
			  "-addext subjectAltName=DNS:bulk.example.com >/dev/null 2>&1", self->dir), 0);
	snprintf(path, sizeof(path), "%s/cluster.yaml", self->dir);
	f = fopen(path, "w");
	ASSERT_OK_PTR(f);
	fputs(gw_cluster, f);
	lab_secret_head(f, "bulk-cred");
	lab_secret_file(f, "tls.crt", self->dir, "bulk.crt");
	lab_secret_file(f, "tls.key", self->dir, "bulk.key");
	ASSERT_EQ(fclose(f), 0);
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab up --no-mesh -f %s --name %s", lab_ctl(), path,
			  self->name), 0);
	ASSERT_EQ(test_sh(pod, sizeof(pod), "%s lab status --name %s -o json | python3 -c "
			  "\"import json,sys; print([p['namespace'] + '-' + p['name'] for p in "
			  "json.load(sys.stdin)['pods'] if p['labels'].get('istio')=='ingressgateway'][0])\"",
			  lab_ctl(), self->name), 0);
	pod[strcspn(pod, "\n")] = 0;
	self->srv = fork_servers(self->name, self->dir);
	ASSERT_GE(self->srv, 0);
	ASSERT_OK(lab_poll(out, sizeof(out), "200", 100, 100000, "%s lab exec --outside --name %s -- curl -sk "
			   "-o /dev/null -w '%%{http_code}' https://bulk.example.com/sink", lab_ctl(), self->name));
	self->gw = pid_in_pod(self->name, pod, "waypoint");
	ASSERT_GT(self->gw, 0);
}

FIXTURE_TEARDOWN(gws)
{
	if (self->srv > 0)
		kill_child((void *)(intptr_t)self->srv);
	lab_remove(self->name, self->dir);
}

static int outside_curl(struct zm_fixture_gws *self, char *out, size_t sz, const char *args)
{
	int rc = test_sh(out, sz, "%s lab exec --outside --name %s -- curl -sk -m 60 %s", lab_ctl(),
			 self->name, args);

	test_log("curl %s: %d %.80s", args, rc, out);
	return rc;
}

TEST_F(gws, gateway_tls_front_streams_big_bodies)
{
	char args[512], out[4096], file[128];
	long before, after;

	ASSERT_OK(big_file(self->dir, file, sizeof(file)));
	before = test_proc_kib(self->gw, "VmHWM");
	ASSERT_GT(before, 0);
	for (int h2 = 0; h2 < 2; h2++) {
		const char *v = h2 ? "--http2" : "--http1.1";

		snprintf(args, sizeof(args), "%s --data-binary @%s https://bulk.example.com/sink", v, file);
		ASSERT_EQ(outside_curl(self, out, sizeof(out), args), 0);
		EXPECT_STRSTR(out, "{\"bytes\":67108864}");
		snprintf(args, sizeof(args), "%s -o /dev/null -w '%%{http_version} %%{http_code} %%{size_download}' "
			 "https://bulk.example.com/big/%lld", v, BIG);
		ASSERT_EQ(outside_curl(self, out, sizeof(out), args), 0);
		EXPECT_STREQ(out, h2 ? "2 200 67108864" : "1.1 200 67108864");
	}
	after = test_proc_kib(self->gw, "VmHWM");
	test_log("gateway VmHWM %ld KiB before, %ld KiB after 4 x 64 MiB over TLS", before, after);
	EXPECT_LT(after - before, 64L * 1024);
}
