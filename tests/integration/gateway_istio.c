// SPDX-License-Identifier: Apache-2.0
/*
 * The ingress gateway's finer Istio semantics, in a meshed lab, with real
 * clients from the outside netns (docs/gateway.md):
 *  - Gateway hosts "ns/host" / "./host" / "*" scope which namespaces'
 *    VirtualServices bind, and a VirtualService's bare gateway name
 *    resolves in its own namespace;
 *  - tls.credentialNames: an RSA and an ECDSA certificate for one server,
 *    picked by the client's signature algorithms;
 *  - ISTIO_MUTUAL: the gateway's own SPIFFE certificate, a client SVID from
 *    the lab CA required, its identity seen by AuthorizationPolicy;
 *  - AUTO_PASSTHROUGH: SNI outbound_.<port>_.<subset>_.<host> routes the
 *    untouched TLS stream to the service (a meshed pod: over HBONE).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "zmesh/ca.h"
#include "zmesh/keymat.h"
#include "zmesh/lab.h"
#include "zmesh/spiffe.h"
#include "../harness/test.h"
#include "labkit.h"

FIXTURE(gi) {
	char lab[16], dir[96], ip[64], log[256];
};

static const char cluster_fmt[] =
	"apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n---\n"
	"apiVersion: v1\nkind: Node\nmetadata: {name: n2}\n---\n"
	"apiVersion: v1\nkind: Namespace\nmetadata: {name: istio-system}\n---\n"
	"apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {istio.io/dataplane-mode: ambient}}\n---\n"
	"apiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n---\n"
	"apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: shop, labels: {app: web}}\n"
	"spec:\n  nodeName: n2\n  containers:\n  - {name: c, command: [echoapp, serve, --http, \"8080\"]}\n---\n"
	"apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
	"spec:\n  selector: {app: web}\n  ports:\n  - {name: http, port: 8080}\n---\n"
	"apiVersion: v1\nkind: Pod\nmetadata: {name: web2, namespace: other, labels: {app: web2}}\n"
	"spec:\n  nodeName: n1\n  containers:\n  - {name: c, command: [echoapp, serve, --http, \"8080\"]}\n---\n"
	"apiVersion: v1\nkind: Service\nmetadata: {name: web2, namespace: other}\n"
	"spec:\n  selector: {app: web2}\n  ports:\n  - {name: http, port: 8080}\n---\n"
	"apiVersion: v1\nkind: Pod\nmetadata: {name: tls-backend, namespace: shop, labels: {app: tls-backend, version: v1}}\n"
	"spec:\n  nodeName: n2\n  containers:\n"
	"  - {name: c, command: [openssl, s_server, -accept, \"8443\", -cert, %s/backend.crt, -key, %s/backend.key, "
	"-www, -quiet]}\n---\n"
	"apiVersion: v1\nkind: Service\nmetadata: {name: tls-backend, namespace: shop}\n"
	"spec:\n  selector: {app: tls-backend}\n  ports:\n  - {name: tls, port: 8443}\n---\n"
	"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: tls-backend, namespace: shop}\n"
	"spec:\n  host: tls-backend\n  subsets:\n  - {name: v1, labels: {version: v1}}\n"
	"  - {name: v2, labels: {version: v2}}\n---\n"
	/* the Gateway: scoped hosts, two certificates, ISTIO_MUTUAL, AUTO_PASSTHROUGH */
	"apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: istio-system}\n"
	"spec:\n  selector: {istio: ingressgateway}\n  servers:\n"
	"  - port: {number: 80, name: http, protocol: HTTP}\n"
	"    hosts: [shop/scoped.example.com, shop/only.example.com, ./own.example.com, \"*/any.example.com\"]\n"
	"  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [dual.example.com]\n"
	"    tls: {mode: SIMPLE, credentialNames: [dual-rsa, dual-ec]}\n"
	"  - port: {number: 8443, name: https-mesh, protocol: HTTPS}\n    hosts: [mtls.example.com]\n"
	"    tls: {mode: ISTIO_MUTUAL}\n"
	"  - port: {number: 15443, name: tls-auto, protocol: TLS}\n    hosts: [\"*.shop.svc.cluster.local\"]\n"
	"    tls: {mode: AUTO_PASSTHROUGH}\n---\n"
	"apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: dupe, namespace: istio-system}\n"
	"spec:\n  selector: {istio: ingressgateway}\n  servers:\n"
	"  - port: {number: 9443, name: https-dupe, protocol: HTTPS}\n    hosts: [dupe.example.com]\n"
	"    tls: {mode: SIMPLE, credentialNames: [dual-ec, dual-ec2]}\n---\n"
	/* shop/scoped binds; other/scoped names the same Gateway and host but is not admitted */
	"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: scoped, namespace: other}\n"
	"spec:\n  hosts: [scoped.example.com]\n  gateways: [istio-system/gw]\n"
	"  http:\n  - route: [{destination: {host: web2, port: {number: 8080}}}]\n---\n"
	"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: scoped, namespace: shop}\n"
	"spec:\n  hosts: [scoped.example.com]\n  gateways: [istio-system/gw]\n"
	"  http:\n  - route: [{destination: {host: web, port: {number: 8080}}}]\n---\n"
	"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: only, namespace: other}\n"
	"spec:\n  hosts: [only.example.com]\n  gateways: [istio-system/gw]\n"
	"  http:\n  - route: [{destination: {host: web2, port: {number: 8080}}}]\n---\n"
	/* "./own": the Gateway's namespace; a bare "gw" resolves in the VirtualService's */
	"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: own, namespace: istio-system}\n"
	"spec:\n  hosts: [own.example.com]\n  gateways: [gw]\n"
	"  http:\n  - route: [{destination: {host: web.shop.svc.cluster.local, port: {number: 8080}}}]\n---\n"
	"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: any, namespace: other}\n"
	"spec:\n  hosts: [any.example.com]\n  gateways: [istio-system/gw]\n"
	"  http:\n  - route: [{destination: {host: web2, port: {number: 8080}}}]\n---\n"
	"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: tls, namespace: shop}\n"
	"spec:\n  hosts: [dual.example.com, mtls.example.com]\n  gateways: [istio-system/gw]\n"
	"  http:\n  - route: [{destination: {host: web, port: {number: 8080}}}]\n---\n"
	/* on the ISTIO_MUTUAL port only the client identity shop/good gets in */
	"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: gw, namespace: istio-system}\n"
	"spec:\n  selector: {matchLabels: {istio: ingressgateway}}\n  action: ALLOW\n  rules:\n"
	"  - from: [{source: {principals: [cluster.local/ns/shop/sa/good]}}]\n"
	"    to: [{operation: {ports: [\"8443\"]}}]\n"
	"  - to: [{operation: {ports: [\"80\", \"443\", \"9443\", \"15443\"]}}]\n---\n";

