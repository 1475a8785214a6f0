// SPDX-License-Identifier: Apache-2.0
/* echoapp serve: epoll workers answering HTTP/1.1, HTTP/2 and TCP echo. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "echoapp.h"
#include "zmesh/log.h"

#define OUT_MAX (16u << 20)	/* a peer that never reads gets cut off here */
#define MAX_TIMERS 4096

enum kind { K_LISTEN_HTTP, K_LISTEN_TCP, K_HTTP, K_H2, K_TCP };

struct sbuf {
	char *p;
	size_t len, cap;
};

static int sbuf_add(struct sbuf *b, const void *d, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
	b->p[b->len] = 0;
	return 0;
}

static void sbuf_free(struct sbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* One request, HTTP/1 or one HTTP/2 stream. */
struct req {
	struct sbuf method, url, host;
	struct sbuf names, values;	/* NUL-separated, in arrival order */
	size_t nh;
	bool in_value;			/* HTTP/1: the last callback was a value */
	size_t hdr_bytes, body_bytes;
	bool too_big, upgrade_h2c;
	struct sbuf h2settings;
	int32_t stream_id;
	/* response */
	int code;
	char *body;
	size_t body_len, body_off;
	bool pending;			/* waiting for its /delay timer */
};

struct worker;

struct conn {
	int fd;
	enum kind kind;
	struct worker *w;
	char peer[64], local[64];
	struct sbuf out;
	size_t out_off;
	bool eof, close_after_flush, dead;
	uint32_t events;
	/* TCP echo: the first bytes decide WHOAMI */
	char head[7];
	size_t nhead;
	bool decided;
	/* HTTP/1 */
	llhttp_t parser;
	struct req req;
	bool paused;
	struct sbuf pending_in;		/* input after a paused request */
	/* HTTP/2 */
	nghttp2_session *h2;
};

struct timer {
	uint64_t at_ms;
	struct conn *c;
	struct req *r;
};

struct worker {
	int ep;
	const struct echo_serve_opts *o;
	int lfds[2 * ECHO_MAX_PORTS];
	struct conn *lconns[2 * ECHO_MAX_PORTS];
	int nl;
	struct timer timers[MAX_TIMERS];
	int ntimers;
	unsigned int seed;
	pthread_t th;
};

static volatile sig_atomic_t stopping;
static llhttp_settings_t h1_settings;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void addr_str(const struct sockaddr_storage *ss, char *buf, size_t sz)
{
	char ip[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)ss;

		inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
		snprintf(buf, sz, "%s:%u", ip, ntohs(a->sin_port));
	} else {
		const struct sockaddr_in6 *a = (const void *)ss;

		/* Dual-stack sockets report IPv4 peers as ::ffff:a.b.c.d. */
		if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
			inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], ip, sizeof(ip));
			snprintf(buf, sz, "%s:%u", ip, ntohs(a->sin6_port));
		} else {
			inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
			snprintf(buf, sz, "[%s]:%u", ip, ntohs(a->sin6_port));
		}
	}
}

static void set_events(struct conn *c, uint32_t ev)
{
	struct epoll_event e = { .events = ev, .data.ptr = c };

	if (c->events != ev && epoll_ctl(c->w->ep, EPOLL_CTL_MOD, c->fd, &e) == 0)
		c->events = ev;
}

