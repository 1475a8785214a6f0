// SPDX-License-Identifier: Apache-2.0
/* The config fuzz corpus (examples and past crashers), replayed through the
 * fuzz target's entry point: a regression suite without libFuzzer. */
#include <stdint.h>

#include "../harness/test.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
#include "../fuzz/config/fuzz.c"

TEST(config_corpus)
{
	int n = test_replay_corpus("config", LLVMFuzzerTestOneInput);

	EXPECT_GE(n, 10);
	test_log("%d corpus files replayed", n);
}
