// SPDX-License-Identifier: Apache-2.0
/*
 * PeerAuthentication and L4 AuthorizationPolicy decisions (l4policy.h),
 * from YAML as a user writes it, through the config model.
 */
#include <arpa/inet.h>
#include <string.h>

#include "../harness/test.h"
#include "zmesh/l4policy.h"

struct env {
	struct zm_cfg_set cfg;
	struct zm_labels labels;
	struct zm_l4_workload w;
};

static void env_free(void *arg)
{
	struct env *e = arg;

	/* Safe to call again: a test re-fills its env and every fill defers this. */
	zm_cfg_set_free(&e->cfg);
	zm_cfg_set_init(&e->cfg);
	zm_labels_free(&e->labels);
	memset(&e->labels, 0, sizeof(e->labels));
}

/* @yaml into @e (ASSERTs it reads and validates clean); workload ns "shop", app=pay. */
#define ENV(e, yaml)                                                                   \
	do {                                                                           \
		memset(&(e), 0, sizeof(e));                                           \
		zm_cfg_set_init(&(e).cfg);                                            \
		test_defer(env_free, &(e));                                           \
		int _rc = zm_cfg_load_buf(&(e).cfg, "t.yaml", yaml, strlen(yaml));    \
		if (!_rc)                                                             \
			_rc = zm_cfg_validate(&(e).cfg, NULL);                        \
		for (size_t _i = 0; _i < (e).cfg.nerrs; _i++)                         \
			test_log("%s", (e).cfg.errs[_i].text);                        \
		ASSERT_EQ(_rc, 0);                                                    \
		ASSERT_EQ(zm_labels_set(&(e).labels, "app", "pay"), 0);               \
		(e).w = (struct zm_l4_workload){ .ns = "shop", .labels = &(e).labels }; \
	} while (0)

static struct zm_l4_conn conn(const char *principal, const char *src, uint16_t port)
{
	struct zm_l4_conn c = { .principal = principal, .family = AF_INET, .dst_port = port };

	inet_pton(AF_INET, src, c.src_ip);
	inet_pton(AF_INET, "10.244.1.5", c.dst_ip);
	return c;
}

static bool allowed(struct env *e, const char *principal, const char *src, uint16_t port)
{
	struct zm_l4_conn c = conn(principal, src, port);
	struct zm_l4_verdict v;

	zm_l4_authorize(&e->cfg, &e->w, &c, &v);
	test_log("%s from %s:%u -> %s (%s %s)", principal ? principal : "plaintext", src, port,
		 v.allow ? "allow" : "deny", v.reason, v.policy);
	return v.allow;
}

#define FRONT "cluster.local/ns/web/sa/frontend"
#define ADMIN "cluster.local/ns/ops/sa/admin"

#define PA(name, ns, body) \
	"---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: " name ", namespace: " ns "}\nspec:\n" body
#define AP(name, ns, body) \
	"---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: " name ", namespace: " ns "}\nspec:\n" body

TEST(nothing_configured_is_permissive_and_allows)
{
	static struct env e;	/* deferred cleanup runs after the body returns */

	ENV(e, "");
	EXPECT_EQ(zm_l4_mtls_mode(&e.cfg, &e.w, 9000), ZM_MTLS_PERMISSIVE);
	EXPECT_FALSE(zm_l4_strict_everywhere(&e.cfg, &e.w));
	EXPECT_TRUE(allowed(&e, NULL, "10.0.0.1", 9000));
	EXPECT_TRUE(allowed(&e, FRONT, "10.0.0.1", 9000));
}