static void req_reset(struct req *r)
{
	sbuf_free(&r->method);
	sbuf_free(&r->url);
	sbuf_free(&r->host);
	sbuf_free(&r->names);
	sbuf_free(&r->values);
	sbuf_free(&r->h2settings);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

static void timers_drop(struct worker *w, struct conn *c, struct req *r)
{
	for (int i = 0; i < w->ntimers;)
		if (w->timers[i].c == c && (!r || w->timers[i].r == r))
			w->timers[i] = w->timers[--w->ntimers];
		else
			i++;
}

static void conn_free(struct conn *c)
{
	timers_drop(c->w, c, NULL);
	epoll_ctl(c->w->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	if (c->h2)
		nghttp2_session_del(c->h2);	/* frees stream reqs via on_stream_close */
	req_reset(&c->req);
	sbuf_free(&c->out);
	sbuf_free(&c->pending_in);
	free(c);
}

/* Try to send what is queued; 0 ok, -1 when the connection is gone. */
static int flush(struct conn *c)
{
	while (c->out_off < c->out.len) {
		ssize_t n = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0)
			return -1;
		c->out_off += (size_t)n;
	}
	if (c->out_off == c->out.len) {
		c->out.len = c->out_off = 0;
		if (c->close_after_flush)
			return -1;
	}
	return 0;
}

static int queue(struct conn *c, const void *d, size_t n)
{
	if (c->out.len - c->out_off + n > OUT_MAX)
		return -ENOBUFS;
	return sbuf_add(&c->out, d, n);
}

/* ---- the answer ----------------------------------------------------------- */

static const char *reason(int code)
{
	switch (code) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 413: return "Payload Too Large";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Status";
	}
}

/* Fill r->code, r->body; returns the delay in ms (0: answer now). */
static int answer(struct conn *c, struct req *r, const char *proto)
{
	const struct echo_serve_opts *o = c->w->o;
	json_t *j, *hdrs;
	const char *path = r->url.p ? r->url.p : "/", *n, *v;
	int delay = 0;

	r->code = 200;
	if (!strncmp(path, "/status/", 8)) {
		char *end;
		long code = strtol(path + 8, &end, 10);

		r->code = (end != path + 8 && (*end == 0 || *end == '?' || *end == '/') &&
			   code >= 200 && code <= 599) ? (int)code : 400;
	} else if (!strncmp(path, "/delay/", 7)) {
		char *end;
		long ms = strtol(path + 7, &end, 10);

		if (end == path + 7 || ms < 0 || ms > 60000)
			r->code = 400;
		else
			delay = (int)ms;
	}
	if (r->too_big)
		r->code = 431;
	else if (r->body_bytes > ECHO_MAX_BODY)
		r->code = 413;
	else if (r->code < 400 && o->fail_rate > 0 &&
		 (double)rand_r(&c->w->seed) / RAND_MAX < o->fail_rate)
		r->code = 500;

	hdrs = json_object();
	n = r->names.p;
	v = r->values.p;
	for (size_t i = 0; i < r->nh; i++) {
		json_t *old = json_object_get(hdrs, n);

		/* Repeated headers read as one, joined with ", " (RFC 9110 5.3). */
		if (old) {
			char *joined;

			if (asprintf(&joined, "%s, %s", json_string_value(old), v) >= 0) {
				json_object_set_new(hdrs, n, json_string(joined));
				free(joined);
			}
		} else {
			json_object_set_new(hdrs, n, json_stringn(v, strlen(v)));
		}
		n += strlen(n) + 1;
		v += strlen(v) + 1;
	}
	j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:s, s:I, s:i}",
		      "pod", o->id.pod, "namespace", o->id.ns, "version", o->id.version,
		      "method", r->method.p ? r->method.p : "", "path", path,
		      "host", r->host.p ? r->host.p : "", "proto", proto, "headers", hdrs,
		      "peer", c->peer, "local", c->local, "body_bytes", (json_int_t)r->body_bytes,
		      "code", r->code);
	r->body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!r->body)
		r->body = strdup("{}");
	r->body_len = r->body ? strlen(r->body) : 0;
	if (r->body)
		r->body[r->body_len] = 0;
	/* Newline-terminate so `curl` output reads well. */
	if (r->body) {
		char *b = realloc(r->body, r->body_len + 2);

		if (b) {
			r->body = b;
			r->body[r->body_len++] = '\n';
			r->body[r->body_len] = 0;
		}
	}
	if (o->verbose)
		zm_log_info("%s %s %s -> %d", c->peer, r->method.p ? r->method.p : "?", path, r->code);
	return r->code == 200 ? delay : 0;
}

