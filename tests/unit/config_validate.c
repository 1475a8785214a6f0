// SPDX-License-Identifier: Apache-2.0
/*
 * Validation, one negative case per rule: a YAML snippet and the exact
 * error lines (file:line:col: path: message) it must give, sorted by
 * position. Table-driven, so a new rule is one more row.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness/test.h"
#include "zmesh/config.h"
#include "zmesh/yaml.h"

/* Every case starts with one of these: spec fields begin on line 5. */
#define VS "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r, namespace: ns}\nspec:\n"
#define DR "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r, namespace: ns}\nspec:\n"
#define GW "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g, namespace: ns}\nspec:\n"
#define SE "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: r, namespace: ns}\nspec:\n"
#define PA "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: r, namespace: ns}\nspec:\n"
#define AP "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: r, namespace: ns}\nspec:\n"
#define RA "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: r, namespace: ns}\nspec:\n"
/* A valid HTTP route to put rules around. */
#define ROUTE "  - route: [{destination: {host: a}}]\n"

#define GWM "  servers: [{port: {number: 443, protocol: HTTPS}, hosts: [a], tls: {mode: MUTUAL, credentialName: c, "
#define GWS "  servers: [{port: {number: 443, protocol: HTTPS}, hosts: [a], tls: {mode: SIMPLE, credentialName: c, "

struct vcase {
	const char *name;
	const char *yaml;
	const char *want;	/* error lines joined by '\n' */
};

