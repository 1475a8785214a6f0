// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target: what zmeshd reads from a node before it authorizes
 * anything. The first byte picks the input:
 *   0  the rest is a CSR body as sent (PEM) -> zm_ca_csr_identity();
 *   1  the rest is DER, wrapped into PEM here so the fuzzer reaches the
 *      ASN.1 of requests and extensions -> zm_ca_csr_identity();
 *   2  the rest is a URI SAN -> zm_node_id_parse() and zm_cp_id_parse() (node,
 *      waypoint and gateway IDs; trust domain cluster.local).
 * Beyond "no crash": an identity that parses formats and parses back to
 * the same one; a node name that parses is valid and formats back to the
 * input bytes.
 */
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "zmesh/ca.h"
#include "zmesh/nodeid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_csr(const char *pem, size_t len)
{
	struct zm_spiffe_id id, back;
	char why[256], uri[ZM_SPIFFE_MAX];

	if (zm_ca_csr_identity(pem, len, &id, why, sizeof(why)))
		return;
	if (zm_spiffe_format(&id, uri, sizeof(uri)) || zm_spiffe_parse(uri, strlen(uri), &back) ||
	    !zm_spiffe_eq(&id, &back))
		abort();
}

static void fuzz_der(const uint8_t *der, size_t len)
{
	static const char head[] = "-----BEGIN CERTIFICATE REQUEST-----\n";
	static const char tail[] = "\n-----END CERTIFICATE REQUEST-----\n";
	size_t cap = sizeof(head) + sizeof(tail) + 4 * (len / 3 + 1) + len / 48 + 8, n;
	char *pem = malloc(cap);

	if (!pem || len > 65536) {
		free(pem);
		return;
	}
	memcpy(pem, head, sizeof(head) - 1);
	n = sizeof(head) - 1;
	/* 48 bytes per line: PEM readers want lines of at most 64 characters. */
	for (size_t off = 0; off < len; off += 48) {
		size_t chunk = len - off < 48 ? len - off : 48;

		n += (size_t)EVP_EncodeBlock((unsigned char *)pem + n, der + off, (int)chunk);
		pem[n++] = '\n';
	}
	memcpy(pem + n, tail + 1, sizeof(tail) - 2);
	n += sizeof(tail) - 2;
	fuzz_csr(pem, n);
	free(pem);
}

static void fuzz_node(const char *s, size_t len)
{
	char node[ZM_NODE_NAME_MAX + 1], uri[ZM_NODE_NAME_MAX + 64], puri[ZM_SPIFFE_MAX + 1];
	struct zm_cp_peer p;

	/* Any control-plane ID that parses formats back to exactly the input. */
	if (!zm_cp_id_parse(s, len, "cluster.local", &p)) {
		int rc = p.role == ZM_CP_NODE ? zm_node_id_format("cluster.local", p.node, puri, sizeof(puri))
					      : zm_proxy_id_format("cluster.local", p.role, p.ns, p.sa, puri, sizeof(puri));

		if (rc || strlen(puri) != len || memcmp(puri, s, len))
			abort();
	}
	if (zm_node_id_parse(s, len, "cluster.local", node, sizeof(node)))
		return;
	if (!zm_node_name_valid(node, strlen(node)) ||
	    zm_node_id_format("cluster.local", node, uri, sizeof(uri)) || strlen(uri) != len ||
	    memcmp(uri, s, len))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		fuzz_csr((const char *)data + 1, size - 1);
		break;
	case 1:
		fuzz_der(data + 1, size - 1);
		break;
	default:
		fuzz_node((const char *)data + 1, size - 1);
		break;
	}
	return 0;
}
