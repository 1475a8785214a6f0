// SPDX-License-Identifier: Apache-2.0
/*
 * HTTP/2 front end (h2c with prior knowledge; the HBONE inner stream and
 * gRPC clients speak it) with nghttp2, on the same wp_serve() as HTTP/1.
 *
 * The connection's thread owns the nghttp2 session; each completed stream
 * is served by a worker thread (its own upstream pool) that hands the
 * answer back through a list and a pipe, so a slow stream holds up no
 * other. A stream the peer resets while its worker runs is freed when the
 * worker is done. Bounded: 100 concurrent streams (so 100 workers), header
 * block bytes and body sizes as HTTP/1.
 */
#include <errno.h>
#include <fcntl.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "zmesh/log.h"
#include "waypoint.h"

#define H2_MAX_STREAMS 100

struct h2s {
	int32_t id;
	struct zm_buf method, path, authority, hb, body;
	struct wp_span hs[WP_MAX_HEADERS];
	size_t nh, hdr_bytes;
	bool too_big, body_too_big, bad, ready, data_seen;
	int64_t t0, t0_wall;
	struct h2s *next_ready;
	struct h2s *all_next, *all_prev;	/* every live stream, to free on teardown */
	struct h2s *next_done;
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
	/* workers hand finished streams back through done + a pipe */
	pthread_mutex_t mu, pool_mu;
	struct h2s *done_head;
	int wake[2];
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
	zm_buf_free(&st->body);
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
	st = calloc(1, sizeof(*st));
	if (!st)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	st->id = f->hd.stream_id;
	st->t0 = mono_ns();
	st->t0_wall = wall_us();
	wp_resp_init(&st->rs);
	st->all_next = h->all;
	if (h->all)
		h->all->all_prev = st;
	h->all = st;
	h->nstreams++;
	nghttp2_session_set_stream_user_data(s, f->hd.stream_id, st);
	return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
		     const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
	struct h2s *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	struct zm_buf *dst = NULL;

	(void)flags;
	(void)ud;
	if (!st || f->hd.type != NGHTTP2_HEADERS)
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
	/* HTTP/1-only fields are malformed in HTTP/2 (nghttp2 rejects most already). */
	if (wp_hop_by_hop((const char *)name, nl) && !(nl == 2 && !memcmp(name, "te", 2)) &&
	    !(nl == 14 && !memcmp(name, "content-length", 14))) {
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

	(void)flags;
	(void)ud;
	if (!st)
		return 0;
	st->data_seen = true;
	if (zm_buf_len(&st->body) + len > WP_MAX_REQ_BODY) {
		st->body_too_big = true;
		return 0;
	}
	return zm_buf_append(&st->body, data, len) ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

static int on_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct h2c *h = ud;
	struct h2s *st;

	if ((f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) ||
	    !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	if (!st || st->ready)
		return 0;
	st->ready = true;
	if (h->ready_tail)
		h->ready_tail->next_ready = st;
	else
		h->ready_head = st;
	h->ready_tail = st;
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
	if (st->busy)
		st->dead = true;	/* the worker still reads it */
	else
		h2s_free(h, st);
	return 0;
}

static ssize_t read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
			 nghttp2_data_source *src, void *ud)
{
	struct h2s *st = src->ptr;
	size_t left = st->rs.head ? 0 : zm_buf_len(&st->rs.body) - st->sent;
	size_t n = left < len ? left : len;

	(void)ud;
	if (n)
		memcpy(buf, zm_buf_data(&st->rs.body) + st->sent, n);
	st->sent += n;
	if (st->sent >= zm_buf_len(&st->rs.body) || st->rs.head) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		if (st->rs.trailers.n && !st->rs.head) {
			/* gRPC: grpc-status and friends travel as trailers */
			nghttp2_nv tv[WP_MAX_HEADERS];
			size_t nt = 0;

			for (size_t i = 0; i < st->rs.trailers.n && nt < WP_MAX_HEADERS; i++) {
				const struct hkv *kv = &st->rs.trailers.v[i];

				tv[nt++] = (nghttp2_nv){ (uint8_t *)kv->n, (uint8_t *)kv->v, strlen(kv->n),
							 strlen(kv->v), NGHTTP2_NV_FLAG_NONE };
			}
			if (nghttp2_submit_trailer(s, id, tv, nt) == 0)
				*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
		}
	}
	return (ssize_t)n;
}

