// SPDX-License-Identifier: Apache-2.0
/*
 * One downstream HTTP/1.1 connection: read a request's head (bounded, with
 * a header deadline), ask the engine, answer locally or forward with
 * retries/timeouts to an endpoint, re-framed (our own framing, no
 * hop-by-hop fields, so nothing the client wrote decides framing upstream:
 * no smuggling), then log and count it. Keep-alive on both sides.
 *
 * Bodies stream (docs/waypoint.md, "Streaming"): the request body is read
 * from the client as the upstream takes it, the answer is written as it
 * comes, both at once under poll(); the first WP_RETRY_BUFFER bytes of a
 * request body are kept so that a retry can resend them.
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
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "zmesh/authz_match.h"
#include "zmesh/json.h"
#include "zmesh/log.h"
#include "zmesh/sock.h"
#include "waypoint.h"


atomic_int wp_nconns;
static atomic_int nmirrors;

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

/* Milliseconds until @deadline (ns), at least 0; -1 for "no deadline". */
static int ms_left(int64_t deadline)
{
	int64_t l;

	if (!deadline)
		return -1;
	l = (deadline - now_ns()) / 1000000;
	return l < 0 ? 0 : l > 1000000000 ? 1000000000 : (int)l;
}

static int write_all(int fd, const char *p, size_t n, int64_t deadline)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd pf = { .fd = fd, .events = POLLOUT };
			int r = poll(&pf, 1, ms_left(deadline));

			if (r == 0)
				return -ETIMEDOUT;
			if (r < 0 && errno != EINTR)
				return -errno;
			continue;
		}
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read some bytes into @b before @deadline: >0 read, 0 EOF, <0 error/-ETIMEDOUT. */
static long read_some(int fd, struct zm_buf *b, int64_t deadline)
{
	/* Try first, wait only when nothing is there: one syscall on the busy path. */
	for (;;) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		char *dst = zm_buf_reserve(b, 16384);
		ssize_t r;
		int pr;

		if (!dst)
			return -ENOMEM;
		r = recv(fd, dst, 16384, MSG_DONTWAIT);
		if (r >= 0) {
			zm_buf_commit(b, (size_t)r);
			return r;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -errno;
		pr = poll(&pf, 1, ms_left(deadline));
		if (pr == 0)
			return -ETIMEDOUT;
		if (pr < 0 && errno != EINTR)
			return -errno;
	}
}

/* ---- header lists ------------------------------------------------------------ */

void hl_free(struct hlist *h)
{
	for (size_t i = 0; i < h->n; i++) {
		free(h->v[i].n);
		free(h->v[i].v);
	}
	free(h->v);
	memset(h, 0, sizeof(*h));
}

int hl_add(struct hlist *h, const char *n, size_t nl, const char *v, size_t vl)
{
	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 32;
		struct hkv *nv = realloc(h->v, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		h->v = nv;
		h->cap = cap;
	}
	h->v[h->n].n = strndup(n, nl);
	h->v[h->n].v = strndup(v, vl);
	if (!h->v[h->n].n || !h->v[h->n].v) {
		free(h->v[h->n].n);
		free(h->v[h->n].v);
		return -ENOMEM;
	}
	for (char *p = h->v[h->n].n; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p + 32);
	h->n++;
	return 0;
}

void hl_del(struct hlist *h, const char *n)
{
	size_t o = 0;

	for (size_t i = 0; i < h->n; i++) {
		if (!strcasecmp(h->v[i].n, n)) {
			free(h->v[i].n);
			free(h->v[i].v);
			continue;
		}
		h->v[o++] = h->v[i];
	}
	h->n = o;
}

static const char *hl_get(const struct hlist *h, const char *n)
{
	for (size_t i = 0; i < h->n; i++)
		if (!strcasecmp(h->v[i].n, n))
			return h->v[i].v;
	return NULL;
}

static int hl_set(struct hlist *h, const char *n, const char *v)
{
	hl_del(h, n);
	return hl_add(h, n, strlen(n), v, strlen(v));
}

/* Istio Headers: remove, then set, then add, each op list in order. */
static int hl_apply(struct hlist *h, const struct zm_header_ops *const *ops, size_t nops)
{
	int rc = 0;

	for (size_t i = 0; i < nops; i++)
		for (size_t k = 0; k < ops[i]->remove.n; k++)
			hl_del(h, ops[i]->remove.v[k].v);
	for (size_t i = 0; i < nops; i++)
		for (size_t k = 0; k < ops[i]->set.n; k++)
			rc |= hl_set(h, ops[i]->set.v[k].key.v, ops[i]->set.v[k].val.v);
	for (size_t i = 0; i < nops; i++)
		for (size_t k = 0; k < ops[i]->add.n; k++)
			rc |= hl_add(h, ops[i]->add.v[k].key.v, strlen(ops[i]->add.v[k].key.v),
				     ops[i]->add.v[k].val.v, strlen(ops[i]->add.v[k].val.v));
	return rc;
}

static int hl_write(struct zm_buf *b, const struct hlist *h)
{
	int rc = 0;

	for (size_t i = 0; i < h->n; i++)
		rc |= zm_buf_printf(b, "%s: %s\r\n", h->v[i].n, h->v[i].v);
	return rc;
}

/* ---- upstream connections ----------------------------------------------------- */



static void up_close(struct up *u)
{
	if (u->fd > 0)
		close(u->fd);
	u->fd = -1;
}

/* DestinationRule tcp.tcpKeepalive on an upstream socket (unset fields keep
 * the kernel's values, as Envoy's). */
static void keepalive(int fd, const struct zm_tcp_keepalive *ka)
{
	int one = 1, v;

	if (!ka || !ka->o.set)
		return;
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	if (ka->time.set && (v = (int)(ka->time.ns / ZM_NS_PER_S)) > 0)
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, sizeof(v));
	if (ka->interval.set && (v = (int)(ka->interval.ns / ZM_NS_PER_S)) > 0)
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &v, sizeof(v));
	if (ka->probes.set && (v = (int)ka->probes.v) > 0)
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &v, sizeof(v));
}

static int connect_to(const char *addr, int port, int64_t deadline, const struct zm_tcp_keepalive *ka)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd, one = 1, err = 0;
	socklen_t el = sizeof(err);

	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
		return -EINVAL;
	/* A meshed endpoint: over HBONE to its node's ztunnel (hbup.c). */
	fd = wp_hbup_connect(addr, port, deadline);
	if (fd != -ENOENT)
		return fd;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	keepalive(fd, ka);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		err = -errno;
		close(fd);
		return err;
	}
	for (;;) {
		struct pollfd pf = { .fd = fd, .events = POLLOUT };
		int r = poll(&pf, 1, ms_left(deadline));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			close(fd);
			return r == 0 ? -ETIMEDOUT : -errno;
		}
		break;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) {
		close(fd);
		return -(err ? err : ECONNREFUSED);
	}
	return fd;
}

/* Is pooled connection @u past its idleTimeout / maxConnectionDuration at @now? */
static bool up_expired(const struct up *u, int64_t now)
{
	/* within a millisecond counts: poll() timeouts are whole milliseconds, rounded down */
	return u->expires && now + ZM_NS_PER_MS >= u->expires;
}

/*
 * Close the pooled connections that expired; the earliest expiry of those
 * left (0: none), so a front waiting for its client can wake to close
 * them (Envoy closes an idle pooled connection on a timer, not at its next use).
 */
int64_t wp_up_sweep(struct up *pool, pthread_mutex_t *mu)
{
	int64_t now = now_ns(), next = 0;

	if (mu)
		pthread_mutex_lock(mu);
	for (int i = 0; i < UP_POOL; i++) {
		if (pool[i].fd <= 0)
			continue;
		if (up_expired(&pool[i], now))
			up_close(&pool[i]);
		else if (pool[i].expires && (!next || pool[i].expires < next))
			next = pool[i].expires;
	}
	if (mu)
		pthread_mutex_unlock(mu);
	return next;
}

/* A pooled connection to addr:port, or a new one. *fresh tells which;
 * *uses is how many requests it has carried, *born when it connected.
 * Pooled ones past their idleTimeout or maxConnectionDuration are closed. */
static int up_get(struct conn *c, const char *addr, int port, int64_t deadline, bool *fresh,
		  int64_t *uses, int64_t *born, const struct zm_tcp_keepalive *ka)
{
	struct up *pool = c->shared_pool ? c->shared_pool : c->pool;
	int64_t now = now_ns();
	int fd = -1;

	if (c->pool_mu)
		pthread_mutex_lock(c->pool_mu);
	for (int i = 0; i < UP_POOL; i++) {
		struct up *u = &pool[i];

		if (u->fd <= 0)
			continue;
		if (up_expired(u, now)) {
			up_close(u);
			continue;
		}
		if (fd < 0 && u->port == port && !strcmp(u->addr, addr)) {
			fd = u->fd;
			*uses = u->uses;
			*born = u->born;
			u->fd = -1;
		}
	}
	if (c->pool_mu)
		pthread_mutex_unlock(c->pool_mu);
	if (fd > 0) {
		*fresh = false;
		return fd;
	}
	*fresh = true;
	*uses = 0;
	*born = now;
	return connect_to(addr, port, deadline, ka);
}

/* Back into the pool, not to be reused after @expires (0: no limit). */
static void up_put(struct conn *c, int fd, const char *addr, int port, int64_t uses, int64_t born,
		   int64_t expires)
{
	struct up *pool = c->shared_pool ? c->shared_pool : c->pool;
	int slot = 0;

	if (c->pool_mu)
		pthread_mutex_lock(c->pool_mu);
	for (int i = 0; i < UP_POOL; i++)
		if (pool[i].fd <= 0) {
			slot = i;
			break;
		}
	up_close(&pool[slot]);
	pool[slot] = (struct up){ .fd = fd, .port = port, .uses = uses, .born = born, .expires = expires };
	snprintf(pool[slot].addr, sizeof(pool[slot].addr), "%s", addr);
	if (c->pool_mu)
		pthread_mutex_unlock(c->pool_mu);
}

