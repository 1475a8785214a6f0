// SPDX-License-Identifier: Apache-2.0
/*
 * Config sets: reading documents into typed objects (through the schema
 * reader) and the checks that need more than one document.
 */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config_int.h"

#define NET_VERSIONS "networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3"
#define SEC_VERSIONS "security.istio.io/v1", "security.istio.io/v1beta1"

static const struct kind_info {
	const char *name;
	const char *versions[4];
	bool cluster;
	bool spec_required;
	const struct zm_cschema *spec;		/* NULL: a core kind, kept raw */
} kinds[ZM_K__COUNT] = {
	[ZM_K_NAMESPACE] = { "Namespace", { "v1" }, true, false, NULL },
	[ZM_K_POD] = { "Pod", { "v1" }, false, false, NULL },
	[ZM_K_SERVICE] = { "Service", { "v1" }, false, false, NULL },
	[ZM_K_SERVICEACCOUNT] = { "ServiceAccount", { "v1" }, false, false, NULL },
	[ZM_K_NODE] = { "Node", { "v1" }, true, false, NULL },
	[ZM_K_SECRET] = { "Secret", { "v1" }, false, false, NULL },
	[ZM_K_VIRTUALSERVICE] = { "VirtualService", { NET_VERSIONS }, false, true, &zm_cs_virtual_service },
	[ZM_K_DESTINATIONRULE] = { "DestinationRule", { NET_VERSIONS }, false, true, &zm_cs_destination_rule },
	[ZM_K_GATEWAY] = { "Gateway", { NET_VERSIONS }, false, true, &zm_cs_gateway },
	[ZM_K_SERVICEENTRY] = { "ServiceEntry", { NET_VERSIONS }, false, true, &zm_cs_service_entry },
	[ZM_K_PEERAUTHENTICATION] = { "PeerAuthentication", { SEC_VERSIONS }, false, false, &zm_cs_peer_authentication },
	[ZM_K_AUTHORIZATIONPOLICY] = { "AuthorizationPolicy", { SEC_VERSIONS }, false, false, &zm_cs_authorization_policy },
	[ZM_K_REQUESTAUTHENTICATION] = { "RequestAuthentication", { SEC_VERSIONS }, false, false, &zm_cs_request_authentication },
};

const char *zm_kind_name(enum zm_kind k)
{
	return (unsigned)k < ZM_K__COUNT ? kinds[k].name : NULL;
}

int zm_kind_parse(const char *name)
{
	for (int k = 0; k < ZM_K__COUNT; k++)
		if (!strcmp(kinds[k].name, name))
			return k;
	return -ENOENT;
}

bool zm_kind_cluster_scoped(enum zm_kind k)
{
	return (unsigned)k < ZM_K__COUNT && kinds[k].cluster;
}

bool zm_kind_is_istio(enum zm_kind k)
{
	return (unsigned)k < ZM_K__COUNT && kinds[k].spec;
}

const char *zm_cmap_get(const zm_cmap *m, const char *key)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].key.v && !strcmp(m->v[i].key.v, key))
			return m->v[i].val.v ? m->v[i].val.v : "";
	return NULL;
}

/* ---- sets and objects ---------------------------------------------------------------- */

void zm_cfg_set_init(struct zm_cfg_set *s)
{
	memset(s, 0, sizeof(*s));
}

void zm_cfg_obj_free(struct zm_cfg_obj *o)
{
	if (!o)
		return;
	zm_cfree_obj(&zm_cs_meta, &o->meta);
	if ((unsigned)o->kind < ZM_K__COUNT && kinds[o->kind].spec && o->spec)
		zm_cfree_obj(kinds[o->kind].spec, o->spec);
	free(o->spec);
	json_decref(o->raw);
	free(o->api_version);
	free(o->file);
	free(o);
}

