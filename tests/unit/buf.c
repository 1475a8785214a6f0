// SPDX-License-Identifier: Apache-2.0
/* zm_buf: growth, consume/rewind, printf, NUL termination. */
#include <stdlib.h>
#include <string.h>

#include "../harness/test.h"
#include "zmesh/buf.h"

static void buf_cleanup(void *arg)
{
	zm_buf_free(arg);
}

TEST(empty_buffer_is_valid)
{
	static struct zm_buf b;

	test_defer(buf_cleanup, &b);
	EXPECT_EQ(zm_buf_len(&b), 0);
	EXPECT_TRUE(zm_buf_data(&b) == NULL);
	ASSERT_STREQ(zm_buf_cstr(&b), "");
	zm_buf_consume(&b, 10);
	zm_buf_reset(&b);
	EXPECT_EQ(zm_buf_len(&b), 0);
}

TEST(append_consume_and_rewind)
{
	static struct zm_buf b;
	char big[10000];

	test_defer(buf_cleanup, &b);
	memset(big, 'x', sizeof(big));
	ASSERT_OK(zm_buf_append(&b, "hello ", 6));
	ASSERT_OK(zm_buf_puts(&b, "world"));
	ASSERT_STREQ(zm_buf_cstr(&b), "hello world");
	zm_buf_consume(&b, 6);
	ASSERT_EQ(zm_buf_len(&b), 5);
	ASSERT_STREQ(zm_buf_cstr(&b), "world");
	/* Growing past the capacity keeps the unread bytes in order. */
	ASSERT_OK(zm_buf_append(&b, big, sizeof(big)));
	ASSERT_EQ(zm_buf_len(&b), 5 + sizeof(big));
	EXPECT_EQ(memcmp(zm_buf_data(&b), "worldxxx", 8), 0);
	/* Consuming everything rewinds: the same capacity serves again. */
	size_t cap = b.cap;

	zm_buf_consume(&b, zm_buf_len(&b));
	EXPECT_EQ(b.off, 0);
	for (int i = 0; i < 100; i++) {
		ASSERT_OK(zm_buf_append(&b, big, 5000));
		zm_buf_consume(&b, 5000);
	}
	EXPECT_EQ(b.cap, cap);
}

TEST(reserve_slides_before_growing)
{
	static struct zm_buf b;
	char *p;

	test_defer(buf_cleanup, &b);
	ASSERT_OK(zm_buf_append(&b, "0123456789", 10));
	size_t cap = b.cap;

	zm_buf_consume(&b, 8);
	/* Room exists only if the consumed front is reused. */
	p = zm_buf_reserve(&b, cap - 4);
	ASSERT_OK_PTR(p);
	EXPECT_EQ(b.cap, cap);
	memset(p, 'a', cap - 4);
	zm_buf_commit(&b, cap - 4);
	EXPECT_EQ(memcmp(zm_buf_data(&b), "89aaa", 5), 0);
	EXPECT_EQ(zm_buf_len(&b), cap - 2);
	/* Absurd sizes fail cleanly and leave the buffer alone. */
	EXPECT_TRUE(zm_buf_reserve(&b, (size_t)-1) == NULL);
	EXPECT_EQ(zm_buf_len(&b), cap - 2);
}

TEST(printf_long_and_short)
{
	static struct zm_buf b;
	char want[501];

	test_defer(buf_cleanup, &b);
	ASSERT_OK(zm_buf_printf(&b, "%d-%s", 42, "x"));
	ASSERT_STREQ(zm_buf_cstr(&b), "42-x");
	memset(want, 'z', 500);
	want[500] = 0;
	ASSERT_OK(zm_buf_printf(&b, "%s", want));
	EXPECT_EQ(zm_buf_len(&b), 504);
	EXPECT_EQ(memcmp(zm_buf_cstr(&b) + 4, want, 500), 0);
	zm_buf_truncate(&b, 2);
	ASSERT_STREQ(zm_buf_cstr(&b), "42");
	zm_buf_truncate(&b, 10);
	EXPECT_EQ(zm_buf_len(&b), 2);
}
