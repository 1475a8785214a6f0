// SPDX-License-Identifier: Apache-2.0
/*
 * HBONE to endpoints: as Istio's waypoint, traffic to a meshed endpoint pod
 * (zm_enroll_wanted() on its namespace and pod labels) leaves in a CONNECT
 * stream over mutual TLS 1.3 to <pod ip>:15008, with the waypoint's own
 * workload certificate; the server must be the pod's identity. The
 * destination's ztunnel then applies its L4 policy to the waypoint's
 * principal, and STRICT PeerAuthentication holds.
 *
 * To the proxy a stream looks like a connected socket (one end of a
 * socketpair, the other pumped here), so the HTTP/1, HTTP/2 and TCP
 * upstream code and the per-downstream keep-alive pool stay as they are.
 * HBONE connections are pooled per endpoint pod (up to ZM_HBONE_MAX_STREAMS
 * streams each); one pump thread per connection, a mutex around the
 * sans-I/O session; a connection with no stream for HU_IDLE_MS closes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "zmesh/hbone.h"
#include "zmesh/labels.h"
#include "zmesh/log.h"
#include "zmesh/spiffe.h"
#include "zmesh/tls.h"
#include "waypoint.h"

#define HU_STREAMS ZM_HBONE_MAX_STREAMS
#define HU_IDLE_MS 30000
#define HU_SETUP_MS 10000		/* TCP connect + handshake */
#define HU_TO_APP_MAX (4 * 1024 * 1024)

struct hu_stream {
	int32_t id;			/* 0: slot free */
	int fd;				/* our end of the socketpair */
	int status;			/* CONNECT answer; 0 pending, -1 closed before one */
	bool waiting;			/* an opener still looks at this slot */
	bool closed;			/* the HTTP/2 stream is gone */
	bool tun_ended, app_ended, shut_sent;
	struct zm_buf to_app, to_tun;
};

struct hu_conn {
	struct hu_conn *next;
	char ip[INET_ADDRSTRLEN];
	struct zm_spiffe_id want;
	int fd, wake[2];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct zm_hbone *hb;
	struct hu_stream st[HU_STREAMS];
	int nst;			/* slots in use */
	int refs;			/* the pump thread + openers */
	bool up, dead;
};

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static struct hu_conn *pool;
static SSL_CTX *client_ctx;
static char self_ns[64], self_name[64];
static _Thread_local char meta_for[64], meta_tp[128];
static atomic_ulong n_conns, n_streams, n_refused;	/* for a debugger; not exported yet */

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void wp_hbup_init(SSL_CTX *ctx, const char *ns, const char *name)
{
	SSL_CTX *old;

	/* new connections take it (under pool_mu); pooled ones keep the one they have */
	SSL_CTX_up_ref(ctx);
	pthread_mutex_lock(&pool_mu);
	old = client_ctx;
	client_ctx = ctx;
	if (!old) {	/* a renewal keeps the identity: the names stay as readers see them */
		snprintf(self_ns, sizeof(self_ns), "%s", ns);
		snprintf(self_name, sizeof(self_name), "%s", name);
	}
	pthread_mutex_unlock(&pool_mu);
	SSL_CTX_free(old);
}

void wp_hbup_meta(const char *forwarded_for, const char *traceparent)
{
	snprintf(meta_for, sizeof(meta_for), "%s", forwarded_for ? forwarded_for : "");
	snprintf(meta_tp, sizeof(meta_tp), "%s", traceparent ? traceparent : "");
}

/* The identity of the meshed pod at @ip; -ENOENT when it is not meshed. */
static int meshed_identity(const char *ip, struct zm_spiffe_id *id)
{
	struct wp_snap *s = wp_snap_get();
	struct in_addr a;
	int rc = -ENOENT;

	if (!s || !s->have_lab || inet_pton(AF_INET, ip, &a) != 1)
		goto out;
	for (size_t i = 0; i < s->lab.npods; i++) {
		const struct zm_lab_pod *p = &s->lab.pods[i];
		const struct zm_lab_ns *ns;

		if (p->ip.s_addr != a.s_addr)
			continue;
		ns = zm_lab_ns_find(&s->lab, p->ns);
		if (ns && zm_enroll_wanted(&ns->labels, &p->labels))
			rc = zm_spiffe_make(id, "cluster.local", p->ns, p->sa) ? -EINVAL : 0;
		break;
	}
out:
	wp_snap_put(s);
	return rc;
}

