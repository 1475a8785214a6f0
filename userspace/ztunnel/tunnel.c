// SPDX-License-Identifier: Apache-2.0
/*
 * HBONE in ztunnel: a plain socket (the app's side) joined to one HTTP/2
 * CONNECT stream over mutual TLS on another socket (the tunnel). One tunnel
 * connection per captured connection for now (no pooling yet); a server
 * connection serves one stream.
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

#include "ztunnel.h"
#include "zmesh/buf.h"
#include "zmesh/hbone.h"
#include "zmesh/netns.h"
#include "zmesh/tls.h"

#define TO_PLAIN_MAX (4u << 20)	/* no stream-level flow control yet: a hard cap */

struct zt_tun {
	struct zt_ev ev[2];	/* 0: plain socket, 1: tunnel socket */
	uint32_t want[2];
	struct zt *z;
	struct zt_pod *pod;
	struct zm_hbone *hb;
	bool server;
	int32_t sid;
	bool plain_connecting, tun_connecting;
	bool open_sent, stream_ok;
	bool plain_eof, end_sent, peer_end, plain_shut, stream_closed;
	struct zm_buf to_plain, stash;
	struct zm_spiffe_id want_id;
	char authority[64];
	struct zt_series *ser;
	struct zt_conn_info info;
	bool dead;
	struct zt_tun *next_dead;
};

static struct zt_tun *graveyard;

static void set_ev(struct zt_tun *t, int side, uint32_t want)
{
	struct epoll_event ev = { .events = want, .data.ptr = &t->ev[side] };

	if (t->ev[side].fd < 0 || t->want[side] == want)
		return;
	epoll_ctl(t->z->ep, t->want[side] ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, t->ev[side].fd, &ev);
	t->want[side] = want;
}

