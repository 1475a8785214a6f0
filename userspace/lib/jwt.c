// SPDX-License-Identifier: Apache-2.0
/*
 * JWT/JWKS verification; see jwt.h. Every input byte is attacker-controlled
 * (the token) or remote (the JWKS): bounded sizes, explicit lengths, and
 * OpenSSL's error queue cleared after each failure so a bad token leaves no
 * state behind for the next caller on this thread.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include "zmesh/authz_match.h"
#include "zmesh/jwt.h"

enum key_type { KEY_RSA, KEY_EC256, KEY_EC384 };

struct jwk {
	char *kid;		/* NULL when the key has none */
	char alg[8];		/* "" when the key does not pin one */
	enum key_type type;
	EVP_PKEY *pkey;
};

struct zm_jwks {
	size_t n;
	struct jwk keys[];
};

enum alg_family { ALG_RS, ALG_PS, ALG_ES };

struct alg_desc {
	const char *name;
	enum alg_family family;
	const char *md;
	size_t es_len;		/* raw r||s length for ES* */
	enum key_type key;
};

static const struct alg_desc algs[] = {
	{ "RS256", ALG_RS, "SHA256", 0, KEY_RSA },
	{ "RS384", ALG_RS, "SHA384", 0, KEY_RSA },
	{ "RS512", ALG_RS, "SHA512", 0, KEY_RSA },
	{ "PS256", ALG_PS, "SHA256", 0, KEY_RSA },
	{ "PS384", ALG_PS, "SHA384", 0, KEY_RSA },
	{ "PS512", ALG_PS, "SHA512", 0, KEY_RSA },
	{ "ES256", ALG_ES, "SHA256", 64, KEY_EC256 },
	{ "ES384", ALG_ES, "SHA384", 96, KEY_EC384 },
};

const char *zm_jwt_strerror(enum zm_jwt_status st)
{
	switch (st) {
	case ZM_JWT_OK: return "Jwt verified";
	case ZM_JWT_MALFORMED: return "Jwt is not in the form of Header.Payload.Signature with valid base64url and JSON";
	case ZM_JWT_TOO_LARGE: return "Jwt is too large";
	case ZM_JWT_ALG_NOT_ALLOWED: return "Jwt algorithm is not allowed";
	case ZM_JWT_UNKNOWN_KID: return "Jwt kid does not match any key";
	case ZM_JWT_NO_KEYS: return "Jwks has no key for the Jwt algorithm";
	case ZM_JWT_BAD_SIGNATURE: return "Jwt verification fails";
	case ZM_JWT_WRONG_ISSUER: return "Jwt issuer is not configured";
	case ZM_JWT_EXPIRED: return "Jwt is expired";
	case ZM_JWT_NOT_YET_VALID: return "Jwt not yet valid";
	case ZM_JWT_IAT_FUTURE: return "Jwt issued in the future";
	case ZM_JWT_WRONG_AUDIENCE: return "Audiences in Jwt are not allowed";
	case ZM_JWT_INTERNAL: return "Jwt verification failed internally";
	}
	return "Jwt is invalid";
}

/* ---- base64url ------------------------------------------------------------ */

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

