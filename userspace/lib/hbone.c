// SPDX-License-Identifier: Apache-2.0
/* HBONE over memory BIOs: TLS 1.3 + nghttp2, no I/O of its own. */
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "zmesh/buf.h"
#include "zmesh/hbone.h"

#define EARLY_MAX (64 * 1024)
#define MAX_HDRS 32
/*
 * Rapid reset (CVE-2023-44487) costs a server the work it starts for a
 * request the client then cancels. Here that work is the upstream connect,
 * so only a reset of a stream not yet answered counts ("premature", as
 * Envoy and the h2 crate under Istio's ztunnel count them): a burst, then a
 * rate, then GOAWAY ENHANCE_YOUR_CALM. A reset after the answer is a client
 * closing its TCP connection with RST, which load balancers and SO_LINGER 0
 * apps do on every request; counting those (as nghttp2's own limit does)
 * cut healthy pooled connections and every stream on them.
 */
#define EARLY_RESET_BURST 100
#define EARLY_RESET_PER_S 33

struct stream {
	int32_t id;
	struct zm_buf out;	/* to send, DATA */
	struct zm_buf early;	/* received before we answered 200 */
	bool end_queued, answered, accepted;
	size_t unconsumed;	/* received, not yet zm_hbone_consume()d (ZM_HBONE_MANUAL_WINDOW) */
	struct stream *next;
	/* server: the CONNECT being read */
	char method[16], authority[300];
	char hn[MAX_HDRS][64], hv[MAX_HDRS][512];
	size_t nh;
	size_t hdr_bytes;
};

struct zm_hbone {
	SSL *ssl;
	BIO *rbio, *wbio;	/* network side: ciphertext in, ciphertext out */
	bool server, h2_up, dead;
	bool manual_window;
	nghttp2_session *ng;
	struct zm_hbone_cbs cbs;
	void *ud;
	struct zm_buf out;	/* ciphertext waiting for the caller */
	struct stream *streams;
	double reset_tokens;	/* premature resets still allowed now */
	int64_t reset_ns;	/* when reset_tokens was last refilled */
	bool flooded;
};

static struct stream *find(struct zm_hbone *h, int32_t id)
{
	for (struct stream *s = h->streams; s; s = s->next)
		if (s->id == id)
			return s;
	return NULL;
}

static struct stream *add(struct zm_hbone *h, int32_t id)
{
	struct stream *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->id = id;
	s->next = h->streams;
	h->streams = s;
	return s;
}

static void drop(struct zm_hbone *h, int32_t id)
{
	for (struct stream **p = &h->streams; *p; p = &(*p)->next) {
		if ((*p)->id == id) {
			struct stream *s = *p;

			*p = s->next;
			/* What the stream still held goes back to the connection
			 * window: its bytes can no longer be consumed one by one. */
			if (h->manual_window && s->unconsumed && h->ng)
				nghttp2_session_consume_connection(h->ng, s->unconsumed);
			zm_buf_free(&s->out);
			zm_buf_free(&s->early);
			free(s);
			return;
		}
	}
}

/* nghttp2 -> TLS -> wbio -> h->out */
static int pump(struct zm_hbone *h)
{
	char buf[16384];
	int n;

	if (h->h2_up) {
		for (;;) {
			const uint8_t *d;
			ssize_t len = nghttp2_session_mem_send(h->ng, &d);

			if (len < 0)
				return -EPROTO;
			if (len == 0)
				break;
			if (SSL_write(h->ssl, d, (int)len) <= 0)
				return -EPROTO;
		}
	}
	while ((n = BIO_read(h->wbio, buf, sizeof(buf))) > 0)
		if (zm_buf_append(&h->out, buf, (size_t)n))
			return -ENOMEM;
	return 0;
}