static const struct vcase cases[] = {
	/* ---- types of every scalar kind ---- */
	{ "string given a number", VS "  hosts: [a]\n  http:\n  - name: 12\n    route: [{destination: {host: a}}]\n",
	  "t.yaml:7:11: spec.http[0].name: must be a string, got a number (quote it)" },
	{ "string given a bool", VS "  hosts: [yes]\n  http:\n" ROUTE,
	  "t.yaml:5:11: spec.hosts[0]: must be a string, got a boolean (quote it)" },
	{ "string given a mapping", VS "  hosts: [{a: b}]\n  http:\n" ROUTE,
	  "t.yaml:5:11: spec.hosts[0]: must be a string, got a mapping" },
	{ "integer given a string", VS "  hosts: [a]\n  http:\n  - match: [{port: \"80\"}]\n    route: [{destination: {host: a}}]\n",
	  "t.yaml:7:20: spec.http[0].match[0].port: must be an integer, got a string" },
	{ "integer out of range", VS "  hosts: [a]\n  http:\n  - match: [{port: 70000}]\n    route: [{destination: {host: a}}]\n",
	  "t.yaml:7:20: spec.http[0].match[0].port: 70000 is out of range (1 to 65535)" },
	{ "integer given a float", VS "  hosts: [a]\n  http:\n  - match: [{port: 80.5}]\n    route: [{destination: {host: a}}]\n",
	  "t.yaml:7:20: spec.http[0].match[0].port: must be an integer, got a number" },
	{ "bool given a word", VS "  hosts: [a]\n  http:\n  - match: [{ignoreUriCase: maybe}]\n    route: [{destination: {host: a}}]\n",
	  "t.yaml:7:29: spec.http[0].match[0].ignoreUriCase: must be true or false, got a string" },
	{ "double given a string", VS "  hosts: [a]\n  http:\n  - route: [{destination: {host: a}}]\n    mirror: {host: b}\n    mirrorPercentage: {value: \"10\"}\n",
	  "t.yaml:9:31: spec.http[0].mirrorPercentage.value: must be a number, got a string" },
	{ "percentage above 100", VS "  hosts: [a]\n  http:\n  - route: [{destination: {host: a}}]\n    mirror: {host: b}\n    mirrorPercentage: {value: 100.5}\n",
	  "t.yaml:9:31: spec.http[0].mirrorPercentage.value: 100.5 is out of range (0 to 100)" },
	{ "list given a scalar", VS "  hosts: a\n  http:\n" ROUTE,
	  "t.yaml:5:10: spec.hosts: must be a list, got a string" },
	{ "mapping given a list", DR "  host: a\n  subsets: [{name: v1, labels: [v1]}]\n",
	  "t.yaml:6:32: spec.subsets[0].labels: must be a mapping, got a list" },
	{ "message given a scalar", DR "  host: a\n  trafficPolicy: fast\n",
	  "t.yaml:6:18: spec.trafficPolicy: must be a mapping, got a string" },
	{ "NUL inside a string", VS "  hosts: [\"a\\0b\"]\n  http:\n" ROUTE,
	  "t.yaml:5:11: spec.hosts[0]: must not contain a NUL byte" },

	/* ---- unknown fields, required fields, kinds ---- */
	{ "unknown top-level field", VS "  hosts: [a]\n  http:\n" ROUTE "extra: 1\n",
	  "t.yaml:8:1: unknown field \"extra\" in VirtualService" },
	{ "unknown nested field", VS "  hosts: [a]\n  http:\n  - route: [{destination: {host: a, subnet: v1}}]\n",
	  "t.yaml:7:37: spec.http[0].route[0].destination: unknown field \"subnet\" in Destination" },
	{ "unknown metadata field", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a, labelz: {}}\n",
	  "t.yaml:3:21: metadata: unknown field \"labelz\" in ObjectMeta" },
	{ "required field missing", DR "  subsets: [{name: v1}]\n",
	  "t.yaml:5:3: spec.host: required field is missing" },
	{ "required destination host", VS "  hosts: [a]\n  http:\n  - route: [{destination: {subset: v1}}]\n",
	  "t.yaml:7:27: spec.http[0].route[0].destination.host: required field is missing" },
	{ "metadata missing", "apiVersion: v1\nkind: Namespace\n",
	  "t.yaml:1:1: metadata: required field is missing" },
	{ "name missing", "apiVersion: v1\nkind: Namespace\nmetadata: {labels: {a: b}}\n",
	  "t.yaml:3:11: metadata.name: required field is missing" },
	{ "spec missing", "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\n",
	  "t.yaml:1:1: spec: required field is missing" },
	{ "unknown kind", "apiVersion: v1\nkind: Deployment\nmetadata: {name: a}\n",
	  "t.yaml:2:7: kind: unknown kind \"Deployment\" (supported: Namespace, Pod, Service, ServiceAccount, Node, Secret, VirtualService, DestinationRule, Gateway, ServiceEntry, PeerAuthentication, AuthorizationPolicy, RequestAuthentication)" },
	{ "kind missing", "apiVersion: v1\nmetadata: {name: a}\n",
	  "t.yaml:1:1: kind: required field is missing" },
	{ "apiVersion does not serve kind", "apiVersion: security.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec: {hosts: [a], http: [{route: [{destination: {host: a}}]}]}\n",
	  "t.yaml:1:13: apiVersion: apiVersion \"security.istio.io/v1\" does not serve kind VirtualService (want networking.istio.io/v1, networking.istio.io/v1beta1, networking.istio.io/v1alpha3)" },
	{ "cluster-scoped kind with namespace", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a, namespace: b}\n",
	  "t.yaml:3:32: metadata.namespace: Namespace is cluster-scoped: it takes no namespace" },
	{ "bad object name", "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: Bad_Name}\n",
	  "t.yaml:3:18: metadata.name: \"Bad_Name\": must consist of lower-case letters, digits, '-' and '.' (RFC 1123 subdomain)" },
	{ "bad label key", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a, labels: {\"-x\": b}}\n",
	  "t.yaml:3:30: metadata.labels[-x]: invalid key: must start and end with a letter or digit" },
	{ "document not a mapping", "- a\n- b\n",
	  "t.yaml:1:1: a document must be a mapping" },

	/* ---- enums: every misspelling names the allowed values ---- */
	{ "load balancer enum", DR "  host: a\n  trafficPolicy: {loadBalancer: {simple: ROUNDROBIN}}\n",
	  "t.yaml:6:42: spec.trafficPolicy.loadBalancer.simple: unknown value \"ROUNDROBIN\", want one of UNSPECIFIED, LEAST_CONN, RANDOM, PASSTHROUGH, ROUND_ROBIN, LEAST_REQUEST" },
	{ "mtls mode enum", PA "  mtls: {mode: strict}\n",
	  "t.yaml:5:16: spec.mtls.mode: unknown value \"strict\", want one of UNSET, DISABLE, PERMISSIVE, STRICT" },
	{ "action enum", AP "  action: ALLOWED\n",
	  "t.yaml:5:11: spec.action: unknown value \"ALLOWED\", want one of ALLOW, DENY, AUDIT, CUSTOM" },
	{ "client tls mode enum", DR "  host: a\n  trafficPolicy: {tls: {mode: MUTUAL_TLS}}\n",
	  "t.yaml:6:31: spec.trafficPolicy.tls.mode: unknown value \"MUTUAL_TLS\", want one of DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL" },
	{ "server tls mode enum", GW "  servers: [{port: {number: 443, protocol: HTTPS}, hosts: [a], tls: {mode: SIMPLES}}]\n",
	  "t.yaml:5:76: spec.servers[0].tls.mode: unknown value \"SIMPLES\", want one of PASSTHROUGH, SIMPLE, MUTUAL, AUTO_PASSTHROUGH, ISTIO_MUTUAL, OPTIONAL_MUTUAL" },
	{ "resolution enum", SE "  hosts: [a.example.com]\n  resolution: DNSS\n",
	  "t.yaml:6:15: spec.resolution: unknown value \"DNSS\", want one of NONE, STATIC, DNS, DNS_ROUND_ROBIN" },
	{ "location enum", SE "  hosts: [a.example.com]\n  location: EXTERNAL\n",
	  "t.yaml:6:13: spec.location: unknown value \"EXTERNAL\", want one of MESH_EXTERNAL, MESH_INTERNAL" },
	{ "h2 upgrade enum", DR "  host: a\n  trafficPolicy: {connectionPool: {http: {h2UpgradePolicy: YES_PLEASE}}}\n",
	  "t.yaml:6:60: spec.trafficPolicy.connectionPool.http.h2UpgradePolicy: unknown value \"YES_PLEASE\", want one of DEFAULT, DO_NOT_UPGRADE, UPGRADE" },
	{ "tls version enum", GW "  servers: [{port: {number: 443, protocol: HTTPS}, hosts: [a], tls: {mode: SIMPLE, credentialName: c, minProtocolVersion: TLSV1_4}}]\n",
	  "t.yaml:5:123: spec.servers[0].tls.minProtocolVersion: unknown value \"TLSV1_4\", want one of TLS_AUTO, TLSV1_0, TLSV1_1, TLSV1_2, TLSV1_3" },

	/* ---- durations ---- */
	{ "duration without unit", VS "  hosts: [a]\n  http:\n" ROUTE "    timeout: 10\n",
	  "t.yaml:8:14: spec.http[0].timeout: invalid duration \"10\" (want e.g. 10s, 1.5s, 500ms, 1m, 1h)" },
	{ "duration below 1ms", VS "  hosts: [a]\n  http:\n" ROUTE "    timeout: 500us\n",
	  "t.yaml:8:14: spec.http[0].timeout: duration must be at least 1ms" },
	{ "duration below ms precision", VS "  hosts: [a]\n  http:\n" ROUTE "    timeout: 1.5ms\n",
	  "t.yaml:8:14: spec.http[0].timeout: only durations to ms precision are supported" },
	{ "negative duration", DR "  host: a\n  trafficPolicy: {outlierDetection: {interval: -1s}}\n",
	  "t.yaml:6:48: spec.trafficPolicy.outlierDetection.interval: invalid duration \"-1s\" (want e.g. 10s, 1.5s, 500ms, 1m, 1h)" },
	{ "duration too long", VS "  hosts: [a]\n  http:\n" ROUTE "    timeout: 99999999999999999h\n",
	  "t.yaml:8:14: spec.http[0].timeout: duration \"99999999999999999h\" is too long" },

	/* ---- regexes (RE2 syntax) ---- */
	{ "regex backreference", VS "  hosts: [a]\n  http:\n  - match: [{uri: {regex: '(a)\\1'}}]\n    route: [{destination: {host: a}}]\n",
	  "t.yaml:7:27: spec.http[0].match[0].uri.regex: \"(a)\\x5c1\": backreferences are not supported in RE2" },
	{ "regex lookahead", VS "  hosts: [a]\n  http:\n  - match: [{uri: {regex: 'a(?=b)'}}]\n    route: [{destination: {host: a}}]\n",
	  "t.yaml:7:27: spec.http[0].match[0].uri.regex: \"a(?=b)\": lookahead is not supported in RE2" },
	{ "regex lookbehind", VS "  hosts: [a]\n  http:\n  - match: [{headers: {x: {regex: '(?<!a)b'}}}]\n    route: [{destination: {host: a}}]\n",
	  "t.yaml:7:35: spec.http[0].match[0].headers[x].regex: \"(?<!a)b\": lookbehind is not supported in RE2" },
	{ "regex unbalanced", VS "  hosts: [a]\n  http:\n  - match: [{uri: {regex: '/api/(v1|v2'}}]\n    route: [{destination: {host: a}}]\n",
	  "t.yaml:7:27: spec.http[0].match[0].uri.regex: \"/api/(v1|v2\": missing closing )" },
	{ "regex possessive", VS "  hosts: [a]\n  http:\n  - match: [{uri: {regex: 'a*+'}}]\n    route: [{destination: {host: a}}]\n",
	  "t.yaml:7:27: spec.http[0].match[0].uri.regex: \"a*+\": bad repetition operator (RE2 has no possessive or stacked repetition)" },
	{ "regex empty", VS "  hosts: [a]\n  http:\n  - match: [{uri: {regex: ''}}]\n    route: [{destination: {host: a}}]\n",
	  "t.yaml:7:27: spec.http[0].match[0].uri.regex: \"\": regex must not be empty" },
	{ "string match with two kinds", VS "  hosts: [a]\n  http:\n  - match: [{uri: {exact: /a, prefix: /b}}]\n    route: [{destination: {host: a}}]\n",
	  "t.yaml:7:19: spec.http[0].match[0].uri: only one of exact, prefix or regex may be set" },
	{ "string match empty", VS "  hosts: [a]\n  http:\n  - match: [{uri: {}}]\n    route: [{destination: {host: a}}]\n",
	  "t.yaml:7:19: spec.http[0].match[0].uri: one of exact, prefix or regex is required" },

	/* ---- routes ---- */
	{ "weights sum", VS "  hosts: [payment]\n  http:\n  - route:\n    - destination: {host: payment, subset: v1}\n      weight: 90\n    - destination: {host: payment, subset: v2}\n      weight: 20\n",
	  "t.yaml:11:15: spec.http[0].route[1].weight: weights sum to 110, want 100" },
	{ "weights missing", VS "  hosts: [a]\n  tcp:\n  - route: [{destination: {host: a}}, {destination: {host: b}}]\n",
	  "t.yaml:7:39: spec.tcp[0].route[1].weight: weights sum to 0, want 100 (set a weight on each destination)" },
	{ "weight above 100", VS "  hosts: [a]\n  http:\n  - route: [{destination: {host: a}, weight: 101}]\n",
	  "t.yaml:7:46: spec.http[0].route[0].weight: 101 is out of range (0 to 100)" },
	{ "route and redirect", VS "  hosts: [a]\n  http:\n" ROUTE "    redirect: {uri: /b}\n",
	  "t.yaml:8:15: spec.http[0].redirect: HTTP route cannot contain both route and redirect" },
	{ "no action", VS "  hosts: [a]\n  http:\n  - match: [{uri: {prefix: /}}]\n",
	  "t.yaml:7:5: spec.http[0].route: HTTP route needs one of route, redirect, directResponse or delegate" },
	{ "redirect and rewrite", VS "  hosts: [a]\n  http:\n  - redirect: {uri: /b}\n    rewrite: {uri: /c}\n",
	  "t.yaml:8:14: spec.http[0].rewrite: HTTP route rule cannot contain both rewrite and redirect" },
	{ "empty redirect", VS "  hosts: [a]\n  http:\n  - redirect: {redirectCode: 302}\n",
	  "t.yaml:7:15: spec.http[0].redirect: redirect must specify uri, authority, scheme, port or derivePort" },
	{ "redirect code", VS "  hosts: [a]\n  http:\n  - redirect: {uri: /b, redirectCode: 200}\n",
	  "t.yaml:7:39: spec.http[0].redirect.redirectCode: 200 is out of range (300 to 399)" },
	{ "direct response status", VS "  hosts: [a]\n  http:\n  - directResponse: {status: 600}\n",
	  "t.yaml:7:30: spec.http[0].directResponse.status: 600 is out of range (200 to 599)" },
	{ "empty fault", VS "  hosts: [a]\n  http:\n" ROUTE "    fault: {}\n",
	  "t.yaml:8:12: spec.http[0].fault: fault injection must have at least one of delay or abort" },
	{ "abort without status", VS "  hosts: [a]\n  http:\n" ROUTE "    fault: {abort: {percentage: {value: 5}}}\n",
	  "t.yaml:8:20: spec.http[0].fault.abort.httpStatus: one of httpStatus, grpcStatus or http2Error is required" },
	{ "abort status", VS "  hosts: [a]\n  http:\n" ROUTE "    fault: {abort: {httpStatus: 99}}\n",
	  "t.yaml:8:33: spec.http[0].fault.abort.httpStatus: 99 is out of range (200 to 599)" },
	{ "delay without fixedDelay", VS "  hosts: [a]\n  http:\n" ROUTE "    fault: {delay: {percentage: {value: 5}}}\n",
	  "t.yaml:8:20: spec.http[0].fault.delay.fixedDelay: required field is missing" },
	{ "retryOn", VS "  hosts: [a]\n  http:\n" ROUTE "    retries: {attempts: 3, retryOn: \"5xx,oops\"}\n",
	  "t.yaml:8:37: spec.http[0].retries.retryOn: \"5xx,oops\": invalid retryOn policy (want items such as 5xx, gateway-error, reset, connect-failure, refused-stream, retriable-4xx, retriable-status-codes, cancelled, unavailable, or an HTTP status code)" },
	{ "mirror and mirrors", VS "  hosts: [a]\n  http:\n" ROUTE "    mirror: {host: b}\n    mirrors: [{destination: {host: c}}]\n",
	  "t.yaml:9:14: spec.http[0].mirrors: only one of mirror or mirrors may be set" },
	{ "too many mirrors", VS "  hosts: [a]\n  http:\n" ROUTE "    mirrors: [{destination: {host: c}}, {destination: {host: c}}, "
	  "{destination: {host: c}}, {destination: {host: c}}, {destination: {host: c}}, {destination: {host: c}}, "
	  "{destination: {host: c}}, {destination: {host: c}}, {destination: {host: c}}]\n",
	  "t.yaml:8:14: spec.http[0].mirrors: at most 8 mirrors are supported by zmesh" },
	{ "cors method", VS "  hosts: [a]\n  http:\n" ROUTE "    corsPolicy: {allowMethods: [get]}\n",
	  "t.yaml:8:33: spec.http[0].corsPolicy.allowMethods[0]: \"get\": HTTP methods are case-sensitive: write it in upper case" },
	{ "header name", VS "  hosts: [a]\n  http:\n" ROUTE "    headers: {request: {set: {\"bad header\": x}}}\n",
	  "t.yaml:8:31: spec.http[0].headers.request.set[bad header]: invalid key: invalid HTTP header name" },
	{ "no routes at all", VS "  hosts: [a]\n",
	  "t.yaml:5:3: spec: http, tcp or tls must be provided in virtual service" },
	{ "tls route without match", VS "  hosts: [a]\n  tls:\n  - route: [{destination: {host: a}}]\n",
	  "t.yaml:7:5: spec.tls[0].match: required field is missing" },

	/* ---- host names ---- */
	{ "bad host", VS "  hosts: [foo_bar.com]\n  http:\n" ROUTE,
	  "t.yaml:5:11: spec.hosts[0]: \"foo_bar.com\": invalid host name (want DNS labels of letters, digits and '-', e.g. reviews.default.svc.cluster.local or *.example.com)" },
	{ "wildcard in the middle", VS "  hosts: [\"foo.*.com\"]\n  http:\n" ROUTE,
	  "t.yaml:5:11: spec.hosts[0]: \"foo.*.com\": a wildcard is only allowed as a leading \"*.\"" },
	{ "star host bound to mesh", VS "  hosts: [\"*\"]\n  http:\n" ROUTE,
	  "t.yaml:5:11: spec.hosts[0]: wildcard host * is not allowed for virtual services bound to the mesh gateway" },
	{ "destination host star", VS "  hosts: [a]\n  http:\n  - route: [{destination: {host: \"*\"}}]\n",
	  "t.yaml:7:34: spec.http[0].route[0].destination.host: \"*\": invalid destination host *" },
	{ "service entry host star", SE "  hosts: [\"*\"]\n",
	  "t.yaml:5:11: spec.hosts[0]: \"*\": invalid host * (a ServiceEntry host must name something)" },
	{ "gateway server host namespace", GW "  servers: [{port: {number: 80, protocol: HTTP}, hosts: [\"Bad_NS/a.com\"]}]\n",
	  "t.yaml:5:58: spec.servers[0].hosts[0]: \"Bad_NS/a.com\": namespace in NAMESPACE/HOST must be a name, \"*\", \".\" or \"~\"" },

	/* ---- gateways ---- */
	{ "gateway reference syntax", VS "  hosts: [a]\n  gateways: [a/b/c]\n  http:\n" ROUTE,
	  "t.yaml:6:14: spec.gateways[0]: \"a/b/c\": invalid gateway reference (want \"mesh\", NAME or NAMESPACE/NAME)" },
	{ "https server without tls", GW "  servers: [{port: {number: 443, protocol: HTTPS}, hosts: [a]}]\n",
	  "t.yaml:5:44: spec.servers[0].tls: server must have TLS settings for HTTPS/TLS protocols" },
	{ "simple tls without credential", GW "  servers: [{port: {number: 443, protocol: HTTPS}, hosts: [a], tls: {mode: SIMPLE}}]\n",
	  "t.yaml:5:76: spec.servers[0].tls.mode: SIMPLE TLS needs credentialName, or serverCertificate and privateKey" },
	{ "mutual tls without ca", GW "  servers: [{port: {number: 443, protocol: HTTPS}, hosts: [a], tls: {mode: MUTUAL, serverCertificate: /c, privateKey: /k}}]\n",
	  "t.yaml:5:76: spec.servers[0].tls.mode: MUTUAL TLS needs caCertificates (or credentialName)" },
	{ "credentialName and credentialNames", GW "  servers: [{port: {number: 443, protocol: HTTPS}, hosts: [a], tls: {mode: SIMPLE, credentialName: c, credentialNames: [d]}}]\n",
	  "t.yaml:5:120: spec.servers[0].tls.credentialNames: only one of credentialName and credentialNames may be set" },
	{ "three credentialNames", GW "  servers: [{port: {number: 443, protocol: HTTPS}, hosts: [a], tls: {mode: SIMPLE, credentialNames: [c, d, e]}}]\n",
	  "t.yaml:5:101: spec.servers[0].tls.credentialNames: at most 2 entries (e.g. an RSA and an ECDSA certificate)" },
	{ "istio_mutual with a credential", GW "  servers: [{port: {number: 443, protocol: HTTPS}, hosts: [a], tls: {mode: ISTIO_MUTUAL, credentialNames: [c]}}]\n",
	  "t.yaml:5:76: spec.servers[0].tls.mode: ISTIO_MUTUAL TLS does not take certificates or credentialName" },
	{ "tls on plain http", GW "  servers: [{port: {number: 80, protocol: HTTP}, hosts: [a], tls: {mode: SIMPLE, credentialName: c}}]\n",
	  "t.yaml:5:67: spec.servers[0].tls: server cannot have TLS settings for plain text ports (only httpsRedirect)" },
	{ "unknown protocol", GW "  servers: [{port: {number: 80, protocol: HTTP3}, hosts: [a]}]\n",
	  "t.yaml:5:43: spec.servers[0].port.protocol: \"HTTP3\": unknown protocol (want HTTP, HTTPS, GRPC, GRPC-WEB, HTTP2, MONGO, MYSQL, REDIS, TCP, TLS or UDP)" },
	{ "duplicate server port names", GW "  servers:\n  - {port: {number: 80, protocol: HTTP, name: web}, hosts: [a]}\n  - {port: {number: 81, protocol: HTTP, name: web}, hosts: [b]}\n",
	  "t.yaml:7:47: spec.servers[1].port.name: port names in servers must be unique: duplicate name web" },
	{ "servers missing", GW "  selector: {istio: ingressgateway}\n",
	  "t.yaml:5:3: spec.servers: required field is missing" },
	/* ServerTLSSettings the gateway enforces: bad values and unsupported fields are errors */
	{ "san with a space", GW GWM "subjectAltNames: [\"a b\"]}}]\n",
	  "t.yaml:5:121: spec.servers[0].tls.subjectAltNames[0]: \"a b\": not a DNS, URI, email or IP subject alternative name (space, control or non-ASCII byte)" },
	{ "spki not base64", GW GWM "verifyCertificateSpki: [\"abc\"]}}]\n",
	  "t.yaml:5:127: spec.servers[0].tls.verifyCertificateSpki[0]: \"abc\": not a base64 SHA-256 digest (44 characters)" },
	{ "hash not hex", GW GWM "verifyCertificateHash: [\"zz\"]}}]\n",
	  "t.yaml:5:127: spec.servers[0].tls.verifyCertificateHash[0]: \"zz\": not a hex SHA-256 digest (64 hex digits, colons between bytes optional)" },
	{ "hash short", GW GWM "verifyCertificateHash: [\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\"]}}]\n",
	  "t.yaml:5:127: spec.servers[0].tls.verifyCertificateHash[0]: \"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\": not a hex SHA-256 digest (64 hex digits, colons between bytes optional)" },
	{ "pins on simple", GW GWS "verifyCertificateHash: [\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"]}}]\n",
	  "t.yaml:5:126: spec.servers[0].tls.verifyCertificateHash: needs tls.mode MUTUAL or OPTIONAL_MUTUAL, not SIMPLE" },
	{ "san on simple", GW GWS "subjectAltNames: [a.example.com]}}]\n",
	  "t.yaml:5:120: spec.servers[0].tls.subjectAltNames: needs tls.mode MUTUAL or OPTIONAL_MUTUAL, not SIMPLE" },
	{ "crl on simple", GW GWS "caCrl: /etc/crl.pem}}]\n",
	  "t.yaml:5:110: spec.servers[0].tls.caCrl: needs tls.mode MUTUAL or OPTIONAL_MUTUAL, not SIMPLE" },
	{ "unknown cipher", GW GWS "cipherSuites: [ECDHE-RSA-AES128-GCM-SHA256, RC4-MD5]}}]\n",
	  "t.yaml:5:147: spec.servers[0].tls.cipherSuites[1]: \"RC4-MD5\": unknown TLS 1.2 cipher suite (want e.g. ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-RSA-AES256-GCM-SHA384, ECDHE-RSA-CHACHA20-POLY1305, AES128-GCM-SHA256)" },
	{ "max below 1.2", GW GWS "maxProtocolVersion: TLSV1_1}}]\n",
	  "t.yaml:5:123: spec.servers[0].tls.maxProtocolVersion: below TLSV1_2: zmesh accepts TLS 1.2 and 1.3 only" },
	{ "max below min", GW GWS "minProtocolVersion: TLSV1_3, maxProtocolVersion: TLSV1_2}}]\n",
	  "t.yaml:5:123: spec.servers[0].tls.minProtocolVersion: minProtocolVersion is above maxProtocolVersion" },
	{ "cipher on passthrough", GW "  servers: [{port: {number: 443, protocol: TLS}, hosts: [a], tls: {mode: PASSTHROUGH, cipherSuites: [AES128-SHA]}}]\n",
	  "t.yaml:5:101: spec.servers[0].tls.cipherSuites: only for servers that terminate TLS (SIMPLE, MUTUAL, OPTIONAL_MUTUAL, ISTIO_MUTUAL)" },
	{ "bind", GW "  servers: [{port: {number: 80, protocol: HTTP}, hosts: [a], bind: 10.0.0.1}]\n",
	  "t.yaml:5:68: spec.servers[0].bind: not supported by zmesh (the gateway listens on all its addresses)" },
	{ "defaultEndpoint", GW "  servers: [{port: {number: 80, protocol: HTTP}, hosts: [a], defaultEndpoint: 127.0.0.1:8080}]\n",
	  "t.yaml:5:79: spec.servers[0].defaultEndpoint: not supported by zmesh" },
	{ "tlsCertificates", GW GWS "tlsCertificates: [{serverCertificate: /c, privateKey: /k}]}}]\n",
	  "t.yaml:5:120: spec.servers[0].tls.tlsCertificates: not supported by zmesh (use credentialName(s) or serverCertificate/privateKey)" },

	/* ---- destination rules ---- */
	{ "duplicate subsets", DR "  host: a\n  subsets: [{name: v1}, {name: v1}]\n",
	  "t.yaml:6:32: spec.subsets[1].name: duplicate subset name \"v1\" (also at line 6)" },
	{ "subset name", DR "  host: a\n  subsets: [{name: V1}]\n",
	  "t.yaml:6:20: spec.subsets[0].name: \"V1\": must start and end with a lower-case letter or digit (RFC 1123 label)" },
	{ "simple and consistentHash", DR "  host: a\n  trafficPolicy: {loadBalancer: {simple: RANDOM, consistentHash: {useSourceIp: true}}}\n",
	  "t.yaml:6:66: spec.trafficPolicy.loadBalancer.consistentHash: only one of simple or consistentHash may be set" },
	{ "two hash keys", DR "  host: a\n  trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, httpHeaderName: x}}}\n",
	  "t.yaml:6:50: spec.trafficPolicy.loadBalancer.consistentHash: exactly one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName is required" },
	{ "empty traffic policy", DR "  host: a\n  trafficPolicy: {}\n",
	  "t.yaml:6:18: spec.trafficPolicy: traffic policy must have at least one field" },
	{ "outlier percent", DR "  host: a\n  trafficPolicy: {outlierDetection: {maxEjectionPercent: 150}}\n",
	  "t.yaml:6:58: spec.trafficPolicy.outlierDetection.maxEjectionPercent: 150 is out of range (0 to 100)" },
	{ "mutual without certs", DR "  host: a\n  trafficPolicy: {tls: {mode: MUTUAL}}\n",
	  "t.yaml:6:31: spec.trafficPolicy.tls.mode: MUTUAL: TLS origination is not supported by zmesh" },
	{ "duplicate port level settings", DR "  host: a\n  trafficPolicy:\n    portLevelSettings:\n    - {port: {number: 80}, loadBalancer: {simple: RANDOM}}\n    - {port: {number: 80}, loadBalancer: {simple: RANDOM}}\n",
	  "t.yaml:9:23: spec.trafficPolicy.portLevelSettings[1].port.number: duplicate port 80 in portLevelSettings" },
	{ "port level settings without a number", DR "  host: a\n  trafficPolicy:\n    portLevelSettings: [{port: {}, loadBalancer: {simple: RANDOM}}]\n",
	  "t.yaml:7:32: spec.trafficPolicy.portLevelSettings[0].port.number: required field is missing" },

	/* ---- not done by zmesh: refused, never ignored (fail closed) ---- */
	{ "tls origination SIMPLE", DR "  host: a\n  trafficPolicy:\n    tls:\n      mode: SIMPLE\n",
	  "t.yaml:8:13: spec.trafficPolicy.tls.mode: SIMPLE: TLS origination is not supported by zmesh" },
	{ "tls origination in a subset", DR "  host: a\n  subsets: [{name: v1, trafficPolicy: {tls: {mode: MUTUAL, credentialName: c}}}]\n",
	  "t.yaml:6:52: spec.subsets[0].trafficPolicy.tls.mode: MUTUAL: TLS origination is not supported by zmesh" },
	{ "tls sans with istio mutual", DR "  host: a\n  trafficPolicy: {tls: {mode: ISTIO_MUTUAL, subjectAltNames: [spiffe://x/ns/a/sa/b]}}\n",
	  "t.yaml:6:62: spec.trafficPolicy.tls.subjectAltNames: not supported by zmesh (HBONE verifies the destination's mesh identity)" },
	{ "tls sni", DR "  host: a\n  trafficPolicy: {tls: {sni: a.example.com}}\n",
	  "t.yaml:6:30: spec.trafficPolicy.tls.sni: not supported by zmesh (no TLS origination)" },
	{ "tunnel", DR "  host: a\n  trafficPolicy: {tunnel: {targetHost: b, targetPort: 8080}}\n",
	  "t.yaml:6:27: spec.trafficPolicy.tunnel: not supported by zmesh (HBONE is its tunnel)" },
	{ "proxyProtocol", DR "  host: a\n  trafficPolicy: {proxyProtocol: {version: V2}}\n",
	  "t.yaml:6:34: spec.trafficPolicy.proxyProtocol: not supported by zmesh" },
	{ "localityLbSetting", DR "  host: a\n  trafficPolicy: {loadBalancer: {localityLbSetting: {enabled: true}}}\n",
	  "t.yaml:6:53: spec.trafficPolicy.loadBalancer.localityLbSetting: locality load balancing is not supported by zmesh (every endpoint is one locality)" },
	{ "warmupDurationSecs", DR "  host: a\n  trafficPolicy: {loadBalancer: {warmupDurationSecs: 60s}}\n",
	  "t.yaml:6:54: spec.trafficPolicy.loadBalancer.warmupDurationSecs: slow start is not supported by zmesh" },
	{ "warmup", DR "  host: a\n  subsets: [{name: v1, trafficPolicy: {loadBalancer: {warmup: {duration: 60s}}}}]\n",
	  "t.yaml:6:63: spec.subsets[0].trafficPolicy.loadBalancer.warmup: slow start is not supported by zmesh" },
	{ "retryRemoteLocalities", VS "  hosts: [a]\n  http:\n" ROUTE "    retries: {attempts: 2, retryRemoteLocalities: true}\n",
	  "t.yaml:8:51: spec.http[0].retries.retryRemoteLocalities: not supported by zmesh (no locality-aware routing)" },
	{ "abort grpcStatus name", VS "  hosts: [a]\n  http:\n" ROUTE "    fault: {abort: {grpcStatus: UNAVAILABLEE}}\n",
	  "t.yaml:8:33: spec.http[0].fault.abort.grpcStatus: UNAVAILABLEE: not a gRPC status code name (e.g. UNAVAILABLE, INTERNAL, DEADLINE_EXCEEDED)" },
	{ "abort http2Error", VS "  hosts: [a]\n  http:\n" ROUTE "    fault: {abort: {http2Error: REFUSED_STREAM}}\n",
	  "t.yaml:8:33: spec.http[0].fault.abort.http2Error: REFUSED_STREAM: not supported by zmesh (use httpStatus)" },
	{ "delegate", VS "  hosts: [a]\n  http:\n  - delegate: {name: b, namespace: ns}\n",
	  "t.yaml:7:15: spec.http[0].delegate: delegate virtual services are not supported by zmesh (write the routes in this one)" },

	/* ---- service entries ---- */
	{ "static endpoint not an IP", SE "  hosts: [a.example.com]\n  ports: [{number: 80, name: http}]\n  resolution: STATIC\n  endpoints: [{address: db.example.com}]\n",
	  "t.yaml:8:25: spec.endpoints[0].address: resolution STATIC needs IP addresses, got \"db.example.com\"" },
	{ "duplicate port number", SE "  hosts: [a.example.com]\n  ports: [{number: 80, name: a}, {number: 80, name: b}]\n",
	  "t.yaml:6:43: spec.ports[1].number: port number 80 is not unique" },
	{ "bad address", SE "  hosts: [a.example.com]\n  addresses: [10.0.0.0/40]\n",
	  "t.yaml:6:15: spec.addresses[0]: \"10.0.0.0/40\": invalid CIDR prefix length" },
	{ "endpoint port not declared", SE "  hosts: [a.example.com]\n  ports: [{number: 80, name: http}]\n  resolution: STATIC\n  endpoints: [{address: 10.0.0.1, ports: {grpc: 90}}]\n",
	  "t.yaml:8:43: spec.endpoints[0].ports: endpoint port \"grpc\" is not a port name of the service entry" },

	/* ---- peer authentication ---- */
	{ "portLevelMtls without selector", PA "  mtls: {mode: STRICT}\n  portLevelMtls:\n    8080: {mode: PERMISSIVE}\n",
	  "t.yaml:7:5: spec.portLevelMtls: portLevelMtls requires a workload selector (selector.matchLabels)" },
	{ "portLevelMtls key", PA "  selector: {matchLabels: {app: a}}\n  portLevelMtls:\n    http: {mode: PERMISSIVE}\n",
	  "t.yaml:7:5: spec.portLevelMtls[http]: invalid key: invalid port (want 1-65535)" },

	/* ---- authorization policies ---- */
	{ "custom without provider", AP "  action: CUSTOM\n  rules: [{}]\n",
	  "t.yaml:5:11: spec.action: action CUSTOM needs provider.name" },
	{ "provider without custom", AP "  action: DENY\n  provider: {name: ext}\n  rules: [{}]\n",
	  "t.yaml:6:13: spec.provider: provider is only allowed with action CUSTOM" },
	{ "ipBlocks CIDR", AP "  rules: [{from: [{source: {ipBlocks: [10.0.0.300]}}]}]\n",
	  "t.yaml:5:40: spec.rules[0].from[0].source.ipBlocks[0]: \"10.0.0.300\": invalid IP address or CIDR" },
	{ "principal wildcard in the middle", AP "  rules: [{from: [{source: {principals: [\"cluster.local/*/sa/x\"]}}]}]\n",
	  "t.yaml:5:42: spec.rules[0].from[0].source.principals[0]: \"cluster.local/*/sa/x\": '*' is only allowed as a prefix, a suffix or the whole value" },
	{ "empty source", AP "  rules: [{from: [{source: {}}]}]\n",
	  "t.yaml:5:28: spec.rules[0].from[0].source: source must not be empty" },
	{ "from without source", AP "  rules: [{from: [{}]}]\n",
	  "t.yaml:5:19: spec.rules[0].from[0].source: required field is missing" },
	{ "path without slash", AP "  rules: [{to: [{operation: {paths: [admin]}}]}]\n",
	  "t.yaml:5:38: spec.rules[0].to[0].operation.paths[0]: \"admin\": path must start with '/' (or be a '*' suffix match)" },
	{ "lower-case method", AP "  rules: [{to: [{operation: {methods: [get]}}]}]\n",
	  "t.yaml:5:40: spec.rules[0].to[0].operation.methods[0]: \"get\": HTTP methods are case-sensitive: write it in upper case" },
	{ "port not a number", AP "  rules: [{to: [{operation: {ports: [http]}}]}]\n",
	  "t.yaml:5:38: spec.rules[0].to[0].operation.ports[0]: \"http\": invalid port (want 1-65535)" },
	{ "unknown condition key", AP "  rules: [{when: [{key: source.name, values: [a]}]}]\n",
	  "t.yaml:5:25: spec.rules[0].when[0].key: unknown condition key \"source.name\" (want request.headers[NAME], source.ip, remote.ip, source.namespace, source.principal, request.auth.principal, request.auth.audiences, request.auth.presenter, request.auth.claims[NAME], destination.ip, destination.port, connection.sni or experimental.envoy.filters.*)" },
	{ "required field given null", AP "  rules: [{when: [{key: ~, values: [a]}]}]\n",
	  "t.yaml:5:19: spec.rules[0].when[0].key: required field is missing" },
	{ "condition without values", AP "  rules: [{when: [{key: source.ip}]}]\n",
	  "t.yaml:5:19: spec.rules[0].when[0].values: at least one of values or notValues is required" },
	{ "condition ip value", AP "  rules: [{when: [{key: source.ip, values: [\"10.0.0.0/8\", nope]}]}]\n",
	  "t.yaml:5:59: spec.rules[0].when[0].values[1]: \"nope\": invalid IP address or CIDR" },
	{ "condition port value", AP "  rules: [{when: [{key: destination.port, notValues: [\"0\"]}]}]\n",
	  "t.yaml:5:55: spec.rules[0].when[0].notValues[0]: \"0\": invalid port (want 1-65535)" },
	{ "selector and targetRef", AP "  selector: {matchLabels: {app: a}}\n  targetRef: {kind: Service, name: a}\n",
	  "t.yaml:6:14: spec.targetRef: only one of selector, targetRef or targetRefs may be set" },
	{ "targetRef kind", AP "  targetRef: {kind: Pod, name: a}\n",
	  "t.yaml:5:21: spec.targetRef.kind: \"Pod\": targetRef kind must be Gateway, GatewayClass, Service or ServiceEntry" },

	/* ---- request authentication ---- */
	{ "issuer missing", RA "  jwtRules: [{jwksUri: \"https://a/k\"}]\n",
	  "t.yaml:5:14: spec.jwtRules[0].issuer: required field is missing" },
	{ "issuer empty", RA "  jwtRules: [{issuer: \"\"}]\n",
	  "t.yaml:5:23: spec.jwtRules[0].issuer: must not be empty" },
	{ "jwks and jwksUri", RA "  jwtRules: [{issuer: a, jwksUri: \"https://a/k\", jwks: '{\"keys\": [{\"kty\": \"EC\"}]}'}]\n",
	  "t.yaml:5:56: spec.jwtRules[0].jwks: only one of jwks or jwksUri may be set" },
	{ "jwks not JSON", RA "  jwtRules: [{issuer: a, jwks: '{keys'}]\n",
	  "t.yaml:5:32: spec.jwtRules[0].jwks: \"{keys\": jwks is not valid JSON" },
	{ "jwks without keys", RA "  jwtRules: [{issuer: a, jwks: '{\"key\": []}'}]\n",
	  "t.yaml:5:32: spec.jwtRules[0].jwks: \"{\\x22key\\x22: []}\": jwks must be a JSON Web Key Set: an object with a \"keys\" array" },
	{ "jwksUri scheme", RA "  jwtRules: [{issuer: a, jwksUri: \"ftp://a/k\"}]\n",
	  "t.yaml:5:35: spec.jwtRules[0].jwksUri: \"ftp://a/k\": jwksUri must be an http:// or https:// URL" },
	{ "fromHeaders name", RA "  jwtRules: [{issuer: a, fromHeaders: [{prefix: \"Bearer \"}]}]\n",
	  "t.yaml:5:40: spec.jwtRules[0].fromHeaders[0].name: required field is missing" },

	/* ---- YAML itself ---- */
	{ "syntax error", "kind: [Namespace\nmetadata: {name: a}\n",
	  "t.yaml:2:9: did not find expected ',' or ']' while parsing a flow sequence" },
	{ "alias", "apiVersion: v1\nkind: Namespace\nmetadata: &m {name: a}\nx: *m\n",
	  "t.yaml:4:4: aliases are not supported" },
	{ "duplicate key", "apiVersion: v1\nkind: Namespace\nkind: Pod\nmetadata: {name: a}\n",
	  "t.yaml:3:1: duplicate key \"kind\" (first at line 2)" },
};

