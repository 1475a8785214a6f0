// SPDX-License-Identifier: Apache-2.0
/*
 * The Istio kinds as data: one table per message of istio.io/api
 * (networking v1/v1beta1/v1alpha3, security v1/v1beta1) with each field's
 * YAML name, type, range, enum names, default and value rule, plus the
 * object-level rules (one-ofs, cross-field constraints) Istio's validation
 * applies. config_read.c walks these; nothing here walks YAML itself.
 *
 * Messages follow pkg/config/validation in Istio where it has one; where we
 * chose differently the comment says so and docs/config.md lists it.
 */
#include <ctype.h>
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_int.h"
#include "zmesh/cert_rules.h"

#define FLD(n, ty, m, ...) { .name = n, .type = ty, .off = offsetof(T, m), __VA_ARGS__ }
#define STR(n, m, ...) FLD(n, ZM_CT_STR, m, __VA_ARGS__)
#define BOOL(n, m, ...) FLD(n, ZM_CT_BOOL, m, __VA_ARGS__)
#define INT(n, m, lo, hi, ...) FLD(n, ZM_CT_INT, m, .min = (lo), .max = (hi), __VA_ARGS__)
#define DBL(n, m, lo, hi, ...) FLD(n, ZM_CT_DBL, m, .dmin = (lo), .dmax = (hi), __VA_ARGS__)
#define DUR(n, m, ...) FLD(n, ZM_CT_DUR, m, __VA_ARGS__)
#define ENUM(n, m, names, ...) FLD(n, ZM_CT_ENUM, m, .enums = (names), __VA_ARGS__)
#define OBJ(n, m, s, ...) FLD(n, ZM_CT_OBJ, m, .sub = &(s), __VA_ARGS__)
#define LIST(n, m, e, ...) FLD(n, ZM_CT_LIST, m, .elem = (e), __VA_ARGS__)
#define MAP(n, m, e, ...) FLD(n, ZM_CT_MAP, m, .elem = (e), __VA_ARGS__)
#define IGN(n) { .name = n, .type = ZM_CT_IGNORE }
#define END { .name = NULL }
#define DEF(x) .has_def = true, .def = (x)
#define REQ .flags = ZM_CF_REQUIRED
#define NONEMPTY .flags = ZM_CF_NONEMPTY
#define REQ_NONEMPTY .flags = ZM_CF_REQUIRED | ZM_CF_NONEMPTY

/* Element descriptors for lists and map values. */
#define E(ty, ...) (&(const struct zm_cfield){ .name = "", .type = (ty), __VA_ARGS__ })
#define E_STR(...) E(ZM_CT_STR, __VA_ARGS__)
#define E_OBJ(s) E(ZM_CT_OBJ, .sub = &(s))
#define E_INT(lo, hi) E(ZM_CT_INT, .min = (lo), .max = (hi))

#define SCHEMA(var, istio_name, type, chk)                                        \
	const struct zm_cschema var = { .name = istio_name, .size = sizeof(type), \
					.fields = var##_f, .check = (chk) }

#define U32MAX 4294967295LL
#define I32MAX 2147483647LL

#define ERR zm_crd_err

static const char *nonempty_str(const char *s)
{
	return *s ? NULL : "must not be empty";
}

/* ---- value rules --------------------------------------------------------------- */

static const char *regex_rule(const char *s)
{
	if (!*s)
		return "regex must not be empty";
	return zm_regex_check(s);
}

static const char *host_any(const char *s)
{
	return zm_host_check(s, true);
}

static const char *host_no_star(const char *s)
{
	return zm_host_check(s, false);
}

static const char *dest_host(const char *s)
{
	if (!strcmp(s, "*"))
		return "invalid destination host *";
	return zm_host_check(s, false);
}

static const char *se_host(const char *s)
{
	if (!strcmp(s, "*"))
		return "invalid host * (a ServiceEntry host must name something)";
	return zm_host_check(s, false);
}

static const char *gw_server_host(const char *s)
{
	const char *slash = strchr(s, '/');

	if (slash) {
		char ns[64];
		size_t l = (size_t)(slash - s);

		if (l == 0 || l >= sizeof(ns))
			return "invalid namespace in NAMESPACE/HOST";
		memcpy(ns, s, l);
		ns[l] = 0;
		if (strcmp(ns, "*") && strcmp(ns, ".") && strcmp(ns, "~") && zm_dns_label_check(ns))
			return "namespace in NAMESPACE/HOST must be a name, \"*\", \".\" or \"~\"";
		s = slash + 1;
	}
	return zm_host_check(s, true);
}

static const char *const protocols[] = {
	"HTTP", "HTTPS", "GRPC", "GRPC-WEB", "HTTP2", "MONGO", "MYSQL", "REDIS", "TCP", "TLS",
	"UDP", NULL,
};

static const char *protocol_rule(const char *s)
{
	for (int i = 0; protocols[i]; i++)
		if (!strcasecmp(s, protocols[i]))
			return NULL;
	return "unknown protocol (want HTTP, HTTPS, GRPC, GRPC-WEB, HTTP2, MONGO, MYSQL, REDIS, TCP, TLS or UDP)";
}

static bool protocol_is(const struct zm_cstr *p, const char *name)
{
	return p->v && !strcasecmp(p->v, name);
}

static const char *const retry_on_words[] = {
	"5xx", "gateway-error", "reset", "reset-before-request", "connect-failure",
	"envoy-ratelimited", "retriable-4xx", "refused-stream", "retriable-status-codes",
	"retriable-headers", "http3-post-connect-failure", "cancelled", "deadline-exceeded",
	"internal", "resource-exhausted", "unavailable", NULL,
};

static const char *retry_on_rule(const char *s)
{
	char buf[64];

	while (*s) {
		size_t l = strcspn(s, ",");
		const char *w = s;
		bool ok = false;

		while (l && isspace((unsigned char)*w)) {
			w++;
			l--;
		}
		while (l && isspace((unsigned char)w[l - 1]))
			l--;
		if (l == 0 || l >= sizeof(buf))
			return "invalid retryOn policy (empty or too long item)";
		memcpy(buf, w, l);
		buf[l] = 0;
		for (int i = 0; retry_on_words[i]; i++)
			if (!strcmp(buf, retry_on_words[i]))
				ok = true;
		if (!ok && strspn(buf, "0123456789") == l && l == 3 && atoi(buf) >= 100 &&
		    atoi(buf) <= 599)
			ok = true;
		if (!ok)
			return "invalid retryOn policy (want items such as 5xx, gateway-error, "
			       "reset, connect-failure, refused-stream, retriable-4xx, "
			       "retriable-status-codes, cancelled, unavailable, or an HTTP status code)";
		s = w + l;
		while (*s && *s != ',')
			s++;
		if (*s == ',') {
			s++;
			if (!*s)
				return "invalid retryOn policy (trailing comma)";
		}
	}
	return NULL;
}

static const char *method_rule(const char *s)
{
	const char *why = zm_header_name_check(s);

	if (why)
		return "invalid HTTP method";
	for (; *s; s++)
		if (islower((unsigned char)*s))
			return "HTTP methods are case-sensitive: write it in upper case";
	return NULL;
}

static const char *cors_header_rule(const char *s)
{
	return strcmp(s, "*") ? zm_header_name_check(s) : NULL;
}

static const char *authz_method_rule(const char *s)
{
	const char *why = zm_policy_value_check(s);

	if (why)
		return why;
	for (; *s; s++) {
		if (islower((unsigned char)*s))
			return "HTTP methods are case-sensitive: write it in upper case";
		if (*s != '*' && !isalnum((unsigned char)*s) && !strchr("!#$%&'+-.^_`|~", *s))
			return "invalid HTTP method";
	}
	return NULL;
}

static const char *authz_path_rule(const char *s)
{
	const char *why = zm_policy_value_check(s);

	if (why)
		return why;
	if (s[0] != '/' && s[0] != '*')
		return "path must start with '/' (or be a '*' suffix match)";
	return NULL;
}

static const char *b64_rule(const char *s)
{
	size_t l = strlen(s), pad = 0;

	for (size_t i = 0; i < l; i++) {
		if (s[i] == '=') {
			pad++;
			continue;
		}
		if (pad || (!isalnum((unsigned char)s[i]) && s[i] != '+' && s[i] != '/'))
			return "invalid base64";
	}
	if (l % 4 || pad > 2)
		return "invalid base64";
	return NULL;
}

static const char *url_rule(const char *s)
{
	const char *h;

	if (!strncmp(s, "https://", 8))
		h = s + 8;
	else if (!strncmp(s, "http://", 7))
		h = s + 7;
	else
		return "jwksUri must be an http:// or https:// URL";
	if (!*h || *h == '/' || *h == ':')
		return "jwksUri has no host";
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f)
			return "jwksUri must not contain spaces or control characters";
	return NULL;
}

static const char *jwks_rule(const char *s)
{
	json_error_t je;
	json_t *j = json_loads(s, JSON_REJECT_DUPLICATES, &je), *keys;
	const char *why = NULL;

	if (!j)
		return "jwks is not valid JSON";
	keys = json_object_get(j, "keys");
	if (!json_is_object(j) || !json_is_array(keys))
		why = "jwks must be a JSON Web Key Set: an object with a \"keys\" array";
	else if (json_array_size(keys) == 0)
		why = "jwks has no keys";
	for (size_t i = 0; !why && i < json_array_size(keys); i++) {
		json_t *k = json_array_get(keys, i);

		if (!json_is_object(k) || !json_is_string(json_object_get(k, "kty")))
			why = "every key in jwks needs a \"kty\"";
	}
	json_decref(j);
	return why;
}

static const char *target_kind_rule(const char *s)
{
	static const char *const kinds[] = { "Gateway", "GatewayClass", "Service", "ServiceEntry", NULL };

	for (int i = 0; kinds[i]; i++)
		if (!strcmp(s, kinds[i]))
			return NULL;
	return "targetRef kind must be Gateway, GatewayClass, Service or ServiceEntry";
}

static const char *tunnel_proto_rule(const char *s)
{
	return strcmp(s, "CONNECT") && strcmp(s, "POST") ? "tunnel protocol must be CONNECT or POST" : NULL;
}

/* Repeated names in a list of objects with a struct zm_cstr at @off. */
static void dup_names(struct zm_crd *r, const char *list, const void *v, size_t n, size_t stride,
		      size_t off, const char *field, const char *what)
{
	/* Small lists in practice; cap the quadratic scan for hostile input. */
	size_t lim = n < 2000 ? n : 2000;

	for (size_t i = 0; i < lim; i++) {
		const struct zm_cstr *a = (const void *)((const char *)v + i * stride + off);

		if (!a->v)
			continue;
		for (size_t j = 0; j < i; j++) {
			const struct zm_cstr *b = (const void *)((const char *)v + j * stride + off);
			char sub[96];

			if (b->v && !strcmp(a->v, b->v)) {
				snprintf(sub, sizeof(sub), "%s[%zu].%s", list, i, field);
				ERR(r, a->pos, sub, "duplicate %s \"%s\" (also at line %u)", what, a->v,
				    b->pos.line);
				break;
			}
		}
	}
}

