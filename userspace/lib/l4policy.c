// SPDX-License-Identifier: Apache-2.0
/* PeerAuthentication and L4 AuthorizationPolicy for ztunnel (l4policy.h). */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zmesh/authz_match.h"
#include "zmesh/l4policy.h"

static bool selector_matches(const struct zm_workload_selector *sel, const struct zm_labels *l)
{
	for (size_t i = 0; i < sel->match_labels.n; i++) {
		const char *v = l ? zm_labels_get(l, sel->match_labels.v[i].key.v) : NULL;

		if (!v || strcmp(v, sel->match_labels.v[i].val.v))
			return false;
	}
	return true;
}

/* ---- PeerAuthentication ---------------------------------------------------- */

enum pa_scope { PA_MESH, PA_NAMESPACE, PA_WORKLOAD, PA__N };

/* The policy of each scope for @w: the first by name when several (Istio takes the oldest). */
static void pa_scopes(const struct zm_cfg_set *cfg, const struct zm_l4_workload *w,
		      const struct zm_cfg_obj *out[PA__N])
{
	for (int i = 0; i < PA__N; i++)
		out[i] = NULL;
	for (size_t i = 0; cfg && i < cfg->nobjs; i++) {
		const struct zm_cfg_obj *o = cfg->objs[i];
		const char *ns = o->meta.ns.v;
		bool has_sel;
		int scope;

		if (o->kind != ZM_K_PEERAUTHENTICATION || !ns)
			continue;
		has_sel = o->pa->selector.o.set;
		if (has_sel) {
			/* A selector in the root namespace is not mesh-wide: it
			 * selects workloads of that namespace only (Istio). */
			if (strcmp(ns, w->ns) || !selector_matches(&o->pa->selector, w->labels))
				continue;
			scope = PA_WORKLOAD;
		} else if (!strcmp(ns, ZM_ROOT_NS)) {
			scope = PA_MESH;
		} else if (!strcmp(ns, w->ns)) {
			scope = PA_NAMESPACE;
		} else {
			continue;
		}
		if (!out[scope] || strcmp(o->meta.name.v, out[scope]->meta.name.v) < 0)
			out[scope] = o;
	}
}

static enum zm_mtls_mode port_mode(const struct zm_peer_authentication *pa, uint16_t port)
{
	char key[8];

	snprintf(key, sizeof(key), "%u", port);
	for (size_t i = 0; i < pa->port_level_mtls.n; i++)
		if (pa->port_level_mtls.v[i].key.v && !strcmp(pa->port_level_mtls.v[i].key.v, key))
			return (enum zm_mtls_mode)pa->port_level_mtls.v[i].val.mode.v;
	return ZM_MTLS_UNSET;
}

enum zm_mtls_mode zm_l4_mtls_mode(const struct zm_cfg_set *cfg, const struct zm_l4_workload *w,
				  uint16_t port)
{
	const struct zm_cfg_obj *sc[PA__N];
	enum zm_mtls_mode m = ZM_MTLS_UNSET;

	pa_scopes(cfg, w, sc);
	if (sc[PA_WORKLOAD])
		m = port_mode(sc[PA_WORKLOAD]->pa, port);
	for (int s = PA_WORKLOAD; s >= PA_MESH && m == ZM_MTLS_UNSET; s--)
		if (sc[s])
			m = (enum zm_mtls_mode)sc[s]->pa->mtls.mode.v;
	return m == ZM_MTLS_UNSET ? ZM_MTLS_PERMISSIVE : m;
}

bool zm_l4_strict_everywhere(const struct zm_cfg_set *cfg, const struct zm_l4_workload *w)
{
	const struct zm_cfg_obj *sc[PA__N];
	enum zm_mtls_mode m = ZM_MTLS_UNSET;

	pa_scopes(cfg, w, sc);
	if (sc[PA_WORKLOAD]) {
		const struct zm_peer_authentication *pa = sc[PA_WORKLOAD]->pa;

		for (size_t i = 0; i < pa->port_level_mtls.n; i++)
			if (pa->port_level_mtls.v[i].val.mode.v != ZM_MTLS_STRICT &&
			    pa->port_level_mtls.v[i].val.mode.v != ZM_MTLS_UNSET)
				return false;
	}
	for (int s = PA_WORKLOAD; s >= PA_MESH && m == ZM_MTLS_UNSET; s--)
		if (sc[s])
			m = (enum zm_mtls_mode)sc[s]->pa->mtls.mode.v;
	return m == ZM_MTLS_STRICT;
}

/* ---- AuthorizationPolicy ------------------------------------------------- */

static bool ap_applies(const struct zm_cfg_obj *o, const struct zm_l4_workload *w)
{
	const struct zm_authorization_policy *ap = o->ap;
	const char *ns = o->meta.ns.v;

	if (!ns || ap->target_ref.o.set || ap->target_refs.n)
		return false;
	if (strcmp(ns, w->ns) && strcmp(ns, ZM_ROOT_NS))
		return false;
	return !ap->selector.o.set || selector_matches(&ap->selector, w->labels);
}

