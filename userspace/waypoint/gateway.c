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
 *
 * credentialNames put several certificates (one per key type) in one
 * server context; OpenSSL picks by the client's signature algorithms.
 * ISTIO_MUTUAL servers use this proxy's mesh certificate (hbone.c) and
 * accept X509-SVID clients of its trust domain; the client's SPIFFE ID
 * becomes the connection's principal. AUTO_PASSTHROUGH servers take
 * SNIs "outbound_.<port>_.<subset>_.<fqdn>" of hosts they cover; the
 * engine (zm_l7_decide_gateway_l4) picks the service. The servers' hosts,
 * with their "ns/" part, go to the engine for Istio's namespace scoping
 * of VirtualService binding (wp_gw_hosts).
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
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "zmesh/cert_rules.h"
#include "zmesh/config.h"
#include "zmesh/l7route.h"
#include "zmesh/sock.h"
#include "zmesh/spiffe.h"
#include "zmesh/svid.h"
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
	char hns[GW_MAX_HOSTS][64];	/* its namespace part: "*" or a namespace */
	size_t nhosts;
	bool tls;			/* terminates TLS (SIMPLE / MUTUAL / ISTIO_MUTUAL) */
	bool istio_mutual;		/* ... with the mesh certificate, a client SVID required */
	bool passthrough;		/* TLS relayed by SNI to tls[] routes */
	bool autop;			/* AUTO_PASSTHROUGH: the SNI names the service */
	bool tcp;			/* bytes relayed to tcp[] routes */
	bool https_redirect;
	int min_version;		/* TLS1_2_VERSION or TLS1_3_VERSION */
	int max_version;		/* 0 (none), TLS1_2_VERSION or TLS1_3_VERSION */
	char ciphers[1024];		/* cipherSuites joined by ':' (TLS 1.2); "" default */
	bool crl;			/* caCrl / ca.crl: revoked client certificates refused */
	SSL_CTX *ctx;			/* tls: this server's context */
};

