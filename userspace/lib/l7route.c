// SPDX-License-Identifier: Apache-2.0
/*
 * The waypoint's L7 engine (include/zmesh/l7route.h): VirtualService
 * routing, DestinationRule balancing, RequestAuthentication and
 * AuthorizationPolicy, as one pure decision per request.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "zmesh/authz_match.h"
#include "zmesh/l7route.h"
#include "zmesh/lab.h"
#include "l7_int.h"

#define HDR_JOIN_MAX 8192
#define MAX_CAND 1024

/* ---- compiled config ------------------------------------------------------- */

enum sm_kind { SM_NONE, SM_EXACT, SM_PREFIX, SM_REGEX };

struct l7_sm {
	enum sm_kind k;
	const char *s;
	pcre2_code *re;
	bool icase;
};

struct l7_kvm {
	const char *name;
	struct l7_sm m;			/* SM_NONE: presence */
};

struct l7_match {
	const struct zm_http_match *src;
	struct l7_sm uri, scheme, method, authority;
	struct l7_kvm *hdr, *qp, *without;
	size_t nhdr, nqp, nwithout;
};

struct l7_route {
	const struct zm_http_route *r;
	struct l7_match *m;
	size_t nm;
	pcre2_code *rw_re;
	char *rw_sub;			/* RE2 "\1" turned into PCRE2 "$1" */
	struct l7_sm *cors;
	size_t ncors;
};

struct l7_vs {
	const struct zm_cfg_obj *o;
	char **hosts;			/* completed in the VS namespace */
	size_t nhosts;
	struct l7_route *routes;
	size_t nroutes;
	char name[160];
};

struct l7_ra {
	const struct zm_cfg_obj *o;
	struct l7_jwt_set *set;
	const char ***auds;		/* per rule, for l7_jwt_rule_in */
};

struct zm_l7 {
	atomic_int ref;
	struct zm_cfg_set cfg;
	struct zm_l7_view view;
	struct zm_l7_opts opts;
	char waypoint[64], root_ns[64];
	char gws[ZM_L7_MAX_GATEWAYS][192];	/* gateway mode: "ns/name" served; none: mesh */
	size_t ngws;
	struct zm_l7_gw_host *gwh;		/* gateway mode: the servers' hosts (scoping) */
	size_t ngwh;
	char self_ns[64];			/* gateway mode: the gateway's namespace ... */
	struct zm_labels self_labels;		/* ... and labels, for its policies */
	struct l7_vs *vs;
	size_t nvs;
	const struct zm_cfg_obj **drs, **aps;
	size_t ndrs, naps;
	struct l7_ra *ras;
	size_t nras;
};

/* ---- randomness ------------------------------------------------------------- */

static __thread uint64_t xs_state;

static uint64_t xorshift(void *arg)
{
	(void)arg;
	if (!xs_state && getrandom(&xs_state, sizeof(xs_state), 0) != sizeof(xs_state))
		xs_state = 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)&xs_state;
	if (!xs_state)
		xs_state = 1;
	xs_state ^= xs_state << 13;
	xs_state ^= xs_state >> 7;
	xs_state ^= xs_state << 17;
	return xs_state;
}

static uint64_t rnd(const struct zm_l7 *l7)
{
	return l7->opts.rand(l7->opts.rand_arg);
}

/* True with probability @pct percent (0..100). */
static bool chance(const struct zm_l7 *l7, double pct)
{
	if (pct >= 100.0)
		return true;
	if (pct <= 0.0)
		return false;
	return (double)(rnd(l7) % 1000000) < pct * 10000.0;
}

/* ---- the view ---------------------------------------------------------------- */

void zm_l7_view_free(struct zm_l7_view *v)
{
	for (size_t i = 0; i < v->nsvcs; i++) {
		for (size_t j = 0; j < v->svcs[i].neps; j++)
			zm_labels_free(&v->svcs[i].eps[j].labels);
		free(v->svcs[i].eps);
	}
	free(v->svcs);
	memset(v, 0, sizeof(*v));
}

static int labels_copy(struct zm_labels *dst, const struct zm_labels *src)
{
	for (size_t i = 0; i < src->n; i++)
		if (zm_labels_set(dst, src->kv[i].key, src->kv[i].val))
			return -ENOMEM;
	return 0;
}

int zm_l7_view_from_lab(const struct zm_lab *lab, struct zm_l7_view *out)
{
	memset(out, 0, sizeof(*out));
	out->svcs = calloc(lab->nservices ? lab->nservices : 1, sizeof(*out->svcs));
	if (!out->svcs)
		return -ENOMEM;
	for (size_t i = 0; i < lab->nservices; i++) {
		const struct zm_lab_svc *ls = &lab->services[i];
		struct zm_l7_svc *s = &out->svcs[out->nsvcs++];

		snprintf(s->name, sizeof(s->name), "%s", ls->name);
		snprintf(s->ns, sizeof(s->ns), "%s", ls->ns);
		snprintf(s->fqdn, sizeof(s->fqdn), "%s.%s.svc.cluster.local", ls->name, ls->ns);
		if (ls->cluster_ip.s_addr)
			inet_ntop(AF_INET, &ls->cluster_ip, s->vip, sizeof(s->vip));
		for (size_t p = 0; p < ls->nports && s->nports < ZM_L7_MAX_PORTS; p++) {
			s->ports[s->nports] = ls->ports[p].port;
			snprintf(s->port_names[s->nports++], sizeof(s->port_names[0]), "%s",
				 ls->ports[p].name);
		}
		if (!ls->selector.n)
			continue;
		s->eps = calloc(lab->npods ? lab->npods : 1, sizeof(*s->eps));
		if (!s->eps)
			goto nomem;
		for (size_t k = 0; k < lab->npods; k++) {
			const struct zm_lab_pod *pod = &lab->pods[k];
			struct zm_l7_ep *ep;

			if (strcmp(pod->ns, ls->ns) || !pod->ip.s_addr ||
			    !zm_labels_match(&ls->selector, &pod->labels))
				continue;
			ep = &s->eps[s->neps++];
			inet_ntop(AF_INET, &pod->ip, ep->addr, sizeof(ep->addr));
			snprintf(ep->pod, sizeof(ep->pod), "%s", pod->name);
			snprintf(ep->ns, sizeof(ep->ns), "%s", pod->ns);
			if (labels_copy(&ep->labels, &pod->labels))
				goto nomem;
			for (size_t p = 0; p < s->nports; p++)
				ep->tport[p] = zm_lab_target_port(&ls->ports[p], pod);
		}
	}
	return 0;
nomem:
	zm_l7_view_free(out);
	return -ENOMEM;
}

/* ---- building ------------------------------------------------------------------ */

static void sm_free(struct l7_sm *m)
{
	pcre2_code_free(m->re);
	m->re = NULL;
}

static void kvm_free(struct l7_kvm *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sm_free(&v[i].m);
	free(v);
}

static void route_free(struct l7_route *r)
{
	for (size_t i = 0; i < r->nm; i++) {
		struct l7_match *m = &r->m[i];

		sm_free(&m->uri);
		sm_free(&m->scheme);
		sm_free(&m->method);
		sm_free(&m->authority);
		kvm_free(m->hdr, m->nhdr);
		kvm_free(m->qp, m->nqp);
		kvm_free(m->without, m->nwithout);
	}
	free(r->m);
	pcre2_code_free(r->rw_re);
	free(r->rw_sub);
	for (size_t i = 0; i < r->ncors; i++)
		sm_free(&r->cors[i]);
	free(r->cors);
}

static void l7_free(struct zm_l7 *l7)
{
	for (size_t i = 0; i < l7->nvs; i++) {
		for (size_t j = 0; j < l7->vs[i].nhosts; j++)
			free(l7->vs[i].hosts[j]);
		free(l7->vs[i].hosts);
		for (size_t j = 0; j < l7->vs[i].nroutes; j++)
			route_free(&l7->vs[i].routes[j]);
		free(l7->vs[i].routes);
	}
	free(l7->vs);
	free(l7->gwh);
	zm_labels_free(&l7->self_labels);
	for (size_t i = 0; i < l7->nras; i++) {
		l7_jwt_set_free(l7->ras[i].set);
		if (l7->ras[i].auds) {
			for (size_t j = 0; j < l7->ras[i].o->ra->jwt_rules.n; j++)
				free(l7->ras[i].auds[j]);
			free(l7->ras[i].auds);
		}
	}
	free(l7->ras);
	free(l7->drs);
	free(l7->aps);
	zm_l7_view_free(&l7->view);
	zm_cfg_set_free(&l7->cfg);
	free(l7);
}

struct zm_l7 *zm_l7_get(struct zm_l7 *l7)
{
	if (l7)
		atomic_fetch_add(&l7->ref, 1);
	return l7;
}

void zm_l7_put(struct zm_l7 *l7)
{
	if (l7 && atomic_fetch_sub(&l7->ref, 1) == 1)
		l7_free(l7);
}

static int bad(struct zm_error *e, const struct zm_cfg_obj *o, const char *path, const char *why)
{
	return zm_error_set(e, EINVAL, "%s:%u:%u: %s/%s: %s: %s", o->file ? o->file : "?",
			    o->pos.line, o->pos.col, o->meta.ns.v ? o->meta.ns.v : "",
			    o->meta.name.v ? o->meta.name.v : "", path, why);
}

static int sm_compile(struct l7_sm *out, const struct zm_string_match *in, bool icase,
		      const struct zm_cfg_obj *o, const char *path, struct zm_error *e)
{
	memset(out, 0, sizeof(*out));
	out->icase = icase;
	if (!in->o.set)
		return 0;
	if (in->exact.v) {
		out->k = SM_EXACT;
		out->s = in->exact.v;
	} else if (in->prefix.v) {
		out->k = SM_PREFIX;
		out->s = in->prefix.v;
	} else if (in->regex.v) {
		int ec;
		PCRE2_SIZE eo;

		out->k = SM_REGEX;
		out->s = in->regex.v;
		out->re = pcre2_compile((PCRE2_SPTR)in->regex.v, PCRE2_ZERO_TERMINATED,
					PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_DOTALL |
					(icase ? PCRE2_CASELESS : 0), &ec, &eo, NULL);
		if (!out->re) {
			char msg[128];

			pcre2_get_error_message(ec, (PCRE2_UCHAR *)msg, sizeof(msg));
			return bad(e, o, path, msg);
		}
	}
	return 0;
}

