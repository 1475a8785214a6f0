// SPDX-License-Identifier: Apache-2.0
/*
 * HTTP/2 front end (h2c with prior knowledge; the HBONE inner stream and
 * gRPC clients speak it) with nghttp2, on the same wp_serve() as HTTP/1.
 *
 * The connection's thread owns the nghttp2 session; each stream is served
 * by a worker thread (sharing the connection's upstream pool) from the end
 * of its headers, so a slow stream holds up no other and bodies stream
 * both ways (gRPC streaming):
 *  - request DATA go into the stream's queue; our receive window is given
 *    back (nghttp2_session_consume) only as the worker takes bytes out, so
 *    a client can have WP_H2_STREAM_WINDOW per stream and
 *    WP_H2_CONN_WINDOW per connection in flight, no more;
 *  - the answer's DATA go through a second queue of WP_STREAM_BUF: the
 *    worker blocks while it is full, the connection's thread drains it as
 *    the client's window allows (a deferred data provider).
 * Workers tell the connection's thread what happened through event bits
 * on the stream and a pipe. A stream the peer resets while its worker
 * runs is cut off (both queues fail) and freed when the worker is done.
 * Bounded: 100 concurrent streams (so 100 workers), header bytes as HTTP/1.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "zmesh/log.h"
#include "waypoint.h"

#define H2_MAX_STREAMS 100

/* events from a worker to the connection's thread */
#define EV_HEAD 0x1u		/* the answer's head is in st->rs: submit it, the body follows in out */
#define EV_DATA 0x2u		/* out has bytes or its end: resume the data provider */
#define EV_CONSUMED 0x4u	/* the worker took request bytes: give the window back */
#define EV_DONE 0x8u		/* the worker finished */
#define EV_RESET 0x10u		/* the answer was cut short: reset the stream */

/* A bounded byte queue between the connection's thread and a worker. */
struct bq {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct zm_buf b;
	bool eof;			/* the writer is done */
	bool gone;			/* the stream is gone: both sides stop */
	struct hlist trailers;
	int efd;			/* request queue: readable when something arrived */
};

struct h2s {
	int32_t id;
	struct zm_buf method, path, authority, hb;
	struct wp_span hs[WP_MAX_HEADERS];
	size_t nh, hdr_bytes;
	bool too_big, bad, ready, no_body;
	struct h2c *h;
	struct bq in, out;		/* request body in, answer body out */
	struct wp_src src;
	struct wp_sink sink;
	atomic_uint ev;
	atomic_size_t consumed;		/* request bytes the worker took, not yet acknowledged */
	size_t unacked;			/* request bytes received, window not yet given back */
	int64_t len;			/* the answer's length, -1 unknown */
	bool head_sent, streaming, cut;
	int64_t t0, t0_wall;
	struct h2s *next_ready;
	struct h2s *all_next, *all_prev;	/* every live stream, to free on teardown */
	bool busy;			/* a worker is serving it */
	bool dead;			/* closed by the peer while busy: free when the worker is done */
	/* the answer being sent */
	struct wp_resp rs;
	size_t sent;
	bool answering;
};

struct h2c {
	struct conn *c;
	nghttp2_session *s;
	struct h2s *ready_head, *ready_tail;
	struct h2s *all;
	int nstreams;
	bool write_failed;
	pthread_mutex_t pool_mu;
	pthread_mutex_t evmu;		/* held by a worker from setting a bit to waking us */
	int wake[2];			/* workers write a byte after setting event bits */
	int busy;
};

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

/* ---- queues -------------------------------------------------------------------- */

