// SPDX-License-Identifier: Apache-2.0
/*
 * HBONE in ztunnel: pooled mutual-TLS HTTP/2 connections (struct hconn), each
 * carrying up to ZM_HBONE_MAX_STREAMS CONNECT streams (struct stream), each
 * stream joined to one plain socket (the app's side).
 *
 * Client connections are pooled per (source pod, destination pod address,
 * destination identity): the tunnel socket is made in the source pod's netns
 * and presents that pod's certificate, so two source pods never share one.
 * A connection made with an older certificate generation drains: it finishes
 * its streams and takes no new ones. Idle connections (no stream) close after
 * --pool-idle (clients) or a minute more (servers, so the client closes first).
 *
 * Every stream has its own back-pressure: when zm_hbone_send() says -ENOBUFS
 * the stream keeps the bytes aside and stops reading its plain socket until
 * the library took them (retried after every turn of the connection); a slow
 * app only grows its own stream's buffer towards the cap, which resets that
 * stream alone. A stream's end never closes its connection; a connection
 * error resets every stream on it.
 *
 * The library's callbacks only record what happened and mark the stream;
 * streams are stepped and freed outside them (conn_run).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "ztunnel.h"
#include "zmesh/buf.h"
#include "zmesh/hbone.h"
#include "zmesh/netns.h"
#include "zmesh/tls.h"

/* HTTP/2 flow control bounds what a stream can have in flight to its app
 * (the 1 MiB stream window, ZM_HBONE_MANUAL_WINDOW: credit goes back only
 * as the app reads); this cap only catches a peer that ignores windows. */
#define TO_PLAIN_MAX (4u << 20)
#define SERVER_IDLE_EXTRA_MS 60000	/* servers wait longer than clients: the client closes first */
#define HANDSHAKE_MS 10000		/* TCP + TLS + HTTP/2 setup, either role */

struct hconn;

struct stream {
	struct zt_ev ev;	/* the plain socket (side 0) */
	uint32_t want;
	bool reg;		/* in the epoll set */
	struct hconn *c;
	int32_t sid;		/* -1: not opened yet (client waiting for its connection) */
	bool plain_connecting;	/* server: connecting to the app */
	bool stream_ok;		/* answered 200 */
	bool plain_eof, end_sent, peer_end, plain_shut;
	bool stream_closed, peer_reset;
	bool hup;		/* the plain socket is shut both ways: out of epoll */
	bool kick;		/* something happened: step it */
	struct zm_buf to_plain, stash;
	char authority[64];
	struct zt_series *ser;
	struct zt_conn_info info;
	bool dead;
	struct stream *next;	/* on its connection */
	struct stream *next_dead;
};

struct hconn {
	struct zt_ev ev;	/* the tunnel socket (side 1) */
	uint32_t want;
	struct zt *z;
	struct zt_worker *w;	/* the worker whose pool it is in */
	struct zt_pod *pod;	/* client: the source pod; server: the destination pod; NULL: gone */
	struct zm_hbone *hb;
	bool server;
	bool tcp_connecting;
	bool ready;		/* client: the peer's identity checked; server: h2 up */
	bool draining;		/* takes no new stream */
	bool broken;		/* the library failed: close after this turn */
	unsigned gen;		/* the owner pod's certificate generation it was made with */
	struct in_addr dst;	/* client: the destination pod */
	struct zm_spiffe_id want_id;
	char want_str[ZM_SPIFFE_MAX];
	char peer_str[ZM_SPIFFE_MAX];	/* server: the verified peer (spiffe://...), "" unknown */
	struct in_addr peer_addr;
	struct stream *streams;
	int nstreams;
	struct timespec idle_since, born;
	bool dead;
	struct hconn *next;	/* all connections */
	struct hconn *next_dead;
};

/* Each worker has its own pool (w->conns) and graveyards: shared nothing. */
static uint64_t nflooded;	/* connections sent GOAWAY for rapid reset (zt_count) */

static int64_t ms_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)(now.tv_sec - t->tv_sec) * 1000 + (now.tv_nsec - t->tv_nsec) / 1000000;
}

static void set_ev(struct zt_worker *w, struct zt_ev *e, uint32_t *cur, bool *reg, uint32_t want)
{
	if (e->fd < 0 || (*reg && *cur == want))
		return;
	(*reg ? zm_loop_mod : zm_loop_add)(w->loop, e->fd, want, e);
	*cur = want;
	*reg = true;
}

static struct stream *stream_find(struct hconn *c, int32_t id)
{
	for (struct stream *s = c->streams; s; s = s->next)
		if (s->sid == id)
			return s;
	return NULL;
}

static void conn_close(struct hconn *c, bool reset);

