/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A trust bundle: the list of root certificates a proxy trusts.
 *
 * Root rotation works on this list: the new root is added (both trusted:
 * certificates from either verify), the CA starts signing with it, and once
 * every workload holds a new certificate the old root is removed (its
 * certificates then fail). Only CA certificates (basicConstraints CA:TRUE)
 * are accepted; adding a root already present is a no-op.
 *
 * Not thread-safe: build a bundle, then hand its PEM or a store to the TLS
 * layer (zm_tls_creds_update), which copies what it needs.
 */
#ifndef ZMESH_BUNDLE_H
#define ZMESH_BUNDLE_H

#include <openssl/x509.h>
#include <stdbool.h>

#include "zmesh/log.h"

struct zm_bundle;

struct zm_bundle *zm_bundle_new(void);
void zm_bundle_free(struct zm_bundle *b);
/* Add every certificate of @pem. -EINVAL (nothing added) when @pem holds no
 * certificate, garbage, or a certificate that is not a CA. */
int zm_bundle_add_pem(struct zm_bundle *b, const char *pem, struct zm_error *e);
/* Remove every root of @pem that the bundle holds; returns how many. */
int zm_bundle_remove_pem(struct zm_bundle *b, const char *pem);
int zm_bundle_count(const struct zm_bundle *b);
/* Does the bundle hold @root? */
bool zm_bundle_has(const struct zm_bundle *b, X509 *root);
/* The roots as PEM, malloc'd (NULL on ENOMEM). */
char *zm_bundle_pem(const struct zm_bundle *b);
/* A new X509_STORE holding exactly these roots (caller frees), or NULL. */
X509_STORE *zm_bundle_store(const struct zm_bundle *b);

/* Shared PEM helpers: every certificate of @pem, or NULL and @e says why. */
STACK_OF(X509) *zm_pem_certs(const char *pem, struct zm_error *e);

#endif