static int add_timer(struct conn *c, struct req *r, int ms)
{
	struct worker *w = c->w;

	if (w->ntimers == MAX_TIMERS)
		return -ENOSPC;
	w->timers[w->ntimers++] = (struct timer){ now_ms() + (uint64_t)ms, c, r };
	r->pending = true;
	return 0;
}

/* ---- HTTP/1.1 ------------------------------------------------------------- */

static int h1_write_response(struct conn *c, struct req *r)
{
	char head[256];
	bool keep = llhttp_should_keep_alive(&c->parser) && r->code != 400 && r->code != 431 &&
		    r->code != 413;
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%s\r\n",
			 r->code, reason(r->code), r->body_len, keep ? "" : "Connection: close\r\n");

	if (queue(c, head, (size_t)n) || queue(c, r->body, r->body_len))
		return -1;
	if (!keep)
		c->close_after_flush = true;
	return 0;
}

static struct conn *parser_conn(llhttp_t *p)
{
	return p->data;
}

static int h1_on_message_begin(llhttp_t *p)
{
	req_reset(&parser_conn(p)->req);
	return 0;
}

static int h1_count(struct req *r, size_t n)
{
	r->hdr_bytes += n;
	if (r->hdr_bytes > ECHO_MAX_HEADER_BYTES)
		r->too_big = true;
	return 0;
}

static int h1_on_url(llhttp_t *p, const char *at, size_t n)
{
	struct req *r = &parser_conn(p)->req;

	h1_count(r, n);
	return r->too_big ? 0 : sbuf_add(&r->url, at, n) ? -1 : 0;
}

static int h1_on_method(llhttp_t *p, const char *at, size_t n)
{
	struct req *r = &parser_conn(p)->req;

	return r->method.len + n > 32 ? -1 : sbuf_add(&r->method, at, n) ? -1 : 0;
}

static int h1_on_field(llhttp_t *p, const char *at, size_t n)
{
	struct req *r = &parser_conn(p)->req;

	h1_count(r, n);
	if (r->too_big)
		return 0;
	if (r->in_value || r->nh == 0) {
		/* A new header starts: close the previous value. */
		if (r->nh && sbuf_add(&r->values, "", 1))
			return -1;
		r->nh++;
		r->in_value = false;
	} else if (r->names.len) {
		r->names.len--;	/* continue the same name: drop its NUL */
	}
	for (size_t i = 0; i < n; i++) {
		char ch = (char)(at[i] >= 'A' && at[i] <= 'Z' ? at[i] + 32 : at[i]);

		if (sbuf_add(&r->names, &ch, 1))
			return -1;
	}
	return sbuf_add(&r->names, "", 1) ? -1 : 0;
}

static int h1_on_value(llhttp_t *p, const char *at, size_t n)
{
	struct req *r = &parser_conn(p)->req;

	h1_count(r, n);
	if (r->too_big)
		return 0;
	r->in_value = true;
	return sbuf_add(&r->values, at, n) ? -1 : 0;
}

static const char *req_header(struct req *r, const char *name)
{
	const char *n = r->names.p, *v = r->values.p;

	for (size_t i = 0; i < r->nh && n && v; i++) {
		if (!strcmp(n, name))
			return v;
		n += strlen(n) + 1;
		v += strlen(v) + 1;
	}
	return NULL;
}

static int h1_on_headers_complete(llhttp_t *p)
{
	struct req *r = &parser_conn(p)->req;
	const char *h, *up, *s;

	if (r->nh && sbuf_add(&r->values, "", 1))
		return -1;
	h = req_header(r, "host");
	if (h && sbuf_add(&r->host, h, strlen(h)))
		return -1;
	up = req_header(r, "upgrade");
	s = req_header(r, "http2-settings");
	r->upgrade_h2c = up && !strcasecmp(up, "h2c") && s && !r->too_big;
	if (r->upgrade_h2c && sbuf_add(&r->h2settings, s, strlen(s)))
		return -1;
	return 0;
}

