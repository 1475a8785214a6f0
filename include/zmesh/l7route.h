/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The waypoint's L7 engine: Istio config + a service/endpoint view in, one
 * decision per request out. Pure: no sockets, no clocks (the caller passes
 * the time), randomness from a caller-supplied source so tests are exact.
 *
 * Build once per config generation:
 *
 *   struct zm_l7_view v;  zm_l7_view_from_lab(lab, &v) or filled by hand
 *   struct zm_l7 *l7;     zm_l7_build(cfg, &v, &opts, &l7, &err)   (takes v)
 *
 * then, per request, zm_l7_decide(): in this order, as Envoy's filter chain
 * in an Istio waypoint runs them:
 *
 *   1. method must be upper case, path normalized (http_path.h, Istio BASE by
 *      default) -> 400 on failure; the normalized path is what rules match
 *      and what is forwarded;
 *   2. RequestAuthentication: a token present in any configured location
 *      must verify against the applicable jwtRules -> else 401; no token is
 *      anonymous (no request principal);
 *   3. AuthorizationPolicy: DENY policies, then "no ALLOW policy -> allow",
 *      then ALLOW, else 403. CUSTOM policies cannot be evaluated here: they
 *      deny. A rule that cannot be evaluated (unknown condition key, a
 *      header too long to join) matches in a DENY policy and does not in an
 *      ALLOW policy (fail closed both ways);
 *   4. CORS preflight (answered here when the origin is allowed);
 *   5. VirtualService: the first VirtualService whose hosts cover the
 *      destination service (or the Host) and that is bound to "mesh", then
 *      its first http[] route whose any match[] matches (all fields of one
 *      match must hold; no match list matches everything). No
 *      VirtualService: a default route to the service itself. A host that is
 *      neither a known service nor a VirtualService host: 404 (NR);
 *   6. route action: redirect (3xx with Location), directResponse, or a
 *      destination chosen by weight; rewrite (uri prefix / whole path,
 *      uriRegexRewrite, authority), header ops (route and destination
 *      level), timeout, retries, fault (delay then abort, each by its
 *      percentage), mirror.
 *
 * Policies apply at the waypoint when they are in the destination
 * service's namespace (or the root namespace "istio-system") and either
 * name that Service or the waypoint (Gateway `opts.waypoint_name`) in
 * targetRef(s), or have neither selector nor targetRef (namespace-wide:
 * departure from ambient Istio, where such policies bind to ztunnel only).
 * Policies with a selector are for workloads (ztunnel) and are skipped.
 *
 * Endpoint choice (zm_l7_pick) follows the DestinationRule for the host
 * (subset by labels, the subset's trafficPolicy overriding the rule's):
 * ROUND_ROBIN, LEAST_REQUEST (power of two choices), RANDOM, PASSTHROUGH
 * (random here: the plain listener has no original destination),
 * consistentHash (header, cookie, source IP or query parameter, by
 * rendezvous hashing, so one key keeps one endpoint while it stays up);
 * outlierDetection ejects endpoints after consecutive 5xx / gateway errors
 * (zm_l7_report) for baseEjectionTime x times ejected, at most
 * maxEjectionPercent of them. connectionPool limits are enforced by the
 * caller with zm_l7_admit()/zm_l7_release() (503 on overflow).
 *
 * Threads: a built struct zm_l7 is immutable but for atomic counters
 * (balancer and outlier state), so any number of threads may decide and
 * pick concurrently; swap configs by reference counting (zm_l7_get/put).
 */
#ifndef ZMESH_L7ROUTE_H
#define ZMESH_L7ROUTE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zmesh/buf.h"
#include "zmesh/config.h"
#include "zmesh/http_path.h"
#include "zmesh/http_safe.h"
#include "zmesh/labels.h"
#include "zmesh/log.h"

struct zm_lab;

/* ---- the service / endpoint view -------------------------------------------- */

#define ZM_L7_MAX_PORTS 16

struct zm_l7_ep {
	char addr[64];			/* IP literal */
	char pod[64], ns[64];
	struct zm_labels labels;	/* owned */
	int tport[ZM_L7_MAX_PORTS];	/* target port per service port (0: none) */
	/* balancer and outlier state */
	atomic_int active;		/* requests in flight */
	atomic_int fails;		/* consecutive 5xx */
	atomic_int gw_fails;		/* consecutive 502/503/504 and connect failures */
	atomic_int ejections;
	atomic_llong ejected_until;	/* ns, caller's clock; 0 when in service */
};

