// SPDX-License-Identifier: Apache-2.0
/*
 * zmeshctl get: list or show objects of the config store, as kubectl does:
 * a table by default, -o yaml|json for the objects themselves (one object,
 * or a v1 List when no NAME is given).
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cmd.h"
#include "store_cli.h"
#include "zmesh/store.h"

static const char usage_text[] =
	"usage: zmeshctl get KIND[,KIND...] [NAME] [-n NS | -A] [-o yaml|json] [--store DIR | --name LAB]\n"
	"  KIND: virtualservices (vs), destinationrules (dr), gateways (gw), serviceentries (se),\n"
	"        peerauthentications (pa), authorizationpolicies (ap), requestauthentications (ra),\n"
	"        namespaces, pods, services, serviceaccounts, nodes, secrets\n";

/* The object file's age: files are never rewritten in place, so its mtime is
 * when this content was applied (kubectl shows the creation time; close). */
static void age(const struct zm_cfg_obj *o, char *out, size_t sz)
{
	struct stat st;
	long d;

	if (!o->file || stat(o->file, &st) < 0) {
		snprintf(out, sz, "<unknown>");
		return;
	}
	d = (long)(time(NULL) - st.st_mtime);
	if (d < 0)
		d = 0;
	if (d < 120)
		snprintf(out, sz, "%lds", d);
	else if (d < 3 * 3600)
		snprintf(out, sz, "%ldm", d / 60);
	else if (d < 2 * 86400)
		snprintf(out, sz, "%ldh", d / 3600);
	else
		snprintf(out, sz, "%ldd", d / 86400);
}

static void join(const zm_cstrs *l, char *out, size_t sz)
{
	size_t n = 0;

	out[0] = 0;
	for (size_t i = 0; i < l->n && n < sz; i++)
		n += (size_t)snprintf(out + n, sz - n, "%s\"%s\"", i ? "," : "[", l->v[i].v ? l->v[i].v : "");
	if (l->n && n + 1 < sz)
		strcat(out, "]");
}

static const char *const mtls_names[] = { "UNSET", "DISABLE", "PERMISSIVE", "STRICT" };
static const char *const action_names[] = { "ALLOW", "DENY", "AUDIT", "CUSTOM" };

#define MAXCOLS 7
#define CELL 512

struct trow {
	char c[MAXCOLS][CELL];
};

/* kubectl's columns for Istio's CRDs (their additionalPrinterColumns). */
static int header(enum zm_kind k, bool all_ns, struct trow *r)
{
	static const char *const vs[] = { "NAME", "GATEWAYS", "HOSTS", "AGE", NULL };
	static const char *const dr[] = { "NAME", "HOST", "AGE", NULL };
	static const char *const se[] = { "NAME", "HOSTS", "LOCATION", "RESOLUTION", "AGE", NULL };
	static const char *const pa[] = { "NAME", "MODE", "AGE", NULL };
	static const char *const ap[] = { "NAME", "ACTION", "AGE", NULL };
	static const char *const other[] = { "NAME", "AGE", NULL };
	const char *const *cols = k == ZM_K_VIRTUALSERVICE ? vs : k == ZM_K_DESTINATIONRULE ? dr :
				  k == ZM_K_SERVICEENTRY ? se : k == ZM_K_PEERAUTHENTICATION ? pa :
				  k == ZM_K_AUTHORIZATIONPOLICY ? ap : other;
	int n = 0;

	if (all_ns)
		snprintf(r->c[n++], CELL, "NAMESPACE");
	for (int i = 0; cols[i]; i++)
		snprintf(r->c[n++], CELL, "%s", cols[i]);
	return n;
}

