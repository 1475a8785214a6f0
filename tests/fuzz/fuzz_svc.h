/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The service the L7 fuzz targets route to: "a" in "default", VIP
 * 10.96.0.1, port 80, with @neps endpoints whose addresses, labels and
 * target ports the caller fills. Appended to @v; aborts when out of memory.
 */
#ifndef ZMESH_FUZZ_SVC_H
#define ZMESH_FUZZ_SVC_H

#include <stdio.h>
#include <stdlib.h>

#include "zmesh/l7route.h"

static struct zm_l7_svc *fuzz_svc_a(struct zm_l7_view *v, size_t neps)
{
	struct zm_l7_svc *s;

	v->svcs = calloc(1, sizeof(*v->svcs));
	if (!v->svcs)
		abort();
	s = &v->svcs[v->nsvcs++];
	snprintf(s->name, sizeof(s->name), "a");
	snprintf(s->ns, sizeof(s->ns), "default");
	snprintf(s->fqdn, sizeof(s->fqdn), "a.default.svc.cluster.local");
	snprintf(s->vip, sizeof(s->vip), "10.96.0.1");
	s->ports[0] = 80;
	s->nports = 1;
	s->eps = calloc(neps, sizeof(*s->eps));
	if (!s->eps)
		abort();
	s->neps = neps;
	return s;
}

#endif
