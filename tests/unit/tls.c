// SPDX-License-Identifier: Apache-2.0
/*
 * Mutual TLS with real OpenSSL handshakes: identities both ways, every kind
 * of bad peer certificate refused (SECURITY.md, "Identity and TLS"),
 * protocol limits, no resumption, memory BIOs, rotation of credentials
 * under a live connection, and the real `openssl s_client` against us.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/rand.h>

#include "pki.h"

FIXTURE(tls) {
	char dir[96];
	struct zm_ca *ca;
	struct zm_spiffe_id web, db;
	char *wkey, *wchain;	/* client: web */
	char *dkey, *dchain;	/* server: db */
	EVP_PKEY *rootkey;	/* to mint bad certificates under the trusted root */
	X509 *root;
	SSL_CTX *sctx, *cctx;
};

FIXTURE_SETUP(tls)
{
	struct zm_error e = { 0 };
	char path[160], *pem;

	pki_tmpdir(self->dir, sizeof(self->dir), "tls");
	ASSERT_OK(zm_ca_open(self->dir, &self->ca, &e));
	pki_id(&self->web, "spiffe://cluster.local/ns/shop/sa/web");
	pki_id(&self->db, "spiffe://cluster.local/ns/shop/sa/db");
	pki_issue(self->ca, &self->web, 3600, &self->wkey, &self->wchain);
	pki_issue(self->ca, &self->db, 3600, &self->dkey, &self->dchain);
	snprintf(path, sizeof(path), "%s/root-key.pem", self->dir);
	pem = pki_read(path);
	ASSERT_OK_PTR(pem);
	self->rootkey = pki_key(pem);
	free(pem);
	self->root = pki_cert(zm_ca_bundle(self->ca));
	self->sctx = zm_tls_ctx_new(true, self->dkey, self->dchain, zm_ca_bundle(self->ca), TD, &e);
	self->cctx = zm_tls_ctx_new(false, self->wkey, self->wchain, zm_ca_bundle(self->ca), TD, &e);
	ASSERT_OK_PTR(self->sctx);
	ASSERT_OK_PTR(self->cctx);
}

FIXTURE_TEARDOWN(tls)
{
	SSL_CTX_free(self->sctx);
	SSL_CTX_free(self->cctx);
	EVP_PKEY_free(self->rootkey);
	X509_free(self->root);
	zm_ca_free(self->ca);
	free(self->wkey);
	free(self->wchain);
	free(self->dkey);
	free(self->dchain);
	pki_rmdir(self->dir);
}

static int seen_cb(SSL *ssl, const struct zm_spiffe_id *peer, void *arg, char *why, size_t whysz)
{
	(void)ssl; (void)why; (void)whysz;
	*(struct zm_spiffe_id *)arg = *peer;
	return 0;
}

TEST_F(tls, mutual_tls_with_right_identities)
{
	struct pki_side srv, cli;
	struct zm_spiffe_id seen = { 0 };
	char id[ZM_SPIFFE_MAX];

	ASSERT_OK(zm_tls_ctx_set_peer_cb(self->sctx, seen_cb, &seen));
	ASSERT_OK(pki_handshake(self->sctx, self->cctx, &self->db, &srv, &cli));
	ASSERT_OK(srv.rc);
	EXPECT_STREQ(cli.got, "srv");
	/* The server's callback saw the client's verified identity during the handshake. */
	zm_spiffe_format(&seen, id, sizeof(id));
	EXPECT_STREQ(id, "spiffe://cluster.local/ns/shop/sa/web");
	EXPECT_TRUE(srv.have_peer && zm_spiffe_eq(&srv.peer, &self->web));
	EXPECT_TRUE(cli.have_peer && zm_spiffe_eq(&cli.peer, &self->db));
}

TEST_F(tls, client_refuses_a_server_with_another_identity)
{
	struct pki_side srv, cli;

	/* The client wants web; the server is db. */
	EXPECT_EQ(pki_handshake(self->sctx, self->cctx, &self->web, &srv, &cli), -EACCES);
	EXPECT_STREQ(cli.err, "TLS handshake: peer identity: want spiffe://cluster.local/ns/shop/sa/web, "
			      "got spiffe://cluster.local/ns/shop/sa/db");
	EXPECT_NE(srv.rc, 0);	/* the server got an alert, not a connection */
}

