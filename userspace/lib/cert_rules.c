// SPDX-License-Identifier: Apache-2.0
/* Peer-certificate restrictions (SAN, SPKI and certificate pins); see cert_rules.h. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "zmesh/cert_rules.h"

const char *zm_san_value_check(const char *s)
{
	size_t n = strlen(s);

	if (!n)
		return "must not be empty";
	if (n > 1024)
		return "longer than 1024 bytes";
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
			return "not a DNS, URI, email or IP subject alternative name (space, control or non-ASCII byte)";
	return NULL;
}

static int spki_parse(const char *s, uint8_t out[ZM_PIN_LEN])
{
	size_t n = strlen(s);
	unsigned char b[64];

	/* base64 of 32 bytes: 44 characters ending in one '=' */
	if (n != 44 || s[43] != '=' || s[42] == '=')
		return -EINVAL;
	for (size_t i = 0; i < 43; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '+' && s[i] != '/')
			return -EINVAL;
	if (EVP_DecodeBlock(b, (const unsigned char *)s, (int)n) != 33)
		return -EINVAL;
	memcpy(out, b, ZM_PIN_LEN);
	return 0;
}

static int hexval(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
	       c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* 64 hex digits, or 32 pairs separated by ':' (Envoy takes both). */
static int hash_parse(const char *s, uint8_t out[ZM_PIN_LEN])
{
	size_t n = strlen(s), step;

	if (n == 64)
		step = 2;
	else if (n == 95)
		step = 3;
	else
		return -EINVAL;
	for (size_t i = 0; i < ZM_PIN_LEN; i++) {
		const char *p = s + i * step;
		int hi = hexval(p[0]), lo = hexval(p[1]);

		if (hi < 0 || lo < 0 || (step == 3 && i + 1 < ZM_PIN_LEN && p[2] != ':'))
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

const char *zm_pin_spki_check(const char *s)
{
	uint8_t b[ZM_PIN_LEN];

	return spki_parse(s, b) ? "not a base64 SHA-256 digest (44 characters)" : NULL;
}

const char *zm_pin_hash_check(const char *s)
{
	uint8_t b[ZM_PIN_LEN];

	return hash_parse(s, b) ? "not a hex SHA-256 digest (64 hex digits, colons between bytes optional)" : NULL;
}

/* The TLS 1.2 suites Envoy accepts, minus PSK and 3DES (no PSK here; 3DES is below OpenSSL's floor). */
static const char *const tls12_ciphers[] = {
	"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
	"ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
	"ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
	"ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA",
	"ECDHE-ECDSA-AES256-SHA", "ECDHE-RSA-AES256-SHA",
	"AES128-GCM-SHA256", "AES256-GCM-SHA384", "AES128-SHA", "AES256-SHA",
};

const char *zm_tls12_cipher_check(const char *s)
{
	for (size_t i = 0; i < sizeof(tls12_ciphers) / sizeof(tls12_ciphers[0]); i++)
		if (!strcmp(s, tls12_ciphers[i]))
			return NULL;
	return "unknown TLS 1.2 cipher suite (want e.g. ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-RSA-AES256-GCM-SHA384, "
	       "ECDHE-RSA-CHACHA20-POLY1305, AES128-GCM-SHA256)";
}

void zm_cert_rules_free(struct zm_cert_rules *r)
{
	for (size_t i = 0; r->sans && i < r->nsans; i++)
		free(r->sans[i]);
	free(r->sans);
	free(r->spki);
	free(r->hash);
	memset(r, 0, sizeof(*r));
}

bool zm_cert_rules_empty(const struct zm_cert_rules *r)
{
	return !r->nsans && !r->nspki && !r->nhash;
}

int zm_cert_rules_init(struct zm_cert_rules *r, const zm_cstrs *sans, const zm_cstrs *spki,
		       const zm_cstrs *hash, char *why, size_t whysz)
{
	const char *w;

	memset(r, 0, sizeof(*r));
	if ((sans->n && !(r->sans = calloc(sans->n, sizeof(*r->sans)))) ||
	    (spki->n && !(r->spki = calloc(spki->n, sizeof(*r->spki)))) ||
	    (hash->n && !(r->hash = calloc(hash->n, sizeof(*r->hash))))) {
		snprintf(why, whysz, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < sans->n; i++) {
		if ((w = zm_san_value_check(sans->v[i].v ? sans->v[i].v : ""))) {
			snprintf(why, whysz, "subjectAltNames[%zu]: %s", i, w);
			return -EINVAL;
		}
		if (!(r->sans[r->nsans] = strdup(sans->v[i].v))) {
			snprintf(why, whysz, "out of memory");
			return -ENOMEM;
		}
		r->nsans++;
	}
	for (size_t i = 0; i < spki->n; i++, r->nspki++)
		if (!spki->v[i].v || spki_parse(spki->v[i].v, r->spki[i])) {
			snprintf(why, whysz, "verifyCertificateSpki[%zu]: %s", i, zm_pin_spki_check(""));
			return -EINVAL;
		}
	for (size_t i = 0; i < hash->n; i++, r->nhash++)
		if (!hash->v[i].v || hash_parse(hash->v[i].v, r->hash[i])) {
			snprintf(why, whysz, "verifyCertificateHash[%zu]: %s", i, zm_pin_hash_check(""));
			return -EINVAL;
		}
	return 0;
}

static bool asn1_eq(const ASN1_STRING *a, const char *s, bool nocase)
{
	size_t n = strlen(s);

	if ((size_t)ASN1_STRING_length(a) != n)
		return false;
	return nocase ? !strncasecmp((const char *)ASN1_STRING_get0_data(a), s, n)
		      : !memcmp(ASN1_STRING_get0_data(a), s, n);
}

static bool san_matches(X509 *x, const struct zm_cert_rules *r)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	bool ok = false;

	for (int i = 0; gens && !ok && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);

		for (size_t j = 0; !ok && j < r->nsans; j++) {
			const char *want = r->sans[j];
			unsigned char ip[16];

			switch (g->type) {
			case GEN_DNS:
				ok = asn1_eq(g->d.dNSName, want, true);
				break;
			case GEN_URI:
				ok = asn1_eq(g->d.uniformResourceIdentifier, want, false);
				break;
			case GEN_EMAIL:
				ok = asn1_eq(g->d.rfc822Name, want, false);
				break;
			case GEN_IPADD:
				if (inet_pton(AF_INET, want, ip) == 1)
					ok = ASN1_STRING_length(g->d.iPAddress) == 4 &&
					     !memcmp(ASN1_STRING_get0_data(g->d.iPAddress), ip, 4);
				else if (inet_pton(AF_INET6, want, ip) == 1)
					ok = ASN1_STRING_length(g->d.iPAddress) == 16 &&
					     !memcmp(ASN1_STRING_get0_data(g->d.iPAddress), ip, 16);
				break;
			default:
				break;
			}
		}
	}
	GENERAL_NAMES_free(gens);
	return ok;
}

static bool pin_matches(X509 *x, const struct zm_cert_rules *r)
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	unsigned char *der = NULL;
	int len;

	if (r->nhash && X509_digest(x, EVP_sha256(), md, &mdlen) == 1 && mdlen == ZM_PIN_LEN)
		for (size_t i = 0; i < r->nhash; i++)
			if (!CRYPTO_memcmp(md, r->hash[i], ZM_PIN_LEN))
				return true;
	if (!r->nspki)
		return false;
	/* the whole SubjectPublicKeyInfo DER, as Envoy (not X509_pubkey_digest's key bits) */
	len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
	if (len <= 0)
		return false;
	mdlen = 0;
	if (EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != ZM_PIN_LEN)
		mdlen = 0;
	OPENSSL_free(der);
	for (size_t i = 0; mdlen && i < r->nspki; i++)
		if (!CRYPTO_memcmp(md, r->spki[i], ZM_PIN_LEN))
			return true;
	return false;
}

int zm_cert_rules_check(const struct zm_cert_rules *r, X509 *x, char *why, size_t whysz)
{
	if (r->nsans && !san_matches(x, r)) {
		if (why)
			snprintf(why, whysz, "no subjectAltNames entry matches the certificate's SANs");
		return -EACCES;
	}
	if ((r->nspki || r->nhash) && !pin_matches(x, r)) {
		if (why)
			snprintf(why, whysz, "certificate matches no verifyCertificateSpki/verifyCertificateHash pin");
		return -EACCES;
	}
	return 0;
}
