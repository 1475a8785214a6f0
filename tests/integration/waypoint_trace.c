// SPDX-License-Identifier: Apache-2.0
/*
 * The waypoint's tracing and https jwksUri, in a lab (no mesh):
 *  - a Zipkin collector pod (a small Python HTTP server in this file that
 *    takes POST /api/v2/spans and appends each span to a file), a waypoint
 *    sampling 100% and one sampling 0%, echoapp as the backend (it answers
 *    with the headers it saw, so propagation is checked at the far end);
 *    a retry after a refused connection is a CLIENT span of its own;
 *  - JWKS servers over TLS (`openssl s_server -WWW`) with a certificate from
 *    a CA made here, one from a CA the waypoint does not trust, and one for
 *    another name; the waypoint trusts only that CA (--jwks-ca).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "zmesh/buf.h"
#include "../unit/jwt_sign.h"
#include "../harness/test.h"
#include "labkit.h"

#define ISS "https://issuer.trace.test"
#define ISS_BADCA "https://badca.trace.test"
#define ISS_BADNAME "https://badname.trace.test"
#define COLLECTOR "http://collector.default.svc.cluster.local:9411/api/v2/spans"

static const char cluster_fmt[] =
	"apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n---\n"
	"apiVersion: v1\nkind: Node\nmetadata: {name: n2}\n---\n"
	"apiVersion: v1\nkind: Pod\nmetadata: {name: echo, labels: {app: echo, tier: half}}\n"
	"spec:\n  nodeName: n1\n  containers:\n  - {name: c, command: [echoapp, serve, --http, \"8080\"]}\n---\n"
	"apiVersion: v1\nkind: Pod\nmetadata: {name: dead, labels: {tier: half}}\n"
	"spec:\n  nodeName: n1\n  containers:\n  - {name: c, command: [sleep, \"3600\"]}\n---\n"
	"apiVersion: v1\nkind: Pod\nmetadata: {name: client, labels: {app: client}}\n"
	"spec:\n  nodeName: n1\n  containers:\n  - {name: c, command: [sleep, \"3600\"]}\n---\n"
	"apiVersion: v1\nkind: Pod\nmetadata: {name: collector, labels: {app: collector}}\n"
	"spec:\n  nodeName: n2\n  containers:\n  - {name: c, command: [python3, %s/collector.py, \"9411\", %s]}\n---\n"
	"apiVersion: v1\nkind: Pod\nmetadata: {name: waypoint, labels: {app: waypoint}}\n"
	"spec:\n  nodeName: n2\n  containers:\n"
	"  - {name: c, command: [waypoint, --listen, \"0.0.0.0:8080\", --lab, %s, --config, %s,\n"
	"     --zipkin, \"" COLLECTOR "\", --trace-sampling, \"100\", --jwks-ca, %s/ca.crt]}\n---\n"
	"apiVersion: v1\nkind: Pod\nmetadata: {name: wp0, labels: {app: wp0}}\n"
	"spec:\n  nodeName: n1\n  containers:\n"
	"  - {name: c, command: [waypoint, --name, wp0, --listen, \"0.0.0.0:8080\", --lab, %s, --config, %s,\n"
	"     --zipkin, \"" COLLECTOR "\", --trace-sampling, \"0\"]}\n---\n"
	"apiVersion: v1\nkind: Pod\nmetadata: {name: gw, labels: {istio: ingressgateway}}\n"
	"spec:\n  nodeName: n1\n  containers:\n"
	"  - {name: c, command: [waypoint, --gateway, --lab, %s, --config, %s,\n"
	"     --zipkin, \"" COLLECTOR "\", --trace-sampling, \"100\"]}\n---\n"
	"apiVersion: v1\nkind: Pod\nmetadata: {name: jwkss, labels: {app: jwkss}}\n"
	"spec:\n  nodeName: n2\n  containers:\n  - {name: c, command: [sh, -c, \"cd %s/www && exec openssl s_server "
	"-quiet -WWW -accept 8443 -cert ../good.crt -key ../good.key\"]}\n---\n"
	"apiVersion: v1\nkind: Pod\nmetadata: {name: jwksbad, labels: {app: jwksbad}}\n"
	"spec:\n  nodeName: n2\n  containers:\n  - {name: c, command: [sh, -c, \"cd %s/www && exec openssl s_server "
	"-quiet -WWW -accept 8443 -cert ../bad.crt -key ../bad.key\"]}\n---\n"
	"apiVersion: v1\nkind: Pod\nmetadata: {name: jwksname, labels: {app: jwksname}}\n"
	"spec:\n  nodeName: n2\n  containers:\n  - {name: c, command: [sh, -c, \"cd %s/www && exec openssl s_server "
	"-quiet -WWW -accept 8443 -cert ../name.crt -key ../name.key\"]}\n---\n"
	"apiVersion: v1\nkind: Service\nmetadata: {name: collector}\n"
	"spec:\n  selector: {app: collector}\n  ports:\n  - {name: http, port: 9411}\n---\n"
	"apiVersion: v1\nkind: Service\nmetadata: {name: jwkss}\n"
	"spec:\n  selector: {app: jwkss}\n  ports:\n  - {name: https, port: 8443}\n---\n"
	"apiVersion: v1\nkind: Service\nmetadata: {name: jwksbad}\n"
	"spec:\n  selector: {app: jwksbad}\n  ports:\n  - {name: https, port: 8443}\n---\n"
	"apiVersion: v1\nkind: Service\nmetadata: {name: jwksname}\n"
	"spec:\n  selector: {app: jwksname}\n  ports:\n  - {name: https, port: 8443}\n---\n"
	"apiVersion: v1\nkind: Service\nmetadata: {name: echo}\n"
	"spec:\n  selector: {app: echo}\n  ports:\n  - {name: http, port: 80, targetPort: 8080}\n---\n"
	"apiVersion: v1\nkind: Service\nmetadata: {name: half}\n"
	"spec:\n  selector: {tier: half}\n  ports:\n  - {name: http, port: 80, targetPort: 8080}\n---\n"
	"apiVersion: v1\nkind: Service\nmetadata: {name: nobody}\n"
	"spec:\n  selector: {app: nobody}\n  ports:\n  - {name: http, port: 80, targetPort: 8080}\n---\n"
	"apiVersion: v1\nkind: Service\nmetadata: {name: s1}\n"
	"spec:\n  selector: {app: echo}\n  ports:\n  - {name: http, port: 80, targetPort: 8080}\n---\n"
	"apiVersion: v1\nkind: Service\nmetadata: {name: s2}\n"
	"spec:\n  selector: {app: echo}\n  ports:\n  - {name: http, port: 80, targetPort: 8080}\n---\n"
	"apiVersion: v1\nkind: Service\nmetadata: {name: s3}\n"
	"spec:\n  selector: {app: echo}\n  ports:\n  - {name: http, port: 80, targetPort: 8080}\n";

/* One RequestAuthentication + "a token is required" AuthorizationPolicy per Service. */
#define JWT_RULE(svc, iss, uri)                                                                    \
	"apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: ra-" svc "}\n" \
	"spec:\n  targetRefs: [{kind: Service, group: \"\", name: " svc "}]\n"                        \
	"  jwtRules:\n  - issuer: \"" iss "\"\n    jwksUri: " uri "\n---\n"                            \
	"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: ap-" svc "}\n"  \
	"spec:\n  targetRefs: [{kind: Service, group: \"\", name: " svc "}]\n"                        \
	"  rules:\n  - from: [{source: {requestPrincipals: [\"*\"]}}]\n---\n"

