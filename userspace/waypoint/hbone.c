// SPDX-License-Identifier: Apache-2.0
/*
 * The HBONE front (:15008): mutual TLS 1.3 + HTTP/2 CONNECT (zmesh/hbone.h),
 * as ztunnel sends a waypoint the traffic of services that use it.
 *
 * Each accepted CONNECT stream becomes one downstream connection for the
 * ordinary HTTP/1 / HTTP/2 front ends: a socketpair, one end served by a
 * conn thread exactly like a plain TCP connection (with the peer's
 * verified SPIFFE identity as the source principal), the other end pumped
 * here to and from the tunnel. Slower than splicing the parser onto the
 * stream, but the L7 path stays one piece of code (docs/waypoint.md).
 *
 * A CONNECT is accepted only for an authority that is a Service VIP:port
 * or an endpoint ip:port this waypoint serves (else 400: SECURITY.md).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "zmesh/ca.h"
#include "zmesh/hbone.h"
#include "zmesh/keymat.h"
#include "zmesh/log.h"
#include "zmesh/spiffe.h"
#include "zmesh/tls.h"
#include "waypoint.h"

#define HB_STREAMS ZM_HBONE_MAX_STREAMS

struct hb_stream {
	int32_t id;			/* 0: slot free */
	int fd;				/* our end of the socketpair */
	struct zm_buf to_app;		/* tunnel bytes the app side has not taken yet */
	struct zm_buf to_tun;		/* app bytes the session had no room for yet */
	bool tun_ended, app_ended, shut_sent;
};

struct hb_conn {
	int fd;
	struct zm_hbone *hb;
	struct hb_stream st[HB_STREAMS];
	char peer_id[ZM_SPIFFE_MAX];
	bool have_peer;
	struct sockaddr_storage peer_addr;
	bool failed;
};

static SSL_CTX *server_ctx;
static pthread_mutex_t ctx_mu = PTHREAD_MUTEX_INITIALIZER;

static struct hb_stream *stream_of(struct hb_conn *hc, int32_t id)
{
	for (int i = 0; i < HB_STREAMS; i++)
		if (hc->st[i].id == id)
			return &hc->st[i];
	return NULL;
}

/* Is ip:port a Service VIP or an endpoint this waypoint serves? */
static bool authority_ok(const char *auth)
{
	struct wp_snap *s = wp_snap_get();
	char ip[64];
	const char *colon = strrchr(auth, ':');
	int port;
	bool ok = false;

	if (!s || !colon || (size_t)(colon - auth) >= sizeof(ip))
		goto out;
	snprintf(ip, sizeof(ip), "%.*s", (int)(colon - auth), auth);
	port = atoi(colon + 1);
	for (size_t i = 0; i < s->lab.nservices && !ok && s->have_lab; i++) {
		const struct zm_lab_svc *sv = &s->lab.services[i];
		char vip[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &sv->cluster_ip, vip, sizeof(vip));
		for (size_t p = 0; p < sv->nports && !ok; p++)
			ok = !strcmp(vip, ip) && sv->ports[p].port == port;
	}
	for (size_t i = 0; i < s->lab.npods && !ok && s->have_lab; i++) {
		char pip[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &s->lab.pods[i].ip, pip, sizeof(pip));
		ok = !strcmp(pip, ip) && port > 0 && port < 65536;
	}
out:
	wp_snap_put(s);
	return ok;
}

