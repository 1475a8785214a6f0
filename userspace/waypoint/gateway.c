// SPDX-License-Identifier: Apache-2.0
/*
 * Gateway mode (Istio's ingress gateway): the waypoint binary serving the
 * Gateways whose selector matches its labels. Per config generation a
 * struct gw_set is built from the Gateways and Secrets of the config: one
 * entry per usable server, with its own SSL_CTX for TLS servers. Listeners
 * are opened per server port as ports appear (never closed: a port that
 * loses its servers refuses every handshake / answers 404).
 *
 * TLS: one listener SSL_CTX per port whose ClientHello callback picks the
 * server by SNI (exact hosts before wildcards, "*" also takes a hello
 * without SNI) and switches the SSL to that server's context before the
 * version is negotiated, so each server's minProtocolVersion and client
 * certificate rules hold. No SNI, an unknown name, TLS < 1.2: the
 * handshake fails with an alert. The decrypted bytes go through a
 * socketpair to the ordinary HTTP/1 / HTTP/2 front end (as HBONE streams
 * do). Rotation: every generation builds fresh contexts; a connection keeps
 * the context it shook hands with (OpenSSL refcounts it), new handshakes
 * take the new one; nothing is dropped.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "zmesh/config.h"
#include "zmesh/sock.h"
#include "zmesh/tls_sni.h"
#include "zmesh/istio.h"
#include "zmesh/log.h"
#include "waypoint.h"

#define GW_MAX_SERVERS 64
#define GW_MAX_HOSTS 16
#define GW_MAX_PORTS 16
#define GW_HANDSHAKE_MS 10000

struct gw_server {
	char gw[192];			/* "ns/name" of the Gateway */
	int idx;			/* servers[idx] */
	int port;
	char proto[16];			/* HTTP, HTTPS, HTTP2, GRPC, TCP, TLS */
	char hosts[GW_MAX_HOSTS][256];	/* the host part of [ns/]host, lower case */
	size_t nhosts;
	bool tls;			/* terminates TLS (SIMPLE / MUTUAL / ISTIO_MUTUAL) */
	bool passthrough;		/* TLS relayed by SNI to tls[] routes */
	bool tcp;			/* bytes relayed to tcp[] routes */
	bool https_redirect;
	int min_version;		/* TLS1_2_VERSION or TLS1_3_VERSION */
	SSL_CTX *ctx;			/* tls: this server's context */
};

struct gw_set {
	atomic_int ref;
	struct gw_server s[GW_MAX_SERVERS];
	size_t n;
	char keys[ZM_L7_MAX_GATEWAYS][192];
	const char *keyp[ZM_L7_MAX_GATEWAYS];
	size_t nkeys;
};

static struct gw_set *gw_cur;
static pthread_mutex_t gw_mu = PTHREAD_MUTEX_INITIALIZER;
static int gw_ports[GW_MAX_PORTS];
static size_t gw_nports;

static struct gw_set *gw_get(void)
{
	struct gw_set *g;

	pthread_mutex_lock(&gw_mu);
	g = gw_cur;
	if (g)
		atomic_fetch_add(&g->ref, 1);
	pthread_mutex_unlock(&gw_mu);
	return g;
}

void wp_gw_put(struct gw_set *g)
{
	if (!g || atomic_fetch_sub(&g->ref, 1) != 1)
		return;
	for (size_t i = 0; i < g->n; i++)
		SSL_CTX_free(g->s[i].ctx);
	free(g);
}

/* ---- host matching ------------------------------------------------------------ */

/* Gateway host pattern @pat ("*", "*.example.com", "a.example.com") against @host. */
static bool host_match(const char *pat, const char *host)
{
	size_t pl = strlen(pat), hl = strlen(host);

	if (!strcmp(pat, "*"))
		return true;
	if (pat[0] == '*')
		return hl >= pl && !strcasecmp(host + hl - (pl - 1), pat + 1);
	return !strcasecmp(pat, host);
}

enum skind { K_PLAIN, K_TERM, K_PASS, K_TCP };