struct zm_l7_svc {
	char name[64], ns[64];
	char fqdn[256];			/* name.ns.svc.cluster.local */
	char vip[64];			/* cluster IP, "" when none */
	int ports[ZM_L7_MAX_PORTS];
	char port_names[ZM_L7_MAX_PORTS][64];
	size_t nports;
	struct zm_l7_ep *eps;
	size_t neps;
	atomic_uint rr;			/* round-robin cursor */
	atomic_int inflight;		/* for connectionPool limits */
	atomic_int retrying;		/* retries outstanding (http.maxRetries) */
};

struct zm_l7_view {
	struct zm_l7_svc *svcs;
	size_t nsvcs;
};

/* Services and their endpoints (pods matching the selector) of a lab. */
int zm_l7_view_from_lab(const struct zm_lab *lab, struct zm_l7_view *out);
void zm_l7_view_free(struct zm_l7_view *v);

/* ---- building ---------------------------------------------------------------- */

struct zm_l7_opts {
	const char *waypoint_name;	/* Gateway name for targetRefs; may be NULL */
	const char *root_ns;		/* mesh-wide policies; default "istio-system" */
	struct zm_path_opts path;	/* default: Istio BASE */
	bool path_set;			/* false: use the default above */
	/* Uniform 64-bit random numbers; NULL: a thread-local xorshift seeded
	 * from getrandom(). Tests pass their own. */
	uint64_t (*rand)(void *arg);
	void *rand_arg;
	/* The JWKS document fetched for a jwksUri (malloc'd, the engine frees
	 * it), or NULL when there is none yet: that rule then has no keys and
	 * its tokens get 401. NULL callback: jwksUri rules have no keys. */
	char *(*jwks_uri)(const char *uri, void *arg);
	void *jwks_arg;
	/* Gateway mode (an ingress gateway): the Gateways served, as "ns/name"
	 * (at most ZM_L7_MAX_GATEWAYS, copied). Then only VirtualServices whose
	 * `gateways` name one of them apply ("name" resolves in the
	 * VirtualService's namespace), matched on the Host alone, and a Host
	 * no such VirtualService covers is 404 (no default route to a Service).
	 * None: mesh mode (no `gateways`, or "mesh" listed). */
	const char *const *gateways;
	size_t ngateways;
	/* Gateway mode: every host of every served server (copied), for
	 * Istio's namespace scoping of Gateway `hosts`: a VirtualService bound
	 * to Gateway G applies to a request on port P for host H only when a
	 * server of G on P has a host entry matching H whose namespace part
	 * admits the VirtualService's namespace ("ns/host": ns only; "*":
	 * any; "./host" is resolved to the Gateway's namespace by the caller).
	 * Match-level `gateways` are held to the same rule. None given: no
	 * scoping (every bound VirtualService applies). Entries with
	 * @auto_passthrough are AUTO_PASSTHROUGH servers for
	 * zm_l7_decide_gateway_l4(). */
	const struct zm_l7_gw_host *gw_hosts;
	size_t ngw_hosts;
	/* Gateway mode: the gateway's namespace and labels (copied). The
	 * AuthorizationPolicies and RequestAuthentications that apply are the
	 * gateway workload's: in @self_ns or the root namespace, with a
	 * selector its labels match, a targetRef naming it, or neither. */
	const char *self_ns;
	const struct zm_labels *self_labels;
};

#define ZM_L7_MAX_GATEWAYS 32

struct zm_l7_gw_host {
	char gw[192];			/* "ns/name" of the Gateway */
	int port;			/* the server's port */
	char ns[64];			/* VirtualServices from here only; "*": any */
	char host[256];			/* "*", "*.example.com", "a.example.com" */
	bool auto_passthrough;		/* an AUTO_PASSTHROUGH server */
};

/*
 * Istio's SNI of an AUTO_PASSTHROUGH connection (its cluster name):
 * "outbound_.<port>_.<subset>_.<fqdn>", subset empty for none
 * ("outbound_.8443_._.svc.ns.svc.cluster.local"; the port without leading
 * zeros, the subset a lower-case DNS label). 0 and the parts, or
 * -EINVAL (any other form, port out of 1..65535, a bad host or subset).
 */
