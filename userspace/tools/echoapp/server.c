// SPDX-License-Identifier: Apache-2.0
/*
 * echoapp serve: epoll workers answering HTTP/1.1, HTTP/2 and TCP echo.
 *
 * It is also the backend of benchmarks, so the steady state of a keep-alive
 * connection allocates nothing: request and output buffers are reset, not
 * freed, and the JSON answer is written straight into a buffer.
 */
#include <errno.h>
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
#include "zmesh/buf.h"
#include "zmesh/json.h"
#include "zmesh/log.h"
#include "zmesh/sock.h"

#define OUT_MAX (16u << 20)	/* a peer that never reads gets cut off here */
#define READ_PAUSE (1u << 20)	/* stop reading while this much output waits */
#define DRAIN_MAX (16u << 20)	/* input swallowed after an error before we give up */
#define DRAIN_MS 5000		/* how long a closing connection waits for the peer's FIN */
#define MAX_TIMERS 4096
#define REQ_POOL 64

enum kind { K_LISTEN_HTTP, K_LISTEN_TCP, K_HTTP, K_H2, K_TCP };

/*
 * OPEN: serving. CLOSING: the last answer is queued; once it is out we send
 * FIN. DRAINING: FIN sent, input is read and dropped until the peer closes,
 * so the kernel does not reset the connection under an unread answer.
 */
enum cstate { ST_OPEN, ST_CLOSING, ST_DRAINING };

struct hspan {
	uint32_t noff, nlen, voff, vlen;
};

/* One request: HTTP/1 (one per connection, reused) or one HTTP/2 stream. */
struct req {
	struct zm_buf method, url, host;
	struct zm_buf hb;			/* header names and values, spans below */
	struct hspan hs[ECHO_MAX_HEADERS];
	size_t nh;
	bool in_value;				/* HTTP/1: the last callback was a value */
	size_t hdr_bytes, body_bytes;
	bool hdr_too_big, body_too_big;
	int32_t stream_id;
	int code;
	struct zm_buf body;			/* the answer */
	struct req *next;			/* free list */
};

struct worker;

struct conn {
	int fd;
	enum kind kind;
	enum cstate st;
	struct worker *w;
	char peer[ZM_SOCK_ADDRSTRLEN], local[ZM_SOCK_ADDRSTRLEN];
	struct zm_buf out;
	bool eof, started;
	size_t drained;
	uint32_t events;
	/* TCP echo: the first bytes decide WHOAMI */
	char head[7];
	size_t nhead;
	bool decided;
	/* HTTP/1 */
	llhttp_t parser;
	struct req req;
	bool paused;			/* a /delay answer holds the pipeline */
	struct zm_buf pending_in;	/* input after the paused request */
	/* HTTP/2 */
	nghttp2_session *h2;
};

/* A /delay answer (r set) or the drain deadline of a closing connection (r NULL). */
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
	struct req *pool;
	int npool;
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

static void set_events(struct conn *c, uint32_t ev)
{
	struct epoll_event e = { .events = ev, .data.ptr = c };

	if (c->events != ev && epoll_ctl(c->w->ep, EPOLL_CTL_MOD, c->fd, &e) == 0)
		c->events = ev;
}

/* Forget the request but keep its buffers for the next one. */
static void req_clear(struct req *r)
{
	zm_buf_reset(&r->method);
	zm_buf_reset(&r->url);
	zm_buf_reset(&r->host);
	zm_buf_reset(&r->hb);
	zm_buf_reset(&r->body);
	r->nh = 0;
	r->in_value = false;
	r->hdr_bytes = r->body_bytes = 0;
	r->hdr_too_big = r->body_too_big = false;
	r->stream_id = 0;
	r->code = 0;
}

static void req_free_bufs(struct req *r)
{
	zm_buf_free(&r->method);
	zm_buf_free(&r->url);
	zm_buf_free(&r->host);
	zm_buf_free(&r->hb);
	zm_buf_free(&r->body);
}

static struct req *req_get(struct worker *w)
{
	struct req *r = w->pool;

	if (r) {
		w->pool = r->next;
		w->npool--;
		r->next = NULL;
		return r;
	}
	return calloc(1, sizeof(*r));
}

