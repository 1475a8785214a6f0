// SPDX-License-Identifier: Apache-2.0
/* The lab's manifest reader: what it accepts and the errors it gives. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness/test.h"
#include "zmesh/lab.h"

static const char base[] =
	"apiVersion: v1\nkind: Node\nmetadata:\n  name: node-1\n"
	"---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels:\n    istio.io/dataplane-mode: ambient\n"
	"---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: web\n  namespace: shop\n";

/* Write base + @extra to a temp file, load it. */
static int load(const char *extra, struct zm_lab *lab, struct zm_error *e, char *path)
{
	FILE *f;
	const char *files[1] = { path };

	snprintf(path, 64, "/tmp/zm-labspec-%d.yaml", getpid());
	f = fopen(path, "w");
	if (!f)
		return -1;
	fputs(base, f);
	fputs(extra, f);
	fclose(f);
	memset(lab, 0, sizeof(*lab));
	memset(e, 0, sizeof(*e));
	return zm_lab_spec_load(lab, files, 1, e);
}

static const char pod_ok[] =
	"---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: web-1\n  namespace: shop\n"
	"  labels:\n    app: web\n    version: v2\nspec:\n  nodeName: node-1\n"
	"  serviceAccountName: web\n  containers:\n  - name: app\n"
	"    command: [\"echoapp\", \"serve\"]\n    args: [\"--http\", \"8080\"]\n"
	"    env:\n    - name: A\n      value: b\n    ports:\n    - name: http\n      containerPort: 8080\n"
	"---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\n"
	"spec:\n  selector:\n    app: web\n  ports:\n  - name: http\n    port: 80\n    targetPort: http\n"
	"---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: ignored\n";

TEST(reads_a_cluster)
{
	struct zm_lab lab;
	struct zm_error e;
	char path[64];

	ASSERT_OK(load(pod_ok, &lab, &e, path));
	unlink(path);
	ASSERT_EQ(lab.nnodes, 1);
	ASSERT_EQ(lab.npods, 1);
	ASSERT_EQ(lab.nservices, 1);
	EXPECT_STREQ(lab.pods[0].ns, "shop");
	EXPECT_STREQ(lab.pods[0].sa, "web");
	EXPECT_STREQ(zm_labels_get(&lab.pods[0].labels, "version"), "v2");
	ASSERT_EQ(lab.pods[0].ncontainers, 1);
	EXPECT_EQ(lab.pods[0].containers[0].argc, 4);
	EXPECT_STREQ(lab.pods[0].containers[0].argv[3], "8080");
	EXPECT_STREQ(lab.services[0].ports[0].target_name, "http");
	EXPECT_STREQ(zm_labels_get(&zm_lab_ns_find(&lab, "shop")->labels,
				   "istio.io/dataplane-mode"), "ambient");
	/* "default" exists without being declared, as in Kubernetes. */
	EXPECT_OK_PTR(zm_lab_ns_find(&lab, "default"));
	zm_lab_free(&lab);
}

