/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The config model and its validation (Istio's Galley role).
 *
 * Kubernetes manifests (one file, several files or a directory of *.yaml /
 * *.yml, several documents per file) are read into a config set: one
 * struct zm_cfg_obj per document, typed after include/zmesh/istio.h for the
 * Istio kinds, metadata-only (the rest kept as JSON) for the core kinds.
 *
 * Reading is schema-driven (one table per Istio message, config_schema.c):
 * unknown fields, wrong types, misspelt enums, missing required fields and
 * bad values (durations, percentages, regexes, host names, CIDRs, JWKS...)
 * become errors; cross-document rules (weights, subsets, gateways,
 * duplicates) are checked by zm_cfg_validate(). Every error is kept, not
 * only the first, each as
 *
 *   payment.yaml:14:9: spec.http[0].route[1].weight: weights sum to 110, want 100
 *
 * This module is pure: it reads files and builds memory, nothing is applied
 * anywhere. The store builds atomic applies on top: load the apply into a
 * set, zm_cfg_validate() it against the current state, and only then swap.
 *
 * Limits: at most ZM_CFG_MAX_ERRORS errors are kept per set (then one
 * "too many errors" line); YAML limits are those of zmesh/yaml.h.
 */
#ifndef ZMESH_CONFIG_H
#define ZMESH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zmesh/istio.h"

struct json_t;

#define ZM_CFG_MAX_ERRORS 1000
#define ZM_CFG_MAX_FILES 10000		/* per directory */

enum zm_kind {
	/* core (v1) */
	ZM_K_NAMESPACE,
	ZM_K_POD,
	ZM_K_SERVICE,
	ZM_K_SERVICEACCOUNT,
	ZM_K_NODE,
	ZM_K_SECRET,
	/* networking.istio.io */
	ZM_K_VIRTUALSERVICE,
	ZM_K_DESTINATIONRULE,
	ZM_K_GATEWAY,
	ZM_K_SERVICEENTRY,
	/* security.istio.io */
	ZM_K_PEERAUTHENTICATION,
	ZM_K_AUTHORIZATIONPOLICY,
	ZM_K_REQUESTAUTHENTICATION,
	ZM_K__COUNT
};

/* "VirtualService"...; NULL for an out-of-range kind. */
const char *zm_kind_name(enum zm_kind k);
/* Kind by its name (case-sensitive, as Kubernetes), or -ENOENT. */
int zm_kind_parse(const char *name);
/* True for Namespace and Node (no metadata.namespace). */
bool zm_kind_cluster_scoped(enum zm_kind k);
/* True for the Istio kinds (typed spec), false for the core ones (raw). */
bool zm_kind_is_istio(enum zm_kind k);

struct zm_cfg_obj {
	enum zm_kind kind;
	char *api_version;		/* as written, e.g. "networking.istio.io/v1beta1" */
	char *file;			/* source file name as given */
	struct zm_cpos pos;		/* start of the document */
	struct zm_object_meta meta;
	union {				/* the typed spec of an Istio kind (never NULL for those) */
		void *spec;
		struct zm_virtual_service *vs;
		struct zm_destination_rule *dr;
		struct zm_gateway *gw;
		struct zm_service_entry *se;
		struct zm_peer_authentication *pa;
		struct zm_authorization_policy *ap;
		struct zm_request_authentication *ra;
	};
	/* Core kinds: the whole document as JSON (jansson), for the store and
	 * the lab; NULL for Istio kinds. */
	struct json_t *raw;
};

struct zm_cfg_err {
	char *file;			/* NULL when not tied to a file */
	uint32_t line, col;		/* 0 when unknown */
	char *path;			/* field path, e.g. "spec.http[0].timeout"; may be "" */
	char *msg;			/* why */
	char *text;			/* "file:line:col: path: msg", what to print */
};

struct zm_cfg_set {
	struct zm_cfg_obj **objs;
	size_t nobjs;
	size_t ndocs;			/* documents read, empty ones excluded */
	struct zm_cfg_err *errs;
	size_t nerrs;
	bool errs_truncated;
	/* private */
	size_t capobjs, caperrs;
};

void zm_cfg_set_init(struct zm_cfg_set *s);
void zm_cfg_set_free(struct zm_cfg_set *s);

/*
 * Read @path into @s: a file, or a directory whose *.yaml and *.yml files
 * (not recursive, sorted by name) are all read. Documents that fail to read
 * are not added; their errors are. Returns 0 when no error was added,
 * -EINVAL when errors were (see s->errs), another negative errno for a
 * failure outside the documents (ENOMEM).
 */
int zm_cfg_load_path(struct zm_cfg_set *s, const char *path);
/* The same for one file, and for a buffer named @name in errors. */
int zm_cfg_load_file(struct zm_cfg_set *s, const char *path);
int zm_cfg_load_buf(struct zm_cfg_set *s, const char *name, const char *buf, size_t len);

/*
 * Cross-document checks over @s (duplicates by kind/namespace/name, route
 * weights, VirtualService subsets that a DestinationRule for the host must
 * define, gateway references). References resolve against @s, plus
 * @base when not NULL (the store's current state) for objects @s does not
 * replace. Appends errors to @s; returns -EINVAL when @s has any error
 * (including earlier read errors), else 0.
 */
int zm_cfg_validate(struct zm_cfg_set *s, const struct zm_cfg_set *base);

/* Order s->errs by file, line and column (stable), as a reader expects. */
void zm_cfg_sort_errors(struct zm_cfg_set *s);

/* Find an object, or NULL. @ns is ignored for cluster-scoped kinds. */
struct zm_cfg_obj *zm_cfg_find(const struct zm_cfg_set *s, enum zm_kind kind,
			       const char *ns, const char *name);

/* Move the objects of @from to the end of @to (errors stay). 0 or -ENOMEM. */
int zm_cfg_set_take(struct zm_cfg_set *to, struct zm_cfg_set *from);
/* Remove @s->objs[i] from the set and return it (caller frees). */
struct zm_cfg_obj *zm_cfg_set_remove(struct zm_cfg_set *s, size_t i);

void zm_cfg_obj_free(struct zm_cfg_obj *o);

/*
 * The object as a Kubernetes JSON document (apiVersion, kind, metadata,
 * spec), only fields that were written (defaults are not materialised), so
 * it reads back to the same object. New reference; NULL on ENOMEM.
 */
struct json_t *zm_cfg_obj_to_json(const struct zm_cfg_obj *o);

/* ---- helpers for consumers and validators ---------------------------------- */

/*
 * Parse a duration as Istio accepts it: a sequence of <decimal><unit>, units
 * h, m, s, ms, us (or µs), ns, e.g. "10s", "1.5s", "500ms", "1h30m"; "0" alone
 * is zero. Returns 0 and *ns, or -EINVAL (-ERANGE on overflow).
 */
int zm_duration_parse(const char *s, int64_t *ns);
/* Format @ns the way zm_duration_parse reads it back ("1.5s", "500ms"). */
void zm_duration_format(int64_t ns, char *out, size_t outsz);

/*
 * Check @re against RE2's syntax (what Envoy and Istio accept): NULL when
 * fine, else a static message ("backreferences are not supported in RE2",
 * "missing closing )"...). No engine is run.
 */
const char *zm_regex_check(const char *re);

/*
 * Host names. zm_host_check: FQDN or short name of DNS labels, optionally
 * starting with "*." (or exactly "*" when @allow_star); NULL or a static
 * message. zm_host_fqdn: a short name ("reviews") completed
 * relative to @ns as Istio does: a name without a dot becomes
 * "reviews.<ns>.svc.cluster.local"; names with a dot and wildcards are kept.
 */
const char *zm_host_check(const char *host, bool allow_star);
void zm_host_fqdn(const char *host, const char *ns, char *out, size_t outsz);
/* True when host @h is covered by pattern @pat ("*.example.com", "*"). */
bool zm_host_match(const char *pat, const char *h);

/* IPv4/IPv6 address or CIDR: NULL or a static message. */
const char *zm_cidr_check(const char *s);

/* The value of @key in a map, or NULL. */
const char *zm_cmap_get(const zm_cmap *m, const char *key);

#endif /* ZMESH_CONFIG_H */
