// SPDX-License-Identifier: Apache-2.0
/*
 * The waypoint's L7 engine: Istio YAML in, decisions out. Every match type,
 * first match wins, weights, redirect/rewrite, faults, header ops, retries,
 * AuthorizationPolicy over normalized paths, JWT accept/reject, balancing,
 * outlier ejection and connection-pool limits.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "zmesh/config.h"
#include "zmesh/l7route.h"
#include "jwt_sign.h"
#include "../harness/test.h"

#define ISS "https://issuer.test"

static const char cfg_fmt[] =
	"apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
	"metadata: {name: echo, namespace: default}\n"
	"spec:\n"
	"  hosts: [echo]\n"
	"  http:\n"
	"  - name: exact\n    match: [{uri: {exact: /exact}}]\n"
	"    route: [{destination: {host: echo, subset: v1}}]\n"
	"  - name: icase\n    match: [{uri: {prefix: /CaSe}, ignoreUriCase: true}]\n"
	"    route: [{destination: {host: echo, subset: v2}}]\n"
	"  - name: regex\n    match: [{uri: {regex: \"/re/[0-9]+\"}}]\n"
	"    route: [{destination: {host: echo}}]\n"
	"  - name: method\n    match: [{method: {exact: DELETE}}]\n"
	"    route: [{destination: {host: echo}}]\n"
	"  - name: hdr\n    match: [{headers: {x-user: {exact: tester}}}]\n"
	"    route: [{destination: {host: echo, subset: v2}}]\n"
	"  - name: hdrprefix\n    match: [{headers: {x-group: {prefix: beta}}}]\n"
	"    route: [{destination: {host: echo}}]\n"
	"  - name: hdrregex\n    match: [{headers: {x-id: {regex: \"[a-f]{4}\"}}}]\n"
	"    route: [{destination: {host: echo}}]\n"
	"  - name: presence\n    match: [{headers: {x-present: {}}}]\n"
	"    route: [{destination: {host: echo}}]\n"
	"  - name: without\n    match: [{uri: {prefix: /without}, withoutHeaders: {x-skip: {}}}]\n"
	"    route: [{destination: {host: echo}}]\n"
	"  - name: query\n    match: [{queryParams: {q: {exact: \"1\"}}}, {queryParams: {r: {regex: \"a+\"}}}]\n"
	"    route: [{destination: {host: echo}}]\n"
	"  - name: qpresent\n    match: [{uri: {prefix: /qp}, queryParams: {flag: {}}}]\n"
	"    route: [{destination: {host: echo}}]\n"
	"  - name: authority\n    match: [{authority: {exact: \"echo.default\"}}]\n"
	"    route: [{destination: {host: echo}}]\n"
	"  - name: scheme\n    match: [{scheme: {exact: https}}]\n"
	"    route: [{destination: {host: echo}}]\n"
	"  - name: srclabels\n    match: [{sourceLabels: {app: client}}]\n"
	"    route: [{destination: {host: echo}}]\n"
	"  - name: srcns\n    match: [{sourceNamespace: other}]\n"
	"    route: [{destination: {host: echo}}]\n"
	"  - name: port\n    match: [{port: 8080}]\n"
	"    route: [{destination: {host: echo, port: {number: 80}}}]\n"
	"  - name: redirect\n    match: [{uri: {exact: /old}}]\n"
	"    redirect: {uri: /new, authority: elsewhere, redirectCode: 302}\n"
	"  - name: rewrite\n    match: [{uri: {prefix: /api/v1/}}]\n"
	"    rewrite: {uri: /v1/, authority: backend.test}\n"
	"    route: [{destination: {host: echo}}]\n"
	"  - name: regexrw\n    match: [{uri: {prefix: /rr/}}]\n"
	"    rewrite: {uriRegexRewrite: {match: \"^/rr/(.*)$\", rewrite: \"/x/\\\\1\"}}\n"
	"    route: [{destination: {host: echo}}]\n"
	"  - name: direct\n    match: [{uri: {exact: /direct}}]\n"
	"    directResponse: {status: 418, body: {string: teapot}}\n"
	"  - name: grpcabort\n    match: [{uri: {prefix: /grpc-abort}}]\n"
	"    fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}\n"
	"    route: [{destination: {host: echo}}]\n"
	"  - name: abort\n    match: [{uri: {prefix: /abort}}]\n"
	"    fault: {abort: {httpStatus: 503, percentage: {value: 100}}}\n"
	"    route: [{destination: {host: echo}}]\n"
	"  - name: abort30\n    match: [{uri: {prefix: /some-abort}}]\n"
	"    fault: {abort: {httpStatus: 500, percentage: {value: 30}}}\n"
	"    route: [{destination: {host: echo}}]\n"
	"  - name: delay\n    match: [{uri: {prefix: /delay}}]\n"
	"    fault: {delay: {fixedDelay: 2s}}\n"
	"    route: [{destination: {host: echo}}]\n"
	"  - name: policy\n    match: [{uri: {prefix: /policy}}]\n"
	"    timeout: 3s\n"
	"    retries: {attempts: 4, perTryTimeout: 1s, retryOn: \"5xx,gateway-error,409\"}\n"
	"    headers:\n"
	"      request: {set: {x-a: \"1\"}, add: {x-b: \"2\"}, remove: [x-c]}\n"
	"      response: {set: {x-r: \"3\"}}\n"
	"    route: [{destination: {host: echo}, headers: {request: {set: {x-d: \"4\"}}}}]\n"
	"  - name: split\n    match: [{uri: {prefix: /split}}]\n"
	"    route:\n"
	"    - {destination: {host: echo, subset: v1}, weight: 90}\n"
	"    - {destination: {host: echo, subset: v2}, weight: 10}\n"
	"  - name: cors\n    match: [{uri: {prefix: /cors}}]\n"
	"    corsPolicy: {allowOrigins: [{exact: \"https://ok.test\"}], allowMethods: [GET, POST],\n"
	"                 allowHeaders: [x-h], maxAge: 60s}\n"
	"    route: [{destination: {host: echo}}]\n"
	"  - name: hash\n    match: [{uri: {prefix: /hash}}]\n"
	"    route: [{destination: {host: echo, subset: hash}}]\n"
	"  - name: limited\n    match: [{uri: {prefix: /limited}}]\n"
	"    route: [{destination: {host: echo, subset: v2}}]\n"
	"  - name: mirrors\n    match: [{uri: {prefix: /many-mirrors}}]\n"
	"    route: [{destination: {host: echo, subset: v1}}]\n"
	"    mirrors:\n    - {destination: {host: echo, subset: v2}}\n"
	"    - {destination: {host: echo, subset: hash}, percentage: {value: 0}}\n"
	"    - {destination: {host: echo, subset: v1}, percentage: {value: 100}}\n"
	"  - name: mirror\n    match: [{uri: {prefix: /mirror}}]\n"
	"    route: [{destination: {host: echo, subset: v1}}]\n"
	"    mirror: {host: echo, subset: v2}\n"
	"  - name: catchall\n"
	"    route: [{destination: {host: echo}}]\n"
	"  tcp:\n"
	"  - match: [{port: 9000, sourceLabels: {app: client}}]\n"
	"    route: [{destination: {host: echo, subset: v2}}]\n"
	"  - route:\n"
	"    - {destination: {host: echo, subset: v1}, weight: 50}\n"
	"    - {destination: {host: echo, subset: hash}, weight: 50}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
	"metadata: {name: echo, namespace: default}\n"
	"spec:\n"
	"  host: echo\n"
	"  trafficPolicy:\n"
	"    loadBalancer: {simple: ROUND_ROBIN}\n"
	"    outlierDetection: {consecutive5xxErrors: 2, baseEjectionTime: 30s, maxEjectionPercent: 50}\n"
	"  subsets:\n"
	"  - name: v1\n    labels: {version: v1}\n"
	"    trafficPolicy: {outlierDetection: {consecutive5xxErrors: 1, maxEjectionPercent: 100, "
	"minHealthPercent: 60}}\n"
	"  - name: v2\n    labels: {version: v2}\n"
	"    trafficPolicy: {connectionPool: {tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 1, "
	"maxRetries: 1}}}\n"
	"  - name: hash\n    labels: {app: echo}\n"
	"    trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-key}},\n"
	"                    retryBudget: {percent: 50, minRetryConcurrency: 1}}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
	"metadata: {name: secure, namespace: default}\n"
	"spec:\n"
	"  host: secure\n"
	"  trafficPolicy:\n"
	"    connectionPool: {tcp: {connectTimeout: 1s}}\n"
	"    portLevelSettings:\n"
	"    - {port: {number: 9000}, connectionPool: {tcp: {connectTimeout: 2s}, http: {maxRequestsPerConnection: 5}}}\n"
	"    - {port: {number: 80}, loadBalancer: {simple: RANDOM}}\n"
	"  subsets:\n"
	"  - name: s1\n    labels: {version: v1}\n"
	"    trafficPolicy:\n      portLevelSettings: [{port: {number: 9000}, connectionPool: {tcp: {connectTimeout: 3s}}}]\n"
	"  - name: s2\n    labels: {version: v2}\n"
	"    trafficPolicy: {connectionPool: {tcp: {connectTimeout: 4s}}}\n"
	"---\n"
	"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
	"metadata: {name: deny-delete, namespace: default}\n"
	"spec:\n"
	"  targetRefs: [{kind: Service, group: \"\", name: secure}]\n"
	"  action: DENY\n"
	"  rules: [{to: [{operation: {methods: [DELETE]}}]}, {to: [{operation: {paths: [\"/admin\", \"/admin/*\"]}}]}]\n"
	"---\n"
	"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
	"metadata: {name: allow, namespace: default}\n"
	"spec:\n"
	"  targetRefs: [{kind: Service, group: \"\", name: secure}]\n"
	"  rules:\n"
	"  - to: [{operation: {paths: [\"/api/*\"], methods: [GET, POST, DELETE]}}]\n"
	"  - to: [{operation: {paths: [\"/jwt/*\"]}}]\n"
	"    from: [{source: {requestPrincipals: [\"" ISS "/*\"]}}]\n"
	"  - to: [{operation: {paths: [\"/hdr\"]}}]\n"
	"    when: [{key: \"request.headers[x-token]\", values: [ok]}]\n"
	"  - to: [{operation: {paths: [\"/ns\"]}}]\n"
	"    from: [{source: {namespaces: [good]}}]\n"
	"  - to: [{operation: {paths: [\"/ip\"]}}]\n"
	"    from: [{source: {ipBlocks: [\"10.1.0.0/16\"], notIpBlocks: [\"10.1.2.3\"]}}]\n"
	"  - to: [{operation: {paths: [\"/principal\"]}}]\n"
	"    from: [{source: {principals: [\"cluster.local/ns/good/sa/app\"]}}]\n"
	"  - to: [{operation: {paths: [\"/claims\"]}}]\n"
	"    when: [{key: \"request.auth.claims[groups]\", values: [admins]}]\n"
	"  - to: [{operation: {notPaths: [\"/api/*\", \"/jwt/*\", \"/hdr\", \"/ns\", \"/ip\", \"/claims\", \"/principal\"],\n"
	"                     hosts: [\"secure\", \"secure:*\"], methods: [PUT]}}]\n"
	"---\n"
	"apiVersion: security.istio.io/v1\nkind: RequestAuthentication\n"
	"metadata: {name: jwt, namespace: default}\n"
	"spec:\n"
	"  targetRefs: [{kind: Service, group: \"\", name: secure}]\n"
	"  jwtRules:\n"
	"  - issuer: \"" ISS "\"\n"
	"    audiences: [secure]\n"
	"    jwks: '%s'\n"
	"    outputPayloadToHeader: x-jwt-payload\n"
	"    fromParams: [token]\n"
	"    fromHeaders: [{name: authorization, prefix: \"Bearer \"}, {name: x-jwt}]\n";

static EVP_PKEY *rsa, *ec, *other;

__attribute__((constructor)) static void make_keys(void)
{
	rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	other = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
}

static uint64_t seed_state;

static uint64_t test_rand(void *arg)
{
	(void)arg;
	seed_state ^= seed_state << 13;
	seed_state ^= seed_state >> 7;
	seed_state ^= seed_state << 17;
	return seed_state;
}

static void add_ep(struct zm_l7_svc *s, const char *ip, const char *pod, const char *ver)
{
	struct zm_l7_ep *ep = &s->eps[s->neps++];

	snprintf(ep->addr, sizeof(ep->addr), "%s", ip);
	snprintf(ep->pod, sizeof(ep->pod), "%s", pod);
	snprintf(ep->ns, sizeof(ep->ns), "default");
	zm_labels_set(&ep->labels, "app", "echo");
	zm_labels_set(&ep->labels, "version", ver);
	ep->tport[0] = 8080;
	ep->tport[1] = 9000;
}

static void add_svc(struct zm_l7_view *v, const char *name, const char *vip)
{
	struct zm_l7_svc *s = &v->svcs[v->nsvcs++];

	snprintf(s->name, sizeof(s->name), "%s", name);
	snprintf(s->ns, sizeof(s->ns), "default");
	snprintf(s->fqdn, sizeof(s->fqdn), "%s.default.svc.cluster.local", name);
	snprintf(s->vip, sizeof(s->vip), "%s", vip);
	s->ports[0] = 80;
	snprintf(s->port_names[0], sizeof(s->port_names[0]), "http");
	s->ports[1] = 9000;
	snprintf(s->port_names[1], sizeof(s->port_names[1]), "tcp");
	s->nports = 2;
	s->eps = calloc(4, sizeof(*s->eps));
	add_ep(s, "10.244.0.2", "echo-v1-a", "v1");
	add_ep(s, "10.244.0.3", "echo-v1-b", "v1");
	add_ep(s, "10.244.1.2", "echo-v2", "v2");
}

FIXTURE(l7) {
	struct zm_l7 *l7;
	struct zm_l7_decision d;
	struct zm_http_field h[8];
	size_t nh;
	struct zm_l7_request req;
	struct zm_labels src_labels;
	char *tok;
};

FIXTURE_SETUP(l7)
{
	struct zm_cfg_set set;
	struct zm_l7_view v = { 0 };
	struct zm_l7_opts o = { .waypoint_name = "waypoint", .rand = test_rand };
	struct zm_error e = { "" };
	char *jwk = jwk_rsa(rsa, "k1", NULL), *jwk2 = jwk_ec(ec, "k2", 32), jwks[4096], *cfg;
	size_t cl;
	int rc;

	seed_state = 88172645463325252ULL;
	snprintf(jwks, sizeof(jwks), "{\"keys\":[%s,%s]}", jwk, jwk2);
	free(jwk);
	free(jwk2);
	cl = sizeof(cfg_fmt) + strlen(jwks);
	cfg = malloc(cl);
	snprintf(cfg, cl, cfg_fmt, jwks);
	zm_cfg_set_init(&set);
	rc = zm_cfg_load_buf(&set, "test.yaml", cfg, strlen(cfg));
	if (!rc)
		rc = zm_cfg_validate(&set, NULL);
	for (size_t i = 0; i < set.nerrs; i++)
		test_log("%s", set.errs[i].text);
	free(cfg);
	ASSERT_EQ(rc, 0);
	v.svcs = calloc(3, sizeof(*v.svcs));
	add_svc(&v, "echo", "10.96.0.10");
	add_svc(&v, "secure", "10.96.0.11");
	rc = zm_l7_build(&set, &v, &o, &self->l7, &e);
	if (rc)
		test_log("build: %s", e.msg);
	ASSERT_EQ(rc, 0);
	zm_cfg_set_free(&set);
	zm_l7_decision_init(&self->d);
	self->req = (struct zm_l7_request){ .method = "GET", .scheme = "http", .authority = "echo",
					    .port = 80, .headers = self->h, .now_s = time(NULL) };
}

FIXTURE_TEARDOWN(l7)
{
	zm_l7_decision_free(&self->d);
	zm_l7_put(self->l7);
	zm_labels_free(&self->src_labels);
	free(self->tok);
}

static void hdr(struct zm_fixture_l7 *self, const char *n, const char *v)
{
	self->h[self->nh++] = (struct zm_http_field){ n, strlen(n), v, strlen(v) };
	self->req.nheaders = self->nh;
}

/* Decide GET @target on the fixture's request; returns the route name ("" for none). */
static const char *go(struct zm_fixture_l7 *self, const char *target)
{
	zm_l7_decision_free(&self->d);
	self->req.target = target;
	self->req.target_len = strlen(target);
	if (zm_l7_decide(self->l7, &self->req, &self->d))
		return "(error)";
	return self->d.route_name ? self->d.route_name : "";
}