static int bq_init(struct bq *q, bool pollable)
{
	pthread_condattr_t ca;

	memset(q, 0, sizeof(*q));
	q->efd = -1;
	if (pollable && (q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		return -errno;
	pthread_mutex_init(&q->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->cv, &ca);
	pthread_condattr_destroy(&ca);
	return 0;
}

static void bq_free(struct bq *q)
{
	zm_buf_free(&q->b);
	hl_free(&q->trailers);
	if (q->efd >= 0)
		close(q->efd);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv);
}

static void bq_kick(struct bq *q)
{
	uint64_t one = 1;

	pthread_cond_broadcast(&q->cv);
	if (q->efd >= 0)
		(void)!write(q->efd, &one, sizeof(one));
}

/* Either side quits: the other one stops waiting. */
static void bq_gone(struct bq *q)
{
	pthread_mutex_lock(&q->mu);
	q->gone = true;
	bq_kick(q);
	pthread_mutex_unlock(&q->mu);
}

static void ev_set(struct h2s *st, unsigned ev)
{
	struct h2c *h = st->h;
	char one = 1;

	/* after EV_DONE the stream may be freed at once: only h is used after it */
	pthread_mutex_lock(&h->evmu);
	atomic_fetch_or(&st->ev, ev);
	(void)!write(h->wake[1], &one, 1);
	pthread_mutex_unlock(&h->evmu);
}

/* A worker that said EV_DONE has left ev_set(). */
static void ev_settle(struct h2c *h)
{
	pthread_mutex_lock(&h->evmu);
	pthread_mutex_unlock(&h->evmu);
}

/* ---- the worker's side: the request body and the answer -------------------------------- */

static long src_read(struct wp_src *s, char *buf, size_t n)
{
	struct h2s *st = (struct h2s *)((char *)s - offsetof(struct h2s, src));
	struct bq *q = &st->in;
	uint64_t cnt;
	long r;

	(void)!read(q->efd, &cnt, sizeof(cnt));
	pthread_mutex_lock(&q->mu);
	if (zm_buf_len(&q->b)) {
		size_t k = zm_buf_len(&q->b) < n ? zm_buf_len(&q->b) : n;

		memcpy(buf, zm_buf_data(&q->b), k);
		zm_buf_consume(&q->b, k);
		r = (long)k;
	} else {
		r = q->gone ? -ECONNRESET : q->eof ? 0 : -EAGAIN;
	}
	pthread_mutex_unlock(&q->mu);
	if (r > 0) {
		atomic_fetch_add(&st->consumed, (size_t)r);
		ev_set(st, EV_CONSUMED);
	}
	return r;
}

static const struct hlist *src_trailers(struct wp_src *s)
{
	struct h2s *st = (struct h2s *)((char *)s - offsetof(struct h2s, src));

	/* complete before in.eof was set (under in.mu), which read() saw: no lock needed */
	return &st->in.trailers;
}

static int sink_head(struct wp_sink *k, const struct wp_resp *rs, int64_t len)
{
	struct h2s *st = (struct h2s *)((char *)k - offsetof(struct h2s, sink));

	(void)rs;		/* it is st->rs: the connection's thread reads it after EV_HEAD */
	st->len = len;
	ev_set(st, EV_HEAD);
	return 0;
}

static int sink_data(struct wp_sink *k, const char *d, size_t n, int64_t deadline)
{
	struct h2s *st = (struct h2s *)((char *)k - offsetof(struct h2s, sink));
	struct bq *q = &st->out;
	struct timespec ts = { deadline / 1000000000LL, deadline % 1000000000LL };
	int rc = 0;

	pthread_mutex_lock(&q->mu);
	while (n && !q->gone) {
		size_t room = zm_buf_len(&q->b) < WP_STREAM_BUF ? WP_STREAM_BUF - zm_buf_len(&q->b) : 0;

		if (!room) {
			/* the client reads slower than the upstream sends: wait */
			if (pthread_cond_timedwait(&q->cv, &q->mu, &ts) == ETIMEDOUT) {
				rc = -ETIMEDOUT;
				break;
			}
			continue;
		}
		if (room > n)
			room = n;
		if (zm_buf_append(&q->b, d, room)) {
			rc = -ENOMEM;
			break;
		}
		d += room;
		n -= room;
		pthread_mutex_unlock(&q->mu);
		ev_set(st, EV_DATA);
		pthread_mutex_lock(&q->mu);
	}
	if (q->gone)
		rc = -EPIPE;
	pthread_mutex_unlock(&q->mu);
	return rc;
}

static int sink_end(struct wp_sink *k, const struct hlist *tr)
{
	struct h2s *st = (struct h2s *)((char *)k - offsetof(struct h2s, sink));
	struct bq *q = &st->out;
	int rc = 0;

	pthread_mutex_lock(&q->mu);
	for (size_t i = 0; tr && i < tr->n && !rc; i++)
		rc = hl_add(&q->trailers, tr->v[i].n, strlen(tr->v[i].n), tr->v[i].v, strlen(tr->v[i].v));
	q->eof = true;
	pthread_mutex_unlock(&q->mu);
	ev_set(st, EV_DATA);
	return rc;
}

static void sink_abort(struct wp_sink *k)
{
	struct h2s *st = (struct h2s *)((char *)k - offsetof(struct h2s, sink));

	ev_set(st, EV_RESET);
}

/* ---- the connection's side ------------------------------------------------------ */

static void h2s_free(struct h2c *h, struct h2s *st)
{
	if (st->all_prev)
		st->all_prev->all_next = st->all_next;
	else
		h->all = st->all_next;
	if (st->all_next)
		st->all_next->all_prev = st->all_prev;
	zm_buf_free(&st->method);
	zm_buf_free(&st->path);
	zm_buf_free(&st->authority);
	zm_buf_free(&st->hb);
	bq_free(&st->in);
	bq_free(&st->out);
	wp_resp_free(&st->rs);
	free(st);
}

static ssize_t on_send(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *ud)
{
	struct h2c *h = ud;
	size_t off = 0;

	(void)s;
	(void)flags;
	while (off < len) {
		ssize_t w = send(h->c->fd, data + off, len - off, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd pf = { .fd = h->c->fd, .events = POLLOUT };

			if (poll(&pf, 1, 30000) <= 0)
				break;
			continue;
		}
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	if (off < len) {
		h->write_failed = true;
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	return (ssize_t)len;
}

/* A new stream @id of @h: its request comes in HEADERS, or is the HTTP/1.1
 * request that asked for the upgrade (stream 1). NULL when out of memory. */
static struct h2s *h2s_new(struct h2c *h, int32_t id)
{
	struct h2s *st = calloc(1, sizeof(*st));

	if (!st)
		return NULL;
	if (bq_init(&st->in, true)) {
		free(st);
		return NULL;
	}
	bq_init(&st->out, false);
	st->id = id;
	st->h = h;
	st->len = -1;
	st->t0 = mono_ns();
	st->t0_wall = wall_us();
	wp_resp_init(&st->rs);
	st->all_next = h->all;
	if (h->all)
		h->all->all_prev = st;
	h->all = st;
	h->nstreams++;
	return st;
}

static void ready_push(struct h2c *h, struct h2s *st)
{
	st->ready = true;
	if (h->ready_tail)
		h->ready_tail->next_ready = st;
	else
		h->ready_head = st;
	h->ready_tail = st;
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct h2c *h = ud;
	struct h2s *st;

	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	if (h->nstreams >= H2_MAX_STREAMS) {
		nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_REFUSED_STREAM);
		return 0;
	}
	st = h2s_new(h, f->hd.stream_id);
	if (!st)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	nghttp2_session_set_stream_user_data(s, f->hd.stream_id, st);
	return 0;
}

/*
 * A request trailer field (a HEADERS frame after the body): into the body
 * queue's trailers, which the worker reads once the body ended (the END_STREAM
 * of this frame). Same bounds as the head; nghttp2 already refused pseudo
 * fields and bad names or values here (RFC 9113 8.1).
 */
static int on_trailer(struct h2s *st, const uint8_t *name, size_t nl, const uint8_t *value, size_t vl)
{
	int rc = 0;

	st->hdr_bytes += nl + vl + 32;
	if (st->hdr_bytes > WP_MAX_HEADER_BYTES || wp_hop_by_hop((const char *)name, nl))
		return 0;	/* dropped: the head was accepted, its trailers are optional */
	pthread_mutex_lock(&st->in.mu);
	if (!st->in.gone && !st->in.eof && st->in.trailers.n < WP_MAX_HEADERS)
		rc = hl_add(&st->in.trailers, (const char *)name, nl, (const char *)value, vl);
	pthread_mutex_unlock(&st->in.mu);
	return rc ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
		     const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
	struct h2s *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	struct zm_buf *dst = NULL;

	(void)flags;
	(void)ud;
	if (st && f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_HEADERS && st->ready)
		return on_trailer(st, name, nl, value, vl);
	/* only the request's head: a worker may already read it when trailers come */
	if (!st || f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	st->hdr_bytes += nl + vl + 32;	/* RFC 9113 6.5.2 accounting */
	if (st->hdr_bytes > WP_MAX_HEADER_BYTES || st->nh >= WP_MAX_HEADERS) {
		st->too_big = true;
		return 0;
	}
	if (nl && name[0] == ':') {
		if (nl == 7 && !memcmp(name, ":method", 7))
			dst = &st->method;
		else if (nl == 5 && !memcmp(name, ":path", 5))
			dst = &st->path;
		else if (nl == 10 && !memcmp(name, ":authority", 10))
			dst = &st->authority;
		if (dst && (zm_buf_len(dst) || zm_buf_append(dst, value, vl)))
			st->bad = true;
		return 0;
	}
	/* HTTP/1-only fields are malformed in HTTP/2 (nghttp2 rejects most
	 * already); `trailer` (announcing trailers) is valid, not forwarded */
	if (wp_hop_by_hop((const char *)name, nl) && !(nl == 2 && !memcmp(name, "te", 2)) &&
	    !(nl == 14 && !memcmp(name, "content-length", 14)) && !(nl == 7 && !memcmp(name, "trailer", 7))) {
		st->bad = true;
		return 0;
	}
	st->hs[st->nh].noff = (uint32_t)zm_buf_len(&st->hb);
	st->hs[st->nh].nlen = (uint32_t)nl;
	if (zm_buf_append(&st->hb, name, nl))
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	st->hs[st->nh].voff = (uint32_t)zm_buf_len(&st->hb);
	st->hs[st->nh].vlen = (uint32_t)vl;
	if (zm_buf_append(&st->hb, value, vl))
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	st->nh++;
	return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
		   void *ud)
{
	struct h2s *st = nghttp2_session_get_stream_user_data(s, id);
	bool keep = false;

	(void)flags;
	(void)ud;
	if (st) {
		/* never more than the window we gave: flow control bounds this queue */
		pthread_mutex_lock(&st->in.mu);
		keep = !st->in.gone && !zm_buf_append(&st->in.b, data, len);
		if (keep)
			bq_kick(&st->in);
		pthread_mutex_unlock(&st->in.mu);
	}
	if (keep)
		st->unacked += len;
	else
		nghttp2_session_consume(s, id, len);	/* nobody will read it */
	return 0;
}

static int on_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct h2c *h = ud;
	struct h2s *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);

	if (!st || (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA))
		return 0;
	if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST && !st->ready) {
		/* the head is complete: serve it now, the body follows */
		st->no_body = f->hd.flags & NGHTTP2_FLAG_END_STREAM;
		ready_push(h, st);
	}
	if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) {
		pthread_mutex_lock(&st->in.mu);
		st->in.eof = true;
		bq_kick(&st->in);
		pthread_mutex_unlock(&st->in.mu);
	}
	return 0;
}

