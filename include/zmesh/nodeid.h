/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Control-plane identities: how a node's proxy proves which node it is to
 * zmeshd, and who zmeshd is to the proxies (docs/zmeshd.md, "Identities").
 *
 * A node bootstrap credential is a certificate from the mesh CA whose single
 * URI SAN is spiffe://<td>/zmesh/node/<node>. We chose a SPIFFE ID outside
 * the workload form (/ns/<ns>/sa/<sa>) on purpose: every workload peer check
 * (svid.h) refuses it, so a stolen node credential cannot pose as a
 * workload on HBONE, and no CSR can ever yield a node identity (zmeshd signs
 * workload IDs only). The leaf profile is the workload one (CA:FALSE,
 * digitalSignature, EKU serverAuth+clientAuth).
 *
 * zmeshd itself presents a workload-form SVID, ZM_ZMESHD_NS/ZM_ZMESHD_SA
 * (like istiod's spiffe://<td>/ns/istio-system/sa/istiod), which proxies
 * name with zm_tls_expect_peer(); zmeshd never signs that identity for a CSR.
 *
 * Credential files in a directory (the lab: /run/zmesh/lab/<lab>/nodes/<node>/):
 * node-key.pem (0600), node-cert.pem (leaf first, then intermediates),
 * root-cert.pem (the trust bundle).
 *
 * Node names are Kubernetes node names (DNS-1123 subdomains): 1..253 bytes
 * of [a-z0-9.-], starting and ending with [a-z0-9]. Everything works on
 * explicit lengths (a SAN is peer data and may hold NULs).
 */
#ifndef ZMESH_NODEID_H
#define ZMESH_NODEID_H

#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>

#include "zmesh/log.h"

#define ZM_NODE_NAME_MAX 253
#define ZM_ZMESHD_NS "zmesh-system"
#define ZM_ZMESHD_SA "zmeshd"

#define ZM_NODE_KEY_FILE "node-key.pem"
#define ZM_NODE_CERT_FILE "node-cert.pem"
#define ZM_NODE_ROOT_FILE "root-cert.pem"

bool zm_node_name_valid(const char *s, size_t len);
/* "spiffe://<td>/zmesh/node/<node>" into @buf: 0, -EINVAL (bad td or name), -ENOSPC. */
int zm_node_id_format(const char *td, const char *node, char *buf, size_t sz);
/* Parse @len bytes: the trust domain must be @td; the node name into @node. 0 or -EINVAL. */
int zm_node_id_parse(const char *s, size_t len, const char *td, char *node, size_t nodesz);

/*
 * Is @leaf a node bootstrap certificate of trust domain @td? The leaf rules
 * of svid.h (not the chain: the TLS layer has verified it) and exactly one
 * URI SAN, a node ID. 0 and the node name, or -EACCES and @why.
 */
int zm_node_id_from_x509(X509 *leaf, const char *td, char *node, size_t nodesz,
			 char *why, size_t whysz);

/*
 * Proxies that are not a node's (docs/zmeshd.md, "Identities"): a waypoint
 * or an ingress gateway gets a bootstrap credential of its own, whose single
 * URI SAN is spiffe://<td>/zmesh/waypoint/<ns>/<sa> or
 * spiffe://<td>/zmesh/gateway/<ns>/<sa>: the service account it runs as
 * (Istio: the pod's own service-account token). Like a node ID it is outside
 * the workload form, so it never passes a workload peer check, and zmeshd
 * signs a CSR on it for exactly ns/<ns>/sa/<sa>. The role decides the
 * proxy's config view (a gateway's includes its namespace's Secrets), so it
 * comes from the certificate, never from anything the client says.
 */
enum zm_cp_role { ZM_CP_NODE, ZM_CP_WAYPOINT, ZM_CP_GATEWAY };

struct zm_cp_peer {
	enum zm_cp_role role;
	char node[ZM_NODE_NAME_MAX + 1];	/* ZM_CP_NODE */
	char ns[64], sa[254];			/* ZM_CP_WAYPOINT, ZM_CP_GATEWAY */
};

const char *zm_cp_role_name(enum zm_cp_role r);	/* "node", "waypoint", "gateway" */
/* "spiffe://<td>/zmesh/<role>/<ns>/<sa>" (role waypoint or gateway): 0, -EINVAL, -ENOSPC. */
int zm_proxy_id_format(const char *td, enum zm_cp_role role, const char *ns, const char *sa,
		       char *buf, size_t sz);
/* A node or proxy ID of trust domain @td (explicit length): 0 or -EINVAL. */
int zm_cp_id_parse(const char *s, size_t len, const char *td, struct zm_cp_peer *out);
/* zm_node_id_from_x509() for node and proxy IDs. */
int zm_cp_id_from_x509(X509 *leaf, const char *td, struct zm_cp_peer *out, char *why, size_t whysz);

/* Write the three files into @dir (made 0700 if missing); atomic per file. */
int zm_node_cred_write(const char *dir, const char *key_pem, const char *chain_pem,
		       const char *bundle_pem, struct zm_error *e);
/* Read them back (malloc'd; any pointer may be NULL to skip that file). */
int zm_node_cred_read(const char *dir, char **key_pem, char **chain_pem, char **bundle_pem,
		      struct zm_error *e);

#endif
