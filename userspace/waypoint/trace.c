// SPDX-License-Identifier: Apache-2.0
/*
 * Tracing: trace context in (B3, W3C), fresh span ids out, Zipkin v2 spans
 * to a collector (waypoint.h has the contract).
 *
 * Spans carry what Envoy's Zipkin tracer reports in Istio: name
 * `<service fqdn>:<port>/` and a star, as Istio names its routes, localEndpoint
 * serviceName `<name>.<namespace>`, tags http.method, http.url,
 * http.protocol, http.status_code, response_flags, upstream_cluster,
 * guid:x-request-id, peer.address, user_agent, request_size, response_size,
 * istio.canonical_service, istio.canonical_revision, istio.namespace,
 * istio.mesh_id, component, and error=true on 5xx or a failed try.
 *
 * Export: one thread, a bounded queue of rendered spans; a POST of a JSON
 * array when FLUSH_SPANS are queued or FLUSH_MS after the oldest arrived,
 * at most POST_MAX spans per POST, a new connection each (httpc.h). A
 * failed POST drops its spans (counted): the collector being down must not
 * grow memory.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "zmesh/httpc.h"
#include "zmesh/json.h"
#include "zmesh/log.h"
#include "waypoint.h"

#define QUEUE_MAX 10000
#define FLUSH_SPANS 100
#define FLUSH_MS 1000
#define POST_MAX 1000
#define POST_TIMEOUT_MS 5000

static const char *url;
static double sampling;
static char service[200], ns[64], canonical[64];

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static char *queue[QUEUE_MAX];
static size_t qhead, qlen;
static int64_t oldest_ms;		/* when the oldest queued span arrived */
static bool stopping, running;
static pthread_t exporter;

static atomic_ullong n_sent, n_dropped_full, n_dropped_export, n_posts, n_posts_failed;

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static int64_t wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

/* ---- ids and incoming context ----------------------------------------------------- */

static void hex_id(char *out, const unsigned char *r, size_t bytes)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < bytes; i++) {
		out[2 * i] = hex[r[i] >> 4];
		out[2 * i + 1] = hex[r[i] & 15];
	}
	out[2 * bytes] = '\0';
	/* all zeros is "no id" in both B3 and W3C */
	if (strspn(out, "0") == 2 * bytes)
		out[2 * bytes - 1] = '1';
}

static void new_id(char out[17])
{
	unsigned char r[8];

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		memset(r, 0x5a, sizeof(r));
	hex_id(out, r, sizeof(r));
}

/* Exactly @n lower-case hex digits (@s is not NUL-terminated), not all zero. */
static bool is_id(const char *s, size_t len, size_t n)
{
	bool nonzero = false;

	if (len != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
		nonzero |= s[i] != '0';
	}
	return nonzero;
}

static const char *field(const struct zm_http_field *f, size_t nf, const char *name, size_t *len)
{
	size_t nl = strlen(name);

	for (size_t i = 0; i < nf; i++)
		if (f[i].name_len == nl && !strncasecmp(f[i].name, name, nl)) {
			*len = f[i].value_len;
			return f[i].value;
		}
	return NULL;
}

/* b3: {TraceId}-{SpanId}[-{SamplingState}[-{ParentSpanId}]] or just {SamplingState}. */
static bool parse_b3(struct wp_trace *t, const char *v, size_t n, int *sampled)
{
	const char *d1 = memchr(v, '-', n), *d2, *end = v + n;
	size_t tl;

	if (!d1) {
		if (n == 1 && (*v == '0' || *v == '1' || *v == 'd'))
			*sampled = *v != '0';
		return false;
	}
	tl = (size_t)(d1 - v);
	if (!is_id(v, tl, 16) && !is_id(v, tl, 32))
		return false;
	d2 = memchr(d1 + 1, '-', (size_t)(end - d1 - 1));
	if (!is_id(d1 + 1, (size_t)((d2 ? d2 : end) - d1 - 1), 16))
		return false;
	if (d2 && d2 + 2 <= end && (d2 + 2 == end || d2[2] == '-')) {
		if (d2[1] == '0' || d2[1] == '1' || d2[1] == 'd')
			*sampled = d2[1] != '0';
	}
	memcpy(t->trace_id, v, tl);
	t->trace_id[tl] = '\0';
	memcpy(t->parent_id, d1 + 1, 16);
	t->parent_id[16] = '\0';
	return true;
}