static int kvm_compile(struct l7_kvm **out, size_t *n, const zm_cmatch_map *in,
		       const struct zm_cfg_obj *o, const char *path, struct zm_error *e)
{
	*n = 0;
	*out = calloc(in->n ? in->n : 1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	for (size_t i = 0; i < in->n; i++) {
		int rc;

		(*out)[i].name = in->v[i].key.v;
		rc = sm_compile(&(*out)[i].m, &in->v[i].val, false, o, path, e);
		(*n)++;
		if (rc)
			return rc;
		if (!in->v[i].val.exact.v && !in->v[i].val.prefix.v && !in->v[i].val.regex.v)
			(*out)[i].m.k = SM_NONE;
	}
	return 0;
}

/* RE2 rewrites name groups \1..\9; PCRE2 substitution wants $1. */
static char *re2_sub(const char *s)
{
	struct zm_buf b = { 0 };

	for (; *s; s++) {
		if (*s == '\\' && s[1] >= '0' && s[1] <= '9') {
			zm_buf_printf(&b, "${%c}", s[1]);
			s++;
		} else if (*s == '$') {
			zm_buf_puts(&b, "$$");
		} else {
			zm_buf_append(&b, s, 1);
		}
	}
	if (!zm_buf_cstr(&b)) {
		zm_buf_free(&b);
		return NULL;
	}
	return b.base ? b.base : strdup("");
}

static int vs_compile(struct l7_vs *v, const struct zm_cfg_obj *o, struct zm_error *e)
{
	const struct zm_virtual_service *vs = o->vs;
	char path[96];
	int rc;

	v->o = o;
	snprintf(v->name, sizeof(v->name), "%s/%s", o->meta.ns.v, o->meta.name.v);
	v->hosts = calloc(vs->hosts.n ? vs->hosts.n : 1, sizeof(*v->hosts));
	v->routes = calloc(vs->http.n ? vs->http.n : 1, sizeof(*v->routes));
	if (!v->hosts || !v->routes)
		return -ENOMEM;
	for (size_t i = 0; i < vs->hosts.n; i++) {
		char h[256];

		zm_host_fqdn(vs->hosts.v[i].v, o->meta.ns.v, h, sizeof(h));
		if (!(v->hosts[v->nhosts++] = strdup(h)))
			return -ENOMEM;
	}
	for (size_t i = 0; i < vs->http.n; i++) {
		const struct zm_http_route *hr = &vs->http.v[i];
		struct l7_route *r = &v->routes[v->nroutes++];

		r->r = hr;
		r->m = calloc(hr->match.n ? hr->match.n : 1, sizeof(*r->m));
		r->cors = calloc(hr->cors_policy.allow_origins.n + 1, sizeof(*r->cors));
		if (!r->m || !r->cors)
			return -ENOMEM;
		for (size_t j = 0; j < hr->match.n; j++) {
			const struct zm_http_match *hm = &hr->match.v[j];
			struct l7_match *m = &r->m[r->nm++];

			m->src = hm;
			snprintf(path, sizeof(path), "spec.http[%zu].match[%zu]", i, j);
			if ((rc = sm_compile(&m->uri, &hm->uri, hm->ignore_uri_case.v, o, path, e)) ||
			    (rc = sm_compile(&m->scheme, &hm->scheme, false, o, path, e)) ||
			    (rc = sm_compile(&m->method, &hm->method, false, o, path, e)) ||
			    (rc = sm_compile(&m->authority, &hm->authority, false, o, path, e)) ||
			    (rc = kvm_compile(&m->hdr, &m->nhdr, &hm->headers, o, path, e)) ||
			    (rc = kvm_compile(&m->qp, &m->nqp, &hm->query_params, o, path, e)) ||
			    (rc = kvm_compile(&m->without, &m->nwithout, &hm->without_headers, o, path, e)))
				return rc;
		}
		if (hr->rewrite.uri_regex_rewrite.match.v) {
			int ec;
			PCRE2_SIZE eo;

			r->rw_re = pcre2_compile((PCRE2_SPTR)hr->rewrite.uri_regex_rewrite.match.v,
						 PCRE2_ZERO_TERMINATED, 0, &ec, &eo, NULL);
			r->rw_sub = re2_sub(hr->rewrite.uri_regex_rewrite.rewrite.v ?
					    hr->rewrite.uri_regex_rewrite.rewrite.v : "");
			if (!r->rw_re || !r->rw_sub) {
				snprintf(path, sizeof(path), "spec.http[%zu].rewrite.uriRegexRewrite", i);
				return bad(e, o, path, "cannot compile");
			}
		}
		for (size_t j = 0; j < hr->cors_policy.allow_origins.n; j++) {
			snprintf(path, sizeof(path), "spec.http[%zu].corsPolicy.allowOrigins[%zu]", i, j);
			rc = sm_compile(&r->cors[r->ncors], &hr->cors_policy.allow_origins.v[j], false,
					o, path, e);
			r->ncors++;
			if (rc)
				return rc;
		}
	}
	return 0;
}

static int ra_compile(struct l7_ra *a, const struct zm_cfg_obj *o, const struct zm_l7_opts *opts,
		      struct zm_error *e)
{
	const struct zm_request_authentication *ra = o->ra;
	struct l7_jwt_rule_in *in = calloc(ra->jwt_rules.n + 1, sizeof(*in));
	char **fetched = calloc(ra->jwt_rules.n + 1, sizeof(char *));
	char err[512];
	int rc = -ENOMEM;

	if (!fetched)
		goto out;

	a->o = o;
	a->auds = calloc(ra->jwt_rules.n + 1, sizeof(*a->auds));
	if (!in || !a->auds)
		goto out;
	for (size_t i = 0; i < ra->jwt_rules.n; i++) {
		const struct zm_jwt_rule *r = &ra->jwt_rules.v[i];

		a->auds[i] = calloc(r->audiences.n + 1, sizeof(char *));
		if (!a->auds[i])
			goto out;
		for (size_t j = 0; j < r->audiences.n; j++)
			a->auds[i][j] = r->audiences.v[j].v;
		in[i] = (struct l7_jwt_rule_in){ .issuer = r->issuer.v, .audiences = a->auds[i],
						 .naud = r->audiences.n, .jwks = r->jwks.v };
		if (!r->jwks.v && r->jwks_uri.v && opts->jwks_uri) {
			fetched[i] = opts->jwks_uri(r->jwks_uri.v, opts->jwks_arg);
			in[i].jwks = fetched[i];
			in[i].soft = true;
		}
	}
	rc = l7_jwt_set_new(in, ra->jwt_rules.n, &a->set, err, sizeof(err));
	if (rc == -EINVAL)
		rc = bad(e, o, "spec", err);
out:
	for (size_t i = 0; fetched && i < ra->jwt_rules.n; i++)
		free(fetched[i]);
	free(fetched);
	free(in);
	return rc;
}

int zm_l7_build(struct zm_cfg_set *cfg, struct zm_l7_view *v, const struct zm_l7_opts *opts,
		struct zm_l7 **out, struct zm_error *e)
{
	struct zm_l7 *l7 = calloc(1, sizeof(*l7));
	size_t n;
	int rc = -ENOMEM;

	if (!l7) {
		zm_l7_view_free(v);
		return -ENOMEM;
	}
	atomic_init(&l7->ref, 1);
	zm_cfg_set_init(&l7->cfg);
	l7->view = *v;
	memset(v, 0, sizeof(*v));
	if (opts)
		l7->opts = *opts;
	if (!l7->opts.rand)
		l7->opts.rand = xorshift;
	if (!l7->opts.path_set)
		l7->opts.path = zm_path_opts_istio(ZM_ISTIO_PATH_BASE);
	snprintf(l7->waypoint, sizeof(l7->waypoint), "%s", opts && opts->waypoint_name ? opts->waypoint_name : "");
	snprintf(l7->root_ns, sizeof(l7->root_ns), "%s", opts && opts->root_ns ? opts->root_ns : "istio-system");
	l7->opts.waypoint_name = l7->waypoint;
	l7->opts.root_ns = l7->root_ns;
	for (size_t i = 0; opts && i < opts->ngateways && l7->ngws < ZM_L7_MAX_GATEWAYS; i++)
		snprintf(l7->gws[l7->ngws++], sizeof(l7->gws[0]), "%s", opts->gateways[i]);
	l7->opts.gateways = NULL;
	l7->opts.ngateways = 0;
	if (opts && opts->ngw_hosts) {
		if (!(l7->gwh = calloc(opts->ngw_hosts, sizeof(*l7->gwh))))
			goto fail;
		memcpy(l7->gwh, opts->gw_hosts, opts->ngw_hosts * sizeof(*l7->gwh));
		l7->ngwh = opts->ngw_hosts;
	}
	l7->opts.gw_hosts = NULL;
	l7->opts.ngw_hosts = 0;
	snprintf(l7->self_ns, sizeof(l7->self_ns), "%s", opts && opts->self_ns ? opts->self_ns : "istio-system");
	for (size_t i = 0; opts && opts->self_labels && i < opts->self_labels->n; i++)
		if (zm_labels_set(&l7->self_labels, opts->self_labels->kv[i].key, opts->self_labels->kv[i].val))
			goto fail;
	l7->opts.self_labels = NULL;
	if (zm_cfg_set_take(&l7->cfg, cfg))
		goto fail;
	n = l7->cfg.nobjs + 1;
	l7->vs = calloc(n, sizeof(*l7->vs));
	l7->drs = calloc(n, sizeof(*l7->drs));
	l7->aps = calloc(n, sizeof(*l7->aps));
	l7->ras = calloc(n, sizeof(*l7->ras));
	if (!l7->vs || !l7->drs || !l7->aps || !l7->ras)
		goto fail;
	for (size_t i = 0; i < l7->cfg.nobjs; i++) {
		const struct zm_cfg_obj *o = l7->cfg.objs[i];

		switch (o->kind) {
		case ZM_K_VIRTUALSERVICE:
			if ((rc = vs_compile(&l7->vs[l7->nvs++], o, e)))
				goto fail;
			break;
		case ZM_K_DESTINATIONRULE:
			l7->drs[l7->ndrs++] = o;
			break;
		case ZM_K_AUTHORIZATIONPOLICY:
			l7->aps[l7->naps++] = o;
			break;
		case ZM_K_REQUESTAUTHENTICATION:
			if ((rc = ra_compile(&l7->ras[l7->nras++], o, &l7->opts, e)))
				goto fail;
			break;
		default:
			break;
		}
	}
	*out = l7;
	return 0;
fail:
	if (rc == -ENOMEM)
		zm_error_set(e, ENOMEM, "out of memory");
	l7_free(l7);
	return rc;
}

/* ---- request helpers ----------------------------------------------------------- */

static bool sm_match(const struct l7_sm *m, const char *v, size_t vl)
{
	size_t sl;

	switch (m->k) {
	case SM_NONE:
		return true;
	case SM_EXACT:
		sl = strlen(m->s);
		return vl == sl && !(m->icase ? strncasecmp(v, m->s, sl) : memcmp(v, m->s, sl));
	case SM_PREFIX:
		sl = strlen(m->s);
		return vl >= sl && !(m->icase ? strncasecmp(v, m->s, sl) : memcmp(v, m->s, sl));
	case SM_REGEX: {
		pcre2_match_data *md = pcre2_match_data_create_from_pattern(m->re, NULL);
		int rc;

		if (!md)
			return false;
		rc = pcre2_match(m->re, (PCRE2_SPTR)v, vl, 0, 0, md, NULL);
		pcre2_match_data_free(md);
		return rc >= 0;
	}
	}
	return false;
}

/* request.headers[name] joined with ", "; -ENOENT absent, -ENOSPC too long. */
static int hdr_get(const struct zm_l7_request *req, const char *name, char *out, size_t outsz,
		   size_t *len)
{
	return zm_http_header_join(req->headers, req->nheaders, name, strlen(name), out, outsz, len);
}

/* Value of query parameter @name in @q (raw), or NULL. */
static const char *query_get(const char *q, size_t ql, const char *name, size_t *vl)
{
	size_t nl = strlen(name);

	while (ql) {
		const char *amp = memchr(q, '&', ql);
		size_t pl = amp ? (size_t)(amp - q) : ql;
		const char *eq = memchr(q, '=', pl);
		size_t kl = eq ? (size_t)(eq - q) : pl;

		if (kl == nl && !memcmp(q, name, nl)) {
			*vl = eq ? pl - kl - 1 : 0;
			return eq ? eq + 1 : q + pl;
		}
		if (!amp)
			break;
		ql -= pl + 1;
		q = amp + 1;
	}
	return NULL;
}

struct req_ctx {
	const struct zm_l7_request *req;
	char host[256];			/* authority without port, lower case */
	int port;
	const char *path;		/* normalized, no query */
	size_t path_len;
	const char *query;		/* after '?', or "" */
	size_t query_len;
	const struct zm_l7_svc *svc;	/* destination service, or NULL */
	bool l4;			/* a TCP connection: no HTTP attributes */
	const struct zm_l7 *l7;
	const char *vs_ns;		/* namespace of the VirtualService being matched */
};

/*
 * Istio's namespace scoping of Gateway hosts: does a server of Gateway
 * @key on the request's port have a host entry for the request's host
 * (TCP without SNI: any entry) whose namespace part admits @ns? No table:
 * no scoping.
 */
static bool gw_scope_ok(const struct zm_l7 *l7, const char *key, const char *ns, const struct req_ctx *c)
{
	if (!l7->ngwh || !c)
		return true;
	for (size_t i = 0; i < l7->ngwh; i++) {
		const struct zm_l7_gw_host *h = &l7->gwh[i];

		if (h->auto_passthrough || h->port != c->port || strcmp(h->gw, key))
			continue;
		if (strcmp(h->ns, "*") && (!ns || strcmp(h->ns, ns)))
			continue;
		if ((c->l4 && !c->host[0]) || zm_host_match(h->host, c->host))
			return true;
	}
	return false;
}

/*
 * Is a `gateways` list (of a VirtualService or a match, in namespace @ns)
 * bound to what this engine serves? Mesh mode: "mesh" listed, or an empty
 * list when @empty_is_mesh. Gateway mode: an entry naming a served Gateway
 * ("name" is in @ns, as Istio resolves it, or "ns/name") one of whose
 * servers on this port admits @ns for this host (gw_scope_ok).
 */
static bool gw_bound(const struct zm_l7 *l7, const zm_cstrs *g, const char *ns, bool empty_is_mesh,
		     const struct req_ctx *c)
{
	if (!l7->ngws) {
		if (!g->n)
			return empty_is_mesh;
		for (size_t i = 0; i < g->n; i++)
			if (!strcmp(g->v[i].v, "mesh"))
				return true;
		return false;
	}
	for (size_t i = 0; i < g->n; i++) {
		char key[192];
		const char *n = g->v[i].v;

		if (!strcmp(n, "mesh"))
			continue;
		if (strchr(n, '/'))
			snprintf(key, sizeof(key), "%s", n);
		else
			snprintf(key, sizeof(key), "%s/%s", ns ? ns : "default", n);
		for (size_t j = 0; j < l7->ngws; j++)
			if (!strcmp(key, l7->gws[j]) && gw_scope_ok(l7, key, ns, c))
				return true;
	}
	return false;
}

static bool kvm_hdr_match(const struct l7_kvm *k, const struct zm_l7_request *req)
{
	char v[HDR_JOIN_MAX];
	size_t vl;
	int rc = hdr_get(req, k->name, v, sizeof(v), &vl);

	if (rc < 0)
		return false;
	return sm_match(&k->m, v, vl);
}

static bool match_ok(const struct l7_match *m, const struct req_ctx *c)
{
	const struct zm_http_match *hm = m->src;
	const struct zm_l7_request *req = c->req;
	const char *auth = req->authority ? req->authority : "";

	if (!sm_match(&m->uri, c->path, c->path_len) ||
	    !sm_match(&m->scheme, req->scheme, strlen(req->scheme)) ||
	    !sm_match(&m->method, req->method, strlen(req->method)) ||
	    !sm_match(&m->authority, auth, strlen(auth)))
		return false;
	for (size_t i = 0; i < m->nhdr; i++)
		if (!kvm_hdr_match(&m->hdr[i], req))
			return false;
	for (size_t i = 0; i < m->nwithout; i++)
		if (kvm_hdr_match(&m->without[i], req))
			return false;
	for (size_t i = 0; i < m->nqp; i++) {
		size_t vl;
		const char *v = query_get(c->query, c->query_len, m->qp[i].name, &vl);

		if (!v || !sm_match(&m->qp[i].m, v, vl))
			return false;
	}
	if (hm->port.set && hm->port.v != c->port)
		return false;
	if (hm->source_namespace.v && (!req->src_ns || strcmp(hm->source_namespace.v, req->src_ns)))
		return false;
	for (size_t i = 0; i < hm->source_labels.n; i++) {
		const char *v = req->src_labels ? zm_labels_get(req->src_labels,
							hm->source_labels.v[i].key.v) : NULL;

		if (!v || strcmp(v, hm->source_labels.v[i].val.v))
			return false;
	}
	if (hm->gateways.n && !gw_bound(c->l7, &hm->gateways, c->vs_ns, false, c))
		return false;
	return true;
}

static const struct zm_l7_svc *svc_by_host(const struct zm_l7 *l7, const char *h)
{
	for (size_t i = 0; i < l7->view.nsvcs; i++) {
		const struct zm_l7_svc *s = &l7->view.svcs[i];
		size_t nl = strlen(s->name), sl = strlen(s->ns);

		if (!strcasecmp(h, s->fqdn) || (s->vip[0] && !strcmp(h, s->vip)) ||
		    !strcasecmp(h, s->name))
			return s;
		/* name.ns and name.ns.svc */
		if (!strncasecmp(h, s->name, nl) && h[nl] == '.' && !strncasecmp(h + nl + 1, s->ns, sl) &&
		    (!h[nl + 1 + sl] || !strcasecmp(h + nl + 1 + sl, ".svc")))
			return s;
	}
	return NULL;
}

/* A route destination host: completed in the VirtualService's namespace. */
static const struct zm_l7_svc *svc_by_dest(const struct zm_l7 *l7, const char *host, const char *ns)
{
	char f[256];

	zm_host_fqdn(host, ns, f, sizeof(f));
	for (size_t i = 0; i < l7->view.nsvcs; i++)
		if (!strcasecmp(f, l7->view.svcs[i].fqdn))
			return &l7->view.svcs[i];
	return svc_by_host(l7, host);
}

static const struct l7_vs *vs_find(const struct zm_l7 *l7, const struct req_ctx *c)
{
	/* Exact hosts first, then wildcards, as Istio prefers the most specific. */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < l7->nvs; i++) {
			const struct l7_vs *v = &l7->vs[i];

			if (!gw_bound(l7, &v->o->vs->gateways, v->o->meta.ns.v, true, c))
				continue;
			for (size_t j = 0; j < v->nhosts; j++) {
				const char *h = v->hosts[j];

				if ((h[0] == '*') != (pass == 1))
					continue;
				if ((c->svc && zm_host_match(h, c->svc->fqdn)) || zm_host_match(h, c->host))
					return v;
			}
		}
	return NULL;
}

