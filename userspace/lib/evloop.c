// SPDX-License-Identifier: Apache-2.0
/* Event loop on epoll or io_uring poll requests (evloop.h). */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <liburing.h>

#include "zmesh/evloop.h"

#define RING_ENTRIES 1024
#define UD_IGNORE UINT64_MAX	/* removals' own completions */

/* io_uring: what is watched on one fd. */
struct rec {
	void *ptr;
	uint32_t events;
	uint32_t gen;		/* in the user_data: completions of older polls are stale */
	bool used, armed, queued;
	bool parked;		/* completed with only bits nobody asked for: watched by park_ep */
	bool failed;		/* the poll failed: reported, not re-armed until set */
};

struct zm_loop {
	enum zm_loop_kind kind;
	int ep;			/* epoll */
	struct io_uring ring;	/* io_uring */
	bool ring_ok;
	pthread_mutex_t mu;	/* recs and the queues (set/del may come from other threads) */
	struct rec *recs;	/* by fd */
	int nrecs;
	int *arm;		/* fds to (re-)arm on the next wait */
	int narm, carm;
	uint64_t *rm;		/* user_data of polls to remove */
	int nrm, crm;
	int wake;		/* eventfd: another thread queued work */
	int park_ep;		/* epoll for parked fds, itself polled through the ring */
	pthread_t owner;
	bool has_owner;
};

int zm_loop_kind_parse(const char *name)
{
	if (!strcmp(name, "epoll"))
		return ZM_LOOP_EPOLL;
	if (!strcmp(name, "uring") || !strcmp(name, "io_uring"))
		return ZM_LOOP_URING;
	return -EINVAL;
}

const char *zm_loop_kind_name(enum zm_loop_kind kind)
{
	return kind == ZM_LOOP_URING ? "io_uring" : "epoll";
}

static uint64_t ud_of(int fd, uint32_t gen)
{
	return (uint64_t)gen << 32 | (uint32_t)fd;
}

static int rec_grow(struct zm_loop *l, int fd)
{
	int n = l->nrecs ? l->nrecs : 256;
	struct rec *r;

	while (n <= fd)
		n *= 2;
	if (n == l->nrecs)
		return 0;
	r = realloc(l->recs, (size_t)n * sizeof(*r));
	if (!r)
		return -ENOMEM;
	memset(r + l->nrecs, 0, (size_t)(n - l->nrecs) * sizeof(*r));
	l->recs = r;
	l->nrecs = n;
	return 0;
}

static int push_int(int **a, int *n, int *cap, int v)
{
	if (*n == *cap) {
		int c = *cap ? *cap * 2 : 256;
		int *p = realloc(*a, (size_t)c * sizeof(**a));

		if (!p)
			return -ENOMEM;
		*a = p;
		*cap = c;
	}
	(*a)[(*n)++] = v;
	return 0;
}

static int push_u64(uint64_t **a, int *n, int *cap, uint64_t v)
{
	if (*n == *cap) {
		int c = *cap ? *cap * 2 : 256;
		uint64_t *p = realloc(*a, (size_t)c * sizeof(**a));

		if (!p)
			return -ENOMEM;
		*a = p;
		*cap = c;
	}
	(*a)[(*n)++] = v;
	return 0;
}

static int uring_set(struct zm_loop *l, int fd, uint32_t events, void *ptr);

/* Not the owner (or no owner yet): make the owner's wait return. */
static void poke(struct zm_loop *l)
{
	uint64_t one = 1;

	if (l->has_owner && pthread_equal(l->owner, pthread_self()))
		return;
	(void)!write(l->wake, &one, sizeof(one));
}

int zm_loop_new(enum zm_loop_kind kind, struct zm_loop **out)
{
	struct zm_loop *l = calloc(1, sizeof(*l));
	int rc;

	*out = NULL;
	if (!l)
		return -ENOMEM;
	l->kind = kind;
	l->ep = -1;
	l->wake = -1;
	l->park_ep = -1;
	pthread_mutex_init(&l->mu, NULL);
	if (kind == ZM_LOOP_EPOLL) {
		l->ep = epoll_create1(EPOLL_CLOEXEC);
		if (l->ep < 0) {
			rc = -errno;
			goto fail;
		}
		*out = l;
		return 0;
	}
	rc = io_uring_queue_init(RING_ENTRIES, &l->ring, 0);
	if (rc)
		goto fail;
	l->ring_ok = true;
	l->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->wake < 0) {
		rc = -errno;
		goto fail;
	}
	rc = uring_set(l, l->wake, EPOLLIN, l);
	if (rc)
		goto fail;
	l->park_ep = epoll_create1(EPOLL_CLOEXEC);
	if (l->park_ep < 0) {
		rc = -errno;
		goto fail;
	}
	rc = uring_set(l, l->park_ep, EPOLLIN, &l->park_ep);
	if (rc)
		goto fail;
	*out = l;
	return 0;
