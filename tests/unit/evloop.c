// SPDX-License-Identifier: Apache-2.0
/* zm_loop on epoll and on io_uring: the same level-triggered contract. */
#include <errno.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../harness/test.h"
#include "zmesh/evloop.h"

struct env {
	struct zm_loop *l;
	int sv[2];
};

static void env_free(void *arg)
{
	struct env *e = arg;

	zm_loop_free(e->l);
	if (e->sv[0] >= 0)
		close(e->sv[0]);
	if (e->sv[1] >= 0)
		close(e->sv[1]);
}

/* A loop of @kind and a connected socket pair; false: io_uring is not here. */
static bool env_new(struct env *e, enum zm_loop_kind kind)
{
	int rc = zm_loop_new(kind, &e->l);

	e->sv[0] = e->sv[1] = -1;
	if (rc)
		return false;
	test_defer(env_free, e);
	return socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, e->sv) == 0;
}

static void level_triggered(enum zm_loop_kind kind)
{
	static struct env e;
	struct epoll_event ev[4];
	int tag;

	if (!env_new(&e, kind))
		SKIP("%s event loop not available", zm_loop_kind_name(kind));
	ASSERT_EQ(zm_loop_add(e.l, e.sv[0], EPOLLIN, &tag), 0);
	/* Nothing to read: a timeout. */
	EXPECT_EQ(zm_loop_wait(e.l, ev, 4, 20), 0);
	ASSERT_EQ(write(e.sv[1], "x", 1), 1);
	ASSERT_EQ(zm_loop_wait(e.l, ev, 4, 1000), 1);
	EXPECT_TRUE(ev[0].data.ptr == &tag);
	EXPECT_TRUE(ev[0].events & EPOLLIN);
	/* Not read: reported again (level-triggered). */
	ASSERT_EQ(zm_loop_wait(e.l, ev, 4, 1000), 1);
	EXPECT_TRUE(ev[0].events & EPOLLIN);
	/* Another mask: writable, at once. */
	ASSERT_EQ(zm_loop_mod(e.l, e.sv[0], EPOLLOUT, &tag), 0);
	ASSERT_EQ(zm_loop_wait(e.l, ev, 4, 1000), 1);
	EXPECT_EQ(ev[0].events & (EPOLLIN | EPOLLOUT), EPOLLOUT);
	/* Deleted: nothing more, even though it is still ready. */
	ASSERT_EQ(zm_loop_del(e.l, e.sv[0]), 0);
	EXPECT_EQ(zm_loop_wait(e.l, ev, 4, 20), 0);
	/* Watched for nothing: a hang-up is still reported. */
	ASSERT_EQ(zm_loop_add(e.l, e.sv[0], 0, &tag), 0);
	EXPECT_EQ(zm_loop_wait(e.l, ev, 4, 20), 0);
	close(e.sv[1]);
	e.sv[1] = -1;
	ASSERT_EQ(zm_loop_wait(e.l, ev, 4, 1000), 1);
	EXPECT_TRUE(ev[0].events & EPOLLHUP);
}

TEST(epoll_is_level_triggered)
{
	level_triggered(ZM_LOOP_EPOLL);
}

TEST(uring_is_level_triggered)
{
	level_triggered(ZM_LOOP_URING);
}

static void *add_later(void *arg)
{
	struct env *e = arg;
	static int tag;

	usleep(50000);
	zm_loop_add(e->l, e->sv[0], EPOLLIN, &tag);
	(void)!write(e->sv[1], "y", 1);
	return NULL;
}

/* Another thread's add reaches a loop already waiting. */
static void cross_thread(enum zm_loop_kind kind)
{
	static struct env e;
	struct epoll_event ev[4];
	pthread_t t;
	int n = 0;

	if (!env_new(&e, kind))
		SKIP("%s event loop not available", zm_loop_kind_name(kind));
	ASSERT_EQ(pthread_create(&t, NULL, add_later, &e), 0);
	/* io_uring: the first wait may return early for the wake-up alone. */
	for (int i = 0; i < 3 && n == 0; i++)
		n = zm_loop_wait(e.l, ev, 4, 2000);
	pthread_join(t, NULL);
	ASSERT_EQ(n, 1);
	EXPECT_TRUE(ev[0].events & EPOLLIN);
}

TEST(epoll_add_from_another_thread)
{
	cross_thread(ZM_LOOP_EPOLL);
}

TEST(uring_add_from_another_thread)
{
	cross_thread(ZM_LOOP_URING);
}

TEST(kind_names)
{
	EXPECT_EQ(zm_loop_kind_parse("epoll"), ZM_LOOP_EPOLL);
	EXPECT_EQ(zm_loop_kind_parse("uring"), ZM_LOOP_URING);
	EXPECT_EQ(zm_loop_kind_parse("poll"), -EINVAL);
}

/* A socket watched for writing whose peer half-closed: nothing until it is
 * writable again, then EPOLLOUT (io_uring: the kernel completes on RDHUP
 * unasked; the loop must neither spin on it nor lose the later EPOLLOUT). */
static void half_closed_writer(enum zm_loop_kind kind)
{
	static struct env e;
	struct epoll_event ev[4];
	static char junk[65536];
	int tag, n = 0;

	if (!env_new(&e, kind))
		SKIP("%s event loop not available", zm_loop_kind_name(kind));
	while (write(e.sv[0], junk, sizeof(junk)) > 0)
		;
	ASSERT_EQ(zm_loop_add(e.l, e.sv[0], EPOLLOUT, &tag), 0);
	ASSERT_EQ(shutdown(e.sv[1], SHUT_WR), 0);
	for (int i = 0; i < 5; i++)
		EXPECT_EQ(zm_loop_wait(e.l, ev, 4, 20), 0);
	while (read(e.sv[1], junk, sizeof(junk)) > 0)
		;
	for (int i = 0; i < 3 && n == 0; i++)
		n = zm_loop_wait(e.l, ev, 4, 1000);
	ASSERT_EQ(n, 1);
	EXPECT_TRUE(ev[0].data.ptr == &tag);
	EXPECT_TRUE(ev[0].events & EPOLLOUT);
}

TEST(epoll_half_closed_writer)
{
	half_closed_writer(ZM_LOOP_EPOLL);
}

TEST(uring_half_closed_writer)
{
	half_closed_writer(ZM_LOOP_URING);
}
