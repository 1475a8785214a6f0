// SPDX-License-Identifier: Apache-2.0
/*
 * The schema-driven reader: one walk over the YAML tree, guided by the
 * tables in config_schema.c, that fills the typed structs of zmesh/istio.h
 * and reports every problem it meets (unknown fields, types, ranges, enums,
 * required fields) with its position, then carries on with the siblings so
 * one run shows all errors.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"

/* ---- errors ---------------------------------------------------------------- */

static char *xstrdup(const char *s)
{
	return strdup(s ? s : "");
}

void zm_cfg_add_verr(struct zm_cfg_set *s, const char *file, struct zm_cpos pos,
		     const char *path, const char *fmt, va_list ap)
{
	struct zm_cfg_err *e;
	char msg[512], text[ZM_ERROR_MAX];

	if (s->nerrs >= ZM_CFG_MAX_ERRORS) {
		s->errs_truncated = true;
		return;
	}
	if (s->nerrs == s->caperrs) {
		size_t cap = s->caperrs ? s->caperrs * 2 : 16;
		struct zm_cfg_err *v = realloc(s->errs, cap * sizeof(*v));

		if (!v)
			return;
		s->errs = v;
		s->caperrs = cap;
	}
	vsnprintf(msg, sizeof(msg), fmt, ap);
	path = path ? path : "";
	if (file && pos.line)
		snprintf(text, sizeof(text), "%.300s:%u:%u: %s%s%s", file, pos.line, pos.col,
			 path, *path ? ": " : "", msg);
	else if (file)
		snprintf(text, sizeof(text), "%.300s: %s%s%s", file, path, *path ? ": " : "", msg);
	else
		snprintf(text, sizeof(text), "%s%s%s", path, *path ? ": " : "", msg);
	e = &s->errs[s->nerrs];
	memset(e, 0, sizeof(*e));
	e->file = file ? strdup(file) : NULL;
	e->line = pos.line;
	e->col = pos.col;
	e->path = xstrdup(path);
	e->msg = xstrdup(msg);
	e->text = xstrdup(text);
	if ((file && !e->file) || !e->path || !e->msg || !e->text) {
		free(e->file);
		free(e->path);
		free(e->msg);
		free(e->text);
		return;
	}
	s->nerrs++;
}

void zm_cfg_add_err(struct zm_cfg_set *s, const char *file, struct zm_cpos pos,
		    const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	zm_cfg_add_verr(s, file, pos, path, fmt, ap);
	va_end(ap);
}

size_t zm_crd_push(struct zm_crd *r, const char *fmt, ...)
{
	size_t old = r->plen;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(r->path + r->plen, sizeof(r->path) - r->plen, fmt, ap);
	va_end(ap);
	if (n > 0)
		r->plen += (size_t)n;
	if (r->plen >= sizeof(r->path))
		r->plen = sizeof(r->path) - 1;
	return old;
}

void zm_crd_pop(struct zm_crd *r, size_t old)
{
	r->plen = old;
	r->path[old] = 0;
}

/* Append a field name to the path: ".name", or "name" at the root. */
static size_t push_field(struct zm_crd *r, const char *name)
{
	return zm_crd_push(r, "%s%s", r->plen ? "." : "", name);
}

static size_t push_key(struct zm_crd *r, const char *key, size_t len)
{
	char esc[128];

	return zm_crd_push(r, "[%s]", zm_log_escape(esc, sizeof(esc), key, len));
}

void zm_crd_err(struct zm_crd *r, struct zm_cpos pos, const char *sub, const char *fmt, ...)
{
	size_t old = r->plen;
	va_list ap;

	if (sub && *sub) {
		if (sub[0] == '[')
			zm_crd_push(r, "%s", sub);
		else
			push_field(r, sub);
	}
	va_start(ap, fmt);
	zm_cfg_add_verr(r->set, r->file, pos, r->path, fmt, ap);
	va_end(ap);
	zm_crd_pop(r, old);
	r->nerr++;
}

/* ---- scalars ---------------------------------------------------------------- */

static bool plain_is(const struct zm_ynode *n, const char *const *words)
{
	for (; *words; words++)
		if (zm_ynode_eq(n, *words))
			return true;
	return false;
}