fail:
	zm_loop_free(l);
	return rc;
}

void zm_loop_free(struct zm_loop *l)
{
	if (!l)
		return;
	if (l->ep >= 0)
		close(l->ep);
	if (l->ring_ok)
		io_uring_queue_exit(&l->ring);	/* cancels what is still armed */
	if (l->wake >= 0)
		close(l->wake);
	if (l->park_ep >= 0)
		close(l->park_ep);
	free(l->recs);
	free(l->arm);
	free(l->rm);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

static void unpark(struct zm_loop *l, int fd, struct rec *r)
{
	if (r->parked)
		epoll_ctl(l->park_ep, EPOLL_CTL_DEL, fd, NULL);
	r->parked = false;
}

static int uring_set(struct zm_loop *l, int fd, uint32_t events, void *ptr)
{
	struct rec *r;
	int rc;

	if (fd < 0)
		return -EBADF;
	pthread_mutex_lock(&l->mu);
	rc = rec_grow(l, fd);
	if (rc)
		goto out;
	r = &l->recs[fd];
	if (!r->used) {
		r->used = true;
		r->armed = false;
		r->gen++;
	}
	r->ptr = ptr;
	if (r->armed && r->events != events) {
		/* Another mask: the poll in flight goes, a new one comes. */
		rc = push_u64(&l->rm, &l->nrm, &l->crm, ud_of(fd, r->gen));
		if (rc)
			goto out;
		r->armed = false;
		r->gen++;
	}
	r->events = events;
	unpark(l, fd, r);
	r->failed = false;
	if (!r->armed && !r->queued) {
		rc = push_int(&l->arm, &l->narm, &l->carm, fd);
		if (rc)
			goto out;
		r->queued = true;
		poke(l);
	}
out:
	pthread_mutex_unlock(&l->mu);
	return rc;
}

int zm_loop_add(struct zm_loop *l, int fd, uint32_t events, void *ptr)
{
	struct epoll_event ev = { .events = events, .data.ptr = ptr };

	if (l->kind == ZM_LOOP_URING)
		return uring_set(l, fd, events, ptr);
	return epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

int zm_loop_mod(struct zm_loop *l, int fd, uint32_t events, void *ptr)
{
	struct epoll_event ev = { .events = events, .data.ptr = ptr };

	if (l->kind == ZM_LOOP_URING)
		return uring_set(l, fd, events, ptr);
	return epoll_ctl(l->ep, EPOLL_CTL_MOD, fd, &ev) ? -errno : 0;
}

int zm_loop_del(struct zm_loop *l, int fd)
{
	struct rec *r;
	int rc = 0;

	if (l->kind == ZM_LOOP_EPOLL)
		return epoll_ctl(l->ep, EPOLL_CTL_DEL, fd, NULL) ? -errno : 0;
	pthread_mutex_lock(&l->mu);
	if (fd < 0 || fd >= l->nrecs || !l->recs[fd].used) {
		rc = -ENOENT;
		goto out;
	}
	r = &l->recs[fd];
	if (r->armed) {
		rc = push_u64(&l->rm, &l->nrm, &l->crm, ud_of(fd, r->gen));
		poke(l);	/* the poll holds the file: let the owner drop it soon */
	}
	unpark(l, fd, r);
	r->used = r->armed = r->failed = false;
	r->gen++;	/* a completion already on its way is stale; r->queued entries are skipped */
out:
	pthread_mutex_unlock(&l->mu);
	return rc;
}

static struct io_uring_sqe *sqe_get(struct zm_loop *l)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);

	if (!sqe) {
		io_uring_submit(&l->ring);	/* full: send what we have, then go on */
		sqe = io_uring_get_sqe(&l->ring);
	}
	return sqe;
}

/* Queue the removals and arms recorded since the last wait (under mu). */
static void prepare(struct zm_loop *l)
{
	struct io_uring_sqe *sqe;

	for (int i = 0; i < l->nrm; i++) {
		sqe = sqe_get(l);
		if (!sqe) {
			/* The ring is wedged: the rest on the next wait. */
			memmove(l->rm, l->rm + i, (size_t)(l->nrm - i) * sizeof(*l->rm));
			l->nrm -= i;
			return;
		}
		io_uring_prep_poll_remove(sqe, l->rm[i]);
		io_uring_sqe_set_data64(sqe, UD_IGNORE);
	}
	l->nrm = 0;
	for (int i = 0; i < l->narm; i++) {
		int fd = l->arm[i];
		struct rec *r = &l->recs[fd];

		r->queued = false;
		if (!r->used || r->armed || r->parked || r->failed)
			continue;
		sqe = sqe_get(l);
		if (!sqe) {
			/* Keep the rest for the next wait. */
			memmove(l->arm, l->arm + i, (size_t)(l->narm - i) * sizeof(*l->arm));
			l->narm -= i;
			for (int k = 0; k < l->narm; k++)
				l->recs[l->arm[k]].queued = true;
			return;
		}
		io_uring_prep_poll_add(sqe, fd, r->events);
		io_uring_sqe_set_data64(sqe, ud_of(fd, r->gen));
		r->armed = true;
	}
	l->narm = 0;
}

