// SPDX-License-Identifier: Apache-2.0
/* The mesh CA: root generation or plug-in CA, CSR signing, key+CSR making. */
#include <errno.h>
#include <limits.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zmesh/ca.h"
#include "zmesh/fsutil.h"

struct zm_ca {
	EVP_PKEY *key;		/* signing key */
	X509 *cert;		/* signing certificate */
	char *chain;		/* PEM: signing cert + intermediates (not the root); "" for a root */
	char *bundle;		/* PEM: trusted roots */
};

static char *bio_str(BIO *b)
{
	char *data, *s;
	long n = BIO_get_mem_data(b, &data);

	s = malloc((size_t)n + 1);
	if (s) {
		memcpy(s, data, (size_t)n);
		s[n] = 0;
	}
	return s;
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && n < (1 << 20) &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1))) {
		if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		} else {
			buf[n] = 0;
		}
	}
	fclose(f);
	return buf;
}

static int ssl_err(struct zm_error *e, const char *what)
{
	char buf[256];

	ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
	ERR_clear_error();
	return zm_error_set(e, EINVAL, "%s: %s", what, buf);
}

static EVP_PKEY *p256_key(void)
{
	return EVP_EC_gen("P-256");
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return -EINVAL;
	X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return 0;
}

static int random_serial(X509 *cert)
{
	unsigned char b[16];
	BIGNUM *bn;
	int rc = -EIO;

	if (RAND_bytes(b, sizeof(b)) != 1)
		return -EIO;
	b[0] &= 0x7f;	/* positive */
	bn = BN_bin2bn(b, sizeof(b), NULL);
	if (bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)))
		rc = 0;
	BN_free(bn);
	return rc;
}

static int make_root(const char *dir, struct zm_ca *ca, struct zm_error *e)
{
	char path[PATH_MAX];
	X509 *c = X509_new();
	X509_NAME *name = X509_NAME_new();
	FILE *f;
	int rc = -EIO;

	ca->key = p256_key();
	if (!c || !name || !ca->key)
		goto out;
	X509_set_version(c, 2);
	random_serial(c);
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"cluster.local", -1, -1, 0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"zmesh root CA", -1, -1, 0);
	X509_set_subject_name(c, name);
	X509_set_issuer_name(c, name);
	X509_gmtime_adj(X509_getm_notBefore(c), -60);
	X509_gmtime_adj(X509_getm_notAfter(c), 10L * 365 * 24 * 3600);
	X509_set_pubkey(c, ca->key);
	if (add_ext(c, c, NID_basic_constraints, "critical,CA:TRUE") ||
	    add_ext(c, c, NID_key_usage, "critical,keyCertSign,cRLSign") ||
	    add_ext(c, c, NID_subject_key_identifier, "hash") ||
	    !X509_sign(c, ca->key, EVP_sha256())) {
		rc = ssl_err(e, "make root CA");
		goto out;
	}
	snprintf(path, sizeof(path), "%s/root-key.pem", dir);
	umask(077);
	f = fopen(path, "we");
	if (!f || !PEM_write_PrivateKey(f, ca->key, NULL, NULL, 0, NULL, NULL)) {
		rc = zm_error_set(e, errno ? errno : EIO, "%s: cannot write", path);
		if (f)
			fclose(f);
		goto out;
	}
	fclose(f);
	snprintf(path, sizeof(path), "%s/root-cert.pem", dir);
	f = fopen(path, "we");
	if (!f || !PEM_write_X509(f, c)) {
		rc = zm_error_set(e, errno ? errno : EIO, "%s: cannot write", path);
		if (f)
			fclose(f);
		goto out;
	}
	fclose(f);
	ca->cert = c;
	c = NULL;
	rc = 0;
out:
	X509_free(c);
	X509_NAME_free(name);
	return rc;
}

static int load_pem(const char *path, X509 **cert, EVP_PKEY **key, struct zm_error *e)
{
	FILE *f = fopen(path, "re");
	void *x;

	if (!f)
		return zm_error_set(e, errno, "%s: %s", path, strerror(errno));
	x = cert ? (void *)PEM_read_X509(f, NULL, NULL, NULL) : (void *)PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (!x)
		return ssl_err(e, path);
	if (cert)
		*cert = x;
	else
		*key = x;
	return 0;
}

