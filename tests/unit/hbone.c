// SPDX-License-Identifier: Apache-2.0
/* HBONE end to end in memory: real TLS 1.3 and HTTP/2, bytes shuttled here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness/test.h"
#include "zmesh/buf.h"
#include "zmesh/ca.h"
#include "zmesh/hbone.h"
#include "zmesh/tls.h"

struct peer {
	struct zm_hbone *h;
	int status;		/* client: response status */
	char authority[300];
	char baggage[256];
	int32_t stream;
	struct zm_buf got;
	bool ended, closed;
	int decide;		/* server: what on_connect returns */
};

static int on_connect(void *ud, struct zm_hbone *h, int32_t id, const char *auth,
		      const struct zm_hbone_hdr *hd, size_t n)
{
	struct peer *p = ud;

	(void)h;
	p->stream = id;
	snprintf(p->authority, sizeof(p->authority), "%s", auth);
	for (size_t i = 0; i < n; i++)
		if (!strcmp(hd[i].name, "baggage"))
			snprintf(p->baggage, sizeof(p->baggage), "%s", hd[i].value);
	return p->decide;
}
static void on_response(void *ud, struct zm_hbone *h, int32_t id, int status)
{
	(void)h; (void)id;
	((struct peer *)ud)->status = status;
}
static void on_data(void *ud, struct zm_hbone *h, int32_t id, const uint8_t *d, size_t n)
{
	(void)h; (void)id;
	zm_buf_append(&((struct peer *)ud)->got, d, n);
}
static void on_end(void *ud, struct zm_hbone *h, int32_t id)
{
	(void)h; (void)id;
	((struct peer *)ud)->ended = true;
}
static void on_close(void *ud, struct zm_hbone *h, int32_t id, uint32_t err)
{
	(void)h; (void)id; (void)err;
	((struct peer *)ud)->closed = true;
}

static const struct zm_hbone_cbs cbs = { on_connect, on_response, on_data, on_end, on_close };

/* Move ciphertext both ways until neither side has anything to say. */
static int shuttle(struct peer *a, struct peer *b)
{
	for (int round = 0; round < 10000; round++) {
		const void *d;
		size_t n1 = zm_hbone_output(a->h, &d), n2;
		int rc;

		if (n1) {
			rc = zm_hbone_input(b->h, d, n1);
			zm_hbone_consumed(a->h, n1);
			if (rc)
				return rc;
		}
		n2 = zm_hbone_output(b->h, &d);
		if (n2) {
			rc = zm_hbone_input(a->h, d, n2);
			zm_hbone_consumed(b->h, n2);
			if (rc)
				return rc;
		}
		if (!n1 && !n2)
			return 0;
	}
	return -1;
}

FIXTURE(hb) {
	char dir[64];
	struct zm_ca *ca;
	SSL_CTX *sctx, *cctx;
	struct peer cli, srv;
	struct zm_spiffe_id src, dst;
};

FIXTURE_SETUP(hb)
{
	struct zm_error e = { 0 };
	char *k1, *c1, *k2, *c2, *csr;

	snprintf(self->dir, sizeof(self->dir), "/tmp/zm-hbone-%d", getpid());
	ASSERT_OK(zm_ca_open(self->dir, &self->ca, &e));
	zm_spiffe_parse("spiffe://cluster.local/ns/shop/sa/web", 37, &self->src);
	zm_spiffe_parse("spiffe://cluster.local/ns/shop/sa/db", 36, &self->dst);
	ASSERT_OK(zm_key_csr(&self->src, &k1, &csr, &e));
	ASSERT_OK(zm_ca_sign(self->ca, csr, &self->src, 3600, &c1, &e));
	free(csr);
	ASSERT_OK(zm_key_csr(&self->dst, &k2, &csr, &e));
	ASSERT_OK(zm_ca_sign(self->ca, csr, &self->dst, 3600, &c2, &e));
	free(csr);
	self->cctx = zm_tls_ctx_new(false, k1, c1, zm_ca_bundle(self->ca), "cluster.local", &e);
	self->sctx = zm_tls_ctx_new(true, k2, c2, zm_ca_bundle(self->ca), "cluster.local", &e);
	free(k1); free(c1); free(k2); free(c2);
	ASSERT_OK_PTR(self->cctx);
	ASSERT_OK_PTR(self->sctx);
	self->srv.decide = 200;
	ASSERT_OK(zm_hbone_new(self->sctx, true, &cbs, &self->srv, &self->srv.h));
	ASSERT_OK(zm_hbone_new(self->cctx, false, &cbs, &self->cli, &self->cli.h));
	ASSERT_OK(shuttle(&self->cli, &self->srv));
	ASSERT_TRUE(zm_hbone_ready(self->cli.h));
	ASSERT_TRUE(zm_hbone_ready(self->srv.h));
}

