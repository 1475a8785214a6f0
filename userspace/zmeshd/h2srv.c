// SPDX-License-Identifier: Apache-2.0
/*
 * zmeshd's :15012 server: TLS 1.3 over memory BIOs (tls.h) with nghttp2 on
 * top, driven by the epoll loop in main.c. Clients are proxies with a
 * bootstrap certificate (nodeid.h: a node's, a waypoint's or a gateway's);
 * the verify callback below replaces the workload-SVID leaf check of tls.c
 * with the bootstrap one, everything else of
 * tls.c's context (TLS 1.3 only, h2 only, no resumption, clientAuth
 * purpose, our bundle only) stays.
 */
#include <errno.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "zmesh/keymat.h"
#include "zmesh/log.h"
#include "zmesh/tls.h"
#include "zmeshd.h"

static int conn_idx = -1;

static int cp_verify_cb(int preverify, X509_STORE_CTX *xs)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct zd_conn *c = SSL_get_ex_data(ssl, conn_idx);

	if (!c)
		return 0;
	if (!preverify) {
		snprintf(c->why, sizeof(c->why), "certificate chain: %s (depth %d)",
			 X509_verify_cert_error_string(X509_STORE_CTX_get_error(xs)),
			 X509_STORE_CTX_get_error_depth(xs));
		return 0;
	}
	if (X509_STORE_CTX_get_error_depth(xs) != 0)
		return 1;
	if (zm_cp_id_from_x509(X509_STORE_CTX_get_current_cert(xs), c->d->td, &c->who, c->why,
			       sizeof(c->why))) {
		c->node[0] = 0;
		X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
		return 0;
	}
	/* What logs and proxy-status call it: the node, or <sa>.<ns> as Istio names pods. */
	if (c->who.role == ZM_CP_NODE)
		snprintf(c->node, sizeof(c->node), "%s", c->who.node);
	else
		snprintf(c->node, sizeof(c->node), "%s.%s", c->who.sa, c->who.ns);
	return 1;
}

int zd_tls_ctx(struct zd *d)
{
	struct zm_spiffe_id id;
	struct zm_error e = { "" };
	char *key = NULL, *csr = NULL, *chain = NULL, *bundle = NULL;
	SSL_CTX *ctx = NULL;
	int rc;

	if (conn_idx < 0)
		conn_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	if ((rc = zm_spiffe_make(&id, d->td, ZM_ZMESHD_NS, ZM_ZMESHD_SA))) {
		zm_log_error("trust domain %s: invalid", d->td);
		return rc;
	}
	if ((rc = zm_key_csr(&id, &key, &csr, &e)) || (rc = zm_ca_sign(d->ca, csr, &id, 0, &chain, &e)))
		goto out;
	bundle = zm_ca_bundle_dup(d->ca);
	if (!bundle) {
		rc = zm_error_set(&e, ENOMEM, "out of memory");
		goto out;
	}
	ctx = zm_tls_ctx_new(true, key, chain, bundle, d->td, &e);
	if (!ctx) {
		rc = -EINVAL;
		goto out;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, cp_verify_cb);
	SSL_CTX_free(d->ctx);	/* live connections keep their reference */
	d->ctx = ctx;
	d->own_renew_at = time(NULL) + ZM_CA_DEFAULT_TTL / 2;
out:
	if (rc)
		zm_log_error("serving certificate: %s", e.msg);
	if (key)
		OPENSSL_cleanse(key, strlen(key));
	free(key);
	free(csr);
	free(chain);
	free(bundle);
	return rc;
}

/* ---- streams ---------------------------------------------------------------- */

static struct zd_stream *find(struct zd_conn *c, int32_t id)
{
	for (struct zd_stream *s = c->streams; s; s = s->next)
		if (s->id == id)
			return s;
	return NULL;
}

static void stream_free(struct zd_stream *s)
{
	zm_buf_free(&s->body);
	zm_buf_free(&s->out);
	free(s);
}

static void stream_drop(struct zd_conn *c, struct zd_stream *s)
{
	for (struct zd_stream **p = &c->streams; *p; p = &(*p)->next) {
		if (*p == s) {
			*p = s->next;
			break;
		}
	}
	if (s->is_config)
		zd_stream_closed(c, s);
	stream_free(s);
}