static int h1_on_body(llhttp_t *p, const char *at, size_t n)
{
	(void)at;
	parser_conn(p)->req.body_bytes += n;
	return 0;
}

static int h1_on_message_complete(llhttp_t *p)
{
	struct conn *c = parser_conn(p);
	struct req *r = &c->req;
	int delay;

	if (r->upgrade_h2c && p->upgrade)
		return 0;	/* answered on stream 1 after the switch */
	delay = answer(c, r, "HTTP/1.1");
	if (delay > 0 && add_timer(c, r, delay) == 0)
		return HPE_PAUSED;	/* keep order: stop parsing until it is sent */
	return h1_write_response(c, r) ? -1 : 0;
}

/* ---- HTTP/2 --------------------------------------------------------------- */

static ssize_t h2_read_body(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len,
			    uint32_t *flags, nghttp2_data_source *src, void *u)
{
	struct req *r = src->ptr;
	size_t n = r->body_len - r->body_off;

	(void)s; (void)sid; (void)u;
	if (n > len)
		n = len;
	memcpy(buf, r->body + r->body_off, n);
	r->body_off += n;
	if (r->body_off == r->body_len)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static int h2_submit(struct conn *c, struct req *r)
{
	char code[8], len[24];
	nghttp2_nv nv[] = {
		{ (uint8_t *)":status", (uint8_t *)code, 7, 0, NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)"content-type", (uint8_t *)"application/json", 12, 16, NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)"content-length", (uint8_t *)len, 14, 0, NGHTTP2_NV_FLAG_NONE },
	};
	nghttp2_data_provider prd = { .source.ptr = r, .read_callback = h2_read_body };

	nv[0].valuelen = (size_t)snprintf(code, sizeof(code), "%d", r->code);
	nv[2].valuelen = (size_t)snprintf(len, sizeof(len), "%zu", r->body_len);
	r->pending = false;
	return nghttp2_submit_response(c->h2, r->stream_id, nv, 3, &prd);
}

static void h2_answer(struct conn *c, struct req *r)
{
	int delay = answer(c, r, "HTTP/2");

	if (delay > 0 && add_timer(c, r, delay) == 0)
		return;
	h2_submit(c, r);
}

static int h2_on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *u)
{
	struct req *r;

	(void)u;
	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	r = calloc(1, sizeof(*r));
	if (!r)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	r->stream_id = f->hd.stream_id;
	nghttp2_session_set_stream_user_data(s, f->hd.stream_id, r);
	return 0;
}

static int h2_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
			size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *u)
{
	struct req *r = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);

	(void)flags; (void)u;
	if (!r)
		return 0;
	if (r->hdr_bytes + nlen + vlen > ECHO_MAX_HEADER_BYTES) {
		r->too_big = true;
		return 0;
	}
	r->hdr_bytes += nlen + vlen;
	if (nlen == 7 && !memcmp(name, ":method", 7))
		return sbuf_add(&r->method, value, vlen) ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
	if (nlen == 5 && !memcmp(name, ":path", 5))
		return sbuf_add(&r->url, value, vlen) ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
	if (nlen == 10 && !memcmp(name, ":authority", 10))
		return sbuf_add(&r->host, value, vlen) ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
	if (nlen && name[0] == ':')
		return 0;
	if (sbuf_add(&r->names, name, nlen) || sbuf_add(&r->names, "", 1) ||
	    sbuf_add(&r->values, value, vlen) || sbuf_add(&r->values, "", 1))
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	r->nh++;
	return 0;
}

