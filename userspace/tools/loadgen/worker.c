// SPDX-License-Identifier: Apache-2.0
/*
 * The per-thread event loop: connections, the request schedule, timeouts.
 *
 * Epoll events carry (generation << 32 | connection index), not a pointer:
 * a connection closed and reopened while a batch of events is being handled
 * must not take an event meant for its old socket (a stale EPOLLOUT would
 * make a still-connecting socket look established).
 */
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>
#include <linux/sockios.h>

#include "loadgen.h"

#define TICK_NS 10000000LL		/* timeouts and reconnects are checked this often */
#define RECONNECT_BACKOFF_NS 10000000LL
#define MAX_EVENTS 256

int64_t lg_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline uint32_t conn_index(const struct conn *c)
{
	return (uint32_t)(c - c->w->conns);
}

static void set_events(struct conn *c, uint32_t ev)
{
	struct epoll_event e = { .events = ev };

	if (c->events == ev || c->fd < 0)
		return;
	e.data.u64 = ((uint64_t)c->gen << 32) | conn_index(c);
	if (epoll_ctl(c->w->ep, EPOLL_CTL_MOD, c->fd, &e) == 0)
		c->events = ev;
}

static void free_push(struct conn *c)
{
	struct worker *w = c->w;

	if (c->free_idx >= 0)
		return;
	c->free_idx = w->nfree;
	w->freel[w->nfree++] = c;
}

static void free_del(struct conn *c)
{
	struct worker *w = c->w;
	struct conn *last;

	if (c->free_idx < 0)
		return;
	last = w->freel[--w->nfree];
	w->freel[c->free_idx] = last;
	last->free_idx = c->free_idx;
	c->free_idx = -1;
}

static void dirty_push(struct conn *c)
{
	if (c->dirty)
		return;
	c->dirty = true;
	c->w->dirtyl[c->w->ndirty++] = c;
}

static void conn_close(struct conn *c)
{
	if (c->h2)
		http2_close(c);
	if (c->fd >= 0)
		close(c->fd);	/* also leaves the epoll set: the fd is not shared */
	c->fd = -1;
	c->events = 0;
	c->state = C_CLOSED;
	c->pend = NULL;
	c->pendlen = 0;
	c->rcvd = 0;
	free_del(c);
}