static const char *const yaml_bools[] = {
	"true", "True", "TRUE", "false", "False", "FALSE",
	/* YAML 1.1 booleans: Kubernetes' decoder reads them as bools too. */
	"yes", "Yes", "YES", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF", NULL,
};

static bool looks_number(const char *s)
{
	char *end;

	if (!*s)
		return false;
	if (strspn(s, "0123456789+-.eE") != strlen(s))
		return false;
	errno = 0;
	(void)strtod(s, &end);
	return *end == 0;
}

/* What a node is, for "must be X, got Y". */
static const char *node_what(const struct zm_ynode *n)
{
	if (n->kind == ZM_Y_MAP)
		return "a mapping";
	if (n->kind == ZM_Y_SEQ)
		return "a list";
	if (zm_ynode_is_null(n))
		return "null";
	if (n->plain && plain_is(n, yaml_bools))
		return "a boolean";
	if (n->plain && looks_number(n->str))
		return "a number";
	return "a string";
}

static void type_err(struct zm_crd *r, const struct zm_ynode *n, const char *want)
{
	zm_crd_err(r, zm_ypos(n), NULL, "must be %s, got %s", want, node_what(n));
}

/* A scalar that stands for text here: quoted, or plain but not a
 * number/bool/null (Kubernetes rejects `name: 123` for a string field). */
static bool text_scalar(struct zm_crd *r, const struct zm_ynode *n)
{
	if (n->kind != ZM_Y_SCALAR || (n->plain && (plain_is(n, yaml_bools) ||
						     looks_number(n->str)))) {
		zm_crd_err(r, zm_ypos(n), NULL, "must be a string, got %s%s", node_what(n),
			   n->kind == ZM_Y_SCALAR ? " (quote it)" : "");
		return false;
	}
	if (strlen(n->str) != n->len) {
		zm_crd_err(r, zm_ypos(n), NULL, "must not contain a NUL byte");
		return false;
	}
	return true;
}

static void read_str(struct zm_crd *r, const struct zm_cfield *fd, const struct zm_ynode *n,
		     struct zm_cstr *dst)
{
	const char *why;

	if (!text_scalar(r, n))
		return;
	if ((fd->flags & ZM_CF_NONEMPTY) && n->len == 0) {
		zm_crd_err(r, zm_ypos(n), NULL, "must not be empty");
		return;
	}
	if (fd->scheck && (why = fd->scheck(n->str))) {
		char esc[160];

		zm_crd_err(r, zm_ypos(n), NULL, "\"%s\": %s",
			   zm_log_escape(esc, sizeof(esc), n->str, n->len), why);
		return;
	}
	dst->v = strdup(n->str);
	if (!dst->v) {
		zm_crd_err(r, zm_ypos(n), NULL, "out of memory");
		return;
	}
	dst->pos = zm_ypos(n);
}

static void read_int(struct zm_crd *r, const struct zm_cfield *fd, const struct zm_ynode *n,
		     struct zm_cint *dst)
{
	int64_t v;

	if (zm_ynode_int(n, fd->min, fd->max, &v)) {
		if (n->kind == ZM_Y_SCALAR && n->plain &&
		    zm_ynode_int(n, INT64_MIN, INT64_MAX, &v) == 0)
			zm_crd_err(r, zm_ypos(n), NULL, "%lld is out of range (%lld to %lld)",
				   (long long)v, (long long)fd->min, (long long)fd->max);
		else
			type_err(r, n, "an integer");
		return;
	}
	dst->v = v;
	dst->set = true;
	dst->pos = zm_ypos(n);
}

static void read_dbl(struct zm_crd *r, const struct zm_cfield *fd, const struct zm_ynode *n,
		     struct zm_cdbl *dst)
{
	char *end;
	double v;

	if (n->kind != ZM_Y_SCALAR || !n->plain || !looks_number(n->str)) {
		type_err(r, n, "a number");
		return;
	}
	v = strtod(n->str, &end);
	if (!isfinite(v) || v < fd->dmin || v > fd->dmax) {
		zm_crd_err(r, zm_ypos(n), NULL, "%s is out of range (%g to %g)", n->str,
			   fd->dmin, fd->dmax);
		return;
	}
	dst->v = v;
	dst->set = true;
	dst->pos = zm_ypos(n);
}

