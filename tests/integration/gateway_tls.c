// SPDX-License-Identifier: Apache-2.0
/*
 * The Gateway's ServerTLSSettings beyond certificates, held by the gateway
 * (docs/gateway.md): client-certificate restrictions on MUTUAL servers
 * (subjectAltNames, verifyCertificateHash, verifyCertificateSpki, caCrl
 * and a Secret's ca.crl), cipherSuites and maxProtocolVersion. One server
 * per rule on port 8443, picked by SNI; clients (curl, openssl s_client)
 * from the lab's outside netns with certificates made here. Broken CRLs
 * stop only their server, named in the log.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../harness/test.h"
#include "labkit.h"

FIXTURE(gt) {
	char name[16], dir[96], log[256];
};

/* A CA, a server certificate for *.example.com, client certificates good
 * (SAN DNS:good.client), other (DNS:other.client), rev (DNS:good.client,
 * revoked in ca.crl), and the pins of good.crt. */
static int make_certs(const char *dir)
{
	return test_sh(NULL, 0,
		"cd %s && exec >certs.log 2>&1 && "
		"openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key "
		"  -out ca.crt -days 2 -subj /CN=gt-root && "
		"mk() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $1.key -out $1.csr "
		"  -subj /CN=$1 && printf 'subjectAltName=%%s\\n' \"$2\" > $1.ext && "
		"  openssl x509 -req -in $1.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile $1.ext "
		"  -out $1.crt; } && "
		"mk server 'DNS:*.example.com' && mk good 'DNS:good.client,URI:spiffe://x/good' && "
		"mk other 'DNS:other.client' && mk rev 'DNS:good.client' && "
		"mkdir -p db && : > db/index && echo 1000 > db/crlnumber && "
		"printf '[ca]\\ndefault_ca=d\\n[d]\\ndatabase=db/index\\ncrlnumber=db/crlnumber\\ndefault_md=sha256\\n"
		"default_crl_days=2\\n' > ca.cnf && "
		"openssl ca -config ca.cnf -keyfile ca.key -cert ca.crt -revoke rev.crt && "
		"openssl ca -config ca.cnf -keyfile ca.key -cert ca.crt -gencrl -out ca.crl && "
		"openssl x509 -in good.crt -outform DER | openssl dgst -sha256 -c | awk '{print $2}' > good.hash && "
		"openssl x509 -in good.crt -pubkey -noout | openssl pkey -pubin -outform DER | "
		"  openssl dgst -sha256 -binary | base64 > good.spki && "
		"openssl x509 -in other.crt -outform DER | openssl dgst -sha256 | awk '{print $2}' > other.hash", dir);
}

static char *slurp(const char *dir, const char *file)
{
	char path[256];
	size_t len;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	return test_slurp(path, &len);
}

/* Secret @name in istio-system: the server certificate, the CA and @crl (PEM text, may be NULL). */
static void secret(FILE *out, const char *dir, const char *name, const char *crl)
{
	fputs("---\n", out);
	lab_secret_head(out, name);
	lab_secret_file(out, "tls.crt", dir, "server.crt");
	lab_secret_file(out, "tls.key", dir, "server.key");
	lab_secret_file(out, "ca.crt", dir, "ca.crt");
	if (crl)
		lab_secret_field(out, "ca.crl", crl);
}

static void server(FILE *f, const char *host, const char *tls)
{
	fprintf(f, "  - port: {number: 8443, name: https-%.*s, protocol: HTTPS}\n    hosts: [%s]\n    tls: {%s}\n",
		(int)strcspn(host, "."), host, host, tls);
}

