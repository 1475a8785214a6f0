/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Typed C structures for the Istio config kinds (networking.istio.io and
 * security.istio.io), as read by the config model (zmesh/config.h).
 *
 * Field names follow Istio's YAML names in snake_case; one struct per Istio
 * message, named after it. Every value carries where it came from:
 *
 *   struct zm_cstr  v: owned NUL-free string, NULL when absent
 *   struct zm_cint  v: integer (int32/uint32/uint64 fields, range-checked)
 *   struct zm_cbool v
 *   struct zm_cdbl  v: double (Percent.value)
 *   struct zm_cdur  ns: a duration in nanoseconds ("10s", "1.5s", "500ms")
 *   struct zm_cenum v: an enum below, by its value
 *   an embedded message: starts with struct zm_cobj o (o.set when present)
 *   ZM_CLIST(T): T *v; size_t n (a YAML sequence)
 *   a map<string, T>: ZM_CLIST of entries { struct zm_cstr key; T val; },
 *                     in document order
 *
 * `set` tells whether the value was written in the YAML; `pos` is its
 * line/col in obj->file (0:0 when absent). Defaults: when a field is absent,
 * `v` (or `ns`) already holds Istio's default and `set` stays false, also
 * inside an absent parent message, so consumers read effective values
 * directly (e.g. dr->traffic_policy.load_balancer.simple.v is
 * ZM_LB_LEAST_REQUEST when nothing was written). The defaults are listed at
 * each field and in docs/config.md.
 *
 * Nothing here is a pointer into the YAML tree: a loaded object stands alone
 * and is freed with zm_cfg_obj_free().
 */
#ifndef ZMESH_ISTIO_H
#define ZMESH_ISTIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct zm_cpos {
	uint32_t line, col;		/* 1-based; 0 when the value is absent */
};

struct zm_cobj {
	struct zm_cpos pos;
	bool set;
};

struct zm_cstr {
	char *v;
	struct zm_cpos pos;
};

struct zm_cint {
	int64_t v;
	bool set;
	struct zm_cpos pos;
};

struct zm_cbool {
	bool v, set;
	struct zm_cpos pos;
};

struct zm_cdbl {
	double v;
	bool set;
	struct zm_cpos pos;
};

struct zm_cdur {
	int64_t ns;
	bool set;
	struct zm_cpos pos;
};

struct zm_cenum {
	int v;
	bool set;
	struct zm_cpos pos;
};

#define ZM_CLIST(T) struct { T *v; size_t n; struct zm_cpos pos; }

struct zm_ckv {				/* map<string, string> entry */
	struct zm_cstr key;
	struct zm_cstr val;
};
struct zm_ckint {			/* map<string, uint32> entry */
	struct zm_cstr key;
	struct zm_cint val;
};

typedef ZM_CLIST(struct zm_cstr) zm_cstrs;
typedef ZM_CLIST(struct zm_ckv) zm_cmap;

#define ZM_NS_PER_MS 1000000LL
#define ZM_NS_PER_S 1000000000LL

/* ---- shared messages -------------------------------------------------- */

struct zm_workload_selector {
	struct zm_cobj o;
	zm_cmap match_labels;
};

struct zm_policy_target_ref {		/* PolicyTargetReference */
	struct zm_cobj o;
	struct zm_cstr group, kind, name, ns;	/* ns: "namespace" */
};

struct zm_percent {
	struct zm_cobj o;
	struct zm_cdbl value;		/* 0..100 */
};

struct zm_port_selector {
	struct zm_cobj o;
	struct zm_cint number;		/* 1..65535 */
};

/* StringMatch: exactly one of exact, prefix, regex (RE2 syntax). */
struct zm_string_match {
	struct zm_cobj o;
	struct zm_cstr exact, prefix, regex;
};
struct zm_cmatch_kv {			/* map<string, StringMatch> entry */
	struct zm_cstr key;
	struct zm_string_match val;
};
typedef ZM_CLIST(struct zm_cmatch_kv) zm_cmatch_map;

/* ---- VirtualService ----------------------------------------------------- */

struct zm_destination {
	struct zm_cobj o;
	struct zm_cstr host;		/* required; short names are relative to the VS namespace */
	struct zm_cstr subset;
	struct zm_port_selector port;
};

struct zm_header_ops {			/* Headers.HeaderOperations */
	struct zm_cobj o;
	zm_cmap set, add;
	zm_cstrs remove;
};

struct zm_headers {
	struct zm_cobj o;
	struct zm_header_ops request, response;
};