static int cb_connect(void *ud, struct zm_hbone *h, int32_t id, const char *auth,
		      const struct zm_hbone_hdr *hd, size_t n)
{
	struct hb_conn *hc = ud;
	struct hb_stream *st = stream_of(hc, 0);
	struct sockaddr_storage ss;
	struct conn *c;
	int sp[2];
	pthread_t th;
	pthread_attr_t at;

	if (!st)
		return 503;
	if (!hc->have_peer) {
		struct zm_spiffe_id peer;

		if (zm_tls_peer_id(zm_hbone_ssl(h), &peer) ||
		    zm_spiffe_format(&peer, hc->peer_id, sizeof(hc->peer_id)) < 0)
			return 403;	/* cannot happen after a verified handshake; fail closed */
		hc->have_peer = true;
	}
	if (!authority_ok(auth)) {
		char esc[128];

		zm_log_warn("hbone: CONNECT to %s refused: not a destination this waypoint serves",
			    zm_log_escape(esc, sizeof(esc), auth, strlen(auth)));
		return 400;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp))
		return 503;
	/* The source: ztunnel forwards "for=<client ip>"; identity is the TLS peer's. */
	memset(&ss, 0, sizeof(ss));
	ss = hc->peer_addr;
	for (size_t i = 0; i < n; i++) {
		const char *f;

		if (strcasecmp(hd[i].name, "forwarded") || !(f = strstr(hd[i].value, "for=")))
			continue;
		{
			struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
			char ip[64];

			snprintf(ip, sizeof(ip), "%.*s", (int)strcspn(f + 4, ";, \""), f + 4);
			memset(&ss, 0, sizeof(ss));
			sin->sin_family = AF_INET;
			if (inet_pton(AF_INET, ip, &sin->sin_addr) != 1)
				ss = hc->peer_addr;
		}
	}
	c = wp_conn_new(sp[1], &ss);
	if (!c) {
		close(sp[0]);
		close(sp[1]);
		return 503;
	}
	c->mtls = true;
	snprintf(c->principal, sizeof(c->principal), "%s", hc->peer_id);
	{
		const char *colon = strrchr(auth, ':');

		snprintf(c->tcp_vip, sizeof(c->tcp_vip), "%.*s", (int)(colon - auth), auth);
		c->tcp_port = atoi(colon + 1);
		c->tcp = wp_port_is_tcp(c->tcp_vip, c->tcp_port);
	}
	fcntl(sp[0], F_SETFL, O_NONBLOCK);
	st->id = id;
	st->fd = sp[0];
	atomic_fetch_add(&wp_nconns, 1);
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, 512 * 1024);
	if (pthread_create(&th, &at, wp_conn_thread, c)) {
		atomic_fetch_sub(&wp_nconns, 1);
		close(sp[1]);
		free(c);
		close(st->fd);
		st->id = 0;
		pthread_attr_destroy(&at);
		return 503;
	}
	pthread_attr_destroy(&at);
	return 200;
}

static void cb_response(void *ud, struct zm_hbone *h, int32_t id, int status)
{
	(void)ud; (void)h; (void)id; (void)status;
}

static void cb_data(void *ud, struct zm_hbone *h, int32_t id, const uint8_t *d, size_t n)
{
	struct hb_conn *hc = ud;
	struct hb_stream *st = stream_of(hc, id);

	(void)h;
	if (!st || id == 0)
		return;
	/* Bounded by the stream's window (ZM_HBONE_MANUAL_WINDOW: given back as the
	 * app side takes bytes); the cap only catches a peer that ignores it. */
	if (zm_buf_len(&st->to_app) + n > 4 * 1024 * 1024 || zm_buf_append(&st->to_app, d, n))
		zm_hbone_reset(hc->hb, id);
}

static void cb_end(void *ud, struct zm_hbone *h, int32_t id)
{
	struct hb_stream *st = stream_of(ud, id);

	(void)h;
	if (st && id)
		st->tun_ended = true;
}

static void stream_free(struct hb_stream *st)
{
	if (st->fd > 0)
		close(st->fd);
	zm_buf_free(&st->to_app);
	zm_buf_free(&st->to_tun);
	memset(st, 0, sizeof(*st));
	st->fd = -1;
}

static void cb_close(void *ud, struct zm_hbone *h, int32_t id, uint32_t err)
{
	struct hb_stream *st = stream_of(ud, id);

	(void)h;
	(void)err;
	if (st && id)
		stream_free(st);
}

static const struct zm_hbone_cbs cbs = { cb_connect, cb_response, cb_data, cb_end, cb_close };

static int flush(struct hb_conn *hc)
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

