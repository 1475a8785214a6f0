// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target: the L7 engine's decision on attacker-controlled
 * requests against a fixed config (every match type, rewrites, redirect,
 * CORS, faults, AuthorizationPolicy). Input: lines "METHOD", "target",
 * "authority", then "name:value" header lines. Besides "no crash", it checks
 * that a FORWARD names a service port and a path starting with '/', that a
 * RESPOND has an HTTP status, and that picking an endpoint works.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zmesh/config.h"
#include "zmesh/l7route.h"
#include "../fuzz_svc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fuzz_l7_cfg[] =
	"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\n"
	"spec:\n  hosts: [a, \"*.example.com\"]\n  http:\n"
	"  - match: [{uri: {regex: \"/r/([a-z]+)/.*\"}, ignoreUriCase: true}]\n"
	"    rewrite: {uriRegexRewrite: {match: \"^/r/([a-z]+)/(.*)$\", rewrite: \"/\\\\2/\\\\1\"}}\n"
	"    route: [{destination: {host: a, subset: s1}}]\n"
	"  - match: [{uri: {prefix: /p/}, headers: {x-h: {regex: \"a+b*\"}}, queryParams: {q: {prefix: x}}}]\n"
	"    rewrite: {uri: /, authority: b}\n"
	"    route: [{destination: {host: a}, weight: 50}, {destination: {host: a, subset: s1}, weight: 50}]\n"
	"  - match: [{uri: {exact: /redir}}, {authority: {prefix: x}}]\n"
	"    redirect: {uri: /new, scheme: https, port: 8443}\n"
	"  - match: [{uri: {prefix: /cors}}]\n"
	"    corsPolicy: {allowOrigins: [{regex: \"https://.*\"}], allowMethods: [GET], maxAge: 10s}\n"
	"    fault: {abort: {httpStatus: 418, percentage: {value: 50}}, delay: {fixedDelay: 1s, percentage: {value: 50}}}\n"
	"    route: [{destination: {host: a}}]\n"
	"  - route: [{destination: {host: a}}]\n"
	"    headers: {request: {set: {x-a: b}, remove: [cookie]}}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a}\n"
	"spec:\n  host: a\n  subsets: [{name: s1, labels: {v: \"1\"}, trafficPolicy: "
	"{loadBalancer: {consistentHash: {httpHeaderName: x-k}}}}]\n"
	"---\n"
	"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: d}\n"
	"spec:\n  action: DENY\n  rules: [{to: [{operation: {paths: [\"/admin*\"], notMethods: [GET]}}]},\n"
	"    {when: [{key: \"request.headers[x-evil]\", values: [\"*\"]}]}]\n"
	"---\n"
	"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: al}\n"
	"spec:\n  rules: [{to: [{operation: {paths: [\"/*\"], hosts: [\"a\", \"a:*\", \"*.example.com\"]}}]}]\n";

static struct zm_l7 *fuzz_l7;

static uint64_t fuzz_rand(void *arg)
{
	static uint64_t x = 42;

	(void)arg;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return x;
}

static void fuzz_l7_init(void)
{
	struct zm_cfg_set set;
	struct zm_l7_view v = { 0 };
	struct zm_l7_opts o = { .rand = fuzz_rand };
	struct zm_error e;
	struct zm_l7_svc *s;

	zm_cfg_set_init(&set);
	if (zm_cfg_load_buf(&set, "fuzz.yaml", fuzz_l7_cfg, strlen(fuzz_l7_cfg)) ||
	    zm_cfg_validate(&set, NULL))
		abort();
	s = fuzz_svc_a(&v, 2);
	for (int i = 0; i < 2; i++) {
		snprintf(s->eps[i].addr, sizeof(s->eps[i].addr), "10.0.0.%d", i + 1);
		zm_labels_set(&s->eps[i].labels, "v", i ? "1" : "2");
		s->eps[i].tport[0] = 8080;
	}
	if (zm_l7_build(&set, &v, &o, &fuzz_l7, &e))
		abort();
	zm_cfg_set_free(&set);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), *line[40];
	size_t nl = 0;
	struct zm_http_field f[36];
	size_t nf = 0;
	struct zm_l7_request r;
	struct zm_l7_decision d;

	if (!fuzz_l7)
		fuzz_l7_init();
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	/* embedded NULs end a line early; the engine sees C strings for these */
	for (char *p = buf, *q; nl < 40 && p <= buf + size; p = q + 1) {
		q = memchr(p, '\n', (size_t)(buf + size - p));
		if (!q)
			q = buf + size;
		*q = '\0';
		line[nl++] = p;
	}
	while (nl < 3)
		line[nl++] = "";
	for (size_t i = 3; i < nl && nf < 36; i++) {
		char *c = strchr(line[i], ':');

		if (!c)
			continue;
		f[nf++] = (struct zm_http_field){ line[i], (size_t)(c - line[i]), c + 1, strlen(c + 1) };
	}
	r = (struct zm_l7_request){ .method = line[0], .scheme = "http", .authority = line[2],
				    .target = line[1], .target_len = strlen(line[1]), .headers = f,
				    .nheaders = nf, .port = 80, .now_s = 1700000000 };
	if (zm_l7_decide(fuzz_l7, &r, &d))
		abort();
	if (d.action == ZM_L7_FORWARD) {
		const char *p = zm_buf_cstr(&d.path);

		if (!d.svc || d.svc_port_idx < 0 || !p || (p[0] != '/' && p[0] != '*'))
			abort();
		{
			int ep = zm_l7_pick(fuzz_l7, &d, &r, -1, 0);

			if (ep >= 0)
				zm_l7_report(fuzz_l7, &d, ep, 503, 0);
		}
	} else if (d.status < 100 || d.status > 999) {
		abort();
	}
	zm_l7_decision_free(&d);
	free(buf);
	return 0;
}
