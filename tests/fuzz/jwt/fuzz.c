// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target: JWT parsing/verification, JWKS parsing, claim paths and
 * token extraction. The first byte picks the mode:
 *   0  the rest is a compact token, verified against a JWKS whose keys are
 *      made at start-up: nothing the fuzzer writes can carry a valid
 *      signature, so ZM_JWT_OK means a forgery and aborts;
 *   1  the rest is a JWKS document;
 *   2  the rest is "claim path\nheader value\nquery" for the lookup and
 *      extraction helpers;
 *   3  the rest is "header JSON\npayload JSON": the target signs it (ES256)
 *      with the start-up key, so the claim checks after the signature run
 *      on fuzzed claims.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include "zmesh/jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static EVP_PKEY *fz_ec;
static struct zm_jwks *fz_jwks;
static json_t *fz_claims;
static const char *const fz_aud[] = { "svc-a", "svc-b" };
static struct zm_jwt_rule fz_rules[2] = {
	{ .issuer = "https://issuer.zmesh.test", .audiences = fz_aud, .n_audiences = 2,
	  .clock_skew = -1 },
	{ .issuer = "other", .clock_skew = 0 },
};

static void fz_b64(const unsigned char *in, size_t len, char *out)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0, i;

	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

		out[o++] = tab[v >> 18];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = tab[(v >> 6) & 63];
		out[o++] = tab[v & 63];
	}
	if (len - i == 1) {
		out[o++] = tab[in[i] >> 2];
		out[o++] = tab[(in[i] & 3) << 4];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)in[i] << 8 | in[i + 1];

		out[o++] = tab[v >> 10];
		out[o++] = tab[(v >> 4) & 63];
		out[o++] = tab[(v & 15) << 2];
	}
	out[o] = 0;
}

static void fz_coord(const char *param, char *out)
{
	BIGNUM *bn = NULL;
	unsigned char buf[32];

	if (!EVP_PKEY_get_bn_param(fz_ec, param, &bn) || BN_bn2binpad(bn, buf, 32) != 32)
		abort();
	fz_b64(buf, 32, out);
	BN_free(bn);
}

static void fz_init(void)
{
	EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	BIGNUM *n = NULL;
	unsigned char nb[256];
	char x[64], y[64], nn[400], doc[2048];

	fz_ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!fz_ec || !rsa || !EVP_PKEY_get_bn_param(rsa, OSSL_PKEY_PARAM_RSA_N, &n) ||
	    BN_bn2binpad(n, nb, 256) != 256)
		abort();
	fz_b64(nb, 256, nn);
	fz_coord(OSSL_PKEY_PARAM_EC_PUB_X, x);
	fz_coord(OSSL_PKEY_PARAM_EC_PUB_Y, y);
	snprintf(doc, sizeof(doc),
		 "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"ec1\",\"x\":\"%s\",\"y\":\"%s\"},"
		 "{\"kty\":\"RSA\",\"kid\":\"rsa1\",\"n\":\"%s\",\"e\":\"AQAB\"}]}", x, y, nn);
	if (zm_jwks_parse(doc, strlen(doc), &fz_jwks, NULL))
		abort();
	fz_rules[0].jwks = fz_rules[1].jwks = fz_jwks;
	fz_claims = json_pack("{s:s, s:[s,s], s:{s:{s:s}}, s:s, s:i}", "iss", "x",
			      "groups", "dev", "ops", "org", "team", "name", "core",
			      "scope", "read write", "exp", 5);
	BN_free(n);
	EVP_PKEY_free(rsa);
}

static void fz_lookup(const char *d, size_t size)
{
	const char *nl1 = memchr(d, '\n', size), *nl2, *tok;
	struct zm_claim_seg seg[ZM_CLAIM_MAX_DEPTH];
	size_t l1 = nl1 ? (size_t)(nl1 - d) : size, tlen;
	int n = zm_claim_path_parse(d, l1, seg, ZM_CLAIM_MAX_DEPTH);

	if (n > 0) {
		(void)zm_jwt_claim_get(fz_claims, seg, (size_t)n);
		(void)zm_jwt_claim_match(fz_claims, seg, (size_t)n, d, l1);
	}
	if (!nl1)
		return;
	d = nl1 + 1;
	size -= l1 + 1;
	nl2 = memchr(d, '\n', size);
	l1 = nl2 ? (size_t)(nl2 - d) : size;
	if (!zm_jwt_from_header(d, l1, "Bearer ", &tok, &tlen) && (tok < d || tok + tlen > d + l1))
		abort();
	if (!nl2)
		return;
	d = nl2 + 1;
	size -= l1 + 1;
	if (!zm_jwt_from_query(d, size, "access_token", &tok, &tlen) &&
	    (tok < d || tok + tlen > d + size))
		abort();
}

static void fz_sign_verify(const char *d, size_t size)
{
	const char *nl = memchr(d, '\n', size);
	size_t hl, pl, siglen = 128;
	unsigned char der[128], raw[64];
	const unsigned char *p = der;
	char *tok;
	EVP_MD_CTX *md;
	ECDSA_SIG *es;
	struct zm_jwt j;

	if (!nl)
		return;
	hl = (size_t)(nl - d);
	pl = size - hl - 1;
	tok = malloc(hl * 2 + pl * 2 + 200);
	if (!tok)
		return;
	fz_b64((const unsigned char *)d, hl, tok);
	strcat(tok, ".");
	fz_b64((const unsigned char *)nl + 1, pl, tok + strlen(tok));
	md = EVP_MD_CTX_new();
	if (!md || EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, fz_ec, NULL) != 1 ||
	    EVP_DigestSign(md, der, &siglen, (unsigned char *)tok, strlen(tok)) != 1)
		abort();
	EVP_MD_CTX_free(md);
	es = d2i_ECDSA_SIG(NULL, &p, (long)siglen);
	if (!es)
		abort();
	BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32);
	BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32);
	ECDSA_SIG_free(es);
	strcat(tok, ".");
	fz_b64(raw, 64, tok + strlen(tok));
	if (zm_jwt_verify(tok, strlen(tok), fz_rules, 2, 1000000, &j) == ZM_JWT_OK) {
		struct zm_claim_seg s = { "sub", 3 };

		if (!j.claims || !j.rule)
			abort();
		(void)zm_jwt_claim_match(j.claims, &s, 1, "*", 1);
		zm_jwt_free(&j);
	}
	free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct zm_jwks *jw = NULL;
	struct zm_jwt j;
	const char *d = (const char *)data + 1;

	if (!fz_jwks)
		fz_init();
	if (size < 1)
		return 0;
	size--;
	switch (data[0] & 3) {
	case 0:
		if (zm_jwt_verify(d, size, fz_rules, 2, 1000000, &j) == ZM_JWT_OK)
			abort();	/* a forged signature */
		break;
	case 1:
		if (zm_jwks_parse(d, size, &jw, NULL) == 0) {
			if (!zm_jwks_count(jw))
				abort();
			zm_jwks_free(jw);
		}
		break;
	case 2:
		fz_lookup(d, size);
		break;
	case 3:
		if (size <= 4096)
			fz_sign_verify(d, size);
		break;
	}
	return 0;
}