/* Unlink and close @s; @reset: the app sees a reset, the peer a RST_STREAM. */
static void stream_free(struct stream *s, bool reset)
{
	struct hconn *c = s->c;
	struct zt_worker *w = c->w;

	if (s->dead)
		return;
	if (s->ev.fd >= 0) {
		if (reset) {
			struct linger lg = { 1, 0 };

			setsockopt(s->ev.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		}
		if (s->reg)
			zm_loop_del(w->loop, s->ev.fd);
		close(s->ev.fd);
		s->ev.fd = -1;
	}
	if (reset && s->sid >= 0 && !s->stream_closed && c->hb && zm_hbone_reset(c->hb, s->sid))
		c->broken = true;
	if (s->ser) {
		zt_series_count(s->ser, 0, 1, 0, 0);
		zt_access_log(s->ser, &s->info, "HBONE", reset ? "reset" : "ok");
	}
	zt_bump(w->closed, 1);
	zm_buf_free(&s->to_plain);
	zm_buf_free(&s->stash);
	for (struct stream **p = &c->streams; *p; p = &(*p)->next)
		if (*p == s) {
			*p = s->next;
			break;
		}
	if (--c->nstreams == 0)
		clock_gettime(CLOCK_MONOTONIC, &c->idle_since);
	s->dead = true;
	s->next_dead = w->stream_graveyard;
	w->stream_graveyard = s;
}

static struct stream *stream_new(struct hconn *c, int fd)
{
	struct stream *s = calloc(1, sizeof(*s));
	int one = 1;

	if (!s)
		return NULL;
	s->c = c;
	s->sid = -1;
	s->ev = (struct zt_ev){ .kind = ZT_TUN, .fd = fd, .owner = s, .side = 0 };
	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	clock_gettime(CLOCK_MONOTONIC, &s->info.start);
	s->next = c->streams;
	c->streams = s;
	c->nstreams++;
	zt_bump(c->w->opened, 1);
	zt_bump(c->w->hstreams[c->server], 1);
	return s;
}

/* ---- the library's callbacks: record, mark, never free ---- */

static void cb_data(void *ud, struct zm_hbone *h, int32_t id, const uint8_t *d, size_t n)
{
	struct hconn *c = ud;
	struct stream *s = stream_find(c, id);

	(void)h;
	if (!s)
		return;	/* a stream we already closed */
	if (s->ser)
		zt_series_count(s->ser, 0, 0, c->server ? n : 0, c->server ? 0 : n);
	*(c->server ? &s->info.sent : &s->info.received) += n;
	if (zm_buf_append(&s->to_plain, d, n))
		s->peer_reset = true;	/* no memory: give this stream up */
	s->kick = true;
}

static void cb_end(void *ud, struct zm_hbone *h, int32_t id)
{
	struct stream *s = stream_find(ud, id);

	(void)h;
	if (s) {
		s->peer_end = true;
		s->kick = true;
	}
}

static void cb_close(void *ud, struct zm_hbone *h, int32_t id, uint32_t err)
{
	struct stream *s = stream_find(ud, id);

	(void)h;
	if (!s)
		return;
	s->stream_closed = true;
	if (err)
		s->peer_reset = true;	/* a reset crosses as a reset */
	s->kick = true;
}

static void cb_response(void *ud, struct zm_hbone *h, int32_t id, int status)
{
	struct stream *s = stream_find(ud, id);

	(void)h;
	if (!s)
		return;
	s->stream_ok = status == 200;
	s->kick = true;
	if (!s->stream_ok)
		zm_log_info("HBONE CONNECT %s refused: %d", s->authority, status);
}

/* Server: the verified peer, once per connection (the handshake is done by
 * the time a CONNECT arrives). */
static const char *conn_peer(struct hconn *c)
{
	struct zm_spiffe_id peer;

	if (!c->peer_str[0] && zm_tls_peer_id(zm_hbone_ssl(c->hb), &peer) == 0 &&
	    zm_spiffe_format(&peer, c->peer_str, sizeof(c->peer_str)))
		c->peer_str[0] = 0;
	return c->peer_str[0] ? c->peer_str : NULL;
}

/* Server: a CONNECT. The target must be this pod, the policy must allow the
 * verified peer; then connect to the app and answer when that is done. */
static int cb_connect(void *ud, struct zm_hbone *h, int32_t id, const char *auth,
		      const struct zm_hbone_hdr *hd, size_t n)
{
	struct hconn *c = ud;
	struct zt_pod *p = c->pod;
	struct sockaddr_in dst = { .sin_family = AF_INET };
	char ip[64], *colon, desc[96], dp[ZM_SPIFFE_MAX];
	const char *peer, *principal = NULL, *swl = "unknown", *sns = "unknown";
	const struct zm_lab_pod *src;
	struct stream *s;
	int port, fd;

	(void)h;
	if (!p || c->draining)
		return 503;	/* the pod left the mesh */
	snprintf(ip, sizeof(ip), "%s", auth);
	colon = strrchr(ip, ':');
	if (!colon) {
		zt_count(c->z->st.refused);
		return 400;
	}
	*colon = 0;
	port = atoi(colon + 1);
	if (inet_pton(AF_INET, ip, &dst.sin_addr) != 1 || port <= 0 || port > 65535 ||
	    dst.sin_addr.s_addr != p->ip.s_addr) {
		zm_log_warn("pod %s: CONNECT to %s refused: not this pod", p->id, auth);
		zt_count(c->z->st.refused);
		return 400;
	}
	dst.sin_port = htons((uint16_t)port);
	/* Policy per stream on the verified peer identity (Istio's principal
	 * form, without "spiffe://") and the address it connected from. */
	peer = conn_peer(c);
	if (peer && !strncmp(peer, "spiffe://", 9))
		principal = peer + 9;
	snprintf(desc, sizeof(desc), "HBONE CONNECT %s", auth);
	if (!principal || !zt_policy_check(c->z, p, principal, c->peer_addr, (uint16_t)port, desc))
		return 403;
	fd = zt_pod_socket(p);
	if (fd < 0)
		return 503;
	s = stream_new(c, fd);
	if (!s) {
		close(fd);
		return 503;
	}
	s->sid = id;
	snprintf(s->authority, sizeof(s->authority), "%s", auth);
	/* Metrics: the peer's verified identity, its workload by address. */
	src = zt_pod_by_ip(c->z, c->peer_addr);
	if (src) {
		const char *app = zm_labels_get(&src->labels, "app");

		swl = app ? app : src->name;
		sns = src->ns;
	}
	zm_spiffe_format(&p->id_spiffe, dp, sizeof(dp));
	snprintf(s->info.src, sizeof(s->info.src), "%s", inet_ntoa(c->peer_addr));
	snprintf(s->info.dst, sizeof(s->info.dst), "%s", auth);
	for (size_t i = 0; i < n; i++)
		if (!strcmp(hd[i].name, "traceparent") && strlen(hd[i].value) < sizeof(s->info.trace))
			snprintf(s->info.trace, sizeof(s->info.trace), "%s", hd[i].value);
	s->ser = zt_series_get("destination", swl, sns, p->workload, p->ns, true, peer, dp);
	zt_series_count(s->ser, 1, 0, 0, 0);
	if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0 && errno != EINPROGRESS) {
		zt_count(c->z->st.refused);
		s->sid = -1;	/* answered by our return value */
		stream_free(s, false);
		return 503;
	}
	s->plain_connecting = true;
	set_ev(c->w, &s->ev, &s->want, &s->reg, EPOLLOUT);
	return 0;	/* answered when the connect completes */
}