static int on_close(nghttp2_session *s, int32_t id, uint32_t err, void *ud)
{
	struct h2c *h = ud;
	struct h2s *st = nghttp2_session_get_stream_user_data(s, id);

	(void)err;
	if (!st)
		return 0;
	/* still queued: unlink it */
	for (struct h2s **pp = &h->ready_head, *prev = NULL; *pp; prev = *pp, pp = &(*pp)->next_ready) {
		if (*pp == st) {
			*pp = st->next_ready;
			if (h->ready_tail == st)
				h->ready_tail = prev;
			break;
		}
	}
	nghttp2_session_set_stream_user_data(s, id, NULL);
	h->nstreams--;
	/* what the worker will not take any more goes back to the connection's window */
	if (st->unacked)
		nghttp2_session_consume_connection(s, st->unacked);
	st->unacked = 0;
	if (st->busy) {
		st->dead = true;	/* the worker still reads it: cut it off */
		bq_gone(&st->in);
		bq_gone(&st->out);
	} else {
		h2s_free(h, st);
	}
	return 0;
}

/* A buffered (local) answer. */
static ssize_t read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
			 nghttp2_data_source *src, void *ud)
{
	struct h2s *st = src->ptr;
	size_t left = st->rs.head ? 0 : zm_buf_len(&st->rs.body) - st->sent;
	size_t n = left < len ? left : len;

	(void)s;
	(void)id;
	(void)ud;
	if (n)
		memcpy(buf, zm_buf_data(&st->rs.body) + st->sent, n);
	st->sent += n;
	if (st->sent >= zm_buf_len(&st->rs.body) || st->rs.head)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static void submit_trailers(nghttp2_session *s, int32_t id, const struct hlist *tr, uint32_t *flags)
{
	/* gRPC: grpc-status and friends travel as trailers */
	nghttp2_nv tv[WP_MAX_HEADERS];
	size_t nt = 0;

	for (size_t i = 0; i < tr->n && nt < WP_MAX_HEADERS; i++) {
		const struct hkv *kv = &tr->v[i];

		tv[nt++] = (nghttp2_nv){ (uint8_t *)kv->n, (uint8_t *)kv->v, strlen(kv->n), strlen(kv->v),
					 NGHTTP2_NV_FLAG_NONE };
	}
	if (nt && nghttp2_submit_trailer(s, id, tv, nt) == 0)
		*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
}

/* A streamed answer: what the worker queued; deferred while the queue is empty. */
static ssize_t read_stream(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
			   nghttp2_data_source *src, void *ud)
{
	struct h2s *st = src->ptr;
	struct bq *q = &st->out;
	size_t n = 0;
	ssize_t rc;

	(void)ud;
	pthread_mutex_lock(&q->mu);
	if (zm_buf_len(&q->b)) {
		n = zm_buf_len(&q->b) < len ? zm_buf_len(&q->b) : len;
		memcpy(buf, zm_buf_data(&q->b), n);
		zm_buf_consume(&q->b, n);
		pthread_cond_broadcast(&q->cv);	/* room for the worker */
		rc = (ssize_t)n;
	} else if (q->eof) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		submit_trailers(s, id, &q->trailers, flags);
		rc = 0;
	} else {
		rc = NGHTTP2_ERR_DEFERRED;
	}
	pthread_mutex_unlock(&q->mu);
	return rc;
}