static int refuse_web_cb(SSL *ssl, const struct zm_spiffe_id *peer, void *arg, char *why, size_t whysz)
{
	(void)ssl; (void)arg;
	if (!strcmp(peer->sa, "web")) {
		snprintf(why, whysz, "service account %s may not connect", peer->sa);
		return -EPERM;
	}
	return 0;
}

TEST_F(tls, server_callback_can_refuse)
{
	struct pki_side srv, cli;

	ASSERT_OK(zm_tls_ctx_set_peer_cb(self->sctx, refuse_web_cb, NULL));
	pki_handshake(self->sctx, self->cctx, &self->db, &srv, &cli);
	EXPECT_EQ(srv.rc, -EACCES);
	EXPECT_STREQ(srv.err, "TLS handshake: service account web may not connect");
	EXPECT_STREQ(cli.got, "");	/* TLS 1.3: the client learns it on its first read */
}

/* Client certificates the server must refuse, minted under the trusted root unless said otherwise. */
#define GOOD_KU "critical,digitalSignature"
#define WEB_URI "URI:spiffe://cluster.local/ns/shop/sa/web"
static const struct bad_leaf {
	const char *name;
	const char *const exts[12];
	long nb, na;		/* validity relative to now */
	int special;		/* 1: another CA, 2: NUL in SAN */
	const char *why;	/* in the server's error */
} bad_leaves[] = {
	{ "expired", { "basicConstraints", "critical,CA:FALSE", "keyUsage", GOOD_KU, "extendedKeyUsage",
		       "serverAuth,clientAuth", "subjectAltName", WEB_URI, NULL }, -7200, -3600, 0,
	  "certificate chain: certificate has expired" },
	{ "not yet valid", { "keyUsage", GOOD_KU, "subjectAltName", WEB_URI, NULL }, 3600, 7200, 0,
	  "certificate chain: certificate is not yet valid" },
	{ "untrusted CA", { "keyUsage", GOOD_KU, "subjectAltName", WEB_URI, NULL }, -60, 3600, 1,
	  "certificate chain: " },
	{ "other trust domain", { "keyUsage", GOOD_KU, "subjectAltName",
				  "URI:spiffe://evil.example/ns/shop/sa/web", NULL }, -60, 3600, 0,
	  "peer trust domain evil.example is not ours (cluster.local)" },
	{ "two URI SANs", { "keyUsage", GOOD_KU, "subjectAltName",
			    WEB_URI ",URI:spiffe://cluster.local/ns/shop/sa/admin", NULL }, -60, 3600, 0,
	  "want exactly one URI SAN, found 2" },
	{ "DNS SAN only", { "keyUsage", GOOD_KU, "subjectAltName", "DNS:web.shop.svc", NULL }, -60, 3600, 0,
	  "want exactly one URI SAN, found 0" },
	{ "CA:TRUE leaf", { "basicConstraints", "critical,CA:TRUE", "keyUsage", GOOD_KU,
			    "subjectAltName", WEB_URI, NULL }, -60, 3600, 0,
	  "leaf certificate is a CA" },
	{ "keyCertSign", { "keyUsage", "critical,digitalSignature,keyCertSign", "subjectAltName", WEB_URI,
			   NULL }, -60, 3600, 0, "keyCertSign/cRLSign" },
	{ "cRLSign", { "keyUsage", "critical,digitalSignature,cRLSign", "subjectAltName", WEB_URI, NULL },
	  -60, 3600, 0, "keyCertSign/cRLSign" },
	{ "no digitalSignature", { "keyUsage", "critical,keyEncipherment", "subjectAltName", WEB_URI, NULL },
	  -60, 3600, 0, "certificate chain: unsuitable certificate purpose" },
	{ "EKU serverAuth only", { "keyUsage", GOOD_KU, "extendedKeyUsage", "serverAuth", "subjectAltName",
				   WEB_URI, NULL }, -60, 3600, 0, "certificate chain: unsuitable certificate purpose" },
	{ "EKU clientAuth only", { "keyUsage", GOOD_KU, "extendedKeyUsage", "clientAuth", "subjectAltName",
				   WEB_URI, NULL }, -60, 3600, 0, "extended key usage lacks serverAuth or clientAuth" },
	{ "NUL inside the SAN", { "keyUsage", GOOD_KU, NULL }, -60, 3600, 2,
	  "URI SAN is not a SPIFFE workload ID" },
	{ "not SPIFFE", { "keyUsage", GOOD_KU, "subjectAltName", "URI:https://cluster.local/ns/shop/sa/web",
			  NULL }, -60, 3600, 0, "URI SAN is not a SPIFFE workload ID" },
};