/* ---- shared messages ------------------------------------------------------------- */

#define LABELS(n, m) MAP(n, m, E_STR(.scheck = zm_label_value_check), .kcheck = zm_label_key_check)

#define T struct zm_workload_selector
static const struct zm_cfield cs_wsel_f[] = { LABELS("matchLabels", match_labels), END };
#undef T
static SCHEMA(cs_wsel, "WorkloadSelector", struct zm_workload_selector, NULL);

#define T struct zm_policy_target_ref
static const struct zm_cfield cs_tref_f[] = {
	STR("group", group),
	STR("kind", kind, REQ, .scheck = target_kind_rule),
	STR("name", name, REQ, .scheck = zm_dns_subdomain_check),
	STR("namespace", ns, .scheck = zm_dns_label_check),
	END,
};
#undef T
static SCHEMA(cs_tref, "PolicyTargetReference", struct zm_policy_target_ref, NULL);

static void percent_check(struct zm_crd *r, void *obj)
{
	struct zm_percent *p = obj;

	/* `percentage: {}` is 0%, as proto3 reads it; only absence means 100. */
	if (!p->value.set)
		p->value.v = 0;
}

#define T struct zm_percent
static const struct zm_cfield cs_percent_f[] = {
	DBL("value", value, 0, 100, .has_def = true, .ddef = 100),
	END,
};
#undef T
static SCHEMA(cs_percent, "Percent", struct zm_percent, percent_check);

#define T struct zm_port_selector
static const struct zm_cfield cs_portsel_f[] = { INT("number", number, 1, 65535), END };
#undef T
static SCHEMA(cs_portsel, "PortSelector", struct zm_port_selector, NULL);

static int match_count(const struct zm_string_match *m)
{
	return (m->exact.v != NULL) + (m->prefix.v != NULL) + (m->regex.v != NULL);
}

static void smatch_check(struct zm_crd *r, void *obj)
{
	struct zm_string_match *m = obj;

	if (match_count(m) > 1)
		ERR(r, m->o.pos, NULL, "only one of exact, prefix or regex may be set");
	else if (match_count(m) == 0)
		ERR(r, m->o.pos, NULL, "one of exact, prefix or regex is required");
}

static void smatch_presence_check(struct zm_crd *r, void *obj)
{
	struct zm_string_match *m = obj;

	/* Header and query matches: an empty match tests presence. */
	if (match_count(m) > 1)
		ERR(r, m->o.pos, NULL, "only one of exact, prefix or regex may be set");
}

#define T struct zm_string_match
static const struct zm_cfield cs_smatch_f[] = {
	STR("exact", exact),
	STR("prefix", prefix),
	STR("regex", regex, .scheck = regex_rule),
	END,
};
#undef T
static SCHEMA(cs_smatch, "StringMatch", struct zm_string_match, smatch_check);
static const struct zm_cschema cs_smatch_presence = {
	.name = "StringMatch", .size = sizeof(struct zm_string_match), .fields = cs_smatch_f,
	.check = smatch_presence_check,
};

/* ---- VirtualService ------------------------------------------------------------------ */

#define T struct zm_destination
static const struct zm_cfield cs_dest_f[] = {
	STR("host", host, REQ, .scheck = dest_host),
	STR("subset", subset, .scheck = zm_dns_label_check),
	OBJ("port", port, cs_portsel),
	END,
};
#undef T
static SCHEMA(cs_dest, "Destination", struct zm_destination, NULL);

#define T struct zm_header_ops
static const struct zm_cfield cs_hops_f[] = {
	MAP("set", set, E_STR(), .kcheck = zm_header_name_check),
	MAP("add", add, E_STR(), .kcheck = zm_header_name_check),
	LIST("remove", remove, E_STR(.scheck = zm_header_name_check)),
	END,
};
#undef T
static SCHEMA(cs_hops, "HeaderOperations", struct zm_header_ops, NULL);

#define T struct zm_headers
static const struct zm_cfield cs_headers_f[] = {
	OBJ("request", request, cs_hops),
	OBJ("response", response, cs_hops),
	END,
};
#undef T
static SCHEMA(cs_headers, "Headers", struct zm_headers, NULL);

#define MATCH_MAP(n, m, kc) MAP(n, m, E_OBJ(cs_smatch_presence), .kcheck = (kc))

#define T struct zm_http_match
static const struct zm_cfield cs_hmatch_f[] = {
	STR("name", name),
	OBJ("uri", uri, cs_smatch),
	OBJ("scheme", scheme, cs_smatch),
	OBJ("method", method, cs_smatch),
	OBJ("authority", authority, cs_smatch),
	MATCH_MAP("headers", headers, zm_header_name_check),
	INT("port", port, 1, 65535),
	LABELS("sourceLabels", source_labels),
	LIST("gateways", gateways, E_STR(.scheck = zm_gateway_ref_check)),
	MATCH_MAP("queryParams", query_params, nonempty_str),
	BOOL("ignoreUriCase", ignore_uri_case),
	MATCH_MAP("withoutHeaders", without_headers, zm_header_name_check),
	STR("sourceNamespace", source_namespace, .scheck = zm_dns_label_check),
	STR("statPrefix", stat_prefix),
	END,
};
#undef T
static SCHEMA(cs_hmatch, "HTTPMatchRequest", struct zm_http_match, NULL);

#define T struct zm_http_route_dest
static const struct zm_cfield cs_hrdest_f[] = {
	OBJ("destination", destination, cs_dest, REQ),
	INT("weight", weight, 0, 100),
	OBJ("headers", headers, cs_headers),
	END,
};
#undef T
static SCHEMA(cs_hrdest, "HTTPRouteDestination", struct zm_http_route_dest, NULL);

static const char *const redirect_port_names[] = { "FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT", NULL };

static void redirect_check(struct zm_crd *r, void *obj)
{
	struct zm_http_redirect *x = obj;

	if (!x->uri.v && !x->authority.v && !x->scheme.v && !x->port.set && !x->derive_port.set)
		ERR(r, x->o.pos, NULL, "redirect must specify uri, authority, scheme, port or derivePort");
	if (x->port.set && x->derive_port.set)
		ERR(r, x->derive_port.pos, "derivePort", "only one of port or derivePort may be set");
}

#define T struct zm_http_redirect
static const struct zm_cfield cs_redirect_f[] = {
	STR("uri", uri),
	STR("authority", authority),
	INT("port", port, 1, 65535),
	ENUM("derivePort", derive_port, redirect_port_names),
	STR("scheme", scheme),
	INT("redirectCode", redirect_code, 300, 399, DEF(301)),
	END,
};
#undef T
static SCHEMA(cs_redirect, "HTTPRedirect", struct zm_http_redirect, redirect_check);

static void body_check(struct zm_crd *r, void *obj)
{
	struct zm_http_body *b = obj;

	if (b->string.v && b->bytes.v)
		ERR(r, b->bytes.pos, "bytes", "only one of string or bytes may be set");
}

#define T struct zm_http_body
static const struct zm_cfield cs_body_f[] = {
	STR("string", string),
	STR("bytes", bytes, .scheck = b64_rule),
	END,
};
#undef T
static SCHEMA(cs_body, "HTTPBody", struct zm_http_body, body_check);

#define T struct zm_http_direct_response
static const struct zm_cfield cs_direct_f[] = {
	INT("status", status, 200, 599, REQ),
	OBJ("body", body, cs_body),
	END,
};
#undef T
static SCHEMA(cs_direct, "HTTPDirectResponse", struct zm_http_direct_response, NULL);

#define T struct zm_delegate
static const struct zm_cfield cs_delegate_f[] = {
	STR("name", name, REQ, .scheck = zm_dns_subdomain_check),
	STR("namespace", ns, .scheck = zm_dns_label_check),
	END,
};
#undef T
static SCHEMA(cs_delegate, "Delegate", struct zm_delegate, NULL);

#define T struct zm_regex_rewrite
static const struct zm_cfield cs_rxrw_f[] = {
	STR("match", match, REQ, .scheck = regex_rule),
	STR("rewrite", rewrite, REQ),
	END,
};
#undef T
static SCHEMA(cs_rxrw, "RegexRewrite", struct zm_regex_rewrite, NULL);

static void rewrite_check(struct zm_crd *r, void *obj)
{
	struct zm_http_rewrite *x = obj;

	if (x->uri.v && x->uri_regex_rewrite.o.set)
		ERR(r, x->uri_regex_rewrite.o.pos, "uriRegexRewrite",
		    "only one of uri or uriRegexRewrite may be set");
	if (!x->uri.v && !x->authority.v && !x->uri_regex_rewrite.o.set)
		ERR(r, x->o.pos, NULL, "rewrite must specify uri, authority or uriRegexRewrite");
}

#define T struct zm_http_rewrite
static const struct zm_cfield cs_rewrite_f[] = {
	STR("uri", uri),
	STR("authority", authority),
	OBJ("uriRegexRewrite", uri_regex_rewrite, cs_rxrw),
	END,
};
#undef T
static SCHEMA(cs_rewrite, "HTTPRewrite", struct zm_http_rewrite, rewrite_check);

static void retry_check(struct zm_crd *r, void *obj)
{
	struct zm_http_retry *h = obj;

	if (h->retry_remote_localities.v)
		ERR(r, h->retry_remote_localities.pos, "retryRemoteLocalities",
		    "not supported by zmesh (no locality-aware routing)");
}

#define T struct zm_http_retry
static const struct zm_cfield cs_retry_f[] = {
	INT("attempts", attempts, 0, I32MAX, DEF(2)),
	DUR("perTryTimeout", per_try_timeout),
	STR("retryOn", retry_on, .scheck = retry_on_rule),
	BOOL("retryRemoteLocalities", retry_remote_localities),
	BOOL("retryIgnorePreviousHosts", retry_ignore_previous_hosts, DEF(1)),
	DUR("backoff", backoff, DEF(25 * ZM_NS_PER_MS)),
	END,
};
#undef T
static SCHEMA(cs_retry, "HTTPRetry", struct zm_http_retry, retry_check);

static const char *const preflight_names[] = { "UNSPECIFIED", "FORWARD", "IGNORE", NULL };