static void secret(FILE *out, const char *dir, const char *name, const char *base, bool last)
{
	char p[256];

	lab_secret_head(out, name);
	snprintf(p, sizeof(p), "%s.crt", base);
	lab_secret_file(out, "tls.crt", dir, p);
	snprintf(p, sizeof(p), "%s.key", base);
	lab_secret_file(out, "tls.key", dir, p);
	if (!last)
		fputs("---\n", out);
}

/* Write PEMs @dir/@name.key and @name.crt: an X509-SVID for ns/@ns/sa/@sa from the lab's CA. */
static int svid_files(struct zm_fixture_gi *self, const char *ns, const char *sa, const char *name)
{
	char cadir[PATH_MAX], p[256];
	struct zm_ca *ca = NULL;
	struct zm_error e = { "" };
	struct zm_spiffe_id id;
	char *key = NULL, *csr = NULL, *chain = NULL;
	FILE *f;
	int rc;

	snprintf(cadir, sizeof(cadir), "%s/%s/ca", ZM_LAB_STATE_ROOT, self->lab);
	rc = zm_ca_open(cadir, &ca, &e);
	if (!rc)
		rc = zm_spiffe_make(&id, "cluster.local", ns, sa);
	if (!rc)
		rc = zm_key_csr(&id, &key, &csr, &e);
	if (!rc)
		rc = zm_ca_sign(ca, csr, &id, 3600, &chain, &e);
	if (!rc) {
		snprintf(p, sizeof(p), "%s/%s.key", self->dir, name);
		if ((f = fopen(p, "w"))) {
			fputs(key, f);
			fclose(f);
		}
		snprintf(p, sizeof(p), "%s/%s.crt", self->dir, name);
		if ((f = fopen(p, "w"))) {
			fputs(chain, f);
			fclose(f);
		}
		snprintf(p, sizeof(p), "%s/bundle.pem", self->dir);
		if ((f = fopen(p, "w"))) {
			fputs(zm_ca_bundle(ca), f);
			fclose(f);
		}
	} else {
		test_log("svid %s/%s: %s", ns, sa, e.msg);
	}
	free(key);
	free(csr);
	free(chain);
	zm_ca_free(ca);
	return rc;
}

