/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One event-loop interface over two kernels' readiness APIs: epoll, and
 * io_uring (liburing) poll requests. Level-triggered, epoll's event bits
 * (EPOLLIN, EPOLLOUT, EPOLLRDHUP asked; EPOLLERR and EPOLLHUP always
 * reported), one opaque pointer per fd, so a caller written for epoll runs
 * on either.
 *
 * io_uring: each watched fd has one single-shot IORING_OP_POLL_ADD in
 * flight; a completion is handed out and the fd re-armed on the next wait
 * (a poll armed on a ready fd completes at once: level-triggered, as epoll).
 * Arming, mask changes and removals are batched into the one io_uring_enter
 * that also waits. A poll request holds a reference to its file, so a
 * closed fd's socket lives until its removal is submitted: at the latest on
 * the owner's next wait, which zm_loop_del from another thread wakes.
 * The kernel completes a poll request on RDHUP even when not asked: an fd
 * whose completion carried only such bits (a half-closed socket watched for
 * writing) would complete again at once if re-armed, so it is parked in a
 * small epoll set (itself polled through the ring) with exactly its mask,
 * until that reports it or its mask changes.
 *
 * Threads: one owner thread calls zm_loop_wait; zm_loop_add/mod/del
 * may come from any thread (they only record, under the loop's mutex).
 * An event returned may be stale (its fd was deleted since): callers keep
 * their objects alive until after the batch, as with epoll.
 */
#ifndef ZMESH_EVLOOP_H
#define ZMESH_EVLOOP_H

#include <stdint.h>
#include <sys/epoll.h>

enum zm_loop_kind { ZM_LOOP_EPOLL, ZM_LOOP_URING };

struct zm_loop;

/* "epoll" / "uring" -> kind, or -EINVAL. */
int zm_loop_kind_parse(const char *name);
const char *zm_loop_kind_name(enum zm_loop_kind kind);

/* 0 or -errno (io_uring not available: -ENOSYS and friends). */
int zm_loop_new(enum zm_loop_kind kind, struct zm_loop **out);
void zm_loop_free(struct zm_loop *l);

/* Watch @fd for @events, reporting @ptr (add: not watched yet; mod: a new
 * mask for a watched fd); 0 or -errno. */
int zm_loop_add(struct zm_loop *l, int fd, uint32_t events, void *ptr);
int zm_loop_mod(struct zm_loop *l, int fd, uint32_t events, void *ptr);
/* Stop watching @fd; call before close(fd). */
int zm_loop_del(struct zm_loop *l, int fd);

/* Up to @max events into @ev (events + data.ptr), waiting up to
 * @timeout_ms; the count, 0 on timeout, or -errno. Owner thread only. */
int zm_loop_wait(struct zm_loop *l, struct epoll_event *ev, int max, int timeout_ms);

#endif
