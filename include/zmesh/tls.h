/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Mutual TLS for the mesh (HBONE, the control plane), shared by ztunnel,
 * waypoint and zmeshd.
 *
 * Every context made here is:
 *  - TLS 1.3 only; suites TLS_AES_128_GCM_SHA256 and TLS_AES_256_GCM_SHA384
 *    only; ALPN "h2" required (a server refuses a client that offers no ALPN
 *    or not h2; a client refuses a server that did not select h2);
 *  - without session resumption: no tickets issued, no session cache on
 *    either side, so every connection is a full handshake against the
 *    current bundle (CVE-2022-21654);
 *  - mutual: the peer must present a certificate, in both directions;
 *  - verifying the peer chain against the trust bundle only (never the
 *    system store), with the X509 purpose set (a server checks the client for
 *    clientAuth, a client the server for serverAuth), then the X509-SVID leaf
 *    rules and our trust domain (svid.h). All of this runs inside the
 *    handshake: a failed check fails the handshake with an alert.
 *
 * Identity checks: a client names the server identity it wants with
 * zm_tls_expect_peer() before the handshake (the handshake then fails when
 * the server is anyone else; zm_tls_check_peer() does the same check after
 * the fact); a server learns the client's verified identity in its
 * zm_tls_peer_cb during the handshake (and may refuse it there), or with
 * zm_tls_peer_id() afterwards. Errors name expected and actual identity:
 * "peer identity: want spiffe://..., got spiffe://...".
 *
 * Note on TLS 1.3: the client finishes its handshake before the server has
 * judged the client certificate, so a client refused by the server sees
 * that as an alert on its first read, not as a failed handshake.
 *
 * Transport: the functions below work on any SSL made from these contexts
 * however the bytes move. zm_tls_use_membio() + zm_tls_net_*() give the
 * memory-BIO form for io_uring loops (feed ciphertext in, drain ciphertext
 * out, call zm_tls_handshake() until it returns 1); zm_tls_handshake_fd()
 * is a blocking helper for tests and simple tools.
 *
 * Rotation (struct zm_tls_creds): one SSL_CTX per generation of key, chain
 * and bundle. zm_tls_creds_update() builds a whole new context and swaps the
 * pointer under a mutex; every SSL holds a reference to the context it was
 * made from (OpenSSL refcounts SSL_CTX), so existing connections keep the
 * generation they were made with, new handshakes get the new one, and a
 * generation is freed with its last connection. We chose this over
 * SSL_CTX_use_*() under a lock because a generation is immutable once
 * published: no handshake can see half a swap (new key, old chain).
 * When the bundle changes, call zm_tls_recheck() on pooled connections and
 * drain those whose peer no longer verifies (istio/istio#59714).
 */
#ifndef ZMESH_TLS_H
#define ZMESH_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "zmesh/log.h"
#include "zmesh/spiffe.h"
#include "zmesh/svid.h"

#define ZM_TLS_SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384"

/*
 * A context for one side. @key_pem: the private key; @chain_pem: leaf
 * first, then intermediates; @bundle_pem: the trusted roots (CA certs only);
 * @trust_domain: peers must be in it. NULL and @e on error (bad PEM, key not
 * matching the leaf, empty bundle). Our own leaf is not checked here: the
 * CA made it; the peer checks it.
 */
SSL_CTX *zm_tls_ctx_new(bool server, const char *key_pem, const char *chain_pem,
			const char *bundle_pem, const char *trust_domain, struct zm_error *e);

/*
 * Called during a handshake on a context with this callback, once the peer
 * chain and its X509-SVID have verified: @peer is who the other side is.
 * Return 0 to go on; a negative errno refuses the handshake, with @why
 * (filled by the callback) reported by zm_tls_verify_error(). Used by
 * servers (ztunnel inbound, zmeshd: "is this node allowed?"); works for
 * clients too.
 */
typedef int (*zm_tls_peer_cb)(SSL *ssl, const struct zm_spiffe_id *peer, void *arg,
			      char *why, size_t whysz);
int zm_tls_ctx_set_peer_cb(SSL_CTX *ctx, zm_tls_peer_cb cb, void *arg);

/* Client: before the handshake, the only server identity to accept. */
int zm_tls_expect_peer(SSL *ssl, const struct zm_spiffe_id *want);
/* The verified peer identity of a connection whose handshake completed
 * (server side: also available inside zm_tls_peer_cb). 0 or -EACCES. */
int zm_tls_peer_id(SSL *ssl, struct zm_spiffe_id *out);
/* 0 when the peer is @want; else -EACCES and e names expected and actual. */
int zm_tls_check_peer(SSL *ssl, const struct zm_spiffe_id *want, struct zm_error *e);
/* Why our side refused the peer during the handshake, if it did ("" else). */
const char *zm_tls_verify_error(SSL *ssl);

/*
 * One step of the handshake: 1 done (peer verified, ALPN h2), 0 needs more
 * I/O (SSL_want_read/SSL_want_write say which; with memory BIOs: drain
 * zm_tls_net_read, feed zm_tls_net_write, call again), or a negative errno:
 * -EACCES when our side refused the peer (e.g. "TLS handshake: peer
 * identity: want ..., got ..."), -EPROTO for a TLS failure or an alert from
 * the peer (OpenSSL's reason in e), -ECONNRESET when the transport closed.
 */
int zm_tls_handshake(SSL *ssl, struct zm_error *e);

/* Memory BIOs: attach a fresh pair to @ssl (0 or -ENOMEM). */
int zm_tls_use_membio(SSL *ssl);
/* Ciphertext that arrived from the network, into @ssl. 0 or -ENOMEM. */
int zm_tls_net_write(SSL *ssl, const void *data, size_t len);
/* Ciphertext to send to the network: up to @cap bytes, 0 when none. */
size_t zm_tls_net_read(SSL *ssl, void *buf, size_t cap);
/* Bytes waiting in the outgoing BIO. */
size_t zm_tls_net_pending(SSL *ssl);
/* The network side reached EOF: reads past the fed bytes now fail instead of wanting more. */
void zm_tls_net_eof(SSL *ssl);

/*
 * Blocking: run the handshake on socket @fd (SSL_set_fd; the fd is made
 * non-blocking for the duration and restored) with a deadline. 0, -ETIMEDOUT,
 * or what zm_tls_handshake returns.
 */
int zm_tls_handshake_fd(SSL *ssl, int fd, int timeout_ms, struct zm_error *e);

/* Rotatable credentials: see the header comment. Thread-safe. */
struct zm_tls_creds;

int zm_tls_creds_new(bool server, const char *trust_domain, struct zm_tls_creds **out);
void zm_tls_creds_free(struct zm_tls_creds *c);
/* Applied to every generation made after this call. */
void zm_tls_creds_set_peer_cb(struct zm_tls_creds *c, zm_tls_peer_cb cb, void *arg);
/*
 * A new generation from @key_pem/@chain_pem/@bundle_pem; NULL for any of
 * them keeps the current one (e.g. a bundle-only update). On error the
 * current generation stays in use and @e says why.
 */
int zm_tls_creds_update(struct zm_tls_creds *c, const char *key_pem, const char *chain_pem,
			const char *bundle_pem, struct zm_error *e);
/* The current generation's context, with a reference for the caller
 * (SSL_CTX_free it), or NULL before the first update. */
SSL_CTX *zm_tls_creds_ctx(struct zm_tls_creds *c);
/* A new SSL on the current generation, or NULL (e says why). */
SSL *zm_tls_creds_ssl(struct zm_tls_creds *c, struct zm_error *e);
/* Counts updates: 0 before the first, then 1, 2, ... */
unsigned zm_tls_creds_generation(struct zm_tls_creds *c);

/*
 * Re-verify an established connection's peer against @ctx's bundle and
 * trust domain at the current time (e.g. the current generation after a
 * root was removed, or to catch a peer certificate that has expired since).
 * 0: still trusted; -EACCES: drain the connection (e says why).
 */
int zm_tls_recheck(SSL *ssl, SSL_CTX *ctx, struct zm_error *e);

#endif
