// SPDX-License-Identifier: Apache-2.0
/*
 * Restrictions on a peer certificate beyond chaining to a CA, with Envoy's
 * CertificateValidationContext semantics (what Istio's ServerTLSSettings
 * subjectAltNames / verifyCertificateSpki / verifyCertificateHash become):
 *
 *   - sans: the certificate must carry one of them, exact match, as a DNS
 *     (case-insensitive), URI, email or IP SAN;
 *   - spki / hash: the SHA-256 of its SubjectPublicKeyInfo (base64) or of
 *     the DER certificate (hex, colons optional) must be one of them; when
 *     both lists are given, a match in either is enough.
 *
 * Each kind given must hold (SAN AND pin). Empty rules accept everything.
 */
#ifndef ZMESH_CERT_RULES_H
#define ZMESH_CERT_RULES_H

#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>

#include "zmesh/istio.h"

#define ZM_PIN_LEN 32

struct zm_cert_rules {
	char **sans;
	size_t nsans;
	uint8_t (*spki)[ZM_PIN_LEN];
	size_t nspki;
	uint8_t (*hash)[ZM_PIN_LEN];
	size_t nhash;
};

/* Schema checks: NULL when fine, else why. */
const char *zm_san_value_check(const char *s);
const char *zm_pin_spki_check(const char *s);
const char *zm_pin_hash_check(const char *s);
/* A TLS 1.2 cipher suite name as Envoy/OpenSSL spell it (ECDHE-RSA-AES128-GCM-SHA256). */
const char *zm_tls12_cipher_check(const char *s);

/* 0, or -EINVAL with "field[i]: why" in @why. The caller frees @r on either. */
int zm_cert_rules_init(struct zm_cert_rules *r, const zm_cstrs *sans, const zm_cstrs *spki,
		       const zm_cstrs *hash, char *why, size_t whysz);
void zm_cert_rules_free(struct zm_cert_rules *r);
bool zm_cert_rules_empty(const struct zm_cert_rules *r);
/* 0 when @x satisfies @r; -EACCES with the reason in @why (may be NULL). */
int zm_cert_rules_check(const struct zm_cert_rules *r, X509 *x, char *why, size_t whysz);

#endif
