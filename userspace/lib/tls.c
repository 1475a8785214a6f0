// SPDX-License-Identifier: Apache-2.0
/* mTLS contexts for SPIFFE workload identities. */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zmesh/tls.h"

/* Per-context: our trust domain. Per-connection: the verdict and why. */
struct verdict {
	bool ok;
	struct zm_spiffe_id id;
	char why[256];
};

static int ctx_td_idx = -1, ssl_verdict_idx = -1;

static void free_verdict(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
	free(ptr);
}

static void free_str(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
	free(ptr);
}

static struct verdict *verdict_of(SSL *ssl, bool create)
{
	struct verdict *v = SSL_get_ex_data(ssl, ssl_verdict_idx);

	if (!v && create) {
		v = calloc(1, sizeof(*v));
		if (v)
			SSL_set_ex_data(ssl, ssl_verdict_idx, v);
	}
	return v;
}

/* OpenSSL verified the chain (preverify); we add the SVID rules at the leaf. */
static int verify_cb(int preverify, X509_STORE_CTX *xs)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct verdict *v = verdict_of(ssl, true);
	const char *td = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_td_idx);

	if (!v)
		return 0;
	if (!preverify) {
		snprintf(v->why, sizeof(v->why), "certificate chain: %s",
			 X509_verify_cert_error_string(X509_STORE_CTX_get_error(xs)));
		return 0;
	}
	if (X509_STORE_CTX_get_error_depth(xs) != 0)
		return 1;
	if (zm_svid_check(X509_STORE_CTX_get_current_cert(xs), &v->id, v->why, sizeof(v->why)))
		return 0;
	if (td && strcmp(v->id.td, td)) {
		snprintf(v->why, sizeof(v->why), "peer trust domain %s is not ours (%s)", v->id.td, td);
		return 0;
	}
	v->ok = true;
	return 1;
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned int inlen, void *arg)
{
	(void)ssl; (void)arg;
	for (unsigned int i = 0; i < inlen;) {
		unsigned int n = in[i];

		if (i + 1 + n > inlen)
			break;
		if (n == 2 && !memcmp(in + i + 1, "h2", 2)) {
			*out = in + i + 1;
			*outlen = 2;
			return SSL_TLSEXT_ERR_OK;
		}
		i += 1 + n;
	}
	return SSL_TLSEXT_ERR_ALERT_FATAL;	/* HBONE is HTTP/2 or nothing */
}

SSL_CTX *zm_tls_ctx_new(bool server, const char *key_pem, const char *chain_pem,
			const char *bundle_pem, const char *td, struct zm_error *e)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	X509_STORE *store;
	BIO *b = NULL;
	EVP_PKEY *key = NULL;
	X509 *x;
	int n = 0;
	char err[256];

	if (ctx_td_idx < 0) {
		ctx_td_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_str);
		ssl_verdict_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, free_verdict);
	}
	if (!ctx)
		goto ssl_fail;
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
	if (!SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384"))
		goto ssl_fail;
	/* No resumption: a resumed session would outlive a change of trust. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_cb);
	/* A server checks client certificates for clientAuth, and vice versa. */
	SSL_CTX_set_purpose(ctx, server ? X509_PURPOSE_SSL_CLIENT : X509_PURPOSE_SSL_SERVER);
	if (server) {
		SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
	} else if (SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x02h2", 3)) {
		goto ssl_fail;
	}
	SSL_CTX_set_ex_data(ctx, ctx_td_idx, strdup(td));

	/* Key and chain (leaf first). */
	b = BIO_new_mem_buf(key_pem, -1);
	key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	if (!key || SSL_CTX_use_PrivateKey(ctx, key) != 1)
		goto ssl_fail;
	b = BIO_new_mem_buf(chain_pem, -1);
	while (b && (x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
		int ok = n == 0 ? SSL_CTX_use_certificate(ctx, x) : SSL_CTX_add1_chain_cert(ctx, x);

		X509_free(x);
		if (ok != 1)
			goto ssl_fail;
		n++;
	}
	BIO_free(b);
	b = NULL;
	ERR_clear_error();	/* the PEM reader's end of input */
	if (!n || SSL_CTX_check_private_key(ctx) != 1) {
		zm_error_set(e, EINVAL, "TLS: no certificate, or the key does not match it");
		goto fail;
	}
	/* The bundle: only these roots, not the system's. */
	store = X509_STORE_new();
	b = BIO_new_mem_buf(bundle_pem, -1);
	n = 0;
	while (b && store && (x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
		X509_STORE_add_cert(store, x);
		X509_free(x);
		n++;
	}
	BIO_free(b);
	b = NULL;
	ERR_clear_error();
	if (!n) {
		X509_STORE_free(store);
		zm_error_set(e, EINVAL, "TLS: empty trust bundle");
		goto fail;
	}
	SSL_CTX_set_cert_store(ctx, store);
	EVP_PKEY_free(key);
	return ctx;
ssl_fail:
	ERR_error_string_n(ERR_get_error(), err, sizeof(err));
	ERR_clear_error();
	zm_error_set(e, EINVAL, "TLS: %s", err);
fail:
	BIO_free(b);
	EVP_PKEY_free(key);
	SSL_CTX_free(ctx);
	return NULL;
}

int zm_tls_peer_id(SSL *ssl, struct zm_spiffe_id *out)
{
	struct verdict *v = verdict_of(ssl, false);

	if (!v || !v->ok || SSL_get_verify_result(ssl) != X509_V_OK)
		return -EACCES;
	*out = v->id;
	return 0;
}

int zm_tls_check_peer(SSL *ssl, const struct zm_spiffe_id *want, struct zm_error *e)
{
	struct zm_spiffe_id got;
	char w[ZM_SPIFFE_MAX], g[ZM_SPIFFE_MAX];

	zm_spiffe_format(want, w, sizeof(w));
	if (zm_tls_peer_id(ssl, &got))
		return zm_error_set(e, EACCES, "peer identity: want %s, got no verified identity", w);
	if (!zm_spiffe_eq(&got, want)) {
		zm_spiffe_format(&got, g, sizeof(g));
		return zm_error_set(e, EACCES, "peer identity: want %s, got %s", w, g);
	}
	return 0;
}

const char *zm_tls_verify_error(SSL *ssl)
{
	struct verdict *v = verdict_of(ssl, false);

	return v ? v->why : "";
}