static const char config[] =
	JWT_RULE("s1", ISS, "https://jwkss.default.svc.cluster.local:8443/jwks.json")
	JWT_RULE("s2", ISS_BADCA, "https://jwksbad.default.svc.cluster.local:8443/jwks.json")
	JWT_RULE("s3", ISS_BADNAME, "https://jwksname.default.svc.cluster.local:8443/jwks.json")
	"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: half}\n"
	"spec:\n  host: half\n  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\n---\n"
	"apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\n"
	"spec:\n  selector: {istio: ingressgateway}\n"
	"  servers:\n  - port: {number: 8081, name: http, protocol: HTTP}\n    hosts: [\"*\"]\n---\n"
	"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: ingress}\n"
	"spec:\n  hosts: [echo.example.com]\n  gateways: [gw]\n"
	"  http:\n  - route: [{destination: {host: echo}}]\n---\n"
	"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: echo}\n"
	"spec:\n  hosts: [echo]\n  http:\n  - route: [{destination: {host: echo}}]\n";

/* The collector: each POSTed span as one JSON line in <dir>/spans.jsonl. */
static const char collector_py[] =
	"import http.server, json, sys\n"
	"out = sys.argv[2] + '/spans.jsonl'\n"
	"class H(http.server.BaseHTTPRequestHandler):\n"
	"    protocol_version = 'HTTP/1.1'\n"
	"    def do_POST(self):\n"
	"        b = self.rfile.read(int(self.headers.get('content-length', 0)))\n"
	"        ok = self.path == '/api/v2/spans' and \\\n"
	"             self.headers.get('content-type', '').startswith('application/json')\n"
	"        if ok:\n"
	"            spans = json.loads(b)\n"
	"            ok = isinstance(spans, list)\n"
	"            with open(out, 'a') as f:\n"
	"                for s in spans:\n"
	"                    f.write(json.dumps(s, sort_keys=True) + '\\n')\n"
	"        self.send_response(202 if ok else 400)\n"
	"        self.send_header('content-length', '0')\n"
	"        self.end_headers()\n"
	"    def log_message(self, *a):\n"
	"        pass\n"
	"http.server.ThreadingHTTPServer(('0.0.0.0', int(sys.argv[1])), H).serve_forever()\n";

