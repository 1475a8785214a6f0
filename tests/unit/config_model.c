// SPDX-License-Identifier: Apache-2.0
/*
 * The config model: the examples in docs/examples read clean, typed values
 * and positions come out right, Istio's defaults are applied, and objects
 * survive a JSON round trip.
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../harness/test.h"
#include "zmesh/config.h"

/* The checkout: walk up from the build directory (build/ or build/clang/). */
static const char *src_dir(void)
{
	static char dir[PATH_MAX];
	struct stat st;
	char probe[PATH_MAX + 32];

	snprintf(dir, sizeof(dir), "%s", test_build_dir());
	for (int i = 0; i < 4; i++) {
		char *slash;

		snprintf(probe, sizeof(probe), "%s/docs/examples", dir);
		if (stat(probe, &st) == 0)
			return dir;
		slash = strrchr(dir, '/');
		if (!slash)
			break;
		*slash = 0;
	}
	return ".";
}

static void dump_errors(const struct zm_cfg_set *s)
{
	for (size_t i = 0; i < s->nerrs; i++)
		test_log("%s", s->errs[i].text);
}

static int load(struct zm_cfg_set *s, const char *yaml)
{
	zm_cfg_set_init(s);
	return zm_cfg_load_buf(s, "t.yaml", yaml, strlen(yaml));
}

TEST(examples_validate_clean)
{
	struct zm_cfg_set s;
	char path[PATH_MAX + 32];
	size_t kinds[ZM_K__COUNT] = { 0 };

	snprintf(path, sizeof(path), "%s/docs/examples", src_dir());
	zm_cfg_set_init(&s);
	EXPECT_OK(zm_cfg_load_path(&s, path));
	EXPECT_OK(zm_cfg_validate(&s, NULL));
	dump_errors(&s);
	EXPECT_EQ(s.nerrs, 0);
	EXPECT_GE(s.ndocs, 15);
	EXPECT_EQ(s.ndocs, s.nobjs);
	for (size_t i = 0; i < s.nobjs; i++)
		kinds[s.objs[i]->kind]++;
	/* Every Istio kind has at least one example. */
	for (int k = ZM_K_VIRTUALSERVICE; k < ZM_K__COUNT; k++)
		if (!EXPECT_GE(kinds[k], 1))
			test_log("no example of %s", zm_kind_name(k));
	/* The names issue 8's gateway tests use. */
	EXPECT_OK_PTR(zm_cfg_find(&s, ZM_K_GATEWAY, "ecommerce", "ecommerce-gateway"));
	EXPECT_OK_PTR(zm_cfg_find(&s, ZM_K_VIRTUALSERVICE, "ecommerce", "ecommerce-routing"));
	zm_cfg_set_free(&s);

	/* With the lab's cluster file next to them (core kinds too). */
	zm_cfg_set_init(&s);
	snprintf(path, sizeof(path), "%s/deploy/examples/ecommerce.yaml", src_dir());
	EXPECT_OK(zm_cfg_load_path(&s, path));
	snprintf(path, sizeof(path), "%s/docs/examples/", src_dir());
	EXPECT_OK(zm_cfg_load_path(&s, path));
	EXPECT_OK(zm_cfg_validate(&s, NULL));
	dump_errors(&s);
	EXPECT_OK_PTR(zm_cfg_find(&s, ZM_K_NAMESPACE, NULL, "ecommerce"));
	EXPECT_OK_PTR(zm_cfg_find(&s, ZM_K_POD, "ecommerce", "user-v1"));
	zm_cfg_set_free(&s);
}

