// SPDX-License-Identifier: Apache-2.0
/* SPIFFE IDs, the CA, and mutual TLS 1.3 handshakes with real OpenSSL. */
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../harness/test.h"
#include "zmesh/ca.h"
#include "zmesh/tls.h"

static const struct {
	const char *s;
	size_t len;	/* 0: strlen */
	bool ok;
} ids[] = {
	{ "spiffe://cluster.local/ns/shop/sa/web", 0, true },
	{ "spiffe://cluster.local/ns/shop/sa/web-1.v2_x", 0, true },
	{ "spiffe://cluster.local/ns/shop/sa/web/extra", 0, false },
	{ "spiffe://cluster.local/ns/shop/sa/", 0, false },
	{ "spiffe://cluster.local/ns/shop", 0, false },
	{ "spiffe://Cluster.local/ns/shop/sa/web", 0, false },	/* trust domains are lower case */
	{ "spiffe://cluster.local/sa/web/ns/shop", 0, false },
	{ "spiffe://cluster.local/ns/../sa/web", 0, false },
	{ "http://cluster.local/ns/shop/sa/web", 0, false },
	{ "spiffe://cluster.local/ns/shop/sa/web\0evil", 40, false },	/* NUL inside */
	{ "spiffe:///ns/shop/sa/web", 0, false },
};

TEST(spiffe_ids)
{
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		struct zm_spiffe_id id;
		size_t len = ids[i].len ? ids[i].len : strlen(ids[i].s);

		if (!EXPECT_EQ(zm_spiffe_parse(ids[i].s, len, &id) == 0, ids[i].ok))
			test_log("case %zu: %s", i, ids[i].s);
	}
	struct zm_spiffe_id id;
	char buf[128];

	ASSERT_OK(zm_spiffe_parse(ids[0].s, strlen(ids[0].s), &id));
	EXPECT_STREQ(id.ns, "shop");
	EXPECT_STREQ(id.sa, "web");
	ASSERT_OK(zm_spiffe_format(&id, buf, sizeof(buf)));
	EXPECT_STREQ(buf, ids[0].s);
}

TEST(renewal_time)
{
	/* 24 h certificate from t=1000. */
	EXPECT_EQ(zm_renew_at(1000, 1000 + 86400, 2000, 0, 0.5), 1000 + 43200);
	/* Jitter moves it earlier, never later, by at most the given share. */
	EXPECT_EQ(zm_renew_at(1000, 1000 + 86400, 2000, 10, 1.0), 1000 + 43200 - 8640);
	/* Not yet valid, or expired: at once. */
	EXPECT_EQ(zm_renew_at(5000, 9000, 4000, 10, 0.3), 4000);
	EXPECT_EQ(zm_renew_at(5000, 9000, 9500, 10, 0.3), 9500);
	/* Past half life already: now. */
	EXPECT_EQ(zm_renew_at(0, 100, 80, 0, 0), 80);
}

FIXTURE(pki) {
	char dir[64];
	struct zm_ca *ca;
	char *key, *chain;	/* a workload: web in shop */
	struct zm_spiffe_id web, db;
	char *dbkey, *dbchain;
};

static void issue(struct zm_ca *ca, const struct zm_spiffe_id *id, unsigned ttl, char **key, char **chain)
{
	struct zm_error e = { 0 };
	char *csr;

	ASSERT_OK(zm_key_csr(id, key, &csr, &e));
	if (!EXPECT_OK(zm_ca_sign(ca, csr, id, ttl, chain, &e)))
		test_log("%s", e.msg);
	free(csr);
}

FIXTURE_SETUP(pki)
{
	struct zm_error e = { 0 };

	snprintf(self->dir, sizeof(self->dir), "/tmp/zm-pki-%d", getpid());
	ASSERT_OK(zm_ca_open(self->dir, &self->ca, &e));
	zm_spiffe_parse("spiffe://cluster.local/ns/shop/sa/web", 37, &self->web);
	zm_spiffe_parse("spiffe://cluster.local/ns/shop/sa/db", 36, &self->db);
	issue(self->ca, &self->web, 3600, &self->key, &self->chain);
	issue(self->ca, &self->db, 3600, &self->dbkey, &self->dbchain);
}

