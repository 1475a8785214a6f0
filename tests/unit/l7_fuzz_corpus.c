// SPDX-License-Identifier: Apache-2.0
/*
 * The L7 fuzz corpora (path normalizer, JWT) replayed through the very entry
 * functions libFuzzer calls, so every seed and every past crasher is a
 * regression test in `make test`. The targets abort() when an invariant
 * breaks, which fails the test.
 */
#include <stdint.h>

#include "../harness/test.h"

#define LLVMFuzzerTestOneInput fuzz_http_path_one
#include "../fuzz/http_path/fuzz.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_jwt_one
#include "../fuzz/jwt/fuzz.c"
#undef LLVMFuzzerTestOneInput

TEST(http_path_corpus)
{
	int n = test_replay_corpus("http_path", fuzz_http_path_one);

	EXPECT_GE(n, 20);
	test_log("%d corpus files replayed", n);
}

TEST(jwt_corpus)
{
	int n = test_replay_corpus("jwt", fuzz_jwt_one);

	EXPECT_GE(n, 10);
	test_log("%d corpus files replayed", n);
}