static int port_index(const struct zm_l7_svc *s, int port)
{
	for (size_t i = 0; i < s->nports; i++)
		if (s->ports[i] == port)
			return (int)i;
	return s->nports == 1 ? 0 : -1;
}

/* ---- policy applicability -------------------------------------------------------- */

static bool ref_applies(const struct zm_l7 *l7, const struct zm_policy_target_ref *r,
			const struct zm_l7_svc *svc)
{
	const char *kind = r->kind.v ? r->kind.v : "";

	if (!strcmp(kind, "Service"))
		return svc && r->name.v && !strcmp(r->name.v, svc->name);
	if (!strcmp(kind, "Gateway"))
		return l7->waypoint[0] && r->name.v && !strcmp(r->name.v, l7->waypoint);
	return false;
}

/* The policy in namespace @ons with these attachments applies to @svc here. */
static bool policy_applies(const struct zm_l7 *l7, const char *ons,
			   const struct zm_workload_selector *sel,
			   const struct zm_policy_target_ref *ref, size_t nrefs_extra,
			   const struct zm_policy_target_ref *refs, const struct zm_l7_svc *svc,
			   const char *ns)
{
	bool same = ns && !strcmp(ons, ns), root = !strcmp(ons, l7->root_ns);

	if (l7->ngws) {
		/* A gateway enforces the policies of its own workload: in its
		 * namespace (or the root one), selecting its labels, naming it,
		 * or namespace-wide there; never the destination's. */
		same = !strcmp(ons, l7->self_ns);
		if (!same && !root)
			return false;
		if (sel->o.set) {
			for (size_t i = 0; i < sel->match_labels.n; i++) {
				const char *v = zm_labels_get(&l7->self_labels, sel->match_labels.v[i].key.v);

				if (!v || strcmp(v, sel->match_labels.v[i].val.v))
					return false;
			}
			return true;
		}
		svc = NULL;
	} else if (!same && !root) {
		return false;
	}
	if (sel->o.set)
		return false;		/* workload policies belong to ztunnel */
	if (ref->o.set)
		return same && ref_applies(l7, ref, svc);
	if (nrefs_extra) {
		for (size_t i = 0; i < nrefs_extra; i++)
			if (same && ref_applies(l7, &refs[i], svc))
				return true;
		return false;
	}
	return true;
}

/* ---- decision pieces -------------------------------------------------------------- */

void zm_l7_decision_init(struct zm_l7_decision *d)
{
	memset(d, 0, sizeof(*d));
	d->grpc_status = -1;
	d->svc_port_idx = -1;
}

void zm_l7_decision_free(struct zm_l7_decision *d)
{
	zm_buf_free(&d->body);
	zm_buf_free(&d->location);
	zm_buf_free(&d->path);
	zm_buf_free(&d->authority);
	zm_buf_free(&d->norm_path);
	zm_buf_free(&d->scratch);
	free(d->request_principal);
	zm_l7_decision_init(d);
}

static int respond(struct zm_l7_decision *d, int status, const char *flag, const char *reason,
		   const char *body)
{
	d->action = ZM_L7_RESPOND;
	d->status = status;
	d->reason = reason;
	snprintf(d->flags, sizeof(d->flags), "%s", flag);
	zm_buf_reset(&d->body);
	return zm_buf_puts(&d->body, body);
}

/* Strings that must live as long as the decision: kept in d->scratch by offset. */
struct deferred {
	size_t req_off[ZM_L7_MAX_EXTRA], resp_off[ZM_L7_MAX_EXTRA];
};

/* Copy a NUL-terminated string into d->scratch; its offset in *off. */
static int scratch_put(struct zm_l7_decision *d, const char *p, size_t n, size_t *off)
{
	*off = zm_buf_len(&d->scratch);
	return zm_buf_append(&d->scratch, p, n) || zm_buf_append(&d->scratch, "", 1) ? -ENOMEM : 0;
}

