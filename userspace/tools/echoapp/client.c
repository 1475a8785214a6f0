// SPDX-License-Identifier: Apache-2.0
/* echoapp client: send N requests, print who answered. Blocking I/O on one
 * thread per connection: this is a test client, not the load generator. */
#include <errno.h>
#include <jansson.h>
#include <llhttp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "echoapp.h"

struct copts {
	char scheme[8], host[256], port[8], path[2048];
	int n, conc, timeout_ms;
	bool http2, json;
	const char *method;
	const char *headers[32];
	int nheaders;
};

/* Tally of answers; one per thread, merged at the end. */
struct tally {
	int requests, ok, errors;
	json_t *pods, *codes, *versions;
};

static void count(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	json_object_set_new(obj, key, json_integer(v ? json_integer_value(v) + 1 : 1));
}

static void record(struct tally *t, int code, const char *body, size_t len)
{
	json_t *j = body ? json_loadb(body, len, 0, NULL) : NULL;
	char c[8];

	t->ok++;
	snprintf(c, sizeof(c), "%d", code);
	count(t->codes, c);
	if (j) {
		const char *pod = json_string_value(json_object_get(j, "pod"));
		const char *ver = json_string_value(json_object_get(j, "version"));

		count(t->pods, pod ? pod : "?");
		count(t->versions, ver && *ver ? ver : "-");
		json_decref(j);
	} else {
		count(t->pods, "?");
	}
}

static int dial(const struct copts *o)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	struct timeval tv = { o->timeout_ms / 1000, (o->timeout_ms % 1000) * 1000 };
	int fd = -1, one = 1;

	if (getaddrinfo(o->host, o->port, &hints, &res))
		return -EHOSTUNREACH;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

static int send_all(int fd, const void *d, size_t n)
{
	const char *p = d;

	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* ---- HTTP/1.1 ---- */

struct h1resp {
	char *body;
	size_t len, cap;
	bool done;
};

static int on_body(llhttp_t *p, const char *at, size_t n)
{
	struct h1resp *r = p->data;

	if (r->len + n > (1u << 20))
		return -1;	/* echoapp answers are small: this is not one */
	if (r->len + n + 1 > r->cap) {
		size_t cap = (r->len + n + 1) * 2;
		char *b = realloc(r->body, cap);

		if (!b)
			return -1;
		r->body = b;
		r->cap = cap;
	}
	memcpy(r->body + r->len, at, n);
	r->len += n;
	r->body[r->len] = 0;
	return 0;
}

static int on_complete(llhttp_t *p)
{
	((struct h1resp *)p->data)->done = true;
	return HPE_PAUSED;
}

/* host:port for Host and :authority, with brackets around an IPv6 literal. */
static void authority(const struct copts *o, char *out, size_t sz)
{
	snprintf(out, sz, strchr(o->host, ':') ? "[%s]:%s" : "%s:%s", o->host, o->port);
}

static int h1_one(const struct copts *o, int *fd, struct tally *t)
{
	llhttp_settings_t s;	/* per call: threads share no parser state */
	char req[8192], buf[16384], auth[300];
	struct h1resp r = { 0 };
	llhttp_t p;
	int len;

	authority(o, auth, sizeof(auth));
	len = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: echoapp\r\n",
		       o->method, o->path, auth);

	for (int i = 0; i < o->nheaders && len < (int)sizeof(req) - 4; i++)
		len += snprintf(req + len, sizeof(req) - (size_t)len, "%s\r\n", o->headers[i]);
	len += snprintf(req + len, sizeof(req) - (size_t)len, "\r\n");
	if (len >= (int)sizeof(req))
		return -1;
	llhttp_settings_init(&s);
	s.on_body = on_body;
	s.on_message_complete = on_complete;
	for (int attempt = 0; attempt < 2; attempt++) {
		if (*fd < 0)
			*fd = dial(o);
		if (*fd < 0)
			return -1;
		if (send_all(*fd, req, (size_t)len) == 0)
			break;
		close(*fd);
		*fd = -1;	/* the server closed a kept-alive connection: redial */
	}
	if (*fd < 0)
		return -1;
	llhttp_init(&p, HTTP_RESPONSE, &s);
	p.data = &r;
	while (!r.done) {
		ssize_t n = recv(*fd, buf, sizeof(buf), 0);
		llhttp_errno_t err;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0 && llhttp_finish(&p) == HPE_OK && r.done)
				break;
			break;
		}
		err = llhttp_execute(&p, buf, (size_t)n);
		if (err != HPE_OK && err != HPE_PAUSED)
			break;
	}
	if (!r.done) {
		free(r.body);
		close(*fd);
		*fd = -1;
		return -1;
	}
	record(t, p.status_code, r.body, r.len);
	if (!llhttp_should_keep_alive(&p)) {
		close(*fd);
		*fd = -1;
	}
	free(r.body);
	return 0;
}