int zm_ca_open(const char *dir, struct zm_ca **out, struct zm_error *e)
{
	struct zm_ca *ca = calloc(1, sizeof(*ca));
	char path[PATH_MAX];
	int rc;

	*out = NULL;
	if (!ca)
		return zm_error_set(e, ENOMEM, "out of memory");
	snprintf(path, sizeof(path), "%s/cacerts/ca-cert.pem", dir);
	if (access(path, F_OK) == 0) {
		/* Istio's plug-in CA: an intermediate signs, root-cert.pem is trusted. */
		rc = load_pem(path, &ca->cert, NULL, e);
		snprintf(path, sizeof(path), "%s/cacerts/ca-key.pem", dir);
		if (!rc)
			rc = load_pem(path, NULL, &ca->key, e);
		snprintf(path, sizeof(path), "%s/cacerts/cert-chain.pem", dir);
		ca->chain = read_file(path);
		snprintf(path, sizeof(path), "%s/cacerts/root-cert.pem", dir);
		ca->bundle = read_file(path);
		if (!rc && (!ca->chain || !ca->bundle))
			rc = zm_error_set(e, ENOENT, "%s/cacerts: need ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem", dir);
		if (!rc && X509_check_private_key(ca->cert, ca->key) != 1)
			rc = zm_error_set(e, EINVAL, "%s/cacerts: ca-key.pem does not match ca-cert.pem", dir);
	} else {
		snprintf(path, sizeof(path), "%s/root-cert.pem", dir);
		rc = zm_mkdir_p(dir, 0700);
		if (rc)
			rc = zm_error_set(e, -rc, "%s: %s", dir, strerror(-rc));
		else if (access(path, F_OK) == 0) {
			rc = load_pem(path, &ca->cert, NULL, e);
			snprintf(path, sizeof(path), "%s/root-key.pem", dir);
			if (!rc)
				rc = load_pem(path, NULL, &ca->key, e);
		} else {
			rc = make_root(dir, ca, e);
		}
		if (!rc) {
			BIO *b = BIO_new(BIO_s_mem());

			PEM_write_bio_X509(b, ca->cert);
			ca->bundle = bio_str(b);
			BIO_free(b);
			ca->chain = strdup("");
		}
	}
	if (rc) {
		zm_ca_free(ca);
		return rc;
	}
	*out = ca;
	return 0;
}

void zm_ca_free(struct zm_ca *ca)
{
	if (!ca)
		return;
	EVP_PKEY_free(ca->key);
	X509_free(ca->cert);
	free(ca->chain);
	free(ca->bundle);
	free(ca);
}

const char *zm_ca_bundle(struct zm_ca *ca)
{
	return ca->bundle;
}

static bool is_p256(EVP_PKEY *k)
{
	char group[64];
	size_t len;

	return EVP_PKEY_get_base_id(k) == EVP_PKEY_EC &&
	       EVP_PKEY_get_utf8_string_param(k, "group", group, sizeof(group), &len) == 1 &&
	       !strcmp(group, "prime256v1");
}

