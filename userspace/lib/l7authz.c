// SPDX-License-Identifier: Apache-2.0
/*
 * AuthorizationPolicy rule evaluation for the waypoint (Istio semantics:
 * any from, any to, every when; a field lists alternatives, its not* form
 * excludes). Values are matched with authz_match.h. Tri-state inside: 1
 * match, 0 no match, -1 cannot evaluate (the caller's action decides).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zmesh/authz_match.h"
#include "zmesh/istio.h"
#include "l7_int.h"

static bool pat_match(const char *pat, const char *val, unsigned flags)
{
	return zm_authz_match(pat, strlen(pat), val, val ? strlen(val) : 0, flags) && val;
}

/* Any pattern of @l matches @val. */
static bool any_match(const zm_cstrs *l, const char *val, unsigned flags)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].v && pat_match(l->v[i].v, val, flags))
			return true;
	return false;
}

/* A field with its not* twin: 1 when the request passes both. */
static bool field_ok(const zm_cstrs *yes, const zm_cstrs *no, const char *val, unsigned flags)
{
	if (yes->n && !any_match(yes, val, flags))
		return false;
	if (no->n && any_match(no, val, flags))
		return false;
	return true;
}

static int ip_in(const char *block, int fam, const uint8_t *addr)
{
	struct zm_cidr c;

	if (zm_cidr_parse(block, strlen(block), &c) < 0)
		return -1;
	return fam && addr && zm_cidr_match(&c, fam, addr);
}

/* 1 when ip passes the lists, 0 when not, -1 when a block is unreadable. */
static int ip_ok(const zm_cstrs *yes, const zm_cstrs *no, int fam, const uint8_t *addr)
{
	bool hit = false;

	for (size_t i = 0; i < yes->n; i++) {
		int r = ip_in(yes->v[i].v, fam, addr);

		if (r < 0)
			return -1;
		hit |= r;
	}
	if (yes->n && !hit)
		return 0;
	for (size_t i = 0; i < no->n; i++) {
		int r = ip_in(no->v[i].v, fam, addr);

		if (r < 0)
			return -1;
		if (r)
			return 0;
	}
	return 1;
}

/* "ns/sa" from a principal "[spiffe://]td/ns/<ns>/sa/<sa>" into @out. */
static const char *principal_sa(const char *p, char *out, size_t outsz)
{
	const char *ns, *sa;

	if (p && !strncmp(p, "spiffe://", 9))
		p += 9;
	if (!p || !(ns = strstr(p, "/ns/")) ||
	    !(sa = strstr(ns + 4, "/sa/")))
		return NULL;
	snprintf(out, outsz, "%.*s/%s", (int)(sa - ns - 4), ns + 4, sa + 4);
	return out;
}

static int source_ok(const struct zm_authz_source *s, const struct l7_authz_ctx *c)
{
	const char *rp = c->jwt ? c->jwt->principal : NULL;
	char sabuf[256];
	const char *sa = principal_sa(c->src_principal, sabuf, sizeof(sabuf));
	int r;

	if (!field_ok(&s->principals, &s->not_principals, c->src_principal, 0) ||
	    !field_ok(&s->request_principals, &s->not_request_principals, rp, 0) ||
	    !field_ok(&s->namespaces, &s->not_namespaces, c->src_ns, 0) ||
	    !field_ok(&s->service_accounts, &s->not_service_accounts, sa, 0))
		return 0;
	r = ip_ok(&s->ip_blocks, &s->not_ip_blocks, c->src_family, c->src_addr);
	if (r <= 0)
		return r;
	/* No proxy protocol / XFF trust here: the remote IP is the peer. */
	return ip_ok(&s->remote_ip_blocks, &s->not_remote_ip_blocks, c->src_family, c->src_addr);
}

static int operation_ok(const struct zm_authz_operation *o, const struct l7_authz_ctx *c)
{
	char port[16];

	snprintf(port, sizeof(port), "%d", c->port);
	/* On TCP, HTTP fields cannot be evaluated (Istio: such an ALLOW rule
	 * never matches, such a DENY rule still denies), but an L4 field that
	 * does not hold (ports) makes it no match at all, as Istio ignores
	 * only the HTTP fields. */
	if (c->l4_only && !field_ok(&o->ports, &o->not_ports, c->port > 0 ? port : NULL, 0))
		return 0;
	if (c->l4_only && (o->hosts.n || o->not_hosts.n || o->methods.n || o->not_methods.n ||
			   o->paths.n || o->not_paths.n))
		return -1;
	return field_ok(&o->hosts, &o->not_hosts, c->host, ZM_MATCH_ICASE) &&
	       field_ok(&o->methods, &o->not_methods, c->method, 0) &&
	       field_ok(&o->paths, &o->not_paths, c->path, 0) &&
	       field_ok(&o->ports, &o->not_ports, c->port > 0 ? port : NULL, 0);
}

