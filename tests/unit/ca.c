// SPDX-License-Identifier: Apache-2.0
/*
 * The CA (Citadel's role): what a signed leaf holds, what CSRs are refused,
 * persistence, Istio's plug-in cacerts/ with an intermediate, root rotation
 * with an overlap, and the trust bundle list.
 */
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "pki.h"

FIXTURE(ca) {
	char dir[96];
	struct zm_ca *ca;
	struct zm_spiffe_id web;
};

FIXTURE_SETUP(ca)
{
	struct zm_error e = { 0 };

	pki_tmpdir(self->dir, sizeof(self->dir), "ca");
	ASSERT_OK(zm_ca_open(self->dir, &self->ca, &e));
	pki_id(&self->web, "spiffe://cluster.local/ns/shop/sa/web");
}

FIXTURE_TEARDOWN(ca)
{
	zm_ca_free(self->ca);
	pki_rmdir(self->dir);
}

/* Verify @chain_pem (leaf first) against @bundle_pem as an X509-SVID of cluster.local. */
static int verify_chain(const char *chain_pem, const char *bundle_pem, struct zm_spiffe_id *id,
			struct zm_error *e)
{
	STACK_OF(X509) *chain = zm_pem_certs(chain_pem, e);
	struct zm_bundle *b = zm_bundle_new();
	X509_STORE *st;
	int rc;

	if (!chain || zm_bundle_add_pem(b, bundle_pem, e)) {
		sk_X509_pop_free(chain, X509_free);
		zm_bundle_free(b);
		return -EINVAL;
	}
	st = zm_bundle_store(b);
	rc = zm_svid_verify(sk_X509_value(chain, 0), chain, st, TD, X509_PURPOSE_SSL_CLIENT, id, e);
	X509_STORE_free(st);
	zm_bundle_free(b);
	sk_X509_pop_free(chain, X509_free);
	return rc;
}

static time_t asn1_epoch(const ASN1_TIME *t)
{
	struct tm tm;

	ASN1_TIME_to_tm(t, &tm);
	return timegm(&tm);
}

TEST_F(ca, signed_leaf_chains_to_root_with_the_spiffe_san)
{
	struct zm_error e = { 0 };
	struct zm_spiffe_id got;
	char *k, *c, *k2, *c2, uri[ZM_SPIFFE_MAX];
	X509 *leaf, *leaf2;
	time_t now = time(NULL);

	pki_issue(self->ca, &self->web, 0, &k, &c);	/* 0: the default TTL */
	ASSERT_OK(verify_chain(c, zm_ca_bundle(self->ca), &got, &e));
	EXPECT_TRUE(zm_spiffe_eq(&got, &self->web));
	leaf = pki_cert(c);
	ASSERT_OK_PTR(leaf);
	/* Exactly the SPIFFE ID as the one URI SAN. */
	ASSERT_OK(zm_spiffe_from_x509(leaf, &got, NULL, 0));
	zm_spiffe_format(&got, uri, sizeof(uri));
	EXPECT_STREQ(uri, "spiffe://cluster.local/ns/shop/sa/web");
	/* CA:FALSE, digitalSignature+keyEncipherment, serverAuth+clientAuth. */
	EXPECT_EQ(X509_check_ca(leaf), 0);
	EXPECT_EQ(X509_get_key_usage(leaf), (uint32_t)(KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT));
	EXPECT_EQ(X509_get_extended_key_usage(leaf), (uint32_t)(XKU_SSL_SERVER | XKU_SSL_CLIENT));
	/* notBefore a little in the past; 24 h by default. */
	EXPECT_LE(asn1_epoch(X509_get0_notBefore(leaf)), now - 30);
	EXPECT_GE(asn1_epoch(X509_get0_notBefore(leaf)), now - 300);
	EXPECT_LE(labs((long)(asn1_epoch(X509_get0_notAfter(leaf)) - now - 86400)), 5);
	/* Random serials, 128 bits. */
	pki_issue(self->ca, &self->web, 120, &k2, &c2);	/* minutes are allowed */
	leaf2 = pki_cert(c2);
	EXPECT_NE(ASN1_INTEGER_cmp(X509_get0_serialNumber(leaf), X509_get0_serialNumber(leaf2)), 0);
	{
		BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), NULL);

		EXPECT_GE(BN_num_bits(bn), 120);
		BN_free(bn);
	}
	EXPECT_LE(labs((long)(asn1_epoch(X509_get0_notAfter(leaf2)) - now - 120)), 5);
	X509_free(leaf);
	X509_free(leaf2);
	free(k);
	free(c);
	free(k2);
	free(c2);
}