FIXTURE_SETUP(gt)
{
	char path[256], out[4096], tls[512];
	char *hash, *spki, *crl;
	FILE *f;

	REQUIRE_ROOT();
	ASSERT_OK(lab_init_dir(self->name, sizeof(self->name), self->dir, sizeof(self->dir), "t", 0700));
	snprintf(self->log, sizeof(self->log), "/run/zmesh/lab/%s/logs/istio-system_istio-ingressgateway.log",
		 self->name);
	ASSERT_EQ(make_certs(self->dir), 0);
	hash = slurp(self->dir, "good.hash");
	spki = slurp(self->dir, "good.spki");
	crl = slurp(self->dir, "ca.crl");
	ASSERT_NE(hash, NULL);
	ASSERT_NE(spki, NULL);
	ASSERT_NE(crl, NULL);
	hash[strcspn(hash, "\n")] = 0;
	spki[strcspn(spki, "\n")] = 0;
	test_log("good: hash %s spki %s", hash, spki);
	snprintf(path, sizeof(path), "%s/cluster.yaml", self->dir);
	f = fopen(path, "w");
	ASSERT_NE(f, NULL);
	fputs("apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n---\n"
	      "apiVersion: v1\nkind: Namespace\nmetadata: {name: istio-system}\n---\n"
	      "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: tls-gw, namespace: istio-system}\n"
	      "spec:\n  selector: {istio: ingressgateway}\n  servers:\n"
	      "  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [ready.example.com]\n", f);
	server(f, "plain.example.com", "mode: MUTUAL, credentialName: cred");
	server(f, "san.example.com", "mode: MUTUAL, credentialName: cred, subjectAltNames: [good.client]");
	server(f, "uri.example.com", "mode: MUTUAL, credentialName: cred, subjectAltNames: [spiffe://x/good]");
	snprintf(tls, sizeof(tls), "mode: MUTUAL, credentialName: cred, verifyCertificateHash: [\"%s\"]", hash);
	server(f, "hash.example.com", tls);
	snprintf(tls, sizeof(tls), "mode: MUTUAL, credentialName: cred, verifyCertificateSpki: [\"%s\"]", spki);
	server(f, "spki.example.com", tls);
	/* SAN and pin both given: both must hold */
	snprintf(tls, sizeof(tls), "mode: MUTUAL, credentialName: cred, subjectAltNames: [other.client], "
		 "verifyCertificateHash: [\"%s\"]", hash);
	server(f, "both.example.com", tls);
	server(f, "crl.example.com", "mode: MUTUAL, credentialName: crl-cred");
	snprintf(tls, sizeof(tls), "mode: MUTUAL, credentialName: cred, caCrl: %s/ca.crl", self->dir);
	server(f, "crlfile.example.com", tls);
	server(f, "nocrl.example.com", "mode: MUTUAL, credentialName: cred, caCrl: /nonexistent/gt.crl");
	server(f, "junkcrl.example.com", "mode: MUTUAL, credentialName: junk-crl-cred");
	server(f, "cipher.example.com", "mode: SIMPLE, credentialName: cred, "
	       "cipherSuites: [ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-ECDSA-CHACHA20-POLY1305]");
	server(f, "max.example.com", "mode: SIMPLE, credentialName: cred, maxProtocolVersion: TLSV1_2");
	fputs("---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
	      "metadata: {name: all, namespace: istio-system}\n"
	      "spec:\n  hosts: [\"*.example.com\"]\n  gateways: [tls-gw]\n  http:\n"
	      "  - directResponse: {status: 200, body: {string: \"gw-ok\"}}\n", f);
	secret(f, self->dir, "cred", NULL);
	secret(f, self->dir, "crl-cred", crl);
	secret(f, self->dir, "junk-crl-cred", "not a CRL\n");
	fclose(f);
	free(hash);
	free(spki);
	free(crl);
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab up --no-mesh -f %s --name %s", lab_ctl(), path, self->name), 0);
	ASSERT_OK(lab_poll(out, sizeof(out), "gw-ok", 100, 100000, "%s lab exec --outside --name %s -- "
			   "curl -s http://ready.example.com/", lab_ctl(), self->name));
}

FIXTURE_TEARDOWN(gt)
{
	if (!getenv("ZM_GW_KEEP"))	/* debugging: keep the lab */
		lab_remove(self->name, self->dir);
}

/* curl from outside to https://@host:8443/ with client certificate @cert (NULL: none); 0 when "gw-ok". */
static int get(struct zm_fixture_gt *self, const char *host, const char *cert, const char *extra)
{
	char out[4096], certs[512] = "";
	int rc;

	if (cert)
		snprintf(certs, sizeof(certs), "--cert %s/%s.crt --key %s/%s.key", self->dir, cert, self->dir, cert);
	rc = test_sh(out, sizeof(out), "%s lab exec --outside --name %s -- curl -sS -m 10 --cacert %s/ca.crt %s %s "
		     "https://%s:8443/ 2>&1", lab_ctl(), self->name, self->dir, certs, extra ? extra : "", host);
	test_log("%s %s %s: rc %d %s", host, cert ? cert : "-", extra ? extra : "", rc, out);
	return rc == 0 && !strcmp(out, "gw-ok") ? 0 : -1;
}

