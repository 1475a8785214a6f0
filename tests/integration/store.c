// SPDX-License-Identifier: Apache-2.0
/*
 * The config store as a user drives it: `lab up` with policy in the cluster
 * file, then zmeshctl apply/get/delete/describe against the lab's store.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../harness/test.h"
#include "zmesh/config.h"

static const char cluster[] =
	"apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n---\n"
	"apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {istio.io/dataplane-mode: ambient}}\n---\n"
	"apiVersion: v1\nkind: Pod\nmetadata: {name: pay, namespace: shop, labels: {app: payment, version: v1}}\n"
	"spec:\n  nodeName: n1\n  containers:\n  - name: c\n    command: [sleep, \"3600\"]\n"
	"    ports: [{containerPort: 8080, name: http}]\n---\n"
	"apiVersion: v1\nkind: Service\nmetadata: {name: payment, namespace: shop}\n"
	"spec:\n  selector: {app: payment}\n  ports: [{name: http, port: 80, targetPort: http}]\n---\n"
	"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
	"metadata: {name: allow-orders, namespace: shop}\n"
	"spec:\n  selector: {matchLabels: {app: payment}}\n  action: ALLOW\n"
	"  rules:\n  - from: [{source: {principals: [cluster.local/ns/shop/sa/orders]}}]\n---\n"
	"apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
	"metadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: STRICT}}\n---\n"
	"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: payment, namespace: shop}\n"
	"spec:\n  host: payment\n  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]\n";

FIXTURE(lab) {
	char name[16];
	char file[64];
	char ctl[4200];
	char store[128];
	char tmp[64];
};

FIXTURE_SETUP(lab)
{
	char out[4096];

	REQUIRE_ROOT();
	snprintf(self->name, sizeof(self->name), "s%d", getpid() % 10000000);
	snprintf(self->file, sizeof(self->file), "/tmp/zm-store-%s.yaml", self->name);
	snprintf(self->tmp, sizeof(self->tmp), "/tmp/zm-store-%s.d", self->name);
	snprintf(self->ctl, sizeof(self->ctl), "%s/zmeshctl", test_build_dir());
	snprintf(self->store, sizeof(self->store), "/run/zmesh/lab/%s/store", self->name);
	mkdir(self->tmp, 0700);
	ASSERT_OK(test_write_file(self->file, cluster));
	/* No ztunnel: the store is what is under test, and the machine is shared. */
	if (!ASSERT_EQ(test_sh(out, sizeof(out), "%s lab up -f %s --name %s --no-mesh", self->ctl,
			       self->file, self->name), 0))
		test_log("%s", out);
}

FIXTURE_TEARDOWN(lab)
{
	if (!self->name[0])
		return;
	test_sh(NULL, 0, "%s lab down --name %s", self->ctl, self->name);
	test_sh(NULL, 0, "rm -rf %s", self->tmp);
	unlink(self->file);
}

