// SPDX-License-Identifier: Apache-2.0
/* cert_rules: pin syntax, SAN matching by type, pins, and SAN AND pin. */
#include <errno.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zmesh/cert_rules.h"
#include "../harness/test.h"

static char dir[64];

static X509 *load(const char *name)
{
	char p[128];
	FILE *f;
	X509 *x;

	snprintf(p, sizeof(p), "%s/%s.crt", dir, name);
	if (!(f = fopen(p, "r")))
		return NULL;
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	return x;
}

static void certs(void)
{
	if (dir[0])
		return;
	snprintf(dir, sizeof(dir), "/tmp/zm-cr-%d", getpid());
	test_sh(NULL, 0, "mkdir -p %s && cd %s && exec >log 2>&1 && "
		"mk() { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $1.key "
		"  -out $1.crt -days 1 -subj /CN=$1 ${2:+-addext subjectAltName=$2}; } && "
		"mk a 'DNS:Web.Example.com,URI:spiffe://td/ns/a,email:ops@example.com,IP:10.1.2.3,IP:fd00::7' && "
		"mk b 'DNS:other.example.com' && mk none '' && "
		"openssl x509 -in a.crt -outform DER | openssl dgst -sha256 -c | awk '{print $2}' > a.hash && "
		"openssl x509 -in a.crt -pubkey -noout | openssl pkey -pubin -outform DER | "
		"  openssl dgst -sha256 -binary | base64 > a.spki", dir, dir);
}

static char *line(const char *file)
{
	static char b[4][256];
	static int k;
	char p[128];
	FILE *f;

	k = (k + 1) % 4;
	b[k][0] = 0;
	snprintf(p, sizeof(p), "%s/%s", dir, file);
	if ((f = fopen(p, "r"))) {
		if (!fgets(b[k], sizeof(b[k]), f))
			b[k][0] = 0;
		fclose(f);
	}
	b[k][strcspn(b[k], "\n")] = 0;
	return b[k];
}

/* Rules from up to 3 strings per kind (NULL-terminated). */
static int rules(struct zm_cert_rules *r, const char *const *sans, const char *const *spki, const char *const *hash)
{
	struct zm_cstr v[3][4];
	zm_cstrs l[3] = { 0 };
	const char *const *in[3] = { sans, spki, hash };
	char why[256] = "";
	int rc;

	memset(v, 0, sizeof(v));
	for (int k = 0; k < 3; k++) {
		l[k].v = v[k];
		for (size_t i = 0; in[k] && in[k][i] && i < 4; i++)
			v[k][l[k].n++].v = (char *)in[k][i];
	}
	rc = zm_cert_rules_init(r, &l[0], &l[1], &l[2], why, sizeof(why));
	if (rc)
		test_log("init: %s", why);
	return rc;
}

TEST(pin_syntax)
{
	EXPECT_EQ(zm_pin_spki_check("61wWz/SZxT8FEHSPmOGpGyHo3C35tZ1ST3CznWrCgI8="), NULL);
	EXPECT_NE(zm_pin_spki_check("61wWz/SZxT8FEHSPmOGpGyHo3C35tZ1ST3CznWrCgI8"), NULL);	/* no pad */
	EXPECT_NE(zm_pin_spki_check("61wWz/SZxT8FEHSPmOGpGyHo3C35tZ1ST3CznWrCg=="), NULL);	/* 31 bytes */
	EXPECT_NE(zm_pin_spki_check("61wWz/SZxT8FEHSPmOGpGyHo3C35tZ1ST3CznWrCg*8="), NULL);
	EXPECT_NE(zm_pin_spki_check(""), NULL);
	EXPECT_NE(zm_pin_hash_check("6088"), NULL);
	EXPECT_EQ(zm_pin_hash_check("608833537b2e11f54819c879c7ef6fe32609d173755be25d2df5eb790e945853"), NULL);
	EXPECT_EQ(zm_pin_hash_check("60:88:33:53:7B:2E:11:F5:48:19:C8:79:C7:EF:6F:E3:26:09:D1:73:75:5B:E2:5D:"
				    "2D:F5:EB:79:0E:94:58:53"), NULL);
	EXPECT_NE(zm_pin_hash_check("60:88:33:53:7B:2E:11:F5:48:19:C8:79:C7:EF:6F:E3:26:09:D1:73:75:5B:E2:5D:"
				    "2D:F5:EB:79:0E:94:58:5"), NULL);
	EXPECT_NE(zm_pin_hash_check("60-88-33-53-7B-2E-11-F5-48-19-C8-79-C7-EF-6F-E3-26-09-D1-73-75-5B-E2-5D-"
				    "2D-F5-EB-79-0E-94-58-53"), NULL);
	EXPECT_NE(zm_pin_hash_check("g08833537b2e11f54819c879c7ef6fe32609d173755be25d2df5eb790e945853"), NULL);
	EXPECT_NE(zm_san_value_check("a b"), NULL);
	EXPECT_NE(zm_san_value_check(""), NULL);
	EXPECT_EQ(zm_san_value_check("spiffe://td/ns/a"), NULL);
	EXPECT_EQ(zm_tls12_cipher_check("ECDHE-RSA-AES128-GCM-SHA256"), NULL);
	EXPECT_NE(zm_tls12_cipher_check("RC4-MD5"), NULL);
	EXPECT_NE(zm_tls12_cipher_check("TLS_AES_128_GCM_SHA256"), NULL);	/* 1.3 suites are not configurable */
}

