/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test helpers shared by the identity/TLS tests: a CA in a temporary
 * directory, certificates issued by it, hand-minted certificates with chosen
 * (bad) extensions signed by the same root, and a handshake over a
 * socketpair with the server in a thread. Static inline: each test binary
 * uses a different subset.
 */
#ifndef ZM_TEST_PKI_H
#define ZM_TEST_PKI_H

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../harness/test.h"
#include "zmesh/bundle.h"
#include "zmesh/ca.h"
#include "zmesh/tls.h"

#define TD "cluster.local"

static inline char *pki_bio_str(BIO *b)
{
	char *data;
	long n = BIO_get_mem_data(b, &data);

	return strndup(data, (size_t)n);
}

static inline char *pki_cert_pem(X509 *c)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *s;

	PEM_write_bio_X509(b, c);
	s = pki_bio_str(b);
	BIO_free(b);
	return s;
}

static inline char *pki_key_pem(EVP_PKEY *k)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *s;

	PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
	s = pki_bio_str(b);
	BIO_free(b);
	return s;
}

static inline X509 *pki_cert(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);

	BIO_free(b);
	return x;
}

static inline EVP_PKEY *pki_key(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);

	BIO_free(b);
	return k;
}

static inline char *pki_read(const char *path)
{
	FILE *f = fopen(path, "re");
	static char buf[65536];
	size_t n;

	if (!f)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	return strdup(buf);
}

static inline void pki_id(struct zm_spiffe_id *id, const char *s)
{
	ASSERT_OK(zm_spiffe_parse(s, strlen(s), id));
}

/* A fresh directory, removed by the caller's teardown. Every fixture calls
 * this first, so it also ignores SIGPIPE: a refused peer closes mid-write. */
static inline void pki_tmpdir(char *out, size_t sz, const char *tag)
{
	signal(SIGPIPE, SIG_IGN);
	snprintf(out, sz, "/tmp/zm-tls-%s-%d-XXXXXX", tag, getpid());
	ASSERT_OK_PTR(mkdtemp(out));
}

static inline void pki_rmdir(const char *dir)
{
	if (dir && !strncmp(dir, "/tmp/zm-tls-", 12))
		test_sh(NULL, 0, "rm -rf '%s'", dir);
}

/* Key + chain for @id from @ca (the real signing path). */
static inline void pki_issue(struct zm_ca *ca, const struct zm_spiffe_id *id, unsigned ttl,
			     char **key, char **chain)
{
	struct zm_error e = { 0 };
	char *csr;

	ASSERT_OK(zm_key_csr(id, key, &csr, &e));
	if (!ASSERT_OK(zm_ca_sign(ca, csr, id, ttl, chain, &e)))
		test_log("%s", e.msg);
	free(csr);
}

/*
 * A leaf signed by @cakey/@cacert (self-signed when both NULL) with the
 * given extensions (name, value pairs, NULL-terminated), valid
 * [now+@nb, now+@na]. Key and certificate PEM, malloc'd.
 */
static inline void pki_mint(EVP_PKEY *cakey, X509 *cacert, const char *const *exts, long nb, long na,
			    char **key_pem, char **cert_pem)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *c = X509_new();
	X509V3_CTX ctx;

	X509_set_version(c, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(c), 1000 + (long)(random() % 100000));
	X509_set_issuer_name(c, X509_get_subject_name(cacert ? cacert : c));
	X509_gmtime_adj(X509_getm_notBefore(c), nb);
	X509_gmtime_adj(X509_getm_notAfter(c), na);
	X509_set_pubkey(c, k);
	for (; *exts; exts += 2) {
		X509_EXTENSION *x;

		X509V3_set_ctx(&ctx, cacert ? cacert : c, c, NULL, NULL, 0);
		x = X509V3_EXT_conf(NULL, &ctx, exts[0], exts[1]);
		ASSERT_OK_PTR(x);
		X509_add_ext(c, x, -1);
		X509_EXTENSION_free(x);
	}
	ASSERT_TRUE(X509_sign(c, cakey ? cakey : k, EVP_sha256()) > 0);
	*key_pem = pki_key_pem(k);
	*cert_pem = pki_cert_pem(c);
	EVP_PKEY_free(k);
	X509_free(c);
}