TEST(examples_via_zmeshctl)
{
	char out[4096];
	int rc;

	rc = test_sh(out, sizeof(out), "%s/zmeshctl validate -f %s/docs/examples", test_build_dir(),
		     src_dir());
	EXPECT_EQ(rc, 0);
	EXPECT_STRSTR(out, "documents valid");
	rc = test_sh(out, sizeof(out),
		     "f=$(mktemp /tmp/zm-config-%d-XXXXXX.yaml) && printf '%s' > $f && "
		     "%s/zmeshctl validate -f $f; r=$?; rm -f $f; exit $r", (int)getpid(),
		     "apiVersion: security.istio.io/v1\\nkind: PeerAuthentication\\nmetadata: {name: a}\\n"
		     "spec: {mtls: {mode: STRICTT}}\\n", test_build_dir());
	EXPECT_EQ(rc, 1);
	EXPECT_STRSTR(out, ":4:21: spec.mtls.mode: unknown value \"STRICTT\", want one of UNSET, DISABLE, PERMISSIVE, STRICT");
	EXPECT_STRSTR(out, "1 error in 1 document");
	rc = test_sh(out, sizeof(out), "%s/zmeshctl validate", test_build_dir());
	EXPECT_EQ(rc, 2);
}

TEST(typed_values_and_positions)
{
	struct zm_cfg_set s;
	const char *yaml =
		"apiVersion: networking.istio.io/v1beta1\n"
		"kind: VirtualService\n"
		"metadata:\n"
		"  name: payment\n"
		"  namespace: shop\n"
		"  labels: {app: payment}\n"
		"spec:\n"
		"  hosts: [payment]\n"
		"  http:\n"
		"  - match:\n"
		"    - headers: {x-user: {exact: beta}, x-probe: {}}\n"
		"      uri: {prefix: /pay}\n"
		"      ignoreUriCase: true\n"
		"    route:\n"
		"    - destination: {host: payment, subset: v1, port: {number: 8080}}\n"
		"      weight: 90\n"
		"    - destination: {host: payment, subset: v2}\n"
		"      weight: 10\n"
		"    timeout: 1.5s\n"
		"    retries: {attempts: 3, perTryTimeout: 500ms, retryOn: 5xx}\n"
		"    fault: {abort: {httpStatus: 503, percentage: {value: 2.5}}}\n";
	const struct zm_virtual_service *vs;
	const struct zm_http_route *h;

	ASSERT_OK(load(&s, yaml));
	ASSERT_EQ(s.nobjs, 1);
	ASSERT_EQ(s.objs[0]->kind, ZM_K_VIRTUALSERVICE);
	EXPECT_STREQ(s.objs[0]->api_version, "networking.istio.io/v1beta1");
	EXPECT_STREQ(s.objs[0]->meta.ns.v, "shop");
	EXPECT_STREQ(zm_cmap_get(&s.objs[0]->meta.labels, "app"), "payment");
	vs = s.objs[0]->vs;
	ASSERT_EQ(vs->http.n, 1);
	h = &vs->http.v[0];
	ASSERT_EQ(h->match.n, 1);
	ASSERT_EQ(h->match.v[0].headers.n, 2);
	EXPECT_STREQ(h->match.v[0].headers.v[0].key.v, "x-user");
	EXPECT_STREQ(h->match.v[0].headers.v[0].val.exact.v, "beta");
	/* An empty match is a presence test: set, with no kind. */
	EXPECT_TRUE(h->match.v[0].headers.v[1].val.o.set);
	EXPECT_TRUE(h->match.v[0].headers.v[1].val.exact.v == NULL);
	EXPECT_STREQ(h->match.v[0].uri.prefix.v, "/pay");
	EXPECT_TRUE(h->match.v[0].ignore_uri_case.v);
	ASSERT_EQ(h->route.n, 2);
	EXPECT_EQ(h->route.v[0].weight.v, 90);
	EXPECT_EQ(h->route.v[0].destination.port.number.v, 8080);
	EXPECT_EQ(h->route.v[0].weight.pos.line, 16);
	EXPECT_EQ(h->route.v[0].weight.pos.col, 15);
	EXPECT_STREQ(h->route.v[1].destination.subset.v, "v2");
	EXPECT_EQ(h->route.v[1].destination.subset.pos.line, 17);
	EXPECT_EQ(h->route.v[1].destination.subset.pos.col, 44);
	EXPECT_EQ(h->timeout.ns, 1500 * ZM_NS_PER_MS);
	EXPECT_TRUE(h->timeout.set);
	EXPECT_EQ(h->retries.attempts.v, 3);
	EXPECT_EQ(h->retries.per_try_timeout.ns, 500 * ZM_NS_PER_MS);
	EXPECT_STREQ(h->retries.retry_on.v, "5xx");
	EXPECT_EQ(h->fault.abort.http_status.v, 503);
	EXPECT_TRUE(h->fault.abort.percentage.value.v == 2.5);
	EXPECT_FALSE(h->fault.delay.o.set);
	zm_cfg_set_free(&s);
}

