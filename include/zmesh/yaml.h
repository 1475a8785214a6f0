/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A YAML document tree with source positions, built on libyaml.
 *
 * Kubernetes manifests are read into this tree first; typed readers (the lab's
 * cluster file, the Istio config model) walk it and report errors as
 * "file:line:col: field.path: why" through zm_ynode_error().
 *
 * Limits, so hostile input fails cleanly instead of exhausting memory:
 * aliases (and so alias bombs) are rejected, nesting is capped at
 * ZM_YAML_MAX_DEPTH, a file at ZM_YAML_MAX_BYTES, nodes per file at
 * ZM_YAML_MAX_NODES. Duplicate keys in a mapping are an error.
 */
#ifndef ZMESH_YAML_H
#define ZMESH_YAML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zmesh/log.h"

#define ZM_YAML_MAX_DEPTH 64
#define ZM_YAML_MAX_BYTES (16u << 20)
#define ZM_YAML_MAX_NODES 1000000u

enum zm_ynode_kind {
	ZM_Y_SCALAR,
	ZM_Y_MAP,
	ZM_Y_SEQ,
};

struct zm_ynode {
	enum zm_ynode_kind kind;
	unsigned line, col;	/* 1-based position of the node's start */
	/* ZM_Y_SCALAR: the text, NUL-terminated; len excludes the NUL (the
	 * text may hold NULs from escapes: compare with len). */
	char *str;
	size_t len;
	bool plain;		/* unquoted scalar: may be a number, bool or null */
	/* ZM_Y_MAP: n pairs keys[i] -> items[i] (keys are scalars);
	 * ZM_Y_SEQ: n items. */
	struct zm_ynode **keys;
	struct zm_ynode **items;
	size_t n;
};

struct zm_ydoc {
	struct zm_ynode *root;	/* NULL for an empty document */
};

struct zm_yfile {
	char *name;		/* as given; used in error messages */
	struct zm_ydoc *docs;
	size_t ndocs;
	/* private: every node of the file, for freeing */
	struct zm_ynode **all;
	size_t nall, capall;
};

/* Parse every document of @path. On error returns a negative errno and
 * e->msg is "path:line:col: why"; *out is left empty. */
int zm_yaml_load_file(const char *path, struct zm_yfile *out, struct zm_error *e);
/* The same for a buffer; @name stands in for the file name in errors. */
int zm_yaml_load_buf(const char *name, const char *buf, size_t len,
		     struct zm_yfile *out, struct zm_error *e);
void zm_yaml_free(struct zm_yfile *f);

/* Value of @key in mapping @map, or NULL (also when @map is not a mapping). */
struct zm_ynode *zm_ymap_get(const struct zm_ynode *map, const char *key);

/* Scalar helpers. Each returns 0, or -EINVAL when the node has the wrong
 * type (not a scalar, quoted where a number is wanted, out of range). */
bool zm_ynode_is_null(const struct zm_ynode *n);	/* absent, ~, null, empty plain */
int zm_ynode_bool(const struct zm_ynode *n, bool *out);	/* true/false only */
int zm_ynode_int(const struct zm_ynode *n, int64_t min, int64_t max, int64_t *out);
/* A scalar that is text: any quoted scalar, or a plain one. */
bool zm_ynode_is_str(const struct zm_ynode *n);
/* Exact, length-checked comparison of a scalar with @s. */
bool zm_ynode_eq(const struct zm_ynode *n, const char *s);

/*
 * Format "file:line:col: path: why" into e (when not NULL) and return -EINVAL.
 * @path is the field path, e.g. "spec.http[0].route[1].weight"; @n gives the
 * position (may be NULL: then line:col are omitted).
 */
int zm_ynode_error(struct zm_error *e, const struct zm_yfile *f,
		   const struct zm_ynode *n, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

#endif /* ZMESH_YAML_H */