static const char *subset(struct zm_fixture_l7 *self)
{
	return self->d.subset ? self->d.subset : "-";
}

TEST_F(l7, uri_exact_prefix_regex_icase)
{
	EXPECT_STREQ(go(self, "/exact"), "exact");
	EXPECT_STREQ(subset(self), "v1");
	EXPECT_STREQ(go(self, "/exact/more"), "catchall");
	EXPECT_STREQ(go(self, "/case/x"), "icase");
	EXPECT_STREQ(go(self, "/CASE"), "icase");
	EXPECT_STREQ(go(self, "/re/123"), "regex");
	/* RE2 semantics: the regex must match the whole path */
	EXPECT_STREQ(go(self, "/re/123x"), "catchall");
	EXPECT_STREQ(go(self, "/x/re/1"), "catchall");
	/* the uri is matched after normalization, without the query */
	EXPECT_STREQ(go(self, "/a/../exact?z=1"), "exact");
	EXPECT_STREQ(zm_buf_cstr(&self->d.path), "/exact?z=1");
}

TEST_F(l7, method_scheme_authority_port)
{
	self->req.method = "DELETE";
	EXPECT_STREQ(go(self, "/x"), "method");
	self->req.method = "GET";
	self->req.scheme = "https";
	EXPECT_STREQ(go(self, "/x"), "scheme");
	self->req.scheme = "http";
	self->req.authority = "echo.default";
	EXPECT_STREQ(go(self, "/x"), "authority");
	self->req.authority = "echo.default:80";
	EXPECT_STREQ(go(self, "/x"), "catchall");
	self->req.authority = "echo:8080";
	EXPECT_STREQ(go(self, "/x"), "port");
	EXPECT_EQ(self->d.svc_port_idx, 0);
}