long zm_base64url_decode(const char *in, size_t len, unsigned char *out, size_t outsz)
{
	uint32_t acc = 0;
	size_t o = 0, need;
	int bits = 0;

	if (len % 4 == 1)
		return -EINVAL;
	need = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
	if (need > outsz)
		return -ENOSPC;
	for (size_t i = 0; i < len; i++) {
		int v = b64val((unsigned char)in[i]);

		if (v < 0)
			return -EINVAL;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* Canonical form: the bits left over must be zero. */
	if (acc != 0)
		return -EINVAL;
	return (long)o;
}

/* ---- JWKS ----------------------------------------------------------------- */

static void jwk_clear(struct jwk *k)
{
	free(k->kid);
	EVP_PKEY_free(k->pkey);
	memset(k, 0, sizeof(*k));
}

void zm_jwks_free(struct zm_jwks *jwks)
{
	if (!jwks)
		return;
	for (size_t i = 0; i < jwks->n; i++)
		jwk_clear(&jwks->keys[i]);
	free(jwks);
}

size_t zm_jwks_count(const struct zm_jwks *jwks)
{
	return jwks ? jwks->n : 0;
}

/* Decode a base64url JSON string member into a fresh buffer. */
static int member_b64(const json_t *obj, const char *name, unsigned char **buf, size_t *len)
{
	const json_t *v = json_object_get(obj, name);
	const char *s;
	size_t slen;
	long n;

	*buf = NULL;
	if (!json_is_string(v))
		return -EINVAL;
	s = json_string_value(v);
	slen = json_string_length(v);
	if (!slen || slen > 8192)
		return -EINVAL;
	*buf = malloc(slen);
	if (!*buf)
		return -ENOMEM;
	n = zm_base64url_decode(s, slen, *buf, slen);
	if (n <= 0) {
		free(*buf);
		*buf = NULL;
		return -EINVAL;
	}
	*len = (size_t)n;
	return 0;
}

static EVP_PKEY *pkey_from_params(const char *type, OSSL_PARAM_BLD *bld)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = NULL, *chk = NULL;
	EVP_PKEY *pkey = NULL;

	if (!params)
		goto out;
	ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
		goto out;
	chk = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	if (!chk || EVP_PKEY_public_check(chk) != 1) {
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
out:
	EVP_PKEY_CTX_free(chk);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	ERR_clear_error();
	return pkey;
}

static int jwk_rsa(const json_t *o, struct jwk *k, const char **why)
{
	unsigned char *n = NULL, *e = NULL;
	size_t nlen = 0, elen = 0;
	BIGNUM *bn = NULL, *be = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	int rc = -EINVAL;

	*why = "bad RSA n/e";
	if (member_b64(o, "n", &n, &nlen) || member_b64(o, "e", &e, &elen) || elen > 8)
		goto out;
	bn = BN_bin2bn(n, (int)nlen, NULL);
	be = BN_bin2bn(e, (int)elen, NULL);
	bld = OSSL_PARAM_BLD_new();
	if (!bn || !be || !bld) {
		rc = -ENOMEM;
		goto out;
	}
	if (BN_num_bits(bn) < 2048) {
		*why = "RSA key shorter than 2048 bits";
		goto out;
	}
	if (!BN_is_odd(be) || BN_num_bits(be) < 2)
		goto out;
	if (!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
		goto out;
	k->pkey = pkey_from_params("RSA", bld);
	if (!k->pkey)
		goto out;
	k->type = KEY_RSA;
	rc = 0;
out:
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	free(n);
	free(e);
	return rc;
}

static int jwk_ec(const json_t *o, struct jwk *k, const char **why)
{
	const char *crv = json_string_value(json_object_get(o, "crv"));
	unsigned char *x = NULL, *y = NULL, pub[1 + 2 * 48];
	size_t xlen = 0, ylen = 0, clen;
	OSSL_PARAM_BLD *bld = NULL;
	const char *group;
	int rc = -EINVAL;

	*why = "unsupported EC curve";
	if (crv && !strcmp(crv, "P-256")) {
		clen = 32;
		group = "P-256";
		k->type = KEY_EC256;
	} else if (crv && !strcmp(crv, "P-384")) {
		clen = 48;
		group = "P-384";
		k->type = KEY_EC384;
	} else {
		goto out;
	}
	*why = "bad EC point";
	if (member_b64(o, "x", &x, &xlen) || member_b64(o, "y", &y, &ylen) ||
	    xlen != clen || ylen != clen)
		goto out;
	pub[0] = 0x04;
	memcpy(pub + 1, x, clen);
	memcpy(pub + 1 + clen, y, clen);
	bld = OSSL_PARAM_BLD_new();
	if (!bld) {
		rc = -ENOMEM;
		goto out;
	}
	if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, 1 + 2 * clen))
		goto out;
	k->pkey = pkey_from_params("EC", bld);
	if (!k->pkey)
		goto out;
	rc = 0;
out:
	OSSL_PARAM_BLD_free(bld);
	free(x);
	free(y);
	return rc;
}