#define T struct zm_cors_policy
static const struct zm_cfield cs_cors_f[] = {
	LIST("allowOrigin", allow_origin, E_STR(.scheck = nonempty_str)),
	LIST("allowOrigins", allow_origins, E_OBJ(cs_smatch)),
	LIST("allowMethods", allow_methods, E_STR(.scheck = method_rule)),
	LIST("allowHeaders", allow_headers, E_STR(.scheck = cors_header_rule)),
	LIST("exposeHeaders", expose_headers, E_STR(.scheck = cors_header_rule)),
	DUR("maxAge", max_age),
	BOOL("allowCredentials", allow_credentials),
	ENUM("unmatchedPreflights", unmatched_preflights, preflight_names),
	END,
};
#undef T
static SCHEMA(cs_cors, "CorsPolicy", struct zm_cors_policy, NULL);

static void delay_check(struct zm_crd *r, void *obj)
{
	struct zm_fault_delay *d = obj;

	if (d->exponential_delay.set)
		ERR(r, d->exponential_delay.pos, "exponentialDelay",
		    "exponentialDelay is not supported (use fixedDelay)");
	else if (!d->fixed_delay.set)
		ERR(r, d->o.pos, "fixedDelay", "required field is missing");
	if (d->percent.set && d->percentage.o.set)
		ERR(r, d->percent.pos, "percent", "only one of percent or percentage may be set");
	if (d->percent.set && !d->percentage.o.set)
		d->percentage.value.v = (double)d->percent.v;
}

#define T struct zm_fault_delay
static const struct zm_cfield cs_delay_f[] = {
	DUR("fixedDelay", fixed_delay),
	DUR("exponentialDelay", exponential_delay),
	INT("percent", percent, 0, 100),
	OBJ("percentage", percentage, cs_percent),
	END,
};
#undef T
static SCHEMA(cs_delay, "HTTPFaultInjection.Delay", struct zm_fault_delay, delay_check);

static const char *const grpc_names[] = {
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
	"UNAUTHENTICATED",
};

int zm_grpc_status_code(const char *name)
{
	for (size_t i = 0; i < sizeof(grpc_names) / sizeof(grpc_names[0]); i++)
		if (name && !strcmp(name, grpc_names[i]))
			return (int)i;
	return -1;
}

static void abort_check(struct zm_crd *r, void *obj)
{
	struct zm_fault_abort *a = obj;
	int n = a->http_status.set + (a->grpc_status.v != NULL) + (a->http2_error.v != NULL);

	if (n == 0)
		ERR(r, a->o.pos, "httpStatus", "one of httpStatus, grpcStatus or http2Error is required");
	else if (n > 1)
		ERR(r, a->o.pos, NULL, "only one of httpStatus, grpcStatus or http2Error may be set");
	else if (a->http2_error.v)
		ERR(r, a->http2_error.pos, "http2Error", "%s: not supported by zmesh (use httpStatus)",
		    a->http2_error.v);
	else if (a->grpc_status.v && zm_grpc_status_code(a->grpc_status.v) < 0)
		ERR(r, a->grpc_status.pos, "grpcStatus",
		    "%s: not a gRPC status code name (e.g. UNAVAILABLE, INTERNAL, DEADLINE_EXCEEDED)",
		    a->grpc_status.v);
}

#define T struct zm_fault_abort
static const struct zm_cfield cs_abort_f[] = {
	INT("httpStatus", http_status, 200, 599),
	STR("grpcStatus", grpc_status, .scheck = nonempty_str),
	STR("http2Error", http2_error, .scheck = nonempty_str),
	OBJ("percentage", percentage, cs_percent),
	END,
};
#undef T
static SCHEMA(cs_abort, "HTTPFaultInjection.Abort", struct zm_fault_abort, abort_check);

static void fault_check(struct zm_crd *r, void *obj)
{
	struct zm_http_fault *f = obj;

	if (!f->delay.o.set && !f->abort.o.set)
		ERR(r, f->o.pos, NULL, "fault injection must have at least one of delay or abort");
}

#define T struct zm_http_fault
static const struct zm_cfield cs_fault_f[] = {
	OBJ("delay", delay, cs_delay),
	OBJ("abort", abort, cs_abort),
	END,
};
#undef T
static SCHEMA(cs_fault, "HTTPFaultInjection", struct zm_http_fault, fault_check);

#define T struct zm_http_mirror
static const struct zm_cfield cs_mirror_f[] = {
	OBJ("destination", destination, cs_dest, REQ),
	OBJ("percentage", percentage, cs_percent),
	END,
};
#undef T
static SCHEMA(cs_mirror, "HTTPMirrorPolicy", struct zm_http_mirror, NULL);

/*
 * Weights: with more than one destination they must sum to 100 (zmesh keeps
 * the rule Istio had before it started normalising weights: a split that
 * does not add up is almost always a typo). A lone destination gets 100.
 */
static void check_weights(struct zm_crd *r, const char *list, void *v, size_t n, size_t stride,
			  size_t woff, struct zm_cpos listpos)
{
	int64_t sum = 0;
	struct zm_cint *last = NULL;
	struct zm_cobj *last_item = NULL;
	char sub[64];

	if (n == 0)
		return;
	if (n == 1) {
		struct zm_cint *w = (void *)((char *)v + woff);

		if (!w->set)
			w->v = 100;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct zm_cint *w = (void *)((char *)v + i * stride + woff);

		sum += w->set ? w->v : 0;
		last_item = (void *)((char *)v + i * stride);
		if (w->set)
			last = w;
	}
	(void)listpos;
	if (sum == 100)
		return;
	if (last) {
		size_t i = (size_t)((char *)last - (char *)v - woff) / stride;

		snprintf(sub, sizeof(sub), "%s[%zu].weight", list, i);
		ERR(r, last->pos, sub, "weights sum to %lld, want 100", (long long)sum);
	} else {
		snprintf(sub, sizeof(sub), "%s[%zu].weight", list, n - 1);
		ERR(r, last_item->pos, sub, "weights sum to 0, want 100 (set a weight on each destination)");
	}
}

static void http_route_check(struct zm_crd *r, void *obj)
{
	struct zm_http_route *h = obj;
	bool route = h->route.n > 0;

	if (route && h->redirect.o.set)
		ERR(r, h->redirect.o.pos, "redirect", "HTTP route cannot contain both route and redirect");
	if (h->direct_response.o.set && (route || h->redirect.o.set))
		ERR(r, h->direct_response.o.pos, "directResponse",
		    "directResponse cannot be combined with route or redirect");
	if (h->delegate.o.set && (route || h->redirect.o.set || h->direct_response.o.set))
		ERR(r, h->delegate.o.pos, "delegate",
		    "delegate cannot be combined with route, redirect or directResponse");
	if (!route && !h->redirect.o.set && !h->direct_response.o.set && !h->delegate.o.set)
		ERR(r, h->o.pos, "route", "HTTP route needs one of route, redirect, directResponse or delegate");
	else if (h->delegate.o.set && !route && !h->redirect.o.set && !h->direct_response.o.set)
		ERR(r, h->delegate.o.pos, "delegate",
		    "delegate virtual services are not supported by zmesh (write the routes in this one)");
	if (h->redirect.o.set && h->rewrite.o.set)
		ERR(r, h->rewrite.o.pos, "rewrite", "HTTP route rule cannot contain both rewrite and redirect");
	if (h->mirror.o.set && h->mirrors.n)
		ERR(r, h->mirrors.pos, "mirrors", "only one of mirror or mirrors may be set");
	if (h->mirrors.n > ZM_MAX_MIRRORS)
		ERR(r, h->mirrors.pos, "mirrors", "at most %d mirrors are supported by zmesh", ZM_MAX_MIRRORS);
	if (h->mirror_percent.set && h->mirror_percentage.o.set)
		ERR(r, h->mirror_percent.pos, "mirrorPercent",
		    "only one of mirrorPercent or mirrorPercentage may be set");
	if ((h->mirror_percent.set || h->mirror_percentage.o.set) && !h->mirror.o.set)
		ERR(r, h->mirror_percentage.o.set ? h->mirror_percentage.o.pos : h->mirror_percent.pos,
		    h->mirror_percentage.o.set ? "mirrorPercentage" : "mirrorPercent",
		    "mirror percentage needs mirror");
	if (h->mirror_percent.set && !h->mirror_percentage.o.set)
		h->mirror_percentage.value.v = (double)h->mirror_percent.v;
	check_weights(r, "route", h->route.v, h->route.n, sizeof(*h->route.v),
		      offsetof(struct zm_http_route_dest, weight), h->route.pos);
}

#define T struct zm_http_route
static const struct zm_cfield cs_hroute_f[] = {
	STR("name", name),
	LIST("match", match, E_OBJ(cs_hmatch)),
	LIST("route", route, E_OBJ(cs_hrdest)),
	OBJ("redirect", redirect, cs_redirect),
	OBJ("directResponse", direct_response, cs_direct),
	OBJ("delegate", delegate, cs_delegate),
	OBJ("rewrite", rewrite, cs_rewrite),
	DUR("timeout", timeout, .flags = ZM_CF_ZERO_OK),	/* 0s: no timeout (Istio) */
	OBJ("retries", retries, cs_retry),
	OBJ("fault", fault, cs_fault),
	OBJ("mirror", mirror, cs_dest),
	INT("mirrorPercent", mirror_percent, 0, 100),
	OBJ("mirrorPercentage", mirror_percentage, cs_percent),
	LIST("mirrors", mirrors, E_OBJ(cs_mirror)),
	OBJ("corsPolicy", cors_policy, cs_cors),
	OBJ("headers", headers, cs_headers),
	END,
};
#undef T
static SCHEMA(cs_hroute, "HTTPRoute", struct zm_http_route, http_route_check);

#define T struct zm_l4_match
static const struct zm_cfield cs_l4match_f[] = {
	LIST("destinationSubnets", destination_subnets, E_STR(.scheck = zm_cidr_check)),
	INT("port", port, 1, 65535),
	LABELS("sourceLabels", source_labels),
	LIST("gateways", gateways, E_STR(.scheck = zm_gateway_ref_check)),
	STR("sourceNamespace", source_namespace, .scheck = zm_dns_label_check),
	END,
};
#undef T
static SCHEMA(cs_l4match, "L4MatchAttributes", struct zm_l4_match, NULL);

#define T struct zm_tls_match
static const struct zm_cfield cs_tlsmatch_f[] = {
	LIST("sniHosts", sni_hosts, E_STR(.scheck = host_any), REQ_NONEMPTY),
	LIST("destinationSubnets", destination_subnets, E_STR(.scheck = zm_cidr_check)),
	INT("port", port, 1, 65535),
	LABELS("sourceLabels", source_labels),
	LIST("gateways", gateways, E_STR(.scheck = zm_gateway_ref_check)),
	STR("sourceNamespace", source_namespace, .scheck = zm_dns_label_check),
	END,
};
#undef T
static SCHEMA(cs_tlsmatch, "TLSMatchAttributes", struct zm_tls_match, NULL);