TEST_F(l7, headers_and_absence)
{
	hdr(self, "X-User", "tester");
	EXPECT_STREQ(go(self, "/x"), "hdr");
	EXPECT_STREQ(subset(self), "v2");
	self->nh = 0;
	hdr(self, "x-user", "Tester");		/* values are case-sensitive */
	EXPECT_STREQ(go(self, "/x"), "catchall");
	self->nh = 0;
	hdr(self, "x-group", "beta-7");
	EXPECT_STREQ(go(self, "/x"), "hdrprefix");
	self->nh = 0;
	hdr(self, "x-id", "abcd");
	EXPECT_STREQ(go(self, "/x"), "hdrregex");
	self->nh = 0;
	hdr(self, "x-id", "abcde");
	EXPECT_STREQ(go(self, "/x"), "catchall");
	self->nh = 0;
	hdr(self, "x-present", "");
	EXPECT_STREQ(go(self, "/x"), "presence");
	self->nh = 0;
	self->req.nheaders = 0;
	EXPECT_STREQ(go(self, "/without"), "without");
	hdr(self, "x-skip", "1");
	EXPECT_STREQ(go(self, "/without"), "catchall");
}

TEST_F(l7, query_params)
{
	EXPECT_STREQ(go(self, "/x?q=1"), "query");
	EXPECT_STREQ(go(self, "/x?a=b&q=1"), "query");
	EXPECT_STREQ(go(self, "/x?q=11"), "catchall");
	EXPECT_STREQ(go(self, "/x?r=aaa"), "query");
	EXPECT_STREQ(go(self, "/x?r=aab"), "catchall");
	EXPECT_STREQ(go(self, "/qp?flag"), "qpresent");
	EXPECT_STREQ(go(self, "/qp?flag=x"), "qpresent");
	EXPECT_STREQ(go(self, "/qp?other=1"), "catchall");
}

TEST_F(l7, source_labels_and_namespace)
{
	zm_labels_set(&self->src_labels, "app", "client");
	self->req.src_labels = &self->src_labels;
	EXPECT_STREQ(go(self, "/x"), "srclabels");
	self->req.src_labels = NULL;
	self->req.src_ns = "other";
	EXPECT_STREQ(go(self, "/x"), "srcns");
	self->req.src_ns = "default";
	EXPECT_STREQ(go(self, "/x"), "catchall");
}

TEST_F(l7, first_match_wins)
{
	/* /exact and the x-user header both match: the earlier route wins. */
	hdr(self, "x-user", "tester");
	EXPECT_STREQ(go(self, "/exact"), "exact");
	EXPECT_STREQ(go(self, "/policy"), "hdr");
}

TEST_F(l7, weighted_split)
{
	int v1 = 0, v2 = 0;

	for (int i = 0; i < 10000; i++) {
		go(self, "/split");
		if (!strcmp(subset(self), "v1"))
			v1++;
		else if (!strcmp(subset(self), "v2"))
			v2++;
	}
	EXPECT_EQ(v1 + v2, 10000);
	/* 10% of 10000: sd = 30; 5 sd bounds */
	EXPECT_GT(v2, 850);
	EXPECT_LT(v2, 1150);
}

TEST_F(l7, redirect_rewrite_direct)
{
	go(self, "/old?x=1");
	EXPECT_EQ(self->d.action, ZM_L7_RESPOND);
	EXPECT_EQ(self->d.status, 302);
	EXPECT_STREQ(zm_buf_cstr(&self->d.location), "http://elsewhere/new?x=1");
	EXPECT_STREQ(go(self, "/api/v1/users?id=2"), "rewrite");
	EXPECT_EQ(self->d.action, ZM_L7_FORWARD);
	EXPECT_STREQ(zm_buf_cstr(&self->d.path), "/v1/users?id=2");
	EXPECT_STREQ(zm_buf_cstr(&self->d.authority), "backend.test");
	EXPECT_STREQ(go(self, "/rr/a/b"), "regexrw");
	EXPECT_STREQ(zm_buf_cstr(&self->d.path), "/x/a/b");
	go(self, "/direct");
	EXPECT_EQ(self->d.status, 418);
	EXPECT_STREQ(zm_buf_cstr(&self->d.body), "teapot");
}

TEST_F(l7, faults)
{
	int aborted = 0;

	go(self, "/abort");
	EXPECT_EQ(self->d.action, ZM_L7_RESPOND);
	EXPECT_EQ(self->d.status, 503);
	EXPECT_STREQ(self->d.flags, "FI");
	EXPECT_EQ(self->d.grpc_status, -1);
	/* grpcStatus: HTTP 200 carrying gRPC status 14 */
	go(self, "/grpc-abort");
	EXPECT_EQ(self->d.action, ZM_L7_RESPOND);
	EXPECT_EQ(self->d.status, 200);
	EXPECT_EQ(self->d.grpc_status, 14);
	EXPECT_STREQ(self->d.flags, "FI");
	go(self, "/delay");
	EXPECT_EQ(self->d.action, ZM_L7_FORWARD);
	EXPECT_EQ(self->d.delay_ns, 2 * ZM_NS_PER_S);
	for (int i = 0; i < 5000; i++) {
		go(self, "/some-abort");
		aborted += self->d.action == ZM_L7_RESPOND && self->d.status == 500;
	}
	/* 30% of 5000 = 1500, sd ~32 */
	EXPECT_GT(aborted, 1300);
	EXPECT_LT(aborted, 1700);
}

TEST_F(l7, policies_and_header_ops)
{
	EXPECT_STREQ(go(self, "/policy"), "policy");
	EXPECT_EQ(self->d.timeout_ns, 3 * ZM_NS_PER_S);
	EXPECT_EQ(self->d.retry_attempts, 4);
	EXPECT_EQ(self->d.per_try_ns, ZM_NS_PER_S);
	EXPECT_TRUE(zm_l7_should_retry(&self->d, 500, false));
	EXPECT_TRUE(zm_l7_should_retry(&self->d, 409, false));
	EXPECT_FALSE(zm_l7_should_retry(&self->d, 404, false));
	/* Envoy's 5xx includes connect failures and resets */
	EXPECT_TRUE(zm_l7_should_retry(&self->d, 0, true));
	ASSERT_EQ(self->d.nreq_ops, 2);
	EXPECT_STREQ(self->d.req_ops[0]->set.v[0].key.v, "x-a");
	EXPECT_STREQ(self->d.req_ops[0]->add.v[0].key.v, "x-b");
	EXPECT_STREQ(self->d.req_ops[0]->remove.v[0].v, "x-c");
	EXPECT_STREQ(self->d.req_ops[1]->set.v[0].key.v, "x-d");
	ASSERT_EQ(self->d.nresp_ops, 1);
	EXPECT_STREQ(self->d.resp_ops[0]->set.v[0].val.v, "3");
	EXPECT_FALSE(zm_l7_should_retry_grpc(&self->d, 14));
	/* Istio's default retry policy where none is written */
	go(self, "/x");
	EXPECT_EQ(self->d.retry_attempts, 2);
	EXPECT_TRUE(zm_l7_should_retry_grpc(&self->d, 14));
	EXPECT_TRUE(zm_l7_should_retry_grpc(&self->d, 1));
	EXPECT_FALSE(zm_l7_should_retry_grpc(&self->d, 13));
	EXPECT_TRUE(zm_l7_should_retry(&self->d, 503, false));
	EXPECT_TRUE(zm_l7_should_retry(&self->d, 0, true));
	EXPECT_FALSE(zm_l7_should_retry(&self->d, 500, false));
	EXPECT_EQ(self->d.timeout_ns, 0);
}

