// SPDX-License-Identifier: Apache-2.0
/* mTLS contexts for SPIFFE workload identities; see tls.h for the contract. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "zmesh/bundle.h"
#include "zmesh/tls.h"

/* Per context: who we are and what we accept. */
struct ctx_conf {
	bool server;
	char td[ZM_TD_MAX + 1];
	zm_tls_peer_cb cb;
	void *cb_arg;
};

/* Per connection: the identity we want (client), the verdict and why. */
struct verdict {
	bool ok, want_set, started;
	struct zm_spiffe_id id, want;
	char why[ZM_ERROR_MAX];
};

static int ctx_conf_idx = -1, ssl_verdict_idx = -1;
static pthread_once_t idx_once = PTHREAD_ONCE_INIT;

static void free_ex(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
	free(ptr);
}

static void make_indexes(void)
{
	ctx_conf_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_ex);
	ssl_verdict_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, free_ex);
}

static struct verdict *verdict_of(SSL *ssl, bool create)
{
	struct verdict *v;

	pthread_once(&idx_once, make_indexes);
	v = SSL_get_ex_data(ssl, ssl_verdict_idx);
	if (!v && create) {
		v = calloc(1, sizeof(*v));
		if (v && !SSL_set_ex_data(ssl, ssl_verdict_idx, v)) {
			free(v);
			v = NULL;
		}
	}
	return v;
}

static struct ctx_conf *conf_of(SSL_CTX *ctx)
{
	pthread_once(&idx_once, make_indexes);
	return SSL_CTX_get_ex_data(ctx, ctx_conf_idx);
}

static bool alpn_is_h2(SSL *ssl)
{
	const unsigned char *p;
	unsigned int n;

	SSL_get0_alpn_selected(ssl, &p, &n);
	return n == 2 && !memcmp(p, "h2", 2);
}

/*
 * OpenSSL has checked the chain link by link (preverify, with the purpose
 * set on the context); at the leaf we add the X509-SVID rules, the trust
 * domain, the client's expected identity and the server's callback.
 */
static int verify_cb(int preverify, X509_STORE_CTX *xs)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct verdict *v = verdict_of(ssl, true);
	struct ctx_conf *cf = conf_of(SSL_get_SSL_CTX(ssl));
	struct zm_error e;
	int rc;

	if (!v || !cf)
		return 0;
	v->ok = false;
	if (!preverify) {
		snprintf(v->why, sizeof(v->why), "certificate chain: %s (depth %d)",
			 X509_verify_cert_error_string(X509_STORE_CTX_get_error(xs)),
			 X509_STORE_CTX_get_error_depth(xs));
		return 0;
	}
	if (X509_STORE_CTX_get_error_depth(xs) != 0)
		return 1;
	if (zm_svid_check(X509_STORE_CTX_get_current_cert(xs), &v->id, v->why, sizeof(v->why)))
		goto refuse;
	if (strcmp(v->id.td, cf->td)) {
		snprintf(v->why, sizeof(v->why), "peer trust domain %s is not ours (%s)", v->id.td, cf->td);
		goto refuse;
	}
	/* TLS 1.3 sends EncryptedExtensions (ALPN) before the certificate. */
	if (!cf->server && !alpn_is_h2(ssl)) {
		snprintf(v->why, sizeof(v->why), "server did not select ALPN h2");
		goto refuse;
	}
	if (v->want_set && zm_svid_expect(&v->want, &v->id, &e)) {
		snprintf(v->why, sizeof(v->why), "%s", e.msg);
		goto refuse;
	}
	if (cf->cb) {
		v->why[0] = 0;
		rc = cf->cb(ssl, &v->id, cf->cb_arg, v->why, sizeof(v->why));
		if (rc) {
			if (!v->why[0])
				snprintf(v->why, sizeof(v->why), "peer refused by policy (%d)", rc);
			goto refuse;
		}
	}
	v->why[0] = 0;
	v->ok = true;
	return 1;
refuse:
	X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
	return 0;
}

/* A client offering no ALPN at all never reaches alpn_select: refuse it here. */
static int client_hello_cb(SSL *ssl, int *al, void *arg)
{
	const unsigned char *p;
	size_t n;

	(void)arg;
	if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &p, &n)) {
		struct verdict *v = verdict_of(ssl, true);

		if (v)
			snprintf(v->why, sizeof(v->why), "client offered no ALPN (want h2)");
		*al = SSL_AD_NO_APPLICATION_PROTOCOL;
		return SSL_CLIENT_HELLO_ERROR;
	}
	return SSL_CLIENT_HELLO_SUCCESS;
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned int inlen, void *arg)
{
	struct verdict *v;

	(void)arg;
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
	v = verdict_of(ssl, true);
	if (v)
		snprintf(v->why, sizeof(v->why), "client did not offer ALPN h2");
	return SSL_TLSEXT_ERR_ALERT_FATAL;	/* HBONE is HTTP/2 or nothing */
}

