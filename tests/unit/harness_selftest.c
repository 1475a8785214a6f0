// SPDX-License-Identifier: Apache-2.0
/* The harness checks itself: a crash or failure in one test fails that test,
 * not the run, and the summary line counts it. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness/test.h"

FIXTURE(counter) {
	int value;
};
FIXTURE_SETUP(counter) { self->value = 41; }
FIXTURE_TEARDOWN(counter) { (void)self; }

TEST_F(counter, setup_ran)
{
	ASSERT_EQ(self->value, 41);
	self->value++;
	EXPECT_EQ(self->value, 42);
}

TEST(expect_is_a_bool)
{
	ASSERT_TRUE(EXPECT_EQ(1, 1));
	ASSERT_STREQ("abc", "abc");
	ASSERT_STRSTR("hello world", "o w");
}

/* The "victim" tests only do something when the selftest below runs this
 * binary again with ZM_HARNESS_VICTIM set; otherwise they pass trivially. */
static bool victim(void) { return getenv("ZM_HARNESS_VICTIM") != NULL; }
static void mark(void *arg) { printf("# deferred %s\n", (char *)arg); }

TEST(victim_crash)
{
	if (victim())
		abort();
}

TEST(victim_assert)
{
	if (!victim())
		return;
	test_defer(mark, "cleanup-ran");
	ASSERT_EQ(1, 2);
	printf("# not reached\n");
}

TEST(victim_skip)
{
	if (victim())
		SKIP("no such feature");
}

TEST(victim_hang)
{
	if (!victim())
		return;
	test_defer(mark, "hang-cleanup-ran");
	sleep(30);
}

TEST(crash_and_failure_are_isolated)
{
	char cmd[4200], buf[8192];
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	FILE *p;
	size_t len;

	ASSERT_GT(n, 0);
	exe[n] = 0;
	snprintf(cmd, sizeof(cmd), "ZM_TEST_TIMEOUT=1 ZM_HARNESS_VICTIM=1 %s -t victim 2>&1; echo rc=$?", exe);
	p = popen(cmd, "r");
	ASSERT_OK_PTR(p);
	len = fread(buf, 1, sizeof(buf) - 1, p);
	buf[len] = 0;
	pclose(p);
	EXPECT_STRSTR(buf, "not ok 1 victim_crash");
	EXPECT_STRSTR(buf, "killed by signal 6");
	EXPECT_STRSTR(buf, "not ok 2 victim_assert");
	EXPECT_STRSTR(buf, "# deferred cleanup-ran");
	EXPECT_FALSE(strstr(buf, "not reached"));
	EXPECT_STRSTR(buf, "ok 3 victim_skip # SKIP no such feature");
	/* A hang ends at the timeout, and its cleanup still runs. */
	EXPECT_STRSTR(buf, "# timed out: running the cleanup");
	EXPECT_STRSTR(buf, "# deferred hang-cleanup-ran");
	EXPECT_STRSTR(buf, "not ok 4 victim_hang");
	EXPECT_STRSTR(buf, "# 0 passed, 3 failed, 1 skipped");
	EXPECT_STRSTR(buf, "rc=1");
}