static int h2_on_data(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *d,
		      size_t len, void *u)
{
	struct req *r = nghttp2_session_get_stream_user_data(s, sid);

	(void)flags; (void)d; (void)u;
	if (r)
		r->body_bytes += len;
	return 0;
}

static int h2_on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *u)
{
	struct req *r;

	if ((f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) ||
	    !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	r = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	if (r)
		h2_answer(u, r);
	return 0;
}

static int h2_on_stream_close(nghttp2_session *s, int32_t sid, uint32_t err, void *u)
{
	struct req *r = nghttp2_session_get_stream_user_data(s, sid);
	struct conn *c = u;

	(void)err;
	if (!r)
		return 0;
	timers_drop(c->w, c, r);
	nghttp2_session_set_stream_user_data(s, sid, NULL);
	req_reset(r);
	free(r);
	return 0;
}

static int h2_start(struct conn *c)
{
	nghttp2_session_callbacks *cb;
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100 },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, ECHO_MAX_HEADER_BYTES * 2 },
	};
	int rc;

	if (nghttp2_session_callbacks_new(&cb))
		return -ENOMEM;
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, h2_on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, h2_on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, h2_on_data);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, h2_on_frame_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, h2_on_stream_close);
	rc = nghttp2_session_server_new(&c->h2, cb, c);
	nghttp2_session_callbacks_del(cb);
	if (rc)
		return -ENOMEM;
	c->kind = K_H2;
	return nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, 2) ? -EIO : 0;
}

static int h2_pump(struct conn *c)
{
	for (;;) {
		const uint8_t *d;
		ssize_t n = nghttp2_session_mem_send(c->h2, &d);

		if (n < 0)
			return -1;
		if (n == 0)
			break;
		if (queue(c, d, (size_t)n))
			return -1;
	}
	if (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2) &&
	    c->out.len == c->out_off)
		return -1;
	return 0;
}

static int h2_input(struct conn *c, const char *d, size_t n)
{
	if (n && nghttp2_session_mem_recv(c->h2, (const uint8_t *)d, n) < 0)
		return -1;
	return h2_pump(c);
}

static int b64url_decode(const char *in, uint8_t *out, size_t cap, size_t *outlen)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t o = 0;

	for (; *in && *in != '='; in++) {
		int v;

		if (*in >= 'A' && *in <= 'Z') v = *in - 'A';
		else if (*in >= 'a' && *in <= 'z') v = *in - 'a' + 26;
		else if (*in >= '0' && *in <= '9') v = *in - '0' + 52;
		else if (*in == '-' || *in == '+') v = 62;
		else if (*in == '_' || *in == '/') v = 63;
		else return -EINVAL;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o == cap)
				return -E2BIG;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	*outlen = o;
	return 0;
}

/* HTTP/1.1 Upgrade: h2c (RFC 7540 3.2): 101, then the request is stream 1. */
static int h1_upgrade(struct conn *c, const char *rest, size_t nrest)
{
	static const char sw[] = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
	uint8_t settings[256];
	size_t slen;
	struct req *r;
	bool head = c->req.method.p && !strcmp(c->req.method.p, "HEAD");

	if (b64url_decode(c->req.h2settings.p, settings, sizeof(settings), &slen))
		return -1;
	if (queue(c, sw, sizeof(sw) - 1) || h2_start(c))
		return -1;
	if (nghttp2_session_upgrade2(c->h2, settings, slen, head, NULL))
		return -1;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -1;
	*r = c->req;		/* the request moves to stream 1 */
	memset(&c->req, 0, sizeof(c->req));
	r->stream_id = 1;
	nghttp2_session_set_stream_user_data(c->h2, 1, r);
	h2_answer(c, r);
	return h2_input(c, rest, nrest);
}