TEST(defaults_applied)
{
	struct zm_cfg_set s;
	const char *yaml =
		"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a}\n"
		"spec:\n  host: a\n  trafficPolicy: {outlierDetection: {consecutive5xxErrors: 7}}\n"
		"  subsets: [{name: v1, labels: {version: v1}}]\n"
		"---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: a, namespace: x}\nspec: {}\n"
		"---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a, namespace: x}\n"
		"---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a}\nspec: {hosts: [a.example.com]}\n"
		"---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\n"
		"spec:\n  hosts: [a]\n  http:\n  - route: [{destination: {host: a}}]\n    retries: {perTryTimeout: 1s}\n"
		"    mirror: {host: b}\n    fault: {delay: {fixedDelay: 1s}}\n"
		"---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: b}\n"
		"spec:\n  hosts: [a]\n  http:\n  - route: [{destination: {host: a}}]\n    mirror: {host: b}\n"
		"    mirrorPercentage: {}\n";
	const struct zm_destination_rule *dr;
	const struct zm_http_route *h;

	ASSERT_OK(load(&s, yaml));
	ASSERT_OK(zm_cfg_validate(&s, NULL));
	ASSERT_EQ(s.nobjs, 6);
	/* metadata.namespace */
	EXPECT_STREQ(s.objs[0]->meta.ns.v, "default");
	/* DestinationRule: Istio's default balancer is LEAST_REQUEST, even when
	 * no loadBalancer (or no trafficPolicy) is written; not marked set. */
	dr = s.objs[0]->dr;
	EXPECT_EQ(dr->traffic_policy.load_balancer.simple.v, ZM_LB_LEAST_REQUEST);
	EXPECT_FALSE(dr->traffic_policy.load_balancer.simple.set);
	EXPECT_EQ(dr->subsets.v[0].traffic_policy.load_balancer.simple.v, ZM_LB_LEAST_REQUEST);
	EXPECT_FALSE(dr->subsets.v[0].traffic_policy.o.set);
	EXPECT_EQ(dr->traffic_policy.connection_pool.tcp.connect_timeout.ns, 10 * ZM_NS_PER_S);
	EXPECT_EQ(dr->traffic_policy.connection_pool.tcp.max_connections.v, 4294967295LL);
	EXPECT_EQ(dr->traffic_policy.connection_pool.http.idle_timeout.ns, 3600 * ZM_NS_PER_S);
	EXPECT_EQ(dr->traffic_policy.connection_pool.http.h2_upgrade_policy.v, ZM_H2_DEFAULT);
	EXPECT_EQ(dr->traffic_policy.tls.mode.v, ZM_CTLS_DISABLE);
	/* Outlier detection: written field kept, the rest Istio's defaults. */
	EXPECT_TRUE(dr->traffic_policy.outlier_detection.o.set);
	EXPECT_EQ(dr->traffic_policy.outlier_detection.consecutive_5xx_errors.v, 7);
	EXPECT_EQ(dr->traffic_policy.outlier_detection.interval.ns, 10 * ZM_NS_PER_S);
	EXPECT_EQ(dr->traffic_policy.outlier_detection.base_ejection_time.ns, 30 * ZM_NS_PER_S);
	EXPECT_EQ(dr->traffic_policy.outlier_detection.max_ejection_percent.v, 10);
	/* PeerAuthentication: UNSET inherits from the namespace/mesh. */
	EXPECT_EQ(s.objs[1]->pa->mtls.mode.v, ZM_MTLS_UNSET);
	EXPECT_FALSE(s.objs[1]->pa->mtls.mode.set);
	/* AuthorizationPolicy without spec: ALLOW with no rules (matches nothing). */
	EXPECT_EQ(s.objs[2]->ap->action.v, ZM_AUTHZ_ALLOW);
	EXPECT_EQ(s.objs[2]->ap->rules.n, 0);
	/* ServiceEntry */
	EXPECT_EQ(s.objs[3]->se->location.v, ZM_SE_MESH_EXTERNAL);
	EXPECT_EQ(s.objs[3]->se->resolution.v, ZM_SE_NONE);
	/* VirtualService: a lone destination gets weight 100, retries 2
	 * attempts, mirror and fault percentages 100. */
	h = &s.objs[4]->vs->http.v[0];
	EXPECT_EQ(h->route.v[0].weight.v, 100);
	EXPECT_FALSE(h->route.v[0].weight.set);
	EXPECT_EQ(h->retries.attempts.v, 2);
	EXPECT_TRUE(h->retries.retry_ignore_previous_hosts.v);
	EXPECT_TRUE(h->mirror_percentage.value.v == 100);
	EXPECT_TRUE(h->fault.delay.percentage.value.v == 100);
	EXPECT_EQ(h->redirect.redirect_code.v, 301);
	/* ... but a written empty Percent is 0%, as proto3 reads it. */
	h = &s.objs[5]->vs->http.v[0];
	EXPECT_TRUE(h->mirror_percentage.value.v == 0);
	zm_cfg_set_free(&s);
}