FIXTURE_SETUP(gi)
{
	char path[256], out[4096];
	FILE *f;

	REQUIRE_ROOT();
	ASSERT_OK(lab_init_dir(self->lab, sizeof(self->lab), self->dir, sizeof(self->dir), "i", 0700));
	snprintf(self->log, sizeof(self->log), "/run/zmesh/lab/%s/logs/istio-system_istio-ingressgateway.log",
		 self->lab);
	ASSERT_EQ(test_sh(NULL, 0,
		"cd %s && exec >certs.log 2>&1 && "
		"openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key "
		"  -out ca.crt -days 2 -subj /CN=edge-root && "
		"mk() { openssl req -newkey $2 -nodes -keyout $1.key -out $1.csr -subj /CN=$3 && "
		"  printf 'subjectAltName=DNS:%%s\\n' $3 > $1.ext && "
		"  openssl x509 -req -in $1.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 "
		"    -extfile $1.ext -out $1.crt; } && "
		"mk dual-rsa rsa:2048 dual.example.com && "
		"mk dual-ec 'ec -pkeyopt ec_paramgen_curve:P-256' dual.example.com && "
		"mk dual-ec2 'ec -pkeyopt ec_paramgen_curve:P-256' dupe.example.com && "
		"mk backend 'ec -pkeyopt ec_paramgen_curve:P-256' tls-backend.shop.svc.cluster.local && "
		"openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout other.key "
		"  -out other.crt -days 2 -subj /CN=other", self->dir), 0);
	snprintf(path, sizeof(path), "%s/cluster.yaml", self->dir);
	f = fopen(path, "w");
	ASSERT_OK_PTR(f);
	fprintf(f, cluster_fmt, self->dir, self->dir);
	secret(f, self->dir, "dual-rsa", "dual-rsa", false);
	secret(f, self->dir, "dual-ec", "dual-ec", false);
	secret(f, self->dir, "dual-ec2", "dual-ec2", true);
	fclose(f);
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab up -f %s --name %s", lab_ctl(), path, self->lab), 0);
	ASSERT_EQ(lab_ingress_ip(self->lab, self->ip, sizeof(self->ip)), 0);
	/* Ready: both ztunnels have their first push, and the gateway reaches
	 * the backends of both nodes (its and their views come from zmeshd). */
	ASSERT_OK(lab_wait_ready(self->lab, "n1"));
	ASSERT_OK(lab_wait_ready(self->lab, "n2"));
	ASSERT_OK(lab_poll(out, sizeof(out), "200", 100, 100000, "%s lab exec --outside --name %s -- sh -c \"curl -s "
			   "-o /dev/null -w %%{http_code} http://any.example.com/\"", lab_ctl(), self->lab));
	ASSERT_OK(lab_poll(out, sizeof(out), "200", 100, 100000, "%s lab exec --outside --name %s -- sh -c \"curl -s "
			   "-o /dev/null -w %%{http_code} http://scoped.example.com/\"", lab_ctl(), self->lab));
}

FIXTURE_TEARDOWN(gi)
{
	if (!getenv("ZM_GW_KEEP"))	/* debugging: keep the lab */
		lab_remove(self->lab, self->dir);
}

TEST_F(gi, hosts_namespace_scoping_binds_only_admitted_virtualservices)
{
	char out[8192];

	/* shop/scoped.example.com: the shop VirtualService, never other's */
	for (int i = 0; i < 4; i++) {
		ASSERT_EQ(lab_outside(self->lab, out, sizeof(out), "curl -s http://scoped.example.com/"), 0);
		EXPECT_STREQ(lab_answer_pod(out), "web");
	}
	/* only other's VirtualService names only.example.com: not admitted, 404 ... */
	ASSERT_EQ(lab_outside(self->lab, out, sizeof(out), "curl -s -o /dev/null -w %{http_code} http://only.example.com/"), 0);
	EXPECT_STREQ(out, "404");
	/* ... and said so in the gateway's log, by Gateway and VirtualService */
	ASSERT_EQ(test_sh(out, sizeof(out), "grep 'gateway istio-system/gw: VirtualService other/only not bound' %s",
			  self->log), 0);
	test_log("%s", out);
	EXPECT_NE(test_sh(out, sizeof(out), "grep 'VirtualService shop/scoped not bound' %s", self->log), 0);
	/* "./own.example.com": istio-system's VirtualService, its bare "gw" resolved there */
	ASSERT_EQ(lab_outside(self->lab, out, sizeof(out), "curl -s http://own.example.com/"), 0);
	EXPECT_STREQ(lab_answer_pod(out), "web");
	/* "*\/any.example.com": any namespace */
	ASSERT_EQ(lab_outside(self->lab, out, sizeof(out), "curl -s http://any.example.com/"), 0);
	EXPECT_STREQ(lab_answer_pod(out), "web2");
}