static int jwk_parse(const json_t *o, struct jwk *k, const char **why)
{
	const json_t *kid = json_object_get(o, "kid");
	const json_t *alg = json_object_get(o, "alg");
	const json_t *use = json_object_get(o, "use");
	const char *kty = json_string_value(json_object_get(o, "kty"));
	int rc;

	memset(k, 0, sizeof(*k));
	*why = "not an object";
	if (!json_is_object(o))
		return -EINVAL;
	*why = "use is not sig";
	if (use && (!json_is_string(use) || strcmp(json_string_value(use), "sig")))
		return -EINVAL;
	*why = "bad kid or alg";
	if ((kid && !json_is_string(kid)) || (alg && !json_is_string(alg)))
		return -EINVAL;
	if (alg) {
		bool known = false;

		for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
			known |= !strcmp(json_string_value(alg), algs[i].name);
		*why = "key alg not supported";
		if (!known)
			return -EINVAL;
		strcpy(k->alg, json_string_value(alg));
	}
	*why = "unsupported kty";
	if (kty && !strcmp(kty, "RSA"))
		rc = jwk_rsa(o, k, why);
	else if (kty && !strcmp(kty, "EC"))
		rc = jwk_ec(o, k, why);
	else
		rc = -EINVAL;
	if (rc)
		return rc;
	if (kid) {
		k->kid = strndup(json_string_value(kid), json_string_length(kid));
		if (!k->kid) {
			jwk_clear(k);
			return -ENOMEM;
		}
	}
	return 0;
}

int zm_jwks_parse(const char *json, size_t len, struct zm_jwks **out, struct zm_error *err)
{
	struct zm_jwks *jwks = NULL;
	json_error_t jerr;
	json_t *root = NULL, *keys;
	const char *last_why = "no keys";
	size_t n;
	int rc;

	*out = NULL;
	if (len > ZM_JWKS_MAX_LEN)
		return zm_error_set(err, E2BIG, "jwks: %zu bytes, limit %d", len, ZM_JWKS_MAX_LEN);
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return zm_error_set(err, EINVAL, "jwks: invalid JSON at %d:%d: %s",
				    jerr.line, jerr.column, jerr.text);
	keys = json_object_get(root, "keys");
	if (!json_is_array(keys)) {
		rc = zm_error_set(err, EINVAL, "jwks: no \"keys\" array");
		goto out;
	}
	n = json_array_size(keys);
	if (n > ZM_JWKS_MAX_KEYS) {
		rc = zm_error_set(err, E2BIG, "jwks: %zu keys, limit %d", n, ZM_JWKS_MAX_KEYS);
		goto out;
	}
	jwks = calloc(1, sizeof(*jwks) + n * sizeof(jwks->keys[0]));
	if (!jwks) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const char *why = "";

		rc = jwk_parse(json_array_get(keys, i), &jwks->keys[jwks->n], &why);
		if (rc == -ENOMEM)
			goto out;
		if (rc == 0)
			jwks->n++;
		else
			last_why = why;
	}
	if (!jwks->n) {
		rc = zm_error_set(err, EINVAL, "jwks: no usable key (%zu skipped, last: %s)",
				  n, last_why);
		goto out;
	}
	*out = jwks;
	jwks = NULL;
	rc = 0;
out:
	zm_jwks_free(jwks);
	json_decref(root);
	return rc;
}

/* ---- verification --------------------------------------------------------- */

static const struct alg_desc *alg_find(const char *name)
{
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
		if (!strcmp(name, algs[i].name))
			return &algs[i];
	return NULL;
}

/* 1 verified, 0 not, <0 internal error. */
static int verify_sig(const struct alg_desc *a, EVP_PKEY *pkey, const unsigned char *sig,
		      size_t siglen, const char *data, size_t dlen)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char *der = NULL;
	ECDSA_SIG *es = NULL;
	BIGNUM *r = NULL, *s = NULL;
	int rc = -ENOMEM, dl;

	if (!md)
		goto out;
	if (a->family == ALG_ES) {
		if (siglen != a->es_len) {
			rc = 0;
			goto out;
		}
		es = ECDSA_SIG_new();
		r = BN_bin2bn(sig, (int)(siglen / 2), NULL);
		s = BN_bin2bn(sig + siglen / 2, (int)(siglen / 2), NULL);
		if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s))
			goto out;
		r = s = NULL;	/* owned by es now */
		dl = i2d_ECDSA_SIG(es, &der);
		if (dl <= 0)
			goto out;
		sig = der;
		siglen = (size_t)dl;
	} else if ((int)siglen != EVP_PKEY_get_size(pkey)) {
		rc = 0;
		goto out;
	}
	rc = -EINVAL;
	if (EVP_DigestVerifyInit_ex(md, &pctx, a->md, NULL, NULL, pkey, NULL) != 1)
		goto out;
	if (a->family == ALG_PS &&
	    (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1))
		goto out;
	rc = EVP_DigestVerify(md, sig, siglen, (const unsigned char *)data, dlen) == 1;
