// SPDX-License-Identifier: Apache-2.0
/* YAML -> node tree with positions, on libyaml's event parser. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "zmesh/yaml.h"

struct builder {
	struct zm_yfile *f;
	struct zm_error *e;
	struct zm_ynode *stack[ZM_YAML_MAX_DEPTH];
	/* For a mapping on the stack: the key waiting for its value. */
	struct zm_ynode *pending_key[ZM_YAML_MAX_DEPTH];
	int depth;
	int rc;		/* why new_node() failed */
};

static int add_child(struct zm_ynode *parent, struct zm_ynode *key, struct zm_ynode *child)
{
	if ((parent->n & (parent->n - 1)) == 0) {
		/* Grow at powers of two. */
		size_t cap = parent->n ? parent->n * 2 : 4;
		struct zm_ynode **items = realloc(parent->items, cap * sizeof(*items));

		if (!items)
			return -ENOMEM;
		parent->items = items;
		if (parent->kind == ZM_Y_MAP) {
			struct zm_ynode **keys = realloc(parent->keys, cap * sizeof(*keys));

			if (!keys)
				return -ENOMEM;
			parent->keys = keys;
		}
	}
	if (parent->kind == ZM_Y_MAP)
		parent->keys[parent->n] = key;
	parent->items[parent->n++] = child;
	return 0;
}