/* ---- the request body ---------------------------------------------------------- */

long wp_body_read(struct wp_body *b, char *buf, size_t n)
{
	long r;

	if (b->replay_ok && b->pos < zm_buf_len(&b->replay)) {
		size_t k = zm_buf_len(&b->replay) - b->pos;

		if (k > n)
			k = n;
		memcpy(buf, zm_buf_data(&b->replay) + b->pos, k);
		b->pos += k;
		return (long)k;
	}
	if (!b->src || b->eof)
		return 0;
	r = b->src->read(b->src, buf, n);
	if (r == 0)
		b->eof = true;
	if (r <= 0)
		return r;
	b->total += (uint64_t)r;
	if (b->replay_ok && b->total <= WP_RETRY_BUFFER && !zm_buf_append(&b->replay, buf, (size_t)r)) {
		b->pos += (size_t)r;
	} else if (b->replay_ok) {
		b->replay_ok = false;	/* past the buffer: this try is the only one */
		zm_buf_free(&b->replay);
		b->pos = 0;
	}
	return r;
}

int wp_body_fd(const struct wp_body *b)
{
	return b->src && !b->eof ? b->src->fd : -1;
}

bool wp_body_rewind(struct wp_body *b)
{
	if (!b->replay_ok)
		return false;
	b->pos = 0;
	return true;
}

bool wp_trailer_forwardable(const char *n)
{
	/* RFC 9110 6.5.1: no framing, routing, authentication or content
	 * fields in trailers; and nothing the mesh itself vouches for */
	static const char *const no[] = {
		"host", "authorization", "proxy-authorization", "cookie", "content-type",
		"content-encoding", "content-range", "x-request-id", "forwarded", NULL,
	};
	size_t l = strlen(n);

	if (!l || n[0] == ':' || wp_hop_by_hop(n, l) || zm_http_header_is_internal(n, l, 0) ||
	    !strncmp(n, "x-forwarded-", 12))
		return false;
	for (int i = 0; no[i]; i++)
		if (!strcmp(n, no[i]))
			return false;
	return true;
}

const struct hlist *wp_body_trailers(struct wp_body *b)
{
	const struct hlist *t;

	if (!b->src || !b->eof || !b->src->trailers || !(t = b->src->trailers(b->src)) || !t->n)
		return NULL;
	return t;
}

static int64_t min_dl(int64_t a, int64_t b)
{
	return !a ? b : !b ? a : a < b ? a : b;
}

/* Whole answer's head into @h (names lower-case), from a parsed HTTP/1 message. */
static int msg_hlist(struct wp_msg *m, struct hlist *h)
{
	size_t n = wp_msg_fields(m);
	int rc = 0;

	for (size_t i = 0; i < n; i++)
		rc |= hl_add(h, m->f[i].name, m->f[i].name_len, m->f[i].value, m->f[i].value_len);
	return rc;
}

/*
 * One try over HTTP/1.1 to addr:port: @head_out (request line + headers),
 * then the body from x->body (chunked when @chunked) while the answer is
 * read, both ways at once under poll(), so neither side waits for the
 * other to finish. A pooled connection that fails before any answer byte
 * is retried once on a fresh one (the peer may have closed it while idle)
 * when the body can be sent again.
 */
static enum try_result do_try(struct conn *c, const char *addr, int port, const struct zm_buf *head_out,
			      bool chunked, int64_t connect_deadline, struct wp_xfer *x)
{
	int64_t idle = (int64_t)wp_options->idle_timeout_ms * 1000000;

	for (int round = 0; round < 2; round++) {
		struct zm_buf ob = { 0 };
		struct wp_msg resp;
		bool fresh, got = false, body_done = !x->body->src, body_wait = false, decided = false;
		bool extra = false;
		enum try_result tr = TRY_RESET;
		int64_t last = now_ns(), uses = 0, born = 0;
		char tmp[16384];
		int fd;

		if (round && !wp_body_rewind(x->body))
			return TRY_RESET;
		fd = up_get(c, addr, port, min_dl(connect_deadline, x->try_deadline), &fresh, &uses, &born, x->ka);
		if (fd < 0)
			return fd == -ETIMEDOUT && x->try_deadline && now_ns() >= x->try_deadline ? TRY_TIMEOUT :
			       TRY_CONNECT_FAIL;
		wp_msg_init(&resp, HTTP_RESPONSE, SIZE_MAX);
		resp.head_response = x->head;
		if (zm_buf_append(&ob, zm_buf_data(head_out), zm_buf_len(head_out)))
			goto fail;
		for (;;) {
			struct pollfd pf[2];
			int64_t dl;
			long r;
			int pr;

			/* the request body, a bounded piece at a time */
			while (!body_done && !body_wait && zm_buf_len(&ob) < sizeof(tmp)) {
				r = wp_body_read(x->body, tmp, sizeof(tmp) - 64);
				if (r == -EAGAIN) {
					body_wait = true;
				} else if (r < 0) {
					x->down_fail = true;
					goto fail;
				} else if (r == 0) {
					if (chunked) {
						/* the client's trailers as chunked trailer fields */
						const struct hlist *tl = wp_body_trailers(x->body);

						zm_buf_puts(&ob, "0\r\n");
						for (size_t i = 0; tl && i < tl->n; i++)
							if (wp_trailer_forwardable(tl->v[i].n))
								zm_buf_printf(&ob, "%s: %s\r\n", tl->v[i].n, tl->v[i].v);
						zm_buf_puts(&ob, "\r\n");
					}
					body_done = true;
				} else {
					if (chunked)
						zm_buf_printf(&ob, "%lx\r\n", (unsigned long)r);
					zm_buf_append(&ob, tmp, (size_t)r);
					if (chunked)
						zm_buf_puts(&ob, "\r\n");
				}
			}
			if (zm_buf_len(&ob)) {
				ssize_t w = send(fd, zm_buf_data(&ob), zm_buf_len(&ob), MSG_NOSIGNAL | MSG_DONTWAIT);

				if (w > 0) {
					zm_buf_consume(&ob, (size_t)w);
					last = now_ns();
				} else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
					if (!got && !fresh && !x->committed)
						goto fail;	/* a stale pooled connection */
					/* the upstream stopped reading: its answer may still come */
					zm_buf_reset(&ob);
					body_done = true;
					extra = true;
				}
			}
			if (!zm_buf_len(&ob) && !body_done && !body_wait)
				continue;	/* all sent: more body first */
			pf[0] = (struct pollfd){ .fd = fd, .events = POLLIN | (zm_buf_len(&ob) ? POLLOUT : 0) };
			pf[1] = (struct pollfd){ .fd = body_wait ? wp_body_fd(x->body) : -1, .events = POLLIN };
			dl = min_dl(x->committed ? x->deadline : min_dl(x->deadline, x->try_deadline), last + idle);
			pr = poll(pf, 2, ms_left(dl));
			if (pr < 0 && errno == EINTR)
				continue;
			if (pr < 0)
				goto fail;
			if (pr == 0) {
				tr = TRY_TIMEOUT;
				goto fail;
			}
			if (pf[1].revents)
				body_wait = false;
			if (!(pf[0].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			r = recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT);
			if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
				continue;
			if (r < 0 || (r == 0 && (!got || wp_msg_eof(&resp))))
				goto fail;
			if (r > 0) {
				long used;

				got = true;
				last = now_ns();
				used = wp_msg_feed(&resp, tmp, (size_t)r);
				if (used < 0) {
					tr = TRY_BAD;
					goto fail;
				}
				extra |= used < r;
			}
			if (resp.headers_done && !decided) {
				struct hlist uh = { 0 };
				char cl[32];
				size_t cll;
				int64_t len = -1;

				decided = true;
				if (x->verdict(x, (int)resp.p.status_code, -1) == WP_RETRY) {
					x->status = resp.p.status_code;
					tr = TRY_OK;
					goto fail;	/* dropped; the connection with it */
				}
				if ((resp.p.flags & F_CONTENT_LENGTH) && !(resp.p.flags & F_CHUNKED) &&
				    wp_msg_header(&resp, "content-length", cl, sizeof(cl), &cll))
					len = strtoll(cl, NULL, 10);
				if (msg_hlist(&resp, &uh) ||
				    x->commit(x, (int)resp.p.status_code, zm_buf_data(&resp.status_text),
					      zm_buf_len(&resp.status_text), &uh, len)) {
					hl_free(&uh);
					x->down_fail = true;
					goto fail;
				}
				hl_free(&uh);
			}
			if (x->committed && zm_buf_len(&resp.body)) {
				size_t n = zm_buf_len(&resp.body);

				if (x->sink->data(x->sink, zm_buf_data(&resp.body), n,
						  x->deadline ? x->deadline : now_ns() + idle)) {
					x->down_fail = true;
					goto fail;
				}
				x->resp_bytes += n;
				zm_buf_reset(&resp.body);
			}
			if (resp.complete) {
				if (x->sink->end(x->sink, NULL))
					x->down_fail = true;
				/* reusable only when all was said both ways, the server keeps
				 * it and maxRequestsPerConnection leaves room */
				uses++;
				if (!extra && body_done && !zm_buf_len(&ob) && r > 0 &&
				    llhttp_should_keep_alive(&resp.p) && (!x->max_uses || uses < x->max_uses) &&
				    (!x->max_age_ns || now_ns() < born + x->max_age_ns)) {
					int64_t now = now_ns(), exp = x->pool_idle_ns ? now + x->pool_idle_ns : 0;

					if (x->max_age_ns && (!exp || born + x->max_age_ns < exp))
						exp = born + x->max_age_ns;
					up_put(c, fd, addr, port, uses, born, exp);
				} else
					close(fd);
				x->status = resp.status;
				wp_msg_free(&resp);
				zm_buf_free(&ob);
				return TRY_OK;
			}
		}
fail:
		close(fd);
		wp_msg_free(&resp);
		zm_buf_free(&ob);
		if (tr == TRY_OK)
			return TRY_OK;
		if (tr == TRY_RESET && !got && !fresh && !x->down_fail && !x->committed)
			continue;
		if (x->committed && !x->aborted) {
			x->aborted = true;
			x->sink->abort(x->sink);
		}
		return tr;
	}
	return TRY_RESET;
}