static char *run_cases(const char *yaml)
{
	struct zm_cfg_set s;
	size_t len = 1;
	char *out;

	zm_cfg_set_init(&s);
	zm_cfg_load_buf(&s, "t.yaml", yaml, strlen(yaml));
	zm_cfg_validate(&s, NULL);
	zm_cfg_sort_errors(&s);
	for (size_t i = 0; i < s.nerrs; i++)
		len += strlen(s.errs[i].text) + 1;
	out = calloc(1, len);
	for (size_t i = 0; out && i < s.nerrs; i++) {
		if (i)
			strcat(out, "\n");
		strcat(out, s.errs[i].text);
	}
	zm_cfg_set_free(&s);
	return out;
}

TEST(negative_table)
{
	int bad = 0;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = run_cases(cases[i].yaml);

		ASSERT_OK_PTR(got);
		if (getenv("ZM_CFG_PRINT"))
			printf("%s\n  => %s\n", cases[i].name, got);
		if (!EXPECT_STREQ(got, cases[i].want)) {
			test_log("case \"%s\"", cases[i].name);
			bad++;
		}
		free(got);
	}
	test_log("%zu cases, %d wrong", sizeof(cases) / sizeof(cases[0]), bad);
}

/* Every case must also be clean once its one mistake is gone: the table's
 * rows are only meaningful if the rest of each snippet is valid. Spot-check
 * the fixed forms of a few. */