static const struct zm_hbone_cbs cbs = { cb_connect, cb_response, cb_data, cb_end, cb_close };

/* ---- streams ---- */

static void stream_arm(struct stream *s)
{
	struct zt_worker *w = s->c->w;
	uint32_t want = 0;

	if (s->ev.fd < 0)
		return;
	if (s->hup) {
		if (s->reg) {
			zm_loop_del(w->loop, s->ev.fd);
			s->reg = false;
		}
		return;
	}
	if (s->plain_connecting)
		want = EPOLLOUT;
	else if (s->sid >= 0 && s->stream_ok)
		want = (!s->plain_eof && !zm_buf_len(&s->stash) ? EPOLLIN : 0) |
		       (zm_buf_len(&s->to_plain) ? EPOLLOUT : 0);
	/* Waiting (no events asked): epoll still reports an error or hang-up. */
	set_ev(w, &s->ev, &s->want, &s->reg, want);
}

/* Client: CONNECT for a stream whose connection is ready. */
static int stream_open(struct stream *s)
{
	struct hconn *c = s->c;
	struct zt_pod *p = c->pod;
	struct zm_hbone_hdr hdrs[3];
	char bag[256], fwd[64], tp[64];
	unsigned char id[24];

	if (!p || zm_hbone_capacity(c->hb) <= 0)
		return -EAGAIN;
	/* W3C trace context for the tunnel (DESIGN.md step 6): a trace and
	 * span of its own per stream, not sampled (no tracer here decides). */
	if (RAND_bytes(id, sizeof(id)) != 1)
		return -EIO;
	id[0] |= 1;	/* all-zero ids are invalid */
	id[16] |= 1;
	memcpy(tp, "00-", 3);
	for (size_t i = 0; i < sizeof(id); i++)
		snprintf(tp + 3 + 2 * i + (i >= 16), 3, "%02x", id[i]);
	tp[3 + 32] = '-';
	memcpy(tp + 3 + 32 + 1 + 16, "-00", 4);
	snprintf(s->info.trace, sizeof(s->info.trace), "%s", tp);
	snprintf(bag, sizeof(bag), "k8s.namespace.name=%s,k8s.pod.name=%s,service.name=%s", p->ns, p->name,
		 p->workload);
	snprintf(fwd, sizeof(fwd), "for=%s", inet_ntoa(p->ip));
	hdrs[0] = (struct zm_hbone_hdr){ "baggage", bag };
	hdrs[1] = (struct zm_hbone_hdr){ "forwarded", fwd };
	hdrs[2] = (struct zm_hbone_hdr){ "traceparent", tp };
	return zm_hbone_open(c->hb, s->authority, hdrs, 3, &s->sid);
}