static void read_dur(struct zm_crd *r, const struct zm_cfield *fd, const struct zm_ynode *n,
		     struct zm_cdur *dst)
{
	char esc[64];
	int64_t ns;
	int rc;

	if (n->kind != ZM_Y_SCALAR || strlen(n->str) != n->len ||
	    (n->plain && plain_is(n, yaml_bools))) {
		type_err(r, n, "a duration such as \"10s\"");
		return;
	}
	rc = zm_duration_parse(n->str, &ns);
	if (rc == -ERANGE) {
		zm_crd_err(r, zm_ypos(n), NULL, "duration \"%s\" is too long",
			   zm_log_escape(esc, sizeof(esc), n->str, n->len));
		return;
	}
	if (rc) {
		zm_crd_err(r, zm_ypos(n), NULL,
			   "invalid duration \"%s\" (want e.g. 10s, 1.5s, 500ms, 1m, 1h)",
			   zm_log_escape(esc, sizeof(esc), n->str, n->len));
		return;
	}
	if (!(ns == 0 && (fd->flags & ZM_CF_ZERO_OK))) {
		if (ns < ZM_NS_PER_MS) {
			zm_crd_err(r, zm_ypos(n), NULL, "duration must be at least 1ms");
			return;
		}
		if (ns % ZM_NS_PER_MS) {
			zm_crd_err(r, zm_ypos(n), NULL,
				   "only durations to ms precision are supported");
			return;
		}
	}
	dst->ns = ns;
	dst->set = true;
	dst->pos = zm_ypos(n);
}

static void read_enum(struct zm_crd *r, const struct zm_cfield *fd, const struct zm_ynode *n,
		      struct zm_cenum *dst)
{
	char want[512], esc[64];
	size_t wl = 0;

	if (n->kind == ZM_Y_SCALAR && strlen(n->str) == n->len) {
		for (int i = 0; fd->enums[i]; i++) {
			if (zm_ynode_eq(n, fd->enums[i])) {
				dst->v = i;
				dst->set = true;
				dst->pos = zm_ypos(n);
				return;
			}
		}
	}
	want[0] = 0;
	for (int i = 0; fd->enums[i] && wl < sizeof(want); i++) {
		int k = snprintf(want + wl, sizeof(want) - wl, "%s%s", i ? ", " : "", fd->enums[i]);

		if (k > 0)
			wl += (size_t)k;
	}
	if (n->kind != ZM_Y_SCALAR)
		zm_crd_err(r, zm_ypos(n), NULL, "must be one of %s, got %s", want, node_what(n));
	else
		zm_crd_err(r, zm_ypos(n), NULL, "unknown value \"%s\", want one of %s",
			   zm_log_escape(esc, sizeof(esc), n->str, n->len), want);
}

/* ---- composite values -------------------------------------------------------- */

static size_t val_size(const struct zm_cfield *fd)
{
	switch (fd->type) {
	case ZM_CT_STR: return sizeof(struct zm_cstr);
	case ZM_CT_BOOL: return sizeof(struct zm_cbool);
	case ZM_CT_INT: return sizeof(struct zm_cint);
	case ZM_CT_DBL: return sizeof(struct zm_cdbl);
	case ZM_CT_DUR: return sizeof(struct zm_cdur);
	case ZM_CT_ENUM: return sizeof(struct zm_cenum);
	case ZM_CT_OBJ: return fd->sub->size;
	default: return sizeof(zm_cstrs);	/* LIST, MAP: one list header */
	}
}

static size_t entry_size(const struct zm_cfield *fd)
{
	if (fd->type == ZM_CT_MAP)
		return (ZM_CMAP_VAL_OFF + val_size(fd->elem) + 7) & ~(size_t)7;
	return val_size(fd->elem);
}

struct clist {
	void *v;
	size_t n;
	struct zm_cpos pos;
};

static void read_value(struct zm_crd *r, const struct zm_cfield *fd, const struct zm_ynode *n,
		       void *dst);

