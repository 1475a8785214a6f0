/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What zmeshctl apply, delete, get and describe share: where the store is,
 * kubectl's kind names, kubectl-style resource names, YAML output.
 */
#ifndef ZMESHCTL_STORE_CLI_H
#define ZMESHCTL_STORE_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "zmesh/config.h"

struct json_t;

/* Options common to the store commands; parse with zmctl_store_opt(). */
struct zmctl_store_opts {
	const char *store;	/* --store DIR */
	const char *lab;	/* --name LAB */
	const char *ns;		/* -n NS */
	bool all_ns;		/* -A */
	const char *output;	/* -o FMT */
	const char *files[64];	/* -f FILE|DIR */
	size_t nfiles;
};

/*
 * If argv[*i] is one of the common options, consume it (and its value) and
 * return 1; 0 when it is not one; -1 (after printing why) when its value is
 * missing or there are too many -f.
 */
int zmctl_store_opt(const char *cmd, int argc, char **argv, int *i, struct zmctl_store_opts *o);

/*
 * The store directory: --store, else $ZMESH_STORE, else the lab's store
 * (/run/zmesh/lab/<lab>/store) for --name or $ZMESH_LAB, else
 * ZM_STORE_DEFAULT_DIR. Prints why and returns -1 on a bad lab name or a
 * lab that is not up.
 */
int zmctl_store_dir(const char *cmd, const struct zmctl_store_opts *o, char *out, size_t sz);

/* A kind as kubectl takes it: case-insensitive, singular, plural or short
 * name (vs, dr, gw, se, pa, ap, ra, ns, po, svc, sa, no), optionally with
 * its API group ("virtualservices.networking.istio.io"). -ENOENT if none. */
int zmctl_kind_parse(const char *s);

/* "virtualservice.networking.istio.io" / "pod": what kubectl prints before
 * "/name created"; and the plural form used in "not found" messages. */
const char *zmctl_kind_resource(enum zm_kind k);
const char *zmctl_kind_plural(enum zm_kind k);

/*
 * -n NS with -f: documents without a namespace get @ns; one that names
 * another is an error (printed as file:line:col). 0, or -1 after printing.
 */
int zmctl_set_namespace(const char *cmd, struct zm_cfg_set *s, const char *ns);

/* Print the errors of @s (sorted), one "file:line:col: path: message" line each, to @f. */
void zmctl_print_errors(FILE *f, struct zm_cfg_set *s);

/* Write @j as a YAML document (block style, strings quoted when they would
 * read back as something else). 0 or -1. */
int zmctl_yaml_print(FILE *f, struct json_t *j);

#endif