/* The first token in any location the applicable rules name; 0 or -ENOENT. */
static int find_token(struct l7_ra *const *owners, size_t n, const struct req_ctx *c,
		      char *v, size_t vsz, const char **tok, size_t *tlen, const char **tok_hdr)
{
	const struct zm_l7_request *req = c->req;
	size_t vl;

	for (size_t i = 0; i < n; i++) {
		const struct zm_request_authentication *ra = owners[i]->o->ra;

		for (size_t j = 0; j < ra->jwt_rules.n; j++) {
			const struct zm_jwt_rule *r = &ra->jwt_rules.v[j];

			if (!r->from_headers.n && hdr_get(req, "authorization", v, vsz, &vl) == 0 &&
			    l7_jwt_from_header(v, vl, "Bearer ", tok, tlen) == 0) {
				*tok_hdr = "authorization";
				return 0;
			}
			for (size_t k = 0; k < r->from_headers.n; k++) {
				const struct zm_jwt_header *h = &r->from_headers.v[k];

				if (hdr_get(req, h->name.v, v, vsz, &vl) == 0 &&
				    l7_jwt_from_header(v, vl, h->prefix.v ? h->prefix.v : "", tok, tlen) == 0) {
					*tok_hdr = h->name.v;
					return 0;
				}
			}
			if (!r->from_params.n &&
			    l7_jwt_from_query(c->query, c->query_len, "access_token", tok, tlen) == 0)
				return 0;
			for (size_t k = 0; k < r->from_params.n; k++)
				if (l7_jwt_from_query(c->query, c->query_len, r->from_params.v[k].v,
						      tok, tlen) == 0)
					return 0;
		}
	}
	return -ENOENT;
}

/* RequestAuthentication. Returns 1 when answered (401), 0 to go on, <0 on ENOMEM. */
static int do_jwt(struct zm_l7 *l7, const struct req_ctx *c, const char *ns,
		  struct zm_l7_decision *d, struct deferred *df, struct l7_jwt_res *res, bool *have)
{
	struct l7_jwt_set *sets[32];
	struct l7_ra *owners[32];
	size_t nsets = 0, tok_off;
	const char *tok = NULL, *tok_hdr = NULL, *why = "";
	char v[HDR_JOIN_MAX];
	size_t tlen = 0;
	int st;

	*have = false;
	for (size_t i = 0; i < l7->nras && nsets < 32; i++) {
		const struct zm_request_authentication *ra = l7->ras[i].o->ra;

		if (policy_applies(l7, l7->ras[i].o->meta.ns.v, &ra->selector, &ra->target_ref,
				   ra->target_refs.n, ra->target_refs.v, c->svc, ns)) {
			owners[nsets] = &l7->ras[i];
			sets[nsets++] = l7->ras[i].set;
		}
	}
	if (!nsets || find_token(owners, nsets, c, v, sizeof(v), &tok, &tlen, &tok_hdr) < 0)
		return 0;		/* anonymous: only requestPrincipals rules can refuse it */
	if (scratch_put(d, tok, tlen, &tok_off))
		return -ENOMEM;
	st = l7_jwt_verify(sets, nsets, zm_buf_data(&d->scratch) + tok_off, tlen, c->req->now_s,
			   res, &why);
	if (st) {
		char body[160];

		snprintf(body, sizeof(body), "Jwt verification fails: %s", why);
		return respond(d, 401, "UAEX", why, body) ? -ENOMEM : 1;
	}
	*have = true;
	{
		const struct zm_jwt_rule *r = &owners[res->set_idx]->o->ra->jwt_rules.v[res->rule_idx];

		if (tok_hdr && !r->forward_original_token.v && d->nreq_remove < ZM_L7_MAX_EXTRA)
			d->req_remove[d->nreq_remove++] = tok_hdr;
		if (r->output_payload_to_header.v && d->nreq_set < ZM_L7_MAX_EXTRA) {
			/* The payload as sent (base64url), as Envoy outputs it. */
			const char *t = zm_buf_data(&d->scratch) + tok_off;
			const char *p1 = memchr(t, '.', tlen);
			const char *p2 = p1 ? memchr(p1 + 1, '.', tlen - (size_t)(p1 + 1 - t)) : NULL;

			if (p1 && p2) {
				char *copy = strndup(p1 + 1, (size_t)(p2 - p1 - 1));
				int rc;

				if (!copy)
					return -ENOMEM;
				d->req_set[d->nreq_set].name = r->output_payload_to_header.v;
				rc = scratch_put(d, copy, strlen(copy), &df->req_off[d->nreq_set++]);
				free(copy);
				if (rc)
					return rc;
			}
		}
	}
	return 0;
}

static int do_authz(struct zm_l7 *l7, const struct req_ctx *c, const char *ns,
		    const struct l7_jwt_res *jwt, struct zm_l7_decision *d)
{
	const struct zm_l7_request *req = c->req;
	const char *pr = req->src_principal;
	char ns_buf[64];
	const char *ns_p = pr ? strstr(pr, "/ns/") : NULL, *sa_p = ns_p ? strstr(ns_p + 4, "/sa/") : NULL;
	struct l7_authz_ctx ac = {
		.method = req->method, .host = req->authority, .path = c->path, .port = c->port,
		.headers = req->headers, .nheaders = req->nheaders,
		/* Istio writes principals without the scheme; source.namespace is the
		 * peer certificate's, never a claim of the transport-less kind. */
		.src_principal = pr && !strncmp(pr, "spiffe://", 9) ? pr + 9 : pr,
		.src_ns = sa_p && (size_t)(sa_p - ns_p - 4) < sizeof(ns_buf) ?
			  (snprintf(ns_buf, sizeof(ns_buf), "%.*s", (int)(sa_p - ns_p - 4), ns_p + 4), ns_buf) : NULL,
		.src_family = req->src_family, .src_addr = req->src_family ? req->src_addr : NULL,
		.dst_ip = NULL, .jwt = jwt, .l4_only = c->l4,
	};
	bool any_allow = false, allowed = false;

	/* CUSTOM cannot be evaluated here (no ext_authz): it denies. Then DENY. */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < l7->naps; i++) {
			const struct zm_cfg_obj *o = l7->aps[i];
			const struct zm_authorization_policy *ap = o->ap;
			int act = ap->action.v;

			if (!policy_applies(l7, o->meta.ns.v, &ap->selector, &ap->target_ref,
					    ap->target_refs.n, ap->target_refs.v, c->svc, ns))
				continue;
			if (pass == 0 && act == ZM_AUTHZ_CUSTOM)
				return respond(d, 403, "UAEX", "RBAC: CUSTOM policy not supported",
					       "RBAC: access denied") ? -ENOMEM : 1;
			if (pass == 0 && act == ZM_AUTHZ_DENY && l7_authz_policy_matches(ap, &ac, true))
				return respond(d, 403, "RBAC", "RBAC: denied by DENY policy",
					       "RBAC: access denied") ? -ENOMEM : 1;
			if (pass == 1 && act == ZM_AUTHZ_ALLOW) {
				any_allow = true;
				allowed = allowed || l7_authz_policy_matches(ap, &ac, false);
			}
		}
	if (any_allow && !allowed)
		return respond(d, 403, "RBAC", "RBAC: no ALLOW policy matched",
			       "RBAC: access denied") ? -ENOMEM : 1;
	return 0;
}

static bool cors_origin_ok(const struct l7_route *r, const char *origin, size_t ol)
{
	const struct zm_cors_policy *cp = &r->r->cors_policy;

	for (size_t i = 0; i < cp->allow_origin.n; i++)
		if ((!strcmp(cp->allow_origin.v[i].v, "*")) ||
		    (strlen(cp->allow_origin.v[i].v) == ol && !memcmp(cp->allow_origin.v[i].v, origin, ol)))
			return true;
	for (size_t i = 0; i < r->ncors; i++)
		if (sm_match(&r->cors[i], origin, ol))
			return true;
	return false;
}

static void join_list(struct zm_buf *b, const zm_cstrs *l)
{
	for (size_t i = 0; i < l->n; i++)
		zm_buf_printf(b, "%s%s", i ? "," : "", l->v[i].v);
	zm_buf_append(b, "", 1);
}

/* CORS: 1 when answered (preflight), 0 to go on. Header values land in scratch. */
static int do_cors(const struct l7_route *r, const struct req_ctx *c, struct zm_l7_decision *d,
		   struct deferred *df)
{
	const struct zm_cors_policy *cp = &r->r->cors_policy;
	char origin[1024];
	size_t ol;
	bool preflight;

#define RESP_SET(n_) do { if (d->nresp_set < ZM_L7_MAX_EXTRA) { \
		df->resp_off[d->nresp_set] = zm_buf_len(&d->scratch); \
		d->resp_set[d->nresp_set++].name = (n_); } } while (0)

	if (!cp->o.set || hdr_get(c->req, "origin", origin, sizeof(origin), &ol) < 0)
		return 0;
	preflight = !strcmp(c->req->method, "OPTIONS") &&
		    zm_http_header_join(c->req->headers, c->req->nheaders,
					"access-control-request-method", 29, NULL, 0, &ol) != -ENOENT;
	hdr_get(c->req, "origin", origin, sizeof(origin), &ol);
	if (!cors_origin_ok(r, origin, ol))
		return 0;	/* not ours to answer: forwarded as is (unmatchedPreflights FORWARD) */
	RESP_SET("access-control-allow-origin");
	zm_buf_append(&d->scratch, origin, ol);
	zm_buf_append(&d->scratch, "", 1);
	if (cp->allow_credentials.v) {
		RESP_SET("access-control-allow-credentials");
		zm_buf_append(&d->scratch, "true", 5);
	}
	if (!preflight) {
		if (cp->expose_headers.n) {
			RESP_SET("access-control-expose-headers");
			join_list(&d->scratch, &cp->expose_headers);
		}
		return 0;
	}
	if (cp->allow_methods.n) {
		RESP_SET("access-control-allow-methods");
		join_list(&d->scratch, &cp->allow_methods);
	}
	if (cp->allow_headers.n) {
		RESP_SET("access-control-allow-headers");
		join_list(&d->scratch, &cp->allow_headers);
	}
	if (cp->max_age.set) {
		RESP_SET("access-control-max-age");
		zm_buf_printf(&d->scratch, "%lld", (long long)(cp->max_age.ns / ZM_NS_PER_S));
		zm_buf_append(&d->scratch, "", 1);
	}
#undef RESP_SET
	return respond(d, 200, "", "CORS preflight", "") ? -ENOMEM : 1;
}