TEST_F(tls, server_refuses_bad_client_certificates)
{
	struct zm_error e = { 0 };
	EVP_PKEY *otherkey = EVP_EC_gen("P-256");
	X509 *other;
	char *k, *c;

	/* Another CA, with the same subject as ours: only the signature tells them apart. */
	{
		static const char *const caext[] = { "basicConstraints", "critical,CA:TRUE", "keyUsage",
						     "critical,keyCertSign,cRLSign", NULL };
		char *ok, *oc;

		pki_mint(NULL, NULL, caext, -60, 3600, &ok, &oc);
		other = pki_cert(oc);
		EVP_PKEY_free(otherkey);
		otherkey = pki_key(ok);
		X509_set_subject_name(other, X509_get_subject_name(self->root));
		X509_set_issuer_name(other, X509_get_subject_name(self->root));
		X509_sign(other, otherkey, EVP_sha256());
		free(ok);
		free(oc);
	}
	for (size_t i = 0; i < sizeof(bad_leaves) / sizeof(bad_leaves[0]); i++) {
		const struct bad_leaf *b = &bad_leaves[i];
		struct pki_side srv, cli;
		SSL_CTX *cctx;

		pki_mint(b->special == 1 ? otherkey : self->rootkey, b->special == 1 ? other : self->root,
			 b->exts, b->nb, b->na, &k, &c);
		if (b->special == 2) {
			static const char v[] = "spiffe://cluster.local/ns/shop/sa/web\0.evil.example";
			char *c2 = pki_with_raw_uri(c, self->rootkey, v, sizeof(v) - 1);

			free(c);
			c = c2;
		}
		cctx = zm_tls_ctx_new(false, k, c, zm_ca_bundle(self->ca), TD, &e);
		if (!EXPECT_OK_PTR(cctx)) {
			test_log("%s: %s", b->name, e.msg);
			goto next;
		}
		pki_handshake(self->sctx, cctx, &self->db, &srv, &cli);
		if (!EXPECT_NE(srv.rc, 0) || !EXPECT_STRSTR(srv.err, b->why))
			test_log("case: %s", b->name);
		EXPECT_STREQ(cli.got, "");	/* no application data reached the client */
		/* The same certificate as a server: the client refuses it too (both directions). */
		{
			SSL_CTX *sctx = zm_tls_ctx_new(true, k, c, zm_ca_bundle(self->ca), TD, &e);

			if (EXPECT_OK_PTR(sctx)) {
				int rc = pki_handshake(sctx, self->cctx, NULL, &srv, &cli);

				/* serverAuth-only is a server certificate's purpose; the leaf rules still refuse it. */
				if (!EXPECT_NE(rc, 0))
					test_log("case (client side): %s", b->name);
				SSL_CTX_free(sctx);
			}
		}
		SSL_CTX_free(cctx);
next:
		free(k);
		free(c);
	}
	X509_free(other);
	EVP_PKEY_free(otherkey);
}