/* ---- the request ------------------------------------------------------------------ */

static void pod_info(const struct wp_snap *s, const char *ip, const struct zm_lab_pod **out)
{
	*out = NULL;
	if (!s || !s->have_lab)
		return;
	for (size_t i = 0; i < s->lab.npods; i++) {
		char a[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &s->lab.pods[i].ip, a, sizeof(a));
		if (!strcmp(a, ip)) {
			*out = &s->lab.pods[i];
			return;
		}
	}
}

static void random_id(char *out, size_t hexlen)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char r[32];

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		memset(r, 7, sizeof(r));
	for (size_t i = 0; i < hexlen; i++)
		out[i] = hex[(r[i / 2] >> (i % 2 ? 0 : 4)) & 15];
	out[hexlen] = '\0';
}

struct result {
	int code;
	char flags[16];
	const char *reason;
	char upstream[96];
	const struct zm_l7_ep *ep;
	int attempts;
	uint64_t resp_bytes;
};

/* A locally made answer into @rs. */
static void local(struct wp_resp *rs, int code, const char *body, size_t blen)
{
	rs->status = code;
	rs->status_text = NULL;
	zm_buf_reset(&rs->body);
	zm_buf_append(&rs->body, body, blen);
	hl_set(&rs->h, "content-type", "text/plain");
	hl_set(&rs->h, "server", "zmesh-waypoint");
}

struct mirror_job {
	struct wp_snap *snap;
	struct zm_l7_decision d;	/* only svc/subset/port are used */
	struct zm_buf out;
};

static void *mirror_thread(void *arg)
{
	struct mirror_job *j = arg;
	struct zm_l7_request r = { .method = "GET", .scheme = "http", .authority = "" };
	int ep = zm_l7_pick(j->snap->l7, &j->d, &r, -1, now_ns());

	if (ep >= 0) {
		const struct zm_l7_ep *e = &j->d.svc->eps[ep];
		int fd = connect_to(e->addr, e->tport[j->d.svc_port_idx], now_ns() + ZM_NS_PER_S,
				    zm_l7_tcp_keepalive(j->snap->l7, &j->d));

		if (fd >= 0) {
			char sink[4096];

			/* Fire and forget: send, drain briefly, close. */
			if (!write_all(fd, zm_buf_data(&j->out), zm_buf_len(&j->out), now_ns() + ZM_NS_PER_S)) {
				struct pollfd pf = { .fd = fd, .events = POLLIN };

				if (poll(&pf, 1, 1000) > 0)
					(void)!recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
			}
			close(fd);
		}
		zm_l7_report(j->snap->l7, &j->d, ep, 200, now_ns());
	}
	zm_buf_free(&j->out);
	wp_snap_put(j->snap);
	free(j);
	atomic_fetch_sub(&nmirrors, 1);
	return NULL;
}

static void start_mirror(struct wp_snap *snap, const struct zm_l7_decision *d, const struct zm_l7_mirror *m,
			 const char *method, const struct hlist *h, const struct zm_buf *body)
{
	struct mirror_job *j;
	pthread_t th;
	pthread_attr_t at;

	if (atomic_fetch_add(&nmirrors, 1) >= 64 || !(j = calloc(1, sizeof(*j)))) {
		atomic_fetch_sub(&nmirrors, 1);
		return;
	}
	j->snap = snap;
	atomic_fetch_add(&snap->ref, 1);
	zm_l7_decision_init(&j->d);
	j->d.svc = m->svc;
	j->d.subset = m->subset;
	j->d.svc_port_idx = m->port_idx;
	/* Envoy marks shadowed requests by suffixing the host with "-shadow". */
	zm_buf_printf(&j->out, "%s %s HTTP/1.1\r\nhost: %s-shadow\r\n", method,
		      zm_buf_cstr((struct zm_buf *)&d->path), zm_buf_cstr((struct zm_buf *)&d->authority));
	for (size_t i = 0; i < h->n; i++)
		zm_buf_printf(&j->out, "%s: %s\r\n", h->v[i].n, h->v[i].v);
	zm_buf_printf(&j->out, "content-length: %zu\r\nconnection: close\r\n\r\n", zm_buf_len(body));
	zm_buf_append(&j->out, zm_buf_data(body), zm_buf_len(body));
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &at, mirror_thread, j)) {
		zm_buf_free(&j->out);
		wp_snap_put(snap);
		free(j);
		atomic_fetch_sub(&nmirrors, 1);
	}
	pthread_attr_destroy(&at);
}

static const char *lbl(const struct zm_labels *l, const char *k)
{
	const char *v = l ? zm_labels_get(l, k) : NULL;

	return v ? v : "unknown";
}

int wp_grpc_status(const struct hlist *h)
{
	const char *v = hl_get(h, "grpc-status");

	return v ? atoi(v) : -1;
}

static const char *workload(const struct zm_labels *l, const char *name)
{
	const char *app = zm_labels_get(l, "app");

	return app ? app : name;
}

/* Joined value of field @name in @rq (lower-case name), or NULL. */
static const char *req_header(const struct wp_req *rq, const char *name, char *buf, size_t sz,
			      size_t *len)
{
	return zm_http_header_join(rq->f, rq->nf, name, strlen(name), buf, sz, len) == 0 ? buf : NULL;
}

static void log_and_count(struct conn *c, const struct wp_req *rq, const struct zm_l7_decision *d,
			  const struct result *res, const struct zm_lab_pod *src, const char *src_principal,
			  int64_t t0_ns, int64_t t0_wall, const char *reqid)
{
	struct zm_buf l = { 0 };
	char tmp[8192];
	size_t len;
	const char *v;
	double ms = (double)(now_ns() - t0_ns) / 1e6;
	const struct zm_l7_ep *ep = res->ep;
	size_t reqb = rq->bytes_in;
	struct wp_labels ml = {
		/* workload: the app label, else the pod name (as ztunnel reports it) */
		.src_workload = src ? workload(&src->labels, src->name) : NULL,
		.src_ns = src ? src->ns : NULL,
		.src_principal = src_principal,
		.src_app = src ? lbl(&src->labels, "app") : NULL,
		.src_version = src ? lbl(&src->labels, "version") : NULL,
		.dst_workload = ep ? workload(&ep->labels, ep->pod) : NULL,
		.dst_ns = ep ? ep->ns : NULL,
		.dst_app = ep ? lbl(&ep->labels, "app") : NULL,
		.dst_version = ep ? lbl(&ep->labels, "version") : NULL,
		.dst_service = d->svc ? d->svc->fqdn : NULL,
		.dst_service_name = d->svc ? d->svc->name : NULL,
		.dst_service_ns = d->svc ? d->svc->ns : NULL,
		.code = res->code, .flags = res->flags, .mtls = c->mtls,
		.proto = rq->proto,
	};
	if (c->gw_port) {
		/* reporter="source": an Istio gateway reports itself as the source */
		ml.src_workload = ml.src_app = wp_options->name;
		ml.src_ns = wp_options->gateway_ns;
		ml.src_version = NULL;
	}
	time_t secs = (time_t)(t0_wall / 1000000);
	struct tm tm;
	char ts[64];

	/* TCP streams are logged, not counted as requests (istio_tcp_* is ztunnel's) */
	if (strcmp(rq->proto, "TCP"))
		wp_metrics_record(&ml, ms, reqb, res->resp_bytes);
	gmtime_r(&secs, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + strlen(ts), sizeof(ts) - strlen(ts), ".%03dZ", (int)(t0_wall / 1000 % 1000));
	zm_buf_puts(&l, "{");
	zm_json_kv_str(&l, 1, "start_time", ts);
	zm_buf_puts(&l, ",\"method\":");
	zm_json_str(&l, rq->method, strlen(rq->method));
	zm_buf_puts(&l, ",\"path\":");
	zm_json_str(&l, rq->target ? rq->target : "", rq->target_len);
	zm_json_kv_str(&l, 0, "protocol", rq->proto);
	zm_json_kv_int(&l, 0, "response_code", res->code);
	zm_json_kv_str(&l, 0, "response_flags", res->flags[0] ? res->flags : "-");
	zm_json_kv_str(&l, 0, "response_code_details", res->reason ? res->reason : "via_upstream");
	zm_json_kv_int(&l, 0, "bytes_received", (long long)reqb);
	zm_json_kv_int(&l, 0, "bytes_sent", (long long)res->resp_bytes);
	zm_json_kv_int(&l, 0, "duration", (long long)ms);
	zm_json_kv_int(&l, 0, "upstream_attempts", res->attempts);
	zm_json_kv_str(&l, 0, "upstream_host", res->upstream[0] ? res->upstream : "-");
	if (d->svc) {
		char cl[400];

		snprintf(cl, sizeof(cl), "outbound|%d|%s|%s", d->svc_port_idx >= 0 ?
			 d->svc->ports[d->svc_port_idx] : 0, d->subset ? d->subset : "", d->svc->fqdn);
		zm_json_kv_str(&l, 0, "upstream_cluster", cl);
	}
	zm_json_kv_str(&l, 0, "downstream_remote_address", c->peer);
	zm_json_kv_str(&l, 0, "route_name", d->route_name ? d->route_name : "default");
	zm_json_kv_str(&l, 0, "virtual_service", d->vs_name ? d->vs_name : "-");
	zm_json_kv_str(&l, 0, "source_principal", src_principal ? src_principal : "-");
	zm_json_kv_str(&l, 0, "request_principal", d->request_principal ? d->request_principal : "-");
	zm_json_kv_str(&l, 0, "x_request_id", reqid);
#define HDR_FIELD(h, key) do { \
		v = req_header(rq, h, tmp, sizeof(tmp), &len); \
		zm_buf_puts(&l, ",\"" key "\":"); \
		if (v) zm_json_str(&l, v, len); else zm_buf_puts(&l, "\"-\""); } while (0)
	if (rq->authority) {
		zm_buf_puts(&l, ",\"authority\":");
		zm_json_str(&l, rq->authority, strlen(rq->authority));
	} else {
		HDR_FIELD("host", "authority");
	}
	HDR_FIELD("user-agent", "user_agent");
	HDR_FIELD("traceparent", "traceparent");
	HDR_FIELD("x-b3-traceid", "b3_trace_id");
