/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Value matchers for Istio AuthorizationPolicy rules, with Istio's semantics
 * (pilot's StringMatcherWithPrefix and the "Authorization Policy
 * Normalization" reference). All inputs carry explicit lengths; a NUL byte
 * is an ordinary byte, never a terminator (CVE-2025-66220's lesson).
 *
 * String patterns (paths, hosts, methods, principals, namespaces, header
 * values, claims), decided in this order:
 *   "*"      presence: any value of at least one byte (Istio ".+"); an
 *            absent value (NULL) or an empty one does not match;
 *   "*abc"   suffix match on "abc";
 *   "abc*"   prefix match on "abc";
 *   other    exact match.
 * A '*' anywhere else is a literal byte ("a*b" matches only "a*b"; "*a*"
 * is a suffix match on "a*"), as in Istio; zm_authz_pattern_valid() lets
 * config validation refuse such patterns up front. An absent value never
 * matches any pattern: the caller turns not* fields into "no pattern
 * matches".
 *
 * Per field:
 * - paths: byte-exact on the normalized path (http_path.h) without the
 *   query. Matching is case-sensitive, as URLs are.
 * - hosts: ASCII case-insensitive (RFC 4343; CVE-2021-39155) on the whole
 *   Host/:authority value. The port is NOT ignored: as in Istio,
 *   hosts: ["example.com"] does not match "example.com:8080"; write
 *   "example.com:*" as well, as Istio's docs advise.
 * - methods: case-sensitive. Requests whose method is not all upper case are
 *   refused with 400 before policy (zm_http_method_valid()), and a
 *   lower-case pattern ("get") therefore never matches anything.
 * - headers (request.headers[name]): the name is case-insensitive; all
 *   fields with that name are joined with ", " in arrival order and the
 *   pattern matches the joined value (CVE-2021-31920's duplicate-header
 *   variant). A header that is absent matches nothing.
 * - ipBlocks / source.ip / remote.ip: single addresses or CIDRs, IPv4 and
 *   IPv6; an IPv4-mapped IPv6 peer (::ffff:a.b.c.d, what a dual-stack socket
 *   reports) is matched as the IPv4 address it is.
 */
#ifndef ZMESH_AUTHZ_MATCH_H
#define ZMESH_AUTHZ_MATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zmesh/http_safe.h"

/* Flags for zm_authz_match(). */
#define ZM_MATCH_ICASE 0x1u	/* ASCII case-insensitive (hosts) */

/* Istio string match of @val (NULL = absent) against @pat; see above. */
bool zm_authz_match(const char *pat, size_t plen, const char *val, size_t vlen,
		    unsigned flags);

/* True when @pat has no '*' except one leading or one trailing, or is "*". */
bool zm_authz_pattern_valid(const char *pat, size_t plen);

/* hosts: case-insensitive, port included (see above). */
bool zm_authz_match_host(const char *pat, size_t plen, const char *host, size_t hlen);

/* methods: case-sensitive. */
bool zm_authz_match_method(const char *pat, size_t plen, const char *method, size_t mlen);

/*
 * True when @method is a valid request method for policy: a non-empty token
 * of upper-case letters (and '-' or '_', as in extension methods). Anything
 * else is answered with 400 before authorization.
 */
bool zm_http_method_valid(const char *method, size_t len);

/*
 * Join every field named @name (case-insensitive) with ", " into @out
 * (@outsz bytes, NUL-terminated), length in *outlen.
 * Returns 0, -ENOENT when there is no such field, -ENOSPC when @out is too
 * small (treat as "cannot evaluate": the policy becomes DENY).
 */
int zm_http_header_join(const struct zm_http_field *fields, size_t n,
			const char *name, size_t nlen, char *out, size_t outsz,
			size_t *outlen);

/*
 * request.headers[@name] against @pat. Returns 1 match, 0 no match (also for
 * an absent header), -ENOSPC when the joined value exceeds
 * ZM_AUTHZ_HEADER_MAX (cannot evaluate: DENY).
 */
#define ZM_AUTHZ_HEADER_MAX 8192
int zm_authz_match_header(const char *pat, size_t plen, const struct zm_http_field *fields,
			  size_t n, const char *name, size_t nlen);

/* An address block: family AF_INET or AF_INET6, host bits cleared. */
struct zm_cidr {
	int family;
	unsigned prefix;	/* 0..32 or 0..128 */
	uint8_t addr[16];	/* network byte order; IPv4 in addr[0..4) */
};

/*
 * Parse "10.1.2.3", "10.0.0.0/8", "2001:db8::1", "2001:db8::/32" (@len
 * bytes, no NUL needed). A bare address is a /32 or /128. Host bits beyond
 * the prefix are cleared (Envoy's CidrRange does the same). Returns 0 or
 * -EINVAL (garbage, prefix out of range, leading/trailing spaces).
 */
int zm_cidr_parse(const char *s, size_t len, struct zm_cidr *out);

/*
 * True when the address @addr (4 bytes for AF_INET, 16 for AF_INET6,
 * network order) lies in @c. IPv4-mapped IPv6 addresses match IPv4 blocks.
 */
bool zm_cidr_match(const struct zm_cidr *c, int family, const void *addr);

#endif /* ZMESH_AUTHZ_MATCH_H */
