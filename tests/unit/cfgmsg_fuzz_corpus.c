// SPDX-License-Identifier: Apache-2.0
/* The cfgmsg fuzz corpus (config-stream lines), replayed through its target:
 * a regression suite in `make test`. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <errno.h>

#include "../harness/test.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
#include "../fuzz/cfgmsg/fuzz.c"

TEST(cfgmsg_corpus)
{
	int n = test_replay_corpus("cfgmsg", LLVMFuzzerTestOneInput);

	EXPECT_GE(n, 6);
	test_log("%d corpus files replayed", n);
}

static int fed_calls;

static int nack_odd(void *arg, uint64_t version, json_t *objects, char *why, size_t whysz)
{
	(void)arg; (void)objects;
	fed_calls++;
	if (version & 1) {
		snprintf(why, whysz, "odd");
		return -EINVAL;
	}
	return 0;
}

static bool has(json_t *cfg, const char *name)
{
	size_t i;
	json_t *o;

	json_array_foreach(cfg, i, o)
		if (!strcmp(json_string_value(json_object_get(json_object_get(o, "metadata"), "name")) ?: "", name))
			return true;
	return false;
}

#define FEED(c, s, why) zm_cfgclient_feed(c, s, strlen(s), why, sizeof(why))

TEST(stream_semantics)
{
	struct zm_cfgclient_opts o = { .server = "127.0.0.1:1", .cred_dir = "/nonexistent", .on_config = nack_odd };
	struct zm_cfgclient *c = NULL;
	struct zm_error e;
	char why[256] = "";
	bool have;

	ASSERT_OK(zm_cfgclient_new(&o, &c, &e));
	/* A delta before any snapshot breaks the stream. */
	EXPECT_EQ(FEED(c, "{\"version\":1,\"kind\":\"delta\",\"objects\":[],\"deleted\":[]}", why), -EINVAL);
	EXPECT_STRSTR(why, "delta before any snapshot");
	EXPECT_OK(FEED(c, "{\"version\":2,\"kind\":\"snapshot\",\"objects\":[{\"kind\":\"VirtualService\","
		       "\"metadata\":{\"name\":\"r1\",\"namespace\":\"shop\"}}],\"deleted\":[],\"bundle\":\"B1\"}", why));
	EXPECT_EQ(zm_cfgclient_version(c, &have), 2);
	EXPECT_TRUE(has(zm_cfgclient_config(c), "r1"));
	EXPECT_STREQ(zm_cfgclient_bundle(c), "B1");
	/* Odd version: refused, the accepted config stays. */
	EXPECT_OK(FEED(c, "{\"version\":3,\"kind\":\"delta\",\"objects\":[{\"kind\":\"VirtualService\","
		       "\"metadata\":{\"name\":\"r2\",\"namespace\":\"shop\"}}],\"deleted\":[]}", why));
	EXPECT_EQ(zm_cfgclient_version(c, &have), 2);
	EXPECT_FALSE(has(zm_cfgclient_config(c), "r2"));
	/* The next delta applies on top of what zmeshd sent (r2 included), r1 deleted. */
	EXPECT_OK(FEED(c, "{\"version\":4,\"kind\":\"delta\",\"objects\":[],\"deleted\":[\"VirtualService/shop/r1\"]}", why));
	EXPECT_EQ(zm_cfgclient_version(c, &have), 4);
	EXPECT_TRUE(has(zm_cfgclient_config(c), "r2"));
	EXPECT_FALSE(has(zm_cfgclient_config(c), "r1"));
	/* The same version again (a reconnect): ACKed without a call. */
	fed_calls = 0;
	EXPECT_OK(FEED(c, "{\"version\":4,\"kind\":\"snapshot\",\"objects\":[{\"kind\":\"VirtualService\","
		       "\"metadata\":{\"name\":\"r2\",\"namespace\":\"shop\"}}],\"deleted\":[]}", why));
	EXPECT_EQ(fed_calls, 0);
	/* A bundle message changes the bundle only. */
	EXPECT_OK(FEED(c, "{\"version\":4,\"kind\":\"bundle\",\"bundle\":\"B2\"}", why));
	EXPECT_STREQ(zm_cfgclient_bundle(c), "B2");
	EXPECT_EQ(zm_cfgclient_version(c, &have), 4);
	/* Objects without a name break the stream and change nothing. */
	EXPECT_EQ(FEED(c, "{\"version\":6,\"kind\":\"snapshot\",\"objects\":[{\"kind\":\"Pod\"}],\"deleted\":[]}", why), -EINVAL);
	EXPECT_EQ(zm_cfgclient_version(c, &have), 4);
	zm_cfgclient_free(c);
}