/* What the connection offers to match against. */
struct facts {
	const struct zm_l4_conn *c;
	const char *principal;		/* may be NULL */
	char ns[64];			/* from the principal; "" when none */
	char sa[64];
	bool has_ns;
};

/* "td/ns/NS/sa/SA" -> NS and SA; false when the principal is not of that form. */
static bool principal_split(const char *p, char *ns, size_t nssz, char *sa, size_t sasz)
{
	const char *a = strstr(p, "/ns/"), *b;

	if (!a)
		return false;
	a += 4;
	b = strstr(a, "/sa/");
	if (!b || b == a || (size_t)(b - a) >= nssz || strlen(b + 4) >= sasz || !b[4] ||
	    strchr(b + 4, '/'))
		return false;
	memcpy(ns, a, (size_t)(b - a));
	ns[b - a] = '\0';
	snprintf(sa, sasz, "%s", b + 4);
	return true;
}

/* A field's verdict: it matches, it does not, or it cannot be evaluated at L4. */
enum m { M_NO, M_YES, M_L7 };

static bool str_any(const zm_cstrs *pats, const char *val)
{
	for (size_t i = 0; i < pats->n; i++)
		if (val && zm_authz_match(pats->v[i].v, strlen(pats->v[i].v), val, strlen(val), 0))
			return true;
	return false;
}

/* values and notValues of one field: M_YES when both written parts agree. */
static enum m str_field(const zm_cstrs *in, const zm_cstrs *not_in, const char *val)
{
	if (in->n && !str_any(in, val))
		return M_NO;
	if (not_in->n && str_any(not_in, val))
		return M_NO;
	return M_YES;
}

/* An address against CIDRs; a block that does not parse matches (it only
 * reaches here past validation, and then deny rules stay closed). */
static bool ip_any(const zm_cstrs *blocks, const struct zm_l4_conn *c, const uint8_t *ip, bool *bad)
{
	for (size_t i = 0; i < blocks->n; i++) {
		struct zm_cidr cidr;

		if (zm_cidr_parse(blocks->v[i].v, strlen(blocks->v[i].v), &cidr)) {
			*bad = true;
			continue;
		}
		if (zm_cidr_match(&cidr, c->family, ip))
			return true;
	}
	return false;
}

static enum m ip_field(const zm_cstrs *in, const zm_cstrs *not_in, const struct zm_l4_conn *c,
		       const uint8_t *ip)
{
	bool bad = false;

	if (in->n && !ip_any(in, c, ip, &bad))
		return bad ? M_L7 : M_NO;
	if (not_in->n && ip_any(not_in, c, ip, &bad))
		return M_NO;
	return bad ? M_L7 : M_YES;
}

static bool port_any(const zm_cstrs *ports, uint16_t port)
{
	char p[8];

	snprintf(p, sizeof(p), "%u", port);
	for (size_t i = 0; i < ports->n; i++)
		if (!strcmp(ports->v[i].v, p))
			return true;
	return false;
}

/* Combine field verdicts of one source/operation/rule: AND, where "L7"
 * stays "L7" unless something definitely does not match. */
static enum m and(enum m a, enum m b)
{
	if (a == M_NO || b == M_NO)
		return M_NO;
	return a == M_L7 || b == M_L7 ? M_L7 : M_YES;
}

static enum m sa_field(const zm_cstrs *in, const zm_cstrs *not_in, const struct facts *f)
{
	char v[160];

	if (!in->n && !not_in->n)
		return M_YES;
	/* serviceAccounts are "<ns>/<sa>", exact. */
	if (f->has_ns)
		snprintf(v, sizeof(v), "%s/%s", f->ns, f->sa);
	for (size_t i = 0; in->n && i <= in->n; i++) {
		if (i == in->n)
			return M_NO;
		if (f->has_ns && !strcmp(in->v[i].v, v))
			break;
	}
	for (size_t i = 0; i < not_in->n; i++)
		if (f->has_ns && !strcmp(not_in->v[i].v, v))
			return M_NO;
	return M_YES;
}

static enum m source_match(const struct zm_authz_source *s, const struct facts *f)
{
	enum m r = M_YES;

	r = and(r, str_field(&s->principals, &s->not_principals, f->principal));
	r = and(r, str_field(&s->namespaces, &s->not_namespaces, f->has_ns ? f->ns : NULL));
	r = and(r, sa_field(&s->service_accounts, &s->not_service_accounts, f));
	r = and(r, ip_field(&s->ip_blocks, &s->not_ip_blocks, f->c, f->c->src_ip));
	r = and(r, ip_field(&s->remote_ip_blocks, &s->not_remote_ip_blocks, f->c, f->c->src_ip));
	if (s->request_principals.n || s->not_request_principals.n)
		r = and(r, M_L7);
	return r;
}

static enum m operation_match(const struct zm_authz_operation *op, const struct facts *f)
{
	enum m r = M_YES;