TEST(fixed_forms_are_clean)
{
	static const char *const ok[] = {
		VS "  hosts: [payment]\n  http:\n  - route:\n    - destination: {host: payment, subset: v1}\n      weight: 90\n    - destination: {host: payment, subset: v2}\n      weight: 10\n",
		VS "  hosts: [a]\n  http:\n" ROUTE "    timeout: 1.5s\n",
		VS "  hosts: [a]\n  http:\n" ROUTE "    timeout: 500ms\n    retries: {attempts: 3, perTryTimeout: 1m, retryOn: \"5xx, 503,reset\"}\n",
		VS "  hosts: [a]\n  http:\n  - match: [{uri: {regex: '^/api/(?P<v>v[12])/(?i:users)\\z'}}]\n    route: [{destination: {host: a}}]\n",
		VS "  hosts: [\"*\"]\n  gateways: [g]\n  http:\n" ROUTE "---\n" GW "  servers: [{port: {number: 80, protocol: HTTP}, hosts: [\"*\"]}]\n",
		PA "  selector: {matchLabels: {app: a}}\n  portLevelMtls:\n    8080: {mode: PERMISSIVE}\n",
		AP "  action: CUSTOM\n  provider: {name: ext-authz}\n  rules: [{to: [{operation: {paths: [\"/admin/*\"]}}]}]\n",
		AP "  rules: [{when: [{key: \"request.auth.claims[groups][admin]\", values: [\"true\"]}, {key: \"request.headers[x-a]\", notValues: [\"*\"]}]}]\n",
		RA "  jwtRules: [{issuer: a, jwks: '{\"keys\": [{\"kty\": \"EC\"}]}'}]\n",
		SE "  hosts: [a.example.com]\n  ports: [{number: 80, name: http}]\n  resolution: STATIC\n  endpoints: [{address: 10.0.0.1, ports: {http: 8080}}]\n",
		"apiVersion: v1\nkind: Namespace\nmetadata: {name: a, labels: {\"example.com/x\": \"\"}}\n",
		/* what Istio users write with zmesh's behaviour as the meaning: still valid */
		DR "  host: a\n  trafficPolicy:\n    tls: {mode: ISTIO_MUTUAL}\n    loadBalancer: {simple: ROUND_ROBIN, localityLbSetting: {enabled: false}}\n"
		   "    connectionPool: {http: {maxRequestsPerConnection: 1}}\n"
		   "  subsets: [{name: v1, labels: {v: \"1\"}, trafficPolicy: {tls: {mode: DISABLE}}}]\n",
		VS "  hosts: [a]\n  http:\n" ROUTE "    retries: {attempts: 2, retryRemoteLocalities: false}\n    fault: {abort: {httpStatus: 503, percentage: {value: 1}}}\n",
		VS "  hosts: [a]\n  http:\n" ROUTE "    fault: {abort: {grpcStatus: DEADLINE_EXCEEDED}}\n",
	};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		char *got = run_cases(ok[i]);

		ASSERT_OK_PTR(got);
		if (!EXPECT_STREQ(got, ""))
			test_log("ok[%zu]", i);
		free(got);
	}
}