struct gw_set {
	atomic_int ref;
	struct gw_server s[GW_MAX_SERVERS];
	size_t n;
	char keys[ZM_L7_MAX_GATEWAYS][192];
	const char *keyp[ZM_L7_MAX_GATEWAYS];
	size_t nkeys;
	struct zm_l7_gw_host *hosts;	/* every host of every server, for the engine */
	size_t nhosts;
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
	free(g->hosts);
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

enum skind { K_PLAIN, K_TERM, K_PASS, K_TCP, K_AUTO };

static enum skind kind_of(const struct gw_server *s)
{
	return s->tcp ? K_TCP : s->autop ? K_AUTO : s->passthrough ? K_PASS : s->tls ? K_TERM : K_PLAIN;
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
	char *crl;			/* the Secret's ca.crl (PEM), or NULL */
	char what[384];			/* for errors: "Secret ns/name", "credential files" */
};

static void cred_free(struct cred *c)
{
	free(c->cert);
	if (c->key)
		OPENSSL_cleanse(c->key, strlen(c->key));
	free(c->key);
	free(c->ca);
	free(c->crl);
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

/* The certificate, key and CA of Secret @ns/@name (Istio's "<name>-cacert" for the CA too). */
static int load_secret(const struct zm_cfg_set *set, const char *ns, const char *name, bool mutual,
		       struct cred *c, char *why, size_t whysz)
{
	const struct zm_cfg_obj *o = find_secret(set, ns, name), *cao;

	snprintf(c->what, sizeof(c->what), "Secret %s/%s", ns, name);
	if (!o) {
		snprintf(why, whysz, "Secret %s/%s: not found", ns, name);
		return -ENOENT;
	}
	c->cert = secret_field(o->raw, "tls.crt", "cert");
	c->key = secret_field(o->raw, "tls.key", "key");
	c->ca = secret_field(o->raw, "ca.crt", "cacert");
	c->crl = secret_field(o->raw, "ca.crl", "ca.crl");
	if (!c->ca && mutual) {
		char cn[320];

		snprintf(cn, sizeof(cn), "%s-cacert", name);
		if ((cao = find_secret(set, ns, cn))) {
			c->ca = secret_field(cao->raw, "ca.crt", "cacert");
			if (!c->crl)
				c->crl = secret_field(cao->raw, "ca.crl", "ca.crl");
		}
	}
	if (!c->cert || !c->key) {
		snprintf(why, whysz, "Secret %s/%s: no tls.crt/tls.key (or not base64)", ns, name);
		return -EINVAL;
	}
	return 0;
}

#define GW_MAX_CREDS 2

/*
 * The credentials of a TLS server: credentialName, or credentialNames
 * (Istio's newer list: several certificates for the same hosts, e.g. an
 * RSA and an ECDSA one), Secrets in @ns; or files. @c has GW_MAX_CREDS
 * entries; *nc says how many were filled. @why names the Secret at fault.
 */
static int load_creds(const struct zm_cfg_set *set, const char *ns, const struct zm_server_tls *t,
		      bool mutual, struct cred *c, size_t *nc, char *why, size_t whysz)
{
	bool have_ca = false;
	int rc;

	memset(c, 0, GW_MAX_CREDS * sizeof(*c));
	*nc = 0;
	if (t->credential_names.n) {
		if (t->credential_names.n > GW_MAX_CREDS) {
			snprintf(why, whysz, "credentialNames: at most %d Secrets (one per key type)", GW_MAX_CREDS);
			return -EINVAL;
		}
		for (size_t i = 0; i < t->credential_names.n; i++) {
			rc = load_secret(set, ns, t->credential_names.v[i].v, mutual, &c[i], why, whysz);
			*nc = i + 1;
			if (rc)
				return rc;
			have_ca |= c[i].ca != NULL;
		}
	} else if (t->credential_name.v) {
		rc = load_secret(set, ns, t->credential_name.v, mutual, &c[0], why, whysz);
		*nc = 1;
		if (rc)
			return rc;
		have_ca = c[0].ca != NULL;
	} else if (t->server_certificate.v && t->private_key.v) {
		*nc = 1;
		snprintf(c->what, sizeof(c->what), "credential files");
		if (read_pem(t->server_certificate.v, &c->cert) || read_pem(t->private_key.v, &c->key) ||
		    (t->ca_certificates.v && read_pem(t->ca_certificates.v, &c->ca))) {
			snprintf(why, whysz, "credential files: %s", strerror(errno));
			return -ENOENT;
		}
		have_ca = c->ca != NULL;
	} else {
		snprintf(why, whysz, "no credentialName and no serverCertificate/privateKey");
		return -EINVAL;
	}
	if (mutual && !have_ca) {
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

static int svid_td_idx = -1;	/* ISTIO_MUTUAL contexts: the trust domain (ex data) */

/*
 * ISTIO_MUTUAL: OpenSSL has checked the client's chain against the mesh
 * bundle (purpose sslclient); at the leaf, the X509-SVID rules and our
 * trust domain, as every mesh peer is held to (svid.h, tls.c).
 */
static int svid_verify_cb(int preverify, X509_STORE_CTX *xs)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	const char *td = ssl ? SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), svid_td_idx) : NULL;
	struct zm_spiffe_id id;
	char why[256];

	if (!preverify || X509_STORE_CTX_get_error_depth(xs) != 0)
		return preverify;
	if (!td || zm_svid_check(X509_STORE_CTX_get_current_cert(xs), &id, why, sizeof(why)) ||
	    strcmp(id.td, td)) {
		if (td && !strcmp(id.td, td))
			zm_log_info("gateway: ISTIO_MUTUAL client refused: %s", why);
		else
			zm_log_info("gateway: ISTIO_MUTUAL client refused: not an X509-SVID of trust domain %s",
				    td ? td : "?");
		X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
		return 0;
	}
	return 1;
}

static int rules_idx = -1;	/* MUTUAL contexts: struct zm_cert_rules (ex data) */

/*
 * MUTUAL / OPTIONAL_MUTUAL with subjectAltNames or pins: OpenSSL has
 * checked the chain against ca.crt (and the CRLs); at the leaf, Envoy's
 * rules (cert_rules.h). Fails closed: no rules found on a context that
 * asked for this callback refuses the certificate.
 */
static int client_verify_cb(int preverify, X509_STORE_CTX *xs)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	const struct zm_cert_rules *r = ssl ? SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), rules_idx) : NULL;
	char why[160];

	if (!preverify || X509_STORE_CTX_get_error_depth(xs) != 0)
		return preverify;
	if (!r || zm_cert_rules_check(r, X509_STORE_CTX_get_current_cert(xs), why, sizeof(why))) {
		zm_log_info("gateway: MUTUAL client certificate refused: %s", r ? why : "no rules");
		X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
		return 0;
	}
	return 1;
}