static void init_value(const struct zm_cfield *fd, void *p)
{
	if (!fd->has_def && fd->type != ZM_CT_OBJ)
		return;
	switch (fd->type) {
	case ZM_CT_BOOL: ((struct zm_cbool *)p)->v = fd->def != 0; break;
	case ZM_CT_INT: ((struct zm_cint *)p)->v = fd->def; break;
	case ZM_CT_DBL: ((struct zm_cdbl *)p)->v = fd->ddef; break;
	case ZM_CT_DUR: ((struct zm_cdur *)p)->ns = fd->def; break;
	case ZM_CT_ENUM: ((struct zm_cenum *)p)->v = (int)fd->def; break;
	case ZM_CT_OBJ: zm_cinit_obj(fd->sub, p); break;
	default: break;
	}
}

void zm_cinit_obj(const struct zm_cschema *s, void *dst)
{
	for (const struct zm_cfield *fd = s->fields; fd->name; fd++)
		init_value(fd, (char *)dst + fd->off);
}

static void read_list(struct zm_crd *r, const struct zm_cfield *fd, const struct zm_ynode *n,
		      struct clist *dst)
{
	size_t esz = entry_size(fd);
	char *v;

	if (n->kind != ZM_Y_SEQ) {
		type_err(r, n, "a list");
		return;
	}
	dst->pos = zm_ypos(n);
	if (n->n == 0) {
		if (fd->flags & ZM_CF_NONEMPTY)
			zm_crd_err(r, zm_ypos(n), NULL, "must not be empty");
		return;
	}
	v = calloc(n->n, esz);
	if (!v) {
		zm_crd_err(r, zm_ypos(n), NULL, "out of memory");
		return;
	}
	dst->v = v;
	dst->n = n->n;
	for (size_t i = 0; i < n->n; i++) {
		size_t old = zm_crd_push(r, "[%zu]", i);
		void *e = v + i * esz;

		init_value(fd->elem, e);
		if (zm_ynode_is_null(n->items[i]))
			zm_crd_err(r, zm_ypos(n->items[i]), NULL, "list item must not be null");
		else
			read_value(r, fd->elem, n->items[i], e);
		zm_crd_pop(r, old);
	}
}

static void read_map(struct zm_crd *r, const struct zm_cfield *fd, const struct zm_ynode *n,
		     struct clist *dst)
{
	size_t esz = entry_size(fd);
	char *v;

	if (n->kind != ZM_Y_MAP) {
		type_err(r, n, "a mapping");
		return;
	}
	dst->pos = zm_ypos(n);
	if (n->n == 0) {
		if (fd->flags & ZM_CF_NONEMPTY)
			zm_crd_err(r, zm_ypos(n), NULL, "must not be empty");
		return;
	}
	v = calloc(n->n, esz);
	if (!v) {
		zm_crd_err(r, zm_ypos(n), NULL, "out of memory");
		return;
	}
	dst->v = v;
	dst->n = n->n;
	for (size_t i = 0; i < n->n; i++) {
		const struct zm_ynode *k = n->keys[i];
		struct zm_cstr *key = (struct zm_cstr *)(v + i * esz);
		void *val = v + i * esz + ZM_CMAP_VAL_OFF;
		size_t old = push_key(r, k->str, k->len);
		const char *why;

		init_value(fd->elem, val);
		if (strlen(k->str) != k->len) {
			zm_crd_err(r, zm_ypos(k), NULL, "key must not contain a NUL byte");
		} else if (fd->kcheck && (why = fd->kcheck(k->str))) {
			zm_crd_err(r, zm_ypos(k), NULL, "invalid key: %s", why);
		} else if (!(key->v = strdup(k->str))) {
			zm_crd_err(r, zm_ypos(k), NULL, "out of memory");
		} else {
			key->pos = zm_ypos(k);
			read_value(r, fd->elem, n->items[i], val);
		}
		zm_crd_pop(r, old);
	}
}

