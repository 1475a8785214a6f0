// SPDX-License-Identifier: Apache-2.0
/*
 * The ingress gateway in a lab (no mesh): the lab makes the gateway pod
 * (istio-system, istio=ingressgateway) because the cluster file has
 * Gateways, and an "outside" netns whose hosts file resolves every Gateway
 * host to it. Real clients (curl, nghttp, openssl s_client, python ssl)
 * run from outside. The seed's docs/examples/ecommerce-gateway.yaml is
 * applied as written, plus a MUTUAL server and two broken ones.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../harness/test.h"
#include "labkit.h"

static const char cluster_head[] =
	"apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n---\n"
	"apiVersion: v1\nkind: Node\nmetadata: {name: n2}\n---\n"

	"apiVersion: v1\nkind: Namespace\nmetadata: {name: istio-system}\n---\n";

static const char *const apps[] = { "product-service", "user-service", "order-service", "payment-service" };

static const char extra_cfg[] =
	"apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: mtls-gw, namespace: ecommerce}\n"
	"spec:\n  selector: {istio: ingressgateway}\n  servers:\n"
	"  - port: {number: 8443, name: https-mtls, protocol: HTTPS}\n    hosts: [mtls.example.com]\n"
	"    tls: {mode: MUTUAL, credentialName: mtls-cred}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: bad-gw, namespace: ecommerce}\n"
	"spec:\n  selector: {istio: ingressgateway}\n  servers:\n"
	"  - port: {number: 9443, name: https-missing, protocol: HTTPS}\n    hosts: [missing.example.com]\n"
	"    tls: {mode: SIMPLE, credentialName: no-such-cred}\n"
	"  - port: {number: 9443, name: https-badkey, protocol: HTTPS}\n    hosts: [badkey.example.com]\n"
	"    tls: {mode: SIMPLE, credentialName: badkey-cred}\n"
	"  - port: {number: 9443, name: https-fine, protocol: HTTPS}\n    hosts: [fine.example.com]\n"
	"    tls: {mode: SIMPLE, credentialName: api-ecommerce-tls, minProtocolVersion: TLSV1_3}\n"
	"---\n"
	"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: gw-deny, namespace: istio-system}\n"
	"spec:\n  selector: {matchLabels: {istio: ingressgateway}}\n  action: DENY\n"
	"  rules: [{to: [{operation: {ports: [\"443\"], paths: [\"/blocked/*\"]}}]}]\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: grpc-gw, namespace: ecommerce}\n"
	"spec:\n  selector: {istio: ingressgateway}\n  servers:\n"
	"  - port: {number: 80, name: grpc, protocol: GRPC}\n    hosts: [ecommerce/grpc.example.com]\n"
	"  - port: {number: 443, name: https-grpc, protocol: HTTPS}\n    hosts: [grpc.example.com]\n"
	"    tls: {mode: SIMPLE, credentialName: grpc-cred}\n"
	"---\n"
	"apiVersion: v1\nkind: Service\nmetadata: {name: grpc-echo, namespace: ecommerce}\n"
	"spec:\n  selector: {app: product-service}\n  ports:\n  - {name: grpc, port: 9090, targetPort: 8080}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: grpc, namespace: ecommerce}\n"
	"spec:\n  hosts: [grpc.example.com]\n  gateways: [grpc-gw]\n  http:\n"
	"  - match: [{uri: {prefix: /pkg.Svc/}}]\n    route: [{destination: {host: grpc-echo, port: {number: 9090}}}]\n"
	"---\n"
	"apiVersion: v1\nkind: Service\nmetadata: {name: tls-backend, namespace: ecommerce}\n"
	"spec:\n  selector: {app: tls-backend}\n  ports:\n  - {name: tls, port: 8443}\n"
	"---\n"
	"apiVersion: v1\nkind: Service\nmetadata: {name: tcp-echo, namespace: ecommerce}\n"
	"spec:\n  selector: {app: order-service}\n  ports:\n  - {name: tcp, port: 9000}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: l4-gw, namespace: ecommerce}\n"
	"spec:\n  selector: {istio: ingressgateway}\n  servers:\n"
	"  - port: {number: 9444, name: tls-pass, protocol: TLS}\n    hosts: [pass.example.com]\n"
	"    tls: {mode: PASSTHROUGH}\n"
	"  - port: {number: 9000, name: tcp, protocol: TCP}\n    hosts: [tcp.example.com]\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: l4, namespace: ecommerce}\n"
	"spec:\n  hosts: [pass.example.com, tcp.example.com]\n  gateways: [l4-gw]\n"
	"  tls:\n  - match: [{port: 9444, sniHosts: [pass.example.com]}]\n"
	"    route: [{destination: {host: tls-backend, port: {number: 8443}}}]\n"
	"  tcp:\n  - match: [{port: 9000}]\n"
	"    route: [{destination: {host: tcp-echo, port: {number: 9000}}}]\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: extra, namespace: ecommerce}\n"
	"spec:\n  hosts: [mtls.example.com, fine.example.com]\n  gateways: [mtls-gw, bad-gw]\n  http:\n"
	"  - route: [{destination: {host: product-service, port: {number: 8080}}}]\n";

FIXTURE(gw) {
	char name[16], dir[96], ip[64];
};

/* A kubernetes.io/tls Secret in istio-system from PEM files in @dir. */
static void secret(FILE *out, const char *dir, const char *name, const char *crt, const char *key,
		   const char *ca, bool last)
{
	lab_secret_head(out, name);
	lab_secret_file(out, "tls.crt", dir, crt);
	lab_secret_file(out, "tls.key", dir, key);
	if (ca)
		lab_secret_file(out, "ca.crt", dir, ca);
	if (!last)
		fputs("---\n", out);
}