static void parse_retry_on(struct zm_l7_decision *d, const char *s)
{
	char tok[64];

	while (*s) {
		size_t n = strcspn(s, ",");

		snprintf(tok, sizeof(tok), "%.*s", (int)(n < 63 ? n : 63), s);
		if (!strcmp(tok, "5xx"))
			d->retry_on |= ZM_RETRY_5XX;
		else if (!strcmp(tok, "gateway-error"))
			d->retry_on |= ZM_RETRY_GATEWAY;
		else if (!strcmp(tok, "connect-failure"))
			d->retry_on |= ZM_RETRY_CONNECT;
		else if (!strcmp(tok, "refused-stream"))
			d->retry_on |= ZM_RETRY_REFUSED;
		else if (!strcmp(tok, "reset"))
			d->retry_on |= ZM_RETRY_RESET;
		else if (!strcmp(tok, "retriable-4xx"))
			d->retry_on |= ZM_RETRY_4XX;
		else if (!strcmp(tok, "retriable-status-codes"))
			d->retry_on |= ZM_RETRY_CODES;
		else if (isdigit((unsigned char)tok[0]) && d->nretry_codes < ZM_L7_MAX_CODES) {
			d->retry_codes[d->nretry_codes++] = atoi(tok);
			d->retry_on |= ZM_RETRY_CODES;
		}
		else if (!strcmp(tok, "cancelled"))
			d->retry_on |= ZM_RETRY_GRPC_CANCELLED;
		else if (!strcmp(tok, "deadline-exceeded"))
			d->retry_on |= ZM_RETRY_GRPC_DEADLINE;
		else if (!strcmp(tok, "resource-exhausted"))
			d->retry_on |= ZM_RETRY_GRPC_RESOURCE;
		else if (!strcmp(tok, "internal"))
			d->retry_on |= ZM_RETRY_GRPC_INTERNAL;
		else if (!strcmp(tok, "unavailable"))
			d->retry_on |= ZM_RETRY_GRPC_UNAVAILABLE;
		s += n;
		if (*s == ',')
			s++;
	}
}

static void set_policies(struct zm_l7 *l7, const struct zm_http_route *hr, struct zm_l7_decision *d)
{
	const struct zm_http_retry *rt = &hr->retries;

	d->timeout_ns = hr->timeout.set ? hr->timeout.ns : 0;
	d->retry_attempts = rt->o.set ? (int)rt->attempts.v : 2;
	d->per_try_ns = rt->per_try_timeout.set ? rt->per_try_timeout.ns : 0;
	d->backoff_ns = rt->backoff.ns;
	if (rt->o.set && rt->retry_on.v) {
		parse_retry_on(d, rt->retry_on.v);
	} else {
		/* Istio's default policy: connect failures, refused streams, 503,
		 * gRPC unavailable and cancelled. */
		d->retry_on = ZM_RETRY_CONNECT | ZM_RETRY_REFUSED | ZM_RETRY_CODES |
			      ZM_RETRY_GRPC_UNAVAILABLE | ZM_RETRY_GRPC_CANCELLED;
		d->retry_codes[d->nretry_codes++] = 503;
	}
	if (hr->fault.delay.o.set) {
		const struct zm_fault_delay *fd = &hr->fault.delay;
		double pct = fd->percentage.o.set || !fd->percent.set ? fd->percentage.value.v :
			     (double)fd->percent.v;

		if (!fd->percentage.o.set && !fd->percent.set)
			pct = 100.0;
		if (chance(l7, pct)) {
			d->delay_ns = fd->fixed_delay.ns;
			snprintf(d->flags, sizeof(d->flags), "DI");
		}
	}
}

static void add_ops(struct zm_l7_decision *d, const struct zm_headers *h)
{
	if (!h->o.set)
		return;
	if (h->request.o.set && d->nreq_ops < ZM_L7_MAX_HDR_OPS)
		d->req_ops[d->nreq_ops++] = &h->request;
	if (h->response.o.set && d->nresp_ops < ZM_L7_MAX_HDR_OPS)
		d->resp_ops[d->nresp_ops++] = &h->response;
}

static int redirect(const struct zm_http_redirect *rd, const struct req_ctx *c,
		    struct zm_l7_decision *d)
{
	const char *scheme = rd->scheme.v ? rd->scheme.v : c->req->scheme;
	const char *auth = rd->authority.v ? rd->authority.v : c->host;
	int rc;

	rc = zm_buf_printf(&d->location, "%s://%s", scheme, auth);
	if (rd->port.set)
		rc |= zm_buf_printf(&d->location, ":%lld", (long long)rd->port.v);
	else if (!rd->authority.v && !rd->scheme.v && strchr(c->req->authority ? c->req->authority : "", ':') &&
		 c->req->authority[0] != '[')
		rc |= zm_buf_printf(&d->location, ":%d", c->port);
	if (rd->uri.v) {
		rc |= zm_buf_puts(&d->location, rd->uri.v);
		if (c->query_len && !strchr(rd->uri.v, '?'))
			rc |= zm_buf_printf(&d->location, "?%.*s", (int)c->query_len, c->query);
	} else {
		rc |= zm_buf_append(&d->location, c->path, c->path_len);
		if (c->query_len)
			rc |= zm_buf_printf(&d->location, "?%.*s", (int)c->query_len, c->query);
	}
	if (rc)
		return -ENOMEM;
	return respond(d, (int)rd->redirect_code.v, "", "redirect", "");
}

/* The forwarded path: rewrite applied to the normalized path, query kept. */
static int rewrite(const struct l7_route *r, const struct l7_match *m, const struct req_ctx *c,
		   struct zm_l7_decision *d)
{
	const struct zm_http_rewrite *rw = &r->r->rewrite;
	struct zm_buf *p = &d->path;
	int rc = 0;

	zm_buf_reset(p);
	if (rw->uri.v) {
		size_t keep = 0;

		if (m && m->uri.k == SM_PREFIX)
			keep = strlen(m->uri.s);
		else if (!m || m->uri.k == SM_NONE)
			keep = 1;	/* Istio: the route's implicit prefix is "/" */
		else
			keep = c->path_len;	/* exact or regex: the whole path */
		if (keep > c->path_len)
			keep = c->path_len;
		rc |= zm_buf_puts(p, rw->uri.v);
		rc |= zm_buf_append(p, c->path + keep, c->path_len - keep);
		if (zm_buf_len(p) == 0)
			rc |= zm_buf_puts(p, "/");
	} else if (r->rw_re) {
		PCRE2_UCHAR out[4096];
		PCRE2_SIZE olen = sizeof(out);
		int n = pcre2_substitute(r->rw_re, (PCRE2_SPTR)c->path, c->path_len, 0,
					 PCRE2_SUBSTITUTE_GLOBAL, NULL, NULL, (PCRE2_SPTR)r->rw_sub,
					 PCRE2_ZERO_TERMINATED, out, &olen);

		if (n < 0)
			rc |= zm_buf_append(p, c->path, c->path_len);
		else
			rc |= zm_buf_append(p, out, olen);
	} else {
		rc |= zm_buf_append(p, c->path, c->path_len);
	}
	if (c->query_len)
		rc |= zm_buf_printf(p, "?%.*s", (int)c->query_len, c->query);
	if (rw->authority.v) {
		zm_buf_reset(&d->authority);
		rc |= zm_buf_puts(&d->authority, rw->authority.v);
	}
	return rc ? -ENOMEM : 0;
}

static void set_dest(struct zm_l7_decision *d, const struct zm_l7_svc *s, const struct zm_destination *dst,
		     int req_port)
{
	d->svc = s;
	d->subset = dst && dst->subset.v ? dst->subset.v : NULL;
	d->svc_port_idx = port_index(s, dst && dst->port.o.set ? (int)dst->port.number.v : req_port);
	if (d->svc_port_idx < 0 && s->nports && !(dst && dst->port.o.set))
		d->svc_port_idx = 0;
}

static int route_action(struct zm_l7 *l7, const struct l7_vs *v, const struct l7_route *r,
			const struct l7_match *m, struct req_ctx *c, struct zm_l7_decision *d,
			struct deferred *df)
{
	const struct zm_http_route *hr = r->r;
	const char *vns = v->o->meta.ns.v;
	int rc;

	d->route_name = hr->name.v;
	d->vs_name = v->name;
	if ((rc = do_cors(r, c, d, df)))
		return rc < 0 ? rc : 0;
	if (hr->redirect.o.set)
		return redirect(&hr->redirect, c, d);
	if (hr->direct_response.o.set) {
		const char *body = hr->direct_response.body.string.v;

		return respond(d, (int)hr->direct_response.status.v, "DR", "direct response",
			       body ? body : "");
	}
	if (hr->delegate.o.set)
		return respond(d, 500, "NR", "delegate VirtualServices are not supported", "");
	set_policies(l7, hr, d);
	add_ops(d, &hr->headers);
	if ((rc = rewrite(r, m, c, d)))
		return rc;
	if (hr->fault.abort.o.set && (hr->fault.abort.http_status.set || hr->fault.abort.grpc_status.v)) {
		const struct zm_fault_abort *fa = &hr->fault.abort;

		if (chance(l7, fa->percentage.value.v)) {
			if (!fa->http_status.set) {	/* grpcStatus (validated): Envoy's trailers-only answer */
				d->grpc_status = zm_grpc_status_code(fa->grpc_status.v);
				return respond(d, 200, "FI", "fault filter abort", "");
			}
			return respond(d, (int)fa->http_status.v, "FI", "fault filter abort",
				       "fault filter abort");
		}
	}
	{
		/* weighted destination */
		int64_t total = 0, pick;
		const struct zm_http_route_dest *rd = NULL;

		for (size_t i = 0; i < hr->route.n; i++)
			total += hr->route.v[i].weight.v;
		if (!hr->route.n || total <= 0)
			return respond(d, 503, "NR", "no route destination", "no healthy upstream");
		pick = (int64_t)(rnd(l7) % (uint64_t)total);
		for (size_t i = 0; i < hr->route.n; i++) {
			pick -= hr->route.v[i].weight.v;
			if (pick < 0) {
				rd = &hr->route.v[i];
				break;
			}
		}
		{
			const struct zm_l7_svc *s = svc_by_dest(l7, rd->destination.host.v, vns);

			if (!s)
				return respond(d, 503, "NC", "destination service not found",
					       "no healthy upstream");
			set_dest(d, s, &rd->destination, c->port);
			add_ops(d, &rd->headers);
		}
	}
	/* mirror (one, mirrorPercentage) or mirrors (each with its own percentage) */
	for (size_t i = 0; i < (hr->mirror.o.set ? 1 : hr->mirrors.n) && d->nmirrors < ZM_MAX_MIRRORS; i++) {
		const struct zm_destination *md = hr->mirror.o.set ? &hr->mirror : &hr->mirrors.v[i].destination;
		double pct = !hr->mirror.o.set ? hr->mirrors.v[i].percentage.value.v :
			     hr->mirror_percent.set && !hr->mirror_percentage.o.set ? (double)hr->mirror_percent.v :
			     hr->mirror_percentage.value.v;
		const struct zm_l7_svc *s;
		struct zm_l7_mirror *mr;

		if (!chance(l7, pct) || !(s = svc_by_dest(l7, md->host.v, vns)))
			continue;
		mr = &d->mirrors[d->nmirrors++];
		mr->svc = s;
		mr->subset = md->subset.v;
		mr->port_idx = port_index(s, md->port.o.set ? (int)md->port.number.v : c->port);
		if (mr->port_idx < 0 && s->nports)
			mr->port_idx = 0;
	}
	return 0;
}