#undef HDR_FIELD
	zm_buf_puts(&l, "}");
	if (zm_buf_cstr(&l))
		wp_access_log(&l);
	zm_buf_free(&l);
}

void wp_resp_init(struct wp_resp *rs)
{
	memset(rs, 0, sizeof(*rs));
}

void wp_resp_free(struct wp_resp *rs)
{
	hl_free(&rs->h);
	hl_free(&rs->trailers);
	zm_buf_free(&rs->body);
	zm_buf_free(&rs->status_buf);
}

/* ---- the answer's way back ---------------------------------------------------------- */

struct xctx {
	struct wp_resp *rs;
	const struct zm_l7_decision *d;
	struct zm_l7 *l7;
	int t, tries;
	bool held;			/* this try is a retry and holds its slot (zm_l7_retry_begin) */
	bool slot;			/* the verdict took the next retry's slot */
	bool overflow;			/* a retry was refused by maxRetries / retryBudget: flag UO */
	bool exhausted;			/* the last try's result was retriable: flag URX */
};

static enum wp_verdict xfer_verdict(struct wp_xfer *x, int status, int gst)
{
	struct xctx *k = x->ctx;

	if (!zm_l7_should_retry(k->d, status, false) && !(gst > 0 && zm_l7_should_retry_grpc(k->d, gst)))
		return WP_COMMIT;
	if (k->t + 1 >= k->tries || !x->body->replay_ok) {
		/* Envoy's URX: retriable, but the retries are used up */
		if (k->t + 1 >= k->tries && k->d->retry_attempts > 0)
			k->exhausted = true;
		return WP_COMMIT;
	}
	/* the retry breaker is asked before the answer is dropped: when it
	 * says no, this answer stands (Envoy's retry overflow). As Envoy's
	 * resetRetry(), a retry's own slot is given back before the next is asked. */
	if (k->held) {
		zm_l7_retry_end(k->l7, k->d);
		k->held = false;
	}
	if (!zm_l7_retry_begin(k->l7, k->d)) {
		k->overflow = true;
		return WP_COMMIT;
	}
	k->slot = true;
	return WP_RETRY;
}

/* The upstream's head as the client gets it: hop-by-hop fields out, response header ops. */
static int xfer_commit(struct wp_xfer *x, int status, const char *text, size_t tlen, const struct hlist *uh,
		       int64_t len)
{
	struct xctx *k = x->ctx;
	struct wp_resp *rs = k->rs;
	const struct zm_l7_decision *d = k->d;

	rs->status = status;
	if (tlen && !zm_buf_append(&rs->status_buf, text, tlen))
		rs->status_text = zm_buf_cstr(&rs->status_buf);
	for (size_t i = 0; i < uh->n; i++) {
		const struct hkv *kv = &uh->v[i];

		if (rs->head && !strcmp(kv->n, "content-length"))
			rs->keep_length = true;	/* HEAD: the length of what GET would send */
		else if (wp_hop_by_hop(kv->n, strlen(kv->n)))
			continue;
		hl_add(&rs->h, kv->n, strlen(kv->n), kv->v, strlen(kv->v));
	}
	hl_apply(&rs->h, d->resp_ops, d->nresp_ops);
	for (size_t i = 0; i < d->nresp_set; i++)
		hl_set(&rs->h, d->resp_set[i].name, d->resp_set[i].value);
	x->committed = true;
	x->status = status;
	rs->streamed = true;
	return x->sink->head(x->sink, rs, rs->head ? -1 : len);
}

/* A sink that keeps the answer in rs (a front end without one). */
struct buf_sink {
	struct wp_sink k;
	struct wp_resp *rs;
};

static int bs_head(struct wp_sink *k, const struct wp_resp *rs, int64_t len)
{
	(void)k;
	(void)rs;
	(void)len;
	return 0;
}

static int bs_data(struct wp_sink *k, const char *d, size_t n, int64_t deadline)
{
	(void)deadline;
	return zm_buf_append(&((struct buf_sink *)k)->rs->body, d, n);
}

static int bs_end(struct wp_sink *k, const struct hlist *tr)
{
	struct wp_resp *rs = ((struct buf_sink *)k)->rs;

	for (size_t i = 0; tr && i < tr->n; i++)
		hl_add(&rs->trailers, tr->v[i].n, strlen(tr->v[i].n), tr->v[i].v, strlen(tr->v[i].v));
	rs->streamed = false;	/* the front end writes it */
	return 0;
}

static void bs_abort(struct wp_sink *k)
{
	((struct buf_sink *)k)->rs->close = true;
}

static void buf_sink_init(struct buf_sink *b, struct wp_resp *rs)
{
	*b = (struct buf_sink){ .k = { bs_head, bs_data, bs_end, bs_abort }, .rs = rs };
}