FIXTURE_TEARDOWN(pki)
{
	zm_ca_free(self->ca);
	free(self->key);
	free(self->chain);
	free(self->dbkey);
	free(self->dbchain);
	if (self->dir[0])
		test_sh(NULL, 0, "rm -rf %s", self->dir);
}

/* One handshake over a socketpair: the server in a thread. */
struct side {
	SSL_CTX *ctx;
	int fd;
	int ok;
	struct zm_spiffe_id peer;
	char why[256];
};

static void *serve(void *arg)
{
	struct side *s = arg;
	SSL *ssl = SSL_new(s->ctx);

	SSL_set_fd(ssl, s->fd);
	s->ok = SSL_accept(ssl) == 1;
	if (s->ok) {
		zm_tls_peer_id(ssl, &s->peer);
		SSL_write(ssl, "x", 1);
	}
	snprintf(s->why, sizeof(s->why), "%s", zm_tls_verify_error(ssl));
	SSL_free(ssl);
	close(s->fd);
	ERR_clear_error();
	return NULL;
}

static int handshake(SSL_CTX *sctx, SSL_CTX *cctx, struct side *srv, struct side *cli,
		     const struct zm_spiffe_id *want, struct zm_error *e)
{
	int sv[2], rc;
	pthread_t th;
	SSL *ssl;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		return -1;
	*srv = (struct side){ .ctx = sctx, .fd = sv[0] };
	*cli = (struct side){ .ctx = cctx, .fd = sv[1] };
	pthread_create(&th, NULL, serve, srv);
	ssl = SSL_new(cctx);
	SSL_set_fd(ssl, sv[1]);
	cli->ok = SSL_connect(ssl) == 1;
	rc = cli->ok ? 0 : -1;
	if (cli->ok && want)
		rc = zm_tls_check_peer(ssl, want, e);
	if (cli->ok) {
		char c;

		SSL_read(ssl, &c, 1);	/* the server's verdict on us arrives with data */
	}
	snprintf(cli->why, sizeof(cli->why), "%s", zm_tls_verify_error(ssl));
	shutdown(sv[1], SHUT_RDWR);
	pthread_join(th, NULL);
	SSL_free(ssl);
	close(sv[1]);
	ERR_clear_error();
	return rc;
}

TEST_F(pki, mutual_tls_with_identities)
{
	struct zm_error e = { 0 };
	const char *b = zm_ca_bundle(self->ca);
	SSL_CTX *s = zm_tls_ctx_new(true, self->dbkey, self->dbchain, b, "cluster.local", &e);
	SSL_CTX *c = zm_tls_ctx_new(false, self->key, self->chain, b, "cluster.local", &e);
	struct side srv, cli;
	char id[128];

	ASSERT_OK_PTR(s);
	ASSERT_OK_PTR(c);
	ASSERT_OK(handshake(s, c, &srv, &cli, &self->db, &e));
	EXPECT_TRUE(srv.ok);
	zm_spiffe_format(&srv.peer, id, sizeof(id));
	EXPECT_STREQ(id, "spiffe://cluster.local/ns/shop/sa/web");
	/* The client wanted someone else: refused, and the error says who is who. */
	EXPECT_LT(handshake(s, c, &srv, &cli, &self->web, &e), 0);
	EXPECT_STREQ(e.msg, "peer identity: want spiffe://cluster.local/ns/shop/sa/web, "
			    "got spiffe://cluster.local/ns/shop/sa/db");
	SSL_CTX_free(s);
	SSL_CTX_free(c);
}