#define T struct zm_route_dest
static const struct zm_cfield cs_rdest_f[] = {
	OBJ("destination", destination, cs_dest, REQ),
	INT("weight", weight, 0, 100),
	END,
};
#undef T
static SCHEMA(cs_rdest, "RouteDestination", struct zm_route_dest, NULL);

static void tls_route_check(struct zm_crd *r, void *obj)
{
	struct zm_tls_route *t = obj;

	check_weights(r, "route", t->route.v, t->route.n, sizeof(*t->route.v),
		      offsetof(struct zm_route_dest, weight), t->route.pos);
}

static void tcp_route_check(struct zm_crd *r, void *obj)
{
	struct zm_tcp_route *t = obj;

	check_weights(r, "route", t->route.v, t->route.n, sizeof(*t->route.v),
		      offsetof(struct zm_route_dest, weight), t->route.pos);
}

#define T struct zm_tls_route
static const struct zm_cfield cs_tlsroute_f[] = {
	LIST("match", match, E_OBJ(cs_tlsmatch), REQ_NONEMPTY),
	LIST("route", route, E_OBJ(cs_rdest), REQ_NONEMPTY),
	END,
};
#undef T
static SCHEMA(cs_tlsroute, "TLSRoute", struct zm_tls_route, tls_route_check);

#define T struct zm_tcp_route
static const struct zm_cfield cs_tcproute_f[] = {
	LIST("match", match, E_OBJ(cs_l4match)),
	LIST("route", route, E_OBJ(cs_rdest), REQ_NONEMPTY),
	END,
};
#undef T
static SCHEMA(cs_tcproute, "TCPRoute", struct zm_tcp_route, tcp_route_check);

static bool has_mesh(const zm_cstrs *gws)
{
	if (gws->n == 0)
		return true;	/* no gateways: the mesh */
	for (size_t i = 0; i < gws->n; i++)
		if (gws->v[i].v && !strcmp(gws->v[i].v, "mesh"))
			return true;
	return false;
}

static void vs_check(struct zm_crd *r, void *obj)
{
	struct zm_virtual_service *vs = obj;

	if (vs->hosts.n == 0) {
		/* No hosts: a delegate VirtualService (Istio's rule). */
		if (vs->gateways.n)
			ERR(r, vs->gateways.pos, "gateways",
			    "a delegate virtual service (no hosts) must not have gateways");
		for (size_t i = 0; i < vs->http.n; i++)
			if (vs->http.v[i].delegate.o.set) {
				char sub[48];

				snprintf(sub, sizeof(sub), "http[%zu].delegate", i);
				ERR(r, vs->http.v[i].delegate.o.pos, sub,
				    "a delegate virtual service cannot delegate again");
			}
	}
	for (size_t i = 0; i < vs->hosts.n; i++) {
		if (vs->hosts.v[i].v && !strcmp(vs->hosts.v[i].v, "*") && has_mesh(&vs->gateways)) {
			char sub[32];

			snprintf(sub, sizeof(sub), "hosts[%zu]", i);
			ERR(r, vs->hosts.v[i].pos, sub,
			    "wildcard host * is not allowed for virtual services bound to the mesh gateway");
		}
	}
	if (!vs->http.n && !vs->tcp.n && !vs->tls.n)
		ERR(r, vs->o.pos, NULL, "http, tcp or tls must be provided in virtual service");
}

#define T struct zm_virtual_service
static const struct zm_cfield zm_cs_virtual_service_f[] = {
	LIST("hosts", hosts, E_STR(.scheck = host_any)),
	LIST("gateways", gateways, E_STR(.scheck = zm_gateway_ref_check)),
	LIST("http", http, E_OBJ(cs_hroute)),
	LIST("tls", tls, E_OBJ(cs_tlsroute)),
	LIST("tcp", tcp, E_OBJ(cs_tcproute)),
	LIST("exportTo", export_to, E_STR(.scheck = zm_export_to_check)),
	END,
};
#undef T
SCHEMA(zm_cs_virtual_service, "VirtualService", struct zm_virtual_service, vs_check);

/* ---- DestinationRule --------------------------------------------------------------- */

static const char *const lb_names[] = {
	"UNSPECIFIED", "LEAST_CONN", "RANDOM", "PASSTHROUGH", "ROUND_ROBIN", "LEAST_REQUEST", NULL,
};
static const char *const h2_names[] = { "DEFAULT", "DO_NOT_UPGRADE", "UPGRADE", NULL };
static const char *const ctls_names[] = { "DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL", NULL };
static const char *const pp_names[] = { "V1", "V2", NULL };

#define T struct zm_cookie_attr
static const struct zm_cfield cs_cattr_f[] = {
	STR("name", name, REQ, .scheck = nonempty_str),
	STR("value", value),
	END,
};
#undef T
static SCHEMA(cs_cattr, "HTTPCookie.Attribute", struct zm_cookie_attr, NULL);

#define T struct zm_http_cookie
static const struct zm_cfield cs_cookie_f[] = {
	STR("name", name, REQ, .scheck = nonempty_str),
	STR("path", path),
	FLD("ttl", ZM_CT_DUR, ttl, .flags = ZM_CF_ZERO_OK),
	LIST("attributes", attributes, E_OBJ(cs_cattr)),
	END,
};
#undef T
static SCHEMA(cs_cookie, "HTTPCookie", struct zm_http_cookie, NULL);

#define T struct zm_ring_hash
static const struct zm_cfield cs_ring_f[] = { INT("minimumRingSize", minimum_ring_size, 0, INT64_MAX), END };
#undef T
static SCHEMA(cs_ring, "RingHash", struct zm_ring_hash, NULL);

#define T struct zm_maglev
static const struct zm_cfield cs_maglev_f[] = { INT("tableSize", table_size, 0, INT64_MAX), END };
#undef T
static SCHEMA(cs_maglev, "MagLev", struct zm_maglev, NULL);

static void chash_check(struct zm_crd *r, void *obj)
{
	struct zm_consistent_hash *c = obj;
	int keys = (c->http_header_name.v != NULL) + c->http_cookie.o.set +
		   (c->use_source_ip.set && c->use_source_ip.v) +
		   (c->http_query_parameter_name.v != NULL);

	if (keys != 1)
		ERR(r, c->o.pos, NULL,
		    "exactly one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName is required");
	if (c->ring_hash.o.set && c->maglev.o.set)
		ERR(r, c->maglev.o.pos, "maglev", "only one of ringHash or maglev may be set");
}

#define T struct zm_consistent_hash
static const struct zm_cfield cs_chash_f[] = {
	STR("httpHeaderName", http_header_name, .scheck = zm_header_name_check),
	OBJ("httpCookie", http_cookie, cs_cookie),
	BOOL("useSourceIp", use_source_ip),
	STR("httpQueryParameterName", http_query_parameter_name, .scheck = nonempty_str),
	OBJ("ringHash", ring_hash, cs_ring),
	OBJ("maglev", maglev, cs_maglev),
	INT("minimumRingSize", minimum_ring_size, 0, INT64_MAX),
	END,
};
#undef T
static SCHEMA(cs_chash, "ConsistentHashLB", struct zm_consistent_hash, chash_check);

#define T struct zm_locality_distribute
static const struct zm_cfield cs_ldist_f[] = {
	STR("from", from),
	MAP("to", to, E_INT(0, U32MAX)),
	END,
};
#undef T
static SCHEMA(cs_ldist, "LocalityLoadBalancerSetting.Distribute", struct zm_locality_distribute, NULL);

#define T struct zm_locality_failover
static const struct zm_cfield cs_lfail_f[] = { STR("from", from), STR("to", to), END };
#undef T
static SCHEMA(cs_lfail, "LocalityLoadBalancerSetting.Failover", struct zm_locality_failover, NULL);

#define T struct zm_locality_lb
static const struct zm_cfield cs_llb_f[] = {
	LIST("distribute", distribute, E_OBJ(cs_ldist)),
	LIST("failover", failover, E_OBJ(cs_lfail)),
	LIST("failoverPriority", failover_priority, E_STR(.scheck = nonempty_str)),
	BOOL("enabled", enabled),
	END,
};
#undef T
static SCHEMA(cs_llb, "LocalityLoadBalancerSetting", struct zm_locality_lb, NULL);

#define T struct zm_warmup
static const struct zm_cfield cs_warmup_f[] = {
	DUR("duration", duration, REQ),
	DBL("minimumPercent", minimum_percent, 0, 100, .has_def = true, .ddef = 10),
	DBL("aggression", aggression, 1, 1e9, .has_def = true, .ddef = 1),
	END,
};
#undef T
static SCHEMA(cs_warmup, "WarmupConfiguration", struct zm_warmup, NULL);

static void lb_check(struct zm_crd *r, void *obj)
{
	struct zm_load_balancer *lb = obj;

	if (lb->simple.set && lb->consistent_hash.o.set)
		ERR(r, lb->consistent_hash.o.pos, "consistentHash",
		    "only one of simple or consistentHash may be set");
	if (lb->warmup_duration_secs.set && lb->warmup.o.set)
		ERR(r, lb->warmup.o.pos, "warmup", "only one of warmupDurationSecs or warmup may be set");
	/* Not done by zmesh: refused rather than ignored. localityLbSetting
	 * {enabled: false} asks for what zmesh does anyway. */
	if (lb->locality_lb_setting.o.set &&
	    !(lb->locality_lb_setting.enabled.set && !lb->locality_lb_setting.enabled.v))
		ERR(r, lb->locality_lb_setting.o.pos, "localityLbSetting",
		    "locality load balancing is not supported by zmesh (every endpoint is one locality)");
	if (lb->warmup_duration_secs.set)
		ERR(r, lb->warmup_duration_secs.pos, "warmupDurationSecs", "slow start is not supported by zmesh");
	if (lb->warmup.o.set)
		ERR(r, lb->warmup.o.pos, "warmup", "slow start is not supported by zmesh");
}

#define T struct zm_load_balancer
static const struct zm_cfield cs_lb_f[] = {
	ENUM("simple", simple, lb_names, DEF(ZM_LB_LEAST_REQUEST)),
	OBJ("consistentHash", consistent_hash, cs_chash),
	OBJ("localityLbSetting", locality_lb_setting, cs_llb),
	DUR("warmupDurationSecs", warmup_duration_secs),
	OBJ("warmup", warmup, cs_warmup),
	END,
};
#undef T
static SCHEMA(cs_lb, "LoadBalancerSettings", struct zm_load_balancer, lb_check);