out:
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(es);
	OPENSSL_free(der);
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	return rc;
}

static json_t *decode_json(const char *in, size_t len)
{
	unsigned char *buf;
	json_t *j = NULL;
	long n;

	buf = malloc(len ? len : 1);
	if (!buf)
		return NULL;
	n = zm_base64url_decode(in, len, buf, len);
	if (n > 0)
		j = json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
	free(buf);
	if (j && !json_is_object(j)) {
		json_decref(j);
		j = NULL;
	}
	return j;
}

/* Reads a NumericDate; 0 absent, 1 present, -1 wrong type. */
static int numeric_date(const json_t *claims, const char *name, double *v)
{
	const json_t *j = json_object_get(claims, name);

	if (!j)
		return 0;
	if (!json_is_number(j))
		return -1;
	*v = json_number_value(j);
	return isfinite(*v) ? 1 : -1;
}

static bool str_eq(const json_t *s, const char *c)
{
	size_t cl = strlen(c);

	return json_string_length(s) == cl && !memcmp(json_string_value(s), c, cl);
}

static enum zm_jwt_status check_audience(const json_t *claims, const struct zm_jwt_rule *rule)
{
	const json_t *aud = json_object_get(claims, "aud");
	size_t n = 1;

	if (aud && !json_is_string(aud) && !json_is_array(aud))
		return ZM_JWT_MALFORMED;
	if (json_is_array(aud)) {
		n = json_array_size(aud);
		for (size_t i = 0; i < n; i++)
			if (!json_is_string(json_array_get(aud, i)))
				return ZM_JWT_MALFORMED;
	}
	if (!rule->n_audiences)
		return ZM_JWT_OK;
	if (!aud)
		return ZM_JWT_WRONG_AUDIENCE;
	for (size_t i = 0; i < n; i++) {
		const json_t *a = json_is_array(aud) ? json_array_get(aud, i) : aud;

		for (size_t j = 0; j < rule->n_audiences; j++)
			if (rule->audiences[j] && str_eq(a, rule->audiences[j]))
				return ZM_JWT_OK;
	}
	return ZM_JWT_WRONG_AUDIENCE;
}

void zm_jwt_free(struct zm_jwt *jwt)
{
	if (!jwt)
		return;
	json_decref(jwt->header);
	json_decref(jwt->claims);
	free(jwt->principal);
	memset(jwt, 0, sizeof(*jwt));
}

