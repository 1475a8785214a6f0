// SPDX-License-Identifier: Apache-2.0
/* Workload key material: key + CSR, the cached SVID record, renewal times (fixed clocks). */
#include <math.h>

#include "pki.h"

/* zm_renew_at with fixed times: a 24 h certificate from t=1000 unless said otherwise. */
static const struct {
	time_t nb, na, now;
	int pct;
	double rnd;
	time_t want;
	const char *why;
} renew[] = {
	{ 1000, 1000 + 86400, 2000, 0, 0.5, 1000 + 43200, "half life, no jitter" },
	{ 1000, 1000 + 86400, 2000, 5, 0.0, 1000 + 43200, "jitter 0: half life" },
	{ 1000, 1000 + 86400, 2000, 5, 1.0, 1000 + 43200 - 4320, "full jitter: 5% of life earlier" },
	{ 1000, 1000 + 86400, 2000, 5, 0.5, 1000 + 43200 - 2160, "half jitter" },
	{ 1000, 1000 + 86400, 2000, 50, 1.0, 1000 + 43200 - 17280, "jitter capped at 20%" },
	{ 1000, 1000 + 86400, 2000, -3, 1.0, 1000 + 43200, "negative jitter: none" },
	{ 1000, 1000 + 86400, 2000, 5, NAN, 1000 + 43200, "NaN random: no jitter" },
	{ 1000, 1000 + 86400, 2000, 5, 7.0, 1000 + 43200, "random out of range: no jitter" },
	{ 5000, 9000, 4000, 5, 0.3, 4000, "not yet valid: at once" },
	{ 5000, 9000, 9000, 5, 0.3, 9000, "expired (at notAfter): at once" },
	{ 5000, 9000, 9500, 5, 0.3, 9500, "expired: at once" },
	{ 0, 100, 80, 0, 0, 80, "past half life: now" },
	{ 0, 100, 50, 0, 0, 50, "exactly half life: now" },
	{ 500, 500, 500, 5, 0.3, 500, "no lifetime: at once" },
	{ 900, 100, 500, 5, 0.3, 500, "notAfter before notBefore: at once" },
	{ 0, 600, 10, 5, 1.0, 270, "10 minute TTL (tests)" },
};

TEST(renewal_time_with_fixed_clocks)
{
	for (size_t i = 0; i < sizeof(renew) / sizeof(renew[0]); i++)
		if (!EXPECT_EQ(zm_renew_at(renew[i].nb, renew[i].na, renew[i].now, renew[i].pct, renew[i].rnd),
			       renew[i].want))
			test_log("case %zu: %s", i, renew[i].why);
	/* Random jitter stays inside [half life - 5%, half life]. */
	for (int i = 0; i < 1000; i++) {
		time_t at = zm_renew_at(0, 86400, 1, ZM_RENEW_JITTER_PCT, zm_rand_unit());

		if (!EXPECT_GE(at, 43200 - 4320) || !EXPECT_LE(at, 43200))
			break;
	}
}

FIXTURE(km) {
	char dir[96];
	struct zm_ca *ca;
	struct zm_spiffe_id web;
};

FIXTURE_SETUP(km)
{
	struct zm_error e = { 0 };

	pki_tmpdir(self->dir, sizeof(self->dir), "km");
	ASSERT_OK(zm_ca_open(self->dir, &self->ca, &e));
	pki_id(&self->web, "spiffe://cluster.local/ns/shop/sa/web");
}

FIXTURE_TEARDOWN(km)
{
	zm_ca_free(self->ca);
	pki_rmdir(self->dir);
}