static ssize_t read_out(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
			uint32_t *flags, nghttp2_data_source *src, void *ud)
{
	struct zd_stream *s = src->ptr;
	size_t n = zm_buf_len(&s->out);

	(void)ng; (void)id; (void)ud;
	if (n > len)
		n = len;
	if (n) {
		memcpy(buf, zm_buf_data(&s->out), n);
		zm_buf_consume(&s->out, n);
	}
	if (!zm_buf_len(&s->out)) {
		if (s->out_end)
			*flags |= NGHTTP2_DATA_FLAG_EOF;
		else if (!n)
			return NGHTTP2_ERR_DEFERRED;
	}
	return (ssize_t)n;
}

static int submit(struct zd_conn *c, struct zd_stream *s, int status, const char *ctype)
{
	char code[4];
	nghttp2_nv nv[2] = {
		{ (uint8_t *)":status", (uint8_t *)code, 7, 3, NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)"content-type", (uint8_t *)ctype, 12, strlen(ctype), NGHTTP2_NV_FLAG_NONE },
	};
	nghttp2_data_provider prd = { .source.ptr = s, .read_callback = read_out };

	snprintf(code, sizeof(code), "%03d", status);
	return nghttp2_submit_response(c->ng, s->id, nv, 2, &prd) ? -EIO : 0;
}

int zd_respond(struct zd_conn *c, struct zd_stream *s, int status, const char *ctype,
	       const char *body, size_t len)
{
	if (len && zm_buf_append(&s->out, body, len))
		return -ENOMEM;
	s->out_end = true;
	return submit(c, s, status, ctype);
}

int zd_respond_stream(struct zd_conn *c, struct zd_stream *s, const char *ctype)
{
	return submit(c, s, 200, ctype);
}

int zd_stream_send(struct zd_conn *c, struct zd_stream *s, const char *data, size_t len)
{
	/* A proxy that does not read falls behind and is cut off; one big message alone is fine. */
	if (zm_buf_len(&s->out) && zm_buf_len(&s->out) + len > ZD_MAX_STREAM_BACKLOG)
		return -ENOBUFS;
	if (zm_buf_append(&s->out, data, len))
		return -ENOMEM;
	nghttp2_session_resume_data(c->ng, s->id);
	return 0;
}

static void dispatch(struct zd_conn *c, struct zd_stream *s)
{
	char *q = strchr(s->path, '?');
	const char *want = NULL;

	if (q)
		*q = 0;
	if (s->body_too_big) {
		zd_respond_lit(c, s, 413, "{\"error\":\"request body too large\"}\n");
		return;
	}
	if (!strcmp(s->path, "/v1/certs"))
		want = "POST";
	else if (!strcmp(s->path, "/v1/bundle") || !strcmp(s->path, "/v1/config"))
		want = "GET";
	else if (!strcmp(s->path, "/v1/ack"))
		want = "POST";
	if (!want) {
		zd_respond_lit(c, s, 404, "{\"error\":\"no such endpoint\"}\n");
		return;
	}
	if (strcmp(s->method, want)) {
		zd_respond_lit(c, s, 405, "{\"error\":\"method not allowed\"}\n");
		return;
	}
	if (!strcmp(s->path, "/v1/certs"))
		zd_handle_certs(c, s);
	else if (!strcmp(s->path, "/v1/bundle"))
		zd_handle_bundle(c, s);
	else if (!strcmp(s->path, "/v1/config"))
		zd_handle_config(c, s);
	else
		zd_handle_ack(c, s);
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
	struct zd_conn *c = ud;
	struct zd_stream *s;

	(void)ng;
	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	s->id = f->hd.stream_id;
	s->next = c->streams;
	c->streams = s;
	return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t nl,
		     const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
	struct zd_conn *c = ud;
	struct zd_stream *s = find(c, f->hd.stream_id);

	(void)ng; (void)flags;
	if (!s)
		return 0;
	s->hdr_bytes += nl + vl;
	if (s->hdr_bytes > 16384)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;	/* resets the stream */
	if (nl == 7 && !memcmp(name, ":method", 7) && vl < sizeof(s->method))
		snprintf(s->method, sizeof(s->method), "%.*s", (int)vl, value);
	else if (nl == 5 && !memcmp(name, ":path", 5) && vl < sizeof(s->path))
		snprintf(s->path, sizeof(s->path), "%.*s", (int)vl, value);
	else if (nl == 13 && !memcmp(name, "x-zmesh-proxy", 13) && vl < sizeof(s->proxy))
		snprintf(s->proxy, sizeof(s->proxy), "%.*s", (int)vl, value);
	return 0;
}