TEST_F(pki, untrusted_and_foreign_peers_are_refused)
{
	struct zm_error e = { 0 };
	struct zm_ca *other;
	char dir[80], *k2, *c2;
	struct side srv, cli;
	struct zm_spiffe_id evil;

	snprintf(dir, sizeof(dir), "%s/other", self->dir);
	ASSERT_OK(zm_ca_open(dir, &other, &e));
	issue(other, &self->web, 3600, &k2, &c2);
	SSL_CTX *s = zm_tls_ctx_new(true, self->dbkey, self->dbchain, zm_ca_bundle(self->ca), "cluster.local", &e);
	/* The client trusts both roots, so it accepts the server; its own
	 * certificate comes from a CA the server does not trust. */
	char both[8192];
	snprintf(both, sizeof(both), "%s%s", zm_ca_bundle(self->ca), zm_ca_bundle(other));
	SSL_CTX *c = zm_tls_ctx_new(false, k2, c2, both, "cluster.local", &e);

	ASSERT_OK_PTR(s);
	ASSERT_OK_PTR(c);
	handshake(s, c, &srv, &cli, NULL, &e);
	EXPECT_FALSE(srv.ok);
	EXPECT_STRSTR(srv.why, "certificate chain: ");
	SSL_CTX_free(c);
	free(k2);
	free(c2);

	/* Our CA, but another trust domain. */
	zm_spiffe_parse("spiffe://evil.example/ns/shop/sa/web", 36, &evil);
	issue(self->ca, &evil, 3600, &k2, &c2);
	c = zm_tls_ctx_new(false, k2, c2, zm_ca_bundle(self->ca), "cluster.local", &e);
	ASSERT_OK_PTR(c);
	handshake(s, c, &srv, &cli, NULL, &e);
	EXPECT_FALSE(srv.ok);
	EXPECT_STRSTR(srv.why, "trust domain evil.example is not ours");
	SSL_CTX_free(c);
	free(k2);
	free(c2);
	SSL_CTX_free(s);
	zm_ca_free(other);
}

TEST_F(pki, no_client_certificate_and_old_tls_are_refused)
{
	struct zm_error e = { 0 };
	SSL_CTX *s = zm_tls_ctx_new(true, self->dbkey, self->dbchain, zm_ca_bundle(self->ca), "cluster.local", &e);
	SSL_CTX *plain = SSL_CTX_new(TLS_client_method()), *old = SSL_CTX_new(TLS_client_method());
	struct side srv, cli;

	ASSERT_OK_PTR(s);
	SSL_CTX_set_verify(plain, SSL_VERIFY_NONE, NULL);
	handshake(s, plain, &srv, &cli, NULL, &e);
	EXPECT_FALSE(srv.ok);
	SSL_CTX_set_max_proto_version(old, TLS1_2_VERSION);
	handshake(s, old, &srv, &cli, NULL, &e);
	EXPECT_FALSE(srv.ok);
	EXPECT_FALSE(cli.ok);
	SSL_CTX_free(plain);
	SSL_CTX_free(old);
	SSL_CTX_free(s);
}

/* Certificates that a broken or hostile CA might issue, signed by a CA made
 * here, each fed to zm_svid_check. */
static X509 *mint(EVP_PKEY *cakey, X509 *cacert, const char *const *exts)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *c = X509_new();
	X509V3_CTX ctx;

	X509_set_version(c, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(c), 7);
	X509_set_issuer_name(c, X509_get_subject_name(cacert ? cacert : c));
	X509_gmtime_adj(X509_getm_notBefore(c), -60);
	X509_gmtime_adj(X509_getm_notAfter(c), 3600);
	X509_set_pubkey(c, k);
	for (; *exts; exts += 2) {
		X509_EXTENSION *x;

		X509V3_set_ctx(&ctx, cacert ? cacert : c, c, NULL, NULL, 0);
		x = X509V3_EXT_conf(NULL, &ctx, exts[0], exts[1]);
		X509_add_ext(c, x, -1);
		X509_EXTENSION_free(x);
	}
	X509_sign(c, cakey ? cakey : k, EVP_sha256());
	EVP_PKEY_free(k);
	return c;
}

