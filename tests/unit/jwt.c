// SPDX-License-Identifier: Apache-2.0
/*
 * JWT verification against real keys: the test generates RSA-2048 and
 * EC P-256 keys with OpenSSL, publishes them as a JWKS, signs tokens with its
 * own minimal signer and checks each accept/reject reason.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "zmesh/jwt.h"
#include "../harness/test.h"

#define S(x) x, sizeof(x) - 1
#define ISS "https://issuer.zmesh.test"

/* The test's own signer (the code under test only verifies). */
#include "jwt_sign.h"

static struct zm_jwks *jwks_of(const char *a, const char *b, const char *c)
{
	char doc[8192];
	struct zm_jwks *j = NULL;
	struct zm_error err = { "" };

	snprintf(doc, sizeof(doc), "{\"keys\":[%s%s%s%s%s]}", a, b ? "," : "", b ? b : "",
		 c ? "," : "", c ? c : "");
	if (zm_jwks_parse(doc, strlen(doc), &j, &err))
		test_log("jwks: %s", err.msg);
	return j;
}

/* Keys are made once per process (each test runs in a fork of it). */
static EVP_PKEY *rsa1, *rsa2, *ec1, *ec384;

__attribute__((constructor)) static void make_keys(void)
{
	rsa1 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	rsa2 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	ec1 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	ec384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
}

FIXTURE(jwt) {
	struct zm_jwks *jwks;
	const char *aud[2];
	struct zm_jwt_rule rule;
	int64_t now;
	char payload[1024];
};

FIXTURE_SETUP(jwt)
{
	char *a = jwk_rsa(rsa1, "rsa1", NULL), *b = jwk_ec(ec1, "ec1", 32),
	     *c = jwk_ec(ec384, "ec384", 48);

	self->jwks = jwks_of(a, b, c);
	free(a);
	free(b);
	free(c);
	self->aud[0] = "svc-a";
	self->aud[1] = "svc-b";
	self->now = time(NULL);
	self->rule = (struct zm_jwt_rule){ .issuer = ISS, .audiences = self->aud,
					   .n_audiences = 2, .jwks = self->jwks,
					   .clock_skew = -1 };
	snprintf(self->payload, sizeof(self->payload),
		 "{\"iss\":\"" ISS "\",\"sub\":\"alice\",\"aud\":\"svc-a\",\"exp\":%lld,"
		 "\"iat\":%lld,\"groups\":[\"dev\",\"ops\"],\"org\":{\"team\":{\"name\":\"core\"}},"
		 "\"scope\":\"read write\",\"https://x.test/role\":\"admin\"}",
		 (long long)self->now + 3600, (long long)self->now - 10);
}

FIXTURE_TEARDOWN(jwt)
{
	zm_jwks_free(self->jwks);
}

static enum zm_jwt_status check(struct zm_fixture_jwt *self, const char *tok)
{
	struct zm_jwt j;
	enum zm_jwt_status st = zm_jwt_verify(tok, strlen(tok), &self->rule, 1, self->now, &j);

	if (st == ZM_JWT_OK)
		zm_jwt_free(&j);
	return st;
}

static enum zm_jwt_status check_payload(struct zm_fixture_jwt *self, const char *payload)
{
	char *t = sign_token("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", payload, rsa1, "RS256", NULL, 0);
	enum zm_jwt_status st = check(self, t);

	free(t);
	return st;
}

TEST_F(jwt, keys_loaded)
{
	ASSERT_OK_PTR(rsa1);
	ASSERT_OK_PTR(ec1);
	ASSERT_OK_PTR(self->jwks);
	EXPECT_EQ(zm_jwks_count(self->jwks), 3);
}

TEST_F(jwt, rs256_valid)
{
	char *t = sign_token("{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"typ\":\"JWT\"}", self->payload,
			     rsa1, "RS256", NULL, 0);
	struct zm_jwt j;

	ASSERT_EQ(zm_jwt_verify(t, strlen(t), &self->rule, 1, self->now, &j), ZM_JWT_OK);
	EXPECT_STREQ(j.principal, ISS "/alice");
	EXPECT_STREQ(j.alg, "RS256");
	EXPECT_TRUE(j.rule == &self->rule);
	EXPECT_STREQ(json_string_value(json_object_get(j.claims, "sub")), "alice");
	zm_jwt_free(&j);
	EXPECT_TRUE(j.claims == NULL);
	free(t);
}

