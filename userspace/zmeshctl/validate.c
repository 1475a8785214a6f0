// SPDX-License-Identifier: Apache-2.0
/* zmeshctl validate: check manifests the way an apply would, apply nothing. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "zmesh/config.h"

static const char usage_text[] = "usage: zmeshctl validate -f FILE|DIR [-f FILE|DIR]...\n";

static int cmd_validate(int argc, char **argv)
{
	struct zm_cfg_set s;
	int nfiles = 0, rc = 0;

	zm_cfg_set_init(&s);
	for (int i = 1; i < argc; i++) {
		if ((!strcmp(argv[i], "-f") || !strcmp(argv[i], "--filename")) && i + 1 < argc) {
			int r = zm_cfg_load_path(&s, argv[++i]);

			if (r == -ENOMEM) {
				fprintf(stderr, "zmeshctl validate: out of memory\n");
				zm_cfg_set_free(&s);
				return 1;
			}
			nfiles++;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(usage_text, stdout);
			zm_cfg_set_free(&s);
			return 0;
		} else {
			fprintf(stderr, "zmeshctl validate: unexpected argument '%s'\n%s", argv[i], usage_text);
			zm_cfg_set_free(&s);
			return 2;
		}
	}
	if (!nfiles) {
		fputs(usage_text, stderr);
		zm_cfg_set_free(&s);
		return 2;
	}
	zm_cfg_validate(&s, NULL);
	zm_cfg_sort_errors(&s);
	for (size_t i = 0; i < s.nerrs; i++)
		printf("%s\n", s.errs[i].text);
	if (s.errs_truncated)
		printf("too many errors (only the first %d shown)\n", ZM_CFG_MAX_ERRORS);
	if (s.nerrs || s.errs_truncated) {
		fprintf(stderr, "%zu error%s in %zu document%s\n", s.nerrs, s.nerrs == 1 ? "" : "s",
			s.ndocs, s.ndocs == 1 ? "" : "s");
		rc = 1;
	} else {
		printf("%zu document%s valid\n", s.ndocs, s.ndocs == 1 ? "" : "s");
	}
	zm_cfg_set_free(&s);
	return rc;
}

ZM_CMD(validate, cmd_validate, "validate -f FILE|DIR       check manifests (Istio and core kinds), apply nothing");