struct zm_http_match {			/* HTTPMatchRequest */
	struct zm_cobj o;
	struct zm_cstr name;
	struct zm_string_match uri, scheme, method, authority;
	zm_cmatch_map headers;		/* keys lower-case; an empty match {} tests presence */
	struct zm_cint port;
	zm_cmap source_labels;
	zm_cstrs gateways;
	zm_cmatch_map query_params;
	struct zm_cbool ignore_uri_case;
	zm_cmatch_map without_headers;
	struct zm_cstr source_namespace;
	struct zm_cstr stat_prefix;
};

struct zm_http_route_dest {		/* HTTPRouteDestination */
	struct zm_cobj o;
	struct zm_destination destination;	/* required */
	struct zm_cint weight;		/* 0..100; a lone destination gets 100 */
	struct zm_headers headers;
};

enum zm_redirect_port { ZM_REDIRECT_FROM_PROTOCOL_DEFAULT, ZM_REDIRECT_FROM_REQUEST_PORT };

struct zm_http_redirect {
	struct zm_cobj o;
	struct zm_cstr uri, authority;
	struct zm_cint port;
	struct zm_cenum derive_port;	/* enum zm_redirect_port */
	struct zm_cstr scheme;
	struct zm_cint redirect_code;	/* default 301 */
};

struct zm_http_body {
	struct zm_cobj o;
	struct zm_cstr string, bytes;	/* one of; bytes is base64 */
};

struct zm_http_direct_response {
	struct zm_cobj o;
	struct zm_cint status;		/* required, 200..599 */
	struct zm_http_body body;
};

struct zm_delegate {
	struct zm_cobj o;
	struct zm_cstr name, ns;
};

struct zm_regex_rewrite {
	struct zm_cobj o;
	struct zm_cstr match, rewrite;
};

struct zm_http_rewrite {
	struct zm_cobj o;
	struct zm_cstr uri, authority;
	struct zm_regex_rewrite uri_regex_rewrite;
};

struct zm_http_retry {
	struct zm_cobj o;
	struct zm_cint attempts;	/* default 2 (Istio's default retry policy) */
	struct zm_cdur per_try_timeout;
	struct zm_cstr retry_on;	/* comma list; absent: Istio's default
					 * "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes" */
	struct zm_cbool retry_remote_localities;
	struct zm_cbool retry_ignore_previous_hosts;	/* default true */
	struct zm_cdur backoff;		/* default 25ms */
};

enum zm_cors_preflight { ZM_CORS_PREFLIGHT_UNSPECIFIED, ZM_CORS_PREFLIGHT_FORWARD, ZM_CORS_PREFLIGHT_IGNORE };

struct zm_cors_policy {
	struct zm_cobj o;
	zm_cstrs allow_origin;		/* deprecated: exact origins */
	ZM_CLIST(struct zm_string_match) allow_origins;
	zm_cstrs allow_methods, allow_headers, expose_headers;
	struct zm_cdur max_age;
	struct zm_cbool allow_credentials;
	struct zm_cenum unmatched_preflights;	/* enum zm_cors_preflight */
};

struct zm_fault_delay {
	struct zm_cobj o;
	struct zm_cdur fixed_delay;	/* required (exponentialDelay is not supported by Istio either) */
	struct zm_cdur exponential_delay;
	struct zm_cint percent;		/* deprecated, 0..100 */
	struct zm_percent percentage;	/* default 100 */
};

struct zm_fault_abort {
	struct zm_cobj o;
	struct zm_cint http_status;	/* one of http_status, grpc_status, http2_error */
	struct zm_cstr grpc_status, http2_error;
	struct zm_percent percentage;	/* default 100 */
};

struct zm_http_fault {			/* HTTPFaultInjection */
	struct zm_cobj o;
	struct zm_fault_delay delay;
	struct zm_fault_abort abort;
};

#define ZM_MAX_MIRRORS 8		/* HTTPRoute.mirrors: more is refused by validation */

struct zm_http_mirror {			/* HTTPMirrorPolicy */
	struct zm_cobj o;
	struct zm_destination destination;	/* required */
	struct zm_percent percentage;	/* default 100 */
};