static void *hb_thread(void *arg)
{
	struct hb_conn *hc = arg;
	struct pollfd pf[HB_STREAMS + 1];
	int map[HB_STREAMS + 1];
	char buf[65536];

	for (;;) {
		int np = 1;
		const void *pending;
		bool backlog = false;

		if (flush(hc))
			break;
		for (int i = 0; i < HB_STREAMS; i++) {
			struct hb_stream *st = &hc->st[i];

			if (!st->id)
				continue;
			/* tunnel -> app; the window opens as the app takes bytes */
			while (zm_buf_len(&st->to_app)) {
				ssize_t w = send(st->fd, zm_buf_data(&st->to_app), zm_buf_len(&st->to_app),
						 MSG_NOSIGNAL | MSG_DONTWAIT);

				if (w <= 0)
					break;
				zm_buf_consume(&st->to_app, (size_t)w);
				zm_hbone_consume(hc->hb, st->id, (size_t)w);
			}
			/* app -> tunnel, what waited for room */
			if (zm_buf_len(&st->to_tun)) {
				int rc = zm_hbone_send(hc->hb, st->id, zm_buf_data(&st->to_tun),
						       zm_buf_len(&st->to_tun));

				if (!rc)
					zm_buf_reset(&st->to_tun);
				else if (rc != -ENOBUFS)
					zm_hbone_reset(hc->hb, st->id);
			}
			backlog |= zm_buf_len(&st->to_tun) > 0;
			if (st->tun_ended && !zm_buf_len(&st->to_app) && !st->shut_sent) {
				shutdown(st->fd, SHUT_WR);
				st->shut_sent = true;
			}
			map[np] = i;
			pf[np++] = (struct pollfd){ .fd = st->fd,
				.events = (st->app_ended || zm_buf_len(&st->to_tun) ? 0 : POLLIN) |
					  (zm_buf_len(&st->to_app) ? POLLOUT : 0) };
		}
		/* after the streams: a window they gave back is output to send */
		if (flush(hc))
			break;
		pf[0] = (struct pollfd){ .fd = hc->fd, .events = POLLIN |
					 (zm_hbone_output(hc->hb, &pending) ? POLLOUT : 0) };
		{
			int pr = poll(pf, (nfds_t)np, backlog ? 20 : wp_options->idle_timeout_ms);

			if (pr < 0 || (pr == 0 && !backlog))
				break;
		}
		if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t r = recv(hc->fd, buf, sizeof(buf), MSG_DONTWAIT);

			if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
				break;
			if (r > 0 && zm_hbone_input(hc->hb, buf, (size_t)r))
				break;
		}
		for (int k = 1; k < np; k++) {
			struct hb_stream *st = &hc->st[map[k]];
			ssize_t r;

			if (!st->id || !(pf[k].revents & (POLLIN | POLLHUP | POLLERR)) || st->app_ended ||
			    zm_buf_len(&st->to_tun))
				continue;
			r = recv(st->fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (r > 0) {
				/* the peer is slow: keep this piece, read no more from the app side
				 * until it went (back-pressure through the socketpair) */
				if (zm_hbone_send(hc->hb, st->id, buf, (size_t)r) == -ENOBUFS)
					zm_buf_append(&st->to_tun, buf, (size_t)r);
			} else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
				st->app_ended = true;
				zm_hbone_end(hc->hb, st->id);
			}
		}
	}
	for (int i = 0; i < HB_STREAMS; i++)
		if (hc->st[i].id)
			stream_free(&hc->st[i]);
	zm_hbone_free(hc->hb);
	close(hc->fd);
	free(hc);
	return NULL;
}

static void *hb_accept_thread(void *arg)
{
	int lfd = (int)(intptr_t)arg;

	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
		struct hb_conn *hc;
		pthread_t th;
		pthread_attr_t at;
		SSL_CTX *ctx;
		int rc;

		if (fd < 0)
			continue;
		hc = calloc(1, sizeof(*hc));
		/* the context of the moment: a renewal may swap it (wp_hbone_set_cert) */
		pthread_mutex_lock(&ctx_mu);
		ctx = server_ctx;
		SSL_CTX_up_ref(ctx);
		pthread_mutex_unlock(&ctx_mu);
		rc = hc ? zm_hbone_new_ex(ctx, true, ZM_HBONE_MANUAL_WINDOW, &cbs, hc, &hc->hb) : -ENOMEM;
		SSL_CTX_free(ctx);
		if (rc) {
			free(hc);
			close(fd);
			continue;
		}
		hc->fd = fd;
		hc->peer_addr = ss;
		for (int i = 0; i < HB_STREAMS; i++)
			hc->st[i].fd = -1;
		/* The handshake runs inside zm_hbone_input; cb_connect reads the
		 * verified identity when the first stream arrives. */
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&th, &at, hb_thread, hc)) {
			zm_hbone_free(hc->hb);
			close(fd);
			free(hc);
		}
		pthread_attr_destroy(&at);
	}
	return NULL;
}

/* the credential for gateway servers with ISTIO_MUTUAL (gateway.c) */
static pthread_mutex_t mesh_mu = PTHREAD_MUTEX_INITIALIZER;
static char *mesh_key, *mesh_chain, *mesh_bundle, mesh_id[640];