static void tun_free(struct zt_tun *t, bool reset)
{
	if (t->dead)
		return;
	for (int i = 0; i < 2; i++) {
		if (t->ev[i].fd < 0)
			continue;
		if (reset) {
			struct linger lg = { 1, 0 };

			setsockopt(t->ev[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		}
		epoll_ctl(t->z->ep, EPOLL_CTL_DEL, t->ev[i].fd, NULL);
		close(t->ev[i].fd);
		t->ev[i].fd = -1;
	}
	if (t->ser) {
		zt_series_count(t->ser, 0, 1, 0, 0);
		zt_access_log(t->ser, &t->info, "HBONE", reset ? "reset" : "ok");
	}
	t->z->st.closed++;
	zm_hbone_free(t->hb);
	t->hb = NULL;
	zm_buf_free(&t->to_plain);
	zm_buf_free(&t->stash);
	t->dead = true;
	t->next_dead = graveyard;
	graveyard = t;
}

void zt_tunnel_reap(void)
{
	while (graveyard) {
		struct zt_tun *t = graveyard;

		graveyard = t->next_dead;
		free(t);
	}
}

static void cb_data(void *ud, struct zm_hbone *h, int32_t id, const uint8_t *d, size_t n)
{
	struct zt_tun *t = ud;

	(void)h; (void)id;
	if (t->ser)
		zt_series_count(t->ser, 0, 0, t->server ? n : 0, t->server ? 0 : n);
	*(t->server ? &t->info.sent : &t->info.received) += n;
	zm_buf_append(&t->to_plain, d, n);
}

static void cb_end(void *ud, struct zm_hbone *h, int32_t id)
{
	(void)h; (void)id;
	((struct zt_tun *)ud)->peer_end = true;
}

static void cb_close(void *ud, struct zm_hbone *h, int32_t id, uint32_t err)
{
	struct zt_tun *t = ud;

	(void)h; (void)id;
	t->stream_closed = true;
	if (err)
		t->peer_end = true;
}

static void cb_response(void *ud, struct zm_hbone *h, int32_t id, int status)
{
	struct zt_tun *t = ud;

	(void)h; (void)id;
	t->stream_ok = status == 200;
	if (!t->stream_ok)
		zm_log_info("HBONE CONNECT %s refused: %d", t->authority, status);
}

/* Server: the CONNECT. The target must be this pod; answer after connecting. */
static int cb_connect(void *ud, struct zm_hbone *h, int32_t id, const char *auth,
		      const struct zm_hbone_hdr *hd, size_t n)
{
	struct zt_tun *t = ud;
	struct sockaddr_in dst = { .sin_family = AF_INET };
	char ip[64], *colon;
	int port, saved, fd;

	(void)h; (void)hd; (void)n;
	if (t->sid >= 0)
		return 503;	/* one stream per connection for now */
	t->sid = id;
	snprintf(ip, sizeof(ip), "%s", auth);
	colon = strrchr(ip, ':');
	if (!colon)
		return 400;
	*colon = 0;
	port = atoi(colon + 1);
	if (inet_pton(AF_INET, ip, &dst.sin_addr) != 1 || port <= 0 || port > 65535 ||
	    dst.sin_addr.s_addr != t->pod->ip.s_addr) {
		zm_log_warn("pod %s: CONNECT to %s refused: not this pod", t->pod->id, auth);
		return 400;
	}
	dst.sin_port = htons((uint16_t)port);
	snprintf(t->authority, sizeof(t->authority), "%s", auth);
	{
		/* Policy on the verified peer identity (Istio's principal form,
		 * without "spiffe://") and the address it connected from. */
		struct zm_spiffe_id peer;
		struct sockaddr_in pa = { 0 };
		socklen_t pl = sizeof(pa);
		char sp[ZM_SPIFFE_MAX], desc[96];
		const char *principal = NULL;

		if (zm_tls_peer_id(zm_hbone_ssl(t->hb), &peer) == 0 &&
		    zm_spiffe_format(&peer, sp, sizeof(sp)) == 0 && !strncmp(sp, "spiffe://", 9))
			principal = sp + 9;
		getpeername(t->ev[1].fd, (struct sockaddr *)&pa, &pl);
		snprintf(desc, sizeof(desc), "HBONE CONNECT %s", auth);
		if (!principal || !zt_policy_check(t->z, t->pod, principal, pa.sin_addr, (uint16_t)port, desc))
			return 403;
	}
	{
		/* Metrics: the peer's verified identity, its workload by address. */
		struct zm_spiffe_id peer;
		struct sockaddr_in pa;
		socklen_t pl = sizeof(pa);
		char sp[ZM_SPIFFE_MAX] = "unknown", dp[ZM_SPIFFE_MAX];
		const struct zm_lab_pod *src = NULL;
		const char *swl = "unknown", *sns = "unknown";

		if (zm_tls_peer_id(zm_hbone_ssl(t->hb), &peer) == 0)
			zm_spiffe_format(&peer, sp, sizeof(sp));
		if (getpeername(t->ev[1].fd, (struct sockaddr *)&pa, &pl) == 0)
			src = zt_pod_by_ip(t->z, pa.sin_addr);
		if (src) {
			const char *app = zm_labels_get(&src->labels, "app");

			swl = app ? app : src->name;
			sns = src->ns;
		}
		zm_spiffe_format(&t->pod->id_spiffe, dp, sizeof(dp));
		if (getpeername(t->ev[1].fd, (struct sockaddr *)&pa, &pl) == 0)
			snprintf(t->info.src, sizeof(t->info.src), "%s", inet_ntoa(pa.sin_addr));
		snprintf(t->info.dst, sizeof(t->info.dst), "%s", auth);
		t->ser = zt_series_get("destination", swl, sns, t->pod->workload, t->pod->ns, true, sp, dp);
		zt_series_count(t->ser, 1, 0, 0, 0);
	}
	if (zm_netns_enter(t->pod->netns + strlen("/run/netns/"), &saved))
		return 503;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	zm_netns_restore(saved);
	if (fd < 0)
		return 503;
	if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0 && errno != EINPROGRESS) {
		close(fd);
		return 503;
	}
	t->ev[0] = (struct zt_ev){ .kind = ZT_TUN, .fd = fd, .owner = t, .side = 0 };
	t->plain_connecting = true;
	set_ev(t, 0, EPOLLOUT);
	return 0;	/* answered when the connect completes */
}

static const struct zm_hbone_cbs cbs = { cb_connect, cb_response, cb_data, cb_end, cb_close };

/* Move everything that can move; 1: finished, -1: reset. */
static int pump(struct zt_tun *t)
{
	char buf[65536];
	const void *out;
	size_t n;

	/* Tunnel socket -> hbone. */
	if (t->ev[1].fd >= 0 && !t->tun_connecting) {
		for (int i = 0; i < 16; i++) {
			ssize_t r = recv(t->ev[1].fd, buf, sizeof(buf), 0);

			if (r > 0) {
				if (zm_hbone_input(t->hb, buf, (size_t)r))
					return -1;
				continue;
			}
			if (r == 0)
				return t->stream_ok && t->stream_closed && !zm_buf_len(&t->to_plain) ? 1 : -1;
			if (errno != EAGAIN && errno != EINTR)
				return -1;
			break;
		}
	}
	/* Client: once TLS is up, check who answered, then CONNECT. */
	if (!t->server && !t->open_sent && t->hb && zm_hbone_ready(t->hb)) {
		struct zm_error e = { 0 };
		struct zm_hbone_hdr hdrs[2];
		char bag[256], fwd[64];

		if (zm_tls_check_peer(zm_hbone_ssl(t->hb), &t->want_id, &e)) {
			zm_log_warn("pod %s: %s", t->pod->id, e.msg);
			return -1;
		}
		snprintf(bag, sizeof(bag), "k8s.namespace.name=%s,k8s.pod.name=%s,service.name=%s",
			 t->pod->ns, t->pod->name, t->pod->workload);
		snprintf(fwd, sizeof(fwd), "for=%s", inet_ntoa(t->pod->ip));
		hdrs[0] = (struct zm_hbone_hdr){ "baggage", bag };
		hdrs[1] = (struct zm_hbone_hdr){ "forwarded", fwd };
		if (zm_hbone_open(t->hb, t->authority, hdrs, 2, &t->sid))
			return -1;
		t->open_sent = true;
	}
	if (t->open_sent && !t->stream_ok && t->stream_closed)
		return -1;	/* refused: the app sees a reset */
	/* Plain -> stream (only once the stream is accepted). */
	if (t->stream_ok && !t->plain_connecting) {
		if (zm_buf_len(&t->stash)) {
			int rc = zm_hbone_send(t->hb, t->sid, zm_buf_data(&t->stash), zm_buf_len(&t->stash));

			if (rc == 0)
				zm_buf_reset(&t->stash);
			else if (rc != -ENOBUFS)
				return -1;
		}
		while (!zm_buf_len(&t->stash) && !t->plain_eof) {
			ssize_t r = recv(t->ev[0].fd, buf, sizeof(buf), 0);
			int rc;

			if (r > 0) {
				if (t->ser)
					zt_series_count(t->ser, 0, 0, t->server ? 0 : (uint64_t)r, t->server ? (uint64_t)r : 0);
				*(t->server ? &t->info.received : &t->info.sent) += (uint64_t)r;
				rc = zm_hbone_send(t->hb, t->sid, buf, (size_t)r);
				if (rc == -ENOBUFS)
					zm_buf_append(&t->stash, buf, (size_t)r);
				else if (rc)
					return -1;
				continue;
			}
			if (r == 0) {
				t->plain_eof = true;
				break;
			}
			if (errno != EAGAIN && errno != EINTR)
				return -1;	/* reset by the app: reset the stream too */
			break;
		}
		if (t->plain_eof && !zm_buf_len(&t->stash) && !t->end_sent) {
			zm_hbone_end(t->hb, t->sid);
			t->end_sent = true;
		}
	}
	/* Stream -> plain. */
	while (zm_buf_len(&t->to_plain) && t->ev[0].fd >= 0 && !t->plain_connecting) {
		ssize_t w = send(t->ev[0].fd, zm_buf_data(&t->to_plain), zm_buf_len(&t->to_plain), MSG_NOSIGNAL);

		if (w > 0) {
			zm_buf_consume(&t->to_plain, (size_t)w);
			continue;
		}
		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		return -1;
	}
	if (zm_buf_len(&t->to_plain) > TO_PLAIN_MAX)
		return -1;
	if (t->peer_end && !zm_buf_len(&t->to_plain) && !t->plain_shut && t->ev[0].fd >= 0 &&
	    !t->plain_connecting) {
		shutdown(t->ev[0].fd, SHUT_WR);
		t->plain_shut = true;
	}
	/* Ciphertext out. */
	while (t->hb && !t->tun_connecting && (n = zm_hbone_output(t->hb, &out)) > 0) {
		ssize_t w = send(t->ev[1].fd, out, n, MSG_NOSIGNAL);

		if (w > 0) {
			zm_hbone_consumed(t->hb, (size_t)w);
			continue;
		}
		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		return -1;
	}
	if (t->plain_shut && t->end_sent && !zm_buf_len(&t->to_plain) &&
	    !(t->hb && zm_hbone_output(t->hb, &out)))
		return 1;
	return 0;
}

static void update(struct zt_tun *t)
{
	const void *out;
	int rc = pump(t);

	if (rc) {
		tun_free(t, rc < 0);
		return;
	}
	set_ev(t, 1, t->tun_connecting ? EPOLLOUT :
		     EPOLLIN | (t->hb && zm_hbone_output(t->hb, &out) ? EPOLLOUT : 0));
	if (t->ev[0].fd >= 0)
		set_ev(t, 0, t->plain_connecting ? EPOLLOUT :
			     ((t->stream_ok && !t->plain_eof && !zm_buf_len(&t->stash) ? EPOLLIN : 0) |
			      (zm_buf_len(&t->to_plain) ? EPOLLOUT : 0) | EPOLLRDHUP));
}

void zt_tunnel_event(struct zt *z, struct zt_ev *ev, uint32_t events)
{
	struct zt_tun *t = ev->owner;
	int err = 0;
	socklen_t l = sizeof(err);

	(void)z;
	if (t->dead)
		return;
	if (ev->side == 1 && t->tun_connecting) {
		getsockopt(t->ev[1].fd, SOL_SOCKET, SO_ERROR, &err, &l);
		if (err || !(events & EPOLLOUT)) {
			tun_free(t, true);
			return;
		}
		t->tun_connecting = false;
	}
	if (ev->side == 0 && t->plain_connecting) {
		getsockopt(t->ev[0].fd, SOL_SOCKET, SO_ERROR, &err, &l);
		if (err || !(events & EPOLLOUT)) {
			zm_hbone_respond(t->hb, t->sid, 503);
			t->plain_connecting = false;
			close(t->ev[0].fd);
			epoll_ctl(z->ep, EPOLL_CTL_DEL, t->ev[0].fd, NULL);
			t->ev[0].fd = -1;
			update(t);
			tun_free(t, false);
			return;
		}
		t->plain_connecting = false;
		t->stream_ok = true;
		zm_hbone_respond(t->hb, t->sid, 200);
	}
	update(t);
}

static struct zt_tun *tun_new(struct zt *z, struct zt_pod *p, bool server)
{
	struct zt_tun *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->z = z;
	t->pod = p;
	t->server = server;
	t->sid = -1;
	clock_gettime(CLOCK_MONOTONIC, &t->info.start);
	t->ev[0].fd = t->ev[1].fd = -1;
	{
		/* The SSL keeps its own reference to this generation. */
		SSL_CTX *ctx = zt_pod_ctx(p, server);
		int rc = ctx ? zm_hbone_new(ctx, server, &cbs, t, &t->hb) : -ENOENT;

		SSL_CTX_free(ctx);
		if (rc) {
			free(t);
			return NULL;
		}
	}
	z->st.opened++;
	return t;
}

void zt_tunnel_out(struct zt *z, struct zt_pod *p, int fd, const struct sockaddr_in *dst,
		   const struct zm_lab_pod *dpod)
{
	struct sockaddr_in hb = *dst;
	struct zt_tun *t;
	char sp[ZM_SPIFFE_MAX], dp[ZM_SPIFFE_MAX];
	const char *dwl = zm_labels_get(&dpod->labels, "app");
	int saved, up, one = 1;

	t = tun_new(z, p, false);
	if (!t) {
		close(fd);
		return;
	}
	snprintf(t->authority, sizeof(t->authority), "%s:%u", inet_ntoa(dst->sin_addr), ntohs(dst->sin_port));
	zt_pod_identity(dpod, &t->want_id);
	zm_spiffe_format(&p->id_spiffe, sp, sizeof(sp));
	zm_spiffe_format(&t->want_id, dp, sizeof(dp));
	t->ser = zt_series_get("source", p->workload, p->ns, dwl ? dwl : dpod->name, dpod->ns, true, sp, dp);
	zt_series_count(t->ser, 1, 0, 0, 0);
	t->ev[0] = (struct zt_ev){ .kind = ZT_TUN, .fd = fd, .owner = t, .side = 0 };
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	snprintf(t->info.src, sizeof(t->info.src), "%s", inet_ntoa(p->ip));
	snprintf(t->info.dst, sizeof(t->info.dst), "%s", t->authority);
	/* The tunnel leaves from the source pod, to the destination pod's (or
	 * the waypoint's) 15008. */
	hb.sin_addr = dpod->ip;
	hb.sin_port = htons(15008);
	up = -1;
	if (!zm_netns_enter(p->netns + strlen("/run/netns/"), &saved)) {
		up = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		zm_netns_restore(saved);
	}
	if (up < 0 || (connect(up, (struct sockaddr *)&hb, sizeof(hb)) < 0 && errno != EINPROGRESS)) {
		if (up >= 0)
			close(up);
		tun_free(t, true);
		return;
	}
	setsockopt(up, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	t->ev[1] = (struct zt_ev){ .kind = ZT_TUN, .fd = up, .owner = t, .side = 1 };
	t->tun_connecting = true;
	set_ev(t, 1, EPOLLOUT);
	set_ev(t, 0, EPOLLRDHUP);
}

void zt_tunnel_in(struct zt *z, struct zt_pod *p, int fd)
{
	struct zt_tun *t = tun_new(z, p, true);
	int one = 1;

	if (!t) {
		close(fd);
		return;
	}
	t->ev[1] = (struct zt_ev){ .kind = ZT_TUN, .fd = fd, .owner = t, .side = 1 };
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	set_ev(t, 1, EPOLLIN);
}
