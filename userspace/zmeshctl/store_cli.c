// SPDX-License-Identifier: Apache-2.0
/* Helpers shared by the store commands (apply, delete, get, describe). */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

#include "store_cli.h"
#include "zmesh/lab.h"
#include "zmesh/store.h"

int zmctl_store_opt(const char *cmd, int argc, char **argv, int *i, struct zmctl_store_opts *o)
{
	const char *a = argv[*i];
	const char **dst = NULL;

	if (!strcmp(a, "-A") || !strcmp(a, "--all-namespaces")) {
		o->all_ns = true;
		return 1;
	}
	if (!strcmp(a, "--store"))
		dst = &o->store;
	else if (!strcmp(a, "--name"))
		dst = &o->lab;
	else if (!strcmp(a, "-n") || !strcmp(a, "--namespace"))
		dst = &o->ns;
	else if (!strcmp(a, "-o") || !strcmp(a, "--output"))
		dst = &o->output;
	else if (!strcmp(a, "-f") || !strcmp(a, "--filename"))
		dst = &o->files[o->nfiles];
	else
		return 0;
	if (*i + 1 >= argc) {
		fprintf(stderr, "zmeshctl %s: %s needs a value\n", cmd, a);
		return -1;
	}
	if (dst == &o->files[o->nfiles]) {
		if (o->nfiles == sizeof(o->files) / sizeof(o->files[0])) {
			fprintf(stderr, "zmeshctl %s: too many -f\n", cmd);
			return -1;
		}
		o->nfiles++;
	}
	*dst = argv[++*i];
	return 1;
}

int zmctl_store_dir(const char *cmd, const struct zmctl_store_opts *o, char *out, size_t sz)
{
	const char *lab = o->lab ? o->lab : getenv("ZMESH_LAB");
	struct zm_error e = { 0 };

	if (o->store) {
		snprintf(out, sz, "%s", o->store);
	} else if (getenv("ZMESH_STORE") && *getenv("ZMESH_STORE")) {
		snprintf(out, sz, "%s", getenv("ZMESH_STORE"));
	} else if (lab && *lab) {
		if (zm_lab_name_check(lab, &e)) {
			fprintf(stderr, "zmeshctl %s: %s\n", cmd, e.msg);
			return -1;
		}
		/* A store made for a lab that is not up would be wiped by its `up`. */
		snprintf(out, sz, "%s/%s/state.json", ZM_LAB_STATE_ROOT, lab);
		if (access(out, F_OK)) {
			fprintf(stderr, "zmeshctl %s: lab %s is not up (no %s)\n", cmd, lab, out);
			return -1;
		}
		snprintf(out, sz, "%s/%s/%s", ZM_LAB_STATE_ROOT, lab, ZM_LAB_STORE);
	} else {
		snprintf(out, sz, "%s", ZM_STORE_DEFAULT_DIR);
	}
	return 0;
}

static const struct {
	enum zm_kind kind;
	const char *plural, *shortname, *group;
} names[] = {
	{ ZM_K_NAMESPACE, "namespaces", "ns", NULL },
	{ ZM_K_POD, "pods", "po", NULL },
	{ ZM_K_SERVICE, "services", "svc", NULL },
	{ ZM_K_SERVICEACCOUNT, "serviceaccounts", "sa", NULL },
	{ ZM_K_NODE, "nodes", "no", NULL },
	{ ZM_K_SECRET, "secrets", NULL, NULL },
	{ ZM_K_VIRTUALSERVICE, "virtualservices", "vs", "networking.istio.io" },
	{ ZM_K_DESTINATIONRULE, "destinationrules", "dr", "networking.istio.io" },
	{ ZM_K_GATEWAY, "gateways", "gw", "networking.istio.io" },
	{ ZM_K_SERVICEENTRY, "serviceentries", "se", "networking.istio.io" },
	{ ZM_K_PEERAUTHENTICATION, "peerauthentications", "pa", "security.istio.io" },
	{ ZM_K_AUTHORIZATIONPOLICY, "authorizationpolicies", "ap", "security.istio.io" },
	{ ZM_K_REQUESTAUTHENTICATION, "requestauthentications", "ra", "security.istio.io" },
};
#define NNAMES (sizeof(names) / sizeof(names[0]))