/* Keep a copy for wp_mesh_cred(): renewals replace it. */
static int mesh_cred_set(const char *key, const char *chain, const char *bundle, const char *ns, const char *sa)
{
	char *k = strdup(key), *c = strdup(chain), *b = strdup(bundle);
	struct zm_spiffe_id id;

	if (!k || !c || !b || zm_spiffe_make(&id, "cluster.local", ns, sa)) {
		free(k);
		free(c);
		free(b);
		return -ENOMEM;
	}
	pthread_mutex_lock(&mesh_mu);
	free(mesh_key);
	free(mesh_chain);
	free(mesh_bundle);
	mesh_key = k;
	mesh_chain = c;
	mesh_bundle = b;
	zm_spiffe_format(&id, mesh_id, sizeof(mesh_id));
	pthread_mutex_unlock(&mesh_mu);
	return 0;
}

int wp_mesh_cred(char **key, char **chain, char **bundle, char *id, size_t idsz)
{
	int rc = 0;

	*key = *chain = *bundle = NULL;
	pthread_mutex_lock(&mesh_mu);
	if (!mesh_key) {
		rc = -ENOENT;
	} else if (!(*key = strdup(mesh_key)) || !(*chain = strdup(mesh_chain)) ||
		   !(*bundle = strdup(mesh_bundle))) {
		rc = -ENOMEM;
	} else {
		snprintf(id, idsz, "%s", mesh_id);
	}
	pthread_mutex_unlock(&mesh_mu);
	if (rc) {
		free(*key);
		free(*chain);
		free(*bundle);
		*key = *chain = *bundle = NULL;
	}
	return rc;
}

int wp_hbone_set_cert(const char *key, const char *chain, const char *bundle, const char *ns, const char *sa)
{
	struct zm_error e = { "" };
	SSL_CTX *sctx = zm_tls_ctx_new(true, key, chain, bundle, "cluster.local", &e), *cctx = NULL, *old;

	/* the same identity, as a client: HBONE to meshed endpoints (hbup.c) */
	if (sctx)
		cctx = zm_tls_ctx_new(false, key, chain, bundle, "cluster.local", &e);
	if (!cctx) {
		zm_log_error("hbone: certificate for ns/%s/sa/%s: %s", ns, sa, e.msg);
		SSL_CTX_free(sctx);
		return -EINVAL;
	}
	pthread_mutex_lock(&ctx_mu);
	old = server_ctx;
	server_ctx = sctx;
	pthread_mutex_unlock(&ctx_mu);
	SSL_CTX_free(old);
	wp_hbup_init(cctx, ns, sa);
	SSL_CTX_free(cctx);
	return mesh_cred_set(key, chain, bundle, ns, sa);
}

int wp_hbone_listen(int port, const char *ns, const char *sa)
{
	char spec[32];
	int lfd;
	pthread_t th;

	snprintf(spec, sizeof(spec), "0.0.0.0:%d", port);
	lfd = wp_listen(spec);
	if (lfd < 0)
		return lfd;
	if (pthread_create(&th, NULL, hb_accept_thread, (void *)(intptr_t)lfd)) {
		close(lfd);
		return -EAGAIN;
	}
	pthread_detach(th);
	zm_log_info("hbone on :%d as spiffe://cluster.local/ns/%s/sa/%s", port, ns, sa);
	return 0;
}

int wp_hbone_start(int port, const char *ca_dir, const char *ns, const char *sa)
{
	struct zm_ca *ca = NULL;
	struct zm_error e = { "" };
	struct zm_spiffe_id id;
	char *key = NULL, *csr = NULL, *chain = NULL;
	int rc;

	rc = zm_ca_open(ca_dir, &ca, &e);
	if (!rc)
		rc = zm_spiffe_make(&id, "cluster.local", ns, sa);
	if (!rc)
		rc = zm_key_csr(&id, &key, &csr, &e);
	if (!rc)
		rc = zm_ca_sign(ca, csr, &id, 24 * 3600, &chain, &e);
	if (rc)
		zm_log_error("hbone: certificate for ns/%s/sa/%s: %s", ns, sa, e.msg);
	else
		rc = wp_hbone_set_cert(key, chain, zm_ca_bundle(ca), ns, sa);
	free(key);
	free(csr);
	free(chain);
	zm_ca_free(ca);
	return rc ? rc : wp_hbone_listen(port, ns, sa);
}