static void conn_put(struct hu_conn *hc)
{
	bool last;

	pthread_mutex_lock(&hc->mu);
	last = --hc->refs == 0;
	pthread_mutex_unlock(&hc->mu);
	if (!last)
		return;
	for (int i = 0; i < HU_STREAMS; i++) {
		if (hc->st[i].fd >= 0)
			close(hc->st[i].fd);
		zm_buf_free(&hc->st[i].to_app);
		zm_buf_free(&hc->st[i].to_tun);
	}
	zm_hbone_free(hc->hb);
	close(hc->fd);
	close(hc->wake[0]);
	close(hc->wake[1]);
	pthread_mutex_destroy(&hc->mu);
	pthread_cond_destroy(&hc->cv);
	free(hc);
}

static struct hu_stream *stream_of(struct hu_conn *hc, int32_t id)
{
	for (int i = 0; i < HU_STREAMS; i++)
		if (hc->st[i].id == id && id)
			return &hc->st[i];
	return NULL;
}

static void slot_free(struct hu_conn *hc, struct hu_stream *st)
{
	if (st->fd >= 0)
		close(st->fd);
	zm_buf_free(&st->to_app);
	zm_buf_free(&st->to_tun);
	memset(st, 0, sizeof(*st));
	st->fd = -1;
	hc->nst--;
}

static void cb_response(void *ud, struct zm_hbone *h, int32_t id, int status)
{
	struct hu_conn *hc = ud;
	struct hu_stream *st = stream_of(hc, id);

	(void)h;
	if (st && !st->status) {
		st->status = status;
		pthread_cond_broadcast(&hc->cv);
	}
}

static void cb_data(void *ud, struct zm_hbone *h, int32_t id, const uint8_t *d, size_t n)
{
	struct hu_conn *hc = ud;
	struct hu_stream *st = stream_of(hc, id);

	(void)h;
	if (!st)
		return;
	/* Bounded by the stream's window (given back as the proxy reads, see
	 * pump_streams); the cap only catches a peer that ignores it. */
	if (zm_buf_len(&st->to_app) + n > HU_TO_APP_MAX || zm_buf_append(&st->to_app, d, n))
		zm_hbone_reset(hc->hb, id);
}

static void cb_end(void *ud, struct zm_hbone *h, int32_t id)
{
	struct hu_stream *st = stream_of(ud, id);

	(void)h;
	if (st)
		st->tun_ended = true;
}

static void cb_close(void *ud, struct zm_hbone *h, int32_t id, uint32_t err)
{
	struct hu_conn *hc = ud;
	struct hu_stream *st = stream_of(hc, id);

	(void)h;
	(void)err;
	if (!st)
		return;
	st->closed = true;
	st->tun_ended = true;
	if (!st->status) {
		st->status = -1;	/* refused stream */
		pthread_cond_broadcast(&hc->cv);
	}
}

static const struct zm_hbone_cbs cbs = { NULL, cb_response, cb_data, cb_end, cb_close };