struct zm_http_route {
	struct zm_cobj o;
	struct zm_cstr name;
	ZM_CLIST(struct zm_http_match) match;	/* empty: matches everything */
	ZM_CLIST(struct zm_http_route_dest) route;
	struct zm_http_redirect redirect;
	struct zm_http_direct_response direct_response;
	struct zm_delegate delegate;
	struct zm_http_rewrite rewrite;
	struct zm_cdur timeout;		/* absent: no timeout (Istio's default) */
	struct zm_http_retry retries;
	struct zm_http_fault fault;
	struct zm_destination mirror;
	struct zm_cint mirror_percent;	/* deprecated */
	struct zm_percent mirror_percentage;	/* default 100 */
	ZM_CLIST(struct zm_http_mirror) mirrors;
	struct zm_cors_policy cors_policy;
	struct zm_headers headers;
};

struct zm_l4_match {			/* L4MatchAttributes */
	struct zm_cobj o;
	zm_cstrs destination_subnets;
	struct zm_cint port;
	zm_cmap source_labels;
	zm_cstrs gateways;
	struct zm_cstr source_namespace;
};

struct zm_tls_match {			/* TLSMatchAttributes */
	struct zm_cobj o;
	zm_cstrs sni_hosts;		/* required */
	zm_cstrs destination_subnets;
	struct zm_cint port;
	zm_cmap source_labels;
	zm_cstrs gateways;
	struct zm_cstr source_namespace;
};

struct zm_route_dest {			/* RouteDestination (TCP/TLS) */
	struct zm_cobj o;
	struct zm_destination destination;
	struct zm_cint weight;
};

struct zm_tls_route {
	struct zm_cobj o;
	ZM_CLIST(struct zm_tls_match) match;	/* required */
	ZM_CLIST(struct zm_route_dest) route;
};

struct zm_tcp_route {
	struct zm_cobj o;
	ZM_CLIST(struct zm_l4_match) match;
	ZM_CLIST(struct zm_route_dest) route;
};

struct zm_virtual_service {
	struct zm_cobj o;
	zm_cstrs hosts;			/* absent only in a delegate VirtualService */
	zm_cstrs gateways;		/* absent: "mesh" */
	ZM_CLIST(struct zm_http_route) http;
	ZM_CLIST(struct zm_tls_route) tls;
	ZM_CLIST(struct zm_tcp_route) tcp;
	zm_cstrs export_to;
};

/* ---- DestinationRule ---------------------------------------------------- */

enum zm_lb_simple {
	ZM_LB_UNSPECIFIED, ZM_LB_LEAST_CONN, ZM_LB_RANDOM, ZM_LB_PASSTHROUGH,
	ZM_LB_ROUND_ROBIN, ZM_LB_LEAST_REQUEST,
};

struct zm_cookie_attr {
	struct zm_cobj o;
	struct zm_cstr name, value;
};

struct zm_http_cookie {
	struct zm_cobj o;
	struct zm_cstr name;		/* required */
	struct zm_cstr path;
	struct zm_cdur ttl;
	ZM_CLIST(struct zm_cookie_attr) attributes;
};

struct zm_ring_hash {
	struct zm_cobj o;
	struct zm_cint minimum_ring_size;
};

struct zm_maglev {
	struct zm_cobj o;
	struct zm_cint table_size;
};

/* ConsistentHashLB: one hash key (httpHeaderName, httpCookie, useSourceIp,
 * httpQueryParameterName) and at most one of ringHash, maglev. */
struct zm_consistent_hash {
	struct zm_cobj o;
	struct zm_cstr http_header_name;
	struct zm_http_cookie http_cookie;
	struct zm_cbool use_source_ip;
	struct zm_cstr http_query_parameter_name;
	struct zm_ring_hash ring_hash;
	struct zm_maglev maglev;
	struct zm_cint minimum_ring_size;	/* deprecated */
};

struct zm_locality_distribute {
	struct zm_cobj o;
	struct zm_cstr from;
	ZM_CLIST(struct zm_ckint) to;	/* locality -> weight */
};

struct zm_locality_failover {
	struct zm_cobj o;
	struct zm_cstr from, to;
};

struct zm_locality_lb {			/* LocalityLoadBalancerSetting */
	struct zm_cobj o;
	ZM_CLIST(struct zm_locality_distribute) distribute;
	ZM_CLIST(struct zm_locality_failover) failover;
	zm_cstrs failover_priority;
	struct zm_cbool enabled;
};

struct zm_warmup {
	struct zm_cobj o;
	struct zm_cdur duration;	/* required */
	struct zm_cdbl minimum_percent;	/* default 10 */
	struct zm_cdbl aggression;	/* default 1.0 */
};

