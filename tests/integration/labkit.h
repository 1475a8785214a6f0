/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What integration tests do to a lab, once: name it and write its cluster
 * YAML (two nodes, namespaces, echoapp pods), bring it up and down, find
 * zmeshctl, wait for a node's ztunnel to be ready, run a command in a pod
 * (retried while its apps start) or outside, poll a command until it says
 * what is wanted, apply config, read a node's Prometheus page and one sample
 * from it, find a node's ztunnel, a pod's IP, write a TLS Secret.
 */
#ifndef ZMESH_TESTS_LABKIT_H
#define ZMESH_TESTS_LABKIT_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "../harness/test.h"

/* <build>/zmeshctl, the one the tests were built with. */
static inline const char *lab_ctl(void)
{
	static char ctl[4200];

	if (!ctl[0])
		snprintf(ctl, sizeof(ctl), "%s/zmeshctl", test_build_dir());
	return ctl;
}

/* 0 once @node's ztunnel answers /healthz/ready (15 s at most), else -1. */
static inline int lab_wait_ready(const char *lab, const char *node)
{
	for (int i = 0; i < 150; i++) {
		if (test_sh(NULL, 0, "%s lab exec --node %s --name %s -- curl -sf localhost:15021/healthz/ready",
			    lab_ctl(), node, lab) == 0)
			return 0;
		usleep(100000);
	}
	return -1;
}

/* Run @cmd in @node's netns; its exit status, output in @out. */
static inline int lab_on_node(const char *lab, const char *node, char *out, size_t sz, const char *cmd)
{
	return test_sh(out, sz, "%s lab exec --node %s --name %s -- %s", lab_ctl(), node, lab, cmd);
}

/* Run @cmd in pod @ns/@pod, retried for 3 s while it fails; its exit
 * status, output in @out. */
static inline int lab_in_pod(const char *lab, const char *pod, const char *ns, char *out, size_t sz,
			     const char *cmd)
{
	int rc = -1;

	for (int i = 0; i < 30 && rc; i++) {
		rc = test_sh(out, sz, "%s lab exec %s -n %s --name %s -- %s", lab_ctl(), pod, ns, lab, cmd);
		if (rc)
			usleep(100000);
	}
	return rc;
}

/* @node's ztunnel /metrics, samples only (no # lines). */
static inline void lab_metrics(const char *lab, const char *node, char *out, size_t sz)
{
	test_sh(out, sz, "%s lab exec --node %s --name %s -- curl -s localhost:15020/metrics | grep -v '^#'",
		lab_ctl(), node, lab);
}

/* The value of the sample line starting with @series (name{labels} and a
 * space) in @all, or -1. */
static inline long long lab_metric(const char *all, const char *series)
{
	const char *p = strstr(all, series);

	while (p && p != all && p[-1] != '\n')
		p = strstr(p + 1, series);
	return p ? atoll(p + strlen(series)) : -1;
}

/* `zmeshctl @verb -f` (apply, delete) of the YAML text @yaml on the lab's
 * store; its exit status. */
static inline int lab_kubectl(const char *lab, const char *verb, const char *yaml)
{
	char path[64];
	FILE *f;
	int rc;

	snprintf(path, sizeof(path), "/tmp/zm-apply-%d.yaml", getpid());
	f = fopen(path, "w");
	if (!f)
		return -1;
	fputs(yaml, f);
	fclose(f);
	rc = test_sh(NULL, 0, "%s %s -f %s --name %s", lab_ctl(), verb, path, lab);
	unlink(path);
	return rc;
}

/* `zmeshctl apply` of the YAML text @yaml to the lab's store; its exit status. */
static inline int lab_apply(const char *lab, const char *yaml)
{
	return lab_kubectl(lab, "apply", yaml);
}

/* The pid of @node's ztunnel (from `lab status`), or -1. */
static inline int lab_ztunnel_pid(const char *lab, const char *node)
{
	char out[256];

	if (test_sh(out, sizeof(out), "%s lab status --name %s -o json | python3 -c \"import json,sys;"
		    "print([n['ztunnel_pid'] for n in json.load(sys.stdin)['nodes'] if n['name']=='%s'][0])\"",
		    lab_ctl(), lab, node))
		return -1;
	return atoi(out);
}

/* A lab a fixture makes: names unique to this process, the YAML it is made of. */
struct labkit {
	char lab[16], n1[32], n2[32], file[64];
};

/* Lab "<tag><pid>" from /tmp/zm-<lab>.yaml; nodes "<node_tag>1-<pid>" and
 * "<node_tag>2-<pid>", or "n1" and "n2" when @node_tag is NULL. */
