/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Workload key material, the proxy side of the CA: a key and CSR per
 * identity, the cached certificate (SVID) record, and when to renew it.
 *
 * Renewal policy: at half of the certificate's lifetime, made earlier by up
 * to ZM_RENEW_JITTER_PCT percent of the lifetime so that workloads issued
 * together do not all come back at once; at once when the certificate is
 * not yet valid (clock skew or a CA clock ahead: the proxy must not sit on a
 * certificate peers refuse) or already expired.
 */
#ifndef ZMESH_KEYMAT_H
#define ZMESH_KEYMAT_H

#include <stdbool.h>
#include <time.h>

#include "zmesh/log.h"
#include "zmesh/spiffe.h"

#define ZM_RENEW_JITTER_PCT 5

/*
 * A new ECDSA P-256 key and a CSR for @id (signed with the key, carrying
 * @id as its URI SAN, as Istio's agents send), both PEM, malloc'd. The CA
 * does not trust the CSR's SAN: it uses the identity it authorized.
 */
int zm_key_csr(const struct zm_spiffe_id *id, char **key_pem, char **csr_pem, struct zm_error *e);

/*
 * When to renew a certificate valid [@not_before, @not_after] at time @now:
 * not_before + lifetime/2 - lifetime * @jitter_pct/100 * @rnd, never before
 * @now; @now itself when the certificate is not yet valid, expired, or has
 * no lifetime. @jitter_pct is clamped to 0..20; @rnd in [0,1] picks the
 * jitter (a random number; tests pass fixed ones). Pure function.
 */
time_t zm_renew_at(time_t not_before, time_t not_after, time_t now, int jitter_pct, double rnd);

/* A cached SVID: the key, the chain as the CA returned it (leaf first), its validity. */
struct zm_svid_cert {
	struct zm_spiffe_id id;	/* from the leaf's URI SAN */
	char *key_pem;
	char *chain_pem;
	time_t not_before, not_after;
};

/*
 * Fill @c from PEM (copied): the leaf must be a valid X509-SVID (svid.h leaf
 * rules) whose public key matches @key_pem. 0 or -EINVAL (e says why);
 * on error @c is left empty.
 */
int zm_svid_cert_load(struct zm_svid_cert *c, const char *key_pem, const char *chain_pem,
		      struct zm_error *e);
/* Free what @c holds (the key is wiped first) and empty it. */
void zm_svid_cert_clear(struct zm_svid_cert *c);
/* zm_renew_at() for @c with ZM_RENEW_JITTER_PCT. An empty record: @now. */
time_t zm_svid_cert_renew_at(const struct zm_svid_cert *c, time_t now, double rnd);
/* Is @c usable at @now (not_before <= now < not_after)? */
bool zm_svid_cert_valid_at(const struct zm_svid_cert *c, time_t now);
/* A uniform double in [0,1) from the OpenSSL DRBG, for @rnd. */
double zm_rand_unit(void);

#endif