TEST_F(tls, server_refuses_a_client_without_certificate)
{
	SSL_CTX *plain = SSL_CTX_new(TLS_client_method());
	struct pki_side srv, cli;

	SSL_CTX_set_verify(plain, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_alpn_protos(plain, (const unsigned char *)"\x02h2", 3);
	pki_handshake(self->sctx, plain, NULL, &srv, &cli);
	EXPECT_EQ(srv.rc, -EPROTO);
	EXPECT_STRSTR(srv.err, "peer did not return a certificate");
	EXPECT_STREQ(cli.got, "");
	SSL_CTX_free(plain);
}

/* A client context from our material, then loosened in one way. */
static SSL_CTX *loose_client(struct zm_fixture_tls *self)
{
	struct zm_error e = { 0 };
	SSL_CTX *c = zm_tls_ctx_new(false, self->wkey, self->wchain, zm_ca_bundle(self->ca), TD, &e);

	SSL_CTX_set_min_proto_version(c, TLS1_VERSION);
	SSL_CTX_clear_options(c, SSL_OP_NO_TICKET);
	return c;
}

TEST_F(tls, tls12_client_is_refused)
{
	SSL_CTX *c = loose_client(self);
	struct pki_side srv, cli;

	SSL_CTX_set_max_proto_version(c, TLS1_2_VERSION);
	SSL_CTX_set_cipher_list(c, "ECDHE-ECDSA-AES128-GCM-SHA256");
	EXPECT_NE(pki_handshake(self->sctx, c, NULL, &srv, &cli), 0);
	EXPECT_EQ(srv.rc, -EPROTO);
	EXPECT_STRSTR(srv.err, "unsupported protocol");
	SSL_CTX_free(c);
}

TEST_F(tls, non_gcm_suite_is_refused)
{
	SSL_CTX *c = loose_client(self);
	struct pki_side srv, cli;

	ASSERT_EQ(SSL_CTX_set_ciphersuites(c, "TLS_CHACHA20_POLY1305_SHA256"), 1);
	EXPECT_NE(pki_handshake(self->sctx, c, NULL, &srv, &cli), 0);
	EXPECT_EQ(srv.rc, -EPROTO);
	EXPECT_STRSTR(srv.err, "no shared cipher");
	/* And our client does not offer it: a server that only has ChaCha20 gets nowhere. */
	SSL_CTX *s = SSL_CTX_new(TLS_server_method());
	EVP_PKEY *k = pki_key(self->dkey);
	X509 *x = pki_cert(self->dchain);

	SSL_CTX_use_PrivateKey(s, k);
	SSL_CTX_use_certificate(s, x);
	SSL_CTX_set_ciphersuites(s, "TLS_CHACHA20_POLY1305_SHA256");
	EXPECT_NE(pki_handshake(s, self->cctx, NULL, &srv, &cli), 0);
	EXPECT_STRSTR(cli.err, "handshake failure");
	EVP_PKEY_free(k);
	X509_free(x);
	SSL_CTX_free(s);
	SSL_CTX_free(c);
}

TEST_F(tls, alpn_h2_is_required)
{
	SSL_CTX *c = loose_client(self);
	struct pki_side srv, cli;

	/* No ALPN at all. */
	SSL_CTX_set_alpn_protos(c, NULL, 0);
	pki_handshake(self->sctx, c, NULL, &srv, &cli);
	EXPECT_STREQ(srv.err, "TLS handshake: client offered no ALPN (want h2)");
	/* HTTP/1.1 only. */
	SSL_CTX_set_alpn_protos(c, (const unsigned char *)"\x08http/1.1", 9);
	pki_handshake(self->sctx, c, NULL, &srv, &cli);
	EXPECT_STREQ(srv.err, "TLS handshake: client did not offer ALPN h2");
	/* A server that ignores ALPN: our client refuses it. */
	SSL_CTX *s = SSL_CTX_new(TLS_server_method());
	EVP_PKEY *k = pki_key(self->dkey);
	X509 *x = pki_cert(self->dchain);

	SSL_CTX_use_PrivateKey(s, k);
	SSL_CTX_use_certificate(s, x);
	EXPECT_EQ(pki_handshake(s, self->cctx, NULL, &srv, &cli), -EACCES);
	EXPECT_STREQ(cli.err, "TLS handshake: server did not select ALPN h2");
	EVP_PKEY_free(k);
	X509_free(x);
	SSL_CTX_free(s);
	SSL_CTX_free(c);
}

/* Connect, read what the server sends (the ticket arrives with it), keep the session. */
static int connect_with(SSL_CTX *sctx, SSL_CTX *cctx, SSL_SESSION *offer, SSL_SESSION **got, int *reused)
{
	struct pki_side srv = { .ctx = sctx };
	struct zm_error e = { 0 };
	int sv[2], rc;
	pthread_t th;
	SSL *ssl;
	char buf[8];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		return -errno;
	srv.fd = sv[0];
	pthread_create(&th, NULL, pki_serve, &srv);
	ssl = SSL_new(cctx);
	if (offer)
		SSL_set_session(ssl, offer);
	rc = zm_tls_handshake_fd(ssl, sv[1], 5000, &e);
	if (rc)
		test_log("client: %s", e.msg);
	if (rc == 0 && SSL_read(ssl, buf, sizeof(buf)) <= 0)
		rc = -EIO;
	*reused = SSL_session_reused(ssl);
	SSL_shutdown(ssl);	/* else SSL_free marks the session not resumable */
	*got = SSL_get1_session(ssl);
	shutdown(sv[1], SHUT_RDWR);
	pthread_join(th, NULL);
	SSL_free(ssl);
	close(sv[1]);
	ERR_clear_error();
	return rc ? rc : srv.rc;
}

TEST_F(tls, no_session_resumption)
{
	SSL_CTX *c = loose_client(self);	/* a client that would resume if it could */
	SSL_SESSION *s1 = NULL, *s2 = NULL;
	int reused = -1;

	SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT);
	ASSERT_OK(connect_with(self->sctx, c, NULL, &s1, &reused));
	ASSERT_OK_PTR(s1);
	EXPECT_FALSE(SSL_SESSION_is_resumable(s1));	/* no ticket was issued */
	ASSERT_OK(connect_with(self->sctx, c, s1, &s2, &reused));
	EXPECT_EQ(reused, 0);				/* a full handshake */
	SSL_SESSION_free(s1);
	SSL_SESSION_free(s2);

	/* Control: the same client against a server that allows tickets does resume,
	 * so the check above would catch a regression. Even then our handshake
	 * refuses the resumed connection: no certificate was verified on it. */
	struct zm_error e = { 0 };
	SSL_CTX *loose = zm_tls_ctx_new(true, self->dkey, self->dchain, zm_ca_bundle(self->ca), TD, &e);

	ASSERT_OK_PTR(loose);
	SSL_CTX_clear_options(loose, SSL_OP_NO_TICKET);
	SSL_CTX_set_num_tickets(loose, 1);
	SSL_CTX_set_session_cache_mode(loose, SSL_SESS_CACHE_SERVER);
	SSL_CTX_set_session_id_context(loose, (const unsigned char *)"t", 1);
	ASSERT_OK(connect_with(loose, c, NULL, &s1, &reused));
	EXPECT_TRUE(SSL_SESSION_is_resumable(s1));
	EXPECT_EQ(connect_with(loose, c, s1, &s2, &reused), -EACCES);
	EXPECT_EQ(reused, 1);
	SSL_SESSION_free(s1);
	SSL_SESSION_free(s2);
	SSL_CTX_free(loose);
	SSL_CTX_free(c);
}