/* CA, server certificates (SAN = host), a client certificate. */
static int make_certs(const char *dir)
{
	return test_sh(NULL, 0,
		"cd %s && exec >certs.log 2>&1 && "
		"openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key "
		"  -out ca.crt -days 2 -subj /CN=lab-root && "
		"for h in shop.ecommerce.example.com api.ecommerce.example.com mtls.example.com "
		"         client.example.com rotated.shop grpc.example.com pass.example.com; do "
		"  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $h.key "
		"    -out $h.csr -subj /CN=$h && "
		"  printf 'subjectAltName=DNS:%%s\\n' $(echo $h | sed 's/^rotated.shop$/shop.ecommerce.example.com/') > $h.ext && "
		"  openssl x509 -req -in $h.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 "
		"    -extfile $h.ext -out $h.crt || exit 1; "
		"done && "
		"openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout other.key "
		"  -out other.crt -days 2 -subj /CN=other", dir);
}

FIXTURE_SETUP(gw)
{
	char path[256], out[4096], ex[512];
	FILE *f;

	REQUIRE_ROOT();
	ASSERT_OK(lab_init_dir(self->name, sizeof(self->name), self->dir, sizeof(self->dir), "g", 0700));
	ASSERT_EQ(make_certs(self->dir), 0);
	snprintf(path, sizeof(path), "%s/cluster.yaml", self->dir);
	f = fopen(path, "w");
	ASSERT_NE(f, NULL);
	fputs(cluster_head, f);
	if (!getenv("ZM_GW_MESH") || strcmp(getenv("ZM_GW_MESH"), "ambient"))
		fputs("apiVersion: v1\nkind: Namespace\nmetadata: {name: ecommerce}\n---\n", f);
	else
		fputs("apiVersion: v1\nkind: Namespace\nmetadata: {name: ecommerce, "
		      "labels: {istio.io/dataplane-mode: ambient}}\n---\n", f);
	for (size_t i = 0; i < sizeof(apps) / sizeof(apps[0]); i++)
		fprintf(f, "apiVersion: v1\nkind: Pod\nmetadata: {name: %s-0, namespace: ecommerce, "
			"labels: {app: %s}}\nspec:\n  nodeName: n%zu\n  containers:\n"
			"  - {name: c, command: [echoapp, serve, --http, \"8080\", --tcp, \"9000\"]}\n---\n"
			"apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: ecommerce}\n"
			"spec:\n  selector: {app: %s}\n  ports:\n  - {name: http, port: 8080}\n---\n",
			apps[i], apps[i], i % 2 + 1, apps[i], apps[i]);
	secret(f, self->dir, "shop-ecommerce-tls", "shop.ecommerce.example.com.crt",
	       "shop.ecommerce.example.com.key", NULL, false);
	secret(f, self->dir, "api-ecommerce-tls", "api.ecommerce.example.com.crt",
	       "api.ecommerce.example.com.key", NULL, false);
	fprintf(f, "apiVersion: v1\nkind: Pod\nmetadata: {name: tls-backend-0, namespace: ecommerce, "
		"labels: {app: tls-backend}}\nspec:\n  nodeName: n2\n  containers:\n"
		"  - {name: c, command: [openssl, s_server, -accept, \"8443\", -cert, %s/pass.example.com.crt, "
		"-key, %s/pass.example.com.key, -www, -quiet]}\n---\n", self->dir, self->dir);
	secret(f, self->dir, "grpc-cred", "grpc.example.com.crt", "grpc.example.com.key", NULL, false);
	secret(f, self->dir, "mtls-cred", "mtls.example.com.crt", "mtls.example.com.key", "ca.crt", false);
	secret(f, self->dir, "badkey-cred", "shop.ecommerce.example.com.crt", "other.key", NULL, false);
	fputs(extra_cfg, f);
	fclose(f);
	snprintf(ex, sizeof(ex), "%s/../docs/examples/ecommerce-gateway.yaml", test_build_dir());
	/* ZM_GW_MESH=1: with ztunnels (the gateway stays out of capture) */
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab up %s -f %s -f %s --name %s", lab_ctl(),
			  getenv("ZM_GW_MESH") ? "" : "--no-mesh", path, ex, self->name), 0);
	ASSERT_EQ(lab_ingress_ip(self->name, self->ip, sizeof(self->ip)), 0);
	ASSERT_OK(lab_poll(out, sizeof(out), "301", 100, 100000, "%s lab exec --outside --name %s -- sh -c \"curl -s "
			   "-o /dev/null -w %%{http_code} http://shop.ecommerce.example.com/\"", lab_ctl(), self->name));
}