void wp_serve(struct conn *c, struct wp_req *rq, struct wp_resp *rs, int64_t t0_ns, int64_t t0_wall)
{
	struct wp_snap *snap = wp_snap_get();
	struct zm_l7_decision d;
	struct zm_l7_request r;
	struct hlist h = { 0 };
	struct wp_body body = { .src = rq->src, .replay_ok = true };
	struct result res = { .code = 0 };
	const struct zm_lab_pod *src = NULL;
	char principal[640] = "", reqid[40] = "-", host[512] = "", tmp[256], pns[64];
	size_t len, nf = rq->nf;
	bool admitted = false, head = !strcmp(rq->method, "HEAD");
	bool overflow = false, exhausted = false;	/* flags UO (retry overflow), URX (retries used up) */
	struct wp_trace trc;

	wp_trace_begin(&trc, rq->f, rq->nf, t0_wall);
	zm_l7_decision_init(&d);
	rs->head = head;
	if (!snap) {
		res.code = 503;
		res.reason = "no config";
		snprintf(res.flags, sizeof(res.flags), "NC");
		local(rs, 503, "no config", 9);
		goto done;
	}
	if (c->mtls) {
		/* HBONE: the verified peer identity; the pod by the forwarded
		 * address only when it is that identity's pod. */
		char ip[INET_ADDRSTRLEN], want[640];

		snprintf(principal, sizeof(principal), "%s", c->principal);
		inet_ntop(AF_INET, c->addr, ip, sizeof(ip));
		pod_info(snap, ip, &src);
		if (src) {
			snprintf(want, sizeof(want), "spiffe://cluster.local/ns/%s/sa/%s", src->ns, src->sa);
			if (strcmp(want, principal))
				src = NULL;
		}
	} else if (wp_options->peer_identity && c->family == AF_INET) {
		/* Plain listener: the lab pod by address, for sourceLabels and
		 * sourceNamespace routing only; no principal (policy needs mTLS). */
		char ip[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, c->addr, ip, sizeof(ip));
		pod_info(snap, ip, &src);
	}
	if (rq->authority) {
		snprintf(host, sizeof(host), "%s", rq->authority);
	} else if (req_header(rq, "host", host, sizeof(host), &len) && strchr(host, ',')) {
		/* two Host fields: RFC 9112 says 400 */
		res.code = 400;
		res.reason = "duplicate host";
		snprintf(res.flags, sizeof(res.flags), "DPE");
		local(rs, 400, "bad request: host", 17);
		rs->close = true;
		goto done;
	}
	/* Internal headers from an untrusted peer never reach policy or the backend. */
	nf = rq->nf = zm_http_strip_internal(rq->f, rq->nf, ZM_PEER_UNTRUSTED);
	if (c->gw_port) {
		/* gateway: the Host must be one of this port's servers; httpsRedirect */
		struct zm_buf loc = { 0 };
		int g = wp_gw_check(c, host, rq->target ? rq->target : "/", rq->target ? rq->target_len : 1, &loc);

		if (g) {
			res.code = g > 0 ? g : 500;
			res.reason = g == 301 ? "https redirect" : "no gateway server for host";
			snprintf(res.flags, sizeof(res.flags), "%s", g == 301 ? "" : "NR");
			local(rs, res.code, "", 0);
			if (g == 301)
				hl_add(&rs->h, "location", 8, zm_buf_data(&loc), zm_buf_len(&loc));
			zm_buf_free(&loc);
			goto done;
		}
		zm_buf_free(&loc);
	}
	r = (struct zm_l7_request){
		.method = rq->method, .scheme = c->gw_tls ? "https" : "http", .authority = host,
		.target = rq->target ? rq->target : "", .target_len = rq->target ? rq->target_len : 0,
		/* the port the client dialled: HBONE's CONNECT names it; else Host's or 80 */
		.headers = rq->f, .nheaders = nf,
		.port = c->gw_port ? c->gw_port : c->mtls && c->tcp_port ? c->tcp_port : 80,
		.src_principal = principal[0] ? principal : NULL, .src_ns = src ? src->ns : NULL,
		.src_labels = src ? &src->labels : NULL, .src_family = c->family,
		.now_s = time(NULL),
	};
	memcpy(r.src_addr, c->addr, sizeof(r.src_addr));
	if (!src && principal[0]) {
		/* the namespace of a verified identity: ".../ns/<ns>/sa/..." */
		const char *p = strstr(principal, "/ns/"), *q = p ? strstr(p + 4, "/sa/") : NULL;

		if (q && (size_t)(q - p - 4) < sizeof(pns)) {
			snprintf(pns, sizeof(pns), "%.*s", (int)(q - p - 4), p + 4);
			r.src_ns = pns;
		}
	}
	if (zm_l7_decide(snap->l7, &r, &d) < 0) {
		res.code = 500;
		res.reason = "engine failure";
		local(rs, 500, "internal error", 14);
		rs->close = true;
		goto done;
	}
	{
		const char *x = req_header(rq, "x-request-id", tmp, sizeof(tmp), &len);

		if (x && len < sizeof(reqid))
			memcpy(reqid, x, len + 1);
		else
			random_id(reqid, 32);
	}
	if (d.delay_ns) {
		struct timespec ts = { d.delay_ns / ZM_NS_PER_S, d.delay_ns % ZM_NS_PER_S };

		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
	}
	snprintf(res.flags, sizeof(res.flags), "%s", d.flags);
	if (d.action == ZM_L7_RESPOND) {
		res.code = d.status;
		res.reason = d.reason;
		local(rs, d.status, zm_buf_data(&d.body) ? zm_buf_data(&d.body) : "", zm_buf_len(&d.body));
		if (zm_buf_len(&d.location))
			hl_add(&rs->h, "location", 8, zm_buf_data(&d.location), zm_buf_len(&d.location));
		if (d.status == 401)
			hl_add(&rs->h, "www-authenticate", 16, "Bearer realm=\"zmesh\"", 20);
		if (d.grpc_status >= 0) {	/* a gRPC fault abort: 200, headers only */
			char gs[12];

			snprintf(gs, sizeof(gs), "%d", d.grpc_status);
			hl_set(&rs->h, "content-type", "application/grpc");
			hl_set(&rs->h, "grpc-status", gs);
			hl_set(&rs->h, "grpc-message", "fault filter abort");
		}
		for (size_t i = 0; i < d.nresp_set; i++)
			hl_set(&rs->h, d.resp_set[i].name, d.resp_set[i].value);
		goto done;
	}
	/* FORWARD: the request as the backend sees it. */
	for (size_t i = 0; i < nf; i++) {
		const struct zm_http_field *f = &rq->f[i];

		if (wp_hop_by_hop(f->name, f->name_len) || (f->name_len == 4 && !memcmp(f->name, "host", 4)))
			continue;
		hl_add(&h, f->name, f->name_len, f->value, f->value_len);
	}
	for (size_t i = 0; i < d.nreq_remove; i++)
		hl_del(&h, d.req_remove[i]);
	for (size_t i = 0; i < d.nreq_set; i++)
		hl_set(&h, d.req_set[i].name, d.req_set[i].value);
	hl_apply(&h, d.req_ops, d.nreq_ops);
	if (!hl_get(&h, "x-forwarded-proto"))
		hl_add(&h, "x-forwarded-proto", 17, c->gw_tls ? "https" : "http", c->gw_tls ? 5 : 4);
	hl_set(&h, "x-request-id", reqid);
	wp_trace_inject(&trc, &h);
	if (zm_l7_admit(snap->l7, &d) < 0) {
		res.code = 503;
		snprintf(res.flags, sizeof(res.flags), "UO");
		res.reason = "upstream connect error or disconnect/reset before headers. reset reason: overflow";
		local(rs, 503, res.reason, strlen(res.reason));
		goto done;
	}
	admitted = true;
	{
		char fip[INET_ADDRSTRLEN] = "";

		if (c->family == AF_INET)
			inet_ntop(AF_INET, c->addr, fip, sizeof(fip));
		wp_hbup_meta(fip, hl_get(&h, "traceparent"));
	}
	{
		struct zm_buf out = { 0 };
		int64_t start = now_ns(), deadline = d.timeout_ns ? start + d.timeout_ns : 0;
		int64_t cto = zm_l7_connect_timeout(snap->l7, &d);
		int64_t max_uses = zm_l7_max_requests_per_connection(snap->l7, &d);
		int skip = -1, tries = 1 + (d.retry_attempts > 0 ? d.retry_attempts : 0);
		bool retrying = false;	/* maxRetries / retryBudget: the next try is a retry */
		enum try_result tr = TRY_CONNECT_FAIL;
		char ct[128];
		size_t ctl;
		const char *pn = d.svc->port_names[d.svc_port_idx];
		/* HTTP/2 upstream for gRPC from an HTTP/2 client, and for ports named
		 * http2/grpc/h2c (Istio's protocol selection). */
		bool h2up = !strncmp(pn, "grpc", 4) || !strncmp(pn, "http2", 5) || !strncmp(pn, "h2c", 3) ||
			    (!strcmp(rq->proto, "HTTP/2") && req_header(rq, "content-type", ct, sizeof(ct), &ctl) &&
			     !strncmp(ct, "application/grpc", 16)) ||
			    zm_l7_upstream_h2(snap->l7, &d, !strcmp(rq->proto, "HTTP/2"));
		/* HTTP/1 upstream framing is ours: the client's length when it said one, else chunked */
		bool chunked = rq->src && rq->src->len < 0;
		struct buf_sink bsink;
		struct xctx xc = { .rs = rs, .d = &d, .l7 = snap->l7, .tries = tries };
		struct zm_l7_conn_times ct_;
		struct wp_xfer x = { .body = &body, .sink = rq->sink, .head = head, .deadline = deadline,
				     .max_uses = max_uses, .ka = zm_l7_tcp_keepalive(snap->l7, &d),
				     .verdict = xfer_verdict, .commit = xfer_commit,
				     .ctx = &xc };

		zm_l7_conn_times(snap->l7, &d, &ct_);
		x.pool_idle_ns = ct_.http_idle_ns;
		x.max_age_ns = ct_.max_age_ns;
		if (!x.sink) {
			buf_sink_init(&bsink, rs);
			x.sink = &bsink.k;
		}
		zm_buf_printf(&out, "%s %s HTTP/1.1\r\nhost: %s\r\n", rq->method, zm_buf_cstr(&d.path),
			      zm_buf_cstr(&d.authority));
		hl_write(&out, &h);
		if (rq->src && rq->src->len >= 0)
			zm_buf_printf(&out, "content-length: %lld\r\n", (long long)rq->src->len);
		else if (chunked)
			zm_buf_puts(&out, "transfer-encoding: chunked\r\n");
		else if (rq->framed_body)
			zm_buf_puts(&out, "content-length: 0\r\n");
		zm_buf_puts(&out, "\r\n");
		for (int t = 0; t < tries; t++) {
			int64_t tnow = now_ns();
			int ep = zm_l7_pick(snap->l7, &d, &r, skip, tnow);

			if (retrying) {
				/* this try is the retry taken below: its outstanding slot goes back after it */
				xc.held = true;
				retrying = false;
			}
			const struct zm_l7_ep *e;
			int st;

			res.attempts = t + 1;
			if (ep < 0) {
				res.code = 503;
				res.ep = NULL;
				snprintf(res.flags, sizeof(res.flags), "UH");
				res.reason = "no healthy upstream";
				break;
			}
			if (t && !wp_body_rewind(&body))
				break;	/* the body is past the replay buffer */
			e = &d.svc->eps[ep];
			res.ep = e;
			snprintf(res.upstream, sizeof(res.upstream), "%s:%d", e->addr, e->tport[d.svc_port_idx]);
			xc.t = t;
			x.status = 0;
			x.try_deadline = d.per_try_ns ? tnow + d.per_try_ns : 0;
			x.hold_grpc = t + 1 < tries && body.replay_ok && (d.retry_on & 0x1f00u);
			wp_trace_try_begin(&trc, &out, &h);
			if (h2up) {
				int64_t tdl = min_dl(deadline, x.try_deadline);
				int ufd = connect_to(e->addr, e->tport[d.svc_port_idx],
						     tdl && tdl < tnow + cto ? tdl : tnow + cto, x.ka);

				tr = ufd < 0 ? (ufd == -ETIMEDOUT && tdl && now_ns() >= tdl ?
						TRY_TIMEOUT : TRY_CONNECT_FAIL) :
				     (enum try_result)wp_h2_upstream(ufd, rq->method, zm_buf_cstr(&d.path),
								     zm_buf_cstr(&d.authority), &h, &x);
				if (ufd >= 0)
					close(ufd);
			} else {
				tr = do_try(c, e->addr, e->tport[d.svc_port_idx], &out, chunked, tnow + cto, &x);
			}
			if (xc.held) {
				zm_l7_retry_end(snap->l7, &d);
				xc.held = false;
			}
			if (xc.slot) {
				/* the verdict took the next retry's slot: it goes back after that try */
				retrying = true;
				xc.slot = false;
			}
			st = tr == TRY_OK ? x.status : 0;
			zm_l7_report(snap->l7, &d, ep, x.aborted ? 0 : st, now_ns());
			wp_trace_try_end(&trc, &d, e->addr, e->tport[d.svc_port_idx], st);
			if (tr == TRY_OK || x.committed) {
				res.code = x.status;
				res.reason = NULL;
			}
			if (x.committed || x.down_fail || (deadline && now_ns() >= deadline))
				break;
			if (t + 1 < tries && (tr == TRY_OK /* dropped for a retry by xfer_verdict */ ||
					      zm_l7_should_retry(&d, st, tr == TRY_CONNECT_FAIL) ||
					      (tr == TRY_REFUSED && (d.retry_on & ZM_RETRY_REFUSED)))) {
				/* Envoy: jittered exponential backoff from the base interval. */
				int64_t b = d.backoff_ns ? d.backoff_ns : 25 * ZM_NS_PER_MS;
				uint32_t rr;
				struct timespec ts;

				/* maxRetries / retryBudget: all outstanding, no retry (a
				 * dropped answer took its slot in xfer_verdict) */
				if (!retrying && !zm_l7_retry_begin(snap->l7, &d)) {
					xc.overflow = true;
					break;
				}
				retrying = true;

				b <<= t < 4 ? t : 4;
				if (getrandom(&rr, sizeof(rr), 0) != sizeof(rr))
					rr = 0;
				b = b / 2 + (int64_t)(rr % (uint32_t)(b / 2 + 1));
				if (deadline && now_ns() + b > deadline)
					b = deadline - now_ns();
				ts = (struct timespec){ b / ZM_NS_PER_S, b % ZM_NS_PER_S };
				if (b > 0)
					nanosleep(&ts, NULL);
				skip = ep;
				continue;
			}
			if (t + 1 >= tries && d.retry_attempts > 0 && tr != TRY_OK &&
			    (zm_l7_should_retry(&d, st, tr == TRY_CONNECT_FAIL) ||
			     (tr == TRY_REFUSED && (d.retry_on & ZM_RETRY_REFUSED))))
				xc.exhausted = true;
			break;
		}
		if (retrying || xc.held)
			zm_l7_retry_end(snap->l7, &d);	/* left the loop before that try ended */
		overflow = xc.overflow;
		exhausted = xc.exhausted;
		zm_buf_free(&out);
		res.resp_bytes = x.resp_bytes;
		if (x.committed) {
			if (x.aborted) {
				/* the head went out, the rest did not: the client sees a reset */
				snprintf(res.flags, sizeof(res.flags), "%s",
					 x.down_fail ? "DC" : tr == TRY_TIMEOUT ? "UT" : "UR");
				res.reason = x.down_fail ? "downstream remote disconnect" :
					     tr == TRY_TIMEOUT ? "upstream response timeout" : "upstream reset after headers";
				rs->close = true;
			}
			goto mirror;
		}
		if (x.down_fail) {
			/* the client went away, or its body broke framing, before an answer */
			res.code = 400;
			snprintf(res.flags, sizeof(res.flags), "DC");
			res.reason = "downstream remote disconnect or bad body";
			local(rs, 400, "bad request", 11);
			rs->close = true;
			goto mirror;
		}
		if (tr == TRY_OK && !x.committed)
			tr = TRY_RESET;	/* every answer was dropped for a retry and none is left: cannot happen */
		switch (!strcmp(res.flags, "UH") ? TRY_OK : tr) {
		case TRY_OK:
			break;
		case TRY_TIMEOUT:
			res.code = 504;
			snprintf(res.flags, sizeof(res.flags), "UT");
			res.reason = "upstream request timeout";
			break;
		case TRY_CONNECT_FAIL:
			res.code = 503;
			snprintf(res.flags, sizeof(res.flags), "UF");
			res.reason = "upstream connect error or disconnect/reset before headers. "
				     "reset reason: connection failure";
			break;
		case TRY_TOO_BIG:
		case TRY_BAD:
			res.code = 502;
			snprintf(res.flags, sizeof(res.flags), "UPE");
			res.reason = "upstream sent a malformed or oversized response";
			break;
		default:
			res.code = 503;
			snprintf(res.flags, sizeof(res.flags), "UC");
			res.reason = "upstream connect error or disconnect/reset before headers. "
				     "reset reason: connection termination";
			break;
		}
		if (!res.reason)
			res.reason = "upstream failure";
		local(rs, res.code, res.reason, strlen(res.reason));
		res.resp_bytes = zm_buf_len(&rs->body);
		for (size_t i = 0; i < d.nresp_set; i++)
			hl_set(&rs->h, d.resp_set[i].name, d.resp_set[i].value);
		goto mirror;
	}
mirror:
	/* Envoy's: UO when the retry breaker (maxRetries, retryBudget) refused
	 * a retry, URX when the last try was retriable but none were left */
	for (int i = 0; i < 2; i++) {
		size_t fl = strlen(res.flags);

		if (i ? exhausted : overflow)
			snprintf(res.flags + fl, sizeof(res.flags) - fl, "%s%s", fl ? "," : "", i ? "URX" : "UO");
	}
	/* a copy of what was buffered: the whole body when it fit the replay buffer */
	for (size_t i = 0; i < d.nmirrors && (!body.src || (body.eof && body.replay_ok)); i++)
		start_mirror(snap, &d, &d.mirrors[i], rq->method, &h, &body.replay);
done:
	if (!rs->streamed && !res.resp_bytes)
		res.resp_bytes = head ? 0 : zm_buf_len(&rs->body);
	rq->bytes_in = body.total;
	if (admitted)
		zm_l7_release(snap->l7, &d);
	log_and_count(c, rq, &d, &res, src, principal[0] ? principal : NULL, t0_ns, t0_wall, reqid);
	wp_trace_end(&trc, &(struct wp_trace_done){
		.method = rq->method, .authority = host, .path = rq->target, .path_len = rq->target_len,
		.proto = rq->proto, .peer = c->peer, .request_id = reqid, .flags = res.flags,
		.user_agent = req_header(rq, "user-agent", tmp, sizeof(tmp), &len), .code = res.code,
		.d = &d, .req_bytes = body.total, .resp_bytes = res.resp_bytes,
		.tls = c->gw_tls });
	hl_free(&h);
	zm_buf_free(&body.replay);
	zm_l7_decision_free(&d);
	wp_snap_put(snap);
}



