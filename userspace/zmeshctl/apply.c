// SPDX-License-Identifier: Apache-2.0
/*
 * zmeshctl apply: put manifests into the config store, all or nothing.
 * Errors (reading or validation against what the store holds) are printed
 * as file:line:col: path: message lines and nothing is applied.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "store_cli.h"
#include "zmesh/store.h"

static const char usage_text[] =
	"usage: zmeshctl apply -f FILE|DIR [-f FILE|DIR]... [-n NS] [--store DIR | --name LAB]\n"
	"  -n NS: the namespace of documents that name none (those that do must agree)\n";

/* What apply will do to @o, judged against the store before the apply. */
static const char *verdict(const struct zm_cfg_set *before, const struct zm_cfg_obj *o)
{
	const struct zm_cfg_obj *old = zm_cfg_find(before, o->kind, o->meta.ns.v, o->meta.name.v);
	json_t *a, *b;
	bool same;

	if (!old)
		return "created";
	a = zm_cfg_obj_to_json(o);
	b = zm_cfg_obj_to_json(old);
	same = a && b && json_equal(a, b);
	json_decref(a);
	json_decref(b);
	return same ? "unchanged" : "configured";
}

static int cmd_apply(int argc, char **argv)
{
	struct zmctl_store_opts o = { 0 };
	struct zm_cfg_set in, before;
	struct zm_store *st = NULL;
	struct zm_error e = { 0 };
	char dir[PATH_MAX];
	uint64_t version = 0;
	int rc = 1, r;

	for (int i = 1; i < argc; i++) {
		r = zmctl_store_opt("apply", argc, argv, &i, &o);
		if (r < 0)
			return 2;
		if (r)
			continue;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(usage_text, stdout);
			return 0;
		}
		fprintf(stderr, "zmeshctl apply: unexpected argument '%s'\n%s", argv[i], usage_text);
		return 2;
	}
	if (!o.nfiles || o.all_ns || o.output) {
		fputs(usage_text, stderr);
		return 2;
	}
	if (zmctl_store_dir("apply", &o, dir, sizeof(dir)))
		return 1;

	zm_cfg_set_init(&in);
	zm_cfg_set_init(&before);
	for (size_t i = 0; i < o.nfiles; i++) {
		if (zm_cfg_load_path(&in, o.files[i]) == -ENOMEM) {
			fprintf(stderr, "zmeshctl apply: out of memory\n");
			goto out;
		}
	}
	if (o.ns && !in.nerrs && zmctl_set_namespace("apply", &in, o.ns))
		goto out;
	if (in.nerrs || in.errs_truncated) {
		/* Cross-document errors too, against the store when there is one. */
		if (zm_store_read(dir, &before, NULL, NULL) == 0)
			zm_cfg_validate(&in, &before);
		else
			zm_cfg_validate(&in, NULL);
		goto bad;
	}
	if (zm_store_open(dir, &st, &e)) {
		fprintf(stderr, "zmeshctl apply: %s\n", e.msg);
		goto out;
	}
	/* For the created/configured/unchanged lines only: the apply itself
	 * validates and compares under the store's lock. */
	zm_store_read(dir, &before, NULL, NULL);
	r = zm_store_apply(st, &in, &version, &e);
	if (r == -EINVAL)
		goto bad;
	if (r) {
		fprintf(stderr, "zmeshctl apply: %s\n", e.msg);
		goto out;
	}
	for (size_t i = 0; i < in.nobjs; i++)
		printf("%s/%s %s\n", zmctl_kind_resource(in.objs[i]->kind), in.objs[i]->meta.name.v,
		       verdict(&before, in.objs[i]));
	printf("store version %" PRIu64 "\n", version);
	rc = 0;
	goto out;
bad:
	zmctl_print_errors(stderr, &in);
	fprintf(stderr, "%zu error%s: nothing applied\n", in.nerrs, in.nerrs == 1 ? "" : "s");
out:
	zm_store_close(st);
	zm_cfg_set_free(&in);
	zm_cfg_set_free(&before);
	return rc;
}

ZM_CMD(apply, cmd_apply, "apply -f FILE|DIR          apply manifests to the config store (all or nothing)");