/* Spans of one trace (argv[2]; "" = all) from one service (argv[3]), one line each. */
static const char spans_py[] =
	"import json, sys\n"
	"n = 0\n"
	"try:\n"
	"    lines = open(sys.argv[1]).readlines()\n"
	"except OSError:\n"
	"    lines = []\n"
	"spans = [json.loads(l) for l in lines]\n"
	"servers = set(s['id'] for s in spans if s['kind'] == 'SERVER' and len(sys.argv) > 4 and\n"
	"              sys.argv[4] in s['tags'].get('http.url', '-'))\n"
	"for s in spans:\n"
	"    if (sys.argv[2] and s['traceId'] != sys.argv[2]) or s['localEndpoint']['serviceName'] != sys.argv[3]:\n"
	"        continue\n"
	"    if len(sys.argv) > 4 and sys.argv[4] not in s['tags'].get('http.url', '-') and \\\n"
	"       not (s['kind'] == 'CLIENT' and s.get('parentId') in servers):\n"
	"        continue\n"
	"    t = s['tags']\n"
	"    n += 1\n"
	"    print(s['kind'], 'trace=' + s['traceId'], 'id=' + s['id'], 'parent=' + s.get('parentId', '-'),\n"
	"          'name=' + s['name'], 'method=' + t.get('http.method', '-'), 'url=' + t.get('http.url', '-'),\n"
	"          'code=' + t['http.status_code'], 'flags=' + t.get('response_flags', '-'),\n"
	"          'cluster=' + t['upstream_cluster'], 'cs=' + t['istio.canonical_service'],\n"
	"          'ns=' + t['istio.namespace'], 'error=' + t.get('error', '-'),\n"
	"          'times=' + ('ok' if s['timestamp'] > 1.7e15 and s['duration'] > 0 else 'bad'),\n"
	"          'remote=' + s.get('remoteEndpoint', {}).get('ipv4', '-'))\n"
	"print('count', n)\n";

static EVP_PKEY *key, *wrong_key;

__attribute__((constructor)) static void make_keys(void)
{
	key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	wrong_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
}

FIXTURE(tr) {
	char name[16];
	char dir[64];
	char wp[32], wp0[32], echo[32];	/* pod IPs */
};

/* A CA, a server certificate from it for jwkss, one for another name, a self-signed one. */
static int make_pki(const char *dir)
{
	return test_sh(NULL, 0, "cd %s && K='-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes' && "
		       "openssl req -x509 $K -keyout ca.key -out ca.crt -subj /CN=zm-trace-ca -days 2 && "
		       "openssl req $K -keyout good.key -out good.csr -subj /CN=jwkss "
		       "-addext subjectAltName=DNS:jwkss.default.svc.cluster.local && "
		       "openssl x509 -req -in good.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 "
		       "-copy_extensions copy -out good.crt && "
		       "openssl req $K -keyout name.key -out name.csr -subj /CN=other "
		       "-addext subjectAltName=DNS:other.example.com && "
		       "openssl x509 -req -in name.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 "
		       "-copy_extensions copy -out name.crt && "
		       "openssl req -x509 $K -keyout bad.key -out bad.crt -subj /CN=jwksbad -days 2 "
		       "-addext subjectAltName=DNS:jwksbad.default.svc.cluster.local", dir);
}