static enum skind kind_of(const struct gw_server *s)
{
	return s->tcp ? K_TCP : s->passthrough ? K_PASS : s->tls ? K_TERM : K_PLAIN;
}

/* The server of kind @k on @port for @host: exact hosts first, then wildcards. */
static const struct gw_server *server_for(const struct gw_set *g, int port, const char *host, enum skind k)
{
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < g->n; i++) {
			const struct gw_server *s = &g->s[i];

			if (s->port != port || kind_of(s) != k)
				continue;
			for (size_t j = 0; j < s->nhosts; j++) {
				bool wild = s->hosts[j][0] == '*';

				if (wild == (pass == 1) && host && host_match(s->hosts[j], host))
					return s;
				if (pass == 1 && !host && !strcmp(s->hosts[j], "*"))
					return s;
			}
		}
	return NULL;
}

/* ---- credentials ---------------------------------------------------------------- */

/* A whole PEM file (at most 1 MiB) into a malloc'd string. */
static int read_pem(const char *path, char **out)
{
	FILE *f = fopen(path, "re");
	char *b = NULL;
	size_t n;

	*out = NULL;
	if (!f)
		return -errno;
	b = malloc(1 << 20);
	n = b ? fread(b, 1, (1 << 20) - 1, f) : 0;
	fclose(f);
	if (!b)
		return -ENOMEM;
	b[n] = '\0';
	*out = b;
	return 0;
}

struct cred {
	char *cert, *key, *ca;		/* PEM, malloc'd; ca may be NULL */
};

static void cred_free(struct cred *c)
{
	free(c->cert);
	if (c->key)
		OPENSSL_cleanse(c->key, strlen(c->key));
	free(c->key);
	free(c->ca);
}

static char *b64_dup(const char *in)
{
	size_t n = strlen(in);
	unsigned char *out = malloc(n / 4 * 3 + 4);
	int len;

	if (!out)
		return NULL;
	len = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
	if (len < 0) {
		free(out);
		return NULL;
	}
	while (n && in[n - 1] == '=' && len > 0) {
		len--;
		n--;
	}
	out[len] = '\0';
	if (strlen((char *)out) != (size_t)len) {	/* a NUL inside is no PEM */
		free(out);
		return NULL;
	}
	return (char *)out;
}

/* Field @a (or its alias @b) of a Secret: data (base64) or stringData. */
static char *secret_field(json_t *raw, const char *a, const char *b)
{
	const char *names[2] = { a, b };

	for (int i = 0; i < 2; i++) {
		json_t *v = json_object_get(json_object_get(raw, "stringData"), names[i]);

		if (json_is_string(v))
			return strdup(json_string_value(v));
		v = json_object_get(json_object_get(raw, "data"), names[i]);
		if (json_is_string(v))
			return b64_dup(json_string_value(v));
	}
	return NULL;
}

static const struct zm_cfg_obj *find_secret(const struct zm_cfg_set *set, const char *ns, const char *name)
{
	for (size_t i = 0; i < set->nobjs; i++) {
		const struct zm_cfg_obj *o = set->objs[i];

		if (o->kind == ZM_K_SECRET && o->meta.name.v && !strcmp(o->meta.name.v, name) &&
		    o->meta.ns.v && !strcmp(o->meta.ns.v, ns))
			return o;
	}
	return NULL;
}