TEST_F(l7, cors)
{
	hdr(self, "origin", "https://ok.test");
	self->req.method = "OPTIONS";
	hdr(self, "access-control-request-method", "POST");
	go(self, "/cors");
	EXPECT_EQ(self->d.action, ZM_L7_RESPOND);
	EXPECT_EQ(self->d.status, 200);
	ASSERT_GE(self->d.nresp_set, 3);
	EXPECT_STREQ(self->d.resp_set[0].name, "access-control-allow-origin");
	EXPECT_STREQ(self->d.resp_set[0].value, "https://ok.test");
	EXPECT_STREQ(self->d.resp_set[1].value, "GET,POST");
	self->req.method = "GET";
	go(self, "/cors");
	EXPECT_EQ(self->d.action, ZM_L7_FORWARD);
	EXPECT_EQ(self->d.nresp_set, 1);
	self->nh = 0;
	hdr(self, "origin", "https://evil.test");
	go(self, "/cors");
	EXPECT_EQ(self->d.nresp_set, 0);
}

TEST_F(l7, default_route_unknown_host_bad_input)
{
	self->req.authority = "secure";
	go(self, "/api/x");
	EXPECT_EQ(self->d.action, ZM_L7_FORWARD);
	EXPECT_STREQ(zm_l7_svc_fqdn(&self->d), "secure.default.svc.cluster.local");
	EXPECT_TRUE(self->d.vs_name == NULL);
	self->req.authority = "10.96.0.11:80";
	go(self, "/api/x");
	EXPECT_STREQ(zm_l7_svc_fqdn(&self->d), "secure.default.svc.cluster.local");
	self->req.authority = "nosuch.example";
	go(self, "/x");
	EXPECT_EQ(self->d.status, 404);
	self->req.authority = "echo";
	go(self, "/a%00b");
	EXPECT_EQ(self->d.status, 400);
	self->req.method = "get";
	go(self, "/x");
	EXPECT_EQ(self->d.status, 400);
}

TEST_F(l7, authz_deny_allow_normalized)
{
	self->req.authority = "secure";
	go(self, "/api/items");
	EXPECT_EQ(self->d.action, ZM_L7_FORWARD);
	self->req.method = "DELETE";
	go(self, "/api/items");
	EXPECT_EQ(self->d.status, 403);
	EXPECT_STREQ(zm_buf_cstr(&self->d.body), "RBAC: access denied");
	self->req.method = "GET";
	/* not under /api/ once normalized: no ALLOW rule matches, and DENY /admin hits */
	go(self, "/api/../admin");
	EXPECT_EQ(self->d.status, 403);
	go(self, "/api/%2e%2e/admin");
	EXPECT_EQ(self->d.status, 403);
	go(self, "/api\\..\\admin");
	EXPECT_EQ(self->d.status, 403);
	go(self, "/other");
	EXPECT_EQ(self->d.status, 403);
	self->req.method = "PATCH";
	go(self, "/api/items");
	EXPECT_EQ(self->d.status, 403);
	/* notPaths + hosts with port */
	self->req.method = "PUT";
	go(self, "/put-me");
	EXPECT_EQ(self->d.action, ZM_L7_FORWARD);
	self->req.authority = "secure:80";
	go(self, "/put-me");
	EXPECT_EQ(self->d.action, ZM_L7_FORWARD);
	go(self, "/api/x");
	EXPECT_EQ(self->d.status, 403);
}

TEST_F(l7, authz_conditions_sources)
{
	struct in_addr a;

	self->req.authority = "secure";
	go(self, "/hdr");
	EXPECT_EQ(self->d.status, 403);
	hdr(self, "x-token", "ok");
	go(self, "/hdr");
	EXPECT_EQ(self->d.action, ZM_L7_FORWARD);
	hdr(self, "X-Token", "again");	/* joined "ok, again": no longer "ok" */
	go(self, "/hdr");
	EXPECT_EQ(self->d.status, 403);
	go(self, "/ns");
	EXPECT_EQ(self->d.status, 403);
	/* a namespace not proven by a certificate does not count for policy */
	self->req.src_ns = "good";
	go(self, "/ns");
	EXPECT_EQ(self->d.status, 403);
	self->req.src_principal = "spiffe://cluster.local/ns/good/sa/app";
	go(self, "/ns");
	EXPECT_EQ(self->d.action, ZM_L7_FORWARD);
	/* principals are written without the scheme, as in Istio */
	go(self, "/principal");
	EXPECT_EQ(self->d.action, ZM_L7_FORWARD);
	self->req.src_principal = "spiffe://cluster.local/ns/good/sa/other";
	go(self, "/principal");
	EXPECT_EQ(self->d.status, 403);
	self->req.src_principal = NULL;
	go(self, "/principal");
	EXPECT_EQ(self->d.status, 403);
	self->req.src_family = AF_INET;
	inet_pton(AF_INET, "10.1.9.9", &a);
	memcpy(self->req.src_addr, &a, 4);
	go(self, "/ip");
	EXPECT_EQ(self->d.action, ZM_L7_FORWARD);
	inet_pton(AF_INET, "10.1.2.3", &a);
	memcpy(self->req.src_addr, &a, 4);
	go(self, "/ip");
	EXPECT_EQ(self->d.status, 403);
}

static char *token(EVP_PKEY *k, const char *alg, const char *kid, const char *claims)
{
	char h[128];

	snprintf(h, sizeof(h), "{\"alg\":\"%s\",\"kid\":\"%s\"}", alg, kid);
	return sign_token(h, claims, k, alg, NULL, 0);
}

static char *good_claims(char *buf, size_t sz, const char *extra)
{
	long long now = (long long)time(NULL);

	snprintf(buf, sz, "{\"iss\":\"" ISS "\",\"sub\":\"alice\",\"aud\":\"secure\","
		 "\"exp\":%lld%s}", now + 600, extra ? extra : "");
	return buf;
}

TEST_F(l7, jwt_accept_reject)
{
	char claims[512], bearer[4096];

	self->req.authority = "secure";
	/* no token: anonymous, and the requestPrincipals rule refuses it */
	go(self, "/jwt/x");
	EXPECT_EQ(self->d.status, 403);
	self->tok = token(rsa, "RS256", "k1", good_claims(claims, sizeof(claims), NULL));
	snprintf(bearer, sizeof(bearer), "Bearer %s", self->tok);
	hdr(self, "authorization", bearer);
	go(self, "/jwt/x");
	EXPECT_EQ(self->d.action, ZM_L7_FORWARD);
	EXPECT_STREQ(self->d.request_principal, ISS "/alice");
	/* forwardOriginalToken false: the header goes; the payload is output */
	ASSERT_EQ(self->d.nreq_remove, 1);
	EXPECT_STREQ(self->d.req_remove[0], "authorization");
	ASSERT_EQ(self->d.nreq_set, 1);
	EXPECT_STREQ(self->d.req_set[0].name, "x-jwt-payload");
	EXPECT_TRUE(strstr(self->tok, self->d.req_set[0].value) != NULL);
	/* ES256 works too, and a token in a parameter */
	free(self->tok);
	self->tok = token(ec, "ES256", "k2", good_claims(claims, sizeof(claims), NULL));
	self->nh = 0;
	self->req.nheaders = 0;
	{
		char t[4096];

		snprintf(t, sizeof(t), "/jwt/x?token=%s", self->tok);
		go(self, t);
		EXPECT_EQ(self->d.action, ZM_L7_FORWARD);
	}
	/* a token signed by another key, expired, wrong audience: 401 */
	free(self->tok);
	self->tok = token(other, "RS256", "k1", good_claims(claims, sizeof(claims), NULL));
	hdr(self, "x-jwt", self->tok);
	go(self, "/api/x");
	EXPECT_EQ(self->d.status, 401);
	EXPECT_STRSTR(zm_buf_cstr(&self->d.body), "Jwt verification fails");
	free(self->tok);
	snprintf(claims, sizeof(claims), "{\"iss\":\"" ISS "\",\"sub\":\"a\",\"aud\":\"secure\",\"exp\":%lld}",
		 (long long)time(NULL) - 3600);
	self->tok = token(rsa, "RS256", "k1", claims);
	self->h[0].value = self->tok;
	self->h[0].value_len = strlen(self->tok);
	go(self, "/api/x");
	EXPECT_EQ(self->d.status, 401);
	free(self->tok);
	snprintf(claims, sizeof(claims), "{\"iss\":\"" ISS "\",\"sub\":\"a\",\"aud\":\"else\",\"exp\":%lld}",
		 (long long)time(NULL) + 3600);
	self->tok = token(rsa, "RS256", "k1", claims);
	self->h[0].value = self->tok;
	self->h[0].value_len = strlen(self->tok);
	go(self, "/api/x");
	EXPECT_EQ(self->d.status, 401);
	self->h[0].value = "garbage";
	self->h[0].value_len = 7;
	go(self, "/api/x");
	EXPECT_EQ(self->d.status, 401);
	/* JWT is not checked for services no RequestAuthentication names */
	self->req.authority = "echo";
	go(self, "/x");
	EXPECT_EQ(self->d.action, ZM_L7_FORWARD);
}

