// SPDX-License-Identifier: Apache-2.0
/*
 * The L7 engine's fuzz corpus (tests/fuzz/l7route/corpus) replayed through
 * the libFuzzer entry, so every seed and past crasher runs in `make test`.
 */
#include <stdint.h>

#include "../harness/test.h"

#define LLVMFuzzerTestOneInput fuzz_l7route_one
#include "../fuzz/l7route/fuzz.c"
#undef LLVMFuzzerTestOneInput

TEST(l7route_corpus)
{
	int n = test_replay_corpus("l7route", fuzz_l7route_one);

	EXPECT_GE(n, 7);
	test_log("%d corpus files replayed", n);
}