TEST(core_kinds_kept_raw)
{
	struct zm_cfg_set s;
	const char *yaml =
		"apiVersion: v1\nkind: Pod\nmetadata:\n  name: user-v1\n  namespace: ecommerce\n"
		"  labels: {app: user, version: v1}\nspec:\n  nodeName: node-1\n"
		"  containers: [{name: app, command: [echoapp, serve], ports: [{containerPort: 8080}]}]\n";
	json_t *j;

	ASSERT_OK(load(&s, yaml));
	ASSERT_EQ(s.nobjs, 1);
	EXPECT_FALSE(zm_kind_is_istio(s.objs[0]->kind));
	EXPECT_STREQ(zm_cmap_get(&s.objs[0]->meta.labels, "version"), "v1");
	ASSERT_OK_PTR(s.objs[0]->raw);
	EXPECT_STREQ(json_string_value(json_object_get(json_object_get(s.objs[0]->raw, "spec"), "nodeName")),
		     "node-1");
	j = zm_cfg_obj_to_json(s.objs[0]);
	ASSERT_OK_PTR(j);
	EXPECT_EQ(json_integer_value(json_object_get(json_array_get(json_object_get(json_array_get(
		json_object_get(json_object_get(j, "spec"), "containers"), 0), "ports"), 0), "containerPort")), 8080);
	json_decref(j);
	zm_cfg_set_free(&s);
}

/* get -o json: every example written out as JSON (valid YAML) reads back
 * to the same JSON. */
TEST(json_round_trip)
{
	struct zm_cfg_set s;
	char path[PATH_MAX + 32];

	snprintf(path, sizeof(path), "%s/docs/examples", src_dir());
	zm_cfg_set_init(&s);
	ASSERT_OK(zm_cfg_load_path(&s, path));
	for (size_t i = 0; i < s.nobjs; i++) {
		struct zm_cfg_set again;
		json_t *a = zm_cfg_obj_to_json(s.objs[i]), *b = NULL;
		char *text;

		ASSERT_OK_PTR(a);
		text = json_dumps(a, JSON_INDENT(2) | JSON_SORT_KEYS);
		ASSERT_OK_PTR(text);
		zm_cfg_set_init(&again);
		if (EXPECT_OK(zm_cfg_load_buf(&again, "again.json", text, strlen(text))) &&
		    EXPECT_EQ(again.nobjs, 1))
			b = zm_cfg_obj_to_json(again.objs[0]);
		dump_errors(&again);
		if (!EXPECT_TRUE(b && json_equal(a, b)))
			test_log("%s %s differs after a round trip", zm_kind_name(s.objs[i]->kind),
				 s.objs[i]->meta.name.v);
		json_decref(b);
		json_decref(a);
		free(text);
		zm_cfg_set_free(&again);
	}
	zm_cfg_set_free(&s);
}