FIXTURE_SETUP(tr)
{
	char path[128], cluster[sizeof(cluster_fmt) + 1024], out[4096], jwks[2048];
	char *jwk;

	REQUIRE_ROOT();
	ASSERT_OK(lab_init_dir(self->name, sizeof(self->name), self->dir, sizeof(self->dir), "t", 0755));
	snprintf(path, sizeof(path), "%s/www", self->dir);
	mkdir(path, 0755);
	ASSERT_EQ(make_pki(self->dir), 0);
	jwk = jwk_rsa(key, "k1", NULL);
	snprintf(jwks, sizeof(jwks), "{\"keys\":[%s]}", jwk);
	free(jwk);
	snprintf(path, sizeof(path), "%s/www/jwks.json", self->dir);
	ASSERT_OK(test_write_file(path, jwks));
	snprintf(path, sizeof(path), "%s/collector.py", self->dir);
	ASSERT_OK(test_write_file(path, collector_py));
	snprintf(path, sizeof(path), "%s/spans.py", self->dir);
	ASSERT_OK(test_write_file(path, spans_py));
	snprintf(path, sizeof(path), "%s/config.yaml", self->dir);
	ASSERT_OK(test_write_file(path, config));
	snprintf(cluster, sizeof(cluster), cluster_fmt, self->dir, self->dir, self->name, path, self->dir,
		 self->name, path, self->name, path, self->dir, self->dir, self->dir);
	snprintf(path, sizeof(path), "%s/cluster.yaml", self->dir);
	ASSERT_OK(test_write_file(path, cluster));
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab up --no-mesh -f %s --name %s", lab_ctl(), path,
			  self->name), 0);
	ASSERT_EQ(lab_pod_ip(self->name, "waypoint", self->wp, sizeof(self->wp)), 0);
	ASSERT_EQ(lab_pod_ip(self->name, "wp0", self->wp0, sizeof(self->wp0)), 0);
	ASSERT_EQ(lab_pod_ip(self->name, "echo", self->echo, sizeof(self->echo)), 0);
	ASSERT_OK(lab_poll(out, sizeof(out), "200200", 100, 50000, "%s lab exec client --name %s -- sh -c \"curl -s "
			   "-o /dev/null -w '%%{http_code}' http://%s:15021/healthz/ready; curl -s -o /dev/null "
			   "-w '%%{http_code}' http://%s:15021/healthz/ready\"", lab_ctl(), self->name, self->wp,
			   self->wp0));
	/* The collector (python) may start after the waypoints: spans posted
	 * before it listens are dropped, not retried (as Envoy's). */
	for (int i = 0; i < 100; i++) {
		if (test_sh(NULL, 0, "%s lab exec client --name %s -- curl -s -o /dev/null -m 1 "
			    "http://collector.default.svc.cluster.local:9411/", lab_ctl(), self->name) == 0)
			break;
		usleep(100000);
	}
}

FIXTURE_TEARDOWN(tr)
{
	lab_remove(self->name, self->dir);
}

/*
 * GET http://@ip:8080@path with Host @host and @extra curl args from the client
 * pod; @out: "<code> <traceparent> <x-b3-traceid> <x-b3-spanid> <x-b3-parentspanid>
 * <x-b3-sampled> <b3>" as the backend saw them ("-" when absent).
 */
static int get(struct zm_fixture_tr *self, const char *ip, const char *host, const char *extra,
	       const char *path, char *out, size_t sz)
{
	int rc = test_sh(out, sz, "%s lab exec client --name %s -- curl -s -w '\\n%%{http_code}' "
			 "-H 'Host: %s' %s 'http://%s:8080%s' | python3 -c \"import json,sys\n"
			 "l = sys.stdin.read().rsplit('\\n', 1)\n"
			 "try:\n  h = json.loads(l[0])['headers']\nexcept Exception:\n  h = {}\n"
			 "print(l[1], *[h.get(k, '-') for k in ('traceparent', 'x-b3-traceid', 'x-b3-spanid', "
			 "'x-b3-parentspanid', 'x-b3-sampled', 'b3')])\"",
			 lab_ctl(), self->name, host, extra ? extra : "", ip, path);

	out[strcspn(out, "\n")] = 0;
	return rc;
}