struct h2w {
	struct h2c *h;
	struct h2s *st;
};

static void done_push(struct h2c *h, struct h2s *st)
{
	char one = 1;

	pthread_mutex_lock(&h->mu);
	st->next_done = h->done_head;
	h->done_head = st;
	pthread_mutex_unlock(&h->mu);
	(void)!write(h->wake[1], &one, 1);
}

/* A worker: serve one stream with its own upstream pool, hand it back. */
static void *stream_worker(void *arg)
{
	struct h2w *w = arg;
	struct h2s *st = w->st;
	const struct conn *c = w->h->c;
	struct conn wc = { .fd = -1, .family = c->family, .mtls = c->mtls, .gw_port = c->gw_port,
			    .gw_tls = c->gw_tls };
	struct zm_http_field f[WP_MAX_HEADERS];
	const char *hb = zm_buf_data(&st->hb);
	struct wp_req rq = {
		.method = zm_buf_cstr(&st->method), .target = zm_buf_cstr(&st->path),
		.target_len = zm_buf_len(&st->path), .authority = zm_buf_cstr(&st->authority),
		.f = f, .nf = st->nh, .body = &st->body, .framed_body = st->data_seen,
		.proto = "HTTP/2",
	};

	/* the worker's view of the connection: who the peer is, and the shared
	 * upstream pool under its lock; nothing else of the connection */
	memcpy(wc.peer, c->peer, sizeof(wc.peer));
	memcpy(wc.addr, c->addr, sizeof(wc.addr));
	memcpy(wc.principal, c->principal, sizeof(wc.principal));
	for (int i = 0; i < UP_POOL; i++)
		wc.pool[i].fd = -1;
	wc.shared_pool = w->h->c->pool;
	wc.pool_mu = &w->h->pool_mu;
	for (size_t i = 0; i < st->nh; i++)
		f[i] = (struct zm_http_field){ hb + st->hs[i].noff, st->hs[i].nlen,
					       hb + st->hs[i].voff, st->hs[i].vlen };
	if (!zm_buf_len(&st->authority))
		rq.authority = NULL;	/* then the Host field, as HTTP/1 */
	wp_serve(&wc, &rq, &st->rs, st->t0, st->t0_wall);
	for (int i = 0; i < UP_POOL; i++)
		if (wc.pool[i].fd > 0)
			close(wc.pool[i].fd);
	done_push(w->h, st);
	free(w);
	return NULL;
}

/* Start serving a completed stream: malformed ones are answered at once. */
static void stream_start(struct h2c *h, struct h2s *st)
{
	struct h2w *w;
	pthread_t th;
	pthread_attr_t at;

	if (st->too_big || st->body_too_big || st->bad || !zm_buf_len(&st->method) ||
	    !zm_buf_len(&st->path) || !(w = calloc(1, sizeof(*w)))) {
		int code = st->too_big ? 431 : st->body_too_big ? 413 : st->bad ||
			   !zm_buf_len(&st->method) || !zm_buf_len(&st->path) ? 400 : 503;
		const char *why = code == 431 ? "request header fields too large" :
				  code == 413 ? "payload too large" : code == 400 ? "bad request" :
				  "overloaded";

		st->rs.status = code;
		zm_buf_puts(&st->rs.body, why);
		st->busy = true;
		h->busy++;
		done_push(h, st);
		return;
	}
	w->h = h;
	w->st = st;
	st->busy = true;
	h->busy++;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, 512 * 1024);
	if (pthread_create(&th, &at, stream_worker, w)) {
		free(w);
		st->rs.status = 503;
		zm_buf_puts(&st->rs.body, "overloaded");
		done_push(h, st);
	}
	pthread_attr_destroy(&at);
}