FIXTURE_TEARDOWN(hb)
{
	zm_hbone_free(self->cli.h);
	zm_hbone_free(self->srv.h);
	zm_buf_free(&self->cli.got);
	zm_buf_free(&self->srv.got);
	SSL_CTX_free(self->cctx);
	SSL_CTX_free(self->sctx);
	zm_ca_free(self->ca);
	if (self->dir[0])
		test_sh(NULL, 0, "rm -rf %s", self->dir);
}

static const struct zm_hbone_hdr hdrs[] = {
	{ "baggage", "k8s.namespace.name=shop,k8s.deployment.name=web,service.name=web,service.version=v1" },
	{ "forwarded", "for=10.244.0.2" },
	{ "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" },
};

TEST_F(hb, connect_carries_bytes_both_ways_and_half_close)
{
	struct zm_error e = { 0 };
	int32_t id;
	char *mib = malloc(1 << 20);

	ASSERT_OK_PTR(mib);
	for (int i = 0; i < (1 << 20); i++)
		mib[i] = (char)(i * 7);
	/* Identities, both ways. */
	EXPECT_OK(zm_tls_check_peer(zm_hbone_ssl(self->cli.h), &self->dst, &e));
	EXPECT_OK(zm_tls_check_peer(zm_hbone_ssl(self->srv.h), &self->src, &e));
	ASSERT_OK(zm_hbone_open(self->cli.h, "10.244.1.2:8080", hdrs, 3, &id));
	ASSERT_OK(shuttle(&self->cli, &self->srv));
	EXPECT_EQ(self->cli.status, 200);
	EXPECT_STREQ(self->srv.authority, "10.244.1.2:8080");
	EXPECT_STRSTR(self->srv.baggage, "k8s.namespace.name=shop");
	/* 1 MiB up in pieces the stream buffer takes, shuttling between. */
	for (size_t off = 0; off < (1 << 20);) {
		size_t n = (1 << 20) - off < 65536 ? (1 << 20) - off : 65536;
		int rc = zm_hbone_send(self->cli.h, id, mib + off, n);

		if (rc == -ENOBUFS) {
			ASSERT_OK(shuttle(&self->cli, &self->srv));
			continue;
		}
		ASSERT_OK(rc);
		off += n;
	}
	ASSERT_OK(zm_hbone_end(self->cli.h, id));
	ASSERT_OK(shuttle(&self->cli, &self->srv));
	ASSERT_EQ(zm_buf_len(&self->srv.got), 1 << 20);
	EXPECT_EQ(memcmp(zm_buf_data(&self->srv.got), mib, 1 << 20), 0);
	EXPECT_TRUE(self->srv.ended);
	EXPECT_FALSE(self->srv.closed);	/* half-closed: the server may still answer */
	ASSERT_OK(zm_hbone_send(self->srv.h, self->srv.stream, "pong", 4));
	ASSERT_OK(zm_hbone_end(self->srv.h, self->srv.stream));
	ASSERT_OK(shuttle(&self->cli, &self->srv));
	ASSERT_EQ(zm_buf_len(&self->cli.got), 4);
	EXPECT_TRUE(self->cli.ended);
	EXPECT_TRUE(self->cli.closed);
	free(mib);
}

TEST_F(hb, refusal_status_reaches_the_client)
{
	int32_t id;

	self->srv.decide = 403;
	ASSERT_OK(zm_hbone_open(self->cli.h, "10.244.1.2:8080", hdrs, 3, &id));
	ASSERT_OK(shuttle(&self->cli, &self->srv));
	EXPECT_EQ(self->cli.status, 403);
	EXPECT_TRUE(self->cli.closed);
}

