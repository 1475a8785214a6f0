// SPDX-License-Identifier: Apache-2.0
/*
 * Enrolment over ZDS (zds.h, docs/ztunnel.md "Enrolment"): the lab's node
 * agent enrols and unenrols pods live as labels change; a client of our own
 * on the socket adds and deletes a pod and gets every bad request refused
 * with a reason while ztunnel keeps serving; a ztunnel restarted by hand
 * gets the snapshot replayed and drops a pod that left while it was down.
 * "Captured" is read from the kernel: node 1's BPF `redirected` counter
 * moves when pod a connects.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../harness/test.h"
#include "labkit.h"
#include "zmesh/lab.h"
#include "zmesh/netns.h"
#include "zmesh/zds.h"

FIXTURE(zds) {
	struct labkit k;
	char sock[128];
	int fd;		/* our ZDS connection, -1 when none */
};

FIXTURE_SETUP(zds)
{
	/* a: 10.244.0.2 and c: 10.244.0.3 on node 1, b: 10.244.1.2 on node 2 */
	static const struct lab_pod pods[] = {
		{ .name = "a", .ns = "mesh", .node = 1, .labels = "{app: a}" },
		{ .name = "b", .ns = "mesh", .node = 2, .labels = "{app: b}" },
		{ .name = "c", .ns = "plain", .node = 1, .labels = "{app: c}" },
	};

	REQUIRE_ROOT();
	self->fd = -1;
	lab_init(&self->k, "d", "dn");
	snprintf(self->sock, sizeof(self->sock), "/run/zmesh/zm-%s-%s/ztunnel.sock", self->k.lab, self->k.n1);
	ASSERT_OK(lab_write(&self->k, LAB_NS_MESH LAB_DOC LAB_NS_PLAIN, pods, 3));
	ASSERT_OK(lab_start_ready(&self->k, NULL));
}

FIXTURE_TEARDOWN(zds)
{
	if (self->fd >= 0)
		close(self->fd);
	lab_stop(&self->k);
}

static long long redirected(struct zm_fixture_zds *self)
{
	char out[256];

	if (test_sh(out, sizeof(out), "%s bpf status --node %s --name %s -o json | python3 -c "
		    "\"import json,sys; print(json.load(sys.stdin)[0]['counters']['redirected'])\"",
		    lab_ctl(), self->k.n1, self->k.lab))
		return -1;
	return atoll(out);
}

/* Pod a asks b who it is; 1 when the connect was captured (sent to
 * ztunnel), 0 when it went direct, -1 when it failed. */
static int a_talks_to_b(struct zm_fixture_zds *self)
{
	long long before = redirected(self);
	int rc = -1;

	for (int i = 0; i < 20 && rc; i++) {
		rc = test_sh(NULL, 0, "%s lab exec a -n mesh --name %s -- echoapp client http://10.244.1.2:8080/ "
			     "-n 1 --timeout 3000 | grep -q 'pod: b=1'", lab_ctl(), self->k.lab);
		if (rc)
			usleep(150000);
	}
	if (rc)
		return -1;
	return redirected(self) > before;
}

/* Wait (the agent follows the lab state) until a's capture is @want. */
static int wait_captured(struct zm_fixture_zds *self, int want)
{
	int got = -1;

	for (int i = 0; i < 50; i++) {
		got = a_talks_to_b(self);
		if (got == want)
			return 0;
		usleep(200000);
	}
	return got;
}

TEST_F(zds, label_changes_enrol_and_unenrol_live)
{
	char out[8192];

	ASSERT_EQ(a_talks_to_b(self), 1);
	/* Pod opts out: the agent sends del, the capture goes, the pod's
	 * processes never restart. */
	ASSERT_EQ(test_sh(NULL, 0, "%s lab label pod a -n mesh istio.io/dataplane-mode=none --name %s", lab_ctl(),
			  self->k.lab), 0);
	ASSERT_OK(wait_captured(self, 0));
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab exec --node %s --name %s -- curl -sf localhost:15000/config_dump",
			  lab_ctl(), self->k.n1, self->k.lab), 0);
	EXPECT_FALSE(strstr(out, "\"name\": \"a\""));
	/* And back in. */
	ASSERT_EQ(test_sh(NULL, 0, "%s lab label pod a -n mesh istio.io/dataplane-mode- --name %s", lab_ctl(),
			  self->k.lab), 0);
	ASSERT_OK(wait_captured(self, 1));
	ASSERT_EQ(test_sh(out, sizeof(out), "%s lab exec --node %s --name %s -- curl -sf localhost:15000/config_dump",
			  lab_ctl(), self->k.n1, self->k.lab), 0);
	EXPECT_STRSTR(out, "\"name\": \"a\"");
	ASSERT_EQ(test_sh(out, sizeof(out), "cat /run/zmesh/lab/%s/logs/nodeagent-%s.log", self->k.lab, self->k.n1), 0);
	EXPECT_STRSTR(out, "del ");
	EXPECT_STRSTR(out, "add mesh/a");
}