TEST_F(km, key_and_csr)
{
	struct zm_error e = { 0 };
	char *key, *csr;
	BIO *b;
	X509_REQ *r;
	EVP_PKEY *pub, *priv;
	STACK_OF(X509_EXTENSION) *exts;
	char group[32];
	size_t glen;

	ASSERT_OK(zm_key_csr(&self->web, &key, &csr, &e));
	b = BIO_new_mem_buf(csr, -1);
	r = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
	BIO_free(b);
	ASSERT_OK_PTR(r);
	pub = X509_REQ_get_pubkey(r);
	EXPECT_EQ(X509_REQ_verify(r, pub), 1);
	ASSERT_EQ(EVP_PKEY_get_utf8_string_param(pub, "group", group, sizeof(group), &glen), 1);
	EXPECT_STREQ(group, "prime256v1");
	priv = pki_key(key);
	EXPECT_EQ(EVP_PKEY_eq(priv, pub), 1);
	/* The CSR names the identity (Istio agents do); the CA decides anyway. */
	exts = X509_REQ_get_extensions(r);
	{
		int at = X509v3_get_ext_by_NID(exts, NID_subject_alt_name, -1);
		GENERAL_NAMES *g;
		const GENERAL_NAME *gn;

		ASSERT_GE(at, 0);
		g = X509V3_EXT_d2i(X509v3_get_ext(exts, at));
		ASSERT_EQ(sk_GENERAL_NAME_num(g), 1);
		gn = sk_GENERAL_NAME_value(g, 0);
		EXPECT_EQ(gn->type, GEN_URI);
		EXPECT_STREQ((const char *)ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier),
			     "spiffe://cluster.local/ns/shop/sa/web");
		GENERAL_NAMES_free(g);
	}
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(priv);
	X509_REQ_free(r);
	free(key);
	free(csr);
}

TEST_F(km, cached_svid_record)
{
	struct zm_error e = { 0 };
	struct zm_svid_cert c = { 0 }, bad = { 0 };
	char *k, *ch, *k2, *ch2;
	time_t now = time(NULL), at;

	pki_issue(self->ca, &self->web, 600, &k, &ch);
	ASSERT_OK(zm_svid_cert_load(&c, k, ch, &e));
	EXPECT_TRUE(zm_spiffe_eq(&c.id, &self->web));
	EXPECT_LE(labs((long)(c.not_before - (now - 60))), 5);
	EXPECT_LE(labs((long)(c.not_after - (now + 600))), 5);
	EXPECT_TRUE(zm_svid_cert_valid_at(&c, now));
	EXPECT_FALSE(zm_svid_cert_valid_at(&c, c.not_after));
	EXPECT_FALSE(zm_svid_cert_valid_at(&c, c.not_before - 1));
	/* Half of 660 s from notBefore, up to 5% earlier. */
	at = zm_svid_cert_renew_at(&c, now, 0.0);
	EXPECT_EQ(at, c.not_before + 330);
	at = zm_svid_cert_renew_at(&c, now, 1.0);
	EXPECT_EQ(at, c.not_before + 330 - 33);
	/* Not yet valid (a clock behind the CA): at once. */
	EXPECT_EQ(zm_svid_cert_renew_at(&c, c.not_before - 100, 0.5), c.not_before - 100);
	/* A key that is not this certificate's. */
	pki_issue(self->ca, &self->web, 600, &k2, &ch2);
	EXPECT_EQ(zm_svid_cert_load(&bad, k2, ch, &e), -EINVAL);
	EXPECT_STRSTR(e.msg, "does not match");
	EXPECT_EQ(bad.chain_pem, NULL);
	EXPECT_EQ(zm_svid_cert_renew_at(&bad, 1234, 0.5), 1234);	/* nothing cached: renew now */
	/* Not an SVID (the CA root itself). */
	EXPECT_EQ(zm_svid_cert_load(&bad, k2, zm_ca_bundle(self->ca), &e), -EINVAL);
	EXPECT_EQ(zm_svid_cert_load(&bad, "junk", ch, &e), -EINVAL);
	EXPECT_STRSTR(e.msg, "private key");
	zm_svid_cert_clear(&c);
	EXPECT_EQ(c.key_pem, NULL);
	free(k);
	free(ch);
	free(k2);
	free(ch2);
}
