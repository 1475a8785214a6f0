// SPDX-License-Identifier: Apache-2.0
/* zmeshctl ca: the mesh CA's root rotation steps (ca.h); a running zmeshd follows them. */
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "zmesh/ca.h"
#include "zmesh/lab.h"

static const char usage_text[] =
	"usage: zmeshctl ca status|prepare|activate|retire (--ca-dir DIR | --name LAB)\n"
	"  prepare   make a new root and trust it (it does not sign yet)\n"
	"  activate  the new root signs; the old one stays trusted\n"
	"  retire    drop the old roots from the bundle (renew every certificate first)\n";

static int count_roots(const char *pem)
{
	int n = 0;

	for (const char *p = pem; (p = strstr(p, "BEGIN CERTIFICATE")); p++)
		n++;
	return n;
}

static int cmd_ca(int argc, char **argv)
{
	const char *op = NULL, *dir = NULL;
	char labdir[PATH_MAX];
	struct zm_error e = { "" };
	struct zm_ca *ca = NULL;
	int rc = 1, r = 0;

	for (int a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "--ca-dir") && a + 1 < argc) {
			dir = argv[++a];
		} else if (!strcmp(argv[a], "--name") && a + 1 < argc) {
			if (zm_lab_name_check(argv[++a], &e)) {
				fprintf(stderr, "zmeshctl ca: %s\n", e.msg);
				return 2;
			}
			snprintf(labdir, sizeof(labdir), "%s/%s/ca", ZM_LAB_STATE_ROOT, argv[a]);
			dir = labdir;
		} else if (!strcmp(argv[a], "-h") || !strcmp(argv[a], "--help")) {
			fputs(usage_text, stdout);
			return 0;
		} else if (!op && argv[a][0] != '-') {
			op = argv[a];
		} else {
			fprintf(stderr, "zmeshctl ca: unexpected argument '%s'\n%s", argv[a], usage_text);
			return 2;
		}
	}
	if (!op || !dir || (strcmp(op, "status") && strcmp(op, "prepare") && strcmp(op, "activate") &&
			    strcmp(op, "retire"))) {
		fputs(usage_text, stderr);
		return 2;
	}
	if (zm_ca_open(dir, &ca, &e)) {
		fprintf(stderr, "zmeshctl ca: %s: %s\n", dir, e.msg);
		return 1;
	}
	if (!strcmp(op, "prepare"))
		r = zm_ca_root_prepare(ca, &e);
	else if (!strcmp(op, "activate"))
		r = zm_ca_root_activate(ca, &e);
	else if (!strcmp(op, "retire"))
		r = zm_ca_root_retire(ca, &e);
	if (r) {
		fprintf(stderr, "zmeshctl ca %s: %s\n", op, e.msg[0] ? e.msg : "failed");
		goto out;
	}
	printf("CA %s (%s): %d root%s trusted\n", dir, zm_ca_plugged_in(ca) ? "plug-in" : "self-signed",
	       count_roots(zm_ca_bundle(ca)), count_roots(zm_ca_bundle(ca)) == 1 ? "" : "s");
	rc = 0;
out:
	zm_ca_free(ca);
	return rc;
}

ZM_CMD(ca, cmd_ca, "ca status|prepare|activate|retire  root rotation of the mesh CA (zmeshd follows)");
