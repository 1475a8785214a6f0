/* SPDX-License-Identifier: Apache-2.0 */
/*
 * JWT verification for RequestAuthentication (RFC 7515/7517/7518/7519),
 * with OpenSSL 3 EVP and jansson.
 *
 * Parsing is strict and bounded:
 * - compact JWS only: exactly three parts separated by '.', each non-empty,
 *   base64url without padding ('=' rejected), no whitespace, canonical (the
 *   unused low bits of the last character must be zero, so one token has one
 *   spelling); the whole token is at most ZM_JWT_MAX_LEN bytes;
 * - header and payload must be JSON objects, duplicate keys and \u0000 are
 *   rejected (jansson JSON_REJECT_DUPLICATES);
 * - header: "alg" is required and must be one of RS256, RS384, RS512,
 *   PS256, PS384, PS512, ES256, ES384. "none" and HS* are refused (there are
 *   no shared secrets here, so alg/key confusion cannot happen), as is any
 *   "crit" header. "jwk", "jku", "x5u", "x5c" in the header are ignored:
 *   keys only ever come from the configured JWKS.
 *
 * Key selection: with a "kid" in the header only keys with that kid are
 * tried (none -> ZM_JWT_UNKNOWN_KID); without one every key whose type and
 * curve fit the alg is tried (as Envoy does). A key's own "alg", when set,
 * must equal the token's. RSA keys need at least 2048 bits; EC keys must be
 * P-256 (ES256) or P-384 (ES384) points on the curve.
 * ES* signatures are raw r||s (64 or 96 bytes exactly, else
 * ZM_JWT_BAD_SIGNATURE), converted to DER for EVP_DigestVerify. PS* use
 * MGF1 with the same hash and a salt as long as the hash.
 *
 * Claims, checked after the signature:
 * - "iss" must be a string equal (byte for byte) to a rule's issuer; the
 *   rule is chosen by it (else ZM_JWT_WRONG_ISSUER);
 * - "exp" / "nbf" (numbers) when present: expired when now > exp + skew,
 *   not yet valid when now + skew < nbf; "iat" is ignored unless it is
 *   later than now + skew. skew defaults to 60 s (Envoy jwt_authn's
 *   clock_skew_seconds default; Istio does not change it);
 * - "aud" (string or array of strings): when the rule lists audiences, at
 *   least one must be in "aud" (missing "aud" -> ZM_JWT_WRONG_AUDIENCE);
 * - "sub" (string, optional): request principal = iss + "/" + sub.
 * Claims of the wrong JSON type are ZM_JWT_MALFORMED.
 *
 * Nothing here blocks or fetches: jwksUri fetching belongs to the caller,
 * which hands over a parsed struct zm_jwks (CVE-2024-45809: never crash or
 * stall while keys are missing: an empty or absent JWKS just yields
 * ZM_JWT_NO_KEYS -> 401).
 */
#ifndef ZMESH_JWT_H
#define ZMESH_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "zmesh/log.h"

#define ZM_JWT_MAX_LEN 16384		/* bytes of compact token */
#define ZM_JWKS_MAX_LEN (256 * 1024)	/* bytes of JWKS JSON */
#define ZM_JWKS_MAX_KEYS 64
#define ZM_JWT_DEFAULT_SKEW 60		/* seconds */

enum zm_jwt_status {
	ZM_JWT_OK = 0,
	ZM_JWT_MALFORMED,	/* not a compact JWS, bad base64url/JSON, wrong claim type */
	ZM_JWT_TOO_LARGE,	/* longer than ZM_JWT_MAX_LEN */
	ZM_JWT_ALG_NOT_ALLOWED,	/* none, HS*, unknown alg, crit header */
	ZM_JWT_UNKNOWN_KID,	/* no key with the token's kid */
	ZM_JWT_NO_KEYS,		/* no JWKS key fits the alg (or no JWKS yet) */
	ZM_JWT_BAD_SIGNATURE,	/* signature does not verify (or has the wrong size) */
	ZM_JWT_WRONG_ISSUER,	/* iss missing or no rule for it */
	ZM_JWT_EXPIRED,
	ZM_JWT_NOT_YET_VALID,	/* nbf in the future */
	ZM_JWT_IAT_FUTURE,	/* iat in the future */
	ZM_JWT_WRONG_AUDIENCE,
	ZM_JWT_INTERNAL,	/* allocation or OpenSSL failure */
};

/* Short reason for the 401 body and the log ("Jwt is expired", ...). */
const char *zm_jwt_strerror(enum zm_jwt_status st);

/* A parsed key set; immutable once parsed, so it can be shared by threads. */
struct zm_jwks;

