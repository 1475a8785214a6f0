/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to the L7 engine (l7route.c, l7authz.c, l7jwt.c).
 *
 * JWT verification lives in l7jwt.c behind plain C types because
 * zmesh/jwt.h and zmesh/istio.h both define `struct zm_jwt_rule` (the
 * verifier's rule and the config message) and cannot meet in one file.
 */
#ifndef ZMESH_L7_INT_H
#define ZMESH_L7_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One jwtRules entry, plain. */
struct l7_jwt_rule_in {
	const char *issuer;
	const char *const *audiences;
	size_t naud;
	const char *jwks;		/* JWKS JSON, NULL when none (jwksUri not fetched yet) */
	bool soft;			/* fetched, not configured: a bad document means no keys, not an error */
};

/* The rules of one RequestAuthentication, parsed (JWKS keys). */
struct l7_jwt_set;

/* 0, or -EINVAL with @err naming the rule index and why. */
int l7_jwt_set_new(const struct l7_jwt_rule_in *rules, size_t n, struct l7_jwt_set **out,
		   char *err, size_t errsz);
void l7_jwt_set_free(struct l7_jwt_set *s);

/* A verified token. */
struct l7_jwt_res {
	size_t set_idx, rule_idx;	/* which set (in the caller's array) and rule accepted it */
	char *principal;		/* "iss/sub" or NULL */
	void *claims;			/* json_t *, owned */
	void *jwt;			/* struct zm_jwt *, owned */
};

/*
 * Verify @tok against every rule of @sets. 0 and @res (free with
 * l7_jwt_res_free), or a positive enum zm_jwt_status with *@reason set.
 */
int l7_jwt_verify(struct l7_jwt_set *const *sets, size_t nsets, const char *tok, size_t len,
		  int64_t now, struct l7_jwt_res *res, const char **reason);
void l7_jwt_res_free(struct l7_jwt_res *res);

/* Conditions on a verified token (res NULL: anonymous, nothing matches). */
bool l7_jwt_claim_match(const struct l7_jwt_res *res, const char *key_brackets,
			const char *pat, bool *bad_key);
bool l7_jwt_aud_match(const struct l7_jwt_res *res, const char *pat);
bool l7_jwt_presenter_match(const struct l7_jwt_res *res, const char *pat);

/* Token extraction (wrappers over jwt.h). 0 or -ENOENT. */
int l7_jwt_from_header(const char *value, size_t vlen, const char *prefix,
		       const char **tok, size_t *tlen);
int l7_jwt_from_query(const char *query, size_t qlen, const char *param,
		      const char **tok, size_t *tlen);

/* ---- AuthorizationPolicy rules (l7authz.c) ---- */

struct zm_authorization_policy;
struct zm_http_field;

/* What a request offers to policy; NULL / 0 fields are absent. */
struct l7_authz_ctx {
	const char *method, *host, *path;	/* path: normalized, no query */
	int port;
	const struct zm_http_field *headers;
	size_t nheaders;
	const char *src_principal, *src_ns;
	int src_family;
	const uint8_t *src_addr;
	const char *dst_ip;
	const struct l7_jwt_res *jwt;		/* verified token or NULL */
	bool l4_only;				/* TCP: HTTP attributes cannot be evaluated */
};

/*
 * True when some rule of @ap matches @c. @deny says which action the policy
 * has: a rule that cannot be evaluated matches in a DENY policy and does
 * not in an ALLOW one (fail closed both ways).
 */
bool l7_authz_policy_matches(const struct zm_authorization_policy *ap,
			     const struct l7_authz_ctx *c, bool deny);

#endif