/* Stop node 1's agent so that the socket is ours. */
static int stop_agent(struct zm_fixture_zds *self)
{
	char cg[1024];

	if (zm_cgroup2_root(cg, sizeof(cg)))
		return -1;
	return test_sh(NULL, 0, "kill -9 $(cat %s/zmesh/%s/agents/%s/cgroup.procs) && sleep 0.3", cg, self->k.lab,
		       self->k.n1);
}

/* A raw record (framing of our own making) and its ack's error ("" = ok). */
static int raw_call(int fd, const void *rec, size_t n, int nsfd, char *err, size_t errsz)
{
	union { char c[CMSG_SPACE(sizeof(int))]; struct cmsghdr al; } ctl;
	struct iovec iov = { .iov_base = (void *)rec, .iov_len = n };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	static char buf[4 + ZM_ZDS_MAX_MSG];
	struct zm_error e = { 0 };
	const char *json;
	size_t len;
	int got;

	if (nsfd >= 0) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.c;
		mh.msg_controllen = sizeof(ctl.c);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &nsfd, sizeof(int));
	}
	if (sendmsg(fd, &mh, MSG_NOSIGNAL) != (ssize_t)n)
		return -errno;
	for (int i = 0; i < 100; i++) {
		int rc = zm_zds_recv(fd, buf, sizeof(buf), &json, &len, &got, &e);

		if (rc == -EAGAIN) {
			usleep(50000);
			continue;
		}
		if (rc || !json)
			return rc ? rc : -ECONNRESET;
		return zm_zds_parse_ack(json, len, err, errsz, &e);
	}
	return -ETIMEDOUT;
}

/* A JSON body framed right. */
static int raw_json(int fd, const char *json, char *err, size_t errsz)
{
	char rec[512];
	size_t n = strlen(json);

	rec[0] = rec[1] = 0;
	rec[2] = (char)(n >> 8);
	rec[3] = (char)n;
	memcpy(rec + 4, json, n);
	return raw_call(fd, rec, n + 4, -1, err, errsz);
}

/* The lab's record for pod @name (with its netns fd in *nsfd). */
static int workload(struct zm_fixture_zds *self, const char *ns, const char *name, struct zm_zds_msg *m,
		    int *nsfd)
{
	struct zm_lab lab;
	struct zm_lab_pod *p;
	int rc;

	memset(m, 0, sizeof(*m));
	m->type = ZM_ZDS_ADD;
	rc = zm_lab_load(self->k.lab, &lab, NULL);
	if (rc)
		return rc;
	p = zm_lab_pod_find(&lab, ns, name);
	rc = p ? zm_lab_zds_workload(&lab, p, &m->w) : -ENOENT;
	*nsfd = p ? zm_netns_open(p->netns) : -1;
	zm_lab_free(&lab);
	return rc;
}

static void free_msg(void *arg)
{
	zm_zds_msg_free(arg);
}

