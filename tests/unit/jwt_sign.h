/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A JWT signer and JWK writer for tests (the code under test only verifies).
 * Header-only: include from one test file each.
 */
#ifndef ZM_TEST_JWT_SIGN_H
#define ZM_TEST_JWT_SIGN_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>

__attribute__((unused)) static void b64url(const unsigned char *in, size_t len, char *out)
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

__attribute__((unused)) static char *b64s(const char *s)
{
	static char bufs[8][8192];
	static int next;
	char *o = bufs[next++ & 7];

	b64url((const unsigned char *)s, strlen(s), o);
	return o;
}

/*
 * Sign "b64(header).b64(payload)" with @key as @alg ("RS256", "PS256",
 * "ES256", "HS256" with @secret). Returns a malloc'd token.
 */
__attribute__((unused)) static char *sign_token(const char *header, const char *payload, EVP_PKEY *key,
			const char *alg, const unsigned char *secret, size_t secret_len)
{
	char *input = malloc(strlen(header) * 2 + strlen(payload) * 2 + 16);
	unsigned char sig[1024], *raw = sig;
	size_t siglen = sizeof(sig);
	unsigned char rs[96];
	char *tok;

	sprintf(input, "%s.%s", b64s(header), b64s(payload));
	if (!strncmp(alg, "HS", 2)) {
		unsigned int l = 0;

		HMAC(EVP_sha256(), secret, (int)secret_len, (unsigned char *)input,
		     strlen(input), sig, &l);
		siglen = l;
	} else {
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		EVP_PKEY_CTX *pctx = NULL;
		const char *mdname = strstr(alg, "384") ? "SHA384" : strstr(alg, "512") ? "SHA512" : "SHA256";

		if (EVP_DigestSignInit_ex(md, &pctx, mdname, NULL, NULL, key, NULL) != 1)
			abort();
		if (!strncmp(alg, "PS", 2)) {
			EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
			EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
		}
		if (EVP_DigestSign(md, sig, &siglen, (unsigned char *)input, strlen(input)) != 1)
			abort();
		EVP_MD_CTX_free(md);
		if (!strncmp(alg, "ES", 2)) {
			/* JWS wants raw r||s, OpenSSL gives DER. */
			const unsigned char *p = sig;
			ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)siglen);
			size_t half = strcmp(alg, "ES384") ? 32 : 48;

			BN_bn2binpad(ECDSA_SIG_get0_r(es), rs, (int)half);
			BN_bn2binpad(ECDSA_SIG_get0_s(es), rs + half, (int)half);
			ECDSA_SIG_free(es);
			raw = rs;
			siglen = 2 * half;
		}
	}
	tok = malloc(strlen(input) + 2 + siglen * 2);
	sprintf(tok, "%s.", input);
	b64url(raw, siglen, tok + strlen(tok));
	free(input);
	return tok;
}

/* ---- keys and JWKS ----------------------------------------------------------- */

__attribute__((unused)) static void bn_b64(EVP_PKEY *k, const char *param, size_t pad, char *out)
{
	BIGNUM *bn = NULL;
	unsigned char buf[1024];
	int n;

	if (!EVP_PKEY_get_bn_param(k, param, &bn))
		abort();
	n = pad ? BN_bn2binpad(bn, buf, (int)pad) : BN_bn2bin(bn, buf);
	b64url(buf, (size_t)n, out);
	BN_free(bn);
}

__attribute__((unused)) static char *jwk_rsa(EVP_PKEY *k, const char *kid, const char *extra)
{
	char n[1024], e[16], *out = malloc(2048);

	bn_b64(k, OSSL_PKEY_PARAM_RSA_N, 0, n);
	bn_b64(k, OSSL_PKEY_PARAM_RSA_E, 0, e);
	snprintf(out, 2048, "{\"kty\":\"RSA\",\"kid\":\"%s\",\"n\":\"%s\",\"e\":\"%s\"%s}",
		 kid, n, e, extra ? extra : "");
	return out;
}

__attribute__((unused)) static char *jwk_ec(EVP_PKEY *k, const char *kid, size_t clen)
{
	char x[128], y[128], *out = malloc(512);

	bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_X, clen, x);
	bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_Y, clen, y);
	snprintf(out, 512, "{\"kty\":\"EC\",\"crv\":\"%s\",\"kid\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"}",
		 clen == 32 ? "P-256" : "P-384", kid, x, y);
	return out;
}

#endif