static void req_put(struct worker *w, struct req *r)
{
	if (w->npool < REQ_POOL && r->body.cap < (64u << 10)) {
		req_clear(r);
		r->next = w->pool;
		w->pool = r;
		w->npool++;
		return;
	}
	req_free_bufs(r);
	free(r);
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
		nghttp2_session_del(c->h2);	/* returns stream reqs via on_stream_close */
	req_free_bufs(&c->req);
	zm_buf_free(&c->out);
	zm_buf_free(&c->pending_in);
	free(c);
}

/* Send what is queued; 0 ok (maybe partly sent), -1 when the connection is gone. */
static int flush(struct conn *c)
{
	while (zm_buf_len(&c->out)) {
		ssize_t n = send(c->fd, zm_buf_data(&c->out), zm_buf_len(&c->out), MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0)
			return -1;
		zm_buf_consume(&c->out, (size_t)n);
	}
	return 0;
}

static int queue(struct conn *c, const void *d, size_t n)
{
	if (zm_buf_len(&c->out) + n > OUT_MAX)
		return -ENOBUFS;
	return zm_buf_append(&c->out, d, n);
}

/* ---- the answer ----------------------------------------------------------- */

static const char *reason(int code)
{
	switch (code) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Status";
	}
}

static const char *span_name(const struct req *r, size_t i)
{
	return zm_buf_data(&r->hb) + r->hs[i].noff;
}

static const char *span_value(const struct req *r, size_t i)
{
	return zm_buf_data(&r->hb) + r->hs[i].voff;
}

/* The first value of header @name (lower case), or NULL. */
static const char *req_header(const struct req *r, const char *name, size_t *len)
{
	size_t nl = strlen(name);

	for (size_t i = 0; i < r->nh; i++)
		if (r->hs[i].nlen == nl && !memcmp(span_name(r, i), name, nl)) {
			*len = r->hs[i].vlen;
			return span_value(r, i);
		}
	return NULL;
}

/* Header object; repeated headers read as one, joined with ", " (RFC 9110 5.3). */
static int json_headers(struct zm_buf *b, const struct req *r)
{
	bool done[ECHO_MAX_HEADERS] = { false };
	int rc = zm_buf_append(b, "{", 1);

	for (size_t i = 0; i < r->nh && !rc; i++) {
		if (done[i])
			continue;
		rc = zm_buf_append(b, i ? "," : "", i ? 1 : 0);
		if (!rc)
			rc = zm_json_str(b, span_name(r, i), r->hs[i].nlen);
		if (!rc)
			rc = zm_buf_append(b, ":", 1);
		if (rc)
			break;
		/* One JSON string from the pieces. */
		rc = zm_buf_append(b, "\"", 1);
		rc = rc ?: zm_json_escape(b, span_value(r, i), r->hs[i].vlen);
		for (size_t j = i + 1; j < r->nh && !rc; j++) {
			if (r->hs[j].nlen != r->hs[i].nlen ||
			    memcmp(span_name(r, j), span_name(r, i), r->hs[i].nlen))
				continue;
			done[j] = true;
			rc = zm_buf_append(b, ", ", 2);
			rc = rc ?: zm_json_escape(b, span_value(r, j), r->hs[j].vlen);
		}
		rc = rc ?: zm_buf_append(b, "\"", 1);
	}
	if (!rc)
		rc = zm_buf_append(b, "}", 1);
	return rc;
}

