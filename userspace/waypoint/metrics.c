// SPDX-License-Identifier: Apache-2.0
/*
 * Istio's standard request metrics (istio_requests_total,
 * istio_request_duration_milliseconds, istio_request_bytes,
 * istio_response_bytes) with Istio's labels and buckets, the admin
 * listeners (:15020 /metrics, :15021 /healthz/ready) and the JSON access log.
 *
 * One series per label set, in a mutex-protected list: a waypoint sees a
 * bounded number of (source, destination, code, flags) combinations.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "zmesh/json.h"
#include "zmesh/log.h"
#include "waypoint.h"

/* Istio's default buckets. */
static const double dur_b[] = { 0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000,
				10000, 30000, 60000, 300000, 600000, 1800000, 3600000 };
static const double size_b[] = { 1, 10, 100, 1000, 10000, 100000, 1000000, 10000000,
				 100000000, 1000000000 };
#define NDUR (sizeof(dur_b) / sizeof(dur_b[0]))
#define NSIZE (sizeof(size_b) / sizeof(size_b[0]))
#define MAX_SERIES 10000

struct series {
	char *labels;			/* rendered label set, without braces */
	uint64_t count;
	uint64_t dur[NDUR], reqb[NSIZE], respb[NSIZE];
	double dur_sum, reqb_sum, respb_sum;
	struct series *next;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct series *all;
static size_t nseries;

static void label(struct zm_buf *b, const char *k, const char *v, bool first)
{
	zm_buf_printf(b, "%s%s=\"", first ? "" : ",", k);
	for (const char *p = v && *v ? v : "unknown"; *p; p++) {
		if (*p == '"' || *p == '\\')
			zm_buf_append(b, "\\", 1);
		if (*p == '\n')
			zm_buf_puts(b, "\\n");
		else
			zm_buf_append(b, p, 1);
	}
	zm_buf_append(b, "\"", 1);
}

void wp_metrics_record(const struct wp_labels *l, double dur_ms, uint64_t req_bytes,
		       uint64_t resp_bytes)
{
	struct zm_buf b = { 0 };
	struct series *s;
	char code[16];

	snprintf(code, sizeof(code), "%d", l->code);
	label(&b, "reporter", wp_options && wp_options->gateway ? "source" : "waypoint", true);
	label(&b, "source_workload", l->src_workload, false);
	label(&b, "source_workload_namespace", l->src_ns, false);
	label(&b, "source_principal", l->src_principal, false);
	label(&b, "source_app", l->src_app, false);
	label(&b, "source_version", l->src_version, false);
	label(&b, "destination_workload", l->dst_workload, false);
	label(&b, "destination_workload_namespace", l->dst_ns, false);
	label(&b, "destination_app", l->dst_app, false);
	label(&b, "destination_version", l->dst_version, false);
	label(&b, "destination_service", l->dst_service, false);
	label(&b, "destination_service_name", l->dst_service_name, false);
	label(&b, "destination_service_namespace", l->dst_service_ns, false);
	label(&b, "destination_cluster", "Kubernetes", false);
	label(&b, "request_protocol", "http", false);
	label(&b, "response_code", code, false);
	zm_buf_puts(&b, ",grpc_response_status=\"\"");
	label(&b, "response_flags", l->flags && *l->flags ? l->flags : "-", false);
	label(&b, "connection_security_policy", l->mtls ? "mutual_tls" : "none", false);
	if (!zm_buf_cstr(&b)) {
		zm_buf_free(&b);
		return;
	}
	pthread_mutex_lock(&mu);
	for (s = all; s; s = s->next)
		if (!strcmp(s->labels, b.base + b.off))
			break;
	if (!s && nseries < MAX_SERIES && (s = calloc(1, sizeof(*s)))) {
		s->labels = strdup(b.base + b.off);
		if (!s->labels) {
			free(s);
			s = NULL;
		} else {
			s->next = all;
			all = s;
			nseries++;
		}
	}
	if (s) {
		s->count++;
		for (size_t i = 0; i < NDUR; i++)
			s->dur[i] += dur_ms <= dur_b[i];
		for (size_t i = 0; i < NSIZE; i++) {
			s->reqb[i] += (double)req_bytes <= size_b[i];
			s->respb[i] += (double)resp_bytes <= size_b[i];
		}
		s->dur_sum += dur_ms;
		s->reqb_sum += (double)req_bytes;
		s->respb_sum += (double)resp_bytes;
	}
	pthread_mutex_unlock(&mu);
	zm_buf_free(&b);
}

static void hist(struct zm_buf *b, const char *name, const struct series *s, const double *bounds,
		 const uint64_t *c, size_t n, double sum)
{
	for (size_t i = 0; i < n; i++)
		zm_buf_printf(b, "%s_bucket{%s,le=\"%g\"} %llu\n", name, s->labels, bounds[i],
			      (unsigned long long)c[i]);
	zm_buf_printf(b, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, s->labels,
		      (unsigned long long)s->count);
	zm_buf_printf(b, "%s_sum{%s} %.3f\n%s_count{%s} %llu\n", name, s->labels, sum, name,
		      s->labels, (unsigned long long)s->count);
}

int wp_metrics_render(struct zm_buf *b)
{
	pthread_mutex_lock(&mu);
	zm_buf_puts(b, "# TYPE istio_requests_total counter\n");
	for (struct series *s = all; s; s = s->next)
		zm_buf_printf(b, "istio_requests_total{%s} %llu\n", s->labels,
			      (unsigned long long)s->count);
	zm_buf_puts(b, "# TYPE istio_request_duration_milliseconds histogram\n");
	for (struct series *s = all; s; s = s->next)
		hist(b, "istio_request_duration_milliseconds", s, dur_b, s->dur, NDUR, s->dur_sum);
	zm_buf_puts(b, "# TYPE istio_request_bytes histogram\n");
	for (struct series *s = all; s; s = s->next)
		hist(b, "istio_request_bytes", s, size_b, s->reqb, NSIZE, s->reqb_sum);
	zm_buf_puts(b, "# TYPE istio_response_bytes histogram\n");
	for (struct series *s = all; s; s = s->next)
		hist(b, "istio_response_bytes", s, size_b, s->respb, NSIZE, s->respb_sum);
	zm_buf_printf(b, "# TYPE zmesh_waypoint_connections gauge\nzmesh_waypoint_connections %d\n",
		      atomic_load(&wp_nconns));
	pthread_mutex_unlock(&mu);
	wp_trace_metrics(b);
	return zm_buf_cstr(b) ? 0 : -ENOMEM;
}

/* One admin request per connection: GET /metrics or /healthz/ready. */
static void admin_serve(int fd)
{
	char req[2048];
	size_t n = 0;
	struct zm_buf body = { 0 }, out = { 0 };
	int code = 404;

	while (n < sizeof(req) - 1) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, 2000) <= 0)
			goto out;
		r = read(fd, req + n, sizeof(req) - 1 - n);
		if (r <= 0)
			goto out;
		n += (size_t)r;
		req[n] = '\0';
		if (strstr(req, "\r\n\r\n"))
			break;
	}
	if (!strncmp(req, "GET /metrics ", 13) || !strncmp(req, "GET /stats/prometheus ", 22)) {
		code = 200;
		wp_metrics_render(&body);
	} else if (!strncmp(req, "GET /healthz/ready ", 19)) {
		struct wp_snap *s = wp_snap_get();

		code = s ? 200 : 503;
		zm_buf_puts(&body, s ? "ready\n" : "no config\n");
		wp_snap_put(s);
	} else {
		zm_buf_puts(&body, "not found\n");
	}
	zm_buf_printf(&out, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; version=0.0.4\r\n"
		      "Content-Length: %zu\r\nConnection: close\r\n\r\n", code, wp_reason(code),
		      zm_buf_len(&body));
	zm_buf_append(&out, zm_buf_data(&body), zm_buf_len(&body));
	for (size_t off = 0; off < zm_buf_len(&out);) {
		ssize_t w = send(fd, zm_buf_data(&out) + off, zm_buf_len(&out) - off, MSG_NOSIGNAL);

		if (w <= 0)
			break;
		off += (size_t)w;
	}
out:
	zm_buf_free(&body);
	zm_buf_free(&out);
	close(fd);
}

void *wp_admin_thread(void *arg)
{
	int lfd = (int)(intptr_t)arg;

	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			usleep(10000);
			continue;
		}
		admin_serve(fd);
	}
	return NULL;
}

static FILE *alog;
static pthread_mutex_t alog_mu = PTHREAD_MUTEX_INITIALIZER;

int wp_access_log_open(const char *where)
{
	if (!where || !strcmp(where, "-")) {
		alog = stdout;
		return 0;
	}
	if (!strcmp(where, "off"))
		return 0;
	alog = fopen(where, "ae");
	return alog ? 0 : -errno;
}

void wp_access_log(struct zm_buf *line)
{
	if (!alog)
		return;
	pthread_mutex_lock(&alog_mu);
	fwrite(zm_buf_data(line), 1, zm_buf_len(line), alog);
	fputc('\n', alog);
	fflush(alog);
	pthread_mutex_unlock(&alog_mu);
}
