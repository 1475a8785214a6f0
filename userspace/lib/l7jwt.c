// SPDX-License-Identifier: Apache-2.0
/* RequestAuthentication for the L7 engine: jwt.h behind plain types (l7_int.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zmesh/authz_match.h"
#include "zmesh/jwt.h"
#include "l7_int.h"

struct l7_jwt_set {
	struct zm_jwt_rule *rules;
	size_t n;
};

#define L7_JWT_MAX_RULES 64

void l7_jwt_set_free(struct l7_jwt_set *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		zm_jwks_free((struct zm_jwks *)s->rules[i].jwks);
	free(s->rules);
	free(s);
}

int l7_jwt_set_new(const struct l7_jwt_rule_in *in, size_t n, struct l7_jwt_set **out,
		   char *err, size_t errsz)
{
	struct l7_jwt_set *s = calloc(1, sizeof(*s));
	int rc = 0;

	if (!s || !(s->rules = calloc(n ? n : 1, sizeof(*s->rules)))) {
		free(s);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		struct zm_jwt_rule *r = &s->rules[s->n++];
		struct zm_error e;

		r->issuer = in[i].issuer;
		r->audiences = in[i].audiences;
		r->n_audiences = in[i].naud;
		r->clock_skew = -1;
		if (in[i].jwks) {
			struct zm_jwks *k = NULL;

			rc = zm_jwks_parse(in[i].jwks, strlen(in[i].jwks), &k, &e);
			if (rc < 0 && in[i].soft) {
				rc = 0;		/* a fetched document we cannot use: no keys (401) */
				continue;
			}
			if (rc < 0) {
				snprintf(err, errsz, "jwtRules[%zu].jwks: %s", i, e.msg);
				goto out;
			}
			r->jwks = k;
		}
	}
	*out = s;
	return 0;
out:
	l7_jwt_set_free(s);
	return rc;
}

int l7_jwt_verify(struct l7_jwt_set *const *sets, size_t nsets, const char *tok, size_t len,
		  int64_t now, struct l7_jwt_res *res, const char **reason)
{
	struct zm_jwt_rule all[L7_JWT_MAX_RULES];
	size_t map_set[L7_JWT_MAX_RULES], map_rule[L7_JWT_MAX_RULES], n = 0;
	struct zm_jwt *jwt;
	enum zm_jwt_status st;

	memset(res, 0, sizeof(*res));
	for (size_t i = 0; i < nsets; i++)
		for (size_t j = 0; j < sets[i]->n && n < L7_JWT_MAX_RULES; j++) {
			all[n] = sets[i]->rules[j];
			map_set[n] = i;
			map_rule[n++] = j;
		}
	jwt = calloc(1, sizeof(*jwt));
	if (!jwt) {
		*reason = "out of memory";
		return ZM_JWT_INTERNAL;
	}
	st = zm_jwt_verify(tok, len, all, n, now, jwt);
	if (st != ZM_JWT_OK) {
		free(jwt);
		*reason = zm_jwt_strerror(st);
		return (int)st;
	}
	for (size_t k = 0; k < n; k++)
		if (jwt->rule == &all[k]) {
			res->set_idx = map_set[k];
			res->rule_idx = map_rule[k];
		}
	jwt->rule = NULL;	/* pointed into our stack array */
	res->principal = jwt->principal ? strdup(jwt->principal) : NULL;
	res->claims = jwt->claims;
	res->jwt = jwt;
	return 0;
}

void l7_jwt_res_free(struct l7_jwt_res *res)
{
	if (res->jwt) {
		zm_jwt_free(res->jwt);
		free(res->jwt);
	}
	free(res->principal);
	memset(res, 0, sizeof(*res));
}

bool l7_jwt_claim_match(const struct l7_jwt_res *res, const char *key, const char *pat,
			bool *bad_key)
{
	struct zm_claim_seg segs[ZM_CLAIM_MAX_DEPTH];
	int n = zm_claim_path_parse(key, strlen(key), segs, ZM_CLAIM_MAX_DEPTH);

	if (n < 0) {
		*bad_key = true;
		return false;
	}
	if (!res || !res->claims)
		return false;
	return zm_jwt_claim_match(res->claims, segs, (size_t)n, pat, strlen(pat));
}

static bool str_or_list_match(const json_t *v, const char *pat)
{
	size_t i;
	json_t *x;

	if (json_is_string(v))
		return zm_authz_match(pat, strlen(pat), json_string_value(v), json_string_length(v), 0);
	if (json_is_array(v))
		json_array_foreach(v, i, x)
			if (json_is_string(x) &&
			    zm_authz_match(pat, strlen(pat), json_string_value(x), json_string_length(x), 0))
				return true;
	return false;
}

bool l7_jwt_aud_match(const struct l7_jwt_res *res, const char *pat)
{
	return res && res->claims && str_or_list_match(json_object_get(res->claims, "aud"), pat);
}

bool l7_jwt_presenter_match(const struct l7_jwt_res *res, const char *pat)
{
	return res && res->claims && str_or_list_match(json_object_get(res->claims, "azp"), pat);
}

int l7_jwt_from_header(const char *value, size_t vlen, const char *prefix,
		       const char **tok, size_t *tlen)
{
	return zm_jwt_from_header(value, vlen, prefix, tok, tlen);
}

int l7_jwt_from_query(const char *query, size_t qlen, const char *param,
		      const char **tok, size_t *tlen)
{
	return zm_jwt_from_query(query, qlen, param, tok, tlen);
}