TEST_F(l7, jwt_claims_condition)
{
	char claims[512], bearer[4096];

	self->req.authority = "secure";
	self->tok = token(rsa, "RS256", "k1",
			  good_claims(claims, sizeof(claims), ",\"groups\":[\"dev\",\"admins\"]"));
	snprintf(bearer, sizeof(bearer), "Bearer %s", self->tok);
	hdr(self, "authorization", bearer);
	go(self, "/claims");
	EXPECT_EQ(self->d.action, ZM_L7_FORWARD);
	free(self->tok);
	self->tok = token(rsa, "RS256", "k1", good_claims(claims, sizeof(claims), ",\"groups\":[\"dev\"]"));
	snprintf(bearer, sizeof(bearer), "Bearer %s", self->tok);
	self->h[0].value = bearer;
	self->h[0].value_len = strlen(bearer);
	go(self, "/claims");
	EXPECT_EQ(self->d.status, 403);
}

TEST_F(l7, balancing_subsets_rr_hash)
{
	int seen[3] = { 0 }, first = -1;

	go(self, "/exact");	/* subset v1: the two v1 pods, round robin */
	for (int i = 0; i < 6; i++) {
		int ep = zm_l7_pick(self->l7, &self->d, &self->req, -1, 0);

		ASSERT_GE(ep, 0);
		seen[ep]++;
		zm_l7_report(self->l7, &self->d, ep, 200, 0);
	}
	EXPECT_EQ(seen[0], 3);
	EXPECT_EQ(seen[1], 3);
	EXPECT_EQ(seen[2], 0);
	/* retry skips the endpoint that failed */
	{
		int ep = zm_l7_pick(self->l7, &self->d, &self->req, 0, 0);

		EXPECT_EQ(ep, 1);
		zm_l7_report(self->l7, &self->d, ep, 200, 0);
	}
	/* consistent hash: one key, one endpoint */
	hdr(self, "x-key", "user-42");
	go(self, "/hash");
	for (int i = 0; i < 20; i++) {
		int ep = zm_l7_pick(self->l7, &self->d, &self->req, -1, 0);

		if (first < 0)
			first = ep;
		EXPECT_EQ(ep, first);
		zm_l7_report(self->l7, &self->d, ep, 200, 0);
	}
	/* unknown subset: no healthy upstream */
	go(self, "/exact");
	self->d.subset = "nosuch";
	EXPECT_EQ(zm_l7_pick(self->l7, &self->d, &self->req, -1, 0), -EHOSTUNREACH);
}

TEST_F(l7, outlier_ejection)
{
	int64_t now = 1000 * ZM_NS_PER_S;

	go(self, "/x");		/* all three pods, round robin */
	/* endpoint 0 fails twice in a row: ejected for 30 s */
	for (int i = 0; i < 2; i++) {
		int ep;

		do {
			ep = zm_l7_pick(self->l7, &self->d, &self->req, -1, now);
			zm_l7_report(self->l7, &self->d, ep, ep == 0 ? 503 : 200, now);
		} while (ep != 0);
	}
	for (int i = 0; i < 20; i++) {
		int ep = zm_l7_pick(self->l7, &self->d, &self->req, -1, now + ZM_NS_PER_S);

		EXPECT_NE(ep, 0);
		zm_l7_report(self->l7, &self->d, ep, 200, now);
	}
	/* back after the ejection time */
	{
		bool back = false;

		for (int i = 0; i < 6; i++) {
			int ep = zm_l7_pick(self->l7, &self->d, &self->req, -1, now + 31 * ZM_NS_PER_S);

			back |= ep == 0;
			zm_l7_report(self->l7, &self->d, ep, 200, now);
		}
		EXPECT_TRUE(back);
	}
}

TEST_F(l7, connection_pool_limit)
{
	go(self, "/limited");	/* subset v2: maxConnections 1 + 1 pending */
	EXPECT_EQ(zm_l7_admit(self->l7, &self->d), 0);
	EXPECT_EQ(zm_l7_admit(self->l7, &self->d), 0);
	EXPECT_EQ(zm_l7_admit(self->l7, &self->d), -EBUSY);
	zm_l7_release(self->l7, &self->d);
	EXPECT_EQ(zm_l7_admit(self->l7, &self->d), 0);
	zm_l7_release(self->l7, &self->d);
	zm_l7_release(self->l7, &self->d);
	/* no pool settings: unlimited */
	go(self, "/x");
	for (int i = 0; i < 100; i++)
		EXPECT_EQ(zm_l7_admit(self->l7, &self->d), 0);
}

/* Every endpoint of a subset ejected: panic mode stays inside the subset
 * (Envoy's panic is per cluster; a subset is a cluster of its own). */
TEST_F(l7, panic_mode_keeps_to_the_subset)
{
	int64_t now = 1000 * ZM_NS_PER_S;

	go(self, "/limited");
	ASSERT_STREQ(subset(self), "v2");
	for (int i = 0; i < 2; i++) {
		int ep = zm_l7_pick(self->l7, &self->d, &self->req, -1, now);

		ASSERT_EQ(ep, 2);	/* echo-v2, the subset's only pod */
		zm_l7_report(self->l7, &self->d, ep, 503, now);
	}
	for (int i = 0; i < 12; i++) {
		int ep = zm_l7_pick(self->l7, &self->d, &self->req, -1, now + ZM_NS_PER_S);

		EXPECT_EQ(ep, 2);
		zm_l7_report(self->l7, &self->d, ep, 200, now + ZM_NS_PER_S);
	}
}

/* outlierDetection.minHealthPercent (Envoy's panic threshold): v1 has two
 * pods; with one ejected 50% are healthy, under its 60%: both take traffic. */
TEST_F(l7, min_health_percent_panics_below_it)
{
	int64_t now = 1000 * ZM_NS_PER_S;
	bool ejected_one_picked = false;
	int ep;

	go(self, "/exact");
	ASSERT_STREQ(subset(self), "v1");
	do {
		ep = zm_l7_pick(self->l7, &self->d, &self->req, -1, now);
		zm_l7_report(self->l7, &self->d, ep, ep == 0 ? 503 : 200, now);
	} while (ep != 0);
	for (int i = 0; i < 12; i++) {
		ep = zm_l7_pick(self->l7, &self->d, &self->req, -1, now + ZM_NS_PER_S);
		EXPECT_TRUE(ep == 0 || ep == 1);
		ejected_one_picked |= ep == 0;
		zm_l7_report(self->l7, &self->d, ep, ep == 0 ? 503 : 200, now + ZM_NS_PER_S);
	}
	EXPECT_TRUE(ejected_one_picked);
}

/* connectionPool.http.maxRetries: outstanding retries per destination. */
TEST_F(l7, max_retries_circuit_breaker)
{
	go(self, "/limited");	/* subset v2: maxRetries 1 */
	ASSERT_STREQ(subset(self), "v2");
	EXPECT_TRUE(zm_l7_retry_begin(self->l7, &self->d));
	EXPECT_FALSE(zm_l7_retry_begin(self->l7, &self->d));
	zm_l7_retry_end(self->l7, &self->d);
	EXPECT_TRUE(zm_l7_retry_begin(self->l7, &self->d));
	zm_l7_retry_end(self->l7, &self->d);
	go(self, "/x");		/* no limit set: Istio's default, unlimited */
	for (int i = 0; i < 100; i++)
		EXPECT_TRUE(zm_l7_retry_begin(self->l7, &self->d));
	for (int i = 0; i < 100; i++)
		zm_l7_retry_end(self->l7, &self->d);
}

/* retryBudget (subset hash: 50%, at least 1): concurrent retries bounded
 * by half the requests in flight to the destination, at least one. */
TEST_F(l7, retry_budget)
{
	go(self, "/hash");
	ASSERT_STREQ(subset(self), "hash");
	EXPECT_TRUE(zm_l7_retry_begin(self->l7, &self->d));	/* nothing in flight: the minimum */
	EXPECT_FALSE(zm_l7_retry_begin(self->l7, &self->d));
	for (int i = 0; i < 4; i++)
		ASSERT_EQ(zm_l7_admit(self->l7, &self->d), 0);
	EXPECT_TRUE(zm_l7_retry_begin(self->l7, &self->d));	/* 4 in flight: 2 */
	EXPECT_FALSE(zm_l7_retry_begin(self->l7, &self->d));
	for (int i = 0; i < 4; i++)
		zm_l7_release(self->l7, &self->d);
	zm_l7_retry_end(self->l7, &self->d);
	zm_l7_retry_end(self->l7, &self->d);
	EXPECT_TRUE(zm_l7_retry_begin(self->l7, &self->d));
	zm_l7_retry_end(self->l7, &self->d);
}

