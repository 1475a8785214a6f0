// SPDX-License-Identifier: Apache-2.0
/*
 * Workers: one thread per CPU, each with its own epoll set, connections and
 * HBONE pool (ztunnel.h). Listeners are per worker (SO_REUSEPORT), so the
 * kernel spreads accepted connections without a hand-off between threads:
 * the cgroup connect4 redirect to 127.0.0.1:15001 is an ordinary lookup,
 * and sk_lookup's bpf_sk_assign to worker 0's 15006/15008 socket runs the
 * reuseport selection of its group (tests/integration/ztunnel_workers.c
 * checks both on this kernel).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ztunnel.h"
#include "zmesh/buf.h"
#include "zmesh/netns.h"

unsigned zt_workers_default(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > ZT_MAX_WORKERS ? ZT_MAX_WORKERS : (unsigned)n;
}

void zt_write_lock(struct zt *z)
{
	if (z->wr_depth++ == 0)
		pthread_rwlock_wrlock(&z->lock);
}

void zt_write_unlock(struct zt *z)
{
	if (--z->wr_depth == 0)
		pthread_rwlock_unlock(&z->lock);
}

/* A listener inside the pod's netns; the socket stays there after we leave.
 * @reuseport: one of a group, one per worker. */
static int listen_in(int nsfd, const char *addr, int port, bool reuseport)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int saved, fd, one = 1, rc;

	inet_pton(AF_INET, addr, &sa.sin_addr);
	rc = zm_netns_enter_fd(nsfd, &saved);
	if (rc)
		return rc;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if ((reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one))) ||
		    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 1024)) {
			rc = -errno;
			close(fd);
			fd = rc;
		}
	} else {
		fd = -errno;
	}
	zm_netns_restore(saved);
	return fd;
}

static struct zt_ev *listener(struct zt_pod *p, unsigned w, int k)
{
	return w ? &p->lw[w - 1][k] : &p->l[k];
}

int zt_pod_listen(struct zt *z, struct zt_pod *p)
{
	static const struct { const char *addr; int port; enum zt_kind kind; } ls[3] = {
		{ "127.0.0.1", 15001, ZT_L_OUTBOUND },
		{ "0.0.0.0", 15006, ZT_L_INBOUND },
		{ "0.0.0.0", 15008, ZT_L_HBONE },
	};

	for (unsigned w = 0; w < ZT_MAX_WORKERS; w++)
		for (int k = 0; k < 3; k++)
			listener(p, w, k)->fd = -1;
	/* With one worker no SO_REUSEPORT: a second ztunnel in the same netns
	 * still fails to bind instead of silently sharing the port. */
	for (int k = 0; k < 3; k++)
		for (unsigned w = 0; w < z->nworkers; w++) {
			struct zt_ev *l = listener(p, w, k);
			int fd = listen_in(p->nsfd, ls[k].addr, ls[k].port, z->nworkers > 1);

			if (fd < 0) {
				zm_log_error("pod %s: listen on %s:%d: %s", p->id, ls[k].addr, ls[k].port,
					     strerror(-fd));
				return fd;
			}
			*l = (struct zt_ev){ .kind = ls[k].kind, .fd = fd, .owner = p };
			int rc = zm_loop_add(z->workers[w].loop, fd, EPOLLIN, l);

			if (rc) {
				zm_log_error("pod %s: event loop: %s", p->id, strerror(-rc));
				return rc;
			}
		}
	return 0;
}

void zt_pod_unlisten(struct zt *z, struct zt_pod *p)
{
	bool any = false;

	for (unsigned w = 0; w < z->nworkers; w++)
		for (int k = 0; k < 3; k++) {
			struct zt_ev *l = listener(p, w, k);

			if (l->fd < 0)
				continue;
			zm_loop_del(z->workers[w].loop, l->fd);
			close(l->fd);
			l->fd = -1;
			any = true;
		}
	/* A worker may hold an event of these from before we took the lock:
	 * it skips listener events of that batch (level-triggered: live
	 * listeners report again). */
	if (any)
		z->epoch++;
}

static void *worker_main(void *arg)
{
	struct zt_worker *w = arg;
	struct zt *z = w->z;
	struct epoll_event ev[128];

	while (!__atomic_load_n(&z->quit, __ATOMIC_ACQUIRE)) {
		int n = zm_loop_wait(w->loop, ev, 128, 200);
		bool stale;

		/* The snapshot of shared state is stable for this batch. */
		pthread_rwlock_rdlock(&z->lock);
		stale = z->epoch != w->seen_epoch;
		w->seen_epoch = z->epoch;
		for (int i = 0; i < n; i++) {
			struct zt_ev *x = ev[i].data.ptr;

			switch (x->kind) {
			case ZT_L_OUTBOUND:
			case ZT_L_INBOUND:
			case ZT_L_HBONE:
				if (!stale)
					zt_accept(w, x);
				break;
			case ZT_CONN:
				zt_conn_event(w, x, ev[i].events);
				break;
			case ZT_TUN:
				zt_tunnel_event(w, x, ev[i].events);
				break;
			default:
				break;
			}
		}
		zt_tunnel_tick(w);
		zt_reap(w);
		zt_tunnel_reap(w);
		pthread_rwlock_unlock(&z->lock);
	}
	pthread_rwlock_rdlock(&z->lock);
	zt_tunnel_close_all(w);
	zt_reap(w);
	pthread_rwlock_unlock(&z->lock);
	return NULL;
}