TEST_F(jwt, es256_es384_ps256_valid)
{
	char *t = sign_token("{\"alg\":\"ES256\",\"kid\":\"ec1\"}", self->payload, ec1, "ES256", NULL, 0);

	EXPECT_EQ(check(self, t), ZM_JWT_OK);
	free(t);
	t = sign_token("{\"alg\":\"ES384\",\"kid\":\"ec384\"}", self->payload, ec384, "ES384", NULL, 0);
	EXPECT_EQ(check(self, t), ZM_JWT_OK);
	free(t);
	t = sign_token("{\"alg\":\"PS256\",\"kid\":\"rsa1\"}", self->payload, rsa1, "PS256", NULL, 0);
	EXPECT_EQ(check(self, t), ZM_JWT_OK);
	free(t);
	t = sign_token("{\"alg\":\"RS512\",\"kid\":\"rsa1\"}", self->payload, rsa1, "RS512", NULL, 0);
	EXPECT_EQ(check(self, t), ZM_JWT_OK);
	free(t);
	/* Same key, header claims another hash: must fail. */
	t = sign_token("{\"alg\":\"RS384\",\"kid\":\"rsa1\"}", self->payload, rsa1, "RS256", NULL, 0);
	EXPECT_EQ(check(self, t), ZM_JWT_BAD_SIGNATURE);
	free(t);
}

TEST_F(jwt, alg_none_and_hs256_rejected)
{
	char tok[4096];
	unsigned char *der = NULL;
	int derlen;
	char *t;

	snprintf(tok, sizeof(tok), "%s.%s.", b64s("{\"alg\":\"none\"}"), b64s(self->payload));
	EXPECT_EQ(check(self, tok), ZM_JWT_ALG_NOT_ALLOWED);
	snprintf(tok, sizeof(tok), "%s.%s.AAAA", b64s("{\"alg\":\"none\",\"kid\":\"rsa1\"}"),
		 b64s(self->payload));
	EXPECT_EQ(check(self, tok), ZM_JWT_ALG_NOT_ALLOWED);
	snprintf(tok, sizeof(tok), "%s.%s.AAAA", b64s("{\"alg\":\"None\"}"), b64s(self->payload));
	EXPECT_EQ(check(self, tok), ZM_JWT_ALG_NOT_ALLOWED);
	/* The classic confusion: HMAC keyed with the RSA public key. */
	derlen = i2d_PUBKEY(rsa1, &der);
	ASSERT_GT(derlen, 0);
	t = sign_token("{\"alg\":\"HS256\",\"kid\":\"rsa1\"}", self->payload, NULL, "HS256", der,
		       (size_t)derlen);
	EXPECT_EQ(check(self, t), ZM_JWT_ALG_NOT_ALLOWED);
	free(t);
	OPENSSL_free(der);
	snprintf(tok, sizeof(tok), "%s.%s.AAAA", b64s("{\"alg\":\"RS256\",\"crit\":[\"exp\"]}"),
		 b64s(self->payload));
	EXPECT_EQ(check(self, tok), ZM_JWT_ALG_NOT_ALLOWED);
	snprintf(tok, sizeof(tok), "%s.%s.AAAA", b64s("{\"kid\":\"rsa1\"}"), b64s(self->payload));
	EXPECT_EQ(check(self, tok), ZM_JWT_MALFORMED);
}

