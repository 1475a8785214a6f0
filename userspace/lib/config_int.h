/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to the config model (config*.c): the schema tables and the
 * schema-driven reader that walks a YAML tree with them.
 */
#ifndef ZMESH_CONFIG_INT_H
#define ZMESH_CONFIG_INT_H

#include <stdarg.h>
#include <stdint.h>

#include "zmesh/config.h"
#include "zmesh/yaml.h"

enum zm_ctype {
	ZM_CT_STR,		/* struct zm_cstr */
	ZM_CT_BOOL,		/* struct zm_cbool */
	ZM_CT_INT,		/* struct zm_cint, [min, max] */
	ZM_CT_DBL,		/* struct zm_cdbl, [dmin, dmax] */
	ZM_CT_DUR,		/* struct zm_cdur, >= 1ms, whole ms (Istio's ValidateDuration) */
	ZM_CT_ENUM,		/* struct zm_cenum, names in enums[] (index = value) */
	ZM_CT_OBJ,		/* embedded message described by sub */
	ZM_CT_LIST,		/* ZM_CLIST of elem */
	ZM_CT_MAP,		/* ZM_CLIST of { struct zm_cstr key; elem val; } */
	ZM_CT_IGNORE,		/* accepted and dropped (metadata.uid, status...) */
};

#define ZM_CF_REQUIRED 0x01	/* error when absent */
#define ZM_CF_NONEMPTY 0x02	/* lists/maps/strings: error when present but empty */
#define ZM_CF_ZERO_OK 0x04	/* durations: 0 allowed */

struct zm_crd;
struct zm_cfield;

struct zm_cschema {
	const char *name;		/* Istio's message name, for messages */
	size_t size;
	const struct zm_cfield *fields;	/* ends with a NULL name */
	/* Object-level rules (one-of, cross-field); runs after the fields. */
	void (*check)(struct zm_crd *r, void *obj);
};

struct zm_cfield {
	const char *name;
	uint8_t type;
	uint8_t flags;
	uint32_t off;
	const struct zm_cschema *sub;		/* ZM_CT_OBJ */
	const struct zm_cfield *elem;		/* ZM_CT_LIST / ZM_CT_MAP values */
	const char *const *enums;		/* ZM_CT_ENUM, NULL-terminated */
	int64_t min, max;			/* ZM_CT_INT */
	double dmin, dmax;			/* ZM_CT_DBL */
	bool has_def;
	int64_t def;				/* INT, ENUM, BOOL, DUR (ns) */
	double ddef;				/* DBL */
	/* Value rule for strings (and map keys with kcheck): NULL or why not. */
	const char *(*scheck)(const char *s);
	const char *(*kcheck)(const char *key);
	/* Value rule with access to the reader (errors with positions). */
	void (*check)(struct zm_crd *r, const void *val);
};

/* Offset of the value in a map entry { struct zm_cstr key; T val; }. */
#define ZM_CMAP_VAL_OFF 16
_Static_assert(sizeof(struct zm_cstr) == ZM_CMAP_VAL_OFF, "map entry layout");

struct zm_crd {
	struct zm_cfg_set *set;
	const char *file;
	struct zm_cfg_obj *obj;		/* the object being read (its namespace...) */
	char path[768];
	size_t plen;
	size_t nerr;			/* errors added while reading this object */
};

/* Add one error; @path may be NULL (""). */
void zm_cfg_add_err(struct zm_cfg_set *s, const char *file, struct zm_cpos pos,
		    const char *path, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void zm_cfg_add_verr(struct zm_cfg_set *s, const char *file, struct zm_cpos pos,
		     const char *path, const char *fmt, va_list ap)
	__attribute__((format(printf, 5, 0)));

/* An error at the reader's current path, plus @sub (".field" or "[i]" is
 * added as needed; NULL: the path itself). */
void zm_crd_err(struct zm_crd *r, struct zm_cpos pos, const char *sub, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

size_t zm_crd_push(struct zm_crd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void zm_crd_pop(struct zm_crd *r, size_t old);

/* Read @n (a mapping, or null for absent) into @dst described by @s. */
void zm_cread_obj(struct zm_crd *r, const struct zm_cschema *s, const struct zm_ynode *n, void *dst);
/* Put the schema defaults into a zeroed @dst (recursively into messages). */
void zm_cinit_obj(const struct zm_cschema *s, void *dst);
void zm_cfree_obj(const struct zm_cschema *s, void *p);
struct json_t *zm_cobj_json(const struct zm_cschema *s, const void *p);
/* A YAML tree as JSON: plain scalars become null/bool/number when they look like one. */
struct json_t *zm_ynode_json(const struct zm_ynode *n);

static inline struct zm_cpos zm_ypos(const struct zm_ynode *n)
{
	struct zm_cpos p = { 0, 0 };

	if (n) {
		p.line = n->line;
		p.col = n->col;
	}
	return p;
}

/* Schemas of the kinds (config_schema.c). */
extern const struct zm_cschema zm_cs_meta, zm_cs_virtual_service, zm_cs_destination_rule,
	zm_cs_gateway, zm_cs_service_entry, zm_cs_peer_authentication,
	zm_cs_authorization_policy, zm_cs_request_authentication;

/* Checks shared by the schema and the set (config_util.c). NULL or why not. */
const char *zm_dns_label_check(const char *s);		/* RFC 1123 label, <= 63 */
const char *zm_dns_subdomain_check(const char *s);	/* RFC 1123 subdomain, <= 253 */
const char *zm_label_key_check(const char *s);
const char *zm_label_value_check(const char *s);
const char *zm_header_name_check(const char *s);	/* an HTTP token */
const char *zm_port_str_check(const char *s);		/* "1".."65535" */
const char *zm_ip_check(const char *s);			/* an address, no prefix */
const char *zm_gateway_ref_check(const char *s);	/* "mesh", "name", "ns/name" */
const char *zm_export_to_check(const char *s);
const char *zm_policy_value_check(const char *s);	/* "*" only first, last or alone */

#endif /* ZMESH_CONFIG_INT_H */
