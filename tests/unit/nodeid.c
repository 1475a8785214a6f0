// SPDX-License-Identifier: Apache-2.0
/* Node bootstrap identities (nodeid.h) and zm_ca_issue_node(). */
#include <errno.h>
#include <sys/stat.h>

#include "pki.h"
#include "zmesh/nodeid.h"
#include "zmesh/svid.h"

TEST(node_names)
{
	static const char *const good[] = { "n1", "node-a", "ip-10-0-0-1.ec2.internal", "a" };
	static const char *const bad[] = { "", "-a", "a-", "Node", "a_b", "a/b", "a b", ".a" };

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		EXPECT_TRUE(zm_node_name_valid(good[i], strlen(good[i])));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		EXPECT_FALSE(zm_node_name_valid(bad[i], strlen(bad[i])));
}

TEST(parse_and_format)
{
	char buf[600], node[ZM_NODE_NAME_MAX + 1];
	static const char nul[] = "spiffe://cluster.local/zmesh/node/a\0b";

	ASSERT_OK(zm_node_id_format("cluster.local", "node-a", buf, sizeof(buf)));
	EXPECT_STREQ(buf, "spiffe://cluster.local/zmesh/node/node-a");
	ASSERT_OK(zm_node_id_parse(buf, strlen(buf), "cluster.local", node, sizeof(node)));
	EXPECT_STREQ(node, "node-a");
	EXPECT_EQ(zm_node_id_format("cluster.local", "Bad", buf, sizeof(buf)), -EINVAL);
	EXPECT_EQ(zm_node_id_format("cluster.local", "a", buf, 10), -ENOSPC);
	/* Another trust domain, a workload ID, a suffix, a NUL inside: all refused. */
	EXPECT_EQ(zm_node_id_parse("spiffe://evil.local/zmesh/node/a", 31, "cluster.local", node, sizeof(node)), -EINVAL);
	EXPECT_EQ(zm_node_id_parse("spiffe://cluster.local/ns/a/sa/b", 32, "cluster.local", node, sizeof(node)), -EINVAL);
	EXPECT_EQ(zm_node_id_parse("spiffe://cluster.local/zmesh/node/a/x", 37, "cluster.local", node, sizeof(node)), -EINVAL);
	EXPECT_EQ(zm_node_id_parse(nul, sizeof(nul) - 1, "cluster.local", node, sizeof(node)), -EINVAL);
	EXPECT_EQ(zm_node_id_parse("spiffe://cluster.local/zmesh/node/", 34, "cluster.local", node, sizeof(node)), -EINVAL);
}

/* Waypoint and gateway IDs: /zmesh/<role>/<ns>/<sa>, parsed with the workload segment rules. */
TEST(proxy_ids)
{
	char buf[600];
	struct zm_cp_peer p;
	static const char nul[] = "spiffe://cluster.local/zmesh/waypoint/shop/w\0x";
	static const char *const bad[] = {
		"spiffe://cluster.local/zmesh/waypoint/shop",		/* no account */
		"spiffe://cluster.local/zmesh/waypoint/shop/",
		"spiffe://cluster.local/zmesh/waypoint//w",
		"spiffe://cluster.local/zmesh/waypoint/shop/w/x",	/* a suffix */
		"spiffe://cluster.local/zmesh/waypoint/../w",
		"spiffe://cluster.local/zmesh/ztunnel/shop/w",		/* no such role */
		"spiffe://other.local/zmesh/gateway/shop/w",
		"spiffe://cluster.local/zmesh/gateway",
		"spiffe://cluster.local/ns/shop/sa/w",			/* a workload */
	};

	ASSERT_OK(zm_proxy_id_format("cluster.local", ZM_CP_WAYPOINT, "shop", "waypoint", buf, sizeof(buf)));
	EXPECT_STREQ(buf, "spiffe://cluster.local/zmesh/waypoint/shop/waypoint");
	ASSERT_OK(zm_cp_id_parse(buf, strlen(buf), "cluster.local", &p));
	EXPECT_EQ(p.role, ZM_CP_WAYPOINT);
	EXPECT_STREQ(p.ns, "shop");
	EXPECT_STREQ(p.sa, "waypoint");
	ASSERT_OK(zm_proxy_id_format("cluster.local", ZM_CP_GATEWAY, "istio-system", "gw", buf, sizeof(buf)));
	ASSERT_OK(zm_cp_id_parse(buf, strlen(buf), "cluster.local", &p));
	EXPECT_EQ(p.role, ZM_CP_GATEWAY);
	EXPECT_STREQ(p.ns, "istio-system");
	/* Node IDs parse as nodes through the same door. */
	ASSERT_OK(zm_cp_id_parse("spiffe://cluster.local/zmesh/node/n1", 36, "cluster.local", &p));
	EXPECT_EQ(p.role, ZM_CP_NODE);
	EXPECT_STREQ(p.node, "n1");
	EXPECT_EQ(zm_proxy_id_format("cluster.local", ZM_CP_NODE, "a", "b", buf, sizeof(buf)), -EINVAL);
	EXPECT_EQ(zm_proxy_id_format("cluster.local", ZM_CP_WAYPOINT, "a/b", "c", buf, sizeof(buf)), -EINVAL);
	EXPECT_EQ(zm_proxy_id_format("cluster.local", ZM_CP_WAYPOINT, "a", "b", buf, 20), -ENOSPC);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		EXPECT_EQ(zm_cp_id_parse(bad[i], strlen(bad[i]), "cluster.local", &p), -EINVAL);
	EXPECT_EQ(zm_cp_id_parse(nul, sizeof(nul) - 1, "cluster.local", &p), -EINVAL);
}