static void read_value(struct zm_crd *r, const struct zm_cfield *fd, const struct zm_ynode *n,
		       void *dst)
{
	size_t before = r->nerr;

	if (fd->type == ZM_CT_IGNORE)
		return;
	/* null is "absent" for every type (proto3 JSON). */
	if (zm_ynode_is_null(n))
		return;
	switch (fd->type) {
	case ZM_CT_STR: read_str(r, fd, n, dst); break;
	case ZM_CT_BOOL:
		if (zm_ynode_bool(n, &((struct zm_cbool *)dst)->v)) {
			type_err(r, n, "true or false");
			break;
		}
		((struct zm_cbool *)dst)->set = true;
		((struct zm_cbool *)dst)->pos = zm_ypos(n);
		break;
	case ZM_CT_INT: read_int(r, fd, n, dst); break;
	case ZM_CT_DBL: read_dbl(r, fd, n, dst); break;
	case ZM_CT_DUR: read_dur(r, fd, n, dst); break;
	case ZM_CT_ENUM: read_enum(r, fd, n, dst); break;
	case ZM_CT_OBJ: zm_cread_obj(r, fd->sub, n, dst); break;
	case ZM_CT_LIST: read_list(r, fd, n, dst); break;
	case ZM_CT_MAP: read_map(r, fd, n, dst); break;
	default: break;
	}
	if (fd->check && r->nerr == before)
		fd->check(r, dst);
}

static bool value_present(const struct zm_cfield *fd, const void *p)
{
	switch (fd->type) {
	case ZM_CT_STR: return ((const struct zm_cstr *)p)->v != NULL;
	case ZM_CT_BOOL: return ((const struct zm_cbool *)p)->set;
	case ZM_CT_INT: return ((const struct zm_cint *)p)->set;
	case ZM_CT_DBL: return ((const struct zm_cdbl *)p)->set;
	case ZM_CT_DUR: return ((const struct zm_cdur *)p)->set;
	case ZM_CT_ENUM: return ((const struct zm_cenum *)p)->set;
	case ZM_CT_OBJ: return ((const struct zm_cobj *)p)->set;
	case ZM_CT_LIST:
	case ZM_CT_MAP: return ((const struct clist *)p)->n > 0 ||
			      ((const struct clist *)p)->pos.line;
	default: return false;
	}
}

void zm_cread_obj(struct zm_crd *r, const struct zm_cschema *s, const struct zm_ynode *n, void *dst)
{
	struct zm_cobj *o = dst;
	size_t before = r->nerr;
	uint64_t seen = 0;	/* fields (the first 64) written with a bad value */

	if (!zm_ynode_is_null(n) && n->kind != ZM_Y_MAP) {
		type_err(r, n, "a mapping");
		return;
	}
	if (n && !zm_ynode_is_null(n)) {
		o->set = true;
		o->pos = zm_ypos(n);
		for (size_t i = 0; i < n->n; i++) {
			const struct zm_ynode *k = n->keys[i];
			const struct zm_cfield *fd;

			for (fd = s->fields; fd->name; fd++)
				if (zm_ynode_eq(k, fd->name))
					break;
			if (!fd->name) {
				char esc[96];

				zm_crd_err(r, zm_ypos(k), NULL, "unknown field \"%s\" in %s",
					   zm_log_escape(esc, sizeof(esc), k->str, k->len), s->name);
				continue;
			}
			size_t old = push_field(r, fd->name);

			size_t nerr = r->nerr;

			read_value(r, fd, n->items[i], (char *)dst + fd->off);
			if (r->nerr != nerr && fd - s->fields < 64)
				seen |= 1ull << (fd - s->fields);
			zm_crd_pop(r, old);
		}
		/* A field written with a bad value already has its error. */
		for (const struct zm_cfield *fd = s->fields; fd->name; fd++)
			if ((fd->flags & ZM_CF_REQUIRED) && !value_present(fd, (char *)dst + fd->off) &&
			    !(fd - s->fields < 64 && (seen >> (fd - s->fields)) & 1))
				zm_crd_err(r, o->pos, fd->name, "required field is missing");
	}
	/* Object rules only make sense on fields that read cleanly. */
	if (s->check && r->nerr == before && o->set)
		s->check(r, dst);
}

/* ---- free -------------------------------------------------------------------- */

static void free_value(const struct zm_cfield *fd, void *p)
{
	switch (fd->type) {
	case ZM_CT_STR: free(((struct zm_cstr *)p)->v); break;
	case ZM_CT_OBJ: zm_cfree_obj(fd->sub, p); break;
	case ZM_CT_LIST:
	case ZM_CT_MAP: {
		struct clist *l = p;
		size_t esz = entry_size(fd);

		for (size_t i = 0; i < l->n; i++) {
			char *e = (char *)l->v + i * esz;

			if (fd->type == ZM_CT_MAP) {
				free(((struct zm_cstr *)e)->v);
				e += ZM_CMAP_VAL_OFF;
			}
			free_value(fd->elem, e);
		}
		free(l->v);
		break;
	}
	default: break;
	}
}