TEST_F(ca, ttl_limits)
{
	struct zm_error e = { 0 };
	char *k, *csr, *c = NULL;

	ASSERT_OK(zm_key_csr(&self->web, &k, &csr, &e));
	EXPECT_EQ(zm_ca_sign(self->ca, csr, &self->web, 10, &c, &e), -EINVAL);
	EXPECT_STRSTR(e.msg, "TTL 10 s out of range");
	EXPECT_EQ(zm_ca_sign(self->ca, csr, &self->web, 365u * 24 * 3600, &c, &e), -EINVAL);
	EXPECT_EQ(c, NULL);
	free(k);
	free(csr);
}

static char *csr_pem_of(X509_REQ *r)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *s;

	PEM_write_bio_X509_REQ(b, r);
	s = pki_bio_str(b);
	BIO_free(b);
	return s;
}

/* A CSR asking to be a CA, for another identity: the CA takes only the key. */
TEST_F(ca, csr_extensions_are_not_copied)
{
	struct zm_error e = { 0 };
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509_REQ *r = X509_REQ_new();
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	struct zm_spiffe_id got;
	char *csr, *chain = NULL;
	X509 *leaf;

	sk_X509_EXTENSION_push(exts, X509V3_EXT_conf_nid(NULL, NULL, NID_basic_constraints, "critical,CA:TRUE"));
	sk_X509_EXTENSION_push(exts, X509V3_EXT_conf_nid(NULL, NULL, NID_key_usage, "keyCertSign,cRLSign"));
	sk_X509_EXTENSION_push(exts, X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name,
							 "URI:spiffe://cluster.local/ns/istio-system/sa/istiod,"
							 "DNS:istiod.istio-system.svc"));
	X509_REQ_add_extensions(r, exts);
	X509_REQ_set_pubkey(r, k);
	X509_REQ_sign(r, k, EVP_sha256());
	csr = csr_pem_of(r);
	ASSERT_OK(zm_ca_sign(self->ca, csr, &self->web, 600, &chain, &e));
	leaf = pki_cert(chain);
	EXPECT_EQ(X509_check_ca(leaf), 0);
	EXPECT_FALSE(X509_get_key_usage(leaf) & (KU_KEY_CERT_SIGN | KU_CRL_SIGN));
	ASSERT_OK(zm_svid_check(leaf, &got, NULL, 0));
	EXPECT_TRUE(zm_spiffe_eq(&got, &self->web));
	/* No DNS SAN either: the SAN is only the authorized identity. */
	{
		GENERAL_NAMES *g = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);

		EXPECT_EQ(sk_GENERAL_NAME_num(g), 1);
		GENERAL_NAMES_free(g);
	}
	X509_free(leaf);
	free(chain);
	free(csr);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(r);
	EVP_PKEY_free(k);
}