/* Wait up to ~10 s for @want spans of @trace ("" any) from @svc (and url containing @url). */
static int spans(struct zm_fixture_tr *self, const char *trace, const char *svc, const char *url,
		 int want, char *out, size_t sz)
{
	int n = -1;

	/* the exporter flushes every second; allow for a loaded machine */
	for (int i = 0; i < 100; i++) {
		const char *c;

		test_sh(out, sz, "python3 %s/spans.py %s/spans.jsonl '%s' '%s' %s%s%s", self->dir, self->dir,
			trace, svc, url ? "'" : "", url ? url : "", url ? "'" : "");
		c = strstr(out, "count ");
		n = c ? atoi(c + 6) : -1;
		if (n >= want)
			break;
		usleep(100000);
	}
	return n;
}

/* Field @k ("id=", "parent=") of the first line of @out starting with @kind, into @v. */
static const char *field_of(const char *out, const char *kind, const char *k, char *v, size_t sz)
{
	const char *l = out, *p;

	v[0] = 0;
	while (l && *l) {
		if (!strncmp(l, kind, strlen(kind)) && (p = strstr(l, k)) && (!strchr(l, '\n') || p < strchr(l, '\n'))) {
			p += strlen(k);
			snprintf(v, sz, "%.*s", (int)strcspn(p, " \n"), p);
			return v;
		}
		l = strchr(l, '\n');
		if (l)
			l++;
	}
	return v;
}