TEST_F(jwt, wrong_key_and_tampering)
{
	char *t = sign_token("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", self->payload, rsa2, "RS256", NULL, 0);
	char *good, *d1, *d2, evil[4096];
	char payload[1024];

	EXPECT_EQ(check(self, t), ZM_JWT_BAD_SIGNATURE);
	free(t);
	/* EC token signed by another P-256 key. */
	{
		EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

		t = sign_token("{\"alg\":\"ES256\",\"kid\":\"ec1\"}", self->payload, other, "ES256", NULL, 0);
		EXPECT_EQ(check(self, t), ZM_JWT_BAD_SIGNATURE);
		free(t);
		EVP_PKEY_free(other);
	}
	/* Swap in another payload under a valid signature. */
	good = sign_token("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", self->payload, rsa1, "RS256", NULL, 0);
	ASSERT_EQ(check(self, good), ZM_JWT_OK);
	d1 = strchr(good, '.');
	d2 = strchr(d1 + 1, '.');
	snprintf(payload, sizeof(payload), "{\"iss\":\"" ISS "\",\"sub\":\"admin\",\"aud\":\"svc-a\"}");
	snprintf(evil, sizeof(evil), "%.*s.%s%s", (int)(d1 - good), good, b64s(payload), d2);
	EXPECT_EQ(check(self, evil), ZM_JWT_BAD_SIGNATURE);
	/* Flip one bit of the signature. */
	strcpy(evil, good);
	evil[strlen(evil) - 5] = evil[strlen(evil) - 5] == 'A' ? 'B' : 'A';
	EXPECT_EQ(check(self, evil), ZM_JWT_BAD_SIGNATURE);
	/* Truncated signature (RSA signature must be exactly the modulus size). */
	{
		unsigned char raw[512];
		long n = zm_base64url_decode(d2 + 1, strlen(d2 + 1), raw, sizeof(raw));

		ASSERT_EQ(n, 256);
		snprintf(evil, sizeof(evil), "%.*s.", (int)(d2 - good), good);
		b64url(raw, 255, evil + strlen(evil));
		EXPECT_EQ(check(self, evil), ZM_JWT_BAD_SIGNATURE);
		snprintf(evil, sizeof(evil), "%.*s.", (int)(d2 - good), good);
		raw[256] = 0;
		b64url(raw, 257, evil + strlen(evil));
		EXPECT_EQ(check(self, evil), ZM_JWT_BAD_SIGNATURE);
	}
	free(good);
}

TEST_F(jwt, time_claims)
{
	char p[512];
	long long now = (long long)self->now;

	snprintf(p, sizeof(p), "{\"iss\":\"" ISS "\",\"aud\":\"svc-a\",\"exp\":%lld}", now - 120);
	EXPECT_EQ(check_payload(self, p), ZM_JWT_EXPIRED);
	snprintf(p, sizeof(p), "{\"iss\":\"" ISS "\",\"aud\":\"svc-a\",\"exp\":%lld}", now - 30);
	EXPECT_EQ(check_payload(self, p), ZM_JWT_OK);	/* within the 60 s skew */
	self->rule.clock_skew = 0;
	EXPECT_EQ(check_payload(self, p), ZM_JWT_EXPIRED);
	self->rule.clock_skew = -1;
	snprintf(p, sizeof(p), "{\"iss\":\"" ISS "\",\"aud\":\"svc-a\",\"exp\":%lld.5}", now + 100);
	EXPECT_EQ(check_payload(self, p), ZM_JWT_OK);	/* NumericDate may be fractional */
	snprintf(p, sizeof(p), "{\"iss\":\"" ISS "\",\"aud\":\"svc-a\",\"nbf\":%lld}", now + 120);
	EXPECT_EQ(check_payload(self, p), ZM_JWT_NOT_YET_VALID);
	snprintf(p, sizeof(p), "{\"iss\":\"" ISS "\",\"aud\":\"svc-a\",\"nbf\":%lld}", now + 30);
	EXPECT_EQ(check_payload(self, p), ZM_JWT_OK);
	snprintf(p, sizeof(p), "{\"iss\":\"" ISS "\",\"aud\":\"svc-a\",\"iat\":%lld}", now + 3600);
	EXPECT_EQ(check_payload(self, p), ZM_JWT_IAT_FUTURE);
	snprintf(p, sizeof(p), "{\"iss\":\"" ISS "\",\"aud\":\"svc-a\",\"iat\":1}");
	EXPECT_EQ(check_payload(self, p), ZM_JWT_OK);	/* old iat is fine */
	snprintf(p, sizeof(p), "{\"iss\":\"" ISS "\",\"aud\":\"svc-a\",\"exp\":\"%lld\"}", now + 100);
	EXPECT_EQ(check_payload(self, p), ZM_JWT_MALFORMED);
	snprintf(p, sizeof(p), "{\"iss\":\"" ISS "\",\"aud\":\"svc-a\",\"exp\":1e999}");
	EXPECT_EQ(check_payload(self, p), ZM_JWT_MALFORMED);
}