/* The checkout (docs/examples), from the build directory. */
static const char *src_dir(void)
{
	static char dir[PATH_MAX];
	char probe[PATH_MAX + 32];
	struct stat st;

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

static long version(const char *store)
{
	char out[64];

	if (test_sh(out, sizeof(out), "readlink %s/current", store) || strncmp(out, "gen-", 4))
		return -1;
	return atol(out + 4);
}

TEST_F(lab, up_puts_the_policy_in_the_store)
{
	char out[8192];
	struct stat st;

	EXPECT_EQ(version(self->store), 2);
	ASSERT_EQ(stat(self->store, &st), 0);
	EXPECT_EQ(st.st_mode & 0777, 0700);
	ASSERT_EQ(test_sh(out, sizeof(out), "%s get ap -n shop -o yaml --name %s", self->ctl, self->name), 0);
	EXPECT_STRSTR(out, "kind: List");
	EXPECT_STRSTR(out, "- apiVersion: security.istio.io/v1\n  kind: AuthorizationPolicy\n"
		      "  metadata:\n    name: allow-orders\n    namespace: shop\n");
	EXPECT_STRSTR(out, "principals:\n          - cluster.local/ns/shop/sa/orders\n");
	/* Kinds as kubectl takes them. */
	ASSERT_EQ(test_sh(out, sizeof(out), "ZMESH_LAB=%s %s get AuthorizationPolicies -n shop",
			  self->name, self->ctl), 0);
	EXPECT_STRSTR(out, "NAME");
	EXPECT_STRSTR(out, "NAME           ACTION   AGE\nallow-orders   ALLOW    ");
	ASSERT_EQ(test_sh(out, sizeof(out), "%s get peerauthentication.security.istio.io -A --name %s",
			  self->ctl, self->name), 0);
	EXPECT_STRSTR(out, "istio-system   default   STRICT   ");
	/* Several kinds at once: a table each, names carry their kind. */
	ASSERT_EQ(test_sh(out, sizeof(out), "%s get ap,dr -n shop --name %s", self->ctl, self->name), 0);
	EXPECT_STRSTR(out, "authorizationpolicy.security.istio.io/allow-orders   ALLOW    ");
	EXPECT_STRSTR(out, "NAME                                          HOST      AGE\n"
		      "destinationrule.networking.istio.io/payment   payment   ");
	EXPECT_STRSTR(out, "s\n\nNAME ");
	/* The lab's cluster is in the store too, as an API server holds it
	 * (docs/lab.md "The cluster in the store"), in the same version. */
	ASSERT_EQ(test_sh(out, sizeof(out), "%s get pods -A --name %s", self->ctl, self->name), 0);
	EXPECT_STRSTR(out, "shop        pay ");

	ASSERT_EQ(test_sh(out, sizeof(out), "%s describe pod pay -n shop --name %s", self->ctl,
			  self->name), 0);
	test_log("describe:\n%s", out);
	EXPECT_STRSTR(out, "Pod: pay\n");
	EXPECT_STRSTR(out, "Service: payment\n");
	EXPECT_STRSTR(out, "Port: http 80/TCP targets pod port 8080\n");
	EXPECT_STRSTR(out, "DestinationRule: payment.shop for \"payment\"\n   Matching subsets: v1\n");
	EXPECT_STRSTR(out, "Workload mTLS mode: STRICT (mesh)\n");
	EXPECT_STRSTR(out, "default.istio-system (mesh-wide)\n");
	EXPECT_STRSTR(out, "AuthorizationPolicies:\n   allow-orders.shop: ALLOW, 1 rule(s), selector app=payment\n");

	/* A policy applied later shows up; one for other pods does not. */
	char f[128];

	snprintf(f, sizeof(f), "%s/more.yaml", self->tmp);
	ASSERT_OK(test_write_file(f, "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
				  "metadata: {name: deny-all-shop, namespace: shop}\nspec: {action: DENY, rules: [{}]}\n---\n"
				  "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
				  "metadata: {name: web-only, namespace: shop}\nspec: {selector: {matchLabels: {app: web}}}\n---\n"
				  "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
				  "metadata: {name: pay}\n"
				  "spec: {selector: {matchLabels: {app: payment}}, mtls: {mode: PERMISSIVE}}\n---\n"
				  "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
				  "metadata: {name: via-waypoint}\n"
				  "spec: {targetRefs: [{kind: Service, group: \"\", name: payment}], action: DENY,\n"
				  "       rules: [{to: [{operation: {methods: [DELETE]}}]}]}\n---\n"
				  "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\n"
				  "metadata: {name: jwt}\n"
				  "spec: {selector: {matchLabels: {app: payment}}, jwtRules: [{issuer: https://issuer.example.com,\n"
				  "       jwksUri: https://issuer.example.com/jwks.json}]}\n"));
	/* Documents without a namespace take -n's. */
	ASSERT_EQ(test_sh(out, sizeof(out), "%s apply -n shop -f %s --name %s", self->ctl, f, self->name), 0);
	ASSERT_EQ(test_sh(out, sizeof(out), "%s describe pod pay -n shop --name %s", self->ctl,
			  self->name), 0);
	EXPECT_STRSTR(out, "deny-all-shop.shop: DENY, 1 rule(s), namespace-wide\n");
	EXPECT_FALSE(strstr(out, "web-only"));
	EXPECT_STRSTR(out, "via-waypoint.shop: DENY, 1 rule(s), via targetRef Service payment (enforced by its waypoint)\n");
	EXPECT_STRSTR(out, "RequestAuthentications:\n   jwt.shop: 1 JWT rule(s)\n");
	EXPECT_STRSTR(out, "Workload mTLS mode: PERMISSIVE (workload)\n");
	EXPECT_STRSTR(out, "pay.shop (workload selector)\n");
	EXPECT_NE(test_sh(out, sizeof(out), "%s describe pod nope -n shop --name %s", self->ctl,
			  self->name), 0);
	EXPECT_STRSTR(out, "pod \"nope\" not found");

	/* lab down takes the store with it. */
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab down --name %s", self->ctl, self->name), 0);
	EXPECT_NE(stat(self->store, &st), 0);
	EXPECT_NE(test_sh(NULL, 0, "test -e /run/zmesh/lab/%s", self->name), 0);
}

/* One example file: apply (created), again (unchanged, same version), every
 * object through get -o yaml and back (unchanged), get -o json, delete. */
static void round_trip(struct zm_fixture_lab *self, const char *file)
{
	char out[65536], obj[256], cmd[8192];
	struct zm_cfg_set s;
	long v0, v1;

	zm_cfg_set_init(&s);
	ASSERT_OK(zm_cfg_load_path(&s, file));
	ASSERT_GT(s.nobjs, 0);
	v0 = version(self->store);
	ASSERT_EQ(test_sh(out, sizeof(out), "%s apply -f %s --name %s", self->ctl, file, self->name), 0);
	v1 = version(self->store);
	EXPECT_EQ(v1, v0 + 1);
	for (size_t i = 0; i < s.nobjs; i++) {
		char line[256];

		snprintf(line, sizeof(line), "/%s created\n", s.objs[i]->meta.name.v);
		EXPECT_STRSTR(out, line);
	}
	ASSERT_EQ(test_sh(out, sizeof(out), "%s apply -f %s --name %s", self->ctl, file, self->name), 0);
	EXPECT_FALSE(strstr(out, " created"));
	EXPECT_FALSE(strstr(out, " configured"));
	EXPECT_EQ(version(self->store), v1);

	snprintf(obj, sizeof(obj), "%s/obj.yaml", self->tmp);
	for (size_t i = 0; i < s.nobjs; i++) {
		const struct zm_cfg_obj *o = s.objs[i];

		snprintf(cmd, sizeof(cmd), "%s get %s %s -n %s -o yaml --name %s > %s", self->ctl,
			 zm_kind_name(o->kind), o->meta.name.v, o->meta.ns.v, self->name, obj);
		ASSERT_EQ(test_sh(out, sizeof(out), "%s", cmd), 0);
		/* What get prints reads back as the same object. */
		ASSERT_EQ(test_sh(out, sizeof(out), "%s apply -f %s --name %s", self->ctl, obj, self->name), 0);
		EXPECT_STRSTR(out, " unchanged\n");
		EXPECT_FALSE(strstr(out, "configured"));
		/* JSON for tools. */
		ASSERT_EQ(test_sh(out, sizeof(out), "%s get %s %s -n %s -o json --name %s | python3 -c "
				  "'import json,sys; d=json.load(sys.stdin); print(d[\"kind\"], d[\"metadata\"][\"name\"])'",
				  self->ctl, zm_kind_name(o->kind), o->meta.name.v, o->meta.ns.v, self->name), 0);
		snprintf(cmd, sizeof(cmd), "%s %s\n", zm_kind_name(o->kind), o->meta.name.v);
		EXPECT_STREQ(out, cmd);
	}
	EXPECT_EQ(version(self->store), v1);

	ASSERT_EQ(test_sh(out, sizeof(out), "%s delete -f %s --name %s", self->ctl, file, self->name), 0);
	EXPECT_EQ(version(self->store), v1 + 1);
	for (size_t i = 0; i < s.nobjs; i++) {
		const struct zm_cfg_obj *o = s.objs[i];

		EXPECT_NE(test_sh(out, sizeof(out), "%s get %s %s -n %s --name %s", self->ctl,
				  zm_kind_name(o->kind), o->meta.name.v, o->meta.ns.v, self->name), 0);
		EXPECT_STRSTR(out, "(NotFound)");
	}
	/* Deleting again: nothing there, an error per object, nothing changes. */
	EXPECT_EQ(test_sh(out, sizeof(out), "%s delete -f %s --name %s", self->ctl, file, self->name), 1);
	EXPECT_STRSTR(out, "not found");
	EXPECT_STRSTR(out, "nothing deleted");
	EXPECT_EQ(version(self->store), v1 + 1);
	zm_cfg_set_free(&s);
}

TEST_F(lab, examples_apply_get_delete_round_trip)
{
	static const char *const files[] = { "ecommerce-traffic.yaml", "ecommerce-security.yaml",
					     "ecommerce-gateway.yaml", "ecommerce-external.yaml" };
	char path[PATH_MAX + 64], out[8192];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/docs/examples/%s", src_dir(), files[i]);
		test_log("%s", files[i]);
		round_trip(self, path);
	}
	/* Only what the lab brought is left. */
	ASSERT_EQ(test_sh(out, sizeof(out), "ls %s/gen-%ld | sort | tr '\\n' ' '", self->store,
			  version(self->store)), 0);
	EXPECT_STREQ(out, "AuthorizationPolicy.shop.allow-orders.yaml DestinationRule.shop.payment.yaml "
		     "Namespace._.default.yaml Namespace._.shop.yaml Node._.n1.yaml "
		     "PeerAuthentication.istio-system.default.yaml Pod.shop.pay.yaml Service.shop.payment.yaml "
		     "ServiceAccount.default.default.yaml ServiceAccount.shop.default.yaml ");
	/* The whole directory at once, and delete by name. */
	snprintf(path, sizeof(path), "%s/docs/examples", src_dir());
	ASSERT_EQ(test_sh(out, sizeof(out), "%s apply -f %s --name %s", self->ctl, path, self->name), 0);
	EXPECT_STRSTR(out, "virtualservice.networking.istio.io/payment-service created\n");
	ASSERT_EQ(test_sh(out, sizeof(out), "%s delete vs payment-service order-service -n ecommerce --name %s",
			  self->ctl, self->name), 0);
	EXPECT_STRSTR(out, "virtualservice.networking.istio.io \"payment-service\" deleted\n");
	EXPECT_STRSTR(out, "virtualservice.networking.istio.io \"order-service\" deleted\n");
	ASSERT_EQ(test_sh(out, sizeof(out), "%s get vs -n ecommerce --name %s", self->ctl, self->name), 0);
	EXPECT_FALSE(strstr(out, "payment-service"));
	EXPECT_STRSTR(out, "user-service");
}