/* CRLs from PEM text @pem into @st; 0, or -EINVAL when it holds none. */
static int add_crls(X509_STORE *st, const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	int n = 0;

	for (X509_CRL *crl; b && (crl = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL)); X509_CRL_free(crl))
		n += X509_STORE_add_crl(st, crl) == 1;
	BIO_free(b);
	ERR_clear_error();
	return n ? 0 : -EINVAL;
}

/*
 * The rest of a terminating server's ServerTLSSettings on its context:
 * maxProtocolVersion, cipherSuites and, for MUTUAL (@client), the client
 * certificate restrictions and CRLs. Anything it cannot honour is an
 * error (the server is not started), never ignored.
 */
static int tls_policy(struct gw_server *s, const struct zm_server_tls *t, const struct cred *c, size_t nc,
		      bool client, char *why, size_t whysz)
{
	struct zm_cert_rules *r = NULL;
	X509_STORE *st = SSL_CTX_get_cert_store(s->ctx);
	size_t off = 0;
	int rc;

	switch (t->max_protocol_version.set ? (int)t->max_protocol_version.v : ZM_TLS_AUTO) {
	case ZM_TLS_AUTO: s->max_version = 0; break;
	case ZM_TLSV1_2: s->max_version = TLS1_2_VERSION; break;
	case ZM_TLSV1_3: s->max_version = TLS1_3_VERSION; break;
	default:
		snprintf(why, whysz, "maxProtocolVersion: below TLSV1_2 (zmesh accepts TLS 1.2 and 1.3 only)");
		return -EINVAL;
	}
	if (s->max_version && s->max_version < s->min_version) {
		snprintf(why, whysz, "maxProtocolVersion: below minProtocolVersion");
		return -EINVAL;
	}
	SSL_CTX_set_max_proto_version(s->ctx, s->max_version);
	for (size_t i = 0; i < t->cipher_suites.n; i++) {
		const char *n = t->cipher_suites.v[i].v ? t->cipher_suites.v[i].v : "";
		const char *w = zm_tls12_cipher_check(n);
		int k;

		if (w) {
			snprintf(why, whysz, "cipherSuites[%zu]: \"%.64s\": %s", i, n, w);
			return -EINVAL;
		}
		k = snprintf(s->ciphers + off, sizeof(s->ciphers) - off, "%s%s", off ? ":" : "", n);
		if (k < 0 || (size_t)k >= sizeof(s->ciphers) - off) {
			snprintf(why, whysz, "cipherSuites: too many entries");
			return -EINVAL;
		}
		off += (size_t)k;
	}
	if (s->ciphers[0] && SSL_CTX_set_cipher_list(s->ctx, s->ciphers) != 1) {
		ossl_why("cipherSuites: none usable", why, whysz);
		return -EINVAL;
	}
	if (!client)
		return 0;
	if (!(r = calloc(1, sizeof(*r)))) {
		snprintf(why, whysz, "out of memory");
		return -ENOMEM;
	}
	rc = zm_cert_rules_init(r, &t->subject_alt_names, &t->verify_certificate_spki,
				&t->verify_certificate_hash, why, whysz);
	if (rc || zm_cert_rules_empty(r)) {
		zm_cert_rules_free(r);
		free(r);
		if (rc)
			return rc;
	} else {
		if (!SSL_CTX_set_ex_data(s->ctx, rules_idx, r)) {
			zm_cert_rules_free(r);
			free(r);
			snprintf(why, whysz, "out of memory");
			return -ENOMEM;
		}
		SSL_CTX_set_verify(s->ctx, SSL_CTX_get_verify_mode(s->ctx), client_verify_cb);
	}
	if (t->ca_crl.v) {
		char *pem = NULL;

		rc = read_pem(t->ca_crl.v, &pem);
		if (rc || add_crls(st, pem)) {
			snprintf(why, whysz, "caCrl: %.200s: %s", t->ca_crl.v, rc ? strerror(-rc) : "no PEM CRL");
			free(pem);
			return -EINVAL;
		}
		free(pem);
		s->crl = true;
	}
	for (size_t i = 0; i < nc; i++) {
		if (!c[i].crl)
			continue;
		if (add_crls(st, c[i].crl)) {
			snprintf(why, whysz, "%s: ca.crl: no PEM CRL", c[i].what);
			return -EINVAL;
		}
		s->crl = true;
	}
	if (s->crl)
		X509_STORE_set_flags(st, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
	return 0;
}

static const char *key_type(const EVP_PKEY *k)
{
	switch (EVP_PKEY_get_base_id(k)) {
	case EVP_PKEY_RSA: return "RSA";
	case EVP_PKEY_EC: return "ECDSA";
	case EVP_PKEY_ED25519: return "Ed25519";
	default: return "other";
	}
}

/*
 * A server context from @nc credentials; NULL with @why on error (bad PEM,
 * key not matching). Several credentials must have different key types:
 * OpenSSL keeps one certificate per type and picks the one the client's
 * signature_algorithms (and, for TLS 1.2, cipher suites) allow.
 * @svid_td: ISTIO_MUTUAL: client certificates are X509-SVIDs of it.
 */
static SSL_CTX *server_ctx(const struct cred *c, size_t nc, bool mutual, const char *svid_td, int minv,
			   char *why, size_t whysz)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	const char *types[GW_MAX_CREDS] = { 0 };
	BIO *b = NULL;
	X509 *x = NULL;
	EVP_PKEY *k = NULL;
	int nca = 0;

	if (!ctx) {
		ossl_why("SSL_CTX_new", why, whysz);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, minv);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
	for (size_t i = 0; i < nc && i < GW_MAX_CREDS; i++) {
		char at[400];

		snprintf(at, sizeof(at), "%s: ", c[i].what[0] ? c[i].what : "credential");
		b = BIO_new_mem_buf(c[i].cert, -1);
		x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
		if (!x || SSL_CTX_use_certificate(ctx, x) != 1) {
			snprintf(why, whysz, "%s", at);
			ossl_why("tls.crt: not a PEM certificate", why + strlen(why), whysz - strlen(why));
			goto fail;
		}
		/* the rest of the chain (goes with the certificate just set) */
		for (X509 *ch; (ch = PEM_read_bio_X509(b, NULL, NULL, NULL));)
			if (SSL_CTX_add0_chain_cert(ctx, ch) != 1) {
				X509_free(ch);
				break;
			}
		ERR_clear_error();
		BIO_free(b);
		b = BIO_new_mem_buf(c[i].key, -1);
		k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
		if (k && X509_check_private_key(x, k) != 1) {
			snprintf(why, whysz, "%s", at);
			ossl_why("tls.key does not match tls.crt", why + strlen(why), whysz - strlen(why));
			goto fail;
		}
		if (!k || SSL_CTX_use_PrivateKey(ctx, k) != 1) {
			snprintf(why, whysz, "%s", at);
			ossl_why("tls.key: not a PEM private key", why + strlen(why), whysz - strlen(why));
			goto fail;
		}
		types[i] = key_type(k);
		for (size_t j = 0; j < i; j++)
			if (!strcmp(types[j], types[i])) {
				snprintf(why, whysz, "credentialNames: %.200s and %.200s both hold %s certificates "
					 "(one per key type)", c[j].what, c[i].what, types[i]);
				goto fail;
			}
		X509_free(x);
		EVP_PKEY_free(k);
		BIO_free(b);
		x = NULL;
		k = NULL;
		b = NULL;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ossl_why("tls.key does not match tls.crt", why, whysz);
		goto fail;
	}
	if (mutual) {
		X509_STORE *st = SSL_CTX_get_cert_store(ctx);

		for (size_t i = 0; i < nc; i++) {
			BIO *cb = c[i].ca ? BIO_new_mem_buf(c[i].ca, -1) : NULL;

			for (X509 *ca; cb && (ca = PEM_read_bio_X509(cb, NULL, NULL, NULL)); X509_free(ca))
				nca += X509_STORE_add_cert(st, ca) == 1;
			BIO_free(cb);
		}
		ERR_clear_error();
		if (!nca) {
			snprintf(why, whysz, "%s: no PEM certificate", svid_td ? "mesh trust bundle" : "ca.crt");
			goto fail;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
				   svid_td ? svid_verify_cb : NULL);
		SSL_CTX_set_verify_depth(ctx, 4);
		SSL_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
		if (svid_td) {
			char *td = OPENSSL_strdup(svid_td);

			if (!td || !SSL_CTX_set_ex_data(ctx, svid_td_idx, td)) {
				OPENSSL_free(td);
				snprintf(why, whysz, "out of memory");
				goto fail;
			}
		}
	}
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

static bool is_tcp_proto(const char *p)
{
	return !strcasecmp(p, "TCP") || !strcasecmp(p, "MONGO") || !strcasecmp(p, "MYSQL") ||
	       !strcasecmp(p, "REDIS");
}

/* ISTIO_MUTUAL: the gateway's own mesh credential; the trust domain into @td. */
static int mesh_cred(struct cred *c, char *td, size_t tdsz, char *why, size_t whysz)
{
	char id[640];
	struct zm_spiffe_id sid;
	int rc = wp_mesh_cred(&c->key, &c->cert, &c->ca, id, sizeof(id));

	if (rc == -ENOENT) {
		snprintf(why, whysz, "ISTIO_MUTUAL needs the gateway's mesh certificate "
			 "(run with --hbone-port; a lab without --no-mesh)");
		return rc;
	}
	if (rc || zm_spiffe_parse(id, strlen(id), &sid)) {
		snprintf(why, whysz, "mesh certificate: %s", strerror(rc ? -rc : EINVAL));
		return rc ? rc : -EINVAL;
	}
	snprintf(td, tdsz, "%s", sid.td);
	snprintf(c->what, sizeof(c->what), "mesh certificate %s", id);
	return 0;
}

static void add_server(struct gw_set *g, const struct zm_cfg_set *set, const struct zm_cfg_obj *o,
		       size_t idx, const char *key)
{
	const struct zm_server *sv = &o->gw->servers.v[idx];
	struct gw_server *s;
	const char *proto = sv->port.protocol.v ? sv->port.protocol.v : "HTTP";
	const char *gwns = o->meta.ns.v ? o->meta.ns.v : "default";
	int mode = sv->tls.o.set ? (int)sv->tls.mode.v : -1;
	char why[512] = "";
	struct cred c[GW_MAX_CREDS];
	size_t nc = 0;

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

		/* Istio: "ns/host" binds VirtualServices of ns only, "./host" of
		 * the Gateway's namespace, "*" / no prefix of any namespace */
		if (!sl)
			snprintf(s->hns[s->nhosts], sizeof(s->hns[0]), "*");
		else if (sl - h == 1 && h[0] == '.')
			snprintf(s->hns[s->nhosts], sizeof(s->hns[0]), "%s", gwns);
		else
			snprintf(s->hns[s->nhosts], sizeof(s->hns[0]), "%.*s", (int)(sl - h), h);
		snprintf(s->hosts[s->nhosts++], sizeof(s->hosts[0]), "%s", sl ? sl + 1 : h);
	}
	s->https_redirect = sv->tls.o.set && sv->tls.https_redirect.v;
	if (is_tcp_proto(proto)) {
		s->tcp = true;
		g->n++;
		return;
	}
	if (mode == ZM_STLS_AUTO_PASSTHROUGH) {
		if (strcasecmp(proto, "TLS") && strcasecmp(proto, "HTTPS")) {
			zm_log_error("gateway %s: servers[%zu] (port %d): AUTO_PASSTHROUGH needs protocol TLS, "
				     "not %s; server not started", key, idx, s->port, proto);
			return;
		}
		s->autop = true;
		g->n++;
		return;
	}
	if ((!strcasecmp(proto, "TLS") || !strcasecmp(proto, "HTTPS")) &&
	    (mode == ZM_STLS_PASSTHROUGH || (mode < 0 && !strcasecmp(proto, "TLS")))) {
		s->passthrough = true;
		g->n++;
		return;
	}
	if (!strcasecmp(proto, "HTTPS") || (sv->tls.o.set && mode >= 0 && !s->https_redirect &&
					    (mode == ZM_STLS_SIMPLE || mode == ZM_STLS_MUTUAL ||
					     mode == ZM_STLS_ISTIO_MUTUAL))) {
		bool mutual = mode == ZM_STLS_MUTUAL || mode == ZM_STLS_ISTIO_MUTUAL ||
			      mode == ZM_STLS_OPTIONAL_MUTUAL;
		const char *gns = wp_options->gateway_ns;
		char td[ZM_TD_MAX + 1] = "";
		int rc;

		s->tls = true;
		s->istio_mutual = mode == ZM_STLS_ISTIO_MUTUAL;
		s->min_version = sv->tls.min_protocol_version.v == ZM_TLSV1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
		memset(c, 0, sizeof(c));
		if (s->istio_mutual) {
			/* Istio: the gateway's own workload certificate; the
			 * client's must chain to the mesh bundle */
			rc = mesh_cred(&c[0], td, sizeof(td), why, sizeof(why));
			nc = 1;
		} else {
			rc = load_creds(set, gns, &sv->tls, mutual, c, &nc, why, sizeof(why));
		}
		if (!rc && !(s->ctx = server_ctx(c, nc, mutual, s->istio_mutual ? td : NULL, s->min_version,
						 why, sizeof(why))))
			rc = -EINVAL;
		if (!rc)
			rc = tls_policy(s, &sv->tls, c, nc, mutual && !s->istio_mutual, why, sizeof(why));
		for (size_t i = 0; i < nc; i++)
			cred_free(&c[i]);
		if (rc == -ENOENT && s->istio_mutual && wp_options->hbone_port) {
			/* the first generation is built before the HBONE front
			 * has its certificate; main.c rebuilds once it has */
			zm_log_info("gateway %s: servers[%zu] (port %d): ISTIO_MUTUAL waits for the mesh certificate",
				    key, idx, s->port);
			return;
		}
		if (rc) {
			zm_log_error("gateway %s: servers[%zu] (port %d): %s; server not started", key, idx,
				     s->port, why);
			SSL_CTX_free(s->ctx);
			s->ctx = NULL;
			return;
		}
	}
	g->n++;
}