TEST(svid_rules)
{
	static const char *const good[] = { "basicConstraints", "critical,CA:FALSE",
		"keyUsage", "critical,digitalSignature", "extendedKeyUsage", "serverAuth,clientAuth",
		"subjectAltName", "URI:spiffe://cluster.local/ns/a/sa/b", NULL };
	static const struct {
		const char *const exts[12];
		const char *why;
	} bad[] = {
		{ { "basicConstraints", "critical,CA:TRUE", "keyUsage", "critical,digitalSignature",
		    "subjectAltName", "URI:spiffe://cluster.local/ns/a/sa/b", NULL }, "is a CA" },
		{ { "keyUsage", "critical,digitalSignature,keyCertSign",
		    "subjectAltName", "URI:spiffe://cluster.local/ns/a/sa/b", NULL }, "may sign certificates" },
		{ { "keyUsage", "critical,keyEncipherment",
		    "subjectAltName", "URI:spiffe://cluster.local/ns/a/sa/b", NULL }, "lacks digitalSignature" },
		{ { "keyUsage", "critical,digitalSignature", "extendedKeyUsage", "serverAuth",
		    "subjectAltName", "URI:spiffe://cluster.local/ns/a/sa/b", NULL }, "serverAuth or clientAuth" },
		{ { "keyUsage", "critical,digitalSignature",
		    "subjectAltName", "URI:spiffe://cluster.local/ns/a/sa/b,URI:spiffe://cluster.local/ns/c/sa/d",
		    NULL }, "exactly one URI SAN, found 2" },
		{ { "keyUsage", "critical,digitalSignature", "subjectAltName", "DNS:web.shop", NULL },
		  "exactly one URI SAN, found 0" },
		{ { "keyUsage", "critical,digitalSignature", NULL }, "no subjectAltName" },
		{ { "subjectAltName", "URI:spiffe://cluster.local/ns/a/sa/b", NULL }, "no keyUsage" },
		{ { "keyUsage", "critical,digitalSignature", "subjectAltName", "URI:https://cluster.local/x", NULL },
		  "not a SPIFFE workload ID" },
	};
	struct zm_spiffe_id id;
	char why[256];
	X509 *c = mint(NULL, NULL, good);

	ASSERT_OK(zm_svid_check(c, &id, why, sizeof(why)));
	EXPECT_STREQ(id.sa, "b");
	X509_free(c);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c = mint(NULL, NULL, bad[i].exts);
		why[0] = 0;
		EXPECT_EQ(zm_svid_check(c, &id, why, sizeof(why)), -EACCES);
		if (!EXPECT_STRSTR(why, bad[i].why))
			test_log("case %zu", i);
		X509_free(c);
	}
	/* A NUL inside the URI SAN (built by hand: the config parser refuses it). */
	{
		X509 *n = mint(NULL, NULL, (const char *const[]){ "keyUsage", "critical,digitalSignature", NULL });
		GENERAL_NAMES *gens = GENERAL_NAMES_new();
		GENERAL_NAME *gn = GENERAL_NAME_new();
		ASN1_IA5STRING *s = ASN1_IA5STRING_new();
		static const char v[] = "spiffe://cluster.local/ns/a/sa/b\0.evil";

		ASN1_STRING_set(s, v, sizeof(v) - 1);
		GENERAL_NAME_set0_value(gn, GEN_URI, s);
		sk_GENERAL_NAME_push(gens, gn);
		X509_add1_ext_i2d(n, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT);
		GENERAL_NAMES_free(gens);
		EXPECT_EQ(zm_svid_check(n, &id, why, sizeof(why)), -EACCES);
		EXPECT_STRSTR(why, "not a SPIFFE workload ID");
		X509_free(n);
	}
}