/* A worker: serve one stream, hand events back. */
static void *stream_worker(void *arg)
{
	struct h2s *st = arg;
	struct h2c *h = st->h;
	const struct conn *c = h->c;
	struct conn wc = { .fd = -1, .family = c->family, .mtls = c->mtls, .gw_port = c->gw_port,
			    .gw_tls = c->gw_tls, .tcp_port = c->tcp_port };
	struct zm_http_field f[WP_MAX_HEADERS];
	const char *hb = zm_buf_data(&st->hb);
	struct wp_req rq = {
		.method = zm_buf_cstr(&st->method), .target = zm_buf_cstr(&st->path),
		.target_len = zm_buf_len(&st->path), .authority = zm_buf_cstr(&st->authority),
		.f = f, .nf = st->nh, .src = st->no_body ? NULL : &st->src, .sink = &st->sink,
		.framed_body = !st->no_body, .proto = "HTTP/2",
	};

	/* the worker's view of the connection: who the peer is, and the shared
	 * upstream pool under its lock; nothing else of the connection */
	memcpy(wc.peer, c->peer, sizeof(wc.peer));
	memcpy(wc.addr, c->addr, sizeof(wc.addr));
	memcpy(wc.principal, c->principal, sizeof(wc.principal));
	for (int i = 0; i < UP_POOL; i++)
		wc.pool[i].fd = -1;
	wc.shared_pool = h->c->pool;
	wc.pool_mu = &h->pool_mu;
	for (size_t i = 0; i < st->nh; i++) {
		f[i] = (struct zm_http_field){ hb + st->hs[i].noff, st->hs[i].nlen,
					       hb + st->hs[i].voff, st->hs[i].vlen };
		if (f[i].name_len == 14 && !memcmp(f[i].name, "content-length", 14) && f[i].value_len < 20) {
			char cl[24];

			snprintf(cl, sizeof(cl), "%.*s", (int)f[i].value_len, f[i].value);
			st->src.len = strtoll(cl, NULL, 10);
		}
	}
	if (!zm_buf_len(&st->authority))
		rq.authority = NULL;	/* then the Host field, as HTTP/1 */
	wp_serve(&wc, &rq, &st->rs, st->t0, st->t0_wall);
	for (int i = 0; i < UP_POOL; i++)
		if (wc.pool[i].fd > 0)
			close(wc.pool[i].fd);
	ev_set(st, EV_DONE);
	return NULL;
}