static const struct {
	const char *extra, *want;
} bad[] = {
	{ "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: a\nspec:\n  nodeName: node-9\n"
	  "  containers:\n  - name: c\n    command: [x]\n",
	  ":24:13: spec.nodeName: no Node \"node-9\"" },
	{ "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  namespace: nope\nspec:\n  nodeName: node-1\n"
	  "  containers:\n  - name: c\n    command: [x]\n",
	  ":23:14: metadata.namespace: no Namespace \"nope\"" },
	{ "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: a\nspec:\n  nodeName: node-1\n  colour: red\n"
	  "  containers:\n  - name: c\n    command: [x]\n",
	  ":25:3: spec.colour: unknown field" },
	{ "---\napiVersion: v1\nkind: Node\nmetadata:\n  name: node-1\n",
	  ":22:9: metadata.name: duplicate Node \"node-1\"" },
	{ "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: Bad_Name\nspec:\n  nodeName: node-1\n"
	  "  containers:\n  - name: c\n    command: [x]\n",
	  ":22:9: metadata.name: invalid name" },
	{ "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: a\nspec:\n  nodeName: node-1\n"
	  "  containers:\n  - name: c\n",
	  ":26:5: spec.containers[0].command: required" },
	{ "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  clusterIP: 10.0.0.1\n"
	  "  ports:\n  - port: 80\n",
	  ":24:14: spec.clusterIP: 10.0.0.1 is outside the service range" },
	{ "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  clusterIP: 10.96.0.20\n"
	  "  ports:\n  - port: 80\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: t\nspec:\n"
	  "  clusterIP: 10.96.0.20\n  ports:\n  - port: 80\n",
	  ":33:14: spec.clusterIP: 10.96.0.20 is already used by Service \"default/s\"" },
	{ "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  ports:\n  - port: 99999\n",
	  ":25:11: spec.ports[0].port: want an integer from 1 to 65535" },
	{ "---\napiVersion: v1\nkind: Deployment\nmetadata:\n  name: d\n",
	  ":20:7: kind: unsupported kind \"Deployment\"" },
	{ "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  namespace: shop\nspec:\n  nodeName: node-1\n"
	  "  serviceAccountName: ghost\n  containers:\n  - name: c\n    command: [x]\n",
	  ":26:23: spec.serviceAccountName: no ServiceAccount \"ghost\" in namespace \"shop\"" },
	{ "---\napiVersion: v1\nkind: Pod\nmetadata: [1]\n",
	  ":21:11: metadata: want a mapping" },
	/* Only Istio's two API groups are skipped as config, not look-alikes. */
	{ "---\napiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata:\n  name: t\n",
	  ":19:13: apiVersion: want v1 for kind Telemetry" },
};

TEST(errors_name_file_line_col_and_field)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct zm_lab lab;
		struct zm_error e;
		char path[64];

		EXPECT_LT(load(bad[i].extra, &lab, &e, path), 0);
		unlink(path);
		if (!EXPECT_STRSTR(e.msg, bad[i].want))
			test_log("case %zu", i);
		EXPECT_STRSTR(e.msg, "/tmp/zm-labspec-");
		zm_lab_free(&lab);
	}
}

TEST(lab_names)
{
	struct zm_error e;

	EXPECT_OK(zm_lab_name_check("t123", &e));
	EXPECT_LT(zm_lab_name_check("has-dash", &e), 0);
	EXPECT_STRSTR(e.msg, "only a-z and 0-9");
	EXPECT_LT(zm_lab_name_check("", &e), 0);
	EXPECT_LT(zm_lab_name_check("waytoolongname", &e), 0);
}

TEST(labels)
{
	struct zm_labels l = { 0 }, sel = { 0 };

	ASSERT_OK(zm_labels_set(&l, "app", "web"));
	ASSERT_OK(zm_labels_set(&l, "version", "v1"));
	ASSERT_OK(zm_labels_set(&sel, "app", "web"));
	EXPECT_TRUE(zm_labels_match(&sel, &l));
	ASSERT_OK(zm_labels_set(&sel, "version", "v2"));
	EXPECT_FALSE(zm_labels_match(&sel, &l));
	EXPECT_OK(zm_labels_del(&l, "version"));
	EXPECT_EQ(zm_labels_del(&l, "version"), -ENOENT);
	EXPECT_EQ(l.n, 1);
	zm_labels_free(&l);
	zm_labels_free(&sel);
}

TEST(enrolment_rules)
{
	static const struct {
		const char *ns, *pod;
		bool want;
	} cases[] = {
		{ "ambient", NULL, true },
		{ "ambient", "none", false },
		{ NULL, NULL, false },
		{ "none", NULL, false },
		{ NULL, "ambient", true },
		{ "Ambient", NULL, false },	/* values are case-sensitive, as in Istio */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct zm_labels ns = { 0 }, pod = { 0 };

		if (cases[i].ns)
			zm_labels_set(&ns, "istio.io/dataplane-mode", cases[i].ns);
		if (cases[i].pod)
			zm_labels_set(&pod, "istio.io/dataplane-mode", cases[i].pod);
		zm_labels_set(&pod, "app", "x");
		if (!EXPECT_EQ(zm_enroll_wanted(&ns, &pod), cases[i].want))
			test_log("case %zu", i);
		zm_labels_free(&ns);
		zm_labels_free(&pod);
	}
}