TEST(durations)
{
	static const struct {
		const char *in;
		int64_t ns;
	} ok[] = {
		{ "10s", 10 * ZM_NS_PER_S }, { "1.5s", 1500 * ZM_NS_PER_MS }, { "500ms", 500 * ZM_NS_PER_MS },
		{ "1m", 60 * ZM_NS_PER_S }, { "1h", 3600 * ZM_NS_PER_S }, { "1h30m", 5400 * ZM_NS_PER_S },
		{ "0", 0 }, { "0.001s", ZM_NS_PER_MS }, { "250us", 250000 }, { "3ns", 3 },
		{ ".5s", 500 * ZM_NS_PER_MS }, { "2\xc2\xb5s", 2000 },
	};
	static const char *const bad[] = { "", "10", "s", "1.s5", "-1s", "1d", "1 s", "1e3s", "++1s", "1.2.3s" };
	char buf[32];
	int64_t v;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (EXPECT_OK(zm_duration_parse(ok[i].in, &v)) && !EXPECT_EQ(v, ok[i].ns))
			test_log("%s", ok[i].in);
		zm_duration_format(ok[i].ns, buf, sizeof(buf));
		EXPECT_OK(zm_duration_parse(buf, &v));
		EXPECT_EQ(v, ok[i].ns);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (!EXPECT_EQ(zm_duration_parse(bad[i], &v), -EINVAL))
			test_log("accepted \"%s\"", bad[i]);
	EXPECT_EQ(zm_duration_parse("9999999999999999999s", &v), -ERANGE);
	zm_duration_format(1500 * ZM_NS_PER_MS, buf, sizeof(buf));
	EXPECT_STREQ(buf, "1.5s");
	zm_duration_format(250 * ZM_NS_PER_MS, buf, sizeof(buf));
	EXPECT_STREQ(buf, "250ms");
}

TEST(re2_syntax)
{
	static const char *const ok[] = {
		"^/api/v[0-9]+/users$", "a|b|", "(?i)abc", "(?i:a)(?-s:b)", "(?P<name>x)", "(?<n>x)",
		"[[:alpha:]_-]", "[^a-z\\]]", "\\pL\\p{Greek}\\PN", "\\x41\\x{10FFFF}", "a{2}b{2,}c{2,5}",
		"a*?b+?c??", "\\Qa.b*\\E", "\\d\\s\\w\\b\\A\\z", "x{1000}", "[]a]", "a{,3}", "\\.", "",
		"(((a)))", "\\0", "\\012",
	};
	static const char *const bad[] = {
		"(a)\\1", "a(?=b)", "a(?!b)", "(?<=a)b", "(?<!a)b", "(?>a)", "a**", "a*+", "a{2}{3}",
		"(a", "a)", "[a", "[b-a]", "a{1001}", "\\Z", "\\k<n>", "(?P=n)", "*a", "+", "(?z)", "\\",
		"[[:nope:]]", "\\p{", "\\x{zz}", "\\8", "(?P<>a)", "a{3,2}",
	};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (!EXPECT_TRUE(zm_regex_check(ok[i]) == NULL))
			test_log("rejected /%s/: %s", ok[i], zm_regex_check(ok[i]));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (!EXPECT_TRUE(zm_regex_check(bad[i]) != NULL))
			test_log("accepted /%s/", bad[i]);
	/* Deep nesting is refused, not a stack overflow. */
	{
		char *deep = malloc(200001);

		ASSERT_OK_PTR(deep);
		memset(deep, '(', 100000);
		memset(deep + 100000, ')', 100000);
		deep[200000] = 0;
		EXPECT_STREQ(zm_regex_check(deep), "expression nests too deeply");
		free(deep);
	}
}