TEST_F(jwt, issuer_and_audience)
{
	EXPECT_EQ(check_payload(self, "{\"iss\":\"https://evil.test\",\"aud\":\"svc-a\"}"),
		  ZM_JWT_WRONG_ISSUER);
	EXPECT_EQ(check_payload(self, "{\"iss\":\"" ISS "/\",\"aud\":\"svc-a\"}"), ZM_JWT_WRONG_ISSUER);
	EXPECT_EQ(check_payload(self, "{\"aud\":\"svc-a\"}"), ZM_JWT_WRONG_ISSUER);
	EXPECT_EQ(check_payload(self, "{\"iss\":42,\"aud\":\"svc-a\"}"), ZM_JWT_MALFORMED);
	EXPECT_EQ(check_payload(self, "{\"iss\":\"" ISS "\",\"aud\":\"svc-c\"}"), ZM_JWT_WRONG_AUDIENCE);
	EXPECT_EQ(check_payload(self, "{\"iss\":\"" ISS "\"}"), ZM_JWT_WRONG_AUDIENCE);
	EXPECT_EQ(check_payload(self, "{\"iss\":\"" ISS "\",\"aud\":[\"x\",\"svc-b\"]}"), ZM_JWT_OK);
	EXPECT_EQ(check_payload(self, "{\"iss\":\"" ISS "\",\"aud\":[\"x\",\"y\"]}"), ZM_JWT_WRONG_AUDIENCE);
	EXPECT_EQ(check_payload(self, "{\"iss\":\"" ISS "\",\"aud\":[]}"), ZM_JWT_WRONG_AUDIENCE);
	EXPECT_EQ(check_payload(self, "{\"iss\":\"" ISS "\",\"aud\":[1]}"), ZM_JWT_MALFORMED);
	EXPECT_EQ(check_payload(self, "{\"iss\":\"" ISS "\",\"aud\":\"svc-a\",\"sub\":7}"), ZM_JWT_MALFORMED);
	self->rule.n_audiences = 0;
	EXPECT_EQ(check_payload(self, "{\"iss\":\"" ISS "\",\"aud\":\"anything\"}"), ZM_JWT_OK);
	EXPECT_EQ(check_payload(self, "{\"iss\":\"" ISS "\"}"), ZM_JWT_OK);
	/* Duplicate keys could make two parsers see two different claims. */
	EXPECT_EQ(check_payload(self, "{\"iss\":\"" ISS "\",\"sub\":\"a\",\"sub\":\"admin\"}"),
		  ZM_JWT_MALFORMED);
}

TEST_F(jwt, rules_by_issuer)
{
	struct zm_jwt_rule rules[2] = { self->rule, self->rule };
	char *t = sign_token("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}",
			     "{\"iss\":\"other\",\"sub\":\"bob\",\"aud\":\"svc-a\"}", rsa1, "RS256", NULL, 0);
	struct zm_jwt j;

	rules[0].issuer = "first";
	rules[1].issuer = "other";
	ASSERT_EQ(zm_jwt_verify(t, strlen(t), rules, 2, self->now, &j), ZM_JWT_OK);
	EXPECT_TRUE(j.rule == &rules[1]);
	EXPECT_STREQ(j.principal, "other/bob");
	zm_jwt_free(&j);
	/* No JWKS fetched yet: 401, no crash. */
	rules[1].jwks = NULL;
	EXPECT_EQ(zm_jwt_verify(t, strlen(t), rules, 2, self->now, &j), ZM_JWT_NO_KEYS);
	EXPECT_EQ(zm_jwt_verify(t, strlen(t), NULL, 0, self->now, &j), ZM_JWT_WRONG_ISSUER);
	free(t);
}

