// SPDX-License-Identifier: Apache-2.0
/* SPIFFE IDs. Peer bytes are only ever handled as (pointer, length). */
#include <errno.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "zmesh/spiffe.h"

static bool td_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

static bool seg_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-' || c == '_';
}

bool zm_spiffe_td_valid(const char *td, size_t len)
{
	if (len == 0 || len > ZM_TD_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!td_char(td[i]))
			return false;
	return true;
}

/* Copy the segment [s, s+n) into out (cap incl. NUL) if valid. */
static int seg(const char *s, size_t n, char *out, size_t cap)
{
	if (n == 0 || n >= cap)
		return -EINVAL;
	if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!seg_char(s[i]))
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
	if (!slash || !zm_spiffe_td_valid(p, (size_t)(slash - p)))
		return -EINVAL;
	memcpy(out->td, p, (size_t)(slash - p));
	out->td[slash - p] = 0;
	p = slash + 1;
	/* Exactly ns/<ns>/sa/<sa>: four segments, the last one up to the end. */
	for (int i = 0; i < 4; i++) {
		slash = memchr(p, '/', (size_t)(end - p));
		if ((i < 3) != (slash != NULL))
			return -EINVAL;
		parts[i] = p;
		plen[i] = (size_t)((i == 3 ? end : slash) - p);
		p = i == 3 ? end : slash + 1;
	}
	if (plen[0] != 2 || memcmp(parts[0], "ns", 2) || plen[2] != 2 || memcmp(parts[2], "sa", 2))
		return -EINVAL;
	if (seg(parts[1], plen[1], out->ns, sizeof(out->ns)) ||
	    seg(parts[3], plen[3], out->sa, sizeof(out->sa)))
		return -EINVAL;
	return 0;
}

int zm_spiffe_make(struct zm_spiffe_id *out, const char *td, const char *ns, const char *sa)
{
	size_t n = strlen(td);

	if (!zm_spiffe_td_valid(td, n))
		return -EINVAL;
	memcpy(out->td, td, n + 1);
	if (seg(ns, strlen(ns), out->ns, sizeof(out->ns)) || seg(sa, strlen(sa), out->sa, sizeof(out->sa)))
		return -EINVAL;
	return 0;
}

int zm_spiffe_format(const struct zm_spiffe_id *id, char *buf, size_t sz)
{
	int n = snprintf(buf, sz, "spiffe://%s/ns/%s/sa/%s", id->td, id->ns, id->sa);

	return n < 0 || (size_t)n >= sz ? -ENOSPC : 0;
}

/* Fields of a parsed ID hold no NUL, so string compares see all of them. */
bool zm_spiffe_eq(const struct zm_spiffe_id *a, const struct zm_spiffe_id *b)
{
	return !strcmp(a->td, b->td) && !strcmp(a->ns, b->ns) && !strcmp(a->sa, b->sa);
}

#define WHY(...) do { if (why) snprintf(why, whysz, __VA_ARGS__); rc = -EACCES; goto out; } while (0)

int zm_spiffe_from_x509(X509 *cert, struct zm_spiffe_id *out, char *why, size_t whysz)
{
	GENERAL_NAMES *sans;
	const ASN1_IA5STRING *uri = NULL;
	int uris = 0, crit = -1, rc = 0;

	sans = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
	if (!sans)
		WHY(crit == -2 ? "more than one subjectAltName extension" : "no subjectAltName");
	for (int i = 0; i < sk_GENERAL_NAME_num(sans); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);

		if (gn->type == GEN_URI) {
			uris++;
			uri = gn->d.uniformResourceIdentifier;
		}
	}
	if (uris != 1)
		WHY("want exactly one URI SAN, found %d", uris);
	/* Explicit length: a NUL inside fails the parse instead of cutting it short. */
	if (zm_spiffe_parse((const char *)ASN1_STRING_get0_data(uri), (size_t)ASN1_STRING_length(uri), out))
		WHY("URI SAN is not a SPIFFE workload ID");
out:
	GENERAL_NAMES_free(sans);
	return rc;
}
