// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "zmesh/spiffe.h"

/* Trust domain: lower-case letters, digits, '.', '-', '_' (SPIFFE spec). */
static bool td_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

/* Path segment characters the SPIFFE spec allows. */
static bool seg_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-' || c == '_';
}

/* Copy the segment [s, s+n) into out (cap incl. NUL) if valid. */
static int seg(const char *s, size_t n, char *out, size_t cap, bool td)
{
	if (n == 0 || n >= cap)
		return -EINVAL;
	if (!td && ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (td ? !td_char(s[i]) : !seg_char(s[i]))
			return -EINVAL;
	memcpy(out, s, n);
	out[n] = 0;
	return 0;
}

int zm_spiffe_parse(const char *s, size_t len, struct zm_spiffe_id *out)
{
	static const char scheme[] = "spiffe://";
	const char *p, *end = s + len, *slash;
	const char *parts[4];
	size_t plen[4];

	if (len > ZM_SPIFFE_MAX || len < sizeof(scheme) || memcmp(s, scheme, sizeof(scheme) - 1))
		return -EINVAL;
	p = s + sizeof(scheme) - 1;
	slash = memchr(p, '/', (size_t)(end - p));
	if (!slash || seg(p, (size_t)(slash - p), out->td, sizeof(out->td), true))
		return -EINVAL;
	p = slash + 1;
	/* Exactly ns/<ns>/sa/<sa>. */
	for (int i = 0; i < 4; i++) {
		slash = memchr(p, '/', (size_t)(end - p));
		if (i < 3 && !slash)
			return -EINVAL;
		if (i == 3 && slash)
			return -EINVAL;
		parts[i] = p;
		plen[i] = (size_t)((i == 3 ? end : slash) - p);
		p = (i == 3 ? end : slash + 1);
	}
	if (plen[0] != 2 || memcmp(parts[0], "ns", 2) || plen[2] != 2 || memcmp(parts[2], "sa", 2))
		return -EINVAL;
	if (seg(parts[1], plen[1], out->ns, sizeof(out->ns), false) ||
	    seg(parts[3], plen[3], out->sa, sizeof(out->sa), false))
		return -EINVAL;
	return 0;
}

int zm_spiffe_format(const struct zm_spiffe_id *id, char *buf, size_t sz)
{
	int n = snprintf(buf, sz, "spiffe://%s/ns/%s/sa/%s", id->td, id->ns, id->sa);

	return n < 0 || (size_t)n >= sz ? -ENOSPC : 0;
}

bool zm_spiffe_eq(const struct zm_spiffe_id *a, const struct zm_spiffe_id *b)
{
	return !strcmp(a->td, b->td) && !strcmp(a->ns, b->ns) && !strcmp(a->sa, b->sa);
}

#define WHY(...) do { if (why) snprintf(why, whysz, __VA_ARGS__); return -EACCES; } while (0)

int zm_svid_check(X509 *leaf, struct zm_spiffe_id *out, char *why, size_t whysz)
{
	GENERAL_NAMES *sans;
	int uris = 0, crit;
	uint32_t ku, xku;
	const ASN1_IA5STRING *uri = NULL;

	/* Caches the extension flags; also rejects malformed extensions. */
	if (X509_check_purpose(leaf, -1, 0) != 1)
		WHY("certificate extensions are malformed");
	if (X509_get_extension_flags(leaf) & EXFLAG_CA)
		WHY("leaf certificate is a CA (CA:TRUE)");
	ku = X509_get_key_usage(leaf);
	if (ku != UINT32_MAX) {
		if (ku & (KU_KEY_CERT_SIGN | KU_CRL_SIGN))
			WHY("leaf certificate may sign certificates or CRLs");
		if (!(ku & KU_DIGITAL_SIGNATURE))
			WHY("leaf certificate lacks digitalSignature");
	} else {
		WHY("leaf certificate has no keyUsage");
	}
	xku = X509_get_extended_key_usage(leaf);
	if ((X509_get_extension_flags(leaf) & EXFLAG_XKUSAGE) &&
	    (!(xku & XKU_SSL_SERVER) || !(xku & XKU_SSL_CLIENT)))
		WHY("extended key usage lacks serverAuth or clientAuth");
	sans = X509_get_ext_d2i(leaf, NID_subject_alt_name, &crit, NULL);
	if (!sans)
		WHY("no subjectAltName");
	for (int i = 0; i < sk_GENERAL_NAME_num(sans); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);

		if (gn->type == GEN_URI) {
			uris++;
			uri = gn->d.uniformResourceIdentifier;
		}
	}
	if (uris != 1) {
		GENERAL_NAMES_free(sans);
		WHY("want exactly one URI SAN, found %d", uris);
	}
	/* Explicit length: a NUL inside fails the parse instead of cutting it. */
	if (zm_spiffe_parse((const char *)ASN1_STRING_get0_data(uri), (size_t)ASN1_STRING_length(uri),
			    out)) {
		GENERAL_NAMES_free(sans);
		WHY("URI SAN is not a SPIFFE workload ID");
	}
	GENERAL_NAMES_free(sans);
	return 0;
}