TEST_F(hb, no_tunnel_byte_before_the_200)
{
	int32_t id;

	self->srv.decide = 0;	/* decide later, as after an upstream connect */
	ASSERT_OK(zm_hbone_open(self->cli.h, "10.244.1.2:8080", hdrs, 3, &id));
	ASSERT_OK(zm_hbone_send(self->cli.h, id, "GET /early", 10));
	ASSERT_OK(shuttle(&self->cli, &self->srv));
	EXPECT_EQ(zm_buf_len(&self->srv.got), 0);	/* held back */
	ASSERT_OK(zm_hbone_respond(self->srv.h, self->srv.stream, 200));
	ASSERT_OK(shuttle(&self->cli, &self->srv));
	EXPECT_EQ(zm_buf_len(&self->srv.got), 10);	/* delivered once accepted */
	EXPECT_EQ(self->cli.status, 200);
}

TEST_F(hb, garbage_and_plaintext_are_refused)
{
	struct zm_hbone *s2;
	struct peer p = { .decide = 200 };
	static const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

	ASSERT_OK(zm_hbone_new(self->sctx, true, &cbs, &p, &s2));
	EXPECT_EQ(zm_hbone_input(s2, http, sizeof(http) - 1), -EPROTO);
	EXPECT_FALSE(zm_hbone_ready(s2));
	zm_hbone_free(s2);
}

TEST_F(hb, many_streams_respect_the_limit)
{
	int32_t id;
	int opened = 0;

	for (int i = 0; i < 150; i++) {
		if (zm_hbone_open(self->cli.h, "10.244.1.2:8080", hdrs, 3, &id))
			break;
		opened++;
	}
	/* A client opens no more than the limit on one connection: the pool
	 * opens another connection beyond it. */
	EXPECT_EQ(opened, ZM_HBONE_MAX_STREAMS);
	EXPECT_EQ(zm_hbone_capacity(self->cli.h), 0);
	ASSERT_OK(shuttle(&self->cli, &self->srv));
	EXPECT_EQ(self->cli.status, 200);
}

/* CVE-2023-44487: CONNECTs reset before their answer (the server's upstream
 * connect is wasted work) get the connection GOAWAY once past the budget. */
TEST_F(hb, resets_before_the_answer_are_a_flood)
{
	int32_t id;
	int i, rc = 0;

	self->srv.decide = 0;	/* pending, as while ztunnel connects upstream */
	for (i = 0; i < 1000 && !rc; i++) {
		if (zm_hbone_open(self->cli.h, "10.244.1.2:8080", hdrs, 3, &id))
			break;
		ASSERT_OK(zm_hbone_reset(self->cli.h, id));
		rc = shuttle(&self->cli, &self->srv);
	}
	EXPECT_TRUE(zm_hbone_flooded(self->srv.h));
	test_log("GOAWAY after %d premature resets", i);
	EXPECT_GE(i, 100);	/* the burst is allowed */
	EXPECT_LT(i, 200);
	/* The client learns it: no new stream on this connection. */
	(void)shuttle(&self->cli, &self->srv);
	EXPECT_NE(zm_hbone_open(self->cli.h, "10.244.1.2:8080", hdrs, 3, &id), 0);
}

/* A client that closes with RST after its answer (SO_LINGER 0, load
 * balancers) resets every stream: that is no attack, the connection stays. */
TEST_F(hb, resets_after_the_answer_are_a_normal_close)
{
	int32_t id;

	for (int i = 0; i < 2000; i++) {
		self->cli.status = 0;
		ASSERT_OK(zm_hbone_open(self->cli.h, "10.244.1.2:8080", hdrs, 3, &id));
		ASSERT_OK(zm_hbone_send(self->cli.h, id, "ping", 4));
		ASSERT_OK(shuttle(&self->cli, &self->srv));
		ASSERT_EQ(self->cli.status, 200);
		ASSERT_OK(zm_hbone_send(self->srv.h, self->srv.stream, "pong", 4));
		ASSERT_OK(shuttle(&self->cli, &self->srv));
		ASSERT_OK(zm_hbone_reset(self->cli.h, id));
		ASSERT_OK(shuttle(&self->cli, &self->srv));
	}
	EXPECT_FALSE(zm_hbone_flooded(self->srv.h));
	EXPECT_GT(zm_hbone_capacity(self->cli.h), 0);
}