static int h1_input(struct conn *c, const char *d, size_t n)
{
	llhttp_errno_t err;

	if (c->paused)
		return sbuf_add(&c->pending_in, d, n) ? -1 : 0;
	err = llhttp_execute(&c->parser, d, n);
	if (err == HPE_OK)
		return 0;
	if (err == HPE_PAUSED) {
		const char *pos = llhttp_get_error_pos(&c->parser);

		c->paused = true;
		set_events(c, EPOLLOUT);	/* stop reading until the answer is out */
		return sbuf_add(&c->pending_in, pos, (size_t)(d + n - pos)) ? -1 : 0;
	}
	if (err == HPE_PAUSED_UPGRADE) {
		const char *pos = llhttp_get_error_pos(&c->parser);

		if (c->req.upgrade_h2c)
			return h1_upgrade(c, pos, (size_t)(d + n - pos));
		/* Not an upgrade we speak: answer the request and close. */
		c->close_after_flush = true;
		answer(c, &c->req, "HTTP/1.1");
		return h1_write_response(c, &c->req);
	}
	/* Malformed: 400 (431 when the header block was too large) and close. */
	if (c->req.too_big)
		c->req.code = 431;
	else
		c->req.code = 400;
	{
		char msg[160];
		int len = snprintf(msg, sizeof(msg),
				   "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
				   c->req.code, reason(c->req.code), strlen(llhttp_errno_name(err)) + 1,
				   llhttp_errno_name(err));

		c->close_after_flush = true;
		return queue(c, msg, (size_t)len);
	}
}

/* The delay of a paused HTTP/1 request is over: answer, go on parsing. */
static int h1_resume(struct conn *c)
{
	struct sbuf rest = c->pending_in;

	c->req.pending = false;
	if (h1_write_response(c, &c->req))
		return -1;
	c->paused = false;
	memset(&c->pending_in, 0, sizeof(c->pending_in));
	llhttp_resume(&c->parser);
	set_events(c, EPOLLIN | EPOLLOUT);
	int rc = rest.len ? h1_input(c, rest.p, rest.len) : 0;

	sbuf_free(&rest);
	return rc;
}

/* ---- TCP echo --------------------------------------------------------------- */

static const char whoami[] = "WHOAMI\n";

static int tcp_input(struct conn *c, const char *d, size_t n)
{
	if (!c->decided) {
		size_t take = sizeof(whoami) - 1 - c->nhead;

		if (take > n)
			take = n;
		memcpy(c->head + c->nhead, d, take);
		c->nhead += take;
		if (memcmp(c->head, whoami, c->nhead)) {
			c->decided = true;	/* not WHOAMI: echo what we held back */
			if (queue(c, c->head, c->nhead))
				return -1;
		} else if (c->nhead == sizeof(whoami) - 1) {
			const struct echo_serve_opts *o = c->w->o;
			json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s}", "pod", o->id.pod,
					      "namespace", o->id.ns, "version", o->id.version,
					      "peer", c->peer, "local", c->local);
			char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
			int rc = s ? queue(c, s, strlen(s)) : -1;

			if (!rc)
				rc = queue(c, "\n", 1);
			free(s);
			json_decref(j);
			c->decided = true;
			if (rc)
				return -1;
		} else {
			return 0;	/* could still be WHOAMI: wait */
		}
		d += take;
		n -= take;
	}
	return n ? queue(c, d, n) : 0;
}

/* ---- the loop --------------------------------------------------------------- */