static bool parse_b3_multi(struct wp_trace *t, const struct zm_http_field *f, size_t nf, int *sampled)
{
	size_t tl = 0, sl = 0, xl = 0;
	const char *tid = field(f, nf, "x-b3-traceid", &tl), *sid = field(f, nf, "x-b3-spanid", &sl);
	const char *s = field(f, nf, "x-b3-sampled", &xl);

	if (s && ((xl == 1 && (*s == '0' || *s == '1')) || (xl == 4 && !strncasecmp(s, "true", 4)) ||
		  (xl == 5 && !strncasecmp(s, "false", 5))))
		*sampled = *s == '1' || *s == 't' || *s == 'T';
	if ((s = field(f, nf, "x-b3-flags", &xl)) && xl == 1 && *s == '1')
		*sampled = 1;	/* debug */
	if (!tid || !sid || (!is_id(tid, tl, 16) && !is_id(tid, tl, 32)) || !is_id(sid, sl, 16))
		return false;
	memcpy(t->trace_id, tid, tl);
	t->trace_id[tl] = '\0';
	memcpy(t->parent_id, sid, 16);
	t->parent_id[16] = '\0';
	return true;
}

/* traceparent: {version}-{trace-id}-{parent-id}-{flags}; version ff is invalid, later ones may add fields. */
static bool parse_traceparent(struct wp_trace *t, const char *v, size_t n, int *sampled)
{
	static const char hex[] = "0123456789abcdef";

	if (n < 55 || !v[0] || !v[1] || !v[53] || !v[54] ||
	    !strchr(hex, v[0]) || !strchr(hex, v[1]) || !memcmp(v, "ff", 2) ||
	    v[2] != '-' || v[35] != '-' || v[52] != '-' || (n > 55 && (!memcmp(v, "00", 2) || v[55] != '-')) ||
	    !is_id(v + 3, 32, 32) || !is_id(v + 36, 16, 16) || !strchr(hex, v[53]) || !strchr(hex, v[54]))
		return false;
	memcpy(t->trace_id, v + 3, 32);
	t->trace_id[32] = '\0';
	memcpy(t->parent_id, v + 36, 16);
	t->parent_id[16] = '\0';
	*sampled = (strchr(hex, v[54]) - hex) & 1;
	return true;
}

void wp_trace_begin(struct wp_trace *t, const struct zm_http_field *f, size_t nf, int64_t start_us)
{
	int sampled = -1;	/* the caller's decision, -1 none */
	const char *v;
	size_t n;

	memset(t, 0, sizeof(*t));
	if (!url)
		return;
	t->on = true;
	t->start_us = start_us ? start_us : wall_us();
	if ((v = field(f, nf, "b3", &n))) {
		t->b3_single = true;
		if (parse_b3(t, v, n, &sampled))
			goto have;
	}
	if (parse_b3_multi(t, f, nf, &sampled))
		goto have;
	if ((v = field(f, nf, "traceparent", &n)) && parse_traceparent(t, v, n, &sampled))
		goto have;
	{
		unsigned char r[16];

		/* a new trace: 128-bit id, no parent */
		if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
			memset(r, 0xa5, sizeof(r));
		hex_id(t->trace_id, r, sizeof(r));
		t->parent_id[0] = '\0';
	}
have:
	if (sampled < 0) {
		uint32_t r = 0;

		if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
			r = 0;
		sampled = (double)r / 4294967296.0 * 100.0 < sampling;
	}
	t->sampled = sampled;
	new_id(t->span_id);
	new_id(t->client_id);
}