/* The HTTP/1.1 answer for @rs on @c. 0 or a negative errno. */
static int h1_write(struct conn *c, const struct wp_resp *rs, bool keep)
{
	struct zm_buf o = { 0 };
	int rc;

	zm_buf_printf(&o, "HTTP/1.1 %d %s\r\n", rs->status,
		      rs->status_text && *rs->status_text ? rs->status_text : wp_reason(rs->status));
	hl_write(&o, &rs->h);
	if (!rs->keep_length && rs->status != 204 && rs->status != 304 && rs->status >= 200)
		zm_buf_printf(&o, "content-length: %zu\r\n", zm_buf_len(&rs->body));
	if (!keep)
		zm_buf_puts(&o, "connection: close\r\n");
	zm_buf_puts(&o, "\r\n");
	if (!rs->head)
		zm_buf_append(&o, zm_buf_data(&rs->body), zm_buf_len(&rs->body));
	rc = zm_buf_cstr(&o) ? write_all(c->fd, zm_buf_data(&o), zm_buf_len(&o),
					 now_ns() + 60LL * ZM_NS_PER_S) : -ENOMEM;
	zm_buf_free(&o);
	return rc;
}

/* ---- the HTTP/1.1 front's body source and answer sink ------------------------------- */

struct h1_front {
	struct wp_src src;
	struct wp_sink sink;
	struct conn *c;
	bool http11, chunked, nobody, broken;
	struct zm_buf ob;
	struct hlist tr;		/* the request's chunked trailers, once complete */
	bool tr_built;
};

static const struct hlist *h1_src_trailers(struct wp_src *s)
{
	struct h1_front *f = (struct h1_front *)((char *)s - offsetof(struct h1_front, src));
	struct zm_http_field tf[WP_MAX_HEADERS];
	size_t n;

	if (!f->c->req.complete)
		return NULL;
	if (!f->tr_built) {
		f->tr_built = true;
		n = wp_msg_trailers(&f->c->req, tf, WP_MAX_HEADERS);
		for (size_t i = 0; i < n; i++)
			if (hl_add(&f->tr, tf[i].name, tf[i].name_len, tf[i].value, tf[i].value_len))
				break;
	}
	return &f->tr;
}

/* The request body, parsed out of the client's bytes as the upstream wants them. */
static long h1_src_read(struct wp_src *s, char *buf, size_t n)
{
	struct h1_front *f = (struct h1_front *)((char *)s - offsetof(struct h1_front, src));
	struct conn *c = f->c;

	for (;;) {
		size_t have = zm_buf_len(&c->req.body);
		char *dst;
		ssize_t r;

		if (have) {
			if (have > n)
				have = n;
			memcpy(buf, zm_buf_data(&c->req.body), have);
			zm_buf_consume(&c->req.body, have);
			return (long)have;
		}
		if (c->req.complete)
			return 0;
		if (zm_buf_len(&c->in)) {
			/* at most what one read brought: the parsed body stays small */
			size_t k = zm_buf_len(&c->in) < 16384 ? zm_buf_len(&c->in) : 16384;
			long used = wp_msg_feed(&c->req, zm_buf_data(&c->in), k);

			if (used < 0)
				return -EBADMSG;
			zm_buf_consume(&c->in, (size_t)used);
			continue;
		}
		dst = zm_buf_reserve(&c->in, 16384);
		if (!dst)
			return -ENOMEM;
		r = recv(c->fd, dst, 16384, MSG_DONTWAIT);
		if (r > 0) {
			zm_buf_commit(&c->in, (size_t)r);
			continue;
		}
		if (r == 0)
			return -EPIPE;	/* the client closed in the middle of its body */
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return -EAGAIN;
		return -errno;
	}
}

