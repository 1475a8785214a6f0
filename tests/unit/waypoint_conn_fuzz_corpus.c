// SPDX-License-Identifier: Apache-2.0
/*
 * The waypoint connection fuzz corpus (tests/fuzz/waypoint_conn/corpus:
 * HTTP/1 and HTTP/2 requests through the whole waypoint) replayed through
 * the libFuzzer entry, so every seed and past crasher runs in `make test`.
 */
#include <stdint.h>

#include "../harness/test.h"

#define LLVMFuzzerTestOneInput fuzz_waypoint_conn_one
#include "../fuzz/waypoint_conn/fuzz.c"
#undef LLVMFuzzerTestOneInput

TEST(waypoint_conn_corpus)
{
	int n = test_replay_corpus("waypoint_conn", fuzz_waypoint_conn_one);

	EXPECT_GE(n, 12);
	test_log("%d corpus files replayed", n);
}