TEST_F(ca, bad_csrs_are_refused)
{
	struct zm_error e = { 0 };
	char *chain = NULL, *csr, *key;
	static const char *const keys[] = { "RSA", "P-384", "ED25519" };

	/* Wrong key types. */
	for (size_t i = 0; i < 3; i++) {
		EVP_PKEY *k = i == 0 ? EVP_RSA_gen(2048) : i == 1 ? EVP_EC_gen("P-384")
						  : EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		X509_REQ *r = X509_REQ_new();

		X509_REQ_set_pubkey(r, k);
		X509_REQ_sign(r, k, i == 2 ? NULL : EVP_sha256());
		csr = csr_pem_of(r);
		EXPECT_EQ(zm_ca_sign(self->ca, csr, &self->web, 600, &chain, &e), -EINVAL);
		if (!EXPECT_STRSTR(e.msg, "key must be ECDSA P-256"))
			test_log("%s", keys[i]);
		free(csr);
		X509_REQ_free(r);
		EVP_PKEY_free(k);
	}
	/* A P-256 CSR whose signature is broken. */
	ASSERT_OK(zm_key_csr(&self->web, &key, &csr, &e));
	{
		BIO *in = BIO_new_mem_buf(csr, -1);
		X509_REQ *r = PEM_read_bio_X509_REQ(in, NULL, NULL, NULL);
		const ASN1_BIT_STRING *sig;
		const X509_ALGOR *alg;

		X509_REQ_get0_signature(r, &sig, &alg);
		((ASN1_BIT_STRING *)sig)->data[12] ^= 0x55;
		free(csr);
		csr = csr_pem_of(r);
		X509_REQ_free(r);
		BIO_free(in);
	}
	EXPECT_EQ(zm_ca_sign(self->ca, csr, &self->web, 600, &chain, &e), -EINVAL);
	EXPECT_STRSTR(e.msg, "CSR: bad signature");
	free(csr);
	/* A CSR signed by another key than the one it carries. */
	{
		EVP_PKEY *k1 = EVP_EC_gen("P-256"), *k2 = EVP_EC_gen("P-256");
		X509_REQ *r = X509_REQ_new();

		X509_REQ_set_pubkey(r, k1);
		X509_REQ_sign(r, k2, EVP_sha256());
		csr = csr_pem_of(r);
		EXPECT_EQ(zm_ca_sign(self->ca, csr, &self->web, 600, &chain, &e), -EINVAL);
		EXPECT_STRSTR(e.msg, "CSR: bad signature");
		free(csr);
		X509_REQ_free(r);
		EVP_PKEY_free(k1);
		EVP_PKEY_free(k2);
	}
	/* Garbage. */
	EXPECT_EQ(zm_ca_sign(self->ca, "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
			     &self->web, 600, &chain, &e), -EINVAL);
	EXPECT_STRSTR(e.msg, "CSR");
	EXPECT_EQ(zm_ca_sign(self->ca, "", &self->web, 600, &chain, &e), -EINVAL);
	EXPECT_EQ(chain, NULL);
	free(key);
}

TEST_F(ca, root_is_persisted_with_private_modes)
{
	struct zm_error e = { 0 };
	struct zm_ca *again;
	char path[160];
	struct stat st;

	ASSERT_OK(zm_ca_open(self->dir, &again, &e));
	EXPECT_STREQ(zm_ca_bundle(again), zm_ca_bundle(self->ca));
	EXPECT_FALSE(zm_ca_plugged_in(again));
	zm_ca_free(again);
	snprintf(path, sizeof(path), "%s/root-key.pem", self->dir);
	ASSERT_OK(stat(path, &st));
	EXPECT_EQ(st.st_mode & 0777, 0600);
	ASSERT_OK(stat(self->dir, &st));
	EXPECT_EQ(st.st_mode & 077, 0);
	/* A key that does not match the certificate: refused, with the reason. */
	test_sh(NULL, 0, "cd %s && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 "
		"-out root-key.pem 2>/dev/null", self->dir);
	EXPECT_LT(zm_ca_open(self->dir, &again, &e), 0);
	EXPECT_STRSTR(e.msg, "root-key.pem does not match root-cert.pem");
}