static int ssl_fail(struct zm_error *e, const char *what)
{
	char err[256];

	ERR_error_string_n(ERR_get_error(), err, sizeof(err));
	ERR_clear_error();
	return zm_error_set(e, EINVAL, "TLS: %s: %s", what, err);
}

SSL_CTX *zm_tls_ctx_new(bool server, const char *key_pem, const char *chain_pem,
			const char *bundle_pem, const char *td, struct zm_error *e)
{
	SSL_CTX *ctx = NULL;
	struct ctx_conf *cf = NULL;
	struct zm_bundle *bundle = NULL;
	STACK_OF(X509) *chain = NULL;
	X509_STORE *store = NULL;
	BIO *b = NULL;
	EVP_PKEY *key = NULL;

	pthread_once(&idx_once, make_indexes);
	ERR_clear_error();
	if (!td || !zm_spiffe_td_valid(td, strlen(td))) {
		zm_error_set(e, EINVAL, "TLS: invalid trust domain");
		goto fail;
	}
	if (!key_pem || !chain_pem || !bundle_pem) {
		zm_error_set(e, EINVAL, "TLS: key, certificate chain and trust bundle are required");
		goto fail;
	}
	ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	cf = calloc(1, sizeof(*cf));
	if (!ctx || !cf) {
		ssl_fail(e, "new context");
		goto fail;
	}
	cf->server = server;
	snprintf(cf->td, sizeof(cf->td), "%s", td);
	if (!SSL_CTX_set_ex_data(ctx, ctx_conf_idx, cf)) {
		ssl_fail(e, "ex_data");
		goto fail;
	}
	cf = NULL;	/* owned by ctx now */
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_ciphersuites(ctx, ZM_TLS_SUITES)) {
		ssl_fail(e, "protocol settings");
		goto fail;
	}
	/* No resumption: a resumed session would outlive a change of trust. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_max_early_data(ctx, 0);
	/* Send leaf + intermediates only: the peer has the roots. */
	SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_cb);
	/* A server checks client certificates for clientAuth, and vice versa. */
	if (!SSL_CTX_set_purpose(ctx, server ? X509_PURPOSE_SSL_CLIENT : X509_PURPOSE_SSL_SERVER)) {
		ssl_fail(e, "purpose");
		goto fail;
	}
	if (server) {
		SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, NULL);
		SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
	} else if (SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x02h2", 3)) {
		ssl_fail(e, "ALPN");
		goto fail;
	}

	b = BIO_new_mem_buf(key_pem, -1);
	key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	if (!key || SSL_CTX_use_PrivateKey(ctx, key) != 1) {
		ssl_fail(e, "private key");
		goto fail;
	}
	chain = zm_pem_certs(chain_pem, e);
	if (!chain)
		goto fail;
	if (SSL_CTX_use_certificate(ctx, sk_X509_value(chain, 0)) != 1) {
		ssl_fail(e, "certificate");
		goto fail;
	}
	for (int i = 1; i < sk_X509_num(chain); i++)
		if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(chain, i)) != 1) {
			ssl_fail(e, "chain certificate");
			goto fail;
		}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ERR_clear_error();
		zm_error_set(e, EINVAL, "TLS: the private key does not match the certificate");
		goto fail;
	}
	/* Only the bundle's roots are trusted, never the system's. */
	bundle = zm_bundle_new();
	if (!bundle || zm_bundle_add_pem(bundle, bundle_pem, e) ||
	    !(store = zm_bundle_store(bundle))) {
		if (e && !e->msg[0])
			zm_error_set(e, EINVAL, "TLS: trust bundle");
		goto fail;
	}
	SSL_CTX_set_cert_store(ctx, store);
	goto out;
fail:
	SSL_CTX_free(ctx);
	ctx = NULL;
out:
	free(cf);
	BIO_free(b);
	EVP_PKEY_free(key);
	sk_X509_pop_free(chain, X509_free);
	zm_bundle_free(bundle);
	ERR_clear_error();
	return ctx;
}

int zm_tls_ctx_set_peer_cb(SSL_CTX *ctx, zm_tls_peer_cb cb, void *arg)
{
	struct ctx_conf *cf = conf_of(ctx);

	if (!cf)
		return -EINVAL;
	cf->cb = cb;
	cf->cb_arg = arg;
	return 0;
}

int zm_tls_expect_peer(SSL *ssl, const struct zm_spiffe_id *want)
{
	struct verdict *v = verdict_of(ssl, true);

	if (!v)
		return -ENOMEM;
	v->want = *want;
	v->want_set = true;
	return 0;
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

	if (zm_tls_peer_id(ssl, &got))
		return zm_svid_expect(want, NULL, e);
	return zm_svid_expect(want, &got, e);
}