/* Start serving a stream whose head is complete: malformed ones are answered at once. */
static void stream_start(struct h2c *h, struct h2s *st)
{
	pthread_t th;
	pthread_attr_t at;
	int code = 0;

	st->src = (struct wp_src){ .read = src_read, .trailers = src_trailers, .fd = st->in.efd, .len = -1 };
	st->sink = (struct wp_sink){ sink_head, sink_data, sink_end, sink_abort };
	st->busy = true;
	h->busy++;
	if (st->too_big || st->bad || !zm_buf_len(&st->method) || !zm_buf_len(&st->path)) {
		code = st->too_big ? 431 : 400;
	} else {
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&at, 512 * 1024);
		if (pthread_create(&th, &at, stream_worker, st))
			code = 503;
		pthread_attr_destroy(&at);
	}
	if (code) {
		st->rs.status = code;
		zm_buf_puts(&st->rs.body, code == 431 ? "request header fields too large" :
			    code == 400 ? "bad request" : "overloaded");
		ev_set(st, EV_DONE);
	}
}

/* Submit the head of a stream's answer: streamed (the body follows) or whole. */
static void submit_answer(struct h2c *h, struct h2s *st, bool streamed)
{
	nghttp2_nv nv[WP_MAX_HEADERS * 2 + 4];
	size_t nnv = 0;
	char status[8], clen[24];
	nghttp2_data_provider prd = { .source.ptr = st, .read_callback = streamed ? read_stream : read_body };
	int64_t len = streamed ? st->len : (int64_t)zm_buf_len(&st->rs.body);
	/* no body: HEAD, 204, 304, and gRPC's trailers-only answer (grpc-status
	 * in the head, e.g. a fault abort), which must end on its HEADERS frame */
	bool bodyless = st->rs.head || st->rs.status == 204 || st->rs.status == 304 ||
			(len == 0 && wp_grpc_status(&st->rs.h) >= 0);

	snprintf(status, sizeof(status), "%d", st->rs.status);
	nv[nnv++] = (nghttp2_nv){ (uint8_t *)":status", (uint8_t *)status, 7, strlen(status),
				  NGHTTP2_NV_FLAG_NONE };
	for (size_t i = 0; i < st->rs.h.n && nnv < sizeof(nv) / sizeof(nv[0]) - 2; i++) {
		const struct hkv *kv = &st->rs.h.v[i];

		if (wp_hop_by_hop(kv->n, strlen(kv->n)) && strcmp(kv->n, "content-length"))
			continue;
		nv[nnv++] = (nghttp2_nv){ (uint8_t *)kv->n, (uint8_t *)kv->v, strlen(kv->n),
					  strlen(kv->v), NGHTTP2_NV_FLAG_NONE };
	}
	if (!st->rs.keep_length && st->rs.status != 204 && st->rs.status != 304 && len >= 0) {
		snprintf(clen, sizeof(clen), "%lld", (long long)len);
		nv[nnv++] = (nghttp2_nv){ (uint8_t *)"content-length", (uint8_t *)clen, 14, strlen(clen),
					  NGHTTP2_NV_FLAG_NONE };
	}
	st->head_sent = true;
	st->streaming = streamed && !bodyless;
	if (bodyless && streamed) {
		/* no body to wait for; the worker's writes go nowhere */
		bq_gone(&st->out);
	}
	if (nghttp2_submit_response(h->s, st->id, nv, nnv, bodyless ? NULL : &prd))
		nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
}