FIXTURE_TEARDOWN(gw)
{
	if (!getenv("ZM_GW_KEEP"))	/* debugging: keep the lab */
		lab_remove(self->name, self->dir);
}

/* curl from outside with the lab CA; @args after the options. */
static int curl(struct zm_fixture_gw *self, char *out, size_t sz, const char *args)
{
	return test_sh(out, sz, "%s lab exec --outside --name %s -- curl -s --cacert %s/ca.crt %s",
		       lab_ctl(), self->name, self->dir, args);
}

TEST_F(gw, outside_resolves_gateway_hosts_and_nothing_else_is_routed)
{
	char out[4096];

	ASSERT_EQ(lab_outside(self->name, out, sizeof(out), "getent hosts shop.ecommerce.example.com mtls.example.com"), 0);
	test_log("%s", out);
	EXPECT_NE(strstr(out, self->ip), NULL);
	EXPECT_NE(strstr(out, "mtls.example.com"), NULL);
	/* the cluster's pods are not reachable from outside, only the gateway */
	EXPECT_NE(lab_outside(self->name, out, sizeof(out), "curl -s -m 2 http://10.244.1.2:8080/"), 0);
}

TEST_F(gw, sni_two_hosts_two_certificates_and_routing)
{
	char out[8192];

	ASSERT_EQ(curl(self, out, sizeof(out), "https://shop.ecommerce.example.com/anything"), 0);
	EXPECT_STREQ(lab_answer_pod(out), "product-service-0");
	ASSERT_EQ(curl(self, out, sizeof(out), "https://api.ecommerce.example.com/users/7"), 0);
	EXPECT_STREQ(lab_answer_pod(out), "user-service-0");
	ASSERT_EQ(curl(self, out, sizeof(out), "https://api.ecommerce.example.com/orders"), 0);
	EXPECT_STREQ(lab_answer_pod(out), "order-service-0");
	ASSERT_EQ(curl(self, out, sizeof(out), "https://api.ecommerce.example.com/payments/x"), 0);
	EXPECT_STREQ(lab_answer_pod(out), "payment-service-0");
	/* no route on the api host: the example's directResponse */
	ASSERT_EQ(curl(self, out, sizeof(out), "-w ' %{http_code}' https://api.ecommerce.example.com/nope"), 0);
	EXPECT_STREQ(out, "no such page\n 404");
	/* each name gets its own certificate (curl verified the name; check the subject) */
	ASSERT_EQ(lab_outside(self->name, out, sizeof(out), "openssl s_client -connect api.ecommerce.example.com:443 "
			 "-servername api.ecommerce.example.com </dev/null 2>/dev/null | openssl x509 -noout -subject"), 0);
	EXPECT_NE(strstr(out, "CN = api.ecommerce.example.com"), NULL);
	ASSERT_EQ(lab_outside(self->name, out, sizeof(out), "openssl s_client -connect api.ecommerce.example.com:443 "
			 "-servername shop.ecommerce.example.com </dev/null 2>/dev/null | openssl x509 -noout -subject"), 0);
	EXPECT_NE(strstr(out, "CN = shop.ecommerce.example.com"), NULL);
	/* the backend is told the request came over https */
	ASSERT_EQ(curl(self, out, sizeof(out), "https://shop.ecommerce.example.com/"), 0);
	test_log("%s", out);
	EXPECT_NE(strstr(out, "\"x-forwarded-proto\":\"https\""), NULL);
}