/* The credential of a TLS server: credentialName (a Secret in @ns) or files. */
static int load_cred(const struct zm_cfg_set *set, const char *ns, const struct zm_server_tls *t,
		     bool mutual, struct cred *c, char *why, size_t whysz)
{
	memset(c, 0, sizeof(*c));
	if (t->credential_name.v) {
		const char *name = t->credential_name.v;
		const struct zm_cfg_obj *o = find_secret(set, ns, name), *cao;

		if (!o) {
			snprintf(why, whysz, "not found");
			return -ENOENT;
		}
		c->cert = secret_field(o->raw, "tls.crt", "cert");
		c->key = secret_field(o->raw, "tls.key", "key");
		c->ca = secret_field(o->raw, "ca.crt", "cacert");
		if (!c->ca && mutual) {
			/* Istio: the CA may live in "<name>-cacert" */
			char cn[320];

			snprintf(cn, sizeof(cn), "%s-cacert", name);
			if ((cao = find_secret(set, ns, cn)))
				c->ca = secret_field(cao->raw, "ca.crt", "cacert");
		}
		if (!c->cert || !c->key) {
			snprintf(why, whysz, "Secret %s/%s: no tls.crt/tls.key (or not base64)", ns, name);
			return -EINVAL;
		}
	} else if (t->server_certificate.v && t->private_key.v) {
		if (read_pem(t->server_certificate.v, &c->cert) || read_pem(t->private_key.v, &c->key) ||
		    (t->ca_certificates.v && read_pem(t->ca_certificates.v, &c->ca))) {
			snprintf(why, whysz, "credential files: %s", strerror(errno));
			return -ENOENT;
		}
	} else {
		snprintf(why, whysz, "no credentialName and no serverCertificate/privateKey");
		return -EINVAL;
	}
	if (mutual && !c->ca) {
		snprintf(why, whysz, "MUTUAL needs ca.crt (in the Secret or <name>-cacert)");
		return -EINVAL;
	}
	return 0;
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned int inlen, void *arg)
{
	static const unsigned char h2[] = "\x02h2\x08http/1.1";
	unsigned char *o;

	(void)ssl;
	(void)arg;
	if (SSL_select_next_proto(&o, outlen, h2, sizeof(h2) - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	*out = o;
	return SSL_TLSEXT_ERR_OK;
}

static void ossl_why(const char *what, char *why, size_t whysz)
{
	unsigned long ec = ERR_get_error();
	char b[256] = "";

	if (ec)
		ERR_error_string_n(ec, b, sizeof(b));
	ERR_clear_error();
	snprintf(why, whysz, "%s%s%s", what, b[0] ? ": " : "", b);
}

/* A server context from PEMs; NULL with @why on error (bad PEM, key not matching). */
static SSL_CTX *server_ctx(const struct cred *c, bool mutual, int minv, char *why, size_t whysz)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	BIO *b = NULL;
	X509 *x = NULL;
	EVP_PKEY *k = NULL;

	if (!ctx) {
		ossl_why("SSL_CTX_new", why, whysz);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, minv);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
	b = BIO_new_mem_buf(c->cert, -1);
	x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	if (!x || SSL_CTX_use_certificate(ctx, x) != 1) {
		ossl_why("tls.crt: not a PEM certificate", why, whysz);
		goto fail;
	}
	/* the rest of the chain */
	for (X509 *ch; (ch = PEM_read_bio_X509(b, NULL, NULL, NULL));)
		if (SSL_CTX_add0_chain_cert(ctx, ch) != 1) {
			X509_free(ch);
			break;
		}
	ERR_clear_error();
	BIO_free(b);
	b = BIO_new_mem_buf(c->key, -1);
	k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	if (k && X509_check_private_key(x, k) != 1) {
		ossl_why("tls.key does not match tls.crt", why, whysz);
		goto fail;
	}
	if (!k || SSL_CTX_use_PrivateKey(ctx, k) != 1) {
		ossl_why("tls.key: not a PEM private key", why, whysz);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ossl_why("tls.key does not match tls.crt", why, whysz);
		goto fail;
	}
	if (mutual) {
		X509_STORE *st = SSL_CTX_get_cert_store(ctx);
		BIO *cb = BIO_new_mem_buf(c->ca, -1);
		int n = 0;

		for (X509 *ca; cb && (ca = PEM_read_bio_X509(cb, NULL, NULL, NULL)); X509_free(ca))
			n += X509_STORE_add_cert(st, ca) == 1;
		BIO_free(cb);
		ERR_clear_error();
		if (!n) {
			snprintf(why, whysz, "ca.crt: no PEM certificate");
			goto fail;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
		SSL_CTX_set_verify_depth(ctx, 4);
	}
	X509_free(x);
	EVP_PKEY_free(k);
	BIO_free(b);
	return ctx;
fail:
	X509_free(x);
	EVP_PKEY_free(k);
	BIO_free(b);
	SSL_CTX_free(ctx);
	return NULL;
}

/* ---- building a generation ------------------------------------------------------- */

static bool selector_matches(const struct zm_gateway *gw, const struct zm_labels *mine)
{
	for (size_t i = 0; i < gw->selector.n; i++) {
		const char *v = zm_labels_get(mine, gw->selector.v[i].key.v);

		if (!v || strcmp(v, gw->selector.v[i].val.v))
			return false;
	}
	return true;
}

static void add_server(struct gw_set *g, const struct zm_cfg_set *set, const struct zm_cfg_obj *o,
		       size_t idx, const char *key)
{
	const struct zm_server *sv = &o->gw->servers.v[idx];
	struct gw_server *s;
	const char *proto = sv->port.protocol.v ? sv->port.protocol.v : "HTTP";
	int mode = sv->tls.o.set ? (int)sv->tls.mode.v : -1;
	char why[512] = "";
	struct cred c;

	if (g->n >= GW_MAX_SERVERS) {
		zm_log_error("gateway %s: servers[%zu]: more than %d servers; ignored", key, idx, GW_MAX_SERVERS);
		return;
	}
	s = &g->s[g->n];
	memset(s, 0, sizeof(*s));
	snprintf(s->gw, sizeof(s->gw), "%s", key);
	s->idx = (int)idx;
	s->port = (int)sv->port.number.v;
	snprintf(s->proto, sizeof(s->proto), "%s", proto);
	for (size_t i = 0; i < sv->hosts.n && s->nhosts < GW_MAX_HOSTS; i++) {
		const char *h = sv->hosts.v[i].v, *sl = strchr(h, '/');

		snprintf(s->hosts[s->nhosts++], sizeof(s->hosts[0]), "%s", sl ? sl + 1 : h);
	}
	s->https_redirect = sv->tls.o.set && sv->tls.https_redirect.v;
	if (!strcasecmp(proto, "TCP") || !strcasecmp(proto, "MONGO") || !strcasecmp(proto, "MYSQL") ||
	    !strcasecmp(proto, "REDIS")) {
		s->tcp = true;
		g->n++;
		return;
	}
	if ((!strcasecmp(proto, "TLS") || !strcasecmp(proto, "HTTPS")) &&
	    (mode == ZM_STLS_PASSTHROUGH || (mode < 0 && !strcasecmp(proto, "TLS")))) {
		s->passthrough = true;
		g->n++;
		return;
	}
	if (mode == ZM_STLS_AUTO_PASSTHROUGH) {
		zm_log_warn("gateway %s: servers[%zu] (port %d): AUTO_PASSTHROUGH is not served", key, idx, s->port);
		return;
	}
	if (!strcasecmp(proto, "HTTPS") || (sv->tls.o.set && mode >= 0 && !s->https_redirect &&
					    (mode == ZM_STLS_SIMPLE || mode == ZM_STLS_MUTUAL))) {
		bool mutual = mode == ZM_STLS_MUTUAL || mode == ZM_STLS_ISTIO_MUTUAL ||
			      mode == ZM_STLS_OPTIONAL_MUTUAL;
		const char *gns = wp_options->gateway_ns;
		int rc;

		s->tls = true;
		s->min_version = sv->tls.min_protocol_version.v == ZM_TLSV1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
		rc = load_cred(set, gns, &sv->tls, mutual, &c, why, sizeof(why));
		if (!rc && !(s->ctx = server_ctx(&c, mutual, s->min_version, why, sizeof(why))))
			rc = -EINVAL;
		if (rc) {
			if (sv->tls.credential_name.v)
				zm_log_error("gateway %s: servers[%zu] (port %d): Secret %s/%s: %s; server not started",
					     key, idx, s->port, gns, sv->tls.credential_name.v, why);
			else
				zm_log_error("gateway %s: servers[%zu] (port %d): credential files: %s; server not started",
					     key, idx, s->port, why);
			cred_free(&c);
			return;
		}
		cred_free(&c);
	}
	g->n++;
}

int wp_gw_build(const struct zm_cfg_set *set, struct gw_set **out)
{
	struct gw_set *g = calloc(1, sizeof(*g));

	*out = NULL;
	if (!g)
		return -ENOMEM;
	atomic_init(&g->ref, 1);
	for (size_t i = 0; i < set->nobjs; i++) {
		const struct zm_cfg_obj *o = set->objs[i];
		char key[192];

		if (o->kind != ZM_K_GATEWAY || !selector_matches(o->gw, &wp_options->gateway_labels))
			continue;
		if (g->nkeys >= ZM_L7_MAX_GATEWAYS)
			break;
		snprintf(key, sizeof(key), "%s/%s", o->meta.ns.v ? o->meta.ns.v : "default", o->meta.name.v);
		snprintf(g->keys[g->nkeys], sizeof(g->keys[0]), "%s", key);
		g->keyp[g->nkeys] = g->keys[g->nkeys];
		g->nkeys++;
		for (size_t j = 0; j < o->gw->servers.n; j++)
			add_server(g, set, o, j, key);
	}
	*out = g;
	return 0;
}

const char *const *wp_gw_keys(const struct gw_set *g, size_t *n)
{
	*n = g->nkeys;
	return g->keyp;
}

/* ---- connections ------------------------------------------------------------------ */

struct lctx {
	int fd, port;
};

/* Host name from a ClientHello's server_name extension; 0, -ENOENT (none), -EINVAL. */
static int hello_sni(SSL *ssl, char *out, size_t sz)
{
	const unsigned char *p;
	size_t len, nl;

	if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len))
		return -ENOENT;
	if (len < 5 || (size_t)((p[0] << 8) | p[1]) != len - 2 || p[2] != 0)
		return -EINVAL;
	nl = (size_t)((p[3] << 8) | p[4]);
	if (nl == 0 || nl + 5 > len || nl >= sz)
		return -EINVAL;
	memcpy(out, p + 5, nl);
	out[nl] = '\0';
	for (size_t i = 0; i < nl; i++)
		if (out[i] <= ' ' || out[i] == 0x7f)
			return -EINVAL;
	return 0;
}

