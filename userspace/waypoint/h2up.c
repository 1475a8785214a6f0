// SPDX-License-Identifier: Apache-2.0
/*
 * HTTP/2 (h2c, prior knowledge) to an upstream endpoint, for gRPC and for
 * Service ports named http2/grpc/h2c: one request on a fresh connection
 * (no pooling yet), both ways at once so gRPC client, server and
 * bidirectional streams flow: the request body is sent as the client
 * delivers it (a deferred data provider resumed when the source has
 * bytes), the answer's DATA go to the sink as they arrive. The sink blocks
 * while the client is slow, inside the DATA callback, so nghttp2 sends no
 * WINDOW_UPDATE and the upstream is held back by its flow-control window:
 * nothing here grows with the body. Trailers (grpc-status) are passed on.
 *
 * A retry on a grpc-status in trailers needs the whole answer: when one is
 * possible, an answer is held (up to WP_RETRY_BUFFER) until it ends or
 * HOLD_GRACE_NS pass without its end; a stream then flows, a unary answer
 * (head, message and trailers sent together) can still be retried.
 */
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "waypoint.h"

/* hold_grpc: how long a held answer may wait for its end before it streams */
#define HOLD_GRACE_NS (50 * 1000000LL)

struct h2up {
	int fd;
	int32_t sid;
	struct wp_xfer *x;
	int status;
	struct hlist h, trailers;
	struct zm_buf held;		/* an answer held for a retry decision (hold_grpc) */
	size_t hdr_bytes;
	int64_t len;
	bool in_trailers, done, failed, too_big, refused, body_wait, holding, dropped, sink_failed;
};

static int64_t mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t sink_deadline(const struct h2up *u)
{
	return u->x->deadline ? u->x->deadline : mono() + (int64_t)wp_options->idle_timeout_ms * 1000000;
}