TEST_F(gw, https_redirect_and_unknown_host)
{
	char out[4096];

	ASSERT_EQ(curl(self, out, sizeof(out), "-o /dev/null -w '%{http_code} %{redirect_url}' "
		       "'http://shop.ecommerce.example.com/cart?x=1'"), 0);
	EXPECT_STREQ(out, "301 https://shop.ecommerce.example.com/cart?x=1");
	/* a Host no server on port 80 names */
	ASSERT_EQ(curl(self, out, sizeof(out), "-o /dev/null -w '%{http_code}' -H 'Host: evil.example.com' "
		       "http://shop.ecommerce.example.com/"), 0);
	EXPECT_STREQ(out, "404");
	/* an AuthorizationPolicy selecting the gateway applies there */
	ASSERT_EQ(curl(self, out, sizeof(out), "-o /dev/null -w '%{http_code}' "
		       "https://shop.ecommerce.example.com/blocked/x"), 0);
	EXPECT_STREQ(out, "403");
	/* following the redirect ends at the shop */
	ASSERT_EQ(curl(self, out, sizeof(out), "-L http://shop.ecommerce.example.com/x"), 0);
	EXPECT_STREQ(lab_answer_pod(out), "product-service-0");
}

TEST_F(gw, http2_over_tls)
{
	char out[8192];

	ASSERT_EQ(curl(self, out, sizeof(out), "--http2 -o /dev/null -w '%{http_version} %{http_code}' "
		       "https://shop.ecommerce.example.com/h2"), 0);
	EXPECT_STREQ(out, "2 200");
	ASSERT_EQ(lab_outside(self->name, out, sizeof(out), "nghttp -n -s https://api.ecommerce.example.com/users/1 "
			 "https://api.ecommerce.example.com/orders/2 2>&1; echo rc=$?"), 0);
	test_log("%s", out);
	EXPECT_NE(strstr(out, "rc=0"), NULL);
	/* HTTP/1.1 still works on the same port */
	ASSERT_EQ(curl(self, out, sizeof(out), "--http1.1 -o /dev/null -w '%{http_version}' "
		       "https://shop.ecommerce.example.com/"), 0);
	EXPECT_STREQ(out, "1.1");
}