/* Submit the answer of a stream its worker finished. */
static void submit_answer(struct h2c *h, struct h2s *st)
{
	nghttp2_nv nv[WP_MAX_HEADERS * 2 + 4];
	size_t nnv = 0;
	char status[8], clen[24];
	nghttp2_data_provider prd = { .source.ptr = st, .read_callback = read_body };

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
	if (!st->rs.keep_length && st->rs.status != 204 && st->rs.status != 304) {
		snprintf(clen, sizeof(clen), "%zu", zm_buf_len(&st->rs.body));
		nv[nnv++] = (nghttp2_nv){ (uint8_t *)"content-length", (uint8_t *)clen, 14, strlen(clen),
					  NGHTTP2_NV_FLAG_NONE };
	}
	st->answering = true;
	if (nghttp2_submit_response(h->s, st->id, nv, nnv, &prd))
		nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
}

/* Finished streams: submit their answers (or free those the peer closed). */
static void take_done(struct h2c *h)
{
	struct h2s *list;
	char drain[64];

	while (read(h->wake[0], drain, sizeof(drain)) > 0)
		;
	pthread_mutex_lock(&h->mu);
	list = h->done_head;
	h->done_head = NULL;
	pthread_mutex_unlock(&h->mu);
	while (list) {
		struct h2s *st = list;

		list = st->next_done;
		st->busy = false;
		h->busy--;
		if (st->dead)
			h2s_free(h, st);
		else
			submit_answer(h, st);
	}
}

void wp_h2_serve(struct conn *c)
{
	struct h2c h = { .c = c };
	nghttp2_session_callbacks *cb;
	nghttp2_option *opt;
	nghttp2_settings_entry set[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_MAX_STREAMS },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, WP_MAX_HEADER_BYTES },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20 },
	};

	if (pipe2(h.wake, O_CLOEXEC | O_NONBLOCK))
		return;
	pthread_mutex_init(&h.mu, NULL);
	pthread_mutex_init(&h.pool_mu, NULL);
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
	if (nghttp2_session_server_new2(&h.s, cb, &h, opt)) {
		nghttp2_option_del(opt);
		nghttp2_session_callbacks_del(cb);
		return;
	}
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cb);
	nghttp2_submit_settings(h.s, NGHTTP2_FLAG_NONE, set, sizeof(set) / sizeof(set[0]));
	/* what the HTTP/1 reader already took from the socket (the preface) */
	if (zm_buf_len(&c->in)) {
		ssize_t r = nghttp2_session_mem_recv(h.s, (const uint8_t *)zm_buf_data(&c->in),
						     zm_buf_len(&c->in));

		zm_buf_reset(&c->in);
		if (r < 0)
			goto out;
	}
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
		take_done(&h);
		if (nghttp2_session_send(h.s) || h.write_failed)
			goto out;
		if (!h.busy && !nghttp2_session_want_read(h.s) && !nghttp2_session_want_write(h.s))
			goto out;
		pr = poll(pf, 2, h.busy ? 1000 : wp_options->idle_timeout_ms);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0 || (pr == 0 && !h.busy))
			goto out;
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
	/* workers still hold their streams: wait for them before freeing */
	while (h.busy) {
		struct pollfd pf = { .fd = h.wake[0], .events = POLLIN };

		poll(&pf, 1, 1000);
		pthread_mutex_lock(&h.mu);
		for (struct h2s *st = h.done_head; st; st = st->next_done) {
			st->busy = false;
			h.busy--;
		}
		h.done_head = NULL;
		pthread_mutex_unlock(&h.mu);
		{
			char drain[64];

			while (read(h.wake[0], drain, sizeof(drain)) > 0)
				;
		}
	}
	nghttp2_session_del(h.s);
	while (h.all)
		h2s_free(&h, h.all);
	close(h.wake[0]);
	close(h.wake[1]);
	pthread_mutex_destroy(&h.mu);
	pthread_mutex_destroy(&h.pool_mu);
}