TEST_F(jwt, kid_selection)
{
	char *a = jwk_rsa(rsa1, "a", NULL), *b = jwk_rsa(rsa2, "b", NULL), *c = jwk_ec(ec1, "c", 32);
	struct zm_jwks *set = jwks_of(a, b, c);
	char *t;

	ASSERT_OK_PTR(set);
	self->rule.jwks = set;
	t = sign_token("{\"alg\":\"RS256\",\"kid\":\"b\"}", self->payload, rsa2, "RS256", NULL, 0);
	EXPECT_EQ(check(self, t), ZM_JWT_OK);
	free(t);
	t = sign_token("{\"alg\":\"RS256\",\"kid\":\"a\"}", self->payload, rsa2, "RS256", NULL, 0);
	EXPECT_EQ(check(self, t), ZM_JWT_BAD_SIGNATURE);
	free(t);
	/* Without a kid every fitting key is tried. */
	t = sign_token("{\"alg\":\"RS256\"}", self->payload, rsa2, "RS256", NULL, 0);
	EXPECT_EQ(check(self, t), ZM_JWT_OK);
	free(t);
	t = sign_token("{\"alg\":\"RS256\",\"kid\":\"zz\"}", self->payload, rsa2, "RS256", NULL, 0);
	EXPECT_EQ(check(self, t), ZM_JWT_UNKNOWN_KID);
	free(t);
	/* kid of an EC key with an RS alg: the key type does not fit. */
	t = sign_token("{\"alg\":\"RS256\",\"kid\":\"c\"}", self->payload, rsa1, "RS256", NULL, 0);
	EXPECT_EQ(check(self, t), ZM_JWT_NO_KEYS);
	free(t);
	/* ES384 token: no P-384 key in this set. */
	t = sign_token("{\"alg\":\"ES384\"}", self->payload, ec384, "ES384", NULL, 0);
	EXPECT_EQ(check(self, t), ZM_JWT_NO_KEYS);
	free(t);
	zm_jwks_free(set);
	free(a);
	free(b);
	free(c);
	/* A key pinned to RS256 is not used for PS256. */
	a = jwk_rsa(rsa1, "p", ",\"alg\":\"RS256\",\"use\":\"sig\"");
	set = jwks_of(a, NULL, NULL);
	ASSERT_OK_PTR(set);
	self->rule.jwks = set;
	t = sign_token("{\"alg\":\"PS256\",\"kid\":\"p\"}", self->payload, rsa1, "PS256", NULL, 0);
	EXPECT_EQ(check(self, t), ZM_JWT_NO_KEYS);
	free(t);
	t = sign_token("{\"alg\":\"RS256\",\"kid\":\"p\"}", self->payload, rsa1, "RS256", NULL, 0);
	EXPECT_EQ(check(self, t), ZM_JWT_OK);
	free(t);
	zm_jwks_free(set);
	free(a);
	self->rule.jwks = self->jwks;
}

TEST_F(jwt, es256_signature_length)
{
	char *good = sign_token("{\"alg\":\"ES256\",\"kid\":\"ec1\"}", self->payload, ec1, "ES256", NULL, 0);
	char *d2 = strrchr(good, '.');
	unsigned char raw[128];
	char tok[4096], sig[256];
	long n;

	ASSERT_EQ(check(self, good), ZM_JWT_OK);
	n = zm_base64url_decode(d2 + 1, strlen(d2 + 1), raw, sizeof(raw));
	ASSERT_EQ(n, 64);
	/* 63 and 65 bytes, and the DER form OpenSSL would have produced. */
	b64url(raw, 63, sig);
	snprintf(tok, sizeof(tok), "%.*s.%s", (int)(d2 - good), good, sig);
	EXPECT_EQ(check(self, tok), ZM_JWT_BAD_SIGNATURE);
	raw[64] = 0;
	b64url(raw, 65, sig);
	snprintf(tok, sizeof(tok), "%.*s.%s", (int)(d2 - good), good, sig);
	EXPECT_EQ(check(self, tok), ZM_JWT_BAD_SIGNATURE);
	{
		ECDSA_SIG *es = ECDSA_SIG_new();
		unsigned char *der = NULL;
		int dl;

		ECDSA_SIG_set0(es, BN_bin2bn(raw, 32, NULL), BN_bin2bn(raw + 32, 32, NULL));
		dl = i2d_ECDSA_SIG(es, &der);
		b64url(der, (size_t)dl, sig);
		snprintf(tok, sizeof(tok), "%.*s.%s", (int)(d2 - good), good, sig);
		EXPECT_EQ(check(self, tok), ZM_JWT_BAD_SIGNATURE);
		OPENSSL_free(der);
		ECDSA_SIG_free(es);
	}
	/* r = s = 0 */
	memset(raw, 0, 64);
	b64url(raw, 64, sig);
	snprintf(tok, sizeof(tok), "%.*s.%s", (int)(d2 - good), good, sig);
	EXPECT_EQ(check(self, tok), ZM_JWT_BAD_SIGNATURE);
	free(good);
}

