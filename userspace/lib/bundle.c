// SPDX-License-Identifier: Apache-2.0
/* Trust bundles: a plain list of roots; duplicates compare by full DER. */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#include "zmesh/bundle.h"

struct zm_bundle {
	STACK_OF(X509) *roots;
};

struct zm_bundle *zm_bundle_new(void)
{
	struct zm_bundle *b = calloc(1, sizeof(*b));

	if (b && !(b->roots = sk_X509_new_null())) {
		free(b);
		b = NULL;
	}
	return b;
}

void zm_bundle_free(struct zm_bundle *b)
{
	if (!b)
		return;
	sk_X509_pop_free(b->roots, X509_free);
	free(b);
}

STACK_OF(X509) *zm_pem_certs(const char *pem, struct zm_error *e)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	BIO *in = pem ? BIO_new_mem_buf(pem, -1) : NULL;
	X509 *x;
	unsigned long err;

	if (!sk || !in)
		goto fail;
	ERR_clear_error();
	while ((x = PEM_read_bio_X509(in, NULL, NULL, NULL)))
		if (!sk_X509_push(sk, x)) {
			X509_free(x);
			goto fail;
		}
	/* The reader ends with "no start line"; anything else is a broken PEM block. */
	err = ERR_peek_last_error();
	if (err && ERR_GET_REASON(err) != PEM_R_NO_START_LINE) {
		zm_error_set(e, EINVAL, "PEM: %s", ERR_reason_error_string(err));
		goto fail_quiet;
	}
	ERR_clear_error();
	if (sk_X509_num(sk) == 0) {
		zm_error_set(e, EINVAL, "PEM: no certificate");
		goto fail_quiet;
	}
	BIO_free(in);
	return sk;
fail:
	zm_error_set(e, ENOMEM, "out of memory");
fail_quiet:
	ERR_clear_error();
	BIO_free(in);
	sk_X509_pop_free(sk, X509_free);
	return NULL;
}

bool zm_bundle_has(const struct zm_bundle *b, X509 *root)
{
	for (int i = 0; i < sk_X509_num(b->roots); i++)
		if (!X509_cmp(sk_X509_value(b->roots, i), root))
			return true;
	return false;
}

int zm_bundle_add_pem(struct zm_bundle *b, const char *pem, struct zm_error *e)
{
	STACK_OF(X509) *sk = zm_pem_certs(pem, e);
	int rc = 0;

	if (!sk)
		return -EINVAL;
	for (int i = 0; i < sk_X509_num(sk); i++)
		if (X509_check_ca(sk_X509_value(sk, i)) != 1) {
			rc = zm_error_set(e, EINVAL, "trust bundle: certificate %d is not a CA", i + 1);
			goto out;
		}
	while (sk_X509_num(sk) > 0) {
		X509 *x = sk_X509_shift(sk);

		if (zm_bundle_has(b, x) || !sk_X509_push(b->roots, x))
			X509_free(x);
	}
out:
	sk_X509_pop_free(sk, X509_free);
	return rc;
}

int zm_bundle_remove_pem(struct zm_bundle *b, const char *pem)
{
	STACK_OF(X509) *sk = zm_pem_certs(pem, NULL);
	int n = 0;

	for (int i = 0; sk && i < sk_X509_num(sk); i++)
		for (int j = sk_X509_num(b->roots) - 1; j >= 0; j--)
			if (!X509_cmp(sk_X509_value(b->roots, j), sk_X509_value(sk, i))) {
				X509_free(sk_X509_delete(b->roots, j));
				n++;
			}
	sk_X509_pop_free(sk, X509_free);
	return n;
}

int zm_bundle_count(const struct zm_bundle *b)
{
	return sk_X509_num(b->roots);
}

char *zm_bundle_pem(const struct zm_bundle *b)
{
	BIO *out = BIO_new(BIO_s_mem());
	char *data, *s = NULL;
	long n;

	if (!out)
		return NULL;
	for (int i = 0; i < sk_X509_num(b->roots); i++)
		if (!PEM_write_bio_X509(out, sk_X509_value(b->roots, i)))
			goto out;
	n = BIO_get_mem_data(out, &data);
	s = malloc((size_t)n + 1);
	if (s) {
		memcpy(s, data, (size_t)n);
		s[n] = 0;
	}
out:
	BIO_free(out);
	return s;
}

X509_STORE *zm_bundle_store(const struct zm_bundle *b)
{
	X509_STORE *st = X509_STORE_new();

	for (int i = 0; st && i < sk_X509_num(b->roots); i++)
		if (X509_STORE_add_cert(st, sk_X509_value(b->roots, i)) != 1) {
			X509_STORE_free(st);
			st = NULL;
		}
	ERR_clear_error();
	return st;
}