struct zm_load_balancer {		/* LoadBalancerSettings */
	struct zm_cobj o;
	struct zm_cenum simple;		/* enum zm_lb_simple; default ZM_LB_LEAST_REQUEST */
	struct zm_consistent_hash consistent_hash;
	struct zm_locality_lb locality_lb_setting;
	struct zm_cdur warmup_duration_secs;
	struct zm_warmup warmup;
};

struct zm_tcp_keepalive {
	struct zm_cobj o;
	struct zm_cint probes;
	struct zm_cdur time, interval;
};

struct zm_tcp_pool {
	struct zm_cobj o;
	struct zm_cint max_connections;	/* default 2^32-1 */
	struct zm_cdur connect_timeout;	/* default 10s */
	struct zm_tcp_keepalive tcp_keepalive;
	struct zm_cdur max_connection_duration;
	struct zm_cdur idle_timeout;
};

enum zm_h2_upgrade { ZM_H2_DEFAULT, ZM_H2_DO_NOT_UPGRADE, ZM_H2_UPGRADE };

struct zm_http_pool {
	struct zm_cobj o;
	struct zm_cint http1_max_pending_requests;	/* default 2^32-1 */
	struct zm_cint http2_max_requests;		/* default 2^32-1 */
	struct zm_cint max_requests_per_connection;	/* default 0: unlimited */
	struct zm_cint max_retries;			/* default 2^32-1 */
	struct zm_cdur idle_timeout;			/* default 1h */
	struct zm_cenum h2_upgrade_policy;		/* enum zm_h2_upgrade */
	struct zm_cbool use_client_protocol;
	struct zm_cint max_concurrent_streams;
};

struct zm_connection_pool {
	struct zm_cobj o;
	struct zm_tcp_pool tcp;
	struct zm_http_pool http;
};

/* Active only when o.set; the defaults below apply inside it. */
struct zm_outlier_detection {
	struct zm_cobj o;
	struct zm_cbool split_external_local_origin_errors;
	struct zm_cint consecutive_local_origin_failures;
	struct zm_cint consecutive_gateway_errors;	/* default 0: off */
	struct zm_cint consecutive_5xx_errors;		/* default 5 */
	struct zm_cdur interval;			/* default 10s */
	struct zm_cdur base_ejection_time;		/* default 30s */
	struct zm_cint max_ejection_percent;		/* default 10 */
	struct zm_cint min_health_percent;		/* default 0 */
	struct zm_cint consecutive_errors;		/* deprecated */
};

/* A gRPC status code name (HTTPFaultInjection.Abort.grpcStatus, e.g.
 * "UNAVAILABLE") as its number 0..16; -1 when it is not one. */
int zm_grpc_status_code(const char *name);

enum zm_client_tls_mode { ZM_CTLS_DISABLE, ZM_CTLS_SIMPLE, ZM_CTLS_MUTUAL, ZM_CTLS_ISTIO_MUTUAL };

struct zm_client_tls {			/* ClientTLSSettings */
	struct zm_cobj o;
	struct zm_cenum mode;		/* enum zm_client_tls_mode; default DISABLE */
	struct zm_cstr client_certificate, private_key, ca_certificates, credential_name;
	zm_cstrs subject_alt_names;
	struct zm_cstr sni;
	struct zm_cbool insecure_skip_verify;
	struct zm_cstr ca_crl;
};

struct zm_port_traffic_policy {
	struct zm_cobj o;
	struct zm_port_selector port;	/* required */
	struct zm_load_balancer load_balancer;
	struct zm_connection_pool connection_pool;
	struct zm_outlier_detection outlier_detection;
	struct zm_client_tls tls;
};

struct zm_tunnel_settings {
	struct zm_cobj o;
	struct zm_cstr protocol;	/* CONNECT (default) or POST */
	struct zm_cstr target_host;	/* required */
	struct zm_cint target_port;	/* required */
};

enum zm_proxy_protocol_version { ZM_PROXY_V1, ZM_PROXY_V2 };

struct zm_proxy_protocol {
	struct zm_cobj o;
	struct zm_cenum version;
};

struct zm_retry_budget {
	struct zm_cobj o;
	struct zm_cdbl percent;
	struct zm_cint min_retry_concurrency;
};

struct zm_traffic_policy {
	struct zm_cobj o;
	struct zm_load_balancer load_balancer;
	struct zm_connection_pool connection_pool;
	struct zm_outlier_detection outlier_detection;
	struct zm_client_tls tls;
	ZM_CLIST(struct zm_port_traffic_policy) port_level_settings;
	struct zm_tunnel_settings tunnel;
	struct zm_proxy_protocol proxy_protocol;
	struct zm_retry_budget retry_budget;
};