/* An Istio host pattern against another ("*.a.com" and "x.a.com" overlap). */
static bool hosts_overlap(const char *a, const char *b)
{
	return zm_host_match(a, b) || zm_host_match(b, a);
}

/*
 * Make the binding visible: a VirtualService that names a served Gateway
 * but none of whose hosts a server of it admits for its namespace (Istio's
 * "ns/host") is logged once per generation; requests for it get 404.
 */
static void log_unbound(const struct gw_set *g, const struct zm_cfg_set *set)
{
	for (size_t i = 0; i < set->nobjs; i++) {
		const struct zm_cfg_obj *o = set->objs[i];
		const char *ns = o->meta.ns.v ? o->meta.ns.v : "default";

		if (o->kind != ZM_K_VIRTUALSERVICE)
			continue;
		for (size_t k = 0; k < o->vs->gateways.n; k++) {
			const char *n = o->vs->gateways.v[k].v;
			char gk[192];
			bool served = false, host_seen = false, admitted = false;

			if (strchr(n, '/'))
				snprintf(gk, sizeof(gk), "%s", n);
			else
				snprintf(gk, sizeof(gk), "%s/%s", ns, n);
			for (size_t j = 0; j < g->nkeys; j++)
				served |= !strcmp(g->keys[j], gk);
			if (!served)
				continue;
			for (size_t h = 0; h < g->nhosts && !admitted; h++) {
				const struct zm_l7_gw_host *e = &g->hosts[h];

				if (strcmp(e->gw, gk) || e->auto_passthrough)
					continue;
				for (size_t v = 0; v < o->vs->hosts.n && !admitted; v++) {
					if (!hosts_overlap(e->host, o->vs->hosts.v[v].v))
						continue;
					host_seen = true;
					admitted = !strcmp(e->ns, "*") || !strcmp(e->ns, ns);
				}
			}
			if (host_seen && !admitted)
				zm_log_warn("gateway %s: VirtualService %s/%s not bound: the servers' hosts for its "
					    "hosts admit other namespaces only (Gateway hosts \"ns/host\")",
					    gk, ns, o->meta.name.v);
		}
	}
}