TEST(hosts_and_addresses)
{
	char out[256];

	EXPECT_TRUE(zm_host_check("reviews", false) == NULL);
	EXPECT_TRUE(zm_host_check("reviews.default.svc.cluster.local", false) == NULL);
	EXPECT_TRUE(zm_host_check("*.example.com", false) == NULL);
	EXPECT_TRUE(zm_host_check("*", true) == NULL);
	EXPECT_TRUE(zm_host_check("*", false) != NULL);
	EXPECT_TRUE(zm_host_check("a..b", false) != NULL);
	EXPECT_TRUE(zm_host_check("-a.com", false) != NULL);
	EXPECT_TRUE(zm_host_check("a.com.", false) != NULL);
	EXPECT_TRUE(zm_host_check("*a.com", false) != NULL);
	zm_host_fqdn("reviews", "shop", out, sizeof(out));
	EXPECT_STREQ(out, "reviews.shop.svc.cluster.local");
	zm_host_fqdn("reviews.other.svc.cluster.local", "shop", out, sizeof(out));
	EXPECT_STREQ(out, "reviews.other.svc.cluster.local");
	EXPECT_TRUE(zm_host_match("*.example.com", "a.b.example.com"));
	EXPECT_FALSE(zm_host_match("*.example.com", "example.com"));
	EXPECT_TRUE(zm_host_match("*", "x"));
	EXPECT_TRUE(zm_host_match("A.com", "a.COM"));
	EXPECT_TRUE(zm_cidr_check("10.0.0.0/8") == NULL);
	EXPECT_TRUE(zm_cidr_check("2001:db8::/32") == NULL);
	EXPECT_TRUE(zm_cidr_check("192.0.2.1") == NULL);
	EXPECT_TRUE(zm_cidr_check("10.0.0.0/33") != NULL);
	EXPECT_TRUE(zm_cidr_check("10.0.0.0/") != NULL);
	EXPECT_TRUE(zm_cidr_check("::/129") != NULL);
	EXPECT_TRUE(zm_cidr_check("10.0.0/8") != NULL);
}

/* The store moves objects between sets; nothing leaks or dangles. */
TEST(take_remove_find)
{
	struct zm_cfg_set a, b;
	struct zm_cfg_obj *o;
	const char *y1 = "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n";
	const char *y2 = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p, namespace: x}\nspec: {mtls: {mode: STRICT}}\n";

	ASSERT_OK(load(&a, y1));
	ASSERT_OK(load(&b, y2));
	ASSERT_OK(zm_cfg_set_take(&a, &b));
	EXPECT_EQ(a.nobjs, 2);
	EXPECT_EQ(b.nobjs, 0);
	EXPECT_OK_PTR(zm_cfg_find(&a, ZM_K_NAMESPACE, "ignored", "x"));
	o = zm_cfg_find(&a, ZM_K_PEERAUTHENTICATION, "x", "p");
	ASSERT_OK_PTR(o);
	EXPECT_EQ(o->pa->mtls.mode.v, ZM_MTLS_STRICT);
	EXPECT_TRUE(zm_cfg_find(&a, ZM_K_PEERAUTHENTICATION, "default", "p") == NULL);
	o = zm_cfg_set_remove(&a, 1);
	ASSERT_OK_PTR(o);
	EXPECT_EQ(a.nobjs, 1);
	zm_cfg_obj_free(o);
	EXPECT_EQ(zm_kind_parse("Gateway"), ZM_K_GATEWAY);
	EXPECT_EQ(zm_kind_parse("gateway"), -ENOENT);
	EXPECT_TRUE(zm_kind_cluster_scoped(ZM_K_NODE));
	zm_cfg_set_free(&a);
	zm_cfg_set_free(&b);
}