/* gRPC (HTTP/2, content-type application/grpc) over TLS and as h2c on a GRPC server:
 * the backend gets HTTP/2 (the Service port is named grpc). */
TEST_F(gw, grpc_over_tls_and_h2c)
{
	char out[8192];

	ASSERT_EQ(curl(self, out, sizeof(out), "--http2 -H 'content-type: application/grpc' -H 'te: trailers' "
		       "-d '' https://grpc.example.com/pkg.Svc/Method"), 0);
	test_log("%s", out);
	EXPECT_STREQ(lab_answer_pod(out), "product-service-0");
	ASSERT_EQ(curl(self, out, sizeof(out), "--http2 -H 'content-type: application/grpc' -H 'te: trailers' "
		       "-d '' https://grpc.example.com/pkg.Svc/Method"), 0);
	EXPECT_NE(strstr(out, "\"proto\":\"HTTP/2\""), NULL);
	ASSERT_EQ(curl(self, out, sizeof(out), "--http2-prior-knowledge -H 'content-type: application/grpc' "
		       "-d '' http://grpc.example.com/pkg.Svc/Other"), 0);
	EXPECT_NE(strstr(out, "\"proto\":\"HTTP/2\""), NULL);
	EXPECT_NE(strstr(out, "\"path\":\"/pkg.Svc/Other\""), NULL);
	/* the gRPC host has no route outside /pkg.Svc/ */
	ASSERT_EQ(curl(self, out, sizeof(out), "--http2 -o /dev/null -w '%{http_code}' https://grpc.example.com/x"), 0);
	EXPECT_STREQ(out, "404");
}

/* TLS PASSTHROUGH by SNI (the backend's own certificate reaches the client) and a TCP server. */
TEST_F(gw, tls_passthrough_and_tcp)
{
	char out[16384];

	ASSERT_EQ(curl(self, out, sizeof(out), "https://pass.example.com:9444/"), 0);
	EXPECT_NE(strstr(out, "s_server"), NULL);
	ASSERT_EQ(lab_outside(self->name, out, sizeof(out), "openssl s_client -connect pass.example.com:9444 "
			 "-servername pass.example.com </dev/null 2>/dev/null | openssl x509 -noout -subject"), 0);
	EXPECT_NE(strstr(out, "CN = pass.example.com"), NULL);
	/* another name on the passthrough port: refused */
	EXPECT_NE(curl(self, out, sizeof(out), "-k --connect-to other.example.com:9444:pass.example.com:9444 "
		       "https://other.example.com:9444/"), 0);
	/* TCP: echoed by an order-service pod */
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab exec --outside --name %s -- bash -c "
			  "'exec 3<>/dev/tcp/tcp.example.com/9000; echo hello-gw >&3; read -t 5 l <&3; echo $l'",
			  lab_ctl(), self->name), 0);
	EXPECT_NE(strstr(out, "hello-gw"), NULL);
}