/* Cross-document rules: subsets, gateway references, duplicates. */
TEST(subsets_gateways_duplicates)
{
	const char *yaml =
		VS "  hosts: [payment]\n  gateways: [mesh, istio-system/ingress, missing]\n  http:\n"
		"  - route:\n    - destination: {host: payment, subset: v1}\n      weight: 50\n"
		"    - destination: {host: payment.ns.svc.cluster.local, subset: v3}\n      weight: 50\n"
		"---\n" DR "  host: payment\n  subsets: [{name: v1}, {name: v2}]\n"
		"---\n" DR "  host: other\n"
		"---\n" GW "  servers: [{port: {number: 80, protocol: HTTP}, hosts: [a]}]\n"
		"---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: ingress, namespace: istio-system}\n"
		"spec: {servers: [{port: {number: 80, protocol: HTTP}, hosts: [a]}]}\n";
	const char *want =
		"t.yaml:6:42: spec.gateways[2]: gateway ns/missing not found (no Gateway of that name is applied)\n"
		"t.yaml:11:65: spec.http[0].route[1].destination.subset: subset \"v3\" is not defined by DestinationRule ns/r for host payment.ns.svc.cluster.local\n"
		"t.yaml:23:18: metadata.name: duplicate DestinationRule ns/r (first defined at t.yaml:16)";
	char *got = run_cases(yaml);

	ASSERT_OK_PTR(got);
	EXPECT_STREQ(got, want);
	free(got);
}