/*
 * Parse a JWKS document ({"keys":[...]}, @len bytes). Keys with "use"
 * other than "sig", unknown "kty"/"crv", short RSA moduli or bad EC points
 * are skipped (their reasons counted in the error message when no key
 * survives). Returns 0 and *out, or -EINVAL (not a JWKS, or no usable key;
 * @err says why), -E2BIG (over ZM_JWKS_MAX_LEN), -ENOMEM.
 */
int zm_jwks_parse(const char *json, size_t len, struct zm_jwks **out, struct zm_error *err);
void zm_jwks_free(struct zm_jwks *jwks);
/* Number of usable keys. */
size_t zm_jwks_count(const struct zm_jwks *jwks);

/* One RequestAuthentication jwtRules entry, as plain C data. */
struct zm_jwt_rule {
	const char *issuer;
	const char *const *audiences;	/* may be NULL when n_audiences == 0 */
	size_t n_audiences;
	const struct zm_jwks *jwks;	/* NULL while not fetched yet */
	int clock_skew;			/* seconds; < 0 means ZM_JWT_DEFAULT_SKEW */
};

/* A verified token. */
struct zm_jwt {
	json_t *header;		/* owned */
	json_t *claims;		/* owned: the verified payload */
	const struct zm_jwt_rule *rule;	/* the rule that accepted it */
	char *principal;	/* "iss/sub", or NULL when there is no sub */
	char alg[8];
};

/*
 * Verify @token (@len bytes, no NUL needed) against @rules at time @now
 * (seconds since the epoch). On ZM_JWT_OK @out holds the verified token
 * (release with zm_jwt_free()); on any other status @out is zeroed. Never
 * crashes on garbage: every byte of @token is attacker-controlled.
 */
enum zm_jwt_status zm_jwt_verify(const char *token, size_t len,
				 const struct zm_jwt_rule *rules, size_t n_rules,
				 int64_t now, struct zm_jwt *out);
void zm_jwt_free(struct zm_jwt *jwt);

/*
 * Decode base64url without padding (strict, see above) into @out (@outsz
 * bytes). Returns the decoded length or -EINVAL / -ENOSPC.
 */
long zm_base64url_decode(const char *in, size_t len, unsigned char *out, size_t outsz);

/* ---- token extraction --------------------------------------------------- */

/*
 * Token from a header value with @prefix (Istio fromHeaders; the default
 * rule is header "Authorization", prefix "Bearer "). The prefix compares
 * ASCII case-insensitively (RFC 6750 schemes are); spaces after it and
 * trailing spaces are skipped. Returns 0 with *tok and *tlen pointing into
 * @value, or -ENOENT when the prefix is missing or nothing follows it.
 */
int zm_jwt_from_header(const char *value, size_t vlen, const char *prefix,
		       const char **tok, size_t *tlen);

/*
 * Token from query parameter @param (Istio fromParams; Envoy's default also
 * reads "access_token") in @query (the text after '?', @qlen bytes, '&'
 * separated). The value is returned as sent, not percent-decoded (a JWT
 * needs no escaping; a token that was escaped fails verification as
 * malformed). Returns 0 or -ENOENT.
 */
int zm_jwt_from_query(const char *query, size_t qlen, const char *param,
		      const char **tok, size_t *tlen);

/* ---- claims for request.auth.claims[...] --------------------------------- */

/* One component of a claim path. */
struct zm_claim_seg {
	const char *name;
	size_t len;
};

#define ZM_CLAIM_MAX_DEPTH 8

/*
 * Parse the bracket part of an Istio condition key: "[groups]" or
 * "[nested1][nested2]" (the text after "request.auth.claims"). Istio nests
 * with brackets; a '.' inside brackets is part of the claim name
 * ("[https://example.com/role]" is one claim). Segments point into @key.
 * Returns the number of segments (1..@max) or -EINVAL (empty name, missing
 * bracket, trailing text, deeper than @max).
 */
int zm_claim_path_parse(const char *key, size_t len, struct zm_claim_seg *segs, size_t max);

/* The claim at @path (borrowed reference), or NULL when absent. */
json_t *zm_jwt_claim_get(const json_t *claims, const struct zm_claim_seg *path, size_t depth);

/*
 * request.auth.claims[path] against an Istio string pattern (authz_match.h):
 * a string claim matches when the string matches, a list claim when any
 * string element matches. Top-level "scope" and "permission" string claims
 * are split at spaces first, as Istio asks Envoy to
 * (space_delimited_claims). Other types (numbers, booleans, objects) never
 * match.
 */
bool zm_jwt_claim_match(const json_t *claims, const struct zm_claim_seg *path, size_t depth,
			const char *pat, size_t plen);

#endif /* ZMESH_JWT_H */