/* portLevelSettings: per service port, a port-level piece overrides its
 * level, a subset overrides the rule (Istio's merge). */
TEST_F(l7, port_level_settings)
{
	static const struct {
		const char *subset;
		int port_idx;		/* 0: port 80, 1: port 9000 */
		int64_t cto_s, max_reqs;
	} cases[] = {
		{ NULL, 0, 1, 0 },	/* 80: its port-level entry has no pool: the rule's */
		{ NULL, 1, 2, 5 },	/* 9000: the port-level pool */
		{ "s1", 0, 1, 0 },
		{ "s1", 1, 3, 0 },	/* the subset's port-level pool, not inherited piecewise */
		{ "s2", 1, 4, 0 },	/* the subset's pool beats the rule's port level */
	};

	self->req.authority = "secure";
	go(self, "/api/x");
	ASSERT_TRUE(self->d.svc != NULL);
	ASSERT_STREQ(self->d.svc->name, "secure");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct zm_l7_decision d = self->d;

		d.subset = cases[i].subset;
		d.svc_port_idx = cases[i].port_idx;
		EXPECT_EQ(zm_l7_connect_timeout(self->l7, &d), cases[i].cto_s * 1000000000LL);
		EXPECT_EQ(zm_l7_max_requests_per_connection(self->l7, &d), cases[i].max_reqs);
	}
}

TEST_F(l7, mirror)
{
	go(self, "/mirror");
	EXPECT_STREQ(subset(self), "v1");
	ASSERT_EQ(self->d.nmirrors, 1);
	EXPECT_STREQ(self->d.mirrors[0].subset, "v2");
	/* mirrors: each its own percentage (0% never) */
	EXPECT_STREQ(go(self, "/many-mirrors"), "mirrors");
	ASSERT_EQ(self->d.nmirrors, 2);
	EXPECT_STREQ(self->d.mirrors[0].subset, "v2");
	EXPECT_STREQ(self->d.mirrors[1].subset, "v1");
}

TEST(build_errors)
{
	static const char bad_re[] =
		"apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
		"metadata: {name: r}\nspec:\n  hosts: [a]\n  http:\n"
		"  - match: [{uri: {regex: \"(?<=x)y\"}}]\n    route: [{destination: {host: a}}]\n";
	struct zm_cfg_set set;
	struct zm_l7_view v = { 0 };
	struct zm_l7 *l7 = NULL;
	struct zm_error e = { "" };

	zm_cfg_set_init(&set);
	/* RE2 refuses lookbehind: config validation catches it first */
	EXPECT_NE(zm_cfg_load_buf(&set, "bad.yaml", bad_re, strlen(bad_re)), 0);
	EXPECT_EQ(set.nobjs, 0);
	zm_cfg_set_free(&set);
	zm_cfg_set_init(&set);
	EXPECT_EQ(zm_l7_build(&set, &v, NULL, &l7, &e), 0);
	zm_l7_put(l7);
	zm_cfg_set_free(&set);
}

TEST_F(l7, tcp_routes_and_l4_policy)
{
	const struct zm_l7_svc *echo = zm_l7_svc_by_addr(self->l7, "10.96.0.10");
	const struct zm_l7_svc *secure = zm_l7_svc_by_addr(self->l7, "secure.default.svc.cluster.local");
	int v1 = 0, hash = 0;

	ASSERT_TRUE(echo && secure);
	zm_labels_set(&self->src_labels, "app", "client");
	self->req.src_labels = &self->src_labels;
	EXPECT_EQ(zm_l7_decide_tcp(self->l7, &self->req, echo, 9000, &self->d), 0);
	EXPECT_EQ(self->d.action, ZM_L7_FORWARD);
	EXPECT_STREQ(subset(self), "v2");
	EXPECT_EQ(self->d.svc_port_idx, 1);
	zm_l7_decision_free(&self->d);
	self->req.src_labels = NULL;
	for (int i = 0; i < 200; i++) {
		zm_l7_decide_tcp(self->l7, &self->req, echo, 9000, &self->d);
		v1 += !strcmp(subset(self), "v1");
		hash += !strcmp(subset(self), "hash");
		zm_l7_decision_free(&self->d);
	}
	EXPECT_EQ(v1 + hash, 200);
	EXPECT_GT(v1, 60);
	EXPECT_GT(hash, 60);
	/* secure has a DENY rule on methods: on TCP it cannot be evaluated, so it denies */
	EXPECT_EQ(zm_l7_decide_tcp(self->l7, &self->req, secure, 9000, &self->d), 0);
	EXPECT_EQ(self->d.action, ZM_L7_RESPOND);
	EXPECT_EQ(self->d.status, 403);
}

static char *jwks_doc;

static char *fetched(const char *uri, void *arg)
{
	(void)arg;
	return !strcmp(uri, "http://keys.test/jwks") && jwks_doc ? strdup(jwks_doc) : NULL;
}

/* Build an engine for a jwksUri rule with @doc as the fetched document; the answer to a good token. */
static int jwks_uri_status(const char *doc)
{
	static const char cfg[] =
		"apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: r}\n"
		"spec:\n  jwtRules:\n  - {issuer: \"" ISS "\", jwksUri: \"http://keys.test/jwks\"}\n";
	struct zm_cfg_set set;
	struct zm_l7_view v = { 0 };
	struct zm_l7_opts o = { .jwks_uri = fetched };
	struct zm_error e = { "" };
	struct zm_l7 *l7 = NULL;
	struct zm_l7_decision d;
	char claims[256], bearer[4096], *tok;
	struct zm_http_field f[1];
	struct zm_l7_request r;
	int st;

	jwks_doc = (char *)doc;
	zm_cfg_set_init(&set);
	if (zm_cfg_load_buf(&set, "r.yaml", cfg, strlen(cfg)))
		return -1;
	v.svcs = calloc(1, sizeof(*v.svcs));
	add_svc(&v, "echo", "10.96.0.10");
	if (zm_l7_build(&set, &v, &o, &l7, &e)) {
		test_log("build: %s", e.msg);
		return -2;
	}
	zm_cfg_set_free(&set);
	tok = token(rsa, "RS256", "k1", good_claims(claims, sizeof(claims), NULL));
	snprintf(bearer, sizeof(bearer), "Bearer %s", tok);
	f[0] = (struct zm_http_field){ "authorization", 13, bearer, strlen(bearer) };
	r = (struct zm_l7_request){ .method = "GET", .scheme = "http", .authority = "echo", .target = "/",
				    .target_len = 1, .headers = f, .nheaders = 1, .port = 80,
				    .now_s = time(NULL) };
	zm_l7_decide(l7, &r, &d);
	st = d.action == ZM_L7_FORWARD ? 200 : d.status;
	zm_l7_decision_free(&d);
	zm_l7_put(l7);
	free(tok);
	return st;
}

TEST(jwks_uri_documents)
{
	char *jwk = jwk_rsa(rsa, "k1", NULL), doc[4096];

	snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", jwk);
	free(jwk);
	EXPECT_EQ(jwks_uri_status(doc), 200);
	/* not fetched yet: no keys, 401, and no stall */
	EXPECT_EQ(jwks_uri_status(NULL), 401);
	/* a broken document from the network is no keys, not a config error */
	EXPECT_EQ(jwks_uri_status("{\"keys\": 7}"), 401);
	EXPECT_EQ(jwks_uri_status("not json"), 401);
}

static void free_l7(void *p)
{
	zm_l7_put(p);
}