int zmctl_kind_parse(const char *s)
{
	const char *dot = strchr(s, '.');
	size_t len = dot ? (size_t)(dot - s) : strlen(s);

	for (size_t i = 0; i < NNAMES; i++) {
		const char *kn = zm_kind_name(names[i].kind);
		bool hit = (strlen(kn) == len && !strncasecmp(kn, s, len)) ||
			   (strlen(names[i].plural) == len && !strncasecmp(names[i].plural, s, len)) ||
			   (names[i].shortname && strlen(names[i].shortname) == len &&
			    !strncasecmp(names[i].shortname, s, len));

		if (!hit)
			continue;
		/* "vs.networking.istio.io": the group must be the kind's. */
		if (dot && (!names[i].group || strcasecmp(dot + 1, names[i].group)))
			return -ENOENT;
		return names[i].kind;
	}
	return -ENOENT;
}

const char *zmctl_kind_resource(enum zm_kind k)
{
	static char buf[ZM_K__COUNT][64];

	for (size_t i = 0; i < NNAMES; i++) {
		if (names[i].kind != k)
			continue;
		if (!buf[k][0]) {
			const char *kn = zm_kind_name(k);
			size_t j = 0;

			for (; kn[j] && j < 40; j++)
				buf[k][j] = (char)(kn[j] >= 'A' && kn[j] <= 'Z' ? kn[j] + 32 : kn[j]);
			buf[k][j] = 0;
			if (names[i].group)
				snprintf(buf[k] + j, sizeof(buf[k]) - j, ".%s", names[i].group);
		}
		return buf[k];
	}
	return "unknown";
}

const char *zmctl_kind_plural(enum zm_kind k)
{
	static char buf[ZM_K__COUNT][64];

	for (size_t i = 0; i < NNAMES; i++) {
		if (names[i].kind != k)
			continue;
		if (!buf[k][0])
			snprintf(buf[k], sizeof(buf[k]), "%s%s%s", names[i].plural,
				 names[i].group ? "." : "", names[i].group ? names[i].group : "");
		return buf[k];
	}
	return "unknown";
}

/* RFC 1123 label, as the config model checks metadata.namespace. */
static bool ns_ok(const char *ns)
{
	size_t n = strlen(ns);

	if (!n || n > 63 || ns[0] == '-' || ns[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((ns[i] >= 'a' && ns[i] <= 'z') || (ns[i] >= '0' && ns[i] <= '9') || ns[i] == '-'))
			return false;
	return true;
}

int zmctl_set_namespace(const char *cmd, struct zm_cfg_set *s, const char *ns)
{
	int bad = 0;

	if (!ns_ok(ns)) {
		fprintf(stderr, "zmeshctl %s: --namespace \"%s\": want an RFC 1123 label "
			"(a-z, 0-9, '-', at most 63)\n", cmd, ns);
		return -1;
	}

	for (size_t i = 0; i < s->nobjs; i++) {
		struct zm_cfg_obj *o = s->objs[i];
		char *dup;

		if (zm_kind_cluster_scoped(o->kind))
			continue;
		/* Written in the document (it has a position): must agree, as kubectl wants. */
		if (o->meta.ns.pos.line) {
			if (strcmp(o->meta.ns.v, ns)) {
				fprintf(stderr, "%s:%u:%u: metadata.namespace: \"%s\" does not match "
					"--namespace %s\n", o->file, o->meta.ns.pos.line, o->meta.ns.pos.col,
					o->meta.ns.v, ns);
				bad++;
			}
			continue;
		}
		dup = strdup(ns);
		if (!dup) {
			fprintf(stderr, "zmeshctl %s: out of memory\n", cmd);
			return -1;
		}
		free(o->meta.ns.v);
		o->meta.ns.v = dup;
	}
	if (bad)
		fprintf(stderr, "%d error%s: nothing %s\n", bad, bad == 1 ? "" : "s",
			!strcmp(cmd, "delete") ? "deleted" : "applied");
	return bad ? -1 : 0;
}

void zmctl_print_errors(FILE *f, struct zm_cfg_set *s)
{
	zm_cfg_sort_errors(s);
	for (size_t i = 0; i < s->nerrs; i++)
		fprintf(f, "%s\n", s->errs[i].text);
	if (s->errs_truncated)
		fprintf(f, "too many errors (only the first %d shown)\n", ZM_CFG_MAX_ERRORS);
}

/* ---- YAML output ------------------------------------------------------------------------ */

/* Plain only when a YAML 1.1 reader (libyaml, PyYAML, kubectl) reads it back
 * as this same string: no number, bool, null look-alikes, no indicators. */
static bool plain_ok(const char *s, size_t len)
{
	static const char *const words[] = { "true", "false", "yes", "no", "on", "off", "y", "n",
					     "null", "~", NULL };

	if (!len || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '/'))
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == '_' || c == '/'))
			return false;
	}
	for (int i = 0; words[i]; i++)
		if (strlen(words[i]) == len && !strncasecmp(words[i], s, len))
			return false;
	return true;
}