static int hbone_err(struct hconn *c, int rc)
{
	if (rc == -EPROTO || rc == -ENOMEM || rc == -EIO)
		c->broken = true;
	return -1;
}

/* Move what can move for one stream; 1: finished, -1: reset. */
static int stream_step(struct stream *s)
{
	struct hconn *c = s->c;
	bool server = c->server;
	char buf[65536];

	if (s->peer_reset)
		return -1;
	if (s->plain_connecting || s->sid < 0)
		return 0;
	if (!s->stream_ok)
		return s->stream_closed ? -1 : 0;	/* refused: the app sees a reset */
	/* Plain -> stream. */
	if (zm_buf_len(&s->stash)) {
		int rc = zm_hbone_send(c->hb, s->sid, zm_buf_data(&s->stash), zm_buf_len(&s->stash));

		if (rc == 0)
			zm_buf_reset(&s->stash);
		else if (rc != -ENOBUFS)
			return hbone_err(c, rc);
	}
	while (!zm_buf_len(&s->stash) && !s->plain_eof && !s->hup) {
		ssize_t r = recv(s->ev.fd, buf, sizeof(buf), 0);
		int rc;

		if (r > 0) {
			if (s->ser)
				zt_series_count(s->ser, 0, 0, server ? 0 : (uint64_t)r, server ? (uint64_t)r : 0);
			*(server ? &s->info.received : &s->info.sent) += (uint64_t)r;
			rc = zm_hbone_send(c->hb, s->sid, buf, (size_t)r);
			if (rc == -ENOBUFS) {
				if (zm_buf_append(&s->stash, buf, (size_t)r))
					return -1;
			} else if (rc) {
				return hbone_err(c, rc);
			}
			continue;
		}
		if (r == 0) {
			s->plain_eof = true;
			break;
		}
		if (errno != EAGAIN && errno != EINTR)
			return -1;	/* reset by the app: reset the stream too */
		break;
	}
	if (s->plain_eof && !zm_buf_len(&s->stash) && !s->end_sent) {
		int rc = zm_hbone_end(c->hb, s->sid);

		if (rc && rc != -EINVAL)
			return hbone_err(c, rc);
		s->end_sent = true;
	}
	/* Stream -> plain. */
	while (zm_buf_len(&s->to_plain)) {
		ssize_t w = send(s->ev.fd, zm_buf_data(&s->to_plain), zm_buf_len(&s->to_plain), MSG_NOSIGNAL);

		if (w > 0) {
			int rc;

			zm_buf_consume(&s->to_plain, (size_t)w);
			/* The app took them: the peer may send as much again. */
			rc = zm_hbone_consume(c->hb, s->sid, (size_t)w);
			if (rc)
				return hbone_err(c, rc);
			continue;
		}
		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		return -1;
	}
	if (zm_buf_len(&s->to_plain) > TO_PLAIN_MAX) {
		zm_log_warn("HBONE stream %s: the app does not read: reset", s->authority);
		return -1;
	}
	if (s->peer_end && !zm_buf_len(&s->to_plain) && !s->plain_shut) {
		shutdown(s->ev.fd, SHUT_WR);
		s->plain_shut = true;
	}
	if (s->plain_shut && s->end_sent && !zm_buf_len(&s->to_plain))
		return 1;
	return 0;
}

/* ---- connections ---- */

static void conn_arm(struct hconn *c)
{
	const void *out;
	uint32_t want;

	if (c->ev.fd < 0)
		return;
	want = c->tcp_connecting ? EPOLLOUT : EPOLLIN | (zm_hbone_output(c->hb, &out) ? EPOLLOUT : 0);
	if (c->want == want)
		return;
	(c->want ? zm_loop_mod : zm_loop_add)(c->w->loop, c->ev.fd, want, &c->ev);
	c->want = want;
}