int zm_l7_sni_cluster(const char *sni, int *port, char *subset, size_t subsetsz, char *host,
		      size_t hostsz);

struct zm_l7;

/*
 * Compile @cfg (VirtualService, DestinationRule, AuthorizationPolicy,
 * RequestAuthentication are used; other kinds ignored) with view @v. The
 * objects of @cfg and the contents of @v are moved into the result (both
 * are left empty, also on failure, when they are freed). Regexes are
 * compiled (PCRE2, anchored at both ends as RE2 full matches are), inline
 * JWKS parsed, CIDRs parsed. Anything that fails to compile is an error
 * naming the object and field; the result is then not built.
 */
int zm_l7_build(struct zm_cfg_set *cfg, struct zm_l7_view *v,
		const struct zm_l7_opts *opts, struct zm_l7 **out, struct zm_error *e);
/* Reference counting for swapping configs under running requests. */
struct zm_l7 *zm_l7_get(struct zm_l7 *l7);
void zm_l7_put(struct zm_l7 *l7);

/* ---- deciding ---------------------------------------------------------------- */

/* The Service named by @host (name, name.ns[.svc], FQDN or cluster IP), or NULL. */
const struct zm_l7_svc *zm_l7_svc_by_addr(struct zm_l7 *l7, const char *host);

struct zm_l7_request {
	const char *method;		/* NUL-terminated, as received */
	const char *scheme;		/* "http" */
	const char *authority;		/* Host / :authority, NUL-terminated, may carry ":port" */
	const char *target;		/* request-target as received */
	size_t target_len;
	const struct zm_http_field *headers;
	size_t nheaders;
	int port;			/* destination port: Host's port, or the caller's default */
	/* source, as the transport proved it (never from headers) */
	const char *src_principal;	/* spiffe://td/ns/N/sa/S; NULL for plaintext. Policy's
					 * principals and namespaces come from it alone */
	const char *src_ns;		/* for VirtualService sourceNamespace; NULL when unknown */
	const struct zm_labels *src_labels;	/* NULL when unknown */
	int src_family;			/* AF_INET / AF_INET6, 0 when unknown */
	uint8_t src_addr[16];
	int64_t now_s;			/* wall clock, seconds (JWT exp/nbf) */
};

enum zm_l7_action {
	ZM_L7_FORWARD,			/* to d->svc / subset / port */
	ZM_L7_RESPOND,			/* answer d->status with d->body (and d->location) */
};

/* Retry conditions (Envoy x-envoy-retry-on names). */
#define ZM_RETRY_5XX		0x01u
#define ZM_RETRY_GATEWAY	0x02u	/* 502, 503, 504 */
#define ZM_RETRY_CONNECT	0x04u	/* connect-failure */
#define ZM_RETRY_REFUSED	0x08u	/* refused-stream */
#define ZM_RETRY_RESET		0x10u	/* reset (incl. connect failure and timeouts of a try) */
#define ZM_RETRY_4XX		0x20u	/* retriable-4xx: 409 */
#define ZM_RETRY_CODES		0x40u	/* retriable-status-codes: d->retry_codes */
#define ZM_RETRY_GRPC_CANCELLED	0x100u	/* grpc-status 1 */
#define ZM_RETRY_GRPC_DEADLINE	0x200u	/* 4 */
#define ZM_RETRY_GRPC_RESOURCE	0x400u	/* 8 */
#define ZM_RETRY_GRPC_INTERNAL	0x800u	/* 13 */
#define ZM_RETRY_GRPC_UNAVAILABLE 0x1000u	/* 14 */

#define ZM_L7_MAX_HDR_OPS 8
#define ZM_L7_MAX_EXTRA 8
#define ZM_L7_MAX_CODES 8

struct zm_l7_kvp {
	const char *name, *value;
};

