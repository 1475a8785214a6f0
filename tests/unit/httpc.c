// SPDX-License-Identifier: Apache-2.0
/*
 * httpc.h against real sockets on loopback: a server thread answers one
 * connection with a canned answer (plain or TLS with certificates made
 * here by the openssl CLI), the client must read it right or fail with the
 * right errno and reason.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "zmesh/httpc.h"
#include "../harness/test.h"

struct srv {
	int lfd, port;
	SSL_CTX *tls;
	const char *answer;		/* NULL: say nothing (timeout) */
	char req[8192];
	pthread_t th;
};

static void *serve(void *arg)
{
	struct srv *s = arg;
	int fd = accept(s->lfd, NULL, NULL);
	SSL *ssl = NULL;
	size_t n = 0;

	if (fd < 0)
		return NULL;
	if (s->tls) {
		ssl = SSL_new(s->tls);
		SSL_set_fd(ssl, fd);
		if (SSL_accept(ssl) != 1)
			goto out;
	}
	/* the request: headers, then Content-Length bytes of body if any */
	for (;;) {
		int r = ssl ? SSL_read(ssl, s->req + n, (int)(sizeof(s->req) - 1 - n)) :
			      (int)read(fd, s->req + n, sizeof(s->req) - 1 - n);
		char *end, *cl;

		if (r <= 0)
			goto out;
		n += (size_t)r;
		s->req[n] = 0;
		if ((end = strstr(s->req, "\r\n\r\n"))) {
			cl = strcasestr(s->req, "content-length: ");
			if (!cl || (size_t)(end + 4 - s->req) + (size_t)atoi(cl + 16) <= n)
				break;
		}
	}
	if (!s->answer) {
		sleep(2);
		goto out;
	}
	if (ssl)
		SSL_write(ssl, s->answer, (int)strlen(s->answer));
	else
		(void)!write(fd, s->answer, strlen(s->answer));
out:
	if (ssl) {
		SSL_shutdown(ssl);
		SSL_free(ssl);
	}
	close(fd);
	return NULL;
}

static void srv_start(struct srv *s, const char *answer, SSL_CTX *tls)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);

	memset(s, 0, sizeof(*s));
	s->answer = answer;
	s->tls = tls;
	s->lfd = socket(AF_INET, SOCK_STREAM, 0);
	bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa));
	listen(s->lfd, 4);
	getsockname(s->lfd, (struct sockaddr *)&sa, &sl);
	s->port = ntohs(sa.sin_port);
	pthread_create(&s->th, NULL, serve, s);
}

static void srv_stop(struct srv *s)
{
	shutdown(s->lfd, SHUT_RDWR);
	pthread_join(s->th, NULL);
	close(s->lfd);
}

/* GET http(s)://@host:port/p from @s; status, body, error in the out args. */
static int fetch(struct srv *s, const char *scheme, const char *host, const struct zm_httpc_opts *o,
		 int *status, struct zm_buf *body, struct zm_error *e)
{
	char url[256];

	snprintf(url, sizeof(url), "%s://%s:%d/p?x=1", scheme, host, s->port);
	return zm_httpc_request("GET", url, NULL, 0, o, status, body, e);
}

TEST(url_parse)
{
	struct zm_error e = { "" };
	struct zm_url u;

	ASSERT_EQ(zm_url_parse("http://collector:9411/api/v2/spans", &u, &e), 0);
	EXPECT_EQ(u.tls, 0);
	EXPECT_STREQ(u.host, "collector");
	EXPECT_STREQ(u.port, "9411");
	EXPECT_STREQ(u.path, "/api/v2/spans");
	ASSERT_EQ(zm_url_parse("https://issuer.example.com", &u, &e), 0);
	EXPECT_EQ(u.tls, 1);
	EXPECT_STREQ(u.port, "443");
	EXPECT_STREQ(u.path, "/");
	ASSERT_EQ(zm_url_parse("HTTPS://[::1]:8443?a=b#frag", &u, &e), 0);
	EXPECT_STREQ(u.host, "::1");
	EXPECT_STREQ(u.port, "8443");
	EXPECT_STREQ(u.path, "/?a=b");
	EXPECT_EQ(zm_url_parse("ftp://x/", &u, &e), -EINVAL);
	EXPECT_EQ(zm_url_parse("http://user:pw@x/", &u, &e), -EINVAL);
	EXPECT_STRSTR(e.msg, "user info");
	EXPECT_EQ(zm_url_parse("http://x:0/", &u, &e), -EINVAL);
	EXPECT_EQ(zm_url_parse("http://x:99999/", &u, &e), -EINVAL);
	EXPECT_EQ(zm_url_parse("http://x:12a/", &u, &e), -EINVAL);
	EXPECT_EQ(zm_url_parse("http:///p", &u, &e), -EINVAL);
	EXPECT_EQ(zm_url_parse("http://x/a b", &u, &e), -EINVAL);
	EXPECT_EQ(zm_url_parse("http://x/a\r\nHost: y", &u, &e), -EINVAL);
	EXPECT_EQ(zm_url_parse("http://[::1/", &u, &e), -EINVAL);
}