/* Gateway mode: only VirtualServices bound to a served Gateway, matched on the Host. */
TEST(gateway_binding)
{
	static const char cfg[] =
		"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: shop, namespace: default}\n"
		"spec:\n  hosts: [shop.example.com]\n  gateways: [istio-system/gw]\n  http:\n"
		"  - name: cart\n    match: [{uri: {prefix: /cart}}]\n    route: [{destination: {host: echo}}]\n"
		"  - name: both\n    match: [{uri: {prefix: /m}, gateways: [mesh]}]\n    route: [{destination: {host: echo}}]\n"
		"---\n"
		"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: local, namespace: istio-system}\n"
		"spec:\n  hosts: [\"*.local.test\"]\n  gateways: [gw, mesh]\n  http:\n"
		"  - name: any\n    route: [{destination: {host: echo.default.svc.cluster.local}}]\n"
		"---\n"
		"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: meshonly, namespace: default}\n"
		"spec:\n  hosts: [echo]\n  http:\n  - name: meshroute\n    route: [{destination: {host: echo}}]\n"
		"---\n"
		"apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: istio-system}\n"
		"spec:\n  selector: {istio: ingressgateway}\n  servers:\n"
		"  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [\"*\"]\n"
		"---\n"
		"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: gw-deny, namespace: istio-system}\n"
		"spec:\n  selector: {matchLabels: {istio: ingressgateway}}\n  action: DENY\n"
		"  rules: [{to: [{operation: {paths: [/cart/secret]}}]}]\n"
		"---\n"
		"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: dst-deny, namespace: default}\n"
		"spec:\n  action: DENY\n  rules: [{to: [{operation: {paths: [/cart/7]}}]}]\n";
	const char *gws[] = { "istio-system/gw" };
	struct zm_labels me = { 0 };
	struct zm_l7_opts o = { .gateways = gws, .ngateways = 1, .rand = test_rand, .self_ns = "istio-system",
				.self_labels = &me };
	struct zm_l7_opts mo = { .rand = test_rand };
	struct zm_l7 *gl7 = NULL, *ml7 = NULL;
	struct zm_l7_decision d;
	struct zm_error e = { "" };

	ASSERT_EQ(zm_labels_set(&me, "istio", "ingressgateway"), 0);
	for (int mode = 0; mode < 2; mode++) {
		struct zm_cfg_set set;
		struct zm_l7_view v = { 0 };

		zm_cfg_set_init(&set);
		ASSERT_EQ(zm_cfg_load_buf(&set, "gw.yaml", cfg, strlen(cfg)), 0);
		zm_cfg_validate(&set, NULL);
		for (size_t i = 0; i < set.nerrs; i++)
			test_log("%s", set.errs[i].text);
		ASSERT_EQ(set.nerrs, 0);
		v.svcs = calloc(1, sizeof(*v.svcs));
		add_svc(&v, "echo", "10.96.0.10");
		if (zm_l7_build(&set, &v, mode ? &mo : &o, mode ? &ml7 : &gl7, &e))
			test_log("build: %s", e.msg);
		ASSERT_NE(mode ? ml7 : gl7, NULL);
		zm_cfg_set_free(&set);
	}
	zm_labels_free(&me);
	test_defer(free_l7, gl7);
	test_defer(free_l7, ml7);
	struct {
		struct zm_l7 *l7;
		const char *host, *path;
		int status;			/* 0: forwarded */
		const char *route;
	} cases[] = {
		{ gl7, "shop.example.com", "/cart/1", 0, "cart" },
		{ gl7, "SHOP.example.com:443", "/cart", 0, "cart" },
		{ gl7, "shop.example.com", "/cart/secret", 403, NULL },	/* the gateway's own policy */
		{ gl7, "shop.example.com", "/cart/7", 0, "cart" },	/* the destination's is not its */
		{ ml7, "echo", "/cart/7", 403, NULL },			/* ... but the mesh's */
		{ gl7, "shop.example.com", "/m", 404, NULL },	/* match bound to mesh only */
		{ gl7, "shop.example.com", "/other", 404, NULL },
		{ gl7, "a.local.test", "/", 0, "any" },		/* "gw" resolved in istio-system */
		{ gl7, "echo", "/", 404, NULL },			/* no default route at a gateway */
		{ gl7, "other.example.com", "/", 404, NULL },
		{ ml7, "echo", "/", 0, "meshroute" },
		{ ml7, "a.local.test", "/", 0, "any" },		/* gateways: [gw, mesh] */
		{ ml7, "shop.example.com", "/cart", 404, NULL },	/* gateway-only VirtualService */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct zm_l7_request r = { .method = "GET", .scheme = "https", .authority = cases[i].host,
					   .target = cases[i].path, .target_len = strlen(cases[i].path),
					   .port = 80 };

		ASSERT_EQ(zm_l7_decide(cases[i].l7, &r, &d), 0);
		test_log("case %zu: %s%s -> %d %s", i, cases[i].host, cases[i].path,
			 d.action == ZM_L7_RESPOND ? d.status : 0, d.route_name ? d.route_name : "-");
		if (cases[i].status) {
			EXPECT_EQ(d.action, ZM_L7_RESPOND);
			EXPECT_EQ(d.status, cases[i].status);
		} else {
			EXPECT_EQ(d.action, ZM_L7_FORWARD);
			EXPECT_STREQ(d.route_name ? d.route_name : "", cases[i].route);
		}
		zm_l7_decision_free(&d);
	}
}

/* A gateway engine over @cfg with the server-host table @h (as gateway.c makes it). */
static struct zm_l7 *gw_engine(const char *cfg, const struct zm_l7_gw_host *h, size_t nh)
{
	const char *gws[] = { "istio-system/gw" };
	struct zm_labels me = { 0 };
	struct zm_l7_opts o = { .gateways = gws, .ngateways = 1, .rand = test_rand, .self_ns = "istio-system",
				.self_labels = &me, .gw_hosts = h, .ngw_hosts = nh };
	struct zm_cfg_set set;
	struct zm_l7_view v = { 0 };
	struct zm_l7 *l7 = NULL;
	struct zm_error e = { "" };

	zm_labels_set(&me, "istio", "ingressgateway");
	zm_cfg_set_init(&set);
	if (zm_cfg_load_buf(&set, "gw.yaml", cfg, strlen(cfg)))
		return NULL;
	zm_cfg_validate(&set, NULL);
	for (size_t i = 0; i < set.nerrs; i++)
		test_log("%s", set.errs[i].text);
	if (!set.nerrs) {
		v.svcs = calloc(2, sizeof(*v.svcs));
		add_svc(&v, "echo", "10.96.0.10");
		add_svc(&v, "far", "10.96.0.11");
		snprintf(v.svcs[1].ns, sizeof(v.svcs[1].ns), "other");
		snprintf(v.svcs[1].fqdn, sizeof(v.svcs[1].fqdn), "far.other.svc.cluster.local");
		if (zm_l7_build(&set, &v, &o, &l7, &e))
			test_log("build: %s", e.msg);
	}
	zm_cfg_set_free(&set);
	zm_labels_free(&me);
	return l7;
}

/* Istio's Gateway hosts "ns/host": only VirtualServices of ns bind ("./" the
 * Gateway's namespace, "*" any); the VirtualService's bare gateway name
 * resolves in its own namespace. */
TEST(gateway_host_namespace_scoping)
{
	static const char cfg[] =
		"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: shop2, namespace: other}\n"
		"spec:\n  hosts: [shop.example.com]\n  gateways: [istio-system/gw]\n  http:\n"
		"  - name: shop2\n    route: [{destination: {host: echo.default.svc.cluster.local}}]\n"
		"---\n"
		"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: shop, namespace: default}\n"
		"spec:\n  hosts: [shop.example.com]\n  gateways: [istio-system/gw]\n  http:\n"
		"  - name: shop\n    route: [{destination: {host: echo}}]\n"
		"---\n"
		"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: own, namespace: default}\n"
		"spec:\n  hosts: [own.example.com]\n  gateways: [istio-system/gw]\n  http:\n"
		"  - name: own-default\n    route: [{destination: {host: echo}}]\n"
		"---\n"
		"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: own, namespace: istio-system}\n"
		"spec:\n  hosts: [own.example.com]\n  gateways: [gw]\n  http:\n"
		"  - name: own-sys\n    route: [{destination: {host: echo.default.svc.cluster.local}}]\n"
		"---\n"
		"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: any, namespace: other}\n"
		"spec:\n  hosts: [any.example.com]\n  gateways: [istio-system/gw]\n  http:\n"
		"  - name: any\n    route: [{destination: {host: echo.default.svc.cluster.local}}]\n"
		"---\n"
		"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: bare, namespace: other}\n"
		"spec:\n  hosts: [bare.example.com]\n  gateways: [gw]\n  http:\n"
		"  - name: bare\n    route: [{destination: {host: echo.default.svc.cluster.local}}]\n"
		"---\n"
		"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: m, namespace: other}\n"
		"spec:\n  hosts: [m.example.com]\n  gateways: [istio-system/gw]\n  http:\n"
		"  - name: m\n    match: [{gateways: [istio-system/gw]}]\n"
		"    route: [{destination: {host: echo.default.svc.cluster.local}}]\n"
		"---\n"
		"apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: istio-system}\n"
		"spec:\n  selector: {istio: ingressgateway}\n  servers:\n"
		"  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [\"*\"]\n"
		"---\n"
		"apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: other}\n"
		"spec:\n  selector: {istio: other-gateway}\n  servers:\n"
		"  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [\"*\"]\n";
	/* gw's servers: port 80 [default/shop, ./own, any, bare, ./m]; 8080 [other/shop] */
	static const struct zm_l7_gw_host h[] = {
		{ "istio-system/gw", 80, "default", "shop.example.com", false },
		{ "istio-system/gw", 80, "istio-system", "own.example.com", false },
		{ "istio-system/gw", 80, "*", "any.example.com", false },
		{ "istio-system/gw", 80, "*", "bare.example.com", false },
		{ "istio-system/gw", 80, "istio-system", "m.example.com", false },
		{ "istio-system/gw", 8080, "other", "shop.example.com", false },
	};
	struct zm_l7 *l7 = gw_engine(cfg, h, sizeof(h) / sizeof(h[0])), *open7;
	struct zm_l7_decision d;
	struct {
		struct zm_l7 **l7;
		const char *host;
		int port, status;
		const char *route;
	} cases[] = {
		{ &l7, "shop.example.com", 80, 0, "shop" },	/* other/shop2 is first but not admitted */
		{ &l7, "shop.example.com", 8080, 0, "shop2" },	/* the reverse on 8080 */
		{ &l7, "own.example.com", 80, 0, "own-sys" },	/* "./": the Gateway's namespace */
		{ &l7, "any.example.com", 80, 0, "any" },
		{ &l7, "any.example.com", 8080, 404, NULL },	/* no server for that host on 8080 */
		{ &l7, "bare.example.com", 80, 404, NULL },	/* "gw" is other/gw: not served */
		{ &l7, "m.example.com", 80, 404, NULL },	/* match.gateways held to the same rule */
		{ &open7, "shop.example.com", 80, 0, "shop2" },	/* no table: no scoping (first wins) */
	};

	ASSERT_NE(l7, NULL);
	test_defer(free_l7, l7);
	open7 = gw_engine(cfg, NULL, 0);
	ASSERT_NE(open7, NULL);
	test_defer(free_l7, open7);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct zm_l7_request r = { .method = "GET", .scheme = "http", .authority = cases[i].host,
					   .target = "/", .target_len = 1, .port = cases[i].port };

		ASSERT_EQ(zm_l7_decide(*cases[i].l7, &r, &d), 0);
		test_log("case %zu: %s:%d -> %d %s", i, cases[i].host, cases[i].port,
			 d.action == ZM_L7_RESPOND ? d.status : 0, d.route_name ? d.route_name : "-");
		if (cases[i].status) {
			EXPECT_EQ(d.action, ZM_L7_RESPOND);
			EXPECT_EQ(d.status, cases[i].status);
		} else {
			EXPECT_EQ(d.action, ZM_L7_FORWARD);
			EXPECT_STREQ(d.route_name ? d.route_name : "", cases[i].route);
		}
		zm_l7_decision_free(&d);
	}
}

