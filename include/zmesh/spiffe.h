/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SPIFFE workload identities: spiffe://<trust-domain>/ns/<namespace>/sa/<serviceaccount>.
 *
 * Everything here works on explicit lengths: SAN data comes from the peer and
 * may hold NUL bytes; a NUL inside a SAN must never shorten what is compared
 * (CVE-2025-66220). A parsed struct zm_spiffe_id only holds characters the
 * SPIFFE spec allows, so its fields are safe NUL-terminated strings.
 *
 * Accepted syntax (the SPIFFE ID spec, narrowed to Istio's workload form):
 *  - scheme "spiffe://" exactly (lower case);
 *  - trust domain: 1..255 of [a-z0-9._-] (no upper case, no port, no userinfo);
 *  - path exactly "/ns/<ns>/sa/<sa>", segments of [A-Za-z0-9._-], not empty,
 *    not "." or "..", <ns> at most 63 bytes, <sa> at most 253;
 *  - no query, no fragment, no percent-encoding, at most ZM_SPIFFE_MAX bytes.
 */
#ifndef ZMESH_SPIFFE_H
#define ZMESH_SPIFFE_H

#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>

#define ZM_TD_MAX 255
#define ZM_SPIFFE_MAX 600	/* longer than any ID that parses */

struct zm_spiffe_id {
	char td[ZM_TD_MAX + 1];
	char ns[64];
	char sa[254];
};

/* Parse @len bytes of @s (no NUL needed; a NUL inside is an error). 0 or -EINVAL. */
int zm_spiffe_parse(const char *s, size_t len, struct zm_spiffe_id *out);
/* Build an ID from its parts (each checked as zm_spiffe_parse would). 0 or -EINVAL. */
int zm_spiffe_make(struct zm_spiffe_id *out, const char *td, const char *ns, const char *sa);
/* Is @len bytes of @td a valid trust domain? */
bool zm_spiffe_td_valid(const char *td, size_t len);
/* "spiffe://td/ns/NS/sa/SA" into @buf; -ENOSPC when it does not fit. */
int zm_spiffe_format(const struct zm_spiffe_id *id, char *buf, size_t sz);
bool zm_spiffe_eq(const struct zm_spiffe_id *a, const struct zm_spiffe_id *b);

/*
 * The identity named by @cert's single URI SAN. 0, or -EACCES when the
 * certificate has no subjectAltName, not exactly one URI SAN (DNS, IP and
 * e-mail SANs are ignored), or a URI SAN that is not a SPIFFE workload ID
 * (checked over its full DER length). @why (if given) says which.
 */
int zm_spiffe_from_x509(X509 *cert, struct zm_spiffe_id *out, char *why, size_t whysz);

#endif