/* Move whatever one side wrote to the other; returns bytes moved. */
static size_t pump(SSL *from, SSL *to)
{
	char buf[4096];
	size_t n, total = 0;

	while ((n = zm_tls_net_read(from, buf, sizeof(buf))) > 0) {
		ASSERT_OK(zm_tls_net_write(to, buf, n));
		total += n;
	}
	return total;
}

TEST_F(tls, handshake_over_memory_bios)
{
	struct zm_tls_creds *sc, *cc;
	struct zm_error e = { 0 };
	SSL *s, *c;
	int rs = 0, rc = 0;
	char buf[16];

	ASSERT_OK(zm_tls_creds_new(true, TD, &sc));
	ASSERT_OK(zm_tls_creds_new(false, TD, &cc));
	ASSERT_OK(zm_tls_creds_update(sc, self->dkey, self->dchain, zm_ca_bundle(self->ca), &e));
	ASSERT_OK(zm_tls_creds_update(cc, self->wkey, self->wchain, zm_ca_bundle(self->ca), &e));
	s = zm_tls_creds_ssl(sc, &e);
	c = zm_tls_creds_ssl(cc, &e);
	ASSERT_OK_PTR(s);
	ASSERT_OK_PTR(c);
	ASSERT_OK(zm_tls_use_membio(s));
	ASSERT_OK(zm_tls_use_membio(c));
	ASSERT_OK(zm_tls_expect_peer(c, &self->db));
	for (int i = 0; i < 10 && (rs != 1 || rc != 1); i++) {
		if (rc != 1)
			rc = zm_tls_handshake(c, &e);
		ASSERT_GE(rc, 0);
		pump(c, s);
		if (rs != 1)
			rs = zm_tls_handshake(s, &e);
		ASSERT_GE(rs, 0);
		pump(s, c);
	}
	ASSERT_EQ(rc, 1);
	ASSERT_EQ(rs, 1);
	EXPECT_OK(zm_tls_check_peer(s, &self->web, &e));
	EXPECT_OK(zm_tls_check_peer(c, &self->db, &e));
	EXPECT_LT(zm_tls_check_peer(s, &self->db, &e), 0);
	EXPECT_STREQ(e.msg, "peer identity: want spiffe://cluster.local/ns/shop/sa/db, "
			    "got spiffe://cluster.local/ns/shop/sa/web");
	EXPECT_EQ(SSL_write(c, "hello", 5), 5);
	pump(c, s);
	EXPECT_EQ(SSL_read(s, buf, sizeof(buf)), 5);
	SSL_free(s);
	SSL_free(c);

	/* Garbage from the network: a clean error, no crash. */
	s = zm_tls_creds_ssl(sc, &e);
	ASSERT_OK(zm_tls_use_membio(s));
	ASSERT_OK(zm_tls_net_write(s, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27));
	EXPECT_EQ(zm_tls_handshake(s, &e), -EPROTO);
	EXPECT_STRSTR(e.msg, "TLS handshake: ");
	SSL_free(s);
	/* Truncated input then EOF: not a hang. */
	s = zm_tls_creds_ssl(sc, &e);
	ASSERT_OK(zm_tls_use_membio(s));
	ASSERT_OK(zm_tls_net_write(s, "\x16\x03\x01\x02\x00\x01", 6));
	EXPECT_EQ(zm_tls_handshake(s, &e), 0);
	zm_tls_net_eof(s);
	EXPECT_LT(zm_tls_handshake(s, &e), 0);
	SSL_free(s);
	zm_tls_creds_free(sc);
	zm_tls_creds_free(cc);
}