	if (op->ports.n && !port_any(&op->ports, f->c->dst_port))
		r = M_NO;
	if (op->not_ports.n && port_any(&op->not_ports, f->c->dst_port))
		r = M_NO;
	if (op->hosts.n || op->not_hosts.n || op->methods.n || op->not_methods.n || op->paths.n ||
	    op->not_paths.n)
		r = and(r, M_L7);
	return r;
}

static enum m condition_match(const struct zm_authz_condition *cd, const struct facts *f)
{
	const char *k = cd->key.v;
	char port[8];

	if (!strcmp(k, "source.ip") || !strcmp(k, "remote.ip"))
		return ip_field(&cd->values, &cd->not_values, f->c, f->c->src_ip);
	if (!strcmp(k, "destination.ip"))
		return ip_field(&cd->values, &cd->not_values, f->c, f->c->dst_ip);
	if (!strcmp(k, "source.namespace"))
		return str_field(&cd->values, &cd->not_values, f->has_ns ? f->ns : NULL);
	if (!strcmp(k, "source.principal"))
		return str_field(&cd->values, &cd->not_values, f->principal);
	if (!strcmp(k, "destination.port")) {
		snprintf(port, sizeof(port), "%u", f->c->dst_port);
		return str_field(&cd->values, &cd->not_values, port);
	}
	return M_L7;	/* request.*, connection.sni, experimental.*: not at L4 */
}

/* Some of several alternatives: YES beats L7 beats NO. */
static enum m or(enum m a, enum m b)
{
	if (a == M_YES || b == M_YES)
		return M_YES;
	return a == M_L7 || b == M_L7 ? M_L7 : M_NO;
}

static enum m rule_match(const struct zm_authz_rule *r, const struct facts *f)
{
	enum m from = r->from.n ? M_NO : M_YES, to = r->to.n ? M_NO : M_YES, res;

	for (size_t i = 0; i < r->from.n; i++)
		from = or(from, source_match(&r->from.v[i].source, f));
	for (size_t i = 0; i < r->to.n; i++)
		to = or(to, operation_match(&r->to.v[i].operation, f));
	res = and(from, to);
	for (size_t i = 0; i < r->when.n && res != M_NO; i++)
		res = and(res, condition_match(&r->when.v[i], f));
	return res;
}

/* Does a rule of @ap decide for its action? L7 parts: ALLOW no, DENY yes. */
static bool policy_hits(const struct zm_authorization_policy *ap, const struct facts *f, bool deny)
{
	for (size_t i = 0; i < ap->rules.n; i++) {
		enum m r = rule_match(&ap->rules.v[i], f);

		if (r == M_YES || (r == M_L7 && deny))
			return true;
	}
	return false;
}

static void decide(struct zm_l4_verdict *v, bool allow, const struct zm_cfg_obj *o, const char *why)
{
	v->allow = allow;
	if (o)
		snprintf(v->policy, sizeof(v->policy), "%s/%s", o->meta.ns.v, o->meta.name.v);
	else
		v->policy[0] = '\0';
	snprintf(v->reason, sizeof(v->reason), "%s", why);
}

void zm_l4_authorize(const struct zm_cfg_set *cfg, const struct zm_l4_workload *w,
		     const struct zm_l4_conn *c, struct zm_l4_verdict *v)
{
	struct facts f = { .c = c, .principal = c->principal };
	const struct zm_cfg_obj *allow_seen = NULL;

	if (c->principal)
		f.has_ns = principal_split(c->principal, f.ns, sizeof(f.ns), f.sa, sizeof(f.sa));
	/* CUSTOM first, then DENY, then ALLOW, as Envoy chains them in Istio. */
	for (size_t i = 0; cfg && i < cfg->nobjs; i++) {
		const struct zm_cfg_obj *o = cfg->objs[i];

		if (o->kind != ZM_K_AUTHORIZATIONPOLICY || !ap_applies(o, w))
			continue;
		if (o->ap->action.v == ZM_AUTHZ_CUSTOM) {
			decide(v, false, o, "CUSTOM policy: no external authorizer at L4");
			return;
		}
	}
	for (size_t i = 0; cfg && i < cfg->nobjs; i++) {
		const struct zm_cfg_obj *o = cfg->objs[i];

		if (o->kind != ZM_K_AUTHORIZATIONPOLICY || !ap_applies(o, w))
			continue;
		if (o->ap->action.v == ZM_AUTHZ_DENY && policy_hits(o->ap, &f, true)) {
			decide(v, false, o, "denied by a DENY policy");
			return;
		}
	}
	for (size_t i = 0; cfg && i < cfg->nobjs; i++) {
		const struct zm_cfg_obj *o = cfg->objs[i];

		if (o->kind != ZM_K_AUTHORIZATIONPOLICY || !ap_applies(o, w) ||
		    o->ap->action.v != ZM_AUTHZ_ALLOW)
			continue;
		if (policy_hits(o->ap, &f, false)) {
			decide(v, true, o, "allowed by an ALLOW policy");
			return;
		}
		allow_seen = o;
	}
	if (allow_seen)
		decide(v, false, NULL, "no ALLOW policy matched");
	else
		decide(v, true, NULL, "no ALLOW policy applies");
}