TEST(plain_framings_and_limits)
{
	static const struct {
		const char *answer;
		int rc, status;
		const char *body;
	} cases[] = {
		{ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 0, 200, "hello" },
		{ "HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
		  0, 202, "abcde" },
		{ "HTTP/1.0 200 ok\r\nContent-type: text/plain\r\n\r\nuntil close", 0, 200, "until close" },
		{ "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno", 0, 404, "no" },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", -EPROTO, 0, NULL },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789012345678901234567890123456789", -EFBIG, 0, NULL },
		{ "garbage\r\n\r\n", -EPROTO, 0, NULL },
		{ NULL, -ETIMEDOUT, 0, NULL },
	};
	struct zm_httpc_opts o = { .timeout_ms = 500, .max_body = 32 };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct zm_error e = { "" };
		struct zm_buf body = { 0 };
		struct srv s;
		int status = -1, rc;

		srv_start(&s, cases[i].answer, NULL);
		rc = fetch(&s, "http", "127.0.0.1", &o, &status, &body, &e);
		EXPECT_EQ(rc, cases[i].rc);
		if (rc)
			test_log("case %zu: %s", i, e.msg);
		EXPECT_EQ(status, cases[i].status);
		if (cases[i].body)
			EXPECT_STREQ(zm_buf_cstr(&body) ? zm_buf_cstr(&body) : "", cases[i].body);
		if (i == 0) {
			EXPECT_STRSTR(s.req, "GET /p?x=1 HTTP/1.1\r\n");
			EXPECT_STRSTR(s.req, "Host: 127.0.0.1:");
			EXPECT_STRSTR(s.req, "Connection: close\r\n");
		}
		srv_stop(&s);
		zm_buf_free(&body);
	}
}

TEST(post_body_and_refused)
{
	struct zm_httpc_opts o = { .timeout_ms = 2000 };
	struct zm_error e = { "" };
	struct srv s;
	char url[128];
	int status = 0, port;

	srv_start(&s, "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n", NULL);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/v2/spans", s.port);
	EXPECT_EQ(zm_httpc_request("POST", url, "[{\"id\":\"1\"}]", 12, &o, &status, NULL, &e), 0);
	EXPECT_EQ(status, 202);
	EXPECT_STRSTR(s.req, "POST /api/v2/spans HTTP/1.1\r\n");
	EXPECT_STRSTR(s.req, "Content-Type: application/json\r\nContent-Length: 12\r\n\r\n[{\"id\":\"1\"}]");
	port = s.port;
	srv_stop(&s);
	/* nobody listens there any more */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
	EXPECT_EQ(zm_httpc_request("GET", url, NULL, 0, &o, &status, NULL, &e), -ECONNREFUSED);
	EXPECT_STRSTR(e.msg, "connect to 127.0.0.1:");
	EXPECT_EQ(zm_httpc_request("GET", "http://no-such-host.invalid/", NULL, 0, &o, &status, NULL, &e),
		  -EHOSTUNREACH);
}

struct pki {
	char dir[64];
};

static void pki_cleanup(void *arg)
{
	struct pki *p = arg;

	test_sh(NULL, 0, "rm -rf %s", p->dir);
}