/* What the workers said: heads, data, consumed bytes, endings. */
static void take_events(struct h2c *h)
{
	char drain[64];

	while (read(h->wake[0], drain, sizeof(drain)) > 0)
		;
	for (struct h2s *st = h->all, *next; st; st = next) {
		unsigned ev = atomic_exchange(&st->ev, 0);

		next = st->all_next;
		if (!ev)
			continue;
		if (st->dead) {
			if (ev & EV_DONE) {
				st->busy = false;
				h->busy--;
				ev_settle(h);
				h2s_free(h, st);
			}
			continue;
		}
		if (ev & EV_CONSUMED) {
			size_t n = atomic_exchange(&st->consumed, 0);

			if (n > st->unacked)
				n = st->unacked;
			st->unacked -= n;
			if (n)
				nghttp2_session_consume(h->s, st->id, n);
		}
		if ((ev & EV_HEAD) && !st->head_sent)
			submit_answer(h, st, true);
		if ((ev & EV_DATA) && st->streaming)
			nghttp2_session_resume_data(h->s, st->id);
		if ((ev & EV_RESET) && !st->cut) {
			st->cut = true;
			nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
		}
		if (ev & EV_DONE) {
			st->busy = false;
			h->busy--;
			/* a body the answer did not need: dropped from now on */
			bq_gone(&st->in);
			if (st->unacked) {
				nghttp2_session_consume(h->s, st->id, st->unacked);
				st->unacked = 0;
			}
			if (!st->head_sent && !st->cut)
				submit_answer(h, st, false);
			else if (st->streaming && !st->out.eof && !st->cut) {
				/* the worker ended without an end: the answer was cut */
				st->cut = true;
				nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
			}
		}
	}
}