static long serial_of(SSL *ssl)
{
	X509 *x = SSL_get0_peer_certificate(ssl);

	return x ? ASN1_INTEGER_get(X509_get0_serialNumber(x)) : -1;
}

/*
 * A first connection stays up across a swap of key and certificate; the next
 * handshake uses the new ones. Serials are compared through hand-minted
 * certificates so each generation is recognisable.
 */
TEST_F(tls, credentials_swap_keeps_live_connections)
{
	static const char *const exts[] = { "keyUsage", GOOD_KU, "extendedKeyUsage", "serverAuth,clientAuth",
					    "subjectAltName", "URI:spiffe://cluster.local/ns/shop/sa/db", NULL };
	struct zm_tls_creds *sc;
	struct zm_error e = { 0 };
	char *k1, *c1, *k2, *c2;
	struct pki_side srv = { 0 };
	int sv[2];
	pthread_t th;
	SSL *ssl, *ssl2;
	SSL_CTX *gen1;
	char buf[8];
	long s1, s2;

	pki_mint(self->rootkey, self->root, exts, -60, 3600, &k1, &c1);
	pki_mint(self->rootkey, self->root, exts, -60, 3600, &k2, &c2);
	ASSERT_OK(zm_tls_creds_new(true, TD, &sc));
	EXPECT_EQ(zm_tls_creds_generation(sc), 0);
	EXPECT_EQ(zm_tls_creds_ssl(sc, &e), NULL);
	ASSERT_OK(zm_tls_creds_update(sc, k1, c1, zm_ca_bundle(self->ca), &e));
	s1 = ASN1_INTEGER_get(X509_get0_serialNumber(SSL_CTX_get0_certificate(gen1 = zm_tls_creds_ctx(sc))));
	SSL_CTX_free(gen1);
	/* Connection 1 on generation 1, kept open. */
	ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	gen1 = zm_tls_creds_ctx(sc);
	srv = (struct pki_side){ .ctx = gen1, .fd = sv[0], .keep = true };
	pthread_create(&th, NULL, pki_serve, &srv);
	ssl = SSL_new(self->cctx);
	ASSERT_OK(zm_tls_handshake_fd(ssl, sv[1], 5000, &e));
	pthread_join(th, NULL);
	SSL_CTX_free(gen1);	/* only the live SSL holds generation 1 now */
	ASSERT_OK(srv.rc);
	EXPECT_EQ(serial_of(ssl), s1);
	/* Swap: new key and certificate; a bad update is refused and changes nothing. */
	EXPECT_LT(zm_tls_creds_update(sc, k1, c2, NULL, &e), 0);
	EXPECT_STRSTR(e.msg, "does not match");
	EXPECT_EQ(zm_tls_creds_generation(sc), 1);
	ASSERT_OK(zm_tls_creds_update(sc, k2, c2, NULL, &e));
	EXPECT_EQ(zm_tls_creds_generation(sc), 2);
	/* A new connection gets the new certificate... */
	struct pki_side a, z;
	SSL_CTX *gen2 = zm_tls_creds_ctx(sc);

	s2 = ASN1_INTEGER_get(X509_get0_serialNumber(SSL_CTX_get0_certificate(gen2)));
	EXPECT_NE(s1, s2);
	{
		int p[2];
		pthread_t t2;

		ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, p));
		a = (struct pki_side){ .ctx = gen2, .fd = p[0] };
		pthread_create(&t2, NULL, pki_serve, &a);
		ssl2 = SSL_new(self->cctx);
		EXPECT_OK(zm_tls_handshake_fd(ssl2, p[1], 5000, &e));
		EXPECT_EQ(serial_of(ssl2), s2);
		EXPECT_EQ(SSL_read(ssl2, buf, 3), 3);
		pthread_join(t2, NULL);
		SSL_free(ssl2);
		close(p[1]);
	}
	(void)z;
	/* ...while connection 1 still carries data both ways on generation 1. */
	EXPECT_EQ(SSL_read(ssl, buf, 3), 3);
	EXPECT_EQ(SSL_write(ssl, "abc", 3), 3);
	EXPECT_EQ(SSL_read(srv.ssl, buf, 3), 3);
	EXPECT_EQ(SSL_write(srv.ssl, "xyz", 3), 3);
	EXPECT_EQ(SSL_read(ssl, buf, 3), 3);
	EXPECT_EQ(memcmp(buf, "xyz", 3), 0);
	SSL_free(srv.ssl);
	close(sv[0]);
	SSL_free(ssl);
	close(sv[1]);
	SSL_CTX_free(gen2);
	zm_tls_creds_free(sc);
	free(k1);
	free(c1);
	free(k2);
	free(c2);
}