static int h1_head(struct wp_sink *k, const struct wp_resp *rs, int64_t len)
{
	struct h1_front *f = (struct h1_front *)((char *)k - offsetof(struct h1_front, sink));
	struct zm_buf o = { 0 };
	bool bodyless = rs->status == 204 || rs->status == 304 || rs->status < 200;
	int rc;

	zm_buf_printf(&o, "HTTP/1.1 %d %s\r\n", rs->status,
		      rs->status_text && *rs->status_text ? rs->status_text : wp_reason(rs->status));
	hl_write(&o, &rs->h);
	f->nobody = rs->head || bodyless;
	if (bodyless || rs->keep_length)
		;
	else if (rs->head)
		zm_buf_puts(&o, "content-length: 0\r\n");
	else if (len >= 0)
		zm_buf_printf(&o, "content-length: %lld\r\n", (long long)len);
	else if (f->http11)
		f->chunked = !zm_buf_puts(&o, "transfer-encoding: chunked\r\n");
	else
		f->broken = !zm_buf_puts(&o, "connection: close\r\n");	/* HTTP/1.0: ends with the connection */
	zm_buf_puts(&o, "\r\n");
	rc = zm_buf_cstr(&o) ? write_all(f->c->fd, zm_buf_data(&o), zm_buf_len(&o),
					 now_ns() + 60LL * ZM_NS_PER_S) : -ENOMEM;
	zm_buf_free(&o);
	if (rc)
		f->broken = true;
	return rc;
}

static int h1_data(struct wp_sink *k, const char *d, size_t n, int64_t deadline)
{
	struct h1_front *f = (struct h1_front *)((char *)k - offsetof(struct h1_front, sink));
	int rc;

	if (f->nobody || !n)
		return 0;
	if (!f->chunked) {
		rc = write_all(f->c->fd, d, n, deadline);
	} else {
		zm_buf_reset(&f->ob);
		zm_buf_printf(&f->ob, "%zx\r\n", n);
		zm_buf_append(&f->ob, d, n);
		rc = zm_buf_puts(&f->ob, "\r\n") ? -ENOMEM :
		     write_all(f->c->fd, zm_buf_data(&f->ob), zm_buf_len(&f->ob), deadline);
	}
	if (rc)
		f->broken = true;
	return rc;
}

static int h1_end(struct wp_sink *k, const struct hlist *tr)
{
	struct h1_front *f = (struct h1_front *)((char *)k - offsetof(struct h1_front, sink));
	int rc;

	if (!f->chunked || f->nobody)
		return 0;
	/* trailers (gRPC's grpc-status) as chunked trailer fields */
	zm_buf_reset(&f->ob);
	zm_buf_puts(&f->ob, "0\r\n");
	if (tr)
		hl_write(&f->ob, tr);
	rc = zm_buf_puts(&f->ob, "\r\n") ? -ENOMEM :
	     write_all(f->c->fd, zm_buf_data(&f->ob), zm_buf_len(&f->ob), now_ns() + 60LL * ZM_NS_PER_S);
	if (rc)
		f->broken = true;
	return rc;
}

static void h1_abort(struct wp_sink *k)
{
	struct h1_front *f = (struct h1_front *)((char *)k - offsetof(struct h1_front, sink));

	f->broken = true;	/* a cut answer: only closing the connection tells the client */
}

/* Handle one HTTP/1 request on @c (its head parsed). Returns true to keep the connection. */
static bool handle(struct conn *c, int64_t t0_ns, int64_t t0_wall)
{
	struct wp_msg *req = &c->req;
	struct wp_resp rs;
	struct h1_front f = {
		.src = { .read = h1_src_read, .trailers = h1_src_trailers, .fd = c->fd, .len = -1 },
		.sink = { h1_head, h1_data, h1_end, h1_abort },
		.c = c, .http11 = req->p.http_minor >= 1,
	};
	bool framed = req->p.flags & (F_CONTENT_LENGTH | F_CHUNKED);
	struct wp_req rq = {
		.method = zm_buf_cstr(&req->method),
		.target = zm_buf_data(&req->url), .target_len = zm_buf_len(&req->url),
		.f = req->f, .nf = wp_msg_fields(req),
		.src = framed ? &f.src : NULL, .sink = &f.sink,
		.framed_body = framed,
		.proto = req->p.http_minor ? "HTTP/1.1" : "HTTP/1.0",
	};
	/* An Upgrade (or CONNECT) answered over HTTP/1.1: llhttp stops at the
	 * upgrade, so what follows cannot be read as requests (it was taken as
	 * one more empty request, again and again: a spin on any bytes after
	 * it). Close after the answer. */
	bool keep = llhttp_should_keep_alive(&req->p) && !req->p.upgrade;

	if ((req->p.flags & F_CONTENT_LENGTH) && !(req->p.flags & F_CHUNKED)) {
		char cl[32];
		size_t l;

		if (wp_msg_header(req, "content-length", cl, sizeof(cl), &l))
			f.src.len = strtoll(cl, NULL, 10);
	}
	wp_resp_init(&rs);
	if (!rq.method)
		rq.method = "";
	wp_serve(c, &rq, &rs, t0_ns, t0_wall);
	if (rs.close || f.broken)
		keep = false;
	if (!rs.streamed && h1_write(c, &rs, keep))
		keep = false;
	/* a body the answer did not need: what is already here may be dropped, else close */
	for (size_t drained = 0; keep && !req->complete && drained < WP_RETRY_BUFFER;) {
		char sink[4096];
		long r = h1_src_read(&f.src, sink, sizeof(sink));

		if (r <= 0) {
			if (r < 0)
				keep = false;
			break;
		}
		drained += (size_t)r;
	}
	if (!req->complete)
		keep = false;
	zm_buf_free(&f.ob);
	hl_free(&f.tr);
	wp_resp_free(&rs);
	return keep;
}

static void conn_close(struct conn *c)
{
	for (int i = 0; i < UP_POOL; i++)
		up_close(&c->pool[i]);
	wp_msg_free(&c->req);
	zm_buf_free(&c->in);
	close(c->fd);
	free(c);
	atomic_fetch_sub(&wp_nconns, 1);
}

/* Answer a request that failed to parse (or timed out), then close. */
static void refuse(struct conn *c, int code, const char *why)
{
	struct result res = { .code = code, .reason = why };
	struct zm_l7_decision d;
	struct wp_resp rs;
	struct wp_req rq = {
		.method = zm_buf_cstr(&c->req.method), .target = zm_buf_data(&c->req.url),
		.target_len = zm_buf_len(&c->req.url), .proto = "HTTP/1.1",
	};

	snprintf(res.flags, sizeof(res.flags), "DPE");
	wp_resp_init(&rs);
	local(&rs, code, why, strlen(why));
	h1_write(c, &rs, false);
	res.resp_bytes = zm_buf_len(&rs.body);
	wp_resp_free(&rs);
	zm_l7_decision_init(&d);
	if (!rq.method)
		rq.method = "";
	log_and_count(c, &rq, &d, &res, NULL, NULL, now_ns(), wall_us(), "-");
}

struct conn *wp_conn_new(int fd, const struct sockaddr_storage *ss)
{
	struct conn *c = calloc(1, sizeof(*c));
	int one = 1;

	if (!c)
		return NULL;
	c->fd = fd;
	for (int i = 0; i < UP_POOL; i++)
		c->pool[i].fd = -1;
	zm_sock_addr_str((const struct sockaddr *)ss, c->peer, sizeof(c->peer));
	if (ss->ss_family == AF_INET) {
		c->family = AF_INET;
		memcpy(c->addr, &((const struct sockaddr_in *)ss)->sin_addr, 4);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return c;
}

bool wp_port_is_tcp(const char *vip, int port)
{
	struct wp_snap *s = wp_snap_get();
	const struct zm_l7_svc *sv = s ? zm_l7_svc_by_addr(s->l7, vip) : NULL;
	bool tcp = false;

	for (size_t i = 0; sv && i < sv->nports; i++) {
		const char *n = sv->port_names[i];

		/* Istio's protocol selection by port name: http, http2, grpc, h2c
		 * (alone or as "<proto>-suffix") are HTTP; unnamed ports are taken
		 * as HTTP here (Istio sniffs); any other name is TCP. */
		if (sv->ports[i] != port)
			continue;
		tcp = n[0] && strncmp(n, "http", 4) && strncmp(n, "grpc", 4) && strncmp(n, "h2c", 3);
	}
	wp_snap_put(s);
	return tcp;
}

enum relay_end { RELAY_CLOSED, RELAY_IDLE, RELAY_AGED };

/*
 * Relay bytes both ways until both sides closed, nothing moved either way
 * for @idle_ns (0: no limit) or @end (0: none) passed; counts the bytes
 * in each direction.
 */
static enum relay_end relay(int a, int b, int64_t idle_ns, int64_t end, uint64_t *a2b, uint64_t *b2a)
{
	char buf[65536];
	bool a_open = true, b_open = true;
	int64_t last = now_ns();

	while (a_open || b_open) {
		struct pollfd pf[2] = { { .fd = a_open ? a : -1, .events = POLLIN },
					{ .fd = b_open ? b : -1, .events = POLLIN } };
		int64_t dl = min_dl(idle_ns ? last + idle_ns : 0, end);
		int pr = poll(pf, 2, ms_left(dl));

		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0)
			return RELAY_CLOSED;
		if (pr == 0) {
			if (end && now_ns() + ZM_NS_PER_MS >= end)
				return RELAY_AGED;
			if (idle_ns && now_ns() + ZM_NS_PER_MS >= last + idle_ns)
				return RELAY_IDLE;
			continue;
		}
		for (int i = 0; i < 2; i++) {
			int from = i ? b : a, to = i ? a : b;
			bool *open = i ? &b_open : &a_open;
			ssize_t r;

			if (!pf[i].revents)
				continue;
			r = recv(from, buf, sizeof(buf), MSG_DONTWAIT);
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (r <= 0) {
				*open = false;
				shutdown(to, SHUT_WR);
				if (r < 0)
					return RELAY_CLOSED;
				continue;
			}
			if (write_all(to, buf, (size_t)r, now_ns() + 30LL * ZM_NS_PER_S))
				return RELAY_CLOSED;
			last = now_ns();
			*(i ? b2a : a2b) += (uint64_t)r;
		}
	}
	return RELAY_CLOSED;
}