/* ---- outgoing headers -------------------------------------------------------------- */

static const char *const trace_headers[] = {
	"traceparent", "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled",
	"x-b3-flags",
};

static void put(struct hlist *h, const char *n, const char *v)
{
	hl_add(h, n, strlen(n), v, strlen(v));
}

void wp_trace_inject(struct wp_trace *t, struct hlist *h)
{
	char v[128];

	if (!t->on)
		return;
	/* tracestate rides along untouched, as W3C asks of a proxy that keeps no state there */
	for (size_t i = 0; i < sizeof(trace_headers) / sizeof(trace_headers[0]); i++)
		hl_del(h, trace_headers[i]);
	snprintf(v, sizeof(v), "00-%s%s-%s-%s", strlen(t->trace_id) == 16 ? "0000000000000000" : "",
		 t->trace_id, t->client_id, t->sampled ? "01" : "00");
	put(h, "traceparent", v);
	put(h, "x-b3-traceid", t->trace_id);
	put(h, "x-b3-spanid", t->client_id);
	put(h, "x-b3-parentspanid", t->span_id);
	put(h, "x-b3-sampled", t->sampled ? "1" : "0");
	if (t->b3_single) {
		snprintf(v, sizeof(v), "%s-%s-%d-%s", t->trace_id, t->client_id, t->sampled, t->span_id);
		put(h, "b3", v);
	}
}

void wp_trace_try_begin(struct wp_trace *t, struct zm_buf *out, struct hlist *h)
{
	char old[17];

	if (!t->on)
		return;
	t->try_start_us = wall_us();
	if (t->ntries++ == 0)
		return;
	/* a retry is a new CLIENT span: swap its id into what was built for the first try */
	memcpy(old, t->client_id, sizeof(old));
	new_id(t->client_id);
	for (size_t i = 0; h && i < h->n; i++)
		for (char *p = h->v[i].v; (p = strstr(p, old)); p += 16)
			memcpy(p, t->client_id, 16);
	if (out && zm_buf_len(out)) {
		char *d = zm_buf_data(out), *end = memmem(d, zm_buf_len(out), "\r\n\r\n", 4);

		for (char *p = d; end && (p = memmem(p, (size_t)(end - p), old, 16)); p += 16)
			memcpy(p, t->client_id, 16);
	}
}

/* ---- spans ---------------------------------------------------------------------------- */

static void enqueue(struct zm_buf *span)
{
	char *s;

	if (!zm_buf_cstr(span) || !(s = strdup(zm_buf_cstr(span))))
		return;
	pthread_mutex_lock(&mu);
	if (qlen == QUEUE_MAX || stopping) {
		pthread_mutex_unlock(&mu);
		atomic_fetch_add(&n_dropped_full, 1);
		free(s);
		return;
	}
	if (!qlen)
		oldest_ms = mono_ms();
	queue[(qhead + qlen++) % QUEUE_MAX] = s;
	if (qlen == 1 || qlen == FLUSH_SPANS)
		pthread_cond_signal(&cv);
	pthread_mutex_unlock(&mu);
}

static void tag(struct zm_buf *b, bool *first, const char *k, const char *v, size_t len)
{
	zm_buf_puts(b, *first ? "" : ",");
	*first = false;
	zm_json_str(b, k, strlen(k));
	zm_buf_puts(b, ":");
	zm_json_str(b, v ? v : "-", v ? len : 1);
}

static void tag_s(struct zm_buf *b, bool *first, const char *k, const char *v)
{
	tag(b, first, k, v, v ? strlen(v) : 0);
}

/* "ip:port" or "[v6]:port" as a Zipkin endpoint body (without braces). */
static void endpoint(struct zm_buf *b, const char *addr, int port)
{
	unsigned char a[16];

	if (inet_pton(AF_INET, addr, a) == 1)
		zm_json_kv_str(b, 1, "ipv4", addr);
	else if (inet_pton(AF_INET6, addr, a) == 1)
		zm_json_kv_str(b, 1, "ipv6", addr);
	else
		return;
	if (port > 0)
		zm_json_kv_int(b, 0, "port", port);
}