struct tconn {
	int port;
	struct gw_set *g;
	char sni[256];
};

static int tconn_idx = -1;

static int on_hello(SSL *ssl, int *al, void *arg)
{
	struct tconn *t = SSL_get_ex_data(ssl, tconn_idx);
	const struct gw_server *s;
	char sni[256];
	int rc = hello_sni(ssl, sni, sizeof(sni));

	(void)arg;
	if (!t || rc == -EINVAL) {
		*al = SSL_AD_DECODE_ERROR;
		return SSL_CLIENT_HELLO_ERROR;
	}
	snprintf(t->sni, sizeof(t->sni), "%s", rc ? "" : sni);	/* for the log */
	s = server_for(t->g, t->port, rc ? NULL : sni, K_TERM);
	if (!s || !s->ctx) {
		*al = SSL_AD_UNRECOGNIZED_NAME;
		return SSL_CLIENT_HELLO_ERROR;
	}
	SSL_set_SSL_CTX(ssl, s->ctx);
	SSL_set_verify(ssl, SSL_CTX_get_verify_mode(s->ctx), NULL);
	SSL_set_min_proto_version(ssl, s->min_version);
	return SSL_CLIENT_HELLO_SUCCESS;
}

static SSL_CTX *lctx_ssl;
static pthread_once_t lctx_once = PTHREAD_ONCE_INIT;

