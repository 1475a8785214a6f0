/* SPDX-License-Identifier: Apache-2.0 */
/*
 * X509-SVID validation: is this certificate a workload identity we accept?
 *
 * The rules (SPIFFE X509-SVID spec; EKU as Istio issues it, CVE-2022-21657):
 *  - exactly one URI SAN, a SPIFFE workload ID (zm_spiffe_from_x509);
 *  - leaf basicConstraints cA=FALSE (or absent);
 *  - keyUsage present, digitalSignature set, keyCertSign and cRLSign clear;
 *  - extendedKeyUsage, if present, holds both serverAuth and clientAuth: the
 *    same certificate is used in both directions of HBONE;
 *  - the chain verifies to a root of the trust bundle with the X509 purpose
 *    set (intermediates must be CAs allowed to sign), at the current time;
 *  - the identity's trust domain is ours.
 * The TLS layer (tls.h) applies all of these during the handshake; use
 * zm_svid_verify() for a certificate that did not come over TLS.
 */
#ifndef ZMESH_SVID_H
#define ZMESH_SVID_H

#include <openssl/x509.h>
#include <stddef.h>

#include "zmesh/log.h"
#include "zmesh/spiffe.h"

/*
 * The leaf rules only (not the chain, not the trust domain). 0 and *out the
 * identity, or -EACCES and @why (if given) says what is wrong.
 */
int zm_svid_check(X509 *leaf, struct zm_spiffe_id *out, char *why, size_t whysz);

/*
 * Everything: the chain of @leaf (plus @untrusted intermediates, may be NULL)
 * to a root in @roots, the leaf rules, and trust domain @td (NULL: any).
 * @purpose is X509_PURPOSE_SSL_CLIENT or X509_PURPOSE_SSL_SERVER (the role
 * the certificate plays). 0 and *out, or -EACCES with the reason in @e.
 */
int zm_svid_verify(X509 *leaf, STACK_OF(X509) *untrusted, X509_STORE *roots, const char *td,
		   int purpose, struct zm_spiffe_id *out, struct zm_error *e);

/* 0 when @got is @want; else -EACCES and @e says "peer identity: want W, got G". */
int zm_svid_expect(const struct zm_spiffe_id *want, const struct zm_spiffe_id *got,
		   struct zm_error *e);

#endif