int zm_ca_sign(struct zm_ca *ca, const char *csr_pem, const struct zm_spiffe_id *id,
	       unsigned ttl, char **chain_pem, struct zm_error *e)
{
	BIO *in = BIO_new_mem_buf(csr_pem, -1), *out = NULL;
	X509_REQ *req = NULL;
	EVP_PKEY *pub = NULL;
	X509 *c = NULL;
	char san[ZM_SPIFFE_MAX + 8], uri[ZM_SPIFFE_MAX];
	int rc = -EINVAL;

	*chain_pem = NULL;
	if (!in)
		return zm_error_set(e, ENOMEM, "out of memory");
	req = PEM_read_bio_X509_REQ(in, NULL, NULL, NULL);
	if (!req) {
		rc = ssl_err(e, "CSR");
		goto out;
	}
	pub = X509_REQ_get_pubkey(req);
	if (!pub || X509_REQ_verify(req, pub) != 1) {
		rc = zm_error_set(e, EINVAL, "CSR: bad signature");
		goto out;
	}
	if (!is_p256(pub)) {
		rc = zm_error_set(e, EINVAL, "CSR: key must be ECDSA P-256");
		goto out;
	}
	if (ttl < 60 || ttl > 90u * 24 * 3600) {
		rc = zm_error_set(e, EINVAL, "TTL %u s out of range (60 s to 90 days)", ttl);
		goto out;
	}
	if (zm_spiffe_format(id, uri, sizeof(uri))) {
		rc = zm_error_set(e, EINVAL, "identity too long");
		goto out;
	}
	c = X509_new();
	X509_set_version(c, 2);
	random_serial(c);
	X509_set_issuer_name(c, X509_get_subject_name(ca->cert));
	X509_gmtime_adj(X509_getm_notBefore(c), -60);
	X509_gmtime_adj(X509_getm_notAfter(c), (long)ttl);
	X509_set_pubkey(c, pub);
	snprintf(san, sizeof(san), "URI:%s", uri);
	if (add_ext(c, ca->cert, NID_basic_constraints, "critical,CA:FALSE") ||
	    add_ext(c, ca->cert, NID_key_usage, "critical,digitalSignature,keyEncipherment") ||
	    add_ext(c, ca->cert, NID_ext_key_usage, "serverAuth,clientAuth") ||
	    add_ext(c, ca->cert, NID_subject_alt_name, san) ||
	    add_ext(c, ca->cert, NID_authority_key_identifier, "keyid:always") ||
	    !X509_sign(c, ca->key, EVP_sha256())) {
		rc = ssl_err(e, "sign");
		goto out;
	}
	out = BIO_new(BIO_s_mem());
	PEM_write_bio_X509(out, c);
	if (ca->chain[0])
		BIO_puts(out, ca->chain);
	*chain_pem = bio_str(out);
	rc = *chain_pem ? 0 : zm_error_set(e, ENOMEM, "out of memory");
out:
	BIO_free(in);
	BIO_free(out);
	X509_REQ_free(req);
	EVP_PKEY_free(pub);
	X509_free(c);
	return rc;
}

int zm_key_csr(const struct zm_spiffe_id *id, char **key_pem, char **csr_pem, struct zm_error *e)
{
	EVP_PKEY *k = p256_key();
	X509_REQ *req = X509_REQ_new();
	BIO *kb = BIO_new(BIO_s_mem()), *cb = BIO_new(BIO_s_mem());
	int rc = -EIO;

	(void)id;	/* the CA decides the SAN; the CSR only proves the key */
	*key_pem = *csr_pem = NULL;
	if (!k || !req || !kb || !cb)
		goto out;
	X509_REQ_set_version(req, 0);
	X509_REQ_set_pubkey(req, k);
	if (!X509_REQ_sign(req, k, EVP_sha256()) || !PEM_write_bio_PrivateKey(kb, k, NULL, NULL, 0, NULL, NULL) ||
	    !PEM_write_bio_X509_REQ(cb, req)) {
		rc = ssl_err(e, "key/CSR");
		goto out;
	}
	*key_pem = bio_str(kb);
	*csr_pem = bio_str(cb);
	rc = *key_pem && *csr_pem ? 0 : -ENOMEM;
out:
	EVP_PKEY_free(k);
	X509_REQ_free(req);
	BIO_free(kb);
	BIO_free(cb);
	return rc;
}

time_t zm_renew_at(time_t nb, time_t na, time_t now, int jitter_pct, double rnd)
{
	time_t life = na - nb, at;

	if (now < nb || now >= na || life <= 0)
		return now;
	if (jitter_pct < 0)
		jitter_pct = 0;
	if (jitter_pct > 20)
		jitter_pct = 20;
	at = nb + life / 2 - (time_t)((double)life * jitter_pct / 100.0 * rnd);
	return at < now ? now : at;
}