FIXTURE(ca) {
	char dir[128];
	struct zm_ca *ca;
};

FIXTURE_SETUP(ca)
{
	struct zm_error e = { 0 };

	pki_tmpdir(self->dir, sizeof(self->dir), "nodeid");
	ASSERT_OK(zm_ca_open(self->dir, &self->ca, &e));
}

FIXTURE_TEARDOWN(ca)
{
	zm_ca_free(self->ca);
	pki_rmdir(self->dir);
}

TEST_F(ca, issued_node_cert_is_a_node_and_not_a_workload)
{
	struct zm_error e = { 0 };
	char *key = NULL, *chain = NULL, node[ZM_NODE_NAME_MAX + 1], why[256];
	struct zm_spiffe_id wid;
	X509 *leaf;

	ASSERT_OK(zm_ca_issue_node(self->ca, "cluster.local", "node-a", 3600, &key, &chain, &e));
	leaf = pki_cert(chain);
	ASSERT_OK_PTR(leaf);
	ASSERT_OK(zm_node_id_from_x509(leaf, "cluster.local", node, sizeof(node), why, sizeof(why)));
	EXPECT_STREQ(node, "node-a");
	/* Another trust domain's reader refuses it. */
	EXPECT_EQ(zm_node_id_from_x509(leaf, "other.local", node, sizeof(node), why, sizeof(why)), -EACCES);
	/* Every workload check refuses it: a node credential is no workload identity. */
	EXPECT_EQ(zm_svid_check(leaf, &wid, why, sizeof(why)), -EACCES);
	EXPECT_STRSTR(why, "not a SPIFFE workload ID");
	X509_free(leaf);
	free(key);
	free(chain);
	EXPECT_NE(zm_ca_issue_node(self->ca, "cluster.local", "Bad_Name", 0, &key, &chain, &e), 0);
	EXPECT_TRUE(key == NULL && chain == NULL);
}

TEST_F(ca, issued_proxy_cert_is_its_role_and_not_a_workload)
{
	struct zm_error e = { 0 };
	char *key = NULL, *chain = NULL, node[ZM_NODE_NAME_MAX + 1], why[256];
	struct zm_spiffe_id wid;
	struct zm_cp_peer p;
	X509 *leaf;

	ASSERT_OK(zm_ca_issue_proxy(self->ca, "cluster.local", ZM_CP_GATEWAY, "istio-system", "istio-ingressgateway",
				    3600, &key, &chain, &e));
	leaf = pki_cert(chain);
	ASSERT_OK_PTR(leaf);
	ASSERT_OK(zm_cp_id_from_x509(leaf, "cluster.local", &p, why, sizeof(why)));
	EXPECT_EQ(p.role, ZM_CP_GATEWAY);
	EXPECT_STREQ(p.sa, "istio-ingressgateway");
	/* Not a node, not a workload. */
	EXPECT_EQ(zm_node_id_from_x509(leaf, "cluster.local", node, sizeof(node), why, sizeof(why)), -EACCES);
	EXPECT_EQ(zm_svid_check(leaf, &wid, why, sizeof(why)), -EACCES);
	X509_free(leaf);
	free(key);
	free(chain);
	EXPECT_NE(zm_ca_issue_proxy(self->ca, "cluster.local", ZM_CP_NODE, "a", "b", 0, &key, &chain, &e), 0);
	EXPECT_TRUE(key == NULL && chain == NULL);
}