static void span_name(char *out, size_t sz, const struct zm_l7_decision *d, const char *authority)
{
	if (d && d->svc && d->svc_port_idx >= 0)
		snprintf(out, sz, "%s:%d/*", d->svc->fqdn, d->svc->ports[d->svc_port_idx]);
	else
		snprintf(out, sz, "%s/*", authority && *authority ? authority : "-");
}

static void cluster_name(char *out, size_t sz, const struct zm_l7_decision *d)
{
	if (d && d->svc)
		snprintf(out, sz, "outbound|%d|%s|%s", d->svc_port_idx >= 0 ? d->svc->ports[d->svc_port_idx] : 0,
			 d->subset ? d->subset : "", d->svc->fqdn);
	else
		snprintf(out, sz, "-");
}

/* The common head of a span: ids, kind, name, times, localEndpoint; tags opened. */
static void span_head(struct zm_buf *b, const struct wp_trace *t, const char *id, const char *parent,
		      const char *kind, const char *name, int64_t ts, int64_t dur)
{
	zm_buf_puts(b, "{");
	zm_json_kv_str(b, 1, "traceId", t->trace_id);
	if (parent && *parent)
		zm_json_kv_str(b, 0, "parentId", parent);
	zm_json_kv_str(b, 0, "id", id);
	zm_json_kv_str(b, 0, "kind", kind);
	zm_buf_puts(b, ",\"name\":");
	zm_json_str(b, name, strlen(name));
	zm_json_kv_int(b, 0, "timestamp", ts);
	zm_json_kv_int(b, 0, "duration", dur > 0 ? dur : 1);
	zm_buf_puts(b, ",\"localEndpoint\":{");
	zm_json_kv_str(b, 1, "serviceName", service);
	zm_buf_puts(b, "}");
}

static void istio_tags(struct zm_buf *b, bool *first)
{
	tag_s(b, first, "component", "proxy");
	tag_s(b, first, "istio.canonical_service", canonical);
	tag_s(b, first, "istio.canonical_revision", "latest");
	tag_s(b, first, "istio.namespace", ns);
	tag_s(b, first, "istio.mesh_id", "cluster.local");
}

void wp_trace_try_end(struct wp_trace *t, const struct zm_l7_decision *d, const char *addr, int port,
		      int status)
{
	struct zm_buf b = { 0 };
	char name[400], cl[400], code[16];
	bool first = true;

	if (!t->on || !t->sampled)
		return;
	span_name(name, sizeof(name), d, NULL);
	cluster_name(cl, sizeof(cl), d);
	span_head(&b, t, t->client_id, t->span_id, "CLIENT", name, t->try_start_us, wall_us() - t->try_start_us);
	zm_buf_puts(&b, ",\"remoteEndpoint\":{");
	endpoint(&b, addr, port);
	zm_buf_puts(&b, "},\"tags\":{");
	snprintf(code, sizeof(code), "%d", status);
	tag_s(&b, &first, "upstream_cluster", cl);
	tag_s(&b, &first, "upstream_cluster.name", cl);
	tag_s(&b, &first, "http.status_code", code);
	tag_s(&b, &first, "peer.address", addr);
	istio_tags(&b, &first);
	if (status == 0 || status >= 500)
		tag_s(&b, &first, "error", "true");
	zm_buf_puts(&b, "}}");
	enqueue(&b);
	zm_buf_free(&b);
}