static int flush_out(struct hu_conn *hc)
{
	const void *out;
	size_t n;

	while ((n = zm_hbone_output(hc->hb, &out)) > 0) {
		ssize_t w = send(hc->fd, out, n, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (w <= 0)
			return -1;
		zm_hbone_consumed(hc->hb, (size_t)w);
	}
	return 0;
}

/* Under hc->mu: move bytes between the streams' sockets and the session. */
static void pump_streams(struct hu_conn *hc)
{
	for (int i = 0; i < HU_STREAMS; i++) {
		struct hu_stream *st = &hc->st[i];

		if (!st->id || st->status != 200)
			continue;
		while (zm_buf_len(&st->to_app)) {
			ssize_t w = send(st->fd, zm_buf_data(&st->to_app), zm_buf_len(&st->to_app),
					 MSG_NOSIGNAL | MSG_DONTWAIT);

			if (w < 0 && errno != EAGAIN && errno != EINTR) {
				zm_buf_free(&st->to_app);	/* the app side is gone */
				st->app_ended = true;
				if (!st->closed)
					zm_hbone_reset(hc->hb, st->id);
			}
			if (w <= 0)
				break;
			zm_buf_consume(&st->to_app, (size_t)w);
			if (!st->closed)
				zm_hbone_consume(hc->hb, st->id, (size_t)w);	/* the window follows the proxy */
		}
		if (st->tun_ended && !zm_buf_len(&st->to_app) && !st->shut_sent) {
			shutdown(st->fd, SHUT_WR);
			st->shut_sent = true;
		}
		if (zm_buf_len(&st->to_tun) && !st->closed) {
			int rc = zm_hbone_send(hc->hb, st->id, zm_buf_data(&st->to_tun), zm_buf_len(&st->to_tun));

			if (!rc)
				zm_buf_free(&st->to_tun);
			else if (rc != -ENOBUFS)
				zm_hbone_reset(hc->hb, st->id);
		}
	}
}

static void *hu_thread(void *arg)
{
	struct hu_conn *hc = arg;
	struct pollfd pf[HU_STREAMS + 2];
	int map[HU_STREAMS + 2];
	char buf[16384];
	int64_t idle_since = mono_ns();
	struct zm_error e = { "" };

	pthread_mutex_lock(&hc->mu);
	for (;;) {
		int np = 2, r;
		const void *pending;
		bool backlog = false;

		if (!hc->up && mono_ns() - idle_since > HU_SETUP_MS * 1000000LL) {
			zm_log_warn("hbone upstream %s: no handshake within %d ms", hc->ip, HU_SETUP_MS);
			break;
		}
		if (!hc->up && zm_hbone_ready(hc->hb)) {
			if (zm_tls_check_peer(zm_hbone_ssl(hc->hb), &hc->want, &e)) {
				zm_log_warn("hbone upstream %s: %s", hc->ip, e.msg);
				break;
			}
			hc->up = true;
			pthread_cond_broadcast(&hc->cv);
		}
		pump_streams(hc);
		if (flush_out(hc))
			break;
		pf[0] = (struct pollfd){ .fd = hc->fd, .events = POLLIN |
					 (zm_hbone_output(hc->hb, &pending) ? POLLOUT : 0) };
		pf[1] = (struct pollfd){ .fd = hc->wake[0], .events = POLLIN };
		for (int i = 0; i < HU_STREAMS; i++) {
			struct hu_stream *st = &hc->st[i];

			if (!st->id)
				continue;
			/* done both ways (or refused) and nobody waits: the slot goes */
			if (!st->waiting && st->closed && (st->app_ended || !zm_buf_len(&st->to_app))) {
				slot_free(hc, st);
				continue;
			}
			if (st->status != 200)
				continue;
			backlog |= zm_buf_len(&st->to_tun) > 0;
			map[np] = i;
			pf[np++] = (struct pollfd){ .fd = st->fd,
				.events = (st->app_ended || zm_buf_len(&st->to_tun) ? 0 : POLLIN) |
					  (zm_buf_len(&st->to_app) ? POLLOUT : 0) };
		}
		if (hc->nst && hc->up)
			idle_since = mono_ns();
		else if (mono_ns() - idle_since > HU_IDLE_MS * 1000000LL)
			break;
		pthread_mutex_unlock(&hc->mu);
		r = poll(pf, (nfds_t)np, backlog ? 20 : 1000);
		pthread_mutex_lock(&hc->mu);
		if (r < 0 && errno != EINTR)
			break;
		if (r <= 0)
			continue;
		if (pf[1].revents & POLLIN)
			while (read(hc->wake[0], buf, sizeof(buf)) > 0)
				;
		if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = recv(hc->fd, buf, sizeof(buf), MSG_DONTWAIT);

			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
				break;
			if (n > 0 && zm_hbone_input(hc->hb, buf, (size_t)n)) {
				if (!hc->up)
					zm_log_warn("hbone upstream %s: handshake failed%s%s", hc->ip,
						    zm_tls_verify_error(zm_hbone_ssl(hc->hb))[0] ? ": " : "",
						    zm_tls_verify_error(zm_hbone_ssl(hc->hb)));
				break;
			}
		}
		for (int k = 2; k < np; k++) {
			struct hu_stream *st = &hc->st[map[k]];
			ssize_t n;

			if (!st->id || st->app_ended || !(pf[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = recv(st->fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (n > 0) {
				if (st->closed)
					continue;
				if (zm_hbone_send(hc->hb, st->id, buf, (size_t)n) == -ENOBUFS)
					zm_buf_append(&st->to_tun, buf, (size_t)n);	/* back off */
			} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
				st->app_ended = true;
				if (!st->closed)
					zm_hbone_end(hc->hb, st->id);
			}
		}
	}
	/* Dead: no new streams; the openers still waiting are told. */
	hc->dead = true;
	pthread_cond_broadcast(&hc->cv);
	pthread_mutex_unlock(&hc->mu);
	pthread_mutex_lock(&pool_mu);
	for (struct hu_conn **pp = &pool; *pp; pp = &(*pp)->next)
		if (*pp == hc) {
			*pp = hc->next;
			break;
		}
	pthread_mutex_unlock(&pool_mu);
	atomic_fetch_sub(&n_conns, 1);
	conn_put(hc);
	return NULL;
}

/* A TCP connection to ip:15008 and its session; with pool_mu held. */
static struct hu_conn *conn_new(const char *ip, const struct zm_spiffe_id *want)
{
	struct hu_conn *hc = calloc(1, sizeof(*hc));
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(15008) };
	pthread_condattr_t ca;
	pthread_t th;
	int one = 1;

	if (!hc)
		return NULL;
	hc->fd = -1;
	hc->wake[0] = hc->wake[1] = -1;
	for (int i = 0; i < HU_STREAMS; i++)
		hc->st[i].fd = -1;
	snprintf(hc->ip, sizeof(hc->ip), "%s", ip);
	hc->want = *want;
	if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1 || pipe2(hc->wake, O_CLOEXEC | O_NONBLOCK))
		goto fail;
	hc->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (hc->fd < 0)
		goto fail;
	setsockopt(hc->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* Not waited for here (pool_mu is held): the pump thread sees the
	 * connect complete or fail; openers wait for the handshake. */
	if (connect(hc->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
		goto fail;
	if (zm_hbone_new_ex(client_ctx, false, ZM_HBONE_MANUAL_WINDOW, &cbs, hc, &hc->hb))
		goto fail;
	if (zm_tls_expect_peer(zm_hbone_ssl(hc->hb), want))
		goto fail;
	pthread_mutex_init(&hc->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&hc->cv, &ca);
	pthread_condattr_destroy(&ca);
	hc->refs = 2;			/* the pump thread's and the caller's */
	if (pthread_create(&th, NULL, hu_thread, hc)) {
		pthread_mutex_destroy(&hc->mu);
		pthread_cond_destroy(&hc->cv);
		goto fail;
	}
	pthread_detach(th);
	atomic_fetch_add(&n_conns, 1);
	hc->next = pool;
	pool = hc;
	return hc;
fail:
	if (hc->hb)
		zm_hbone_free(hc->hb);
	if (hc->fd >= 0)
		close(hc->fd);
	if (hc->wake[0] >= 0) {
		close(hc->wake[0]);
		close(hc->wake[1]);
	}
	free(hc);
	return NULL;
}

static int wait_until(struct hu_conn *hc, int64_t deadline)
{
	struct timespec ts = { deadline / 1000000000LL, deadline % 1000000000LL };

	return pthread_cond_timedwait(&hc->cv, &hc->mu, &ts) == ETIMEDOUT ? -ETIMEDOUT : 0;
}

int wp_hbup_connect(const char *ip, int port, int64_t deadline)
{
	struct zm_spiffe_id want;
	struct hu_conn *hc;
	struct hu_stream *st = NULL;
	struct zm_hbone_hdr hd[3];
	char auth[80], bag[256], fwd[80];
	size_t nh = 0;
	int sp[2] = { -1, -1 }, rc;
	int64_t now = mono_ns();

	if (!client_ctx || meshed_identity(ip, &want))
		return -ENOENT;
	if (!deadline || deadline - now > 10 * 1000000000LL)
		deadline = now + 10 * 1000000000LL;
	/* A pooled connection to this pod with room, else a new one. */
	pthread_mutex_lock(&pool_mu);
	for (hc = pool; hc; hc = hc->next) {
		bool ok;

		if (strcmp(hc->ip, ip))
			continue;
		pthread_mutex_lock(&hc->mu);
		ok = !hc->dead && hc->nst < HU_STREAMS && (!hc->up || zm_hbone_capacity(hc->hb) > 0);
		if (ok)
			hc->refs++;
		pthread_mutex_unlock(&hc->mu);
		if (ok)
			break;
	}
	if (!hc)
		hc = conn_new(ip, &want);
	pthread_mutex_unlock(&pool_mu);
	if (!hc) {
		atomic_fetch_add(&n_refused, 1);
		return -ECONNREFUSED;
	}
	pthread_mutex_lock(&hc->mu);
	/* reserve a slot now so the connection is not overfilled while it comes up */
	for (int i = 0; i < HU_STREAMS && !st; i++)
		if (!hc->st[i].id && !hc->st[i].waiting)
			st = &hc->st[i];
	rc = -ECONNREFUSED;
	if (!st)
		goto out;
	st->waiting = true;
	hc->nst++;
	while (!hc->up && !hc->dead)
		if (wait_until(hc, deadline)) {
			rc = -ETIMEDOUT;
			goto release;
		}
	if (hc->dead || zm_hbone_capacity(hc->hb) <= 0)
		goto release;
	snprintf(auth, sizeof(auth), "%s:%d", ip, port);
	snprintf(bag, sizeof(bag), "k8s.namespace.name=%s,k8s.deployment.name=%s,service.name=%s",
		 self_ns, self_name, self_name);
	hd[nh++] = (struct zm_hbone_hdr){ "baggage", bag };
	if (meta_for[0]) {
		snprintf(fwd, sizeof(fwd), "for=%s", meta_for);
		hd[nh++] = (struct zm_hbone_hdr){ "forwarded", fwd };
	}
	if (meta_tp[0])
		hd[nh++] = (struct zm_hbone_hdr){ "traceparent", meta_tp };
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp))
		goto release;
	fcntl(sp[0], F_SETFL, O_NONBLOCK);
	if (zm_hbone_open(hc->hb, auth, hd, nh, &st->id))
		goto release;
	st->fd = sp[0];
	sp[0] = -1;
	if (write(hc->wake[1], "", 1) < 0) {
		/* the pipe is full: the pump is awake anyway */
	}
	while (!st->status && !hc->dead)
		if (wait_until(hc, deadline)) {
			rc = -ETIMEDOUT;
			zm_hbone_reset(hc->hb, st->id);
			break;
		}
	if (st->status == 200) {
		rc = sp[1];
		sp[1] = -1;
		atomic_fetch_add(&n_streams, 1);
	} else if (rc != -ETIMEDOUT) {
		zm_log_info("hbone upstream %s: CONNECT %s refused (%d)", ip, auth, st->status);
	}
	st->waiting = false;
	if (rc < 0 && st->status > 0 && !st->closed)
		zm_hbone_reset(hc->hb, st->id);
	if (rc < 0)
		st->closed = true;	/* the pump frees the slot */
	goto out;
release:
	st->waiting = false;
	if (st->id)
		st->closed = true;
	else
		hc->nst--;
out:
	if (rc < 0)
		atomic_fetch_add(&n_refused, 1);
	pthread_mutex_unlock(&hc->mu);
	if (write(hc->wake[1], "", 1) < 0) {
		/* as above */
	}
	if (sp[0] >= 0)
		close(sp[0]);
	if (sp[1] >= 0)
		close(sp[1]);
	conn_put(hc);
	return rc;
}
