// SPDX-License-Identifier: Apache-2.0
/*
 * Blocking HTTP/1.1 client (httpc.h): one request per connection, a
 * non-blocking socket driven with poll() against one deadline, optional
 * TLS with OpenSSL on the same socket, the answer parsed by llhttp.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <llhttp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "zmesh/httpc.h"

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static int left_ms(int64_t deadline)
{
	int64_t l = deadline - mono_ms();

	return l < 0 ? 0 : (int)l;
}

int zm_url_parse(const char *url, struct zm_url *u, struct zm_error *e)
{
	const char *p, *hend, *pstart;
	size_t hl;

	memset(u, 0, sizeof(*u));
	if (!strncasecmp(url, "http://", 7)) {
		p = url + 7;
		snprintf(u->port, sizeof(u->port), "80");
	} else if (!strncasecmp(url, "https://", 8)) {
		p = url + 8;
		u->tls = 1;
		snprintf(u->port, sizeof(u->port), "443");
	} else {
		return zm_error_set(e, EINVAL, "%s: not an http:// or https:// URL", url);
	}
	for (const char *q = url; *q; q++)
		if ((unsigned char)*q <= ' ' || *q == 0x7f)
			return zm_error_set(e, EINVAL, "URL has a space or control character");
	pstart = p + strcspn(p, "/?#");
	if (memchr(p, '@', (size_t)(pstart - p)))
		return zm_error_set(e, EINVAL, "%s: user info in URLs is not supported", url);
	if (*p == '[') {
		hend = memchr(p, ']', (size_t)(pstart - p));
		if (!hend)
			return zm_error_set(e, EINVAL, "%s: unterminated [address]", url);
		hl = (size_t)(hend - p - 1);
		p++;
		hend++;
	} else {
		hend = p;
		while (hend < pstart && *hend != ':')
			hend++;
		hl = (size_t)(hend - p);
	}
	if (!hl || hl >= sizeof(u->host))
		return zm_error_set(e, EINVAL, "%s: bad host", url);
	memcpy(u->host, p, hl);
	if (*hend == ':') {
		size_t pl = (size_t)(pstart - hend - 1);
		char *end;
		long port;

		if (!pl || pl >= sizeof(u->port))
			return zm_error_set(e, EINVAL, "%s: bad port", url);
		memcpy(u->port, hend + 1, pl);
		u->port[pl] = '\0';
		port = strtol(u->port, &end, 10);
		if (*end || port <= 0 || port > 65535)
			return zm_error_set(e, EINVAL, "%s: bad port", url);
	} else if (hend != pstart) {
		return zm_error_set(e, EINVAL, "%s: bad host", url);
	}
	if (*pstart == '#' || !*pstart)
		snprintf(u->path, sizeof(u->path), "/");
	else if ((size_t)snprintf(u->path, sizeof(u->path), "%s%.*s", *pstart == '?' ? "/" : "",
				  (int)strcspn(pstart, "#"), pstart) >= sizeof(u->path))
		return zm_error_set(e, EINVAL, "%s: path too long", url);
	return 0;
}

/* ---- transport: a socket, maybe with TLS on it --------------------------------- */

struct io {
	int fd;
	SSL *ssl;
	int64_t deadline;
};

static int wait_fd(struct io *io, short ev)
{
	struct pollfd pf = { .fd = io->fd, .events = ev };
	int r;

	do
		r = poll(&pf, 1, left_ms(io->deadline));
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return -ETIMEDOUT;
	return r < 0 ? -errno : 0;
}

/* The OpenSSL error queue as text, for @e. */
static void ssl_why(char *out, size_t sz)
{
	unsigned long err = ERR_get_error();

	if (err)
		ERR_error_string_n(err, out, sz);
	else
		snprintf(out, sz, "connection closed");
	ERR_clear_error();
}