static struct zm_ynode *new_node(struct builder *b, enum zm_ynode_kind kind,
				 const yaml_mark_t *mark)
{
	struct zm_yfile *f = b->f;
	struct zm_ynode *n;

	if (f->nall >= ZM_YAML_MAX_NODES) {
		b->rc = zm_error_set(b->e, E2BIG, "%s:%zu:%zu: document too large (more than %u nodes)",
				     f->name, mark->line + 1, mark->column + 1, ZM_YAML_MAX_NODES);
		return NULL;
	}
	if (f->nall == f->capall) {
		size_t cap = f->capall ? f->capall * 2 : 64;
		struct zm_ynode **all = realloc(f->all, cap * sizeof(*all));

		if (!all)
			goto nomem;
		f->all = all;
		f->capall = cap;
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		goto nomem;
	n->kind = kind;
	n->line = (unsigned)mark->line + 1;
	n->col = (unsigned)mark->column + 1;
	f->all[f->nall++] = n;
	return n;
nomem:
	b->rc = zm_error_set(b->e, ENOMEM, "%s: out of memory", f->name);
	return NULL;
}

/* Attach @n to the open container (or make it the document root). */
static int place(struct builder *b, struct zm_ynode *n, struct zm_ydoc *doc)
{
	struct zm_ynode *top;
	int d = b->depth - 1;

	if (d < 0) {
		doc->root = n;
		return 0;
	}
	top = b->stack[d];
	if (top->kind == ZM_Y_SEQ)
		return add_child(top, NULL, n);
	if (!b->pending_key[d]) {
		if (n->kind != ZM_Y_SCALAR)
			return zm_error_set(b->e, EINVAL, "%s:%u:%u: mapping keys must be scalars",
					    b->f->name, n->line, n->col);
		for (size_t i = 0; i < top->n; i++) {
			if (top->keys[i]->len == n->len &&
			    !memcmp(top->keys[i]->str, n->str, n->len)) {
				char esc[128];

				return zm_error_set(b->e, EINVAL,
						    "%s:%u:%u: duplicate key \"%s\" (first at line %u)",
						    b->f->name, n->line, n->col,
						    zm_log_escape(esc, sizeof(esc), n->str, n->len),
						    top->keys[i]->line);
			}
		}
		b->pending_key[d] = n;
		return 0;
	}
	int rc = add_child(top, b->pending_key[d], n);

	b->pending_key[d] = NULL;
	return rc;
}

static int push(struct builder *b, struct zm_ynode *n)
{
	if (b->depth == ZM_YAML_MAX_DEPTH)
		return zm_error_set(b->e, E2BIG, "%s:%u:%u: nesting deeper than %d levels",
				    b->f->name, n->line, n->col, ZM_YAML_MAX_DEPTH);
	b->stack[b->depth] = n;
	b->pending_key[b->depth] = NULL;
	b->depth++;
	return 0;
}

static int add_doc(struct builder *b, const yaml_mark_t *mark)
{
	struct zm_yfile *f = b->f;

	/* Empty documents ("---\n" over and over) cost no node: cap them too,
	 * and grow at powers of two so a long stream stays linear. */
	if (f->ndocs >= ZM_YAML_MAX_NODES)
		return zm_error_set(b->e, E2BIG, "%s:%zu:%zu: document too large (more than %u documents)",
				    f->name, mark->line + 1, mark->column + 1, ZM_YAML_MAX_NODES);
	if ((f->ndocs & (f->ndocs - 1)) == 0) {
		size_t cap = f->ndocs ? f->ndocs * 2 : 1;
		struct zm_ydoc *docs = realloc(f->docs, cap * sizeof(*docs));

		if (!docs)
			return -ENOMEM;
		f->docs = docs;
	}
	f->docs[f->ndocs++].root = NULL;
	return 0;
}

int zm_yaml_load_buf(const char *name, const char *buf, size_t len,
		     struct zm_yfile *out, struct zm_error *e)
{
	struct builder b = { .f = out, .e = e };
	yaml_parser_t parser;
	yaml_event_t ev;
	bool done = false;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	out->name = strdup(name);
	if (!out->name)
		return zm_error_set(e, ENOMEM, "%s: out of memory", name);
	if (len > ZM_YAML_MAX_BYTES) {
		rc = zm_error_set(e, E2BIG, "%s: file larger than %u bytes", name, ZM_YAML_MAX_BYTES);
		goto out_free;
	}
	if (!yaml_parser_initialize(&parser)) {
		rc = zm_error_set(e, ENOMEM, "%s: cannot initialize the YAML parser", name);
		goto out_free;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);

	while (!done && rc == 0) {
		struct zm_ynode *n;

		if (!yaml_parser_parse(&parser, &ev)) {
			rc = zm_error_set(e, EINVAL, "%s:%zu:%zu: %s%s%s", name,
					  parser.problem_mark.line + 1,
					  parser.problem_mark.column + 1,
					  parser.problem ? parser.problem : "syntax error",
					  parser.context ? " " : "",
					  parser.context ? parser.context : "");
			break;
		}
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			rc = add_doc(&b, &ev.start_mark);
			break;
		case YAML_ALIAS_EVENT:
			rc = zm_error_set(e, EINVAL, "%s:%zu:%zu: aliases are not supported",
					  name, ev.start_mark.line + 1, ev.start_mark.column + 1);
			break;
		case YAML_SCALAR_EVENT:
			n = new_node(&b, ZM_Y_SCALAR, &ev.start_mark);
			if (!n) {
				rc = b.rc;
				break;
			}
			n->str = malloc(ev.data.scalar.length + 1);
			if (!n->str) {
				rc = zm_error_set(e, ENOMEM, "%s: out of memory", name);
				break;
			}
			memcpy(n->str, ev.data.scalar.value, ev.data.scalar.length);
			n->str[ev.data.scalar.length] = 0;
			n->len = ev.data.scalar.length;
			n->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
			rc = place(&b, n, &out->docs[out->ndocs - 1]);
			break;
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
			n = new_node(&b, ev.type == YAML_MAPPING_START_EVENT ? ZM_Y_MAP : ZM_Y_SEQ,
				     &ev.start_mark);
			if (!n) {
				rc = b.rc;
				break;
			}
			rc = place(&b, n, &out->docs[out->ndocs - 1]);
			if (!rc)
				rc = push(&b, n);
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			b.depth--;
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	if (rc == 0)
		return 0;
out_free:
	zm_yaml_free(out);
	return rc;
}

int zm_yaml_load_file(const char *path, struct zm_yfile *out, struct zm_error *e)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd, rc;

	memset(out, 0, sizeof(*out));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return zm_error_set(e, errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		rc = zm_error_set(e, errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = zm_error_set(e, EINVAL, "%s: not a regular file", path);
		goto out;
	}
	if ((uint64_t)st.st_size > ZM_YAML_MAX_BYTES) {
		rc = zm_error_set(e, E2BIG, "%s: file larger than %u bytes", path, ZM_YAML_MAX_BYTES);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		rc = zm_error_set(e, ENOMEM, "%s: out of memory", path);
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = zm_error_set(e, errno, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	rc = zm_yaml_load_buf(path, buf, got, out, e);
out:
	free(buf);
	close(fd);
	return rc;
}

void zm_yaml_free(struct zm_yfile *f)
{
	for (size_t i = 0; i < f->nall; i++) {
		free(f->all[i]->str);
		free(f->all[i]->keys);
		free(f->all[i]->items);
		free(f->all[i]);
	}
	free(f->all);
	free(f->docs);
	free(f->name);
	memset(f, 0, sizeof(*f));
}

struct zm_ynode *zm_ymap_get(const struct zm_ynode *map, const char *key)
{
	if (!map || map->kind != ZM_Y_MAP)
		return NULL;
	for (size_t i = 0; i < map->n; i++)
		if (zm_ynode_eq(map->keys[i], key))
			return map->items[i];
	return NULL;
}

bool zm_ynode_eq(const struct zm_ynode *n, const char *s)
{
	size_t len = strlen(s);

	return n && n->kind == ZM_Y_SCALAR && n->len == len && !memcmp(n->str, s, len);
}

bool zm_ynode_is_null(const struct zm_ynode *n)
{
	if (!n)
		return true;
	if (n->kind != ZM_Y_SCALAR || !n->plain)
		return false;
	return n->len == 0 || zm_ynode_eq(n, "~") || zm_ynode_eq(n, "null") ||
	       zm_ynode_eq(n, "Null") || zm_ynode_eq(n, "NULL");
}

bool zm_ynode_is_str(const struct zm_ynode *n)
{
	return n && n->kind == ZM_Y_SCALAR && !zm_ynode_is_null(n);
}

int zm_ynode_bool(const struct zm_ynode *n, bool *out)
{
	if (!n || n->kind != ZM_Y_SCALAR || !n->plain)
		return -EINVAL;
	if (zm_ynode_eq(n, "true") || zm_ynode_eq(n, "True") || zm_ynode_eq(n, "TRUE"))
		*out = true;
	else if (zm_ynode_eq(n, "false") || zm_ynode_eq(n, "False") || zm_ynode_eq(n, "FALSE"))
		*out = false;
	else
		return -EINVAL;
	return 0;
}

int zm_ynode_int(const struct zm_ynode *n, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	long long v;

	if (!n || n->kind != ZM_Y_SCALAR || !n->plain || n->len == 0 ||
	    strlen(n->str) != n->len)
		return -EINVAL;
	errno = 0;
	v = strtoll(n->str, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int zm_ynode_error(struct zm_error *e, const struct zm_yfile *f,
		   const struct zm_ynode *n, const char *path, const char *fmt, ...)
{
	char why[ZM_ERROR_MAX / 2];
	va_list ap;

	if (!e)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (n)
		snprintf(e->msg, sizeof(e->msg), "%.200s:%u:%u: %.200s: %s",
			 f ? f->name : "-", n->line, n->col, path, why);
	else
		snprintf(e->msg, sizeof(e->msg), "%.200s: %.200s: %s", f ? f->name : "-", path, why);
	return -EINVAL;
}