/* Close @c (@reset: with a TCP reset, for a broken one); its streams are
 * reset, except ones that only had to flush what they already received and
 * the peer ended cleanly. */
static void conn_close(struct hconn *c, bool reset)
{
	struct zt_worker *w = c->w;

	if (c->dead)
		return;
	while (c->streams) {
		struct stream *s = c->streams;
		bool clean = s->stream_ok && s->peer_end && !s->peer_reset && s->end_sent &&
			     !zm_buf_len(&s->stash);

		if (clean && s->ev.fd >= 0) {
			/* What is left goes out best effort (a non-blocking send). */
			if (zm_buf_len(&s->to_plain) &&
			    send(s->ev.fd, zm_buf_data(&s->to_plain), zm_buf_len(&s->to_plain),
				 MSG_NOSIGNAL) != (ssize_t)zm_buf_len(&s->to_plain))
				clean = false;
			else if (!s->plain_shut)
				shutdown(s->ev.fd, SHUT_WR);
		}
		s->stream_closed = true;	/* no RST_STREAM on a connection going away */
		stream_free(s, !clean);
	}
	if (c->ev.fd >= 0) {
		if (reset) {
			struct linger lg = { 1, 0 };

			setsockopt(c->ev.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		}
		if (c->want)
			zm_loop_del(w->loop, c->ev.fd);
		close(c->ev.fd);
		c->ev.fd = -1;
	}
	zm_hbone_free(c->hb);
	c->hb = NULL;
	for (struct hconn **p = &w->conns; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	zt_bump(w->hconns[c->server], (uint64_t)-1);
	c->dead = true;
	c->next_dead = w->conn_graveyard;
	w->conn_graveyard = c;
}

/* Ciphertext out; -1: the socket failed. */
static int conn_flush(struct hconn *c)
{
	const void *out;
	size_t n;

	if (c->tcp_connecting)
		return 0;
	while ((n = zm_hbone_output(c->hb, &out)) > 0) {
		ssize_t w = send(c->ev.fd, out, n, MSG_NOSIGNAL);

		if (w > 0) {
			zm_hbone_consumed(c->hb, (size_t)w);
			continue;
		}
		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		return -1;
	}
	return 0;
}

/* Client: the handshake finished: is it who we wanted? Then CONNECT for
 * every waiting stream. A wrong peer fails them all (their apps see a reset). */
static int conn_became_ready(struct hconn *c)
{
	struct zm_error e = { 0 };

	if (zm_tls_check_peer(zm_hbone_ssl(c->hb), &c->want_id, &e)) {
		zm_log_warn("pod %s: %s", c->pod ? c->pod->id : "?", e.msg);
		return -1;
	}
	c->ready = true;
	for (struct stream *s = c->streams, *next; s; s = next) {
		next = s->next;
		if (s->sid >= 0)
			continue;
		if (stream_open(s))
			stream_free(s, true);	/* no room: this one fails alone */
	}
	return 0;
}

/* After anything happened on @c or one of its streams: step the streams that
 * were marked and the ones waiting for room, send the ciphertext, re-arm. */
static void conn_run(struct hconn *c)
{
	for (int round = 0; round < 4 && !c->dead; round++) {
		bool again = false;

		for (struct stream *s = c->streams, *next; s; s = next) {
			bool blocked = zm_buf_len(&s->stash) != 0;
			int rc;

			next = s->next;
			if (!s->kick && !blocked)
				continue;
			s->kick = false;
			rc = stream_step(s);
			if (rc) {
				stream_free(s, rc < 0);
				continue;
			}
			if (blocked && !zm_buf_len(&s->stash))
				again = true;	/* it moved: the library may have pulled others' bytes */
			stream_arm(s);
		}
		/* A step can close another stream (nghttp2 calls on_close while
		 * sending): one already passed in this round gets its turn. */
		for (struct stream *s = c->streams; s && !again; s = s->next)
			again = s->kick;
		if (c->broken || conn_flush(c)) {
			conn_close(c, true);
			return;
		}
		if (!again)
			break;
	}
	if (c->dead)
		return;
	if (!c->nstreams && c->draining) {
		conn_close(c, false);
		return;
	}
	conn_arm(c);
}

static void conn_input(struct hconn *c)
{
	char buf[65536];

	for (int i = 0; i < 16; i++) {
		ssize_t r = recv(c->ev.fd, buf, sizeof(buf), 0);

		if (r > 0) {
			if (zm_hbone_input(c->hb, buf, (size_t)r)) {
				if (zm_hbone_flooded(c->hb)) {
					zt_count(nflooded);
					zm_log_warn("HBONE connection from %s: too many streams reset before "
						    "their answer (rapid reset): GOAWAY", conn_peer(c) ?: "?");
				}
				c->broken = true;
				return;
			}
			continue;
		}
		if (r == 0 || (errno != EAGAIN && errno != EINTR))
			c->broken = true;
		break;
	}
	if (!c->server && !c->ready && zm_hbone_ready(c->hb) && conn_became_ready(c))
		c->broken = true;
	if (c->server && !c->ready && zm_hbone_ready(c->hb))
		c->ready = true;
}

static struct hconn *conn_new(struct zt_worker *w, struct zt_pod *p, bool server, int fd)
{
	struct hconn *c = calloc(1, sizeof(*c));
	SSL_CTX *ctx = zt_pod_ctx(p, server);
	int one = 1, rc;

	if (!c || !ctx) {
		free(c);
		SSL_CTX_free(ctx);
		return NULL;
	}
	/* The SSL keeps its own reference to this generation. */
	rc = zm_hbone_new_ex(ctx, server, ZM_HBONE_MANUAL_WINDOW, &cbs, c, &c->hb);
	SSL_CTX_free(ctx);
	if (rc) {
		free(c);
		return NULL;
	}
	c->z = w->z;
	c->w = w;
	c->pod = p;
	c->server = server;
	c->gen = p->cert_gen;
	c->ev = (struct zt_ev){ .kind = ZT_TUN, .fd = fd, .owner = c, .side = 1 };
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	clock_gettime(CLOCK_MONOTONIC, &c->idle_since);
	c->born = c->idle_since;
	c->next = w->conns;
	w->conns = c;
	zt_bump(w->hconns[server], 1);
	zt_bump(w->hconns_total[server], 1);
	return c;
}

/* A pooled client connection from @p to @dpod with room for one more
 * stream, or a new one. Older certificate generations drain. */
static struct hconn *conn_pick(struct zt_worker *w, struct zt_pod *p, const struct zm_lab_pod *dpod)
{
	struct sockaddr_in hb = { .sin_family = AF_INET, .sin_addr = dpod->ip, .sin_port = htons(15008) };
	struct zm_spiffe_id want;
	char want_str[ZM_SPIFFE_MAX];
	struct hconn *c, *next;
	int fd = -1;

	zt_pod_identity(dpod, &want);
	if (zm_spiffe_format(&want, want_str, sizeof(want_str)))
		return NULL;
	for (c = w->conns; c; c = next) {
		next = c->next;
		if (c->server || c->pod != p || c->dead || c->draining || c->broken ||
		    c->dst.s_addr != dpod->ip.s_addr || strcmp(c->want_str, want_str))
			continue;
		if (c->gen != p->cert_gen) {
			c->draining = true;	/* a renewed certificate: new streams go elsewhere */
			if (!c->nstreams)
				conn_close(c, false);
			continue;
		}
		if (c->ready ? zm_hbone_capacity(c->hb) > 0 : c->nstreams < ZM_HBONE_MAX_STREAMS)
			return c;
	}
	/* The tunnel leaves from the source pod, to the destination pod's 15008. */
	fd = zt_pod_socket(p);
	if (fd < 0)
		return NULL;
	if (connect(fd, (struct sockaddr *)&hb, sizeof(hb)) < 0 && errno != EINPROGRESS) {
		close(fd);
		return NULL;
	}
	c = conn_new(w, p, false, fd);
	if (!c) {
		close(fd);
		return NULL;
	}
	c->dst = dpod->ip;
	c->want_id = want;
	snprintf(c->want_str, sizeof(c->want_str), "%s", want_str);
	c->tcp_connecting = true;
	conn_arm(c);
	return c;
}

void zt_tunnel_out(struct zt_worker *w, struct zt_pod *p, int fd, const struct sockaddr_in *dst,
		   const struct zm_lab_pod *dpod)
{
	struct hconn *c = conn_pick(w, p, dpod);
	struct stream *s;
	char sp[ZM_SPIFFE_MAX];
	const char *dwl = zm_labels_get(&dpod->labels, "app");

	s = c ? stream_new(c, fd) : NULL;
	if (!s) {
		struct linger lg = { 1, 0 };

		/* No tunnel: the app sees a reset, as when the destination refuses. */
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(fd);
		if (c && !c->nstreams && !c->ready)
			conn_close(c, true);
		zt_count(w->z->st.refused);
		return;
	}
	snprintf(s->authority, sizeof(s->authority), "%s:%u", inet_ntoa(dst->sin_addr), ntohs(dst->sin_port));
	zm_spiffe_format(&p->id_spiffe, sp, sizeof(sp));
	s->ser = zt_series_get("source", p->workload, p->ns, dwl ? dwl : dpod->name, dpod->ns, true, sp,
			       c->want_str);
	zt_series_count(s->ser, 1, 0, 0, 0);
	snprintf(s->info.src, sizeof(s->info.src), "%s", inet_ntoa(p->ip));
	snprintf(s->info.dst, sizeof(s->info.dst), "%s", s->authority);
	if (c->ready && stream_open(s)) {
		stream_free(s, true);
		conn_run(c);
		return;
	}
	stream_arm(s);
	conn_run(c);
}

void zt_tunnel_in(struct zt_worker *w, struct zt_pod *p, int fd)
{
	struct hconn *c = conn_new(w, p, true, fd);
	struct sockaddr_in pa = { 0 };
	socklen_t pl = sizeof(pa);

	if (!c) {
		close(fd);
		return;
	}
	if (getpeername(fd, (struct sockaddr *)&pa, &pl) == 0)
		c->peer_addr = pa.sin_addr;
	conn_arm(c);
}

static void stream_event(struct stream *s, uint32_t events)
{
	struct hconn *c = s->c;
	int err = 0;
	socklen_t l = sizeof(err);

	if (s->plain_connecting) {
		getsockopt(s->ev.fd, SOL_SOCKET, SO_ERROR, &err, &l);
		if (err || !(events & EPOLLOUT)) {
			/* The app refuses: 503, the client's app sees a reset. */
			zt_count(c->z->st.refused);
			err = zm_hbone_respond(c->hb, s->sid, 503);
			if (err && err != -EINVAL)
				c->broken = true;
			s->stream_closed = true;	/* answered: nothing to reset */
			stream_free(s, true);
			conn_run(c);
			return;
		}
		s->plain_connecting = false;
		s->stream_ok = true;
		err = zm_hbone_respond(c->hb, s->sid, 200);
		if (err == -EINVAL) {
			stream_free(s, true);	/* the client gave up meanwhile */
			conn_run(c);
			return;
		}
		if (err)
			c->broken = true;
	} else if (events & (EPOLLERR | EPOLLHUP)) {
		if (s->sid < 0 || !s->stream_ok) {
			/* The app left while its stream waited: nothing to relay. */
			stream_free(s, true);
			conn_run(c);
			return;
		}
		if (events & EPOLLHUP)
			s->hup = !zm_buf_len(&s->to_plain) && s->plain_eof;
	}
	s->kick = true;
	conn_run(c);
}

void zt_tunnel_event(struct zt_worker *w, struct zt_ev *ev, uint32_t events)
{
	(void)w;
	if (ev->side == 0) {
		struct stream *s = ev->owner;

		if (!s->dead)
			stream_event(s, events);
		return;
	}
	{
		struct hconn *c = ev->owner;
		int err = 0;
		socklen_t l = sizeof(err);

		if (c->dead)
			return;
		if (c->tcp_connecting) {
			getsockopt(c->ev.fd, SOL_SOCKET, SO_ERROR, &err, &l);
			if (err || !(events & EPOLLOUT)) {
				conn_close(c, true);	/* the destination refuses: every waiting app sees a reset */
				return;
			}
			c->tcp_connecting = false;
		}
		if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
			conn_input(c);
		conn_run(c);
	}
}

void zt_tunnel_tick(struct zt_worker *w)
{
	struct zt *z = w->z;

	for (struct hconn *c = w->conns, *next; c; c = next) {
		int64_t idle = (int64_t)z->pool_idle_ms + (c->server ? SERVER_IDLE_EXTRA_MS : 0);

		next = c->next;
		if (!c->ready && ms_since(&c->born) >= HANDSHAKE_MS) {
			/* A peer that never finishes its handshake holds nothing here. */
			zm_log_warn("HBONE %s connection: no handshake in %d ms: closed",
				    c->server ? "server" : "client", HANDSHAKE_MS);
			conn_close(c, true);
			continue;
		}
		if (!c->server && c->pod && c->gen != c->pod->cert_gen)
			c->draining = true;	/* renewed: finish the streams, take no new one */
		if (!c->nstreams && (c->draining || ms_since(&c->idle_since) >= idle)) {
			zm_log_debug("HBONE %s connection idle for %lld ms: closed", c->server ? "server" : "client",
				     (long long)idle);
			conn_close(c, false);
		}
	}
}

static void pod_gone(struct zt_worker *w, struct zt_pod *p)
{
	for (struct hconn *c = w->conns, *next; c; c = next) {
		next = c->next;
		if (c->pod != p)
			continue;
		c->pod = NULL;
		c->draining = true;
		/* Streams still waiting for their CONNECT have no source any more. */
		for (struct stream *s = c->streams, *sn; s; s = sn) {
			sn = s->next;
			if (s->sid < 0) {
				s->stream_closed = true;
				stream_free(s, true);
			}
		}
		if (!c->nstreams)
			conn_close(c, false);
	}
}

static void recheck(struct zt_worker *w, const struct zt_pod *p)
{
	struct zt *z = w->z;

	for (struct hconn *c = w->conns, *next; c; c = next) {
		struct zm_error e = { 0 };
		SSL_CTX *ctx;
		int rc;

		next = c->next;
		if (!c->pod || (p && c->pod != p) || !c->ready || c->dead || c->draining || c->broken)
			continue;
		ctx = zt_pod_ctx(c->pod, c->server);
		if (!ctx)
			continue;
		rc = zm_tls_recheck(zm_hbone_ssl(c->hb), ctx, &e);
		SSL_CTX_free(ctx);
		if (!rc)
			continue;
		/* Its peer was checked against roots we no longer trust: no new
		 * stream on it; a new one re-handshakes against the bundle now. */
		zt_count(z->st.bundle_drained);
		zm_log_warn("HBONE %s connection of pod %s (peer %s): %s: drained", c->server ? "server" : "client",
			    c->pod->id, c->server ? c->peer_str : c->want_str, e.msg);
		c->draining = true;
		if (!c->nstreams)
			conn_close(c, false);
	}
}

void zt_tunnel_recheck(struct zt *z, const struct zt_pod *p)
{
	for (unsigned i = 0; i < z->nworkers; i++)
		recheck(&z->workers[i], p);
}

void zt_tunnel_pod_gone(struct zt *z, struct zt_pod *p)
{
	for (unsigned i = 0; i < z->nworkers; i++)
		pod_gone(&z->workers[i], p);
}

void zt_tunnel_drain(struct zt *z)
{
	for (unsigned i = 0; i < z->nworkers; i++)
		for (struct hconn *c = z->workers[i].conns, *next; c; c = next) {
			next = c->next;
			c->draining = true;
			if (!c->nstreams)
				conn_close(c, false);
		}
}

void zt_tunnel_close_all(struct zt_worker *w)
{
	while (w->conns)
		conn_close(w->conns, true);
	zt_tunnel_reap(w);
}

void zt_tunnel_metrics(struct zt *z, struct zm_buf *b)
{
	uint64_t nconns[2] = { 0 }, nconns_total[2] = { 0 }, nstreams_total[2] = { 0 };

	for (unsigned i = 0; i < z->nworkers; i++)
		for (int k = 0; k < 2; k++) {
			nconns[k] += zt_read(z->workers[i].hconns[k]);
			nconns_total[k] += zt_read(z->workers[i].hconns_total[k]);
			nstreams_total[k] += zt_read(z->workers[i].hstreams[k]);
		}
	zm_buf_printf(b, "# HELP zmesh_ztunnel_hbone_connections HBONE connections open\n"
		      "# TYPE zmesh_ztunnel_hbone_connections gauge\n"
		      "zmesh_ztunnel_hbone_connections{role=\"client\"} %llu\n"
		      "zmesh_ztunnel_hbone_connections{role=\"server\"} %llu\n"
		      "# HELP zmesh_ztunnel_hbone_connections_total HBONE connections opened\n"
		      "# TYPE zmesh_ztunnel_hbone_connections_total counter\n"
		      "zmesh_ztunnel_hbone_connections_total{role=\"client\"} %llu\n"
		      "zmesh_ztunnel_hbone_connections_total{role=\"server\"} %llu\n"
		      "# HELP zmesh_ztunnel_hbone_streams_total HBONE streams opened\n"
		      "# TYPE zmesh_ztunnel_hbone_streams_total counter\n"
		      "zmesh_ztunnel_hbone_streams_total{role=\"client\"} %llu\n"
		      "zmesh_ztunnel_hbone_streams_total{role=\"server\"} %llu\n"
		      "# HELP zmesh_ztunnel_hbone_goaway_total HBONE connections sent GOAWAY for abuse\n"
		      "# TYPE zmesh_ztunnel_hbone_goaway_total counter\n"
		      "zmesh_ztunnel_hbone_goaway_total{reason=\"rapid_reset\"} %llu\n",
		      (unsigned long long)nconns[0], (unsigned long long)nconns[1],
		      (unsigned long long)nconns_total[0], (unsigned long long)nconns_total[1],
		      (unsigned long long)nstreams_total[0], (unsigned long long)nstreams_total[1],
		      (unsigned long long)zt_read(nflooded));
}

void zt_tunnel_reap(struct zt_worker *w)
{
	while (w->stream_graveyard) {
		struct stream *s = w->stream_graveyard;

		w->stream_graveyard = s->next_dead;
		free(s);
	}
	while (w->conn_graveyard) {
		struct hconn *c = w->conn_graveyard;

		w->conn_graveyard = c->next_dead;
		free(c);
	}
}
