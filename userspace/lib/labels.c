// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "zmesh/labels.h"

const char *zm_labels_get(const struct zm_labels *l, const char *key)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->kv[i].key, key))
			return l->kv[i].val;
	return NULL;
}

int zm_labels_set(struct zm_labels *l, const char *key, const char *val)
{
	char *v = strdup(val), *k;
	struct zm_kv *kv;

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < l->n; i++) {
		if (!strcmp(l->kv[i].key, key)) {
			free(l->kv[i].val);
			l->kv[i].val = v;
			return 0;
		}
	}
	k = strdup(key);
	kv = realloc(l->kv, (l->n + 1) * sizeof(*kv));
	if (!k || !kv) {
		free(k);
		free(v);
		if (kv)
			l->kv = kv;
		return -ENOMEM;
	}
	l->kv = kv;
	l->kv[l->n].key = k;
	l->kv[l->n].val = v;
	l->n++;
	return 0;
}

int zm_labels_del(struct zm_labels *l, const char *key)
{
	for (size_t i = 0; i < l->n; i++) {
		if (!strcmp(l->kv[i].key, key)) {
			free(l->kv[i].key);
			free(l->kv[i].val);
			l->kv[i] = l->kv[--l->n];
			return 0;
		}
	}
	return -ENOENT;
}

void zm_labels_free(struct zm_labels *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->kv[i].key);
		free(l->kv[i].val);
	}
	free(l->kv);
	l->kv = NULL;
	l->n = 0;
}

bool zm_labels_match(const struct zm_labels *sel, const struct zm_labels *l)
{
	for (size_t i = 0; i < sel->n; i++) {
		const char *v = zm_labels_get(l, sel->kv[i].key);

		if (!v || strcmp(v, sel->kv[i].val))
			return false;
	}
	return true;
}

bool zm_enroll_wanted(const struct zm_labels *ns, const struct zm_labels *pod)
{
	const char *p = zm_labels_get(pod, "istio.io/dataplane-mode");
	const char *n = zm_labels_get(ns, "istio.io/dataplane-mode");

	if (p)
		return !strcmp(p, "ambient");
	return n && !strcmp(n, "ambient");
}
