/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What integration tests do to a running lab, once: find zmeshctl, wait for
 * a node's ztunnel to be ready, run a command in a pod (retried while its
 * apps start), apply config, read a node's Prometheus page and one sample
 * from it, find a node's ztunnel.
 */
#ifndef ZMESH_TESTS_LABKIT_H
#define ZMESH_TESTS_LABKIT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness/test.h"

/* <build>/zmeshctl, the one the tests were built with. */
static inline const char *lab_ctl(void)
{
	static char ctl[4200];

	if (!ctl[0])
		snprintf(ctl, sizeof(ctl), "%s/zmeshctl", test_build_dir());
	return ctl;
}

/* 0 once @node's ztunnel answers /healthz/ready (10 s at most), else -1. */
static inline int lab_wait_ready(const char *lab, const char *node)
{
	for (int i = 0; i < 100; i++) {
		if (test_sh(NULL, 0, "%s lab exec --node %s --name %s -- curl -sf localhost:15021/healthz/ready",
			    lab_ctl(), node, lab) == 0)
			return 0;
		usleep(100000);
	}
	return -1;
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

/* `zmeshctl apply` of the YAML text @yaml to the lab's store; its exit status. */
static inline int lab_apply(const char *lab, const char *yaml)
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
	rc = test_sh(NULL, 0, "%s apply -f %s --name %s", lab_ctl(), path, lab);
	unlink(path);
	return rc;
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

#endif
