/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The mesh CA (Citadel's job) and workload key material.
 *
 * zm_ca_open(dir) uses <dir>/cacerts/ when present (Istio's plug-in layout:
 * ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem), else a self-signed
 * ECDSA P-256 root in <dir>/root-cert.pem + root-key.pem, made on first use.
 * It signs CSRs for SPIFFE identities: the identity comes from the caller
 * (who has checked the requester may have it), never from the CSR, whose
 * extensions are ignored; the CSR's signature and key type (P-256) are
 * checked. Leaves: CA:FALSE, digitalSignature+keyEncipherment,
 * serverAuth+clientAuth, one URI SAN, a random serial, notBefore a minute in
 * the past.
 */
#ifndef ZMESH_CA_H
#define ZMESH_CA_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "zmesh/log.h"
#include "zmesh/spiffe.h"

struct zm_ca;

int zm_ca_open(const char *dir, struct zm_ca **out, struct zm_error *e);
void zm_ca_free(struct zm_ca *ca);
/* Sign @csr_pem for @id, valid @ttl seconds. *chain_pem (malloc'd): the
 * leaf, then the intermediates up to (not including) the root. */
int zm_ca_sign(struct zm_ca *ca, const char *csr_pem, const struct zm_spiffe_id *id,
	       unsigned ttl, char **chain_pem, struct zm_error *e);
/* The trust bundle (root certificates, PEM); owned by the CA. */
const char *zm_ca_bundle(struct zm_ca *ca);

/* A new ECDSA P-256 key and a CSR for @id, both PEM, malloc'd. */
int zm_key_csr(const struct zm_spiffe_id *id, char **key_pem, char **csr_pem, struct zm_error *e);

/*
 * When to renew a certificate valid [@not_before, @not_after] at time @now:
 * at half life, minus up to @jitter_pct percent of the lifetime (0-20), at
 * once when it is not yet valid or already expired. @rnd in [0,1) picks the
 * jitter (pass a random number; tests pass fixed ones).
 */
time_t zm_renew_at(time_t not_before, time_t not_after, time_t now, int jitter_pct, double rnd);

#endif
