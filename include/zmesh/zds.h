/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ZDS: how pods are enrolled into (and taken out of) a node's ztunnel, after
 * Istio's ztunnel "zds" protocol (zds.proto: WorkloadRequest add / keep / del /
 * snapshot_sent, WorkloadResponse ack{error}), without protobuf.
 *
 * Transport: a Unix SOCK_SEQPACKET socket per node, zm_zds_path(), made by
 * ztunnel (directory 0700, socket 0600, root); ztunnel serves one client at a
 * time and takes only peers with uid 0 (SO_PEERCRED). Each request is one
 * record: a 4-byte big-endian length, then that many bytes of JSON (at most
 * ZM_ZDS_MAX_MSG). An add carries the pod's network namespace as exactly one
 * fd in SCM_RIGHTS; other requests carry none. ztunnel answers every request
 * with one record of the same framing: {"type":"ack","error":""} when done,
 * or a message naming the field or the check that failed.
 *
 *   {"type":"add","workload":{"uid":"...","namespace":"mesh","name":"a",
 *     "service_account":"default","node":"n1","ip":"10.244.0.2",
 *     "cgroup":"/sys/fs/cgroup/zmesh/lab/pods/mesh_a","host_interface":"zp0",
 *     "labels":{"app":"a"}}}                           + the netns fd
 *   {"type":"keep","uid":"..."}     still there (after a reconnect), no fd
 *   {"type":"del","uid":"..."}
 *   {"type":"snapshot_sent"}        every pod of the node was added or kept:
 *                                    ztunnel drops the others
 *
 * A client connects, sends add/keep for every pod that should be enrolled,
 * then snapshot_sent, then adds and dels as pods come and go; on a new
 * connection (ztunnel restarted) it starts over with the snapshot.
 *
 * Functions return 0 or a negative errno; messages go to @e.
 */
#ifndef ZMESH_ZDS_H
#define ZMESH_ZDS_H

#include <limits.h>
#include <netinet/in.h>
#include <stddef.h>

#include "zmesh/buf.h"
#include "zmesh/labels.h"
#include "zmesh/log.h"

#define ZM_ZDS_MAX_MSG (64 * 1024)	/* JSON bytes of one record */
#define ZM_ZDS_RUN_DIR "/run/zmesh"

enum zm_zds_type { ZM_ZDS_ADD, ZM_ZDS_KEEP, ZM_ZDS_DEL, ZM_ZDS_SNAPSHOT_SENT };

struct zm_zds_workload {
	char uid[128];
	char ns[64], name[64], sa[64], node[64];
	struct in_addr ip;
	char cgroup[PATH_MAX];
	char host_if[16];		/* node side of the pod's veth; "" when not known */
	struct zm_labels labels;
};

struct zm_zds_msg {
	enum zm_zds_type type;
	char uid[128];			/* keep, del */
	struct zm_zds_workload w;	/* add */
};

/* "/run/zmesh/<node key>/ztunnel.sock" (the node key as BPF pins use it:
 * the node's netns name in the lab). -ENAMETOOLONG past sun_path. */
int zm_zds_path(const char *node_key, char *buf, size_t sz);

/*
 * Read one record's JSON (@len bytes, the length prefix already stripped)
 * into @m (zeroed here; free with zm_zds_msg_free). Errors name the field:
 * "workload.ip: want an IPv4 address".
 */
int zm_zds_parse(const char *json, size_t len, struct zm_zds_msg *m, struct zm_error *e);
void zm_zds_msg_free(struct zm_zds_msg *m);
/* The record for @m (length prefix included) appended to @b. */
int zm_zds_encode(const struct zm_zds_msg *m, struct zm_buf *b);
/* An ack record: @error NULL or "" for success. */
int zm_zds_encode_ack(const char *error, struct zm_buf *b);
/* An ack's JSON: 0 with @err "" for success, its text otherwise. */
int zm_zds_parse_ack(const char *json, size_t len, char *err, size_t errsz, struct zm_error *e);

/*
 * One record from @fd into @buf (@sz >= 4 + ZM_ZDS_MAX_MSG): *@json and
 * *@len point at the JSON inside. *@nsfd gets the passed fd or -1; more than
 * one fd, a truncated record or control message, a length prefix that
 * disagrees with the record are errors (any fds received are closed then).
 * 0 with *@len 0 and *@json NULL: the peer closed.
 */
int zm_zds_recv(int fd, char *buf, size_t sz, const char **json, size_t *len, int *nsfd,
		struct zm_error *e);
/* Send one record, with @nsfd (>= 0) in SCM_RIGHTS. */
int zm_zds_send(int fd, const struct zm_buf *rec, int nsfd);

/* Client: a connection to the socket at @path (-ENOENT/-ECONNREFUSED while no
 * ztunnel serves it). */
int zm_zds_connect(const char *path);
/*
 * Send @m (with @nsfd for an add) and wait up to @timeout_ms for the ack.
 * 0: acked; -EREMOTEIO: ztunnel refused it, its reason in @e; other errors:
 * the connection failed (reconnect and replay the snapshot).
 */
int zm_zds_call(int fd, const struct zm_zds_msg *m, int nsfd, int timeout_ms, struct zm_error *e);

/* Server: make the directory and socket at @path (stale socket replaced;
 * -EADDRINUSE when a live server answers there). Non-blocking listener. */
int zm_zds_listen(const char *path, struct zm_error *e);
/* 0 when the peer of @fd runs as root, else -EPERM with the uid in @e. */
int zm_zds_peer_check(int fd, struct zm_error *e);

#endif /* ZMESH_ZDS_H */