/* Istio's plug-in layout made with the openssl CLI: root -> intermediate (signs) -> leaf. */
static void make_plugin(const char *dir, bool good_chain)
{
	ASSERT_EQ(test_sh(NULL, 0, "mkdir -p %s/cacerts && cd %s/cacerts && "
			  "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout root-key.pem "
			  "-out root-cert.pem -subj /O=plug/CN=root -days 30 -addext basicConstraints=critical,CA:TRUE "
			  "-addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null && "
			  "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca-key.pem -out ca.csr "
			  "-subj /O=plug/CN=intermediate 2>/dev/null && "
			  "printf 'basicConstraints=critical,CA:TRUE,pathlen:0\\nkeyUsage=critical,keyCertSign,cRLSign\\n"
			  "subjectKeyIdentifier=hash\\nauthorityKeyIdentifier=keyid\\n' > ext && "
			  "openssl x509 -req -in ca.csr -CA root-cert.pem -CAkey root-key.pem -CAcreateserial "
			  "-out ca-cert.pem -days 30 -extfile ext 2>/dev/null && cat ca-cert.pem > cert-chain.pem && "
			  "rm root-key.pem ca.csr ext",
			  dir, dir), 0);
	if (!good_chain)	/* a root that did not sign the intermediate */
		ASSERT_EQ(test_sh(NULL, 0, "cd %s/cacerts && openssl req -x509 -newkey ec -pkeyopt "
				  "ec_paramgen_curve:P-256 -nodes -keyout /dev/null -out root-cert.pem -subj "
				  "/O=plug/CN=root -days 30 -addext basicConstraints=critical,CA:TRUE 2>/dev/null",
				  dir), 0);
}

TEST_F(ca, plugged_in_cacerts_with_an_intermediate)
{
	struct zm_error e = { 0 };
	struct zm_ca *pca;
	struct zm_spiffe_id got;
	char dir[160], *k, *c, *root;
	STACK_OF(X509) *chain;

	snprintf(dir, sizeof(dir), "%s/plug", self->dir);
	make_plugin(dir, true);
	ASSERT_OK(zm_ca_open(dir, &pca, &e));
	EXPECT_TRUE(zm_ca_plugged_in(pca));
	pki_issue(pca, &self->web, 600, &k, &c);
	/* The chain is leaf + intermediate; the bundle is the root alone. */
	chain = zm_pem_certs(c, &e);
	EXPECT_EQ(sk_X509_num(chain), 2);
	sk_X509_pop_free(chain, X509_free);
	snprintf(dir, sizeof(dir), "%s/plug/cacerts/root-cert.pem", self->dir);
	root = pki_read(dir);
	EXPECT_STREQ(zm_ca_bundle(pca), root);
	EXPECT_OK(verify_chain(c, root, &got, &e));
	EXPECT_TRUE(zm_spiffe_eq(&got, &self->web));
	/* Without the intermediate the leaf does not verify: the chain matters. */
	{
		char *leaf_only = strndup(c, (size_t)(strstr(c, "-----END CERTIFICATE-----") - c) + 26);

		EXPECT_EQ(verify_chain(leaf_only, root, &got, &e), -EACCES);
		EXPECT_STRSTR(e.msg, "unable to get local issuer certificate");
		free(leaf_only);
	}
	/* A real handshake on it, both sides with plug-in certificates. */
	{
		struct zm_spiffe_id db;
		char *k2, *c2;
		struct pki_side srv, cli;

		pki_id(&db, "spiffe://cluster.local/ns/shop/sa/db");
		pki_issue(pca, &db, 600, &k2, &c2);
		SSL_CTX *s = zm_tls_ctx_new(true, k2, c2, root, TD, &e);
		SSL_CTX *cc = zm_tls_ctx_new(false, k, c, root, TD, &e);

		ASSERT_OK_PTR(s);
		ASSERT_OK_PTR(cc);
		EXPECT_OK(pki_handshake(s, cc, &db, &srv, &cli));
		EXPECT_OK(srv.rc);
		EXPECT_TRUE(zm_spiffe_eq(&srv.peer, &self->web));
		SSL_CTX_free(s);
		SSL_CTX_free(cc);
		free(k2);
		free(c2);
	}
	zm_ca_free(pca);
	free(k);
	free(c);
	free(root);
}