static ssize_t up_send(nghttp2_session *s, const uint8_t *d, size_t n, int flags, void *ud)
{
	struct h2up *u = ud;
	ssize_t w = send(u->fd, d, n, MSG_NOSIGNAL | MSG_DONTWAIT);

	(void)s;
	(void)flags;
	if (w < 0 && (errno == EAGAIN || errno == EINTR))
		return NGHTTP2_ERR_WOULDBLOCK;
	if (w < 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	return w;
}

static int up_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
		     const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
	struct h2up *u = ud;

	(void)s;
	(void)flags;
	if (f->hd.stream_id != u->sid)
		return 0;
	u->hdr_bytes += nl + vl + 32;
	if (u->hdr_bytes > WP_MAX_HEADER_BYTES) {
		u->too_big = true;
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	if (nl == 7 && !memcmp(name, ":status", 7)) {
		char st[8];

		snprintf(st, sizeof(st), "%.*s", (int)(vl < 7 ? vl : 7), value);
		u->status = atoi(st);
		if (u->status < 200) {
			/* an interim answer: its fields are not the answer's */
			hl_free(&u->h);
		}
		return 0;
	}
	if (nl && name[0] == ':')
		return 0;
	if (f->headers.cat == NGHTTP2_HCAT_HEADERS && u->x->committed)
		u->in_trailers = true;
	if (f->headers.cat == NGHTTP2_HCAT_HEADERS && u->status >= 200 && !u->in_trailers &&
	    (u->holding || u->x->committed))
		u->in_trailers = true;
	return hl_add(u->in_trailers ? &u->trailers : &u->h, (const char *)name, nl,
		      (const char *)value, vl) ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

/* Send the head to the client (and what was held). */
static int commit(struct h2up *u)
{
	struct wp_xfer *x = u->x;

	u->holding = false;
	if (x->commit(x, u->status, NULL, 0, &u->h, u->len)) {
		u->sink_failed = true;
		return -1;
	}
	if (zm_buf_len(&u->held)) {
		if (x->sink->data(x->sink, zm_buf_data(&u->held), zm_buf_len(&u->held), sink_deadline(u))) {
			u->sink_failed = true;
			return -1;
		}
		x->resp_bytes += zm_buf_len(&u->held);
		zm_buf_free(&u->held);
	}
	return 0;
}

/* The answer's head is in: retry, hold for the trailers, or commit. */
static int on_head(struct h2up *u, bool end_stream)
{
	struct wp_xfer *x = u->x;
	const char *cl = NULL;

	for (size_t i = 0; i < u->h.n; i++)
		if (!strcmp(u->h.v[i].n, "content-length"))
			cl = u->h.v[i].v;
	u->len = cl ? strtoll(cl, NULL, 10) : -1;
	if (x->verdict(x, u->status, wp_grpc_status(&u->h)) == WP_RETRY) {
		u->dropped = true;
		return NGHTTP2_ERR_CALLBACK_FAILURE;	/* drop the session, the caller retries */
	}
	if (x->hold_grpc && !end_stream) {
		u->holding = true;
		return 0;
	}
	return commit(u) ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

static int up_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct h2up *u = ud;

	(void)s;
	if (f->hd.stream_id != u->sid || f->hd.type != NGHTTP2_HEADERS)
		return 0;
	if (u->status >= 200 && !u->x->committed && !u->holding && !u->in_trailers)
		return on_head(u, f->hd.flags & NGHTTP2_FLAG_END_STREAM);
	return 0;
}

static int up_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *d, size_t n,
		   void *ud)
{
	struct h2up *u = ud;
	struct wp_xfer *x = u->x;

	(void)s;
	(void)flags;
	if (id != u->sid)
		return 0;
	if (u->holding) {
		if (zm_buf_len(&u->held) + n <= WP_RETRY_BUFFER)
			return zm_buf_append(&u->held, d, n) ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
		if (commit(u))
			return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	if (!x->committed)
		return 0;
	/* blocks while the client is slow: back-pressure through our window */
	if (x->sink->data(x->sink, (const char *)d, n, sink_deadline(u))) {
		u->sink_failed = true;
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	x->resp_bytes += n;
	return 0;
}

static int up_close(nghttp2_session *s, int32_t id, uint32_t err, void *ud)
{
	struct h2up *u = ud;
	struct wp_xfer *x = u->x;

	(void)s;
	if (id != u->sid)
		return 0;
	u->done = true;
	if (err == NGHTTP2_REFUSED_STREAM)
		u->refused = true;
	if (err != NGHTTP2_NO_ERROR || u->status < 200) {
		u->failed = true;
		return 0;
	}
	if (u->holding) {
		/* the whole answer is here: a grpc-status in its trailers may retry it */
		int gst = wp_grpc_status(&u->trailers);

		if (gst < 0)
			gst = wp_grpc_status(&u->h);
		u->holding = false;
		if (x->verdict(x, u->status, gst) == WP_RETRY) {
			u->dropped = true;
			return 0;
		}
		if (commit(u))
			return 0;
	}
	if (x->committed && x->sink->end(x->sink, &u->trailers))
		u->sink_failed = true;
	return 0;
}

/* The client's request trailers (forwardable ones) as a HEADERS frame that
 * ends the stream; -ENOENT when none is left to send. */
static int submit_trailers(nghttp2_session *s, int32_t id, const struct hlist *tr)
{
	nghttp2_nv nv[WP_MAX_HEADERS];
	size_t n = 0;

	for (size_t i = 0; i < tr->n && n < WP_MAX_HEADERS; i++)
		if (wp_trailer_forwardable(tr->v[i].n))
			nv[n++] = (nghttp2_nv){ (uint8_t *)tr->v[i].n, (uint8_t *)tr->v[i].v, strlen(tr->v[i].n),
						strlen(tr->v[i].v), NGHTTP2_NV_FLAG_NONE };
	if (!n)
		return -ENOENT;
	return nghttp2_submit_trailer(s, id, nv, n) ? -EIO : 0;
}

static ssize_t up_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
		       nghttp2_data_source *src, void *ud)
{
	struct h2up *u = ud;
	long r = wp_body_read(u->x->body, (char *)buf, len);

	(void)src;
	if (r == -EAGAIN) {
		u->body_wait = true;
		return NGHTTP2_ERR_DEFERRED;
	}
	if (r < 0) {
		u->x->down_fail = true;
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;	/* resets the stream */
	}
	if (r == 0) {
		const struct hlist *tr = wp_body_trailers(u->x->body);

		*flags |= NGHTTP2_DATA_FLAG_EOF;
		if (tr && submit_trailers(s, id, tr) == 0)
			*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;	/* the trailers end it */
	}
	return r;
}

int wp_h2_upstream(int fd, const char *method, const char *path, const char *authority,
		   const struct hlist *h, struct wp_xfer *x)
{
	struct h2up u = { .fd = fd, .x = x, .len = -1 };
	nghttp2_session_callbacks *cb;
	nghttp2_session *s = NULL;
	nghttp2_nv *nv;
	nghttp2_data_provider prd = { .read_callback = up_body };
	int64_t idle = (int64_t)wp_options->idle_timeout_ms * 1000000, last = mono(), hold_until = 0;
	size_t nnv = 0;
	int rc = TRY_RESET;

	nv = calloc(h->n + 4, sizeof(*nv));
	if (!nv || nghttp2_session_callbacks_new(&cb)) {
		free(nv);
		return TRY_RESET;
	}
	nghttp2_session_callbacks_set_send_callback(cb, up_send);
	nghttp2_session_callbacks_set_on_header_callback(cb, up_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, up_frame);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, up_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, up_close);
	if (nghttp2_session_client_new(&s, cb, &u)) {
		nghttp2_session_callbacks_del(cb);
		free(nv);
		return TRY_RESET;
	}
	nghttp2_session_callbacks_del(cb);
	nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, NULL, 0);
#define NV(n, v) (nghttp2_nv){ (uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE }
	nv[nnv++] = NV(":method", method);
	nv[nnv++] = NV(":scheme", "http");
	nv[nnv++] = NV(":path", path);
	nv[nnv++] = NV(":authority", authority);
	for (size_t i = 0; i < h->n; i++)
		if (strcmp(h->v[i].n, "te") || !strcmp(h->v[i].v, "trailers"))
			nv[nnv++] = NV(h->v[i].n, h->v[i].v);
#undef NV
	u.sid = nghttp2_submit_request(s, NULL, nv, nnv, x->body->src ? &prd : NULL, NULL);
	free(nv);
	if (u.sid < 0)
		goto out;
	while (!u.done) {
		struct pollfd pf[2];
		char buf[16384];
		ssize_t n;
		int64_t dl;
		int pr;

		if (nghttp2_session_send(s))
			break;
		/* after the send: it may have found the body source empty (body_wait) */
		pf[0] = (struct pollfd){ .fd = fd, .events = POLLIN | (nghttp2_session_want_write(s) ? POLLOUT : 0) };
		pf[1] = (struct pollfd){ .fd = u.body_wait ? wp_body_fd(x->body) : -1, .events = POLLIN };
		dl = x->committed ? x->deadline : !x->deadline ? x->try_deadline : !x->try_deadline ?
		     x->deadline : x->deadline < x->try_deadline ? x->deadline : x->try_deadline;
		if (!dl || dl > last + idle)
			dl = last + idle;
		if (u.holding && dl > hold_until)
			dl = hold_until;
		{
			int64_t left = (dl - mono() + 999999) / 1000000;	/* rounded up: no spin */

			pr = left <= 0 ? 0 : poll(pf, 2, left > 1000000000 ? 1000000000 : (int)left);
		}
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr == 0 && mono() < dl)
			continue;	/* poll() rounds down to ms */
		if (pr == 0 && u.holding) {
			/* no whole answer within the grace: a stream; let it flow */
			if (commit(&u))
				break;
			continue;
		}
		if (pr == 0) {
			rc = TRY_TIMEOUT;
			goto out;
		}
		if (pr < 0)
			break;
		if (pf[1].revents) {
			u.body_wait = false;
			nghttp2_session_resume_data(s, u.sid);
			last = mono();
		}
		if (!(pf[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		/* a non-blocking read that may hold several frames: the whole of a small answer */
		while (!u.done) {
			n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN)
				break;
			if (n <= 0 || nghttp2_session_mem_recv(s, (const uint8_t *)buf, (size_t)n) < 0)
				goto ended;
			last = mono();
			if (u.holding && !hold_until)
				hold_until = last + HOLD_GRACE_NS;
			if (nghttp2_session_send(s))
				goto ended;
		}
	}
ended:
	if (u.dropped) {
		x->status = u.status;
		rc = TRY_OK;
	} else if (u.done && !u.failed && !u.sink_failed && x->committed) {
		rc = TRY_OK;
	} else if (u.too_big) {
		rc = TRY_TOO_BIG;
	} else if (u.refused && !x->committed) {
		rc = TRY_REFUSED;
	}
out:
	if (u.sink_failed)
		x->down_fail = true;
	if (rc != TRY_OK && x->committed && !x->aborted) {
		x->aborted = true;
		x->sink->abort(x->sink);
	}
	nghttp2_session_del(s);
	hl_free(&u.h);
	hl_free(&u.trailers);
	zm_buf_free(&u.held);
	return rc;
}
