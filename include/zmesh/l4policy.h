/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What ztunnel enforces on a connection to a workload: PeerAuthentication
 * (is plaintext accepted?) and L4 AuthorizationPolicy, with Istio's
 * semantics, evaluated over a config set (zmesh/config.h).
 *
 * Which policies apply to a workload (namespace @ns, labels @labels):
 *   - those in the root namespace (ZM_ROOT_NS, "istio-system") without a
 *     selector (mesh-wide) or whose selector matches the labels;
 *   - those in @ns without a selector or whose selector matches.
 * Policies bound with targetRef/targetRefs are a waypoint's or a gateway's:
 * ztunnel does not enforce them.
 *
 * PeerAuthentication: the workload-level policy (a selector that matches;
 * several: the oldest, here the first by name, as Istio documents) then its
 * portLevelMtls entry for the port, else its mode; UNSET inherits from the
 * namespace-wide policy, then the mesh-wide one; UNSET at the top is
 * PERMISSIVE.
 *
 * AuthorizationPolicy (actions CUSTOM, DENY, ALLOW; AUDIT never decides):
 *   - a CUSTOM policy that applies denies: no external authorizer is
 *     configured here, and a policy that cannot be applied must deny;
 *   - any matching DENY rule denies;
 *   - no ALLOW policy applies: allow; ALLOW policies apply and no rule of
 *     theirs matches: deny. An ALLOW policy without rules allows nothing.
 * A rule matches when every part written matches: some `from` (a source's
 * fields all match), some `to` (an operation's), every `when`. A field with
 * several values matches when one does; not* fields match when none does.
 *
 * L4 has no request: fields that need one (hosts, methods, paths,
 * requestPrincipals, request.* conditions...) cannot be evaluated here. As
 * ztunnel does in Istio, an ALLOW rule using them never matches (so the
 * traffic is denied unless another rule allows it) and in a DENY rule they
 * are taken as matching (the rule denies on its L4 parts alone): a policy
 * that needs a waypoint fails closed without one.
 *
 * Source identity: @principal is Istio's form "<td>/ns/<ns>/sa/<sa>" (no
 * "spiffe://"), from the verified peer certificate; NULL for plaintext, and
 * then principals, namespaces and serviceAccounts match nothing (their not*
 * forms match everything).
 */
#ifndef ZMESH_L4POLICY_H
#define ZMESH_L4POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zmesh/config.h"
#include "zmesh/istio.h"
#include "zmesh/labels.h"

#define ZM_ROOT_NS "istio-system"

struct zm_l4_workload {
	const char *ns;
	const struct zm_labels *labels;
};

struct zm_l4_conn {
	const char *principal;		/* verified peer identity, or NULL (plaintext) */
	int family;			/* AF_INET or AF_INET6 */
	uint8_t src_ip[16];		/* network order */
	uint8_t dst_ip[16];
	uint16_t dst_port;		/* the workload port dialled (host order) */
};

/* The effective mTLS mode for @w on @port: DISABLE, PERMISSIVE or STRICT. */
enum zm_mtls_mode zm_l4_mtls_mode(const struct zm_cfg_set *cfg, const struct zm_l4_workload *w,
				  uint16_t port);

/* True when the mode is STRICT on every port of @w (no portLevelMtls exception). */
bool zm_l4_strict_everywhere(const struct zm_cfg_set *cfg, const struct zm_l4_workload *w);

struct zm_l4_verdict {
	bool allow;
	char policy[160];	/* "<ns>/<name>" of the deciding policy, "" when none */
	char reason[96];	/* "denied by DENY policy", "no ALLOW policy matched", ... */
};

/* Decide @c to @w. Never fails: what cannot be evaluated decides as above. */
void zm_l4_authorize(const struct zm_cfg_set *cfg, const struct zm_l4_workload *w,
		     const struct zm_l4_conn *c, struct zm_l4_verdict *v);

#endif /* ZMESH_L4POLICY_H */
