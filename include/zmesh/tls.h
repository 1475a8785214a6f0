/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Mutual TLS for the mesh (HBONE, control plane): TLS 1.3 only, AES-GCM
 * suites only, ALPN "h2", no session resumption (no tickets, no cache), a
 * peer certificate required in both directions, verified against the trust
 * bundle with the X509 purpose set, then checked as an X509-SVID of our
 * trust domain (zm_svid_check). The client then checks the server is
 * exactly the identity it wanted: zm_tls_check_peer().
 *
 * A context holds one generation of key, chain and bundle; to rotate, build
 * a new context and use it for new connections: existing ones keep theirs
 * (SSL objects hold a reference), so nothing is dropped.
 */
#ifndef ZMESH_TLS_H
#define ZMESH_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>

#include "zmesh/log.h"
#include "zmesh/spiffe.h"

/* @chain_pem: leaf first. @bundle_pem: the trusted roots. */
SSL_CTX *zm_tls_ctx_new(bool server, const char *key_pem, const char *chain_pem,
			const char *bundle_pem, const char *trust_domain, struct zm_error *e);
/* The verified peer identity of a connection whose handshake completed. */
int zm_tls_peer_id(SSL *ssl, struct zm_spiffe_id *out);
/* 0 when the peer is @want; else -EACCES and e names expected and actual. */
int zm_tls_check_peer(SSL *ssl, const struct zm_spiffe_id *want, struct zm_error *e);
/* Why the last handshake on @ssl failed verification, if it did ("" else). */
const char *zm_tls_verify_error(SSL *ssl);

#endif
