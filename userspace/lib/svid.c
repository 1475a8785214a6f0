// SPDX-License-Identifier: Apache-2.0
/* X509-SVID rules, and a full verification for certificates not seen over TLS. */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "zmesh/svid.h"

#define WHY(...) do { if (why) snprintf(why, whysz, __VA_ARGS__); return -EACCES; } while (0)

int zm_svid_check(X509 *leaf, struct zm_spiffe_id *out, char *why, size_t whysz)
{
	uint32_t ku, xku, flags;

	/* Computes the cached extension flags; fails on malformed extensions. */
	if (X509_check_purpose(leaf, -1, 0) != 1 || (X509_get_extension_flags(leaf) & EXFLAG_INVALID))
		WHY("certificate extensions are malformed");
	flags = X509_get_extension_flags(leaf);
	if (flags & EXFLAG_CA)
		WHY("leaf certificate is a CA (CA:TRUE)");
	ku = X509_get_key_usage(leaf);
	if (!(flags & EXFLAG_KUSAGE) || ku == UINT32_MAX)
		WHY("leaf certificate has no keyUsage");
	if (ku & (KU_KEY_CERT_SIGN | KU_CRL_SIGN))
		WHY("leaf certificate may sign certificates or CRLs (keyCertSign/cRLSign)");
	if (!(ku & KU_DIGITAL_SIGNATURE))
		WHY("leaf certificate lacks digitalSignature");
	xku = X509_get_extended_key_usage(leaf);
	if ((flags & EXFLAG_XKUSAGE) && (!(xku & XKU_SSL_SERVER) || !(xku & XKU_SSL_CLIENT)))
		WHY("extended key usage lacks serverAuth or clientAuth");
	return zm_spiffe_from_x509(leaf, out, why, whysz);
}

int zm_svid_verify(X509 *leaf, STACK_OF(X509) *untrusted, X509_STORE *roots, const char *td,
		   int purpose, struct zm_spiffe_id *out, struct zm_error *e)
{
	X509_STORE_CTX *xs = X509_STORE_CTX_new();
	char why[256];
	int rc = -EACCES;

	if (!xs)
		return zm_error_set(e, ENOMEM, "out of memory");
	if (X509_STORE_CTX_init(xs, roots, leaf, untrusted) != 1 ||
	    X509_STORE_CTX_set_purpose(xs, purpose) != 1) {
		rc = zm_error_set(e, EINVAL, "certificate verification could not start");
		goto out;
	}
	if (X509_verify_cert(xs) != 1) {
		rc = zm_error_set(e, EACCES, "certificate chain: %s",
				  X509_verify_cert_error_string(X509_STORE_CTX_get_error(xs)));
		goto out;
	}
	if (zm_svid_check(leaf, out, why, sizeof(why))) {
		rc = zm_error_set(e, EACCES, "%s", why);
		goto out;
	}
	if (td && strcmp(out->td, td)) {
		rc = zm_error_set(e, EACCES, "peer trust domain %s is not ours (%s)", out->td, td);
		goto out;
	}
	rc = 0;
out:
	X509_STORE_CTX_free(xs);
	ERR_clear_error();
	return rc;
}

int zm_svid_expect(const struct zm_spiffe_id *want, const struct zm_spiffe_id *got, struct zm_error *e)
{
	char w[ZM_SPIFFE_MAX], g[ZM_SPIFFE_MAX];

	if (got && zm_spiffe_eq(want, got))
		return 0;
	zm_spiffe_format(want, w, sizeof(w));
	if (!got)
		return zm_error_set(e, EACCES, "peer identity: want %s, got no verified identity", w);
	zm_spiffe_format(got, g, sizeof(g));
	return zm_error_set(e, EACCES, "peer identity: want %s, got %s", w, g);
}
