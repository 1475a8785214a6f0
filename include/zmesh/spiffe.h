/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SPIFFE workload identities and X509-SVID checks.
 *
 * An identity is spiffe://<trust-domain>/ns/<namespace>/sa/<serviceaccount>.
 * Everything here works on explicit lengths: a NUL inside a SAN must never
 * shorten what is compared (CVE-2025-66220).
 */
#ifndef ZMESH_SPIFFE_H
#define ZMESH_SPIFFE_H

#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>

#define ZM_TD_MAX 255
#define ZM_SPIFFE_MAX 512

struct zm_spiffe_id {
	char td[ZM_TD_MAX + 1];
	char ns[64];
	char sa[254];
};

/* Parse @len bytes of @s (no NUL needed; a NUL inside is an error). */
int zm_spiffe_parse(const char *s, size_t len, struct zm_spiffe_id *out);
/* "spiffe://td/ns/NS/sa/SA" into @buf; -ENOSPC when it does not fit. */
int zm_spiffe_format(const struct zm_spiffe_id *id, char *buf, size_t sz);
bool zm_spiffe_eq(const struct zm_spiffe_id *a, const struct zm_spiffe_id *b);

/*
 * Is @leaf a valid X509-SVID leaf? Exactly one URI SAN, a SPIFFE ID; CA:FALSE;
 * no keyCertSign/cRLSign; digitalSignature set; if EKU is present it has
 * both serverAuth and clientAuth. On success *out is the identity. On
 * failure -EACCES and @why (if given) says what is wrong. Does not verify
 * the chain: that is the TLS layer's job, before this is called.
 */
int zm_svid_check(X509 *leaf, struct zm_spiffe_id *out, char *why, size_t whysz);

#endif
