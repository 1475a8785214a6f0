// SPDX-License-Identifier: Apache-2.0
/* zmeshctl bootstrap: mint a node's bootstrap credential for zmeshd (nodeid.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "zmesh/ca.h"
#include "zmesh/config.h"
#include "zmesh/nodeid.h"

static const char usage_text[] =
	"usage: zmeshctl bootstrap --ca-dir DIR --node NODE --out DIR [--trust-domain TD] [--ttl DUR]\n"
	"  writes DIR/" ZM_NODE_KEY_FILE ", DIR/" ZM_NODE_CERT_FILE " (spiffe://TD/zmesh/node/NODE) and DIR/"
	ZM_NODE_ROOT_FILE "\n";

static int cmd_bootstrap(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ca-dir", required_argument, NULL, 'c' },
		{ "node", required_argument, NULL, 'n' },
		{ "out", required_argument, NULL, 'o' },
		{ "trust-domain", required_argument, NULL, 'T' },
		{ "ttl", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *ca_dir = NULL, *node = NULL, *out = NULL, *td = "cluster.local";
	char *key = NULL, *chain = NULL, *bundle = NULL;
	struct zm_error e = { "" };
	struct zm_ca *ca = NULL;
	unsigned ttl = 0;
	int opt, rc = 1;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': ca_dir = optarg; break;
		case 'n': node = optarg; break;
		case 'o': out = optarg; break;
		case 'T': td = optarg; break;
		case 't': {
			int64_t ns;

			if (zm_duration_parse(optarg, &ns) || ns < 0) {
				fprintf(stderr, "zmeshctl bootstrap: --ttl %s: not a duration\n", optarg);
				return 2;
			}
			ttl = (unsigned)(ns / 1000000000);
			break;
		}
		case 'h': fputs(usage_text, stdout); return 0;
		default: fputs(usage_text, stderr); return 2;
		}
	}
	if (!ca_dir || !node || !out || optind != argc) {
		fputs(usage_text, stderr);
		return 2;
	}
	if (zm_ca_open(ca_dir, &ca, &e) || zm_ca_issue_node(ca, td, node, ttl, &key, &chain, &e) ||
	    !(bundle = zm_ca_bundle_dup(ca)) || zm_node_cred_write(out, key, chain, bundle, &e)) {
		fprintf(stderr, "zmeshctl bootstrap: %s\n", e.msg[0] ? e.msg : "out of memory");
		goto out;
	}
	printf("wrote %s/{%s,%s,%s} for node %s\n", out, ZM_NODE_KEY_FILE, ZM_NODE_CERT_FILE,
	       ZM_NODE_ROOT_FILE, node);
	rc = 0;
out:
	if (key)
		memset(key, 0, strlen(key));
	free(key);
	free(chain);
	free(bundle);
	zm_ca_free(ca);
	return rc;
}

ZM_CMD(bootstrap, cmd_bootstrap, "bootstrap --ca-dir DIR --node N --out DIR  mint a node's credential for zmeshd");