/* Drive an SSL call that returned @r: 0 to call again, <0 to give up. */
static int ssl_wait(struct io *io, int r)
{
	switch (SSL_get_error(io->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		return wait_fd(io, POLLIN);
	case SSL_ERROR_WANT_WRITE:
		return wait_fd(io, POLLOUT);
	case SSL_ERROR_ZERO_RETURN:
		return -ENODATA;
	default:
		return -EPROTO;
	}
}

static int io_write(struct io *io, const char *p, size_t n)
{
	while (n) {
		ssize_t w;
		int rc;

		if (io->ssl) {
			size_t done = 0;
			int r = SSL_write_ex(io->ssl, p, n, &done);

			if (r == 1) {
				w = (ssize_t)done;
			} else {
				if ((rc = ssl_wait(io, r)) < 0)
					return rc;
				continue;
			}
		} else {
			w = send(io->fd, p, n, MSG_NOSIGNAL);
			if (w < 0) {
				if (errno == EINTR)
					continue;
				if (errno != EAGAIN && errno != EWOULDBLOCK)
					return -errno;
				if ((rc = wait_fd(io, POLLOUT)) < 0)
					return rc;
				continue;
			}
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Up to @n bytes: >0 read, 0 end of stream, <0 error. */
static long io_read(struct io *io, char *p, size_t n)
{
	for (;;) {
		int rc;

		if (io->ssl) {
			size_t got = 0;
			int r = SSL_read_ex(io->ssl, p, n, &got);

			if (r == 1)
				return (long)got;
			rc = ssl_wait(io, r);
			if (rc == -ENODATA)
				return 0;
			/* a peer closing without close_notify: EOF for close-delimited bodies,
			 * whose end the parser then judges */
			if (rc == -EPROTO && SSL_get_error(io->ssl, r) == SSL_ERROR_SYSCALL) {
				ERR_clear_error();
				return 0;
			}
			if (rc < 0)
				return rc;
		} else {
			ssize_t r = recv(io->fd, p, n, 0);

			if (r >= 0)
				return r;
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -errno;
			if ((rc = wait_fd(io, POLLIN)) < 0)
				return rc;
		}
	}
}

static int tcp_connect(struct io *io, const struct zm_url *u, struct zm_error *e)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV }, *ai = NULL;
	int rc = -EHOSTUNREACH, g;

	g = getaddrinfo(u->host, u->port, &hints, &ai);
	if (g || !ai)
		return zm_error_set(e, EHOSTUNREACH, "%s: cannot resolve: %s", u->host, gai_strerror(g));
	for (struct addrinfo *a = ai; a; a = a->ai_next) {
		int fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), err = 0, one = 1;
		socklen_t el = sizeof(err);

		if (fd < 0) {
			rc = -errno;
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		io->fd = fd;
		if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS)
			rc = -errno;
		else if ((rc = wait_fd(io, POLLOUT)) == 0 &&
			 (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err))
			rc = -(err ? err : ECONNREFUSED);
		if (rc == 0)
			break;
		close(fd);
		io->fd = -1;
		if (rc == -ETIMEDOUT)
			break;
	}
	freeaddrinfo(ai);
	if (rc)
		zm_error_set(e, -rc, "connect to %s:%s: %s", u->host, u->port, strerror(-rc));
	return rc;
}

static int tls_start(struct io *io, const struct zm_url *u, const char *ca_file, struct zm_error *e)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	unsigned char addr[16];
	bool literal = inet_pton(AF_INET, u->host, addr) == 1 || inet_pton(AF_INET6, u->host, addr) == 1;
	char why[256];
	int rc = -EPROTO;

	if (!ctx)
		return zm_error_set(e, ENOMEM, "TLS: no context");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1 :
		      SSL_CTX_set_default_verify_paths(ctx) != 1) {
		ssl_why(why, sizeof(why));
		rc = zm_error_set(e, EPROTO, "TLS: trust roots %s: %s", ca_file ? ca_file : "(system)", why);
		goto out;
	}
	io->ssl = SSL_new(ctx);
	if (!io->ssl || SSL_set_fd(io->ssl, io->fd) != 1) {
		rc = zm_error_set(e, ENOMEM, "TLS: no connection object");
		goto out;
	}
	/* the name we dialled must be in the certificate; SNI only for names */
	if (literal ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(io->ssl), u->host) != 1 :
		      (SSL_set1_host(io->ssl, u->host) != 1 ||
		       SSL_set_tlsext_host_name(io->ssl, u->host) != 1)) {
		rc = zm_error_set(e, EINVAL, "TLS: cannot check the name %s", u->host);
		goto out;
	}
	for (;;) {
		int r = SSL_connect(io->ssl);

		if (r == 1) {
			rc = 0;
			break;
		}
		rc = ssl_wait(io, r);
		if (rc == -ETIMEDOUT) {
			zm_error_set(e, ETIMEDOUT, "TLS handshake with %s:%s: timed out", u->host, u->port);
			break;
		}
		if (rc < 0) {
			long v = SSL_get_verify_result(io->ssl);

			ssl_why(why, sizeof(why));
			if (v != X509_V_OK)
				zm_error_set(e, EPROTO, "TLS: certificate verify failed: %s",
					     X509_verify_cert_error_string(v));
			else
				zm_error_set(e, EPROTO, "TLS handshake with %s:%s: %s", u->host, u->port, why);
			rc = -EPROTO;
			break;
		}
	}
out:
	SSL_CTX_free(ctx);	/* the SSL keeps its own reference */
	return rc;
}

/* ---- the answer ------------------------------------------------------------------------ */