TEST_F(jwt, malformed_tokens)
{
	char *good = sign_token("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", self->payload, rsa1, "RS256", NULL, 0);
	char tok[8192], *big;
	char *d1 = strchr(good, '.'), *d2 = strrchr(good, '.');
	static const char *const bad[] = {
		"", ".", "..", "...", "a", "a.b", "a.b.c.d", "eyJ.eyJ.", ".eyJ.AAAA",
		"e30.e30.AAAA",		/* {} header: no alg */
		"W10.e30.AAAA",		/* [] header */
		"bnVsbA.e30.AAAA",	/* null */
	};
	struct zm_jwt j;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (!EXPECT_EQ(check(self, bad[i]), ZM_JWT_MALFORMED))
			test_log("accepted \"%s\"", bad[i]);
	/* Standard base64 characters, padding, whitespace, non-canonical bits. */
	snprintf(tok, sizeof(tok), "%s=", good);
	EXPECT_EQ(check(self, tok), ZM_JWT_MALFORMED);
	snprintf(tok, sizeof(tok), " %s", good);
	EXPECT_EQ(check(self, tok), ZM_JWT_MALFORMED);
	snprintf(tok, sizeof(tok), "%s\n", good);
	EXPECT_EQ(check(self, tok), ZM_JWT_MALFORMED);
	snprintf(tok, sizeof(tok), "%.*s .%s", (int)(d1 - good), good, d1 + 1);
	EXPECT_EQ(check(self, tok), ZM_JWT_MALFORMED);
	strcpy(tok, good);
	tok[d2 - good + 3] = '+';
	EXPECT_EQ(check(self, tok), ZM_JWT_MALFORMED);
	/* "e30" is "{}"; "e31" decodes to the same bytes with a non-zero tail. */
	EXPECT_EQ(zm_base64url_decode(S("e30"), (unsigned char *)tok, 8), 2);
	EXPECT_EQ(zm_base64url_decode(S("e31"), (unsigned char *)tok, 8), -EINVAL);
	EXPECT_EQ(zm_base64url_decode(S("e3"), (unsigned char *)tok, 8), -EINVAL);
	EXPECT_EQ(zm_base64url_decode(S("e"), (unsigned char *)tok, 8), -EINVAL);
	EXPECT_EQ(zm_base64url_decode(S("e30="), (unsigned char *)tok, 8), -EINVAL);
	EXPECT_EQ(zm_base64url_decode(S("AAAA"), (unsigned char *)tok, 2), -ENOSPC);
	/* Bad JSON in the payload, NUL escapes, a token with an embedded NUL. */
	snprintf(tok, sizeof(tok), "%.*s.%s%s", (int)(d1 - good), good, b64s("{\"iss\":"), d2);
	EXPECT_EQ(check(self, tok), ZM_JWT_MALFORMED);
	snprintf(tok, sizeof(tok), "%.*s.%s%s", (int)(d1 - good), good,
		 b64s("{\"iss\":\"" ISS "\\u0000x\"}"), d2);
	EXPECT_EQ(check(self, tok), ZM_JWT_MALFORMED);
	EXPECT_EQ(zm_jwt_verify(good, strlen(good) + 1, &self->rule, 1, self->now, &j),
		  ZM_JWT_MALFORMED);
	EXPECT_EQ(zm_jwt_verify(NULL, 0, &self->rule, 1, self->now, &j), ZM_JWT_MALFORMED);
	/* Oversize. */
	big = malloc(ZM_JWT_MAX_LEN + 2);
	memset(big, 'A', ZM_JWT_MAX_LEN + 1);
	big[10] = '.';
	big[20] = '.';
	big[ZM_JWT_MAX_LEN + 1] = 0;
	EXPECT_EQ(check(self, big), ZM_JWT_TOO_LARGE);
	free(big);
	free(good);
}

TEST(jwks_parse_errors)
{
	static const char *const bad[] = {
		"", "{", "[]", "{}", "{\"keys\":{}}", "{\"keys\":[]}", "{\"keys\":[1,\"x\",null]}",
		"{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAA\"}]}",
		"{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}",		/* tiny n */
		"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}]}",
		"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-521\",\"x\":\"AAAA\",\"y\":\"AAAA\"}]}",
		"{\"keys\":[],\"keys\":[]}",
	};
	struct zm_jwks *j;
	struct zm_error err;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		j = (struct zm_jwks *)1;
		if (!EXPECT_EQ(zm_jwks_parse(bad[i], strlen(bad[i]), &j, &err), -EINVAL))
			test_log("accepted %s", bad[i]);
		EXPECT_TRUE(j == NULL);
	}
	EXPECT_STRSTR(err.msg, "jwks");
}

