// SPDX-License-Identifier: Apache-2.0
/*
 * :15014, plain HTTP/1.1 for operators and zmeshctl (Istio's monitoring
 * port): GET /debug/syncz, /metrics, /ready. One request per connection,
 * answered with Connection: close. Only GET with a request line and
 * headers under 8 KiB is read: this port serves no body and changes no
 * state, so a full HTTP parser would buy nothing here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "zmesh/log.h"
#include "zmeshd.h"

#define REQ_MAX 8192
#define MAX_MONITOR_CONNS 64

#define MONITOR_IDLE_MS 10000

struct mconn {
	struct zd_ev ev;
	struct zd *d;
	int fd;
	struct zm_buf in, out;
	bool answered;
	long long deadline;
	struct mconn *next;
};

static int nmconns;
static struct mconn *mconns;

static void mclose(struct mconn *m)
{
	for (struct mconn **p = &mconns; *p; p = &(*p)->next)
		if (*p == m) {
			*p = m->next;
			break;
		}
	epoll_ctl(m->d->ep, EPOLL_CTL_DEL, m->fd, NULL);
	close(m->fd);
	zm_buf_free(&m->in);
	zm_buf_free(&m->out);
	free(m);
	nmconns--;
}

void zd_monitor_accept(struct zd *d)
{
	for (;;) {
		int fd = accept4(d->mfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct epoll_event ev = { .events = EPOLLIN };
		struct mconn *m;

		if (fd < 0)
			return;
		m = nmconns < MAX_MONITOR_CONNS ? calloc(1, sizeof(*m)) : NULL;
		if (!m) {
			close(fd);
			continue;
		}
		m->ev.kind = ZD_MONITOR_CONN;
		m->d = d;
		m->fd = fd;
		ev.data.ptr = &m->ev;
		if (epoll_ctl(d->ep, EPOLL_CTL_ADD, fd, &ev)) {
			close(fd);
			free(m);
			continue;
		}
		m->deadline = zd_now_ms() + MONITOR_IDLE_MS;
		m->next = mconns;
		mconns = m;
		nmconns++;
	}
}

void zd_monitor_sweep(struct zd *d)
{
	long long now = zd_now_ms();
	struct mconn *next;

	(void)d;
	for (struct mconn *m = mconns; m; m = next) {
		next = m->next;
		if (now > m->deadline)
			mclose(m);
	}
}

static void metrics(struct zd *d, struct zm_buf *b)
{
	int connected = 0, synced = 0;
	json_t *sz = zd_syncz(d), *p;
	size_t i;

	json_array_foreach(json_object_get(sz, "proxies"), i, p) {
		connected += json_is_true(json_object_get(p, "connected"));
		synced += !strcmp(json_string_value(json_object_get(p, "status")) ?: "", "SYNCED");
	}
	json_decref(sz);
	zm_buf_printf(b,
		"# HELP zmeshd_config_version The store version zmeshd serves.\n"
		"# TYPE zmeshd_config_version gauge\nzmeshd_config_version %llu\n"
		"# HELP zmeshd_proxies Proxies known, connected, in sync.\n# TYPE zmeshd_proxies gauge\n"
		"zmeshd_proxies{state=\"connected\"} %d\nzmeshd_proxies{state=\"synced\"} %d\n"
		"# HELP zmeshd_connections Open :15012 connections.\n# TYPE zmeshd_connections gauge\n"
		"zmeshd_connections %d\n"
		"# HELP zmeshd_csr_total Certificate requests by result.\n# TYPE zmeshd_csr_total counter\n"
		"zmeshd_csr_total{result=\"issued\"} %llu\nzmeshd_csr_total{result=\"denied\"} %llu\n"
		"zmeshd_csr_total{result=\"invalid\"} %llu\n"
		"# HELP zmeshd_pushes_total Config messages sent.\n# TYPE zmeshd_pushes_total counter\n"
		"zmeshd_pushes_total{kind=\"snapshot\"} %llu\nzmeshd_pushes_total{kind=\"delta\"} %llu\n"
		"# HELP zmeshd_unchanged_views_total Store versions that left a proxy's view as it was (no push).\n"
		"# TYPE zmeshd_unchanged_views_total counter\nzmeshd_unchanged_views_total %llu\n"
		"# HELP zmeshd_acks_total ACKs and NACKs received.\n# TYPE zmeshd_acks_total counter\n"
		"zmeshd_acks_total{result=\"ack\"} %llu\nzmeshd_acks_total{result=\"nack\"} %llu\n"
		"# HELP zmeshd_tls_handshake_failures_total Refused or failed handshakes on :15012.\n"
		"# TYPE zmeshd_tls_handshake_failures_total counter\nzmeshd_tls_handshake_failures_total %llu\n"
		"# HELP zmeshd_store_reloads_total Store generations loaded, or refused.\n"
		"# TYPE zmeshd_store_reloads_total counter\nzmeshd_store_reloads_total{result=\"ok\"} %llu\n"
		"zmeshd_store_reloads_total{result=\"error\"} %llu\n"
		"# HELP zmeshd_ca_reloads_total CA reloads after its files changed (root rotation).\n"
		"# TYPE zmeshd_ca_reloads_total counter\nzmeshd_ca_reloads_total %llu\n",
		(unsigned long long)d->cur.version, connected, synced, d->nconns, d->st.csr_issued,
		d->st.csr_denied, d->st.csr_invalid, d->st.snapshots, d->st.deltas, d->st.unchanged, d->st.acks, d->st.nacks,
		d->st.handshake_fail, d->st.reloads, d->st.reload_errors, d->st.ca_reloads);
}

static void answer(struct mconn *m)
{
	const char *req = zm_buf_cstr(&m->in);
	char path[256];
	struct zm_buf body = { 0 };
	const char *status = "200 OK", *ctype = "application/json";

	path[0] = 0;
	if (strncmp(req, "GET ", 4) || sscanf(req + 4, "%255s", path) != 1) {
		status = "405 Method Not Allowed";
		zm_buf_puts(&body, "only GET\n");
		ctype = "text/plain";
	} else if (!strcmp(path, "/debug/syncz")) {
		json_t *j = zd_syncz(m->d);
		char *txt = j ? json_dumps(j, JSON_INDENT(2)) : NULL;

		zm_buf_puts(&body, txt ? txt : "{}");
		zm_buf_puts(&body, "\n");
		free(txt);
		json_decref(j);
	} else if (!strcmp(path, "/metrics")) {
		metrics(m->d, &body);
		ctype = "text/plain; version=0.0.4";
	} else if (!strcmp(path, "/ready")) {
		zm_buf_puts(&body, "ready\n");
		ctype = "text/plain";
	} else {
		status = "404 Not Found";
		zm_buf_puts(&body, "not found\n");
		ctype = "text/plain";
	}
	zm_buf_printf(&m->out, "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
		      status, ctype, zm_buf_len(&body));
	zm_buf_append(&m->out, zm_buf_data(&body) ? zm_buf_data(&body) : "", zm_buf_len(&body));
	zm_buf_free(&body);
	m->answered = true;
}

void zd_monitor_io(struct zd_ev *ev, uint32_t events)
{
	struct mconn *m = (struct mconn *)ev;
	struct epoll_event e = { .events = EPOLLOUT, .data.ptr = ev };

	if (!m->answered) {
		char buf[2048];
		ssize_t n;

		while ((n = recv(m->fd, buf, sizeof(buf), 0)) > 0) {
			if (zm_buf_len(&m->in) + (size_t)n > REQ_MAX) {
				mclose(m);
				return;
			}
			zm_buf_append(&m->in, buf, (size_t)n);
		}
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			mclose(m);
			return;
		}
		if (!strstr(zm_buf_cstr(&m->in), "\r\n\r\n"))
			return;
		answer(m);
		epoll_ctl(m->d->ep, EPOLL_CTL_MOD, m->fd, &e);
	}
	(void)events;
	while (zm_buf_len(&m->out)) {
		ssize_t w = send(m->fd, zm_buf_data(&m->out), zm_buf_len(&m->out), MSG_NOSIGNAL);

		if (w < 0 && errno == EAGAIN)
			return;
		if (w <= 0)
			break;
		zm_buf_consume(&m->out, (size_t)w);
	}
	mclose(m);
}