static int emit_scalar(yaml_emitter_t *em, const char *s, size_t len, bool as_string)
{
	yaml_event_t ev;
	yaml_scalar_style_t style = YAML_PLAIN_SCALAR_STYLE;

	if (as_string && !plain_ok(s, len))
		style = YAML_DOUBLE_QUOTED_SCALAR_STYLE;
	if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)len, 1, 1, style))
		return -1;
	return yaml_emitter_emit(em, &ev) ? 0 : -1;
}

static int emit(yaml_emitter_t *em, json_t *j)
{
	yaml_event_t ev;
	char num[64];
	int n;

	switch (json_typeof(j)) {
	case JSON_OBJECT: {
		const char *key;
		json_t *v;

		if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE) ||
		    !yaml_emitter_emit(em, &ev))
			return -1;
		json_object_foreach(j, key, v) {
			if (emit_scalar(em, key, strlen(key), true) || emit(em, v))
				return -1;
		}
		if (!yaml_mapping_end_event_initialize(&ev))
			return -1;
		return yaml_emitter_emit(em, &ev) ? 0 : -1;
	}
	case JSON_ARRAY: {
		size_t i;
		json_t *v;

		if (!yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE) ||
		    !yaml_emitter_emit(em, &ev))
			return -1;
		json_array_foreach(j, i, v) {
			if (emit(em, v))
				return -1;
		}
		if (!yaml_sequence_end_event_initialize(&ev))
			return -1;
		return yaml_emitter_emit(em, &ev) ? 0 : -1;
	}
	case JSON_STRING:
		return emit_scalar(em, json_string_value(j), json_string_length(j), true);
	case JSON_INTEGER:
		n = snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(j));
		return emit_scalar(em, num, (size_t)n, false);
	case JSON_REAL:
		n = snprintf(num, sizeof(num), "%.17g", json_real_value(j));
		/* Keep it a float when read back ("1" would be an integer). */
		if (!strpbrk(num, ".eEn"))
			n = snprintf(num, sizeof(num), "%.1f", json_real_value(j));
		return emit_scalar(em, num, (size_t)n, false);
	case JSON_TRUE:
		return emit_scalar(em, "true", 4, false);
	case JSON_FALSE:
		return emit_scalar(em, "false", 5, false);
	case JSON_NULL:
	default:
		return emit_scalar(em, "null", 4, false);
	}
}

int zmctl_yaml_print(FILE *f, json_t *j)
{
	yaml_emitter_t em;
	yaml_event_t ev;
	int rc = -1;

	if (!yaml_emitter_initialize(&em))
		return -1;
	yaml_emitter_set_output_file(&em, f);
	yaml_emitter_set_unicode(&em, 1);
	yaml_emitter_set_width(&em, -1);
	if (!yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) || !yaml_emitter_emit(&em, &ev))
		goto out;
	if (!yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) || !yaml_emitter_emit(&em, &ev))
		goto out;
	if (emit(&em, j))
		goto out;
	if (!yaml_document_end_event_initialize(&ev, 1) || !yaml_emitter_emit(&em, &ev))
		goto out;
	if (!yaml_stream_end_event_initialize(&ev) || !yaml_emitter_emit(&em, &ev))
		goto out;
	rc = yaml_emitter_flush(&em) ? 0 : -1;
out:
	yaml_emitter_delete(&em);
	return rc;
}