/* Fill r->code and r->body; returns the delay in ms (0: answer now). */
static int answer(struct conn *c, struct req *r, const char *proto)
{
	const struct echo_serve_opts *o = c->w->o;
	const char *path = zm_buf_len(&r->url) ? zm_buf_cstr(&r->url) : "/";
	struct zm_buf *b = &r->body;
	int delay = 0, rc;

	r->code = 200;
	if (!strncmp(path, "/status/", 8)) {
		char *end;
		long code = strtol(path + 8, &end, 10);

		r->code = (end != path + 8 && (*end == 0 || *end == '?' || *end == '/') &&
			   code >= 200 && code <= 599) ? (int)code : 400;
	} else if (!strncmp(path, "/delay/", 7)) {
		char *end;
		long ms = strtol(path + 7, &end, 10);

		if (end == path + 7 || ms < 0 || ms > 60000 ||
		    (*end != 0 && *end != '?' && *end != '/'))
			r->code = 400;
		else
			delay = (int)ms;
	}
	if (r->hdr_too_big)
		r->code = 431;
	else if (r->body_too_big || r->body_bytes > ECHO_MAX_BODY)
		r->code = 413;
	else if (r->code < 400 && o->fail_rate > 0 &&
		 (double)rand_r(&c->w->seed) / ((double)RAND_MAX + 1) < o->fail_rate)
		r->code = 500;

	zm_buf_reset(b);
	rc = zm_buf_append(b, "{", 1);
	rc = rc ?: zm_json_kv_str(b, 1, "pod", o->id.pod);
	rc = rc ?: zm_json_kv_str(b, 0, "namespace", o->id.ns);
	rc = rc ?: zm_json_kv_str(b, 0, "version", o->id.version);
	rc = rc ?: zm_buf_puts(b, ",\"method\":");
	rc = rc ?: zm_json_str(b, zm_buf_data(&r->method), zm_buf_len(&r->method));
	rc = rc ?: zm_buf_puts(b, ",\"path\":");
	rc = rc ?: zm_json_str(b, path, strlen(path));
	rc = rc ?: zm_buf_puts(b, ",\"host\":");
	rc = rc ?: zm_json_str(b, zm_buf_data(&r->host), zm_buf_len(&r->host));
	rc = rc ?: zm_json_kv_str(b, 0, "proto", proto);
	rc = rc ?: zm_buf_puts(b, ",\"headers\":");
	rc = rc ?: json_headers(b, r);
	rc = rc ?: zm_json_kv_str(b, 0, "peer", c->peer);
	rc = rc ?: zm_json_kv_str(b, 0, "local", c->local);
	rc = rc ?: zm_json_kv_int(b, 0, "body_bytes", (long long)r->body_bytes);
	rc = rc ?: zm_json_kv_int(b, 0, "code", r->code);
	rc = rc ?: zm_buf_puts(b, "}\n");	/* newline: curl output reads well */
	if (rc) {
		zm_buf_reset(b);
		r->code = 500;
	}
	if (o->verbose) {
		char esc[256];

		zm_log_info("%s %s %s -> %d", c->peer, zm_buf_len(&r->method) ?
			    zm_buf_cstr(&r->method) : "?",
			    zm_log_escape(esc, sizeof(esc), path, strlen(path)), r->code);
	}
	return r->code == 200 ? delay : 0;
}

static bool is_head(const struct req *r)
{
	return zm_buf_len(&r->method) == 4 && !memcmp(zm_buf_data(&r->method), "HEAD", 4);
}

static int add_timer(struct conn *c, struct req *r, int ms)
{
	struct worker *w = c->w;

	if (w->ntimers == MAX_TIMERS)
		return -ENOSPC;
	w->timers[w->ntimers++] = (struct timer){ now_ms() + (uint64_t)ms, c, r };
	return 0;
}

/* ---- HTTP/1.1 ------------------------------------------------------------- */

static int h1_write_response(struct conn *c, struct req *r)
{
	bool keep = llhttp_should_keep_alive(&c->parser) && r->code != 400 && r->code != 431 &&
		    r->code != 413;
	int rc;

	if (zm_buf_len(&c->out) + zm_buf_len(&r->body) + 256 > OUT_MAX)
		return -1;
	rc = zm_buf_printf(&c->out, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
			   "Content-Length: %zu\r\n%s\r\n", r->code, reason(r->code),
			   zm_buf_len(&r->body), keep ? "" : "Connection: close\r\n");
	/* HEAD: the length of the answer GET would give, and no body (RFC 9110 9.3.2). */
	if (rc || (!is_head(r) && zm_buf_append(&c->out, zm_buf_data(&r->body), zm_buf_len(&r->body))))
		return -1;
	if (!keep)
		c->st = ST_CLOSING;
	return 0;
}

static struct conn *parser_conn(llhttp_t *p)
{
	return p->data;
}

static int h1_on_message_begin(llhttp_t *p)
{
	req_clear(&parser_conn(p)->req);
	return 0;
}

/* Header bytes so far; past the limit the parse stops and the answer is 431. */
static int h1_count(struct req *r, size_t n)
{
	r->hdr_bytes += n;
	if (r->hdr_bytes > ECHO_MAX_HEADER_BYTES) {
		r->hdr_too_big = true;
		return -1;
	}
	return 0;
}

