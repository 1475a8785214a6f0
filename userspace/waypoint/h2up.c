// SPDX-License-Identifier: Apache-2.0
/*
 * HTTP/2 (h2c, prior knowledge) to an upstream endpoint, for gRPC and for
 * Service ports named http2/grpc/h2c: one request on a fresh connection
 * (no pooling yet), blocking with a deadline, trailers kept (gRPC's
 * grpc-status lives there). Bounded like the HTTP/1 side: 16 MiB of body,
 * 60 KiB of header bytes.
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

struct h2up {
	int fd;
	int32_t sid;
	const struct zm_buf *body;
	size_t sent;
	struct wp_resp *out;
	size_t hdr_bytes;
	bool in_trailers, done, failed, too_big, refused;
};

static int64_t mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
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
		u->out->status = atoi(st);
		return 0;
	}
	if (nl && name[0] == ':')
		return 0;
	if (f->headers.cat == NGHTTP2_HCAT_HEADERS && u->out->status >= 200) {
		u->in_trailers = true;
	}
	return hl_add(u->in_trailers ? &u->out->trailers : &u->out->h, (const char *)name, nl,
		      (const char *)value, vl) ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

static int up_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *d, size_t n,
		   void *ud)
{
	struct h2up *u = ud;

	(void)s;
	(void)flags;
	if (id != u->sid)
		return 0;
	if (zm_buf_len(&u->out->body) + n > WP_MAX_RESP) {
		u->too_big = true;
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	return zm_buf_append(&u->out->body, d, n) ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

static int up_close(nghttp2_session *s, int32_t id, uint32_t err, void *ud)
{
	struct h2up *u = ud;

	(void)s;
	if (id != u->sid)
		return 0;
	u->done = true;
	if (err == NGHTTP2_REFUSED_STREAM)
		u->refused = true;
	if (err != NGHTTP2_NO_ERROR || u->out->status < 100)
		u->failed = true;
	return 0;
}

static ssize_t up_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
		       nghttp2_data_source *src, void *ud)
{
	struct h2up *u = ud;
	size_t total = u->body ? zm_buf_len(u->body) : 0, n = total - u->sent;

	(void)s;
	(void)id;
	(void)src;
	if (n > len)
		n = len;
	if (n)
		memcpy(buf, zm_buf_data(u->body) + u->sent, n);
	u->sent += n;
	if (u->sent >= total)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

int wp_h2_upstream(int fd, const char *method, const char *path, const char *authority,
		   const struct hlist *h, const struct zm_buf *body, int64_t deadline,
		   struct wp_resp *out)
{
	struct h2up u = { .fd = fd, .body = body, .out = out };
	nghttp2_session_callbacks *cb;
	nghttp2_session *s = NULL;
	nghttp2_nv *nv;
	nghttp2_data_provider prd = { .read_callback = up_body };
	size_t nnv = 0;
	int rc = TRY_RESET;

	nv = calloc(h->n + 4, sizeof(*nv));
	if (!nv || nghttp2_session_callbacks_new(&cb)) {
		free(nv);
		return TRY_RESET;
	}
	nghttp2_session_callbacks_set_send_callback(cb, up_send);
	nghttp2_session_callbacks_set_on_header_callback(cb, up_header);
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
	u.sid = nghttp2_submit_request(s, NULL, nv, nnv, body && zm_buf_len(body) ? &prd : NULL, NULL);
	free(nv);
	if (u.sid < 0)
		goto out;
	while (!u.done) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		char buf[16384];
		ssize_t n;
		int left;

		if (nghttp2_session_send(s))
			break;
		if (nghttp2_session_want_write(s))
			pf.events |= POLLOUT;
		left = deadline ? (int)((deadline - mono()) / 1000000) : -1;
		if (deadline && left <= 0) {
			rc = TRY_TIMEOUT;
			goto out;
		}
		if (poll(&pf, 1, left) <= 0) {
			rc = deadline && mono() >= deadline ? TRY_TIMEOUT : TRY_RESET;
			goto out;
		}
		if (!(pf.revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0 || nghttp2_session_mem_recv(s, (const uint8_t *)buf, (size_t)n) < 0)
			break;
	}
	if (u.done && !u.failed)
		rc = TRY_OK;
	else if (u.too_big)
		rc = TRY_TOO_BIG;
	else if (u.refused)
		rc = TRY_REFUSED;
out:
	nghttp2_session_del(s);
	return rc;
}