const char *zm_tls_verify_error(SSL *ssl)
{
	struct verdict *v = verdict_of(ssl, false);

	return v ? v->why : "";
}

int zm_tls_handshake(SSL *ssl, struct zm_error *e)
{
	struct verdict *v;
	unsigned long err;
	char buf[256];
	int r, kind;

	ERR_clear_error();
	v = verdict_of(ssl, true);
	if (!v)
		return zm_error_set(e, ENOMEM, "TLS handshake: out of memory");
	if (!v->started) {
		/* SSL_new leaves the role unset; the method knows it. */
		if (SSL_in_before(ssl)) {
			if (SSL_is_server(ssl))
				SSL_set_accept_state(ssl);
			else
				SSL_set_connect_state(ssl);
		}
		v->started = true;
	}
	r = SSL_do_handshake(ssl);
	if (r == 1) {
		if (!v->ok)	/* cannot happen with our contexts: belt and braces */
			return zm_error_set(e, EACCES, "TLS handshake: peer not verified");
		if (!alpn_is_h2(ssl))
			return zm_error_set(e, EPROTO, "TLS handshake: ALPN h2 not negotiated");
		return 1;
	}
	kind = SSL_get_error(ssl, r);
	if (kind == SSL_ERROR_WANT_READ || kind == SSL_ERROR_WANT_WRITE) {
		ERR_clear_error();
		return 0;
	}
	err = ERR_get_error();
	ERR_clear_error();
	if (v->why[0])
		return zm_error_set(e, EACCES, "TLS handshake: %s", v->why);
	if (kind == SSL_ERROR_SSL && err) {
		ERR_error_string_n(err, buf, sizeof(buf));
		return zm_error_set(e, EPROTO, "TLS handshake: %s", buf);
	}
	if (kind == SSL_ERROR_ZERO_RETURN || kind == SSL_ERROR_SYSCALL)
		return zm_error_set(e, ECONNRESET, "TLS handshake: connection closed by peer");
	return zm_error_set(e, EPROTO, "TLS handshake failed (SSL error %d)", kind);
}

int zm_tls_use_membio(SSL *ssl)
{
	BIO *r = BIO_new(BIO_s_mem()), *w = BIO_new(BIO_s_mem());

	if (!r || !w) {
		BIO_free(r);
		BIO_free(w);
		return -ENOMEM;
	}
	/* An empty read BIO means "want more", not EOF, until zm_tls_net_eof. */
	BIO_set_mem_eof_return(r, -1);
	BIO_set_mem_eof_return(w, -1);
	SSL_set_bio(ssl, r, w);
	return 0;
}

int zm_tls_net_write(SSL *ssl, const void *data, size_t len)
{
	BIO *r = SSL_get_rbio(ssl);

	while (len > 0) {
		int chunk = len > (1u << 30) ? 1 << 30 : (int)len;
		int n = BIO_write(r, data, chunk);

		if (n <= 0)
			return -ENOMEM;
		data = (const char *)data + n;
		len -= (size_t)n;
	}
	return 0;
}

size_t zm_tls_net_read(SSL *ssl, void *buf, size_t cap)
{
	int n = BIO_read(SSL_get_wbio(ssl), buf, cap > INT32_MAX ? INT32_MAX : (int)cap);

	return n > 0 ? (size_t)n : 0;
}

size_t zm_tls_net_pending(SSL *ssl)
{
	return BIO_ctrl_pending(SSL_get_wbio(ssl));
}