TEST_F(zds, a_client_enrols_over_the_socket_and_bad_requests_are_refused)
{
	static struct zm_zds_msg a, x;
	static char page[65536];
	struct zm_error e = { 0 };
	char err[1024], path[256];
	int nsfd, cfd, other, devnull;

	test_defer(free_msg, &a);
	test_defer(free_msg, &x);
	ASSERT_EQ(stop_agent(self), 0);
	self->fd = zm_zds_connect(self->sock);
	ASSERT_GE(self->fd, 0);
	/* One client at a time: a second one is told so and cut off. */
	other = zm_zds_connect(self->sock);
	ASSERT_GE(other, 0);
	{
		char buf[512];
		ssize_t n = recv(other, buf, sizeof(buf) - 1, 0);

		ASSERT_GT(n, 4);
		buf[n] = 0;
		EXPECT_STRSTR(buf + 4, "another client is connected");
		EXPECT_EQ(recv(other, buf, sizeof(buf), 0), 0);
		close(other);
	}
	/* A non-root process cannot even connect (socket 0600, root). */
	{
		pid_t pid = fork();
		int status = 0;

		if (pid == 0) {
			if (setgid(65534) || setuid(65534))
				_exit(3);
			int fd = zm_zds_connect(self->sock);

			_exit(fd == -EACCES ? 0 : fd >= 0 ? 1 : 2);
		}
		ASSERT_GT(pid, 0);
		waitpid(pid, &status, 0);
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	ASSERT_OK(workload(self, "mesh", "a", &a, &nsfd));
	/* keep: a known pod stays through this connection's snapshot; an
	 * unknown one must be added (with its netns). */
	{
		struct zm_zds_msg keep = { .type = ZM_ZDS_KEEP };

		snprintf(keep.uid, sizeof(keep.uid), "%s", a.w.uid);
		ASSERT_OK(zm_zds_call(self->fd, &keep, -1, 10000, &e));
		strcpy(keep.uid, "not-enrolled");
		EXPECT_EQ(zm_zds_call(self->fd, &keep, -1, 10000, &e), -EREMOTEIO);
		EXPECT_STRSTR(e.msg, "keep: no workload with uid not-enrolled");
	}
	/* del a: no longer captured, live. */
	{
		struct zm_zds_msg del = { .type = ZM_ZDS_DEL };

		snprintf(del.uid, sizeof(del.uid), "%s", a.w.uid);
		ASSERT_OK(zm_zds_call(self->fd, &del, -1, 10000, &e));
	}
	EXPECT_EQ(a_talks_to_b(self), 0);
	/* Bad requests, each refused with the reason; the connection stays. */
	ASSERT_OK(raw_call(self->fd, "xx", 2, -1, err, sizeof(err)));
	EXPECT_STRSTR(err, "record of 2 bytes");
	ASSERT_OK(raw_call(self->fd, "\x7f\xff\xff\xff{}", 6, -1, err, sizeof(err)));
	EXPECT_STRSTR(err, "at most");
	ASSERT_OK(raw_json(self->fd, "{{{{{", err, sizeof(err)));
	EXPECT_STRSTR(err, "not JSON");
	ASSERT_OK(raw_json(self->fd, "{\"type\":\"nuke\"}", err, sizeof(err)));
	EXPECT_STRSTR(err, "type: nuke");
	ASSERT_OK(raw_json(self->fd, "{\"type\":\"add\",\"workload\":{\"uid\":\"u\",\"namespace\":\"x\","
			   "\"name\":\"y\",\"ip\":\"10.1.2.3.4\",\"cgroup\":\"/x\"}}", err, sizeof(err)));
	EXPECT_STRSTR(err, "workload.ip: 10.1.2.3.4: want an IPv4 address");
	EXPECT_EQ(zm_zds_call(self->fd, &a, -1, 10000, &e), -EREMOTEIO);
	EXPECT_STRSTR(e.msg, "no network namespace");
	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ASSERT_GE(devnull, 0);
	EXPECT_EQ(zm_zds_call(self->fd, &a, devnull, 10000, &e), -EREMOTEIO);
	EXPECT_STRSTR(e.msg, "not a network namespace");
	{
		struct zm_zds_msg del = { .type = ZM_ZDS_DEL };

		snprintf(del.uid, sizeof(del.uid), "%s", a.w.uid);
		EXPECT_EQ(zm_zds_call(self->fd, &del, devnull, 10000, &e), -EREMOTEIO);
		EXPECT_STRSTR(e.msg, "only add passes one");
		strcpy(del.uid, "no-such-uid");
		EXPECT_EQ(zm_zds_call(self->fd, &del, -1, 10000, &e), -EREMOTEIO);
		EXPECT_STRSTR(e.msg, "no workload with uid no-such-uid");
	}
	close(devnull);
	/* The node's own netns (ztunnel's) is not a pod's. */
	snprintf(path, sizeof(path), "zm-%s-%s", self->k.lab, self->k.n1);
	cfd = zm_netns_open(path);
	ASSERT_GE(cfd, 0);
	EXPECT_EQ(zm_zds_call(self->fd, &a, cfd, 10000, &e), -EREMOTEIO);
	EXPECT_STRSTR(e.msg, "ztunnel's own");
	close(cfd);
	/* Pod c's netns does not hold a's address, nor the other node's name. */
	ASSERT_OK(workload(self, "plain", "c", &x, &cfd));
	ASSERT_GE(cfd, 0);
	EXPECT_EQ(zm_zds_call(self->fd, &a, cfd, 10000, &e), -EREMOTEIO);
	EXPECT_STRSTR(e.msg, "workload.ip: 10.244.0.2 is not an address in the passed netns");
	snprintf(x.w.node, sizeof(x.w.node), "%s", self->k.n2);
	EXPECT_EQ(zm_zds_call(self->fd, &x, cfd, 10000, &e), -EREMOTEIO);
	EXPECT_STRSTR(e.msg, "workload.node");
	close(cfd);
	/* ztunnel kept serving: the meshed pod on node 2 still takes traffic... */
	EXPECT_EQ(a_talks_to_b(self), 0);
	/* ...and a proper add enrols a again, then the snapshot ends. */
	ASSERT_OK(zm_zds_call(self->fd, &a, nsfd, 10000, &e));
	close(nsfd);
	EXPECT_EQ(a_talks_to_b(self), 1);
	{
		struct zm_zds_msg snap = { .type = ZM_ZDS_SNAPSHOT_SENT };

		ASSERT_OK(zm_zds_call(self->fd, &snap, -1, 10000, &e));
		EXPECT_EQ(zm_zds_call(self->fd, &snap, -1, 10000, &e), -EREMOTEIO);
		EXPECT_STRSTR(e.msg, "sent already");
		snap.type = ZM_ZDS_KEEP;
		snprintf(snap.uid, sizeof(snap.uid), "%s", a.w.uid);
		EXPECT_EQ(zm_zds_call(self->fd, &snap, -1, 10000, &e), -EREMOTEIO);
		EXPECT_STRSTR(e.msg, "only before snapshot_sent");
	}
	EXPECT_EQ(a_talks_to_b(self), 1);
	lab_metrics(self->k.lab, self->k.n1, page, sizeof(page));
	EXPECT_GE(lab_metric(page, "zmesh_ztunnel_zds_refused_total "), 13);
}

TEST_F(zds, restart_replays_the_snapshot_and_drops_the_departed)
{
	char out[4096];
	int zpid;

	ASSERT_EQ(a_talks_to_b(self), 1);
	zpid = lab_ztunnel_pid(self->k.lab, self->k.n1);
	ASSERT_GT(zpid, 0);
	ASSERT_EQ(kill(zpid, SIGKILL), 0);
	usleep(300000);
	/* Down: a's capture stays pinned, so a's connects are refused (fail closed). */
	EXPECT_EQ(a_talks_to_b(self), -1);
	/* Pod a leaves the mesh while nobody can be told. */
	ASSERT_EQ(test_sh(NULL, 0, "%s lab label pod a -n mesh istio.io/dataplane-mode=none --name %s", lab_ctl(),
			  self->k.lab), 0);
	ASSERT_EQ(test_sh(NULL, 0, "%s lab exec --node %s --name %s -- sh -c '%s/ztunnel --node %s --lab %s "
			  ">/run/zmesh/lab/%s/logs/ztunnel-restart.log 2>&1 &'", lab_ctl(), self->k.n1, self->k.lab,
			  test_build_dir(), self->k.n1, self->k.lab, self->k.lab), 0);
	/* Ready only once the agent replayed the snapshot... */
	ASSERT_OK(lab_wait_ready(self->k.lab, self->k.n1));
	/* ...which did not name a: its leftover capture is gone, a goes direct. */
	EXPECT_EQ(a_talks_to_b(self), 0);
	ASSERT_EQ(test_sh(out, sizeof(out), "cat /run/zmesh/lab/%s/logs/ztunnel-restart.log", self->k.lab), 0);
	EXPECT_STRSTR(out, "left the mesh (while ztunnel was down)");
	EXPECT_STRSTR(out, "first snapshot in");
	/* And a comes back when it opts in again. */
	ASSERT_EQ(test_sh(NULL, 0, "%s lab label pod a -n mesh istio.io/dataplane-mode- --name %s", lab_ctl(),
			  self->k.lab), 0);
	ASSERT_OK(wait_captured(self, 1));
}