TEST_F(gw, bad_tls_clients_refused_cleanly)
{
	char out[8192];

	/* no SNI */
	EXPECT_NE(lab_outside(self->name, out, sizeof(out), "openssl s_client -connect shop.ecommerce.example.com:443 "
			 "-noservername </dev/null 2>&1 | grep -q 'BEGIN CERTIFICATE'"), 0);
	/* unknown SNI */
	EXPECT_NE(lab_outside(self->name, out, sizeof(out), "openssl s_client -connect shop.ecommerce.example.com:443 "
			 "-servername nobody.example.com </dev/null 2>&1 | grep -q 'BEGIN CERTIFICATE'"), 0);
	/* TLS 1.1, offered by a client that allows it: the server says protocol_version */
	EXPECT_EQ(lab_outside(self->name, out, sizeof(out), "openssl s_client -tls1_1 -cipher DEFAULT@SECLEVEL=0 "
			 "-connect shop.ecommerce.example.com:443 -servername shop.ecommerce.example.com "
			 "</dev/null 2>&1 | grep -c 'alert protocol version'"), 0);
	EXPECT_NE(curl(self, out, sizeof(out), "--tls-max 1.1 https://shop.ecommerce.example.com/"), 0);
	/* garbage instead of a ClientHello: closed at once (cat ends before its timeout), no crash */
	EXPECT_EQ(test_sh(out, sizeof(out), "%s lab exec --outside --name %s -- bash -c "
			  "'exec 3<>/dev/tcp/shop.ecommerce.example.com/443; "
			  "printf \"GET / HTTP/1.1\\r\\n\\r\\n\" >&3 2>/dev/null; timeout 5 cat <&3 >/dev/null 2>&1; test $? -ne 124'",
			  lab_ctl(), self->name), 0);
	test_log("garbage answered: %s", out);
	/* still serving */
	ASSERT_EQ(curl(self, out, sizeof(out), "https://shop.ecommerce.example.com/"), 0);
	EXPECT_STREQ(lab_answer_pod(out), "product-service-0");
	/* minProtocolVersion TLSV1_3 on fine.example.com: 1.2 refused, 1.3 served */
	EXPECT_NE(curl(self, out, sizeof(out), "-k --tls-max 1.2 https://fine.example.com:9443/"), 0);
	ASSERT_EQ(curl(self, out, sizeof(out), "-k --tlsv1.3 https://fine.example.com:9443/"), 0);
}

TEST_F(gw, mutual_requires_client_certificate)
{
	char out[8192], args[1024];

	EXPECT_NE(curl(self, out, sizeof(out), "https://mtls.example.com:8443/"), 0);
	snprintf(args, sizeof(args), "--cert %s/client.example.com.crt --key %s/client.example.com.key "
		 "https://mtls.example.com:8443/", self->dir, self->dir);
	ASSERT_EQ(curl(self, out, sizeof(out), args), 0);
	EXPECT_STREQ(lab_answer_pod(out), "product-service-0");
	/* a certificate from another CA */
	snprintf(args, sizeof(args), "--cert %s/other.crt --key %s/other.key https://mtls.example.com:8443/",
		 self->dir, self->dir);
	EXPECT_NE(curl(self, out, sizeof(out), args), 0);
}

TEST_F(gw, bad_credentials_name_gateway_and_secret_others_work)
{
	char out[16384], log[256];

	snprintf(log, sizeof(log), "/run/zmesh/lab/%s/logs/istio-system_istio-ingressgateway.log", self->name);
	test_sh(out, sizeof(out), "grep bad-gw %s", log);
	test_log("%s", out);
	ASSERT_EQ(test_sh(out, sizeof(out), "grep -c 'ecommerce/bad-gw.*no-such-cred' %s", log), 0);
	ASSERT_EQ(test_sh(out, sizeof(out), "grep 'ecommerce/bad-gw.*badkey-cred' %s", log), 0);
	test_log("%s", out);
	EXPECT_NE(strstr(out, "does not match"), NULL);
	/* those names are refused; the good server on the same port works */
	EXPECT_NE(curl(self, out, sizeof(out), "--resolve badkey.example.com:9443:1.1.1.1 --connect-to "
		       "badkey.example.com:9443:fine.example.com:9443 -k https://badkey.example.com:9443/"), 0);
	ASSERT_EQ(curl(self, out, sizeof(out), "-k https://fine.example.com:9443/"), 0);
	EXPECT_STREQ(lab_answer_pod(out), "product-service-0");
}