enum zm_jwt_status zm_jwt_verify(const char *token, size_t len,
				 const struct zm_jwt_rule *rules, size_t n_rules,
				 int64_t now, struct zm_jwt *out)
{
	const char *dot1, *dot2, *sig_b64;
	size_t hlen, plen, slen;
	const struct alg_desc *alg;
	const struct zm_jwt_rule *rule = NULL;
	const json_t *jalg, *jkid, *iss, *sub;
	unsigned char *sig = NULL;
	json_t *header = NULL, *claims = NULL;
	enum zm_jwt_status st = ZM_JWT_MALFORMED;
	bool kid_seen = false, tried = false;
	double t, skew;
	long siglen;

	memset(out, 0, sizeof(*out));
	if (!token)
		return ZM_JWT_MALFORMED;
	if (len > ZM_JWT_MAX_LEN)
		return ZM_JWT_TOO_LARGE;
	dot1 = memchr(token, '.', len);
	if (!dot1)
		return ZM_JWT_MALFORMED;
	dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token));
	if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)))
		return ZM_JWT_MALFORMED;
	hlen = (size_t)(dot1 - token);
	plen = (size_t)(dot2 - dot1 - 1);
	sig_b64 = dot2 + 1;
	slen = len - (size_t)(sig_b64 - token);
	if (!hlen)
		return ZM_JWT_MALFORMED;

	/* The header first, so "alg":"none" (empty signature) is named as such. */
	header = decode_json(token, hlen);
	if (!header)
		goto out;
	jalg = json_object_get(header, "alg");
	jkid = json_object_get(header, "kid");
	if (!json_is_string(jalg) || (jkid && !json_is_string(jkid)))
		goto out;
	st = ZM_JWT_ALG_NOT_ALLOWED;
	alg = json_string_length(jalg) < sizeof(out->alg) ? alg_find(json_string_value(jalg)) : NULL;
	if (!alg || json_object_get(header, "crit"))
		goto out;

	st = ZM_JWT_MALFORMED;
	if (!plen || !slen)
		goto out;
	claims = decode_json(dot1 + 1, plen);
	if (!claims)
		goto out;
	sig = malloc(slen);
	if (!sig) {
		st = ZM_JWT_INTERNAL;
		goto out;
	}
	siglen = zm_base64url_decode(sig_b64, slen, sig, slen);
	if (siglen <= 0)
		goto out;

	iss = json_object_get(claims, "iss");
	if (iss && !json_is_string(iss))
		goto out;
	st = ZM_JWT_WRONG_ISSUER;
	for (size_t i = 0; iss && i < n_rules && !rule; i++)
		if (rules[i].issuer && str_eq(iss, rules[i].issuer))
			rule = &rules[i];
	if (!rule)
		goto out;

	/* Signature over the ASCII "header.payload". */
	st = ZM_JWT_NO_KEYS;
	for (size_t i = 0; rule->jwks && i < rule->jwks->n; i++) {
		const struct jwk *k = &rule->jwks->keys[i];
		int v;

		if (jkid) {
			if (!k->kid || strlen(k->kid) != json_string_length(jkid) ||
			    memcmp(k->kid, json_string_value(jkid), strlen(k->kid)))
				continue;
			kid_seen = true;
		}
		if (k->type != alg->key || (k->alg[0] && strcmp(k->alg, alg->name)))
			continue;
		tried = true;
		v = verify_sig(alg, k->pkey, sig, (size_t)siglen, token, (size_t)(dot2 - token));
		if (v < 0) {
			st = ZM_JWT_INTERNAL;
			goto out;
		}
		if (v == 1) {
			st = ZM_JWT_OK;
			break;
		}
	}
	if (st != ZM_JWT_OK) {
		if (tried)
			st = ZM_JWT_BAD_SIGNATURE;
		else if (jkid && !kid_seen && rule->jwks)
			st = ZM_JWT_UNKNOWN_KID;
		goto out;
	}

	skew = rule->clock_skew < 0 ? ZM_JWT_DEFAULT_SKEW : rule->clock_skew;
	switch (numeric_date(claims, "exp", &t)) {
	case -1: st = ZM_JWT_MALFORMED; goto out;
	case 1: if ((double)now > t + skew) { st = ZM_JWT_EXPIRED; goto out; } break;
	}
	switch (numeric_date(claims, "nbf", &t)) {
	case -1: st = ZM_JWT_MALFORMED; goto out;
	case 1: if ((double)now + skew < t) { st = ZM_JWT_NOT_YET_VALID; goto out; } break;
	}
	switch (numeric_date(claims, "iat", &t)) {
	case -1: st = ZM_JWT_MALFORMED; goto out;
	case 1: if ((double)now + skew < t) { st = ZM_JWT_IAT_FUTURE; goto out; } break;
	}
	st = check_audience(claims, rule);
	if (st != ZM_JWT_OK)
		goto out;

	sub = json_object_get(claims, "sub");
	if (sub && !json_is_string(sub)) {
		st = ZM_JWT_MALFORMED;
		goto out;
	}
	if (sub) {
		size_t il = json_string_length(iss), sl = json_string_length(sub);

		out->principal = malloc(il + 1 + sl + 1);
		if (!out->principal) {
			st = ZM_JWT_INTERNAL;
			goto out;
		}
		memcpy(out->principal, json_string_value(iss), il);
		out->principal[il] = '/';
		memcpy(out->principal + il + 1, json_string_value(sub), sl);
		out->principal[il + 1 + sl] = 0;
	}
	strcpy(out->alg, alg->name);
	out->header = header;
	out->claims = claims;
	out->rule = rule;
	header = claims = NULL;
out:
	free(sig);
	json_decref(header);
	json_decref(claims);
	if (st != ZM_JWT_OK)
		zm_jwt_free(out);
	return st;
}

/* ---- extraction ----------------------------------------------------------- */