void zm_cfg_set_free(struct zm_cfg_set *s)
{
	for (size_t i = 0; i < s->nobjs; i++)
		zm_cfg_obj_free(s->objs[i]);
	free(s->objs);
	for (size_t i = 0; i < s->nerrs; i++) {
		free(s->errs[i].file);
		free(s->errs[i].path);
		free(s->errs[i].msg);
		free(s->errs[i].text);
	}
	free(s->errs);
	memset(s, 0, sizeof(*s));
}

static int add_obj(struct zm_cfg_set *s, struct zm_cfg_obj *o)
{
	if (s->nobjs == s->capobjs) {
		size_t cap = s->capobjs ? s->capobjs * 2 : 16;
		struct zm_cfg_obj **v = realloc(s->objs, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		s->objs = v;
		s->capobjs = cap;
	}
	s->objs[s->nobjs++] = o;
	return 0;
}

int zm_cfg_set_take(struct zm_cfg_set *to, struct zm_cfg_set *from)
{
	while (from->nobjs) {
		if (add_obj(to, from->objs[0]))
			return -ENOMEM;
		zm_cfg_set_remove(from, 0);
	}
	return 0;
}

struct zm_cfg_obj *zm_cfg_set_remove(struct zm_cfg_set *s, size_t i)
{
	struct zm_cfg_obj *o;

	if (i >= s->nobjs)
		return NULL;
	o = s->objs[i];
	memmove(&s->objs[i], &s->objs[i + 1], (s->nobjs - i - 1) * sizeof(*s->objs));
	s->nobjs--;
	return o;
}

static const char *obj_ns(const struct zm_cfg_obj *o)
{
	return o->meta.ns.v ? o->meta.ns.v : "";
}

struct zm_cfg_obj *zm_cfg_find(const struct zm_cfg_set *s, enum zm_kind kind,
			       const char *ns, const char *name)
{
	bool cluster = zm_kind_cluster_scoped(kind);

	for (size_t i = 0; i < s->nobjs; i++) {
		struct zm_cfg_obj *o = s->objs[i];

		if (o->kind == kind && o->meta.name.v && !strcmp(o->meta.name.v, name) &&
		    (cluster || !strcmp(obj_ns(o), ns ? ns : "")))
			return o;
	}
	return NULL;
}

json_t *zm_cfg_obj_to_json(const struct zm_cfg_obj *o)
{
	json_t *j, *md, *spec;

	if (!kinds[o->kind].spec)
		return json_deep_copy(o->raw);
	j = json_object();
	md = zm_cobj_json(&zm_cs_meta, &o->meta);
	spec = zm_cobj_json(kinds[o->kind].spec, o->spec);
	if (!j || !md || !spec ||
	    json_object_set_new(j, "apiVersion", json_string(o->api_version)) ||
	    json_object_set_new(j, "kind", json_string(kinds[o->kind].name)))
		goto fail;
	/* The namespace is always written out, defaulted or not. */
	if (o->meta.ns.v && json_object_set_new(md, "namespace", json_string(o->meta.ns.v)))
		goto fail;
	if (json_object_set_new(j, "metadata", md)) {
		md = NULL;
		goto fail;
	}
	md = NULL;
	if (json_object_set_new(j, "spec", spec)) {
		spec = NULL;
		goto fail;
	}
	return j;
fail:
	json_decref(md);
	json_decref(spec);
	json_decref(j);
	return NULL;
}

/* ---- documents --------------------------------------------------------------------- */

static bool version_ok(const struct kind_info *ki, const char *v)
{
	for (int i = 0; i < 4 && ki->versions[i]; i++)
		if (!strcmp(ki->versions[i], v))
			return true;
	return false;
}

static void read_doc(struct zm_cfg_set *s, const char *file, const struct zm_ynode *root)
{
	struct zm_crd r = { .set = s, .file = file };
	const struct zm_ynode *kn, *vn, *md, *spec;
	const struct kind_info *ki;
	struct zm_cfg_obj *o;
	char esc[96];
	int k;

	if (!root)
		return;		/* an empty document */
	s->ndocs++;
	if (root->kind != ZM_Y_MAP) {
		zm_cfg_add_err(s, file, zm_ypos(root), "", "a document must be a mapping");
		return;
	}
	kn = zm_ymap_get(root, "kind");
	vn = zm_ymap_get(root, "apiVersion");
	if (!kn || !zm_ynode_is_str(kn)) {
		zm_cfg_add_err(s, file, zm_ypos(kn ? kn : root), "kind",
			       kn ? "must be a string" : "required field is missing");
		return;
	}
	k = zm_kind_parse(kn->str);
	if (k < 0 || strlen(kn->str) != kn->len) {
		zm_cfg_add_err(s, file, zm_ypos(kn), "kind",
			       "unknown kind \"%s\" (supported: Namespace, Pod, Service, ServiceAccount, "
			       "Node, Secret, VirtualService, DestinationRule, Gateway, ServiceEntry, "
			       "PeerAuthentication, AuthorizationPolicy, RequestAuthentication)",
			       zm_log_escape(esc, sizeof(esc), kn->str, kn->len));
		return;
	}
	ki = &kinds[k];
	if (!vn || !zm_ynode_is_str(vn)) {
		zm_cfg_add_err(s, file, zm_ypos(vn ? vn : root), "apiVersion",
			       vn ? "must be a string" : "required field is missing");
		return;
	}
	if (strlen(vn->str) != vn->len || !version_ok(ki, vn->str)) {
		char want[200];

		snprintf(want, sizeof(want), "%s%s%s%s%s", ki->versions[0],
			 ki->versions[1] ? ", " : "", ki->versions[1] ? ki->versions[1] : "",
			 ki->versions[2] ? ", " : "", ki->versions[2] ? ki->versions[2] : "");
		zm_cfg_add_err(s, file, zm_ypos(vn), "apiVersion",
			       "apiVersion \"%s\" does not serve kind %s (want %s)",
			       zm_log_escape(esc, sizeof(esc), vn->str, vn->len), ki->name, want);
		return;
	}

	o = calloc(1, sizeof(*o));
	if (!o || !(o->file = strdup(file)) || !(o->api_version = strdup(vn->str))) {
		zm_cfg_add_err(s, file, zm_ypos(root), "", "out of memory");
		zm_cfg_obj_free(o);
		return;
	}
	o->kind = (enum zm_kind)k;
	o->pos = zm_ypos(root);
	r.obj = o;

	md = zm_ymap_get(root, "metadata");
	if (!md || zm_ynode_is_null(md)) {
		zm_crd_err(&r, zm_ypos(root), "metadata", "required field is missing");
	} else {
		size_t old = zm_crd_push(&r, "metadata");

		zm_cread_obj(&r, &zm_cs_meta, md, &o->meta);
		zm_crd_pop(&r, old);
	}
	if (ki->cluster && o->meta.ns.v) {
		zm_crd_err(&r, o->meta.ns.pos, "metadata.namespace",
			   "%s is cluster-scoped: it takes no namespace", ki->name);
	} else if (!ki->cluster && !o->meta.ns.v && !r.nerr) {
		o->meta.ns.v = strdup("default");
		if (!o->meta.ns.v)
			zm_crd_err(&r, zm_ypos(root), "", "out of memory");
	}
	if (k == ZM_K_NAMESPACE && o->meta.name.v && zm_dns_label_check(o->meta.name.v))
		zm_crd_err(&r, o->meta.name.pos, "metadata.name", "\"%s\": %s", o->meta.name.v,
			   zm_dns_label_check(o->meta.name.v));

	if (ki->spec) {
		for (size_t i = 0; i < root->n; i++) {
			const struct zm_ynode *key = root->keys[i];

			if (!zm_ynode_eq(key, "apiVersion") && !zm_ynode_eq(key, "kind") &&
			    !zm_ynode_eq(key, "metadata") && !zm_ynode_eq(key, "spec") &&
			    !zm_ynode_eq(key, "status"))
				zm_crd_err(&r, zm_ypos(key), "",
					   "unknown field \"%s\" in %s",
					   zm_log_escape(esc, sizeof(esc), key->str, key->len), ki->name);
		}
		o->spec = calloc(1, ki->spec->size);
		if (!o->spec) {
			zm_crd_err(&r, zm_ypos(root), "", "out of memory");
			goto done;
		}
		zm_cinit_obj(ki->spec, o->spec);
		spec = zm_ymap_get(root, "spec");
		if ((!spec || zm_ynode_is_null(spec)) && ki->spec_required) {
			zm_crd_err(&r, zm_ypos(root), "spec", "required field is missing");
		} else if (spec && !zm_ynode_is_null(spec)) {
			size_t old = zm_crd_push(&r, "spec");

			zm_cread_obj(&r, ki->spec, spec, o->spec);
			zm_crd_pop(&r, old);
		}
	} else {
		o->raw = zm_ynode_json(root);
		if (!o->raw)
			zm_crd_err(&r, zm_ypos(root), "", "out of memory");
	}
done:
	if (r.nerr || add_obj(s, o)) {
		if (!r.nerr)
			zm_cfg_add_err(s, file, zm_ypos(root), "", "out of memory");
		zm_cfg_obj_free(o);
	}
}

/* The YAML layer formats "file:line:col: why" (or "file: why") itself: take
 * it apart so the error carries its position like every other. */
static void yaml_err(struct zm_cfg_set *s, const char *file, const char *msg)
{
	size_t fl = strlen(file);
	struct zm_cpos pos = { 0, 0 };
	unsigned line, col;
	int off = 0;

	if (!strncmp(msg, file, fl) && msg[fl] == ':') {
		msg += fl + 1;
		if (sscanf(msg, "%u:%u: %n", &line, &col, &off) == 2 && off > 0) {
			pos.line = line;
			pos.col = col;
			msg += off;
		} else if (*msg == ' ') {
			msg++;
		}
		zm_cfg_add_err(s, file, pos, NULL, "%s", msg);
		return;
	}
	zm_cfg_add_err(s, NULL, pos, NULL, "%s", msg);
}

int zm_cfg_load_buf(struct zm_cfg_set *s, const char *name, const char *buf, size_t len)
{
	struct zm_error e = { 0 };
	struct zm_yfile f;
	size_t before = s->nerrs;
	int rc;

	rc = zm_yaml_load_buf(name, buf, len, &f, &e);
	if (rc) {
		yaml_err(s, name, e.msg);
		return rc == -ENOMEM ? rc : -EINVAL;
	}
	for (size_t i = 0; i < f.ndocs; i++)
		read_doc(s, name, f.docs[i].root);
	zm_yaml_free(&f);
	return s->nerrs > before || s->errs_truncated ? -EINVAL : 0;
}

int zm_cfg_load_file(struct zm_cfg_set *s, const char *path)
{
	struct zm_error e = { 0 };
	struct zm_yfile f;
	size_t before = s->nerrs;
	int rc;

	rc = zm_yaml_load_file(path, &f, &e);
	if (rc) {
		yaml_err(s, path, e.msg);
		return rc == -ENOMEM ? rc : -EINVAL;
	}
	for (size_t i = 0; i < f.ndocs; i++)
		read_doc(s, path, f.docs[i].root);
	zm_yaml_free(&f);
	return s->nerrs > before || s->errs_truncated ? -EINVAL : 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool yaml_name(const char *n)
{
	size_t l = strlen(n);

	return n[0] != '.' && ((l > 5 && !strcmp(n + l - 5, ".yaml")) ||
			       (l > 4 && !strcmp(n + l - 4, ".yml")));
}

int zm_cfg_load_path(struct zm_cfg_set *s, const char *path)
{
	struct stat st;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	DIR *d;

	if (stat(path, &st) < 0) {
		zm_cfg_add_err(s, path, (struct zm_cpos){ 0, 0 }, NULL, "%s", strerror(errno));
		return -EINVAL;
	}
	if (!S_ISDIR(st.st_mode))
		return zm_cfg_load_file(s, path);
	d = opendir(path);
	if (!d) {
		zm_cfg_add_err(s, path, (struct zm_cpos){ 0, 0 }, NULL, "%s", strerror(errno));
		return -EINVAL;
	}
	while ((de = readdir(d))) {
		char *full;

		if (!yaml_name(de->d_name))
			continue;
		if (n == ZM_CFG_MAX_FILES) {
			zm_cfg_add_err(s, path, (struct zm_cpos){ 0, 0 }, NULL,
				       "more than %d YAML files", ZM_CFG_MAX_FILES);
			rc = -EINVAL;
			break;
		}
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			char **v = realloc(names, nc * sizeof(*v));

			if (!v) {
				rc = -ENOMEM;
				break;
			}
			names = v;
			cap = nc;
		}
		if (asprintf(&full, "%s%s%s", path, path[strlen(path) - 1] == '/' ? "" : "/",
			     de->d_name) < 0) {
			rc = -ENOMEM;
			break;
		}
		names[n++] = full;
	}
	closedir(d);
	if (names)
		qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n; i++) {
		int r = rc == -ENOMEM ? 0 : zm_cfg_load_file(s, names[i]);

		if (r == -ENOMEM || (r && !rc))
			rc = r;
		free(names[i]);
	}
	free(names);
	return rc;
}