static int count_occ(const char *out, const char *needle)
{
	int n = 0;

	for (const char *p = out; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

TEST_F(tr, w3c_parent_child_fields_and_b3_propagation)
{
	char out[8192], sp[8192], want[512], sid[40], cid[40], hid[40];

	/* W3C context in: the SERVER span is the caller's child, the CLIENT span ours */
	ASSERT_EQ(get(self, self->wp, "echo", "-H 'traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'",
		      "/t1?q=1", out, sizeof(out)), 0);
	test_log("backend saw: %s", out);
	ASSERT_EQ(strncmp(out, "200 00-0af7651916cd43dd8448eb211c80319c-", 40), 0);
	snprintf(hid, sizeof(hid), "%.16s", out + 40);
	EXPECT_STRSTR(out, "-01 0af7651916cd43dd8448eb211c80319c ");
	ASSERT_EQ(spans(self, "0af7651916cd43dd8448eb211c80319c", "waypoint.default", NULL, 2, sp, sizeof(sp)), 2);
	test_log("%s", sp);
	field_of(sp, "SERVER", "id=", sid, sizeof(sid));
	field_of(sp, "CLIENT", "id=", cid, sizeof(cid));
	EXPECT_STRSTR(sp, "SERVER trace=0af7651916cd43dd8448eb211c80319c");
	EXPECT_STRSTR(sp, "parent=b7ad6b7169203331 name=echo.default.svc.cluster.local:80/* method=GET "
		      "url=http://echo/t1?q=1 code=200 flags=- cluster=outbound|80||echo.default.svc.cluster.local "
		      "cs=waypoint ns=default error=- times=ok");
	/* the backend's parent is the CLIENT span, whose parent is the SERVER span */
	EXPECT_STREQ(cid, hid);
	snprintf(want, sizeof(want), "CLIENT trace=0af7651916cd43dd8448eb211c80319c id=%s parent=%s ", cid, sid);
	EXPECT_STRSTR(sp, want);
	snprintf(want, sizeof(want), "remote=%s", self->echo);
	EXPECT_STRSTR(sp, want);
	snprintf(want, sizeof(want), "%s %s 1 -", cid, sid);
	EXPECT_STRSTR(out, want);

	/* B3 multi headers (64-bit trace id) in: B3 and W3C out, same trace */
	ASSERT_EQ(get(self, self->wp, "echo", "-H 'x-b3-traceid: 80f198ee56343ba8' -H 'x-b3-spanid: e457b5a2e4d86bd1' "
		      "-H 'x-b3-sampled: 1'", "/t2", out, sizeof(out)), 0);
	test_log("backend saw: %s", out);
	EXPECT_STRSTR(out, "200 00-000000000000000080f198ee56343ba8-");
	EXPECT_STRSTR(out, "-01 80f198ee56343ba8 ");
	ASSERT_EQ(spans(self, "80f198ee56343ba8", "waypoint.default", NULL, 2, sp, sizeof(sp)), 2);
	field_of(sp, "SERVER", "id=", sid, sizeof(sid));
	EXPECT_STRSTR(sp, "SERVER trace=80f198ee56343ba8");
	EXPECT_STRSTR(sp, "parent=e457b5a2e4d86bd1 ");
	snprintf(want, sizeof(want), " %s 1 -", sid);
	EXPECT_STRSTR(out, want);

	/* a single b3 header in: answered in kind */
	ASSERT_EQ(get(self, self->wp, "echo", "-H 'b3: a3ce929d0e0e47364bf92f3577b34da6-a2fb4a1d1a96d312-1'",
		      "/t3", out, sizeof(out)), 0);
	test_log("backend saw: %s", out);
	ASSERT_EQ(spans(self, "a3ce929d0e0e47364bf92f3577b34da6", "waypoint.default", NULL, 2, sp, sizeof(sp)), 2);
	field_of(sp, "SERVER", "id=", sid, sizeof(sid));
	field_of(sp, "CLIENT", "id=", cid, sizeof(cid));
	EXPECT_STRSTR(sp, "parent=a2fb4a1d1a96d312 ");
	snprintf(want, sizeof(want), "a3ce929d0e0e47364bf92f3577b34da6-%s-1-%s", cid, sid);
	EXPECT_STRSTR(out, want);

	/* no context: a new trace, the backend gets it */
	ASSERT_EQ(get(self, self->wp, "echo", NULL, "/t4", out, sizeof(out)), 0);
	test_log("backend saw: %s", out);
	ASSERT_EQ(strncmp(out, "200 00-", 7), 0);
	snprintf(hid, sizeof(hid), "%.32s", out + 7);
	EXPECT_STRSTR(out, "-01 ");
	ASSERT_EQ(spans(self, hid, "waypoint.default", NULL, 2, sp, sizeof(sp)), 2);
	EXPECT_STRSTR(sp, "parent=- name=echo.default.svc.cluster.local:80/*");

	/* a local 503 (no endpoint) is an error span */
	ASSERT_EQ(get(self, self->wp, "nobody", "-H 'traceparent: 00-11111111111111111111111111111111-2222222222222222-01'",
		      "/t5", out, sizeof(out)), 0);
	EXPECT_EQ(atoi(out), 503);
	ASSERT_EQ(spans(self, "11111111111111111111111111111111", "waypoint.default", NULL, 1, sp, sizeof(sp)), 1);
	EXPECT_STRSTR(sp, "code=503 flags=UH cluster=outbound|80||nobody.default.svc.cluster.local");
	EXPECT_STRSTR(sp, "error=true");

	/* an invalid traceparent (all-zero span id) starts a new trace */
	ASSERT_EQ(get(self, self->wp, "echo", "-H 'traceparent: 00-33333333333333333333333333333333-0000000000000000-01'",
		      "/t6", out, sizeof(out)), 0);
	EXPECT_TRUE(strstr(out, "33333333333333333333333333333333") == NULL);
}

static int count_lines(const char *out, const char *prefix)
{
	int n = 0;

	for (const char *l = out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		n += !strncmp(l, prefix, strlen(prefix));
	return n;
}

TEST_F(tr, sampling_0_and_100_percent)
{
	char out[8192], sp[16384], metrics[8192];
	int n;

	/* 100%: every request is exported (a SERVER and a CLIENT span each) */
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab exec client --name %s -- sh -c 'for i in $(seq 20); do "
			  "curl -s -o /dev/null -H \"Host: echo\" http://%s:8080/all/$i; done'",
			  lab_ctl(), self->name, self->wp), 0);
	n = spans(self, "", "waypoint.default", "/all/", 40, sp, sizeof(sp));
	EXPECT_EQ(n, 40);
	EXPECT_EQ(count_lines(sp, "SERVER "), 20);
	EXPECT_EQ(count_lines(sp, "CLIENT "), 20);
	EXPECT_EQ(count_occ(sp, " code=200 "), 40);
	/* 0%: nothing, but the backends still get a context, marked not sampled */
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab exec client --name %s -- sh -c 'for i in $(seq 20); do "
			  "curl -s -o /dev/null -H \"Host: echo\" http://%s:8080/none/$i; done'",
			  lab_ctl(), self->name, self->wp0), 0);
	ASSERT_EQ(get(self, self->wp0, "echo", NULL, "/none/x", out, sizeof(out)), 0);
	EXPECT_STRSTR(out, "-00 ");
	EXPECT_STRSTR(out, " 0 -");
	/* ... unless the caller sampled it: its decision holds */
	ASSERT_EQ(get(self, self->wp0, "echo", "-H 'traceparent: 00-44444444444444444444444444444444-5555555555555555-01'",
		      "/forced", out, sizeof(out)), 0);
	EXPECT_STRSTR(out, "200 00-44444444444444444444444444444444-");
	EXPECT_EQ(spans(self, "44444444444444444444444444444444", "wp0.default", NULL, 2, sp, sizeof(sp)), 2);
	/* and one flush later there is still nothing else from wp0 */
	usleep(1500000);
	EXPECT_EQ(spans(self, "", "wp0.default", "/none/", 0, sp, sizeof(sp)), 0);
	EXPECT_EQ(spans(self, "", "wp0.default", NULL, 0, sp, sizeof(sp)), 2);
	ASSERT_EQ(test_sh(metrics, sizeof(metrics), "%s lab exec client --name %s -- curl -s http://%s:15020/metrics "
			  "| grep zmesh_trace",
			  lab_ctl(), self->name, self->wp), 0);
	EXPECT_STRSTR(metrics, "zmesh_trace_spans_dropped_total{reason=\"queue_full\"} 0");
	{
		const char *m = strstr(metrics, "\nzmesh_trace_spans_sent_total ");

		test_log("%s", metrics);
		EXPECT_TRUE(m && atoi(m + 30) >= 40);
	}
}