int zm_jwt_from_header(const char *value, size_t vlen, const char *prefix,
		       const char **tok, size_t *tlen)
{
	size_t pl = prefix ? strlen(prefix) : 0, s, e;

	if (!value || vlen < pl)
		return -ENOENT;
	for (size_t i = 0; i < pl; i++) {
		unsigned char a = (unsigned char)value[i], b = (unsigned char)prefix[i];

		if (a >= 'A' && a <= 'Z')
			a += 32;
		if (b >= 'A' && b <= 'Z')
			b += 32;
		if (a != b)
			return -ENOENT;
	}
	s = pl;
	while (s < vlen && (value[s] == ' ' || value[s] == '\t'))
		s++;
	e = vlen;
	while (e > s && (value[e - 1] == ' ' || value[e - 1] == '\t'))
		e--;
	if (e == s)
		return -ENOENT;
	*tok = value + s;
	*tlen = e - s;
	return 0;
}

int zm_jwt_from_query(const char *query, size_t qlen, const char *param,
		      const char **tok, size_t *tlen)
{
	size_t pl = param ? strlen(param) : 0, i = 0;

	if (!query || !pl)
		return -ENOENT;
	while (i < qlen) {
		size_t e = i;
		const char *eq;

		while (e < qlen && query[e] != '&')
			e++;
		eq = memchr(query + i, '=', e - i);
		if (eq && (size_t)(eq - (query + i)) == pl && !memcmp(query + i, param, pl) &&
		    eq + 1 < query + e) {
			*tok = eq + 1;
			*tlen = (size_t)(query + e - (eq + 1));
			return 0;
		}
		i = e + 1;
	}
	return -ENOENT;
}

/* ---- claims --------------------------------------------------------------- */

int zm_claim_path_parse(const char *key, size_t len, struct zm_claim_seg *segs, size_t max)
{
	size_t i = 0, n = 0;

	if (!key || !len)
		return -EINVAL;
	while (i < len) {
		const char *close;

		if (key[i] != '[' || n >= max)
			return -EINVAL;
		close = memchr(key + i + 1, ']', len - i - 1);
		if (!close || close == key + i + 1)
			return -EINVAL;
		if (memchr(key + i + 1, '[', (size_t)(close - (key + i + 1))))
			return -EINVAL;
		segs[n].name = key + i + 1;
		segs[n].len = (size_t)(close - (key + i + 1));
		n++;
		i = (size_t)(close - key) + 1;
	}
	return (int)n;
}

json_t *zm_jwt_claim_get(const json_t *claims, const struct zm_claim_seg *path, size_t depth)
{
	const json_t *cur = claims;

	if (!depth)
		return NULL;
	for (size_t i = 0; i < depth && cur; i++) {
		if (!json_is_object(cur))
			return NULL;
		cur = json_object_getn(cur, path[i].name, path[i].len);
	}
	return (json_t *)cur;
}

static bool match_words(const char *s, size_t len, const char *pat, size_t plen)
{
	size_t i = 0;

	while (i < len) {
		size_t e;

		while (i < len && s[i] == ' ')
			i++;
		e = i;
		while (e < len && s[e] != ' ')
			e++;
		if (e > i && zm_authz_match(pat, plen, s + i, e - i, 0))
			return true;
		i = e;
	}
	return false;
}

bool zm_jwt_claim_match(const json_t *claims, const struct zm_claim_seg *path, size_t depth,
			const char *pat, size_t plen)
{
	const json_t *v = zm_jwt_claim_get(claims, path, depth);
	bool spaced = depth == 1 &&
		      ((path[0].len == 5 && !memcmp(path[0].name, "scope", 5)) ||
		       (path[0].len == 10 && !memcmp(path[0].name, "permission", 10)));

	if (json_is_string(v)) {
		if (spaced)
			return match_words(json_string_value(v), json_string_length(v), pat, plen);
		return zm_authz_match(pat, plen, json_string_value(v), json_string_length(v), 0);
	}
	if (json_is_array(v)) {
		for (size_t i = 0; i < json_array_size(v); i++) {
			const json_t *e = json_array_get(v, i);

			if (json_is_string(e) &&
			    zm_authz_match(pat, plen, json_string_value(e), json_string_length(e), 0))
				return true;
		}
	}
	return false;
}