/* Parked fds that epoll now reports: handed out, back to the ring (under mu). */
static int unparked(struct zm_loop *l, struct epoll_event *ev, int max)
{
	struct epoll_event pe[64];
	int n = 0, k = epoll_wait(l->park_ep, pe, max < 64 ? max : 64, 0);

	for (int i = 0; i < k; i++) {
		int fd = (int)(uint32_t)pe[i].data.u64;
		struct rec *r = fd < l->nrecs ? &l->recs[fd] : NULL;

		if (!r || !r->used || !r->parked || r->gen != (uint32_t)(pe[i].data.u64 >> 32)) {
			epoll_ctl(l->park_ep, EPOLL_CTL_DEL, fd, NULL);
			continue;
		}
		unpark(l, fd, r);
		ev[n].events = pe[i].events;
		ev[n].data.ptr = r->ptr;
		n++;
		if (!r->queued && !push_int(&l->arm, &l->narm, &l->carm, fd))
			r->queued = true;
	}
	return n;
}

int zm_loop_wait(struct zm_loop *l, struct epoll_event *ev, int max, int timeout_ms)
{
	struct __kernel_timespec ts = { .tv_sec = timeout_ms / 1000, .tv_nsec = (timeout_ms % 1000) * 1000000LL };
	struct io_uring_cqe *cqe;
	unsigned head, seen = 0;
	int n = 0, rc;

	if (l->kind == ZM_LOOP_EPOLL) {
		n = epoll_wait(l->ep, ev, max, timeout_ms);
		return n < 0 ? (errno == EINTR ? 0 : -errno) : n;
	}
	pthread_mutex_lock(&l->mu);
	if (!l->has_owner) {
		l->owner = pthread_self();
		l->has_owner = true;
	}
	prepare(l);
	pthread_mutex_unlock(&l->mu);
	rc = io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1, timeout_ms >= 0 ? &ts : NULL, NULL);
	if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY)
		return rc;
	pthread_mutex_lock(&l->mu);
	io_uring_for_each_cqe(&l->ring, head, cqe) {
		uint64_t ud = io_uring_cqe_get_data64(cqe);
		int fd = (int)(uint32_t)ud;
		struct rec *r;
		uint32_t got;

		if (n == max)
			break;
		seen++;
		if (ud == UD_IGNORE || fd >= l->nrecs)
			continue;
		r = &l->recs[fd];
		if (!r->used || !r->armed || r->gen != (uint32_t)(ud >> 32))
			continue;	/* stale: deleted or re-armed since */
		r->armed = false;
		if (r->ptr == l) {
			uint64_t v;

			(void)!read(l->wake, &v, sizeof(v));
		} else if (r->ptr == &l->park_ep) {
			n += unparked(l, ev + n, max - n);
		} else {
			/* The kernel also reports RDHUP/ERR/HUP unasked; epoll reports
			 * ERR and HUP, RDHUP only when asked. A failed poll (an fd
			 * closed without zm_loop_del) is an error for the caller. */
			got = cqe->res < 0 ? EPOLLERR : (uint32_t)cqe->res & (r->events | EPOLLERR | EPOLLHUP);
			if (got) {
				ev[n].events = got;
				ev[n].data.ptr = r->ptr;
				n++;
			}
			if (cqe->res < 0) {
				r->failed = true;
				continue;
			}
			if (!got) {
				/* Only bits nobody asked for (RDHUP: a half-closed socket
				 * watched for writing): re-armed it would complete at once,
				 * forever. epoll asks for exactly the mask meanwhile. */
				struct epoll_event pe = { .events = r->events, .data.u64 = ud };

				if (epoll_ctl(l->park_ep, EPOLL_CTL_ADD, fd, &pe) == 0)
					r->parked = true;
				else
					r->failed = true;
				continue;
			}
		}
		/* Level-triggered: armed again on the next wait. */
		if (!r->queued && !push_int(&l->arm, &l->narm, &l->carm, fd))
			r->queued = true;
	}
	io_uring_cq_advance(&l->ring, seen);
	pthread_mutex_unlock(&l->mu);
	return n;
}