static void conn_io(struct conn *c, uint32_t ev)
{
	char buf[65536];
	int rc = 0;

	if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR) && !c->paused && !c->eof) {
		for (int round = 0; round < 16 && rc == 0; round++) {
			ssize_t n = recv(c->fd, buf, sizeof(buf), 0);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			if (n < 0) {
				rc = -1;
				break;
			}
			if (n == 0) {
				c->eof = true;
				break;
			}
			if (c->kind == K_HTTP && c->req.method.len == 0 && c->out.len == 0 &&
			    c->parser.type == HTTP_REQUEST && (size_t)n >= 3 &&
			    !memcmp(buf, "PRI", 3) && !c->paused) {
				/* h2c with prior knowledge: the client preface starts "PRI *". */
				if (h2_start(c))
					rc = -1;
			}
			if (rc)
				break;
			switch (c->kind) {
			case K_HTTP: rc = h1_input(c, buf, (size_t)n); break;
			case K_H2: rc = h2_input(c, buf, (size_t)n); break;
			case K_TCP: rc = tcp_input(c, buf, (size_t)n); break;
			default: rc = -1;
			}
			/* Back-pressure: stop reading while much is queued. */
			if (c->out.len - c->out_off > (1u << 20))
				break;
		}
	}
	if (rc == 0 && c->kind == K_H2)
		rc = h2_pump(c);
	if (rc == 0)
		rc = flush(c);
	if (rc == 0 && c->eof && c->out.len == c->out_off && !c->paused) {
		/* Half-close: the peer is done sending and we sent everything. */
		if (c->kind == K_TCP)
			shutdown(c->fd, SHUT_WR);
		rc = -1;
	}
	if (rc) {
		conn_free(c);
		return;
	}
	uint32_t want = (c->paused ? 0 : EPOLLIN) |
			(c->out.len > c->out_off ? EPOLLOUT : 0);

	if (!c->paused && c->out.len - c->out_off > (1u << 20))
		want &= ~(uint32_t)EPOLLIN;
	set_events(c, want ? want : EPOLLIN);
}

static void do_accept(struct worker *w, struct conn *l)
{
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct conn *c;
		struct epoll_event e;
		int one = 1;

		if (fd < 0)
			return;
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->w = w;
		c->kind = l->kind == K_LISTEN_HTTP ? K_HTTP : K_TCP;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		addr_str(&ss, c->peer, sizeof(c->peer));
		sl = sizeof(ss);
		if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
			addr_str(&ss, c->local, sizeof(c->local));
		if (c->kind == K_HTTP) {
			llhttp_init(&c->parser, HTTP_REQUEST, &h1_settings);
			c->parser.data = c;
		}
		c->events = EPOLLIN;
		e.events = EPOLLIN;
		e.data.ptr = c;
		if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &e) < 0) {
			close(fd);
			free(c);
		}
	}
}

static void run_timers(struct worker *w)
{
	uint64_t now = now_ms();

	for (int i = 0; i < w->ntimers;) {
		struct timer t = w->timers[i];

		if (t.at_ms > now) {
			i++;
			continue;
		}
		w->timers[i] = w->timers[--w->ntimers];
		if (t.c->kind == K_H2) {
			h2_submit(t.c, t.r);
			conn_io(t.c, 0);
		} else if (h1_resume(t.c)) {
			conn_free(t.c);
		} else {
			conn_io(t.c, 0);
		}
		i = 0;	/* the list may have changed under us */
	}
}

static int next_timeout(struct worker *w)
{
	uint64_t now = now_ms(), min = UINT64_MAX;

	for (int i = 0; i < w->ntimers; i++)
		if (w->timers[i].at_ms < min)
			min = w->timers[i].at_ms;
	if (min == UINT64_MAX)
		return 500;	/* wake up to notice a stop signal */
	return min <= now ? 0 : (int)(min - now > 500 ? 500 : min - now);
}

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct epoll_event ev[128];

	while (!stopping) {
		int n = epoll_wait(w->ep, ev, 128, next_timeout(w));

		for (int i = 0; i < n; i++) {
			struct conn *c = ev[i].data.ptr;

			if (c->kind == K_LISTEN_HTTP || c->kind == K_LISTEN_TCP)
				do_accept(w, c);
			else
				conn_io(c, ev[i].events);
		}
		run_timers(w);
	}
	return NULL;
}