TEST_F(gi, credential_names_rsa_and_ecdsa_picked_by_client)
{
	char out[8192];

	ASSERT_EQ(lab_outside(self->lab, out, sizeof(out), "openssl s_client -connect dual.example.com:443 "
			  "-servername dual.example.com -sigalgs ecdsa_secp256r1_sha256 </dev/null 2>/dev/null "
			  "| openssl x509 -noout -text | grep 'Public Key Algorithm'"), 0);
	test_log("ECDSA-only client: %s", out);
	EXPECT_STRSTR(out, "id-ecPublicKey");
	ASSERT_EQ(lab_outside(self->lab, out, sizeof(out), "openssl s_client -connect dual.example.com:443 "
			  "-servername dual.example.com -sigalgs rsa_pss_rsae_sha256:rsa_pkcs1_sha256 "
			  "</dev/null 2>/dev/null | openssl x509 -noout -text | grep 'Public Key Algorithm'"), 0);
	test_log("RSA-only client: %s", out);
	EXPECT_STRSTR(out, "rsaEncryption");
	/* TLS 1.2 with an RSA-only suite list too */
	ASSERT_EQ(lab_outside(self->lab, out, sizeof(out), "openssl s_client -tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256 "
			  "-connect dual.example.com:443 -servername dual.example.com </dev/null 2>/dev/null "
			  "| openssl x509 -noout -text | grep 'Public Key Algorithm'"), 0);
	EXPECT_STRSTR(out, "rsaEncryption");
	/* and HTTP through it, verified against the edge CA */
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab exec --outside --name %s -- curl -s --cacert %s/ca.crt "
			  "https://dual.example.com/", lab_ctl(), self->lab, self->dir), 0);
	EXPECT_STREQ(lab_answer_pod(out), "web");
	/* two ECDSA certificates in one server: not started, named */
	ASSERT_EQ(test_sh(out, sizeof(out), "grep 'gateway istio-system/dupe: servers\\[0\\] (port 9443)' %s",
			  self->log), 0);
	test_log("%s", out);
	EXPECT_STRSTR(out, "both hold ECDSA");
	EXPECT_STRSTR(out, "server not started");
	EXPECT_NE(lab_outside(self->lab, out, sizeof(out), "openssl s_client -connect dual.example.com:9443 "
			  "-servername dupe.example.com </dev/null 2>&1 | grep -q 'BEGIN CERTIFICATE'"), 0);
}

TEST_F(gi, istio_mutual_mesh_certificate_and_client_svid_principal)
{
	char out[16384], cmd[1024];

	ASSERT_EQ(svid_files(self, "shop", "good", "good"), 0);
	ASSERT_EQ(svid_files(self, "shop", "bad", "bad"), 0);
	/* the gateway presents its own SPIFFE identity, chaining to the mesh bundle */
	snprintf(cmd, sizeof(cmd), "openssl s_client -connect mtls.example.com:8443 -servername mtls.example.com "
		 "-CAfile %s/bundle.pem -verify_return_error -cert %s/good.crt -key %s/good.key </dev/null "
		 "2>/dev/null | openssl x509 -noout -ext subjectAltName", self->dir, self->dir, self->dir);
	ASSERT_EQ(lab_outside(self->lab, out, sizeof(out), cmd), 0);
	test_log("%s", out);
	EXPECT_STRSTR(out, "URI:spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway");
	/* a client SVID from the mesh CA, admitted by principal */
	snprintf(cmd, sizeof(cmd), "curl -s -k --cert %s/good.crt --key %s/good.key https://mtls.example.com:8443/",
		 self->dir, self->dir);
	ASSERT_EQ(lab_outside(self->lab, out, sizeof(out), cmd), 0);
	EXPECT_STREQ(lab_answer_pod(out), "web");
	/* another mesh identity: the handshake holds, the policy says no */
	snprintf(cmd, sizeof(cmd), "curl -s -k -o /dev/null -w %%{http_code} --cert %s/bad.crt --key %s/bad.key "
		 "https://mtls.example.com:8443/", self->dir, self->dir);
	ASSERT_EQ(lab_outside(self->lab, out, sizeof(out), cmd), 0);
	EXPECT_STREQ(out, "403");
	/* no client certificate; one from another CA: refused in the handshake */
	EXPECT_NE(lab_outside(self->lab, out, sizeof(out), "curl -s -k https://mtls.example.com:8443/"), 0);
	snprintf(cmd, sizeof(cmd), "curl -s -k --cert %s/other.crt --key %s/other.key https://mtls.example.com:8443/",
		 self->dir, self->dir);
	EXPECT_NE(lab_outside(self->lab, out, sizeof(out), cmd), 0);
	/* the access log carries the client's principal */
	ASSERT_EQ(test_sh(out, sizeof(out), "grep -c 'spiffe://cluster.local/ns/shop/sa/good' %s", self->log), 0);
}