TEST_F(pki, ca_refuses_bad_csrs_and_plugged_in_ca_chains_to_root)
{
	struct zm_error e = { 0 };
	char *chain = NULL, *key, *csr;
	EVP_PKEY *rsa = EVP_RSA_gen(2048);
	X509_REQ *req = X509_REQ_new();
	BIO *b = BIO_new(BIO_s_mem());
	char *data;
	long n;

	/* An RSA CSR: wrong key type. */
	X509_REQ_set_pubkey(req, rsa);
	X509_REQ_sign(req, rsa, EVP_sha256());
	PEM_write_bio_X509_REQ(b, req);
	n = BIO_get_mem_data(b, &data);
	csr = strndup(data, (size_t)n);
	EXPECT_LT(zm_ca_sign(self->ca, csr, &self->web, 3600, &chain, &e), 0);
	EXPECT_STRSTR(e.msg, "ECDSA P-256");
	free(csr);
	/* A P-256 CSR with its signature broken. */
	ASSERT_OK(zm_key_csr(&self->web, &key, &csr, &e));
	{
		BIO *in = BIO_new_mem_buf(csr, -1), *out = BIO_new(BIO_s_mem());
		X509_REQ *r = PEM_read_bio_X509_REQ(in, NULL, NULL, NULL);
		const ASN1_BIT_STRING *sig;
		const X509_ALGOR *alg;

		X509_REQ_get0_signature(r, &sig, &alg);
		((ASN1_BIT_STRING *)sig)->data[10] ^= 0xff;
		PEM_write_bio_X509_REQ(out, r);
		n = BIO_get_mem_data(out, &data);
		free(csr);
		csr = strndup(data, (size_t)n);
		X509_REQ_free(r);
		BIO_free(in);
		BIO_free(out);
	}
	EXPECT_LT(zm_ca_sign(self->ca, csr, &self->web, 3600, &chain, &e), 0);
	EXPECT_STRSTR(e.msg, "bad signature");
	free(csr);
	free(key);
	X509_REQ_free(req);
	EVP_PKEY_free(rsa);
	BIO_free(b);

	/* Plug-in CA (Istio's cacerts/): root -> intermediate -> leaf, trusted by the root alone. */
	ASSERT_EQ(test_sh(NULL, 0, "cd %s && mkdir -p plug/cacerts && cd plug/cacerts && "
			  "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout root-key.pem "
			  "-out root-cert.pem -subj /O=plug/CN=root -days 30 -addext basicConstraints=critical,CA:TRUE "
			  "-addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null && "
			  "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca-key.pem -out ca.csr "
			  "-subj /O=plug/CN=intermediate 2>/dev/null && "
			  "printf 'basicConstraints=critical,CA:TRUE\\nkeyUsage=critical,keyCertSign,cRLSign\\n' > ext && "
			  "openssl x509 -req -in ca.csr -CA root-cert.pem -CAkey root-key.pem -CAcreateserial "
			  "-out ca-cert.pem -days 30 -extfile ext 2>/dev/null && cp ca-cert.pem cert-chain.pem",
			  self->dir), 0);
	char plug[96];
	struct zm_ca *pca;
	snprintf(plug, sizeof(plug), "%s/plug", self->dir);
	ASSERT_OK(zm_ca_open(plug, &pca, &e));
	char *k1, *c1;
	issue(pca, &self->web, 600, &k1, &c1);
	SSL_CTX *s = zm_tls_ctx_new(true, k1, c1, zm_ca_bundle(pca), "cluster.local", &e);
	SSL_CTX *c = zm_tls_ctx_new(false, k1, c1, zm_ca_bundle(pca), "cluster.local", &e);
	struct side srv, cli;
	ASSERT_OK_PTR(s);
	ASSERT_OK_PTR(c);
	EXPECT_OK(handshake(s, c, &srv, &cli, &self->web, &e));
	EXPECT_TRUE(srv.ok);
	SSL_CTX_free(s);
	SSL_CTX_free(c);
	free(k1);
	free(c1);
	zm_ca_free(pca);
}

TEST_F(pki, rotation_keeps_open_connections)
{
	struct zm_error e = { 0 };
	const char *b = zm_ca_bundle(self->ca);
	SSL_CTX *s1 = zm_tls_ctx_new(true, self->dbkey, self->dbchain, b, "cluster.local", &e);
	SSL_CTX *c = zm_tls_ctx_new(false, self->key, self->chain, b, "cluster.local", &e);
	char *k2, *ch2;
	int sv[2];
	pthread_t th;
	struct side srv;
	SSL *ssl;
	char buf[4];

	ASSERT_OK_PTR(s1);
	ASSERT_OK_PTR(c);
	/* A connection on the first generation... */
	ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	srv = (struct side){ .ctx = s1, .fd = sv[0] };
	pthread_create(&th, NULL, serve, &srv);
	ssl = SSL_new(c);
	SSL_set_fd(ssl, sv[1]);
	ASSERT_EQ(SSL_connect(ssl), 1);
	/* ...a new certificate, a new context for new connections... */
	issue(self->ca, &self->db, 3600, &k2, &ch2);
	SSL_CTX *s2 = zm_tls_ctx_new(true, k2, ch2, b, "cluster.local", &e);
	ASSERT_OK_PTR(s2);
	SSL_CTX_free(s1);	/* the live SSL keeps its own reference */
	/* ...and the first connection still carries data. */
	EXPECT_EQ(SSL_read(ssl, buf, 1), 1);
	pthread_join(th, NULL);
	SSL_free(ssl);
	close(sv[1]);
	struct side a, z;
	EXPECT_OK(handshake(s2, c, &a, &z, &self->db, &e));
	SSL_CTX_free(s2);
	SSL_CTX_free(c);
	free(k2);
	free(ch2);
}