TEST(san_by_type)
{
	struct zm_cert_rules r;
	X509 *a, *b, *none;

	certs();
	a = load("a");
	b = load("b");
	none = load("none");
	ASSERT_NE(a, NULL);
	ASSERT_NE(b, NULL);
	ASSERT_NE(none, NULL);
	{
		const char *const s[] = { "web.example.com", NULL };	/* DNS: any case */

		ASSERT_EQ(rules(&r, s, NULL, NULL), 0);
		EXPECT_EQ(zm_cert_rules_check(&r, a, NULL, 0), 0);
		EXPECT_EQ(zm_cert_rules_check(&r, b, NULL, 0), -EACCES);
		EXPECT_EQ(zm_cert_rules_check(&r, none, NULL, 0), -EACCES);
		zm_cert_rules_free(&r);
	}
	{
		const char *const ok[][2] = { { "spiffe://td/ns/a", NULL }, { "ops@example.com", NULL },
					      { "10.1.2.3", NULL }, { "fd00:0::7", NULL } };
		const char *const bad[][2] = { { "spiffe://TD/ns/a", NULL }, { "spiffe://td/ns/", NULL },
					       { "10.1.2.4", NULL }, { "Web.Example.co", NULL },
					       { "*.example.com", NULL }, { "a", NULL } };

		for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
			ASSERT_EQ(rules(&r, ok[i], NULL, NULL), 0);
			EXPECT_EQ(zm_cert_rules_check(&r, a, NULL, 0), 0);
			zm_cert_rules_free(&r);
		}
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			ASSERT_EQ(rules(&r, bad[i], NULL, NULL), 0);
			EXPECT_EQ(zm_cert_rules_check(&r, a, NULL, 0), -EACCES);
			zm_cert_rules_free(&r);
		}
	}
	X509_free(a);
	X509_free(b);
	X509_free(none);
}

TEST(pins_and_san_and_pin)
{
	struct zm_cert_rules r;
	char why[256];
	X509 *a, *b;

	certs();
	a = load("a");
	b = load("b");
	ASSERT_NE(a, NULL);
	ASSERT_NE(b, NULL);
	{
		const char *const h[] = { line("a.hash"), NULL };
		const char *const k[] = { line("a.spki"), NULL };

		test_log("hash %s spki %s", h[0], k[0]);
		ASSERT_EQ(rules(&r, NULL, NULL, h), 0);
		EXPECT_EQ(zm_cert_rules_check(&r, a, NULL, 0), 0);
		EXPECT_EQ(zm_cert_rules_check(&r, b, NULL, 0), -EACCES);
		zm_cert_rules_free(&r);
		ASSERT_EQ(rules(&r, NULL, k, NULL), 0);
		EXPECT_EQ(zm_cert_rules_check(&r, a, NULL, 0), 0);
		EXPECT_EQ(zm_cert_rules_check(&r, b, NULL, 0), -EACCES);
		zm_cert_rules_free(&r);
	}
	{
		/* spki OR hash: a wrong hash next to the right SPKI still passes */
		const char *const h[] = { "00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:"
					  "88:99:aa:bb:cc:dd:ee:ff", NULL };
		const char *const k[] = { line("a.spki"), NULL };
		const char *const s_ok[] = { "web.example.com", NULL }, *const s_no[] = { "other.example.com", NULL };

		ASSERT_EQ(rules(&r, NULL, k, h), 0);
		EXPECT_EQ(zm_cert_rules_check(&r, a, NULL, 0), 0);
		zm_cert_rules_free(&r);
		/* SAN AND pin */
		ASSERT_EQ(rules(&r, s_ok, k, NULL), 0);
		EXPECT_EQ(zm_cert_rules_check(&r, a, NULL, 0), 0);
		zm_cert_rules_free(&r);
		ASSERT_EQ(rules(&r, s_no, k, NULL), 0);
		EXPECT_EQ(zm_cert_rules_check(&r, a, why, sizeof(why)), -EACCES);	/* SAN fails */
		EXPECT_EQ(zm_cert_rules_check(&r, b, why, sizeof(why)), -EACCES);	/* pin fails */
		test_log("%s", why);
		zm_cert_rules_free(&r);
	}
	{
		const char *const bad[] = { "abc", NULL };

		EXPECT_EQ(rules(&r, NULL, bad, NULL), -EINVAL);
		zm_cert_rules_free(&r);
		EXPECT_EQ(rules(&r, NULL, NULL, bad), -EINVAL);
		zm_cert_rules_free(&r);
	}
	X509_free(a);
	X509_free(b);
	test_sh(NULL, 0, "rm -rf %s", dir);
}