static void lctx_init(void)
{
	tconn_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	lctx_ssl = SSL_CTX_new(TLS_server_method());
	if (!lctx_ssl)
		return;
	/* TLS 1.0 / 1.1 never get past the hello */
	SSL_CTX_set_min_proto_version(lctx_ssl, TLS1_2_VERSION);
	SSL_CTX_set_options(lctx_ssl, SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_client_hello_cb(lctx_ssl, on_hello, NULL);
	SSL_CTX_set_session_cache_mode(lctx_ssl, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(lctx_ssl, 0);
}

/* The context every handshake starts on; on_hello moves it to the server's. */
static SSL_CTX *listener_ctx(void)
{
	pthread_once(&lctx_once, lctx_init);
	return lctx_ssl;
}

static int start_conn(int fd, const struct sockaddr_storage *ss, int port, bool tls, const char *sni,
		      bool tcp)
{
	struct conn *c = wp_conn_new(fd, ss);
	pthread_attr_t at;
	pthread_t th;

	if (!c)
		return -ENOMEM;
	c->gw_port = port;
	c->gw_tls = tls;
	c->tcp = tcp;
	snprintf(c->gw_sni, sizeof(c->gw_sni), "%s", sni ? sni : "");
	atomic_fetch_add(&wp_nconns, 1);
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, 512 * 1024);
	if (pthread_create(&th, &at, wp_conn_thread, c)) {
		atomic_fetch_sub(&wp_nconns, 1);
		pthread_attr_destroy(&at);
		free(c);
		return -EAGAIN;
	}
	pthread_attr_destroy(&at);
	return 0;
}

/*
 * Move bytes between the TLS connection and the plaintext side, both ways
 * at once and non-blocking, each way through a buffer of at most
 * GW_PUMP_BUF: a side that does not read holds the other back (bodies
 * stream through the proxy; a blocking write one way must not stop the
 * other, or a streaming call in both directions could lock up).
 */
#define GW_PUMP_BUF (64 * 1024)

static void pump(SSL *ssl, int fd, int app)
{
	struct zm_buf to_app = { 0 }, to_tls = { 0 };
	bool tls_eof = false, app_eof = false, app_shut = false, tls_want_write = false;
	char buf[16384];

	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	fcntl(app, F_SETFL, fcntl(app, F_GETFL) | O_NONBLOCK);
	SSL_set_mode(ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	for (;;) {
		bool tls_want_read = false;
		struct pollfd p[2];

		while (!tls_eof && zm_buf_len(&to_app) < GW_PUMP_BUF) {
			int n = SSL_read(ssl, buf, sizeof(buf)), err;

			if (n > 0) {
				if (zm_buf_append(&to_app, buf, (size_t)n))
					goto out;
				continue;
			}
			err = SSL_get_error(ssl, n);
			if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
				tls_want_read = true;
				break;
			}
			tls_eof = true;	/* close_notify, or the connection failed */
		}
		while (zm_buf_len(&to_app)) {
			ssize_t w = send(app, zm_buf_data(&to_app), zm_buf_len(&to_app), MSG_NOSIGNAL | MSG_DONTWAIT);

			if (w > 0) {
				zm_buf_consume(&to_app, (size_t)w);
				continue;
			}
			if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
				break;
			goto out;
		}
		if (tls_eof && !zm_buf_len(&to_app) && !app_shut) {
			shutdown(app, SHUT_WR);
			app_shut = true;
		}
		/* read the app side only when what it said before is gone (SSL_write retries) */
		if (!app_eof && !zm_buf_len(&to_tls)) {
			ssize_t n = recv(app, buf, sizeof(buf), MSG_DONTWAIT);

			if (n > 0 && zm_buf_append(&to_tls, buf, (size_t)n))
				goto out;
			if (n == 0)
				app_eof = true;
			else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				goto out;
		}
		tls_want_write = false;
		while (zm_buf_len(&to_tls)) {
			int w = SSL_write(ssl, zm_buf_data(&to_tls), (int)zm_buf_len(&to_tls)), err;

			if (w > 0) {
				zm_buf_consume(&to_tls, (size_t)w);
				continue;
			}
			err = SSL_get_error(ssl, w);
			if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
				tls_want_write = true;
				break;
			}
			goto out;
		}
		if (app_eof && !zm_buf_len(&to_tls)) {
			SSL_shutdown(ssl);
			goto out;
		}
		/* stopped reading TLS for want of room, and there is room now */
		if (!tls_eof && !tls_want_read && zm_buf_len(&to_app) < GW_PUMP_BUF)
			continue;
		p[0] = (struct pollfd){ .fd = fd,
			.events = (!tls_eof && zm_buf_len(&to_app) < GW_PUMP_BUF && tls_want_read ? POLLIN : 0) |
				  (tls_want_write ? POLLOUT | POLLIN : 0) };
		p[1] = (struct pollfd){ .fd = app,
			.events = (!app_eof && !zm_buf_len(&to_tls) ? POLLIN : 0) |
				  (zm_buf_len(&to_app) ? POLLOUT : 0) };
		if (!p[0].events && !p[1].events)
			goto out;
		if (poll(p, 2, wp_options->idle_timeout_ms) <= 0)
			goto out;
	}
out:
	zm_buf_free(&to_app);
	zm_buf_free(&to_tls);
}