#define T struct zm_tcp_keepalive
static const struct zm_cfield cs_keepalive_f[] = {
	INT("probes", probes, 0, U32MAX),
	DUR("time", time),
	DUR("interval", interval),
	END,
};
#undef T
static SCHEMA(cs_keepalive, "ConnectionPoolSettings.TCPSettings.TcpKeepalive", struct zm_tcp_keepalive, NULL);

#define T struct zm_tcp_pool
static const struct zm_cfield cs_tcppool_f[] = {
	INT("maxConnections", max_connections, 0, I32MAX, DEF(U32MAX)),
	DUR("connectTimeout", connect_timeout, DEF(10 * ZM_NS_PER_S)),
	OBJ("tcpKeepalive", tcp_keepalive, cs_keepalive),
	DUR("maxConnectionDuration", max_connection_duration),
	DUR("idleTimeout", idle_timeout),
	END,
};
#undef T
static SCHEMA(cs_tcppool, "ConnectionPoolSettings.TCPSettings", struct zm_tcp_pool, NULL);

#define T struct zm_http_pool
static const struct zm_cfield cs_httppool_f[] = {
	INT("http1MaxPendingRequests", http1_max_pending_requests, 0, I32MAX, DEF(U32MAX)),
	INT("http2MaxRequests", http2_max_requests, 0, I32MAX, DEF(U32MAX)),
	INT("maxRequestsPerConnection", max_requests_per_connection, 0, I32MAX),
	INT("maxRetries", max_retries, 0, I32MAX, DEF(U32MAX)),
	DUR("idleTimeout", idle_timeout, DEF(3600 * ZM_NS_PER_S)),
	ENUM("h2UpgradePolicy", h2_upgrade_policy, h2_names),
	BOOL("useClientProtocol", use_client_protocol),
	INT("maxConcurrentStreams", max_concurrent_streams, 0, I32MAX),
	END,
};
#undef T
static SCHEMA(cs_httppool, "ConnectionPoolSettings.HTTPSettings", struct zm_http_pool, NULL);

static void pool_check(struct zm_crd *r, void *obj)
{
	struct zm_connection_pool *p = obj;

	if (!p->tcp.o.set && !p->http.o.set)
		ERR(r, p->o.pos, NULL, "connection pool must have at least one of tcp or http");
}

#define T struct zm_connection_pool
static const struct zm_cfield cs_pool_f[] = {
	OBJ("tcp", tcp, cs_tcppool),
	OBJ("http", http, cs_httppool),
	END,
};
#undef T
static SCHEMA(cs_pool, "ConnectionPoolSettings", struct zm_connection_pool, pool_check);

#define T struct zm_outlier_detection
static const struct zm_cfield cs_outlier_f[] = {
	BOOL("splitExternalLocalOriginErrors", split_external_local_origin_errors),
	INT("consecutiveLocalOriginFailures", consecutive_local_origin_failures, 0, U32MAX),
	INT("consecutiveGatewayErrors", consecutive_gateway_errors, 0, U32MAX),
	INT("consecutive5xxErrors", consecutive_5xx_errors, 0, U32MAX, DEF(5)),
	DUR("interval", interval, DEF(10 * ZM_NS_PER_S)),
	DUR("baseEjectionTime", base_ejection_time, DEF(30 * ZM_NS_PER_S)),
	INT("maxEjectionPercent", max_ejection_percent, 0, 100, DEF(10)),
	INT("minHealthPercent", min_health_percent, 0, 100),
	INT("consecutiveErrors", consecutive_errors, 0, I32MAX),
	END,
};
#undef T
static SCHEMA(cs_outlier, "OutlierDetection", struct zm_outlier_detection, NULL);

static void ctls_check(struct zm_crd *r, void *obj)
{
	struct zm_client_tls *t = obj;
	bool certs = t->client_certificate.v || t->private_key.v || t->ca_certificates.v ||
		     t->credential_name.v;

	/* Fail closed: the waypoint does not originate TLS, and sending
	 * plaintext where TLS was asked for is not an option. */
	if (t->mode.v == ZM_CTLS_SIMPLE || t->mode.v == ZM_CTLS_MUTUAL) {
		ERR(r, t->mode.pos, "mode", "%s: TLS origination is not supported by zmesh",
		    ctls_names[t->mode.v]);
		return;
	}
	/* ISTIO_MUTUAL is HBONE: the peer is checked against the destination's
	 * mesh identity, never against names given here. */
	if (t->subject_alt_names.n)
		ERR(r, t->subject_alt_names.pos, "subjectAltNames",
		    "not supported by zmesh (HBONE verifies the destination's mesh identity)");
	if (t->sni.v)
		ERR(r, t->sni.pos, "sni", "not supported by zmesh (no TLS origination)");
	if (t->insecure_skip_verify.v)
		ERR(r, t->insecure_skip_verify.pos, "insecureSkipVerify",
		    "not supported by zmesh (HBONE always verifies)");
	if (t->ca_crl.v)
		ERR(r, t->ca_crl.pos, "caCrl", "not supported by zmesh (no TLS origination)");
	if (t->mode.v == ZM_CTLS_ISTIO_MUTUAL && certs)
		ERR(r, t->mode.pos, "mode",
		    "mode ISTIO_MUTUAL uses the mesh certificates: do not set clientCertificate, "
		    "privateKey, caCertificates or credentialName");
	if (t->mode.v == ZM_CTLS_DISABLE && t->mode.set && certs)
		ERR(r, t->mode.pos, "mode", "mode DISABLE does not use certificates");
}

#define T struct zm_client_tls
static const struct zm_cfield cs_ctls_f[] = {
	ENUM("mode", mode, ctls_names),
	STR("clientCertificate", client_certificate, .scheck = nonempty_str),
	STR("privateKey", private_key, .scheck = nonempty_str),
	STR("caCertificates", ca_certificates, .scheck = nonempty_str),
	STR("credentialName", credential_name, .scheck = nonempty_str),
	LIST("subjectAltNames", subject_alt_names, E_STR(.scheck = nonempty_str)),
	STR("sni", sni),
	BOOL("insecureSkipVerify", insecure_skip_verify),
	STR("caCrl", ca_crl),
	END,
};
#undef T
static SCHEMA(cs_ctls, "ClientTLSSettings", struct zm_client_tls, ctls_check);

#define T struct zm_port_traffic_policy
static const struct zm_cfield cs_ptp_f[] = {
	OBJ("port", port, cs_portsel, REQ),
	OBJ("loadBalancer", load_balancer, cs_lb),
	OBJ("connectionPool", connection_pool, cs_pool),
	OBJ("outlierDetection", outlier_detection, cs_outlier),
	OBJ("tls", tls, cs_ctls),
	END,
};
#undef T
static SCHEMA(cs_ptp, "TrafficPolicy.PortTrafficPolicy", struct zm_port_traffic_policy, NULL);

#define T struct zm_tunnel_settings
static const struct zm_cfield cs_tunnel_f[] = {
	STR("protocol", protocol, .scheck = tunnel_proto_rule),
	STR("targetHost", target_host, REQ, .scheck = host_no_star),
	INT("targetPort", target_port, 1, 65535, REQ),
	END,
};
#undef T
static SCHEMA(cs_tunnel, "TrafficPolicy.TunnelSettings", struct zm_tunnel_settings, NULL);

#define T struct zm_proxy_protocol
static const struct zm_cfield cs_pp_f[] = { ENUM("version", version, pp_names), END };
#undef T
static SCHEMA(cs_pp, "TrafficPolicy.ProxyProtocol", struct zm_proxy_protocol, NULL);

#define T struct zm_retry_budget
static const struct zm_cfield cs_rbudget_f[] = {
	DBL("percent", percent, 0, 100),
	INT("minRetryConcurrency", min_retry_concurrency, 0, U32MAX),
	END,
};
#undef T
static SCHEMA(cs_rbudget, "TrafficPolicy.RetryBudget", struct zm_retry_budget, NULL);

static void tp_check(struct zm_crd *r, void *obj)
{
	struct zm_traffic_policy *tp = obj;
	size_t n = tp->port_level_settings.n < 2000 ? tp->port_level_settings.n : 2000;

	if (!tp->load_balancer.o.set && !tp->connection_pool.o.set && !tp->outlier_detection.o.set &&
	    !tp->tls.o.set && !tp->port_level_settings.n && !tp->tunnel.o.set &&
	    !tp->proxy_protocol.o.set && !tp->retry_budget.o.set)
		ERR(r, tp->o.pos, NULL, "traffic policy must have at least one field");
	if (tp->tunnel.o.set)
		ERR(r, tp->tunnel.o.pos, "tunnel", "not supported by zmesh (HBONE is its tunnel)");
	if (tp->proxy_protocol.o.set)
		ERR(r, tp->proxy_protocol.o.pos, "proxyProtocol", "not supported by zmesh");
	for (size_t i = 0; i < n; i++) {
		const struct zm_port_selector *a = &tp->port_level_settings.v[i].port;

		if (!a->number.set) {	/* it would apply to no port */
			char sub[64];

			snprintf(sub, sizeof(sub), "portLevelSettings[%zu].port.number", i);
			ERR(r, a->o.pos, sub, "required field is missing");
			continue;
		}
		for (size_t j = 0; j < i; j++) {
			char sub[64];

			if (a->number.set && a->number.v == tp->port_level_settings.v[j].port.number.v) {
				snprintf(sub, sizeof(sub), "portLevelSettings[%zu].port.number", i);
				ERR(r, a->number.pos, sub, "duplicate port %lld in portLevelSettings",
				    (long long)a->number.v);
				break;
			}
		}
	}
}

#define T struct zm_traffic_policy
static const struct zm_cfield cs_tp_f[] = {
	OBJ("loadBalancer", load_balancer, cs_lb),
	OBJ("connectionPool", connection_pool, cs_pool),
	OBJ("outlierDetection", outlier_detection, cs_outlier),
	OBJ("tls", tls, cs_ctls),
	LIST("portLevelSettings", port_level_settings, E_OBJ(cs_ptp)),
	OBJ("tunnel", tunnel, cs_tunnel),
	OBJ("proxyProtocol", proxy_protocol, cs_pp),
	OBJ("retryBudget", retry_budget, cs_rbudget),
	END,
};
#undef T
static SCHEMA(cs_tp, "TrafficPolicy", struct zm_traffic_policy, tp_check);

#define T struct zm_subset
static const struct zm_cfield cs_subset_f[] = {
	STR("name", name, REQ, .scheck = zm_dns_label_check),
	LABELS("labels", labels),
	OBJ("trafficPolicy", traffic_policy, cs_tp),
	END,
};
#undef T
static SCHEMA(cs_subset, "Subset", struct zm_subset, NULL);