struct zm_subset {
	struct zm_cobj o;
	struct zm_cstr name;		/* required, unique in the rule */
	zm_cmap labels;
	/* Overrides the rule's policy field by field (Istio merges them). */
	struct zm_traffic_policy traffic_policy;
};

struct zm_destination_rule {
	struct zm_cobj o;
	struct zm_cstr host;		/* required */
	struct zm_traffic_policy traffic_policy;
	ZM_CLIST(struct zm_subset) subsets;
	zm_cstrs export_to;
	struct zm_workload_selector workload_selector;
};

/* ---- Gateway -------------------------------------------------------------- */

struct zm_port {
	struct zm_cobj o;
	struct zm_cint number;		/* required */
	struct zm_cstr protocol;	/* required: HTTP|HTTPS|GRPC|GRPC-WEB|HTTP2|MONGO|MYSQL|REDIS|TCP|TLS|UDP */
	struct zm_cstr name;
	struct zm_cint target_port;
};

enum zm_server_tls_mode {
	ZM_STLS_PASSTHROUGH, ZM_STLS_SIMPLE, ZM_STLS_MUTUAL, ZM_STLS_AUTO_PASSTHROUGH,
	ZM_STLS_ISTIO_MUTUAL, ZM_STLS_OPTIONAL_MUTUAL,
};
enum zm_tls_version { ZM_TLS_AUTO, ZM_TLSV1_0, ZM_TLSV1_1, ZM_TLSV1_2, ZM_TLSV1_3 };

struct zm_tls_cert {			/* ServerTLSSettings.TLSCertificate */
	struct zm_cobj o;
	struct zm_cstr server_certificate, private_key, ca_certificates;
};

struct zm_server_tls {			/* ServerTLSSettings */
	struct zm_cobj o;
	struct zm_cbool https_redirect;
	struct zm_cenum mode;		/* enum zm_server_tls_mode; default PASSTHROUGH (proto zero) */
	struct zm_cstr server_certificate, private_key, ca_certificates, ca_crl;
	struct zm_cstr credential_name;	/* a kubernetes.io/tls Secret in the gateway's namespace */
	zm_cstrs credential_names;
	ZM_CLIST(struct zm_tls_cert) tls_certificates;
	zm_cstrs subject_alt_names, verify_certificate_spki, verify_certificate_hash;
	struct zm_cenum min_protocol_version, max_protocol_version;	/* enum zm_tls_version */
	zm_cstrs cipher_suites;
};

struct zm_server {
	struct zm_cobj o;
	struct zm_port port;		/* required */
	struct zm_cstr bind;
	zm_cstrs hosts;			/* required: [ns/]host, ns is a name, "*", "." or "~" */
	struct zm_server_tls tls;
	struct zm_cstr default_endpoint;
	struct zm_cstr name;
};

struct zm_gateway {
	struct zm_cobj o;
	ZM_CLIST(struct zm_server) servers;	/* required */
	zm_cmap selector;
};

/* ---- ServiceEntry ------------------------------------------------------- */

enum zm_se_location { ZM_SE_MESH_EXTERNAL, ZM_SE_MESH_INTERNAL };
enum zm_se_resolution { ZM_SE_NONE, ZM_SE_STATIC, ZM_SE_DNS, ZM_SE_DNS_ROUND_ROBIN };

struct zm_workload_entry {
	struct zm_cobj o;
	struct zm_cstr address;
	ZM_CLIST(struct zm_ckint) ports;	/* port name -> number */
	zm_cmap labels;
	struct zm_cstr network, locality;
	struct zm_cint weight;
	struct zm_cstr service_account;
};

struct zm_service_entry {
	struct zm_cobj o;
	zm_cstrs hosts;			/* required */
	zm_cstrs addresses;		/* IPs or CIDRs */
	ZM_CLIST(struct zm_port) ports;
	struct zm_cenum location;	/* enum zm_se_location; default MESH_EXTERNAL */
	struct zm_cenum resolution;	/* enum zm_se_resolution; default NONE */
	ZM_CLIST(struct zm_workload_entry) endpoints;
	struct zm_workload_selector workload_selector;
	zm_cstrs export_to;
	zm_cstrs subject_alt_names;
};

/* ---- PeerAuthentication --------------------------------------------------- */

/* UNSET inherits from the parent scope (workload <- namespace <- mesh root
 * namespace); at the top UNSET means PERMISSIVE. */