TEST_F(ca, workload_and_odd_certs_are_not_nodes)
{
	struct zm_error e = { 0 };
	struct zm_spiffe_id id;
	char *key = NULL, *chain = NULL, node[ZM_NODE_NAME_MAX + 1], why[256];
	X509 *leaf;

	pki_id(&id, "spiffe://cluster.local/ns/shop/sa/web");
	pki_issue(self->ca, &id, 0, &key, &chain);
	leaf = pki_cert(chain);
	ASSERT_OK_PTR(leaf);
	EXPECT_EQ(zm_node_id_from_x509(leaf, "cluster.local", node, sizeof(node), why, sizeof(why)), -EACCES);
	EXPECT_STRSTR(why, "not a node identity");
	X509_free(leaf);
	free(key);
	free(chain);
	/* A CA certificate with a node SAN, and a leaf with two URI SANs. */
	{
		static const char *const ca_exts[] = { "basicConstraints", "critical,CA:TRUE", "keyUsage",
						       "digitalSignature,keyCertSign", "subjectAltName",
						       "URI:spiffe://cluster.local/zmesh/node/a", NULL };
		static const char *const two[] = { "keyUsage", "digitalSignature", "subjectAltName",
						   "URI:spiffe://cluster.local/zmesh/node/a,URI:spiffe://cluster.local/zmesh/node/b", NULL };

		pki_mint(NULL, NULL, ca_exts, -60, 3600, &key, &chain);
		leaf = pki_cert(chain);
		EXPECT_EQ(zm_node_id_from_x509(leaf, "cluster.local", node, sizeof(node), why, sizeof(why)), -EACCES);
		EXPECT_STRSTR(why, "CA");
		X509_free(leaf);
		free(key);
		free(chain);
		pki_mint(NULL, NULL, two, -60, 3600, &key, &chain);
		leaf = pki_cert(chain);
		EXPECT_EQ(zm_node_id_from_x509(leaf, "cluster.local", node, sizeof(node), why, sizeof(why)), -EACCES);
		EXPECT_STRSTR(why, "exactly one URI SAN");
		X509_free(leaf);
		free(key);
		free(chain);
	}
	(void)e;
}

TEST_F(ca, credential_files_round_trip)
{
	struct zm_error e = { 0 };
	char dir[256], *key = NULL, *chain = NULL, *k2 = NULL, *c2 = NULL, *b2 = NULL;
	const char *bundle = zm_ca_bundle(self->ca);
	struct stat st;

	snprintf(dir, sizeof(dir), "%s/nodes/n1", self->dir);
	ASSERT_OK(zm_ca_issue_node(self->ca, "cluster.local", "n1", 0, &key, &chain, &e));
	ASSERT_OK(zm_node_cred_write(dir, key, chain, bundle, &e));
	ASSERT_OK(zm_node_cred_read(dir, &k2, &c2, &b2, &e));
	EXPECT_STREQ(k2, key);
	EXPECT_STREQ(c2, chain);
	EXPECT_STREQ(b2, bundle);
	snprintf(dir, sizeof(dir), "%s/nodes/n1/" ZM_NODE_KEY_FILE, self->dir);
	ASSERT_OK(stat(dir, &st));
	EXPECT_EQ(st.st_mode & 0777, 0600);
	free(k2);
	snprintf(dir, sizeof(dir), "%s/nodes/none", self->dir);
	EXPECT_EQ(zm_node_cred_read(dir, &k2, NULL, NULL, &e), -ENOENT);
	EXPECT_TRUE(k2 == NULL);
	free(key);
	free(chain);
	free(c2);
	free(b2);
}