static int h1_on_url(llhttp_t *p, const char *at, size_t n)
{
	struct req *r = &parser_conn(p)->req;

	return h1_count(r, n) || zm_buf_append(&r->url, at, n) ? -1 : 0;
}

static int h1_on_method(llhttp_t *p, const char *at, size_t n)
{
	struct req *r = &parser_conn(p)->req;

	return zm_buf_len(&r->method) + n > 32 || zm_buf_append(&r->method, at, n) ? -1 : 0;
}

static int h1_on_field(llhttp_t *p, const char *at, size_t n)
{
	struct req *r = &parser_conn(p)->req;
	char *dst;

	if (h1_count(r, n))
		return -1;
	if (r->in_value || r->nh == 0) {
		/* A new header starts. */
		if (r->nh == ECHO_MAX_HEADERS) {
			r->hdr_too_big = true;
			return -1;
		}
		r->hs[r->nh++] = (struct hspan){ .noff = (uint32_t)zm_buf_len(&r->hb) };
		r->in_value = false;
	}
	dst = zm_buf_reserve(&r->hb, n);
	if (!dst)
		return -1;
	for (size_t i = 0; i < n; i++)
		dst[i] = (char)(at[i] >= 'A' && at[i] <= 'Z' ? at[i] + 32 : at[i]);
	zm_buf_commit(&r->hb, n);
	r->hs[r->nh - 1].nlen += (uint32_t)n;
	return 0;
}

static int h1_on_value(llhttp_t *p, const char *at, size_t n)
{
	struct req *r = &parser_conn(p)->req;
	struct hspan *h;

	if (h1_count(r, n) || !r->nh)
		return -1;
	h = &r->hs[r->nh - 1];
	if (!r->in_value) {
		h->voff = (uint32_t)zm_buf_len(&r->hb);
		r->in_value = true;
	}
	h->vlen += (uint32_t)n;
	return zm_buf_append(&r->hb, at, n) ? -1 : 0;
}

static int h1_on_headers_complete(llhttp_t *p)
{
	struct req *r = &parser_conn(p)->req;
	const char *h;
	size_t hl;

	h = req_header(r, "host", &hl);
	if (h && zm_buf_append(&r->host, h, hl))
		return -1;
	return 0;
}

static int h1_on_body(llhttp_t *p, const char *at, size_t n)
{
	struct req *r = &parser_conn(p)->req;

	(void)at;
	r->body_bytes += n;
	if (r->body_bytes > ECHO_MAX_BODY) {
		r->body_too_big = true;
		return -1;
	}
	return 0;
}

static bool wants_h2c(const struct req *r)
{
	size_t ul, sl;
	const char *up = req_header(r, "upgrade", &ul);

	return up && ul == 3 && !strncasecmp(up, "h2c", 3) && req_header(r, "http2-settings", &sl);
}

static int h1_on_message_complete(llhttp_t *p)
{
	struct conn *c = parser_conn(p);
	struct req *r = &c->req;
	int delay;

	if (p->upgrade && wants_h2c(r))
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
	size_t n = zm_buf_len(&r->body);

	(void)s; (void)sid; (void)u;
	if (n > len)
		n = len;
	memcpy(buf, zm_buf_data(&r->body), n);
	zm_buf_consume(&r->body, n);
	if (!zm_buf_len(&r->body))
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
	nv[2].valuelen = (size_t)snprintf(len, sizeof(len), "%zu", zm_buf_len(&r->body));
	return nghttp2_submit_response(c->h2, r->stream_id, nv, 3, is_head(r) ? NULL : &prd);
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
	struct conn *c = u;
	struct req *r;

	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	r = req_get(c->w);
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
	struct zm_buf *dst = NULL;

	(void)flags; (void)u;
	if (!r || r->hdr_too_big)
		return 0;
	if (r->hdr_bytes + nlen + vlen > ECHO_MAX_HEADER_BYTES || r->nh == ECHO_MAX_HEADERS) {
		r->hdr_too_big = true;	/* answered 431 when the request ends */
		return 0;
	}
	r->hdr_bytes += nlen + vlen;
	if (nlen == 7 && !memcmp(name, ":method", 7))
		dst = &r->method;
	else if (nlen == 5 && !memcmp(name, ":path", 5))
		dst = &r->url;
	else if (nlen == 10 && !memcmp(name, ":authority", 10))
		dst = &r->host;
	else if (nlen && name[0] == ':')
		return 0;
	if (dst)
		return zm_buf_append(dst, value, vlen) ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
	r->hs[r->nh] = (struct hspan){ .noff = (uint32_t)zm_buf_len(&r->hb), .nlen = (uint32_t)nlen,
				       .voff = (uint32_t)(zm_buf_len(&r->hb) + nlen),
				       .vlen = (uint32_t)vlen };
	if (zm_buf_append(&r->hb, name, nlen) || zm_buf_append(&r->hb, value, vlen))
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
		r->body_bytes += len;	/* counted, not kept: no cap needed for memory */
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
	req_put(c->w, r);
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
	/* GOAWAY exchanged (or a fatal error): finish sending, then close. */
	if (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2) &&
	    c->st == ST_OPEN)
		c->st = ST_CLOSING;
	return 0;
}