TEST_F(ca, plugged_in_cacerts_are_checked)
{
	struct zm_error e = { 0 };
	struct zm_ca *pca = NULL;
	char dir[160];

	snprintf(dir, sizeof(dir), "%s/bad1", self->dir);
	make_plugin(dir, false);
	EXPECT_LT(zm_ca_open(dir, &pca, &e), 0);
	EXPECT_STRSTR(e.msg, "ca-cert.pem does not chain to root-cert.pem");
	snprintf(dir, sizeof(dir), "%s/bad2", self->dir);
	make_plugin(dir, true);
	test_sh(NULL, 0, "cd %s/cacerts && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 "
		"-out ca-key.pem 2>/dev/null", dir);
	EXPECT_LT(zm_ca_open(dir, &pca, &e), 0);
	EXPECT_STRSTR(e.msg, "ca-key.pem does not match ca-cert.pem");
	snprintf(dir, sizeof(dir), "%s/bad3", self->dir);
	make_plugin(dir, true);
	test_sh(NULL, 0, "rm %s/cacerts/cert-chain.pem", dir);
	EXPECT_LT(zm_ca_open(dir, &pca, &e), 0);
	EXPECT_STRSTR(e.msg, "cert-chain.pem");
	EXPECT_EQ(pca, NULL);
	/* Rotation is the operator's job there (both roots in root-cert.pem). */
	snprintf(dir, sizeof(dir), "%s/good", self->dir);
	make_plugin(dir, true);
	ASSERT_OK(zm_ca_open(dir, &pca, &e));
	EXPECT_EQ(zm_ca_root_prepare(pca, &e), -ENOTSUP);
	zm_ca_free(pca);
}

TEST_F(ca, root_rotation_keeps_both_roots_trusted_through_the_overlap)
{
	struct zm_error e = { 0 };
	struct zm_spiffe_id got;
	struct zm_bundle *b = zm_bundle_new();
	char *ka, *ca_, *kb, *cb, *kn, *cn, *root1 = strdup(zm_ca_bundle(self->ca)), *bundle;
	struct zm_ca *again;

	pki_issue(self->ca, &self->web, 600, &ka, &ca_);	/* A: from root 1 */
	/* 1. A new root is introduced: trusted, not signing yet. */
	ASSERT_OK(zm_ca_root_prepare(self->ca, &e));
	EXPECT_EQ(zm_ca_root_prepare(self->ca, &e), -EEXIST);
	ASSERT_OK(zm_bundle_add_pem(b, zm_ca_bundle(self->ca), &e));
	EXPECT_EQ(zm_bundle_count(b), 2);
	pki_issue(self->ca, &self->web, 600, &kn, &cn);	/* still from root 1 */
	EXPECT_OK(verify_chain(cn, root1, &got, &e));
	/* 2. The new root signs; the old one stays trusted. */
	ASSERT_OK(zm_ca_root_activate(self->ca, &e));
	EXPECT_EQ(zm_ca_root_activate(self->ca, &e), -ENOENT);
	pki_issue(self->ca, &self->web, 600, &kb, &cb);	/* B: from root 2 */
	bundle = strdup(zm_ca_bundle(self->ca));
	EXPECT_OK(verify_chain(ca_, bundle, &got, &e));
	EXPECT_OK(verify_chain(cb, bundle, &got, &e));
	EXPECT_EQ(verify_chain(cb, root1, &got, &e), -EACCES);	/* B is not from root 1 */
	/* The overlap survives a restart. */
	ASSERT_OK(zm_ca_open(self->dir, &again, &e));
	EXPECT_STREQ(zm_ca_bundle(again), bundle);
	zm_ca_free(again);
	/* A TLS handshake across the roots: A (old) client, B (new) server, overlap bundle. */
	{
		struct pki_side srv, cli;
		SSL_CTX *s = zm_tls_ctx_new(true, kb, cb, bundle, TD, &e);
		SSL_CTX *c = zm_tls_ctx_new(false, ka, ca_, bundle, TD, &e);

		ASSERT_OK_PTR(s);
		ASSERT_OK_PTR(c);
		EXPECT_OK(pki_handshake(s, c, &self->web, &srv, &cli));
		EXPECT_OK(srv.rc);
		SSL_CTX_free(s);
		SSL_CTX_free(c);
	}
	/* 3. The old root is removed: its certificates fail, the new ones verify. */
	ASSERT_OK(zm_ca_root_retire(self->ca, &e));
	free(bundle);
	bundle = strdup(zm_ca_bundle(self->ca));
	EXPECT_EQ(verify_chain(ca_, bundle, &got, &e), -EACCES);
	EXPECT_STRSTR(e.msg, "certificate chain: ");
	EXPECT_OK(verify_chain(cb, bundle, &got, &e));
	ASSERT_OK(zm_ca_open(self->dir, &again, &e));
	EXPECT_STREQ(zm_ca_bundle(again), bundle);
	zm_ca_free(again);
	zm_bundle_free(b);
	free(bundle);
	free(root1);
	free(ka); free(ca_); free(kb); free(cb); free(kn); free(cn);
}

