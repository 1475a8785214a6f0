// SPDX-License-Identifier: Apache-2.0
/*
 * zmeshctl delete: remove objects from the config store, named by manifests
 * (-f, only kind/namespace/name count) or on the command line
 * (KIND NAME... -n NS). All or nothing: one unknown object and nothing goes.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "store_cli.h"
#include "zmesh/store.h"

static const char usage_text[] =
	"usage: zmeshctl delete -f FILE|DIR [-f FILE|DIR]... [-n NS] [--store DIR | --name LAB]\n"
	"       zmeshctl delete KIND NAME [NAME]... [-n NS] [--store DIR | --name LAB]\n";

static bool wanted(const struct zm_cfg_obj *o, enum zm_kind kind, const char *ns, char **names, int n)
{
	if (o->kind != kind || (!zm_kind_cluster_scoped(kind) && strcmp(o->meta.ns.v, ns)))
		return false;
	for (int i = 0; i < n; i++)
		if (!strcmp(o->meta.name.v, names[i]))
			return true;
	return false;
}

/* KIND NAME...: the objects themselves, from the store, become the set to delete. */
static int by_name(const char *dir, const char *kindarg, char **names, int n, const char *ns,
		   struct zm_cfg_set *del)
{
	struct zm_error e = { 0 };
	int kind = zmctl_kind_parse(kindarg), missing = 0;

	if (kind < 0) {
		fprintf(stderr, "zmeshctl delete: unknown kind \"%s\"\n", kindarg);
		return 2;
	}
	if (zm_store_read(dir, del, NULL, &e)) {
		fprintf(stderr, "zmeshctl delete: %s\n", e.msg);
		return 1;
	}
	for (size_t i = del->nobjs; i > 0; i--)
		if (!wanted(del->objs[i - 1], (enum zm_kind)kind, ns, names, n))
			zm_cfg_obj_free(zm_cfg_set_remove(del, i - 1));
	for (int i = 0; i < n; i++) {
		if (zm_cfg_find(del, (enum zm_kind)kind, ns, names[i]))
			continue;
		fprintf(stderr, "Error from server (NotFound): %s \"%s\" not found%s%s\n",
			zmctl_kind_plural((enum zm_kind)kind), names[i],
			zm_kind_cluster_scoped((enum zm_kind)kind) ? "" : " in namespace ",
			zm_kind_cluster_scoped((enum zm_kind)kind) ? "" : ns);
		missing++;
	}
	return missing ? 1 : 0;
}

static int cmd_delete(int argc, char **argv)
{
	struct zmctl_store_opts o = { 0 };
	struct zm_cfg_set del;
	struct zm_store *st = NULL;
	struct zm_error e = { 0 };
	char dir[PATH_MAX], *pos[64];
	uint64_t version = 0;
	int npos = 0, rc = 1, r;

	for (int i = 1; i < argc; i++) {
		r = zmctl_store_opt("delete", argc, argv, &i, &o);
		if (r < 0)
			return 2;
		if (r)
			continue;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(usage_text, stdout);
			return 0;
		}
		if (argv[i][0] == '-' || npos == 64) {
			fprintf(stderr, "zmeshctl delete: unexpected argument '%s'\n%s", argv[i], usage_text);
			return 2;
		}
		pos[npos++] = argv[i];
	}
	if ((o.nfiles && npos) || (!o.nfiles && npos < 2) || o.all_ns || o.output) {
		fputs(usage_text, stderr);
		return 2;
	}
	if (zmctl_store_dir("delete", &o, dir, sizeof(dir)))
		return 1;

	zm_cfg_set_init(&del);
	if (npos) {
		r = by_name(dir, pos[0], pos + 1, npos - 1, o.ns ? o.ns : "default", &del);
		if (r) {
			rc = r;
			goto out;
		}
	} else {
		for (size_t i = 0; i < o.nfiles; i++) {
			if (zm_cfg_load_path(&del, o.files[i]) == -ENOMEM) {
				fprintf(stderr, "zmeshctl delete: out of memory\n");
				goto out;
			}
		}
		if (del.nerrs || del.errs_truncated)
			goto bad;
		if (o.ns && zmctl_set_namespace("delete", &del, o.ns))
			goto out;
	}
	if (zm_store_open(dir, &st, &e)) {
		fprintf(stderr, "zmeshctl delete: %s\n", e.msg);
		goto out;
	}
	r = zm_store_delete(st, &del, &version, &e);
	if (r == -ENOENT || r == -EINVAL)
		goto bad;
	if (r) {
		fprintf(stderr, "zmeshctl delete: %s\n", e.msg);
		goto out;
	}
	for (size_t i = 0; i < del.nobjs; i++)
		printf("%s \"%s\" deleted\n", zmctl_kind_resource(del.objs[i]->kind), del.objs[i]->meta.name.v);
	printf("store version %" PRIu64 "\n", version);
	rc = 0;
	goto out;
bad:
	zmctl_print_errors(stderr, &del);
	fprintf(stderr, "%zu error%s: nothing deleted\n", del.nerrs, del.nerrs == 1 ? "" : "s");
out:
	zm_store_close(st);
	zm_cfg_set_free(&del);
	return rc;
}

ZM_CMD(delete, cmd_delete, "delete -f FILE|DIR         delete objects from the config store (also: delete KIND NAME -n NS)");