/* The engine's view of the servers' hosts (zm_l7_opts.gw_hosts). */
static int build_hosts(struct gw_set *g)
{
	size_t n = 0;

	for (size_t i = 0; i < g->n; i++)
		n += g->s[i].nhosts;
	if (!n)
		return 0;
	if (!(g->hosts = calloc(n, sizeof(*g->hosts))))
		return -ENOMEM;
	for (size_t i = 0; i < g->n; i++)
		for (size_t j = 0; j < g->s[i].nhosts; j++) {
			struct zm_l7_gw_host *e = &g->hosts[g->nhosts++];

			snprintf(e->gw, sizeof(e->gw), "%s", g->s[i].gw);
			e->port = g->s[i].port;
			snprintf(e->ns, sizeof(e->ns), "%s", g->s[i].hns[j]);
			snprintf(e->host, sizeof(e->host), "%s", g->s[i].hosts[j]);
			e->auto_passthrough = g->s[i].autop;
		}
	return 0;
}

static SSL_CTX *listener_ctx(void);

int wp_gw_build(const struct zm_cfg_set *set, struct gw_set **out)
{
	struct gw_set *g = calloc(1, sizeof(*g));

	*out = NULL;
	if (!g)
		return -ENOMEM;
	listener_ctx();		/* the ex_data indexes */
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
	if (build_hosts(g)) {
		wp_gw_put(g);
		return -ENOMEM;
	}
	log_unbound(g, set);
	*out = g;
	return 0;
}