static inline void lab_init(struct labkit *k, const char *tag, const char *node_tag)
{
	int pid = getpid() % 100000;

	snprintf(k->lab, sizeof(k->lab), "%s%d", tag, pid);
	snprintf(k->file, sizeof(k->file), "/tmp/zm-%s.yaml", k->lab);
	if (node_tag) {
		snprintf(k->n1, sizeof(k->n1), "%s1-%d", node_tag, pid);
		snprintf(k->n2, sizeof(k->n2), "%s2-%d", node_tag, pid);
	} else {
		snprintf(k->n1, sizeof(k->n1), "n1");
		snprintf(k->n2, sizeof(k->n2), "n2");
	}
}

/* Lab "<tag><pid>" in @lab, for a test that keeps its lab's files (YAML,
 * certificates, scripts) in a directory of its own: /tmp/zm-<lab> in
 * @dir, made with @mode if new. 0, or -1. */
static inline int lab_init_dir(char *lab, size_t lsz, char *dir, size_t dsz, const char *tag, mode_t mode)
{
	snprintf(lab, lsz, "%s%d", tag, getpid() % 100000);
	snprintf(dir, dsz, "/tmp/zm-%s", lab);
	return mkdir(dir, mode) && errno != EEXIST ? -1 : 0;
}

/* The namespaces most labs have: "mesh" (ambient) and "plain" (not meshed). */
#define LAB_NS_MESH "apiVersion: v1\nkind: Namespace\nmetadata: {name: mesh, labels: {istio.io/dataplane-mode: ambient}}\n"
#define LAB_NS_PLAIN "apiVersion: v1\nkind: Namespace\nmetadata: {name: plain}\n"
#define LAB_DOC "---\n"

/* Namespace shop (ambient) and its Service web (80 -> 8080) with subsets
 * v1 and v2 by label version, requests with "x-canary: yes" routed to v2,
 * the rest to v1: the L7 tests' waypoint check. */
#define LAB_SHOP_WEB_CANARY \
	"apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {istio.io/dataplane-mode: ambient}}\n---\n" \
	"apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n" \
	"spec:\n  selector: {app: web}\n  ports:\n  - {name: http, port: 80, targetPort: 8080}\n---\n" \
	"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: web, namespace: shop}\n" \
	"spec:\n  host: web\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n---\n" \
	"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: web, namespace: shop}\n" \
	"spec:\n  hosts: [web]\n  http:\n  - match:\n    - headers:\n        x-canary: {exact: \"yes\"}\n" \
	"    route:\n    - destination: {host: web, subset: v2}\n  - route:\n    - destination: {host: web, subset: v1}\n"

/* A pod of lab_write(): one container running `echoapp serve @serve`. */
struct lab_pod {
	const char *name, *ns;
	int node;		/* 1 or 2 */
	const char *labels;	/* a flow mapping, "{app: a}"; NULL: none */
	const char *sa;		/* serviceAccountName; NULL: none (default) */
	const char *serve;	/* NULL: --http 8080 --tcp 9000 */
};

/* Write k->file: nodes k->n1 and k->n2, the YAML documents @docs (NULL:
 * none), then @pods. 0 or -1. */
static inline int lab_write(const struct labkit *k, const char *docs, const struct lab_pod *pods, size_t npods)
{
	FILE *f = fopen(k->file, "w");

	if (!f)
		return -1;
	fprintf(f, "apiVersion: v1\nkind: Node\nmetadata: {name: %s}\n---\n"
		"apiVersion: v1\nkind: Node\nmetadata: {name: %s}\n", k->n1, k->n2);
	if (docs)
		fprintf(f, "---\n%s", docs);
	for (size_t i = 0; i < npods; i++) {
		const struct lab_pod *p = &pods[i];

		fprintf(f, "---\napiVersion: v1\nkind: Pod\nmetadata: {name: %s, namespace: %s", p->name, p->ns);
		if (p->labels)
			fprintf(f, ", labels: %s", p->labels);
		fprintf(f, "}\nspec:\n  nodeName: %s\n", p->node == 1 ? k->n1 : k->n2);
		if (p->sa)
			fprintf(f, "  serviceAccountName: %s\n", p->sa);
		fprintf(f, "  containers:\n  - name: c\n    command: [echoapp, serve, %s]\n",
			p->serve ? p->serve : "--http, \"8080\", --tcp, \"9000\"");
	}
	return fclose(f) ? -1 : 0;
}

/* `@env zmeshctl lab up -f k->file --name k->lab @flags` (@env: VAR=value
 * words, @flags: more options; either may be NULL); its exit status, its
 * output in @out (may be NULL). */