static bool port_has(int port, enum skind k);

/*
 * The server_name of the ClientHello waiting on @fd, peeked (the bytes stay
 * for the backend). 0, -ENOENT (a hello without SNI), -EPROTO (not a
 * ClientHello, or one split over records), -ETIMEDOUT.
 */
static int peek_sni(int fd, char *out, size_t sz)
{
	uint8_t b[16384 + 5];
	int waited = 0;

	for (;;) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		ssize_t n;
		int rc;

		if (poll(&pf, 1, 100) < 0)
			return -EPROTO;
		n = recv(fd, b, sizeof(b), MSG_PEEK | MSG_DONTWAIT);
		if (n == 0)
			return -EPROTO;
		rc = zm_tls_hello_sni(b, n > 0 ? (size_t)n : 0, out, sz);
		if (rc != -EAGAIN)
			return rc;
		if ((size_t)(n > 0 ? n : 0) >= sizeof(b) || (waited += 100) > GW_HANDSHAKE_MS)
			return -ETIMEDOUT;
	}
}

struct tls_arg {
	int fd, port;
	struct sockaddr_storage ss;
};

static void *tls_thread(void *arg)
{
	struct tls_arg *a = arg;
	struct tconn t = { .port = a->port, .g = gw_get() };
	struct timeval tv = { GW_HANDSHAKE_MS / 1000, 0 }, none = { 0, 0 };
	SSL *ssl = NULL;
	int sp[2] = { -1, -1 }, rc;
	char peer[64];

	zm_sock_addr_str((const struct sockaddr *)&a->ss, peer, sizeof(peer));
	if (!t.g)
		goto out;
	if (port_has(a->port, K_PASS)) {
		/* PASSTHROUGH: the SNI of the ClientHello, read without taking it */
		char sni[256] = "";
		int r = peek_sni(a->fd, sni, sizeof(sni));

		if (r == 0 && server_for(t.g, a->port, sni, K_PASS)) {
			if (start_conn(a->fd, &a->ss, a->port, false, sni, true) == 0)
				a->fd = -1;
			goto out;
		}
		if (!port_has(a->port, K_TERM)) {
			zm_log_info("gateway: port %d: TLS from %s refused: no passthrough server for sni \"%s\"",
				    a->port, peer, sni);
			goto out;
		}
	}
	if (!(ssl = SSL_new(listener_ctx())))
		goto out;
	SSL_set_ex_data(ssl, tconn_idx, &t);
	SSL_set_fd(ssl, a->fd);
	setsockopt(a->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(a->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	rc = SSL_accept(ssl);
	if (rc != 1) {
		char why[256];

		ossl_why("handshake", why, sizeof(why));
		zm_log_info("gateway: port %d: TLS from %s refused (sni \"%s\"): %s", a->port, peer, t.sni, why);
		goto out;
	}
	setsockopt(a->fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof(none));
	setsockopt(a->fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof(none));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp))
		goto out;
	if (start_conn(sp[1], &a->ss, a->port, true, t.sni, false)) {
		close(sp[1]);
		goto out;
	}
	pump(ssl, a->fd, sp[0]);
out:
	if (sp[0] >= 0)
		close(sp[0]);
	SSL_free(ssl);
	ERR_clear_error();
	if (a->fd >= 0)
		close(a->fd);
	wp_gw_put(t.g);
	free(a);
	return NULL;
}