static void dr_check(struct zm_crd *r, void *obj)
{
	struct zm_destination_rule *dr = obj;

	dup_names(r, "subsets", dr->subsets.v, dr->subsets.n, sizeof(*dr->subsets.v),
		  offsetof(struct zm_subset, name), "name", "subset name");
}

#define T struct zm_destination_rule
static const struct zm_cfield zm_cs_destination_rule_f[] = {
	STR("host", host, REQ, .scheck = host_any),
	OBJ("trafficPolicy", traffic_policy, cs_tp),
	LIST("subsets", subsets, E_OBJ(cs_subset)),
	LIST("exportTo", export_to, E_STR(.scheck = zm_export_to_check)),
	OBJ("workloadSelector", workload_selector, cs_wsel),
	END,
};
#undef T
SCHEMA(zm_cs_destination_rule, "DestinationRule", struct zm_destination_rule, dr_check);

/* ---- Gateway ------------------------------------------------------------------------ */

static const char *const stls_names[] = {
	"PASSTHROUGH", "SIMPLE", "MUTUAL", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL", NULL,
};
static const char *const tlsver_names[] = { "TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3", NULL };

#define T struct zm_port
static const struct zm_cfield cs_port_f[] = {
	INT("number", number, 1, 65535, REQ),
	STR("protocol", protocol, REQ, .scheck = protocol_rule),
	STR("name", name),
	INT("targetPort", target_port, 1, 65535),
	END,
};
#undef T
static SCHEMA(cs_port, "Port", struct zm_port, NULL);

/* ServiceEntry ports: protocol optional (Istio infers TCP). */
#define T struct zm_port
static const struct zm_cfield cs_sport_f[] = {
	INT("number", number, 1, 65535, REQ),
	STR("protocol", protocol, .scheck = protocol_rule),
	STR("name", name),
	INT("targetPort", target_port, 1, 65535),
	END,
};
#undef T
static SCHEMA(cs_sport, "ServicePort", struct zm_port, NULL);

#define T struct zm_tls_cert
static const struct zm_cfield cs_tlscert_f[] = {
	STR("serverCertificate", server_certificate, .scheck = nonempty_str),
	STR("privateKey", private_key, .scheck = nonempty_str),
	STR("caCertificates", ca_certificates, .scheck = nonempty_str),
	END,
};
#undef T
static SCHEMA(cs_tlscert, "ServerTLSSettings.TLSCertificate", struct zm_tls_cert, NULL);

#define T struct zm_server_tls
static const struct zm_cfield cs_stls_f[] = {
	BOOL("httpsRedirect", https_redirect),
	ENUM("mode", mode, stls_names),
	STR("serverCertificate", server_certificate, .scheck = nonempty_str),
	STR("privateKey", private_key, .scheck = nonempty_str),
	STR("caCertificates", ca_certificates, .scheck = nonempty_str),
	STR("caCrl", ca_crl),
	STR("credentialName", credential_name, .scheck = zm_dns_subdomain_check),
	LIST("credentialNames", credential_names, E_STR(.scheck = zm_dns_subdomain_check)),
	LIST("tlsCertificates", tls_certificates, E_OBJ(cs_tlscert)),
	LIST("subjectAltNames", subject_alt_names, E_STR(.scheck = zm_san_value_check)),
	LIST("verifyCertificateSpki", verify_certificate_spki, E_STR(.scheck = zm_pin_spki_check)),
	LIST("verifyCertificateHash", verify_certificate_hash, E_STR(.scheck = zm_pin_hash_check)),
	ENUM("minProtocolVersion", min_protocol_version, tlsver_names),
	ENUM("maxProtocolVersion", max_protocol_version, tlsver_names),
	LIST("cipherSuites", cipher_suites, E_STR(.scheck = zm_tls12_cipher_check)),
	END,
};
#undef T
static SCHEMA(cs_stls, "ServerTLSSettings", struct zm_server_tls, NULL);

static void server_tls_rules(struct zm_crd *r, struct zm_server *s)
{
	struct zm_server_tls *t = &s->tls;
	bool cred = t->credential_name.v || t->credential_names.n || t->tls_certificates.n;
	bool files = t->server_certificate.v || t->private_key.v;
	bool tls_proto = protocol_is(&s->port.protocol, "HTTPS") || protocol_is(&s->port.protocol, "TLS");
	const char *mode = stls_names[t->mode.v];

	if (tls_proto && !t->o.set) {
		ERR(r, s->port.protocol.pos, "tls", "server must have TLS settings for HTTPS/TLS protocols");
		return;
	}
	if (!t->o.set)
		return;
	if (t->credential_name.v && t->credential_names.n)
		ERR(r, t->credential_names.pos, "tls.credentialNames",
		    "only one of credentialName and credentialNames may be set");
	if (t->credential_names.n > 2)
		ERR(r, t->credential_names.pos, "tls.credentialNames",
		    "at most 2 entries (e.g. an RSA and an ECDSA certificate)");
	/* client-certificate restrictions only mean something where a client
	 * certificate is asked for; elsewhere they would silently not hold */
	if (!tls_proto || (t->mode.v != ZM_STLS_MUTUAL && t->mode.v != ZM_STLS_OPTIONAL_MUTUAL)) {
		const char *why_not = tls_proto ? mode : "a plain-text server";

		static const struct { const char *f; size_t off; } cv[] = {
			{ "tls.subjectAltNames", offsetof(struct zm_server_tls, subject_alt_names) },
			{ "tls.verifyCertificateSpki", offsetof(struct zm_server_tls, verify_certificate_spki) },
			{ "tls.verifyCertificateHash", offsetof(struct zm_server_tls, verify_certificate_hash) },
		};

		for (size_t i = 0; i < sizeof(cv) / sizeof(cv[0]); i++) {
			const zm_cstrs *l = (const zm_cstrs *)((const char *)t + cv[i].off);

			if (l->n)
				ERR(r, l->pos, cv[i].f, "needs tls.mode MUTUAL or OPTIONAL_MUTUAL, not %s", why_not);
		}
		if (t->ca_crl.v)
			ERR(r, t->ca_crl.pos, "tls.caCrl", "needs tls.mode MUTUAL or OPTIONAL_MUTUAL, not %s",
			    why_not);
	}
	/* only where the gateway terminates TLS */
	if ((!tls_proto || t->mode.v == ZM_STLS_PASSTHROUGH || t->mode.v == ZM_STLS_AUTO_PASSTHROUGH) &&
	    (t->cipher_suites.n || t->max_protocol_version.set)) {
		ERR(r, t->cipher_suites.n ? t->cipher_suites.pos : t->max_protocol_version.pos,
		    t->cipher_suites.n ? "tls.cipherSuites" : "tls.maxProtocolVersion",
		    "only for servers that terminate TLS (SIMPLE, MUTUAL, OPTIONAL_MUTUAL, ISTIO_MUTUAL)");
	}
	if (!tls_proto) {
		/* Plain-text ports may only say "redirect to https". */
		if (t->mode.set || cred || files || t->ca_certificates.v)
			ERR(r, t->o.pos, "tls",
			    "server cannot have TLS settings for plain text ports (only httpsRedirect)");
		return;
	}
	switch (t->mode.v) {
	case ZM_STLS_SIMPLE:
	case ZM_STLS_MUTUAL:
	case ZM_STLS_OPTIONAL_MUTUAL:
		if (!cred && (!t->server_certificate.v || !t->private_key.v))
			ERR(r, t->mode.set ? t->mode.pos : t->o.pos, "tls.mode",
			    "%s TLS needs credentialName, or serverCertificate and privateKey", mode);
		else if (t->mode.v != ZM_STLS_SIMPLE && !cred && !t->ca_certificates.v)
			ERR(r, t->mode.pos, "tls.mode",
			    "%s TLS needs caCertificates (or credentialName)", mode);
		break;
	default:
		if (cred || files || t->ca_certificates.v)
			ERR(r, t->mode.set ? t->mode.pos : t->o.pos, "tls.mode",
			    "%s TLS does not take certificates or credentialName", mode);
		break;
	}
	if (t->min_protocol_version.set && t->max_protocol_version.set &&
	    t->max_protocol_version.v != ZM_TLS_AUTO &&
	    t->min_protocol_version.v > t->max_protocol_version.v)
		ERR(r, t->min_protocol_version.pos, "tls.minProtocolVersion",
		    "minProtocolVersion is above maxProtocolVersion");
	else if (t->max_protocol_version.set && t->max_protocol_version.v != ZM_TLS_AUTO &&
		 t->max_protocol_version.v < ZM_TLSV1_2)
		ERR(r, t->max_protocol_version.pos, "tls.maxProtocolVersion",
		    "below TLSV1_2: zmesh accepts TLS 1.2 and 1.3 only");
	if (t->tls_certificates.n)
		ERR(r, t->tls_certificates.pos, "tls.tlsCertificates",
		    "not supported by zmesh (use credentialName(s) or serverCertificate/privateKey)");
}

static void server_check(struct zm_crd *r, void *obj)
{
	struct zm_server *s = obj;

	server_tls_rules(r, s);
	/* refused rather than ignored: a server meant for one address or
	 * endpoint must not quietly serve on all of them */
	if (s->bind.v)
		ERR(r, s->bind.pos, "bind", "not supported by zmesh (the gateway listens on all its addresses)");
	if (s->default_endpoint.v)
		ERR(r, s->default_endpoint.pos, "defaultEndpoint", "not supported by zmesh");
}

#define T struct zm_server
static const struct zm_cfield cs_server_f[] = {
	OBJ("port", port, cs_port, REQ),
	STR("bind", bind),
	LIST("hosts", hosts, E_STR(.scheck = gw_server_host), REQ_NONEMPTY),
	OBJ("tls", tls, cs_stls),
	STR("defaultEndpoint", default_endpoint),
	STR("name", name),
	END,
};
#undef T
static SCHEMA(cs_server, "Server", struct zm_server, server_check);

static void gw_check(struct zm_crd *r, void *obj)
{
	struct zm_gateway *g = obj;
	size_t n = g->servers.n < 2000 ? g->servers.n : 2000;

	for (size_t i = 0; i < n; i++) {
		const struct zm_cstr *a = &g->servers.v[i].port.name;

		for (size_t j = 0; a->v && j < i; j++) {
			const struct zm_cstr *b = &g->servers.v[j].port.name;
			char sub[64];

			if (b->v && !strcmp(a->v, b->v)) {
				snprintf(sub, sizeof(sub), "servers[%zu].port.name", i);
				ERR(r, a->pos, sub, "port names in servers must be unique: duplicate name %s",
				    a->v);
				break;
			}
		}
	}
}