static int on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *d, size_t n, void *ud)
{
	struct zd_conn *c = ud;
	struct zd_stream *s = find(c, id);

	(void)ng; (void)flags;
	if (!s || s->body_too_big)
		return 0;
	if (zm_buf_len(&s->body) + n > ZD_MAX_BODY || zm_buf_append(&s->body, d, n)) {
		s->body_too_big = true;
		zm_buf_free(&s->body);
	}
	return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
	struct zd_conn *c = ud;
	struct zd_stream *s = find(c, f->hd.stream_id);

	(void)ng;
	if (s && (f->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
	    (f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS))
		dispatch(c, s);
	return 0;
}

static int on_close(nghttp2_session *ng, int32_t id, uint32_t err, void *ud)
{
	struct zd_conn *c = ud;
	struct zd_stream *s = find(c, id);

	(void)ng; (void)err;
	if (s)
		stream_drop(c, s);
	return 0;
}

/* ---- connections -------------------------------------------------------------- */

static void set_out(struct zd_conn *c, bool want)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | (want ? EPOLLOUT : 0), .data.ptr = &c->ev };

	epoll_ctl(c->d->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

void zd_accept(struct zd *d)
{
	for (;;) {
		int fd = accept4(d->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		nghttp2_session_callbacks *cb = NULL;
		nghttp2_option *opt = NULL;
		struct epoll_event ev;
		struct zd_conn *c;

		if (fd < 0)
			return;
		if (d->nconns >= ZD_MAX_CONNS) {
			zm_log_warn("too many connections (%d): refusing one", d->nconns);
			close(fd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->ev.kind = ZD_CONN;
		c->d = d;
		c->fd = fd;
		c->deadline = zd_now_ms() + ZD_HANDSHAKE_MS;
		zm_sock_peer_str(fd, c->peer, sizeof(c->peer));
		c->ssl = SSL_new(d->ctx);
		if (!c->ssl || zm_tls_use_membio(c->ssl) || !SSL_set_ex_data(c->ssl, conn_idx, c) ||
		    nghttp2_session_callbacks_new(&cb) || nghttp2_option_new(&opt)) {
			nghttp2_session_callbacks_del(cb);
			nghttp2_option_del(opt);
			SSL_free(c->ssl);
			close(fd);
			free(c);
			continue;
		}
		SSL_set_accept_state(c->ssl);
		nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
		nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
		nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
		nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
		nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
		/* CVE-2023-44487: at most a burst of 100 resets, then 33 per second. */
		nghttp2_option_set_stream_reset_rate_limit(opt, 100, 33);
		nghttp2_option_set_max_settings(opt, 32);
		if (nghttp2_session_server_new2(&c->ng, cb, c, opt))
			c->ng = NULL;
		nghttp2_session_callbacks_del(cb);
		nghttp2_option_del(opt);
		ev.events = EPOLLIN | EPOLLRDHUP;
		ev.data.ptr = &c->ev;
		if (!c->ng || epoll_ctl(d->ep, EPOLL_CTL_ADD, fd, &ev)) {
			if (c->ng)
				nghttp2_session_del(c->ng);
			SSL_free(c->ssl);
			close(fd);
			free(c);
			continue;
		}
		c->next = d->conns;
		d->conns = c;
		d->nconns++;
	}
}

void zd_conn_close(struct zd_conn *c)
{
	struct zd *d = c->d;

	for (struct zd_conn **p = &d->conns; *p; p = &(*p)->next) {
		if (*p == c) {
			*p = c->next;
			break;
		}
	}
	d->nconns--;
	c->dead = true;
	nghttp2_session_del(c->ng);	/* may run on_close for open streams */
	while (c->streams)
		stream_drop(c, c->streams);
	epoll_ctl(d->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	SSL_free(c->ssl);
	zm_buf_free(&c->wq);
	if (c->node[0] && c->h2_up)
		zm_log_debug("node %s (%s) disconnected", c->node, c->peer);
	free(c);
}

/* nghttp2 -> TLS -> socket, as far as the socket takes it. */
void zd_conn_flush(struct zd_conn *c)
{
	char buf[16384];
	size_t n;

	if (c->h2_up && !c->dead) {
		for (;;) {
			const uint8_t *data;
			ssize_t len = nghttp2_session_mem_send(c->ng, &data);

			if (len <= 0) {
				if (len < 0)
					c->dead = true;
				break;
			}
			if (SSL_write(c->ssl, data, (int)len) <= 0) {
				c->dead = true;
				break;
			}
		}
	}
	while ((n = zm_tls_net_read(c->ssl, buf, sizeof(buf))) > 0)
		if (zm_buf_append(&c->wq, buf, n)) {
			c->dead = true;
			break;
		}
	while (zm_buf_len(&c->wq)) {
		ssize_t w = send(c->fd, zm_buf_data(&c->wq), zm_buf_len(&c->wq), MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (w <= 0) {
			c->dead = true;
			zm_buf_reset(&c->wq);
			break;
		}
		zm_buf_consume(&c->wq, (size_t)w);
	}
	if (c->h2_up && !c->dead && !nghttp2_session_want_read(c->ng) && !nghttp2_session_want_write(c->ng))
		c->dead = true;
	if (c->dead) {
		zd_conn_close(c);	/* what the socket did not take (an alert) is lost */
		return;
	}
	set_out(c, zm_buf_len(&c->wq) > 0);
}

static void handshake(struct zd_conn *c)
{
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100 },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 16384 },
	};
	const unsigned char *alpn;
	unsigned int alen;
	int r = SSL_do_handshake(c->ssl), kind;
	char err[256];

	if (r != 1) {
		kind = SSL_get_error(c->ssl, r);
		if (kind == SSL_ERROR_WANT_READ || kind == SSL_ERROR_WANT_WRITE) {
			ERR_clear_error();
			return;
		}
		ERR_error_string_n(ERR_get_error(), err, sizeof(err));
		ERR_clear_error();
		c->d->st.handshake_fail++;
		zm_log_warn("TLS handshake from %s refused: %s", c->peer, c->why[0] ? c->why : err);
		c->dead = true;
		return;
	}
	SSL_get0_alpn_selected(c->ssl, &alpn, &alen);
	if (!c->node[0] || alen != 2 || memcmp(alpn, "h2", 2)) {
		c->d->st.handshake_fail++;
		zm_log_warn("TLS handshake from %s refused: %s", c->peer,
			    c->node[0] ? "ALPN h2 not negotiated" : "no node or proxy identity");
		c->dead = true;
		return;
	}
	c->h2_up = true;
	c->deadline = 0;
	zm_log_debug("%s %s connected from %s", zm_cp_role_name(c->who.role), c->node, c->peer);
	if (nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, 2))
		c->dead = true;
}

void zd_conn_io(struct zd_conn *c, uint32_t events)
{
	char buf[16384];
	bool eof = false;

	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
		/* At most 256 KiB per pass: epoll is level-triggered, the rest waits its turn,
		 * and a flooding peer cannot grow the TLS input buffer without bound. */
		for (size_t got = 0; got < (256u << 10);) {
			ssize_t n = recv(c->fd, buf, sizeof(buf), 0);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			if (n <= 0) {
				eof = true;
				break;
			}
			got += (size_t)n;
			if (zm_tls_net_write(c->ssl, buf, (size_t)n)) {
				c->dead = true;
				break;
			}
		}
	}
	if (!c->dead && !c->h2_up)
		handshake(c);
	if (!c->dead && c->h2_up) {
		int r;

		while ((r = SSL_read(c->ssl, buf, sizeof(buf))) > 0) {
			ssize_t rv = nghttp2_session_mem_recv(c->ng, (const uint8_t *)buf, (size_t)r);

			if (rv < 0) {
				zm_log_warn("node %s (%s): HTTP/2: %s: closing", c->node, c->peer,
					    nghttp2_strerror((int)rv));
				c->dead = true;
				break;
			}
		}
		if (!c->dead && SSL_get_error(c->ssl, r) != SSL_ERROR_WANT_READ)
			c->dead = true;
		ERR_clear_error();
	}
	if (eof) {
		if (!c->dead && !c->h2_up)
			zm_log_warn("TLS handshake from %s: connection closed by the peer%s%s", c->peer,
				    c->why[0] ? ": " : "", c->why);
		c->dead = true;
	}
	zd_conn_flush(c);
}

void zd_sweep(struct zd *d)
{
	long long now = zd_now_ms();
	struct zd_conn *next;

	for (struct zd_conn *c = d->conns; c; c = next) {
		next = c->next;
		if (c->deadline && now > c->deadline) {
			zm_log_warn("TLS handshake from %s: timed out", c->peer);
			d->st.handshake_fail++;
			c->dead = true;
			zd_conn_flush(c);
		}
	}
}