TEST(jwks_key_checks)
{
	EVP_PKEY *weak = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	char *w = jwk_rsa(weak, "weak", NULL), *g = jwk_rsa(rsa1, "good", NULL);
	char *enc = jwk_rsa(rsa1, "enc", ",\"use\":\"enc\"");
	char *e = jwk_ec(ec1, "ec", 32), doc[8192], *p;
	struct zm_jwks *j = NULL;
	struct zm_error err = { "" };

	snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", w);
	EXPECT_EQ(zm_jwks_parse(doc, strlen(doc), &j, &err), -EINVAL);
	EXPECT_STRSTR(err.msg, "2048");
	/* Weak and encryption keys are skipped, the good one stays. */
	snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s,%s]}", w, enc, g);
	ASSERT_OK(zm_jwks_parse(doc, strlen(doc), &j, &err));
	EXPECT_EQ(zm_jwks_count(j), 1);
	zm_jwks_free(j);
	/* An EC point moved off the curve: flip a byte of y. */
	p = strstr(e, "\"y\":\"") + 6;
	*p = *p == 'A' ? 'B' : 'A';
	snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", e);
	EXPECT_EQ(zm_jwks_parse(doc, strlen(doc), &j, &err), -EINVAL);
	EXPECT_STRSTR(err.msg, "EC point");
	p = malloc(ZM_JWKS_MAX_LEN + 1);
	memset(p, ' ', ZM_JWKS_MAX_LEN + 1);
	EXPECT_EQ(zm_jwks_parse(p, ZM_JWKS_MAX_LEN + 1, &j, &err), -E2BIG);
	free(p);
	free(w);
	free(g);
	free(enc);
	free(e);
	EVP_PKEY_free(weak);
}

static void jwt_free_cb(void *p)
{
	zm_jwt_free(p);
}

TEST_F(jwt, claims_lookup)
{
	char *t = sign_token("{\"alg\":\"ES256\",\"kid\":\"ec1\"}", self->payload, ec1, "ES256", NULL, 0);
	struct zm_claim_seg seg[ZM_CLAIM_MAX_DEPTH];
	static struct zm_jwt j;	/* outlives the body: the deferred free runs later */
	int n;

	ASSERT_EQ(zm_jwt_verify(t, strlen(t), &self->rule, 1, self->now, &j), ZM_JWT_OK);
	free(t);
	test_defer(jwt_free_cb, &j);

	n = zm_claim_path_parse(S("[org][team][name]"), seg, ZM_CLAIM_MAX_DEPTH);
	ASSERT_EQ(n, 3);
	EXPECT_TRUE(zm_jwt_claim_match(j.claims, seg, (size_t)n, S("core")));
	EXPECT_TRUE(zm_jwt_claim_match(j.claims, seg, (size_t)n, S("co*")));
	EXPECT_FALSE(zm_jwt_claim_match(j.claims, seg, (size_t)n, S("edge")));
	EXPECT_FALSE(zm_jwt_claim_match(j.claims, seg, 2, S("*")));	/* an object */

	n = zm_claim_path_parse(S("[groups]"), seg, ZM_CLAIM_MAX_DEPTH);
	ASSERT_EQ(n, 1);
	EXPECT_TRUE(zm_jwt_claim_match(j.claims, seg, 1, S("ops")));
	EXPECT_TRUE(zm_jwt_claim_match(j.claims, seg, 1, S("dev")));
	EXPECT_FALSE(zm_jwt_claim_match(j.claims, seg, 1, S("admin")));
	EXPECT_FALSE(zm_jwt_claim_match(j.claims, seg, 1, S("dev, ops")));

	/* scope is space-delimited, as Istio configures Envoy. */
	n = zm_claim_path_parse(S("[scope]"), seg, ZM_CLAIM_MAX_DEPTH);
	EXPECT_TRUE(zm_jwt_claim_match(j.claims, seg, 1, S("write")));
	EXPECT_FALSE(zm_jwt_claim_match(j.claims, seg, 1, S("read write")));

	/* A '.' is part of the claim name, not a separator. */
	n = zm_claim_path_parse(S("[https://x.test/role]"), seg, ZM_CLAIM_MAX_DEPTH);
	ASSERT_EQ(n, 1);
	EXPECT_TRUE(zm_jwt_claim_match(j.claims, seg, 1, S("admin")));
	n = zm_claim_path_parse(S("[org.team]"), seg, ZM_CLAIM_MAX_DEPTH);
	EXPECT_TRUE(zm_jwt_claim_get(j.claims, seg, 1) == NULL);

	n = zm_claim_path_parse(S("[iss]"), seg, ZM_CLAIM_MAX_DEPTH);
	EXPECT_TRUE(zm_jwt_claim_match(j.claims, seg, 1, S(ISS)));
	n = zm_claim_path_parse(S("[exp]"), seg, ZM_CLAIM_MAX_DEPTH);
	EXPECT_FALSE(zm_jwt_claim_match(j.claims, seg, 1, S("*")));	/* numbers never match */
	n = zm_claim_path_parse(S("[missing][x]"), seg, ZM_CLAIM_MAX_DEPTH);
	EXPECT_FALSE(zm_jwt_claim_match(j.claims, seg, 2, S("*")));

	EXPECT_EQ(zm_claim_path_parse(S(""), seg, 8), -EINVAL);
	EXPECT_EQ(zm_claim_path_parse(S("[]"), seg, 8), -EINVAL);
	EXPECT_EQ(zm_claim_path_parse(S("[a"), seg, 8), -EINVAL);
	EXPECT_EQ(zm_claim_path_parse(S("a"), seg, 8), -EINVAL);
	EXPECT_EQ(zm_claim_path_parse(S("[a]b"), seg, 8), -EINVAL);
	EXPECT_EQ(zm_claim_path_parse(S("[a[b]"), seg, 8), -EINVAL);
	EXPECT_EQ(zm_claim_path_parse(S("[a][b][c]"), seg, 2), -EINVAL);
}