/* A retry is a CLIENT span of its own, and the backend sees the id of the try that reached it. */
TEST_F(tr, retry_gets_its_own_client_span)
{
	char out[4096], sp[8192], dead[32], want[256], sid[40];
	const char *l;
	bool found = false;

	ASSERT_EQ(lab_pod_ip(self->name, "dead", dead, sizeof(dead)), 0);
	/* round robin over {echo, dead} in one burst: every other request tries dead
	 * first (refused), then echo; per request "<trace> <span> <parent>" as echo saw them */
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab exec client --name %s -- sh -c 'for i in 1 2 3 4 5 6; do "
			  "curl -s -H \"Host: half\" http://%s:8080/r; echo; done' | python3 -c \"import json,sys\n"
			  "for l in sys.stdin:\n  if l.strip():\n    h = json.loads(l)['headers']\n"
			  "    print(h['traceparent'][3:35], h['x-b3-spanid'], h['x-b3-parentspanid'])\"",
			  lab_ctl(), self->name, self->wp), 0);
	test_log("%s", out);
	for (l = out; l && *l && !found; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		char trace[40], hspan[40], parent[40];

		if (sscanf(l, "%32s %16s %16s", trace, hspan, parent) != 3)
			continue;
		ASSERT_TRUE(spans(self, trace, "waypoint.default", NULL, 2, sp, sizeof(sp)) >= 2);
		if (count_occ(sp, "CLIENT ") < 2)
			continue;
		found = true;
		test_log("%s", sp);
		field_of(sp, "SERVER", "id=", sid, sizeof(sid));
		EXPECT_STREQ(sid, parent);
		snprintf(want, sizeof(want), "parent=%s name=half.default.svc.cluster.local:80/* method=- url=- code=0 ", sid);
		EXPECT_STRSTR(sp, want);
		snprintf(want, sizeof(want), "error=true times=ok remote=%s", dead);
		EXPECT_STRSTR(sp, want);
		snprintf(want, sizeof(want), "CLIENT trace=%s id=%s parent=%s name=half.default.svc.cluster.local:80/* "
			 "method=- url=- code=200 ", trace, hspan, sid);
		EXPECT_STRSTR(sp, want);
	}
	EXPECT_TRUE(found);
}