/* After a root leaves the bundle, a live connection from it is told to drain. */
TEST_F(tls, recheck_after_bundle_change)
{
	struct zm_error e = { 0 };
	struct pki_side srv = { 0 };
	char *oldroot = strdup(zm_ca_bundle(self->ca)), *k, *c, *both, *newroot;
	int sv[2];
	pthread_t th;
	SSL *ssl;

	ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	srv = (struct pki_side){ .ctx = self->sctx, .fd = sv[0], .keep = true };
	pthread_create(&th, NULL, pki_serve, &srv);
	ssl = SSL_new(self->cctx);
	ASSERT_OK(zm_tls_handshake_fd(ssl, sv[1], 5000, &e));
	pthread_join(th, NULL);
	ASSERT_OK(srv.rc);
	EXPECT_OK(zm_tls_recheck(srv.ssl, self->sctx, &e));
	EXPECT_OK(zm_tls_recheck(ssl, self->cctx, &e));
	/* Rotate: a new root, trusted alongside, then the old one removed. */
	ASSERT_OK(zm_ca_root_prepare(self->ca, &e));
	ASSERT_OK(zm_ca_root_activate(self->ca, &e));
	both = strdup(zm_ca_bundle(self->ca));
	pki_issue(self->ca, &self->db, 3600, &k, &c);
	SSL_CTX *overlap = zm_tls_ctx_new(true, k, c, both, TD, &e);
	ASSERT_OK_PTR(overlap);
	EXPECT_OK(zm_tls_recheck(srv.ssl, overlap, &e));	/* old root still trusted */
	ASSERT_OK(zm_ca_root_retire(self->ca, &e));
	newroot = strdup(zm_ca_bundle(self->ca));
	SSL_CTX *after = zm_tls_ctx_new(true, k, c, newroot, TD, &e);
	ASSERT_OK_PTR(after);
	EXPECT_EQ(zm_tls_recheck(srv.ssl, after, &e), -EACCES);
	EXPECT_STRSTR(e.msg, "certificate chain: unable to get local issuer certificate");
	SSL_free(srv.ssl);
	SSL_free(ssl);
	close(sv[0]);
	close(sv[1]);
	SSL_CTX_free(overlap);
	SSL_CTX_free(after);
	free(oldroot);
	free(both);
	free(newroot);
	free(k);
	free(c);
}

TEST_F(tls, bad_material_is_refused_with_a_reason)
{
	struct zm_error e = { 0 };

	EXPECT_EQ(zm_tls_ctx_new(true, "junk", self->dchain, zm_ca_bundle(self->ca), TD, &e), NULL);
	EXPECT_STRSTR(e.msg, "private key");
	EXPECT_EQ(zm_tls_ctx_new(true, self->wkey, self->dchain, zm_ca_bundle(self->ca), TD, &e), NULL);
	EXPECT_STRSTR(e.msg, "does not match");
	EXPECT_EQ(zm_tls_ctx_new(true, self->dkey, self->dchain, "", TD, &e), NULL);
	EXPECT_STRSTR(e.msg, "no certificate");
	/* A leaf is not a root. */
	EXPECT_EQ(zm_tls_ctx_new(true, self->dkey, self->dchain, self->wchain, TD, &e), NULL);
	EXPECT_STRSTR(e.msg, "not a CA");
	EXPECT_EQ(zm_tls_ctx_new(true, self->dkey, self->dchain, zm_ca_bundle(self->ca), "Bad TD", &e), NULL);
	EXPECT_STRSTR(e.msg, "trust domain");
}