/* RFC 7540 3.2 (h2c upgrade): the HTTP/1.1 request @m that asked for it is
 * stream 1, half-closed by the client; @settings is its HTTP2-Settings,
 * decoded. Its fields go over as HTTP/2 fields: names in lower case, the
 * Host as :authority, the connection's own fields dropped. */
static int upgrade_stream(struct h2c *h, struct wp_msg *m, const uint8_t *settings, size_t slen)
{
	static const char *const drop[] = { "connection", "upgrade", "http2-settings", "host", "keep-alive",
					     "proxy-connection", "transfer-encoding", "te", NULL };
	const char *b = zm_buf_data(&m->hb);
	struct h2s *st = h2s_new(h, 1);
	bool head;

	if (!st)
		return -ENOMEM;
	zm_buf_append(&st->method, zm_buf_data(&m->method), zm_buf_len(&m->method));
	zm_buf_append(&st->path, zm_buf_data(&m->url), zm_buf_len(&m->url));
	for (size_t i = 0; i < m->nh; i++) {
		const char *n = b + m->hs[i].noff;
		size_t nl = m->hs[i].nlen, k;
		bool skip = false;

		for (k = 0; drop[k] && !skip; k++)
			skip = strlen(drop[k]) == nl && !strncasecmp(drop[k], n, nl);
		if (nl == 4 && !strncasecmp(n, "host", 4) && !zm_buf_len(&st->authority))
			zm_buf_append(&st->authority, b + m->hs[i].voff, m->hs[i].vlen);
		if (skip)
			continue;
		st->hs[st->nh].noff = (uint32_t)zm_buf_len(&st->hb);
		st->hs[st->nh].nlen = (uint32_t)nl;
		for (k = 0; k < nl; k++) {
			char lc = (char)tolower((unsigned char)n[k]);

			zm_buf_append(&st->hb, &lc, 1);
		}
		st->hs[st->nh].voff = (uint32_t)zm_buf_len(&st->hb);
		st->hs[st->nh].vlen = m->hs[i].vlen;
		zm_buf_append(&st->hb, b + m->hs[i].voff, m->hs[i].vlen);
		st->nh++;
	}
	st->no_body = true;
	st->in.eof = true;
	head = zm_buf_len(&m->method) == 4 && !memcmp(zm_buf_data(&m->method), "HEAD", 4);
	if (nghttp2_session_upgrade2(h->s, settings, slen, head, st))
		return -EPROTO;
	ready_push(h, st);
	return 0;
}