TEST_F(ca, bundle_list)
{
	struct zm_error e = { 0 };
	struct zm_bundle *b = zm_bundle_new();
	char *k, *c, *pem;

	ASSERT_OK(zm_bundle_add_pem(b, zm_ca_bundle(self->ca), &e));
	ASSERT_OK(zm_bundle_add_pem(b, zm_ca_bundle(self->ca), &e));	/* no duplicate */
	EXPECT_EQ(zm_bundle_count(b), 1);
	/* A leaf is not a root. */
	pki_issue(self->ca, &self->web, 600, &k, &c);
	EXPECT_EQ(zm_bundle_add_pem(b, c, &e), -EINVAL);
	EXPECT_STRSTR(e.msg, "not a CA");
	EXPECT_EQ(zm_bundle_add_pem(b, "garbage", &e), -EINVAL);
	EXPECT_EQ(zm_bundle_count(b), 1);
	pem = zm_bundle_pem(b);
	EXPECT_STREQ(pem, zm_ca_bundle(self->ca));
	EXPECT_EQ(zm_bundle_remove_pem(b, pem), 1);
	EXPECT_EQ(zm_bundle_count(b), 0);
	free(pem);
	free(k);
	free(c);
	zm_bundle_free(b);
}

/* Several processes opening a fresh directory at once end with one root, key matching. */
TEST_F(ca, concurrent_first_open_makes_one_root)
{
	char dir[160], path[200];
	pid_t pids[6];
	struct zm_error e = { 0 };
	struct zm_ca *c;

	snprintf(dir, sizeof(dir), "%s/race", self->dir);
	for (int i = 0; i < 6; i++) {
		pids[i] = fork();
		ASSERT_GE(pids[i], 0);
		if (pids[i] == 0) {
			struct zm_ca *x;
			FILE *f;

			if (zm_ca_open(dir, &x, NULL))
				_exit(1);
			snprintf(path, sizeof(path), "%s.%d", dir, i);
			f = fopen(path, "w");
			fputs(zm_ca_bundle(x), f);
			fclose(f);
			zm_ca_free(x);
			_exit(0);
		}
	}
	for (int i = 0; i < 6; i++) {
		int st;

		waitpid(pids[i], &st, 0);
		EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	ASSERT_OK(zm_ca_open(dir, &c, &e));	/* fails if key and cert came from different processes */
	for (int i = 0; i < 6; i++) {
		char *got;

		snprintf(path, sizeof(path), "%s.%d", dir, i);
		got = pki_read(path);
		EXPECT_STREQ(got, zm_ca_bundle(c));
		free(got);
	}
	zm_ca_free(c);
}