static void row(const struct zm_cfg_obj *o, bool all_ns, bool with_kind, struct trow *r)
{
	int n = 0;

	if (all_ns)
		snprintf(r->c[n++], CELL, "%s", o->meta.ns.v ? o->meta.ns.v : "");
	snprintf(r->c[n++], CELL, "%s%s%s", with_kind ? zmctl_kind_resource(o->kind) : "",
		 with_kind ? "/" : "", o->meta.name.v);
	switch (o->kind) {
	case ZM_K_VIRTUALSERVICE:
		join(&o->vs->gateways, r->c[n++], CELL);
		join(&o->vs->hosts, r->c[n++], CELL);
		break;
	case ZM_K_DESTINATIONRULE:
		snprintf(r->c[n++], CELL, "%s", o->dr->host.v ? o->dr->host.v : "");
		break;
	case ZM_K_SERVICEENTRY: {
		static const char *const loc[] = { "MESH_EXTERNAL", "MESH_INTERNAL" };
		static const char *const res[] = { "NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN" };
		int l = o->se->location.v, rs = o->se->resolution.v;

		join(&o->se->hosts, r->c[n++], CELL);
		snprintf(r->c[n++], CELL, "%s", o->se->location.set && l >= 0 && l < 2 ? loc[l] : "");
		snprintf(r->c[n++], CELL, "%s", rs >= 0 && rs < 4 ? res[rs] : "");
		break;
	}
	case ZM_K_PEERAUTHENTICATION: {
		int m = o->pa->mtls.mode.v;

		snprintf(r->c[n++], CELL, "%s", o->pa->mtls.mode.set && m >= 0 && m < 4 ? mtls_names[m] : "");
		break;
	}
	case ZM_K_AUTHORIZATIONPOLICY: {
		int act = o->ap->action.v;

		snprintf(r->c[n++], CELL, "%s", act >= 0 && act < 4 ? action_names[act] : "");
		break;
	}
	default:
		break;
	}
	age(o, r->c[n++], CELL);
}

/* Columns as wide as their widest cell plus three, as kubectl prints. */
static void print_table(struct trow *rows, size_t nrows, int ncols)
{
	size_t w[MAXCOLS] = { 0 };

	for (size_t i = 0; i < nrows; i++)
		for (int c = 0; c < ncols; c++)
			if (strlen(rows[i].c[c]) > w[c])
				w[c] = strlen(rows[i].c[c]);
	for (size_t i = 0; i < nrows; i++) {
		for (int c = 0; c < ncols; c++) {
			if (c == ncols - 1)
				printf("%s\n", rows[i].c[c]);
			else
				printf("%-*s   ", (int)w[c], rows[i].c[c]);
		}
	}
}