/* A TCP stream over HBONE: tcp[] routes, L4 policy, relay. */
static void serve_tcp(struct conn *c)
{
	struct wp_snap *snap = wp_snap_get();
	struct zm_l7_decision d;
	struct zm_l7_request r = { .method = "", .scheme = "tcp", .authority = "",
				   .src_principal = c->principal[0] ? c->principal : NULL,
				   .src_family = c->family };
	struct result res = { .code = 0 };
	struct wp_req rq = { .method = "-", .target = "", .target_len = 0, .proto = "TCP",
			     .authority = c->gw_port ? c->gw_sni : c->tcp_vip };
	int64_t t0 = now_ns(), t0w = wall_us();
	uint64_t up = 0, down = 0;
	int ep = -1;

	zm_l7_decision_init(&d);
	memcpy(r.src_addr, c->addr, sizeof(r.src_addr));
	if (!snap)
		goto out;
	if ((c->gw_port ? zm_l7_decide_gateway_l4(snap->l7, &r, c->gw_sni, c->gw_port, &d)
			: zm_l7_decide_tcp(snap->l7, &r, zm_l7_svc_by_addr(snap->l7, c->tcp_vip), c->tcp_port,
					   &d)) < 0 ||
	    d.action != ZM_L7_FORWARD) {
		res.code = d.status;
		res.reason = d.reason;
		snprintf(res.flags, sizeof(res.flags), "%s", d.flags[0] ? d.flags : "NR");
		goto out;
	}
	ep = zm_l7_pick(snap->l7, &d, &r, -1, now_ns());
	if (ep < 0) {
		snprintf(res.flags, sizeof(res.flags), "UH");
		res.reason = "no healthy upstream";
		goto out;
	}
	{
		const struct zm_l7_ep *e = &d.svc->eps[ep];
		char fip[INET_ADDRSTRLEN] = "";
		int fd;

		if (c->family == AF_INET)
			inet_ntop(AF_INET, c->addr, fip, sizeof(fip));
		wp_hbup_meta(fip, NULL);
		fd = connect_to(e->addr, e->tport[d.svc_port_idx], now_ns() + zm_l7_connect_timeout(snap->l7, &d),
				zm_l7_tcp_keepalive(snap->l7, &d));

		res.ep = e;
		snprintf(res.upstream, sizeof(res.upstream), "%s:%d", e->addr, e->tport[d.svc_port_idx]);
		if (fd < 0) {
			snprintf(res.flags, sizeof(res.flags), "UF");
			res.reason = "upstream connect failure";
			zm_l7_report(snap->l7, &d, ep, 0, now_ns());
			goto out;
		}
		{
			/* DestinationRule tcp.idleTimeout (else --idle-timeout) and
			 * tcp.maxConnectionDuration: the stream is cut, as Envoy's tcp_proxy does */
			struct zm_l7_conn_times ct;
			int64_t idle, t1 = now_ns();
			enum relay_end why;

			zm_l7_conn_times(snap->l7, &d, &ct);
			idle = ct.tcp_idle_ns >= 0 ? ct.tcp_idle_ns : (int64_t)wp_options->idle_timeout_ms * 1000000;
			why = relay(c->fd, fd, idle, ct.max_age_ns ? t1 + ct.max_age_ns : 0, &up, &down);
			if (why != RELAY_CLOSED) {
				snprintf(res.flags, sizeof(res.flags), "%s", why == RELAY_IDLE ? "SI" : "UMSDR");
				res.reason = why == RELAY_IDLE ? "tcp idle timeout" : "max connection duration reached";
			}
		}
		close(fd);
		zm_l7_report(snap->l7, &d, ep, 200, now_ns());
	}
out:
	/* one access-log line per connection; bytes as received / sent to the client */
	res.resp_bytes = down;
	rq.bytes_in = up;
	log_and_count(c, &rq, &d, &res, NULL, c->principal[0] ? c->principal : NULL, t0, t0w, "-");
	zm_l7_decision_free(&d);
	wp_snap_put(snap);
}

/* Does @s (a comma-separated field value) list @tok? */
static bool has_token(const char *s, size_t len, const char *tok)
{
	size_t tl = strlen(tok);

	for (size_t i = 0; i < len;) {
		size_t j = i, e;

		while (j < len && s[j] != ',')
			j++;
		while (i < j && (s[i] == ' ' || s[i] == '\t'))
			i++;
		e = j;
		while (e > i && (s[e - 1] == ' ' || s[e - 1] == '\t'))
			e--;
		if (e - i == tl && !strncasecmp(s + i, tok, tl))
			return true;
		i = j + 1;
	}
	return false;
}

/*
 * RFC 7540 3.2: a first request on a plain connection asking `Upgrade: h2c`
 * with HTTP2-Settings and no body gets `101 Switching Protocols` and the
 * connection turns HTTP/2 (the request itself is stream 1). Anything else
 * (a body, TLS, bad settings) is served as HTTP/1.1: a server may ignore
 * Upgrade. True when the connection was served as HTTP/2.
 */
static bool h2c_upgrade(struct conn *c)
{
	static const char sw[] = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
	char up[256], hs[512], cl[32], te[64], conn[256];
	unsigned char settings[384], b64[512];
	size_t ul, hl, l, pad;
	int sl;
	const char *u, *h, *k;

	if (c->gw_tls || !c->req.complete)
		return false;
	u = wp_msg_header(&c->req, "upgrade", up, sizeof(up), &ul);
	h = wp_msg_header(&c->req, "http2-settings", hs, sizeof(hs), &hl);
	k = wp_msg_header(&c->req, "connection", conn, sizeof(conn), &l);
	if (!u || !h || !k || !has_token(u, ul, "h2c") || !has_token(k, l, "upgrade") ||
	    !has_token(k, l, "http2-settings"))
		return false;
	if (wp_msg_header(&c->req, "transfer-encoding", te, sizeof(te), &l) ||
	    ((k = wp_msg_header(&c->req, "content-length", cl, sizeof(cl), &l)) && strtoll(k, NULL, 10) != 0))
		return false;
	/* base64url (RFC 7540 3.2.1): OpenSSL's base64 after mapping the alphabet */
	while (hl && h[hl - 1] == '=')
		hl--;
	if (hl > 500)
		return false;
	for (l = 0; l < hl; l++)
		b64[l] = h[l] == '-' ? '+' : h[l] == '_' ? '/' : h[l];
	for (pad = 0; (l + pad) % 4; pad++)
		b64[l + pad] = '=';
	sl = EVP_DecodeBlock(settings, (const unsigned char *)b64, (int)(l + pad));
	if (sl < 0 || (sl -= pad) % 6)
		return false;
	if (write_all(c->fd, sw, sizeof(sw) - 1, now_ns() + ZM_NS_PER_S) < 0)
		return true;	/* the client is gone: nothing to serve */
	wp_h2_serve_upgrade(c, &c->req, settings, (size_t)sl);
	return true;
}

void *wp_conn_thread(void *arg)
{
	struct conn *c = arg;

	if (c->tcp) {
		serve_tcp(c);
		conn_close(c);
		return NULL;
	}

	wp_msg_init(&c->req, HTTP_REQUEST, SIZE_MAX);
	for (;;) {
		int64_t idle_deadline = now_ns() + (int64_t)wp_options->idle_timeout_ms * 1000000;
		int64_t hdr_deadline = 0, t0 = 0, t0_wall = 0;

		wp_msg_reset(&c->req);
		for (;;) {
			long used, r;
			int64_t dl, pool_next = 0;

			if (zm_buf_len(&c->in) && !c->nreq && !t0) {
				/* HTTP/2 with prior knowledge starts with the client preface. */
				static const char pri[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
				size_t have = zm_buf_len(&c->in), k = have < 24 ? have : 24;

				if (!memcmp(zm_buf_data(&c->in), pri, k)) {
					if (have >= 24) {
						wp_h2_serve(c);
						goto out;
					}
					goto more;
				}
			}
			if (zm_buf_len(&c->in)) {
				if (!t0) {
					t0 = now_ns();
					t0_wall = wall_us();
					hdr_deadline = t0 + (int64_t)wp_options->header_timeout_ms * 1000000;
				}
				used = wp_msg_feed(&c->req, zm_buf_data(&c->in), zm_buf_len(&c->in));
				if (used < 0) {
					refuse(c, c->req.too_big ? 431 : c->req.body_too_big ? 413 : 400,
					       c->req.too_big ? "request header fields too large" :
					       c->req.body_too_big ? "payload too large" : "bad request");
					goto out;
				}
				zm_buf_consume(&c->in, (size_t)used);
				if (c->req.complete)
					break;
				if (c->req.headers_done) {
					/* the body streams while the request is served */
					char tmp[64];
					size_t l;
					const char *e = wp_msg_header(&c->req, "expect", tmp, sizeof(tmp), &l);

					if (e && !strcasecmp(e, "100-continue"))
						write_all(c->fd, "HTTP/1.1 100 Continue\r\n\r\n", 25,
							  now_ns() + ZM_NS_PER_S);
					break;
				}
			}
more:
			dl = !t0 ? idle_deadline : hdr_deadline;
			if (!t0 && (pool_next = wp_up_sweep(c->pool, NULL)) && pool_next < dl)
				dl = pool_next;	/* wake to close pooled connections as they expire */
			r = read_some(c->fd, &c->in, dl);
			if (r == -ETIMEDOUT && t0) {
				refuse(c, 408, "request timeout");
				goto out;
			}
			if (r == -ETIMEDOUT && dl == pool_next && now_ns() < idle_deadline)
				goto more;
			if (r <= 0)
				goto out;
		}
		if (!c->nreq && h2c_upgrade(c))
			goto out;
		c->nreq++;
		if (!handle(c, t0, t0_wall))
			break;
	}
out:
	conn_close(c);
	return NULL;
}