static ssize_t read_out(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
			uint32_t *flags, nghttp2_data_source *src, void *ud)
{
	struct stream *s = src->ptr;
	size_t n = zm_buf_len(&s->out);

	(void)ng; (void)id; (void)ud;
	if (n > len)
		n = len;
	if (n) {
		memcpy(buf, zm_buf_data(&s->out), n);
		zm_buf_consume(&s->out, n);
	}
	if (!zm_buf_len(&s->out)) {
		if (s->end_queued)
			*flags |= NGHTTP2_DATA_FLAG_EOF;
		else if (!n)
			return NGHTTP2_ERR_DEFERRED;
	}
	return (ssize_t)n;
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
	struct zm_hbone *h = ud;

	(void)ng;
	if (h->server && f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST)
		return add(h, f->hd.stream_id) ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
	return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t nl,
		     const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
	struct zm_hbone *h = ud;
	struct stream *s = find(h, f->hd.stream_id);

	(void)ng; (void)flags;
	if (!h->server) {
		if (nl == 7 && !memcmp(name, ":status", 7) && s && vl == 3) {
			int status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');

			s->answered = true;
			s->accepted = status == 200;
			if (h->cbs.on_response)
				h->cbs.on_response(h->ud, h, s->id, status);
		}
		return 0;
	}
	if (!s)
		return 0;
	s->hdr_bytes += nl + vl;
	if (s->hdr_bytes > 16384)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;	/* resets the stream */
	if (nl == 7 && !memcmp(name, ":method", 7)) {
		snprintf(s->method, sizeof(s->method), "%.*s", (int)vl, value);
	} else if (nl == 10 && !memcmp(name, ":authority", 10)) {
		snprintf(s->authority, sizeof(s->authority), "%.*s", (int)vl, value);
	} else if (nl && name[0] != ':' && s->nh < MAX_HDRS && nl < 64 && vl < 512) {
		memcpy(s->hn[s->nh], name, nl);
		s->hn[s->nh][nl] = 0;
		memcpy(s->hv[s->nh], value, vl);
		s->hv[s->nh][vl] = 0;
		s->nh++;
	}
	return 0;
}

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A client reset @s: 0, or -1 when premature resets exceed the budget. */
static int premature_reset(struct zm_hbone *h, const struct stream *s)
{
	int64_t now;

	if (!h->server || s->answered)
		return 0;
	now = mono_ns();
	h->reset_tokens += (double)(now - h->reset_ns) * EARLY_RESET_PER_S / 1e9;
	if (h->reset_tokens > EARLY_RESET_BURST)
		h->reset_tokens = EARLY_RESET_BURST;
	h->reset_ns = now;
	if (h->reset_tokens < 1) {
		h->flooded = true;
		return -1;
	}
	h->reset_tokens -= 1;
	return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
	struct zm_hbone *h = ud;
	struct stream *s = find(h, f->hd.stream_id);

	(void)ng;
	if (!s)
		return 0;
	if (f->hd.type == NGHTTP2_RST_STREAM && premature_reset(h, s)) {
		nghttp2_session_terminate_session(ng, NGHTTP2_ENHANCE_YOUR_CALM);
		return 0;
	}
	if (h->server && f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
		struct zm_hbone_hdr hdrs[MAX_HDRS];
		int status;

		if (strcmp(s->method, "CONNECT"))
			return zm_hbone_respond(h, s->id, 405) ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
		if (!s->authority[0])
			return zm_hbone_respond(h, s->id, 400) ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
		for (size_t i = 0; i < s->nh; i++)
			hdrs[i] = (struct zm_hbone_hdr){ s->hn[i], s->hv[i] };
		status = h->cbs.on_connect ? h->cbs.on_connect(h->ud, h, s->id, s->authority, hdrs, s->nh) : 403;
		if (status > 0 && zm_hbone_respond(h, s->id, status))
			return NGHTTP2_ERR_CALLBACK_FAILURE;
		return 0;
	}
	/* Refused: nothing will flow; close our side too so the stream goes. */
	if (!h->server && f->hd.type == NGHTTP2_HEADERS && s->answered && !s->accepted) {
		nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_NO_ERROR);
		return 0;
	}
	if ((f->hd.flags & NGHTTP2_FLAG_END_STREAM) && s->accepted && h->cbs.on_end &&
	    (f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS))
		h->cbs.on_end(h->ud, h, s->id);
	return 0;
}

static int on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *d, size_t n, void *ud)
{
	struct zm_hbone *h = ud;
	struct stream *s = find(h, id);

	(void)flags;
	if (!s) {
		if (h->manual_window)
			nghttp2_session_consume(ng, id, n);
		return 0;
	}
	s->unconsumed += n;
	if (s->accepted) {
		if (h->cbs.on_data)
			h->cbs.on_data(h->ud, h, id, d, n);
		return 0;
	}
	/* Not answered yet: hold it; it is forwarded only after a 200. */
	if (zm_buf_len(&s->early) + n > EARLY_MAX || zm_buf_append(&s->early, d, n))
		nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
	return 0;
}

static int on_close(nghttp2_session *ng, int32_t id, uint32_t err, void *ud)
{
	struct zm_hbone *h = ud;

	(void)ng;
	if (find(h, id)) {
		if (h->cbs.on_close)
			h->cbs.on_close(h->ud, h, id, err);
		drop(h, id);
	}
	return 0;
}

int zm_hbone_new(SSL_CTX *ctx, bool server, const struct zm_hbone_cbs *cbs, void *ud,
		 struct zm_hbone **out)
{
	return zm_hbone_new_ex(ctx, server, 0, cbs, ud, out);
}