/* ---- HTTP/2 (h2c prior knowledge), one stream at a time ---- */

struct h2state {
	int fd;
	int status;
	bool closed;
	struct h1resp body;
};

static ssize_t h2_send(nghttp2_session *s, const uint8_t *d, size_t n, int fl, void *u)
{
	struct h2state *st = u;

	(void)s; (void)fl;
	return send_all(st->fd, d, n) ? NGHTTP2_ERR_CALLBACK_FAILURE : (ssize_t)n;
}

static int h2_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *n, size_t nl,
		     const uint8_t *v, size_t vl, uint8_t fl, void *u)
{
	struct h2state *st = u;
	char code[4];

	(void)s; (void)f; (void)fl;
	if (nl == 7 && !memcmp(n, ":status", 7) && vl == 3) {
		memcpy(code, v, 3);
		code[3] = 0;
		st->status = atoi(code);
	}
	return 0;
}

static int h2_data(nghttp2_session *s, uint8_t fl, int32_t sid, const uint8_t *d, size_t n, void *u)
{
	struct h2state *st = u;
	llhttp_t fake = { .data = &st->body };

	(void)s; (void)fl; (void)sid;
	return on_body(&fake, (const char *)d, n) ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

static int h2_close(nghttp2_session *s, int32_t sid, uint32_t err, void *u)
{
	(void)s; (void)sid; (void)err;
	((struct h2state *)u)->closed = true;
	return 0;
}

static void h2_run(const struct copts *o, int nreq, struct tally *t)
{
	nghttp2_session_callbacks *cb;
	nghttp2_session *s = NULL;
	struct h2state st = { .fd = dial(o) };
	char auth[300];

	authority(o, auth, sizeof(auth));
	if (st.fd < 0 || nghttp2_session_callbacks_new(&cb)) {
		t->requests += nreq;
		t->errors += nreq;
		if (st.fd >= 0)
			close(st.fd);
		return;
	}
	nghttp2_session_callbacks_set_send_callback(cb, h2_send);
	nghttp2_session_callbacks_set_on_header_callback(cb, h2_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, h2_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, h2_close);
	nghttp2_session_client_new(&s, cb, &st);
	nghttp2_session_callbacks_del(cb);
	nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, NULL, 0);
	for (int i = 0; i < nreq; i++) {
		nghttp2_nv nv[36] = {
			{ (uint8_t *)":method", (uint8_t *)o->method, 7, strlen(o->method), 0 },
			{ (uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0 },
			{ (uint8_t *)":authority", (uint8_t *)auth, 10, strlen(auth), 0 },
			{ (uint8_t *)":path", (uint8_t *)o->path, 5, strlen(o->path), 0 },
		};
		char lower[32][256];
		size_t nnv = 4;

		for (int h = 0; h < o->nheaders; h++) {
			const char *colon = strchr(o->headers[h], ':');
			size_t nl = colon ? (size_t)(colon - o->headers[h]) : 0;

			if (!colon || nl >= sizeof(lower[0]))
				continue;
			for (size_t k = 0; k < nl; k++)
				lower[h][k] = (char)(o->headers[h][k] | 0x20);
			colon++;
			while (*colon == ' ')
				colon++;
			nv[nnv++] = (nghttp2_nv){ (uint8_t *)lower[h], (uint8_t *)colon, nl,
						  strlen(colon), 0 };
		}
		st.closed = false;
		st.status = 0;
		st.body.len = 0;
		t->requests++;
		if (nghttp2_submit_request(s, NULL, nv, nnv, NULL, NULL) < 0 ||
		    nghttp2_session_send(s)) {
			t->errors++;
			continue;
		}
		while (!st.closed) {
			uint8_t buf[16384];
			ssize_t n = recv(st.fd, buf, sizeof(buf), 0);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0 || nghttp2_session_mem_recv(s, buf, (size_t)n) < 0 ||
			    nghttp2_session_send(s))
				break;
		}
		if (st.closed && st.status)
			record(t, st.status, st.body.body, st.body.len);
		else
			t->errors++;
	}
	nghttp2_session_del(s);
	free(st.body.body);
	close(st.fd);
}