/* Start a non-blocking connect; 0 or a negative errno (nothing is left open then). */
static int conn_connect(struct conn *c)
{
	const struct lg_cfg *cfg = c->w->cfg;
	struct epoll_event e = { .events = EPOLLIN | EPOLLOUT };
	int one = 1, fd, rc;

	fd = socket(cfg->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (cfg->linger0) {
		struct linger l = { .l_onoff = 1, .l_linger = 0 };

		(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	}
	if (connect(fd, (const struct sockaddr *)&cfg->addr, cfg->addrlen) < 0 &&
	    errno != EINPROGRESS) {
		rc = -errno;
		close(fd);
		return rc;
	}
	c->gen++;
	e.data.u64 = ((uint64_t)c->gen << 32) | conn_index(c);
	if (epoll_ctl(c->w->ep, EPOLL_CTL_ADD, fd, &e) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	c->fd = fd;
	c->events = e.events;
	c->state = C_CONNECTING;
	c->since = lg_now();
	return 0;
}

/* A persistent connection (not tcp-connect) goes away: reopen it now or later. */
static void conn_reopen(struct conn *c, int64_t delay)
{
	c->reconnect_at = 0;
	if (c->w->draining)
		return;
	if (delay || conn_connect(c) < 0) {
		if (!delay) {
			c->w->st.connect_errors++;
			c->w->st.errors++;
		}
		c->reconnect_at = lg_now() + (delay ? delay : RECONNECT_BACKOFF_NS);
	}
}

void conn_fail(struct conn *c, bool timeout)
{
	struct worker *w = c->w;
	bool connecting = c->state == C_CONNECTING;
	int failed = 0;

	for (int i = 0; i < c->nslots; i++) {
		if (!c->slots[i].busy)
			continue;
		c->slots[i].busy = false;
		failed++;
	}
	c->inflight = 0;
	w->inflight -= failed;
	w->st.errors += (uint64_t)failed;
	if (timeout)
		w->st.timeouts += (uint64_t)(failed ? failed : 1);
	if (connecting) {
		w->st.connect_errors++;
		if (!failed)
			w->st.errors++;
	} else if (w->cfg->proto == P_BULK) {
		w->st.errors++;		/* a stream broke */
	}
	conn_close(c);
	if (w->cfg->proto == P_TCP_CONNECT) {
		free_push(c);
		return;
	}
	/* A refused connect retried at once would spin: back off. */
	conn_reopen(c, connecting ? RECONNECT_BACKOFF_NS : 0);
}

void conn_complete(struct conn *c, struct slot *s, bool ok, int status)
{
	struct worker *w = c->w;
	const struct lg_cfg *cfg = w->cfg;
	int64_t now = lg_now();

	s->busy = false;
	c->inflight--;
	w->inflight--;
	if (status && (status < 200 || status >= 400))
		w->st.non_2xx++;
	if (!ok)
		w->st.errors++;
	else if (s->intended < cfg->t_meas)
		w->st.warmup_requests++;
	else {
		w->st.requests++;
		zm_hist_record(w->hist, (uint64_t)(now - s->intended));
	}
	if (c->state == C_OPEN && cfg->proto != P_TCP_CONNECT && !c->close_after)
		free_push(c);
}

int conn_write(struct conn *c, const uint8_t *p, size_t n)
{
	ssize_t r;

	if (c->pendlen)
		return -EBUSY;
	while (n) {
		r = send(c->fd, p, n, MSG_NOSIGNAL);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			return -errno;
		}
		p += r;
		n -= (size_t)r;
	}
	if (n) {
		c->pend = p;
		c->pendlen = n;
		set_events(c, EPOLLIN | EPOLLOUT);
	}
	return 0;
}

static int bulk_write(struct conn *c)
{
	const struct lg_cfg *cfg = c->w->cfg;
	ssize_t r;

	for (int i = 0; i < 64; i++) {
		r = send(c->fd, cfg->req, cfg->reqlen, MSG_NOSIGNAL);
		if (r < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -errno;
		c->bulk_tx += (uint64_t)r;
	}
	return 0;
}

/* Bytes the peer has acknowledged: handed to the kernel minus what still waits in the send queue. */
static uint64_t bulk_delivered(const struct conn *c)
{
	int outq = 0;

	if (c->fd < 0 || ioctl(c->fd, SIOCOUTQ, &outq) < 0)
		outq = 0;
	return c->bulk_tx - (uint64_t)(outq > 0 ? outq : 0);
}

static void established(struct conn *c)
{
	struct worker *w = c->w;
	const struct lg_cfg *cfg = w->cfg;
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		conn_fail(c, false);
		return;
	}
	c->state = C_OPEN;
	w->st.connects++;
	set_events(c, EPOLLIN);
	switch (cfg->proto) {
	case P_TCP_RR:
		free_push(c);
		break;
	case P_HTTP1:
		http1_conn_reset(c);
		free_push(c);
		break;
	case P_HTTP2:
		if (http2_open(c) < 0 || http2_flush(c) < 0) {
			conn_fail(c, false);
			return;
		}
		free_push(c);
		break;
	case P_TCP_CONNECT:
		if (conn_write(c, (const uint8_t *)cfg->req, cfg->reqlen) < 0)
			conn_fail(c, false);
		break;
	case P_BULK:
		c->bulk_tx = c->bulk_mark = 0;
		set_events(c, EPOLLIN | EPOLLOUT);
		break;
	}
}

/* When the k-th request of @w's open-loop schedule is due. */
static inline int64_t due_time(const struct worker *w, uint64_t k)
{
	return w->cfg->t0 + (int64_t)(w->phase_ns + (double)k * w->interval_ns);
}

/* Issue one request on @c, meant to go out at @due (0: now, closed loop). */
static void issue(struct conn *c, int64_t due)
{
	struct worker *w = c->w;
	const struct lg_cfg *cfg = w->cfg;
	struct slot *s = NULL;
	int rc = 0;

	for (int i = 0; i < c->nslots; i++) {
		if (!c->slots[i].busy) {
			s = &c->slots[i];
			break;
		}
	}
	if (!s) {	/* cannot happen: only connections with a free slot are listed */
		free_del(c);
		return;
	}
	s->sent = lg_now();
	s->intended = due ? due : s->sent;
	if (due && s->intended >= cfg->t_meas) {
		uint64_t lag = (uint64_t)(s->sent > due ? s->sent - due : 0);

		w->st.lag_sum += lag;
		w->st.lag_n++;
		if (lag > w->st.lag_max)
			w->st.lag_max = lag;
	}
	s->busy = true;
	s->status = 0;
	c->inflight++;
	w->inflight++;
	if (c->inflight == c->nslots)
		free_del(c);
	switch (cfg->proto) {
	case P_TCP_RR:
		c->rcvd = 0;
		/* fallthrough */
	case P_HTTP1:
		rc = conn_write(c, (const uint8_t *)cfg->req, cfg->reqlen);
		break;
	case P_HTTP2:
		rc = http2_submit(c, s);
		if (rc == 0)
			dirty_push(c);
		break;
	case P_TCP_CONNECT:
		c->rcvd = 0;
		rc = conn_connect(c);
		if (rc < 0) {
			/* The request is lost before any socket existed. */
			s->busy = false;
			c->inflight--;
			w->inflight--;
			w->st.errors++;
			w->st.connect_errors++;
			free_push(c);
			/* (ephemeral ports or descriptors ran out): do not spin on it */
			w->pause_until = lg_now() + 1000000LL;
			return;
		}
		break;
	case P_BULK:
		break;
	}
	if (rc < 0)
		conn_fail(c, false);
}

static void dispatch(struct worker *w, int64_t now)
{
	const struct lg_cfg *cfg = w->cfg;

	while (w->nfree > 0 && now >= w->pause_until) {
		int64_t due = 0;

		if (w->interval_ns > 0) {
			due = due_time(w, w->k);
			if (due > now || due >= cfg->t_end)
				break;
		} else if (now >= cfg->t_end || now < cfg->t0) {
			break;
		}
		issue(w->freel[w->nfree - 1], due);
		w->k++;
	}
	for (int i = 0; i < w->ndirty; i++) {
		struct conn *c = w->dirtyl[i];

		c->dirty = false;
		if (c->h2 && http2_flush(c) < 0)
			conn_fail(c, false);
	}
	w->ndirty = 0;
}

/* Echo bytes for tcp-rr / tcp-connect: they must be the request's bytes, in order. */
static int echo_data(struct conn *c, const uint8_t *p, size_t n)
{
	const struct lg_cfg *cfg = c->w->cfg;

	if (!c->inflight || c->rcvd + n > cfg->reqlen ||
	    memcmp(p, cfg->req + c->rcvd, n) != 0)
		return -EPROTO;
	c->rcvd += n;
	if (c->rcvd == cfg->reqlen) {
		c->rcvd = 0;
		conn_complete(c, &c->slots[0], true, 0);
		if (cfg->proto == P_TCP_CONNECT) {
			conn_close(c);
			free_push(c);
		}
	}
	return 0;
}

static void on_eof(struct conn *c)
{
	const struct lg_cfg *cfg = c->w->cfg;

	if (cfg->proto == P_HTTP1 && c->inflight)
		(void)http1_on_eof(c);	/* a body delimited by the close */
	if (c->inflight || cfg->proto == P_TCP_CONNECT || cfg->proto == P_BULK) {
		conn_fail(c, false);
		return;
	}
	/* The server closed an idle keep-alive connection: not an error. */
	conn_close(c);
	conn_reopen(c, 0);
}

static void on_readable(struct conn *c, int64_t now)
{
	struct worker *w = c->w;
	const struct lg_cfg *cfg = w->cfg;
	uint32_t gen = c->gen;
	int rc = 0;

	for (int i = 0; i < 16 && c->state == C_OPEN && c->gen == gen; i++) {
		ssize_t r = recv(c->fd, w->rbuf, w->rbufsz, 0);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				conn_fail(c, false);
			return;
		}
		if (r == 0) {
			on_eof(c);
			return;
		}
		switch (cfg->proto) {
		case P_TCP_RR:
		case P_TCP_CONNECT:
			rc = echo_data(c, w->rbuf, (size_t)r);
			break;
		case P_HTTP1:
			rc = http1_on_data(c, w->rbuf, (size_t)r);
			if (rc == 0 && c->close_after && !c->inflight) {
				conn_close(c);
				conn_reopen(c, 0);
				return;
			}
			break;
		case P_HTTP2:
			rc = http2_on_data(c, w->rbuf, (size_t)r);
			if (rc == 0)
				rc = http2_flush(c);
			if (rc == 0 && !nghttp2_session_want_read(c->h2) &&
			    !nghttp2_session_want_write(c->h2)) {
				/* GOAWAY handled: open a fresh connection. */
				if (c->inflight)
					conn_fail(c, false);
				else {
					conn_close(c);
					conn_reopen(c, 0);
				}
				return;
			}
			break;
		case P_BULK:
			if (cfg->bulk == BULK_ECHO && w->meas_started && now < cfg->t_end)
				w->st.bytes += (uint64_t)r;
			break;
		}
		if (rc < 0) {
			conn_fail(c, false);
			return;
		}
		if ((size_t)r < w->rbufsz)
			return;
	}
}

static void on_writable(struct conn *c)
{
	const struct lg_cfg *cfg = c->w->cfg;
	const uint8_t *p;
	size_t n;
	int rc = 0;

	if (c->pendlen) {
		p = c->pend;
		n = c->pendlen;
		c->pend = NULL;
		c->pendlen = 0;
		rc = conn_write(c, p, n);
		if (rc == 0 && !c->pendlen) {
			set_events(c, EPOLLIN);
			if (c->h2)
				rc = http2_flush(c);
		}
	} else if (cfg->proto == P_BULK) {
		if (lg_now() < cfg->t_end)
			rc = bulk_write(c);
		else
			set_events(c, EPOLLIN);
	} else {
		set_events(c, EPOLLIN);
	}
	if (rc < 0)
		conn_fail(c, false);
}

static void handle(struct worker *w, uint64_t data, uint32_t ev, int64_t now)
{
	uint32_t idx = (uint32_t)data, gen = (uint32_t)(data >> 32);
	struct conn *c;

	if (idx >= (uint32_t)w->nconns)
		return;
	c = &w->conns[idx];
	if (c->gen != gen || c->fd < 0)
		return;		/* for a socket that is gone */
	if (c->state == C_CONNECTING) {
		if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		established(c);
		if (c->state != C_OPEN || c->gen != gen)
			return;
		ev &= ~(uint32_t)EPOLLOUT;
		if (w->cfg->proto == P_BULK)
			ev |= EPOLLOUT;
	}
	if (ev & EPOLLOUT)
		on_writable(c);
	if (c->state == C_OPEN && c->gen == gen && (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		on_readable(c, now);
}

/* Every TICK_NS: reconnects that are due, requests and connects over the timeout. */
static void tick(struct worker *w, int64_t now)
{
	const struct lg_cfg *cfg = w->cfg;

	for (int i = 0; i < w->nconns; i++) {
		struct conn *c = &w->conns[i];
		int64_t oldest = INT64_MAX;

		if (c->state == C_CLOSED) {
			if (c->reconnect_at && now >= c->reconnect_at)
				conn_reopen(c, 0);
			continue;
		}
		if (c->state == C_CONNECTING) {
			if (now - c->since > cfg->timeout_ns)
				conn_fail(c, true);
			continue;
		}
		for (int j = 0; j < c->nslots; j++)
			if (c->slots[j].busy && c->slots[j].sent < oldest)
				oldest = c->slots[j].sent;
		if (oldest != INT64_MAX && now - oldest > cfg->timeout_ns)
			conn_fail(c, true);
	}
}

static void bulk_mark(struct worker *w, bool end)
{
	for (int i = 0; i < w->nconns; i++) {
		struct conn *c = &w->conns[i];
		uint64_t d;

		if (c->state != C_OPEN)
			continue;
		d = bulk_delivered(c);
		if (!end)
			c->bulk_mark = d;
		else if (w->cfg->bulk == BULK_SEND && d > c->bulk_mark)
			w->st.bytes += d - c->bulk_mark;
	}
}

void *worker_run(void *arg)
{
	struct worker *w = arg;
	const struct lg_cfg *cfg = w->cfg;
	struct epoll_event evs[MAX_EVENTS];
	int64_t now, next_tick, drain_end = 0;

	/* Timer slack would make every open-loop send up to 50 us late. */
	(void)prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	if (cfg->proto != P_TCP_CONNECT) {
		for (int i = 0; i < w->nconns; i++)
			conn_reopen(&w->conns[i], 0);
	}
	next_tick = lg_now() + TICK_NS;
	for (;;) {
		int64_t wake;
		struct timespec ts;
		int n;

		now = lg_now();
		if (!w->meas_started && now >= cfg->t_meas) {
			w->meas_started = true;
			if (cfg->proto == P_BULK)
				bulk_mark(w, false);
		}
		if (!w->draining && now >= cfg->t_end) {
			w->draining = true;
			drain_end = now + cfg->timeout_ns;
			if (w->interval_ns > 0) {
				/* Scheduled before the end but never sent: the generator or the
				 * connections could not keep up. */
				uint64_t due = (uint64_t)ceil(((double)(cfg->t_end - cfg->t0) - w->phase_ns) /
							      w->interval_ns);

				if (due > w->k)
					w->st.unsent = due - w->k;
			}
			if (cfg->proto == P_BULK) {
				bulk_mark(w, true);
				break;
			}
		}
		if (w->draining && (w->inflight == 0 || now >= drain_end))
			break;
		if (!w->draining)
			dispatch(w, now);
		if (now >= next_tick) {
			tick(w, now);
			next_tick = now + TICK_NS;
		}
		wake = next_tick;
		if (!w->draining) {
			if (cfg->t_end < wake)
				wake = cfg->t_end;
			if (!w->meas_started && cfg->t_meas < wake)
				wake = cfg->t_meas;
			if (w->nfree > 0) {
				int64_t due = w->interval_ns > 0 ? due_time(w, w->k) : cfg->t0;

				if (due < w->pause_until)
					due = w->pause_until;

				if (due < wake)
					wake = due;
			}
		} else if (drain_end < wake) {
			wake = drain_end;
		}
		now = lg_now();
		wake = wake > now ? wake - now : 0;
		ts.tv_sec = wake / 1000000000LL;
		ts.tv_nsec = wake % 1000000000LL;
		n = epoll_pwait2(w->ep, evs, MAX_EVENTS, &ts, NULL);
		if (n < 0 && errno != EINTR) {
			w->rc = -errno;
			break;
		}
		if (n > 0)
			now = lg_now();
		for (int i = 0; i < n; i++)
			handle(w, evs[i].data.u64, evs[i].events, now);
	}
	/* Whatever is still in flight did not answer within the timeout. */
	for (int i = 0; i < w->nconns; i++) {
		struct conn *c = &w->conns[i];
		int busy = 0;

		for (int j = 0; j < c->nslots; j++)
			busy += c->slots[j].busy;
		w->st.errors += (uint64_t)busy;
		w->st.timeouts += (uint64_t)busy;
		conn_close(c);
	}
	return NULL;
}

int worker_init(struct worker *w, const struct lg_cfg *cfg, int id, int nconns, double rate)
{
	double interval = rate > 0 ? 1e9 / rate : 0;
	int nslots = cfg->proto == P_HTTP2 ? cfg->streams : 1;

	memset(w, 0, sizeof(*w));
	w->id = id;
	w->cfg = cfg;
	w->ep = -1;
	w->nconns = nconns;
	w->interval_ns = interval;
	w->phase_ns = interval * id / cfg->threads;
	w->rbufsz = cfg->proto == P_BULK && (size_t)cfg->size > 65536 ? (size_t)cfg->size : 65536;
	w->conns = calloc((size_t)nconns, sizeof(*w->conns));
	w->freel = calloc((size_t)nconns, sizeof(*w->freel));
	w->dirtyl = calloc((size_t)nconns, sizeof(*w->dirtyl));
	w->slots = calloc((size_t)nconns * (size_t)nslots, sizeof(*w->slots));
	w->rbuf = malloc(w->rbufsz);
	w->hist = malloc(sizeof(*w->hist));
	if (!w->conns || !w->freel || !w->dirtyl || !w->slots || !w->rbuf || !w->hist)
		return -ENOMEM;
	zm_hist_init(w->hist);
	w->ep = epoll_create1(EPOLL_CLOEXEC);
	if (w->ep < 0)
		return -errno;
	for (int i = 0; i < nconns; i++) {
		struct conn *c = &w->conns[i];

		c->w = w;
		c->fd = -1;
		c->free_idx = -1;
		c->nslots = nslots;
		c->slots = &w->slots[(size_t)i * (size_t)nslots];
		/* tcp-connect: an idle connection object is a free slot. */
		if (cfg->proto == P_TCP_CONNECT)
			free_push(c);
	}
	return 0;
}

void worker_free(struct worker *w)
{
	if (w->conns)
		for (int i = 0; i < w->nconns; i++)
			conn_close(&w->conns[i]);
	if (w->ep >= 0)
		close(w->ep);
	free(w->conns);
	free(w->freel);
	free(w->dirtyl);
	free(w->slots);
	free(w->rbuf);
	free(w->hist);
	memset(w, 0, sizeof(*w));
	w->ep = -1;
}