void wp_trace_end(struct wp_trace *t, const struct wp_trace_done *r)
{
	struct zm_buf b = { 0 }, u = { 0 };
	char name[400], cl[400], num[32], ip[64] = "";
	const char *colon;
	bool first = true;
	int port = 0;

	if (!t->on || !t->sampled)
		return;
	span_name(name, sizeof(name), r->d, r->authority);
	cluster_name(cl, sizeof(cl), r->d);
	span_head(&b, t, t->span_id, t->parent_id, "SERVER", name, t->start_us, wall_us() - t->start_us);
	/* the downstream peer, "ip:port" or "[v6]:port" */
	if (r->peer && (colon = strrchr(r->peer, ':'))) {
		const char *h = r->peer;
		size_t hl = (size_t)(colon - h);

		if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
			h++;
			hl -= 2;
		}
		if (hl < sizeof(ip)) {
			memcpy(ip, h, hl);
			ip[hl] = '\0';
		}
		port = atoi(colon + 1);
	}
	if (ip[0]) {
		zm_buf_puts(&b, ",\"remoteEndpoint\":{");
		endpoint(&b, ip, port);
		zm_buf_puts(&b, "}");
	}
	zm_buf_puts(&b, ",\"tags\":{");
	tag_s(&b, &first, "http.method", r->method);
	/* Envoy's http.url: scheme://authority/path as the client sent it */
	zm_buf_printf(&u, "%s://%s", r->tls ? "https" : "http", r->authority ? r->authority : "");
	zm_buf_append(&u, r->path ? r->path : "", r->path ? r->path_len : 0);
	tag(&b, &first, "http.url", zm_buf_data(&u), zm_buf_len(&u));
	tag_s(&b, &first, "http.protocol", r->proto);
	snprintf(num, sizeof(num), "%d", r->code);
	tag_s(&b, &first, "http.status_code", num);
	tag_s(&b, &first, "response_flags", r->flags && *r->flags ? r->flags : "-");
	tag_s(&b, &first, "upstream_cluster", cl);
	tag_s(&b, &first, "upstream_cluster.name", cl);
	tag_s(&b, &first, "guid:x-request-id", r->request_id);
	tag_s(&b, &first, "user_agent", r->user_agent);
	tag_s(&b, &first, "downstream_cluster", "-");
	if (ip[0])
		tag_s(&b, &first, "peer.address", ip);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)r->req_bytes);
	tag_s(&b, &first, "request_size", num);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)r->resp_bytes);
	tag_s(&b, &first, "response_size", num);
	istio_tags(&b, &first);
	if (r->code >= 500 || r->code == 0)
		tag_s(&b, &first, "error", "true");
	zm_buf_puts(&b, "}}");
	enqueue(&b);
	zm_buf_free(&b);
	zm_buf_free(&u);
}

/* ---- export ------------------------------------------------------------------------------ */

static void post(char **spans, size_t n)
{
	struct zm_httpc_opts o = { .timeout_ms = POST_TIMEOUT_MS, .max_body = 64 * 1024,
				   .content_type = "application/json" };
	struct zm_buf body = { 0 }, resp = { 0 };
	struct zm_error e = { "" };
	int status = 0, rc;

	zm_buf_puts(&body, "[");
	for (size_t i = 0; i < n; i++) {
		if (i)
			zm_buf_puts(&body, ",");
		zm_buf_puts(&body, spans[i]);
	}
	zm_buf_puts(&body, "]");
	rc = zm_buf_cstr(&body) ? zm_httpc_request("POST", url, zm_buf_data(&body), zm_buf_len(&body), &o,
						   &status, &resp, &e) : -ENOMEM;
	atomic_fetch_add(&n_posts, 1);
	if (rc < 0 || status < 200 || status > 299) {
		static int64_t last_log;
		int64_t now = mono_ms();

		atomic_fetch_add(&n_posts_failed, 1);
		atomic_fetch_add(&n_dropped_export, n);
		/* once a minute at most: a down collector must not flood the log */
		if (!last_log || now - last_log > 60000) {
			last_log = now;
			if (rc < 0)
				zm_log_warn("trace: posting %zu spans to %s failed: %s", n, url, e.msg);
			else
				zm_log_warn("trace: posting %zu spans to %s: HTTP %d", n, url, status);
		}
	} else {
		atomic_fetch_add(&n_sent, n);
	}
	zm_buf_free(&body);
	zm_buf_free(&resp);
}