TEST(sni_cluster_parse)
{
	struct {
		const char *sni;
		int rc, port;
		const char *subset, *host;
	} cases[] = {
		{ "outbound_.9000_._.echo.default.svc.cluster.local", 0, 9000, "", "echo.default.svc.cluster.local" },
		{ "outbound_.80_.v1_.echo.default.svc.cluster.local", 0, 80, "v1", "echo.default.svc.cluster.local" },
		{ "outbound_.65535_.a-b_.x.y", 0, 65535, "a-b", "x.y" },
		{ "inbound_.9000_._.echo.default.svc.cluster.local", -EINVAL, 0, NULL, NULL },
		{ "outbound_.0_._.echo", -EINVAL, 0, NULL, NULL },
		{ "outbound_.65536_._.echo", -EINVAL, 0, NULL, NULL },
		{ "outbound_.1234567_._.echo", -EINVAL, 0, NULL, NULL },
		{ "outbound_._._.echo", -EINVAL, 0, NULL, NULL },
		{ "outbound_.80_.V1_.echo", -EINVAL, 0, NULL, NULL },
		{ "outbound_.80_._.", -EINVAL, 0, NULL, NULL },
		{ "outbound_.80_._.*.example.com", -EINVAL, 0, NULL, NULL },
		{ "outbound_.80_.v1.echo", -EINVAL, 0, NULL, NULL },
		{ "outbound_.80", -EINVAL, 0, NULL, NULL },
		{ "outbound_.080_._.echo", -EINVAL, 0, NULL, NULL },
		{ "echo.default.svc.cluster.local", -EINVAL, 0, NULL, NULL },
		{ "", -EINVAL, 0, NULL, NULL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char sub[64] = "?", host[256] = "?";
		int port = -1, rc = zm_l7_sni_cluster(cases[i].sni, &port, sub, sizeof(sub), host, sizeof(host));

		test_log("%s -> %d", cases[i].sni, rc);
		EXPECT_EQ(rc, cases[i].rc);
		if (!cases[i].rc && !rc) {
			EXPECT_EQ(port, cases[i].port);
			EXPECT_STREQ(sub, cases[i].subset);
			EXPECT_STREQ(host, cases[i].host);
		}
	}
	EXPECT_EQ(zm_l7_sni_cluster(NULL, NULL, NULL, 0, NULL, 0), -EINVAL);
	/* damaged copies: never out of bounds (ASan), and what is accepted
	 * formats back to the very same name */
	static const char alphabet[] = " ._-/*09azAZ\x7f\xff";
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	size_t accepted = 0;

	for (int i = 0; i < 20000; i++) {
		char sni[96], sub[64], host[256], back[400];
		int port, n;

		snprintf(sni, sizeof(sni), "outbound_.%d_.%s_.echo.default.svc.cluster.local", 1 + i % 70000,
			 i % 3 ? "v1" : "");
		for (int k = 0; k < 1 + i % 3; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			sni[x % strlen(sni)] = alphabet[(x >> 20) % (sizeof(alphabet) - 1)];
		}
		if (zm_l7_sni_cluster(sni, &port, sub, sizeof(sub), host, sizeof(host)))
			continue;
		accepted++;
		n = snprintf(back, sizeof(back), "outbound_.%d_.%s_.%s", port, sub, host);
		EXPECT_EQ(n > 0 && !strcmp(back, sni), true);
	}
	test_log("%zu of 20000 damaged names accepted", accepted);
}

/* AUTO_PASSTHROUGH: the SNI names service, port and subset; no VirtualService. */
TEST(gateway_auto_passthrough)
{
	static const char cfg[] =
		"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: echo, namespace: default}\n"
		"spec:\n  host: echo\n  subsets:\n  - {name: v1, labels: {version: v1}}\n";
	static const struct zm_l7_gw_host h[] = {
		{ "istio-system/gw", 15443, "default", "*", true },
		{ "istio-system/gw", 443, "*", "*", false },
	};
	struct zm_l7 *l7 = gw_engine(cfg, h, sizeof(h) / sizeof(h[0]));
	struct zm_l7_decision d;
	struct {
		const char *sni;
		int port;
		bool fwd;
		const char *subset;
		int port_idx;
	} cases[] = {
		{ "outbound_.9000_._.echo.default.svc.cluster.local", 15443, true, NULL, 1 },
		{ "outbound_.80_.v1_.echo.default.svc.cluster.local", 15443, true, "v1", 0 },
		{ "outbound_.80_.v9_.echo.default.svc.cluster.local", 15443, false, NULL, 0 },	/* no subset */
		{ "outbound_.1234_._.echo.default.svc.cluster.local", 15443, false, NULL, 0 },	/* no port */
		{ "outbound_.80_._.nope.default.svc.cluster.local", 15443, false, NULL, 0 },	/* no service */
		{ "outbound_.80_._.far.other.svc.cluster.local", 15443, false, NULL, 0 },	/* ns not admitted */
		{ "outbound_.80_._.echo", 15443, false, NULL, 0 },				/* not an FQDN */
		{ "echo.default.svc.cluster.local", 15443, false, NULL, 0 },
		{ "outbound_.9000_._.echo.default.svc.cluster.local", 443, false, NULL, 0 },	/* not AUTO */
	};

	ASSERT_NE(l7, NULL);
	test_defer(free_l7, l7);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct zm_l7_request r = { .method = "", .scheme = "tcp", .authority = "" };

		ASSERT_EQ(zm_l7_decide_gateway_l4(l7, &r, cases[i].sni, cases[i].port, &d), 0);
		test_log("case %zu: %s:%d -> %s %s", i, cases[i].sni, cases[i].port,
			 d.action == ZM_L7_FORWARD ? "forward" : "refused", d.reason ? d.reason : "");
		EXPECT_EQ(d.action == ZM_L7_FORWARD, cases[i].fwd);
		if (cases[i].fwd && d.action == ZM_L7_FORWARD) {
			EXPECT_STREQ(d.svc->name, "echo");
			EXPECT_EQ(d.svc_port_idx, cases[i].port_idx);
			EXPECT_STREQ(d.subset ? d.subset : "(none)", cases[i].subset ? cases[i].subset : "(none)");
			if (cases[i].subset)
				EXPECT_EQ(zm_l7_pick(l7, &d, &r, -1, 0) < 2, true);	/* v1 endpoints only */
		}
		zm_l7_decision_free(&d);
	}
}
