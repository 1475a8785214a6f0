// SPDX-License-Identifier: Apache-2.0
/* zm_tls_hello_sni on real ClientHellos (made by OpenSSL), cut and damaged ones. */
#include <errno.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>

#include "zmesh/tls_sni.h"
#include "../harness/test.h"

/* A client's first flight from OpenSSL, with @sni (NULL: none). Length in *n. */
static uint8_t *hello(const char *sni, size_t *n)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = ctx ? SSL_new(ctx) : NULL;
	BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
	uint8_t *out = malloc(65536);
	int len;

	if (!ssl || !rb || !wb || !out)
		abort();
	SSL_set_bio(ssl, rb, wb);
	if (sni)
		SSL_set_tlsext_host_name(ssl, sni);
	SSL_set_connect_state(ssl);
	SSL_do_handshake(ssl);
	len = BIO_read(wb, out, 65536);
	*n = len > 0 ? (size_t)len : 0;
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	return out;
}

TEST(real_hellos)
{
	char name[256];
	size_t n;
	uint8_t *b = hello("shop.example.com", &n);

	ASSERT_GT(n, 50);
	ASSERT_EQ(zm_tls_hello_sni(b, n, name, sizeof(name)), 0);
	EXPECT_STREQ(name, "shop.example.com");
	/* too small an output buffer: refused, not cut */
	EXPECT_EQ(zm_tls_hello_sni(b, n, name, 8), -EPROTO);
	free(b);
	b = hello(NULL, &n);
	EXPECT_EQ(zm_tls_hello_sni(b, n, name, sizeof(name)), -ENOENT);
	free(b);
}

TEST(truncated_and_damaged)
{
	char name[256];
	size_t n;
	uint8_t *b = hello("api.example.com", &n), *c = malloc(n);
	unsigned seed = 7;

	ASSERT_NE(c, NULL);
	/* every prefix: wants more, never a name, never a crash (ASan) */
	for (size_t k = 0; k < n; k++)
		EXPECT_EQ(zm_tls_hello_sni(b, k, name, sizeof(name)), -EAGAIN);
	/* not TLS */
	EXPECT_EQ(zm_tls_hello_sni((const uint8_t *)"GET / HTTP/1.1\r\n", 16, name, sizeof(name)), -EPROTO);
	/* random damage: any answer but no overrun; a name found is printable */
	for (int it = 0; it < 20000; it++) {
		int rc;

		memcpy(c, b, n);
		for (int f = 0; f < 1 + it % 4; f++)
			c[rand_r(&seed) % n] = (uint8_t)rand_r(&seed);
		rc = zm_tls_hello_sni(c, n, name, sizeof(name));
		if (rc == 0)
			for (const char *p = name; *p; p++)
				ASSERT_TRUE(*p > ' ' && *p < 0x7f && *p != '/');
		else
			ASSERT_TRUE(rc == -EPROTO || rc == -ENOENT || rc == -EAGAIN);
	}
	free(c);
	free(b);
}
