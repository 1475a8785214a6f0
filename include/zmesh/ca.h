/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The mesh CA (Citadel's job in Istio), used by zmeshd (and the lab).
 *
 * zm_ca_open(dir) picks one of two modes:
 *  - plug-in: <dir>/cacerts/ holds Istio's files: ca-cert.pem (the signing
 *    CA, usually an intermediate), ca-key.pem, cert-chain.pem (ca-cert first,
 *    then up towards the root) and root-cert.pem (the trusted root(s); an
 *    operator rotating roots puts old and new there). The CA checks the key
 *    matches ca-cert and that ca-cert chains to root-cert.
 *  - self-signed: otherwise; a self-signed ECDSA P-256 root is made on first
 *    open and persisted in <dir> (root-cert.pem, root-key.pem mode 0600; the
 *    directory 0700). Later opens load it.
 *
 * Signing: zm_ca_sign() takes a CSR and the identity the caller has
 * authorized (zmeshd: a node's ztunnel may get only the service accounts of
 * pods on that node). The leaf's SAN is that identity and nothing from the
 * CSR is copied but its public key; the CSR's signature and key type (EC
 * P-256) are checked. Leaves: X509v3, CA:FALSE, keyUsage
 * digitalSignature+keyEncipherment (critical), EKU serverAuth+clientAuth,
 * one URI SAN (critical, as the subject is empty), AKI, a random 128-bit
 * serial, notBefore one minute in the past (peer clock skew), notAfter
 * now+TTL capped at the CA's own notAfter.
 *
 * Root rotation (self-signed mode), each step persisted:
 *   zm_ca_root_prepare   a new root is made and trusted (in the bundle) but
 *                        does not sign yet: proxies learn it first;
 *   zm_ca_root_activate  the new root signs; the old root stays trusted
 *                        (retired-roots.pem) so its certificates still verify;
 *   zm_ca_root_retire    once every workload renewed: the old roots leave
 *                        the bundle and their certificates fail.
 * Files: <dir>/next-root-cert.pem, next-root-key.pem, retired-roots.pem.
 *
 * Thread-safe: one mutex per CA. Pointers returned by zm_ca_bundle() are
 * valid until the next rotation step; zm_ca_bundle_dup() gives a copy.
 */
#ifndef ZMESH_CA_H
#define ZMESH_CA_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "zmesh/keymat.h"
#include "zmesh/log.h"
#include "zmesh/nodeid.h"
#include "zmesh/spiffe.h"

#define ZM_CA_DEFAULT_TTL (24u * 3600)
#define ZM_CA_MIN_TTL 60u
#define ZM_CA_MAX_TTL (90u * 24 * 3600)

struct zm_ca;

int zm_ca_open(const char *dir, struct zm_ca **out, struct zm_error *e);
void zm_ca_free(struct zm_ca *ca);
/* True when the CA came from <dir>/cacerts/. */
bool zm_ca_plugged_in(struct zm_ca *ca);

/*
 * Sign @csr_pem for @id, valid @ttl seconds (0: ZM_CA_DEFAULT_TTL; else
 * ZM_CA_MIN_TTL..ZM_CA_MAX_TTL). *chain_pem (malloc'd): the leaf, then the
 * signing CA's chain up to, not including, a self-signed root. 0, or
 * -EINVAL with e saying why (bad PEM, bad signature, not P-256, TTL).
 */
int zm_ca_sign(struct zm_ca *ca, const char *csr_pem, const struct zm_spiffe_id *id,
	       unsigned ttl, char **chain_pem, struct zm_error *e);

/*
 * The identity a CSR asks for: its single URI SAN, a SPIFFE workload ID,
 * parsed with its explicit length. @pem is @len bytes (no NUL needed). The
 * caller authorizes it (zmeshd: a pod of the caller's node) and passes it
 * to zm_ca_sign(), which checks the CSR's signature and key. 0, or -EINVAL
 * with @why (not a CSR, no SAN, not exactly one URI SAN, not a workload ID).
 */
int zm_ca_csr_identity(const char *pem, size_t len, struct zm_spiffe_id *id, char *why, size_t whysz);

/*
 * A node's bootstrap credential (nodeid.h): a fresh P-256 key (*key_pem,
 * malloc'd; wipe it when done) and a leaf for spiffe://@td/zmesh/node/@node
 * with the same profile as workload leaves, valid @ttl seconds (0: default),
 * chain as zm_ca_sign(). Made by `zmeshctl lab up` (and tests) to let a
 * node's ztunnel prove which node it is to zmeshd.
 */
int zm_ca_issue_node(struct zm_ca *ca, const char *td, const char *node, unsigned ttl,
		     char **key_pem, char **chain_pem, struct zm_error *e);
/*
 * A waypoint's or gateway's bootstrap credential (nodeid.h, zm_cp_role):
 * as zm_ca_issue_node() for spiffe://@td/zmesh/<role>/@ns/@sa. Made by the
 * lab for the waypoint and gateway pods it runs.
 */
int zm_ca_issue_proxy(struct zm_ca *ca, const char *td, enum zm_cp_role role, const char *ns, const char *sa,
		      unsigned ttl, char **key_out, char **chain_pem, struct zm_error *e);

/* The trust bundle (root certificates, PEM); owned by the CA (see above). */
const char *zm_ca_bundle(struct zm_ca *ca);
/* The same, malloc'd. */
char *zm_ca_bundle_dup(struct zm_ca *ca);

/* Root rotation, self-signed mode only (-ENOTSUP for a plug-in CA). */
int zm_ca_root_prepare(struct zm_ca *ca, struct zm_error *e);	/* -EEXIST: already prepared */
int zm_ca_root_activate(struct zm_ca *ca, struct zm_error *e);	/* -ENOENT: nothing prepared */
int zm_ca_root_retire(struct zm_ca *ca, struct zm_error *e);

#endif