static bool port_has(int port, enum skind k)
{
	struct gw_set *g = gw_get();
	bool has = false;

	for (size_t i = 0; g && i < g->n; i++)
		if (g->s[i].port == port && kind_of(&g->s[i]) == k)
			has = true;
	wp_gw_put(g);
	return has;
}

static void *listen_thread(void *arg)
{
	struct lctx *l = arg;
	pthread_attr_t at;

	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, 256 * 1024);
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
		pthread_t th;

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOMEM)
				usleep(10000);	/* no spin while out of descriptors */
			continue;
		}
		if (atomic_load(&wp_nconns) >= WP_MAX_CONNS) {
			close(fd);
			continue;
		}
		if (!port_has(l->port, K_TCP) && (port_has(l->port, K_TERM) || port_has(l->port, K_PASS))) {
			struct tls_arg *a = calloc(1, sizeof(*a));

			if (!a) {
				close(fd);
				continue;
			}
			a->fd = fd;
			a->port = l->port;
			a->ss = ss;
			if (pthread_create(&th, &at, tls_thread, a)) {
				close(fd);
				free(a);
			}
		} else if (start_conn(fd, &ss, l->port, false, NULL, port_has(l->port, K_TCP))) {
			close(fd);
		}
	}
	return NULL;
}

static void open_port(int port)
{
	char spec[32];
	struct lctx *l;
	pthread_t th;
	int fd;

	for (size_t i = 0; i < gw_nports; i++)
		if (gw_ports[i] == port)
			return;
	if (gw_nports >= GW_MAX_PORTS) {
		zm_log_error("gateway: port %d: more than %d ports; not opened", port, GW_MAX_PORTS);
		return;
	}
	snprintf(spec, sizeof(spec), "0.0.0.0:%d", port);
	fd = wp_listen(spec);
	if (fd < 0) {
		zm_log_error("gateway: port %d: %s", port, strerror(-fd));
		return;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		close(fd);
		return;
	}
	l->fd = fd;
	l->port = port;
	if (pthread_create(&th, NULL, listen_thread, l)) {
		close(fd);
		free(l);
		return;
	}
	pthread_detach(th);
	gw_ports[gw_nports++] = port;
	zm_log_info("gateway: listening on port %d", port);
}