TEST(token_extraction)
{
	const char *tok;
	size_t len;

	ASSERT_OK(zm_jwt_from_header(S("Bearer abc.def.ghi"), "Bearer ", &tok, &len));
	EXPECT_EQ(len, 11);
	EXPECT_TRUE(!memcmp(tok, "abc.def.ghi", 11));
	ASSERT_OK(zm_jwt_from_header(S("bearer   abc.def.ghi  "), "Bearer ", &tok, &len));
	EXPECT_EQ(len, 11);
	EXPECT_EQ(zm_jwt_from_header(S("Basic dXNlcjpw"), "Bearer ", &tok, &len), -ENOENT);
	EXPECT_EQ(zm_jwt_from_header(S("Bearer "), "Bearer ", &tok, &len), -ENOENT);
	EXPECT_EQ(zm_jwt_from_header(S("Bear"), "Bearer ", &tok, &len), -ENOENT);
	ASSERT_OK(zm_jwt_from_header(S("abc.def.ghi"), "", &tok, &len));
	EXPECT_EQ(len, 11);
	ASSERT_OK(zm_jwt_from_header(S("Token=x.y.z"), "Token=", &tok, &len));
	EXPECT_EQ(len, 5);

	ASSERT_OK(zm_jwt_from_query(S("a=1&access_token=x.y.z&b=2"), "access_token", &tok, &len));
	EXPECT_EQ(len, 5);
	EXPECT_TRUE(!memcmp(tok, "x.y.z", 5));
	ASSERT_OK(zm_jwt_from_query(S("access_token=x.y.z"), "access_token", &tok, &len));
	EXPECT_EQ(len, 5);
	EXPECT_EQ(zm_jwt_from_query(S("xaccess_token=x.y.z"), "access_token", &tok, &len), -ENOENT);
	EXPECT_EQ(zm_jwt_from_query(S("access_token=&b=1"), "access_token", &tok, &len), -ENOENT);
	EXPECT_EQ(zm_jwt_from_query(S("access_token"), "access_token", &tok, &len), -ENOENT);
	EXPECT_EQ(zm_jwt_from_query(S(""), "access_token", &tok, &len), -ENOENT);
	EXPECT_STRSTR(zm_jwt_strerror(ZM_JWT_EXPIRED), "expired");
}

/* Random garbage and random mutations of a valid token: no crash, no leak,
 * never accepted unless it is byte-identical to the original. */
TEST_F(jwt, garbage_never_crashes)
{
	char *good = sign_token("{\"alg\":\"ES256\",\"kid\":\"ec1\"}", self->payload, ec1, "ES256", NULL, 0);
	size_t glen = strlen(good);
	char *buf = malloc(glen + 1);
	unsigned seed = 12345;

	for (int i = 0; i < 3000; i++) {
		size_t len = glen;

		memcpy(buf, good, glen);
		for (int k = 0; k < 1 + i % 4; k++) {
			seed = seed * 1103515245 + 12345;
			buf[(seed >> 8) % glen] = (char)(seed >> 16);
		}
		if (i % 7 == 0)
			len = (seed >> 4) % glen;
		if (memcmp(buf, good, len) || len != glen)
			EXPECT_NE(zm_jwt_verify(buf, len, &self->rule, 1, self->now,
						&(struct zm_jwt){ 0 }), ZM_JWT_OK);
	}
	free(buf);
	free(good);
}