static SSL_CTX *server_ctx(const char *dir, const char *name, int max_version)
{
	SSL_CTX *c = SSL_CTX_new(TLS_server_method());
	char crt[128], key[128];

	snprintf(crt, sizeof(crt), "%s/%s.crt", dir, name);
	snprintf(key, sizeof(key), "%s/%s.key", dir, name);
	if (SSL_CTX_use_certificate_file(c, crt, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1) {
		SSL_CTX_free(c);
		return NULL;
	}
	if (max_version) {
		SSL_CTX_set_security_level(c, 0);
		SSL_CTX_set_min_proto_version(c, max_version);
		SSL_CTX_set_max_proto_version(c, max_version);
	}
	return c;
}

TEST(tls_verification)
{
	static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nkeys";
	static struct pki p;
	struct zm_buf body = { 0 };
	struct zm_error e = { "" };
	struct zm_httpc_opts o = { .timeout_ms = 3000 };
	char ca[128];
	struct srv s;
	SSL_CTX *good, *other, *old;
	int status = 0;

	snprintf(p.dir, sizeof(p.dir), "/tmp/zm-httpc-%d", getpid());
	test_defer(pki_cleanup, &p);
	ASSERT_EQ(test_sh(NULL, 0, "mkdir -p %s && cd %s && K='-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes' && "
			  "openssl req -x509 $K -keyout ca.key -out ca.crt -subj /CN=ca -days 2 && "
			  "openssl req $K -keyout good.key -out good.csr -subj /CN=localhost "
			  "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 && "
			  "openssl x509 -req -in good.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 "
			  "-copy_extensions copy -out good.crt && "
			  "openssl req -x509 $K -keyout other.key -out other.crt -subj /CN=localhost -days 2 "
			  "-addext subjectAltName=DNS:localhost 2>&1", p.dir, p.dir), 0);
	snprintf(ca, sizeof(ca), "%s/ca.crt", p.dir);
	o.ca_file = ca;
	ASSERT_TRUE((good = server_ctx(p.dir, "good", 0)) != NULL);
	ASSERT_TRUE((other = server_ctx(p.dir, "other", 0)) != NULL);
	ASSERT_TRUE((old = server_ctx(p.dir, "good", TLS1_1_VERSION)) != NULL);

	/* by name and by address literal (IP SAN) */
	srv_start(&s, ok, good);
	EXPECT_EQ(fetch(&s, "https", "localhost", &o, &status, &body, &e), 0);
	EXPECT_EQ(status, 200);
	EXPECT_STREQ(zm_buf_cstr(&body), "keys");
	srv_stop(&s);
	srv_start(&s, ok, good);
	EXPECT_EQ(fetch(&s, "https", "127.0.0.1", &o, &status, NULL, &e), 0);
	srv_stop(&s);
	/* a server our CA did not sign */
	srv_start(&s, ok, other);
	EXPECT_EQ(fetch(&s, "https", "localhost", &o, &status, NULL, &e), -EPROTO);
	EXPECT_STRSTR(e.msg, "certificate verify failed: self-signed certificate");
	srv_stop(&s);
	/* the system store does not know our CA either */
	o.ca_file = NULL;
	srv_start(&s, ok, good);
	EXPECT_EQ(fetch(&s, "https", "localhost", &o, &status, NULL, &e), -EPROTO);
	EXPECT_STRSTR(e.msg, "certificate verify failed");
	srv_stop(&s);
	o.ca_file = ca;
	/* trusted, but a certificate for localhost is not one for 127.0.0.1 */
	{
		char url[128];

		srv_start(&s, ok, other);
		snprintf(url, sizeof(url), "https://127.0.0.1:%d/", s.port);
		snprintf(ca, sizeof(ca), "%s/other.crt", p.dir);
		o.ca_file = ca;
		EXPECT_EQ(zm_httpc_request("GET", url, NULL, 0, &o, &status, NULL, &e), -EPROTO);
		EXPECT_STRSTR(e.msg, "certificate verify failed: IP address mismatch");
		srv_stop(&s);
		snprintf(ca, sizeof(ca), "%s/ca.crt", p.dir);
	}
	/* TLS 1.1 is refused */
	srv_start(&s, ok, old);
	EXPECT_EQ(fetch(&s, "https", "localhost", &o, &status, NULL, &e), -EPROTO);
	test_log("TLS 1.1: %s", e.msg);
	srv_stop(&s);
	SSL_CTX_free(good);
	SSL_CTX_free(other);
	SSL_CTX_free(old);
	zm_buf_free(&body);
}