/* ---- cross-document checks ------------------------------------------------------------ */

static void obj_err(struct zm_cfg_set *s, const struct zm_cfg_obj *o, struct zm_cpos pos,
		    const char *path, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void obj_err(struct zm_cfg_set *s, const struct zm_cfg_obj *o, struct zm_cpos pos,
		    const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	zm_cfg_add_verr(s, o->file, pos, path, fmt, ap);
	va_end(ap);
}

struct ordered {
	const struct zm_cfg_obj *o;
	size_t idx;		/* document order */
};

static int cmp_obj(const void *a, const void *b)
{
	const struct ordered *p = a, *q = b;
	const struct zm_cfg_obj *x = p->o, *y = q->o;
	int c;

	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	c = strcmp(obj_ns(x), obj_ns(y));
	if (c)
		return c;
	c = strcmp(x->meta.name.v ? x->meta.name.v : "", y->meta.name.v ? y->meta.name.v : "");
	if (c)
		return c;
	return p->idx < q->idx ? -1 : p->idx > q->idx;
}

/* Sorted, so a large apply stays O(n log n); each later copy is reported
 * against the first one. */
static void check_duplicates(struct zm_cfg_set *s)
{
	struct ordered *v;
	size_t n = s->nobjs, first = 0;

	if (n < 2)
		return;
	v = malloc(n * sizeof(*v));
	if (!v)
		return;
	for (size_t i = 0; i < n; i++) {
		v[i].o = s->objs[i];
		v[i].idx = i;
	}
	qsort(v, n, sizeof(*v), cmp_obj);
	for (size_t i = 1; i < n; i++) {
		const struct zm_cfg_obj *a = v[first].o, *b = v[i].o;

		if (a->kind == b->kind && !strcmp(obj_ns(a), obj_ns(b)) && a->meta.name.v &&
		    b->meta.name.v && !strcmp(a->meta.name.v, b->meta.name.v))
			obj_err(s, b, b->meta.name.pos, "metadata.name",
				"duplicate %s %s%s%s (first defined at %s:%u)", zm_kind_name(b->kind),
				obj_ns(b), *obj_ns(b) ? "/" : "", b->meta.name.v, a->file,
				a->meta.name.pos.line);
		else
			first = i;
	}
	free(v);
}

/* Objects of @kind visible to a check: those of @s, plus those of @base
 * that @s does not replace. */
struct view {
	const struct zm_cfg_set *s, *base;
};

static const struct zm_cfg_obj *view_next(const struct view *w, enum zm_kind kind, size_t *it)
{
	size_t ns = w->s->nobjs, nb = w->base ? w->base->nobjs : 0;

	while (*it < ns + nb) {
		size_t i = (*it)++;
		const struct zm_cfg_obj *o = i < ns ? w->s->objs[i] : w->base->objs[i - ns];

		if (o->kind != kind)
			continue;
		if (i >= ns && zm_cfg_find(w->s, kind, obj_ns(o), o->meta.name.v ? o->meta.name.v : ""))
			continue;
		return o;
	}
	return NULL;
}

static void check_subset(struct zm_cfg_set *s, const struct view *w, const struct zm_cfg_obj *vs,
			 const struct zm_destination *d, const char *path)
{
	char fqdn[512], drh[512], full[600];
	const struct zm_cfg_obj *dr, *seen = NULL;
	size_t it = 0;

	if (!d->host.v || !d->subset.v)
		return;
	zm_host_fqdn(d->host.v, obj_ns(vs), fqdn, sizeof(fqdn));
	while ((dr = view_next(w, ZM_K_DESTINATIONRULE, &it))) {
		if (!dr->dr->host.v)
			continue;
		zm_host_fqdn(dr->dr->host.v, obj_ns(dr), drh, sizeof(drh));
		if (!zm_host_match(drh, fqdn))
			continue;
		for (size_t i = 0; i < dr->dr->subsets.n; i++)
			if (dr->dr->subsets.v[i].name.v && !strcmp(dr->dr->subsets.v[i].name.v, d->subset.v))
				return;
		if (!seen)
			seen = dr;
	}
	if (!seen)
		return;		/* no rule for this host here: nothing to check against */
	snprintf(full, sizeof(full), "%s.subset", path);
	obj_err(s, vs, d->subset.pos, full,
		"subset \"%s\" is not defined by DestinationRule %s/%s for host %s", d->subset.v,
		obj_ns(seen), seen->meta.name.v, fqdn);
}

static void check_gateway_ref(struct zm_cfg_set *s, const struct view *w,
			      const struct zm_cfg_obj *vs, const struct zm_cstr *ref, const char *path)
{
	char ns[64];
	const char *name, *slash;
	size_t it = 0;
	const struct zm_cfg_obj *g;

	if (!ref->v || !strcmp(ref->v, "mesh"))
		return;
	slash = strchr(ref->v, '/');
	if (slash) {
		snprintf(ns, sizeof(ns), "%.*s", (int)(slash - ref->v), ref->v);
		name = slash + 1;
	} else {
		snprintf(ns, sizeof(ns), "%s", obj_ns(vs));
		name = ref->v;
	}
	while ((g = view_next(w, ZM_K_GATEWAY, &it)))
		if (g->meta.name.v && !strcmp(g->meta.name.v, name) && !strcmp(obj_ns(g), ns))
			return;
	obj_err(s, vs, ref->pos, path, "gateway %s/%s not found (no Gateway of that name is applied)",
		ns, name);
}

static void check_vs(struct zm_cfg_set *s, const struct view *w, const struct zm_cfg_obj *o)
{
	const struct zm_virtual_service *vs = o->vs;
	char p[160];

	for (size_t i = 0; i < vs->gateways.n; i++) {
		snprintf(p, sizeof(p), "spec.gateways[%zu]", i);
		check_gateway_ref(s, w, o, &vs->gateways.v[i], p);
	}
	for (size_t i = 0; i < vs->http.n; i++) {
		const struct zm_http_route *h = &vs->http.v[i];

		for (size_t j = 0; j < h->match.n; j++)
			for (size_t k = 0; k < h->match.v[j].gateways.n; k++) {
				snprintf(p, sizeof(p), "spec.http[%zu].match[%zu].gateways[%zu]", i, j, k);
				check_gateway_ref(s, w, o, &h->match.v[j].gateways.v[k], p);
			}
		for (size_t j = 0; j < h->route.n; j++) {
			snprintf(p, sizeof(p), "spec.http[%zu].route[%zu].destination", i, j);
			check_subset(s, w, o, &h->route.v[j].destination, p);
		}
		snprintf(p, sizeof(p), "spec.http[%zu].mirror", i);
		check_subset(s, w, o, &h->mirror, p);
		for (size_t j = 0; j < h->mirrors.n; j++) {
			snprintf(p, sizeof(p), "spec.http[%zu].mirrors[%zu].destination", i, j);
			check_subset(s, w, o, &h->mirrors.v[j].destination, p);
		}
	}
	for (size_t i = 0; i < vs->tcp.n; i++) {
		for (size_t j = 0; j < vs->tcp.v[i].match.n; j++)
			for (size_t k = 0; k < vs->tcp.v[i].match.v[j].gateways.n; k++) {
				snprintf(p, sizeof(p), "spec.tcp[%zu].match[%zu].gateways[%zu]", i, j, k);
				check_gateway_ref(s, w, o, &vs->tcp.v[i].match.v[j].gateways.v[k], p);
			}
		for (size_t j = 0; j < vs->tcp.v[i].route.n; j++) {
			snprintf(p, sizeof(p), "spec.tcp[%zu].route[%zu].destination", i, j);
			check_subset(s, w, o, &vs->tcp.v[i].route.v[j].destination, p);
		}
	}
	for (size_t i = 0; i < vs->tls.n; i++) {
		for (size_t j = 0; j < vs->tls.v[i].match.n; j++)
			for (size_t k = 0; k < vs->tls.v[i].match.v[j].gateways.n; k++) {
				snprintf(p, sizeof(p), "spec.tls[%zu].match[%zu].gateways[%zu]", i, j, k);
				check_gateway_ref(s, w, o, &vs->tls.v[i].match.v[j].gateways.v[k], p);
			}
		for (size_t j = 0; j < vs->tls.v[i].route.n; j++) {
			snprintf(p, sizeof(p), "spec.tls[%zu].route[%zu].destination", i, j);
			check_subset(s, w, o, &vs->tls.v[i].route.v[j].destination, p);
		}
	}
}

int zm_cfg_validate(struct zm_cfg_set *s, const struct zm_cfg_set *base)
{
	struct view w = { .s = s, .base = base };
	size_t n = s->nobjs;

	check_duplicates(s);
	for (size_t i = 0; i < n && !s->errs_truncated; i++)
		if (s->objs[i]->kind == ZM_K_VIRTUALSERVICE)
			check_vs(s, &w, s->objs[i]);
	return s->nerrs || s->errs_truncated ? -EINVAL : 0;
}

static int cmp_err(const struct zm_cfg_err *x, const struct zm_cfg_err *y)
{
	int c = strcmp(x->file ? x->file : "", y->file ? y->file : "");

	if (c)
		return c;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->col < y->col ? -1 : x->col > y->col;
}

void zm_cfg_sort_errors(struct zm_cfg_set *s)
{
	/* Insertion sort: stable, and the list is capped at ZM_CFG_MAX_ERRORS. */
	for (size_t i = 1; i < s->nerrs; i++) {
		struct zm_cfg_err e = s->errs[i];
		size_t j = i;

		while (j > 0 && cmp_err(&s->errs[j - 1], &e) > 0) {
			s->errs[j] = s->errs[j - 1];
			j--;
		}
		s->errs[j] = e;
	}
}