enum zm_mtls_mode { ZM_MTLS_UNSET, ZM_MTLS_DISABLE, ZM_MTLS_PERMISSIVE, ZM_MTLS_STRICT };

struct zm_mutual_tls {
	struct zm_cobj o;
	struct zm_cenum mode;		/* enum zm_mtls_mode; default UNSET */
};
struct zm_cmtls_kv {			/* portLevelMtls entry: key is a port number */
	struct zm_cstr key;
	struct zm_mutual_tls val;
};

struct zm_peer_authentication {
	struct zm_cobj o;
	struct zm_workload_selector selector;
	struct zm_mutual_tls mtls;
	ZM_CLIST(struct zm_cmtls_kv) port_level_mtls;	/* needs a selector */
};

/* ---- AuthorizationPolicy ---------------------------------------------------- */

enum zm_authz_action { ZM_AUTHZ_ALLOW, ZM_AUTHZ_DENY, ZM_AUTHZ_AUDIT, ZM_AUTHZ_CUSTOM };

struct zm_authz_source {
	struct zm_cobj o;
	zm_cstrs principals, not_principals, request_principals, not_request_principals;
	zm_cstrs namespaces, not_namespaces, ip_blocks, not_ip_blocks;
	zm_cstrs remote_ip_blocks, not_remote_ip_blocks;
	zm_cstrs service_accounts, not_service_accounts;
};

struct zm_authz_operation {
	struct zm_cobj o;
	zm_cstrs hosts, not_hosts, ports, not_ports, methods, not_methods, paths, not_paths;
};

struct zm_authz_from {
	struct zm_cobj o;
	struct zm_authz_source source;	/* required */
};

struct zm_authz_to {
	struct zm_cobj o;
	struct zm_authz_operation operation;	/* required */
};

struct zm_authz_condition {
	struct zm_cobj o;
	struct zm_cstr key;		/* required: one of Istio's condition keys */
	zm_cstrs values, not_values;
};

struct zm_authz_rule {
	struct zm_cobj o;
	ZM_CLIST(struct zm_authz_from) from;
	ZM_CLIST(struct zm_authz_to) to;
	ZM_CLIST(struct zm_authz_condition) when;
};

struct zm_authz_provider {
	struct zm_cobj o;
	struct zm_cstr name;
};

struct zm_authorization_policy {
	struct zm_cobj o;
	struct zm_workload_selector selector;
	struct zm_policy_target_ref target_ref;
	ZM_CLIST(struct zm_policy_target_ref) target_refs;
	ZM_CLIST(struct zm_authz_rule) rules;
	struct zm_cenum action;		/* enum zm_authz_action; default ALLOW */
	struct zm_authz_provider provider;	/* CUSTOM only */
};

/* ---- RequestAuthentication -------------------------------------------------- */

struct zm_jwt_header {
	struct zm_cobj o;
	struct zm_cstr name;		/* required */
	struct zm_cstr prefix;
};

struct zm_claim_to_header {
	struct zm_cobj o;
	struct zm_cstr header, claim;	/* both required */
};

struct zm_jwt_rule {
	struct zm_cobj o;
	struct zm_cstr issuer;		/* required */
	zm_cstrs audiences;
	struct zm_cstr jwks_uri;	/* http(s) URL; exclusive with jwks */
	struct zm_cstr jwks;		/* inline JWKS JSON with a "keys" array */
	ZM_CLIST(struct zm_jwt_header) from_headers;	/* absent: Authorization: Bearer */
	zm_cstrs from_params;				/* absent: access_token */
	struct zm_cstr output_payload_to_header;
	zm_cstrs from_cookies;
	struct zm_cbool forward_original_token;
	ZM_CLIST(struct zm_claim_to_header) output_claim_to_headers;
	struct zm_cdur timeout;		/* JWKS fetch timeout; default 5s */
};

struct zm_request_authentication {
	struct zm_cobj o;
	struct zm_workload_selector selector;
	struct zm_policy_target_ref target_ref;
	ZM_CLIST(struct zm_policy_target_ref) target_refs;
	ZM_CLIST(struct zm_jwt_rule) jwt_rules;
};

/* ---- metadata ---------------------------------------------------------------- */

struct zm_object_meta {
	struct zm_cobj o;
	struct zm_cstr name;		/* required */
	struct zm_cstr ns;		/* "namespace"; "default" when absent (namespaced kinds) */
	zm_cmap labels, annotations;
};

#endif /* ZMESH_ISTIO_H */