/* ---- the real openssl s_client against a server built from our context ---- */

struct listener {
	SSL_CTX *ctx;
	int fd, n;
	int rc[4];
	char err[4][ZM_ERROR_MAX];
	struct zm_spiffe_id peer[4];
};

static void *accept_loop(void *arg)
{
	struct listener *l = arg;

	for (int i = 0; i < l->n; i++) {
		struct zm_error e = { 0 };
		int fd = accept(l->fd, NULL, NULL);
		SSL *ssl;

		if (fd < 0) {
			l->rc[i] = -errno;
			continue;
		}
		ssl = SSL_new(l->ctx);
		l->rc[i] = zm_tls_handshake_fd(ssl, fd, 5000, &e);
		snprintf(l->err[i], sizeof(l->err[i]), "%s", e.msg);
		if (l->rc[i] == 0) {
			zm_tls_peer_id(ssl, &l->peer[i]);
			SSL_write(ssl, "hello from zmesh\n", 17);
			SSL_shutdown(ssl);
		}
		SSL_free(ssl);
		close(fd);
		ERR_clear_error();
	}
	return NULL;
}

TEST_F(tls, openssl_s_client)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	struct listener l = { .ctx = self->sctx, .n = 3 };
	char path[160], out[65536], id[ZM_SPIFFE_MAX];
	pthread_t th;
	int port;
	FILE *f;

	if (test_sh(NULL, 0, "command -v openssl >/dev/null") != 0)
		SKIP("no openssl binary");
	/* Files for s_client: our CA's bundle, web's key and chain. */
#define PUT(name, data) do { snprintf(path, sizeof(path), "%s/%s", self->dir, name); \
		f = fopen(path, "w"); ASSERT_OK_PTR(f); fputs(data, f); fclose(f); } while (0)
	PUT("bundle.pem", zm_ca_bundle(self->ca));
	PUT("web-key.pem", self->wkey);
	PUT("web-chain.pem", self->wchain);
	l.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_GE(l.fd, 0);
	ASSERT_OK(bind(l.fd, (struct sockaddr *)&a, sizeof(a)));
	ASSERT_OK(listen(l.fd, 4));
	ASSERT_OK(getsockname(l.fd, (struct sockaddr *)&a, &alen));
	port = ntohs(a.sin_port);
	pthread_create(&th, NULL, accept_loop, &l);

	/* 1: no client certificate -> the server refuses. */
	test_sh(out, sizeof(out), "cd %s && timeout 10 openssl s_client -connect 127.0.0.1:%d -tls1_3 "
		"-alpn h2 -CAfile bundle.pem -verify_return_error -ign_eof </dev/null", self->dir, port);
	/* 2: the right certificate -> handshake ok both ways. */
	int rc = test_sh(out, sizeof(out), "cd %s && timeout 10 openssl s_client -connect 127.0.0.1:%d -tls1_3 "
			 "-alpn h2 -CAfile bundle.pem -verify_return_error -cert web-chain.pem "
			 "-key web-key.pem -ign_eof </dev/null", self->dir, port);
	EXPECT_EQ(rc, 0);
	EXPECT_STRSTR(out, "Verify return code: 0 (ok)");
	EXPECT_STRSTR(out, "ALPN protocol: h2");
	EXPECT_STRSTR(out, "TLSv1.3");
	EXPECT_STRSTR(out, "hello from zmesh");
	/* 3: TLS 1.2 -> refused. */
	rc = test_sh(out, sizeof(out), "cd %s && timeout 10 openssl s_client -connect 127.0.0.1:%d -tls1_2 "
		     "-alpn h2 -CAfile bundle.pem -cert web-chain.pem -key web-key.pem </dev/null",
		     self->dir, port);
	EXPECT_NE(rc, 0);
	pthread_join(th, NULL);
	close(l.fd);
	EXPECT_NE(l.rc[0], 0);
	EXPECT_STRSTR(l.err[0], "peer did not return a certificate");
	EXPECT_EQ(l.rc[1], 0);
	zm_spiffe_format(&l.peer[1], id, sizeof(id));
	EXPECT_STREQ(id, "spiffe://cluster.local/ns/shop/sa/web");
	EXPECT_NE(l.rc[2], 0);
	EXPECT_STRSTR(l.err[2], "unsupported protocol");
}
