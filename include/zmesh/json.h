/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Writing JSON into a struct zm_buf without building a tree: for hot paths
 * (echoapp answers, access logs) where jansson's per-value allocations cost
 * too much. Parsing and anything not hot stays with jansson.
 *
 * Every function appends to @b and returns 0 or -ENOMEM. Strings come with
 * explicit lengths and may hold any bytes, attacker-controlled included:
 * quotes, backslashes and control bytes are escaped, valid UTF-8 is copied,
 * and each byte of invalid UTF-8 becomes \u00XX (read as Latin-1), so the
 * output is always valid JSON and valid UTF-8.
 */
#ifndef ZMESH_JSON_H
#define ZMESH_JSON_H

#include <stddef.h>

#include "zmesh/buf.h"

/* A quoted, escaped JSON string. */
int zm_json_str(struct zm_buf *b, const char *s, size_t len);
/* The same escaping without the quotes: to build one string from pieces. */
int zm_json_escape(struct zm_buf *b, const char *s, size_t len);
/* "key":"value" for C strings, preceded by "," unless @first. */
int zm_json_kv_str(struct zm_buf *b, int first, const char *key, const char *val);
/* "key":number, preceded by "," unless @first. */
int zm_json_kv_int(struct zm_buf *b, int first, const char *key, long long val);

#endif /* ZMESH_JSON_H */
