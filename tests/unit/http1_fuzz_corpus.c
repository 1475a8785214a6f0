// SPDX-License-Identifier: Apache-2.0
/*
 * The waypoint's HTTP/1 parser fuzz corpus (tests/fuzz/http1/corpus) replayed
 * through the libFuzzer entry, so every seed and past crasher (a CR taken for
 * the blank line, an empty Transfer-Encoding beside a Content-Length, an
 * invalid trailer name) runs in `make test`.
 */
#include <stdint.h>

#include "../harness/test.h"

#define LLVMFuzzerTestOneInput fuzz_http1_one
#include "../fuzz/http1/fuzz.c"
#undef LLVMFuzzerTestOneInput

TEST(http1_corpus)
{
	int n = test_replay_corpus("http1", fuzz_http1_one);

	EXPECT_GE(n, 19);
	test_log("%d corpus files replayed", n);
}