TEST_F(lab, bad_apply_changes_nothing)
{
	char f[128], out[8192], before[16384], after[16384], want[PATH_MAX + 1024];
	long v;

	snprintf(f, sizeof(f), "%s/bad.yaml", self->tmp);
	ASSERT_OK(test_write_file(f, "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
				  "metadata: {name: payment, namespace: shop}\nspec:\n  hosts: [payment]\n"
				  "  http:\n  - route: [{destination: {host: payment, subset: v3}}]\n---\n"
				  "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
				  "metadata: {name: allow-orders, namespace: shop}\nspec:\n  action: PERMIT\n---\n"
				  "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
				  "metadata: {name: fine, namespace: shop}\nspec: {mtls: {mode: STRICT}}\n"));
	v = version(self->store);
	ASSERT_EQ(test_sh(before, sizeof(before), "%s get ap -A -o yaml --name %s; "
			  "%s get vs -A -o yaml --name %s; %s get pa -A -o json --name %s", self->ctl,
			  self->name, self->ctl, self->name, self->ctl, self->name), 0);
	ASSERT_EQ(test_sh(out, sizeof(out), "%s apply -f %s --name %s", self->ctl, f, self->name), 1);
	/* Exactly the config model's lines: the DestinationRule comes from the store. */
	test_sh(out, sizeof(out), "%s apply -f %s --name %s 2>&1 >/dev/null", self->ctl, f, self->name);

	snprintf(want, sizeof(want),
		 "%s:7:51: spec.http[0].route[0].destination.subset: subset \"v3\" is not defined by "
		 "DestinationRule shop/payment for host payment.shop.svc.cluster.local\n"
		 "%s:13:11: spec.action: unknown value \"PERMIT\", want one of ALLOW, DENY, AUDIT, CUSTOM\n"
		 "2 errors: nothing applied\n", f, f);
	EXPECT_STREQ(out, want);
	EXPECT_EQ(version(self->store), v);
	ASSERT_EQ(test_sh(after, sizeof(after), "%s get ap -A -o yaml --name %s; "
			  "%s get vs -A -o yaml --name %s; %s get pa -A -o json --name %s", self->ctl,
			  self->name, self->ctl, self->name, self->ctl, self->name), 0);
	EXPECT_STREQ(before, after);
	EXPECT_STRSTR(after, "action: ALLOW");
	EXPECT_FALSE(strstr(after, "fine"));
	/* A bad delete changes nothing either. */
	EXPECT_EQ(test_sh(out, sizeof(out), "%s delete ap allow-orders nope -n shop --name %s",
			  self->ctl, self->name), 1);
	EXPECT_STRSTR(out, "authorizationpolicies.security.istio.io \"nope\" not found");
	EXPECT_EQ(version(self->store), v);
	/* -n that contradicts a document's namespace: its line, nothing applied. */
	snprintf(want, sizeof(want), "%s/docs/examples/ecommerce-security.yaml", src_dir());
	EXPECT_EQ(test_sh(out, sizeof(out), "%s apply -n shop -f %s --name %s", self->ctl, want,
			  self->name), 1);
	EXPECT_STRSTR(out, "ecommerce-security.yaml:9:14: metadata.namespace: \"ecommerce\" does not match --namespace shop\n");
	EXPECT_EQ(version(self->store), v);
	/* A lab that is not up has no store, and apply does not make one. */
	EXPECT_EQ(test_sh(out, sizeof(out), "%s apply -f %s --name nolab%d", self->ctl, self->file,
			  getpid() % 1000), 1);
	EXPECT_STRSTR(out, "is not up");
	EXPECT_NE(test_sh(NULL, 0, "test -e /run/zmesh/lab/nolab%d", getpid() % 1000), 0);
	/* Usage errors. */
	EXPECT_EQ(test_sh(out, sizeof(out), "%s get frobs --name %s", self->ctl, self->name), 2);
	EXPECT_STRSTR(out, "unknown kind \"frobs\"");
	EXPECT_EQ(test_sh(out, sizeof(out), "%s get ap -o xml --name %s", self->ctl, self->name), 2);
	/* An invalid policy in the cluster file: lab up fails at its line, nothing is made. */
	char other[32];

	snprintf(other, sizeof(other), "b%d", getpid() % 10000000);
	snprintf(f, sizeof(f), "%s/badlab.yaml", self->tmp);
	ASSERT_OK(test_write_file(f, "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n---\n"
				  "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
				  "metadata: {name: x, namespace: default}\nspec:\n  action: PERMIT\n"));
	EXPECT_EQ(test_sh(out, sizeof(out), "%s lab up -f %s --name %s --no-mesh", self->ctl, f, other), 1);
	snprintf(want, sizeof(want), "%s:9:11: spec.action: unknown value \"PERMIT\"", f);
	EXPECT_STRSTR(out, want);
	EXPECT_EQ(test_sh(out, sizeof(out), "ls /run/zmesh/lab/%s /run/netns/zm-%s-n1 2>/dev/null | wc -l",
			  other, other), 0);
	EXPECT_STREQ(out, "0\n");
	test_sh(NULL, 0, "%s lab down --name %s", self->ctl, other);
}