void zm_cfree_obj(const struct zm_cschema *s, void *p)
{
	if (!p)
		return;
	for (const struct zm_cfield *fd = s->fields; fd->name; fd++)
		free_value(fd, (char *)p + fd->off);
}

/* ---- JSON ---------------------------------------------------------------------- */

static json_t *value_json(const struct zm_cfield *fd, const void *p)
{
	switch (fd->type) {
	case ZM_CT_STR: return json_string(((const struct zm_cstr *)p)->v);
	case ZM_CT_BOOL: return json_boolean(((const struct zm_cbool *)p)->v);
	case ZM_CT_INT: return json_integer(((const struct zm_cint *)p)->v);
	case ZM_CT_DBL: return json_real(((const struct zm_cdbl *)p)->v);
	case ZM_CT_DUR: {
		char b[48];

		zm_duration_format(((const struct zm_cdur *)p)->ns, b, sizeof(b));
		return json_string(b);
	}
	case ZM_CT_ENUM: return json_string(fd->enums[((const struct zm_cenum *)p)->v]);
	case ZM_CT_OBJ: return zm_cobj_json(fd->sub, p);
	case ZM_CT_LIST:
	case ZM_CT_MAP: {
		const struct clist *l = p;
		size_t esz = entry_size(fd);
		json_t *j = fd->type == ZM_CT_MAP ? json_object() : json_array();

		if (!j)
			return NULL;
		for (size_t i = 0; i < l->n; i++) {
			const char *e = (const char *)l->v + i * esz;
			const char *key = NULL;
			json_t *v;

			if (fd->type == ZM_CT_MAP) {
				key = ((const struct zm_cstr *)e)->v;
				e += ZM_CMAP_VAL_OFF;
				if (!key)
					continue;
			}
			v = value_json(fd->elem, e);
			if (!v || (key ? json_object_set_new(j, key, v) : json_array_append_new(j, v))) {
				json_decref(j);
				return NULL;
			}
		}
		return j;
	}
	default: return NULL;
	}
}

json_t *zm_cobj_json(const struct zm_cschema *s, const void *p)
{
	json_t *j = json_object();

	if (!j)
		return NULL;
	for (const struct zm_cfield *fd = s->fields; fd->name; fd++) {
		const void *v = (const char *)p + fd->off;
		json_t *x;

		if (fd->type == ZM_CT_IGNORE || !value_present(fd, v))
			continue;
		x = value_json(fd, v);
		if (!x || json_object_set_new(j, fd->name, x)) {
			json_decref(j);
			return NULL;
		}
	}
	return j;
}

json_t *zm_ynode_json(const struct zm_ynode *n)
{
	json_t *j;

	if (!n || zm_ynode_is_null(n))
		return json_null();
	if (n->kind == ZM_Y_SCALAR) {
		bool b;
		int64_t i;

		if (n->plain && zm_ynode_bool(n, &b) == 0)
			return json_boolean(b);
		if (n->plain && zm_ynode_int(n, INT64_MIN, INT64_MAX, &i) == 0)
			return json_integer(i);
		if (n->plain && looks_number(n->str) && isfinite(strtod(n->str, NULL)))
			return json_real(strtod(n->str, NULL));
		return json_stringn(n->str, n->len);
	}
	j = n->kind == ZM_Y_MAP ? json_object() : json_array();
	if (!j)
		return NULL;
	for (size_t i = 0; i < n->n; i++) {
		json_t *v = zm_ynode_json(n->items[i]);
		int rc;

		if (!v)
			goto fail;
		if (n->kind == ZM_Y_MAP) {
			if (strlen(n->keys[i]->str) != n->keys[i]->len) {
				json_decref(v);
				continue;
			}
			rc = json_object_set_new(j, n->keys[i]->str, v);
		} else {
			rc = json_array_append_new(j, v);
		}
		if (rc)
			goto fail;
	}
	return j;
fail:
	json_decref(j);
	return NULL;
}