void zm_tls_net_eof(SSL *ssl)
{
	BIO_set_mem_eof_return(SSL_get_rbio(ssl), 0);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int zm_tls_handshake_fd(SSL *ssl, int fd, int timeout_ms, struct zm_error *e)
{
	long long deadline = now_ms() + timeout_ms;
	int flags = fcntl(fd, F_GETFL), rc;

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return zm_error_set(e, errno, "TLS: fcntl: %s", strerror(errno));
	if (SSL_set_fd(ssl, fd) != 1) {
		rc = ssl_fail(e, "set fd");
		goto out;
	}
	while ((rc = zm_tls_handshake(ssl, e)) == 0) {
		struct pollfd p = { .fd = fd, .events = SSL_want_write(ssl) ? POLLOUT : POLLIN };
		long long left = deadline - now_ms();

		if (left <= 0 || poll(&p, 1, (int)left) == 0) {
			rc = zm_error_set(e, ETIMEDOUT, "TLS handshake: timed out after %d ms", timeout_ms);
			goto out;
		}
	}
	rc = rc == 1 ? 0 : rc;
out:
	fcntl(fd, F_SETFL, flags);
	return rc;
}

int zm_tls_recheck(SSL *ssl, SSL_CTX *ctx, struct zm_error *e)
{
	struct ctx_conf *cf = conf_of(ctx);
	X509 *peer = SSL_get0_peer_certificate(ssl);
	struct zm_spiffe_id id, was;

	if (!cf)
		return zm_error_set(e, EINVAL, "recheck: not a zmesh TLS context");
	if (!peer || zm_tls_peer_id(ssl, &was))
		return zm_error_set(e, EACCES, "recheck: connection has no verified peer");
	/* The peer chain as sent (a client's view includes the leaf: harmless). */
	if (zm_svid_verify(peer, SSL_get_peer_cert_chain(ssl), SSL_CTX_get_cert_store(ctx), cf->td,
			   cf->server ? X509_PURPOSE_SSL_CLIENT : X509_PURPOSE_SSL_SERVER, &id, e))
		return -EACCES;
	return zm_svid_expect(&was, &id, e);
}

/* ---- rotatable credentials ------------------------------------------------ */

struct zm_tls_creds {
	pthread_mutex_t lock;
	bool server;
	char td[ZM_TD_MAX + 1];
	SSL_CTX *ctx;		/* current generation; SSLs hold their own references */
	unsigned gen;
	char *key, *chain, *bundle;	/* PEM of the current generation, for partial updates */
	zm_tls_peer_cb cb;
	void *cb_arg;
};

int zm_tls_creds_new(bool server, const char *td, struct zm_tls_creds **out)
{
	struct zm_tls_creds *c;

	*out = NULL;
	if (!td || !zm_spiffe_td_valid(td, strlen(td)))
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	c->server = server;
	snprintf(c->td, sizeof(c->td), "%s", td);
	*out = c;
	return 0;
}

void zm_tls_creds_free(struct zm_tls_creds *c)
{
	if (!c)
		return;
	SSL_CTX_free(c->ctx);
	free(c->key);
	free(c->chain);
	free(c->bundle);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

void zm_tls_creds_set_peer_cb(struct zm_tls_creds *c, zm_tls_peer_cb cb, void *arg)
{
	pthread_mutex_lock(&c->lock);
	c->cb = cb;
	c->cb_arg = arg;
	pthread_mutex_unlock(&c->lock);
}

int zm_tls_creds_update(struct zm_tls_creds *c, const char *key_pem, const char *chain_pem,
			const char *bundle_pem, struct zm_error *e)
{
	char *k = NULL, *ch = NULL, *b = NULL;
	SSL_CTX *ctx, *old = NULL;
	int rc = -ENOMEM;

	pthread_mutex_lock(&c->lock);
	k = strdup(key_pem ? key_pem : c->key ? c->key : "");
	ch = strdup(chain_pem ? chain_pem : c->chain ? c->chain : "");
	b = strdup(bundle_pem ? bundle_pem : c->bundle ? c->bundle : "");
	if (!k || !ch || !b) {
		zm_error_set(e, ENOMEM, "out of memory");
		goto out;
	}
	ctx = zm_tls_ctx_new(c->server, k, ch, b, c->td, e);
	if (!ctx) {
		rc = -EINVAL;
		goto out;
	}
	zm_tls_ctx_set_peer_cb(ctx, c->cb, c->cb_arg);
	old = c->ctx;
	c->ctx = ctx;
	c->gen++;
	free(c->key);
	free(c->chain);
	free(c->bundle);
	c->key = k;
	c->chain = ch;
	c->bundle = b;
	k = ch = b = NULL;
	rc = 0;
out:
	pthread_mutex_unlock(&c->lock);
	SSL_CTX_free(old);	/* live connections keep their own references */
	if (k)
		OPENSSL_cleanse(k, strlen(k));
	free(k);
	free(ch);
	free(b);
	return rc;
}

SSL_CTX *zm_tls_creds_ctx(struct zm_tls_creds *c)
{
	SSL_CTX *ctx;

	pthread_mutex_lock(&c->lock);
	ctx = c->ctx;
	if (ctx)
		SSL_CTX_up_ref(ctx);
	pthread_mutex_unlock(&c->lock);
	return ctx;
}

SSL *zm_tls_creds_ssl(struct zm_tls_creds *c, struct zm_error *e)
{
	SSL *ssl = NULL;

	pthread_mutex_lock(&c->lock);
	if (!c->ctx)
		zm_error_set(e, ENOENT, "TLS: no credentials yet");
	else if (!(ssl = SSL_new(c->ctx)))
		zm_error_set(e, ENOMEM, "TLS: SSL_new failed");
	pthread_mutex_unlock(&c->lock);
	return ssl;
}

unsigned zm_tls_creds_generation(struct zm_tls_creds *c)
{
	unsigned g;

	pthread_mutex_lock(&c->lock);
	g = c->gen;
	pthread_mutex_unlock(&c->lock);
	return g;
}