#define T struct zm_gateway
static const struct zm_cfield zm_cs_gateway_f[] = {
	LIST("servers", servers, E_OBJ(cs_server), REQ_NONEMPTY),
	LABELS("selector", selector),
	END,
};
#undef T
SCHEMA(zm_cs_gateway, "Gateway", struct zm_gateway, gw_check);

/* ---- ServiceEntry ------------------------------------------------------------------- */

static const char *const loc_names[] = { "MESH_EXTERNAL", "MESH_INTERNAL", NULL };
static const char *const res_names[] = { "NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN", NULL };

static const char *endpoint_addr(const char *s)
{
	if (!*s)
		return "address must not be empty";
	if (!strncmp(s, "unix://", 7))
		return s[7] ? NULL : "empty unix socket path";
	if (!zm_ip_check(s))
		return NULL;
	return zm_host_check(s, false);
}

#define T struct zm_workload_entry
static const struct zm_cfield cs_we_f[] = {
	STR("address", address, .scheck = endpoint_addr),
	MAP("ports", ports, E_INT(1, 65535)),
	LABELS("labels", labels),
	STR("network", network),
	STR("locality", locality),
	INT("weight", weight, 0, U32MAX),
	STR("serviceAccount", service_account, .scheck = zm_dns_subdomain_check),
	END,
};
#undef T
static SCHEMA(cs_we, "WorkloadEntry", struct zm_workload_entry, NULL);

static void se_check(struct zm_crd *r, void *obj)
{
	struct zm_service_entry *se = obj;
	size_t np = se->ports.n < 2000 ? se->ports.n : 2000;
	char sub[96];

	for (size_t i = 0; i < np; i++) {
		for (size_t j = 0; j < i; j++) {
			if (se->ports.v[i].number.v == se->ports.v[j].number.v) {
				snprintf(sub, sizeof(sub), "ports[%zu].number", i);
				ERR(r, se->ports.v[i].number.pos, sub, "port number %lld is not unique",
				    (long long)se->ports.v[i].number.v);
				break;
			}
		}
	}
	dup_names(r, "ports", se->ports.v, se->ports.n, sizeof(*se->ports.v),
		  offsetof(struct zm_port, name), "name", "port name");
	if (se->endpoints.n && se->workload_selector.o.set)
		ERR(r, se->workload_selector.o.pos, "workloadSelector",
		    "only one of endpoints or workloadSelector may be set");
	if (se->resolution.v == ZM_SE_NONE && se->endpoints.n)
		ERR(r, se->endpoints.pos, "endpoints", "no endpoints should be provided for resolution NONE");
	if (se->resolution.v == ZM_SE_STATIC && !se->endpoints.n && !se->workload_selector.o.set)
		ERR(r, se->resolution.pos, "resolution",
		    "resolution STATIC needs endpoints (or a workloadSelector)");
	if ((se->resolution.v == ZM_SE_DNS || se->resolution.v == ZM_SE_DNS_ROUND_ROBIN) &&
	    !se->endpoints.n) {
		for (size_t i = 0; i < se->hosts.n; i++)
			if (se->hosts.v[i].v && se->hosts.v[i].v[0] == '*') {
				snprintf(sub, sizeof(sub), "hosts[%zu]", i);
				ERR(r, se->hosts.v[i].pos, sub,
				    "wildcard hosts need endpoints with resolution DNS");
			}
	}
	for (size_t i = 0; i < se->endpoints.n; i++) {
		struct zm_workload_entry *we = &se->endpoints.v[i];

		if (se->resolution.v == ZM_SE_STATIC && we->address.v &&
		    strncmp(we->address.v, "unix://", 7) && zm_ip_check(we->address.v)) {
			snprintf(sub, sizeof(sub), "endpoints[%zu].address", i);
			ERR(r, we->address.pos, sub, "resolution STATIC needs IP addresses, got \"%s\"",
			    we->address.v);
		}
		for (size_t k = 0; k < we->ports.n; k++) {
			bool found = false;

			for (size_t j = 0; j < se->ports.n; j++)
				if (se->ports.v[j].name.v && we->ports.v[k].key.v &&
				    !strcmp(se->ports.v[j].name.v, we->ports.v[k].key.v))
					found = true;
			if (!found) {
				snprintf(sub, sizeof(sub), "endpoints[%zu].ports", i);
				ERR(r, we->ports.v[k].key.pos, sub,
				    "endpoint port \"%s\" is not a port name of the service entry",
				    we->ports.v[k].key.v ? we->ports.v[k].key.v : "");
			}
		}
	}
}

#define T struct zm_service_entry
static const struct zm_cfield zm_cs_service_entry_f[] = {
	LIST("hosts", hosts, E_STR(.scheck = se_host), REQ_NONEMPTY),
	LIST("addresses", addresses, E_STR(.scheck = zm_cidr_check)),
	LIST("ports", ports, E_OBJ(cs_sport)),
	ENUM("location", location, loc_names),
	ENUM("resolution", resolution, res_names),
	LIST("endpoints", endpoints, E_OBJ(cs_we)),
	OBJ("workloadSelector", workload_selector, cs_wsel),
	LIST("exportTo", export_to, E_STR(.scheck = zm_export_to_check)),
	LIST("subjectAltNames", subject_alt_names, E_STR(.scheck = nonempty_str)),
	END,
};
#undef T
SCHEMA(zm_cs_service_entry, "ServiceEntry", struct zm_service_entry, se_check);

/* ---- PeerAuthentication ----------------------------------------------------------- */

static const char *const mtls_names[] = { "UNSET", "DISABLE", "PERMISSIVE", "STRICT", NULL };

#define T struct zm_mutual_tls
static const struct zm_cfield cs_mtls_f[] = { ENUM("mode", mode, mtls_names), END };
#undef T
static SCHEMA(cs_mtls, "PeerAuthentication.MutualTLS", struct zm_mutual_tls, NULL);

static void pa_check(struct zm_crd *r, void *obj)
{
	struct zm_peer_authentication *pa = obj;

	if (pa->port_level_mtls.n && !pa->selector.match_labels.n)
		ERR(r, pa->port_level_mtls.pos, "portLevelMtls",
		    "portLevelMtls requires a workload selector (selector.matchLabels)");
}

#define T struct zm_peer_authentication
static const struct zm_cfield zm_cs_peer_authentication_f[] = {
	OBJ("selector", selector, cs_wsel),
	OBJ("mtls", mtls, cs_mtls),
	MAP("portLevelMtls", port_level_mtls, E_OBJ(cs_mtls), .kcheck = zm_port_str_check),
	END,
};
#undef T
SCHEMA(zm_cs_peer_authentication, "PeerAuthentication", struct zm_peer_authentication, pa_check);

/* ---- AuthorizationPolicy ---------------------------------------------------------- */

static const char *const action_names[] = { "ALLOW", "DENY", "AUDIT", "CUSTOM", NULL };

#define PV(n, m) LIST(n, m, E_STR(.scheck = zm_policy_value_check))
#define CIDRS(n, m) LIST(n, m, E_STR(.scheck = zm_cidr_check))

static bool source_empty(const struct zm_authz_source *s)
{
	return !s->principals.n && !s->not_principals.n && !s->request_principals.n &&
	       !s->not_request_principals.n && !s->namespaces.n && !s->not_namespaces.n &&
	       !s->ip_blocks.n && !s->not_ip_blocks.n && !s->remote_ip_blocks.n &&
	       !s->not_remote_ip_blocks.n && !s->service_accounts.n && !s->not_service_accounts.n;
}

static void source_check(struct zm_crd *r, void *obj)
{
	if (source_empty(obj))
		ERR(r, ((struct zm_cobj *)obj)->pos, NULL, "source must not be empty");
}

#define T struct zm_authz_source
static const struct zm_cfield cs_source_f[] = {
	PV("principals", principals),
	PV("notPrincipals", not_principals),
	PV("requestPrincipals", request_principals),
	PV("notRequestPrincipals", not_request_principals),
	PV("namespaces", namespaces),
	PV("notNamespaces", not_namespaces),
	CIDRS("ipBlocks", ip_blocks),
	CIDRS("notIpBlocks", not_ip_blocks),
	CIDRS("remoteIpBlocks", remote_ip_blocks),
	CIDRS("notRemoteIpBlocks", not_remote_ip_blocks),
	PV("serviceAccounts", service_accounts),
	PV("notServiceAccounts", not_service_accounts),
	END,
};
#undef T
static SCHEMA(cs_source, "Source", struct zm_authz_source, source_check);

static void operation_check(struct zm_crd *r, void *obj)
{
	struct zm_authz_operation *o = obj;

	if (!o->hosts.n && !o->not_hosts.n && !o->ports.n && !o->not_ports.n && !o->methods.n &&
	    !o->not_methods.n && !o->paths.n && !o->not_paths.n)
		ERR(r, o->o.pos, NULL, "operation must not be empty");
}

#define T struct zm_authz_operation
static const struct zm_cfield cs_operation_f[] = {
	PV("hosts", hosts),
	PV("notHosts", not_hosts),
	LIST("ports", ports, E_STR(.scheck = zm_port_str_check)),
	LIST("notPorts", not_ports, E_STR(.scheck = zm_port_str_check)),
	LIST("methods", methods, E_STR(.scheck = authz_method_rule)),
	LIST("notMethods", not_methods, E_STR(.scheck = authz_method_rule)),
	LIST("paths", paths, E_STR(.scheck = authz_path_rule)),
	LIST("notPaths", not_paths, E_STR(.scheck = authz_path_rule)),
	END,
};
#undef T
static SCHEMA(cs_operation, "Operation", struct zm_authz_operation, operation_check);

#define T struct zm_authz_from
static const struct zm_cfield cs_from_f[] = { OBJ("source", source, cs_source, REQ), END };
#undef T
static SCHEMA(cs_from, "Rule.From", struct zm_authz_from, NULL);

#define T struct zm_authz_to
static const struct zm_cfield cs_to_f[] = { OBJ("operation", operation, cs_operation, REQ), END };
#undef T
static SCHEMA(cs_to, "Rule.To", struct zm_authz_to, NULL);

enum cond_value { CV_ANY, CV_IP, CV_PORT };