/* One value of a `when` condition: 1, 0, or -1 (cannot evaluate). */
static int cond_value(const char *key, const char *v, const struct l7_authz_ctx *c)
{
	size_t kl = strlen(key);

	if (c->l4_only && !strncmp(key, "request.", 8))
		return -1;
	if (!strncmp(key, "request.headers[", 16) && key[kl - 1] == ']') {
		int r = zm_authz_match_header(v, strlen(v), c->headers, c->nheaders, key + 16, kl - 17);

		return r < 0 ? -1 : r;
	}
	if (!strcmp(key, "source.ip") || !strcmp(key, "remote.ip"))
		return ip_in(v, c->src_family, c->src_addr);
	if (!strcmp(key, "destination.ip")) {
		struct zm_cidr b;
		uint8_t a[16];
		int fam = c->dst_ip && strchr(c->dst_ip, ':') ? AF_INET6 : AF_INET;

		if (zm_cidr_parse(v, strlen(v), &b) < 0)
			return -1;
		return c->dst_ip && inet_pton(fam, c->dst_ip, a) == 1 && zm_cidr_match(&b, fam, a);
	}
	if (!strcmp(key, "destination.port")) {
		char p[16];

		snprintf(p, sizeof(p), "%d", c->port);
		return !strcmp(v, p);
	}
	if (!strcmp(key, "source.namespace"))
		return pat_match(v, c->src_ns, 0);
	if (!strcmp(key, "source.principal"))
		return pat_match(v, c->src_principal, 0);
	if (!strcmp(key, "source.serviceAccount")) {
		char sabuf[256];

		return pat_match(v, principal_sa(c->src_principal, sabuf, sizeof(sabuf)), 0);
	}
	if (!strcmp(key, "request.auth.principal"))
		return pat_match(v, c->jwt ? c->jwt->principal : NULL, 0);
	if (!strcmp(key, "request.auth.audiences"))
		return l7_jwt_aud_match(c->jwt, v);
	if (!strcmp(key, "request.auth.presenter"))
		return l7_jwt_presenter_match(c->jwt, v);
	if (!strncmp(key, "request.auth.claims", 19)) {
		bool bad = false;
		bool m = l7_jwt_claim_match(c->jwt, key + 19, v, &bad);

		return bad ? -1 : m;
	}
	if (!strcmp(key, "connection.sni"))
		return 0;	/* plaintext HTTP: no SNI */
	return -1;
}

static int cond_ok(const struct zm_authz_condition *w, const struct l7_authz_ctx *c)
{
	const char *key = w->key.v ? w->key.v : "";
	bool hit = false;

	for (size_t i = 0; i < w->values.n; i++) {
		int r = cond_value(key, w->values.v[i].v, c);

		if (r < 0)
			return -1;
		hit |= r;
	}
	if (w->values.n && !hit)
		return 0;
	for (size_t i = 0; i < w->not_values.n; i++) {
		int r = cond_value(key, w->not_values.v[i].v, c);

		if (r < 0)
			return -1;
		if (r)
			return 0;
	}
	return 1;
}

static int rule_matches(const struct zm_authz_rule *r, const struct l7_authz_ctx *c)
{
	bool unknown = false;
	int any;

	/* A definite "no" anywhere is "no"; otherwise an unknown part makes the
	 * whole rule unknown. */
	if (r->from.n) {
		bool from_unknown = false;

		any = 0;
		for (size_t i = 0; i < r->from.n && any != 1; i++) {
			int m = source_ok(&r->from.v[i].source, c);

			if (m < 0)
				from_unknown = true;
			else if (m)
				any = 1;
		}
		if (!any && !from_unknown)
			return 0;
		unknown |= !any;
	}
	if (r->to.n) {
		bool to_unknown = false;

		any = 0;
		for (size_t i = 0; i < r->to.n && any != 1; i++) {
			int m = operation_ok(&r->to.v[i].operation, c);

			if (m < 0)
				to_unknown = true;
			else if (m)
				any = 1;
		}
		if (!any && !to_unknown)
			return 0;
		unknown |= !any;
	}
	for (size_t i = 0; i < r->when.n; i++) {
		int m = cond_ok(&r->when.v[i], c);

		if (m < 0)
			unknown = true;
		else if (!m)
			return 0;
	}
	return unknown ? -1 : 1;
}

bool l7_authz_policy_matches(const struct zm_authorization_policy *ap,
			     const struct l7_authz_ctx *c, bool deny)
{
	for (size_t i = 0; i < ap->rules.n; i++) {
		int m = rule_matches(&ap->rules.v[i], c);

		if (m > 0 || (m < 0 && deny))
			return true;
	}
	return false;
}