static int listen_on(int port)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
				   .sin6_addr = IN6ADDR_ANY_INIT };
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int one = 1, zero = 0, fd;

	fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
		if (bind(fd, (struct sockaddr *)&a6, sizeof(a6)) == 0 && listen(fd, 1024) == 0)
			return fd;
		close(fd);
	}
	/* No IPv6 in this namespace: IPv4 only. */
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a4, sizeof(a4)) < 0 || listen(fd, 1024) < 0) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	return fd;
}

static int bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return -1;
	return ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port) :
					 ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

int echo_serve(const struct echo_serve_opts *o)
{
	struct worker *ws = calloc((size_t)o->threads, sizeof(*ws));
	int ports[2 * ECHO_MAX_PORTS], nports = o->nhttp + o->ntcp, rc = 0;
	struct sigaction sa = { .sa_handler = on_signal };

	if (!ws)
		return -ENOMEM;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	llhttp_settings_init(&h1_settings);
	h1_settings.on_message_begin = h1_on_message_begin;
	h1_settings.on_method = h1_on_method;
	h1_settings.on_url = h1_on_url;
	h1_settings.on_header_field = h1_on_field;
	h1_settings.on_header_value = h1_on_value;
	h1_settings.on_headers_complete = h1_on_headers_complete;
	h1_settings.on_body = h1_on_body;
	h1_settings.on_message_complete = h1_on_message_complete;
	for (int i = 0; i < nports; i++)
		ports[i] = i < o->nhttp ? o->http_ports[i] : o->tcp_ports[i - o->nhttp];

	for (int t = 0; t < o->threads && !rc; t++) {
		struct worker *w = &ws[t];

		w->o = o;
		w->seed = (unsigned)time(NULL) ^ (unsigned)getpid() ^ (unsigned)t * 7919u;
		w->ep = epoll_create1(EPOLL_CLOEXEC);
		if (w->ep < 0) {
			rc = -errno;
			break;
		}
		for (int i = 0; i < nports; i++) {
			/* Port 0: the first worker picks, the others share it. */
			int fd = listen_on(ports[i]);
			struct conn *l;
			struct epoll_event e;

			if (fd < 0) {
				zm_log_error("listen on port %d: %s", ports[i], strerror(-fd));
				rc = fd;
				break;
			}
			if (ports[i] == 0)
				ports[i] = bound_port(fd);
			l = calloc(1, sizeof(*l));
			if (!l) {
				close(fd);
				rc = -ENOMEM;
				break;
			}
			l->fd = fd;
			l->w = w;
			l->kind = i < o->nhttp ? K_LISTEN_HTTP : K_LISTEN_TCP;
			e.events = EPOLLIN;
			e.data.ptr = l;
			epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &e);
			w->lfds[w->nl] = fd;
			w->lconns[w->nl++] = l;
		}
	}
	if (!rc && o->port_file) {
		char tmp[4096];
		FILE *f;

		snprintf(tmp, sizeof(tmp), "%s.tmp", o->port_file);
		f = fopen(tmp, "w");
		if (f) {
			fprintf(f, "http=%d tcp=%d\n", o->nhttp ? ports[0] : 0,
				o->ntcp ? ports[o->nhttp] : 0);
			fclose(f);
			rename(tmp, o->port_file);
		}
	}
	if (!rc) {
		zm_log_info("pod %s/%s version %s serving (%d threads)", o->id.ns, o->id.pod,
			    o->id.version, o->threads);
		for (int t = 1; t < o->threads; t++)
			pthread_create(&ws[t].th, NULL, worker_run, &ws[t]);
		worker_run(&ws[0]);
		for (int t = 1; t < o->threads; t++)
			pthread_join(ws[t].th, NULL);
	}
	/* Exit tears down connections; listeners go with the process. */
	for (int t = 0; t < o->threads; t++) {
		for (int i = 0; i < ws[t].nl; i++) {
			close(ws[t].lfds[i]);
			free(ws[t].lconns[i]);
		}
		if (ws[t].ep > 0)
			close(ws[t].ep);
	}
	free(ws);
	return rc;
}