struct parse {
	struct zm_buf *body;
	size_t max;
	int status;
	bool complete, too_big;
};

static int on_headers_complete(llhttp_t *p)
{
	struct parse *ps = p->data;

	if (p->status_code >= 200)
		ps->status = p->status_code;
	return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
	struct parse *ps = p->data;

	if (!ps->status || !ps->body)
		return 0;
	if (zm_buf_len(ps->body) + n > ps->max) {
		ps->too_big = true;
		return -1;
	}
	return zm_buf_append(ps->body, at, n) ? -1 : 0;
}

static int on_complete(llhttp_t *p)
{
	struct parse *ps = p->data;

	if (ps->status) {
		ps->complete = true;
		return HPE_PAUSED;
	}
	return 0;
}

int zm_httpc_request(const char *method, const char *url, const void *body, size_t blen,
		     const struct zm_httpc_opts *o, int *status, struct zm_buf *resp_body,
		     struct zm_error *e)
{
	static const struct zm_httpc_opts defaults = { 0 };
	struct io io = { .fd = -1 };
	struct zm_url u;
	struct zm_buf req = { 0 };
	struct parse ps = { 0 };
	llhttp_settings_t st;
	llhttp_t p;
	char hostport[300];
	bool v6;
	int rc;

	if (!o)
		o = &defaults;
	*status = 0;
	io.deadline = mono_ms() + (o->timeout_ms > 0 ? o->timeout_ms : 5000);
	ps.body = resp_body;
	ps.max = o->max_body ? o->max_body : 1 << 20;
	if ((rc = zm_url_parse(url, &u, e)) < 0)
		return rc;
	v6 = strchr(u.host, ':') != NULL;
	if (!strcmp(u.port, u.tls ? "443" : "80"))
		snprintf(hostport, sizeof(hostport), v6 ? "[%s]" : "%s", u.host);
	else
		snprintf(hostport, sizeof(hostport), v6 ? "[%s]:%s" : "%s:%s", u.host, u.port);
	if ((rc = tcp_connect(&io, &u, e)) < 0)
		goto out;
	if (u.tls && (rc = tls_start(&io, &u, o->ca_file, e)) < 0)
		goto out;
	zm_buf_printf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nUser-Agent: zmesh\r\n",
		      method, u.path, hostport);
	if (o->accept)
		zm_buf_printf(&req, "Accept: %s\r\n", o->accept);
	if (body || blen)
		zm_buf_printf(&req, "Content-Type: %s\r\nContent-Length: %zu\r\n",
			      o->content_type ? o->content_type : "application/json", blen);
	zm_buf_puts(&req, "\r\n");
	if (blen)
		zm_buf_append(&req, body, blen);
	if (!zm_buf_cstr(&req)) {
		rc = zm_error_set(e, ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = io_write(&io, zm_buf_data(&req), zm_buf_len(&req))) < 0) {
		zm_error_set(e, -rc, "%s: sending the request: %s", url, strerror(-rc));
		goto out;
	}
	llhttp_settings_init(&st);
	st.on_headers_complete = on_headers_complete;
	st.on_body = on_body;
	st.on_message_complete = on_complete;
	llhttp_init(&p, HTTP_RESPONSE, &st);
	p.data = &ps;
	if (!strcmp(method, "HEAD"))
		p.method = HTTP_HEAD;
	while (!ps.complete) {
		char buf[16384];
		long n = io_read(&io, buf, sizeof(buf));
		llhttp_errno_t err;

		if (n < 0) {
			rc = n == -EPROTO ? zm_error_set(e, EPROTO, "%s: TLS read failed", url) :
			     zm_error_set(e, (int)-n, "%s: reading the answer: %s", url, strerror((int)-n));
			goto out;
		}
		err = n ? llhttp_execute(&p, buf, (size_t)n) : llhttp_finish(&p);
		if (ps.too_big) {
			rc = zm_error_set(e, EFBIG, "%s: answer longer than %zu bytes", url, ps.max);
			goto out;
		}
		if (err != HPE_OK && err != HPE_PAUSED) {
			rc = zm_error_set(e, EPROTO, "%s: malformed answer: %s", url, llhttp_errno_name(err));
			goto out;
		}
		if (!n && !ps.complete) {
			rc = zm_error_set(e, EPROTO, "%s: connection closed before the answer ended", url);
			goto out;
		}
	}
	*status = ps.status;
	rc = 0;
out:
	if (io.ssl) {
		if (rc == 0)
			SSL_shutdown(io.ssl);
		SSL_free(io.ssl);
	}
	ERR_clear_error();
	if (io.fd >= 0)
		close(io.fd);
	zm_buf_free(&req);
	return rc;
}