/* Add a raw URI SAN (any bytes, NULs included) to a minted certificate and re-sign it. */
static inline char *pki_with_raw_uri(const char *cert_pem, EVP_PKEY *cakey, const char *uri, size_t len)
{
	X509 *c = pki_cert(cert_pem);
	GENERAL_NAMES *gens = GENERAL_NAMES_new();
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_IA5STRING *s = ASN1_IA5STRING_new();
	char *out;

	ASN1_STRING_set(s, uri, (int)len);
	GENERAL_NAME_set0_value(gn, GEN_URI, s);
	sk_GENERAL_NAME_push(gens, gn);
	X509_add1_ext_i2d(c, NID_subject_alt_name, gens, 0, X509V3_ADD_REPLACE);
	GENERAL_NAMES_free(gens);
	X509_sign(c, cakey, EVP_sha256());
	out = pki_cert_pem(c);
	X509_free(c);
	return out;
}

/* One side of a handshake over a socketpair. */
struct pki_side {
	SSL_CTX *ctx;
	int fd;
	int rc;				/* zm_tls_handshake_fd's result */
	bool have_peer;
	struct zm_spiffe_id peer;
	char err[ZM_ERROR_MAX];
	char got[16];			/* what the other side sent after the handshake */
	bool keep;			/* leave ssl open (caller frees) */
	SSL *ssl;
};

static inline void *pki_serve(void *arg)
{
	struct pki_side *s = arg;
	struct zm_error e = { 0 };
	SSL *ssl = SSL_new(s->ctx);

	s->rc = zm_tls_handshake_fd(ssl, s->fd, 5000, &e);
	snprintf(s->err, sizeof(s->err), "%s", s->rc ? e.msg : "");
	if (s->rc == 0) {
		s->have_peer = zm_tls_peer_id(ssl, &s->peer) == 0;
		SSL_write(ssl, "srv", 3);
	}
	if (s->keep) {
		s->ssl = ssl;
		return NULL;
	}
	SSL_free(ssl);
	close(s->fd);
	ERR_clear_error();
	return NULL;
}

/*
 * Handshake @cctx (client) against @sctx (server, in a thread). If @want,
 * the client expects that server identity. Returns the client's result;
 * both sides' details in *srv and *cli. After a client-side success the
 * client reads what the server sent (so a server refusal shows up as
 * cli->got empty).
 */
static inline int pki_handshake(SSL_CTX *sctx, SSL_CTX *cctx, const struct zm_spiffe_id *want,
				struct pki_side *srv, struct pki_side *cli)
{
	struct zm_error e = { 0 };
	int sv[2];
	pthread_t th;
	SSL *ssl;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return -errno;
	*srv = (struct pki_side){ .ctx = sctx, .fd = sv[0] };
	*cli = (struct pki_side){ .ctx = cctx, .fd = sv[1] };
	pthread_create(&th, NULL, pki_serve, srv);
	ssl = SSL_new(cctx);
	if (want)
		zm_tls_expect_peer(ssl, want);
	cli->rc = zm_tls_handshake_fd(ssl, sv[1], 5000, &e);
	snprintf(cli->err, sizeof(cli->err), "%s", cli->rc ? e.msg : "");
	if (cli->rc == 0) {
		int n;

		cli->have_peer = zm_tls_peer_id(ssl, &cli->peer) == 0;
		n = SSL_read(ssl, cli->got, sizeof(cli->got) - 1);
		cli->got[n > 0 ? n : 0] = 0;
	}
	shutdown(sv[1], SHUT_RDWR);
	pthread_join(th, NULL);
	SSL_free(ssl);
	close(sv[1]);
	ERR_clear_error();
	return cli->rc;
}

#endif
