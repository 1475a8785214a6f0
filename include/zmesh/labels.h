/* SPDX-License-Identifier: Apache-2.0 */
/* Kubernetes labels: an ordered list of key=value, and selectors over it. */
#ifndef ZMESH_LABELS_H
#define ZMESH_LABELS_H

#include <stdbool.h>
#include <stddef.h>

struct zm_kv {
	char *key;
	char *val;
};

struct zm_labels {
	struct zm_kv *kv;
	size_t n;
};

const char *zm_labels_get(const struct zm_labels *l, const char *key);
int zm_labels_set(struct zm_labels *l, const char *key, const char *val);
/* 0 when removed, -ENOENT when absent. */
int zm_labels_del(struct zm_labels *l, const char *key);
void zm_labels_free(struct zm_labels *l);
/* True when every selector entry is in @l with the same value. */
bool zm_labels_match(const struct zm_labels *selector, const struct zm_labels *l);

/*
 * Istio ambient enrolment: a pod is captured when its namespace is labelled
 * istio.io/dataplane-mode=ambient, unless the pod itself says
 * istio.io/dataplane-mode=none. (A pod labelled ambient in a namespace that
 * is not is enrolled too, as Istio allows.)
 */
bool zm_enroll_wanted(const struct zm_labels *ns_labels, const struct zm_labels *pod_labels);

#endif
