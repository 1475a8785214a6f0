// SPDX-License-Identifier: Apache-2.0
/* Accepting captured connections and relaying bytes, with Istio's TCP metrics. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ztunnel.h"
#include "zmesh/buf.h"
#include "zmesh/json.h"
#include "zmesh/sock.h"
#include "zmesh/netns.h"

#define HALF_CAP (64 * 1024)
#define MAX_SERIES 1024

/* One direction of a connection: bytes read from one socket, not yet
 * written to the other. Bounded: a full buffer stops reading (back-pressure). */
struct half {
	char buf[HALF_CAP];
	size_t off, len;
	bool eof;	/* the reading side sent FIN */
	bool shut;	/* we passed the FIN on */
};

/* A metric series: shared by all workers; found or made under series_lock,
 * counted with atomics (zt_series_count). */
struct series {
	bool used, mtls;
	char reporter[12], src_wl[64], src_ns[64], dst_wl[64], dst_ns[64];
	char src_p[160], dst_p[160];
	uint64_t opened, closed, sent, received;
};

struct zt_pair {
	struct zt_worker *w;	/* the worker that owns it */
	struct zt_ev ev[2];	/* 0 downstream (the client side), 1 upstream */
	struct half h[2];	/* h[0]: 0 -> 1, h[1]: 1 -> 0 */
	bool connecting;
	struct series *ser;
	struct zt_conn_info info;
	uint32_t want[2];
	bool dead;
	struct zt_pair *next_dead;
};

/* Pairs closed during an epoll batch go to their worker's graveyard and are
 * freed after it: a later event of the same batch may still point at them. */

static struct series series[MAX_SERIES];
static pthread_mutex_t series_lock = PTHREAD_MUTEX_INITIALIZER;

static void add(uint64_t *ctr, uint64_t n)
{
	__atomic_fetch_add(ctr, n, __ATOMIC_RELAXED);
}

static struct series *series_find(const char *reporter, const char *sw, const char *sn,
				  const char *dw, const char *dn, bool mtls, const char *sp, const char *dp)
{
	struct series *free_slot = NULL;

	for (int i = 0; i < MAX_SERIES; i++) {
		struct series *s = &series[i];

		if (!s->used) {
			if (!free_slot)
				free_slot = s;
			continue;
		}
		if (!strcmp(s->reporter, reporter) && !strcmp(s->src_wl, sw) && !strcmp(s->src_ns, sn) &&
		    !strcmp(s->dst_wl, dw) && !strcmp(s->dst_ns, dn) && s->mtls == mtls &&
		    !strcmp(s->src_p, sp) && !strcmp(s->dst_p, dp))
			return s;
	}
	if (!free_slot)
		return &series[MAX_SERIES - 1];	/* full: the last one absorbs the rest */
	free_slot->used = true;
	snprintf(free_slot->reporter, sizeof(free_slot->reporter), "%s", reporter);
	snprintf(free_slot->src_wl, sizeof(free_slot->src_wl), "%s", sw);
	snprintf(free_slot->src_ns, sizeof(free_slot->src_ns), "%s", sn);
	snprintf(free_slot->dst_wl, sizeof(free_slot->dst_wl), "%s", dw);
	snprintf(free_slot->dst_ns, sizeof(free_slot->dst_ns), "%s", dn);
	free_slot->mtls = mtls;
	snprintf(free_slot->src_p, sizeof(free_slot->src_p), "%s", sp);
	snprintf(free_slot->dst_p, sizeof(free_slot->dst_p), "%s", dp);
	return free_slot;
}

static struct series *series_get2(const char *reporter, const char *sw, const char *sn,
				  const char *dw, const char *dn, bool mtls, const char *sp, const char *dp)
{
	struct series *s;

	pthread_mutex_lock(&series_lock);
	s = series_find(reporter, sw, sn, dw, dn, mtls, sp, dp);
	pthread_mutex_unlock(&series_lock);
	return s;
}

static struct series *series_get(const char *reporter, const char *sw, const char *sn,
				 const char *dw, const char *dn)
{
	return series_get2(reporter, sw, sn, dw, dn, false, "unknown", "unknown");
}

struct zt_series *zt_series_get(const char *reporter, const char *sw, const char *sn,
				const char *dw, const char *dn, bool mtls, const char *sp, const char *dp)
{
	return (struct zt_series *)series_get2(reporter, sw, sn, dw, dn, mtls, sp, dp);
}