/* The store validates an apply against its current state. */
TEST(validate_against_base)
{
	struct zm_cfg_set base, apply;
	const char *dr = DR "  host: payment\n  subsets: [{name: v1}]\n";
	const char *gw = GW "  servers: [{port: {number: 80, protocol: HTTP}, hosts: [a]}]\n";
	const char *vs = VS "  hosts: [payment]\n  gateways: [g]\n  http:\n  - route: [{destination: {host: payment, subset: v2}}]\n";
	const char *dr2 = DR "  host: payment\n  subsets: [{name: v1}, {name: v2}]\n";

	zm_cfg_set_init(&base);
	zm_cfg_set_init(&apply);
	ASSERT_OK(zm_cfg_load_buf(&base, "state.yaml", dr, strlen(dr)));
	ASSERT_OK(zm_cfg_load_buf(&base, "state.yaml", gw, strlen(gw)));
	ASSERT_OK(zm_cfg_validate(&base, NULL));
	/* v2 is unknown to the stored rule. */
	ASSERT_OK(zm_cfg_load_buf(&apply, "apply.yaml", vs, strlen(vs)));
	EXPECT_EQ(zm_cfg_validate(&apply, &base), -EINVAL);
	ASSERT_EQ(apply.nerrs, 1);
	EXPECT_STREQ(apply.errs[0].text, "apply.yaml:8:51: spec.http[0].route[0].destination.subset: subset \"v2\" is not defined by DestinationRule ns/r for host payment.ns.svc.cluster.local");
	EXPECT_EQ(apply.errs[0].line, 8);
	EXPECT_EQ(apply.errs[0].col, 51);
	EXPECT_STREQ(apply.errs[0].path, "spec.http[0].route[0].destination.subset");
	zm_cfg_set_free(&apply);
	/* The same apply with the rule replaced in it: the gateway still
	 * comes from the state, the subset from the new rule. */
	zm_cfg_set_init(&apply);
	ASSERT_OK(zm_cfg_load_buf(&apply, "apply.yaml", vs, strlen(vs)));
	ASSERT_OK(zm_cfg_load_buf(&apply, "apply.yaml", dr2, strlen(dr2)));
	EXPECT_OK(zm_cfg_validate(&apply, &base));
	EXPECT_EQ(apply.nerrs, 0);
	zm_cfg_set_free(&apply);
	zm_cfg_set_free(&base);
}

