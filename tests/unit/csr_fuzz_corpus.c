// SPDX-License-Identifier: Apache-2.0
/* The csr fuzz corpus, replayed through its target (a regression suite in
 * `make test`), and what its seeds must give. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness/test.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
#include "../fuzz/csr/fuzz.c"

TEST(csr_corpus)
{
	int n = test_replay_corpus("csr", LLVMFuzzerTestOneInput);

	EXPECT_GE(n, 10);
	test_log("%d corpus files replayed", n);
}

TEST(csr_seeds_mean_what_they_say)
{
	static const struct { const char *file; int rc; const char *why; } cases[] = {
		{ "seed-pem-workload", 0, "" },
		{ "seed-pem-two-uris", -EINVAL, "exactly one URI SAN, found 2" },
		{ "seed-pem-dns-only", -EINVAL, "exactly one URI SAN, found 0" },
		{ "seed-pem-node-id", -EINVAL, "not a SPIFFE workload ID" },
		{ "seed-garbage", -EINVAL, "not a PEM certificate request" },
	};
	char dir[4200], path[4500], why[256];

	ASSERT_OK(test_src_path("tests/fuzz/csr/corpus", dir, sizeof(dir)));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct zm_spiffe_id id;
		size_t len;
		char *buf;

		snprintf(path, sizeof(path), "%s/%s", dir, cases[i].file);
		buf = test_slurp(path, &len);
		ASSERT_OK_PTR(buf);
		why[0] = 0;
		EXPECT_EQ(zm_ca_csr_identity(buf + 1, len - 1, &id, why, sizeof(why)), cases[i].rc);
		EXPECT_STRSTR(why, cases[i].why);
		if (cases[i].rc == 0) {
			EXPECT_STREQ(id.ns, "shop");
			EXPECT_STREQ(id.sa, "web");
		}
		free(buf);
	}
}