static int print_objects(const char *fmt, struct zm_cfg_obj **v, size_t n, bool single)
{
	json_t *out = NULL, *items = NULL;
	int rc = 0;

	if (single) {
		out = zm_cfg_obj_to_json(v[0]);
	} else {
		out = json_object();
		items = json_array();
		for (size_t i = 0; out && items && i < n; i++)
			if (json_array_append_new(items, zm_cfg_obj_to_json(v[i])))
				rc = -1;
		if (out && items) {
			json_object_set_new(out, "apiVersion", json_string("v1"));
			json_object_set_new(out, "items", items);
			json_object_set_new(out, "kind", json_string("List"));
			json_object_set_new(out, "metadata", json_pack("{s:s}", "resourceVersion", ""));
			items = NULL;
		}
	}
	json_decref(items);
	if (!out || rc) {
		json_decref(out);
		return -1;
	}
	if (!strcmp(fmt, "json")) {
		rc = json_dumpf(out, stdout, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
		putchar('\n');
	} else {
		rc = zmctl_yaml_print(stdout, out);
	}
	json_decref(out);
	return rc;
}

static int cmp_obj(const void *a, const void *b)
{
	const struct zm_cfg_obj *x = *(struct zm_cfg_obj *const *)a, *y = *(struct zm_cfg_obj *const *)b;
	int c;

	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	c = strcmp(x->meta.ns.v ? x->meta.ns.v : "", y->meta.ns.v ? y->meta.ns.v : "");

	return c ? c : strcmp(x->meta.name.v, y->meta.name.v);
}

static int cmd_get(int argc, char **argv)
{
	struct zmctl_store_opts o = { 0 };
	struct zm_cfg_set s;
	struct zm_error e = { 0 };
	struct zm_cfg_obj **v = NULL;
	struct trow *rows = NULL;
	char dir[PATH_MAX], *pos[3];
	const char *ns;
	size_t n = 0, nkinds = 0;
	int npos = 0, kind = -1, rc = 1, r;
	bool want[ZM_K__COUNT] = { false };
	char kinds_arg[256], *save = NULL;

	for (int i = 1; i < argc; i++) {
		r = zmctl_store_opt("get", argc, argv, &i, &o);
		if (r < 0)
			return 2;
		if (r)
			continue;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(usage_text, stdout);
			return 0;
		}
		if (argv[i][0] == '-' || npos == 2) {
			fprintf(stderr, "zmeshctl get: unexpected argument '%s'\n%s", argv[i], usage_text);
			return 2;
		}
		pos[npos++] = argv[i];
	}
	if (!npos || o.nfiles || (o.all_ns && o.ns) || (o.all_ns && npos == 2)) {
		fputs(usage_text, stderr);
		return 2;
	}
	if (o.output && strcmp(o.output, "yaml") && strcmp(o.output, "json")) {
		fprintf(stderr, "zmeshctl get: -o %s: want yaml or json\n", o.output);
		return 2;
	}
	/* "vs,dr": several kinds at once, as kubectl takes them. */
	snprintf(kinds_arg, sizeof(kinds_arg), "%s", pos[0]);
	for (char *k = strtok_r(kinds_arg, ",", &save); k; k = strtok_r(NULL, ",", &save)) {
		kind = zmctl_kind_parse(k);
		if (kind < 0) {
			fprintf(stderr, "zmeshctl get: unknown kind \"%s\"\n%s", k, usage_text);
			return 2;
		}
		if (!want[kind])
			nkinds++;
		want[kind] = true;
	}
	if (!nkinds || (nkinds > 1 && npos == 2)) {
		fputs(usage_text, stderr);
		return 2;
	}
	if (zmctl_store_dir("get", &o, dir, sizeof(dir)))
		return 1;
	ns = o.ns ? o.ns : "default";

	zm_cfg_set_init(&s);
	if (zm_store_read(dir, &s, NULL, &e)) {
		fprintf(stderr, "zmeshctl get: %s\n", e.msg);
		goto out;
	}
	v = calloc(s.nobjs + 1, sizeof(*v));
	if (!v)
		goto out;
	for (size_t i = 0; i < s.nobjs; i++) {
		struct zm_cfg_obj *ob = s.objs[i];

		if (!want[ob->kind])
			continue;
		if (!o.all_ns && !zm_kind_cluster_scoped(ob->kind) && strcmp(ob->meta.ns.v, ns))
			continue;
		if (npos == 2 && strcmp(ob->meta.name.v, pos[1]))
			continue;
		v[n++] = ob;
	}
	qsort(v, n, sizeof(*v), cmp_obj);
	if (npos == 2 && !n) {
		fprintf(stderr, "Error from server (NotFound): %s \"%s\" not found\n",
			zmctl_kind_plural((enum zm_kind)kind), pos[1]);
		goto out;
	}
	if (o.output) {
		if (print_objects(o.output, v, n, npos == 2)) {
			fprintf(stderr, "zmeshctl get: out of memory\n");
			goto out;
		}
	} else if (!n) {
		if (o.all_ns || (nkinds == 1 && zm_kind_cluster_scoped((enum zm_kind)kind)))
			fprintf(stderr, "No resources found\n");
		else
			fprintf(stderr, "No resources found in %s namespace.\n", ns);
	} else {
		/* One table per kind; with several kinds, names carry their kind. */
		rows = calloc(n + 1, sizeof(*rows));
		if (!rows) {
			fprintf(stderr, "zmeshctl get: out of memory\n");
			goto out;
		}
		for (size_t i = 0, first = 0; i < n; i++) {
			bool all = o.all_ns && !zm_kind_cluster_scoped(v[i]->kind);
			int ncols = header(v[i]->kind, all, &rows[0]);

			row(v[i], all, nkinds > 1, &rows[i - first + 1]);
			if (i + 1 < n && v[i + 1]->kind == v[i]->kind)
				continue;
			if (first)
				putchar('\n');
			print_table(rows, i - first + 2, ncols);
			first = i + 1;
		}
	}
	rc = 0;
out:
	free(rows);
	free(v);
	zm_cfg_set_free(&s);
	return rc;
}

ZM_CMD(get, cmd_get, "get KIND [NAME] [-n NS|-A]  list or show config store objects (-o yaml|json)");