static void parse_authority(const char *a, char *host, size_t hsz, int *port)
{
	const char *colon;
	size_t n;

	if (!a)
		a = "";
	if (a[0] == '[') {
		const char *rb = strchr(a, ']');

		n = rb ? (size_t)(rb - a + 1) : strlen(a);
		colon = rb && rb[1] == ':' ? rb + 1 : NULL;
	} else {
		colon = strrchr(a, ':');
		n = colon ? (size_t)(colon - a) : strlen(a);
	}
	if (colon && colon[1])
		*port = atoi(colon + 1);
	if (n >= hsz)
		n = hsz - 1;
	for (size_t i = 0; i < n; i++)
		host[i] = (char)tolower((unsigned char)a[i]);
	host[n] = '\0';
}

int zm_l7_decide(struct zm_l7 *l7, const struct zm_l7_request *req, struct zm_l7_decision *d)
{
	struct req_ctx c = { .req = req, .port = req->port, .l7 = l7 };
	struct zm_path_result pr;
	struct l7_jwt_res jwt = { 0 };
	struct deferred df;
	bool have_jwt = false;
	const struct l7_vs *v;
	const char *ns;
	char *out;
	int rc;

	zm_l7_decision_init(d);
	if (!zm_http_method_valid(req->method, strlen(req->method)))
		return respond(d, 400, "DPE", "bad method", "bad request: method");
	out = zm_buf_reserve(&d->norm_path, 3 * req->target_len + 2);
	if (!out)
		return -ENOMEM;
	rc = zm_http_path_normalize(req->target, req->target_len, out, 3 * req->target_len + 2,
				    &l7->opts.path, &pr);
	if (rc < 0) {
		char body[128];

		snprintf(body, sizeof(body), "bad request: %s", zm_path_strerror(rc));
		return respond(d, 400, "DPE", zm_path_strerror(rc), body);
	}
	zm_buf_commit(&d->norm_path, pr.len);
	c.path = zm_buf_data(&d->norm_path);
	c.path_len = pr.path_len;
	c.query = pr.len > pr.path_len ? c.path + pr.path_len + 1 : "";
	c.query_len = pr.len > pr.path_len ? pr.len - pr.path_len - 1 : 0;
	parse_authority(req->authority, c.host, sizeof(c.host), &c.port);
	c.svc = svc_by_host(l7, c.host);
	if (zm_buf_puts(&d->authority, req->authority ? req->authority : ""))
		return -ENOMEM;
	v = vs_find(l7, &c);
	c.vs_ns = v ? v->o->meta.ns.v : NULL;
	ns = c.svc ? c.svc->ns : v ? v->o->meta.ns.v : NULL;

	rc = do_jwt(l7, &c, ns, d, &df, &jwt, &have_jwt);
	if (rc)
		goto out;
	if (have_jwt && jwt.principal && !(d->request_principal = strdup(jwt.principal))) {
		rc = -ENOMEM;
		goto out;
	}
	rc = do_authz(l7, &c, ns, have_jwt ? &jwt : NULL, d);
	if (rc)
		goto out;
	if (v) {
		const struct l7_route *r = NULL;
		const struct l7_match *m = NULL;

		for (size_t i = 0; i < v->nroutes && !r; i++) {
			if (!v->routes[i].nm) {
				r = &v->routes[i];
				break;
			}
			for (size_t j = 0; j < v->routes[i].nm; j++)
				if (match_ok(&v->routes[i].m[j], &c)) {
					r = &v->routes[i];
					m = &r->m[j];
					break;
				}
		}
		if (!r) {
			rc = respond(d, 404, "NR", "no route matched", "no route");
			goto out;
		}
		rc = route_action(l7, v, r, m, &c, d, &df);
	} else if (c.svc && !l7->ngws) {
		d->vs_name = NULL;
		set_dest(d, c.svc, NULL, c.port);
		d->retry_attempts = 2;
		d->retry_on = ZM_RETRY_CONNECT | ZM_RETRY_REFUSED | ZM_RETRY_CODES |
			      ZM_RETRY_GRPC_UNAVAILABLE | ZM_RETRY_GRPC_CANCELLED;
		d->retry_codes[d->nretry_codes++] = 503;
		d->backoff_ns = 25 * ZM_NS_PER_MS;
		static const struct zm_http_route none;
		const struct l7_route plain = { .r = &none };

		rc = rewrite(&plain, NULL, &c, d);
	} else {
		rc = respond(d, 404, "NR", "unknown host", "no route");
	}
	if (!rc && d->action == ZM_L7_FORWARD && d->svc_port_idx < 0)
		rc = respond(d, 503, "NR", "no such service port", "no healthy upstream");
out:
	/* scratch is final now: point the engine-made headers at it. */
	for (size_t i = 0; i < d->nreq_set; i++)
		d->req_set[i].value = zm_buf_data(&d->scratch) + df.req_off[i];
	for (size_t i = 0; i < d->nresp_set; i++)
		d->resp_set[i].value = zm_buf_data(&d->scratch) + df.resp_off[i];
	l7_jwt_res_free(&jwt);
	return rc < 0 ? rc : 0;
}

/* ---- TCP ------------------------------------------------------------------------------ */

static bool l4_match_ok(const struct zm_l4_match *m, const struct req_ctx *c)
{
	const struct zm_l7_request *req = c->req;

	if (m->port.set && m->port.v != c->port)
		return false;
	if (m->source_namespace.v && (!req->src_ns || strcmp(m->source_namespace.v, req->src_ns)))
		return false;
	for (size_t i = 0; i < m->source_labels.n; i++) {
		const char *v = req->src_labels ? zm_labels_get(req->src_labels,
							m->source_labels.v[i].key.v) : NULL;

		if (!v || strcmp(v, m->source_labels.v[i].val.v))
			return false;
	}
	if (m->gateways.n && !gw_bound(c->l7, &m->gateways, c->vs_ns, false, c))
		return false;
	if (m->destination_subnets.n) {
		bool in = false;
		uint8_t a[4];

		if (!c->svc || !c->svc->vip[0] || inet_pton(AF_INET, c->svc->vip, a) != 1)
			return false;
		for (size_t i = 0; i < m->destination_subnets.n && !in; i++) {
			struct zm_cidr b;
			const char *sn = m->destination_subnets.v[i].v;

			in = zm_cidr_parse(sn, strlen(sn), &b) == 0 && zm_cidr_match(&b, AF_INET, a);
		}
		if (!in)
			return false;
	}
	return true;
}

int zm_l7_decide_tcp(struct zm_l7 *l7, const struct zm_l7_request *req,
		     const struct zm_l7_svc *svc, int port, struct zm_l7_decision *d)
{
	struct req_ctx c = { .req = req, .port = port, .svc = svc, .path = "", .query = "", .l4 = true,
			     .l7 = l7 };
	const struct l7_vs *v;
	int rc;

	zm_l7_decision_init(d);
	if (!svc)
		return respond(d, 0, "NR", "unknown destination", "");
	snprintf(c.host, sizeof(c.host), "%s", svc->fqdn);
	v = vs_find(l7, &c);
	c.vs_ns = v ? v->o->meta.ns.v : NULL;
	rc = do_authz(l7, &c, svc->ns, NULL, d);
	if (rc)
		return rc < 0 ? rc : 0;
	for (size_t i = 0; v && i < v->o->vs->tcp.n; i++) {
		const struct zm_tcp_route *tr = &v->o->vs->tcp.v[i];
		bool hit = !tr->match.n;
		int64_t total = 0, pick;

		for (size_t j = 0; j < tr->match.n && !hit; j++)
			hit = l4_match_ok(&tr->match.v[j], &c);
		if (!hit)
			continue;
		d->vs_name = v->name;
		for (size_t k = 0; k < tr->route.n; k++)
			total += tr->route.v[k].weight.v;
		pick = total > 0 ? (int64_t)(rnd(l7) % (uint64_t)total) : 0;
		for (size_t k = 0; k < tr->route.n; k++) {
			pick -= tr->route.v[k].weight.v;
			if (pick < 0 || total <= 0 || k + 1 == tr->route.n) {
				const struct zm_destination *dst = &tr->route.v[k].destination;
				const struct zm_l7_svc *s = svc_by_dest(l7, dst->host.v, v->o->meta.ns.v);

				if (!s)
					return respond(d, 0, "NC", "destination service not found", "");
				set_dest(d, s, dst, port);
				break;
			}
		}
		goto out;
	}
	set_dest(d, svc, NULL, port);
out:
	if (d->action == ZM_L7_FORWARD && d->svc_port_idx < 0)
		return respond(d, 0, "NR", "no such service port", "");
	return 0;
}

const struct zm_l7_svc *zm_l7_svc_by_addr(struct zm_l7 *l7, const char *host)
{
	return svc_by_host(l7, host);
}

/* ---- balancing -------------------------------------------------------------------- */

static const struct zm_cfg_obj *dr_find(const struct zm_l7 *l7, const struct zm_l7_svc *s)
{
	const struct zm_cfg_obj *wild = NULL;

	for (size_t i = 0; i < l7->ndrs; i++) {
		char h[256];

		zm_host_fqdn(l7->drs[i]->dr->host.v, l7->drs[i]->meta.ns.v, h, sizeof(h));
		if (!strcasecmp(h, s->fqdn))
			return l7->drs[i];
		if (!wild && h[0] == '*' && zm_host_match(h, s->fqdn))
			wild = l7->drs[i];
	}
	return wild;
}

static const struct zm_subset *subset_find(const struct zm_cfg_obj *dr, const char *name)
{
	if (!dr || !name)
		return NULL;
	for (size_t i = 0; i < dr->dr->subsets.n; i++)
		if (!strcmp(dr->dr->subsets.v[i].name.v, name))
			return &dr->dr->subsets.v[i];
	return NULL;
}

/* The portLevelSettings entry of @tp for service port @port, or NULL. */
static const struct zm_port_traffic_policy *port_policy(const struct zm_traffic_policy *tp, int port)
{
	if (!tp || port <= 0)
		return NULL;
	for (size_t i = 0; i < tp->port_level_settings.n; i++)
		if (tp->port_level_settings.v[i].port.number.v == port)
			return &tp->port_level_settings.v[i];
	return NULL;
}

/*
 * The effective policy pieces, each the first written of: the subset's
 * portLevelSettings for the port, the subset's, the rule's portLevelSettings
 * for the port, the rule's (Istio's merge: a port-level piece overrides the
 * level it is in, a subset overrides the rule). Balancer, pool and outlier
 * state stay per service, as for subsets.
 */
struct eff {
	const struct zm_cfg_obj *dr;
	const struct zm_subset *ss;
	const struct zm_load_balancer *lb;
	const struct zm_connection_pool *pool;
	const struct zm_outlier_detection *od;
	const struct zm_retry_budget *rb;	/* NULL: none (no port-level form) */
};

