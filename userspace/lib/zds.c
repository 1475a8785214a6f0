// SPDX-License-Identifier: Apache-2.0
/* ZDS: the enrolment messages between a node agent and ztunnel (zds.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "zmesh/fsutil.h"
#include "zmesh/json.h"
#include "zmesh/zds.h"

#define MAX_LABELS 64

int zm_zds_path(const char *node_key, char *buf, size_t sz)
{
	struct sockaddr_un un;
	int n;

	if (!node_key[0] || strchr(node_key, '/') || !strcmp(node_key, ".") || !strcmp(node_key, ".."))
		return -EINVAL;
	n = snprintf(buf, sz, "%s/%s/ztunnel.sock", ZM_ZDS_RUN_DIR, node_key);
	if (n < 0 || (size_t)n >= sz || (size_t)n >= sizeof(un.sun_path))
		return -ENAMETOOLONG;
	return 0;
}

/* Kubernetes-ish names: [a-z0-9] and @extra, 1..@max bytes. */
static bool name_ok(const char *s, size_t max, const char *extra)
{
	size_t n = strlen(s);

	if (!n || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || strchr(extra, s[i])))
			return false;
	return true;
}

/* A string field @key of @obj into @out; @required or "" when absent. */
static int str_field(json_t *obj, const char *where, const char *key, bool required, char *out,
		     size_t sz, struct zm_error *e)
{
	json_t *v = json_object_get(obj, key);

	out[0] = 0;
	if (!v)
		return required ? zm_error_set(e, EINVAL, "%s%s: missing", where, key) : 0;
	if (!json_is_string(v))
		return zm_error_set(e, EINVAL, "%s%s: want a string", where, key);
	if (json_string_length(v) >= sz || strlen(json_string_value(v)) != json_string_length(v))
		return zm_error_set(e, EINVAL, "%s%s: longer than %zu bytes or holds a NUL", where, key,
				    sz - 1);
	memcpy(out, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

static int only_keys(json_t *obj, const char *where, const char *const *keys, struct zm_error *e)
{
	const char *k;
	json_t *v;

	json_object_foreach(obj, k, v) {
		bool known = false;

		for (size_t i = 0; keys[i] && !known; i++)
			known = !strcmp(k, keys[i]);
		if (!known)
			return zm_error_set(e, EINVAL, "%s%s: unknown field", where, k);
	}
	return 0;
}

static int parse_workload(json_t *o, struct zm_zds_workload *w, struct zm_error *e)
{
	static const char *const keys[] = { "uid", "namespace", "name", "service_account", "node", "ip",
					    "cgroup", "host_interface", "labels", NULL };
	const char *W = "workload.";
	char ip[64];
	json_t *labels;
	int rc;

	if (!json_is_object(o))
		return zm_error_set(e, EINVAL, "workload: want an object");
	if ((rc = only_keys(o, W, keys, e)) ||
	    (rc = str_field(o, W, "uid", true, w->uid, sizeof(w->uid), e)) ||
	    (rc = str_field(o, W, "namespace", true, w->ns, sizeof(w->ns), e)) ||
	    (rc = str_field(o, W, "name", true, w->name, sizeof(w->name), e)) ||
	    (rc = str_field(o, W, "service_account", false, w->sa, sizeof(w->sa), e)) ||
	    (rc = str_field(o, W, "node", false, w->node, sizeof(w->node), e)) ||
	    (rc = str_field(o, W, "ip", true, ip, sizeof(ip), e)) ||
	    (rc = str_field(o, W, "cgroup", true, w->cgroup, sizeof(w->cgroup), e)) ||
	    (rc = str_field(o, W, "host_interface", false, w->host_if, sizeof(w->host_if), e)))
		return rc;
	if (!name_ok(w->uid, sizeof(w->uid) - 1, "-ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
		return zm_error_set(e, EINVAL, "workload.uid: want letters, digits and '-'");
	if (!name_ok(w->ns, 63, "-"))
		return zm_error_set(e, EINVAL, "workload.namespace: %s: not a DNS-1123 label", w->ns);
	if (!name_ok(w->name, 63, "-"))
		return zm_error_set(e, EINVAL, "workload.name: %s: not a DNS-1123 label", w->name);
	if (!w->sa[0])
		snprintf(w->sa, sizeof(w->sa), "default");
	if (!name_ok(w->sa, 63, "-."))
		return zm_error_set(e, EINVAL, "workload.service_account: %s: not a DNS-1123 name", w->sa);
	if (w->node[0] && !name_ok(w->node, 63, "-."))
		return zm_error_set(e, EINVAL, "workload.node: %s: not a DNS-1123 name", w->node);
	if (inet_pton(AF_INET, ip, &w->ip) != 1 || !w->ip.s_addr)
		return zm_error_set(e, EINVAL, "workload.ip: %s: want an IPv4 address", ip);
	if (w->cgroup[0] != '/' || strstr(w->cgroup, "/../") || strstr(w->cgroup, "/./") ||
	    (strlen(w->cgroup) >= 3 && !strcmp(w->cgroup + strlen(w->cgroup) - 3, "/..")))
		return zm_error_set(e, EINVAL, "workload.cgroup: want an absolute path without . or ..");
	if (w->host_if[0] && (strchr(w->host_if, '/') || w->host_if[0] == '.'))
		return zm_error_set(e, EINVAL, "workload.host_interface: %s: not an interface name", w->host_if);
	labels = json_object_get(o, "labels");
	if (labels) {
		const char *k;
		json_t *v;

		if (!json_is_object(labels))
			return zm_error_set(e, EINVAL, "workload.labels: want an object of strings");
		if (json_object_size(labels) > MAX_LABELS)
			return zm_error_set(e, EINVAL, "workload.labels: more than %d labels", MAX_LABELS);
		json_object_foreach(labels, k, v) {
			if (!json_is_string(v) || strlen(k) > 317 || json_string_length(v) > 63 ||
			    strlen(json_string_value(v)) != json_string_length(v))
				return zm_error_set(e, EINVAL, "workload.labels.%.64s: want a string of at most 63 bytes",
						    k);
			if (zm_labels_set(&w->labels, k, json_string_value(v)))
				return zm_error_set(e, ENOMEM, "out of memory");
		}
	}
	return 0;
}

int zm_zds_parse(const char *json, size_t len, struct zm_zds_msg *m, struct zm_error *e)
{
	static const char *const add_keys[] = { "type", "workload", NULL };
	static const char *const uid_keys[] = { "type", "uid", NULL };
	static const char *const bare_keys[] = { "type", NULL };
	json_error_t je;
	json_t *root;
	char type[32];
	int rc;

	memset(m, 0, sizeof(*m));
	if (len > ZM_ZDS_MAX_MSG)
		return zm_error_set(e, EMSGSIZE, "message of %zu bytes: at most %d", len, ZM_ZDS_MAX_MSG);
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return zm_error_set(e, EINVAL, "1:%d: not JSON: %s", je.column, je.text);
	if (!json_is_object(root)) {
		rc = zm_error_set(e, EINVAL, "message: want an object");
		goto out;
	}
	rc = str_field(root, "", "type", true, type, sizeof(type), e);
	if (rc)
		goto out;
	if (!strcmp(type, "add")) {
		m->type = ZM_ZDS_ADD;
		rc = only_keys(root, "", add_keys, e);
		if (!rc && !json_object_get(root, "workload"))
			rc = zm_error_set(e, EINVAL, "workload: missing");
		if (!rc)
			rc = parse_workload(json_object_get(root, "workload"), &m->w, e);
	} else if (!strcmp(type, "keep") || !strcmp(type, "del")) {
		m->type = type[0] == 'k' ? ZM_ZDS_KEEP : ZM_ZDS_DEL;
		rc = only_keys(root, "", uid_keys, e);
		if (!rc)
			rc = str_field(root, "", "uid", true, m->uid, sizeof(m->uid), e);
		if (!rc && !name_ok(m->uid, sizeof(m->uid) - 1, "-ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
			rc = zm_error_set(e, EINVAL, "uid: want letters, digits and '-'");
	} else if (!strcmp(type, "snapshot_sent")) {
		m->type = ZM_ZDS_SNAPSHOT_SENT;
		rc = only_keys(root, "", bare_keys, e);
	} else {
		rc = zm_error_set(e, EINVAL, "type: %s: want add, keep, del or snapshot_sent", type);
	}
out:
	json_decref(root);
	if (rc)
		zm_zds_msg_free(m);
	return rc;
}

void zm_zds_msg_free(struct zm_zds_msg *m)
{
	zm_labels_free(&m->w.labels);
}

/* Reserve the length prefix, then fill it in once the JSON is there. */
static int frame_begin(struct zm_buf *b, size_t *at)
{
	*at = zm_buf_len(b);
	return zm_buf_append(b, "\0\0\0\0", 4);
}

static int frame_end(struct zm_buf *b, size_t at, int rc)
{
	size_t n = zm_buf_len(b) - at - 4;
	unsigned char *p;

	if (rc)
		return rc;
	if (n > ZM_ZDS_MAX_MSG)
		return -EMSGSIZE;
	p = (unsigned char *)zm_buf_data(b) + at;
	p[0] = (unsigned char)(n >> 24);
	p[1] = (unsigned char)(n >> 16);
	p[2] = (unsigned char)(n >> 8);
	p[3] = (unsigned char)n;
	return 0;
}

int zm_zds_encode(const struct zm_zds_msg *m, struct zm_buf *b)
{
	static const char *const types[] = { "add", "keep", "del", "snapshot_sent" };
	char ip[INET_ADDRSTRLEN];
	size_t at;
	int rc = frame_begin(b, &at);

	if (!rc)
		rc = zm_buf_puts(b, "{") || zm_json_kv_str(b, 1, "type", types[m->type]);
	if (!rc && (m->type == ZM_ZDS_KEEP || m->type == ZM_ZDS_DEL))
		rc = zm_json_kv_str(b, 0, "uid", m->uid);
	if (!rc && m->type == ZM_ZDS_ADD) {
		const struct zm_zds_workload *w = &m->w;

		inet_ntop(AF_INET, &w->ip, ip, sizeof(ip));
		rc = zm_buf_puts(b, ",\"workload\":{") || zm_json_kv_str(b, 1, "uid", w->uid) ||
		     zm_json_kv_str(b, 0, "namespace", w->ns) || zm_json_kv_str(b, 0, "name", w->name) ||
		     zm_json_kv_str(b, 0, "service_account", w->sa) ||
		     (w->node[0] && zm_json_kv_str(b, 0, "node", w->node)) || zm_json_kv_str(b, 0, "ip", ip) ||
		     zm_json_kv_str(b, 0, "cgroup", w->cgroup) ||
		     (w->host_if[0] && zm_json_kv_str(b, 0, "host_interface", w->host_if)) ||
		     zm_buf_puts(b, ",\"labels\":{");
		for (size_t i = 0; !rc && i < w->labels.n; i++)
			rc = zm_json_kv_str(b, !i, w->labels.kv[i].key, w->labels.kv[i].val);
		if (!rc)
			rc = zm_buf_puts(b, "}}");
	}
	if (!rc)
		rc = zm_buf_puts(b, "}");
	return frame_end(b, at, rc ? -ENOMEM : 0);
}

int zm_zds_encode_ack(const char *error, struct zm_buf *b)
{
	size_t at;
	int rc = frame_begin(b, &at);

	if (!rc)
		rc = zm_buf_puts(b, "{") || zm_json_kv_str(b, 1, "type", "ack") ||
		     zm_json_kv_str(b, 0, "error", error ? error : "") || zm_buf_puts(b, "}");
	return frame_end(b, at, rc ? -ENOMEM : 0);
}

int zm_zds_parse_ack(const char *json, size_t len, char *err, size_t errsz, struct zm_error *e)
{
	json_t *root = json_loadb(json, len, 0, NULL);
	json_t *t = root ? json_object_get(root, "type") : NULL, *er = root ? json_object_get(root, "error") : NULL;
	int rc = 0;

	if (!json_is_string(t) || strcmp(json_string_value(t), "ack") || (er && !json_is_string(er)))
		rc = zm_error_set(e, EPROTO, "ztunnel answered something else than an ack");
	else
		snprintf(err, errsz, "%s", er ? json_string_value(er) : "");
	json_decref(root);
	return rc;
}

static void close_fds(struct msghdr *mh)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int fds[16];

		memcpy(fds, CMSG_DATA(c), (n > 16 ? 16 : n) * sizeof(int));
		for (size_t i = 0; i < n && i < 16; i++)
			close(fds[i]);
	}
}

int zm_zds_recv(int fd, char *buf, size_t sz, const char **json, size_t *len, int *nsfd,
		struct zm_error *e)
{
	/* Room for a few fds, so a sender of too many is told, not silently cut. */
	union { char b[CMSG_SPACE(8 * sizeof(int))]; struct cmsghdr align; } ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = sz };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
			     .msg_controllen = sizeof(ctl.b) };
	const unsigned char *p = (const unsigned char *)buf;
	size_t nfds = 0, want;
	ssize_t n;
	int rc = 0;

	*json = NULL;
	*len = 0;
	*nsfd = -1;
	n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			nfds += (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			if (nfds == 1)
				memcpy(nsfd, CMSG_DATA(c), sizeof(int));
		}
	if (n == 0 && !nfds)
		return 0;
	if (mh.msg_flags & MSG_CTRUNC)
		rc = zm_error_set(e, EMSGSIZE, "too many file descriptors: want one netns fd at most");
	else if (nfds > 1)
		rc = zm_error_set(e, EINVAL, "%zu file descriptors: want one netns fd at most", nfds);
	else if (mh.msg_flags & MSG_TRUNC)
		rc = zm_error_set(e, EMSGSIZE, "record longer than %zu bytes", sz);
	else if (n < 4)
		rc = zm_error_set(e, EPROTO, "record of %zd bytes: want a 4-byte length and JSON", n);
	if (!rc) {
		want = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
		if (want > ZM_ZDS_MAX_MSG)
			rc = zm_error_set(e, EMSGSIZE, "length %zu: at most %d", want, ZM_ZDS_MAX_MSG);
		else if (want != (size_t)n - 4)
			rc = zm_error_set(e, EPROTO, "length %zu but the record holds %zd bytes", want, n - 4);
	}
	if (rc) {
		close_fds(&mh);
		*nsfd = -1;
		return rc;
	}
	*json = buf + 4;
	*len = (size_t)n - 4;
	return 0;
}

int zm_zds_send(int fd, const struct zm_buf *rec, int nsfd)
{
	union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } ctl;
	struct iovec iov = { .iov_base = zm_buf_data(rec), .iov_len = zm_buf_len(rec) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (nsfd >= 0) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.b;
		mh.msg_controllen = sizeof(ctl.b);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &nsfd, sizeof(int));
	}
	do
		n = sendmsg(fd, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == zm_buf_len(rec) ? 0 : -EIO;
}

int zm_zds_connect(const char *path)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	int fd, rc;

	if (strlen(path) >= sizeof(un.sun_path))
		return -ENAMETOOLONG;
	memcpy(un.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&un, sizeof(un)) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

int zm_zds_call(int fd, const struct zm_zds_msg *m, int nsfd, int timeout_ms, struct zm_error *e)
{
	struct zm_buf b = { 0 };
	char *rbuf = NULL;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char err[ZM_ERROR_MAX];
	const char *json;
	size_t len;
	int rc, got = -1;

	rc = zm_zds_encode(m, &b);
	if (!rc)
		rc = zm_zds_send(fd, &b, nsfd);
	zm_buf_free(&b);
	if (rc)
		return zm_error_set(e, -rc, "send: %s", strerror(-rc));
	do
		rc = poll(&pfd, 1, timeout_ms);
	while (rc < 0 && errno == EINTR);
	if (rc <= 0)
		return zm_error_set(e, rc ? errno : ETIMEDOUT, "no ack from ztunnel within %d ms", timeout_ms);
	rbuf = malloc(4 + ZM_ZDS_MAX_MSG);
	if (!rbuf)
		return zm_error_set(e, ENOMEM, "out of memory");
	rc = zm_zds_recv(fd, rbuf, 4 + ZM_ZDS_MAX_MSG, &json, &len, &got, e);
	if (got >= 0)
		close(got);
	if (!rc && !json)
		rc = zm_error_set(e, ECONNRESET, "ztunnel closed the connection");
	if (!rc)
		rc = zm_zds_parse_ack(json, len, err, sizeof(err), e);
	if (!rc && err[0])
		rc = zm_error_set(e, EREMOTEIO, "%s", err);
	free(rbuf);
	return rc;
}

int zm_zds_listen(const char *path, struct zm_error *e)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	char dir[sizeof(un.sun_path)];
	char *slash;
	int fd, rc;

	if (strlen(path) >= sizeof(un.sun_path))
		return zm_error_set(e, ENAMETOOLONG, "%s: too long for a Unix socket", path);
	memcpy(un.sun_path, path, strlen(path) + 1);
	memcpy(dir, path, strlen(path) + 1);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		rc = zm_mkdir_p(dir, 0700);
		if (rc)
			return zm_error_set(e, -rc, "%s: %s", dir, strerror(-rc));
		if (chmod(dir, 0700) < 0)
			return zm_error_set(e, errno, "%s: %s", dir, strerror(errno));
	}
	/* A socket file nobody answers on is a crashed ztunnel's: replace it.
	 * One somebody answers on is a live ztunnel's: never steal it. */
	fd = zm_zds_connect(path);
	if (fd >= 0) {
		close(fd);
		return zm_error_set(e, EADDRINUSE, "%s: another ztunnel serves this node", path);
	}
	if (fd == -ECONNREFUSED)
		unlink(path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return zm_error_set(e, errno, "socket: %s", strerror(errno));
	/* 0600 from the start: no window where another user could connect. */
	mode_t old = umask(0177);

	rc = bind(fd, (struct sockaddr *)&un, sizeof(un));
	umask(old);
	if (rc < 0 || chmod(path, 0600) < 0 || listen(fd, 8) < 0) {
		rc = zm_error_set(e, errno, "%s: %s", path, strerror(errno));
		close(fd);
		return rc;
	}
	return fd;
}

int zm_zds_peer_check(int fd, struct zm_error *e)
{
	struct ucred cr;
	socklen_t l = sizeof(cr);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) < 0)
		return zm_error_set(e, errno, "SO_PEERCRED: %s", strerror(errno));
	if (cr.uid != 0)
		return zm_error_set(e, EPERM, "peer pid %d runs as uid %u: only root may enrol pods",
				    (int)cr.pid, (unsigned)cr.uid);
	return 0;
}