const struct zm_l7_gw_host *wp_gw_hosts(const struct gw_set *g, size_t *n)
{
	*n = g->nhosts;
	return g->hosts;
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
	const struct gw_server *s;	/* chosen by on_hello */
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
	t->s = s;
	SSL_set_SSL_CTX(ssl, s->ctx);
	/* the SSL keeps the first context's verify settings: take the server's */
	SSL_set_verify(ssl, SSL_CTX_get_verify_mode(s->ctx), SSL_CTX_get_verify_callback(s->ctx));
	if (SSL_CTX_get_verify_mode(s->ctx) & SSL_VERIFY_PEER)
		SSL_set_purpose(ssl, X509_PURPOSE_SSL_CLIENT);
	/* version range, ciphers and verify flags live in the SSL (copied
	 * from the listener context at SSL_new): take the server's */
	SSL_set_min_proto_version(ssl, s->min_version);
	SSL_set_max_proto_version(ssl, s->max_version);
	if (s->ciphers[0] && SSL_set_cipher_list(ssl, s->ciphers) != 1) {
		*al = SSL_AD_INTERNAL_ERROR;
		return SSL_CLIENT_HELLO_ERROR;
	}
	if (s->crl)
		X509_VERIFY_PARAM_set_flags(SSL_get0_param(ssl), X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
	return SSL_CLIENT_HELLO_SUCCESS;
}

static SSL_CTX *lctx_ssl;
static pthread_once_t lctx_once = PTHREAD_ONCE_INIT;

static void td_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	OPENSSL_free(ptr);
}

