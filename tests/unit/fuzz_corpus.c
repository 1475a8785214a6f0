// SPDX-License-Identifier: Apache-2.0
/* The yaml fuzz corpus replayed through its target: a regression suite that
 * runs in `make test` without libFuzzer. */
#include <stdint.h>

#include "../harness/test.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
#include "../fuzz/yaml/fuzz.c"

TEST(yaml_corpus)
{
	int n = test_replay_corpus("yaml", LLVMFuzzerTestOneInput);

	EXPECT_GE(n, 4);
	test_log("%d corpus files replayed", n);
}