/* ---- TCP: a connection per request, asking WHOAMI ---- */

static int tcp_one(const struct copts *o, struct tally *t)
{
	char buf[2048];
	size_t got = 0;
	int fd = dial(o);

	if (fd < 0)
		return -1;
	if (send_all(fd, "WHOAMI\n", 7)) {
		close(fd);
		return -1;
	}
	while (got < sizeof(buf) - 1) {
		ssize_t n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);

		if (n <= 0)
			break;
		got += (size_t)n;
		if (memchr(buf, '\n', got))
			break;
	}
	close(fd);
	if (!got || !memchr(buf, '\n', got))
		return -1;
	buf[got] = 0;
	record(t, 0, buf, got);
	json_object_del(t->codes, "0");
	return 0;
}

struct job {
	const struct copts *o;
	int nreq;
	struct tally t;
	pthread_t th;
};

static void *run_job(void *arg)
{
	struct job *j = arg;
	int fd = -1;

	if (!strcmp(j->o->scheme, "http") && j->o->http2) {
		h2_run(j->o, j->nreq, &j->t);
		return NULL;
	}
	for (int i = 0; i < j->nreq; i++) {
		int rc;

		j->t.requests++;
		rc = !strcmp(j->o->scheme, "tcp") ? tcp_one(j->o, &j->t) : h1_one(j->o, &fd, &j->t);
		if (rc)
			j->t.errors++;
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

static int parse_url(const char *url, struct copts *o)
{
	const char *p = strstr(url, "://"), *host, *slash, *colon;
	size_t hl;

	if (!p || (size_t)(p - url) >= sizeof(o->scheme))
		return -1;
	memcpy(o->scheme, url, (size_t)(p - url));
	o->scheme[p - url] = 0;
	if (strcmp(o->scheme, "http") && strcmp(o->scheme, "tcp"))
		return -1;
	host = p + 3;
	slash = strchr(host, '/');
	if (!slash)
		slash = host + strlen(host);
	snprintf(o->path, sizeof(o->path), "%s", *slash ? slash : "/");
	if (*host == '[') {
		/* An IPv6 literal: [addr] or [addr]:port. */
		const char *close = memchr(host, ']', (size_t)(slash - host));

		if (!close || (close + 1 != slash && close[1] != ':'))
			return -1;
		colon = close + 1 != slash ? close + 1 : NULL;
		host++;
		hl = (size_t)(close - host);
	} else {
		colon = memchr(host, ':', (size_t)(slash - host));
		hl = (size_t)((colon ? colon : slash) - host);
	}
	if (!hl || hl >= sizeof(o->host))
		return -1;
	memcpy(o->host, host, hl);
	o->host[hl] = 0;
	if (colon) {
		size_t pl = (size_t)(slash - colon - 1);

		if (!pl || pl >= sizeof(o->port))
			return -1;
		memcpy(o->port, colon + 1, pl);
		o->port[pl] = 0;
	} else if (!strcmp(o->scheme, "http")) {
		strcpy(o->port, "80");
	} else {
		return -1;
	}
	return 0;
}

static void print_counts(const char *what, json_t *obj)
{
	const char *k;
	json_t *v;
	bool first = true;

	printf("%s:", what);
	json_object_foreach(obj, k, v) {
		printf("%s%s=%lld", first ? " " : " ", k, (long long)json_integer_value(v));
		first = false;
	}
	putchar('\n');
}

static void merge(json_t *into, json_t *from)
{
	const char *k;
	json_t *v;

	json_object_foreach(from, k, v) {
		json_t *o = json_object_get(into, k);

		json_object_set_new(into, k, json_integer((o ? json_integer_value(o) : 0) +
							  json_integer_value(v)));
	}
}

int echo_client(int argc, char **argv)
{
	struct copts o = { .n = 1, .conc = 1, .timeout_ms = 5000, .method = "GET" };
	struct tally all = { 0 };
	struct job *jobs;
	const char *url = NULL;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--http2")) {
			o.http2 = true;
		} else if (a[0] != '-') {
			url = a;
		} else if (!v) {
			goto usage;
		} else {
			if (!strcmp(a, "-n"))
				o.n = atoi(v);
			else if (!strcmp(a, "-c"))
				o.conc = atoi(v);
			else if (!strcmp(a, "-X"))
				o.method = v;
			else if (!strcmp(a, "--timeout"))
				o.timeout_ms = atoi(v);
			else if (!strcmp(a, "-o") && !strcmp(v, "json"))
				o.json = true;
			else if (!strcmp(a, "-H") && o.nheaders < 32 && strchr(v, ':'))
				o.headers[o.nheaders++] = v;
			else
				goto usage;
			i++;
		}
	}
	if (!url || parse_url(url, &o) || o.n < 1 || o.conc < 1 || o.conc > 256 ||
	    o.timeout_ms < 1)
		goto usage;
	if (o.conc > o.n)
		o.conc = o.n;
	jobs = calloc((size_t)o.conc, sizeof(*jobs));
	if (!jobs)
		return 1;
	for (int i = 0; i < o.conc; i++) {
		jobs[i].o = &o;
		jobs[i].nreq = o.n / o.conc + (i < o.n % o.conc);
		jobs[i].t.pods = json_object();
		jobs[i].t.codes = json_object();
		jobs[i].t.versions = json_object();
		pthread_create(&jobs[i].th, NULL, run_job, &jobs[i]);
	}
	all.pods = json_object();
	all.codes = json_object();
	all.versions = json_object();
	for (int i = 0; i < o.conc; i++) {
		pthread_join(jobs[i].th, NULL);
		all.requests += jobs[i].t.requests;
		all.ok += jobs[i].t.ok;
		all.errors += jobs[i].t.errors;
		merge(all.pods, jobs[i].t.pods);
		merge(all.codes, jobs[i].t.codes);
		merge(all.versions, jobs[i].t.versions);
		json_decref(jobs[i].t.pods);
		json_decref(jobs[i].t.codes);
		json_decref(jobs[i].t.versions);
	}
	free(jobs);
	if (o.json) {
		json_t *j = json_pack("{s:i, s:i, s:i, s:O, s:O, s:O}", "requests", all.requests,
				      "ok", all.ok, "errors", all.errors, "pods", all.pods,
				      "codes", all.codes, "versions", all.versions);

		json_dumpf(j, stdout, JSON_COMPACT | JSON_SORT_KEYS);
		putchar('\n');
		json_decref(j);
	} else {
		printf("requests %d, ok %d, errors %d\n", all.requests, all.ok, all.errors);
		print_counts("pod", all.pods);
		print_counts("version", all.versions);
		if (strcmp(o.scheme, "tcp"))
			print_counts("code", all.codes);
	}
	json_decref(all.pods);
	json_decref(all.codes);
	json_decref(all.versions);
	return all.errors ? 1 : 0;
usage:
	fprintf(stderr, "usage: echoapp client URL [-n N] [-c CONC] [--http2] [-H 'K: V']... "
		"[-X METHOD] [-o json] [--timeout MS]\n");
	return 2;
}