static void effective(const struct zm_l7 *l7, const struct zm_l7_svc *s,
		      const struct zm_l7_decision *d, struct eff *e)
{
	const struct zm_traffic_policy *tp, *stp;
	const struct zm_port_traffic_policy *pp, *spp;
	const char *subset = d->subset;
	int port = d->svc_port_idx >= 0 && (size_t)d->svc_port_idx < s->nports ? s->ports[d->svc_port_idx] : 0;

	memset(e, 0, sizeof(*e));
	e->dr = dr_find(l7, s);
	if (!e->dr)
		return;
	e->ss = subset_find(e->dr, subset);
	tp = &e->dr->dr->traffic_policy;
	stp = e->ss ? &e->ss->traffic_policy : NULL;
	pp = port_policy(tp, port);
	spp = port_policy(stp, port);
#define PICK(f) (spp && spp->f.o.set ? &spp->f : stp && stp->f.o.set ? &stp->f : \
		 pp && pp->f.o.set ? &pp->f : &tp->f)
	e->lb = PICK(load_balancer);
	e->pool = PICK(connection_pool);
	e->od = PICK(outlier_detection);
#undef PICK
	e->rb = stp && stp->retry_budget.o.set ? &stp->retry_budget :
		tp->retry_budget.o.set ? &tp->retry_budget : NULL;
}

static uint64_t fnv(const void *p, size_t n, uint64_t h)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ULL;
	}
	/* finalizer (splitmix) so rendezvous scores spread */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

/* The consistent-hash key for @req, or -ENOENT (then random). */
static int hash_key(const struct zm_consistent_hash *ch, const struct zm_l7_request *req,
		    const struct zm_l7_decision *d, char *out, size_t outsz, size_t *len)
{
	if (ch->http_header_name.v)
		return hdr_get(req, ch->http_header_name.v, out, outsz, len);
	if (ch->use_source_ip.v) {
		if (!req->src_family)
			return -ENOENT;
		*len = req->src_family == AF_INET ? 4 : 16;
		memcpy(out, req->src_addr, *len);
		return 0;
	}
	if (ch->http_cookie.o.set) {
		char ck[HDR_JOIN_MAX];
		size_t cl, nl = strlen(ch->http_cookie.name.v);
		const char *p;

		if (hdr_get(req, "cookie", ck, sizeof(ck), &cl) < 0)
			return -ENOENT;
		for (p = ck; (p = strstr(p, ch->http_cookie.name.v)); p += nl) {
			if ((p == ck || p[-1] == ' ' || p[-1] == ';') && p[nl] == '=') {
				size_t vl = strcspn(p + nl + 1, ";");

				*len = vl < outsz ? vl : outsz;
				memcpy(out, p + nl + 1, *len);
				return 0;
			}
		}
		return -ENOENT;
	}
	if (ch->http_query_parameter_name.v) {
		const char *path = zm_buf_data(&d->path), *q = path ? strchr(path, '?') : NULL;
		size_t vl;
		const char *v = q ? query_get(q + 1, strlen(q + 1), ch->http_query_parameter_name.v, &vl) : NULL;

		if (!v)
			return -ENOENT;
		*len = vl < outsz ? vl : outsz;
		memcpy(out, v, *len);
		return 0;
	}
	return -ENOENT;
}

int zm_l7_pick(struct zm_l7 *l7, const struct zm_l7_decision *d, const struct zm_l7_request *req,
	       int skip, int64_t now_ns)
{
	const struct zm_l7_svc *cs = d->svc;
	struct zm_l7_svc *s;
	struct eff e;
	int cand[MAX_CAND], ncand = 0, healthy = 0, pick = -1;
	int lb;

	if (!cs || d->svc_port_idx < 0)
		return -EHOSTUNREACH;
	s = (struct zm_l7_svc *)cs;	/* balancer state is mutable by design */
	effective(l7, s, d, &e);
	if (d->subset && !e.ss)
		return -EHOSTUNREACH;	/* Envoy: unknown subset -> no healthy upstream */
	for (size_t i = 0; i < s->neps && ncand < MAX_CAND; i++) {
		const struct zm_l7_ep *ep = &s->eps[i];

		if (ep->tport[d->svc_port_idx] <= 0)
			continue;
		if (e.ss) {
			bool ok = true;

			for (size_t k = 0; k < e.ss->labels.n && ok; k++) {
				const char *lv = zm_labels_get(&ep->labels, e.ss->labels.v[k].key.v);

				ok = lv && !strcmp(lv, e.ss->labels.v[k].val.v);
			}
			if (!ok)
				continue;
		}
		cand[ncand++] = (int)i;
	}
	if (!ncand)
		return -EHOSTUNREACH;
	/* Drop ejected endpoints, unless all are, or fewer than
	 * outlierDetection.minHealthPercent are left (Envoy's panic threshold):
	 * then panic mode, every endpoint of this destination (its subset: a
	 * cluster of its own in Istio, never the service's other subsets). */
	{
		int64_t minh = e.od && e.od->o.set ? e.od->min_health_percent.v : 0;
		int ok[MAX_CAND];

		for (int i = 0; i < ncand; i++)
			if (atomic_load(&s->eps[cand[i]].ejected_until) <= now_ns)
				ok[healthy++] = cand[i];
		if (healthy && (int64_t)healthy * 100 >= minh * ncand) {
			memcpy(cand, ok, sizeof(ok[0]) * (size_t)healthy);
			ncand = healthy;
		}
	}
	if (skip >= 0 && ncand > 1)
		for (int i = 0; i < ncand; i++)
			if (cand[i] == skip) {
				cand[i] = cand[--ncand];
				break;
			}
	lb = e.lb ? e.lb->simple.v : ZM_LB_LEAST_REQUEST;
	if (e.lb && e.lb->consistent_hash.o.set) {
		char key[HDR_JOIN_MAX];
		size_t kl;

		if (hash_key(&e.lb->consistent_hash, req, d, key, sizeof(key), &kl) == 0) {
			uint64_t best = 0;

			for (int i = 0; i < ncand; i++) {
				const char *a = s->eps[cand[i]].addr;
				uint64_t h = fnv(a, strlen(a), fnv(key, kl, 0xcbf29ce484222325ULL));

				if (pick < 0 || h > best) {
					best = h;
					pick = cand[i];
				}
			}
		} else {
			lb = ZM_LB_RANDOM;
		}
	}
	if (pick < 0) {
		switch (lb) {
		case ZM_LB_ROUND_ROBIN:
			pick = cand[atomic_fetch_add(&s->rr, 1) % (unsigned)ncand];
			break;
		case ZM_LB_RANDOM:
		case ZM_LB_PASSTHROUGH:
			pick = cand[rnd(l7) % (uint64_t)ncand];
			break;
		default: {	/* LEAST_REQUEST (and LEAST_CONN): power of two choices */
			int a = cand[rnd(l7) % (uint64_t)ncand], b = cand[rnd(l7) % (uint64_t)ncand];

			pick = atomic_load(&s->eps[b].active) < atomic_load(&s->eps[a].active) ? b : a;
			break;
		}
		}
	}
	atomic_fetch_add(&s->eps[pick].active, 1);
	return pick;
}

int64_t zm_l7_connect_timeout(struct zm_l7 *l7, const struct zm_l7_decision *d)
{
	struct eff e;

	if (!d->svc)
		return 10 * ZM_NS_PER_S;
	effective(l7, d->svc, d, &e);
	return e.pool ? e.pool->tcp.connect_timeout.ns : 10 * ZM_NS_PER_S;
}

bool zm_l7_upstream_h2(struct zm_l7 *l7, const struct zm_l7_decision *d, bool client_h2)
{
	struct eff e;

	if (!d->svc)
		return false;
	effective(l7, d->svc, d, &e);
	if (!e.pool)
		return false;
	if (e.pool->http.use_client_protocol.set && e.pool->http.use_client_protocol.v)
		return client_h2;
	return e.pool->http.h2_upgrade_policy.set && e.pool->http.h2_upgrade_policy.v == ZM_H2_UPGRADE;
}

const struct zm_tcp_keepalive *zm_l7_tcp_keepalive(struct zm_l7 *l7, const struct zm_l7_decision *d)
{
	struct eff e;

	if (!d->svc)
		return NULL;
	effective(l7, d->svc, d, &e);
	return e.pool && e.pool->tcp.tcp_keepalive.o.set ? &e.pool->tcp.tcp_keepalive : NULL;
}

int64_t zm_l7_max_requests_per_connection(struct zm_l7 *l7, const struct zm_l7_decision *d)
{
	struct eff e;

	if (!d->svc)
		return 0;
	effective(l7, d->svc, d, &e);
	return e.pool ? e.pool->http.max_requests_per_connection.v : 0;
}

void zm_l7_conn_times(struct zm_l7 *l7, const struct zm_l7_decision *d, struct zm_l7_conn_times *t)
{
	struct eff e = { 0 };

	*t = (struct zm_l7_conn_times){ .http_idle_ns = 3600 * ZM_NS_PER_S, .tcp_idle_ns = -1 };
	if (d->svc)
		effective(l7, d->svc, d, &e);
	if (!e.pool)
		return;
	if (e.pool->http.idle_timeout.set)
		t->http_idle_ns = e.pool->http.idle_timeout.ns;
	if (e.pool->tcp.idle_timeout.set)
		t->tcp_idle_ns = e.pool->tcp.idle_timeout.ns;
	if (e.pool->tcp.max_connection_duration.set)
		t->max_age_ns = e.pool->tcp.max_connection_duration.ns;
}

void zm_l7_report(struct zm_l7 *l7, const struct zm_l7_decision *d, int epi, int status,
		  int64_t now_ns)
{
	struct zm_l7_svc *s = (struct zm_l7_svc *)d->svc;
	struct zm_l7_ep *ep;
	struct eff e;
	bool gw = status == 0 || status == 502 || status == 503 || status == 504;

	if (!s || epi < 0 || (size_t)epi >= s->neps)
		return;
	ep = &s->eps[epi];
	atomic_fetch_sub(&ep->active, 1);
	if (status != 0 && status < 500) {
		atomic_store(&ep->fails, 0);
		atomic_store(&ep->gw_fails, 0);
		return;
	}
	{
		int f = atomic_fetch_add(&ep->fails, 1) + 1;
		int g = gw ? atomic_fetch_add(&ep->gw_fails, 1) + 1 : (atomic_store(&ep->gw_fails, 0), 0);
		int ejected = 0;
		int64_t lim5, limg;

		effective(l7, s, d, &e);
		if (!e.od || !e.od->o.set)
			return;
		lim5 = e.od->consecutive_5xx_errors.v;
		limg = e.od->consecutive_gateway_errors.v;
		if (!((lim5 > 0 && f >= lim5) || (limg > 0 && g >= limg)))
			return;
		for (size_t i = 0; i < s->neps; i++)
			ejected += atomic_load(&s->eps[i].ejected_until) > now_ns;
		/* maxEjectionPercent, but at least one host (Envoy's rule). */
		if (ejected > 0 && (int64_t)(ejected + 1) * 100 > e.od->max_ejection_percent.v * (int64_t)s->neps)
			return;
		{
			int n = atomic_fetch_add(&ep->ejections, 1) + 1;

			atomic_store(&ep->ejected_until, now_ns + e.od->base_ejection_time.ns * n);
			atomic_store(&ep->fails, 0);
			atomic_store(&ep->gw_fails, 0);
		}
	}
}