TEST_F(gw, secret_rotation_live_without_dropping_connections)
{
	char out[8192], path[256], cmd[1024];
	FILE *f;

	/* a keep-alive connection open across the rotation */
	snprintf(path, sizeof(path), "%s/keep.py", self->dir);
	snprintf(cmd, sizeof(cmd),
		 "import http.client, ssl, time, os\n"
		 "ctx = ssl.create_default_context(cafile='%s/ca.crt')\n"
		 "c = http.client.HTTPSConnection('shop.ecommerce.example.com', 443, context=ctx)\n"
		 "c.request('GET', '/one'); r = c.getresponse(); r.read(); print('first', r.status, flush=True)\n"
		 "while not os.path.exists('%s/rotated'): time.sleep(0.1)\n"
		 "time.sleep(1.5)\n"
		 "c.request('GET', '/two'); r = c.getresponse(); r.read(); print('second', r.status, flush=True)\n",
		 self->dir, self->dir);
	ASSERT_OK(test_write_file(path, cmd));
	ASSERT_EQ(test_sh(NULL, 0, "%s lab exec --outside --name %s -- python3 %s > %s/keep.out 2>&1 &",
			  lab_ctl(), self->name, path, self->dir), 0);
	for (int i = 0; i < 50; i++) {
		if (test_sh(out, sizeof(out), "grep -c first %s/keep.out", self->dir) == 0)
			break;
		usleep(100000);
	}
	ASSERT_EQ(lab_outside(self->name, out, sizeof(out), "openssl s_client -connect shop.ecommerce.example.com:443 "
			 "-servername shop.ecommerce.example.com </dev/null 2>/dev/null | openssl x509 -noout -serial"), 0);
	test_log("before: %s", out);
	{
		char before[128];

		snprintf(before, sizeof(before), "%.100s", out);
		snprintf(path, sizeof(path), "%s/rot.yaml", self->dir);
		f = fopen(path, "w");
		ASSERT_NE(f, NULL);
		secret(f, self->dir, "shop-ecommerce-tls", "rotated.shop.crt", "rotated.shop.key", NULL, true);
		fclose(f);
		EXPECT_EQ(test_sh(out, sizeof(out), "%s apply -f %s --name %s 2>&1 && touch %s/rotated", lab_ctl(),
				  path, self->name, self->dir), 0);
		test_log("apply: %s", out);
		for (int i = 0; i < 50; i++) {
			lab_outside(self->name, out, sizeof(out), "openssl s_client -connect shop.ecommerce.example.com:443 "
			       "-servername shop.ecommerce.example.com </dev/null 2>/dev/null | openssl x509 -noout -serial");
			if (strcmp(out, before))
				break;
			usleep(100000);
		}
		test_log("after: %s", out);
		EXPECT_NE(strcmp(out, before), 0);
	}
	/* the new certificate verifies for the name, and the old connection still works */
	ASSERT_EQ(curl(self, out, sizeof(out), "https://shop.ecommerce.example.com/after"), 0);
	EXPECT_STREQ(lab_answer_pod(out), "product-service-0");
	for (int i = 0; i < 50; i++) {
		if (test_sh(out, sizeof(out), "grep second %s/keep.out", self->dir) == 0)
			break;
		usleep(100000);
	}
	EXPECT_STREQ(out, "second 200\n");
}

TEST_F(gw, metrics_reporter_source_and_access_log)
{
	char out[65536], url[256], log[256];

	ASSERT_EQ(curl(self, out, sizeof(out), "https://api.ecommerce.example.com/users/m"), 0);
	snprintf(url, sizeof(url), "http://%s:15020/metrics", self->ip);
	ASSERT_EQ(curl(self, out, sizeof(out), url), 0);
	EXPECT_NE(strstr(out, "reporter=\"source\""), NULL);
	EXPECT_NE(strstr(out, "source_workload=\"istio-ingressgateway\""), NULL);
	EXPECT_NE(strstr(out, "source_workload_namespace=\"istio-system\""), NULL);
	EXPECT_NE(strstr(out, "destination_service=\"user-service.ecommerce.svc.cluster.local\""), NULL);
	snprintf(log, sizeof(log), "/run/zmesh/lab/%s/logs/istio-system_istio-ingressgateway.log", self->name);
	ASSERT_EQ(test_sh(out, sizeof(out), "grep -c '\"path\":\"/users/m\"' %s", log), 0);
}


