// SPDX-License-Identifier: Apache-2.0
/* Workload keys, CSRs and the cached SVID record. */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zmesh/bundle.h"
#include "zmesh/keymat.h"
#include "zmesh/svid.h"

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

static void free_secret(char *s)
{
	if (s)
		OPENSSL_cleanse(s, strlen(s));
	free(s);
}

int zm_key_csr(const struct zm_spiffe_id *id, char **key_pem, char **csr_pem, struct zm_error *e)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509_REQ *req = X509_REQ_new();
	BIO *kb = BIO_new(BIO_s_mem()), *cb = BIO_new(BIO_s_mem());
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	X509_EXTENSION *san = NULL;
	char uri[ZM_SPIFFE_MAX + 8], errs[256];
	int rc = -ENOMEM;

	*key_pem = *csr_pem = NULL;
	if (!k || !req || !kb || !cb || !exts) {
		zm_error_set(e, ENOMEM, "key/CSR: out of memory");
		goto out;
	}
	if (zm_spiffe_format(id, uri + 4, sizeof(uri) - 4)) {
		rc = zm_error_set(e, EINVAL, "key/CSR: identity too long");
		goto out;
	}
	memcpy(uri, "URI:", 4);
	san = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, uri);
	if (san && !sk_X509_EXTENSION_push(exts, san)) {
		X509_EXTENSION_free(san);
		san = NULL;
	}
	if (!san || !X509_REQ_add_extensions(req, exts) ||
	    !X509_REQ_set_version(req, 0) || !X509_REQ_set_pubkey(req, k) ||
	    !X509_REQ_sign(req, k, EVP_sha256()) ||
	    !PEM_write_bio_PrivateKey(kb, k, NULL, NULL, 0, NULL, NULL) || !PEM_write_bio_X509_REQ(cb, req)) {
		ERR_error_string_n(ERR_get_error(), errs, sizeof(errs));
		rc = zm_error_set(e, EIO, "key/CSR: %s", errs);
		goto out;
	}
	*key_pem = bio_str(kb);
	*csr_pem = bio_str(cb);
	if (*key_pem && *csr_pem) {
		rc = 0;
	} else {
		free_secret(*key_pem);
		free(*csr_pem);
		*key_pem = *csr_pem = NULL;
		zm_error_set(e, ENOMEM, "out of memory");
	}
out:
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	EVP_PKEY_free(k);
	X509_REQ_free(req);
	BIO_free(kb);
	BIO_free(cb);
	ERR_clear_error();
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
	if (!(rnd >= 0.0 && rnd <= 1.0))	/* also catches NaN */
		rnd = 0.0;
	at = nb + life / 2 - (time_t)((double)life * jitter_pct / 100.0 * rnd);
	return at < now ? now : at;
}

static int asn1_time(const ASN1_TIME *t, time_t *out)
{
	struct tm tm;

	if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
		return -EINVAL;
	*out = timegm(&tm);
	return 0;
}

int zm_svid_cert_load(struct zm_svid_cert *c, const char *key_pem, const char *chain_pem,
		      struct zm_error *e)
{
	STACK_OF(X509) *chain = NULL;
	BIO *b = NULL;
	EVP_PKEY *key = NULL;
	X509 *leaf;
	char why[256];
	int rc = -EINVAL;

	memset(c, 0, sizeof(*c));
	if (!key_pem || !chain_pem)
		return zm_error_set(e, EINVAL, "SVID: key and chain are required");
	chain = zm_pem_certs(chain_pem, e);
	if (!chain)
		goto out;
	leaf = sk_X509_value(chain, 0);
	b = BIO_new_mem_buf(key_pem, -1);
	key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	if (!key) {
		zm_error_set(e, EINVAL, "SVID: cannot read the private key");
		goto out;
	}
	if (X509_check_private_key(leaf, key) != 1) {
		zm_error_set(e, EINVAL, "SVID: the private key does not match the certificate");
		goto out;
	}
	if (zm_svid_check(leaf, &c->id, why, sizeof(why))) {
		zm_error_set(e, EINVAL, "SVID: %s", why);
		goto out;
	}
	if (asn1_time(X509_get0_notBefore(leaf), &c->not_before) ||
	    asn1_time(X509_get0_notAfter(leaf), &c->not_after)) {
		zm_error_set(e, EINVAL, "SVID: unreadable validity dates");
		goto out;
	}
	c->key_pem = strdup(key_pem);
	c->chain_pem = strdup(chain_pem);
	if (!c->key_pem || !c->chain_pem) {
		rc = zm_error_set(e, ENOMEM, "out of memory");
		goto out;
	}
	rc = 0;
out:
	if (rc)
		zm_svid_cert_clear(c);
	sk_X509_pop_free(chain, X509_free);
	EVP_PKEY_free(key);
	BIO_free(b);
	ERR_clear_error();
	return rc;
}

void zm_svid_cert_clear(struct zm_svid_cert *c)
{
	free_secret(c->key_pem);
	free(c->chain_pem);
	memset(c, 0, sizeof(*c));
}

time_t zm_svid_cert_renew_at(const struct zm_svid_cert *c, time_t now, double rnd)
{
	if (!c->chain_pem)
		return now;
	return zm_renew_at(c->not_before, c->not_after, now, ZM_RENEW_JITTER_PCT, rnd);
}

bool zm_svid_cert_valid_at(const struct zm_svid_cert *c, time_t now)
{
	return c->chain_pem && now >= c->not_before && now < c->not_after;
}

double zm_rand_unit(void)
{
	uint64_t r = 0;

	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		return 0.5;
	return (double)(r >> 11) / (double)(1ull << 53);
}