void wp_gw_publish(struct gw_set *g)
{
	struct gw_set *old;

	listener_ctx();
	pthread_mutex_lock(&gw_mu);
	old = gw_cur;
	gw_cur = g;
	pthread_mutex_unlock(&gw_mu);
	wp_gw_put(old);
	for (size_t i = 0; i < g->n; i++)
		open_port(g->s[i].port);
	zm_log_info("gateway: %zu gateways, %zu servers", g->nkeys, g->n);
}

int wp_gw_check(const struct conn *c, const char *authority, const char *target, size_t tlen,
		struct zm_buf *location)
{
	struct gw_set *g = gw_get();
	const struct gw_server *s;
	char host[256];
	size_t hl = strcspn(authority, ":");
	int rc = 0;

	if (authority[0] == '[')
		hl = strcspn(authority, "]") + 1;
	snprintf(host, sizeof(host), "%.*s", (int)(hl < sizeof(host) ? hl : sizeof(host) - 1), authority);
	s = g ? server_for(g, c->gw_port, host, c->gw_tls ? K_TERM : K_PLAIN) : NULL;
	if (!s) {
		rc = 404;
	} else if (s->https_redirect && !c->gw_tls) {
		rc = 301;
		if (zm_buf_puts(location, "https://") || zm_buf_puts(location, host) ||
		    zm_buf_append(location, target, tlen))
			rc = -ENOMEM;
	}
	wp_gw_put(g);
	return rc;
}