TEST_F(gi, auto_passthrough_sni_routes_to_the_service)
{
	char out[16384], cmd[1024];

	/* the backend's own certificate reaches the client: the stream is untouched */
	snprintf(cmd, sizeof(cmd), "openssl s_client -connect %s:15443 "
		 "-servername outbound_.8443_._.tls-backend.shop.svc.cluster.local </dev/null 2>/dev/null "
		 "| openssl x509 -noout -subject", self->ip);
	/* Ready once the gateway's view (zmeshd's push) has the Service and the
	 * backend's ztunnel the gateway pod: eventual, as in Istio. */
	for (int i = 0; i < 50 && (lab_outside(self->lab, out, sizeof(out), cmd) ||
				   !strstr(out, "CN = tls-backend")); i++)
		usleep(200000);
	ASSERT_EQ(lab_outside(self->lab, out, sizeof(out), cmd), 0);
	test_log("%s", out);
	EXPECT_STRSTR(out, "CN = tls-backend.shop.svc.cluster.local");
	/* and bytes flow both ways (s_server -www answers a GET) */
	snprintf(cmd, sizeof(cmd), "curl -s -k --connect-to ::%s:15443 "
		 "https://outbound_.8443_._.tls-backend.shop.svc.cluster.local/", self->ip);
	ASSERT_EQ(lab_outside(self->lab, out, sizeof(out), cmd), 0);
	EXPECT_STRSTR(out, "s_server");
	/* the meshed pod was reached over HBONE as the gateway */
	ASSERT_EQ(test_sh(out, sizeof(out), "grep -h '\"dst.workload\":\"tls-backend\"' /run/zmesh/lab/%s/logs/ztunnel-n2.log "
			  "| tail -1", self->lab), 0);
	EXPECT_STRSTR(out, "\"src.identity\":\"spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway\"");
	/* a DestinationRule subset with endpoints */
	snprintf(cmd, sizeof(cmd), "openssl s_client -connect %s:15443 "
		 "-servername outbound_.8443_.v1_.tls-backend.shop.svc.cluster.local </dev/null 2>/dev/null "
		 "| openssl x509 -noout -subject", self->ip);
	ASSERT_EQ(lab_outside(self->lab, out, sizeof(out), cmd), 0);
	EXPECT_STRSTR(out, "CN = tls-backend.shop.svc.cluster.local");
	/* unknown service, port, subset, a subset without endpoints, a host
	 * outside the server's hosts, malformed, none: refused */
	const char *bad[] = {
		"outbound_.8443_._.nope.shop.svc.cluster.local",
		"outbound_.9999_._.tls-backend.shop.svc.cluster.local",
		"outbound_.8443_.v3_.tls-backend.shop.svc.cluster.local",
		"outbound_.8443_.v2_.tls-backend.shop.svc.cluster.local",
		"outbound_.8080_._.web2.other.svc.cluster.local",
		"outbound_.8443.tls-backend.shop.svc.cluster.local",
		"tls-backend.shop.svc.cluster.local",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(cmd, sizeof(cmd), "openssl s_client -connect %s:15443 -servername %s </dev/null 2>&1 "
			 "| grep -q 'BEGIN CERTIFICATE'", self->ip, bad[i]);
		EXPECT_NE(lab_outside(self->lab, out, sizeof(out), cmd), 0);
	}
	snprintf(cmd, sizeof(cmd), "openssl s_client -connect %s:15443 -noservername </dev/null 2>&1 "
		 "| grep -q 'BEGIN CERTIFICATE'", self->ip);
	EXPECT_NE(lab_outside(self->lab, out, sizeof(out), cmd), 0);
	ASSERT_EQ(test_sh(out, sizeof(out), "grep 'gateway istio-system/gw: port 15443 (AUTO_PASSTHROUGH)' %s | tail -2",
			  self->log), 0);
	test_log("%s", out);
	/* still serving */
	snprintf(cmd, sizeof(cmd), "openssl s_client -connect %s:15443 "
		 "-servername outbound_.8443_._.tls-backend.shop.svc.cluster.local </dev/null 2>/dev/null "
		 "| openssl x509 -noout -subject", self->ip);
	ASSERT_EQ(lab_outside(self->lab, out, sizeof(out), cmd), 0);
	EXPECT_STRSTR(out, "tls-backend");
}