int zm_hbone_consume(struct zm_hbone *h, int32_t stream, size_t n)
{
	struct stream *s;

	if (!h->manual_window || !n || !(s = find(h, stream)))
		return 0;	/* a gone stream's bytes went back when it closed */
	if (n > s->unconsumed)
		n = s->unconsumed;
	s->unconsumed -= n;
	if (nghttp2_session_consume(h->ng, stream, n))
		return -EPROTO;
	return pump(h);
}

int zm_hbone_new_ex(SSL_CTX *ctx, bool server, unsigned flags, const struct zm_hbone_cbs *cbs, void *ud,
		    struct zm_hbone **out)
{
	struct zm_hbone *h = calloc(1, sizeof(*h));
	nghttp2_session_callbacks *cb = NULL;
	nghttp2_option *opt = NULL;
	int rc = -ENOMEM;

	*out = NULL;
	if (!h)
		return -ENOMEM;
	h->server = server;
	h->manual_window = flags & ZM_HBONE_MANUAL_WINDOW;
	h->reset_tokens = EARLY_RESET_BURST;
	h->reset_ns = mono_ns();
	h->cbs = *cbs;
	h->ud = ud;
	h->ssl = SSL_new(ctx);
	h->rbio = BIO_new(BIO_s_mem());
	h->wbio = BIO_new(BIO_s_mem());
	if (!h->ssl || !h->rbio || !h->wbio)
		goto fail;
	SSL_set_bio(h->ssl, h->rbio, h->wbio);
	if (server)
		SSL_set_accept_state(h->ssl);
	else
		SSL_set_connect_state(h->ssl);
	if (nghttp2_session_callbacks_new(&cb) || nghttp2_option_new(&opt))
		goto fail;
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
	/* CVE-2023-44487: counted in premature_reset(), not by nghttp2's
	 * limit, which counts every reset (see EARLY_RESET_BURST). */
	nghttp2_option_set_stream_reset_rate_limit(opt, UINT64_MAX, UINT64_MAX);
	nghttp2_option_set_max_settings(opt, 32);
	if (h->manual_window)
		nghttp2_option_set_no_auto_window_update(opt, 1);
	rc = server ? nghttp2_session_server_new2(&h->ng, cb, h, opt) :
		      nghttp2_session_client_new2(&h->ng, cb, h, opt);
	rc = rc ? -ENOMEM : 0;
	nghttp2_session_callbacks_del(cb);
	nghttp2_option_del(opt);
	if (rc)
		goto fail;
	/* The client speaks first: its ClientHello is ready now. */
	if (!server) {
		SSL_do_handshake(h->ssl);
		pump(h);
	}
	*out = h;
	return 0;
fail:
	zm_hbone_free(h);
	return rc;
}

void zm_hbone_free(struct zm_hbone *h)
{
	if (!h)
		return;
	while (h->streams)
		drop(h, h->streams->id);
	if (h->ng)
		nghttp2_session_del(h->ng);
	if (h->ssl)
		SSL_free(h->ssl);	/* frees the BIOs */
	else {
		BIO_free(h->rbio);
		BIO_free(h->wbio);
	}
	zm_buf_free(&h->out);
	free(h);
}

static int start_h2(struct zm_hbone *h)
{
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, ZM_HBONE_MAX_STREAMS },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 16384 },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20 },
	};
	const unsigned char *alpn;
	unsigned int alen;

	SSL_get0_alpn_selected(h->ssl, &alpn, &alen);
	if (alen != 2 || memcmp(alpn, "h2", 2))
		return -EPROTO;
	h->h2_up = true;
	if (nghttp2_submit_settings(h->ng, NGHTTP2_FLAG_NONE, iv, 3))
		return -EPROTO;
	nghttp2_session_set_local_window_size(h->ng, NGHTTP2_FLAG_NONE, 0, 4 << 20);
	return 0;
}

int zm_hbone_input(struct zm_hbone *h, const void *data, size_t n)
{
	char buf[16384];
	int r;

	if (h->dead)
		return -EPROTO;
	if (n && BIO_write(h->rbio, data, (int)n) != (int)n)
		return -ENOMEM;
	if (!h->h2_up) {
		r = SSL_do_handshake(h->ssl);
		if (r != 1) {
			int err = SSL_get_error(h->ssl, r);

			pump(h);	/* an alert, or the next flight */
			if (err == SSL_ERROR_WANT_READ)
				return 0;
			h->dead = true;
			ERR_clear_error();
			return -EPROTO;
		}
		if (start_h2(h)) {
			h->dead = true;
			return -EPROTO;
		}
	}
	while ((r = SSL_read(h->ssl, buf, sizeof(buf))) > 0) {
		if (nghttp2_session_mem_recv(h->ng, (const uint8_t *)buf, (size_t)r) < 0) {
			h->dead = true;
			pump(h);	/* GOAWAY, if nghttp2 queued one */
			return -EPROTO;
		}
	}
	if (SSL_get_error(h->ssl, r) != SSL_ERROR_WANT_READ) {
		h->dead = true;
		ERR_clear_error();
		pump(h);
		return -EPROTO;
	}
	if (pump(h))
		return -EPROTO;
	if (!nghttp2_session_want_read(h->ng) && !nghttp2_session_want_write(h->ng)) {
		h->dead = true;	/* GOAWAY sent or received: done */
		return -EPROTO;
	}
	return 0;
}

