// SPDX-License-Identifier: Apache-2.0
/* The YAML tree: positions, scalars, limits and the errors they give. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness/test.h"
#include "zmesh/yaml.h"

static int load(const char *text, struct zm_yfile *f, struct zm_error *e)
{
	return zm_yaml_load_buf("t.yaml", text, strlen(text), f, e);
}

TEST(positions_and_lookup)
{
	struct zm_yfile f;
	struct zm_error e = { 0 };
	const char *text =
		"apiVersion: v1\n"
		"kind: Pod\n"
		"metadata:\n"
		"  name: \"user-v1\"\n"
		"  labels: {app: user}\n"
		"spec:\n"
		"  ports:\n"
		"  - 8080\n"
		"  - \"9000\"\n"
		"---\n"
		"kind: Service\n";

	ASSERT_OK(load(text, &f, &e));
	ASSERT_EQ(f.ndocs, 2);
	struct zm_ynode *md = zm_ymap_get(f.docs[0].root, "metadata");
	ASSERT_OK_PTR(md);
	struct zm_ynode *name = zm_ymap_get(md, "name");
	ASSERT_OK_PTR(name);
	EXPECT_TRUE(zm_ynode_eq(name, "user-v1"));
	EXPECT_FALSE(name->plain);
	EXPECT_EQ(name->line, 4);
	EXPECT_EQ(name->col, 9);
	EXPECT_TRUE(zm_ynode_eq(zm_ymap_get(zm_ymap_get(md, "labels"), "app"), "user"));

	struct zm_ynode *ports = zm_ymap_get(zm_ymap_get(f.docs[0].root, "spec"), "ports");
	ASSERT_EQ(ports->kind, ZM_Y_SEQ);
	ASSERT_EQ(ports->n, 2);
	int64_t v = 0;
	EXPECT_OK(zm_ynode_int(ports->items[0], 1, 65535, &v));
	EXPECT_EQ(v, 8080);
	/* A quoted number is a string, as Kubernetes' typed decoding has it. */
	EXPECT_EQ(zm_ynode_int(ports->items[1], 1, 65535, &v), -EINVAL);
	EXPECT_TRUE(zm_ynode_eq(zm_ymap_get(f.docs[1].root, "kind"), "Service"));
	zm_yaml_free(&f);
}

TEST(scalars)
{
	struct zm_yfile f;
	struct zm_error e = { 0 };
	bool b = false;
	int64_t v;

	ASSERT_OK(load("a: true\nb: 'true'\nc: ~\nd:\ne: 99999999999999999999\nf: -3\n", &f, &e));
	struct zm_ynode *r = f.docs[0].root;
	EXPECT_OK(zm_ynode_bool(zm_ymap_get(r, "a"), &b));
	EXPECT_TRUE(b);
	EXPECT_EQ(zm_ynode_bool(zm_ymap_get(r, "b"), &b), -EINVAL);
	EXPECT_TRUE(zm_ynode_is_null(zm_ymap_get(r, "c")));
	EXPECT_TRUE(zm_ynode_is_null(zm_ymap_get(r, "d")));
	EXPECT_TRUE(zm_ynode_is_null(zm_ymap_get(r, "missing")));
	EXPECT_EQ(zm_ynode_int(zm_ymap_get(r, "e"), INT64_MIN, INT64_MAX, &v), -EINVAL);
	EXPECT_OK(zm_ynode_int(zm_ymap_get(r, "f"), -5, 5, &v));
	EXPECT_EQ(v, -3);
	EXPECT_EQ(zm_ynode_int(zm_ymap_get(r, "f"), 0, 5, &v), -EINVAL);
	zm_yaml_free(&f);
}

TEST(nul_in_scalar_compares_by_length)
{
	struct zm_yfile f;
	struct zm_error e = { 0 };

	ASSERT_OK(load("k: \"ab\\0cd\"\n", &f, &e));
	struct zm_ynode *k = zm_ymap_get(f.docs[0].root, "k");
	ASSERT_EQ(k->len, 5);
	EXPECT_FALSE(zm_ynode_eq(k, "ab"));
	zm_yaml_free(&f);
}

static const struct {
	const char *text, *want;
} bad[] = {
	{ "a: 1\na: 2\n", "t.yaml:2:1: duplicate key \"a\" (first at line 1)" },
	{ "a: &x 1\nb: *x\n", "t.yaml:2:4: aliases are not supported" },
	{ "a: [1, 2\n", "t.yaml:2:1: did not find expected ',' or ']'" },
	{ "a:\n  - b\n c: d\n", "t.yaml:3:2: did not find expected key" },
	{ "? [a]\n: 1\n", "t.yaml:1:3: mapping keys must be scalars" },
	{ "a: \"\\xZZ\"\n", "t.yaml:1:7: did not find expected hexdecimal number" },
};

TEST(errors_name_the_place)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct zm_yfile f;
		struct zm_error e = { 0 };

		EXPECT_LT(load(bad[i].text, &f, &e), 0);
		EXPECT_STRSTR(e.msg, bad[i].want);
		EXPECT_EQ(f.nall, 0);
	}
}

TEST(depth_limit)
{
	char *text = malloc(4 * 200 + 16);
	struct zm_yfile f;
	struct zm_error e = { 0 };
	size_t o = 0;

	ASSERT_OK_PTR(text);
	for (int i = 0; i < 200; i++)
		text[o++] = '[';
	for (int i = 0; i < 200; i++)
		text[o++] = ']';
	text[o] = 0;
	EXPECT_EQ(load(text, &f, &e), -E2BIG);
	EXPECT_STRSTR(e.msg, "nesting deeper than 64 levels");
	free(text);
}

TEST(node_limit)
{
	size_t n = ZM_YAML_MAX_NODES + 10, o = 0;
	char *text = malloc(n * 3 + 8);
	struct zm_yfile f;
	struct zm_error e = { 0 };

	ASSERT_OK_PTR(text);
	text[o++] = '[';
	for (size_t i = 0; i < n; i++) {
		text[o++] = '1';
		text[o++] = ',';
	}
	text[o++] = ']';
	text[o] = 0;
	EXPECT_EQ(load(text, &f, &e), -E2BIG);
	EXPECT_STRSTR(e.msg, "document too large");
	free(text);
}

TEST(file_errors)
{
	struct zm_yfile f;
	struct zm_error e = { 0 };

	EXPECT_EQ(zm_yaml_load_file("/nonexistent/x.yaml", &f, &e), -ENOENT);
	EXPECT_STRSTR(e.msg, "/nonexistent/x.yaml: No such file or directory");
	EXPECT_EQ(zm_yaml_load_file("/", &f, &e), -EINVAL);
	EXPECT_STRSTR(e.msg, "not a regular file");
}

TEST(error_format)
{
	struct zm_yfile f;
	struct zm_error e = { 0 };

	ASSERT_OK(load("spec:\n  http:\n  - route:\n    - weight: 110\n", &f, &e));
	struct zm_ynode *w = zm_ymap_get(
		zm_ymap_get(f.docs[0].root, "spec")->items[0]->items[0]->items[0]->items[0], "weight");
	ASSERT_OK_PTR(w);
	EXPECT_EQ(zm_ynode_error(&e, &f, w, "spec.http[0].route[0].weight", "weights sum to %d, want 100", 110), -EINVAL);
	EXPECT_STREQ(e.msg, "t.yaml:4:15: spec.http[0].route[0].weight: weights sum to 110, want 100");
	zm_yaml_free(&f);
}