struct zm_l7_decision {
	enum zm_l7_action action;
	int status;			/* RESPOND: the status */
	int grpc_status;		/* RESPOND: a gRPC status (fault abort), -1 none: then HTTP
					 * 200, a headers-only gRPC answer with this grpc-status */
	const char *reason;		/* short reason for logs and the body ("RBAC: access denied") */
	char flags[8];			/* Envoy response flags for the access log: NR, UAEX, FI, DI, UF... */
	/* strings owned by the decision (zm_l7_decision_free) */
	struct zm_buf body;		/* RESPOND body */
	struct zm_buf location;		/* redirect Location ("" when none) */
	struct zm_buf path;		/* FORWARD: path + query to send (normalized, rewritten) */
	struct zm_buf authority;	/* FORWARD: Host to send */
	struct zm_buf norm_path;	/* the normalized path without query (what rules matched) */
	/* FORWARD target */
	const struct zm_l7_svc *svc;	/* NULL: no service (respond) */
	int svc_port_idx;		/* index into svc->ports */
	const char *subset;		/* NULL: all endpoints */
	const char *route_name;		/* for logs; may be NULL */
	const char *vs_name;		/* "ns/name" of the VirtualService, NULL for the default route */
	/* policies */
	int64_t timeout_ns;		/* 0: none */
	int retry_attempts;		/* retries after the first try */
	int64_t per_try_ns;		/* 0: timeout_ns applies to each try */
	unsigned retry_on;		/* ZM_RETRY_* */
	int retry_codes[ZM_L7_MAX_CODES];
	size_t nretry_codes;
	int64_t backoff_ns;
	int64_t delay_ns;		/* fault delay before forwarding (or before an abort) */
	/* header operations: removes, then sets, then adds; applied in order */
	const struct zm_header_ops *req_ops[ZM_L7_MAX_HDR_OPS], *resp_ops[ZM_L7_MAX_HDR_OPS];
	size_t nreq_ops, nresp_ops;
	/* engine-made headers (JWT outputs, CORS) */
	struct zm_l7_kvp req_set[ZM_L7_MAX_EXTRA], resp_set[ZM_L7_MAX_EXTRA];
	size_t nreq_set, nresp_set;
	const char *req_remove[ZM_L7_MAX_EXTRA];	/* e.g. the token's header */
	size_t nreq_remove;
	struct zm_buf scratch;		/* storage for the strings above */
	/* mirrors: `mirror`, or each of `mirrors` its own percentage said yes to */
	struct zm_l7_mirror {
		const struct zm_l7_svc *svc;
		int port_idx;
		const char *subset;	/* NULL: all endpoints */
	} mirrors[ZM_MAX_MIRRORS];
	size_t nmirrors;
	/* identity for logs and metrics */
	char *request_principal;	/* owned: "iss/sub" of a verified JWT, or NULL */
};

void zm_l7_decision_init(struct zm_l7_decision *d);
void zm_l7_decision_free(struct zm_l7_decision *d);

/*
 * Decide what to do with @req. Always fills @d (action RESPOND for every
 * refusal); returns 0, or -ENOMEM.
 */
int zm_l7_decide(struct zm_l7 *l7, const struct zm_l7_request *req, struct zm_l7_decision *d);

/*
 * A TCP connection to Service @svc port @port (HBONE CONNECT to a port that
 * is not HTTP): AuthorizationPolicy with L4 attributes only (an ALLOW rule
 * naming HTTP fields never matches, a DENY rule naming them denies: fail
 * closed, as Istio), then the first tcp[] route of the VirtualService whose
 * match (port, sourceLabels, sourceNamespace, gateways, destinationSubnets
 * against the VIP) holds, a destination chosen by weight; no route: the
 * Service itself. Refusals are RESPOND with status 0 (reset the stream).
 */
/*
 * Gateway mode, a TLS PASSTHROUGH / TLS / TCP server on @port: the first
 * tls[] route (by @sni: exact sniHosts before wildcards, match.port and
 * match.gateways) of a VirtualService bound to a served Gateway, or with
 * no @sni the first tcp[] route whose match holds; destination by weight.
 * The gateway's own AuthorizationPolicies (L4 attributes) apply first.
 * No route: RESPOND with flags NR.
 */
/*
 * With @sni in zm_l7_sni_cluster() form and an AUTO_PASSTHROUGH server on
 * @port whose hosts (and namespace part) admit that service: no
 * VirtualService; the destination is that service, port and subset (a
 * DestinationRule subset that must exist). Unknown service, port or
 * subset: RESPOND with flags NR (the caller closes the connection).
 */
int zm_l7_decide_gateway_l4(struct zm_l7 *l7, const struct zm_l7_request *req, const char *sni,
			    int port, struct zm_l7_decision *d);
int zm_l7_decide_tcp(struct zm_l7 *l7, const struct zm_l7_request *req,
		     const struct zm_l7_svc *svc, int port, struct zm_l7_decision *d);