size_t zm_hbone_output(struct zm_hbone *h, const void **data)
{
	*data = zm_buf_data(&h->out);
	return zm_buf_len(&h->out);
}

void zm_hbone_consumed(struct zm_hbone *h, size_t n)
{
	zm_buf_consume(&h->out, n);
}

bool zm_hbone_flooded(const struct zm_hbone *h)
{
	return h->flooded;
}

bool zm_hbone_ready(struct zm_hbone *h)
{
	return h->h2_up && !h->dead;
}

SSL *zm_hbone_ssl(struct zm_hbone *h)
{
	return h->ssl;
}

int zm_hbone_capacity(struct zm_hbone *h)
{
	int n = 0;

	for (struct stream *s = h->streams; s; s = s->next)
		n++;
	return h->dead ? 0 : ZM_HBONE_MAX_STREAMS - n;
}

int zm_hbone_open(struct zm_hbone *h, const char *authority, const struct zm_hbone_hdr *hdrs,
		  size_t nhdrs, int32_t *stream)
{
	nghttp2_nv nv[2 + MAX_HDRS];
	nghttp2_data_provider prd;
	struct stream *s;
	int32_t id;

	if (h->server || !h->h2_up || nhdrs > MAX_HDRS || zm_hbone_capacity(h) <= 0)
		return -EINVAL;
	nv[0] = (nghttp2_nv){ (uint8_t *)":method", (uint8_t *)"CONNECT", 7, 7, NGHTTP2_NV_FLAG_NONE };
	nv[1] = (nghttp2_nv){ (uint8_t *)":authority", (uint8_t *)authority, 10, strlen(authority),
			      NGHTTP2_NV_FLAG_NONE };
	for (size_t i = 0; i < nhdrs; i++)
		nv[2 + i] = (nghttp2_nv){ (uint8_t *)hdrs[i].name, (uint8_t *)hdrs[i].value,
					  strlen(hdrs[i].name), strlen(hdrs[i].value), NGHTTP2_NV_FLAG_NONE };
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	prd.source.ptr = s;
	prd.read_callback = read_out;
	id = nghttp2_submit_request(h->ng, NULL, nv, 2 + nhdrs, &prd, NULL);
	if (id < 0) {
		free(s);
		return -EIO;
	}
	s->id = id;
	s->next = h->streams;
	h->streams = s;
	*stream = id;
	return pump(h);
}

int zm_hbone_respond(struct zm_hbone *h, int32_t id, int status)
{
	struct stream *s = find(h, id);
	char code[4];
	nghttp2_nv nv = { (uint8_t *)":status", (uint8_t *)code, 7, 3, NGHTTP2_NV_FLAG_NONE };
	nghttp2_data_provider prd = { .read_callback = read_out };
	int rc;

	if (!s || s->answered || status < 200 || status > 599)
		return -EINVAL;
	snprintf(code, sizeof(code), "%d", status);
	s->answered = true;
	s->accepted = status == 200;
	prd.source.ptr = s;
	/* Refusals end the stream; a 200 opens the tunnel with a deferred body. */
	rc = nghttp2_submit_response(h->ng, id, &nv, 1, status == 200 ? &prd : NULL);
	if (rc)
		return -EIO;
	if (s->accepted && zm_buf_len(&s->early) && h->cbs.on_data) {
		h->cbs.on_data(h->ud, h, id, (const uint8_t *)zm_buf_data(&s->early), zm_buf_len(&s->early));
		zm_buf_reset(&s->early);
	}
	return pump(h);
}

int zm_hbone_send(struct zm_hbone *h, int32_t id, const void *d, size_t n)
{
	struct stream *s = find(h, id);

	if (!s || s->end_queued)
		return -EINVAL;
	if (zm_buf_len(&s->out) + n > ZM_HBONE_STREAM_BUF)
		return -ENOBUFS;
	if (zm_buf_append(&s->out, d, n))
		return -ENOMEM;
	nghttp2_session_resume_data(h->ng, id);
	return pump(h);
}

int zm_hbone_end(struct zm_hbone *h, int32_t id)
{
	struct stream *s = find(h, id);

	if (!s)
		return -EINVAL;
	s->end_queued = true;
	nghttp2_session_resume_data(h->ng, id);
	return pump(h);
}

int zm_hbone_reset(struct zm_hbone *h, int32_t id)
{
	nghttp2_submit_rst_stream(h->ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
	return pump(h);
}