/* Many mistakes in one file: each is reported, not only the first. */
TEST(all_errors_reported)
{
	const char *yaml =
		VS "  hosts: [a]\n  http:\n  - route: [{destination: {host: a}}]\n    timeout: 1\n    retries: {attempts: x}\n"
		"---\n" DR "  host: a\n  trafficPolicy: {loadBalancer: {simple: FAST}}\n"
		"---\n" PA "  mtls: {mode: NOPE}\n";
	char *got = run_cases(yaml);

	ASSERT_OK_PTR(got);
	EXPECT_STREQ(got,
		     "t.yaml:8:14: spec.http[0].timeout: invalid duration \"1\" (want e.g. 10s, 1.5s, 500ms, 1m, 1h)\n"
		     "t.yaml:9:25: spec.http[0].retries.attempts: must be an integer, got a string\n"
		     "t.yaml:16:42: spec.trafficPolicy.loadBalancer.simple: unknown value \"FAST\", want one of UNSPECIFIED, LEAST_CONN, RANDOM, PASSTHROUGH, ROUND_ROBIN, LEAST_REQUEST\n"
		     "t.yaml:22:16: spec.mtls.mode: unknown value \"NOPE\", want one of UNSET, DISABLE, PERMISSIVE, STRICT");
	free(got);
}