/*
 * Choose an endpoint of d->svc / d->subset for a (re)try at time @now_ns,
 * skipping @skip (the endpoint the previous try failed on, -1 for none)
 * when another is available. Returns the endpoint index, -EHOSTUNREACH when
 * the service has no usable endpoint. @req feeds consistent hashing.
 */
int zm_l7_pick(struct zm_l7 *l7, const struct zm_l7_decision *d, const struct zm_l7_request *req,
	       int skip, int64_t now_ns);
/* The DestinationRule's connectTimeout for the decision's destination (ns). */
int64_t zm_l7_connect_timeout(struct zm_l7 *l7, const struct zm_l7_decision *d);
/*
 * HTTP/2 to the destination's pods by its DestinationRule: true with
 * connectionPool.http.h2UpgradePolicy UPGRADE (prior knowledge, as Envoy
 * speaks to an Istio cluster with HTTP/2 options), or with useClientProtocol
 * when the client spoke HTTP/2 (@client_h2). Ports named grpc/http2/h2c use
 * HTTP/2 whatever this says (Istio's protocol selection).
 */
bool zm_l7_upstream_h2(struct zm_l7 *l7, const struct zm_l7_decision *d, bool client_h2);
/* Its connectionPool.http.maxRequestsPerConnection: requests an upstream
 * connection carries before it is closed; 0 for no limit. */
int64_t zm_l7_max_requests_per_connection(struct zm_l7 *l7, const struct zm_l7_decision *d);
/*
 * The destination's connection lifetimes (ns), from its connectionPool:
 * @http_idle_ns http.idleTimeout (default 1 h; a pooled upstream HTTP/1.1
 * connection idle that long is closed, not reused), @tcp_idle_ns
 * tcp.idleTimeout (a TCP stream silent both ways that long is cut; -1 when
 * not set: the caller's own), @max_age_ns tcp.maxConnectionDuration (an
 * upstream connection that old is not reused, a TCP stream is cut). 0: no
 * limit (Istio: "0s disables").
 */
struct zm_l7_conn_times {
	int64_t http_idle_ns, tcp_idle_ns, max_age_ns;
};
void zm_l7_conn_times(struct zm_l7 *l7, const struct zm_l7_decision *d, struct zm_l7_conn_times *t);
/*
 * connectionPool.http.maxRetries, Envoy's retry circuit breaker: before a
 * retry, zm_l7_retry_begin() takes one of the destination's outstanding
 * retries (false: all are out, do not retry); zm_l7_retry_end() gives it
 * back once that try is over.
 */
bool zm_l7_retry_begin(struct zm_l7 *l7, const struct zm_l7_decision *d);
void zm_l7_retry_end(struct zm_l7 *l7, const struct zm_l7_decision *d);
/* Its connectionPool.tcp.tcpKeepalive, or NULL when none is set. Valid as
 * long as @l7 (the snapshot) is. */
const struct zm_tcp_keepalive *zm_l7_tcp_keepalive(struct zm_l7 *l7, const struct zm_l7_decision *d);

/*
 * After a try on endpoint @ep of d->svc: @status is the HTTP status, or 0 for
 * a connect failure, reset or try timeout. Feeds outlier detection and ends
 * the try for LEAST_REQUEST: call it exactly once per successful zm_l7_pick().
 */
void zm_l7_report(struct zm_l7 *l7, const struct zm_l7_decision *d, int ep, int status,
		  int64_t now_ns);

/*
 * connectionPool admission for the decision's destination: 0 (admitted:
 * call zm_l7_release() when done) or -EBUSY (answer 503, flag UO).
 */
int zm_l7_admit(struct zm_l7 *l7, const struct zm_l7_decision *d);
void zm_l7_release(struct zm_l7 *l7, const struct zm_l7_decision *d);

/* True when a gRPC answer with grpc-status @gs should be retried per @d. */
bool zm_l7_should_retry_grpc(const struct zm_l7_decision *d, int gs);
/* True when @status (0 = connect failure/reset/timeout) should be retried per @d. */
bool zm_l7_should_retry(const struct zm_l7_decision *d, int status, bool connect_failed);

/* Istio's "destination_service" label for metrics: the FQDN, or "unknown". */
const char *zm_l7_svc_fqdn(const struct zm_l7_decision *d);

#endif /* ZMESH_L7ROUTE_H */