static int h2_input(struct conn *c, const char *d, size_t n)
{
	if (n && nghttp2_session_mem_recv(c->h2, (const uint8_t *)d, n) < 0) {
		/* Garbage (a bad preface, a flood): say GOAWAY if we still can. */
		nghttp2_session_terminate_session(c->h2, NGHTTP2_PROTOCOL_ERROR);
		h2_pump(c);
		c->st = ST_CLOSING;
		return 0;
	}
	return h2_pump(c);
}

static int b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *outlen)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t o = 0;

	for (size_t i = 0; i < len && in[i] != '='; i++) {
		char ch = in[i];
		int v;

		if (ch >= 'A' && ch <= 'Z') v = ch - 'A';
		else if (ch >= 'a' && ch <= 'z') v = ch - 'a' + 26;
		else if (ch >= '0' && ch <= '9') v = ch - '0' + 52;
		else if (ch == '-' || ch == '+') v = 62;
		else if (ch == '_' || ch == '/') v = 63;
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

static void h1_bad(struct conn *c, int code, const char *why);

/* HTTP/1.1 Upgrade: h2c (RFC 9113 drops it; curl and RFC 7540 3.2 still speak
 * it): 101, then the request becomes stream 1. */
static int h1_upgrade(struct conn *c, const char *rest, size_t nrest)
{
	static const char sw[] = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
	uint8_t settings[256];
	size_t slen, hl;
	const char *hs = req_header(&c->req, "http2-settings", &hl);
	struct req *r;
	bool head = is_head(&c->req);

	if (!hs || b64url_decode(hs, hl, settings, sizeof(settings), &slen)) {
		h1_bad(c, 400, "bad HTTP2-Settings");
		return 0;
	}
	if (queue(c, sw, sizeof(sw) - 1) || h2_start(c))
		return -1;
	if (nghttp2_session_upgrade2(c->h2, settings, slen, head, NULL))
		return -1;
	r = req_get(c->w);
	if (!r)
		return -1;
	/* The request moves to stream 1; swap so c->req keeps valid empty buffers. */
	{
		struct req tmp = *r;

		*r = c->req;
		c->req = tmp;
	}
	r->next = NULL;
	r->stream_id = 1;
	nghttp2_session_set_stream_user_data(c->h2, 1, r);
	h2_answer(c, r);
	return h2_input(c, rest, nrest);
}

/* Malformed request: answer @code with a text body and close after it. */
static void h1_bad(struct conn *c, int code, const char *why)
{
	zm_buf_printf(&c->out, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
		      "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
		      code, reason(code), strlen(why) + 1, why);
	c->st = ST_CLOSING;
}

static int h1_input(struct conn *c, const char *d, size_t n)
{
	llhttp_errno_t err;

	if (c->paused)
		return zm_buf_append(&c->pending_in, d, n) ? -1 : 0;
	err = llhttp_execute(&c->parser, d, n);
	if (err == HPE_OK)
		return 0;
	if (err == HPE_PAUSED) {
		const char *pos = llhttp_get_error_pos(&c->parser);

		c->paused = true;
		return zm_buf_append(&c->pending_in, pos, (size_t)(d + n - pos)) ? -1 : 0;
	}
	if (err == HPE_PAUSED_UPGRADE) {
		const char *pos = llhttp_get_error_pos(&c->parser);

		if (wants_h2c(&c->req))
			return h1_upgrade(c, pos, (size_t)(d + n - pos));
		/* Not an upgrade we speak: answer the request and close. */
		answer(c, &c->req, "HTTP/1.1");
		if (h1_write_response(c, &c->req))
			return -1;
		c->st = ST_CLOSING;
		return 0;
	}
	if (c->req.hdr_too_big)
		h1_bad(c, 431, "request header fields too large");
	else if (c->req.body_too_big)
		h1_bad(c, 413, "request body too large");
	else
		h1_bad(c, 400, llhttp_errno_name(err));
	return 0;
}

/* The delay of a paused HTTP/1 request is over: answer, go on parsing. */
static int h1_resume(struct conn *c)
{
	struct zm_buf rest = c->pending_in;
	int rc;

	if (h1_write_response(c, &c->req))
		return -1;
	c->paused = false;
	memset(&c->pending_in, 0, sizeof(c->pending_in));
	llhttp_resume(&c->parser);
	rc = zm_buf_len(&rest) && c->st == ST_OPEN ?
		h1_input(c, zm_buf_data(&rest), zm_buf_len(&rest)) : 0;
	/* Keep whichever buffer has memory for the next pause. */
	if (!c->pending_in.base) {
		zm_buf_reset(&rest);
		c->pending_in = rest;
	} else {
		zm_buf_free(&rest);
	}
	return rc;
}

/* ---- TCP echo --------------------------------------------------------------- */

static const char whoami[] = "WHOAMI\n";

/* Echo: send at once when nothing waits, queue only what the socket refuses. */
static int echo(struct conn *c, const char *d, size_t n)
{
	if (!zm_buf_len(&c->out)) {
		while (n) {
			ssize_t w = send(c->fd, d, n, MSG_NOSIGNAL);

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			if (w <= 0)
				return -1;
			d += w;
			n -= (size_t)w;
		}
	}
	return n ? queue(c, d, n) : 0;
}

static int whoami_line(struct conn *c)
{
	const struct echo_serve_opts *o = c->w->o;
	struct zm_buf *b = &c->out;
	int rc = zm_buf_append(b, "{", 1);

	rc = rc ?: zm_json_kv_str(b, 1, "pod", o->id.pod);
	rc = rc ?: zm_json_kv_str(b, 0, "namespace", o->id.ns);
	rc = rc ?: zm_json_kv_str(b, 0, "version", o->id.version);
	rc = rc ?: zm_json_kv_str(b, 0, "peer", c->peer);
	rc = rc ?: zm_json_kv_str(b, 0, "local", c->local);
	rc = rc ?: zm_buf_puts(b, "}\n");
	return rc;
}

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
			if (echo(c, c->head, c->nhead))
				return -1;
		} else if (c->nhead == sizeof(whoami) - 1) {
			c->decided = true;
			if (whoami_line(c))
				return -1;
		} else {
			return 0;	/* could still be WHOAMI: wait */
		}
		d += take;
		n -= take;
	}
	return n ? echo(c, d, n) : 0;
}

