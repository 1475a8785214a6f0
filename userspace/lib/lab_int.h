/* SPDX-License-Identifier: Apache-2.0 */
/* Lab internals shared by the lab_*.c modules. */
#ifndef ZMESH_LAB_INT_H
#define ZMESH_LAB_INT_H

#include "zmesh/lab.h"
#include "zmesh/netns.h"

/* A netns with lo up; e says why not. */
int zm_lab_make_netns(const char *name, struct zm_error *e);
/* This process into @cgroup and @netns, with /etc/netns/<netns>/ files bound over /etc. */
int zm_lab_enter(const char *netns, const char *cgroup, struct zm_error *e);
/* This process into the cgroup (v2 directory) @cgroup only. */
int zm_lab_cgroup_join(const char *cgroup, struct zm_error *e);
/*
 * In a child after fork(), before exec: a session of its own (lab down
 * kills by cgroup, not by our process group), stdout and stderr appended
 * to @log, and stdin from /dev/null when @null_stdin.
 */
void zm_lab_child_stdio(const char *log, bool null_stdin);

#define IN_NETNS(netns, rc, body) do {					\
	int _saved;							\
	(rc) = zm_netns_enter((netns), &_saved);			\
	if (!(rc)) {							\
		body;							\
		zm_netns_restore(_saved);				\
	}								\
} while (0)

#endif