TEST_F(gt, client_certificate_rules)
{
	char out[8192];

	/* the plain MUTUAL server takes every client certificate of the CA */
	EXPECT_EQ(get(self, "plain.example.com", "good", NULL), 0);
	EXPECT_EQ(get(self, "plain.example.com", "other", NULL), 0);
	EXPECT_NE(get(self, "plain.example.com", NULL, NULL), 0);
	/* subjectAltNames: DNS and URI, exact */
	EXPECT_EQ(get(self, "san.example.com", "good", NULL), 0);
	EXPECT_NE(get(self, "san.example.com", "other", NULL), 0);
	EXPECT_EQ(get(self, "uri.example.com", "good", NULL), 0);
	EXPECT_NE(get(self, "uri.example.com", "other", NULL), 0);
	/* pinned certificate hash / SPKI */
	EXPECT_EQ(get(self, "hash.example.com", "good", NULL), 0);
	EXPECT_NE(get(self, "hash.example.com", "other", NULL), 0);
	EXPECT_NE(get(self, "hash.example.com", "rev", NULL), 0);	/* same SAN, other key */
	EXPECT_EQ(get(self, "spki.example.com", "good", NULL), 0);
	EXPECT_NE(get(self, "spki.example.com", "other", NULL), 0);
	/* SAN other.client AND the hash of good: neither certificate has both */
	EXPECT_NE(get(self, "both.example.com", "good", NULL), 0);
	EXPECT_NE(get(self, "both.example.com", "other", NULL), 0);
	/* revoked: the Secret's ca.crl and a caCrl file */
	EXPECT_EQ(get(self, "crl.example.com", "good", NULL), 0);
	EXPECT_NE(get(self, "crl.example.com", "rev", NULL), 0);
	EXPECT_EQ(get(self, "crlfile.example.com", "good", NULL), 0);
	EXPECT_NE(get(self, "crlfile.example.com", "rev", NULL), 0);
	EXPECT_EQ(get(self, "plain.example.com", "rev", NULL), 0);	/* no CRL there */
	/* the refusals are logged */
	ASSERT_EQ(test_sh(out, sizeof(out), "grep -c 'MUTUAL client certificate refused' %s", self->log), 0);
	/* broken CRLs: those servers not started, named with the field; others serve */
	ASSERT_EQ(test_sh(out, sizeof(out), "grep 'istio-system/tls-gw: servers\\[9\\] (port 8443): caCrl: "
			  "/nonexistent/gt.crl: No such file.*server not started' %s", self->log), 0);
	ASSERT_EQ(test_sh(out, sizeof(out), "grep 'istio-system/tls-gw: servers\\[10\\] (port 8443): "
			  "Secret istio-system/junk-crl-cred: ca.crl: no PEM CRL.*server not started' %s", self->log), 0);
	EXPECT_NE(get(self, "nocrl.example.com", "good", "-k"), 0);
	EXPECT_NE(get(self, "junkcrl.example.com", "good", "-k"), 0);
	EXPECT_EQ(get(self, "san.example.com", "good", NULL), 0);
}

TEST_F(gt, cipher_suites_and_max_version)
{
	char out[8192];

	/* TLS 1.2 with a suite of the list, and one outside it */
	EXPECT_EQ(get(self, "cipher.example.com", NULL, "--tls-max 1.2 --ciphers ECDHE-ECDSA-AES128-GCM-SHA256"), 0);
	EXPECT_NE(get(self, "cipher.example.com", NULL, "--tls-max 1.2 --ciphers ECDHE-ECDSA-AES256-GCM-SHA384"), 0);
	/* the list is for TLS 1.2 (Envoy's cipher_suites): 1.3 unaffected */
	EXPECT_EQ(get(self, "cipher.example.com", NULL, "--tlsv1.3"), 0);
	/* without cipherSuites that suite is fine on the same port */
	EXPECT_EQ(get(self, "max.example.com", NULL, "--tls-max 1.2 --ciphers ECDHE-ECDSA-AES256-GCM-SHA384"), 0);
	/* maxProtocolVersion TLSV1_2: a 1.3-only client fails, 1.2 works */
	EXPECT_NE(get(self, "max.example.com", NULL, "--tlsv1.3"), 0);
	EXPECT_EQ(get(self, "max.example.com", NULL, "--tls-max 1.2"), 0);
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab exec --outside --name %s -- openssl s_client -tls1_3 "
			  "-connect max.example.com:8443 -servername max.example.com </dev/null 2>&1 | "
			  "grep -c 'protocol version'", lab_ctl(), self->name), 0);
	/* the negotiated version with a client that allows both */
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab exec --outside --name %s -- openssl s_client "
			  "-connect max.example.com:8443 -servername max.example.com </dev/null 2>&1 | "
			  "grep -m1 '^New, '", lab_ctl(), self->name), 0);
	EXPECT_NE(strstr(out, "TLSv1.2"), NULL);
	/* other servers on the port keep TLS 1.3 */
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab exec --outside --name %s -- openssl s_client "
			  "-connect max.example.com:8443 -servername cipher.example.com </dev/null 2>&1 | "
			  "grep -m1 '^New, '", lab_ctl(), self->name), 0);
	EXPECT_NE(strstr(out, "TLSv1.3"), NULL);
}