TEST(peer_authentication_inherits_mesh_namespace_workload_port)
{
	static struct env e;	/* deferred cleanup runs after the body returns */

	ENV(e, PA("default", "istio-system", "  mtls: {mode: STRICT}\n"));
	EXPECT_EQ(zm_l4_mtls_mode(&e.cfg, &e.w, 9000), ZM_MTLS_STRICT);
	EXPECT_TRUE(zm_l4_strict_everywhere(&e.cfg, &e.w));
	env_free(&e);

	/* The namespace overrides the mesh; the workload the namespace; a port the workload. */
	ENV(e, PA("default", "istio-system", "  mtls: {mode: STRICT}\n")
	       PA("ns", "shop", "  mtls: {mode: PERMISSIVE}\n")
	       PA("other", "web", "  mtls: {mode: DISABLE}\n"));
	EXPECT_EQ(zm_l4_mtls_mode(&e.cfg, &e.w, 9000), ZM_MTLS_PERMISSIVE);
	env_free(&e);
	ENV(e, PA("default", "istio-system", "  mtls: {mode: PERMISSIVE}\n")
	       PA("pay", "shop", "  selector: {matchLabels: {app: pay}}\n  mtls: {mode: STRICT}\n"
		  "  portLevelMtls:\n    \"8080\": {mode: PERMISSIVE}\n    \"9090\": {mode: UNSET}\n")
	       PA("nope", "shop", "  selector: {matchLabels: {app: cart}}\n  mtls: {mode: DISABLE}\n"));
	EXPECT_EQ(zm_l4_mtls_mode(&e.cfg, &e.w, 9000), ZM_MTLS_STRICT);
	EXPECT_EQ(zm_l4_mtls_mode(&e.cfg, &e.w, 8080), ZM_MTLS_PERMISSIVE);
	EXPECT_EQ(zm_l4_mtls_mode(&e.cfg, &e.w, 9090), ZM_MTLS_STRICT);
	EXPECT_FALSE(zm_l4_strict_everywhere(&e.cfg, &e.w));
	env_free(&e);
	/* UNSET at the workload inherits the namespace; a selector in the
	 * root namespace does not reach other namespaces. */
	ENV(e, PA("ns", "shop", "  mtls: {mode: STRICT}\n")
	       PA("pay", "shop", "  selector: {matchLabels: {app: pay}}\n  mtls: {mode: UNSET}\n")
	       PA("root-sel", "istio-system", "  selector: {matchLabels: {app: pay}}\n  mtls: {mode: DISABLE}\n"));
	EXPECT_EQ(zm_l4_mtls_mode(&e.cfg, &e.w, 9000), ZM_MTLS_STRICT);
	EXPECT_TRUE(zm_l4_strict_everywhere(&e.cfg, &e.w));
}

TEST(allow_by_principal_denies_others_and_plaintext)
{
	static struct env e;	/* deferred cleanup runs after the body returns */

	ENV(e, AP("allow-front", "shop", "  selector: {matchLabels: {app: pay}}\n  action: ALLOW\n"
		  "  rules:\n  - from:\n    - source: {principals: [\"" FRONT "\"]}\n"));
	EXPECT_TRUE(allowed(&e, FRONT, "10.0.0.1", 9000));
	EXPECT_FALSE(allowed(&e, ADMIN, "10.0.0.1", 9000));
	EXPECT_FALSE(allowed(&e, NULL, "10.0.0.1", 9000));
}

TEST(deny_beats_allow_and_namespaces_come_from_the_principal)
{
	static struct env e;	/* deferred cleanup runs after the body returns */

	ENV(e, AP("allow-all", "shop", "  rules:\n  - {}\n")
	       AP("deny-ops", "shop", "  action: DENY\n  rules:\n  - from:\n    - source: {namespaces: [ops]}\n"));
	EXPECT_TRUE(allowed(&e, FRONT, "10.0.0.1", 9000));
	EXPECT_FALSE(allowed(&e, ADMIN, "10.0.0.1", 9000));
	/* Plaintext has no namespace: the DENY on namespaces does not match it. */
	EXPECT_TRUE(allowed(&e, NULL, "10.0.0.1", 9000));
}

TEST(allow_nothing_and_policies_that_do_not_apply)
{
	static struct env e;	/* deferred cleanup runs after the body returns */

	ENV(e, AP("allow-nothing", "shop", "  {}\n"));
	EXPECT_FALSE(allowed(&e, FRONT, "10.0.0.1", 9000));
	env_free(&e);
	/* Another namespace, another selector, a waypoint's targetRef: not ours. */
	ENV(e, AP("elsewhere", "web", "  {}\n")
	       AP("cart-only", "shop", "  selector: {matchLabels: {app: cart}}\n")
	       AP("waypoint", "shop", "  targetRefs:\n  - {kind: Service, group: \"\", name: pay}\n"));
	EXPECT_TRUE(allowed(&e, FRONT, "10.0.0.1", 9000));
	env_free(&e);
	/* The root namespace is mesh-wide. */
	ENV(e, AP("mesh-deny", "istio-system", "  action: DENY\n  rules:\n  - to:\n    - operation: {ports: [\"9000\"]}\n"));
	EXPECT_FALSE(allowed(&e, FRONT, "10.0.0.1", 9000));
	EXPECT_TRUE(allowed(&e, FRONT, "10.0.0.1", 8080));
}

