// SPDX-License-Identifier: Apache-2.0
/*
 * The enrolment socket (zds.h): one client at a time (the node agent), root
 * only; every record is answered with an ack, an error naming what was wrong
 * when the request cannot be done. Nothing a client sends stops ztunnel from
 * serving traffic: a bad record is refused, the connection stays.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ztunnel.h"
#include "zmesh/buf.h"
#include "zmesh/zds.h"

/* Records a client may send per wake-up before others get a turn. */
#define ZDS_BURST 64

static void reply(int fd, const char *error)
{
	struct zm_buf b = { 0 };

	/* The client waits for every ack, so the socket buffer always has
	 * room; a client that does not read is its own problem. */
	if (!zm_zds_encode_ack(error, &b) && zm_zds_send(fd, &b, -1))
		zm_log_debug("zds: ack not sent: %s", strerror(errno));
	zm_buf_free(&b);
}

int zt_zds_start(struct zt *z)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &z->zds_listen };
	struct zm_error e = { 0 };
	int fd, rc;

	z->zds_listen.fd = z->zds_client.fd = -1;
	rc = zm_zds_path(z->me->netns, z->zds_path, sizeof(z->zds_path));
	if (rc) {
		zm_log_error("zds: no socket path for node %s: %s", z->me->netns, strerror(-rc));
		return rc;
	}
	fd = zm_zds_listen(z->zds_path, &e);
	if (fd < 0) {
		zm_log_error("zds: %s", e.msg);
		z->zds_path[0] = 0;	/* not ours to remove */
		return fd;
	}
	z->zds_listen = (struct zt_ev){ .kind = ZT_ZDS_LISTEN, .fd = fd };
	if (epoll_ctl(z->ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	zm_log_info("zds: waiting for enrolment on %s", z->zds_path);
	return 0;
}

static void client_close(struct zt *z, const char *why)
{
	if (z->zds_client.fd < 0)
		return;
	epoll_ctl(z->ep, EPOLL_CTL_DEL, z->zds_client.fd, NULL);
	close(z->zds_client.fd);
	z->zds_client.fd = -1;
	zm_log_info("zds: client gone (%s)%s", why,
		    z->zds_snapshot ? "" : "; enrolment stays as it was until the next snapshot");
}

static void on_accept(struct zt *z)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct zm_error e = { 0 };
	int fd = accept4(z->zds_listen.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	if (zm_zds_peer_check(fd, &e)) {
		z->zds_refused++;
		zm_log_warn("zds: %s", e.msg);
		reply(fd, e.msg);
		close(fd);
		return;
	}
	if (z->zds_client.fd >= 0) {
		/* Two writers would undo each other's snapshot. */
		z->zds_refused++;
		zm_log_warn("zds: a second client refused (one is connected)");
		reply(fd, "another client is connected: ztunnel takes one enrolment stream at a time");
		close(fd);
		return;
	}
	z->zds_client = (struct zt_ev){ .kind = ZT_ZDS, .fd = fd };
	ev.data.ptr = &z->zds_client;
	if (epoll_ctl(z->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
		close(fd);
		z->zds_client.fd = -1;
		return;
	}
	/* A new stream starts with a snapshot: what it does not name goes. */
	z->zds_snapshot = false;
	zt_pods_snapshot_begin(z);
	zm_log_info("zds: client connected");
}

static const char *const type_name[] = { "add", "keep", "del", "snapshot_sent" };

/* One request: 0 done, else @e says why. Takes @nsfd. */
static int handle(struct zt *z, const char *json, size_t len, int nsfd, struct zm_error *e)
{
	struct zm_zds_msg m;
	int rc = zm_zds_parse(json, len, &m, e);

	if (rc) {
		if (nsfd >= 0)
			close(nsfd);
		return rc;
	}
	if (m.type != ZM_ZDS_ADD && nsfd >= 0) {
		close(nsfd);
		rc = zm_error_set(e, EINVAL, "%s: carries a file descriptor; only add passes one",
				  type_name[m.type]);
		goto out;
	}
	switch (m.type) {
	case ZM_ZDS_ADD:
		rc = zt_pod_add(z, &m.w, nsfd, e);
		break;
	case ZM_ZDS_KEEP:
		rc = z->zds_snapshot ? zm_error_set(e, EINVAL, "keep: only before snapshot_sent")
				     : zt_pod_keep(z, m.uid, e);
		break;
	case ZM_ZDS_DEL:
		rc = zt_pod_del(z, m.uid, e);
		break;
	case ZM_ZDS_SNAPSHOT_SENT:
		if (z->zds_snapshot) {
			rc = zm_error_set(e, EINVAL, "snapshot_sent: sent already on this connection");
			break;
		}
		zt_pods_snapshot_end(z);
		z->zds_snapshot = true;
		if (!z->enrolled_once)
			zm_log_info("zds: first snapshot in");
		z->enrolled_once = true;
		break;
	}
out:
	zm_zds_msg_free(&m);
	return rc;
}

void zt_zds_event(struct zt *z, struct zt_ev *ev, uint32_t events)
{
	static char buf[4 + ZM_ZDS_MAX_MSG];	/* one thread serves ZDS */

	if (ev->kind == ZT_ZDS_LISTEN) {
		on_accept(z);
		return;
	}
	for (int i = 0; i < ZDS_BURST && z->zds_client.fd >= 0; i++) {
		struct zm_error e = { 0 };
		const char *json;
		size_t len;
		int nsfd, rc;

		rc = zm_zds_recv(z->zds_client.fd, buf, sizeof(buf), &json, &len, &nsfd, &e);
		if (rc == -EAGAIN || rc == -EWOULDBLOCK)
			return;
		if ((rc && !e.msg[0]) || (!rc && !json)) {
			client_close(z, rc ? strerror(-rc) : "closed");
			return;
		}
		z->zds_requests++;
		if (!rc)
			rc = handle(z, json, len, nsfd, &e);
		if (rc) {
			z->zds_refused++;
			zm_log_warn("zds: refused: %s", e.msg);
		}
		reply(z->zds_client.fd, rc ? e.msg : NULL);
	}
	(void)events;
}

void zt_zds_stop(struct zt *z)
{
	client_close(z, "ztunnel stopping");
	if (z->zds_listen.fd >= 0) {
		close(z->zds_listen.fd);
		z->zds_listen.fd = -1;
	}
	if (z->zds_path[0])
		unlink(z->zds_path);
}

void zt_zds_metrics(struct zt *z, struct zm_buf *b)
{
	zm_buf_printf(b, "# HELP zmesh_ztunnel_zds_requests_total Enrolment requests (ZDS) received\n"
		      "# TYPE zmesh_ztunnel_zds_requests_total counter\n"
		      "zmesh_ztunnel_zds_requests_total %llu\n"
		      "# HELP zmesh_ztunnel_zds_refused_total Enrolment requests or clients refused\n"
		      "# TYPE zmesh_ztunnel_zds_refused_total counter\n"
		      "zmesh_ztunnel_zds_refused_total %llu\n",
		      (unsigned long long)z->zds_requests, (unsigned long long)z->zds_refused);
}