static inline int lab_start(const struct labkit *k, const char *env, const char *flags, char *out, size_t sz)
{
	return test_sh(out, sz, "%s %s lab up -f %s --name %s %s", env ? env : "", lab_ctl(), k->file, k->lab,
		       flags ? flags : "");
}

/* lab_start(), then both nodes' ztunnels ready; 0, else -1. */
static inline int lab_start_ready(const struct labkit *k, const char *env)
{
	if (lab_start(k, env, NULL, NULL, 0))
		return -1;
	return lab_wait_ready(k->lab, k->n1) || lab_wait_ready(k->lab, k->n2) ? -1 : 0;
}

/* `lab down` and the YAML gone; nothing when lab_init() never ran. */
static inline void lab_stop(const struct labkit *k)
{
	if (!k->lab[0])
		return;
	test_sh(NULL, 0, "%s lab down --name %s", lab_ctl(), k->lab);
	unlink(k->file);
}

/* `lab down` of @lab, then `rm -rf @dir` (NULL: none); nothing when @lab is "". */
static inline void lab_remove(const char *lab, const char *dir)
{
	if (!lab[0])
		return;
	test_sh(NULL, 0, "%s lab down --name %s", lab_ctl(), lab);
	if (dir)
		test_sh(NULL, 0, "rm -rf %s", dir);
}

/* `sh -c @cmd` on the lab's outside host (not in the cluster); its exit
 * status, output in @out. */
static inline int lab_outside(const char *lab, char *out, size_t sz, const char *cmd)
{
	return test_sh(out, sz, "%s lab exec --outside --name %s -- sh -c \"%s\"", lab_ctl(), lab, cmd);
}

/* Run the command @fmt until it exits 0 with output @want (@tries times,
 * @usec apart); 0 then, else -1 with the last output in @out (and logged). */
static inline int lab_poll(char *out, size_t sz, const char *want, int tries, useconds_t usec, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
static inline int lab_poll(char *out, size_t sz, const char *want, int tries, useconds_t usec, const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	for (int i = 0; i < tries; i++) {
		if (test_sh(out, sz, "%s", cmd) == 0 && !strcmp(out, want))
			return 0;
		usleep(usec);
	}
	test_log("waited for \"%s\", last answer: %.300s", want, out);
	return -1;
}

/* The IP of the lab's pod named @pod (from `lab status`), in @out; 0 or -1. */
static inline int lab_pod_ip(const char *lab, const char *pod, char *out, size_t sz)
{
	int rc = test_sh(out, sz, "%s lab status --name %s -o json | python3 -c \"import json,sys; "
			 "print([p['ip'] for p in json.load(sys.stdin)['pods'] if p['name']=='%s'][0])\"",
			 lab_ctl(), lab, pod);

	out[strcspn(out, "\n")] = 0;
	return rc;
}

/* The IP of the lab's ingress gateway pod (label istio=ingressgateway), in @out; 0 or -1. */
static inline int lab_ingress_ip(const char *lab, char *out, size_t sz)
{
	int rc = test_sh(out, sz, "%s lab status --name %s -o json | python3 -c "
			 "\"import json,sys; print([p['ip'] for p in json.load(sys.stdin)['pods'] "
			 "if p['labels'].get('istio')=='ingressgateway'][0])\"", lab_ctl(), lab);

	out[strcspn(out, "\n")] = 0;
	return rc;
}

/* The "pod" of echoapp's JSON answer in @out (cut there), or @out itself
 * when it is no echo. */
static inline const char *lab_answer_pod(char *out)
{
	char *p = strstr(out, "\"pod\":\"");

	if (!p)
		return out;
	p += 7;
	p[strcspn(p, "\"")] = 0;
	return p;
}

/* The head of a kubernetes.io/tls Secret @name in istio-system; the data
 * fields follow. */
static inline void lab_secret_head(FILE *out, const char *name)
{
	fprintf(out, "apiVersion: v1\nkind: Secret\nmetadata: {name: %s, namespace: istio-system}\n"
		"type: kubernetes.io/tls\ndata:\n", name);
}

/* A Secret's data field @key: the text @text in base64. */
static inline void lab_secret_field(FILE *out, const char *key, const char *text)
{
	unsigned char *b = malloc(strlen(text) * 2 + 8);

	if (!b)
		return;
	EVP_EncodeBlock(b, (const unsigned char *)text, (int)strlen(text));
	fprintf(out, "  %s: %s\n", key, b);
	free(b);
}

/* A Secret's data field @key: the file @dir/@file in base64; none when it
 * cannot be read. */
static inline void lab_secret_file(FILE *out, const char *key, const char *dir, const char *file)
{
	char path[512];
	size_t len;
	char *text;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	text = test_slurp(path, &len);
	if (!text)
		return;
	lab_secret_field(out, key, text);
	free(text);
}

#endif