bool zm_l7_retry_begin(struct zm_l7 *l7, const struct zm_l7_decision *d)
{
	struct zm_l7_svc *s = (struct zm_l7_svc *)d->svc;
	struct eff e;
	int64_t lim;

	if (!s)
		return true;
	effective(l7, s, d, &e);
	lim = e.pool && e.pool->http.max_retries.set ? e.pool->http.max_retries.v : INT64_MAX;
	if (e.rb) {
		/* Envoy's retry budget replaces maxRetries: percent (20) of the
		 * requests in flight, at least minRetryConcurrency (3) */
		double pct = e.rb->percent.set ? e.rb->percent.v : 20.0;
		int64_t minc = e.rb->min_retry_concurrency.set ? e.rb->min_retry_concurrency.v : 3;

		lim = (int64_t)(pct / 100.0 * atomic_load(&s->inflight));
		if (lim < minc)
			lim = minc;
	}
	if (atomic_fetch_add(&s->retrying, 1) + 1 > lim) {
		atomic_fetch_sub(&s->retrying, 1);
		return false;
	}
	return true;
}

void zm_l7_retry_end(struct zm_l7 *l7, const struct zm_l7_decision *d)
{
	(void)l7;
	if (d->svc)
		atomic_fetch_sub(&((struct zm_l7_svc *)d->svc)->retrying, 1);
}

int zm_l7_admit(struct zm_l7 *l7, const struct zm_l7_decision *d)
{
	struct zm_l7_svc *s = (struct zm_l7_svc *)d->svc;
	struct eff e;
	int64_t lim;

	if (!s)
		return 0;
	effective(l7, s, d, &e);
	if (!e.pool || !e.pool->o.set) {
		atomic_fetch_add(&s->inflight, 1);
		return 0;
	}
	lim = e.pool->tcp.max_connections.v + e.pool->http.http1_max_pending_requests.v;
	if (e.pool->http.http2_max_requests.v < lim)
		lim = e.pool->http.http2_max_requests.v;
	if (atomic_fetch_add(&s->inflight, 1) + 1 > lim) {
		atomic_fetch_sub(&s->inflight, 1);
		return -EBUSY;
	}
	return 0;
}

void zm_l7_release(struct zm_l7 *l7, const struct zm_l7_decision *d)
{
	(void)l7;
	if (d->svc)
		atomic_fetch_sub(&((struct zm_l7_svc *)d->svc)->inflight, 1);
}

bool zm_l7_should_retry(const struct zm_l7_decision *d, int status, bool connect_failed)
{
	if (connect_failed)
		return d->retry_on & (ZM_RETRY_CONNECT | ZM_RETRY_RESET | ZM_RETRY_5XX | ZM_RETRY_GATEWAY);
	if (status == 0)
		return d->retry_on & (ZM_RETRY_RESET | ZM_RETRY_5XX);
	if ((d->retry_on & ZM_RETRY_5XX) && status >= 500)
		return true;
	if ((d->retry_on & ZM_RETRY_GATEWAY) && (status == 502 || status == 503 || status == 504))
		return true;
	if ((d->retry_on & ZM_RETRY_4XX) && status == 409)
		return true;
	if (d->retry_on & ZM_RETRY_CODES)
		for (size_t i = 0; i < d->nretry_codes; i++)
			if (d->retry_codes[i] == status)
				return true;
	return false;
}

bool zm_l7_should_retry_grpc(const struct zm_l7_decision *d, int gs)
{
	switch (gs) {
	case 1: return d->retry_on & ZM_RETRY_GRPC_CANCELLED;
	case 4: return d->retry_on & ZM_RETRY_GRPC_DEADLINE;
	case 8: return d->retry_on & ZM_RETRY_GRPC_RESOURCE;
	case 13: return d->retry_on & ZM_RETRY_GRPC_INTERNAL;
	case 14: return d->retry_on & ZM_RETRY_GRPC_UNAVAILABLE;
	default: return false;
	}
}

const char *zm_l7_svc_fqdn(const struct zm_l7_decision *d)
{
	return d->svc ? d->svc->fqdn : "unknown";
}

/* ---- gateway TLS passthrough and TCP servers ------------------------------------------- */

/* A destination from @rd by weight, as zm_l7_decide_tcp picks one. */
static int pick_dest(struct zm_l7 *l7, const struct l7_vs *v, const struct zm_route_dest *rd, size_t n,
		     int port, struct zm_l7_decision *d)
{
	int64_t total = 0, pick;

	d->vs_name = v->name;
	for (size_t k = 0; k < n; k++)
		total += rd[k].weight.v;
	pick = total > 0 ? (int64_t)(rnd(l7) % (uint64_t)total) : 0;
	for (size_t k = 0; k < n; k++) {
		pick -= rd[k].weight.v;
		if (pick < 0 || total <= 0 || k + 1 == n) {
			const struct zm_destination *dst = &rd[k].destination;
			const struct zm_l7_svc *sv = svc_by_dest(l7, dst->host.v, v->o->meta.ns.v);

			if (!sv)
				return respond(d, 0, "NC", "destination service not found", "");
			set_dest(d, sv, dst, port);
			if (d->svc_port_idx < 0)
				return respond(d, 0, "NR", "no such service port", "");
			return 0;
		}
	}
	return respond(d, 0, "NR", "no route destination", "");
}

int zm_l7_sni_cluster(const char *sni, int *port, char *subset, size_t subsetsz, char *host,
		      size_t hostsz)
{
	static const char pre[] = "outbound_.";
	const char *p, *u;
	long v = 0;

	if (!sni || strncmp(sni, pre, sizeof(pre) - 1))
		return -EINVAL;
	p = sni + sizeof(pre) - 1;
	if (*p == '0')		/* one spelling per port, as Istio writes it */
		return -EINVAL;
	for (u = p; *u >= '0' && *u <= '9' && u - p < 6; u++)
		v = v * 10 + (*u - '0');
	if (u == p || strncmp(u, "_.", 2) || v < 1 || v > 65535)
		return -EINVAL;
	p = u + 2;
	if (!(u = strstr(p, "_.")) || (size_t)(u - p) >= subsetsz)
		return -EINVAL;
	/* a subset name is a DNS label (Istio validates it so) */
	for (const char *q = p; q < u; q++)
		if (!((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '-'))
			return -EINVAL;
	memcpy(subset, p, (size_t)(u - p));
	subset[u - p] = '\0';
	p = u + 2;
	if (!*p || strlen(p) >= hostsz || strchr(p, '*') || zm_host_check(p, false))
		return -EINVAL;
	snprintf(host, hostsz, "%s", p);
	*port = (int)v;
	return 0;
}

static int ap_refuse(struct zm_l7_decision *d, const char *why)
{
	respond(d, 0, "NR", why, "");
	return 1;
}

/* AUTO_PASSTHROUGH: the service, port and subset the SNI names, when a
 * server on @port admits it. 1 decided, 0 not such a connection. */
static int auto_passthrough(struct zm_l7 *l7, const char *sni, int port, struct zm_l7_decision *d)
{
	char subset[64], host[256];
	const struct zm_l7_svc *s = NULL;
	const struct zm_cfg_obj *dr;
	const struct zm_subset *ss = NULL;
	int sport, pi = -1;
	bool served = false, admitted = false;

	for (size_t i = 0; i < l7->ngwh; i++)
		served |= l7->gwh[i].auto_passthrough && l7->gwh[i].port == port;
	if (!served)
		return 0;
	if (zm_l7_sni_cluster(sni, &sport, subset, sizeof(subset), host, sizeof(host)))
		return ap_refuse(d, "AUTO_PASSTHROUGH: SNI is not outbound_.<port>_.<subset>_.<host>");
	for (size_t i = 0; i < l7->view.nsvcs && !s; i++)
		if (!strcasecmp(host, l7->view.svcs[i].fqdn))
			s = &l7->view.svcs[i];
	if (!s)
		return ap_refuse(d, "AUTO_PASSTHROUGH: no such service");
	for (size_t i = 0; i < l7->ngwh && !admitted; i++) {
		const struct zm_l7_gw_host *h = &l7->gwh[i];

		admitted = h->auto_passthrough && h->port == port && (!strcmp(h->ns, "*") || !strcmp(h->ns, s->ns)) &&
			   zm_host_match(h->host, s->fqdn);
	}
	if (!admitted)
		return ap_refuse(d, "AUTO_PASSTHROUGH: service not in the server's hosts");
	for (size_t i = 0; i < s->nports; i++)
		if (s->ports[i] == sport)
			pi = (int)i;
	if (pi < 0)
		return ap_refuse(d, "AUTO_PASSTHROUGH: no such service port");
	if (subset[0]) {
		dr = dr_find(l7, s);
		ss = dr ? subset_find(dr, subset) : NULL;
		if (!ss)
			return ap_refuse(d, "AUTO_PASSTHROUGH: no such subset");
	}
	d->svc = s;
	d->svc_port_idx = pi;
	d->subset = ss ? ss->name.v : NULL;
	return 1;
}

int zm_l7_decide_gateway_l4(struct zm_l7 *l7, const struct zm_l7_request *req, const char *sni,
			    int port, struct zm_l7_decision *d)
{
	struct req_ctx c = { .req = req, .port = port, .path = "", .query = "", .l4 = true, .l7 = l7 };
	int rc;

	zm_l7_decision_init(d);
	if (!l7->ngws)
		return respond(d, 0, "NR", "not a gateway", "");
	snprintf(c.host, sizeof(c.host), "%s", sni ? sni : "");
	rc = do_authz(l7, &c, NULL, NULL, d);
	if (rc)
		return rc < 0 ? rc : 0;
	if (sni && sni[0] && auto_passthrough(l7, sni, port, d))
		return 0;
	/* exact SNI hosts before wildcards, as for HTTP hosts */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < l7->nvs; i++) {
			const struct l7_vs *v = &l7->vs[i];
			const struct zm_virtual_service *vs = v->o->vs;

			if (!gw_bound(l7, &vs->gateways, v->o->meta.ns.v, true, &c))
				continue;
			c.vs_ns = v->o->meta.ns.v;
			for (size_t r = 0; sni && sni[0] && r < vs->tls.n; r++)
				for (size_t j = 0; j < vs->tls.v[r].match.n; j++) {
					const struct zm_tls_match *m = &vs->tls.v[r].match.v[j];

					if ((m->port.set && m->port.v != port) ||
					    (m->gateways.n && !gw_bound(l7, &m->gateways, c.vs_ns, false, &c)))
						continue;
					for (size_t h = 0; h < m->sni_hosts.n; h++) {
						const char *pat = m->sni_hosts.v[h].v;

						if ((pat[0] == '*') == (pass == 1) && zm_host_match(pat, sni))
							return pick_dest(l7, v, vs->tls.v[r].route.v,
									 vs->tls.v[r].route.n, port, d);
					}
				}
			for (size_t r = 0; (!sni || !sni[0]) && pass == 0 && r < vs->tcp.n; r++) {
				const struct zm_tcp_route *tr = &vs->tcp.v[r];
				bool hit = !tr->match.n;

				for (size_t j = 0; j < tr->match.n && !hit; j++)
					hit = l4_match_ok(&tr->match.v[j], &c);
				if (hit)
					return pick_dest(l7, v, tr->route.v, tr->route.n, port, d);
			}
		}
	return respond(d, 0, "NR", "no tls/tcp route", "");
}