static void serve(struct conn *c, struct wp_msg *up, const uint8_t *settings, size_t slen)
{
	struct h2c h = { .c = c };
	int64_t quiet_until;		/* --idle-timeout: nothing to do until then ends the connection */
	nghttp2_session_callbacks *cb;
	nghttp2_option *opt;
	nghttp2_settings_entry set[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_MAX_STREAMS },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, WP_MAX_HEADER_BYTES },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, WP_H2_STREAM_WINDOW },
	};

	if (pipe2(h.wake, O_CLOEXEC | O_NONBLOCK))
		return;
	pthread_mutex_init(&h.pool_mu, NULL);
	pthread_mutex_init(&h.evmu, NULL);
	if (nghttp2_session_callbacks_new(&cb)) {
		close(h.wake[0]);
		close(h.wake[1]);
		return;
	}
	nghttp2_session_callbacks_set_send_callback(cb, on_send);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
	if (nghttp2_option_new(&opt)) {
		nghttp2_session_callbacks_del(cb);
		return;
	}
	/* Bound what a peer can make us hold (CVE-2023-44487 and kin). */
	nghttp2_option_set_max_outbound_ack(opt, 1000);
	nghttp2_option_set_max_settings(opt, 32);
	/* the window follows the reader (see the top) */
	nghttp2_option_set_no_auto_window_update(opt, 1);
	if (nghttp2_session_server_new2(&h.s, cb, &h, opt)) {
		nghttp2_option_del(opt);
		nghttp2_session_callbacks_del(cb);
		return;
	}
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cb);
	nghttp2_submit_settings(h.s, NGHTTP2_FLAG_NONE, set, sizeof(set) / sizeof(set[0]));
	nghttp2_session_set_local_window_size(h.s, NGHTTP2_FLAG_NONE, 0, WP_H2_CONN_WINDOW);
	if (up && upgrade_stream(&h, up, settings, slen))
		goto out;
	/* what the HTTP/1 reader already took from the socket (the preface) */
	if (zm_buf_len(&c->in)) {
		ssize_t r = nghttp2_session_mem_recv(h.s, (const uint8_t *)zm_buf_data(&c->in),
						     zm_buf_len(&c->in));

		zm_buf_reset(&c->in);
		if (r < 0)
			goto out;
	}
	quiet_until = mono_ns() + (int64_t)wp_options->idle_timeout_ms * 1000000;
	for (;;) {
		char buf[16384];
		struct pollfd pf[2] = { { .fd = c->fd, .events = POLLIN },
					{ .fd = h.wake[0], .events = POLLIN } };
		ssize_t n;
		int pr;

		while (h.ready_head) {
			struct h2s *st = h.ready_head;

			h.ready_head = st->next_ready;
			if (!h.ready_head)
				h.ready_tail = NULL;
			st->next_ready = NULL;
			stream_start(&h, st);
		}
		take_events(&h);
		if (nghttp2_session_send(h.s) || h.write_failed)
			goto out;
		if (!h.busy && !nghttp2_session_want_read(h.s) && !nghttp2_session_want_write(h.s))
			goto out;
		{
			/* wake to close pooled upstream connections as they expire (idleTimeout) */
			int64_t next = wp_up_sweep(c->pool, &h.pool_mu), now = mono_ns();
			int64_t to = h.busy ? 1000 : quiet_until > now ? (quiet_until - now) / 1000000 : 0;

			if (next && (next - now) / 1000000 + 1 < to)
				to = (next - now) / 1000000 + 1;
			pr = poll(pf, 2, (int)to);
		}
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr == 0 && !h.busy && mono_ns() < quiet_until)
			continue;
		if (pr < 0 || (pr == 0 && !h.busy))
			goto out;
		if (pr > 0 || h.busy)
			quiet_until = mono_ns() + (int64_t)wp_options->idle_timeout_ms * 1000000;
		if (!(pf[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		n = recv(c->fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto out;
		if (nghttp2_session_mem_recv(h.s, (const uint8_t *)buf, (size_t)n) < 0)
			goto out;
	}
out:
	nghttp2_session_send(h.s);
	/* workers still hold their streams: cut them off and wait for them */
	for (struct h2s *st = h.all; st; st = st->all_next)
		if (st->busy) {
			bq_gone(&st->in);
			bq_gone(&st->out);
		}
	while (h.busy) {
		struct pollfd pf = { .fd = h.wake[0], .events = POLLIN };
		char drain[64];

		poll(&pf, 1, 1000);
		while (read(h.wake[0], drain, sizeof(drain)) > 0)
			;
		for (struct h2s *st = h.all; st; st = st->all_next)
			if ((atomic_exchange(&st->ev, 0) & EV_DONE) && st->busy) {
				st->busy = false;
				h.busy--;
			}
	}
	ev_settle(&h);
	nghttp2_session_del(h.s);
	while (h.all)
		h2s_free(&h, h.all);
	close(h.wake[0]);
	close(h.wake[1]);
	pthread_mutex_destroy(&h.pool_mu);
	pthread_mutex_destroy(&h.evmu);
}

void wp_h2_serve(struct conn *c)
{
	serve(c, NULL, NULL, 0);
}

void wp_h2_serve_upgrade(struct conn *c, struct wp_msg *req, const uint8_t *settings, size_t slen)
{
	serve(c, req, settings, slen);
}