int zt_workers_start(struct zt *z, unsigned n, enum zm_loop_kind kind)
{
	pthread_rwlockattr_t at;
	sigset_t all, old;
	int rc = 0;

	pthread_rwlockattr_init(&at);
	/* The main thread's rare writes must not starve behind busy workers. */
	pthread_rwlockattr_setkind_np(&at, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&z->lock, &at);
	pthread_rwlockattr_destroy(&at);
	z->workers = calloc(n, sizeof(*z->workers));
	if (!z->workers)
		return -ENOMEM;
	z->nworkers = n;	/* from here zt_workers_stop cleans up */
	if (kind == ZM_LOOP_URING) {
		struct zm_loop *probe;

		/* io_uring switched off (kernel.io_uring_disabled, seccomp): epoll does the same job. */
		rc = zm_loop_new(kind, &probe);
		if (rc) {
			zm_log_warn("io_uring: %s: the workers use epoll", strerror(-rc));
			kind = ZM_LOOP_EPOLL;
		}
		zm_loop_free(probe);
	}
	for (unsigned i = 0; i < n; i++) {
		z->workers[i].z = z;
		z->workers[i].id = i;
		rc = zm_loop_new(kind, &z->workers[i].loop);
		if (rc) {
			zm_log_error("worker %u: %s event loop: %s", i, zm_loop_kind_name(kind), strerror(-rc));
			return rc;
		}
	}
	/* Signals are the main thread's (it drains and reloads). */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (unsigned i = 0; i < n && !rc; i++) {
		char name[16];

		rc = -pthread_create(&z->workers[i].thread, NULL, worker_main, &z->workers[i]);
		if (rc)
			break;
		z->workers[i].started = true;
		snprintf(name, sizeof(name), "ztworker%u", i % 1000);
		pthread_setname_np(z->workers[i].thread, name);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc)
		zm_log_error("worker threads: %s", strerror(-rc));
	else
		zm_log_info("%u worker%s on %s", n, n == 1 ? "" : "s", zm_loop_kind_name(kind));
	return rc;
}

void zt_workers_stop(struct zt *z)
{
	if (!z->workers)
		return;
	__atomic_store_n(&z->quit, 1, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < z->nworkers; i++)
		if (z->workers[i].started)
			pthread_join(z->workers[i].thread, NULL);
	for (unsigned i = 0; i < z->nworkers; i++)
		zm_loop_free(z->workers[i].loop);
	free(z->workers);
	z->workers = NULL;
	z->nworkers = 0;
	pthread_rwlock_destroy(&z->lock);
}

void zt_workers_sum(struct zt *z, uint64_t *opened, uint64_t *closed)
{
	*opened = *closed = 0;
	for (unsigned i = 0; i < z->nworkers; i++) {
		*opened += zt_read(z->workers[i].opened);
		*closed += zt_read(z->workers[i].closed);
	}
}

uint64_t zt_conns_open(struct zt *z)
{
	uint64_t o, c;

	zt_workers_sum(z, &o, &c);
	return o - c;
}

void zt_workers_metrics(struct zt *z, struct zm_buf *b)
{
	zm_buf_printf(b, "# HELP zmesh_ztunnel_workers Worker threads\n# TYPE zmesh_ztunnel_workers gauge\n"
		      "zmesh_ztunnel_workers %u\n"
		      "# HELP zmesh_ztunnel_worker_connections_opened_total Captured connections per worker\n"
		      "# TYPE zmesh_ztunnel_worker_connections_opened_total counter\n", z->nworkers);
	for (unsigned i = 0; i < z->nworkers; i++)
		zm_buf_printf(b, "zmesh_ztunnel_worker_connections_opened_total{worker=\"%u\"} %llu\n", i,
			      (unsigned long long)zt_read(z->workers[i].opened));
	zm_buf_printf(b, "# HELP zmesh_ztunnel_worker_connections_closed_total Captured connections closed per worker\n"
		      "# TYPE zmesh_ztunnel_worker_connections_closed_total counter\n");
	for (unsigned i = 0; i < z->nworkers; i++)
		zm_buf_printf(b, "zmesh_ztunnel_worker_connections_closed_total{worker=\"%u\"} %llu\n", i,
			      (unsigned long long)zt_read(z->workers[i].closed));
}