TEST(ports_ip_blocks_and_conditions)
{
	static struct env e;	/* deferred cleanup runs after the body returns */

	ENV(e, AP("mix", "shop", "  rules:\n"
		  "  - to:\n    - operation: {ports: [\"9000\"], notPorts: [\"9001\"]}\n"
		  "    from:\n    - source: {ipBlocks: [10.1.0.0/16], notIpBlocks: [10.1.2.0/24]}\n"
		  "  - when:\n    - {key: source.namespace, values: [ops]}\n"
		  "    - {key: destination.port, values: [\"7000\"]}\n"
		  "  - from:\n    - source: {principals: [\"*/sa/frontend\"], notNamespaces: [shop]}\n"
		  "    to:\n    - operation: {ports: [\"8000\"]}\n"));
	EXPECT_TRUE(allowed(&e, NULL, "10.1.9.9", 9000));
	EXPECT_FALSE(allowed(&e, NULL, "10.1.2.3", 9000));
	EXPECT_FALSE(allowed(&e, NULL, "10.9.0.1", 9000));
	EXPECT_FALSE(allowed(&e, NULL, "10.1.9.9", 9001));
	EXPECT_TRUE(allowed(&e, ADMIN, "10.9.0.1", 7000));
	EXPECT_FALSE(allowed(&e, ADMIN, "10.9.0.1", 7001));
	EXPECT_FALSE(allowed(&e, FRONT, "10.9.0.1", 7000));
	EXPECT_TRUE(allowed(&e, FRONT, "10.9.0.1", 8000));	/* suffix match on the principal */
	EXPECT_FALSE(allowed(&e, "cluster.local/ns/shop/sa/frontend", "10.9.0.1", 8000));
}

TEST(l7_fields_fail_closed_at_l4)
{
	static struct env e;	/* deferred cleanup runs after the body returns */

	/* An ALLOW on methods cannot be checked without a waypoint: it allows nothing. */
	ENV(e, AP("get-only", "shop", "  rules:\n  - to:\n    - operation: {methods: [GET]}\n"));
	EXPECT_FALSE(allowed(&e, FRONT, "10.0.0.1", 9000));
	env_free(&e);
	/* A DENY on paths denies on its L4 part alone (here: everyone from web). */
	ENV(e, AP("no-admin", "shop", "  action: DENY\n  rules:\n  - from:\n    - source: {namespaces: [web]}\n"
		  "    to:\n    - operation: {paths: [\"/admin*\"]}\n"));
	EXPECT_FALSE(allowed(&e, FRONT, "10.0.0.1", 9000));
	EXPECT_TRUE(allowed(&e, ADMIN, "10.0.0.1", 9000));
	env_free(&e);
	/* request.headers in a DENY: the whole rule denies; in an ALLOW: never allows. */
	ENV(e, AP("hdr", "shop", "  action: DENY\n  rules:\n  - when:\n    - {key: \"request.headers[x-evil]\", values: [\"1\"]}\n"));
	EXPECT_FALSE(allowed(&e, FRONT, "10.0.0.1", 9000));
	env_free(&e);
	ENV(e, AP("jwt", "shop", "  rules:\n  - from:\n    - source: {requestPrincipals: [\"*\"]}\n"
		  "  - from:\n    - source: {principals: [\"" ADMIN "\"]}\n"));
	EXPECT_FALSE(allowed(&e, FRONT, "10.0.0.1", 9000));
	EXPECT_TRUE(allowed(&e, ADMIN, "10.0.0.1", 9000));
}

TEST(custom_denies_and_audit_does_not_decide)
{
	static struct env e;	/* deferred cleanup runs after the body returns */

	ENV(e, AP("ext", "shop", "  action: CUSTOM\n  provider: {name: ext-authz}\n  rules:\n  - {}\n"));
	EXPECT_FALSE(allowed(&e, FRONT, "10.0.0.1", 9000));
	env_free(&e);
	ENV(e, AP("audit", "shop", "  action: AUDIT\n  rules:\n  - {}\n"));
	EXPECT_TRUE(allowed(&e, FRONT, "10.0.0.1", 9000));
}

TEST(service_accounts_and_not_principals)
{
	static struct env e;	/* deferred cleanup runs after the body returns */

	ENV(e, AP("sa", "shop", "  rules:\n  - from:\n    - source: {serviceAccounts: [web/frontend]}\n"
		  "  - from:\n    - source: {notPrincipals: [\"" ADMIN "\"]}\n    to:\n    - operation: {ports: [\"7000\"]}\n"));
	EXPECT_TRUE(allowed(&e, FRONT, "10.0.0.1", 9000));
	EXPECT_FALSE(allowed(&e, ADMIN, "10.0.0.1", 9000));
	EXPECT_FALSE(allowed(&e, ADMIN, "10.0.0.1", 7000));
	/* notPrincipals matches a connection without any principal. */
	EXPECT_TRUE(allowed(&e, NULL, "10.0.0.1", 7000));
	EXPECT_FALSE(allowed(&e, NULL, "10.0.0.1", 9000));
}