static void *export_thread(void *arg)
{
	static char *batch[POST_MAX];

	(void)arg;
	pthread_mutex_lock(&mu);
	for (;;) {
		size_t n = 0;

		while (!qlen && !stopping)
			pthread_cond_wait(&cv, &mu);
		if (!qlen && stopping)
			break;
		/* wait for a full batch or the flush deadline of the oldest span */
		while (qlen < FLUSH_SPANS && !stopping && mono_ms() - oldest_ms < FLUSH_MS) {
			struct timespec ts;
			int64_t wait = FLUSH_MS - (mono_ms() - oldest_ms);

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += wait / 1000;
			ts.tv_nsec += (wait % 1000) * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&cv, &mu, &ts);
		}
		while (qlen && n < POST_MAX) {
			batch[n++] = queue[qhead];
			qhead = (qhead + 1) % QUEUE_MAX;
			qlen--;
		}
		oldest_ms = mono_ms();
		pthread_mutex_unlock(&mu);
		post(batch, n);
		for (size_t i = 0; i < n; i++)
			free(batch[i]);
		pthread_mutex_lock(&mu);
	}
	pthread_mutex_unlock(&mu);
	return NULL;
}

int wp_trace_init(const struct wp_opts *o)
{
	struct zm_error e = { "" };
	struct zm_url u;
	const char *n;

	if (!o->zipkin)
		return 0;
	if (zm_url_parse(o->zipkin, &u, &e) < 0) {
		zm_log_error("--zipkin: %s", e.msg);
		return -EINVAL;
	}
	if (!(o->trace_sampling >= 0 && o->trace_sampling <= 100)) {
		zm_log_error("--trace-sampling: want a percentage from 0 to 100");
		return -EINVAL;
	}
	url = o->zipkin;
	sampling = o->trace_sampling;
	n = o->gateway ? o->gateway_ns : getenv("POD_NAMESPACE");
	snprintf(ns, sizeof(ns), "%s", n && *n ? n : "default");
	snprintf(canonical, sizeof(canonical), "%s", o->name);
	snprintf(service, sizeof(service), "%s.%s", o->name, ns);
	if (pthread_create(&exporter, NULL, export_thread, NULL)) {
		url = NULL;
		return -EAGAIN;
	}
	running = true;
	zm_log_info("trace: Zipkin spans to %s, sampling %.2f%% of new traces", url, sampling);
	return 0;
}

void wp_trace_shutdown(void)
{
	if (!running)
		return;
	pthread_mutex_lock(&mu);
	stopping = true;
	pthread_cond_signal(&cv);
	pthread_mutex_unlock(&mu);
	pthread_join(exporter, NULL);
	running = false;
}

void wp_trace_metrics(struct zm_buf *b)
{
	size_t q;

	if (!url)
		return;
	pthread_mutex_lock(&mu);
	q = qlen;
	pthread_mutex_unlock(&mu);
	zm_buf_printf(b,
		      "# TYPE zmesh_trace_spans_sent_total counter\nzmesh_trace_spans_sent_total %llu\n"
		      "# TYPE zmesh_trace_spans_dropped_total counter\n"
		      "zmesh_trace_spans_dropped_total{reason=\"queue_full\"} %llu\n"
		      "zmesh_trace_spans_dropped_total{reason=\"export_failed\"} %llu\n"
		      "# TYPE zmesh_trace_reports_total counter\nzmesh_trace_reports_total %llu\n"
		      "# TYPE zmesh_trace_reports_failed_total counter\nzmesh_trace_reports_failed_total %llu\n"
		      "# TYPE zmesh_trace_queue_spans gauge\nzmesh_trace_queue_spans %zu\n",
		      (unsigned long long)atomic_load(&n_sent), (unsigned long long)atomic_load(&n_dropped_full),
		      (unsigned long long)atomic_load(&n_dropped_export), (unsigned long long)atomic_load(&n_posts),
		      (unsigned long long)atomic_load(&n_posts_failed), q);
}