/* Istio's condition keys (reference/config/security/conditions). */
static int cond_key(const char *k, enum cond_value *cv)
{
	static const struct {
		const char *key;
		enum cond_value cv;
	} plain[] = {
		{ "source.ip", CV_IP }, { "remote.ip", CV_IP }, { "source.namespace", CV_ANY },
		{ "source.principal", CV_ANY }, { "source.serviceAccount", CV_ANY },
		{ "request.auth.principal", CV_ANY }, { "request.auth.audiences", CV_ANY },
		{ "request.auth.presenter", CV_ANY }, { "destination.ip", CV_IP },
		{ "destination.port", CV_PORT }, { "connection.sni", CV_ANY },
	};
	size_t l = strlen(k);

	*cv = CV_ANY;
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
		if (!strcmp(k, plain[i].key)) {
			*cv = plain[i].cv;
			return 0;
		}
	if (!strncmp(k, "experimental.envoy.filters.", 27) && k[27])
		return 0;
	if (!strncmp(k, "request.headers[", 16) && l > 17 && k[l - 1] == ']') {
		char h[256];

		if (l - 17 >= sizeof(h))
			return -1;
		memcpy(h, k + 16, l - 17);
		h[l - 17] = 0;
		return zm_header_name_check(h) ? -1 : 0;
	}
	if (!strncmp(k, "request.auth.claims[", 20) && l > 21 && k[l - 1] == ']') {
		/* Nested claims: request.auth.claims[a][b]. */
		for (const char *p = k + 19; *p; ) {
			const char *e;

			if (*p != '[' || !(e = strchr(p, ']')) || e == p + 1 || memchr(p + 1, '[', (size_t)(e - p - 1)))
				return -1;
			p = e + 1;
		}
		return 0;
	}
	return -1;
}

static void cond_check(struct zm_crd *r, void *obj)
{
	struct zm_authz_condition *c = obj;
	enum cond_value cv;
	const zm_cstrs *lists[2] = { &c->values, &c->not_values };
	const char *names[2] = { "values", "notValues" };

	if (!c->key.v)
		return;
	if (cond_key(c->key.v, &cv)) {
		ERR(r, c->key.pos, "key",
		    "unknown condition key \"%s\" (want request.headers[NAME], source.ip, remote.ip, "
		    "source.namespace, source.principal, request.auth.principal, "
		    "request.auth.audiences, request.auth.presenter, request.auth.claims[NAME], "
		    "destination.ip, destination.port, connection.sni or experimental.envoy.filters.*)",
		    c->key.v);
		return;
	}
	if (!c->values.n && !c->not_values.n)
		ERR(r, c->o.pos, "values", "at least one of values or notValues is required");
	for (int l = 0; l < 2; l++) {
		for (size_t i = 0; i < lists[l]->n; i++) {
			const char *v = lists[l]->v[i].v, *why = NULL;
			char sub[48];

			if (!v)
				continue;
			if (cv == CV_IP)
				why = zm_cidr_check(v);
			else if (cv == CV_PORT)
				why = zm_port_str_check(v);
			else
				why = zm_policy_value_check(v);
			if (why) {
				snprintf(sub, sizeof(sub), "%s[%zu]", names[l], i);
				ERR(r, lists[l]->v[i].pos, sub, "\"%s\": %s", v, why);
			}
		}
	}
}

#define T struct zm_authz_condition
static const struct zm_cfield cs_cond_f[] = {
	STR("key", key, REQ),
	LIST("values", values, E_STR()),
	LIST("notValues", not_values, E_STR()),
	END,
};
#undef T
static SCHEMA(cs_cond, "Condition", struct zm_authz_condition, cond_check);

#define T struct zm_authz_rule
static const struct zm_cfield cs_rule_f[] = {
	LIST("from", from, E_OBJ(cs_from)),
	LIST("to", to, E_OBJ(cs_to)),
	LIST("when", when, E_OBJ(cs_cond)),
	END,
};
#undef T
static SCHEMA(cs_rule, "Rule", struct zm_authz_rule, NULL);

#define T struct zm_authz_provider
static const struct zm_cfield cs_provider_f[] = { STR("name", name, REQ, .scheck = nonempty_str), END };
#undef T
static SCHEMA(cs_provider, "AuthorizationPolicy.ExtensionProvider", struct zm_authz_provider, NULL);

/* selector, targetRef and targetRefs name the workloads: one way only. */
static void target_rules(struct zm_crd *r, const struct zm_workload_selector *sel,
			 const struct zm_policy_target_ref *ref, const void *refs_v, size_t refs_n,
			 struct zm_cpos refs_pos)
{
	(void)refs_v;
	if (sel->o.set && (ref->o.set || refs_n))
		ERR(r, ref->o.set ? ref->o.pos : refs_pos, ref->o.set ? "targetRef" : "targetRefs",
		    "only one of selector, targetRef or targetRefs may be set");
	else if (ref->o.set && refs_n)
		ERR(r, refs_pos, "targetRefs", "only one of targetRef or targetRefs may be set");
}

static void ap_check(struct zm_crd *r, void *obj)
{
	struct zm_authorization_policy *ap = obj;

	target_rules(r, &ap->selector, &ap->target_ref, ap->target_refs.v, ap->target_refs.n,
		     ap->target_refs.pos);
	if (ap->action.v == ZM_AUTHZ_CUSTOM && !ap->provider.o.set)
		ERR(r, ap->action.pos, "action", "action CUSTOM needs provider.name");
	if (ap->provider.o.set && ap->action.v != ZM_AUTHZ_CUSTOM)
		ERR(r, ap->provider.o.pos, "provider", "provider is only allowed with action CUSTOM");
}

#define T struct zm_authorization_policy
static const struct zm_cfield zm_cs_authorization_policy_f[] = {
	OBJ("selector", selector, cs_wsel),
	OBJ("targetRef", target_ref, cs_tref),
	LIST("targetRefs", target_refs, E_OBJ(cs_tref)),
	LIST("rules", rules, E_OBJ(cs_rule)),
	ENUM("action", action, action_names),
	OBJ("provider", provider, cs_provider),
	END,
};
#undef T
SCHEMA(zm_cs_authorization_policy, "AuthorizationPolicy", struct zm_authorization_policy, ap_check);

/* ---- RequestAuthentication -------------------------------------------------------- */

#define T struct zm_jwt_header
static const struct zm_cfield cs_jwth_f[] = {
	STR("name", name, REQ, .scheck = zm_header_name_check),
	STR("prefix", prefix),
	END,
};
#undef T
static SCHEMA(cs_jwth, "JWTHeader", struct zm_jwt_header, NULL);

#define T struct zm_claim_to_header
static const struct zm_cfield cs_c2h_f[] = {
	STR("header", header, REQ, .scheck = zm_header_name_check),
	STR("claim", claim, REQ, .scheck = nonempty_str),
	END,
};
#undef T
static SCHEMA(cs_c2h, "ClaimToHeader", struct zm_claim_to_header, NULL);

static void jwt_check(struct zm_crd *r, void *obj)
{
	struct zm_jwt_rule *j = obj;

	if (j->jwks.v && j->jwks_uri.v)
		ERR(r, j->jwks.pos, "jwks", "only one of jwks or jwksUri may be set");
}

#define T struct zm_jwt_rule
static const struct zm_cfield cs_jwt_f[] = {
	STR("issuer", issuer, REQ_NONEMPTY),
	LIST("audiences", audiences, E_STR(.scheck = nonempty_str)),
	STR("jwksUri", jwks_uri, .scheck = url_rule),
	STR("jwks", jwks, .scheck = jwks_rule),
	LIST("fromHeaders", from_headers, E_OBJ(cs_jwth)),
	LIST("fromParams", from_params, E_STR(.scheck = nonempty_str)),
	STR("outputPayloadToHeader", output_payload_to_header, .scheck = zm_header_name_check),
	LIST("fromCookies", from_cookies, E_STR(.scheck = nonempty_str)),
	BOOL("forwardOriginalToken", forward_original_token),
	LIST("outputClaimToHeaders", output_claim_to_headers, E_OBJ(cs_c2h)),
	DUR("timeout", timeout, DEF(5 * ZM_NS_PER_S)),
	END,
};
#undef T
static SCHEMA(cs_jwt, "JWTRule", struct zm_jwt_rule, jwt_check);

static void ra_check(struct zm_crd *r, void *obj)
{
	struct zm_request_authentication *ra = obj;

	target_rules(r, &ra->selector, &ra->target_ref, ra->target_refs.v, ra->target_refs.n,
		     ra->target_refs.pos);
}

#define T struct zm_request_authentication
static const struct zm_cfield zm_cs_request_authentication_f[] = {
	OBJ("selector", selector, cs_wsel),
	OBJ("targetRef", target_ref, cs_tref),
	LIST("targetRefs", target_refs, E_OBJ(cs_tref)),
	LIST("jwtRules", jwt_rules, E_OBJ(cs_jwt)),
	END,
};
#undef T
SCHEMA(zm_cs_request_authentication, "RequestAuthentication", struct zm_request_authentication, ra_check);

/* ---- metadata --------------------------------------------------------------------- */

#define T struct zm_object_meta
static const struct zm_cfield zm_cs_meta_f[] = {
	STR("name", name, REQ, .scheck = zm_dns_subdomain_check),
	STR("namespace", ns, .scheck = zm_dns_label_check),
	LABELS("labels", labels),
	MAP("annotations", annotations, E_STR(), .kcheck = zm_label_key_check),
	/* Written by the API server; accepted so `kubectl get -o yaml` output reads back. */
	IGN("uid"), IGN("resourceVersion"), IGN("generation"), IGN("creationTimestamp"),
	IGN("deletionTimestamp"), IGN("deletionGracePeriodSeconds"), IGN("managedFields"),
	IGN("ownerReferences"), IGN("finalizers"), IGN("selfLink"),
	END,
};
#undef T
SCHEMA(zm_cs_meta, "ObjectMeta", struct zm_object_meta, NULL);

/* Keep the compiler honest about map entry layouts the reader assumes. */
_Static_assert(offsetof(struct zm_ckv, val) == ZM_CMAP_VAL_OFF, "zm_ckv");
_Static_assert(offsetof(struct zm_ckint, val) == ZM_CMAP_VAL_OFF, "zm_ckint");
_Static_assert(offsetof(struct zm_cmatch_kv, val) == ZM_CMAP_VAL_OFF, "zm_cmatch_kv");
_Static_assert(offsetof(struct zm_cmtls_kv, val) == ZM_CMAP_VAL_OFF, "zm_cmtls_kv");
_Static_assert(sizeof(struct zm_ckv) == ((ZM_CMAP_VAL_OFF + sizeof(struct zm_cstr) + 7) & ~7ul), "zm_ckv size");
_Static_assert(sizeof(struct zm_ckint) == ((ZM_CMAP_VAL_OFF + sizeof(struct zm_cint) + 7) & ~7ul), "zm_ckint size");
_Static_assert(sizeof(struct zm_cmatch_kv) == ((ZM_CMAP_VAL_OFF + sizeof(struct zm_string_match) + 7) & ~7ul), "zm_cmatch_kv size");
_Static_assert(sizeof(struct zm_cmtls_kv) == ((ZM_CMAP_VAL_OFF + sizeof(struct zm_mutual_tls) + 7) & ~7ul), "zm_cmtls_kv size");