/* ---- the loop --------------------------------------------------------------- */

static int conn_read(struct conn *c)
{
	char buf[65536];

	for (int round = 0; round < 16; round++) {
		ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
		int rc = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0)
			return -1;
		if (n == 0) {
			c->eof = true;
			return 0;
		}
		if (c->st != ST_OPEN) {
			/* After an error: swallow, within reason. */
			c->drained += (size_t)n;
			if (c->drained > DRAIN_MAX)
				return -1;
			continue;
		}
		/* h2c with prior knowledge: the client preface starts "PRI * HTTP/2.0". */
		if (c->kind == K_HTTP && !c->started && (size_t)n >= 3 && !memcmp(buf, "PRI", 3)) {
			if (h2_start(c))
				return -1;
		}
		c->started = true;
		switch (c->kind) {
		case K_HTTP: rc = h1_input(c, buf, (size_t)n); break;
		case K_H2: rc = h2_input(c, buf, (size_t)n); break;
		case K_TCP: rc = tcp_input(c, buf, (size_t)n); break;
		default: rc = -1;
		}
		if (rc)
			return rc;
		if (c->paused || zm_buf_len(&c->out) > READ_PAUSE)
			return 0;	/* back-pressure */
	}
	return 0;
}

static void conn_io(struct conn *c, uint32_t ev)
{
	int rc = 0;
	uint32_t want;

	if (c->paused && (ev & (EPOLLERR | EPOLLHUP)))
		rc = -1;	/* nobody left to answer; level-triggered ERR would spin */
	else if ((ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !c->paused && !c->eof)
		rc = conn_read(c);
	if (rc == 0 && c->kind == K_H2 && c->st == ST_OPEN)
		rc = h2_pump(c);
	/* A half-closed TCP peer still gets what it sent before WHOAMI was decided. */
	if (rc == 0 && c->eof && c->kind == K_TCP && !c->decided && c->nhead) {
		c->decided = true;
		rc = queue(c, c->head, c->nhead);
	}
	if (rc == 0)
		rc = flush(c);
	if (rc == 0 && !zm_buf_len(&c->out)) {
		if (c->st == ST_CLOSING) {
			shutdown(c->fd, SHUT_WR);
			c->st = ST_DRAINING;
			/* A peer that never closes its side does not hold us forever. */
			add_timer(c, NULL, DRAIN_MS);
		}
		if (c->eof && !c->paused) {
			/* The peer is done sending and we sent everything: pass the FIN on. */
			if (c->st == ST_OPEN)
				shutdown(c->fd, SHUT_WR);
			rc = -1;
		}
	}
	if (rc) {
		conn_free(c);
		return;
	}
	want = (zm_buf_len(&c->out) ? EPOLLOUT : 0);
	if (!c->paused && !c->eof && zm_buf_len(&c->out) <= READ_PAUSE)
		want |= EPOLLIN;
	/* EPOLLRDHUP is not asked for: a paused connection waits for its timer. */
	set_events(c, want);
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

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				zm_log_warn("accept: %s", strerror(errno));
			return;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->w = w;
		c->kind = l->kind == K_LISTEN_HTTP ? K_HTTP : K_TCP;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		zm_sock_addr_str((struct sockaddr *)&ss, c->peer, sizeof(c->peer));
		zm_sock_local_str(fd, c->local, sizeof(c->local));
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

/* A bounded pass: at most the timers that were due when it started. */
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
		if (!t.r) {
			conn_free(t.c);		/* the drain deadline */
		} else if (t.c->kind == K_H2) {
			if (h2_submit(t.c, t.r) == 0)
				conn_io(t.c, 0);
			else
				conn_free(t.c);
		} else if (h1_resume(t.c)) {
			conn_free(t.c);
		} else {
			conn_io(t.c, EPOLLIN);
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

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static void write_port_file(const struct echo_serve_opts *o, const int *ports)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", o->port_file);
	f = fopen(tmp, "w");
	if (!f) {
		zm_log_warn("port file %s: %s", tmp, strerror(errno));
		return;
	}
	fprintf(f, "http=%d tcp=%d\n", o->nhttp ? ports[0] : 0, o->ntcp ? ports[o->nhttp] : 0);
	fclose(f);
	if (rename(tmp, o->port_file))
		zm_log_warn("port file %s: %s", o->port_file, strerror(errno));
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
			int fd = zm_sock_listen_tcp(ports[i], 1024, ZM_SOCK_REUSEPORT);
			struct conn *l;
			struct epoll_event e;

			if (fd < 0) {
				zm_log_error("listen on port %d: %s", ports[i], strerror(-fd));
				rc = fd;
				break;
			}
			if (ports[i] == 0)
				ports[i] = zm_sock_local_port(fd);
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
	if (!rc && o->port_file)
		write_port_file(o, ports);
	if (!rc) {
		zm_log_info("pod %s/%s version %s serving (%d threads)", o->id.ns, o->id.pod,
			    o->id.version, o->threads);
		for (int t = 1; t < o->threads; t++)
			pthread_create(&ws[t].th, NULL, worker_run, &ws[t]);
		worker_run(&ws[0]);
		for (int t = 1; t < o->threads; t++)
			pthread_join(ws[t].th, NULL);
		zm_log_info("stopping");
	}
	/* Open connections go with the process; listeners and pools are ours to free. */
	for (int t = 0; t < o->threads; t++) {
		for (int i = 0; i < ws[t].nl; i++) {
			close(ws[t].lfds[i]);
			free(ws[t].lconns[i]);
		}
		while (ws[t].pool) {
			struct req *r = ws[t].pool;

			ws[t].pool = r->next;
			req_free_bufs(r);
			free(r);
		}
		if (ws[t].ep > 0)
			close(ws[t].ep);
	}
	free(ws);
	return rc;
}