TEST(spiffe_limits_and_make)
{
	char buf[1024], ns[80], sa[300], td[300], out[ZM_SPIFFE_MAX];
	struct zm_spiffe_id id, id2;
	static const char *const bad[] = {
		"spiffe://cluster.local/ns/shop/sa/web/", "spiffe://cluster.local/ns/shop/sa/web?x=1",
		"spiffe://cluster.local/ns/shop/sa/web#f", "spiffe://cluster.local/ns/sh%6Fp/sa/web",
		"spiffe://cluster.local:443/ns/shop/sa/web", "spiffe://u@cluster.local/ns/shop/sa/web",
		"SPIFFE://cluster.local/ns/shop/sa/web", "spiffe://cluster.local//ns/shop/sa/web",
		"spiffe://cluster.local/ns/./sa/web", "spiffe://cluster.local/NS/shop/sa/web",
		"spiffe://cluster.local/ns/shop/sa/w b",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (!EXPECT_EQ(zm_spiffe_parse(bad[i], strlen(bad[i]), &id), -EINVAL))
			test_log("%s", bad[i]);
	/* Longest parts that fit: namespace 63, service account 253, trust domain 255. */
	memset(ns, 'n', 63);
	ns[63] = 0;
	memset(sa, 'S', 253);
	sa[253] = 0;
	memset(td, 't', 255);
	td[255] = 0;
	snprintf(buf, sizeof(buf), "spiffe://%s/ns/%s/sa/%s", td, ns, sa);
	ASSERT_OK(zm_spiffe_parse(buf, strlen(buf), &id));
	ASSERT_OK(zm_spiffe_format(&id, out, sizeof(out)));
	EXPECT_STREQ(out, buf);
	ASSERT_OK(zm_spiffe_make(&id2, td, ns, sa));
	EXPECT_TRUE(zm_spiffe_eq(&id, &id2));
	EXPECT_EQ(zm_spiffe_format(&id, out, 40), -ENOSPC);
	/* One more byte anywhere is refused. */
	snprintf(buf, sizeof(buf), "spiffe://%s/ns/%sn/sa/%s", td, ns, sa);
	EXPECT_EQ(zm_spiffe_parse(buf, strlen(buf), &id), -EINVAL);
	snprintf(buf, sizeof(buf), "spiffe://%s/ns/%s/sa/%sS", td, ns, sa);
	EXPECT_EQ(zm_spiffe_parse(buf, strlen(buf), &id), -EINVAL);
	snprintf(buf, sizeof(buf), "spiffe://%st/ns/%s/sa/%s", td, ns, sa);
	EXPECT_EQ(zm_spiffe_parse(buf, strlen(buf), &id), -EINVAL);
	EXPECT_EQ(zm_spiffe_make(&id2, "Bad", "a", "b"), -EINVAL);
	EXPECT_EQ(zm_spiffe_make(&id2, "td", "..", "b"), -EINVAL);
	EXPECT_EQ(zm_spiffe_make(&id2, "td", "a", ""), -EINVAL);
	/* Equality sees every field. */
	ASSERT_OK(zm_spiffe_make(&id, "cluster.local", "shop", "web"));
	ASSERT_OK(zm_spiffe_make(&id2, "cluster.local", "shop", "web2"));
	EXPECT_FALSE(zm_spiffe_eq(&id, &id2));
}