/* The ingress gateway (same binary) reports as istio-ingressgateway.<ns>. */
TEST_F(tr, gateway_spans)
{
	char out[4096], sp[4096], gw[32];

	ASSERT_EQ(lab_pod_ip(self->name, "gw", gw, sizeof(gw)), 0);
	for (int i = 0; i < 50; i++) {
		char code[64];

		test_sh(code, sizeof(code), "%s lab exec client --name %s -- curl -s -o /dev/null -w '%%{http_code}' "
			"-H 'Host: echo.example.com' http://%s:8081/", lab_ctl(), self->name, gw);
		if (!strcmp(code, "200"))
			break;
		usleep(100000);
	}
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab exec client --name %s -- curl -s -H 'Host: echo.example.com' "
			  "-H 'traceparent: 00-66666666666666666666666666666666-7777777777777777-01' http://%s:8081/g",
			  lab_ctl(), self->name, gw), 0);
	EXPECT_STRSTR(out, "\"traceparent\":\"00-66666666666666666666666666666666-");
	ASSERT_EQ(spans(self, "66666666666666666666666666666666", "istio-ingressgateway.default", NULL, 2, sp,
			sizeof(sp)), 2);
	test_log("%s", sp);
	EXPECT_STRSTR(sp, "SERVER trace=66666666666666666666666666666666");
	EXPECT_STRSTR(sp, "parent=7777777777777777 name=echo.default.svc.cluster.local:80/* method=GET "
		      "url=http://echo.example.com/g code=200 flags=- cluster=outbound|80||echo.default.svc.cluster.local "
		      "cs=istio-ingressgateway ns=default");
}

TEST_F(tr, jwks_uri_over_https)
{
	char claims[256], h[8192], log[8192];
	char *good, *bad, *badca, *badname;
	long long exp = (long long)time(NULL) + 600;
	int code = 0;

	snprintf(claims, sizeof(claims), "{\"iss\":\"" ISS "\",\"sub\":\"carol\",\"exp\":%lld}", exp);
	good = sign_token("{\"alg\":\"RS256\",\"kid\":\"k1\"}", claims, key, "RS256", NULL, 0);
	bad = sign_token("{\"alg\":\"RS256\",\"kid\":\"k1\"}", claims, wrong_key, "RS256", NULL, 0);
	snprintf(claims, sizeof(claims), "{\"iss\":\"" ISS_BADCA "\",\"sub\":\"carol\",\"exp\":%lld}", exp);
	badca = sign_token("{\"alg\":\"RS256\",\"kid\":\"k1\"}", claims, key, "RS256", NULL, 0);
	snprintf(claims, sizeof(claims), "{\"iss\":\"" ISS_BADNAME "\",\"sub\":\"carol\",\"exp\":%lld}", exp);
	badname = sign_token("{\"alg\":\"RS256\",\"kid\":\"k1\"}", claims, key, "RS256", NULL, 0);

	/* the key set arrives over TLS shortly after start; until then 401 */
	snprintf(h, sizeof(h), "-H 'Authorization: Bearer %s'", good);
	for (int i = 0; i < 50 && code != 200; i++) {
		char out[64];

		get(self, self->wp, "s1", h, "/x", out, sizeof(out));
		code = atoi(out);
		if (code != 200)
			usleep(200000);
	}
	test_sh(log, sizeof(log), "grep jwks /run/zmesh/lab/%s/logs/default_waypoint.log | tail -8", self->name);
	test_log("%s", log);
	EXPECT_EQ(code, 200);
	EXPECT_STRSTR(log, "jwks: https://jwkss.default.svc.cluster.local:8443/jwks.json fetched");
	{
		char out[64];

		snprintf(h, sizeof(h), "-H 'Authorization: Bearer %s'", bad);
		get(self, self->wp, "s1", h, "/x", out, sizeof(out));
		EXPECT_EQ(atoi(out), 401);
		get(self, self->wp, "s1", NULL, "/x", out, sizeof(out));
		EXPECT_EQ(atoi(out), 403);
		/* servers the waypoint cannot verify: no keys, so their issuers' tokens fail (closed) */
		snprintf(h, sizeof(h), "-H 'Authorization: Bearer %s'", badca);
		get(self, self->wp, "s2", h, "/x", out, sizeof(out));
		EXPECT_EQ(atoi(out), 401);
		snprintf(h, sizeof(h), "-H 'Authorization: Bearer %s'", badname);
		get(self, self->wp, "s3", h, "/x", out, sizeof(out));
		EXPECT_EQ(atoi(out), 401);
	}
	EXPECT_STRSTR(log, "jwks: fetching https://jwksbad.default.svc.cluster.local:8443/jwks.json failed: "
		      "TLS: certificate verify failed: self-signed certificate");
	EXPECT_STRSTR(log, "jwks: fetching https://jwksname.default.svc.cluster.local:8443/jwks.json failed: "
		      "TLS: certificate verify failed: hostname mismatch");
	free(good);
	free(bad);
	free(badca);
	free(badname);
}