/* Hostile sizes fail cleanly and fast. */
TEST(huge_and_deep_documents)
{
	struct zm_cfg_set s;
	size_t big = ZM_YAML_MAX_BYTES + 16, n = 0;
	char *buf = malloc(big + 1), *deep;

	ASSERT_OK_PTR(buf);
	memset(buf, ' ', big);
	memcpy(buf, "a: b\n", 5);
	buf[big] = 0;
	zm_cfg_set_init(&s);
	EXPECT_EQ(zm_cfg_load_buf(&s, "big.yaml", buf, big), -EINVAL);
	ASSERT_EQ(s.nerrs, 1);
	EXPECT_STRSTR(s.errs[0].text, "big.yaml: file larger than");
	zm_cfg_set_free(&s);
	free(buf);

	/* 100 000 one-line documents: a million nodes, cut off with an error. */
	buf = malloc(40u << 20);
	ASSERT_OK_PTR(buf);
	for (int i = 0; i < 400000 && n < (16u << 20) - 64; i++)
		n += (size_t)sprintf(buf + n, "---\n{a: [1, 2, 3]}\n");
	zm_cfg_set_init(&s);
	EXPECT_EQ(zm_cfg_load_buf(&s, "many.yaml", buf, n), -EINVAL);
	ASSERT_EQ(s.nerrs, 1);
	EXPECT_STRSTR(s.errs[0].text, "document too large");
	zm_cfg_set_free(&s);
	free(buf);

	deep = calloc(1, 4096);
	ASSERT_OK_PTR(deep);
	for (int i = 0; i < 200; i++)
		strcat(deep, "[");
	zm_cfg_set_init(&s);
	EXPECT_EQ(zm_cfg_load_buf(&s, "deep.yaml", deep, strlen(deep)), -EINVAL);
	ASSERT_EQ(s.nerrs, 1);
	EXPECT_STRSTR(s.errs[0].text, "nesting deeper than");
	zm_cfg_set_free(&s);
	free(deep);
}

/* Past ZM_CFG_MAX_ERRORS the set stops collecting and says so. */
TEST(error_cap)
{
	struct zm_cfg_set s;
	size_t n = 0;
	char *buf = malloc(1 << 20);

	ASSERT_OK_PTR(buf);
	for (int i = 0; i < 3000; i++)
		n += (size_t)sprintf(buf + n, "---\napiVersion: v1\nkind: Nope\n");
	zm_cfg_set_init(&s);
	EXPECT_EQ(zm_cfg_load_buf(&s, "cap.yaml", buf, n), -EINVAL);
	EXPECT_EQ(s.nerrs, ZM_CFG_MAX_ERRORS);
	EXPECT_TRUE(s.errs_truncated);
	EXPECT_EQ(zm_cfg_validate(&s, NULL), -EINVAL);
	zm_cfg_set_free(&s);
	free(buf);
}