void zt_series_count(struct zt_series *zs, int opened, int closed, uint64_t sent, uint64_t received)
{
	struct series *s = (struct series *)zs;

	if (opened)
		add(&s->opened, (uint64_t)opened);
	if (closed)
		add(&s->closed, (uint64_t)closed);
	if (sent)
		add(&s->sent, sent);
	if (received)
		add(&s->received, received);
}

static void workload_of(struct zt *z, struct in_addr ip, const char **wl, const char **ns)
{
	const struct zm_lab_pod *p = zt_pod_by_ip(z, ip);
	const char *app = p ? zm_labels_get(&p->labels, "app") : NULL;

	*wl = p ? (app ? app : p->name) : "unknown";
	*ns = p ? p->ns : "unknown";
}

static void set_events(struct zt_pair *c, int side, uint32_t want)
{
	if (c->want[side] == want)
		return;
	(c->want[side] ? zm_loop_mod : zm_loop_add)(c->w->loop, c->ev[side].fd, want, &c->ev[side]);
	c->want[side] = want;
}

static void pair_free(struct zt_pair *c, bool reset)
{
	struct zt_worker *w = c->w;

	for (int i = 0; i < 2; i++) {
		if (c->ev[i].fd < 0)
			continue;
		if (reset) {
			/* Abort, so the peer sees a reset, as ours did. */
			struct linger lg = { 1, 0 };

			setsockopt(c->ev[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		}
		zm_loop_del(w->loop, c->ev[i].fd);
		close(c->ev[i].fd);
	}
	if (c->ser)
		add(&c->ser->closed, 1);
	zt_access_log((struct zt_series *)c->ser, &c->info, "TCP", reset ? "reset" : "ok");
	zt_bump(w->closed, 1);
	c->dead = true;
	c->next_dead = w->graveyard;
	w->graveyard = c;
}

void zt_access_log(const struct zt_series *zs, const struct zt_conn_info *ci, const char *protocol,
		   const char *result)
{
	const struct series *s = (const struct series *)zs;
	struct timespec now;
	struct zm_buf b = { 0 };

	if (!s)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	/* One JSON object per connection, one write() so lines never interleave;
	 * every string goes through the JSON escaper (peers control some). */
	zm_buf_puts(&b, "{");
	zm_json_kv_str(&b, 1, "type", "access");
	zm_json_kv_str(&b, 0, "reporter", s->reporter);
	zm_json_kv_str(&b, 0, "protocol", protocol);
	zm_json_kv_str(&b, 0, "src.addr", ci->src);
	zm_json_kv_str(&b, 0, "dst.addr", ci->dst);
	zm_json_kv_str(&b, 0, "src.workload", s->src_wl);
	zm_json_kv_str(&b, 0, "src.namespace", s->src_ns);
	zm_json_kv_str(&b, 0, "src.identity", s->src_p);
	zm_json_kv_str(&b, 0, "dst.workload", s->dst_wl);
	zm_json_kv_str(&b, 0, "dst.namespace", s->dst_ns);
	zm_json_kv_str(&b, 0, "dst.identity", s->dst_p);
	zm_json_kv_int(&b, 0, "bytes_sent", (long long)ci->sent);
	zm_json_kv_int(&b, 0, "bytes_received", (long long)ci->received);
	zm_json_kv_int(&b, 0, "duration_ms", (long long)((now.tv_sec - ci->start.tv_sec) * 1000 +
						      (now.tv_nsec - ci->start.tv_nsec) / 1000000));
	if (ci->trace[0])
		zm_json_kv_str(&b, 0, "traceparent", ci->trace);
	zm_json_kv_str(&b, 0, "result", result);
	zm_buf_puts(&b, "}\n");
	(void)!write(1, zm_buf_data(&b), zm_buf_len(&b));
	zm_buf_free(&b);
}

void zt_reap(struct zt_worker *w)
{
	while (w->graveyard) {
		struct zt_pair *c = w->graveyard;

		w->graveyard = c->next_dead;
		free(c);
	}
}

/* Move bytes both ways as far as the sockets allow; 1 when the pair is done,
 * -1 when it must be reset. */
static int pump(struct zt_pair *c)
{
	for (int dir = 0; dir < 2; dir++) {
		struct half *h = &c->h[dir];
		int from = c->ev[dir].fd, to = c->ev[!dir].fd;

		while (!h->eof && h->len < HALF_CAP) {
			size_t room = HALF_CAP - h->len;
			ssize_t n;

			if (h->off && h->off + h->len == HALF_CAP) {
				memmove(h->buf, h->buf + h->off, h->len);
				h->off = 0;
			}
			room = HALF_CAP - h->off - h->len;
			if (!room)
				break;
			n = recv(from, h->buf + h->off + h->len, room, 0);
			if (n > 0) {
				h->len += (size_t)n;
				if (c->ser)
					add(dir == 0 ? &c->ser->sent : &c->ser->received, (uint64_t)n);
				*(dir == 0 ? &c->info.sent : &c->info.received) += (uint64_t)n;
				continue;
			}
			if (n == 0)
				h->eof = true;
			else if (errno == EAGAIN || errno == EINTR)
				break;
			else
				return -1;	/* ECONNRESET and friends: pass the reset on */
		}
		while (h->len) {
			ssize_t n = send(to, h->buf + h->off, h->len, MSG_NOSIGNAL);

			if (n > 0) {
				h->off += (size_t)n;
				h->len -= (size_t)n;
				continue;
			}
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				break;
			return -1;
		}
		if (!h->len)
			h->off = 0;
		if (h->eof && !h->len && !h->shut) {
			shutdown(to, SHUT_WR);	/* half-close, end to end */
			h->shut = true;
		}
	}
	return c->h[0].shut && c->h[1].shut ? 1 : 0;
}

static void update(struct zt_pair *c)
{
	int rc = pump(c);

	if (rc) {
		pair_free(c, rc < 0);
		return;
	}
	for (int side = 0; side < 2; side++) {
		uint32_t want = 0;

		if (!c->h[side].eof && c->h[side].len < HALF_CAP)
			want |= EPOLLIN;
		if (c->h[!side].len)
			want |= EPOLLOUT;
		set_events(c, side, want ? want : EPOLLRDHUP);
	}
}

void zt_conn_event(struct zt_worker *w, struct zt_ev *ev, uint32_t events)
{
	struct zt_pair *c = ev->owner;

	if (c->dead)
		return;
	if (c->connecting) {
		int err = 0;
		socklen_t l = sizeof(err);

		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		getsockopt(c->ev[1].fd, SOL_SOCKET, SO_ERROR, &err, &l);
		if (err) {
			/* Upstream refused or unreachable: the client gets a reset. */
			zt_count(w->z->st.refused);
			pair_free(c, true);
			return;
		}
		c->connecting = false;
	}
	update(c);
}

/*
 * A Service VIP: pick one of its endpoints at random, as Istio's ztunnel
 * does, so the connection goes pod to pod (and the destination is known).
 * Returns false when @dst is not a VIP; a VIP with no endpoint leaves
 * *dst unchanged (the connect then fails as it would without the mesh).
 */
/*
 * The waypoint that traffic to @vip must go through, or NULL. Istio's rule
 * for service-addressed traffic: the Service's label istio.io/use-waypoint,
 * else its namespace's ("none" opts out); the waypoint is the pod labelled
 * gateway.networking.k8s.io/gateway-name=<name> in the Service's namespace
 * (or istio.io/use-waypoint-namespace). A waypoint named but not running
 * means the traffic cannot get its L7 policy: *missing is set and the
 * caller refuses the connection (fails closed).
 */
static const struct zm_lab_pod *waypoint_for(struct zt *z, struct in_addr vip, const struct zt_pod *src,
					     bool *missing)
{
	*missing = false;
	for (size_t i = 0; i < z->view->nservices; i++) {
		const struct zm_lab_svc *s = &z->view->services[i];
		const struct zm_lab_ns *ns;
		const char *wp, *wpns;

		if (s->cluster_ip.s_addr != vip.s_addr)
			continue;
		ns = zm_lab_ns_find(z->view, s->ns);
		wp = zm_labels_get(&s->labels, "istio.io/use-waypoint");
		wpns = zm_labels_get(&s->labels, "istio.io/use-waypoint-namespace");
		if (!wp && ns) {
			wp = zm_labels_get(&ns->labels, "istio.io/use-waypoint");
			wpns = zm_labels_get(&ns->labels, "istio.io/use-waypoint-namespace");
		}
		if (!wp || !strcmp(wp, "none") || zm_labels_get(&s->labels, "gateway.networking.k8s.io/gateway-name"))
			return NULL;
		for (size_t p = 0; p < z->view->npods; p++) {
			const struct zm_lab_pod *pod = &z->view->pods[p];
			const char *gw = zm_labels_get(&pod->labels, "gateway.networking.k8s.io/gateway-name");

			if (gw && !strcmp(gw, wp) && !strcmp(pod->ns, wpns ? wpns : s->ns))
				return pod->ip.s_addr == src->ip.s_addr ? NULL : pod;
		}
		*missing = true;
		zm_log_warn("pod %s: service %s/%s uses waypoint %s/%s, which does not exist: refused", src->id,
			    s->ns, s->name, wpns ? wpns : s->ns, wp);
		return NULL;
	}
	return NULL;
}

static bool resolve_vip(struct zt *z, struct sockaddr_in *dst)
{
	for (size_t i = 0; i < z->view->nservices; i++) {
		const struct zm_lab_svc *s = &z->view->services[i];

		if (s->cluster_ip.s_addr != dst->sin_addr.s_addr)
			continue;
		for (size_t k = 0; k < s->nports; k++) {
			const struct zm_lab_pod *pick = NULL;
			int n = 0, port = 0;

			if (s->ports[k].port != ntohs(dst->sin_port))
				continue;
			for (size_t p = 0; p < z->view->npods; p++) {
				const struct zm_lab_pod *pod = &z->view->pods[p];
				int tp = zm_lab_target_port(&s->ports[k], pod);

				if (strcmp(pod->ns, s->ns) || !s->selector.n ||
				    !zm_labels_match(&s->selector, &pod->labels) || !tp)
					continue;
				/* Reservoir sampling: a uniform pick in one pass. */
				if (rand() % ++n == 0) {
					pick = pod;
					port = tp;
				}
			}
			if (pick) {
				dst->sin_addr = pick->ip;
				dst->sin_port = htons((uint16_t)port);
			}
			return true;
		}
		return true;
	}
	return false;
}

void zt_accept(struct zt_worker *w, struct zt_ev *l)
{
	struct zt *z = w->z;
	struct zt_pod *p = l->owner;

	for (int i = 0; i < 64; i++) {
		struct sockaddr_in dst;
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), up, one = 1;
		const char *sw, *sn, *dw, *dn;
		struct zt_pair *c;

		if (fd < 0)
			return;
		if (l->kind == ZT_L_HBONE) {
			zt_tunnel_in(w, p, fd);
			continue;
		}
		if (l->kind == ZT_L_OUTBOUND) {
			struct sockaddr_in orig;

			if (zt_orig_dst(z, fd, &orig)) {
				zm_log_warn("pod %s: a connection on 15001 without an original destination: refused",
					    p->id);
				close(fd);
				zt_count(z->st.refused);
				continue;
			}
			dst = orig;
			{
				bool missing;
				const struct zm_lab_pod *wp = p->client_creds ?
					waypoint_for(z, orig.sin_addr, p, &missing) : NULL;

				if (wp) {
					/* HBONE to the waypoint; :authority stays the service. */
					zt_tunnel_out(w, p, fd, &orig, wp);
					continue;
				}
				if (p->client_creds && missing) {
					close(fd);
					zt_count(z->st.refused);
					continue;
				}
			}
			resolve_vip(z, &dst);
			/* A meshed destination talks HBONE; anything else is passthrough. */
			{
				const struct zm_lab_pod *dpod = zt_pod_by_ip(z, dst.sin_addr);

				if (dpod && zt_pod_meshed(z, dpod)) {
					if (p->client_creds) {
						zt_tunnel_out(w, p, fd, &dst, dpod);
					} else {
						/* No certificate yet: mTLS or nothing. */
						zm_log_warn("pod %s: no certificate yet: connection to a meshed pod refused",
							    p->id);
						close(fd);
						zt_count(z->st.refused);
					}
					continue;
				}
			}
			sw = p->workload;
			sn = p->ns;
			workload_of(z, dst.sin_addr, &dw, &dn);
		} else {
			struct sockaddr_in peer;
			socklen_t pl = sizeof(peer);

			/* sk_lookup kept the address the client dialled. */
			if (zt_inbound_dst(z, fd, &dst)) {
				close(fd);
				zt_count(z->st.refused);
				continue;
			}
			getpeername(fd, (struct sockaddr *)&peer, &pl);
			if (!zt_policy_check(z, p, NULL, peer.sin_addr, ntohs(dst.sin_port),
					     "plaintext connection")) {
				struct linger lg = { .l_onoff = 1, .l_linger = 0 };

				/* Refused with a reset, as Istio's ztunnel does. */
				setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
				close(fd);
				continue;
			}
			dw = p->workload;
			dn = p->ns;
			workload_of(z, peer.sin_addr, &sw, &sn);
		}
		up = zt_pod_socket(p);
		c = calloc(1, sizeof(*c));
		if (up < 0 || !c) {
			close(fd);
			if (up >= 0)
				close(up);
			free(c);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(up, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->w = w;
		c->ev[0] = (struct zt_ev){ .kind = ZT_CONN, .fd = fd, .owner = c, .side = 0 };
		c->ev[1] = (struct zt_ev){ .kind = ZT_CONN, .fd = up, .owner = c, .side = 1 };
		c->ser = series_get(l->kind == ZT_L_OUTBOUND ? "source" : "destination", sw, sn, dw, dn);
		clock_gettime(CLOCK_MONOTONIC, &c->info.start);
		zm_sock_peer_str(fd, c->info.src, sizeof(c->info.src));
		zm_sock_addr_str((struct sockaddr *)&dst, c->info.dst, sizeof(c->info.dst));
		add(&c->ser->opened, 1);
		zt_bump(w->opened, 1);
		if (connect(up, (struct sockaddr *)&dst, sizeof(dst)) < 0 && errno != EINPROGRESS) {
			pair_free(c, true);
			continue;
		}
		c->connecting = true;
		set_events(c, 1, EPOLLOUT);
		set_events(c, 0, EPOLLRDHUP);
	}
}

void zt_metrics_write(struct zt *z, int fd)
{
	static const struct { const char *name, *help; } m[4] = {
		{ "istio_tcp_connections_opened_total", "TCP connections opened" },
		{ "istio_tcp_connections_closed_total", "TCP connections closed" },
		{ "istio_tcp_sent_bytes_total", "Bytes sent from the client side" },
		{ "istio_tcp_received_bytes_total", "Bytes received by the client side" },
	};
	struct zm_buf b = { 0 };

	pthread_mutex_lock(&series_lock);
	for (int k = 0; k < 4; k++) {
		zm_buf_printf(&b, "# HELP %s %s\n# TYPE %s counter\n", m[k].name, m[k].help, m[k].name);
		for (int i = 0; i < MAX_SERIES; i++) {
			struct series *s = &series[i];
			uint64_t v = zt_read(*(k == 0 ? &s->opened : k == 1 ? &s->closed : k == 2 ? &s->sent : &s->received));

			if (!s->used)
				continue;
			/* Principals are known only through mTLS (HBONE). */
			zm_buf_printf(&b, "%s{reporter=\"%s\",source_workload=\"%s\",source_workload_namespace=\"%s\","
				      "source_principal=\"%s\",destination_workload=\"%s\","
				      "destination_workload_namespace=\"%s\",destination_principal=\"%s\","
				      "connection_security_policy=\"%s\"} %llu\n",
				      m[k].name, s->reporter, s->src_wl, s->src_ns, s->src_p, s->dst_wl, s->dst_ns,
				      s->dst_p, s->mtls ? "mutual_tls" : "none", (unsigned long long)v);
		}
	}
	pthread_mutex_unlock(&series_lock);
	zm_buf_printf(&b, "# TYPE zmesh_ztunnel_refused_total counter\nzmesh_ztunnel_refused_total %llu\n",
		      (unsigned long long)zt_read(z->st.refused));
	zt_policy_metrics(z, &b);
	zt_tunnel_metrics(z, &b);
	zt_zds_metrics(z, &b);
	zt_workers_metrics(z, &b);
	{
		char head[160];
		int n = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
				 "Content-Length: %zu\r\nConnection: close\r\n\r\n", zm_buf_len(&b));

		(void)!write(fd, head, (size_t)n);
		(void)!write(fd, zm_buf_data(&b), zm_buf_len(&b));
	}
	zm_buf_free(&b);
}