static void rules_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	if (ptr) {
		zm_cert_rules_free(ptr);
		free(ptr);
	}
}

static void lctx_init(void)
{
	tconn_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	svid_td_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, td_free);
	rules_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, rules_free);
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

/* @principal: the client's verified SPIFFE ID (ISTIO_MUTUAL), for policy; or NULL. */
static int start_conn(int fd, const struct sockaddr_storage *ss, int port, bool tls, const char *sni,
		      bool tcp, const char *principal)
{
	struct conn *c = wp_conn_new(fd, ss);
	pthread_attr_t at;
	pthread_t th;

	if (!c)
		return -ENOMEM;
	c->gw_port = port;
	c->gw_tls = tls;
	c->tcp = tcp;
	if (principal) {
		c->mtls = true;
		snprintf(c->principal, sizeof(c->principal), "%s", principal);
	}
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
	char peer[64], principal[640] = "";

	zm_sock_addr_str((const struct sockaddr *)&a->ss, peer, sizeof(peer));
	if (!t.g)
		goto out;
	if (port_has(a->port, K_PASS) || port_has(a->port, K_AUTO)) {
		/* PASSTHROUGH: the SNI of the ClientHello, read without taking
		 * it; AUTO_PASSTHROUGH: an SNI naming a service the server's
		 * hosts cover (the engine routes it, zm_l7_decide_gateway_l4) */
		char sni[256] = "", sub[64], host[256];
		int r = peek_sni(a->fd, sni, sizeof(sni)), sport;
		const struct gw_server *as = NULL;

		if (r == 0 && !zm_l7_sni_cluster(sni, &sport, sub, sizeof(sub), host, sizeof(host)))
			as = server_for(t.g, a->port, host, K_AUTO);
		if (r == 0 && (as || server_for(t.g, a->port, sni, K_PASS))) {
			if (start_conn(a->fd, &a->ss, a->port, false, sni, true, NULL) == 0)
				a->fd = -1;
			goto out;
		}
		if (!port_has(a->port, K_TERM)) {
			const struct gw_server *any = NULL;

			for (size_t i = 0; i < t.g->n && !any; i++)
				if (t.g->s[i].port == a->port && kind_of(&t.g->s[i]) == K_AUTO)
					any = &t.g->s[i];
			if (any)
				zm_log_info("gateway %s: port %d (AUTO_PASSTHROUGH): TLS from %s refused: sni \"%s\" "
					    "is not outbound_.<port>_.<subset>_.<host> of a host it serves",
					    any->gw, a->port, peer, sni);
			else
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
	if (t.s && t.s->istio_mutual) {
		/* the verified client SVID: source.principal for policy */
		X509 *pc = SSL_get0_peer_certificate(ssl);
		struct zm_spiffe_id id;

		if (!pc || zm_svid_check(pc, &id, NULL, 0) || zm_spiffe_format(&id, principal, sizeof(principal)) < 0) {
			zm_log_info("gateway %s: port %d: TLS from %s refused: no client SVID", t.s->gw, a->port, peer);
			goto out;
		}
	}
	if (start_conn(sp[1], &a->ss, a->port, true, t.sni, false, principal[0] ? principal : NULL)) {
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
		if (!port_has(l->port, K_TCP) &&
		    (port_has(l->port, K_TERM) || port_has(l->port, K_PASS) || port_has(l->port, K_AUTO))) {
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
		} else if (start_conn(fd, &ss, l->port, false, NULL, port_has(l->port, K_TCP), NULL)) {
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
